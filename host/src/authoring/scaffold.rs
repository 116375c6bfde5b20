//! `switchyard policy new NAME`: a policy crate that builds for `wasm32-wasip2` and passes its
//! own tests out of the box.
//!
//! The crate holds `Cargo.toml` (a `cdylib` on the Switchyard SDK), `src/lib.rs` (a small
//! cost-aware policy with native unit tests against the SDK's mock host), `cases.jsonl` (cases
//! for `switchyard policy test`), `catalog.json` (the catalog they run against) and a README
//! with the commands. The files are templates in `template/`, compiled into the binary; this
//! module writes them into a new folder and touches nothing else.

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

/// Where the new crate takes the SDK from.
#[derive(Debug, Clone)]
pub enum SdkSource {
    /// A checkout's `plugins/sdk` folder.
    Path(PathBuf),
    /// The project's git repository, at this binary's release tag.
    Git(String),
}

impl SdkSource {
    /// The SDK of the checkout this binary was built from, when it is still there; else git.
    pub fn default_for_this_build() -> Self {
        let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/sdk");
        match std::fs::canonicalize(&checkout) {
            Ok(path) if path.join("Cargo.toml").is_file() => Self::Path(path),
            _ => Self::Git(env!("CARGO_PKG_REPOSITORY").to_string()),
        }
    }

    fn dependency(&self) -> String {
        match self {
            Self::Path(path) => format!("{{ path = {:?} }}", path.display().to_string()),
            Self::Git(url) => format!(
                "{{ git = {url:?}, tag = \"v{}\" }}",
                env!("CARGO_PKG_VERSION")
            ),
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
    for (file, template) in FILES {
        let path = dir.join(file);
        let text = template
            .replace("{{name}}", name)
            .replace("{{crate_name}}", crate_name)
            .replace("{{sdk}}", &sdk.dependency());
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
}
