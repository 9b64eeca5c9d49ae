//! External keys: CMKs whose material lives in an external key manager, reached through a
//! proxy, and never enters the engine (the "外部キー" of Alibaba's key management guide).
//!
//! The engine asks an [`ExternalKeyStore`] to encrypt and decrypt with AES-256-GCM under an
//! external key id, passing its own associated data (the blob header and the
//! EncryptionContext), so the external manager's ciphertext is bound to the engine's blob.
//! Several engine keys may name the same external key id. `kms_server::xks` implements the
//! store over HTTP; the protocol is documented there.

use zeroize::Zeroizing;

use crate::error::KmsError;

/// What an external encryption returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalCiphertext {
    /// The 12-byte GCM IV the external manager chose.
    pub iv: [u8; 12],
    /// The ciphertext followed by the 16-byte tag.
    pub ciphertext_and_tag: Vec<u8>,
}

/// An external key manager behind a proxy.
///
/// Implementations answer `Rejected.Unavailable` ([`KmsError::ExternalKeyStoreUnavailable`])
/// when the proxy cannot be reached, is too slow, or answers something malformed, and
/// `Rejected.ExternalKeyUnusable` when the proxy reports the key missing or unusable; the
/// engine then changes nothing.
pub trait ExternalKeyStore: Send + Sync {
    /// Checks that the external key exists and is an enabled AES-256 encrypt/decrypt key.
    fn check_key(&self, external_key_id: &str) -> Result<(), KmsError>;

    /// AES-256-GCM encryption under the external key with `aad` as associated data.
    fn encrypt(
        &self,
        external_key_id: &str,
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<ExternalCiphertext, KmsError>;

    /// AES-256-GCM decryption under the external key.
    ///
    /// Errors: `InvalidCiphertext` when the external manager reports an authentication
    /// failure.
    fn decrypt(
        &self,
        external_key_id: &str,
        aad: &[u8],
        ciphertext: &ExternalCiphertext,
    ) -> Result<Zeroizing<Vec<u8>>, KmsError>;
}

impl<S: ExternalKeyStore + ?Sized> ExternalKeyStore for std::sync::Arc<S> {
    fn check_key(&self, external_key_id: &str) -> Result<(), KmsError> {
        (**self).check_key(external_key_id)
    }
    fn encrypt(
        &self,
        external_key_id: &str,
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<ExternalCiphertext, KmsError> {
        (**self).encrypt(external_key_id, aad, plaintext)
    }
    fn decrypt(
        &self,
        external_key_id: &str,
        aad: &[u8],
        ciphertext: &ExternalCiphertext,
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        (**self).decrypt(external_key_id, aad, ciphertext)
    }
}

/// Checks an External Key ID: 1 to 128 characters of letters, digits and `_ - . : /`, with
/// no empty or dots-only `/`-separated segment.
///
/// Errors: `InvalidParameter` naming `ExternalKeyId`.
pub fn validate_external_key_id(id: &str) -> Result<(), KmsError> {
    if id.is_empty()
        || id.len() > 128
        // A path segment of dots would address another endpoint of the proxy.
        || id.split('/').any(|seg| seg.is_empty() || seg.bytes().all(|c| c == b'.'))
        || !id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"_-.:/".contains(&c))
    {
        return Err(KmsError::invalid(
            "ExternalKeyId",
            "must have 1 to 128 characters of letters, digits and _ - . : /",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_key_ids_cannot_climb_the_proxy_path() {
        for ok in ["k1", "arn:xks:key/1", "a.b", "..a"] {
            assert!(validate_external_key_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/..", "a//b", "/a", "a b", &"k".repeat(129)] {
            assert_eq!(
                validate_external_key_id(bad).unwrap_err().code(),
                "InvalidParameter",
                "{bad}"
            );
        }
    }
}
