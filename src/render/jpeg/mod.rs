//! A JPEG decoder for shrink-on-load: it decodes straight to 1/2, 1/4 or 1/8 of the stored
//! size, on the calling thread, and reads no more of the file than that size needs.
//!
//! - **Only the frequencies the output uses are kept.** At 1/s scale a block gives 8/s
//!   samples per axis from its lowest 8/s frequencies (a scaled inverse DCT, as libjpeg's
//!   reduced-size decoding). A sequential scan still reads every Huffman code, but stores
//!   and transforms only those coefficients.
//! - **Progressive scans that cannot change those frequencies are skipped unread.** The
//!   file's scans are indexed first; a scan is decoded when its band reaches a needed
//!   frequency, and so is every earlier scan a decoded refinement builds on (a refinement
//!   needs to know which coefficients of its band are already nonzero). At 1/8 scale only
//!   the DC scans are read; at 1/4 and 1/2, whatever AC bands lie wholly above the kept
//!   corner. Skipping a scan only searches its bytes for the next marker.
//! - **Subsampled components come out at full size.** A 4:2:0 chroma block covers twice the
//!   area of a luma block, so it is transformed to twice as many samples per axis: every
//!   plane is the decoded size, and colour conversion needs no upsampling pass.
//!
//! Baseline, extended and progressive Huffman-coded 8-bit files with one (grey) or three
//! (YCbCr or RGB) components are decoded; anything else — arithmetic coding, 12-bit samples,
//! CMYK, sampling a scaled transform cannot express — is [`Refusal::Unsupported`], and a
//! file that breaks the format is [`Refusal::Corrupt`]. Either way the caller decodes the
//! file at full scale with the general decoder, which reports real errors. Every buffer that
//! holds image data (coefficients, planes, pixels) is wiped and recorded in the job's ledger.

mod entropy;
mod idct;

use super::pixels::{Layout, Pixels};
use crate::wipe::{Ledger, SecretBuf};
use entropy::{Bits, Huffman, Tables};
use idct::Idct;

/// Why a file was not decoded here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A valid file this decoder does not handle.
    Unsupported(&'static str),
    /// A file that breaks the format (truncated, inconsistent tables, bad codes).
    Corrupt(&'static str),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unsupported(what) => write!(f, "unsupported: {what}"),
            Self::Corrupt(what) => write!(f, "corrupt: {what}"),
        }
    }
}

type Result<T> = std::result::Result<T, Refusal>;

/// What a decode read: the scans of the file, and how many of them were skipped unread.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Scans in the file.
    pub scans: usize,
    /// Scans skipped without decoding (progressive files only).
    pub skipped: usize,
    /// Whether the file is progressive.
    pub progressive: bool,
}

/// A decoded image and what the decode read.
#[derive(Debug)]
pub struct Scaled {
    /// `ceil(width / shrink)` × `ceil(height / shrink)`, RGB or grey.
    pub pixels: Pixels,
    /// What was read and skipped.
    pub stats: Stats,
}

