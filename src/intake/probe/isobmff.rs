//! HEIF (HEIC) and AVIF: the ISO-BMFF walk — `ftyp`, then `meta` (`hdlr`, `pitm`, `iinf`,
//! `iloc`, `iref`, `iprp`/`ipco`/`ipma`) and, for image sequences, the sample count of each
//! `moov` track.
//!
//! What the decoder will be handed is checked here first: the primary item exists and is a
//! coded image (`hvc1`, `av01`) or a `grid` of them; every coded item declares its size
//! (`ispe`) within the pixel limits; a grid's tile count is within `max_tiles`, its tiles are
//! all there, of one size, and really cover the declared output (a lying grid is refused);
//! every extent of every item the decoder reads lies inside the file; the ICC profile is
//! within `max_icc_bytes`; a sequence's frame count is within `max_frames`. A 90° or 270°
//! `irot` swaps the size the header reports (the decoder applies it).

use super::{be32, Found, Stop, Walk};
use crate::job::InputFormat;
use crate::protocol::{ErrorCode, JobError};

const TRUNCATED: &str = "the file ends inside a box (truncated)";

/// Most items a file may list (an iPhone photo has about 60: tiles, thumbnail, metadata).
const MAX_ITEMS: usize = 10_000;
/// Deepest nesting of boxes walked.
const MAX_DEPTH: u32 = 8;

/// One box: its type and its payload.
struct Bx<'a> {
    kind: [u8; 4],
    body: &'a [u8],
}

/// The boxes in `data`, in order.
fn boxes(data: &[u8]) -> Result<Vec<Bx<'_>>, Stop> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < data.len() {
        if data.len() - at < 8 {
            return Err(Stop::Broken(TRUNCATED));
        }
        let size = u64::from(be32(data, at));
        let kind: [u8; 4] = data[at + 4..at + 8].try_into().expect("4 bytes");
        let (header, size) = match size {
            0 => (8u64, (data.len() - at) as u64),
            1 => {
                if data.len() - at < 16 {
                    return Err(Stop::Broken(TRUNCATED));
                }
                let large = u64::from(be32(data, at + 8)) << 32 | u64::from(be32(data, at + 12));
                (16, large)
            }
            s => (8, s),
        };
        if size < header || size > (data.len() - at) as u64 {
            return Err(Stop::Broken(TRUNCATED));
        }
        let (start, end) = (at + header as usize, at + size as usize);
        out.push(Bx {
            kind,
            body: &data[start..end],
        });
        at = end;
    }
    Ok(out)
}

/// A reader over a box payload; every read is bounds-checked.
struct Rd<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Rd<'a> {
    fn new(b: &'a [u8]) -> Self {
        Self { b, at: 0 }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], Stop> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len());
        let s = &self.b[self.at..end.ok_or(Stop::Broken(TRUNCATED))?];
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, Stop> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u32, Stop> {
        let s = self.take(2)?;
        Ok(u32::from(u16::from_be_bytes([s[0], s[1]])))
    }
    fn u32(&mut self) -> Result<u32, Stop> {
        let s = self.take(4)?;
        Ok(be32(s, 0))
    }
    /// An unsigned integer of 0, 4 or 8 bytes (iloc's field sizes).
    fn uint(&mut self, size: u8) -> Result<u64, Stop> {
        match size {
            0 => Ok(0),
            4 => self.u32().map(u64::from),
            8 => Ok(u64::from(self.u32()?) << 32 | u64::from(self.u32()?)),
            _ => Err(Stop::Broken("an iloc field size is not 0, 4 or 8")),
        }
    }
    /// Version and flags of a full box.
    fn full(&mut self) -> Result<(u8, u32), Stop> {
        let v = self.u32()?;
        Ok(((v >> 24) as u8, v & 0x00ff_ffff))
    }
    fn rest(&self) -> &'a [u8] {
        &self.b[self.at..]
    }
}

/// What `ipco`/`ipma` say of one item.
#[derive(Default, Clone)]
struct Props {
    size: Option<(u32, u32)>,
    quarter_turns: u8,
    icc: u64,
    alpha: bool,
}

