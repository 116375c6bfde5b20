//! Checking what a component is before it may run: WebAssembly at all, a component rather than a
//! core module, the `switchyard:policy` world at a version this host supports, and imports the
//! host provides.
//!
//! These checks read only the bytes and the compiled component's type; they produce the precise
//! messages operators see when a version is refused (the linker's own type check, which runs
//! after them, catches what names alone cannot).

use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use super::LoadError;

/// The contract this host implements.
pub const WORLD: &str = "switchyard:policy@0.1.2";

/// WASI 0.2 packages the host links (granting nothing through them; see `sandbox`).
const WASI_PACKAGES: &[&str] = &[
    "wasi:io",
    "wasi:clocks",
    "wasi:random",
    "wasi:cli",
    "wasi:filesystem",
    "wasi:sockets",
];

/// WebAssembly's magic number.
const MAGIC: &[u8; 4] = b"\0asm";

/// Refuse bytes that are not WebAssembly, and core modules, before compiling anything.
pub fn check_header(bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(LoadError::NotWasm(
            "it does not start with WebAssembly's `\\0asm` magic number".into(),
        ));
    }
    match u16::from_le_bytes([bytes[6], bytes[7]]) {
        0 => Err(LoadError::CoreModule),
        1 => Ok(()),
        layer => Err(LoadError::NotWasm(format!(
            "it declares WebAssembly layer {layer}, neither a module (0) nor a component (1)"
        ))),
    }
}

/// Refuse a component that imports what the host does not provide or does not export `decide`.
pub fn check_world(component: &Component, engine: &Engine) -> Result<(), LoadError> {
    let ty = component.component_type();
    let refused: Vec<(&str, String)> = ty
        .imports(engine)
        .filter_map(|(name, _)| refusal(name).map(|hint| (name, hint)))
        .collect();
    if let Some((_, hint)) = refused.first() {
        return Err(LoadError::UnsupportedImport {
            hint: hint.clone(),
            imports: refused.iter().map(|(name, _)| name.to_string()).collect(),
        });
    }
    match ty.get_export(engine, "decide").map(|e| e.ty) {
        Some(ComponentItem::ComponentFunc(_)) => Ok(()),
        _ => {
            let exports: Vec<&str> = ty.exports(engine).map(|(name, _)| name).collect();
            let exports = if exports.is_empty() {
                "none".to_string()
            } else {
                exports.join(", ")
            };
            Err(LoadError::WrongWorld(format!(
                "it does not export the function `decide` of {WORLD} (its exports: {exports})"
            )))
        }
    }
}

/// Why the host does not provide the import `name`; `None` when it does.
fn refusal(name: &str) -> Option<String> {
    let (path, version) = name.split_once('@').unwrap_or((name, ""));
    let package = path.split_once('/').map_or(path, |(package, _)| package);
    if package == "switchyard:policy" {
        return (!version.starts_with("0.1.")).then(|| {
            format!("it was built for switchyard:policy@{version}; this host supports {WORLD}")
        });
    }
    if WASI_PACKAGES.contains(&package) && version.starts_with("0.2.") {
        return None;
    }
    Some(format!(
        "a policy may import {WORLD}'s `host` interface and WASI 0.2 ({}), which grant nothing",
        WASI_PACKAGES.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_tell_garbage_modules_and_components_apart() {
        assert!(matches!(
            check_header(b"this is not wasm"),
            Err(LoadError::NotWasm(_))
        ));
        assert!(matches!(check_header(b"\0asm"), Err(LoadError::NotWasm(_))));
        assert!(matches!(
            check_header(b"\0asm\x01\0\0\0"),
            Err(LoadError::CoreModule)
        ));
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_ok());
    }

    #[test]
    fn imports_are_judged_by_package_and_version() {
        assert_eq!(refusal("switchyard:policy/host@0.1.0"), None);
        assert_eq!(refusal("switchyard:policy/types@0.1.3"), None);
        assert_eq!(refusal("wasi:cli/environment@0.2.6"), None);
        assert_eq!(refusal("wasi:sockets/tcp@0.2.0"), None);
        assert!(refusal("wasi:http/outgoing-handler@0.2.4").is_some());
        let hint = refusal("switchyard:policy/host@0.2.0").unwrap();
        assert!(hint.contains("built for switchyard:policy@0.2.0"), "{hint}");
        assert!(refusal("wasi:cli/environment@0.3.0").is_some());
        assert!(refusal("log").is_some());
        let e = LoadError::UnsupportedImport {
            imports: vec!["wasi:http/types@0.2.12".into(), "acme:x/y".into()],
            hint: "h".into(),
        };
        assert_eq!(
            e.to_string(),
            "it imports `wasi:http/types@0.2.12`, `acme:x/y`, which this host does not provide: h"
        );
    }
}
