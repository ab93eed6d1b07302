//! Spill files: large inputs leave memory for a private directory, and are destroyed there by
//! overwrite → fsync → read-back check → unlink.

use super::{now_unix_ms, Ledger, WipeEntry, WipeMethod};
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

const CHUNK: usize = 64 * 1024;

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
        };
        file.write_all(bytes)?;
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
}

impl SpillFile {
    /// A reader positioned at the start of the file.
    pub fn reader(&self) -> io::Result<File> {
        let mut f = self
            .file
            .as_ref()
            .expect("the file is only taken in drop")
            .try_clone()?;
        f.seek(SeekFrom::Start(0))?;
        Ok(f)
    }

    /// Size in bytes.
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
