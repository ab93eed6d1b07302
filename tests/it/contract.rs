//! The machine-readable contract (`docs/contract/midnit.cddl`, CDDL per RFC 8610) is the one
//! the worker and the clients speak: its error codes are the worker's, the TypeScript types
//! name only its fields, and its rules accept what they should and refuse what they should.
//! Real requests and replies are validated against it in `clients.rs`.

use midnit_worker::protocol::ErrorCode;

pub const CDDL: &str = include_str!("../../docs/contract/midnit.cddl");

/// Validates `cbor` against the rule `rule` of the contract.
pub fn validate(rule: &str, cbor: &[u8]) -> Result<(), String> {
    let schema = format!("root = {rule}\n{CDDL}");
    cddl::validate_cbor_from_slice(&schema, cbor, None).map_err(|e| format!("{rule}: {e}"))
}

fn cbor(v: &ciborium::Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).unwrap();
    out
}

fn rule_body(name: &str) -> &'static str {
    let at = CDDL
        .find(&format!("\n{name} ="))
        .unwrap_or_else(|| panic!("the CDDL has no rule {name}"));
    let rest = &CDDL[at + 1..];
    let end = rest[1..].find("\n\n").map_or(rest.len(), |e| e + 1);
    &rest[..end]
}

#[test]
fn the_cddl_lists_exactly_the_workers_error_codes() {
    let rule = rule_body("error-code");
    for code in ErrorCode::ALL {
        assert!(
            rule.contains(&format!("\"{}\"", code.as_str())),
            "{code} missing"
        );
    }
    assert_eq!(
        rule.matches('"').count(),
        ErrorCode::ALL.len() * 2,
        "{rule}"
    );
}

#[test]
fn every_client_package_has_a_class_for_every_error_code() {
    let python = include_str!("../../clients/python/src/midnit_client/errors.py");
    let typescript = include_str!("../../clients/typescript/src/errors.ts");
    for code in ErrorCode::ALL {
        let code = code.as_str();
        assert!(
            python.contains(&format!("code = \"{code}\"")),
            "Python lacks {code}"
        );
        assert!(
            typescript.contains(&format!("\"{code}\":")),
            "TypeScript lacks {code}"
        );
    }
}

#[test]
fn every_field_of_the_typescript_types_is_one_the_cddl_names() {
    let wire = include_str!("../../clients/typescript/src/wire.ts");
    for (interface, rule) in [
        ("OutputSpec", "output"),
        ("Request", "request"),
        ("Output", "output-data"),
        ("WipeEntry", "wipe-entry"),
        ("Receipt", "receipt"),
        ("ErrorBody", "error-body"),
        ("AttestedOutput", "attested-output"),
        ("Attested", "attested"),
        ("SealedFacts", "sealed-facts"),
    ] {
        let start = wire
            .find(&format!("export interface {interface} {{"))
            .unwrap_or_else(|| panic!("wire.ts has no {interface}"));
        let body = &wire[start..start + wire[start..].find("\n}").unwrap()];
        let mut cddl = rule_body(rule).to_owned();
        if rule == "request" {
            cddl += rule_body("preset-outputs");
        }
        for line in body.lines().skip(1) {
            let field = line.trim().split([':', '?']).next().unwrap();
            if field.is_empty() || field.starts_with('/') || field.starts_with('*') {
                continue;
            }
            assert!(
                cddl.contains(&format!("\"{field}\":")),
                "{interface}.{field} is not in the CDDL rule {rule}"
            );
        }
    }
    let reply = rule_body("reply-ok").to_owned() + rule_body("reply-error");
    for field in ["v", "status", "outputs", "error", "receipt", "attestation"] {
        assert!(reply.contains(&format!("\"{field}\":")), "Reply.{field}");
    }
}

#[test]
fn the_rules_accept_a_valid_request_and_refuse_broken_ones() {
    use ciborium::Value as V;
    let text = |s: &str| V::Text(s.into());
    let output = |q: u64| {
        V::Map(vec![
            (text("name"), text("thumb")),
            (text("format"), text("jpeg")),
            (text("quality"), V::Integer(q.into())),
        ])
    };
    let request = |extra: Vec<(V, V)>| {
        let mut m = vec![
            (text("v"), V::Integer(1.into())),
            (
                text("inputs"),
                V::Map(vec![(text("photo"), V::Bytes(vec![1, 2]))]),
            ),
        ];
        m.extend(extra);
        cbor(&V::Map(m))
    };
    validate(
        "request",
        &request(vec![(text("outputs"), V::Array(vec![output(85)]))]),
    )
    .unwrap();
    validate("request", &request(vec![(text("preset"), text("avatar"))])).unwrap();
    for (what, broken) in [
        (
            "quality 900",
            request(vec![(text("outputs"), V::Array(vec![output(900)]))]),
        ),
        (
            "no outputs",
            request(vec![(text("outputs"), V::Array(vec![]))]),
        ),
        (
            "unknown field",
            request(vec![(text("colour"), text("red"))]),
        ),
        ("not a map", cbor(&text("hello"))),
    ] {
        assert!(validate("request", &broken).is_err(), "{what} passed");
    }
    let receipt = V::Map(vec![
        (text("started_at_ms"), V::Integer(1.into())),
        (text("sealed_at_ms"), V::Integer(2.into())),
        (text("wiped_bytes"), V::Integer(0.into())),
        (text("failures"), V::Integer(0.into())),
        (text("wiped"), V::Array(vec![])),
    ]);
    let reply = |code: &str, extra: Vec<(V, V)>| {
        let error = V::Map(vec![
            (text("code"), text(code)),
            (text("message"), text("inputs.photo: empty")),
            (text("retryable"), V::Bool(false)),
        ]);
        let mut m = vec![
            (text("v"), V::Integer(1.into())),
            (text("status"), text("error")),
            (text("error"), error),
            (text("receipt"), receipt.clone()),
        ];
        m.extend(extra);
        cbor(&V::Map(m))
    };
    validate("reply", &reply("input.empty", vec![])).unwrap();
    assert!(
        validate("reply", &reply("input.gone", vec![])).is_err(),
        "an unknown code passed"
    );
    let extra = vec![(text("outputs"), V::Array(vec![]))];
    assert!(
        validate("reply", &reply("input.empty", extra)).is_err(),
        "an error with outputs passed"
    );
}
