//! The crypto provider: every primitive the engine uses (AES-GCM, ECDSA over P-256 and
//! secp256k1, RSA PSS / PKCS#1 v1.5 / OAEP, HMAC-SHA-256, random bytes) behind one value,
//! shaped like rustls's `CryptoProvider`: a struct of `&'static` implementations, one per
//! family, chosen when the program is built.
//!
//! Two providers exist:
//! - [`CryptoProvider::aws_lc_rs`] (cargo feature `aws-lc`, on by default): AWS-LC through
//!   `aws-lc-rs`, the fastest measured for every primitive. Its key objects live in memory
//!   AWS-LC allocates, and AWS-LC's `OPENSSL_free` wipes every allocation (`OPENSSL_cleanse`)
//!   before freeing it, so key schedules, RSA and EC private keys are zeroized when dropped.
//! - [`CryptoProvider::rust_crypto`] (always built; the default without `aws-lc`): the
//!   RustCrypto crates (`aes-gcm`, `p256`/`k256` with precomputed tables, `rsa` 0.10,
//!   `hmac`), pure Rust with no C compiler needed. Their key types zeroize on drop.
//!
//! Keys are prepared once ([`AeadKey`], [`PrivateKeyOps`], [`PublicKeyOps`]) and kept by the
//! engine's key cache, so the hot path never rebuilds a key schedule or reparses a key.

#[cfg(feature = "aws-lc")]
mod aws_lc;
mod rust_crypto;

use zeroize::Zeroizing;

use crate::crypto::asym::{EncryptionAlgorithm, SigningAlgorithm};
use crate::crypto::{AeadAlgorithm, AeadError, RandomSource, NONCE_LEN, TAG_LEN};
use crate::error::KmsError;
use crate::keys::model::KeySpec;

/// An AES-GCM key with its key schedule built, ready for many operations.
pub(crate) trait AeadKey: Send + Sync {
    /// Encrypts `in_out` in place and returns the tag.
    fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<[u8; TAG_LEN], AeadError>;

    /// Authenticates and decrypts `ciphertext || tag` in place; returns the plaintext length
    /// (the plaintext is `in_out[..len]`).
    fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<usize, AeadError>;
}

/// A parsed private key (RSA, P-256 or secp256k1).
pub(crate) trait PrivateKeyOps: Send + Sync {
    /// Signs a 32-byte SHA-256 digest. The caller has checked the algorithm fits the key.
    fn sign_digest(&self, alg: SigningAlgorithm, digest: &[u8; 32]) -> Result<Vec<u8>, KmsError>;

    /// Decrypts an RSA ciphertext of the modulus length. Any failure is `Err(())`.
    fn decrypt(
        &self,
        alg: EncryptionAlgorithm,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, ()>;

    /// The DER SubjectPublicKeyInfo of the matching public key.
    fn public_key_der(&self) -> Result<Vec<u8>, KmsError>;
}

/// A parsed public key.
pub(crate) trait PublicKeyOps: Send + Sync {
    /// Verifies a signature over a 32-byte digest; `false` for any bad signature.
    fn verify_digest(&self, alg: SigningAlgorithm, digest: &[u8; 32], signature: &[u8]) -> bool;

    /// RSA encryption of a plaintext within the algorithm's limit.
    fn encrypt(&self, alg: EncryptionAlgorithm, plaintext: &[u8]) -> Result<Vec<u8>, KmsError>;
}

/// The kind of a parsed key, as the engine's rules need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    /// RSA with a modulus of this many bytes.
    Rsa(usize),
    /// ECDSA over NIST P-256.
    P256,
    /// ECDSA over secp256k1.
    K256,
}

/// AES-GCM.
pub(crate) trait AeadSuite: Send + Sync {
    /// Builds the key schedule of `key` for `alg` (AES-128/192/256-GCM).
    fn key(&self, alg: AeadAlgorithm, key: &[u8]) -> Result<Box<dyn AeadKey>, AeadError>;
}

