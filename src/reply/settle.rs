//! The **ack decision**: what becomes of a delivery — acknowledged, requeued, or acknowledged
//! with a dead-letter record — decided in one pure function from what happened to it.

use crate::protocol::ErrorCode;

/// Which delivery of a job this is, and how many a job that crashes its renderer gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// This delivery's number, from 1.
    pub number: u64,
    /// The last delivery allowed.
    pub limit: u64,
}

impl Attempt {
    /// Whether no further delivery of this job is allowed.
    pub fn is_last(&self) -> bool {
        self.number >= self.limit
    }
}

/// What becomes of a delivery once it has been dealt with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// Done: acknowledge it.
    Ack,
    /// Put it back for another try (another delivery, maybe on another worker).
    Requeue,
    /// Acknowledge it and leave a record of why in the dead-letter queue.
    DeadLetter(Reason),
}

/// Why a delivery was dead-lettered (the record's `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// It had no usable `reply_to`: nobody to answer.
    NoReplyTo,
    /// Its renderer crashed on every attempt; it was answered `internal`.
    Crashed,
    /// Its reply could not be published, however often tried.
    Unpublishable,
}

impl Reason {
    /// The record's wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoReplyTo => "no_reply_to",
            Self::Crashed => "renderer_crashed",
            Self::Unpublishable => "reply_unpublishable",
        }
    }
}

/// How publishing the answer went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Nothing was published: there was nobody to answer, or an answer must wait for a
    /// later attempt.
    Nothing,
    /// The reply was confirmed (or returned because the requester is gone).
    Reply,
    /// The reply could not be published, but a short error reply was.
    Fallback,
    /// Neither could be published.
    Failed,
}

/// The one place that decides what becomes of a delivery: from whether it had someone to
/// answer, whether its renderer crashed, whether this is its last allowed attempt, and what
/// was published.
pub fn decide(
    has_reply_to: bool,
    crashed: bool,
    last_attempt: bool,
    published: Published,
) -> Settlement {
    use Settlement::*;
    match (has_reply_to, crashed, last_attempt, published) {
        (false, ..) => DeadLetter(Reason::NoReplyTo),
        // Maybe the job, maybe the machine: a fresh renderer on another delivery.
        (true, true, false, Published::Nothing) => Requeue,
        (true, _, false, Published::Failed) => Requeue,
        (true, _, true, Published::Failed) => DeadLetter(Reason::Unpublishable),
        (true, _, _, Published::Fallback) => DeadLetter(Reason::Unpublishable),
        (true, true, _, _) => DeadLetter(Reason::Crashed),
        (true, false, _, _) => Ack,
    }
}

/// What the dead-letter queue keeps of a job: what happened, never its body.
#[derive(Debug, serde::Serialize)]
pub struct DeadLetterRecord<'a> {
    /// Why it was given up on.
    pub reason: &'static str,
    /// The request's correlation id.
    pub correlation_id: Option<&'a str>,
    /// The code it was answered with, if any.
    pub code: Option<&'static str>,
    /// The size of its body.
    pub body_bytes: usize,
    /// Which delivery it was.
    pub attempt: u64,
    /// When, in ms since the Unix epoch.
    pub at_ms: u64,
}

impl DeadLetterRecord<'_> {
    /// The record as published: JSON.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a record is plain data")
    }

    /// A record of a job given up on for `reason`.
    pub fn new<'a>(
        reason: Reason,
        correlation_id: Option<&'a str>,
        code: Option<ErrorCode>,
        body_bytes: usize,
        attempt: Attempt,
    ) -> DeadLetterRecord<'a> {
        DeadLetterRecord {
            reason: reason.as_str(),
            correlation_id,
            code: code.map(ErrorCode::as_str),
            body_bytes,
            attempt: attempt.number,
            at_ms: crate::wipe::now_unix_ms(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settlement_of_every_case_is_decided_in_one_table() {
        use Published::*;
        use Reason::*;
        use Settlement::*;
        let table = [
            // (reply_to, crashed, last, published) -> settlement
            ((false, false, false, Nothing), DeadLetter(NoReplyTo)),
            ((false, true, true, Nothing), DeadLetter(NoReplyTo)),
            ((true, true, false, Nothing), Requeue),
            ((true, false, false, Reply), Ack),
            ((true, false, true, Reply), Ack),
            ((true, true, true, Reply), DeadLetter(Crashed)),
            ((true, false, false, Failed), Requeue),
            ((true, true, false, Failed), Requeue),
            ((true, false, true, Failed), DeadLetter(Unpublishable)),
            ((true, false, false, Fallback), DeadLetter(Unpublishable)),
            ((true, true, true, Fallback), DeadLetter(Unpublishable)),
        ];
        for ((r, c, l, p), want) in table {
            assert_eq!(decide(r, c, l, p), want, "{r} {c} {l} {p:?}");
        }
    }
}
