//! Cryptographic primitives the engine is built from: the random source and AES-GCM.

pub mod asym;
pub mod blob;
pub(crate) mod external;
pub(crate) mod provider;
pub(crate) mod root_key;
pub(crate) mod seal;

use crate::error::KmsError;

/// A source of cryptographically secure random bytes.
///
/// The engine takes one as a parameter so that tests can be deterministic; production hosts
/// use [`OsRandom`].
pub trait RandomSource: Send + Sync {
    /// Fills `buf` with random bytes.
    ///
    /// Errors: `InternalFailure` when the source fails.
    fn fill(&self, buf: &mut [u8]) -> Result<(), KmsError>;
}

/// The operating system's random source (through ring's `SystemRandom`).
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), KmsError> {
        use ring::rand::SecureRandom;
        ring::rand::SystemRandom::new()
            .fill(buf)
            .map_err(|_| KmsError::internal("the operating system random source failed"))
    }
}

use aes_gcm::aead::{AeadInPlace, KeyInit};
use zeroize::Zeroizing;

/// Length of an AES-GCM nonce in bytes.
pub const NONCE_LEN: usize = 12;
/// Length of an AES-GCM tag in bytes.
pub const TAG_LEN: usize = 16;

/// A symmetric AEAD algorithm; the byte is its code in the ciphertext blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AeadAlgorithm {
    /// AES-128-GCM (ring).
    Aes128Gcm = 1,
    /// AES-192-GCM (aes-gcm; ring has no AES-192).
    Aes192Gcm = 2,
    /// AES-256-GCM (ring).
    Aes256Gcm = 3,
    /// AES-256-GCM performed by an external key store; never by the engine.
    ExternalAes256Gcm = 4,
}

impl AeadAlgorithm {
    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            AeadAlgorithm::Aes128Gcm => 16,
            AeadAlgorithm::Aes192Gcm => 24,
            AeadAlgorithm::Aes256Gcm | AeadAlgorithm::ExternalAes256Gcm => 32,
        }
    }

    /// The algorithm with this blob code.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(AeadAlgorithm::Aes128Gcm),
            2 => Some(AeadAlgorithm::Aes192Gcm),
            3 => Some(AeadAlgorithm::Aes256Gcm),
            4 => Some(AeadAlgorithm::ExternalAes256Gcm),
            _ => None,
        }
    }

    /// The blob code of this algorithm.
    pub fn code(self) -> u8 {
        self as u8
    }
}

type Aes192Gcm = aes_gcm::AesGcm<aes_gcm::aes::Aes192, aes_gcm::aead::consts::U12>;

/// Authentication failed, or the key was malformed. Carries nothing on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AeadError;

