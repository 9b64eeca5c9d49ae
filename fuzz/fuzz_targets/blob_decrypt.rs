//! The ciphertext blob codec and Decrypt on arbitrary bytes: errors are fine, panics are bugs.
//!
//! The engine is built once (fixed root key, seeded randomness), so the seed corpus's blobs,
//! made by `examples/make_seeds.rs` with the same fixture, name keys that exist here.
#![no_main]
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::sync::OnceLock;

use kms_core::api::{DecryptRequest, EncryptionContext};
use kms_core::internal::blob;
use kms_fuzz::{decrypt_fixture, DecryptFixture};
use libfuzzer_sys::fuzz_target;

static FIXTURE: OnceLock<DecryptFixture> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let f = FIXTURE.get_or_init(decrypt_fixture);
    let parsed = blob::decode(data);
    if let Ok(b) = &parsed {
        // What decode hands out must describe the input exactly.
        assert_eq!(b.header.len() + b.ciphertext_and_tag.len(), data.len());
        assert!(b.ciphertext_and_tag.len() >= 16);
    }
    for context in [
        EncryptionContext::new(),
        [("purpose".to_owned(), "fuzz".to_owned())].into(),
    ] {
        let result = f.kms.decrypt(
            &f.caller,
            DecryptRequest {
                ciphertext_blob: data.to_vec(),
                encryption_context: context,
                ..Default::default()
            },
        );
        if let Ok(opened) = result {
            // Only a well-formed blob that authenticated under a real key version opens.
            let b = parsed
                .as_ref()
                .expect("Decrypt opened a blob that does not decode");
            assert_eq!(opened.key_id, b.key_id);
            assert_eq!(opened.key_version_id, b.version_id);
        }
    }
});
