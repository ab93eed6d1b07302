//! HEIC and AVIF inputs, decoded by libheif (C; with libde265 for HEVC and dav1d or libaom
//! for AV1, as Debian builds it).
//!
//! The bindings are the worker's own and cover only what decoding the primary image needs:
//! the crate of the field (`libheif-rs`) requires libheif 1.19 or newer, and Debian 12 ships
//! 1.15. libheif applies the file's `clap`, `irot` and `imir` transforms while it decodes (we
//! never apply EXIF orientation on top), composes grid images from their tiles, and merges an
//! alpha auxiliary image; depth images and Apple's HDR gain map are auxiliary images that are
//! never decoded, so an SDR output is rendered from the primary image alone.
//!
//! The probe ([`crate::intake::probe`]) has already walked the container and held its
//! dimensions, tiles and items to the limits; libheif's own size limit is set as a second
//! line. This code only runs where C codecs are allowed ([`super::require_c`]).

use crate::job::Limits;
use crate::protocol::{ErrorCode, JobError};
use crate::render::decode::Decoded;
use crate::render::pixels::{Layout, Pixels};
use crate::wipe::Ledger;
use image::metadata::Orientation;
use std::ffi::{c_char, c_int, c_void, CStr};

#[repr(C)]
#[derive(Clone, Copy)]
struct HeifError {
    code: c_int,
    subcode: c_int,
    message: *const c_char,
}

#[repr(C)]
struct Context {
    _private: [u8; 0],
}

#[repr(C)]
struct Handle {
    _private: [u8; 0],
}

#[repr(C)]
struct Image {
    _private: [u8; 0],
}

/// The leading fields of `struct heif_color_profile_nclx` (the only ones read).
#[repr(C)]
struct Nclx {
    version: u8,
    color_primaries: c_int,
    transfer_characteristics: c_int,
    matrix_coefficients: c_int,
    full_range_flag: u8,
}

/// The leading fields of `struct heif_decoding_options` (version 1 and 2).
#[repr(C)]
struct DecodingOptions {
    version: u8,
    ignore_transformations: u8,
    start_progress: *const c_void,
    on_progress: *const c_void,
    end_progress: *const c_void,
    progress_user_data: *mut c_void,
    convert_hdr_to_8bit: u8,
}

const COLORSPACE_RGB: c_int = 1;
const CHROMA_RGB: c_int = 10;
const CHROMA_RGBA: c_int = 11;
const CHROMA_RRGGBB_LE: c_int = 14;
const CHROMA_RRGGBBAA_LE: c_int = 15;
const CHANNEL_INTERLEAVED: c_int = 10;
const fn fourcc(s: &[u8; 4]) -> c_int {
    ((s[0] as c_int) << 24) | ((s[1] as c_int) << 16) | ((s[2] as c_int) << 8) | s[3] as c_int
}
const PROFILE_NCLX: c_int = fourcc(b"nclx");
const PROFILE_RICC: c_int = fourcc(b"rICC");
const PROFILE_PROF: c_int = fourcc(b"prof");

// libheif is loaded when first needed (`dlopen`), not linked: loading it and its codec
// libraries costs a process about 4 ms of CPU (relocations, libde265's tables), which every
// renderer and every `render` would otherwise pay whether or not its job has a HEIC or AVIF
// input. An operator who leaves libheif out of the image switches both formats off.
macro_rules! libheif {
    ($(fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)?;)*) => {
        /// The libheif functions this module calls, resolved from the loaded library.
        struct Api {
            $($name: unsafe extern "C" fn($($ty),*) $(-> $ret)?,)*
            _lib: libloading::Library,
        }

        impl Api {
            fn open() -> Result<Self, libloading::Error> {
                // SAFETY: loading libheif runs its initialisers, which only set up its own
                // state; each symbol is declared with the signature libheif 1.15's headers give.
                unsafe {
                    let lib = libloading::Library::new(LIBRARY)?;
                    Ok(Self {
                        $($name: *lib.get(concat!(stringify!($name), "\0").as_bytes())?,)*
                        _lib: lib,
                    })
                }
            }
        }

        $(
            #[allow(dead_code, clippy::too_many_arguments)]
            unsafe fn $name($($arg: $ty),*) $(-> $ret)? {
                // SAFETY: the caller upholds libheif's contract for this function; `decode`
                // loaded the library before any of these is called.
                unsafe { (api().$name)($($arg),*) }
            }
        )*
    };
}

