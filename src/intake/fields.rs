//! Typed parsing of request fields, with errors that name the field's path and what was
//! expected — never the value that was sent.
//!
//! [`typed`] reads CBOR with the worker's own [`super::de::Deserializer`], whose errors are
//! built from serde's kinds (`expected f32, got a string`), under [`serde_path_to_error`] for
//! the path. JSON (request files, tools) goes through serde_json, whose messages quote values
//! (`invalid type: string "Aurora, 14 Rue des Lilas", expected f32`): [`typed_json`] rewrites
//! them from serde's fixed formats into the same value-free form, and replaces a message in
//! no known format by a generic one, so nothing unforeseen is echoed either.

pub use super::de::{safe_key, Kind};
use serde::de::DeserializeOwned;

/// A field that could not be parsed: where, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path from the request's root, e.g. `outputs[2].quality`.
    pub path: String,
    /// What was expected there (never the value found).
    pub message: String,
    /// Shape or value.
    pub kind: Kind,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Parses one CBOR item (and nothing after it) into `T`. `root` is the field's own path
/// (`outputs`, `recipe`).
pub fn typed<T: DeserializeOwned>(bytes: &[u8], root: &str) -> Result<T, FieldError> {
    let mut de = super::de::Deserializer::new(bytes);
    let mut track = serde_path_to_error::Track::new();
    let parsed = T::deserialize(serde_path_to_error::Deserializer::new(&mut de, &mut track));
    match parsed {
        Ok(value) if de.at_end() => Ok(value),
        Ok(_) => Err(FieldError {
            path: root.to_owned(),
            message: "bytes follow the item".into(),
            kind: Kind::Malformed,
        }),
        Err(e) => Err(FieldError {
            path: join(root, &safe_path(&track.path())),
            message: e.message,
            kind: e.kind,
        }),
    }
}

/// Parses a JSON value into `T` with the same path tracking and messages (request files and
/// tools; the worker itself only reads CBOR).
pub fn typed_json<T: DeserializeOwned>(
    value: serde_json::Value,
    root: &str,
) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = join(root, &safe_path(e.path()));
        let (message, kind) = describe(&e.into_inner().to_string());
        FieldError {
            path,
            message,
            kind,
        }
    })
}

fn join(root: &str, inner: &str) -> String {
    match inner {
        "." | "" => root.to_owned(),
        i if i.starts_with('[') => format!("{root}{i}"),
        i => format!("{root}.{i}"),
    }
}

fn safe_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(if safe_key(key) { key } else { "?" });
            }
            Segment::Unknown => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push('?');
            }
        }
    }
    if out.is_empty() {
        ".".into()
    } else {
        out
    }
}

/// Rewrites one of serde's messages so that it names types and expectations only.
pub fn describe(raw: &str) -> (String, Kind) {
    // serde's formats end in ", expected …" with the expectation written by the type being
    // parsed (ours); the value, which could contain anything, sits before it.
    let expected = raw.rfind(", expected ").map(|i| &raw[i + 11..]);
    if let Some(rest) = raw.strip_prefix("invalid type: ") {
        let got = kind_of(rest);
        let exp = expected.unwrap_or("another type");
        return (format!("expected {exp}, got {got}"), Kind::Malformed);
    }
    if raw.starts_with("invalid value: ") || raw.starts_with("invalid length ") {
        let exp = expected.unwrap_or("another value");
        return (format!("expected {exp}"), Kind::Invalid);
    }
    if raw.starts_with("unknown variant ") {
        let exp = expected.unwrap_or("a known variant");
        return (format!("unknown variant, expected {exp}"), Kind::Invalid);
    }
    if let Some(rest) = raw.strip_prefix("unknown field `") {
        let name = rest.split('`').next().filter(|n| safe_key(n));
        let exp = expected.unwrap_or("no other fields");
        let message = match name {
            Some(n) => format!("unknown field `{n}`, expected {exp}"),
            None => format!("unknown field, expected {exp}"),
        };
        return (message, Kind::Malformed);
    }
    for fixed in ["missing field `", "duplicate field `"] {
        if raw.starts_with(fixed) && raw.ends_with('`') && raw.len() < 64 {
            // The field named is one of ours (serde only names declared fields here).
            return (raw.to_owned(), Kind::Malformed);
        }
    }
    if raw == "integer too large" || raw == "unexpected negative integer" {
        return ("expected a smaller integer".into(), Kind::Invalid);
    }
    ("invalid value".into(), Kind::Invalid)
}

/// The type of serde's `Unexpected` in its display form, without its value.
fn kind_of(unexpected: &str) -> &'static str {
    let table: [(&str, &str); 14] = [
        ("boolean", "a boolean"),
        ("integer", "an integer"),
        ("floating point", "a number"),
        ("character", "a string"),
        ("string", "a string"),
        ("byte array", "bytes"),
        ("bytes", "bytes"),
        ("unit", "null"),
        ("null", "null"),
        ("undefined", "null"),
        ("Option", "an optional value"),
        ("sequence", "an array"),
        ("map", "a map"),
        ("tag", "a tag"),
    ];
    table
        .iter()
        .find(|(prefix, _)| unexpected.starts_with(prefix))
        .map_or("another type", |(_, kind)| kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Out {
        quality: Option<u8>,
        size: f32,
        fit: Option<Fit>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Fit {
        Cover,
    }

    fn cbor(v: serde_json::Value) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(&v, &mut out).unwrap();
        out
    }

    const SECRET: &str = "Aurora, 14 Rue des Lilas, Lyon";

    #[test]
    fn a_wrong_type_names_the_path_and_the_type_but_never_the_value() {
        let body = cbor(serde_json::json!([{"size": SECRET}]));
        let e = typed::<Vec<Out>>(&body, "outputs").unwrap_err();
        assert_eq!(e.path, "outputs[0].size");
        assert_eq!(e.kind, Kind::Malformed);
        assert!(!e.message.contains("Aurora"), "{e}");
        assert_eq!(e.message, "expected f32, got a string");
    }

    #[test]
    fn out_of_range_values_and_unknown_variants_are_not_echoed() {
        let e = typed::<Vec<Out>>(&cbor(serde_json::json!([{"size": 1, "quality": 900}])), "o")
            .unwrap_err();
        assert_eq!((e.path.as_str(), e.kind), ("o[0].quality", Kind::Invalid));
        assert!(!e.message.contains("900"), "{e}");
        let e = typed::<Vec<Out>>(&cbor(serde_json::json!([{"size": 1, "fit": SECRET}])), "o")
            .unwrap_err();
        assert!(
            !e.message.contains("Aurora") && e.message.contains("cover"),
            "{e}"
        );
    }

    #[test]
    fn unknown_fields_are_named_only_when_they_look_like_field_names() {
        let e = typed::<Out>(&cbor(serde_json::json!({"size": 1, "sise": 2})), "r").unwrap_err();
        assert!(e.message.starts_with("unknown field `sise`"), "{e}");
        let e = typed::<Out>(&cbor(serde_json::json!({"size": 1, SECRET: 2})), "r").unwrap_err();
        assert!(!e.to_string().contains("Aurora"), "{e}");
    }

    #[test]
    fn a_duplicated_field_is_malformed() {
        // {"size": 1, "size": 2}
        let body = [
            0xa2, 0x64, b's', b'i', b'z', b'e', 0x01, 0x64, b's', b'i', b'z', b'e', 0x02,
        ];
        let e = typed::<Out>(&body, "r").unwrap_err();
        assert_eq!(e.kind, Kind::Malformed, "{e}");
        assert!(e.message.contains("duplicate field `size`"), "{e}");
    }
}