/// Decodes the JPEG in `data` at 1/`shrink` scale (2, 4 or 8). `max_bytes` bounds the
/// decoder's own buffers (coefficients, planes, pixels).
pub fn decode(
    data: &[u8],
    shrink: u32,
    max_bytes: usize,
    artifact: &str,
    ledger: &Ledger,
) -> Result<Scaled> {
    if ![2, 4, 8].contains(&shrink) {
        return Err(Refusal::Unsupported("a scale other than 1/2, 1/4 or 1/8"));
    }
    let shrink = shrink as usize;
    // Pass 1: the frame and the list of scans.
    let mut frame: Option<Frame> = None;
    let mut scans: Vec<ScanHeader> = Vec::new();
    let mut adobe: Option<u8> = None;
    walk(data, |marker, body, _| {
        match marker {
            0xC0..=0xC2 => {
                if frame.is_some() {
                    return Err(Refusal::Corrupt("two frame headers"));
                }
                frame = Some(Frame::parse(body, marker == 0xC2, shrink)?);
            }
            0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                return Err(Refusal::Unsupported(
                    "lossless, hierarchical or arithmetic coding",
                ));
            }
            0xDA => {
                let f = frame
                    .as_ref()
                    .ok_or(Refusal::Corrupt("a scan before the frame header"))?;
                if scans.len() >= MAX_SCANS {
                    return Err(Refusal::Corrupt("too many scans"));
                }
                scans.push(ScanHeader::parse(body, f)?);
            }
            0xEE if body.starts_with(b"Adobe") && body.len() >= 12 => adobe = Some(body[11]),
            _ => {}
        }
        Ok(())
    })?;
    let mut frame = frame.ok_or(Refusal::Corrupt("no frame header"))?;
    let wanted = plan(&mut frame, &scans);
    let stats = Stats {
        scans: scans.len(),
        skipped: wanted.iter().filter(|&&w| !w).count(),
        progressive: frame.progressive,
    };

    // The decoder's buffers, bounded before any is allocated.
    let (pw, ph) = frame.plane_size();
    let (w, h) = (frame.width.div_ceil(shrink), frame.height.div_ceil(shrink));
    let coef_bytes: usize = frame.comps.iter().map(|c| c.bw * c.bh * c.stride * 2).sum();
    let total = coef_bytes + pw * ph * frame.comps.len() + w * h * frame.comps.len();
    if total > max_bytes {
        return Err(Refusal::Unsupported("buffers larger than the job's budget"));
    }
    let mut coefs: Vec<Coefs> = frame
        .comps
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Coefs::new(
                c.bw * c.bh * c.stride,
                format!("{artifact}.coefficients.{i}"),
                ledger,
            )
        })
        .collect();

    // Pass 2: the tables in force at each scan, and the scans that are wanted.
    let mut dc: [Option<Huffman>; 4] = Default::default();
    let mut ac: [Option<Huffman>; 4] = Default::default();
    let mut quant: [Option<[u16; 64]>; 4] = [None; 4];
    let mut restart = 0usize;
    let mut index = 0usize;
    walk(data, |marker, body, entropy| {
        match marker {
            0xDB => parse_dqt(body, &mut quant)?,
            0xC4 => parse_dht(body, &mut dc, &mut ac)?,
            0xDD => {
                let b = body
                    .get(..2)
                    .ok_or(Refusal::Corrupt("a short restart interval"))?;
                restart = usize::from(u16::from_be_bytes([b[0], b[1]]));
            }
            0xDA => {
                let scan = &scans[index];
                for &(c, _, _) in &scan.comps {
                    let comp = &mut frame.comps[c];
                    if comp.q.is_none() {
                        comp.q = Some(quant[comp.tq].ok_or(Refusal::Corrupt(
                            "a component's quantisation table is undefined",
                        ))?);
                    }
                }
                if wanted[index] {
                    decode_scan(&frame, &mut coefs, scan, &dc, &ac, restart, entropy)?;
                }
                index += 1;
            }
            _ => {}
        }
        Ok(())
    })?;

    // The scaled inverse DCT into one plane per component, then colour conversion.
    let mut planes = Vec::with_capacity(frame.comps.len());
    for (i, (comp, coef)) in frame.comps.iter().zip(&coefs).enumerate() {
        let mut plane = SecretBuf::zeroed(pw * ph, format!("{artifact}.plane.{i}"), ledger);
        let q = comp.q.unwrap_or([0; 64]);
        let t = Idct::new(comp.ow, comp.oh);
        let kernel = t.kernel();
        let out = plane.as_mut_slice();
        for by in 0..comp.bh.min(h.div_ceil(comp.oh)) {
            for bx in 0..comp.bw.min(w.div_ceil(comp.ow)) {
                let at = (by * comp.bw + bx) * comp.stride;
                let first = by * comp.oh * pw + bx * comp.ow;
                kernel(&t, &coef.v[at..at + comp.stride], &q, &mut out[first..], pw);
            }
        }
        planes.push(plane);
    }
    drop(coefs);
    let name = format!("{artifact}.decoded");
    let pixels = if planes.len() == 1 {
        let mut px = Pixels::new(w as u32, h as u32, Layout::L8, name, ledger);
        for (y, row) in px.buf.as_mut_slice().chunks_exact_mut(w).enumerate() {
            row.copy_from_slice(&planes[0][y * pw..y * pw + w]);
        }
        px
    } else {
        let mut px = Pixels::new(w as u32, h as u32, Layout::Rgb8, name, ledger);
        let p = [&planes[0][..], &planes[1][..], &planes[2][..]];
        let ids: Vec<u8> = frame.comps.iter().map(|c| c.id).collect();
        let rgb = adobe == Some(0) || (adobe.is_none() && ids == b"RGB");
        if rgb {
            for (y, row) in px.buf.as_mut_slice().chunks_exact_mut(w * 3).enumerate() {
                for (x, out) in row.chunks_exact_mut(3).enumerate() {
                    let at = y * pw + x;
                    out.copy_from_slice(&[p[0][at], p[1][at], p[2][at]]);
                }
            }
        } else {
            idct::ycbcr_to_rgb(p, pw, w, h, px.buf.as_mut_slice());
        }
        px
    };
    Ok(Scaled { pixels, stats })
}