/// RSA and ECDSA.
pub(crate) trait AsymmetricSuite: Send + Sync {
    /// Generates a private key of `spec`; returns its PKCS#8 DER. `rng` is the engine's random
    /// source; a provider whose generator draws from its own DRBG may only use it to fail
    /// early.
    fn generate(
        &self,
        spec: KeySpec,
        rng: &dyn RandomSource,
    ) -> Result<Zeroizing<Vec<u8>>, KmsError>;

    /// Parses PKCS#8 DER of the given spec (the spec's key type and size are checked).
    fn private_key(&self, spec: KeySpec, pkcs8: &[u8]) -> Result<Box<dyn PrivateKeyOps>, ()>;

    /// Parses a DER SubjectPublicKeyInfo of an RSA, P-256 or secp256k1 key.
    fn public_key(&self, spki: &[u8]) -> Result<(KeyKind, Box<dyn PublicKeyOps>), ()>;
}

/// HMAC-SHA-256.
pub(crate) trait MacSuite: Send + Sync {
    /// HMAC-SHA-256 of `message` under `key`.
    fn hmac_sha256(&self, key: &[u8], message: &[u8]) -> [u8; 32];
}

/// The primitives the engine is built from, chosen at build time; see the module
/// documentation. Copy it freely: it is a handful of static references.
#[derive(Clone, Copy)]
pub struct CryptoProvider {
    name: &'static str,
    pub(crate) aead: &'static dyn AeadSuite,
    pub(crate) asymmetric: &'static dyn AsymmetricSuite,
    pub(crate) mac: &'static dyn MacSuite,
    pub(crate) random: &'static dyn RandomSource,
}

impl std::fmt::Debug for CryptoProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CryptoProvider").field(&self.name).finish()
    }
}

impl Default for CryptoProvider {
    /// The fastest provider this build has: aws-lc-rs with the `aws-lc` feature, RustCrypto
    /// without it.
    fn default() -> Self {
        #[cfg(feature = "aws-lc")]
        return Self::aws_lc_rs();
        #[cfg(not(feature = "aws-lc"))]
        return Self::rust_crypto();
    }
}

impl CryptoProvider {
    /// AWS-LC through aws-lc-rs (cargo feature `aws-lc`). Random bytes come from AWS-LC's
    /// `RAND_bytes`: a per-thread CTR-DRBG seeded and periodically reseeded from the
    /// operating system, which detects `fork` (`MADV_WIPEONFORK`, with a fork generation
    /// counter as fallback) and reseeds in the child, so parent and child never share nonces.
    #[cfg(feature = "aws-lc")]
    pub fn aws_lc_rs() -> Self {
        aws_lc::PROVIDER
    }

    /// The RustCrypto crates, pure Rust. Random bytes come from the operating system
    /// (`getrandom`) on every call, which is fork-safe by construction.
    pub fn rust_crypto() -> Self {
        rust_crypto::PROVIDER
    }

    /// Every provider this build has, the default first (for tests and benchmarks that run
    /// each).
    pub fn available() -> Vec<Self> {
        vec![
            #[cfg(feature = "aws-lc")]
            Self::aws_lc_rs(),
            Self::rust_crypto(),
        ]
    }

    /// The provider's name: `aws-lc-rs` or `rust-crypto`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The provider's random source (what the engine draws nonces and keys from unless the
    /// host gives it another).
    pub fn random(&self) -> &'static dyn RandomSource {
        self.random
    }

    /// One-shot AES-GCM seal of `buf[start..]`, appending the tag: builds the key schedule
    /// for this call only (for keys used rarely, such as the root key).
    pub(crate) fn seal(
        &self,
        alg: AeadAlgorithm,
        key: &[u8],
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut Vec<u8>,
        start: usize,
    ) -> Result<(), AeadError> {
        seal_with(&*self.aead.key(alg, key)?, nonce, aad, buf, start)
    }

    /// One-shot AES-GCM open of `ciphertext || tag`.
    pub(crate) fn open(
        &self,
        alg: AeadAlgorithm,
        key: &[u8],
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        ciphertext_and_tag: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, AeadError> {
        open_with(&*self.aead.key(alg, key)?, nonce, aad, ciphertext_and_tag)
    }
}

