//! One job from its body to its sealed reply — intake → execute → seal — in one place, used
//! by the worker, the `render` command, the demo and the load generator alike.
//!
//! [`Processor::process`] runs intake (on the blocking pool: it copies and hashes megabytes)
//! and the executor; [`Processor::seal`] seals a result (on the blocking pool too). They are
//! two calls because the worker decides between them whether a crashed job is answered now
//! or requeued for another attempt.

use super::{seal, Sealed, Sealing};
use crate::intake::{intake, Meta, Presets, Spill};
use crate::job::Limits;
use crate::protocol::{ErrorCode, JobError};
use crate::render::executor::Executor;
use crate::render::Rendered;
use crate::wipe::{now_unix_ms, Ledger, ReceiptSigner, SecretBuf, SpillDir};
use std::sync::Arc;

/// What processing a job needs: where it renders, the limits and presets, where large inputs
/// spill, and the key that attests replies.
#[derive(Clone)]
pub struct Processor {
    /// Where jobs are rendered.
    pub executor: Arc<dyn Executor>,
    /// The limits every job is held to.
    pub limits: Limits,
    /// The operator's presets (checked at start).
    pub presets: Arc<Presets>,
    /// The spill directory and the input size above which inputs go there.
    pub spill: Option<(SpillDir, usize)>,
    /// Attests every reply (none: replies are not attested, as in the local `render`).
    pub signer: Option<Arc<ReceiptSigner>>,
}

/// One job as delivered, whatever the transport.
pub struct Delivery {
    /// The body, already owned by the job's ledger.
    pub body: SecretBuf,
    /// The job's wipe ledger.
    pub ledger: Ledger,
    /// When the job was received (ms since the Unix epoch).
    pub started_ms: u64,
    /// The `content_type` property, if set.
    pub content_type: Option<String>,
    /// The correlation id (required).
    pub correlation_id: Option<String>,
    /// When the job stops being useful (ms since the Unix epoch).
    pub deadline_ms: Option<u64>,
}

/// A job's result with what its reply is sealed with.
pub struct Processed {
    /// Rendered outputs, or why not.
    pub result: Result<Rendered, JobError>,
    /// The rest of what sealing needs.
    pub context: SealContext,
}

/// What sealing a reply needs besides the result.
#[derive(Debug, Clone)]
pub struct SealContext {
    ledger: Ledger,
    started_ms: u64,
    correlation_id: Option<String>,
    request_sha256: [u8; 32],
}

impl Processed {
    /// Whether the renderer died on this job (a crash, not a limit).
    pub fn crashed(&self) -> bool {
        matches!(&self.result, Err(e) if e.crashed)
    }
}

/// What is checked of a delivery before its body is parsed: a correlation id, the deadline.
fn precheck(d: &Delivery) -> Result<(), JobError> {
    if d.correlation_id.as_deref().is_none_or(str::is_empty) {
        return Err(JobError::new(
            ErrorCode::RequestMalformed,
            "correlation_id: missing (the message property is required)",
        ));
    }
    if let Some(deadline) = d.deadline_ms {
        let now = now_unix_ms();
        if now > deadline {
            return Err(JobError::new(
                ErrorCode::JobExpired,
                format!(
                    "the job's deadline passed {} ms before it was picked up",
                    now - deadline
                ),
            ));
        }
    }
    Ok(())
}

impl Processor {
    /// A processor that renders in this process on one thread, with no spill directory and
    /// no receipt key: the local `render` command and the load generator's kernel timing.
    pub fn local(limits: &Limits, presets: &Presets) -> Self {
        Self {
            executor: Arc::new(crate::render::executor::InProcess::new(limits.clone(), 1)),
            limits: limits.clone(),
            presets: Arc::new(presets.clone()),
            spill: None,
            signer: None,
        }
    }

    /// Intake, then rendering.
    pub async fn process(&self, d: Delivery) -> Processed {
        let checks = precheck(&d);
        let Delivery {
            body,
            ledger,
            started_ms,
            content_type,
            correlation_id,
            ..
        } = d;
        let (limits, spill, job_ledger) = (self.limits.clone(), self.spill.clone(), ledger.clone());
        let presets = self.presets.clone();
        let intake_task = tokio::task::spawn_blocking(move || {
            let digest = crate::wipe::sha256(body.as_slice());
            if let Err(e) = checks {
                body.wipe();
                return (Err(e), digest);
            }
            let spill = spill.as_ref().map(|(dir, threshold)| Spill {
                dir,
                threshold: *threshold,
            });
            let meta = Meta {
                content_type,
                presets,
            };
            (intake(body, &meta, &limits, spill, &job_ledger), digest)
        });
        let (job, request_sha256) = intake_task.await.unwrap_or_else(|_| {
            let crashed = JobError::new(ErrorCode::Internal, "intake crashed on this job");
            (Err(crashed), [0; 32])
        });
        let result = match job {
            Ok(job) => self.executor.execute(job).await,
            Err(e) => Err(e),
        };
        Processed {
            result,
            context: SealContext {
                ledger,
                started_ms,
                correlation_id,
                request_sha256,
            },
        }
    }

    /// Seals `result` off the async runtime: it copies, wipes, hashes and signs megabytes.
    pub async fn seal(&self, result: Result<Rendered, JobError>, c: &SealContext) -> Sealed {
        let (signer, max_reply_bytes, context) =
            (self.signer.clone(), self.limits.max_reply_bytes, c.clone());
        let sealing = move |result| {
            let sealing = Sealing {
                ledger: &context.ledger,
                started_ms: context.started_ms,
                signer: signer.as_deref(),
                correlation_id: context.correlation_id.as_deref(),
                request_sha256: context.request_sha256,
                max_reply_bytes,
            };
            seal(result, &sealing)
        };
        let fallback = sealing.clone();
        match tokio::task::spawn_blocking(move || sealing(result)).await {
            Ok(sealed) => sealed,
            // Sealing only fails by a bug: answer without the outputs rather than not at all.
            Err(_) => fallback(Err(JobError::new(
                ErrorCode::Internal,
                "sealing the reply failed",
            ))),
        }
    }

    /// The whole way: intake, rendering, sealing.
    pub async fn process_one(&self, d: Delivery) -> Sealed {
        let Processed { result, context } = self.process(d).await;
        self.seal(result, &context).await
    }
}

impl Delivery {
    /// A delivery of `body` received now, with well-formed properties (for local rendering).
    pub fn local(body: Vec<u8>, correlation_id: &str) -> Self {
        let ledger = Ledger::new();
        Self {
            body: SecretBuf::new(body, "request.body", &ledger),
            ledger,
            started_ms: now_unix_ms(),
            content_type: Some(crate::protocol::CONTENT_TYPE.into()),
            correlation_id: Some(correlation_id.into()),
            deadline_ms: None,
        }
    }
}
