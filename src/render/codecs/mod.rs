//! Codecs beyond the `image` crate's: HEIC/AVIF decoding ([`heif`], libheif, C), JPEG XL
//! decoding ([`jxl`], pure Rust), and the encoders of the newer outputs ([`encoders`]: JPEG by
//! jpeg-encoder, AVIF by ravif/rav1e, palette PNG, ThumbHash, all Rust; lossy WebP by libwebp,
//! C).
//!
//! **C codecs and memory.** A C library allocates with `malloc`, outside the worker's zeroing
//! allocator, so what it frees could outlive the job in a long-lived process. C codecs
//! therefore run only in a process that dies with its job — the single-use renderer of the
//! isolated executor, or the one-shot `render` command — which calls [`allow_c_codecs`] before
//! its job. From then on glibc overwrites every chunk its `malloc` frees with zeros
//! (`M_PERTURB`; chunks too large for the heap are unmapped and handed back to the kernel,
//! which zeroes pages before any reuse), and the whole address space is released when the
//! process exits. Anywhere else (the in-process executor) a job that needs one is refused with
//! a typed error naming the input or output.

pub mod encoders;
pub mod heif;
pub mod jxl;

use crate::protocol::{ErrorCode, JobError};
use std::sync::atomic::{AtomicBool, Ordering};

static C_CODECS: AtomicBool = AtomicBool::new(false);

/// Allows the C codecs in this process, which must be single-use (it exits after its job):
/// makes glibc zero every freed heap chunk. libheif itself is loaded on first use
/// ([`heif::load`]; a renderer that may need it loads it before it is confined).
pub fn allow_c_codecs() {
    // SAFETY: mallopt only sets an allocator parameter. M_PERTURB with a value whose low byte
    // is 0 (and which is non-zero, so the option is on) fills each freed chunk with 0x00.
    unsafe { libc::mallopt(libc::M_PERTURB, 0x100) };
    C_CODECS.store(true, Ordering::SeqCst);
}

/// Whether C codecs may run in this process.
pub fn c_codecs_allowed() -> bool {
    C_CODECS.load(Ordering::SeqCst)
}

/// `Ok` where C codecs may run; otherwise the error that refuses `what` (a field path).
pub fn require_c(what: &str) -> Result<(), JobError> {
    if c_codecs_allowed() {
        return Ok(());
    }
    Err(c_refused(what))
}

/// The refusal of a C-codec format outside a single-use process.
pub fn c_refused(what: &str) -> JobError {
    JobError::new(
        ErrorCode::InputUnsupportedFormat,
        format!(
            "{what}: this format needs a C codec, which runs only in the isolated executor's \
             single-use renderer (executor = \"isolated\"); this worker renders in-process"
        ),
    )
}

/// An ICC profile for colour signalled by CICP code points (ITU-T H.273), or `None` for sRGB
/// and for "unspecified", which is taken as sRGB.
pub fn cicp_profile(primaries: i32, transfer: i32) -> Option<Vec<u8>> {
    use moxcms::ColorProfile;
    const PQ: i32 = 16;
    const HLG: i32 = 18;
    let profile = match primaries {
        // BT.709 (the sRGB primaries), unspecified.
        1 | 2 => return None,
        // SMPTE EG 432-1: Display P3, as iPhones record.
        12 if transfer == PQ => ColorProfile::new_display_p3_pq(),
        12 => ColorProfile::new_display_p3(),
        // BT.2020 / BT.2100.
        9 if transfer == PQ => ColorProfile::new_bt2020_pq(),
        9 if transfer == HLG => ColorProfile::new_bt2020_hlg(),
        9 => ColorProfile::new_bt2020(),
        _ => {
            tracing::info!(primaries, "colour primaries not converted; taken as sRGB");
            return None;
        }
    };
    profile.encode().ok()
}
