//! The contract from the other side: the documented Python client (pika + cbor2) talks to a
//! real worker through the real broker.

mod common;

use common::*;
use midnit_worker::samples;

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
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/examples/client.py");
    let queue = w.config.queue.clone();
    let result = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args([script, "--url", &amqp_url(), "--queue", &queue])
            .arg("--input")
            .arg(&input)
            .arg("--out")
            .arg(&out)
            .output()
            .expect("python3 runs (pip install pika cbor2)")
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "client failed: {stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
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
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/examples/client.py");
    let queue = w.config.queue.clone();
    let (input, out) = (dir.path().join("figure.jpg"), dir.path().join("card"));
    let result = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args([script, "--url", &amqp_url(), "--queue", &queue])
            .args(["--card-name", "Aurore — Série Étoile"])
            .arg("--input")
            .arg(&input)
            .arg("--out")
            .arg(&out)
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
    assert_eq!(summary["status"], "ok", "{summary}");
    let card = &summary["outputs"][0];
    assert_eq!(
        (card["width"].as_u64(), card["height"].as_u64()),
        (Some(540), Some(675))
    );
    w.stop().await;
}
