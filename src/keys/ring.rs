//! The worker's keyring: the epoch keys it may open sealed requests with, moved forward by the
//! epoch clock, the past epoch's key erased once its grace period ends, the refusal of
//! replays, and the signed key directory it serves.
//!
//! At epoch `e` the keyring holds, in its [`Vault`]: the chain value `c[e]`, the private keys
//! of `e` and `e + 1` (a client whose clock is a little ahead may seal to the next epoch), the
//! private key of `e - 1` until `start(e) + grace`, and the directory signing key. Nothing
//! else: no older chain value, no older key. Moving to `e + 1` overwrites `c[e]` in place.

use super::state::{KeyState, StateError};
use super::vault::Vault;
use midnit_client::directory::{DirectoryKey, KeyDirectory, SUITE};
use midnit_client::sealed::{self, EpochChain, EpochKeys, SealError};
use serde_bytes::ByteBuf;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;
use zeroize::Zeroizing;

const CHAIN: usize = 0;
const CURRENT: usize = 1;
const NEXT: usize = 2;
const PREVIOUS: usize = 3;
const DIRECTORY: usize = 4;

/// A sealed request, opened.
pub struct Opened {
    /// The v1 request body (wiped when dropped).
    pub body: Zeroizing<Vec<u8>>,
    /// The key the reply is sealed to.
    pub reply_key: [u8; 32],
    /// The epoch it was sealed to.
    pub epoch: u64,
    /// SHA-256 of the sealed bytes (binds the reply; names the request in the receipt).
    pub request_sha256: [u8; 32],
    /// When that epoch's key is erased at the latest.
    pub key_erased_by_ms: u64,
}

/// Why a sealed request was not opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// Not the v2 envelope.
    Malformed(&'static str),
    /// The epoch's key is not held (erased, or not yet known), or the request does not open
    /// with it: the client must reseal to the current key.
    Reseal(String),
    /// Already answered.
    Replayed,
}

/// What the keyring says of itself (for logs and tests; no key material).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyringStatus {
    /// The current epoch.
    pub epoch: u64,
    /// The past epoch still held, if any.
    pub previous: Option<u64>,
    /// Whether the key page is locked in RAM.
    pub locked: bool,
    /// Requests remembered against replay.
    pub remembered: usize,
    /// Past epochs' keys erased so far.
    pub erased: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
        inode: m.ino(),
    })
}

struct Seen {
    epoch: u64,
    answered: bool,
}

/// Sealed requests seen in the epochs still held, by digest: refused if seen again, except as
/// the broker's redelivery of one not yet answered.
struct Replay {
    seen: HashMap<[u8; 32], Seen>,
    order: VecDeque<[u8; 32]>,
    cap: usize,
}

impl Replay {
    fn claim(&mut self, digest: [u8; 32], epoch: u64, redelivered: bool) -> bool {
        match self.seen.get(&digest) {
            Some(s) if s.answered || !redelivered => false,
            Some(_) => true,
            None => {
                self.seen.insert(
                    digest,
                    Seen {
                        epoch,
                        answered: false,
                    },
                );
                self.order.push_back(digest);
                while self.order.len() > self.cap {
                    if let Some(old) = self.order.pop_front() {
                        self.seen.remove(&old);
                    }
                }
                true
            }
        }
    }

    fn forget_before(&mut self, epoch: u64) {
        self.seen.retain(|_, s| s.epoch >= epoch);
        let seen = &self.seen;
        self.order.retain(|d| seen.contains_key(d));
    }
}

struct Inner {
    vault: Vault,
    epoch: u64,
    previous: Option<u64>,
    origin_ms: u64,
    epoch_ms: u64,
    public: [[u8; 32]; 2],
    stamp: Option<Stamp>,
    replay: Replay,
    erased: u64,
}

impl Inner {
    fn start_ms(&self, e: u64) -> u64 {
        self.origin_ms
            .saturating_add(e.saturating_mul(self.epoch_ms))
    }