/// More scans than any encoder writes (libjpeg's longest scripts have about a dozen).
const MAX_SCANS: usize = 256;

/// One component of the frame, with what the scaled decode makes of it.
struct Component {
    id: u8,
    h: usize,
    v: usize,
    tq: usize,
    /// Blocks per row and rows of blocks in the MCU-padded grid.
    bw: usize,
    bh: usize,
    /// Blocks per row and rows of blocks a scan of this component alone covers.
    cw: usize,
    ch: usize,
    /// Samples per block, per axis, at the decoded scale.
    ow: usize,
    oh: usize,
    /// Coefficients kept per block (zig-zag order).
    stride: usize,
    /// The quantisation table, latched at the component's first scan.
    q: Option<[u16; 64]>,
}

struct Frame {
    width: usize,
    height: usize,
    progressive: bool,
    comps: Vec<Component>,
    mcux: usize,
    mcuy: usize,
}

impl Frame {
    fn parse(body: &[u8], progressive: bool, shrink: usize) -> Result<Self> {
        let short = Refusal::Corrupt("a short frame header");
        let head = body.get(..6).ok_or(short)?;
        if head[0] != 8 {
            return Err(Refusal::Unsupported("samples of other than 8 bits"));
        }
        let height = usize::from(u16::from_be_bytes([head[1], head[2]]));
        let width = usize::from(u16::from_be_bytes([head[3], head[4]]));
        if height == 0 || width == 0 {
            return Err(Refusal::Unsupported(
                "a height given only after the first scan",
            ));
        }
        let n = usize::from(head[5]);
        if n != 1 && n != 3 {
            return Err(Refusal::Unsupported("other than one or three components"));
        }
        let specs = body.get(6..6 + 3 * n).ok_or(short)?;
        let mut comps = Vec::with_capacity(n);
        for s in specs.chunks_exact(3) {
            let (h, v, tq) = (
                usize::from(s[1] >> 4),
                usize::from(s[1] & 15),
                usize::from(s[2]),
            );
            if !(1..=4).contains(&h) || !(1..=4).contains(&v) || tq > 3 {
                return Err(Refusal::Corrupt(
                    "a component's sampling or table is out of range",
                ));
            }
            // One component alone is never subsampled against itself.
            let (h, v) = if n == 1 { (1, 1) } else { (h, v) };
            comps.push(Component {
                id: s[0],
                h,
                v,
                tq,
                bw: 0,
                bh: 0,
                cw: 0,
                ch: 0,
                ow: 0,
                oh: 0,
                stride: 1,
                q: None,
            });
        }
        let hmax = comps.iter().map(|c| c.h).max().unwrap_or(1);
        let vmax = comps.iter().map(|c| c.v).max().unwrap_or(1);
        if comps.iter().map(|c| c.h * c.v).sum::<usize>() > 10 {
            return Err(Refusal::Corrupt("more than ten blocks in a unit"));
        }
        let mcux = width.div_ceil(8 * hmax);
        let mcuy = height.div_ceil(8 * vmax);
        for c in &mut comps {
            c.bw = mcux * c.h;
            c.bh = mcuy * c.v;
            c.cw = (width * c.h).div_ceil(hmax).div_ceil(8);
            c.ch = (height * c.v).div_ceil(vmax).div_ceil(8);
            let scaled = |max: usize, own: usize| {
                let n = 8 * max;
                n.is_multiple_of(own * shrink)
                    .then(|| n / (own * shrink))
                    .filter(|s| [1, 2, 4, 8].contains(s))
            };
            c.ow = scaled(hmax, c.h)
                .ok_or(Refusal::Unsupported("sampling this scale cannot express"))?;
            c.oh = scaled(vmax, c.v)
                .ok_or(Refusal::Unsupported("sampling this scale cannot express"))?;
        }
        Ok(Self {
            width,
            height,
            progressive,
            comps,
            mcux,
            mcuy,
        })
    }

