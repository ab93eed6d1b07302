//! `serve`: the worker as the binary runs it — signals, the health listener, the worker.

use crate::app::config::Config;
use crate::app::worker::{executor_for, ServeError, Worker};

use tokio_util::sync::CancellationToken;

/// `serve`: runs until SIGTERM/SIGINT; a second signal exits at once.
pub async fn serve(config: Config) -> Result<(), ServeError> {
    let shutdown = CancellationToken::new();
    tokio::spawn(on_signals(shutdown.clone()));
    let executor = executor_for(&config.executor, &config.limits, config.worker.concurrency)
        .map_err(ServeError::Executor)?;
    let http_addr = config.http.http_addr.clone();
    let worker = Worker::prepare(config, executor)?;
    let http_stop = CancellationToken::new();
    if !http_addr.is_empty() {
        let listener = crate::app::http::bind(&http_addr)
            .await
            .map_err(|e| ServeError::Http(http_addr.clone(), e))?;
        if let Some(addr) = crate::app::http::local_addr(&listener) {
            tracing::info!(%addr, "health and metrics: /healthz /readyz /metrics");
        }
        tokio::spawn(crate::app::http::run(
            listener,
            worker.handling(),
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
