//! The entropy-coded side of a JPEG: the bit reader over a scan's bytes, Huffman tables, and
//! the four kinds of block a scan can hold (sequential; progressive DC first and refinement,
//! AC first and refinement).
//!
//! Coefficients are kept in zig-zag order, and only the first `stride` of each block: a
//! sequential scan still has to read every code, but stores nothing past what the scaled
//! inverse DCT uses.

use super::Refusal;

/// What a scan's bit reader and decoders fail with.
pub type Result<T> = std::result::Result<T, Refusal>;

const CORRUPT_CODE: Refusal = Refusal::Corrupt("a Huffman code that no table defines");

/// Bits of a code resolved by one table look-up.
const FAST_BITS: u32 = 9;

/// A Huffman table, as a DHT segment defines it.
#[derive(Clone)]
pub struct Huffman {
    /// `(length << 8) | symbol` for each `FAST_BITS`-bit prefix; 0 where the code is longer.
    fast: Box<[u16; 1 << FAST_BITS]>,
    /// For AC tables, a whole coefficient per prefix where its code and value bits fit in
    /// `FAST_BITS`: `value << 16 | run << 4 | bits used`; 0 where they do not (or the symbol
    /// is an end of band or a run of zeros).
    fast_ac: Box<[i32; 1 << FAST_BITS]>,
    /// Per code length (index 1..=16): the largest code of that length, -1 for none.
    maxcode: [i32; 18],
    /// Per code length: the first code of that length.
    mincode: [i32; 17],
    /// Per code length: where its symbols start in `symbols`.
    first: [i32; 17],
    symbols: Vec<u8>,
}

impl Huffman {
    /// Builds a table from the 16 code-length counts and the symbols of a DHT segment.
    pub fn new(counts: &[u8; 16], symbols: &[u8]) -> Result<Self> {
        let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
        if total != symbols.len() || total > 256 {
            return Err(Refusal::Corrupt(
                "a Huffman table's counts and symbols disagree",
            ));
        }
        let mut t = Self {
            fast: Box::new([0; 1 << FAST_BITS]),
            fast_ac: Box::new([0; 1 << FAST_BITS]),
            maxcode: [-1; 18],
            mincode: [0; 17],
            first: [0; 17],
            symbols: symbols.to_vec(),
        };
        let (mut code, mut k) = (0i32, 0i32);
        for len in 1..=16usize {
            let n = i32::from(counts[len - 1]);
            t.first[len] = k;
            t.mincode[len] = code;
            if n > 0 {
                t.maxcode[len] = code + n - 1;
            }
            for i in 0..n {
                if len as u32 <= FAST_BITS {
                    let c = (code + i) as usize;
                    let shift = FAST_BITS - len as u32;
                    let sym = u16::from(symbols[(k + i) as usize]);
                    let entry = ((len as u16) << 8) | sym;
                    for fill in 0..(1usize << shift) {
                        let at = (c << shift) | fill;
                        if at < t.fast.len() {
                            t.fast[at] = entry;
                        }
                    }
                }
            }
            code += n;
            k += n;
            if code > (1 << len) {
                return Err(Refusal::Corrupt("an over-subscribed Huffman table"));
            }
            code <<= 1;
        }
        // Sentinel: a code longer than 16 bits never matches.
        t.maxcode[17] = i32::MAX;
        for prefix in 0..1usize << FAST_BITS {
            let e = t.fast[prefix];
            let (len, sym) = (u32::from(e >> 8), e & 0xFF);
            let (run, size) = (u32::from(sym >> 4), u32::from(sym & 15));
            if e == 0 || size == 0 || len + size > FAST_BITS {
                continue;
            }
            let raw = (prefix as u32 >> (FAST_BITS - len - size)) & ((1 << size) - 1);
            let value = extend(raw as i32, size);
            t.fast_ac[prefix] = (value << 16) | (run << 4) as i32 | (len + size) as i32;
        }
        Ok(t)
    }
}

/// A scan's entropy-coded bytes, read MSB first, with byte stuffing undone. At a marker (or
/// the end of the slice) it feeds zero bits and counts them: consuming any of them means the
/// scan ran out of data, which [`Bits::overran`] reports.
pub struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    buf: u64,
    n: u32,
    fake: u32,
    at_marker: bool,
}