    /// The size of every component's plane at the decoded scale (MCU-padded).
    fn plane_size(&self) -> (usize, usize) {
        let c = &self.comps[0];
        (c.bw * c.ow, c.bh * c.oh)
    }
}

/// A scan header: `(component, DC table, AC table)` for each component, the spectral band and
/// the successive-approximation bits.
struct ScanHeader {
    comps: Vec<(usize, usize, usize)>,
    ss: usize,
    se: usize,
    ah: u32,
    al: u32,
}

impl ScanHeader {
    fn parse(body: &[u8], frame: &Frame) -> Result<Self> {
        let short = Refusal::Corrupt("a short scan header");
        let n = usize::from(*body.first().ok_or(short)?);
        if n == 0 || n > 4 {
            return Err(Refusal::Corrupt("a scan of no or too many components"));
        }
        let specs = body.get(1..1 + 2 * n).ok_or(short)?;
        let tail = body.get(1 + 2 * n..4 + 2 * n).ok_or(short)?;
        let mut comps = Vec::with_capacity(n);
        for s in specs.chunks_exact(2) {
            let c = frame
                .comps
                .iter()
                .position(|c| c.id == s[0])
                .ok_or(Refusal::Corrupt("a scan names a component the frame lacks"))?;
            let (td, ta) = (usize::from(s[1] >> 4), usize::from(s[1] & 15));
            if td > 3 || ta > 3 || comps.iter().any(|&(d, _, _)| d == c) {
                return Err(Refusal::Corrupt(
                    "a scan's component or table is out of range",
                ));
            }
            comps.push((c, td, ta));
        }
        let (ss, se, ah, al) = (
            usize::from(tail[0]),
            usize::from(tail[1]),
            u32::from(tail[2] >> 4),
            u32::from(tail[2] & 15),
        );
        if frame.progressive {
            let dc = ss == 0;
            if se > 63 || ss > se || (dc && se != 0) || (!dc && n != 1) || ah > 13 || al > 13 {
                return Err(Refusal::Corrupt("a progressive scan's band is invalid"));
            }
            Ok(Self {
                comps,
                ss,
                se,
                ah,
                al,
            })
        } else {
            Ok(Self {
                comps,
                ss: 0,
                se: 63,
                ah: 0,
                al: 0,
            })
        }
    }

    fn band_overlaps(&self, other: &ScanHeader) -> bool {
        self.ss <= other.se && other.ss <= self.se
    }
}

