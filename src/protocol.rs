//! The wire contract, version 1: what the backend sends and what it gets back.
//!
//! The wire types are the `midnit-client` crate's (`clients/rust/src/wire.rs`), so a backend
//! and the worker build and read the same shapes; this module adds the worker's side of a
//! failure ([`JobError`]). `docs/PROTOCOL.md` describes the contract for other languages and
//! `docs/contract/midnit.cddl` is its machine-readable form; the contract tests keep them in
//! step.

pub use midnit_client::receipt::AttestationError;
pub use midnit_client::wire::{
    decode_reply, encode_request, ErrorBody, ErrorCode, OutputData, OutputSpec, Reply, Request,
    Status, CONTENT_TYPE, DEADLINE_HEADER, DIRECT_REPLY_TO, EPOCH_HEADER, SEALED_CONTENT_TYPE,
    SENT_HEADER, VERSION,
};

/// A job failure as it goes on the wire: a code and a message (never payload bytes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct JobError {
    /// The stable code.
    pub code: ErrorCode,
    /// The human-readable message.
    pub message: String,
    /// The renderer died on this job (a crash, not a limit): the job may be tried again
    /// elsewhere, up to the delivery limit, before it is answered and dead-lettered.
    pub crashed: bool,
}

impl JobError {
    /// A failure with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            crashed: false,
        }
    }

    /// The renderer crashed on the job: `internal`, marked as a crash.
    pub fn crashed(message: impl Into<String>) -> Self {
        Self {
            crashed: true,
            ..Self::new(ErrorCode::Internal, message)
        }
    }

    /// The wire body of this failure.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code.as_str().into(),
            message: self.message.clone(),
            retryable: self.code.retryable(),
        }
    }
}
