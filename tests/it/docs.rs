//! The documents say what the code does: every setting in the README's table, every error code
//! in the protocol, and the example configuration parses.

use midnit_worker::app::config::Config;
use midnit_worker::protocol::ErrorCode;

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn the_readme_lists_every_setting_with_its_environment_variable() {
    // The table is generated from the one definition of the settings
    // (`midnit-worker settings` prints it): the README carries it unchanged.
    let readme = read("README.md");
    let table = Config::markdown_table();
    assert!(
        readme.contains(&table),
        "README's configuration table differs from `midnit-worker settings`:\n{table}"
    );
    for key in Config::keys() {
        assert!(
            readme.contains(&format!("`{}`", key.env())),
            "README lacks {}",
            key.env()
        );
    }
}

#[test]
fn the_protocol_document_lists_every_error_code() {
    let protocol = read("docs/PROTOCOL.md");
    for code in ErrorCode::ALL {
        assert!(
            protocol.contains(&format!("| `{}` |", code.as_str())),
            "PROTOCOL.md lacks {code}"
        );
    }
}

#[test]
fn the_example_configuration_parses_to_the_defaults_it_documents() {
    let path = format!("{}/deploy/worker.example.toml", env!("CARGO_MANIFEST_DIR"));
    let config = Config::from_file(path.as_ref()).unwrap();
    let defaults = Config::default();
    assert_eq!(config.limits, defaults.limits);
    assert_eq!(config.broker.queue, defaults.broker.queue);
    assert_eq!(
        config.wipe.spill_threshold_bytes,
        defaults.wipe.spill_threshold_bytes
    );
    assert_eq!(
        config.worker.drain_timeout_secs,
        defaults.worker.drain_timeout_secs
    );
}

#[test]
fn every_source_path_the_documents_name_exists() {
    // A path in prose or a link (`src/…`, `tests/…`, `deploy/…`, `docs/…`, relative to the
    // repository or, behind `../`, to the document's folder) must name a real file or folder.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut documents = vec![root.join("README.md"), root.join("fuzz/README.md")];
    for dir in ["docs", "deploy"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "md") {
                documents.push(path);
            }
        }
    }
    // What git ignores is made by a run (sample photos, the fuzz corpus): a document may name it
    // on a fresh clone, before it exists.
    let ignored: Vec<String> = std::fs::read_to_string(root.join(".gitignore"))
        .unwrap()
        .lines()
        .map(|l| l.trim().trim_matches('/').to_string())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let generated = |path: &str| ignored.iter().any(|i| path.starts_with(i.as_str()));
    let mut missing = Vec::new();
    for doc in &documents {
        let text = std::fs::read_to_string(doc).unwrap();
        for (at, _) in text.match_indices(['`', '(', ' ', '\n']) {
            let rest = text[at + 1..].trim_start_matches("../");
            let path: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || "_-./".contains(*c))
                .collect();
            // `definitions.<topology>.json` is a pattern, not a path.
            let pattern = rest[path.len()..].starts_with(['<', '*', '{']);
            let path = path.trim_end_matches(['.', '/']);
            let named = ["src/", "tests/", "deploy/", "docs/", "benches/", "fuzz/"]
                .iter()
                .any(|p| path.starts_with(p));
            if named
                && !pattern
                && !generated(path)
                && !path.contains("..")
                && !root.join(path).exists()
            {
                missing.push(format!(
                    "{}: {path}",
                    doc.strip_prefix(root).unwrap().display()
                ));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "documents name paths that do not exist:\n{}",
        missing.join("\n")
    );
}
