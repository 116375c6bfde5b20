//! The proxy's modules depend one way: no cycle among the top-level modules of `host/src`, and
//! the layers stay in their order (config, label, clock and api at the bottom, then policy, upstream
//! and fleet, then control, then server and admin), with telemetry a leaf the others call. Read from the source:
//! every `crate::MODULE` a module's files name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use switchyard_e2e::workspace_root;

/// Top-level module -> the other top-level modules its files name.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let src = workspace_root().join("host/src");
    let mut graph = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        if name == "lib" || name == "main" {
            continue;
        }
        let mut named = BTreeSet::new();
        for file in rust_files(&path) {
            let text = std::fs::read_to_string(&file).unwrap();
            for (at, _) in text.match_indices("crate::") {
                let rest = &text[at + "crate::".len()..];
                let module: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !module.is_empty() && module != name {
                    named.insert(module);
                }
            }
        }
        graph.insert(name, named);
    }
    graph
}

fn rust_files(path: &Path) -> Vec<std::path::PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).unwrap() {
        files.extend(rust_files(&entry.unwrap().path()));
    }
    files
}

/// A cycle through `from`, if there is one: the modules along it.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> Option<Vec<String>> {
    fn walk(
        graph: &BTreeMap<String, BTreeSet<String>>,
        at: &str,
        goal: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in graph.get(at).into_iter().flatten() {
            if next == goal {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, next, goal, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![from.to_string()];
    walk(graph, from, from, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn no_module_depends_on_itself_through_others() {
    let graph = dependencies();
    assert!(graph.contains_key("server") && graph.contains_key("policy"));
    for module in graph.keys() {
        if let Some(cycle) = cycle(&graph, module) {
            panic!("import cycle: {} -> {module}", cycle.join(" -> "));
        }
    }
}

#[test]
fn layers_depend_only_downwards() {
    let graph = dependencies();
    let allowed: &[(&str, &[&str])] = &[
        ("config", &[]),
        ("label", &[]),
        ("clock", &[]),
        ("api", &["clock", "config"]),
        ("telemetry", &["config"]),
        ("auth", &["api", "config"]),
        ("policy", &["api", "config", "label"]),
        (
            "upstream",
            &["api", "clock", "config", "label", "policy", "telemetry"],
        ),
        ("fleet", &["clock", "config"]),
    ];
    for (module, below) in allowed {
        let extra: Vec<&String> = graph[*module]
            .iter()
            .filter(|m| !below.contains(&m.as_str()))
            .collect();
        assert!(extra.is_empty(), "{module} reaches up into {extra:?}");
    }
}
