//! Spill files: large inputs leave memory for a private directory, and are destroyed there by
//! overwrite → fsync → read-back check → unlink.

use super::{now_unix_ms, Ledger, WipeEntry, WipeMethod};
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

const CHUNK: usize = 64 * 1024;

/// A spill file's key: 32 random bytes, held in memory only, zeroed when the file is dropped.
/// The file holds ChaCha20 ciphertext under it (a fresh key per file, so the nonce is zero):
/// once the key is gone the bytes on the disk are noise, even where the disk kept a copy the
/// overwrite did not reach (SSD remapping, a snapshot).
pub type SpillKey = zeroize::Zeroizing<[u8; 32]>;

fn spill_key() -> io::Result<SpillKey> {
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    File::open("/dev/urandom")?.read_exact(key.as_mut())?;
    Ok(key)
}

fn cipher(key: &[u8; 32]) -> chacha20::ChaCha20 {
    use chacha20::cipher::KeyIvInit;
    chacha20::ChaCha20::new(key.into(), &[0u8; 12].into())
}

/// Reads a spill file's plaintext: its ciphertext, decrypted as it is read, seekable.
pub struct SpillReader {
    file: File,
    cipher: chacha20::ChaCha20,
}

impl SpillReader {
    /// A reader of `file` (rewound) under `key`.
    pub fn new(mut file: File, key: &[u8; 32]) -> io::Result<Self> {
        file.seek(SeekFrom::Start(0))?;
        Ok(Self {
            file,
            cipher: cipher(key),
        })
    }
}

impl Read for SpillReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use chacha20::cipher::StreamCipher;
        let n = self.file.read(buf)?;
        self.cipher.apply_keystream(&mut buf[..n]);
        Ok(n)
    }
}

impl Seek for SpillReader {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        use chacha20::cipher::StreamCipherSeek;
        let at = self.file.seek(pos)?;
        self.cipher
            .try_seek(at)
            .map_err(|_| io::Error::other("seek past the keystream"))?;
        Ok(at)
    }
}

/// Why the spill directory could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum SpillError {
    /// The directory could not be created, secured or cleaned.
    #[error("spill directory {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The directory is owned by another user: refusing to spill job data into it.
    #[error("spill directory {0} is owned by another user")]
    NotOwned(PathBuf),
    /// The directory is on a disk-backed file system and `spill_require_tmpfs` is set.
    #[error("spill directory {0} is not on tmpfs (spill_require_tmpfs = true): mount a tmpfs there, e.g. `--tmpfs /spill` or an emptyDir with medium: Memory")]
    OnDisk(PathBuf),
}

/// The worker's private spill directory (mode 0700, files 0600).
#[derive(Debug, Clone)]
pub struct SpillDir {
    path: PathBuf,
}

