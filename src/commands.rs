//! The command-line commands, as library functions (`main.rs` only parses and dispatches).

use crate::client::{Client, RawProps};
use crate::config::Config;
use crate::executor::{Executor, InProcess};
use crate::intake::{intake, Meta};
use crate::protocol::{encode_request, Reply, Request};
use crate::request_file;
use crate::serve::{ServeError, Worker};
use crate::wipe::{now_unix_ms, Ledger, SecretBuf};
use crate::worker::seal;
use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// `serve`: runs until SIGTERM/SIGINT; a second signal exits at once.
pub async fn serve(config: Config) -> Result<(), ServeError> {
    let shutdown = CancellationToken::new();
    tokio::spawn(on_signals(shutdown.clone()));
    let executor = crate::executor::from_config(&config).map_err(ServeError::Executor)?;
    let http_addr = config.http_addr.clone();
    let worker = Worker::prepare(config, executor)?;
    let http_stop = CancellationToken::new();
    if !http_addr.is_empty() {
        let listener = crate::http::bind(&http_addr)
            .await
            .map_err(|e| ServeError::Http(http_addr.clone(), e))?;
        if let Some(addr) = crate::http::local_addr(&listener) {
            tracing::info!(%addr, "health and metrics: /healthz /readyz /metrics");
        }
        tokio::spawn(crate::http::run(
            listener,
            worker.shared(),
            http_stop.clone(),
        ));
    }
    let result = worker.run(shutdown).await.map(drop);
    http_stop.cancel();
    result
}

async fn on_signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    tracing::info!("signal received: finishing in-flight jobs (signal again to exit at once)");
    shutdown.cancel();
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    tracing::warn!("second signal: exiting now; unacked jobs return to the queue");
    std::process::exit(130);
}

/// `submit`: sends a request file through the broker and writes the reply's outputs. Returns
/// the reply and the correlation id it was sent with.
pub async fn submit(
    config: &Config,
    request: &Path,
    out: &Path,
    timeout: Duration,
) -> anyhow::Result<(Reply, String)> {
    let request = request_file::load(request)?;
    let client = Client::for_worker(config).await?;
    let id = client.new_correlation_id();
    let sent = client
        .send_raw(&encode_request(&request), &RawProps::request(&id))
        .await;
    let bytes = match sent {
        Ok(rx) => Client::await_raw(rx, timeout).await,
        Err(e) => Err(e),
    };
    client.close().await;
    let reply = crate::protocol::decode_reply(&bytes?)?;
    request_file::write_outputs(&reply, out)?;
    Ok((reply, id))
}

/// `verify-receipt`: checks the signature of a receipt printed by `submit`. Returns the
/// signer's public key.
pub fn verify_receipt(file: &Path, trusted_key: Option<&str>) -> anyhow::Result<String> {
    #[derive(serde::Deserialize)]
    struct Printed {
        correlation_id: Option<String>,
        receipt: crate::wipe::Receipt,
        signature: Option<crate::wipe::ReceiptSignature>,
    }
    let printed: Printed = serde_json::from_str(&std::fs::read_to_string(file)?)?;
    let signature = printed
        .signature
        .ok_or_else(|| anyhow::anyhow!("the receipt is not signed"))?;
    let key = crate::wipe::verify(
        printed.correlation_id.as_deref(),
        &printed.receipt,
        &signature,
        trusted_key,
    )?;
    Ok(key)
}

/// `render`: the same pipeline locally, no broker. Writes the outputs to `out` and returns
/// the reply a worker would send.
pub async fn render(config: &Config, request: &Path, out: &Path) -> anyhow::Result<Reply> {
    let reply = render_request(config, request_file::load(request)?).await?;
    request_file::write_outputs(&reply, out)?;
    Ok(reply)
}

/// Renders `request` in this process as a worker would, and returns the reply it would send.
pub async fn render_request(config: &Config, request: Request) -> anyhow::Result<Reply> {
    let started = now_unix_ms();
    let ledger = Ledger::new();
    let body = SecretBuf::new(encode_request(&request), "request.body", &ledger);
    drop(request);
    let meta = Meta {
        content_type: Some(crate::protocol::CONTENT_TYPE.into()),
    };
    let result = match intake(body, &meta, &config.limits, None, &ledger) {
        Ok(job) => InProcess::new(config.limits.clone(), 1).execute(job).await,
        Err(e) => Err(e),
    };
    let sealed = seal(result, &ledger, started, None);
    Ok(crate::protocol::decode_reply(sealed.body.as_slice())?)
}

/// Prints a reply's outcome, receipt and signature as JSON on stdout (the input of
/// `verify-receipt`).
pub fn print_reply(reply: &Reply, correlation_id: Option<&str>, out: &Path) -> anyhow::Result<()> {
    let outputs: Vec<_> = reply
        .outputs
        .iter()
        .map(|o| {
            serde_json::json!({
                "name": o.name, "format": o.format, "width": o.width, "height": o.height,
                "bytes": o.data.len(),
            })
        })
        .collect();
    let summary = serde_json::json!({
        "status": reply.status,
        "outputs": outputs,
        "written_to": out,
        "error": reply.error,
        "correlation_id": correlation_id,
        "receipt": reply.receipt,
        "signature": reply.signature,
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

/// `samples`: writes the synthetic sample inputs used by `docs/examples/`.
pub fn samples(out: &Path, photos: u32) -> anyhow::Result<()> {
    use crate::samples::{
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
