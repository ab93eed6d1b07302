//! The request envelope (contract v1): the top-level CBOR map with `v`, `inputs`, `outputs`,
//! `recipe` and `preset`, read strictly and without copying.
//!
//! - Every key is read once: a duplicated key is `request.malformed` (a map with two `inputs`
//!   would otherwise have one of them silently win), an unknown key too.
//! - `v` is looked at before anything else is judged, so a request of another contract version
//!   is answered `request.unsupported_version` whatever its shape.
//! - `inputs` is counted against `max_inputs` from its header, before any input is touched; each
//!   input must be a definite-length byte string and is returned as its byte range in the body.
//! - `outputs` and `recipe` are returned as the bytes of their items for the typed parser.

use super::cbor::{CborError, Cursor, Head};
use super::fields::safe_key;
use crate::protocol::{ErrorCode, JobError, VERSION};
use std::ops::Range;

/// The fields of a v1 request.
const FIELDS: [&str; 5] = ["v", "inputs", "outputs", "recipe", "preset"];

/// Most entries the top-level map may have (v1 knows five keys).
const MAX_ENTRIES: u64 = 16;

/// Longest input name.
pub const MAX_NAME: usize = 64;

/// The envelope of a v1 request.
#[derive(Debug)]
pub struct Envelope<'a> {
    /// Input names with the range of their bytes in the body, in request order.
    pub inputs: Vec<(String, Range<usize>)>,
    /// The `outputs` item (absent: the preset's outputs only).
    pub outputs: Option<&'a [u8]>,
    /// The name of the preset the request asks for, if any (checked against the presets).
    pub preset: Option<&'a str>,
    /// The `recipe` item, if any.
    pub recipe: Option<&'a [u8]>,
}

fn malformed(message: impl Into<String>) -> JobError {
    JobError::new(ErrorCode::RequestMalformed, message)
}

fn cbor(what: &str) -> impl Fn(CborError) -> JobError + '_ {
    move |e| malformed(format!("{what}: {e}"))
}

/// Whether `name` is a usable input name: 1–64 of `A-Z a-z 0-9 - _ .`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// The top-level entries, each key read once.
fn entries(body: &[u8]) -> Result<Vec<(&str, &[u8])>, JobError> {
    let mut c = Cursor::new(body);
    let count = match c.head().map_err(cbor("body"))? {
        Head::Map(Some(n)) if n > MAX_ENTRIES => {
            return Err(malformed(format!(
                "the request map has more than {MAX_ENTRIES} entries"
            )))
        }
        Head::Map(n) => n,
        _ => return Err(malformed("the body is not a CBOR map")),
    };
    let mut seen: Vec<(&str, &[u8])> = Vec::new();
    let mut i = 0u64;
    loop {
        match count {
            Some(n) if i == n => break,
            None if c.at_break().map_err(cbor("body"))? => break,
            _ => {}
        }
        if i >= MAX_ENTRIES {
            return Err(malformed(format!(
                "the request map has more than {MAX_ENTRIES} entries"
            )));
        }
        let key = c
            .text()
            .map_err(cbor("body"))?
            .ok_or_else(|| malformed("the request map's keys must be text strings"))?;
        let value = c.item().map_err(cbor("body"))?;
        if seen.iter().any(|(k, _)| *k == key) {
            return Err(malformed(match safe_key(key) {
                true => format!("duplicate field `{key}`"),
                false => "duplicate field".into(),
            }));
        }
        seen.push((key, value));
        i += 1;
    }
    if !c.at_end() {
        return Err(malformed("bytes follow the request map"));
    }
    Ok(seen)
}

