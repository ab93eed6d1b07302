//! A serde deserializer over the strict CBOR [`Cursor`]: request fields (`outputs`, `recipe`)
//! go straight from the body's bytes into their types.
//!
//! - Numbers: a float field takes an integer too (`"x": 50`), as JSON-minded clients send.
//! - Nesting is bounded ([`MAX_DEPTH`]); strings are borrowed from the body, not copied.
//! - Errors are [`DeError`]s built from serde's *kinds* — "expected f32, got a string" — never
//!   from the value found, so nothing a requester sent can be echoed back or logged.

mod access;

use access::{Items, UnitVariant, Variant};

use super::cbor::{CborError, Cursor, Head, MAX_DEPTH};
use serde::de::{self, Unexpected, Visitor};
use std::fmt;

/// What kind of mistake a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Not well-formed CBOR, or not the shape asked for (wrong type, missing or unknown field).
    Malformed,
    /// The right shape, but a value outside what is allowed.
    Invalid,
}

/// A map key is kept in a path only when it looks like a field name; anything else (a
/// requester's free text used as a key) becomes `?`.
pub fn safe_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 32
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A deserialisation failure: what kind of mistake, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeError {
    /// Shape or value.
    pub kind: Kind,
    /// What was expected there (never the value found).
    pub message: String,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

fn malformed(message: impl Into<String>) -> DeError {
    DeError {
        kind: Kind::Malformed,
        message: message.into(),
    }
}

impl From<CborError> for DeError {
    fn from(e: CborError) -> Self {
        malformed(e.to_string())
    }
}

/// The type of an unexpected value, without the value.
fn kind_of(u: &Unexpected<'_>) -> &'static str {
    match u {
        Unexpected::Bool(_) => "a boolean",
        Unexpected::Unsigned(_) | Unexpected::Signed(_) => "an integer",
        Unexpected::Float(_) => "a number",
        Unexpected::Char(_) | Unexpected::Str(_) => "a string",
        Unexpected::Bytes(_) => "bytes",
        Unexpected::Unit => "null",
        Unexpected::Option => "an optional value",
        Unexpected::Seq => "an array",
        Unexpected::Map => "a map",
        Unexpected::Enum
        | Unexpected::UnitVariant
        | Unexpected::NewtypeVariant
        | Unexpected::TupleVariant
        | Unexpected::StructVariant => "a variant",
        Unexpected::NewtypeStruct => "a value",
        Unexpected::Other(other) => match *other {
            "tag" => "a tag",
            _ => "another value",
        },
    }
}

fn one_of(names: &'static [&'static str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.len() {
        0 => "nothing here".into(),
        1 => quoted[0].clone(),
        _ => format!("one of {}", quoted.join(", ")),
    }
}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        // Only this crate's own code reaches here (its visitors never format a value).
        DeError {
            kind: Kind::Invalid,
            message: msg.to_string(),
        }
    }

    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        malformed(format!("expected {exp}, got {}", kind_of(&unexp)))
    }

    fn invalid_value(_unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        DeError {
            kind: Kind::Invalid,
            message: format!("expected {exp}"),
        }
    }

    fn invalid_length(_len: usize, exp: &dyn de::Expected) -> Self {
        DeError {
            kind: Kind::Invalid,
            message: format!("expected {exp}"),
        }
    }

    fn unknown_variant(_variant: &str, expected: &'static [&'static str]) -> Self {
        DeError {
            kind: Kind::Invalid,
            message: format!("unknown variant, expected {}", one_of(expected)),
        }
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let named = if safe_key(field) {
            format!("unknown field `{field}`")
        } else {
            "unknown field".into()
        };
        malformed(format!("{named}, expected {}", one_of(expected)))
    }

    fn missing_field(field: &'static str) -> Self {
        malformed(format!("missing field `{field}`"))
    }

    fn duplicate_field(field: &'static str) -> Self {
        malformed(format!("duplicate field `{field}`"))
    }
}

/// A deserializer of one CBOR item at a time from a byte slice.
pub struct Deserializer<'de> {
    c: Cursor<'de>,
    depth: u32,
}

impl<'de> Deserializer<'de> {
    /// A deserializer at the start of `bytes`.
    pub fn new(bytes: &'de [u8]) -> Self {
        Self {
            c: Cursor::new(bytes),
            depth: 0,
        }
    }

