//! The fleet's key state: the ratchet's chain value at one epoch, the epoch clock (when epoch
//! 0 began and how long an epoch lasts) and the long-term directory signing key. One small
//! JSON file, mode 0600, shared by every worker of a fleet:
//!
//! ```json
//! {"v": 1, "epoch": 12, "chain": "<64 hex>", "origin_ms": 1764633600000,
//!  "epoch_secs": 3600, "directory_key": "<64 hex>"}
//! ```
//!
//! Nothing in it opens a past epoch: the chain value of epoch `e` derives the keys of `e` and
//! every later epoch, and no earlier one (HKDF is one-way). `keys rotate` moves the stored copy
//! forward and replaces the file, so the stored copy stops opening the epoch it leaves.

use midnit_client::sealed::EpochChain;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Why the key state cannot be read or written. Names the file and the field, never a value.
#[derive(Debug, thiserror::Error)]
#[error("key state {path}: {message}")]
pub struct StateError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub message: String,
}

/// The shortest epoch allowed, in seconds.
pub const MIN_EPOCH_SECS: u64 = 1;

/// The fleet's key state.
pub struct KeyState {
    /// The epoch the chain value is at.
    pub epoch: u64,
    /// The ratchet's chain value at `epoch`.
    pub chain: Zeroizing<[u8; 32]>,
    /// When epoch 0 began (ms since the Unix epoch).
    pub origin_ms: u64,
    /// How long an epoch lasts.
    pub epoch_secs: u64,
    /// The ed25519 seed of the directory signing key.
    pub directory_key: Zeroizing<[u8; 32]>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    v: u32,
    epoch: u64,
    chain: String,
    origin_ms: u64,
    epoch_secs: u64,
    directory_key: String,
}

fn random32() -> std::io::Result<Zeroizing<[u8; 32]>> {
    let mut out = Zeroizing::new([0u8; 32]);
    std::fs::File::open("/dev/urandom")?.read_exact(out.as_mut())?;
    Ok(out)
}

impl KeyState {
    /// A new fleet state: random chain and directory key, epoch 0 beginning at `now_ms`.
    pub fn generate(epoch_secs: u64, now_ms: u64) -> std::io::Result<Self> {
        Ok(Self {
            epoch: 0,
            chain: random32()?,
            origin_ms: now_ms,
            epoch_secs: epoch_secs.max(MIN_EPOCH_SECS),
            directory_key: random32()?,
        })
    }

    /// Reads the state from `path`.
    pub fn read(path: &Path) -> Result<Self, StateError> {
        let err = |message: String| StateError {
            path: path.into(),
            message,
        };
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?);
        // serde_json's errors can quote the input: only the line is kept.
        let parsed: File = serde_json::from_str(&text)
            .map_err(|e| err(format!("not a key state file (line {})", e.line())))?;
        if parsed.v != 1 {
            return Err(err("v: must be 1".into()));
        }
        if parsed.epoch_secs < MIN_EPOCH_SECS {
            return Err(err(format!(
                "epoch_secs: must be at least {MIN_EPOCH_SECS}"
            )));
        }
        let chain = Zeroizing::new(parsed.chain);
        let directory = Zeroizing::new(parsed.directory_key);
        let chain = midnit_client::parse_hex::<32>(&chain)
            .ok_or_else(|| err("chain: expected 64 hex digits".into()))?;
        let directory_key = midnit_client::parse_hex::<32>(&directory)
            .ok_or_else(|| err("directory_key: expected 64 hex digits".into()))?;
        Ok(Self {
            epoch: parsed.epoch,
            chain: Zeroizing::new(chain),
            origin_ms: parsed.origin_ms,
            epoch_secs: parsed.epoch_secs,
            directory_key: Zeroizing::new(directory_key),
        })
    }

    /// Replaces the file at `path` with this state: written to a new 0600 file beside it,
    /// synced, renamed over the old one, and the directory synced, so a reader sees the old
    /// state or the new one, never a mix.
    pub fn write(&self, path: &Path) -> Result<(), StateError> {
        let err = |message: String| StateError {
            path: path.into(),
            message,
        };
        let text = Zeroizing::new(
            serde_json::to_string(&File {
                v: 1,
                epoch: self.epoch,
                chain: midnit_client::hex(self.chain.as_ref()),
                origin_ms: self.origin_ms,
                epoch_secs: self.epoch_secs,
                directory_key: midnit_client::hex(self.directory_key.as_ref()),
            })
            .expect("a key state serialises"),
        );
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
        let dir = dir.unwrap_or(Path::new("."));
        let mut tmp = tempfile::Builder::new()
            .prefix(".midnit-keys")
            .tempfile_in(dir)
            .map_err(|e| err(e.to_string()))?;
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| err(e.to_string()))?;
        tmp.write_all(text.as_bytes())
            .and_then(|()| tmp.write_all(b"\n"))
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| err(e.to_string()))?;
        tmp.persist(path).map_err(|e| err(e.error.to_string()))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// The epoch the clock is in at `now_ms`.
    pub fn epoch_at(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.origin_ms) / (self.epoch_secs * 1000)
    }

    /// When epoch `e` begins (ms since the Unix epoch).
    pub fn start_ms(&self, e: u64) -> u64 {
        self.origin_ms
            .saturating_add(e.saturating_mul(self.epoch_secs * 1000))
    }

    /// The chain of this state, at its epoch.
    pub fn chain(&self) -> EpochChain {
        EpochChain::new(self.epoch, *self.chain)
    }

    /// Moves the state forward to `epoch` (no-op if it is there or later), overwriting the
    /// chain value: the result cannot recompute any epoch it passed.
    pub fn forward_to(&mut self, epoch: u64) {
        if epoch <= self.epoch {
            return;
        }
        let mut chain = self.chain();
        while chain.epoch() < epoch {
            chain.advance();
        }
        self.chain.copy_from_slice(chain.chain());
        self.epoch = epoch;
    }

    /// The directory key's public half (what the app pins).
    pub fn directory_public_key(&self) -> [u8; 32] {
        ed25519_dalek::SigningKey::from_bytes(&self.directory_key)
            .verifying_key()
            .to_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_round_trips_and_moves_only_forward() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let mut state = KeyState::generate(60, 1_000).unwrap();
        state.write(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let back = KeyState::read(&path).unwrap();
        assert_eq!(*back.chain, *state.chain);
        assert_eq!(back.epoch_at(1_000 + 60_000 * 3 + 5), 3);
        let first = state.chain().keys().public_key();
        state.forward_to(2);
        assert_eq!(state.epoch, 2);
        let mut expected = back.chain();
        expected.advance();
        expected.advance();
        assert_eq!(
            state.chain().keys().public_key(),
            expected.keys().public_key()
        );
        state.forward_to(1);
        assert_eq!(state.epoch, 2, "never backwards");
        assert_ne!(state.chain().keys().public_key(), first);
    }

    #[test]
    fn a_bad_file_names_the_field_not_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        std::fs::write(
            &path,
            r#"{"v":1,"epoch":0,"chain":"secretsecret","origin_ms":0,"epoch_secs":60,"directory_key":"00"}"#,
        )
        .unwrap();
        let e = KeyState::read(&path).err().unwrap().to_string();
        assert!(e.contains("chain"), "{e}");
        assert!(!e.contains("secretsecret"), "{e}");
    }
}