/// Reads the envelope of `body`; every input range is into `body`.
pub fn read(body: &[u8], max_inputs: usize) -> Result<Envelope<'_>, JobError> {
    let entries = entries(body)?;
    let field = |name: &str| entries.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    let version = field("v").ok_or_else(|| malformed("missing field `v`"))?;
    match Cursor::new(version).head() {
        Ok(Head::Unsigned(v)) if v == u64::from(VERSION) => {}
        Ok(Head::Unsigned(_)) => {
            return Err(JobError::new(
                ErrorCode::RequestUnsupportedVersion,
                format!("this contract version is not supported; this worker speaks v{VERSION}"),
            ))
        }
        _ => return Err(malformed("v: expected an unsigned integer")),
    }
    if let Some((key, _)) = entries.iter().find(|(k, _)| !FIELDS.contains(k)) {
        let expected = "expected one of `v`, `inputs`, `outputs`, `recipe`, `preset`";
        return Err(malformed(match safe_key(key) {
            true => format!("unknown field `{key}`, {expected}"),
            false => format!("unknown field, {expected}"),
        }));
    }
    let inputs_item = field("inputs").ok_or_else(|| malformed("missing field `inputs`"))?;
    let offset = inputs_item.as_ptr() as usize - body.as_ptr() as usize;
    let inputs = inputs(inputs_item, offset, max_inputs)?;
    let preset = match field("preset") {
        None => None,
        Some(item) => {
            let name = Cursor::new(item)
                .text()
                .ok()
                .flatten()
                .filter(|n| valid_name(n));
            let valid = name.ok_or_else(|| {
                JobError::new(
                    ErrorCode::RequestInvalid,
                    format!("preset: expected a preset name (1-{MAX_NAME} characters of A-Z a-z 0-9 - _ .)"),
                )
            })?;
            Some(valid)
        }
    };
    let outputs = field("outputs");
    if outputs.is_none() && preset.is_none() {
        return Err(malformed("missing field `outputs`"));
    }
    Ok(Envelope {
        inputs,
        outputs,
        preset,
        recipe: field("recipe"),
    })
}

fn too_many(max: usize) -> JobError {
    JobError::new(
        ErrorCode::LimitsInputs,
        format!("the request has more inputs than the limit of {max} (max_inputs)"),
    )
}