#[derive(Clone)]
struct Item {
    id: u32,
    kind: [u8; 4],
    props: Props,
    /// `(construction method, extents as (offset, length))`.
    extents: Option<(u8, Vec<(u64, u64)>)>,
}

/// The codec of an ISO-BMFF image, from its brands: `None` when it is not one we read.
pub(super) fn brand_format(head: &[u8]) -> Option<InputFormat> {
    if head.len() < 16 || &head[4..8] != b"ftyp" {
        return None;
    }
    let size = (be32(head, 0) as usize).clamp(16, head.len().min(4096));
    let brands = std::iter::once(&head[8..12]).chain(head[16..size].chunks_exact(4));
    let mut heif = false;
    for b in brands {
        match b {
            b"avif" | b"avis" => return Some(InputFormat::Avif),
            b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" | b"mif1" | b"msf1" => {
                heif = true
            }
            _ => {}
        }
    }
    heif.then_some(InputFormat::Heic)
}

/// Walks a HEIF/AVIF file; returns what it declares and its real codec (a `mif1` file says it
/// only through its items).
pub(super) fn probe(b: &[u8], walk: &Walk<'_>) -> Result<(Found, InputFormat), Stop> {
    let top = boxes(b)?;
    let meta = top
        .iter()
        .find(|x| &x.kind == b"meta")
        .ok_or(Stop::Broken("the file has no meta box (no still image)"))?;
    let mut r = Rd::new(meta.body);
    r.full()?;
    let children = boxes(r.rest())?;
    let find = |k: &[u8; 4]| children.iter().find(|x| &x.kind == k);
    let hdlr = find(b"hdlr").ok_or(Stop::Broken("the meta box has no handler"))?;
    if hdlr.body.get(8..12) != Some(b"pict") {
        return Err(Stop::Broken("the meta box is not an image handler"));
    }
    let primary = {
        let pitm = find(b"pitm").ok_or(Stop::Broken("the file names no primary item"))?;
        let mut r = Rd::new(pitm.body);
        let (v, _) = r.full()?;
        if v == 0 {
            r.u16()?
        } else {
            r.u32()?
        }
    };
    let mut items = item_infos(find(b"iinf").ok_or(Stop::Broken("the file has no item list"))?)?;
    if let Some(iprp) = find(b"iprp") {
        properties(iprp.body, &mut items, walk)?;
    }
    let idat_len = find(b"idat").map_or(0, |x| x.body.len() as u64);
    if let Some(iloc) = find(b"iloc") {
        locations(iloc.body, &mut items)?;
    }
    let refs = match find(b"iref") {
        Some(iref) => references(iref.body)?,
        None => Vec::new(),
    };
    let item = |id: u32| items.iter().find(|i| i.id == id);
    let main = item(primary).ok_or(Stop::Broken("the primary item is not in the item list"))?;
    // Every coded image the decoder might touch: its size within the limits, its data inside
    // the file.
    for i in items.iter().filter(|i| coded(&i.kind)) {
        let (w, h) = i
            .props
            .size
            .ok_or(Stop::Broken("an image item declares no size (ispe)"))?;
        walk.area(u64::from(w), u64::from(h))?;
    }
    let in_file = |i: &Item| -> Result<(), Stop> {
        let (method, extents) = i
            .extents
            .as_ref()
            .ok_or(Stop::Broken("an image item has no location (iloc)"))?;
        let limit = match method {
            0 => b.len() as u64,
            1 => idat_len,
            _ => {
                return Err(Stop::Broken(
                    "an item is stored by reference to another item",
                ))
            }
        };
        for &(offset, len) in extents {
            let end = offset.checked_add(len).ok_or(Stop::Broken(TRUNCATED))?;
            if end > limit || len == 0 && extents.len() > 1 {
                return Err(Stop::Broken(
                    "an item's data lies outside the file (truncated)",
                ));
            }
        }
        Ok(())
    };
    let mut found;
    let codec;
    if &main.kind == b"grid" {
        let tiles: Vec<u32> = refs
            .iter()
            .find(|(kind, from, _)| kind == b"dimg" && *from == primary)
            .map(|(_, _, to)| to.clone())
            .ok_or(Stop::Broken("the grid names no tiles"))?;
        let data = item_data(b, find(b"idat").map(|x| x.body), main)?;
        let mut g = Rd::new(&data);
        let _version = g.u8()?;
        let flags = g.u8()?;
        let rows = u64::from(g.u8()?) + 1;
        let cols = u64::from(g.u8()?) + 1;
        let (ow, oh) = if flags & 1 == 1 {
            (u64::from(g.u32()?), u64::from(g.u32()?))
        } else {
            (u64::from(g.u16()?), u64::from(g.u16()?))
        };
        if rows * cols > u64::from(walk.limits.max_tiles) {
            return Err(Stop::Limit(JobError::new(
                ErrorCode::LimitsComplexity,
                format!(
                    "inputs.{}: its image grid has more tiles than allowed; the limit is {} \
                     (max_tiles)",
                    walk.name, walk.limits.max_tiles
                ),
            )));
        }
        if tiles.len() as u64 != rows * cols {
            return Err(Stop::Broken(
                "the grid's tile count does not match its layout",
            ));
        }
        let (ow, oh) = walk.area(ow, oh)?;
        found = Found::new(ow, oh);
        let mut tile_size = None;
        let mut tile_codec = None;
        for id in &tiles {
            let t = item(*id).ok_or(Stop::Broken("a grid tile is not in the item list"))?;
            if !coded(&t.kind) || tile_codec.is_some_and(|k| k != t.kind) {
                return Err(Stop::Broken(
                    "a grid tile is not a coded image of the grid's codec",
                ));
            }
            tile_codec = Some(t.kind);
            in_file(t)?;
            let size = t
                .props
                .size
                .ok_or(Stop::Broken("a grid tile declares no size"))?;
            if tile_size.is_some_and(|s| s != size) {
                return Err(Stop::Broken("the grid's tiles are not all one size"));
            }
            tile_size = Some(size);
        }
        let (tw, th) = tile_size.ok_or(Stop::Broken("the grid names no tiles"))?;
        let (cover_w, cover_h) = (cols * u64::from(tw), rows * u64::from(th));
        // Tiles must cover the output, and not by more than one tile's worth.
        if cover_w < u64::from(ow)
            || cover_h < u64::from(oh)
            || cover_w - u64::from(ow) >= u64::from(tw)
            || cover_h - u64::from(oh) >= u64::from(th)
        {
            return Err(Stop::Broken(
                "the grid's tiles do not cover its declared size",
            ));
        }
        walk.reach(&mut found, cover_w, cover_h)?;
        codec = tile_codec.expect("at least one tile");
    } else if coded(&main.kind) {
        in_file(main)?;
        let (w, h) = main.props.size.expect("checked above");
        found = Found::new(w, h);
        codec = main.kind;
    } else {
        return Err(Stop::Limit(JobError::new(
            ErrorCode::InputUnsupportedFormat,
            format!(
                "inputs.{}: its primary image is coded as `{}`, which is not supported; \
                 supported in HEIF: HEVC (hvc1) and AV1 (av01), alone or in a grid",
                walk.name,
                String::from_utf8_lossy(&main.kind).escape_default()
            ),
        )));
    }
    // An alpha plane is decoded with the image: it must be inside the file too.
    for (kind, from, to) in &refs {
        if kind == b"auxl" && to.contains(&primary) {
            if let Some(aux) = item(*from).filter(|a| a.props.alpha && coded(&a.kind)) {
                in_file(aux)?;
            }
        }
    }
    if main.props.quarter_turns % 2 == 1 {
        found = Found {
            width: found.height,
            height: found.width,
            extent: (found.extent.1, found.extent.0),
            ..found
        };
    }
    found.icc_bytes = main.props.icc;
    walk.icc(found.icc_bytes)?;
    // Image sequences (avis, msf1): each track's sample count.
    if let Some(moov) = top.iter().find(|x| &x.kind == b"moov") {
        found.frames = found.frames.max(sequence_frames(moov.body, walk, 0)?);
    }
    let format = if &codec == b"av01" {
        InputFormat::Avif
    } else {
        InputFormat::Heic
    };
    Ok((found, format))
}