libheif! {
    fn heif_init(params: *mut c_void) -> HeifError;
    fn heif_context_alloc() -> *mut Context;
    fn heif_context_free(ctx: *mut Context);
    fn heif_context_set_maximum_image_size_limit(ctx: *mut Context, maximum_width: c_int);
    fn heif_context_read_from_memory_without_copy(ctx: *mut Context, mem: *const c_void, size: usize, options: *const c_void) -> HeifError;
    fn heif_context_get_primary_image_handle(ctx: *mut Context, handle: *mut *mut Handle) -> HeifError;
    fn heif_image_handle_release(handle: *const Handle);
    fn heif_image_handle_get_width(handle: *const Handle) -> c_int;
    fn heif_image_handle_get_height(handle: *const Handle) -> c_int;
    fn heif_image_handle_has_alpha_channel(handle: *const Handle) -> c_int;
    fn heif_image_handle_is_premultiplied_alpha(handle: *const Handle) -> c_int;
    fn heif_image_handle_get_luma_bits_per_pixel(handle: *const Handle) -> c_int;
    fn heif_image_handle_get_color_profile_type(handle: *const Handle) -> c_int;
    fn heif_image_handle_get_raw_color_profile_size(handle: *const Handle) -> usize;
    fn heif_image_handle_get_raw_color_profile(handle: *const Handle, out: *mut c_void) -> HeifError;
    fn heif_image_handle_get_nclx_color_profile(handle: *const Handle, out: *mut *mut Nclx) -> HeifError;
    fn heif_nclx_color_profile_free(nclx: *mut Nclx);
    fn heif_decoding_options_alloc() -> *mut DecodingOptions;
    fn heif_decoding_options_free(options: *mut DecodingOptions);
    fn heif_decode_image(handle: *const Handle, out: *mut *mut Image, colorspace: c_int, chroma: c_int, options: *const DecodingOptions) -> HeifError;
    fn heif_image_get_width(image: *const Image, channel: c_int) -> c_int;
    fn heif_image_get_height(image: *const Image, channel: c_int) -> c_int;
    fn heif_image_get_bits_per_pixel_range(image: *const Image, channel: c_int) -> c_int;
    fn heif_image_get_plane_readonly(image: *const Image, channel: c_int, stride: *mut c_int) -> *const u8;
    fn heif_image_release(image: *const Image);
}

/// The library's name as Debian's `libheif1` installs it.
const LIBRARY: &str = "libheif.so.1";

static API: std::sync::OnceLock<Result<Api, String>> = std::sync::OnceLock::new();
static CONFINED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn api() -> &'static Api {
    match API.get() {
        Some(Ok(api)) => api,
        _ => unreachable!("libheif is loaded before it is called"),
    }
}

/// Loads libheif and initialises it (its decoder registry), once. A renderer that may get a
/// HEIC or AVIF job calls this before it is confined (the system-call filter allows no
/// `open`); after [`seal`], a library not yet loaded stays unloaded.
pub fn load() -> Result<(), String> {
    if API.get().is_none() && CONFINED.load(std::sync::atomic::Ordering::SeqCst) {
        return Err("this renderer was started without libheif".into());
    }
    let loaded = API.get_or_init(|| {
        let api = Api::open().map_err(|e| e.to_string())?;
        // SAFETY: heif_init takes an optional parameter block; NULL asks for the defaults.
        let _ = unsafe { (api.heif_init)(std::ptr::null_mut()) };
        Ok(api)
    });
    loaded.as_ref().map(|_| ()).map_err(Clone::clone)
}

/// Called once the process is confined: from now on libheif cannot be loaded.
pub fn seal() {
    CONFINED.store(true, std::sync::atomic::Ordering::SeqCst);
}

fn failed(name: &str, what: &str, e: HeifError) -> JobError {
    // libheif's messages name the structure that failed (a box, an item), never pixel data.
    let detail = if e.message.is_null() {
        String::new()
    } else {
        // SAFETY: libheif documents the message as a NUL-terminated static string.
        unsafe { CStr::from_ptr(e.message) }
            .to_string_lossy()
            .chars()
            .take(200)
            .collect()
    };
    let code = match e.code {
        // heif_error_Memory_allocation_error, heif_error_Usage_error (size limit)
        6 => ErrorCode::LimitsMemory,
        // heif_error_Unsupported_filetype, _feature
        2 | 4 => ErrorCode::InputUnsupportedFormat,
        _ => ErrorCode::InputUndecodable,
    };
    JobError::new(code, format!("input `{name}` {what}: {detail}"))
}

/// Owns a libheif context and the handles and images taken from it, releasing them on drop.
struct Session {
    ctx: *mut Context,
    handle: *mut Handle,
    image: *mut Image,
    options: *mut DecodingOptions,
}

