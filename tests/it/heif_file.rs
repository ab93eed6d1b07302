//! A small HEIF reader and writer for the tests: takes the coded image out of a file that
//! `heif-enc` wrote, and writes new files around it — rotated, as a grid of tiles, or lying
//! about itself in the ways an attacker would.

/// The boxes in `data`: (type, payload).
pub fn boxes(data: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= data.len() {
        let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        let kind: [u8; 4] = data[at + 4..at + 8].try_into().unwrap();
        let size = if size == 0 { data.len() - at } else { size };
        out.push((kind, &data[at + 8..at + size]));
        at += size;
    }
    out
}

fn be16(b: &[u8], at: usize) -> u32 {
    u32::from(u16::from_be_bytes([b[at], b[at + 1]]))
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// A box: size, type, payload.
pub fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut b = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    b.extend_from_slice(kind);
    b.extend_from_slice(body);
    b
}

/// A full box: version and flags, then the payload.
pub fn full(kind: &[u8; 4], version: u8, flags: u32, body: &[u8]) -> Vec<u8> {
    let mut b = (u32::from(version) << 24 | flags).to_be_bytes().to_vec();
    b.extend_from_slice(body);
    bx(kind, &b)
}

/// One coded HEVC image: its decoder configuration (`hvcC` box), size and data.
#[derive(Clone)]
pub struct Coded {
    pub hvcc: Vec<u8>,
    pub size: (u32, u32),
    pub colr: Option<Vec<u8>>,
    pub data: Vec<u8>,
}

/// The primary image of a single-image HEIC as `heif-enc` writes it (iloc version 0 or 1,
/// 4-byte offsets and lengths).
pub fn read_primary(file: &[u8]) -> Coded {
    let top = boxes(file);
    let meta = top.iter().find(|b| &b.0 == b"meta").unwrap().1;
    let children = boxes(&meta[4..]);
    let get = |k: &[u8; 4]| children.iter().find(|b| &b.0 == k).unwrap().1;
    let pitm = get(b"pitm");
    let primary = be16(pitm, 4);
    let iprp = boxes(get(b"iprp"));
    let ipco: Vec<Vec<u8>> = boxes(iprp.iter().find(|b| &b.0 == b"ipco").unwrap().1)
        .iter()
        .map(|(k, body)| bx(k, body))
        .collect();
    let ipma = iprp.iter().find(|b| &b.0 == b"ipma").unwrap().1;
    let flags = be32(ipma, 0) & 0xffffff;
    let entries = be32(ipma, 4);
    let mut at = 8;
    let mut props = Vec::new();
    for _ in 0..entries {
        let id = be16(ipma, at);
        let n = ipma[at + 2] as usize;
        at += 3;
        for _ in 0..n {
            let index = if flags & 1 == 1 {
                let v = be16(ipma, at) & 0x7fff;
                at += 2;
                v
            } else {
                let v = u32::from(ipma[at] & 0x7f);
                at += 1;
                v
            };
            if id == primary {
                props.push(ipco[index as usize - 1].clone());
            }
        }
    }
    let find = |k: &[u8; 4]| props.iter().find(|p| &p[4..8] == k).cloned();
    let ispe = find(b"ispe").unwrap();
    let size = (be32(&ispe, 12), be32(&ispe, 16));
    let iloc = get(b"iloc");
    let version = iloc[0];
    assert_eq!(iloc[4], 0x44, "4-byte offsets and lengths");
    let base_size = (iloc[5] >> 4) as usize;
    assert!(
        base_size == 0 || base_size == 4,
        "a 0- or 4-byte base offset"
    );
    let count = be16(iloc, 6);
    let mut at = 8;
    let mut data = Vec::new();
    for _ in 0..count {
        let id = be16(iloc, at);
        at += 2;
        if version >= 1 {
            at += 2;
        }
        at += 2; // data reference index
        let base = if base_size == 4 {
            be32(iloc, at) as usize
        } else {
            0
        };
        at += base_size;
        let extents = be16(iloc, at);
        at += 2;
        for _ in 0..extents {
            let (off, len) = (base + be32(iloc, at) as usize, be32(iloc, at + 4) as usize);
            at += 8;
            if id == primary {
                data.extend_from_slice(&file[off..off + len]);
            }
        }
    }
    Coded {
        hvcc: find(b"hvcC").unwrap(),
        size,
        colr: find(b"colr"),
        data,
    }
}

/// `ispe` for a size.
pub fn ispe(w: u32, h: u32) -> Vec<u8> {
    let mut b = w.to_be_bytes().to_vec();
    b.extend_from_slice(&h.to_be_bytes());
    full(b"ispe", 0, 0, &b)
}

/// One item of a file to write.
pub struct Item {
    pub id: u16,
    pub kind: [u8; 4],
    pub props: Vec<Vec<u8>>,
    pub data: Vec<u8>,
    /// Stored in `idat` (construction method 1) rather than `mdat`.
    pub in_idat: bool,
}