    /// Whether every byte has been read.
    pub fn at_end(&self) -> bool {
        self.c.at_end()
    }

    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, DeError>) -> Result<T, DeError> {
        if self.depth >= MAX_DEPTH {
            return Err(CborError::TooDeep.into());
        }
        self.depth += 1;
        let out = f(self);
        self.depth -= 1;
        out
    }

    /// The next head, tags skipped (no tag changes what a field means here).
    fn head(&mut self) -> Result<Head, DeError> {
        loop {
            match self.c.head()? {
                Head::Tag(_) => continue,
                h => return Ok(h),
            }
        }
    }

    fn peek(&self) -> Result<Head, DeError> {
        let mut c = self.c.clone();
        loop {
            match c.head()? {
                Head::Tag(_) => continue,
                h => return Ok(h),
            }
        }
    }

    /// The bytes of a string whose head was just read (chunks joined when indefinite).
    fn chunks(&mut self, len: Option<u64>, text: bool) -> Result<Chunks<'de>, DeError> {
        if let Some(n) = len {
            return Ok(Chunks::Borrowed(self.c.take(n)?));
        }
        let mut joined = Vec::new();
        loop {
            match self.c.head()? {
                Head::Break => return Ok(Chunks::Owned(joined)),
                Head::Text(Some(n)) if text => joined.extend_from_slice(self.c.take(n)?),
                Head::Bytes(Some(n)) if !text => joined.extend_from_slice(self.c.take(n)?),
                _ => return Err(malformed("a string chunk of the wrong type")),
            }
        }
    }
}

enum Chunks<'de> {
    Borrowed(&'de [u8]),
    Owned(Vec<u8>),
}

fn unexpected(h: Head) -> Unexpected<'static> {
    match h {
        Head::Unsigned(n) => Unexpected::Unsigned(n),
        Head::Negative(_) => Unexpected::Signed(-1),
        Head::Bytes(_) => Unexpected::Bytes(&[]),
        Head::Text(_) => Unexpected::Str(""),
        Head::Array(_) => Unexpected::Seq,
        Head::Map(_) => Unexpected::Map,
        Head::Simple(20 | 21) => Unexpected::Bool(false),
        Head::Simple(_) => Unexpected::Unit,
        Head::Float(f) => Unexpected::Float(f),
        Head::Tag(_) | Head::Break => Unexpected::Other("tag"),
    }
}

impl<'de> de::Deserializer<'de> for &mut Deserializer<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self.head()? {
            Head::Unsigned(n) => v.visit_u64(n),
            Head::Negative(n) => match i64::try_from(n) {
                Ok(n) => v.visit_i64(-1 - n),
                Err(_) => v.visit_i128(-1 - i128::from(n)),
            },
            Head::Bytes(len) => match self.chunks(len, false)? {
                Chunks::Borrowed(b) => v.visit_borrowed_bytes(b),
                Chunks::Owned(b) => v.visit_byte_buf(b),
            },
            Head::Text(len) => {
                let invalid = || malformed("a text string is not UTF-8");
                match self.chunks(len, true)? {
                    Chunks::Borrowed(b) => {
                        v.visit_borrowed_str(std::str::from_utf8(b).map_err(|_| invalid())?)
                    }
                    Chunks::Owned(b) => {
                        v.visit_string(String::from_utf8(b).map_err(|_| invalid())?)
                    }
                }
            }
            Head::Array(len) => self.nested(|d| v.visit_seq(Items { d, left: len })),
            Head::Map(len) => self.nested(|d| v.visit_map(Items { d, left: len })),
            Head::Simple(20) => v.visit_bool(false),
            Head::Simple(21) => v.visit_bool(true),
            Head::Simple(22 | 23) => v.visit_unit(),
            Head::Simple(_) => Err(malformed("an unassigned simple value")),
            Head::Float(f) => v.visit_f64(f),
            Head::Tag(_) | Head::Break => Err(malformed("a break outside an indefinite item")),
        }
    }

    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self.peek()? {
            Head::Float(_) | Head::Unsigned(_) | Head::Negative(_) => match self.head()? {
                Head::Float(f) => v.visit_f64(f),
                Head::Unsigned(n) => v.visit_f64(n as f64),
                Head::Negative(n) => v.visit_f64(-1.0 - n as f64),
                _ => unreachable!("peeked a number"),
            },
            other => Err(de::Error::invalid_type(unexpected(other), &v)),
        }
    }

    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(v)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self.peek()? {
            Head::Simple(22 | 23) => {
                self.head()?;
                v.visit_none()
            }
            _ => v.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, DeError> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        match self.peek()? {
            Head::Text(_) => v.visit_enum(UnitVariant(self)),
            Head::Map(Some(1)) | Head::Map(None) => {
                let head = self.head()?;
                let indefinite = head == Head::Map(None);
                self.nested(|d| {
                    let value = v.visit_enum(Variant(d))?;
                    if indefinite && !d.c.at_break()? {
                        return Err(malformed("a variant map holds exactly one entry"));
                    }
                    Ok(value)
                })
            }
            other => Err(de::Error::invalid_type(unexpected(other), &v)),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.c.item()?;
        v.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 char str string bytes byte_buf unit
        unit_struct seq tuple tuple_struct map struct identifier
    }
}