/// Seals `buf[start..]` in place with a prepared key and appends the tag (`buf` should have
/// room for it already, so nothing reallocates).
pub(crate) fn seal_with(
    key: &dyn AeadKey,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    buf: &mut Vec<u8>,
    start: usize,
) -> Result<(), AeadError> {
    let body = buf.get_mut(start..).ok_or(AeadError)?;
    let tag = key.seal_in_place(nonce, aad, body)?;
    buf.extend_from_slice(&tag);
    Ok(())
}

/// Opens `ciphertext || tag` with a prepared key into a new zeroizing buffer.
pub(crate) fn open_with(
    key: &dyn AeadKey,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    ciphertext_and_tag: &[u8],
) -> Result<Zeroizing<Vec<u8>>, AeadError> {
    if ciphertext_and_tag.len() < TAG_LEN {
        return Err(AeadError);
    }
    let mut buf = Zeroizing::new(ciphertext_and_tag.to_vec());
    let len = key.open_in_place(nonce, aad, &mut buf)?;
    // Truncation keeps the bytes in the allocation; Zeroizing wipes the whole capacity.
    buf.truncate(len);
    Ok(buf)
}

/// Every provider this build has (for the tests that run each).
#[cfg(test)]
pub(crate) fn all_providers() -> Vec<CryptoProvider> {
    CryptoProvider::available()
}

/// The key type a SubjectPublicKeyInfo names, read from its algorithm identifier (the key
/// itself is checked by the provider that parses it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpkiKind {
    Rsa,
    P256,
    K256,
}

const RSA_ENCRYPTION: spki::ObjectIdentifier =
    spki::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: spki::ObjectIdentifier =
    spki::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const PRIME256V1: spki::ObjectIdentifier =
    spki::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP256K1: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.3.132.0.10");

