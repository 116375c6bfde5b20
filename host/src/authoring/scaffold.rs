//! `switchyard policy new NAME`: a policy crate that builds for `wasm32-wasip2` and passes its
//! own tests out of the box.
//!
//! The crate holds `Cargo.toml` (a `cdylib` on the Switchyard SDK), `src/lib.rs` (a small
//! cost-aware policy with native unit tests against the SDK's mock host), `cases.jsonl` (cases
//! for `switchyard policy test`), `catalog.json` (the catalog they run against) and a README
//! with the commands. By default it also holds the SDK itself (`vendor/switchyard-sdk`) and the
//! contract (`wit/policy.wit`), exactly as this binary carries them: the crate builds wherever
//! the binary is, with no checkout and nothing fetched but crates.io's `wit-bindgen`. The files
//! are templates in `template/` and the SDK's and contract's sources, compiled into the binary;
//! this module writes them into a new folder and touches nothing else.

use std::path::{Path, PathBuf};

use super::ToolError;

/// The template files: path in the new crate, and text with `{{name}}`, `{{crate_name}}` and
/// `{{sdk}}` to fill in.
const FILES: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("template/Cargo.toml.txt")),
    ("src/lib.rs", include_str!("template/lib.rs.txt")),
    ("cases.jsonl", include_str!("template/cases.jsonl")),
    ("catalog.json", include_str!("template/catalog.json")),
    ("README.md", include_str!("template/README.md")),
    (".gitignore", "/target\n"),
];

/// The SDK and the contract as this binary carries them: path in the new crate, and text
/// (`{{version}}` filled in).
const BUNDLED_SDK: &[(&str, &str)] = &[
    (
        "vendor/switchyard-sdk/Cargo.toml",
        include_str!("template/sdk/Cargo.toml.txt"),
    ),
    (
        "vendor/switchyard-sdk/src/lib.rs",
        include_str!("../../../plugins/sdk/src/lib.rs"),
    ),
    (
        "vendor/switchyard-sdk/src/arena.rs",
        include_str!("../../../plugins/sdk/src/arena.rs"),
    ),
    (
        "vendor/switchyard-sdk/src/catalog.rs",
        include_str!("../../../plugins/sdk/src/catalog.rs"),
    ),
    (
        "vendor/switchyard-sdk/src/cues.rs",
        include_str!("../../../plugins/sdk/src/cues.rs"),
    ),
    (
        "vendor/switchyard-sdk/src/host.rs",
        include_str!("../../../plugins/sdk/src/host.rs"),
    ),
    (
        "vendor/switchyard-sdk/src/request.rs",
        include_str!("../../../plugins/sdk/src/request.rs"),
    ),
    (
        "vendor/switchyard-sdk/src/testing.rs",
        include_str!("../../../plugins/sdk/src/testing.rs"),
    ),
    ("wit/policy.wit", include_str!("../../../wit/policy.wit")),
];

/// Where the new crate takes the SDK from.
#[derive(Debug, Clone, Default)]
pub enum SdkSource {
    /// The SDK and contract this binary carries, written into the new crate.
    #[default]
    Bundled,
    /// A checkout's `plugins/sdk` folder.
    Path(PathBuf),
}

impl SdkSource {
    fn dependency(&self) -> String {
        let path = match self {
            Self::Bundled => "vendor/switchyard-sdk".to_string(),
            Self::Path(path) => path.display().to_string(),
        };
        format!("{{ path = {path:?} }}")
    }

    /// The files it adds to the new crate, with `{{version}}` in them.
    fn files(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Bundled => BUNDLED_SDK,
            Self::Path(_) => &[],
        }
    }
}

/// Write a new policy crate named `name` into `dir` (which must not exist yet); returns the
/// files written.
pub fn create(dir: &Path, name: &str, sdk: &SdkSource) -> Result<Vec<PathBuf>, ToolError> {
    let valid = !name.is_empty()
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        return Err(ToolError::Input(format!(
            "`{name}` is not a policy name: use lower-case letters, digits, `-` and `_`, \
             starting with a letter"
        )));
    }
    if dir.exists() {
        return Err(ToolError::input(dir, "already exists; choose a new folder"));
    }
    let crate_name = name.replace('-', "_");
    let written = write_all(dir, name, &crate_name, sdk);
    if written.is_err() {
        // Leave nothing half-made behind.
        let _ = std::fs::remove_dir_all(dir);
    }
    written
}