fn coded(kind: &[u8; 4]) -> bool {
    kind == b"hvc1" || kind == b"av01"
}

/// `iinf`: the items' ids and types.
fn item_infos(iinf: &Bx<'_>) -> Result<Vec<Item>, Stop> {
    let mut r = Rd::new(iinf.body);
    let (v, _) = r.full()?;
    let count = if v == 0 { r.u16()? } else { r.u32()? } as usize;
    if count > MAX_ITEMS {
        return Err(Stop::Broken(
            "the file lists more items than any image needs",
        ));
    }
    let mut items = Vec::with_capacity(count.min(256));
    for infe in boxes(r.rest())?.iter().filter(|x| &x.kind == b"infe") {
        let mut e = Rd::new(infe.body);
        let (v, _) = e.full()?;
        if v < 2 {
            continue;
        }
        let id = if v == 2 { e.u16()? } else { e.u32()? };
        e.u16()?;
        let kind: [u8; 4] = e.take(4)?.try_into().expect("4 bytes");
        items.push(Item {
            id,
            kind,
            props: Props::default(),
            extents: None,
        });
    }
    if items.len() > MAX_ITEMS {
        return Err(Stop::Broken(
            "the file lists more items than any image needs",
        ));
    }
    Ok(items)
}

/// `iprp`: each item's properties, as `ipma` associates them with `ipco`'s boxes.
fn properties(iprp: &[u8], items: &mut [Item], walk: &Walk<'_>) -> Result<(), Stop> {
    let children = boxes(iprp)?;
    let ipco = children
        .iter()
        .find(|x| &x.kind == b"ipco")
        .ok_or(Stop::Broken("the property list is missing"))?;
    let props = boxes(ipco.body)?;
    for ipma in children.iter().filter(|x| &x.kind == b"ipma") {
        let mut r = Rd::new(ipma.body);
        let (v, flags) = r.full()?;
        let entries = r.u32()?;
        for _ in 0..entries {
            let id = if v < 1 { r.u16()? } else { r.u32()? };
            let n = r.u8()?;
            let mut p = Props::default();
            for _ in 0..n {
                let index = if flags & 1 == 1 {
                    r.u16()? & 0x7fff
                } else {
                    u32::from(r.u8()? & 0x7f)
                } as usize;
                if index == 0 {
                    continue;
                }
                let prop = props
                    .get(index - 1)
                    .ok_or(Stop::Broken("an item names a property that does not exist"))?;
                property(prop, &mut p, walk)?;
            }
            if let Some(item) = items.iter_mut().find(|i| i.id == id) {
                item.props = p;
            }
        }
    }
    Ok(())
}