impl SpillDir {
    /// Creates (or secures) `path` and wipes anything a crashed run left in it. Returns the
    /// directory and how many leftover files were wiped.
    pub fn prepare(path: &Path) -> Result<(Self, usize), SpillError> {
        let io_err = |source| SpillError::Io {
            path: path.to_owned(),
            source,
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(io_err)?;
        let meta = fs::metadata(path).map_err(io_err)?;
        // SAFETY: geteuid has no preconditions.
        if meta.uid() != unsafe { libc::geteuid() } {
            return Err(SpillError::NotOwned(path.to_owned()));
        }
        fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(io_err)?;
        let dir = Self {
            path: path.to_owned(),
        };
        let leftovers = dir.wipe_leftovers().map_err(io_err)?;
        Ok((dir, leftovers))
    }

    /// Whether the directory is on a memory-backed file system (tmpfs or ramfs), where a
    /// spill file never reaches a disk (unless the machine swaps).
    pub fn is_memory_backed(&self) -> io::Result<bool> {
        const TMPFS_MAGIC: i64 = 0x0102_1994;
        const RAMFS_MAGIC: i64 = 0x8584_58f6;
        let path = std::ffi::CString::new(self.path.as_os_str().as_encoded_bytes())
            .map_err(|_| io::Error::other("spill directory path holds a NUL byte"))?;
        let mut stat = std::mem::MaybeUninit::<libc::statfs>::zeroed();
        // SAFETY: `path` is NUL-terminated and `stat` points to a statfs-sized buffer that the
        // kernel fills on success (it is zeroed beforehand, so it is initialised either way).
        if unsafe { libc::statfs(path.as_ptr(), stat.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: zero-initialised above and filled by a successful statfs.
        // `f_type` is an i64 here, an i32 or u32 on other targets.
        #[allow(clippy::useless_conversion)]
        let kind = i64::from(unsafe { stat.assume_init() }.f_type);
        Ok(kind == TMPFS_MAGIC || kind == RAMFS_MAGIC)
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of files currently in the directory.
    pub fn file_count(&self) -> io::Result<usize> {
        Ok(fs::read_dir(&self.path)?.count())
    }

    fn wipe_leftovers(&self) -> io::Result<usize> {
        let mut wiped = 0;
        for entry in fs::read_dir(&self.path)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                let file = fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(entry.path())?;
                let len = file.metadata()?.len();
                overwrite_verify_unlink(file, &entry.path(), len)?;
                wiped += 1;
            }
        }
        Ok(wiped)
    }

    /// Writes `bytes` to a new spill file, recorded as `artifact` when it is destroyed.
    pub fn spill(&self, bytes: &[u8], artifact: &str, ledger: &Ledger) -> io::Result<SpillFile> {
        let (mut file, temp_path) = tempfile::Builder::new()
            .prefix("job-")
            .permissions(fs::Permissions::from_mode(0o600))
            .tempfile_in(&self.path)?
            .into_parts();
        // The drop guard below owns the unlink; TempPath must not race it.
        let path = temp_path.keep().map_err(|e| e.error)?;
        let spill = SpillFile {
            file: Some(file.try_clone()?),
            path,
            len: bytes.len() as u64,
            artifact: artifact.to_owned(),
            ledger: ledger.clone(),
            key: spill_key()?,
        };
        // Encrypted a chunk at a time through one scratch buffer (zeroed when dropped).
        use chacha20::cipher::StreamCipher;
        let mut c = cipher(&spill.key);
        let mut chunk = zeroize::Zeroizing::new(vec![0u8; CHUNK]);
        for part in bytes.chunks(CHUNK) {
            let out = &mut chunk[..part.len()];
            out.copy_from_slice(part);
            c.apply_keystream(out);
            file.write_all(out)?;
        }
        file.flush()?;
        Ok(spill)
    }
}

/// One spilled input. Read it with [`SpillFile::reader`]; dropping it destroys it.
pub struct SpillFile {
    file: Option<File>,
    path: PathBuf,
    len: u64,
    artifact: String,
    ledger: Ledger,
    key: SpillKey,
}

impl SpillFile {
    /// A reader of the file's plaintext, from its start.
    pub fn reader(&self) -> io::Result<SpillReader> {
        let (file, key) = self.descriptor()?;
        SpillReader::new(file, &key)
    }

    /// A read-only descriptor of the file (its ciphertext) and its key, to hand to the
    /// renderer process, which reads it through [`SpillReader`].
    pub fn descriptor(&self) -> io::Result<(File, SpillKey)> {
        let f = self
            .file
            .as_ref()
            .expect("the file is only taken in drop")
            .try_clone()?;
        Ok((f, self.key.clone()))
    }

    /// Length of the plaintext (and of the file) in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The file's path (for tests and diagnostics).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SpillFile {
    fn drop(&mut self) {
        let Some(file) = self.file.take() else { return };
        let result = overwrite_verify_unlink(file, &self.path, self.len);
        let (method, error) = match result {
            Ok(()) => (WipeMethod::OverwriteVerifyUnlink, None),
            Err(e) => {
                tracing::error!(artifact = %self.artifact, error = %e, "spill file wipe failed");
                // Best effort: never leave the file behind, even if the check failed.
                let _ = fs::remove_file(&self.path);
                (WipeMethod::Failed, Some(e.to_string()))
            }
        };
        self.ledger.record(WipeEntry {
            artifact: std::mem::take(&mut self.artifact),
            bytes: self.len,
            method,
            at_ms: now_unix_ms(),
            error,
            process: None,
        });
    }
}

fn overwrite_verify_unlink(mut file: File, path: &Path, len: u64) -> io::Result<()> {
    let zeros = vec![0u8; CHUNK];
    file.seek(SeekFrom::Start(0))?;
    let mut left = len;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        file.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    file.sync_all()?;
    file.seek(SeekFrom::Start(0))?;
    let mut buf = vec![0u8; CHUNK];
    let mut seen = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|&b| b != 0) {
            return Err(io::Error::other("read-back found non-zero bytes"));
        }
        seen += n as u64;
    }
    if seen != len {
        return Err(io::Error::other(format!(
            "read back {seen} bytes, expected {len}"
        )));
    }
    drop(file);
    fs::remove_file(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_disk_holds_ciphertext_and_the_reader_plaintext_from_any_offset() {
        let base = tempfile::tempdir().unwrap();
        let (dir, _) = SpillDir::prepare(&base.path().join("spill")).unwrap();
        let plain: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let spill = dir.spill(&plain, "spill.photo", &Ledger::new()).unwrap();
        let on_disk = fs::read(spill.path()).unwrap();
        assert_eq!(on_disk.len(), plain.len());
        assert!(
            !on_disk
                .windows(32)
                .any(|w| plain[..4096].windows(32).any(|p| p == w)),
            "plaintext on the disk"
        );
        let mut r = spill.reader().unwrap();
        let mut back = Vec::new();
        r.read_to_end(&mut back).unwrap();
        assert_eq!(back, plain);
        r.seek(SeekFrom::Start(123_457)).unwrap();
        let mut some = [0u8; 1000];
        r.read_exact(&mut some).unwrap();
        assert_eq!(&some[..], &plain[123_457..124_457]);
        // Another file of the same bytes has another key: the ciphertexts differ.
        let again = dir.spill(&plain, "spill.other", &Ledger::new()).unwrap();
        assert_ne!(fs::read(again.path()).unwrap(), on_disk);
    }

    #[test]
    fn a_spill_file_is_private_and_gone_after_drop_with_a_verified_receipt_entry() {
        let base = tempfile::tempdir().unwrap();
        let (dir, leftovers) = SpillDir::prepare(&base.path().join("spill")).unwrap();
        assert_eq!(leftovers, 0);
        let mode = fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let ledger = Ledger::new();
        let spill = dir.spill(&[0x5A; 200_000], "spill.photo", &ledger).unwrap();
        let fmode = fs::metadata(spill.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(fmode, 0o600);
        let mut back = Vec::new();
        spill.reader().unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back, vec![0x5A; 200_000]);
        drop(spill);
        assert_eq!(dir.file_count().unwrap(), 0);
        let receipt = ledger.receipt(0);
        let entry = receipt.entry("spill.photo").unwrap();
        assert_eq!(entry.method, WipeMethod::OverwriteVerifyUnlink);
        assert_eq!(entry.bytes, 200_000);
    }

    #[test]
    fn files_left_by_a_crashed_run_are_wiped_at_start() {
        let base = tempfile::tempdir().unwrap();
        let path = base.path().join("spill");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("job-leftover"), b"left behind").unwrap();
        let (dir, leftovers) = SpillDir::prepare(&path).unwrap();
        assert_eq!(leftovers, 1);
        assert_eq!(dir.file_count().unwrap(), 0);
    }
}