/// The inputs map: names checked, counted against `max`, values located.
fn inputs(item: &[u8], offset: usize, max: usize) -> Result<Vec<(String, Range<usize>)>, JobError> {
    let mut c = Cursor::new(item);
    let count = match c.head().map_err(cbor("inputs"))? {
        Head::Map(Some(n)) if n > max as u64 => return Err(too_many(max)),
        Head::Map(n) => n,
        _ => return Err(malformed("inputs: expected a map of names to byte strings")),
    };
    let mut found: Vec<(String, Range<usize>)> = Vec::new();
    loop {
        match count {
            Some(n) if found.len() as u64 == n => break,
            None if c.at_break().map_err(cbor("inputs"))? => break,
            _ => {}
        }
        if found.len() == max {
            return Err(too_many(max));
        }
        let index = found.len();
        let name = c
            .text()
            .map_err(cbor("inputs"))?
            .ok_or_else(|| malformed(format!("inputs: key {index} is not a text string")))?;
        if !valid_name(name) {
            return Err(JobError::new(
                ErrorCode::RequestInvalid,
                format!(
                    "inputs: key {index} is not a valid input name \
                     (1-{MAX_NAME} characters of A-Z a-z 0-9 - _ .)"
                ),
            ));
        }
        if found.iter().any(|(n, _)| n == name) {
            return Err(malformed(format!("inputs.{name}: duplicate input name")));
        }
        let not_bytes = || {
            malformed(format!(
                "inputs.{name}: expected a definite-length byte string"
            ))
        };
        let len = match c.head().map_err(cbor("inputs"))? {
            Head::Bytes(Some(len)) => len,
            _ => return Err(not_bytes()),
        };
        let start = offset + c.pos();
        let data = c.take(len).map_err(cbor("inputs"))?;
        found.push((name.to_owned(), start..start + data.len()));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ciborium::Value as V;

    fn body(entries: Vec<(&str, V)>) -> Vec<u8> {
        let map = V::Map(
            entries
                .into_iter()
                .map(|(k, v)| (V::Text(k.into()), v))
                .collect(),
        );
        let mut out = Vec::new();
        ciborium::into_writer(&map, &mut out).unwrap();
        out
    }

    fn inputs(names: &[&str]) -> V {
        V::Map(
            names
                .iter()
                .map(|n| (V::Text((*n).into()), V::Bytes(vec![1, 2, 3])))
                .collect(),
        )
    }

    fn code(b: &[u8]) -> ErrorCode {
        read(b, 16).unwrap_err().code
    }

    #[test]
    fn inputs_are_located_in_the_body_without_copying() {
        let b = body(vec![
            ("v", V::Integer(1.into())),
            ("inputs", inputs(&["photo", "logo"])),
            ("outputs", V::Array(vec![])),
        ]);
        let env = read(&b, 16).unwrap();
        assert_eq!(env.inputs.len(), 2);
        for (_, range) in &env.inputs {
            assert_eq!(&b[range.clone()], &[1, 2, 3]);
        }
        assert_eq!(env.outputs, Some(&[0x80][..]));
        assert!(env.recipe.is_none());
    }

    #[test]
    fn a_duplicated_key_is_malformed_at_either_level() {
        let twice = body(vec![
            ("v", V::Integer(1.into())),
            ("inputs", inputs(&["a"])),
            ("inputs", inputs(&["b"])),
            ("outputs", V::Array(vec![])),
        ]);
        assert_eq!(code(&twice), ErrorCode::RequestMalformed);
        let names = body(vec![
            ("v", V::Integer(1.into())),
            ("inputs", inputs(&["a", "a"])),
            ("outputs", V::Array(vec![])),
        ]);
        assert_eq!(code(&names), ErrorCode::RequestMalformed);
    }

    #[test]
    fn inputs_are_counted_from_the_header_before_any_is_read() {
        // A map header claiming a million entries, and nothing after it.
        let mut b = body(vec![("v", V::Integer(1.into()))]);
        b[0] = 0xa2; // two entries
        b.extend_from_slice(&[0x66]);
        b.extend_from_slice(b"inputs");
        b.extend_from_slice(&[0xba, 0x00, 0x0f, 0x42, 0x40]);
        // The whole map is skipped first (it is truncated), so this is malformed; a real count
        // above the limit in a complete map is limits.inputs.
        assert_eq!(code(&b), ErrorCode::RequestMalformed);
        let names: Vec<String> = (0..17).map(|i| format!("i{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let many = body(vec![
            ("v", V::Integer(1.into())),
            ("inputs", inputs(&refs)),
            ("outputs", V::Array(vec![])),
        ]);
        assert_eq!(code(&many), ErrorCode::LimitsInputs);
    }

    #[test]
    fn another_version_is_named_whatever_else_the_body_holds() {
        let b = body(vec![
            ("v", V::Integer(2.into())),
            ("sealed", V::Bytes(vec![0; 8])),
        ]);
        assert_eq!(code(&b), ErrorCode::RequestUnsupportedVersion);
        let b = body(vec![("inputs", inputs(&["a"]))]);
        assert_eq!(code(&b), ErrorCode::RequestMalformed);
    }

    #[test]
    fn names_are_checked_and_values_must_be_definite_byte_strings() {
        let bad_name = body(vec![
            ("v", V::Integer(1.into())),
            ("inputs", inputs(&["Aurora's doll"])),
            ("outputs", V::Array(vec![])),
        ]);
        let e = read(&bad_name, 16).unwrap_err();
        assert_eq!(e.code, ErrorCode::RequestInvalid);
        assert!(!e.message.contains("Aurora"));
        let text = body(vec![
            ("v", V::Integer(1.into())),
            (
                "inputs",
                V::Map(vec![(V::Text("a".into()), V::Text("x".into()))]),
            ),
            ("outputs", V::Array(vec![])),
        ]);
        assert_eq!(code(&text), ErrorCode::RequestMalformed);
    }

    #[test]
    fn trailing_bytes_and_non_maps_are_malformed() {
        let mut b = body(vec![("v", V::Integer(1.into()))]);
        b.push(0);
        assert_eq!(code(&b), ErrorCode::RequestMalformed);
        assert_eq!(code(b"{\"v\":1}"), ErrorCode::RequestMalformed);
    }
}
