//! Stage 3 — sealing the **reply**: outputs are copied into the reply body and wiped, *then*
//! the receipt is taken from the ledger (so it lists the outputs' own wipes), then the
//! attestation binding the outcome, the request, the outputs and the receipt is signed.
//!
//! The reply is a CBOR map written field by field — `v`, `status`, `outputs` or `error`,
//! `receipt`, `attestation` — because the receipt can only be taken once the outputs are in
//! the body and wiped. Its size is known before anything is copied: outputs larger than
//! `max_reply_bytes` allows (with room for the bounded receipt) are answered `limits.output`.
//! The reply body itself is wiped after the broker confirms it; that wipe is logged, since the
//! receipt inside it is already sealed.

use crate::job::OutputFormat;
use crate::protocol::{ErrorCode, JobError, VERSION};
use crate::render::{Rendered, StageTimings, REPLY_RESERVE};
use crate::wipe::{Attested, AttestedOutput, Ledger, ReceiptSigner, SecretBuf};
use serde::Serialize;
use serde_bytes::ByteBuf;

/// A reply ready to publish.
#[derive(Debug)]
pub struct Sealed {
    /// The CBOR reply body (wiped when dropped).
    pub body: SecretBuf,
    /// Bytes listed as wiped in the sealed receipt.
    pub wiped_bytes: u64,
    /// Stage timings, when the job rendered.
    pub timings: Option<StageTimings>,
    /// Time spent wiping the outputs once copied into the body.
    pub wipe_time: std::time::Duration,
    /// The renderer process's peak resident memory, when there was one.
    pub renderer_peak_rss: Option<u64>,
    /// The code the reply carries, when it is an error (the job's own, or `limits.output`
    /// when its outputs did not fit a reply).
    pub code: Option<ErrorCode>,
}

/// What a reply is sealed with besides the job's result.
#[derive(Clone, Copy)]
pub struct Sealing<'a> {
    /// The job's ledger.
    pub ledger: &'a Ledger,
    /// When the worker received the job (ms since the Unix epoch).
    pub started_ms: u64,
    /// The receipt-signing key, if replies are attested.
    pub signer: Option<&'a ReceiptSigner>,
    /// The request's correlation id.
    pub correlation_id: Option<&'a str>,
    /// SHA-256 of the request body.
    pub request_sha256: [u8; 32],
    /// Largest reply allowed.
    pub max_reply_bytes: usize,
    /// For an opened sealed request: what its receipt states of the sealing.
    pub sealed: Option<&'a crate::wipe::SealedFacts>,
}

#[derive(Serialize)]
struct OutputView<'a> {
    name: &'a str,
    format: OutputFormat,
    width: u32,
    height: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    quality: Option<u8>,
    data: &'a serde_bytes::Bytes,
}

fn put<T: Serialize + ?Sized>(buf: &mut SecretBuf, value: &T) {
    ciborium::into_writer(value, buf).expect("writing to memory cannot fail");
}

/// A CBOR map head for `n` entries (`n` < 24).
fn map_head(n: u8) -> u8 {
    debug_assert!(n < 24);
    0xA0 | n
}

/// Whether the rendered outputs fit one reply with room for everything else.
fn fits(rendered: &Rendered, max_reply_bytes: usize) -> bool {
    let outputs: usize = rendered
        .outputs
        .iter()
        .map(|o| o.data.len().saturating_add(256))
        .fold(0usize, usize::saturating_add);
    outputs.saturating_add(REPLY_RESERVE) <= max_reply_bytes
}

/// Builds the reply for `result`, wiping the outputs once copied, and attests it.
pub fn seal(result: Result<Rendered, JobError>, s: &Sealing<'_>) -> Sealed {
    let result = match result {
        Ok(rendered) if !fits(&rendered, s.max_reply_bytes) => {
            drop(rendered); // wiped, and ledgered, before the receipt is taken
            Err(JobError::new(
                ErrorCode::LimitsOutput,
                format!(
                    "outputs: together larger than a reply may be ({} bytes, max_reply_bytes)",
                    s.max_reply_bytes
                ),
            ))
        }
        other => other,
    };
    let payload: usize = match &result {
        Ok(r) => r.outputs.iter().map(|o| o.data.len() + 128).sum(),
        Err(_) => 0,
    };
    let mut body = SecretBuf::with_capacity(payload + REPLY_RESERVE, "reply.body", s.ledger);
    let entries = if s.signer.is_some() { 5 } else { 4 };
    std::io::Write::write_all(&mut body, &[map_head(entries)]).expect("memory write");
    put(&mut body, "v");
    put(&mut body, &VERSION);
    let mut wipe_time = std::time::Duration::ZERO;
    let mut renderer_peak_rss = None;
    let mut attested_outputs = Vec::new();
    let (timings, code) = match result {
        Ok(rendered) => {
            put(&mut body, "status");
            put(&mut body, "ok");
            put(&mut body, "outputs");
            let views: Vec<OutputView<'_>> = rendered
                .outputs
                .iter()
                .map(|o| OutputView {
                    name: &o.name,
                    format: o.format,
                    width: o.width,
                    height: o.height,
                    quality: o.quality,
                    data: serde_bytes::Bytes::new(o.data.as_slice()),
                })
                .collect();
            put(&mut body, &views);
            drop(views);
            if s.signer.is_some() {
                attested_outputs = rendered
                    .outputs
                    .iter()
                    .map(|o| AttestedOutput {
                        name: o.name.clone(),
                        format: o.format.as_str().into(),
                        width: o.width,
                        height: o.height,
                        sha256: ByteBuf::from(crate::wipe::sha256(o.data.as_slice()).to_vec()),
                    })
                    .collect();
            }
            let timings = rendered.timings;
            renderer_peak_rss = rendered.renderer_peak_rss;
            let wiping = std::time::Instant::now();
            drop(rendered); // the outputs' wipes land in the ledger here, before the receipt
            wipe_time = wiping.elapsed();
            (Some(timings), None)
        }
        Err(error) => {
            put(&mut body, "status");
            put(&mut body, "error");
            put(&mut body, "error");
            put(&mut body, &error.body());
            (None, Some(error.code))
        }
    };
    let mut receipt = s.ledger.receipt(s.started_ms);
    receipt.sealed = s.sealed.cloned();
    put(&mut body, "receipt");
    put(&mut body, &receipt);
    let wiped_bytes = receipt.wiped_bytes;
    if let Some(signer) = s.signer {
        let attested = Attested {
            v: 1,
            kid: ByteBuf::from(signer.key_id().to_vec()),
            time: crate::wipe::now_unix_ms(),
            status: if code.is_some() { "error" } else { "ok" }.into(),
            code: code.map(|c| c.as_str().to_owned()),
            request: ByteBuf::from(s.request_sha256.to_vec()),
            outputs: attested_outputs,
            receipt,
            correlation_id: s.correlation_id.map(str::to_owned),
        };
        put(&mut body, "attestation");
        put(
            &mut body,
            serde_bytes::Bytes::new(&signer.attest(&attested)),
        );
    }
    Sealed {
        body,
        wiped_bytes,
        timings,
        wipe_time,
        renderer_peak_rss,
        code,
    }
}