impl<'a> Bits<'a> {
    /// A reader over `data`, the bytes after a SOS header up to the next marker that is not a
    /// restart marker.
    pub fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            buf: 0,
            n: 0,
            fake: 0,
            at_marker: false,
        }
    }

    #[inline]
    fn refill(&mut self) {
        // The fast path: eight bytes with no 0xFF among them need no unstuffing.
        if !self.at_marker && self.pos + 8 <= self.data.len() {
            let mut word = [0u8; 8];
            word.copy_from_slice(&self.data[self.pos..self.pos + 8]);
            let w = u64::from_be_bytes(word);
            let inv = !w;
            let has_ff = inv.wrapping_sub(0x0101_0101_0101_0101) & !inv & 0x8080_8080_8080_8080;
            if has_ff == 0 {
                let take = (64 - self.n) / 8;
                if take > 0 {
                    let bits = take * 8;
                    let chunk = if bits == 64 { w } else { w >> (64 - bits) };
                    self.buf |= chunk << (64 - self.n - bits);
                    self.n += bits;
                    self.pos += take as usize;
                }
                return;
            }
        }
        while self.n <= 56 {
            let byte = self.next_byte();
            self.buf |= u64::from(byte) << (56 - self.n);
            self.n += 8;
        }
    }

    #[inline]
    fn next_byte(&mut self) -> u8 {
        if !self.at_marker {
            if let Some(&b) = self.data.get(self.pos) {
                if b != 0xFF {
                    self.pos += 1;
                    return b;
                }
                if self.data.get(self.pos + 1) == Some(&0) {
                    self.pos += 2;
                    return 0xFF;
                }
            }
            // A marker (or the end): stop in front of it.
            self.at_marker = true;
        }
        self.fake += 8;
        0
    }

    #[inline]
    fn consume(&mut self, k: u32) {
        self.buf <<= k;
        self.n -= k;
    }

    /// The next `k` (≤ 16) bits as an unsigned number.
    #[inline]
    pub fn get(&mut self, k: u32) -> u32 {
        if k == 0 {
            return 0;
        }
        if self.n < k {
            self.refill();
        }
        let v = (self.buf >> (64 - k)) as u32;
        self.consume(k);
        v
    }

    /// The next `k` bits as a coefficient value (JPEG's EXTEND).
    #[inline]
    pub fn value(&mut self, k: u32) -> i32 {
        extend(self.get(k) as i32, k)
    }

    /// The next AC code of a sequential or first-pass scan, through `t`'s combined table
    /// where the code and its value bits fit in one look-up.
    #[inline]
    pub fn ac(&mut self, t: &Huffman) -> Result<Ac> {
        if self.n < FAST_BITS {
            self.refill();
        }
        let e = t.fast_ac[(self.buf >> (64 - FAST_BITS)) as usize];
        if e != 0 {
            self.consume((e & 15) as u32);
            return Ok(Ac::Coefficient(((e >> 4) & 15) as usize, e >> 16));
        }
        let rs = self.symbol(t)?;
        let (r, s) = (u32::from(rs >> 4), u32::from(rs & 15));
        Ok(match (s, r) {
            (0, 15) => Ac::SixteenZeros,
            (0, r) => Ac::EndOfBand(r),
            (s, r) => Ac::Coefficient(r as usize, self.value(s)),
        })
    }

    /// The next Huffman-coded symbol.
    #[inline]
    pub fn symbol(&mut self, t: &Huffman) -> Result<u8> {
        if self.n < 16 {
            self.refill();
        }
        let e = t.fast[(self.buf >> (64 - FAST_BITS)) as usize];
        if e != 0 {
            self.consume(u32::from(e >> 8));
            return Ok(e as u8);
        }
        let code16 = (self.buf >> 48) as i32;
        for len in FAST_BITS as usize + 1..=16 {
            let c = code16 >> (16 - len);
            if c <= t.maxcode[len] {
                self.consume(len as u32);
                let at = t.first[len] + c - t.mincode[len];
                return usize::try_from(at)
                    .ok()
                    .and_then(|i| t.symbols.get(i).copied())
                    .ok_or(CORRUPT_CODE);
            }
        }
        Err(CORRUPT_CODE)
    }

    /// Whether the scan used bits past its data (a truncated or corrupt file).
    pub fn overran(&self) -> bool {
        self.n < self.fake
    }

    /// At the end of a restart interval: drops the buffered bits and steps over the RSTn
    /// marker that must come next.
    pub fn restart(&mut self) -> Result<()> {
        if self.overran() {
            return Err(Refusal::Corrupt("a restart interval runs past its data"));
        }
        self.buf = 0;
        self.n = 0;
        self.fake = 0;
        self.at_marker = false;
        // Padding bits the reader had not loaded yet are skipped up to the marker.
        let at = super::segment_end(self.data, self.pos, true);
        match self.data.get(at..at + 2) {
            Some([0xFF, 0xD0..=0xD7]) => {
                self.pos = at + 2;
                Ok(())
            }
            _ => Err(Refusal::Corrupt("a restart marker is missing")),
        }
    }
}