/// Which implementation performs an algorithm in the engine.
enum Engine {
    Ring(&'static ring::aead::Algorithm),
    Aes192,
}

fn engine_for(alg: AeadAlgorithm) -> Result<Engine, AeadError> {
    match alg {
        AeadAlgorithm::Aes128Gcm => Ok(Engine::Ring(&ring::aead::AES_128_GCM)),
        AeadAlgorithm::Aes256Gcm => Ok(Engine::Ring(&ring::aead::AES_256_GCM)),
        AeadAlgorithm::Aes192Gcm => Ok(Engine::Aes192),
        // The engine never holds an external key's material.
        AeadAlgorithm::ExternalAes256Gcm => Err(AeadError),
    }
}

/// Encrypts `buf[start..]` in place and appends the 16-byte tag to `buf`.
///
/// The caller guarantees `nonce` is never reused with this key (the engine draws it from a
/// random source and bounds the number of seals per key).
pub fn aead_seal(
    alg: AeadAlgorithm,
    key: &[u8],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    buf: &mut Vec<u8>,
    start: usize,
) -> Result<(), AeadError> {
    if key.len() != alg.key_len() {
        return Err(AeadError);
    }
    let body = buf.get_mut(start..).ok_or(AeadError)?;
    match engine_for(alg)? {
        Engine::Ring(ring_alg) => {
            let key = ring::aead::LessSafeKey::new(
                ring::aead::UnboundKey::new(ring_alg, key).map_err(|_| AeadError)?,
            );
            let tag = key
                .seal_in_place_separate_tag(
                    ring::aead::Nonce::assume_unique_for_key(*nonce),
                    ring::aead::Aad::from(aad),
                    body,
                )
                .map_err(|_| AeadError)?;
            buf.extend_from_slice(tag.as_ref());
        }
        Engine::Aes192 => {
            let cipher = Aes192Gcm::new_from_slice(key).map_err(|_| AeadError)?;
            let tag = cipher
                .encrypt_in_place_detached(nonce.into(), aad, body)
                .map_err(|_| AeadError)?;
            buf.extend_from_slice(&tag);
        }
    }
    Ok(())
}

/// Decrypts `ciphertext || tag` and returns the plaintext.
pub fn aead_open(
    alg: AeadAlgorithm,
    key: &[u8],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    ciphertext_and_tag: &[u8],
) -> Result<Zeroizing<Vec<u8>>, AeadError> {
    if key.len() != alg.key_len() || ciphertext_and_tag.len() < TAG_LEN {
        return Err(AeadError);
    }
    let mut buf = Zeroizing::new(ciphertext_and_tag.to_vec());
    match engine_for(alg)? {
        Engine::Ring(ring_alg) => {
            let key = ring::aead::LessSafeKey::new(
                ring::aead::UnboundKey::new(ring_alg, key).map_err(|_| AeadError)?,
            );
            let len = key
                .open_in_place(
                    ring::aead::Nonce::assume_unique_for_key(*nonce),
                    ring::aead::Aad::from(aad),
                    &mut buf[..],
                )
                .map_err(|_| AeadError)?
                .len();
            buf.truncate(len);
        }
        Engine::Aes192 => {
            let cipher = Aes192Gcm::new_from_slice(key).map_err(|_| AeadError)?;
            cipher
                .decrypt_in_place(nonce.into(), aad, &mut *buf)
                .map_err(|_| AeadError)?;
        }
    }
    Ok(buf)
}

/// HMAC-SHA256 (ring).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&key, message).as_ref().to_vec()
}

/// Constant-time equality of two secrets (lengths are not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALGS: [AeadAlgorithm; 3] = [
        AeadAlgorithm::Aes128Gcm,
        AeadAlgorithm::Aes192Gcm,
        AeadAlgorithm::Aes256Gcm,
    ];

    #[test]
    fn seal_then_open_round_trips_for_every_key_size() {
        for alg in ALGS {
            let key = vec![7u8; alg.key_len()];
            let nonce = [1u8; NONCE_LEN];
            let mut buf = b"hello".to_vec();
            aead_seal(alg, &key, &nonce, b"aad", &mut buf, 0).unwrap();
            assert_eq!(buf.len(), 5 + TAG_LEN);
            let pt = aead_open(alg, &key, &nonce, b"aad", &buf).unwrap();
            assert_eq!(&pt[..], b"hello");
            assert!(aead_open(alg, &key, &nonce, b"aaX", &buf).is_err());
            let mut bad = buf.clone();
            bad[0] ^= 1;
            assert!(aead_open(alg, &key, &nonce, b"aad", &bad).is_err());
        }
    }

    #[test]
    fn aes_gcm_matches_nist_test_vector() {
        // NIST GCM test case 14 (AES-256, zero key, zero IV, one zero block).
        let key = [0u8; 32];
        let nonce = [0u8; 12];
        let mut buf = vec![0u8; 16];
        aead_seal(AeadAlgorithm::Aes256Gcm, &key, &nonce, b"", &mut buf, 0).unwrap();
        let hex: String = buf.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919"
        );
        // Test case 8 (AES-192, zero key, zero IV, one zero block).
        let key = [0u8; 24];
        let mut buf = vec![0u8; 16];
        aead_seal(AeadAlgorithm::Aes192Gcm, &key, &nonce, b"", &mut buf, 0).unwrap();
        let hex: String = buf.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "98e7247c07f0fe411c267e4384b0f6002ff58d80033927ab8ef4d4587514f0fb"
        );
    }

    #[test]
    fn wrong_key_length_is_an_error_not_a_panic() {
        let mut buf = vec![0u8; 4];
        assert!(aead_seal(
            AeadAlgorithm::Aes256Gcm,
            &[0; 5],
            &[0; 12],
            b"",
            &mut buf,
            0
        )
        .is_err());
        assert!(aead_open(AeadAlgorithm::Aes192Gcm, &[0; 5], &[0; 12], b"", &[0; 20]).is_err());
        assert!(aead_open(AeadAlgorithm::Aes128Gcm, &[0; 16], &[0; 12], b"", &[0; 3]).is_err());
    }

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn ct_eq_compares_content_and_length() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