/// A HEIF file of `items`, `primary` first in importance, with `refs` (type, from, to…).
/// `cut` drops that many bytes from the end (a truncated upload).
pub fn write(items: &[Item], primary: u16, refs: &[([u8; 4], u16, Vec<u16>)]) -> Vec<u8> {
    let mut ftyp = b"heic".to_vec();
    ftyp.extend_from_slice(&0u32.to_be_bytes());
    ftyp.extend_from_slice(b"mif1heic");
    let ftyp = bx(b"ftyp", &ftyp);
    let meta_of = |offsets: &[u32]| {
        let mut hdlr = vec![0; 4];
        hdlr.extend_from_slice(b"pict");
        hdlr.extend_from_slice(&[0; 13]);
        let mut iinf = (items.len() as u16).to_be_bytes().to_vec();
        for i in items {
            let mut e = i.id.to_be_bytes().to_vec();
            e.extend_from_slice(&[0, 0]);
            e.extend_from_slice(&i.kind);
            e.push(0);
            // Grid tiles are hidden: only the grid is an image to show.
            let hidden = u32::from(i.id != primary && &i.kind == b"hvc1");
            iinf.extend(full(b"infe", 2, hidden, &e));
        }
        let mut ipco = Vec::new();
        let mut ipma = (items.len() as u32).to_be_bytes().to_vec();
        let mut index = 0u8;
        for i in items {
            ipma.extend_from_slice(&i.id.to_be_bytes());
            ipma.push(i.props.len() as u8);
            for p in &i.props {
                ipco.extend_from_slice(p);
                index += 1;
                ipma.push(0x80 | index);
            }
        }
        let iprp = [bx(b"ipco", &ipco), full(b"ipma", 0, 0, &ipma)].concat();
        let mut iref = Vec::new();
        for (kind, from, to) in refs {
            let mut r = from.to_be_bytes().to_vec();
            r.extend_from_slice(&(to.len() as u16).to_be_bytes());
            for t in to {
                r.extend_from_slice(&t.to_be_bytes());
            }
            iref.extend(bx(kind, &r));
        }
        let mut iloc = vec![0x44, 0x00];
        iloc.extend_from_slice(&(items.len() as u16).to_be_bytes());
        let mut idat = Vec::new();
        for (i, item) in items.iter().enumerate() {
            iloc.extend_from_slice(&item.id.to_be_bytes());
            iloc.extend_from_slice(&u16::from(item.in_idat).to_be_bytes());
            iloc.extend_from_slice(&[0, 0, 0, 1]);
            let offset = if item.in_idat {
                idat.len() as u32
            } else {
                offsets[i]
            };
            iloc.extend_from_slice(&offset.to_be_bytes());
            iloc.extend_from_slice(&(item.data.len() as u32).to_be_bytes());
            if item.in_idat {
                idat.extend_from_slice(&item.data);
            }
        }
        let mut body = vec![0; 4];
        body.extend(full(b"hdlr", 0, 0, &hdlr));
        body.extend(full(b"pitm", 0, 0, &primary.to_be_bytes()));
        body.extend(full(b"iinf", 0, 0, &iinf));
        if !refs.is_empty() {
            body.extend(full(b"iref", 0, 0, &iref));
        }
        body.extend(bx(b"iprp", &iprp));
        body.extend(full(b"iloc", 1, 0, &iloc));
        if !idat.is_empty() {
            body.extend(bx(b"idat", &idat));
        }
        bx(b"meta", &body)
    };
    let placeholder = meta_of(&vec![0; items.len()]);
    let mut at = (ftyp.len() + placeholder.len() + 8) as u32;
    let mut offsets = Vec::new();
    let mut mdat = Vec::new();
    for i in items {
        offsets.push(at);
        if !i.in_idat {
            at += i.data.len() as u32;
            mdat.extend_from_slice(&i.data);
        }
    }
    [ftyp, meta_of(&offsets), bx(b"mdat", &mdat)].concat()
}

/// The item of one coded image with its own properties plus `extra`.
pub fn image_item(id: u16, c: &Coded, extra: Vec<Vec<u8>>) -> Item {
    let mut props = vec![c.hvcc.clone(), ispe(c.size.0, c.size.1)];
    props.extend(c.colr.clone());
    props.extend(extra);
    Item {
        id,
        kind: *b"hvc1",
        props,
        data: c.data.clone(),
        in_idat: false,
    }
}

/// A single image with an `irot` of `turns` quarter turns anticlockwise.
pub fn rotated(c: &Coded, turns: u8) -> Vec<u8> {
    write(&[image_item(1, c, vec![bx(b"irot", &[turns])])], 1, &[])
}

/// A `rows`×`cols` grid of `tiles` (row by row) declaring an output of `out`.
pub fn grid(tiles: &[Coded], rows: u8, cols: u8, out: (u32, u32)) -> Vec<u8> {
    let ids: Vec<u16> = (0..tiles.len() as u16).map(|i| i + 2).collect();
    grid_with(tiles, rows, cols, out, &ids, ispe(out.0, out.1))
}

/// A grid whose references and `ispe` are given (for lying grids).
pub fn grid_with(
    tiles: &[Coded],
    rows: u8,
    cols: u8,
    out: (u32, u32),
    refs: &[u16],
    grid_ispe: Vec<u8>,
) -> Vec<u8> {
    let mut desc = vec![0, 1, rows - 1, cols - 1];
    desc.extend_from_slice(&out.0.to_be_bytes());
    desc.extend_from_slice(&out.1.to_be_bytes());
    let mut items = vec![Item {
        id: 1,
        kind: *b"grid",
        props: vec![grid_ispe],
        data: desc,
        in_idat: true,
    }];
    for (i, t) in tiles.iter().enumerate() {
        items.push(image_item(i as u16 + 2, t, vec![]));
    }
    write(&items, 1, &[(*b"dimg", 1, refs.to_vec())])
}