impl Drop for Session {
    fn drop(&mut self) {
        // SAFETY: each pointer is either NULL or owned by this session, released exactly once.
        unsafe {
            if !self.image.is_null() {
                heif_image_release(self.image);
            }
            if !self.handle.is_null() {
                heif_image_handle_release(self.handle);
            }
            if !self.options.is_null() {
                heif_decoding_options_free(self.options);
            }
            if !self.ctx.is_null() {
                heif_context_free(self.ctx);
            }
        }
    }
}

/// Decodes the primary image of a HEIF or AVIF file held in `bytes`.
pub fn decode(
    bytes: &[u8],
    name: &str,
    limits: &Limits,
    ledger: &Ledger,
) -> Result<Decoded, JobError> {
    super::require_c(name)?;
    load().map_err(|e| {
        JobError::new(
            ErrorCode::InputUnsupportedFormat,
            format!("input `{name}`: HEIC and AVIF decoding is unavailable here ({e})"),
        )
    })?;
    let ok = |e: HeifError, what: &str| {
        if e.code == 0 {
            Ok(())
        } else {
            Err(failed(name, what, e))
        }
    };
    let mut s = Session {
        // SAFETY: allocation only; checked for NULL below.
        ctx: unsafe { heif_context_alloc() },
        handle: std::ptr::null_mut(),
        image: std::ptr::null_mut(),
        options: std::ptr::null_mut(),
    };
    if s.ctx.is_null() {
        return Err(JobError::new(ErrorCode::LimitsMemory, "libheif: no memory"));
    }
    let side = c_int::try_from(limits.max_input_dimension).unwrap_or(c_int::MAX);
    // SAFETY: ctx is a live context; `bytes` outlives the session (it is dropped first, at the
    // end of this function, before `bytes`' owner can be).
    unsafe {
        heif_context_set_maximum_image_size_limit(s.ctx, side);
        ok(
            heif_context_read_from_memory_without_copy(
                s.ctx,
                bytes.as_ptr().cast(),
                bytes.len(),
                std::ptr::null(),
            ),
            "is not a readable HEIF file",
        )?;
        ok(
            heif_context_get_primary_image_handle(s.ctx, &mut s.handle),
            "has no primary image",
        )?;
    }
    let h = s.handle;
    // SAFETY: h is a live handle for all the calls below.
    let (w, hgt, alpha, premultiplied, bits) = unsafe {
        (
            heif_image_handle_get_width(h),
            heif_image_handle_get_height(h),
            heif_image_handle_has_alpha_channel(h) != 0,
            heif_image_handle_is_premultiplied_alpha(h) != 0,
            heif_image_handle_get_luma_bits_per_pixel(h),
        )
    };
    let (w, hgt) = (dimension(w, name)?, dimension(hgt, name)?);
    let pixels_declared = u64::from(w) * u64::from(hgt);
    if pixels_declared > limits.max_input_pixels {
        return Err(JobError::new(
            ErrorCode::LimitsPixels,
            format!("inputs.{name}: its image is larger than allowed (max_input_pixels)"),
        ));
    }
    let icc = color_profile(h, name, limits)?;
    let deep = bits > 8;
    let chroma = match (deep, alpha) {
        (false, false) => CHROMA_RGB,
        (false, true) => CHROMA_RGBA,
        (true, false) => CHROMA_RRGGBB_LE,
        (true, true) => CHROMA_RRGGBBAA_LE,
    };
    // SAFETY: the options come from libheif's allocator (sized for its own version); the two
    // fields written exist since version 1 and 2, and the version is checked first.
    unsafe {
        s.options = heif_decoding_options_alloc();
        if !s.options.is_null() {
            (*s.options).ignore_transformations = 0;
            if (*s.options).version >= 2 {
                (*s.options).convert_hdr_to_8bit = 0;
            }
        }
        ok(
            heif_decode_image(h, &mut s.image, COLORSPACE_RGB, chroma, s.options),
            "could not be decoded",
        )?;
    }
    let img = s.image;
    let mut stride: c_int = 0;
    // SAFETY: img is a live decoded image; the plane pointer stays valid until it is released
    // (when the session drops, after the copy below).
    let (pw, ph, range, plane) = unsafe {
        (
            heif_image_get_width(img, CHANNEL_INTERLEAVED),
            heif_image_get_height(img, CHANNEL_INTERLEAVED),
            heif_image_get_bits_per_pixel_range(img, CHANNEL_INTERLEAVED),
            heif_image_get_plane_readonly(img, CHANNEL_INTERLEAVED, &mut stride),
        )
    };
    let (pw, ph) = (dimension(pw, name)?, dimension(ph, name)?);
    let layout = if alpha { Layout::Rgba8 } else { Layout::Rgb8 };
    let channels = layout.channels();
    let sample_bytes = if deep { 2 } else { 1 };
    let row_bytes = pw as usize * channels * sample_bytes;
    let stride = usize::try_from(stride).unwrap_or(0);
    if plane.is_null()
        || stride < row_bytes
        || u64::from(pw) * u64::from(ph) > pixels_declared.max(1) * 2
    {
        return Err(JobError::new(
            ErrorCode::InputUndecodable,
            format!("input `{name}`: the decoder returned no usable image"),
        ));
    }
    // SAFETY: libheif guarantees `ph` rows of `stride` bytes at `plane`.
    let src = unsafe { std::slice::from_raw_parts(plane, stride * (ph as usize - 1) + row_bytes) };
    let mut out = Pixels::new(pw, ph, layout, format!("pixels.{name}.decoded"), ledger);
    let dst_stride = out.stride();
    let max = if deep {
        (1u32 << range.clamp(9, 16)) - 1
    } else {
        255
    };
    for (y, row) in out
        .buf
        .as_mut_slice()
        .chunks_exact_mut(dst_stride)
        .enumerate()
    {
        let line = &src[y * stride..y * stride + row_bytes];
        if deep {
            for (d, s) in row.iter_mut().zip(line.chunks_exact(2)) {
                let v = u32::from(u16::from_le_bytes([s[0], s[1]])).min(max);
                *d = ((v * 255 + max / 2) / max) as u8;
            }
        } else {
            row.copy_from_slice(line);
        }
    }
    drop(s);
    if alpha && premultiplied {
        unpremultiply(&mut out);
    }
    Ok(Decoded {
        pixels: out,
        full: (pw, ph),
        // libheif applied irot/imir; EXIF orientation is never applied on top.
        orientation: Orientation::NoTransforms,
        icc,
    })
}

