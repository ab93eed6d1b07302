use super::*;

fn signer() -> ReceiptSigner {
    ReceiptSigner::from_seed(&[0x11; 32])
}

#[test]
fn an_attestation_verifies_with_the_pinned_key_and_returns_its_facts() {
    let s = signer();
    let facts = vector_attested(&s);
    let cose = s.attest(&facts);
    assert_eq!(verify(&cose, &s.public_key()).unwrap(), facts);
}

#[test]
fn an_edited_payload_or_another_key_is_refused() {
    let s = signer();
    let cose = s.attest(&vector_attested(&s));
    // Flip one byte inside the payload (the output digest sits near the end).
    let mut edited = cose.clone();
    let at = edited.len() - 80;
    edited[at] ^= 1;
    assert!(verify(&edited, &s.public_key()).is_err());
    let other = ReceiptSigner::from_seed(&[0x22; 32]);
    assert!(matches!(
        verify(&cose, &other.public_key()),
        Err(VerifyError::WrongKey { .. })
    ));
}

#[test]
fn the_payload_is_deterministic_cbor_with_sorted_keys() {
    let s = signer();
    let cose = s.attest(&vector_attested(&s));
    let sign1 = coset::CoseSign1::from_tagged_slice(&cose).unwrap();
    let payload = sign1.payload.unwrap();
    let tree: ciborium::Value = ciborium::from_reader(payload.as_slice()).unwrap();
    fn sorted(v: &ciborium::Value) -> bool {
        match v {
            ciborium::Value::Map(m) => {
                let keys: Vec<Vec<u8>> = m
                    .iter()
                    .map(|(k, _)| {
                        let mut b = Vec::new();
                        ciborium::into_writer(k, &mut b).unwrap();
                        b
                    })
                    .collect();
                keys.windows(2).all(|w| w[0] < w[1]) && m.iter().all(|(_, v)| sorted(v))
            }
            ciborium::Value::Array(a) => a.iter().all(sorted),
            _ => true,
        }
    }
    assert!(sorted(&tree));
    assert_eq!(
        deterministic_cbor(&tree),
        payload,
        "re-encoding changes nothing"
    );
}

#[test]
fn the_documented_test_vector_is_what_the_worker_signs() {
    let s = signer();
    let cose = s.attest(&vector_attested(&s));
    let doc = include_str!("../../../docs/PROTOCOL.md");
    let wanted = hex(&cose);
    assert!(
        doc.contains(&wanted),
        "docs/PROTOCOL.md lacks the current test vector:\n{wanted}\npublic key {}",
        s.public_key_hex()
    );
    assert!(doc.contains(&s.public_key_hex()));
}

#[test]
fn a_key_file_holds_a_hex_seed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    std::fs::write(&path, "11".repeat(32)).unwrap();
    let a = ReceiptSigner::from_file(&path).unwrap();
    assert_eq!(a.public_key(), signer().public_key());
    std::fs::write(&path, "nothex").unwrap();
    assert!(ReceiptSigner::from_file(&path).is_err());
}