fn property(prop: &Bx<'_>, p: &mut Props, walk: &Walk<'_>) -> Result<(), Stop> {
    let mut r = Rd::new(prop.body);
    match &prop.kind {
        b"ispe" => {
            r.full()?;
            let (w, h) = (r.u32()?, r.u32()?);
            if w == 0 || h == 0 {
                return Err(Stop::Broken("an image declares a zero size"));
            }
            walk.area(u64::from(w), u64::from(h))?;
            p.size = Some((w, h));
        }
        b"irot" => p.quarter_turns = r.u8()? & 3,
        b"colr" => {
            let kind = r.take(4)?;
            if kind == b"rICC" || kind == b"prof" {
                p.icc = r.rest().len() as u64;
                walk.icc(p.icc)?;
            }
        }
        b"auxC" => {
            r.full()?;
            let urn = r.rest();
            let urn = &urn[..urn.iter().position(|&c| c == 0).unwrap_or(urn.len())];
            p.alpha = urn == b"urn:mpeg:hevc:2015:auxid:1"
                || urn == b"urn:mpeg:mpegB:cicp:systems:auxiliary:alpha";
        }
        _ => {}
    }
    Ok(())
}

/// `iloc`: where each item's bytes are.
fn locations(iloc: &[u8], items: &mut [Item]) -> Result<(), Stop> {
    let mut r = Rd::new(iloc);
    let (v, _) = r.full()?;
    if v > 2 {
        return Err(Stop::Broken("the item locations use an unknown version"));
    }
    let sizes = r.u8()?;
    let (offset_size, length_size) = (sizes >> 4, sizes & 15);
    let sizes = r.u8()?;
    let (base_size, index_size) = (sizes >> 4, if v >= 1 { sizes & 15 } else { 0 });
    let count = if v < 2 { r.u16()? } else { r.u32()? };
    if count as usize > MAX_ITEMS {
        return Err(Stop::Broken(
            "the file locates more items than any image needs",
        ));
    }
    for _ in 0..count {
        let id = if v < 2 { r.u16()? } else { r.u32()? };
        let method = if v >= 1 { (r.u16()? & 15) as u8 } else { 0 };
        r.u16()?;
        let base = r.uint(base_size)?;
        let n = r.u16()?;
        let mut extents = Vec::with_capacity(n.min(64) as usize);
        for _ in 0..n {
            r.uint(index_size)?;
            let offset = r.uint(offset_size)?;
            let len = r.uint(length_size)?;
            let offset = base.checked_add(offset).ok_or(Stop::Broken(TRUNCATED))?;
            extents.push((offset, len));
        }
        if let Some(item) = items.iter_mut().find(|i| i.id == id) {
            item.extents = Some((method, extents));
        }
    }
    Ok(())
}

