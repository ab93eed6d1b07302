//! Sealed jobs' keys (contract v2): the fleet's key state ([`state`]), the locked page key
//! material lives in ([`vault`]), and the worker's keyring ([`ring`]) that follows the epoch
//! clock, erases past keys after their grace period, refuses replays and signs the key
//! directory. The sealing itself (HPKE, the ratchet, the directory's shape) is the client
//! crate's, so both sides share one implementation.

pub mod ring;
pub mod state;
pub mod vault;

pub use ring::{Keyring, KeyringStatus, OpenError, Opened, Ticked};
pub use state::{KeyState, StateError};

use crate::settings::Setting;
use std::path::PathBuf;

/// Whether a worker takes sealed (v2) requests, plaintext (v1) ones, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedMode {
    /// Only sealed requests; a plaintext one is answered `request.sealed_required`.
    Required,
    /// Both.
    Optional,
    /// Only plaintext; a sealed one is answered `request.unsupported_version`.
    Off,
}

impl std::str::FromStr for SealedMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "required" => Ok(Self::Required),
            "optional" => Ok(Self::Optional),
            "off" => Ok(Self::Off),
            _ => Err("must be required, optional or off".into()),
        }
    }
}

impl Setting for SealedMode {
    fn parse_setting(text: &str) -> Result<Self, String> {
        text.trim().parse()
    }
}

crate::settings! {
    /// Sealed jobs and their keys (the `[keys]` section).
    pub struct KeySettings in "keys" {
        /// `required`, `optional` or `off`.
        sealed: SealedMode = SealedMode::Optional, "`optional`",
            "`required`: only sealed (v2) requests, plaintext ones answered `request.sealed_required` (production); `optional`: both; `off`: plaintext only";
        /// The fleet's key state file (`midnit-worker keys init`); followed while running.
        key_state_file: Option<PathBuf> = None, "generated at start",
            "the fleet's key state (`keys init`, kept current by `keys rotate`); without it a worker makes a state of its own at start, for itself alone, and logs its directory key";
        /// Seconds a past epoch's key is kept after the epoch ends.
        epoch_grace_secs: u64 = 900, "900",
            "how long a past epoch's key is kept after the epoch ends, then erased; must exceed the longest deadline and queue TTL a job can have, and be shorter than an epoch";
        /// How often the key state file is checked for changes, in seconds.
        key_follow_secs: u64 = 5, "5", "how often the key state file is read again if it changed";
        /// Sealed requests remembered to refuse replays.
        replay_entries: usize = 1_000_000, "1000000",
            "sealed requests remembered (per worker, for the epochs it holds) to refuse replays";
        /// Epoch length of the state a worker makes for itself when no file is given.
        ephemeral_epoch_secs: u64 = 3600, "3600",
            "epoch length of the state a worker without `key_state_file` makes for itself";
    }
}