fn write_all(
    dir: &Path,
    name: &str,
    crate_name: &str,
    sdk: &SdkSource,
) -> Result<Vec<PathBuf>, ToolError> {
    let mut written = Vec::new();
    for (file, template) in FILES.iter().chain(sdk.files()) {
        let path = dir.join(file);
        let text = template
            .replace("{{name}}", name)
            .replace("{{crate_name}}", crate_name)
            .replace("{{sdk}}", &sdk.dependency())
            .replace("{{version}}", env!("CARGO_PKG_VERSION"));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| ToolError::input(parent, format!("cannot create: {e}")))?;
        }
        std::fs::write(&path, text)
            .map_err(|e| ToolError::input(&path, format!("cannot write: {e}")))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sdk_source_file_is_bundled() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/sdk/src");
        for entry in std::fs::read_dir(&src).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let bundled = format!("vendor/switchyard-sdk/src/{name}");
            assert!(
                BUNDLED_SDK.iter().any(|(path, _)| *path == bundled),
                "plugins/sdk/src/{name} is not in BUNDLED_SDK"
            );
        }
    }

    #[test]
    fn names_are_checked_and_templates_filled() {
        let dir = tempfile::tempdir().unwrap();
        let sdk = SdkSource::Path("/sdk".into());
        assert!(create(&dir.path().join("x"), "Bad Name", &sdk).is_err());
        let files = create(&dir.path().join("p"), "my-policy", &sdk).unwrap();
        assert_eq!(files.len(), FILES.len());
        let manifest = std::fs::read_to_string(dir.path().join("p/Cargo.toml")).unwrap();
        assert!(manifest.contains("name = \"my-policy\""), "{manifest}");
        assert!(
            manifest.contains(r#"switchyard-sdk = { path = "/sdk" }"#),
            "{manifest}"
        );
        let all: String = files
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .collect();
        assert!(!all.contains("{{"), "a placeholder was left unfilled");
        assert!(create(&dir.path().join("p"), "my-policy", &sdk).is_err());
    }

    #[test]
    fn the_bundled_sdk_and_contract_are_written_beside_the_crate() {
        let dir = tempfile::tempdir().unwrap();
        let files = create(&dir.path().join("p"), "p", &SdkSource::Bundled).unwrap();
        assert_eq!(files.len(), FILES.len() + BUNDLED_SDK.len());
        let read = |f: &str| std::fs::read_to_string(dir.path().join("p").join(f)).unwrap();
        assert!(
            read("Cargo.toml").contains(r#"switchyard-sdk = { path = "vendor/switchyard-sdk" }"#)
        );
        assert!(read("wit/policy.wit").contains("package switchyard:policy@"));
        // The SDK finds the contract where its sources say, relative to its own manifest.
        assert!(read("vendor/switchyard-sdk/src/lib.rs").contains(r#"path: "../../wit""#));
        let manifest = read("vendor/switchyard-sdk/Cargo.toml");
        assert!(manifest.contains(&format!("version = \"{}\"", env!("CARGO_PKG_VERSION"))));
    }

    #[test]
    fn the_bundled_sdk_depends_on_what_the_workspace_builds_it_with() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let toml = |path: PathBuf| -> toml::Value {
            toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
        };
        let bundled: toml::Value = toml::from_str(BUNDLED_SDK[0].1).unwrap();
        let workspace = toml(root.join("Cargo.toml"));
        assert_eq!(
            bundled["dependencies"]["wit-bindgen"],
            workspace["workspace"]["dependencies"]["wit-bindgen"]
        );
        let sdk = toml(root.join("plugins/sdk/Cargo.toml"));
        let wasm = "cfg(target_arch = \"wasm32\")";
        assert_eq!(bundled["target"][wasm], sdk["target"][wasm]);
        assert_eq!(bundled["features"], sdk["features"]);
    }
}
