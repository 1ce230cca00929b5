//! The layering, checked on the source: the engine (its own crate) knows
//! nothing of HTTP, and the server crate's top-level modules import one
//! another without cycles (`docs/ARCHITECTURE.md`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → the top-level modules it names as `crate::…`.
fn module_imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&src).unwrap();
            let first = relative.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
            let module = first.trim_end_matches(".rs").to_owned();
            if module == "lib" {
                continue; // the root assembles everything
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let names = graph.entry(module.clone()).or_default();
            for (at, _) in text.match_indices("crate::") {
                let rest = &text[at + "crate::".len()..];
                let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if !name.is_empty() && name != module {
                    names.insert(name);
                }
            }
        }
    }
    graph
}

/// A cycle through `start`, if there is one.
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_owned(), vec![start.to_owned()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in graph.get(&node).into_iter().flatten() {
            if next == start {
                return Some([path.clone(), vec![start.to_owned()]].concat());
            }
            if seen.insert(next.clone()) {
                stack.push((next.clone(), [path.clone(), vec![next.clone()]].concat()));
            }
        }
    }
    None
}

#[test]
fn the_server_crates_modules_import_one_another_without_cycles() {
    let graph = module_imports();
    assert!(graph.contains_key("dispatcher") && graph.contains_key("api"), "{graph:?}");
    for module in graph.keys() {
        assert_eq!(cycle_from(&graph, module), None, "an import cycle");
    }
}

#[test]
fn the_engine_knows_nothing_of_http() {
    // The engine's crate depends on no HTTP crate and no wire types, so it
    // cannot name them; its manifest is the whole check.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let dependencies = text.split("[dependencies]").nth(1).unwrap().split("\n[").next().unwrap();
    let names: Vec<&str> = dependencies
        .lines()
        .filter_map(|line| line.split('=').next().map(str::trim))
        .filter(|name| !name.is_empty() && !name.starts_with('#'))
        .collect();
    assert!(names.contains(&"vouchsafe-core"), "{names:?}");
    for http in ["axum", "http", "hyper", "tower", "tower-http", "reqwest", "vouchsafe-proto", "vouchsafe-server"] {
        assert!(!names.contains(&http), "the engine depends on {http}: {names:?}");
    }
    // And the server's own modules never define engine code beside it.
    assert!(!Path::new(env!("CARGO_MANIFEST_DIR")).join("src/engine").exists());
}