fn dimension(v: c_int, name: &str) -> Result<u32, JobError> {
    u32::try_from(v).ok().filter(|&v| v > 0).ok_or_else(|| {
        JobError::new(
            ErrorCode::InputUndecodable,
            format!("input `{name}`: the decoder reported no size"),
        )
    })
}

fn unpremultiply(px: &mut Pixels) {
    for p in px.buf.as_mut_slice().chunks_exact_mut(4) {
        let a = u32::from(p[3]);
        if a != 0 && a != 255 {
            for c in &mut p[..3] {
                *c = ((u32::from(*c) * 255 + a / 2) / a).min(255) as u8;
            }
        }
    }
}

/// The image's colour as an ICC profile: its own, or one made from its `nclx` code points
/// (`None`: sRGB, or unspecified, which is taken as sRGB).
fn color_profile(
    h: *const Handle,
    name: &str,
    limits: &Limits,
) -> Result<Option<Vec<u8>>, JobError> {
    // SAFETY: h is a live handle.
    let kind = unsafe { heif_image_handle_get_color_profile_type(h) };
    if kind == PROFILE_RICC || kind == PROFILE_PROF {
        // SAFETY: as above; the buffer is exactly the size libheif reports.
        let size = unsafe { heif_image_handle_get_raw_color_profile_size(h) };
        if size as u64 > limits.max_icc_bytes {
            return Err(JobError::new(
                ErrorCode::LimitsComplexity,
                format!("inputs.{name}: its ICC profile is larger than allowed (max_icc_bytes)"),
            ));
        }
        let mut icc = vec![0u8; size];
        // SAFETY: `icc` has room for `size` bytes.
        let e = unsafe { heif_image_handle_get_raw_color_profile(h, icc.as_mut_ptr().cast()) };
        return Ok((e.code == 0 && size > 0).then_some(icc));
    }
    if kind != PROFILE_NCLX {
        return Ok(None);
    }
    let mut nclx: *mut Nclx = std::ptr::null_mut();
    // SAFETY: as above; the profile is freed with libheif's own function.
    let (primaries, transfer) = unsafe {
        let e = heif_image_handle_get_nclx_color_profile(h, &mut nclx);
        if e.code != 0 || nclx.is_null() {
            return Ok(None);
        }
        let v = ((*nclx).color_primaries, (*nclx).transfer_characteristics);
        heif_nclx_color_profile_free(nclx);
        v
    };
    Ok(super::cicp_profile(primaries, transfer))
}
