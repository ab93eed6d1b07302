//! The operator's HTTP listener: `/healthz` (the process is alive), `/readyz` (connected to the
//! broker and consuming), `/metrics` (Prometheus / OpenMetrics text) and `/keys` (the signed
//! key directory sealed requests are sealed to, CBOR). GET and HEAD only; nothing else is
//! served, and no job data is ever reachable here.

use crate::app::worker::Handling;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `addr`; the returned listener is served by [`run`].
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves health and metrics on `listener` until `shutdown` fires.
pub async fn run(listener: TcpListener, shared: Arc<Handling>, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let response = respond(&req, &shared);
                async move { Ok::<_, std::convert::Infallible>(response) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The address a listener is bound to (port 0 picks one).
pub fn local_addr(listener: &TcpListener) -> Option<SocketAddr> {
    listener.local_addr().ok()
}

fn respond(req: &Request<Incoming>, shared: &Handling) -> Response<Full<Bytes>> {
    let stats = &shared.stats;
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD\n");
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if stats.is_ready() => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not connected to the broker\n",
        ),
        "/metrics" => {
            if let Some((ready, target)) = shared.processor.executor.pool() {
                stats.set_pool(ready, target);
            }
            let mut response = Response::new(Full::new(Bytes::from(stats.encode())));
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(OPENMETRICS),
            );
            response
        }
        "/keys" => match &shared.processor.keys {
            Some(keys) => {
                let directory = keys.directory(crate::wipe::now_unix_ms());
                let mut response = Response::new(Full::new(Bytes::from(directory)));
                let headers = response.headers_mut();
                headers.insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("application/cbor"),
                );
                headers.insert(
                    hyper::header::CACHE_CONTROL,
                    hyper::header::HeaderValue::from_static("no-store"),
                );
                response
            }
            None => text(StatusCode::NOT_FOUND, "sealed requests are off\n"),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

/// `GET path` on the listener at `addr` (a wildcard address is asked on loopback): the HTTP
/// status code. For the `healthcheck` command.
pub fn get_status(addr: &str, path: &str) -> std::io::Result<u16> {
    get(addr, path).map(|(status, _)| status)
}

/// `GET path` on the listener at `addr`: the status code and the body (at most 1 MiB).
pub fn get(addr: &str, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    use std::io::{Read, Write};
    let mut target: SocketAddr = addr
        .parse()
        .map_err(|_| std::io::Error::other(format!("http_addr `{addr}` is not host:port")))?;
    if target.ip().is_unspecified() {
        target.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let timeout = std::time::Duration::from_secs(3);
    let stream = std::net::TcpStream::connect_timeout(&target, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    write!(
        &stream,
        "GET {path} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.take(1 << 20).read_to_end(&mut response)?;
    let bad = || std::io::Error::other("not an HTTP response");
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(bad)?;
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(bad)?;
    Ok((status, response[split + 4..].to_vec()))
}