/// Decides which scans to decode and how many coefficients each component keeps per block.
fn plan(frame: &mut Frame, scans: &[ScanHeader]) -> Vec<bool> {
    let needed: Vec<usize> = frame
        .comps
        .iter()
        .map(|c| idct::max_zigzag(c.ow, c.oh))
        .collect();
    if !frame.progressive {
        for (c, k) in frame.comps.iter_mut().zip(&needed) {
            c.stride = k + 1;
        }
        return vec![true; scans.len()];
    }
    let mut wanted: Vec<bool> = scans
        .iter()
        .map(|s| s.ss == 0 || s.ss <= needed[s.comps[0].0])
        .collect();
    // A decoded refinement needs every earlier scan of its band, and so on.
    loop {
        let mut changed = false;
        for i in 0..scans.len() {
            let s = &scans[i];
            if !wanted[i] || s.ss == 0 || s.ah == 0 {
                continue;
            }
            for j in 0..i {
                let t = &scans[j];
                if !wanted[j] && t.ss > 0 && t.comps[0].0 == s.comps[0].0 && t.band_overlaps(s) {
                    wanted[j] = true;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    for (i, c) in frame.comps.iter_mut().enumerate() {
        let widest = scans
            .iter()
            .zip(&wanted)
            .filter(|(s, &w)| w && s.comps.iter().any(|&(d, _, _)| d == i))
            .map(|(s, _)| s.se)
            .max()
            .unwrap_or(0);
        c.stride = needed[i].max(widest) + 1;
    }
    wanted
}

/// Quantised coefficients of one component, wiped when dropped.
struct Coefs {
    v: Vec<i16>,
    artifact: String,
    ledger: Ledger,
}

impl Coefs {
    fn new(len: usize, artifact: String, ledger: &Ledger) -> Self {
        ledger.meter().alloc(len * 2);
        Self {
            v: vec![0; len],
            artifact,
            ledger: ledger.clone(),
        }
    }
}

impl Drop for Coefs {
    fn drop(&mut self) {
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut self.v);
        crate::wipe::wipe_in_place(bytes, std::mem::take(&mut self.artifact), &self.ledger);
        self.ledger.meter().free(self.v.capacity() * 2);
    }
}

/// What carries from block to block within a scan.
struct State {
    preds: [i32; 4],
    eobrun: u32,
}

#[derive(Clone, Copy)]
enum Kind {
    Sequential,
    DcFirst,
    DcRefine,
    AcFirst,
    AcRefine,
}

fn decode_scan(
    frame: &Frame,
    coefs: &mut [Coefs],
    scan: &ScanHeader,
    dc: &[Option<Huffman>; 4],
    ac: &[Option<Huffman>; 4],
    restart: usize,
    data: &[u8],
) -> Result<()> {
    let kind = match (frame.progressive, scan.ss == 0, scan.ah == 0) {
        (false, _, _) => Kind::Sequential,
        (true, true, true) => Kind::DcFirst,
        (true, true, false) => Kind::DcRefine,
        (true, false, true) => Kind::AcFirst,
        (true, false, false) => Kind::AcRefine,
    };
    let tables: Vec<Tables> = scan
        .comps
        .iter()
        .map(|&(_, td, ta)| Tables {
            dc: dc[td].as_ref(),
            ac: ac[ta].as_ref(),
        })
        .collect();
    let mut bits = Bits::new(data);
    let mut state = State {
        preds: [0; 4],
        eobrun: 0,
    };
    let band = (scan.ss, scan.se);
    let block = |bits: &mut Bits, j: usize, out: &mut [i16], st: &mut State| -> Result<()> {
        match kind {
            Kind::Sequential => entropy::sequential(bits, &tables[j], &mut st.preds[j], out),
            Kind::DcFirst => entropy::dc_first(bits, &tables[j], &mut st.preds[j], scan.al, out),
            Kind::DcRefine => {
                entropy::dc_refine(bits, scan.al, out);
                Ok(())
            }
            Kind::AcFirst => {
                entropy::ac_first(bits, &tables[j], band, scan.al, &mut st.eobrun, out)
            }
            Kind::AcRefine => {
                entropy::ac_refine(bits, &tables[j], band, scan.al, &mut st.eobrun, out)
            }
        }
    };
    // Before each unit (an MCU, or a block of a one-component scan): the restart marker that
    // ends an interval resets the predictions and the end-of-band run.
    let mut units = 0usize;
    let mut next_unit = |bits: &mut Bits, st: &mut State| -> Result<()> {
        if restart > 0 && units > 0 && units.is_multiple_of(restart) {
            bits.restart()?;
            *st = State {
                preds: [0; 4],
                eobrun: 0,
            };
        }
        units += 1;
        Ok(())
    };
    if let [(c, _, _)] = scan.comps[..] {
        let comp = &frame.comps[c];
        let (stride, bw) = (comp.stride, comp.bw);
        for by in 0..comp.ch {
            for bx in 0..comp.cw {
                next_unit(&mut bits, &mut state)?;
                let at = (by * bw + bx) * stride;
                block(&mut bits, 0, &mut coefs[c].v[at..at + stride], &mut state)?;
            }
        }
    } else {
        for my in 0..frame.mcuy {
            for mx in 0..frame.mcux {
                next_unit(&mut bits, &mut state)?;
                for (j, &(c, _, _)) in scan.comps.iter().enumerate() {
                    let comp = &frame.comps[c];
                    for v in 0..comp.v {
                        for h in 0..comp.h {
                            let at = ((my * comp.v + v) * comp.bw + mx * comp.h + h) * comp.stride;
                            block(
                                &mut bits,
                                j,
                                &mut coefs[c].v[at..at + comp.stride],
                                &mut state,
                            )?;
                        }
                    }
                }
            }
        }
    }
    if bits.overran() {
        return Err(Refusal::Corrupt("a scan runs past its data"));
    }
    Ok(())
}

fn parse_dqt(mut body: &[u8], quant: &mut [Option<[u16; 64]>; 4]) -> Result<()> {
    let short = Refusal::Corrupt("a short quantisation table");
    while let Some((&pt, rest)) = body.split_first() {
        let (precision, t) = (pt >> 4, usize::from(pt & 15));
        if t > 3 || precision > 1 {
            return Err(Refusal::Corrupt("a quantisation table out of range"));
        }
        let mut q = [0u16; 64];
        let len = if precision == 0 { 64 } else { 128 };
        let values = rest.get(..len).ok_or(short)?;
        for (k, slot) in q.iter_mut().enumerate() {
            *slot = if precision == 0 {
                u16::from(values[k])
            } else {
                u16::from_be_bytes([values[2 * k], values[2 * k + 1]])
            };
        }
        quant[t] = Some(q);
        body = &rest[len..];
    }
    Ok(())
}

fn parse_dht(
    mut body: &[u8],
    dc: &mut [Option<Huffman>; 4],
    ac: &mut [Option<Huffman>; 4],
) -> Result<()> {
    let short = Refusal::Corrupt("a short Huffman table");
    while let Some((&ct, rest)) = body.split_first() {
        let (class, t) = (ct >> 4, usize::from(ct & 15));
        if class > 1 || t > 3 {
            return Err(Refusal::Corrupt("a Huffman table out of range"));
        }
        let counts: [u8; 16] = rest.get(..16).ok_or(short)?.try_into().map_err(|_| short)?;
        let n: usize = counts.iter().map(|&c| usize::from(c)).sum();
        let symbols = rest.get(16..16 + n).ok_or(short)?;
        let table = Huffman::new(&counts, symbols)?;
        if class == 0 {
            dc[t] = Some(table);
        } else {
            ac[t] = Some(table);
        }
        body = &rest[16 + n..];
    }
    Ok(())
}

/// Visits each marker segment from SOI to EOI: `(marker, segment body, entropy-coded data)`,
/// the data being empty except after a scan header.
fn walk(data: &[u8], mut on: impl FnMut(u8, &[u8], &[u8]) -> Result<()>) -> Result<()> {
    if data.get(..2) != Some(&[0xFF, 0xD8]) {
        return Err(Refusal::Corrupt("no start-of-image marker"));
    }
    let truncated = Refusal::Corrupt("the file ends inside a segment");
    let mut pos = 2;
    loop {
        // Stray bytes before a marker are skipped, as libjpeg does (with a warning).
        pos += memchr::memchr(0xFF, data.get(pos..).unwrap_or(&[])).ok_or(truncated)?;
        while data.get(pos) == Some(&0xFF) {
            pos += 1;
        }
        let marker = *data.get(pos).ok_or(truncated)?;
        pos += 1;
        match marker {
            0xD9 => return Ok(()),
            0x00 | 0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let len = data.get(pos..pos + 2).ok_or(truncated)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let body = data.get(pos + 2..pos + len.max(2)).ok_or(truncated)?;
        pos += len.max(2);
        if marker == 0xDA {
            let end = segment_end(data, pos, false);
            if end >= data.len() {
                return Err(Refusal::Corrupt("the file ends inside a scan"));
            }
            on(marker, body, &data[pos..end])?;
            pos = end;
        } else {
            on(marker, body, &[])?;
        }
    }
}

/// Where the entropy-coded data starting at `from` ends: the first byte of the next marker
/// (a restart marker too, if `at_restart`), or the end of `data`.
fn segment_end(data: &[u8], from: usize, at_restart: bool) -> usize {
    let mut p = from;
    while let Some(i) = memchr::memchr(0xFF, data.get(p..).unwrap_or(&[])) {
        let at = p + i;
        match data.get(at + 1) {
            None => return data.len(),
            Some(0) => p = at + 2,
            Some(0xD0..=0xD7) if !at_restart => p = at + 2,
            Some(0xFF) => p = at + 1,
            Some(_) => return at,
        }
    }
    data.len()
}