/// One AC code: a coefficient after `run` zeros, a run of 16 zeros, or the end of the band
/// (with its run-length class, which a progressive scan extends to a run of bands).
pub enum Ac {
    /// `(zeros before it, value)`.
    Coefficient(usize, i32),
    /// ZRL.
    SixteenZeros,
    /// EOB, or EOBn in a progressive scan.
    EndOfBand(u32),
}

/// JPEG's EXTEND: `k` raw bits as a signed coefficient value.
#[inline]
fn extend(v: i32, k: u32) -> i32 {
    if k == 0 {
        0
    } else if v < (1 << (k - 1)) {
        v - (1 << k) + 1
    } else {
        v
    }
}

/// The coding tables and state a block decoder needs, for one component of a scan.
pub struct Tables<'t> {
    /// DC table (first and sequential scans).
    pub dc: Option<&'t Huffman>,
    /// AC table (AC and sequential scans).
    pub ac: Option<&'t Huffman>,
}

const NO_TABLE: Refusal = Refusal::Corrupt("a scan uses an undefined Huffman table");

/// One block of a sequential (baseline or extended) scan. Every code is read; coefficients
/// past `out.len()` are not stored.
#[inline]
pub fn sequential(bits: &mut Bits, t: &Tables, pred: &mut i32, out: &mut [i16]) -> Result<()> {
    let (dc, ac) = (t.dc.ok_or(NO_TABLE)?, t.ac.ok_or(NO_TABLE)?);
    let s = u32::from(bits.symbol(dc)?);
    if s > 16 {
        return Err(Refusal::Corrupt("a DC difference too large"));
    }
    *pred = pred.wrapping_add(bits.value(s));
    out[0] = *pred as i16;
    let keep = out.len();
    let mut k = 1usize;
    while k < 64 {
        match bits.ac(ac)? {
            Ac::Coefficient(run, value) => {
                k += run;
                if k < keep {
                    out[k] = value as i16;
                }
                k += 1;
            }
            Ac::SixteenZeros => k += 16,
            Ac::EndOfBand(_) => break,
        }
    }
    if k > 64 {
        return Err(Refusal::Corrupt("a block with more than 64 coefficients"));
    }
    Ok(())
}

/// The first pass over DC coefficients of a progressive scan.
#[inline]
pub fn dc_first(
    bits: &mut Bits,
    t: &Tables,
    pred: &mut i32,
    al: u32,
    out: &mut [i16],
) -> Result<()> {
    let s = u32::from(bits.symbol(t.dc.ok_or(NO_TABLE)?)?);
    if s > 16 {
        return Err(Refusal::Corrupt("a DC difference too large"));
    }
    *pred = pred.wrapping_add(bits.value(s));
    out[0] = pred.wrapping_shl(al) as i16;
    Ok(())
}

/// A refinement pass over DC coefficients: one bit each.
#[inline]
pub fn dc_refine(bits: &mut Bits, al: u32, out: &mut [i16]) {
    if bits.get(1) != 0 {
        out[0] |= 1i16.wrapping_shl(al);
    }
}

