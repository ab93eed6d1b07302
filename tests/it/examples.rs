//! Every request in docs/examples renders, through the `render` command's code path.

use midnit_worker::app::config::Config;
use midnit_worker::protocol::Status;

#[tokio::test]
async fn every_documented_example_renders_ok() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let out = tempfile::tempdir().unwrap();
        let reply = midnit_worker::tools::cli::render(&Config::default(), &path, out.path())
            .await
            .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        assert_eq!(
            reply.status,
            Status::Ok,
            "{}: {:?}",
            path.display(),
            reply.error
        );
        let written = std::fs::read_dir(out.path()).unwrap().count();
        assert_eq!(written, reply.outputs.len(), "{}", path.display());
        seen += 1;
    }
    assert!(seen >= 6, "examples found: {seen}");
}
