//! Privacy guarantees that are properties of the build, not of one job.

use std::process::Command;

fn forbidden() -> Vec<String> {
    let list = include_str!("../../policy/forbidden-crates.txt");
    list.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == pattern,
    }
}

#[test]
fn no_face_recognition_or_machine_learning_crate_is_in_the_dependency_tree() {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.len() > 50,
        "the whole tree is read ({} packages)",
        names.len()
    );
    let patterns = forbidden();
    assert!(patterns.len() > 20);
    let hits: Vec<_> = names
        .iter()
        .filter(|n| patterns.iter().any(|p| matches(p, n)))
        .collect();
    assert!(hits.is_empty(), "forbidden crates in the tree: {hits:?}");
}

#[test]
fn the_forbidden_list_would_catch_a_face_recognition_crate() {
    let patterns = forbidden();
    for name in [
        "rustface",
        "opencv",
        "ort",
        "candle-core",
        "tract-onnx",
        "tch",
    ] {
        assert!(
            patterns.iter().any(|p| matches(p, name)),
            "{name} not caught"
        );
    }
    assert!(!patterns.iter().any(|p| matches(p, "image")));
}
