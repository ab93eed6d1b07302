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
use crate::keys::{Keyring, OpenError, SealedMode};
use crate::protocol::{ErrorCode, JobError, CONTENT_TYPE, SEALED_CONTENT_TYPE};
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
    /// Whether requests must be, may be, or may not be sealed.
    pub sealed: SealedMode,
    /// The epoch keys sealed requests are opened with (none: sealed requests are refused).
    pub keys: Option<Arc<Keyring>>,
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
    /// Whether the broker delivered it before (a redelivery of a sealed request not yet
    /// answered is not a replay).
    pub redelivered: bool,
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
    reply_to_key: Option<ReplySeal>,
}

/// How the reply to an opened sealed request is sealed, and what its receipt says of it.
#[derive(Debug, Clone)]
struct ReplySeal {
    key: [u8; 32],
    facts: crate::wipe::SealedFacts,
    sealed_sha256: [u8; 32],
}

impl SealContext {
    /// The digest of the sealed request this context's reply answers, if it was sealed.
    pub fn sealed_request(&self) -> Option<[u8; 32]> {
        self.reply_to_key.as_ref().map(|r| r.sealed_sha256)
    }
}

/// What the body turned out to be: plaintext, or a sealed request now opened.
struct Unsealed {
    body: SecretBuf,
    content_type: Option<String>,
    reply: Option<ReplySeal>,
}

fn open_error(e: OpenError) -> JobError {
    match e {
        OpenError::Malformed(what) => JobError::new(
            ErrorCode::RequestMalformed,
            format!("sealed request: {what}: not the v2 envelope"),
        ),
        OpenError::Reseal(message) => JobError::new(ErrorCode::RequestReseal, message),
        OpenError::Replayed => JobError::new(
            ErrorCode::RequestReplayed,
            "this sealed request was already answered; seal the request again to render it again",
        ),
    }
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
    /// A processor that renders in this process on one thread, with no spill directory, no
    /// receipt key and no epoch keys: the local `render` command and the load generator's
    /// kernel timing.
    pub fn local(limits: &Limits, presets: &Presets) -> Self {
        Self {
            executor: Arc::new(crate::render::executor::InProcess::new(limits.clone(), 1)),
            limits: limits.clone(),
            presets: Arc::new(presets.clone()),
            spill: None,
            signer: None,
            sealed: SealedMode::Off,
            keys: None,
        }
    }

    /// Opens a sealed body, or lets a plaintext one through, as the `sealed` mode says.
    fn unseal(
        &self,
        body: SecretBuf,
        content_type: Option<String>,
        redelivered: bool,
    ) -> Result<Unsealed, (JobError, [u8; 32])> {
        let is_sealed = content_type.as_deref() == Some(SEALED_CONTENT_TYPE);
        // A request that is not opened is attested by the digest of the bytes received.
        let refused = |body: SecretBuf, e: JobError| Err((e, crate::wipe::sha256(body.as_slice())));
        match (self.sealed, is_sealed, &self.keys) {
            (SealedMode::Required, false, _) => refused(body, JobError::new(
                ErrorCode::RequestSealedRequired,
                "content_type: this worker takes only sealed (v2) requests; seal the request to the key directory",
            )),
            (_, false, _) => Ok(Unsealed {
                body,
                content_type,
                reply: None,
            }),
            (SealedMode::Off, true, _) | (_, true, None) => refused(body, JobError::new(
                ErrorCode::RequestUnsupportedVersion,
                "content_type: this worker does not take sealed (v2) requests (`sealed = \"off\"`)",
            )),
            (_, true, Some(keys)) => {
                let opened = keys.open(body.as_slice(), redelivered, now_unix_ms());
                // Hashed once: by the keyring when it opens, here only when it does not.
                let received = match &opened {
                    Ok(o) => o.request_sha256,
                    Err(_) => crate::wipe::sha256(body.as_slice()),
                };
                let ledger = body.ledger().clone();
                let mut sealed = body;
                sealed.rename("request.sealed");
                drop(sealed);
                let opened = opened.map_err(|e| (open_error(e), received))?;
                let reply = ReplySeal {
                    key: opened.reply_key,
                    sealed_sha256: opened.request_sha256,
                    facts: crate::wipe::SealedFacts {
                        epoch: opened.epoch,
                        request_sha256: serde_bytes::ByteBuf::from(
                            opened.request_sha256.to_vec(),
                        ),
                        key_erased_by_ms: opened.key_erased_by_ms,
                    },
                };
                let mut plain = opened.body;
                let body = SecretBuf::new(std::mem::take(&mut *plain), "request.body", &ledger);
                Ok(Unsealed {
                    body,
                    content_type: Some(CONTENT_TYPE.into()),
                    reply: Some(reply),
                })
            }
        }
    }

    /// Records that the sealed request of `context` was answered, so a copy is refused.
    pub fn answered(&self, context: &SealContext) {
        if let (Some(keys), Some(digest)) = (&self.keys, context.sealed_request()) {
            keys.answered(&digest);
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
            redelivered,
            ..
        } = d;
        let (limits, spill, job_ledger) = (self.limits.clone(), self.spill.clone(), ledger.clone());
        let presets = self.presets.clone();
        let this = self.clone();
        let intake_task = tokio::task::spawn_blocking(move || {
            if let Err(e) = checks {
                let digest = crate::wipe::sha256(body.as_slice());
                body.wipe();
                return (Err(e), digest, None);
            }
            // A sealed request is opened here, off the runtime, straight into a wiped buffer;
            // the digest the attestation names is the opened (v1) body's.
            let unsealed = match this.unseal(body, content_type, redelivered) {
                Ok(u) => u,
                Err((e, received)) => return (Err(e), received, None),
            };
            let digest = crate::wipe::sha256(unsealed.body.as_slice());
            let spill = spill.as_ref().map(|(dir, threshold)| Spill {
                dir,
                threshold: *threshold,
            });
            let meta = Meta {
                content_type: unsealed.content_type,
                presets,
            };
            let job = intake(unsealed.body, &meta, &limits, spill, &job_ledger);
            crate::wipe::scrub_stack();
            (job, digest, unsealed.reply)
        });
        let (job, request_sha256, reply_to_key) = intake_task.await.unwrap_or_else(|_| {
            let crashed = JobError::new(ErrorCode::Internal, "intake crashed on this job");
            (Err(crashed), [0; 32], None)
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
                reply_to_key,
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
                sealed: context.reply_to_key.as_ref().map(|r| &r.facts),
            };
            let mut sealed = seal(result, &sealing);
            // The whole reply — outputs, receipt, attestation — sealed to the request's reply
            // key and bound to the sealed request; the plaintext body is wiped.
            if let Some(to) = &context.reply_to_key {
                let ciphertext = midnit_client::sealed::seal_reply_to_digest(
                    &to.key,
                    &to.sealed_sha256,
                    sealed.body.as_slice(),
                )
                .expect("the reply key was checked when the request was opened");
                let plain = std::mem::replace(
                    &mut sealed.body,
                    SecretBuf::new(ciphertext, "reply.sealed", &context.ledger),
                );
                drop(plain);
            }
            crate::wipe::scrub_stack();
            sealed
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
            redelivered: false,
        }
    }
}
