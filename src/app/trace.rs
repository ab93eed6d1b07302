//! W3C trace context (`traceparent`) across the queue: read from a request's AMQP headers,
//! continued by the job's span, and written on the reply's headers, so a backend's trace runs
//! through the worker. Only the ids cross: a malformed header is ignored (the job still runs,
//! in a trace of its own), and its value is never logged.
//!
//! With an OTLP endpoint configured ([`crate::app::telemetry`]), the job span is exported as a
//! child of the requester's span and the reply names that exported span; without one, the
//! reply names a span id of the worker's own making under the same trace id.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The AMQP header (and W3C field) that carries the context.
pub const TRACEPARENT: &str = "traceparent";

/// A parsed `traceparent`: version 00, trace id, parent span id, flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// 16 bytes, not all zero.
    pub trace_id: [u8; 16],
    /// 8 bytes, not all zero: the span the request was sent from.
    pub span_id: [u8; 8],
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceParent {
    /// Parses `00-<32 hex>-<16 hex>-<2 hex>` (lower-case hex, as W3C requires); a later
    /// version's header is read for its first four fields, as the recommendation says.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().split('-');
        let version = parts.next()?;
        let (trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?);
        let valid_version = version.len() == 2 && version != "ff" && is_lower_hex(version);
        if !valid_version || (version == "00" && parts.next().is_some()) {
            return None;
        }
        let trace_id: [u8; 16] = hex_bytes(trace)?;
        let span_id: [u8; 8] = hex_bytes(span)?;
        let [flags] = hex_bytes::<1>(flags)?;
        let zero = trace_id.iter().all(|&b| b == 0) || span_id.iter().all(|&b| b == 0);
        (!zero).then_some(Self {
            trace_id,
            span_id,
            flags,
        })
    }

    /// The header's text form (version 00).
    pub fn format(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            midnit_client::hex(&self.trace_id),
            midnit_client::hex(&self.span_id),
            self.flags
        )
    }

    /// The trace id in hex, for logs.
    pub fn trace_id_hex(&self) -> String {
        midnit_client::hex(&self.trace_id)
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn hex_bytes<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !is_lower_hex(s) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Makes `span` (a job's) a child of the requester's span, for the OTLP exporter; without an
/// exporter this only records the link in the span's own context.
pub fn continue_in(span: &tracing::Span, parent: &TraceParent) {
    let remote = SpanContext::new(
        TraceId::from_bytes(parent.trace_id),
        SpanId::from_bytes(parent.span_id),
        TraceFlags::new(parent.flags),
        true,
        TraceState::default(),
    );
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
}

/// The context the reply carries: the exported job span when there is an exporter; otherwise
/// the request's trace id (or a new one) with a span id of the worker's own.
pub fn for_reply(span: &tracing::Span, parent: Option<&TraceParent>) -> TraceParent {
    let context = span.context();
    let own = context.span().span_context().clone();
    if own.is_valid() {
        return TraceParent {
            trace_id: own.trace_id().to_bytes(),
            span_id: own.span_id().to_bytes(),
            flags: own.trace_flags().to_u8(),
        };
    }
    TraceParent {
        trace_id: parent.map_or_else(random_bytes, |p| p.trace_id),
        span_id: random_bytes(),
        flags: parent.map_or(0, |p| p.flags),
    }
}

/// Non-zero bytes for ids (ids, not secrets: see [`crate::app::unrepeated_u64`]).
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    for chunk in out.chunks_mut(8) {
        let bytes = crate::app::unrepeated_u64().to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    if out.iter().all(|&b| b == 0) {
        out[0] = 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_w3c_example_round_trips() {
        let p = TraceParent::parse(EXAMPLE).unwrap();
        assert_eq!(p.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(p.span_id, [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]);
        assert_eq!(p.flags, 1);
        assert_eq!(p.format(), EXAMPLE);
    }

    #[test]
    fn malformed_or_zero_contexts_are_ignored() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
        // A later version may add fields after the four it shares with 00.
        assert!(TraceParent::parse(&format!("01{}-x", &EXAMPLE[2..])).is_some());
    }

    #[test]
    fn without_an_exporter_the_reply_keeps_the_trace_and_names_a_new_span() {
        let parent = TraceParent::parse(EXAMPLE).unwrap();
        let span = tracing::Span::none();
        let reply = for_reply(&span, Some(&parent));
        assert_eq!(reply.trace_id, parent.trace_id);
        assert_ne!(reply.span_id, parent.span_id);
        assert_ne!(reply.span_id, [0; 8]);
        let fresh = for_reply(&span, None);
        assert_ne!(fresh.trace_id, [0; 16]);
        assert_eq!(TraceParent::parse(&fresh.format()), Some(fresh));
    }
}