    fn clock_epoch(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.origin_ms) / self.epoch_ms
    }

    /// Installs `state` (already at the clock's epoch) as the current keys.
    fn install(&mut self, state: &KeyState) {
        let chain = state.chain();
        let current = chain.keys();
        let mut next = EpochChain::new(chain.epoch(), *chain.chain());
        next.advance();
        let next_keys = next.keys();
        self.vault.slot_mut(CHAIN).copy_from_slice(chain.chain());
        self.vault
            .slot_mut(CURRENT)
            .copy_from_slice(current.private_key().as_ref());
        self.vault
            .slot_mut(NEXT)
            .copy_from_slice(next_keys.private_key().as_ref());
        self.vault
            .slot_mut(DIRECTORY)
            .copy_from_slice(state.directory_key.as_ref());
        self.vault.erase(PREVIOUS);
        self.previous = None;
        self.epoch = chain.epoch();
        self.public = [current.public_key(), next_keys.public_key()];
        self.origin_ms = state.origin_ms;
        self.epoch_ms = state.epoch_secs * 1000;
    }

    /// One epoch forward: current → previous, next → current, the chain value overwritten.
    fn advance(&mut self) {
        let mut chain = EpochChain::new(self.epoch, *self.vault.slot(CHAIN));
        chain.advance();
        let mut after = EpochChain::new(chain.epoch(), *chain.chain());
        after.advance();
        let after_keys = after.keys();
        let current = *self.vault.slot(CURRENT);
        self.vault.slot_mut(PREVIOUS).copy_from_slice(&current);
        let next = *self.vault.slot(NEXT);
        self.vault.slot_mut(CURRENT).copy_from_slice(&next);
        self.vault
            .slot_mut(NEXT)
            .copy_from_slice(after_keys.private_key().as_ref());
        self.vault.slot_mut(CHAIN).copy_from_slice(chain.chain());
        self.previous = Some(self.epoch);
        self.epoch += 1;
        self.public = [self.public[1], after_keys.public_key()];
    }

    fn erase_previous(&mut self) {
        self.vault.erase(PREVIOUS);
        if let Some(p) = self.previous.take() {
            self.replay.forget_before(p + 1);
            self.erased += 1;
        }
    }
}

/// The worker's epoch keys.
pub struct Keyring {
    inner: Mutex<Inner>,
    grace_ms: u64,
    source: Option<PathBuf>,
}

/// What a [`Keyring::tick`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ticked {
    /// Epochs moved forward.
    pub advanced: u64,
    /// The past epoch whose key was erased.
    pub erased: Option<u64>,
}

