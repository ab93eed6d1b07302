//! `keys init | rotate | directory`: the fleet's key state from the command line, and the
//! key directory a sealed `submit` seals to.

use crate::keys::{KeyState, Keyring};
use crate::wipe::now_unix_ms;
use midnit_client::KeyDirectory;
use std::path::Path;

/// What `keys init` is asked to do.
pub struct Init<'a> {
    /// Where the state goes.
    pub path: &'a Path,
    /// How long an epoch lasts.
    pub epoch_secs: u64,
    /// Replace an existing state.
    pub force: bool,
    /// Leave an existing state as it is (and succeed).
    pub if_missing: bool,
    /// The long-term directory key's seed (64 hex digits), kept apart from the state so the
    /// key the app pins survives a state made again (default: a new random key).
    pub directory_key_file: Option<&'a Path>,
}

/// `keys init`: a new key state (refused if one is there, unless `force` or `if_missing`).
/// Returns the directory public key, which clients pin, and whether a state was written.
pub fn init(i: &Init<'_>) -> anyhow::Result<([u8; 32], bool)> {
    if i.path.exists() && !i.force {
        anyhow::ensure!(
            i.if_missing,
            "{} exists: a fleet has one key state (--force replaces it, and retires every key it held)",
            i.path.display()
        );
        return Ok((KeyState::read(i.path)?.directory_public_key(), false));
    }
    anyhow::ensure!(i.epoch_secs >= 2, "--epoch-secs must be at least 2");
    let mut state = KeyState::generate(i.epoch_secs, now_unix_ms())?;
    if let Some(file) = i.directory_key_file {
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(file)
                .map_err(|e| anyhow::anyhow!("--directory-key-file {}: {e}", file.display()))?,
        );
        let seed = midnit_client::parse_hex::<32>(text.trim()).ok_or_else(|| {
            anyhow::anyhow!(
                "--directory-key-file {}: expected 64 hex digits",
                file.display()
            )
        })?;
        state.directory_key = zeroize::Zeroizing::new(seed);
    }
    state.write(i.path)?;
    Ok((state.directory_public_key(), true))
}

/// `keys rotate`: moves the stored state forward to the clock's epoch, replacing the file.
/// Returns the epochs it was at and is at now.
pub fn rotate(path: &Path) -> anyhow::Result<(u64, u64)> {
    let mut state = KeyState::read(path)?;
    let was = state.epoch;
    let now = state.epoch_at(now_unix_ms());
    if now > was {
        state.forward_to(now);
        state.write(path)?;
    }
    Ok((was, state.epoch))
}

/// `keys directory`: the signed key directory of the state at `path`, as a worker serves it
/// at `GET /keys`, and the directory public key.
pub fn directory(path: &Path) -> anyhow::Result<(Vec<u8>, [u8; 32])> {
    let state = KeyState::read(path)?;
    let now = now_unix_ms();
    let grace = state.epoch_secs.saturating_sub(1);
    let ring = Keyring::new(state, None, grace, 1, now)?;
    Ok((ring.directory(now), ring.directory_public_key()))
}

/// The key directory a sealed `submit` seals to: read from `file`, or fetched from the
/// worker's listener at `http_addr` (`GET /keys`), and verified against the pinned
/// directory key (64 hex digits).
pub fn fetch_directory(
    file: Option<&Path>,
    http_addr: &str,
    pinned_hex: &str,
) -> anyhow::Result<KeyDirectory> {
    let pinned = midnit_client::parse_hex::<32>(pinned_hex.trim())
        .ok_or_else(|| anyhow::anyhow!("--directory-key: expected 64 hex digits"))?;
    let bytes = match file {
        Some(path) => std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("--directory {}: {e}", path.display()))?,
        None => {
            let (status, body) = crate::app::http::get(http_addr, "/keys")?;
            anyhow::ensure!(status == 200, "GET /keys on {http_addr}: HTTP {status}");
            body
        }
    };
    Ok(KeyDirectory::verify(&bytes, &pinned, now_unix_ms())?)
}
