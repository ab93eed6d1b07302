//! The documents say what the code does: every setting in the README's table, every error code
//! in the protocol, and the example configuration parses.

use midnit_worker::config::{Config, KEYS};
use midnit_worker::protocol::ErrorCode;

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn the_readme_lists_every_setting_with_its_environment_variable() {
    let readme = read("README.md");
    for (key, _) in KEYS {
        let env = format!("`MIDNIT_{}`", key.to_ascii_uppercase());
        assert!(readme.contains(&env), "README lacks {env}");
        assert!(readme.contains(&format!("`{key}`")), "README lacks `{key}`");
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
    assert_eq!(config.queue, defaults.queue);
    assert_eq!(config.spill_threshold_bytes, defaults.spill_threshold_bytes);
    assert_eq!(config.drain_timeout_secs, defaults.drain_timeout_secs);
}
