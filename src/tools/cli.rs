//! The command-line tools' commands, as library functions (`main.rs` only parses and
//! dispatches): `submit`, `verify-receipt`, `render`, `samples`.

use crate::app::config::Config;
use crate::client::{Client, RawProps};
use crate::protocol::{encode_request, Reply, Request};
use crate::reply::process::{Delivery, Processor};
use crate::tools::request_file;
use midnit_client::sealed::SealedCall;
use std::path::Path;
use std::time::Duration;

/// A reply as `submit` received it: the decoded reply, the correlation id it was sent with,
/// and the SHA-256 of the request body it answers.
pub struct Submitted {
    /// The reply.
    pub reply: Reply,
    /// The correlation id of the request.
    pub correlation_id: String,
    /// SHA-256 of the request body sent.
    pub request_sha256: [u8; 32],
}

/// `submit`: sends a request file through the broker and writes the reply's outputs.
///
/// With a key `directory` the request is sealed to its current epoch key and the sealed reply
/// opened: the broker carries only ciphertext.
pub async fn submit(
    config: &Config,
    request: &Path,
    out: &Path,
    timeout: Duration,
    directory: Option<&midnit_client::KeyDirectory>,
) -> anyhow::Result<Submitted> {
    let request = request_file::load(request)?;
    let body = encode_request(&request);
    let call = directory
        .map(|d| SealedCall::new(d, &body, crate::wipe::now_unix_ms()))
        .transpose()?;
    let client = crate::client::for_worker(&config.broker).await?;
    let id = client.new_correlation_id();
    let mut props = RawProps::request(&id);
    if let Some(call) = &call {
        props.content_type = Some(crate::protocol::SEALED_CONTENT_TYPE.into());
        props.epoch = Some(call.epoch);
    }
    let wire = call
        .as_ref()
        .map_or(body.as_slice(), |c| c.sealed.as_slice());
    let sent = client.send_raw(wire, &props).await;
    let bytes = match sent {
        Ok(rx) => Client::await_raw(rx, timeout).await,
        Err(e) => Err(e),
    };
    client.close().await;
    let bytes = bytes?;
    // What the attestation names: the opened request, or the sealed bytes the worker could
    // not open.
    let (bytes, attested) = match &call {
        Some(c) => c.open_attested(&bytes, &body)?,
        None => (bytes, body.as_slice()),
    };
    let reply = crate::protocol::decode_reply(&bytes)?;
    request_file::write_outputs(&reply, out)?;
    Ok(Submitted {
        reply,
        correlation_id: id,
        request_sha256: crate::wipe::sha256(attested),
    })
}

/// What `submit` prints: the outcome, the receipt and the attestation, with the digests the
/// backend computed itself of what it sent and received.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Printed {
    /// `ok` or `error`.
    pub status: crate::protocol::Status,
    /// The outputs as received (bytes and SHA-256, hex).
    pub outputs: Vec<PrintedOutput>,
    /// Where they were written.
    pub written_to: Option<std::path::PathBuf>,
    /// The error, if any.
    pub error: Option<crate::protocol::ErrorBody>,
    /// The request's correlation id.
    pub correlation_id: Option<String>,
    /// SHA-256 of the request body sent (hex).
    pub request_sha256: Option<String>,
    /// The receipt.
    pub receipt: crate::wipe::Receipt,
    /// The COSE_Sign1 attestation (hex).
    pub attestation: Option<String>,
}

/// One output as printed.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct PrintedOutput {
    /// Name.
    pub name: String,
    /// Format.
    pub format: String,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// The quality used (lossy formats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<u8>,
    /// Size in bytes.
    pub bytes: usize,
    /// SHA-256 (hex).
    pub sha256: String,
}

