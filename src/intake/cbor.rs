//! A strict, allocation-free reader of CBOR (RFC 8949) structure, for the request envelope.
//!
//! It reads item heads and skips whole items without building anything, so intake can find
//! the inputs' byte strings inside the body (to copy each once, at its exact size) and hand
//! the `outputs` and `recipe` items to the typed parser as sub-slices. Work is linear in the
//! bytes read; nesting is bounded by [`MAX_DEPTH`].

/// Deepest nesting `Cursor::skip` follows.
pub const MAX_DEPTH: u32 = 64;

/// The head of one CBOR data item.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Head {
    /// Major type 0.
    Unsigned(u64),
    /// Major type 1 (the encoded argument; the value is −1 − argument).
    Negative(u64),
    /// Major type 2; `None` for an indefinite-length byte string.
    Bytes(Option<u64>),
    /// Major type 3; `None` for an indefinite-length text string.
    Text(Option<u64>),
    /// Major type 4; `None` for an indefinite-length array.
    Array(Option<u64>),
    /// Major type 5; `None` for an indefinite-length map.
    Map(Option<u64>),
    /// Major type 6.
    Tag(u64),
    /// Major type 7: a simple value (20 false, 21 true, 22 null, 23 undefined, …).
    Simple(u8),
    /// Major type 7: a half, single or double precision float.
    Float(f64),
    /// The "break" stop code ending an indefinite-length item.
    Break,
}

/// An IEEE 754 half-precision float.
fn half(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((bits >> 10) & 0x1f);
    let frac = f64::from(bits & 0x3ff);
    sign * match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

/// Why the bytes are not well-formed CBOR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CborError {
    /// The bytes end inside an item.
    Truncated,
    /// Not well-formed at this byte offset.
    Syntax(usize),
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep,
}

impl std::fmt::Display for CborError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Truncated => f.write_str("the CBOR ends inside an item"),
            Self::Syntax(at) => write!(f, "invalid CBOR at byte {at}"),
            Self::TooDeep => write!(f, "CBOR nested deeper than {MAX_DEPTH} levels"),
        }
    }
}