pub(crate) fn spki_kind(der: &[u8]) -> Result<SpkiKind, ()> {
    use der::Decode;
    let info = spki::SubjectPublicKeyInfoRef::from_der(der).map_err(|_| ())?;
    if info.algorithm.oid == RSA_ENCRYPTION {
        return Ok(SpkiKind::Rsa);
    }
    if info.algorithm.oid != EC_PUBLIC_KEY {
        return Err(());
    }
    let curve = info
        .algorithm
        .parameters
        .and_then(|p| p.decode_as::<spki::ObjectIdentifier>().ok());
    match curve {
        Some(c) if c == PRIME256V1 => Ok(SpkiKind::P256),
        Some(c) if c == SECP256K1 => Ok(SpkiKind::K256),
        _ => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_seals_and_opens_every_key_size_and_refuses_tampering() {
        for p in all_providers() {
            for alg in [
                AeadAlgorithm::Aes128Gcm,
                AeadAlgorithm::Aes192Gcm,
                AeadAlgorithm::Aes256Gcm,
            ] {
                let key = vec![7u8; alg.key_len()];
                let nonce = [1u8; NONCE_LEN];
                let mut buf = b"hello".to_vec();
                p.seal(alg, &key, &nonce, b"aad", &mut buf, 0).unwrap();
                assert_eq!(buf.len(), 5 + TAG_LEN);
                assert_eq!(
                    &p.open(alg, &key, &nonce, b"aad", &buf).unwrap()[..],
                    b"hello"
                );
                assert!(p.open(alg, &key, &nonce, b"aaX", &buf).is_err());
                let mut bad = buf.clone();
                bad[0] ^= 1;
                assert!(p.open(alg, &key, &nonce, b"aad", &bad).is_err());
                assert!(p.aead.key(alg, &key[1..]).is_err(), "{}", p.name());
                assert!(p.open(alg, &key, &nonce, b"", &[0; 3]).is_err());
            }
            assert!(p
                .aead
                .key(AeadAlgorithm::ExternalAes256Gcm, &[0; 32])
                .is_err());
        }
    }

    #[test]
    fn every_provider_matches_the_nist_gcm_vectors() {
        // NIST GCM test cases 14 (AES-256) and 8 (AES-192): zero key, zero IV, one zero block.
        let cases = [
            (
                AeadAlgorithm::Aes256Gcm,
                "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919",
            ),
            (
                AeadAlgorithm::Aes192Gcm,
                "98e7247c07f0fe411c267e4384b0f6002ff58d80033927ab8ef4d4587514f0fb",
            ),
        ];
        for p in all_providers() {
            for (alg, want) in cases {
                let mut buf = vec![0u8; 16];
                p.seal(alg, &vec![0; alg.key_len()], &[0; 12], b"", &mut buf, 0)
                    .unwrap();
                let hex: String = buf.iter().map(|b| format!("{b:02x}")).collect();
                assert_eq!(hex, want, "{}", p.name());
            }
        }
    }

    #[test]
    fn every_provider_matches_rfc_4231_hmac_test_case_2() {
        for p in all_providers() {
            let mac = p.mac.hmac_sha256(b"Jefe", b"what do ya want for nothing?");
            let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(
                hex,
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
            );
        }
    }

    #[test]
    fn keys_of_one_provider_are_read_by_the_other() {
        let digest = [0x42u8; 32];
        for spec in [KeySpec::EcP256, KeySpec::EcP256K, KeySpec::Rsa2048] {
            for maker in all_providers() {
                let pkcs8 = maker.asymmetric.generate(spec, maker.random).unwrap();
                let mine = maker.asymmetric.private_key(spec, &pkcs8).unwrap();
                let spki = mine.public_key_der().unwrap();
                for reader in all_providers() {
                    let theirs = reader.asymmetric.private_key(spec, &pkcs8).unwrap();
                    assert_eq!(theirs.public_key_der().unwrap(), spki);
                    let (_, public) = reader.asymmetric.public_key(&spki).unwrap();
                    let algs: &[SigningAlgorithm] = if spec == KeySpec::Rsa2048 {
                        &[
                            SigningAlgorithm::RsaPssSha256,
                            SigningAlgorithm::RsaPkcs1Sha256,
                        ]
                    } else {
                        &[SigningAlgorithm::EcdsaSha256]
                    };
                    for &alg in algs {
                        let sig = mine.sign_digest(alg, &digest).unwrap();
                        assert!(public.verify_digest(alg, &digest, &sig), "{spec} {alg}");
                        assert!(!public.verify_digest(alg, &[0; 32], &sig));
                    }
                    if spec == KeySpec::Rsa2048 {
                        for alg in [
                            EncryptionAlgorithm::RsaesOaepSha1,
                            EncryptionAlgorithm::RsaesOaepSha256,
                            EncryptionAlgorithm::RsaesPkcs1V15,
                        ] {
                            let ct = public.encrypt(alg, b"secret").unwrap();
                            assert_eq!(&mine.decrypt(alg, &ct).unwrap()[..], b"secret");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_key_of_another_spec_is_refused() {
        for p in all_providers() {
            let ec = p.asymmetric.generate(KeySpec::EcP256, p.random).unwrap();
            assert!(p.asymmetric.private_key(KeySpec::EcP256K, &ec).is_err());
            assert!(p.asymmetric.private_key(KeySpec::Rsa2048, &ec).is_err());
            let rsa = p.asymmetric.generate(KeySpec::Rsa2048, p.random).unwrap();
            assert!(p.asymmetric.private_key(KeySpec::Rsa3072, &rsa).is_err());
            assert!(p.asymmetric.private_key(KeySpec::EcP256, &rsa).is_err());
            assert!(p.asymmetric.public_key(b"\x30\x00").is_err());
        }
    }
}