/// `iref`: (kind, from, to…) for every reference.
type Refs = Vec<([u8; 4], u32, Vec<u32>)>;

fn references(iref: &[u8]) -> Result<Refs, Stop> {
    let mut r = Rd::new(iref);
    let (v, _) = r.full()?;
    let mut out = Vec::new();
    for x in boxes(r.rest())? {
        let mut e = Rd::new(x.body);
        let from = if v == 0 { e.u16()? } else { e.u32()? };
        let n = e.u16()?;
        let mut to = Vec::with_capacity(n.min(256) as usize);
        for _ in 0..n {
            to.push(if v == 0 { e.u16()? } else { e.u32()? });
        }
        out.push((x.kind, from, to));
    }
    Ok(out)
}

/// The bytes of a (small) item: a grid's description.
fn item_data(file: &[u8], idat: Option<&[u8]>, item: &Item) -> Result<Vec<u8>, Stop> {
    let (method, extents) = item
        .extents
        .as_ref()
        .ok_or(Stop::Broken("the grid has no location (iloc)"))?;
    let source = match method {
        0 => file,
        1 => idat.ok_or(Stop::Broken("the grid's data box is missing"))?,
        _ => return Err(Stop::Broken("the grid is stored by reference")),
    };
    let mut out = Vec::new();
    for &(offset, len) in extents {
        let end = offset
            .checked_add(len)
            .filter(|&e| e <= source.len() as u64);
        let end = end.ok_or(Stop::Broken("the grid's data lies outside the file"))? as usize;
        out.extend_from_slice(&source[offset as usize..end]);
        if out.len() > 64 {
            return Err(Stop::Broken("the grid's description is too long"));
        }
    }
    Ok(out)
}

/// The largest sample count of any track under `moov` (`trak/mdia/minf/stbl/stsz`).
fn sequence_frames(body: &[u8], walk: &Walk<'_>, depth: u32) -> Result<u32, Stop> {
    if depth > MAX_DEPTH {
        return Err(Stop::Broken("the movie boxes nest too deeply"));
    }
    let mut most = 0;
    for x in boxes(body)? {
        match &x.kind {
            b"trak" | b"mdia" | b"minf" | b"stbl" => {
                most = most.max(sequence_frames(x.body, walk, depth + 1)?)
            }
            b"stsz" => {
                let mut r = Rd::new(x.body);
                r.full()?;
                r.u32()?;
                let n = r.u32()?;
                walk.frames(u64::from(n))?;
                most = most.max(n);
            }
            _ => {}
        }
    }
    Ok(most)
}
