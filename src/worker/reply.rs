//! Stage 3 — sealing the **reply**: outputs are copied into the reply body and wiped, *then*
//! the receipt is taken from the ledger, so the receipt lists the outputs' own wipes.
//!
//! The reply is a CBOR map written piece by piece: `v`, `status`, `outputs` or `error`, and
//! `receipt` last. The reply body itself is wiped after the broker confirms it; that wipe is
//! logged, since the receipt inside it is already sealed.

use crate::pipeline::{Rendered, StageTimings};
use crate::protocol::{JobError, VERSION};
use crate::wipe::{Ledger, ReceiptSigner, SecretBuf};
use serde::Serialize;
use std::io::Write;

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
}

#[derive(Serialize)]
struct OutputView<'a> {
    name: &'a str,
    format: &'a str,
    width: u32,
    height: u32,
    data: &'a serde_bytes::Bytes,
}

fn put<T: Serialize + ?Sized>(buf: &mut SecretBuf, value: &T) {
    ciborium::into_writer(value, buf).expect("writing to memory cannot fail");
}

/// How a reply's receipt is signed: the key, and the job's correlation id it is bound to.
pub type Signing<'a> = Option<(&'a ReceiptSigner, Option<&'a str>)>;

/// Builds the reply for `result`, wiping the outputs once copied, and signs the receipt.
pub fn seal(
    result: Result<Rendered, JobError>,
    ledger: &Ledger,
    started_ms: u64,
    signing: Signing<'_>,
) -> Sealed {
    let payload: usize = match &result {
        Ok(r) => r.outputs.iter().map(|o| o.data.len() + 128).sum(),
        Err(_) => 0,
    };
    let mut body = SecretBuf::with_capacity(payload + 16 * 1024, "reply.body", ledger);
    // A CBOR map of four entries, five with a signature.
    let entries = if signing.is_some() { 0xA5 } else { 0xA4 };
    body.write_all(&[entries]).expect("memory write");
    put(&mut body, "v");
    put(&mut body, &VERSION);
    let mut wipe_time = std::time::Duration::ZERO;
    let mut renderer_peak_rss = None;
    let timings = match result {
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
                    data: serde_bytes::Bytes::new(o.data.as_slice()),
                })
                .collect();
            put(&mut body, &views);
            drop(views);
            let timings = rendered.timings;
            renderer_peak_rss = rendered.renderer_peak_rss;
            let wiping = std::time::Instant::now();
            drop(rendered); // the outputs' wipes land in the ledger here, before the receipt
            wipe_time = wiping.elapsed();
            Some(timings)
        }
        Err(error) => {
            put(&mut body, "status");
            put(&mut body, "error");
            put(&mut body, "error");
            put(&mut body, &error.body());
            None
        }
    };
    let receipt = ledger.receipt(started_ms);
    put(&mut body, "receipt");
    put(&mut body, &receipt);
    if let Some((signer, correlation_id)) = signing {
        put(&mut body, "signature");
        put(&mut body, &signer.sign(correlation_id, &receipt));
    }
    Sealed {
        body,
        wiped_bytes: receipt.wiped_bytes,
        timings,
        wipe_time,
        renderer_peak_rss,
    }
}
