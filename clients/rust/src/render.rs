//! The typed call: one request in, its outputs or a typed error out, with a deadline, a
//! timeout, resending on what is worth resending, and the receipt checked against the pinned
//! key.

use crate::client::{now_unix_ms, Client, ClientError, RawProps};
use crate::directory::DirectoryError;
use crate::receipt::{AttestationError, Attested, Receipt};
use crate::sealed::{SealError, SealedCall};
use crate::wire::{
    decode_reply, encode_request, ErrorCode, OutputData, Request, Status, SEALED_CONTENT_TYPE,
};
use std::time::Duration;

/// How [`Client::render`] waits and resends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// How long to wait for each attempt's reply.
    pub timeout: Duration,
    /// The job's deadline, as a time from now: a worker that picks the job up later answers
    /// `job.expired` without rendering it. `None`: the timeout (nobody waits longer).
    pub deadline: Option<Duration>,
    /// How many times to send the request again after no reply or a retryable error. A job
    /// is a pure function of its request, so a second copy costs work, never a wrong result.
    pub retries: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            deadline: None,
            retries: 1,
        }
    }
}

/// A rendered job: its images and what the worker wiped.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The images, in the order the request asked for them.
    pub outputs: Vec<OutputData>,
    /// What the worker wiped for the job.
    pub receipt: Receipt,
    /// The verified attestation, when the client has a pinned key.
    pub attested: Option<Attested>,
}

impl Rendered {
    /// The output named `name`.
    pub fn output(&self, name: &str) -> Option<&OutputData> {
        self.outputs.iter().find(|o| o.name == name)
    }
}

/// Why [`Client::render`] returned no images.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The worker answered with an error. `code` is the wire code (a code newer than this
    /// client is kept as text).
    #[error("{code}: {message}")]
    Job {
        /// The dotted code, e.g. `limits.pixels`.
        code: String,
        /// What went wrong (never a value of the request).
        message: String,
        /// Whether the same request may succeed if sent again.
        retryable: bool,
    },
    /// No reply arrived in time, after every attempt.
    #[error("no reply within {0:?}")]
    NoReply(Duration),
    /// The reply does not carry a valid attestation by the pinned key.
    #[error(transparent)]
    Attestation(#[from] AttestationError),
    /// The key directory has no key to seal to now (fetch it again).
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// The request could not be sealed, or its sealed reply does not open (another key, edited
    /// bytes, or a reply to another request).
    #[error("sealed reply: {0}")]
    Sealing(#[from] SealError),
    /// Broker trouble, a refused publish, or a reply that is not v1.
    #[error(transparent)]
    Client(ClientError),
}

impl RenderError {
    /// The error's contract code, when it is one this client knows.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Job { code, .. } => ErrorCode::parse(code),
            _ => None,
        }
    }

    /// Whether trying again later may succeed: a retryable job error, no reply, or broker
    /// trouble. A refused request or a bad attestation is not.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Job { retryable, .. } => *retryable,
            Self::NoReply(_) => true,
            Self::Attestation(_) | Self::Directory(_) | Self::Sealing(_) => false,
            Self::Client(e) => !matches!(e, ClientError::BadReply(_) | ClientError::Config(_)),
        }
    }
}

impl From<ClientError> for RenderError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Timeout(t) => Self::NoReply(t),
            other => Self::Client(other),
        }
    }
}

impl Client {
    /// Sends `request` and returns its images, or the typed reason there are none. With a
    /// pinned key ([`Client::with_pinned_key`]) every reply's attestation is checked first,
    /// error replies included. No reply or a retryable error is tried again up to
    /// `options.retries` times, each time with a fresh correlation id.
    pub async fn render(
        &self,
        request: &Request,
        options: &Options,
    ) -> Result<Rendered, RenderError> {
        let body = encode_request(request);
        let mut attempt = 0;
        loop {
            let result = self.attempt(&body, options).await;
            match result {
                Err(e) if e.retryable() && attempt < options.retries => attempt += 1,
                other => return other,
            }
        }
    }

    async fn attempt(&self, body: &[u8], options: &Options) -> Result<Rendered, RenderError> {
        let id = self.new_correlation_id();
        let deadline = options.deadline.unwrap_or(options.timeout);
        let mut props = RawProps {
            deadline_ms: Some(now_unix_ms().saturating_add(deadline.as_millis() as u64)),
            ..RawProps::request(&id)
        };
        // Sealed to the directory's current key when there is one: what goes on the wire is
        // ciphertext, and only this call's fresh reply key opens the answer.
        let call = match self.directory() {
            Some(directory) => {
                let call = SealedCall::new(&directory, body, now_unix_ms())?;
                props.content_type = Some(SEALED_CONTENT_TYPE.into());
                props.epoch = Some(call.epoch);
                Some(call)
            }
            None => None,
        };
        let wire = call.as_ref().map_or(body, |c| c.sealed.as_slice());
        let rx = self.send_raw(wire, &props).await?;
        let raw = Self::await_raw(rx, options.timeout).await?;
        // A sealed reply attests the opened request; a plaintext one (an error: the worker
        // could not open the request) attests the sealed bytes it received.
        let (bytes, attested_body) = match &call {
            Some(call) => call.open_attested(&raw, body)?,
            None => (raw, body),
        };
        let reply = decode_reply(&bytes).map_err(|e| ClientError::BadReply(e.to_string()))?;
        let attested = match self.pinned_key() {
            Some(key) => Some(reply.verify(key, Some(&id), attested_body)?),
            None => None,
        };
        match (reply.status, reply.error) {
            (Status::Ok, _) => Ok(Rendered {
                outputs: reply.outputs,
                receipt: reply.receipt,
                attested,
            }),
            (Status::Error, Some(e)) => Err(RenderError::Job {
                code: e.code,
                message: e.message,
                retryable: e.retryable,
            }),
            (Status::Error, None) => {
                Err(ClientError::BadReply("an error without a body".into()).into())
            }
        }
    }
}