impl Keyring {
    /// A keyring from `state` (read from `source`, which it then follows, or generated),
    /// keeping a past epoch's key `grace_secs` after the epoch ends, remembering up to
    /// `replay_entries` requests against replay.
    pub fn new(
        mut state: KeyState,
        source: Option<PathBuf>,
        grace_secs: u64,
        replay_entries: usize,
        now_ms: u64,
    ) -> std::io::Result<Self> {
        let mut inner = Inner {
            vault: Vault::new()?,
            epoch: 0,
            previous: None,
            origin_ms: 0,
            epoch_ms: 1000,
            public: [[0; 32]; 2],
            stamp: source.as_deref().and_then(stamp),
            replay: Replay {
                seen: HashMap::new(),
                order: VecDeque::new(),
                cap: replay_entries.max(1),
            },
            erased: 0,
        };
        state.forward_to(state.epoch_at(now_ms));
        inner.install(&state);
        drop(state);
        scrub_stack();
        Ok(Self {
            inner: Mutex::new(inner),
            grace_ms: grace_secs.saturating_mul(1000),
            source,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves to the clock's epoch and erases the past key whose grace period is over.
    pub fn tick(&self, now_ms: u64) -> Ticked {
        let mut ticked = Ticked::default();
        {
            let mut inner = self.lock();
            while inner.clock_epoch(now_ms) > inner.epoch {
                inner.advance();
                ticked.advanced += 1;
            }
            if let Some(p) = inner.previous {
                let held_until = inner.start_ms(p + 1).saturating_add(self.grace_ms);
                if now_ms >= held_until || inner.epoch > p + 1 {
                    inner.erase_previous();
                    ticked.erased = Some(p);
                }
            }
        }
        if ticked != Ticked::default() {
            scrub_stack();
        }
        ticked
    }

    /// Reads the state file again if it changed; a state that is not this keyring's (the
    /// fleet's state was initialised again) replaces the keys at once. Returns whether it did.
    pub fn follow(&self, now_ms: u64) -> Result<bool, StateError> {
        let Some(path) = &self.source else {
            return Ok(false);
        };
        let now_stamp = stamp(path);
        if now_stamp == self.lock().stamp {
            return Ok(false);
        }
        let mut state = KeyState::read(path)?;
        let mut inner = self.lock();
        inner.stamp = now_stamp;
        state.forward_to(inner.epoch.max(state.epoch_at(now_ms)));
        // The same fleet's state, maybe ahead of this worker's clock: this worker's chain,
        // moved to the file's epoch, is the file's chain.
        let mut ours = EpochChain::new(inner.epoch, *inner.vault.slot(CHAIN));
        while ours.epoch() < state.epoch {
            ours.advance();
        }
        let same = ours.chain() == state.chain.as_ref()
            && *state.directory_key == *inner.vault.slot(DIRECTORY);
        drop(ours);
        if !same {
            inner.install(&state);
            inner.replay.forget_before(u64::MAX);
        }
        drop(inner);
        drop(state);
        scrub_stack();
        Ok(!same)
    }

    /// Opens `sealed`: the epoch must be held, the bytes must open with its key, and the
    /// request must not have been answered before (a `redelivered` one not yet answered is
    /// the broker's redelivery, not a replay).
    pub fn open(&self, sealed: &[u8], redelivered: bool, now_ms: u64) -> Result<Opened, OpenError> {
        self.tick(now_ms);
        let epoch = sealed::request_epoch(sealed).map_err(|e| match e {
            SealError::Malformed(what) => OpenError::Malformed(what),
            _ => OpenError::Malformed("request"),
        })?;
        let (private, erased_by) = {
            let inner = self.lock();
            let slot = if epoch == inner.epoch {
                CURRENT
            } else if epoch == inner.epoch + 1 {
                NEXT
            } else if Some(epoch) == inner.previous {
                PREVIOUS
            } else {
                return Err(OpenError::Reseal(format!(
                    "epoch: the key of epoch {epoch} is not held (this worker is at epoch {}); fetch the key directory and seal again",
                    inner.epoch
                )));
            };
            let private = Zeroizing::new(*inner.vault.slot(slot));
            (
                private,
                inner.start_ms(epoch + 1).saturating_add(self.grace_ms),
            )
        };
        let opened = EpochKeys::from_private(epoch, &private)
            .map_err(|_| OpenError::Malformed("key"))
            .and_then(|keys| {
                sealed::open_request(&keys, sealed).map_err(|e| match e {
                    SealError::Malformed(what) => OpenError::Malformed(what),
                    _ => OpenError::Reseal(format!(
                        "the request does not open with the key of epoch {epoch} (sealed to another key, or altered); fetch the key directory and seal again"
                    )),
                })
            });
        drop(private);
        scrub_stack();
        let opened = opened?;
        let digest = crate::wipe::sha256(sealed);
        if !self.lock().replay.claim(digest, epoch, redelivered) {
            return Err(OpenError::Replayed);
        }
        Ok(Opened {
            body: opened.body,
            reply_key: opened.reply_key,
            epoch,
            request_sha256: digest,
            key_erased_by_ms: erased_by,
        })
    }

    /// Records that the request with this digest was answered: it is refused from now on.
    pub fn answered(&self, request_sha256: &[u8; 32]) {
        if let Some(s) = self.lock().replay.seen.get_mut(request_sha256) {
            s.answered = true;
        }
    }

    /// The key directory: the current and next epochs' public keys with their windows, signed
    /// by the directory key, valid until the next epoch ends.
    pub fn directory(&self, now_ms: u64) -> Vec<u8> {
        self.tick(now_ms);
        let inner = self.lock();
        let e = inner.epoch;
        let key = |i: usize, epoch: u64| DirectoryKey {
            epoch,
            public_key: ByteBuf::from(inner.public[i].to_vec()),
            not_before_ms: inner.start_ms(epoch),
            not_after_ms: inner.start_ms(epoch + 1),
        };
        let directory = KeyDirectory {
            issued_ms: now_ms,
            expires_ms: inner.start_ms(e + 2),
            suite: SUITE.into(),
            keys: vec![key(0, e), key(1, e + 1)],
        };
        let signer = ed25519_dalek::SigningKey::from_bytes(inner.vault.slot(DIRECTORY));
        let signed = directory.sign(&signer);
        drop(signer);
        drop(inner);
        scrub_stack();
        signed
    }

    /// The directory key's public half.
    pub fn directory_public_key(&self) -> [u8; 32] {
        ed25519_dalek::SigningKey::from_bytes(self.lock().vault.slot(DIRECTORY))
            .verifying_key()
            .to_bytes()
    }

    /// Where the keyring stands.
    pub fn status(&self) -> KeyringStatus {
        let inner = self.lock();
        KeyringStatus {
            epoch: inner.epoch,
            previous: inner.previous,
            locked: inner.vault.locked(),
            remembered: inner.replay.seen.len(),
            erased: inner.erased,
        }
    }
}

use crate::wipe::scrub_stack;

#[cfg(test)]
mod tests {
    use super::*;
    use midnit_client::sealed::{seal_request, ReplyKeys};

    const MIN: u64 = 60_000;

    fn state() -> KeyState {
        KeyState {
            epoch: 0,
            chain: Zeroizing::new([3; 32]),
            origin_ms: 0,
            epoch_secs: 60,
            directory_key: Zeroizing::new([4; 32]),
        }
    }

    fn seal(epoch: u64) -> Vec<u8> {
        let mut chain = state().chain();
        while chain.epoch() < epoch {
            chain.advance();
        }
        let pk = chain.keys().public_key();
        seal_request(epoch, &pk, b"body", &ReplyKeys::generate()).unwrap()
    }

    #[test]
    fn the_clock_moves_the_keys_and_the_past_key_dies_after_its_grace() {
        let ring = Keyring::new(state(), None, 30, 100, 10).unwrap();
        assert_eq!(ring.status().epoch, 0);
        let old = seal(0);
        let early = seal(1);
        assert!(
            ring.open(&early, false, 10).is_ok(),
            "the next epoch opens early"
        );
        ring.tick(MIN + 1);
        assert_eq!(ring.status().epoch, 1);
        assert_eq!(ring.status().previous, Some(0));
        let opened = ring.open(&old, false, MIN + 1).unwrap();
        assert_eq!(opened.body.as_slice(), b"body");
        assert_eq!(opened.key_erased_by_ms, MIN + 30_000);
        let t = ring.tick(MIN + 30_000);
        assert_eq!(t.erased, Some(0));
        let again = seal(0);
        assert!(matches!(
            ring.open(&again, false, MIN + 30_000),
            Err(OpenError::Reseal(_))
        ));
        assert!(matches!(
            ring.open(&seal(5), false, MIN + 30_000),
            Err(OpenError::Reseal(_))
        ));
    }

    #[test]
    fn a_request_is_refused_once_answered_but_a_redelivery_before_that_opens() {
        let ring = Keyring::new(state(), None, 30, 100, 10).unwrap();
        let sealed = seal(0);
        let first = ring.open(&sealed, false, 10).unwrap();
        assert_eq!(
            ring.open(&sealed, false, 10).err(),
            Some(OpenError::Replayed),
            "a second copy while the first is in flight"
        );
        assert!(
            ring.open(&sealed, true, 10).is_ok(),
            "the broker's redelivery"
        );
        ring.answered(&first.request_sha256);
        assert_eq!(
            ring.open(&sealed, true, 10).err(),
            Some(OpenError::Replayed)
        );
    }

    #[test]
    fn the_directory_is_signed_and_names_the_current_and_next_keys() {
        let ring = Keyring::new(state(), None, 30, 100, 10).unwrap();
        let pinned = ring.directory_public_key();
        let dir = KeyDirectory::verify(&ring.directory(10), &pinned, 10).unwrap();
        assert_eq!(dir.keys.len(), 2);
        assert_eq!(dir.keys[0].epoch, 0);
        assert_eq!(
            dir.keys[0].public_key.as_slice(),
            state().chain().keys().public_key()
        );
        assert_eq!(dir.key_for(10).unwrap().0, 0);
        assert_eq!(dir.key_for(MIN + 1).unwrap().0, 1);
        assert_eq!(dir.expires_ms, 2 * MIN);
    }

    #[test]
    fn the_keyring_follows_its_state_file_and_takes_a_new_fleet_state_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        state().write(&path).unwrap();
        let ring = Keyring::new(
            KeyState::read(&path).unwrap(),
            Some(path.clone()),
            30,
            100,
            10,
        )
        .unwrap();
        assert!(!ring.follow(10).unwrap(), "unchanged");
        // The same fleet's state, rotated: nothing to replace.
        let mut rotated = state();
        rotated.forward_to(1);
        std::thread::sleep(std::time::Duration::from_millis(20));
        rotated.write(&path).unwrap();
        assert!(!ring.follow(10).unwrap());
        assert!(ring.open(&seal(0), false, 10).is_ok());
        // Another fleet state (made again): its keys replace the old ones at once.
        let other = KeyState {
            chain: Zeroizing::new([9; 32]),
            ..state()
        };
        other.write(&path).unwrap();
        assert!(ring.follow(10).unwrap());
        assert!(matches!(
            ring.open(&seal(0), false, 10),
            Err(OpenError::Reseal(_))
        ));
        let pk = other.chain().keys().public_key();
        let sealed = seal_request(0, &pk, b"body", &ReplyKeys::generate()).unwrap();
        assert!(ring.open(&sealed, false, 10).is_ok());
        // An unreadable file keeps the keys held.
        std::fs::write(&path, "not json").unwrap();
        assert!(ring.follow(10).is_err());
        assert_eq!(ring.status().epoch, 0);
    }

    #[test]
    fn an_altered_request_is_answered_reseal_and_garbage_malformed() {
        let ring = Keyring::new(state(), None, 30, 100, 10).unwrap();
        let mut sealed = seal(0);
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(matches!(
            ring.open(&sealed, false, 10),
            Err(OpenError::Reseal(_))
        ));
        assert!(matches!(
            ring.open(b"\x01\x02", false, 10),
            Err(OpenError::Malformed(_))
        ));
    }
}
