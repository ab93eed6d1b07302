//! The contract from the other side: the documented Python client (pika + cbor2) talks to a
//! real worker through the real broker.

use crate::harness::*;
use midnit_worker::tools::samples;
use std::path::PathBuf;

/// Runs the documented Python client against `queue` and returns the summary it prints.
async fn run_client(
    queue: &str,
    input: PathBuf,
    out: PathBuf,
    extra: &[&str],
) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/examples/client.py");
    let mut command = std::process::Command::new("python3");
    command
        .args([script, "--url", &amqp_url(), "--queue", queue])
        .args(extra)
        .arg("--input")
        .arg(input)
        .arg("--out")
        .arg(out);
    let result = tokio::task::spawn_blocking(move || {
        command
            .output()
            .expect("python3 runs (pip install pika cbor2)")
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "client failed: {stderr}");
    serde_json::from_slice(&result.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_python_client_gets_its_thumbnails_and_receipt() {
    let w = spawn_worker("python").await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("figure.jpg");
    std::fs::write(
        &input,
        samples::jpeg(&samples::figure_photo(1200, 900, 6), 90),
    )
    .unwrap();
    let out = dir.path().join("out");
    let summary = run_client(&w.config.broker.queue, input.clone(), out, &[]).await;
    assert_eq!(summary["status"], "ok", "{summary}");
    let outputs = summary["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 2);
    assert_eq!(
        (outputs[0]["width"].as_u64(), outputs[0]["height"].as_u64()),
        (Some(512), Some(384))
    );
    assert_eq!(
        (outputs[1]["width"].as_u64(), outputs[1]["height"].as_u64()),
        (Some(256), Some(256))
    );
    for o in outputs {
        let bytes = std::fs::read(o["path"].as_str().unwrap()).unwrap();
        image::load_from_memory(&bytes).expect("a written output decodes");
    }
    // At least the decoded pixels: the 1200x900 photo decoded at 1/2 scale (shrink-on-load:
    // both outputs are at most 512 px wide).
    assert!(summary["wiped_bytes"].as_u64().unwrap() > 600 * 450 * 3);
    let artifacts: Vec<&str> = summary["wiped_artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for expected in [
        "request.body",
        "input.photo",
        "pixels.photo.decoded",
        "output.thumb",
        "output.square",
    ] {
        assert!(
            artifacts.contains(&expected),
            "{expected} not in {artifacts:?}"
        );
    }

    // The same client with a recipe: a showcase card with an accented name.
    let card_args = ["--card-name", "Aurore — Série Étoile"];
    let summary = run_client(
        &w.config.broker.queue,
        input,
        dir.path().join("card"),
        &card_args,
    )
    .await;
    assert_eq!(summary["status"], "ok", "{summary}");
    let card = &summary["outputs"][0];
    assert_eq!(
        (card["width"].as_u64(), card["height"].as_u64()),
        (Some(540), Some(675))
    );
    w.stop().await;
}
