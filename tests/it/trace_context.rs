//! Trace context across the queue, with the real binary and broker: a request's W3C
//! `traceparent` is continued by the job's span, named on the reply's headers, and (with an
//! OTLP endpoint) exported as a child of the requester's span to a receiver run by the test.

use crate::harness::*;
use futures_util::StreamExt;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";

/// The requests a receiver got: path and body.
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// An OTLP/HTTP receiver: keeps each POSTed body and answers 200 with an empty
/// `ExportTraceServiceResponse`.
struct Receiver {
    addr: String,
    bodies: Received,
}

impl Receiver {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let bodies: Received = Arc::default();
        let sink = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                if let Some(request) = read_request(&stream) {
                    sink.lock().unwrap().push(request);
                }
                let mut stream = stream;
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                );
            }
        });
        Self { addr, bodies }
    }

    /// Waits (bounded) for a body that holds `needle`; returns it, parsed.
    fn wait_for(&self, needle: &str) -> serde_json::Value {
        let deadline = Instant::now() + REPLY;
        loop {
            for (path, body) in self.bodies.lock().unwrap().iter() {
                if String::from_utf8_lossy(body).contains(needle) {
                    assert_eq!(path, "/v1/traces");
                    return serde_json::from_slice(body).expect("OTLP JSON");
                }
            }
            assert!(Instant::now() < deadline, "no span with {needle} exported");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Reads one HTTP/1.1 request: its path and body (content-length framed).
fn read_request(stream: &std::net::TcpStream) -> Option<(String, Vec<u8>)> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_owned();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        if header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((path, body))
}

/// Sends `body` with a `traceparent` header and returns the reply's headers' traceparent.
async fn send_traced(queue: &str, body: &[u8], traceparent: &str) -> String {
    use lapin::types::{AMQPValue, FieldTable};
    let conn = lapin::Connection::connect(&amqp_url(), Default::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let reply_queue = ch
        .queue_declare(
            "".into(),
            lapin::options::QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .unwrap();
    let mut replies = consume(&ch, reply_queue.name().as_str(), true).await;
    let mut headers = FieldTable::default();
    headers.insert(
        "traceparent".into(),
        AMQPValue::LongString(traceparent.into()),
    );
    let props = lapin::BasicProperties::default()
        .with_content_type("application/cbor".into())
        .with_correlation_id("traced-1".into())
        .with_reply_to(reply_queue.name().clone())
        .with_headers(headers);
    ch.basic_publish("".into(), queue.into(), Default::default(), body, props)
        .await
        .unwrap();
    let reply = tokio::time::timeout(REPLY, replies.next())
        .await
        .expect("a reply")
        .unwrap()
        .unwrap();
    let decoded = midnit_worker::protocol::decode_reply(&reply.data).unwrap();
    assert_eq!(
        decoded.status,
        midnit_worker::protocol::Status::Ok,
        "{decoded:?}"
    );
    let header = reply
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("traceparent").cloned())
        .expect("the reply names its trace context");
    let _ = conn.close(200, "done".into()).await;
    match header {
        AMQPValue::LongString(s) => String::from_utf8(s.as_bytes().to_vec()).unwrap(),
        other => panic!("traceparent header of type {other:?}"),
    }
}

/// Every span of an OTLP JSON export.
fn spans(export: &serde_json::Value) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for resource in export["resourceSpans"].as_array().into_iter().flatten() {
        for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
            out.extend(scope["spans"].as_array().into_iter().flatten().cloned());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requests_trace_is_continued_in_the_job_span_exported_over_otlp_and_named_on_the_reply() {
    let receiver = Receiver::start();
    let endpoint = format!("http://{}/v1/traces", receiver.addr);
    let queue = unique_queue("otlp");
    let mut worker = spawn_binary_env(
        &queue,
        1,
        &[
            ("MIDNIT_OTLP_ENDPOINT", endpoint.as_str()),
            ("MIDNIT_OTLP_PROTOCOL", "http/json"),
            ("MIDNIT_OTLP_SERVICE_NAME", "midnit-worker-test"),
        ],
    );
    let parent = format!("00-{TRACE_ID}-{PARENT_SPAN}-01");
    let reply_context = send_traced(&queue, &body_of(&tiny_job()), &parent).await;
    let parts: Vec<&str> = reply_context.split('-').collect();
    assert_eq!(parts.len(), 4, "{reply_context}");
    assert_eq!((parts[0], parts[1], parts[3]), ("00", TRACE_ID, "01"));
    let job_span = parts[2];
    assert_ne!(job_span, PARENT_SPAN, "the reply names the job's own span");
    assert!(
        worker.log_text().contains(TRACE_ID),
        "the job's log lines carry its trace id"
    );

    // SIGTERM flushes the exporter; the receiver has the job span as the requester's child.
    worker.signal(libc::SIGTERM);
    assert!(worker.wait_exit().success(), "{}", worker.log_text());
    let export = receiver.wait_for(TRACE_ID);
    let exported = spans(&export);
    let job = exported
        .iter()
        .find(|s| s["traceId"] == TRACE_ID)
        .expect("the job span");
    assert_eq!(job["name"], "job");
    assert_eq!(job["parentSpanId"], PARENT_SPAN);
    assert_eq!(job["spanId"], job_span, "the reply names the exported span");
    let service = &export["resourceSpans"][0]["resource"]["attributes"];
    assert!(
        service.to_string().contains("midnit-worker-test"),
        "{service}"
    );
    delete_queue(&queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_exporter_the_reply_still_continues_the_trace_and_a_bad_context_is_ignored() {
    let queue = unique_queue("traceparent");
    let mut worker = spawn_binary(&queue, 1);
    let parent = format!("00-{TRACE_ID}-{PARENT_SPAN}-00");
    let reply_context = send_traced(&queue, &body_of(&tiny_job()), &parent).await;
    assert!(
        reply_context.starts_with(&format!("00-{TRACE_ID}-")) && reply_context.ends_with("-00"),
        "{reply_context}"
    );
    assert!(!reply_context.contains(PARENT_SPAN));
    // A malformed header: the job still runs, in a trace of its own.
    let fresh = send_traced(&queue, &body_of(&tiny_job()), "00-zz-<script>-01").await;
    assert!(
        !fresh.contains("zz") && !fresh.contains("script"),
        "{fresh}"
    );
    assert!(!worker.log_text().contains("<script>"));
    worker.signal(libc::SIGTERM);
    assert!(worker.wait_exit().success());
    delete_queue(&queue).await;
}