/// `verify-receipt`: checks a printed reply's attestation against the pinned public key, then
/// that every fact it attests matches what was printed (and, where the outputs were written,
/// the files). Returns the key id.
pub fn verify_receipt(file: &Path, pinned_key: &str) -> anyhow::Result<String> {
    use anyhow::{bail, ensure};
    let printed: Printed = serde_json::from_str(&std::fs::read_to_string(file)?)?;
    let key = crate::wipe::parse_hex::<32>(pinned_key.trim())
        .ok_or_else(|| anyhow::anyhow!("--public-key: expected 64 hex digits"))?;
    let Some(attestation) = printed.attestation.as_deref() else {
        bail!("the reply is not attested");
    };
    let cose = hex_bytes(attestation).ok_or_else(|| anyhow::anyhow!("attestation: not hex"))?;
    let facts = crate::wipe::verify(&cose, &key)?;
    let status = match printed.status {
        crate::protocol::Status::Ok => "ok",
        crate::protocol::Status::Error => "error",
    };
    ensure!(facts.status == status, "the attested status differs");
    ensure!(
        facts.code.as_deref() == printed.error.as_ref().map(|e| e.code.as_str()),
        "the attested error code differs"
    );
    ensure!(
        facts.correlation_id == printed.correlation_id,
        "the attested correlation id differs"
    );
    let request = printed.request_sha256.as_deref().and_then(hex_bytes);
    ensure!(
        request.as_deref() == Some(facts.request.as_slice()),
        "the attested request digest differs from the request sent"
    );
    ensure!(
        facts.receipt == printed.receipt,
        "the attested receipt differs"
    );
    ensure!(
        facts.outputs.len() == printed.outputs.len(),
        "the attested outputs differ"
    );
    for (a, o) in facts.outputs.iter().zip(&printed.outputs) {
        let same = a.name == o.name
            && a.format == o.format
            && (a.width, a.height) == (o.width, o.height)
            && hex_bytes(&o.sha256).as_deref() == Some(a.sha256.as_slice());
        ensure!(same, "output `{}` differs from what was attested", o.name);
        if let Some(dir) = &printed.written_to {
            let ext = if o.format == "jpeg" { "jpg" } else { &o.format };
            if let Ok(bytes) = std::fs::read(dir.join(format!("{}.{ext}", o.name))) {
                ensure!(
                    crate::wipe::sha256(&bytes) == a.sha256.as_slice(),
                    "the written file of output `{}` differs from what was attested",
                    o.name
                );
            }
        }
    }
    Ok(crate::wipe::hex(&facts.kid))
}

fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `render`: the same pipeline locally, no broker. Writes the outputs to `out` and returns
/// the reply a worker would send.
pub async fn render(config: &Config, request: &Path, out: &Path) -> anyhow::Result<Reply> {
    let reply = render_request(config, request_file::load(request)?).await?;
    request_file::write_outputs(&reply, out)?;
    Ok(reply)
}

/// Renders `request` in this process as a worker would, and returns the reply it would send
/// (not attested: there is no worker key here).
pub async fn render_request(config: &Config, request: Request) -> anyhow::Result<Reply> {
    let processor = Processor::local(&config.limits, &config.presets);
    let sealed = processor
        .process_one(Delivery::local(encode_request(&request), "local"))
        .await;
    Ok(crate::protocol::decode_reply(sealed.body.as_slice())?)
}

/// Prints a reply's outcome, receipt and attestation as JSON on stdout (the input of
/// `verify-receipt`).
pub fn print_reply(
    reply: &Reply,
    submitted: Option<(&str, &[u8; 32])>,
    out: &Path,
) -> anyhow::Result<()> {
    let printed = Printed {
        status: reply.status,
        outputs: reply
            .outputs
            .iter()
            .map(|o| PrintedOutput {
                name: o.name.clone(),
                format: o.format.clone(),
                width: o.width,
                height: o.height,
                quality: o.quality,
                bytes: o.data.len(),
                sha256: crate::wipe::hex(&crate::wipe::sha256(&o.data)),
            })
            .collect(),
        written_to: Some(out.to_owned()),
        error: reply.error.clone(),
        correlation_id: submitted.map(|(id, _)| id.to_owned()),
        request_sha256: submitted.map(|(_, d)| crate::wipe::hex(d)),
        receipt: reply.receipt.clone(),
        attestation: reply.attestation.as_ref().map(|a| crate::wipe::hex(a)),
    };
    println!("{}", serde_json::to_string_pretty(&printed)?);
    Ok(())
}

/// `samples`: writes the synthetic sample inputs used by `docs/examples/`.
pub fn samples(out: &Path, photos: u32) -> anyhow::Result<()> {
    use crate::tools::samples::{
        figure_cutout, figure_photo, gif, jpeg, png, portrait_as_phones_store_it, webp,
    };
    std::fs::create_dir_all(out)?;
    if photos > 0 {
        // The benchmark workload: 12 MP phone-like photos (4000x3000, q90), each different.
        for i in 0..photos {
            let path = out.join(format!("photo-{i:02}.jpg"));
            std::fs::write(
                &path,
                jpeg(&figure_photo(4000, 3000, 100 + u64::from(i)), 90),
            )?;
            println!("wrote {}", path.display());
        }
        return Ok(());
    }
    let files: [(&str, Vec<u8>); 5] = [
        ("figure.jpg", jpeg(&figure_photo(1200, 900, 1), 85)),
        (
            "portrait-exif.jpg",
            portrait_as_phones_store_it(600, 800, 2),
        ),
        ("sticker.png", png(&figure_cutout(240, 240, 3))),
        ("sticker.webp", webp(&figure_cutout(200, 200, 5))),
        ("badge.gif", gif(&figure_cutout(160, 160, 4))),
    ];
    for (name, bytes) in files {
        std::fs::write(out.join(name), bytes)?;
        println!("wrote {}", out.join(name).display());
    }
    Ok(())
}