/// A position in a CBOR byte slice.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// The current byte offset.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Whether every byte has been read.
    pub fn at_end(&self) -> bool {
        self.pos == self.buf.len()
    }

    fn byte(&mut self) -> Result<u8, CborError> {
        let b = *self.buf.get(self.pos).ok_or(CborError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    /// Takes the next `n` bytes.
    pub fn take(&mut self, n: u64) -> Result<&'a [u8], CborError> {
        let n = usize::try_from(n).map_err(|_| CborError::Truncated)?;
        let end = self.pos.checked_add(n).ok_or(CborError::Truncated)?;
        let bytes = self.buf.get(self.pos..end).ok_or(CborError::Truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    /// The argument of a head with additional information `info`; `None` means indefinite.
    fn argument(&mut self, info: u8, at: usize) -> Result<Option<u64>, CborError> {
        let width = match info {
            0..=23 => return Ok(Some(u64::from(info))),
            24 => 1,
            25 => 2,
            26 => 4,
            27 => 8,
            31 => return Ok(None),
            _ => return Err(CborError::Syntax(at)),
        };
        let bytes = self.take(width)?;
        Ok(Some(
            bytes.iter().fold(0u64, |v, &b| (v << 8) | u64::from(b)),
        ))
    }

    /// Reads one item head.
    pub fn head(&mut self) -> Result<Head, CborError> {
        let at = self.pos;
        let initial = self.byte()?;
        let (major, info) = (initial >> 5, initial & 0x1f);
        let arg = self.argument(info, at)?;
        let definite = |arg: Option<u64>| arg.ok_or(CborError::Syntax(at));
        Ok(match major {
            0 => Head::Unsigned(definite(arg)?),
            1 => Head::Negative(definite(arg)?),
            2 => Head::Bytes(arg),
            3 => Head::Text(arg),
            4 => Head::Array(arg),
            5 => Head::Map(arg),
            6 => Head::Tag(definite(arg)?),
            _ => match (info, arg) {
                (31, None) => Head::Break,
                // One-byte simple values below 32 are not well-formed (RFC 8949 §3.3).
                (24, Some(v)) if v < 32 => return Err(CborError::Syntax(at)),
                (0..=24, Some(v)) => Head::Simple(v as u8),
                (25, Some(v)) => Head::Float(half(v as u16)),
                (26, Some(v)) => Head::Float(f64::from(f32::from_bits(v as u32))),
                (27, Some(v)) => Head::Float(f64::from_bits(v)),
                _ => return Err(CborError::Syntax(at)),
            },
        })
    }

    /// Reads a definite-length text string.
    pub fn text(&mut self) -> Result<Option<&'a str>, CborError> {
        let at = self.pos;
        match self.head()? {
            Head::Text(Some(n)) => {
                let bytes = self.take(n)?;
                std::str::from_utf8(bytes)
                    .map(Some)
                    .map_err(|_| CborError::Syntax(at))
            }
            _ => {
                self.pos = at;
                Ok(None)
            }
        }
    }

    /// The next head, without moving.
    pub fn peek(&self) -> Result<Head, CborError> {
        self.clone().head()
    }

    /// Whether the next byte is the break stop code (consumed if so).
    pub fn at_break(&mut self) -> Result<bool, CborError> {
        match self.buf.get(self.pos) {
            Some(0xff) => {
                self.pos += 1;
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Err(CborError::Truncated),
        }
    }

    /// Skips one whole item and returns its bytes.
    pub fn item(&mut self) -> Result<&'a [u8], CborError> {
        let start = self.pos;
        self.skip(0)?;
        Ok(&self.buf[start..self.pos])
    }

    fn skip(&mut self, depth: u32) -> Result<(), CborError> {
        if depth > MAX_DEPTH {
            return Err(CborError::TooDeep);
        }
        let at = self.pos;
        match self.head()? {
            Head::Unsigned(_) | Head::Negative(_) | Head::Simple(_) | Head::Float(_) => Ok(()),
            Head::Bytes(Some(n)) | Head::Text(Some(n)) => self.take(n).map(drop),
            Head::Bytes(None) => self.chunks(|h| matches!(h, Head::Bytes(Some(_)))),
            Head::Text(None) => self.chunks(|h| matches!(h, Head::Text(Some(_)))),
            // Every item takes at least one byte, so a huge declared count fails as soon as
            // the bytes run out: the loop is bounded by the input's length.
            Head::Array(Some(n)) => (0..n).try_for_each(|_| self.skip(depth + 1)),
            Head::Map(Some(n)) => {
                let items = n.checked_mul(2).ok_or(CborError::Truncated)?;
                (0..items).try_for_each(|_| self.skip(depth + 1))
            }
            Head::Array(None) => {
                while !self.at_break()? {
                    self.skip(depth + 1)?;
                }
                Ok(())
            }
            Head::Map(None) => {
                while !self.at_break()? {
                    self.skip(depth + 1)?;
                    self.skip(depth + 1)?;
                }
                Ok(())
            }
            Head::Tag(_) => self.skip(depth + 1),
            Head::Break => Err(CborError::Syntax(at)),
        }
    }

    /// The chunks of an indefinite-length string: definite strings of its own type, then break.
    fn chunks(&mut self, same: impl Fn(Head) -> bool) -> Result<(), CborError> {
        loop {
            let at = self.pos;
            match self.head()? {
                Head::Break => return Ok(()),
                h @ (Head::Bytes(Some(n)) | Head::Text(Some(n))) if same(h) => {
                    self.take(n)?;
                }
                _ => return Err(CborError::Syntax(at)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cbor(v: &ciborium::Value) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(v, &mut out).unwrap();
        out
    }

    #[test]
    fn skipping_an_item_lands_exactly_after_it() {
        use ciborium::Value as V;
        let nested = V::Map(vec![
            (
                V::Text("a".into()),
                V::Array(vec![V::Integer(1.into()), V::Float(2.5)]),
            ),
            (V::Text("b".into()), V::Bytes(vec![9; 300])),
            (V::Text("c".into()), V::Tag(1, Box::new(V::Null))),
        ]);
        let mut bytes = cbor(&nested);
        let len = bytes.len();
        bytes.push(0x00);
        let mut c = Cursor::new(&bytes);
        assert_eq!(c.item().unwrap().len(), len);
        assert_eq!(c.pos(), len);
    }

    #[test]
    fn indefinite_items_are_followed_to_their_break() {
        // [_ h'01', h'0203'] as an indefinite byte string inside an indefinite array.
        let bytes = [0x9f, 0x5f, 0x41, 0x01, 0x42, 0x02, 0x03, 0xff, 0x01, 0xff];
        let mut c = Cursor::new(&bytes);
        assert_eq!(c.item().unwrap().len(), bytes.len());
        // A text chunk inside a byte string is not well-formed.
        let mixed = [0x5f, 0x61, b'a', 0xff];
        assert_eq!(Cursor::new(&mixed).item(), Err(CborError::Syntax(1)));
    }

    #[test]
    fn a_huge_declared_length_fails_without_work() {
        // An array claiming 2^64 - 1 items, then nothing.
        let bytes = [0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(Cursor::new(&bytes).item(), Err(CborError::Truncated));
        let bytes = [0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(Cursor::new(&bytes).item(), Err(CborError::Truncated));
    }

    #[test]
    fn floats_of_every_width_read_back() {
        for v in [0.0f64, 1.5, -2.25, 65504.0, 1e-300] {
            let bytes = cbor(&ciborium::Value::Float(v));
            assert_eq!(Cursor::new(&bytes).head().unwrap(), Head::Float(v), "{v}");
        }
        // 1.0 as a half float.
        assert_eq!(
            Cursor::new(&[0xf9, 0x3c, 0x00]).head().unwrap(),
            Head::Float(1.0)
        );
    }

    #[test]
    fn nesting_is_bounded_and_reserved_heads_are_refused() {
        let deep = vec![0x81; 200];
        assert_eq!(Cursor::new(&deep).item(), Err(CborError::TooDeep));
        assert_eq!(Cursor::new(&[0x1c]).item(), Err(CborError::Syntax(0)));
        assert_eq!(Cursor::new(&[0xff]).item(), Err(CborError::Syntax(0)));
        assert_eq!(Cursor::new(&[0xf8, 0x10]).item(), Err(CborError::Syntax(0)));
    }
}