/// A progressive AC band's first pass. `eobrun` carries end-of-band runs across blocks.
#[inline]
pub fn ac_first(
    bits: &mut Bits,
    t: &Tables,
    band: (usize, usize),
    al: u32,
    eobrun: &mut u32,
    out: &mut [i16],
) -> Result<()> {
    if *eobrun > 0 {
        *eobrun -= 1;
        return Ok(());
    }
    let ac = t.ac.ok_or(NO_TABLE)?;
    let (ss, se) = band;
    let mut k = ss;
    while k <= se {
        match bits.ac(ac)? {
            Ac::Coefficient(run, value) => {
                k += run;
                if k > se {
                    return Err(Refusal::Corrupt("a coefficient outside its band"));
                }
                out[k] = value.wrapping_shl(al) as i16;
                k += 1;
            }
            Ac::SixteenZeros => k += 16,
            Ac::EndOfBand(r) => {
                *eobrun = (1u32 << r) - 1 + bits.get(r);
                break;
            }
        }
    }
    Ok(())
}

/// A progressive AC band's refinement pass: one more bit for coefficients already nonzero,
/// and new coefficients of magnitude `1 << al`.
#[inline]
pub fn ac_refine(
    bits: &mut Bits,
    t: &Tables,
    band: (usize, usize),
    al: u32,
    eobrun: &mut u32,
    out: &mut [i16],
) -> Result<()> {
    let (ss, se) = band;
    let p1 = 1i16.wrapping_shl(al);
    let m1 = (-1i16).wrapping_shl(al);
    let refine = |bits: &mut Bits, c: &mut i16| {
        if bits.get(1) != 0 && (*c & p1) == 0 {
            *c = c.wrapping_add(if *c >= 0 { p1 } else { m1 });
        }
    };
    let mut k = ss;
    if *eobrun == 0 {
        let ac = t.ac.ok_or(NO_TABLE)?;
        while k <= se {
            let rs = bits.symbol(ac)?;
            let (mut r, s) = (i32::from(rs >> 4), u32::from(rs & 15));
            let mut val = 0i16;
            if s != 0 {
                if s != 1 {
                    return Err(Refusal::Corrupt("a refinement coefficient larger than one"));
                }
                val = if bits.get(1) != 0 { p1 } else { m1 };
            } else if r != 15 {
                *eobrun = (1u32 << r) + bits.get(r as u32);
                break;
            }
            while k <= se {
                if out[k] != 0 {
                    refine(bits, &mut out[k]);
                } else {
                    r -= 1;
                    if r < 0 {
                        break;
                    }
                }
                k += 1;
            }
            if val != 0 && k <= se {
                out[k] = val;
            }
            k += 1;
        }
    }
    if *eobrun > 0 {
        while k <= se {
            if out[k] != 0 {
                refine(bits, &mut out[k]);
            }
            k += 1;
        }
        *eobrun -= 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stuffed_bytes_are_undone_and_a_marker_feeds_counted_zeros() {
        let data = [0b1010_1010, 0xFF, 0x00, 0x0F, 0xFF, 0xD9];
        let mut b = Bits::new(&data);
        assert_eq!(b.get(8), 0b1010_1010);
        assert_eq!(b.get(8), 0xFF);
        assert_eq!(b.get(4), 0);
        assert_eq!(b.get(4), 0xF);
        assert!(!b.overran());
        assert_eq!(b.get(3), 0);
        assert!(b.overran());
    }

    #[test]
    fn a_table_resolves_short_and_long_codes() {
        // Two 2-bit codes (00, 01), then one code of each length 3..=12: 100, 1010, ...
        let mut counts = [0u8; 16];
        counts[1] = 2;
        for c in counts.iter_mut().take(12).skip(2) {
            *c = 1;
        }
        let symbols: Vec<u8> = (0..12).collect();
        let t = Huffman::new(&counts, &symbols).unwrap();
        // 01 → symbol 1; 1011 1111 1110 (the 12-bit code) → symbol 11.
        let data = [0b0110_1111, 0b1111_1000, 0, 0];
        let mut b = Bits::new(&data);
        assert_eq!(b.symbol(&t).unwrap(), 1);
        assert_eq!(b.symbol(&t).unwrap(), 11);
        assert!(Huffman::new(
            &[3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &[1, 2, 3]
        )
        .is_err());
    }
}
