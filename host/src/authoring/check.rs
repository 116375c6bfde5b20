//! `switchyard policy check`: what a loaded component imports and exports, and what each import
//! grants it inside the proxy's sandbox.
//!
//! Loading ([`super::load`]) already refused anything the live host would refuse; this module
//! only describes a component that passed, from its compiled type.

use serde::Serialize;
use wasmtime::component::types::ComponentItem;

use crate::policy::Policy;
use crate::policy::inspect::WORLD;

/// What `policy check` reports about an accepted component.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
    /// The contract this host implements.
    pub host_world: &'static str,
    /// The `switchyard:policy` version the component was built against.
    pub built_against: Option<String>,
    pub imports: Vec<Import>,
    pub exports: Vec<String>,
}

/// One imported interface.
#[derive(Debug, Clone, Serialize)]
pub struct Import {
    pub name: String,
    /// The functions the component uses from it.
    pub functions: Vec<String>,
    /// What the sandbox gives the policy through it.
    pub grants: &'static str,
}

/// Describe `policy`, loaded from a file of `bytes` bytes.
pub fn describe(policy: &Policy, bytes: u64) -> CheckReport {
    let engine = policy.engine();
    let ty = policy.component().component_type();
    let imports: Vec<Import> = ty
        .imports(engine)
        .map(|(name, item)| Import {
            name: name.to_string(),
            functions: match item.ty {
                ComponentItem::ComponentInstance(instance) => instance
                    .exports(engine)
                    .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentFunc(_)))
                    .map(|(name, _)| name.to_string())
                    .collect(),
                _ => Vec::new(),
            },
            grants: grants(name),
        })
        .collect();
    let built_against = imports.iter().find_map(|i| {
        let (path, version) = i.name.split_once('@')?;
        path.starts_with("switchyard:policy/")
            .then(|| format!("switchyard:policy@{version}"))
    });
    CheckReport {
        path: policy.origin().to_string(),
        sha256: policy.sha256().to_string(),
        bytes,
        host_world: WORLD,
        built_against,
        imports,
        exports: ty
            .exports(engine)
            .map(|(name, item)| match item.ty {
                ComponentItem::ComponentFunc(f) => {
                    let params: Vec<&str> = f.params().map(|(name, _)| name).collect();
                    format!("{name}({})", params.join(", "))
                }
                _ => name.to_string(),
            })
            .collect(),
    }
}

/// What the sandbox grants through the import `name` (see `policy::sandbox`).
fn grants(name: &str) -> &'static str {
    let path = name.split_once('@').map_or(name, |(path, _)| path);
    match path {
        "switchyard:policy/host" => {
            "log lines (capped), message text (capped at max_message_chars), team budget, \
             time to first token, the request's operation"
        }
        "switchyard:policy/types" => "types only",
        "wasi:random/random" | "wasi:random/insecure" | "wasi:random/insecure-seed" => {
            "random numbers, seeded from the request id unless `random = \"system\"`"
        }
        "wasi:clocks/wall-clock" | "wasi:clocks/monotonic-clock" => {
            "a clock that always reads zero"
        }
        "wasi:cli/stdout" | "wasi:cli/stderr" => "output captured into the proxy's log (capped)",
        "wasi:cli/stdin" => "an empty input",
        "wasi:cli/environment" => "no variables, no arguments",
        "wasi:cli/exit" => "exiting ends the decision as a failure",
        p if p.starts_with("wasi:cli/terminal") => "no terminal",
        p if p.starts_with("wasi:filesystem/") => "no directories",
        p if p.starts_with("wasi:sockets/") => "nothing: every address is denied",
        p if p.starts_with("wasi:io/") => "streams and polling for the interfaces above",
        _ => "linked by the host",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_import_says_what_it_grants() {
        assert!(grants("switchyard:policy/host@0.1.2").contains("message text"));
        assert_eq!(
            grants("wasi:sockets/tcp@0.2.6"),
            "nothing: every address is denied"
        );
        assert_eq!(grants("wasi:filesystem/preopens@0.2.0"), "no directories");
        assert_eq!(
            grants("wasi:clocks/monotonic-clock@0.2.3"),
            "a clock that always reads zero"
        );
        assert_eq!(grants("wasi:cli/terminal-stdout@0.2.3"), "no terminal");
    }
}
