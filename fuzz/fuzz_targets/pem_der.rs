//! Certificates, chains, subjects (text) and SubjectPublicKeyInfo (DER) from untrusted input.
#![no_main]
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use kms_core::PublicKey;
use kms_core::internal::x509;
use libfuzzer_sys::fuzz_target;

fn inspect(cert: &x509_cert::Certificate) {
    let _ = x509::describe(cert);
    let _ = x509::to_pem(cert);
    if let Ok(spki) = x509::public_key_der(cert) {
        if let Ok(key) = PublicKey::from_spki_der("Certificate", &spki) {
            let _ = key.to_pem();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = PublicKey::from_spki_der("PublicKey", data) {
        // What parses re-encodes, and the encoding parses to the same key.
        let der = key.to_spki_der().expect("a parsed key re-encodes");
        let again = PublicKey::from_spki_der("PublicKey", &der).expect("its encoding parses");
        assert_eq!(again.to_spki_der().ok(), Some(der));
        let _ = key.to_pem();
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cert) = x509::parse_certificate("Certificate", text) {
        inspect(&cert);
    }
    if let Ok(chain) = x509::parse_chain(text) {
        chain.iter().for_each(inspect);
    }
    let _ = x509::parse_subject(text);
    let _ = x509::check_sans(&text.split(',').map(str::to_owned).collect::<Vec<_>>());
});
