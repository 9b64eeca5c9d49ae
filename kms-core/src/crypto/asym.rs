//! Asymmetric primitives: RSA (rsa 0.10, constant-time) and ECDSA over P-256 (p256) and
//! secp256k1 (k256).
//!
//! Private keys are stored as PKCS#8 DER inside sealed version records and parsed into types
//! that zeroize on drop. Public keys travel as SubjectPublicKeyInfo (DER or PEM). Every
//! function here takes untrusted input (signatures, ciphertexts, DER) and answers with an
//! error, never a panic.

use std::fmt;

use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, Pkcs1v15Encrypt, Pkcs1v15Sign, Pss, RsaPrivateKey, RsaPublicKey};
use zeroize::Zeroizing;

use crate::crypto::RandomSource;
use crate::error::KmsError;
use crate::keys::model::{KeyMaterial, KeySpec};

/// Length of the digest AsymmetricSign and AsymmetricVerify take.
pub const DIGEST_LEN: usize = 32;
/// Salt length of RSA-PSS signatures the engine makes.
pub const PSS_SALT_LEN: usize = 32;

wire_enum!(
    /// A signature algorithm of AsymmetricSign / AsymmetricVerify.
    SigningAlgorithm, "Algorithm", {
        /// RSASSA-PSS, SHA-256, MGF1-SHA-256, 32-byte salt.
        RsaPssSha256 => "RSA_PSS_SHA_256",
        /// RSASSA-PKCS1-v1_5 with SHA-256.
        RsaPkcs1Sha256 => "RSA_PKCS1_SHA_256",
        /// ECDSA with SHA-256, ASN.1 DER signatures.
        EcdsaSha256 => "ECDSA_SHA_256",
    }
);

wire_enum!(
    /// A public-key encryption algorithm.
    EncryptionAlgorithm, "Algorithm", {
        /// RSAES-OAEP with SHA-1 and MGF1-SHA-1.
        RsaesOaepSha1 => "RSAES_OAEP_SHA_1",
        /// RSAES-OAEP with SHA-256 and MGF1-SHA-256.
        RsaesOaepSha256 => "RSAES_OAEP_SHA_256",
        /// RSAES-PKCS1-v1_5 (only for wrapping imported key material).
        RsaesPkcs1V15 => "RSAES_PKCS1_V1_5",
    }
);

impl EncryptionAlgorithm {
    /// Largest plaintext for an RSA modulus of `modulus_len` bytes.
    pub fn max_plaintext(self, modulus_len: usize) -> usize {
        let overhead = match self {
            EncryptionAlgorithm::RsaesOaepSha1 => 2 * 20 + 2,
            EncryptionAlgorithm::RsaesOaepSha256 => 2 * 32 + 2,
            EncryptionAlgorithm::RsaesPkcs1V15 => 11,
        };
        modulus_len.saturating_sub(overhead)
    }
}

/// An infallible CSPRNG for the RustCrypto APIs: HMAC-SHA-256 in counter mode, keyed with 32
/// bytes drawn from the engine's [`RandomSource`] (so a failing source fails before any key is
/// made, and a deterministic source makes deterministic keys in tests).
pub(crate) struct SeededRng {
    key: ring::hmac::Key,
    counter: u64,
}

impl SeededRng {
    pub(crate) fn new(source: &dyn RandomSource) -> Result<Self, KmsError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        source.fill(&mut seed[..])?;
        Ok(SeededRng {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &seed[..]),
            counter: 0,
        })
    }
}

impl rand_core::TryRng for SeededRng {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for chunk in dst.chunks_mut(32) {
            self.counter = self.counter.wrapping_add(1);
            let block = ring::hmac::sign(&self.key, &self.counter.to_be_bytes());
            for (d, s) in chunk.iter_mut().zip(block.as_ref()) {
                *d = *s;
            }
        }
        Ok(())
    }
}

impl rand_core::TryCryptoRng for SeededRng {}

fn bad_key(what: &str) -> KmsError {
    KmsError::internal(format!("stored {what} private key is malformed"))
}

/// A parsed private key. Zeroized on drop (by the underlying crates); `Debug` is redacted.
pub(crate) enum PrivateKey {
    Rsa(Box<RsaPrivateKey>),
    P256(p256::ecdsa::SigningKey),
    K256(k256::ecdsa::SigningKey),
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(..redacted..)")
    }
}

fn rsa_bits(spec: KeySpec) -> Option<usize> {
    match spec {
        KeySpec::Rsa2048 => Some(2048),
        KeySpec::Rsa3072 => Some(3072),
        KeySpec::Rsa4096 => Some(4096),
        _ => None,
    }
}

impl PrivateKey {
    /// Generates a key of `spec` and returns it with its PKCS#8 DER encoding.
    pub(crate) fn generate(
        spec: KeySpec,
        source: &dyn RandomSource,
    ) -> Result<(Self, KeyMaterial), KmsError> {
        use p256::elliptic_curve::Generate;
        let mut rng = SeededRng::new(source)?;
        let key = match spec {
            KeySpec::EcP256 => {
                PrivateKey::P256(p256::ecdsa::SigningKey::generate_from_rng(&mut rng))
            }
            KeySpec::EcP256K => {
                PrivateKey::K256(k256::ecdsa::SigningKey::generate_from_rng(&mut rng))
            }
            other => {
                let bits = rsa_bits(other).ok_or_else(|| {
                    KmsError::internal(format!("{other} is not an asymmetric key spec"))
                })?;
                PrivateKey::Rsa(Box::new(RsaPrivateKey::new(&mut rng, bits).map_err(
                    |e| KmsError::internal(format!("RSA key generation failed: {e}")),
                )?))
            }
        };
        let der = key.to_pkcs8()?;
        Ok((key, der))
    }

    /// Parses PKCS#8 DER of the given spec.
    pub(crate) fn from_pkcs8(spec: KeySpec, der: &[u8]) -> Result<Self, KmsError> {
        Ok(match spec {
            KeySpec::EcP256 => PrivateKey::P256(
                p256::ecdsa::SigningKey::from_pkcs8_der(der).map_err(|_| bad_key("EC_P256"))?,
            ),
            KeySpec::EcP256K => PrivateKey::K256(
                k256::ecdsa::SigningKey::from_pkcs8_der(der).map_err(|_| bad_key("EC_P256K"))?,
            ),
            other => {
                let bits = rsa_bits(other).ok_or_else(|| bad_key("asymmetric"))?;
                let key = RsaPrivateKey::from_pkcs8_der(der).map_err(|_| bad_key("RSA"))?;
                if key.size() * 8 != bits {
                    return Err(bad_key("RSA"));
                }
                PrivateKey::Rsa(Box::new(key))
            }
        })
    }

    fn to_pkcs8(&self) -> Result<KeyMaterial, KmsError> {
        let doc = match self {
            PrivateKey::Rsa(k) => k.to_pkcs8_der(),
            PrivateKey::P256(k) => k.to_pkcs8_der(),
            PrivateKey::K256(k) => k.to_pkcs8_der(),
        }
        .map_err(|_| KmsError::internal("encoding a private key failed"))?;
        Ok(KeyMaterial::new(Zeroizing::new(doc.as_bytes().to_vec())))
    }

    /// The matching public key.
    pub(crate) fn public_key(&self) -> PublicKey {
        match self {
            PrivateKey::Rsa(k) => PublicKey::Rsa(Box::new(k.to_public_key())),
            PrivateKey::P256(k) => PublicKey::P256(*k.verifying_key()),
            PrivateKey::K256(k) => PublicKey::K256(*k.verifying_key()),
        }
    }

    /// Signs a SHA-256 digest.
    ///
    /// Errors: `InvalidParameter` for a digest that is not 32 bytes;
    /// `Rejected.UnsupportedOperation` for an algorithm of another key type.
    pub(crate) fn sign(
        &self,
        alg: SigningAlgorithm,
        digest: &[u8],
        source: &dyn RandomSource,
    ) -> Result<Vec<u8>, KmsError> {
        check_digest(digest)?;
        use signature::hazmat::PrehashSigner;
        match (self, alg) {
            (PrivateKey::Rsa(k), SigningAlgorithm::RsaPssSha256) => {
                let mut rng = SeededRng::new(source)?;
                k.sign_with_rng(
                    &mut rng,
                    Pss::<sha2::Sha256>::new_with_salt(PSS_SALT_LEN),
                    digest,
                )
                .map_err(|e| KmsError::internal(format!("RSA-PSS signing failed: {e}")))
            }
            (PrivateKey::Rsa(k), SigningAlgorithm::RsaPkcs1Sha256) => k
                .sign(Pkcs1v15Sign::new::<sha2::Sha256>(), digest)
                .map_err(|e| KmsError::internal(format!("RSA signing failed: {e}"))),
            (PrivateKey::P256(k), SigningAlgorithm::EcdsaSha256) => {
                let sig: p256::ecdsa::Signature = k
                    .sign_prehash(digest)
                    .map_err(|_| KmsError::internal("ECDSA signing failed"))?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
            (PrivateKey::K256(k), SigningAlgorithm::EcdsaSha256) => {
                let sig: k256::ecdsa::Signature = k
                    .sign_prehash(digest)
                    .map_err(|_| KmsError::internal("ECDSA signing failed"))?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
            _ => Err(wrong_algorithm(alg.as_str(), self.kind())),
        }
    }

    /// Decrypts an RSA ciphertext.
    ///
    /// Errors: `InvalidCiphertext` when decryption fails (one answer for every failure, so
    /// the error reveals nothing about the padding); `Rejected.UnsupportedOperation` for EC
    /// keys.
    pub(crate) fn decrypt(
        &self,
        alg: EncryptionAlgorithm,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let PrivateKey::Rsa(k) = self else {
            return Err(wrong_algorithm(alg.as_str(), self.kind()));
        };
        let failed = || KmsError::InvalidCiphertext {
            reason: "RSA decryption failed",
        };
        if ciphertext.len() != k.size() {
            return Err(failed());
        }
        let plain = match alg {
            EncryptionAlgorithm::RsaesOaepSha1 => k.decrypt(Oaep::<sha1::Sha1>::new(), ciphertext),
            EncryptionAlgorithm::RsaesOaepSha256 => {
                k.decrypt(Oaep::<sha2::Sha256>::new(), ciphertext)
            }
            EncryptionAlgorithm::RsaesPkcs1V15 => k.decrypt(Pkcs1v15Encrypt, ciphertext),
        }
        .map_err(|_| failed())?;
        Ok(Zeroizing::new(plain))
    }

    fn kind(&self) -> &'static str {
        match self {
            PrivateKey::Rsa(_) => "an RSA key",
            PrivateKey::P256(_) | PrivateKey::K256(_) => "an EC key",
        }
    }
}

fn wrong_algorithm(alg: &str, kind: &str) -> KmsError {
    KmsError::UnsupportedOperation {
        reason: format!("algorithm {alg} does not apply to {kind}"),
    }
}

fn check_digest(digest: &[u8]) -> Result<(), KmsError> {
    if digest.len() != DIGEST_LEN {
        return Err(KmsError::invalid(
            "Digest",
            format!(
                "must be a {DIGEST_LEN}-byte SHA-256 digest, got {} bytes",
                digest.len()
            ),
        ));
    }
    Ok(())
}

/// A public key.
#[derive(Clone, Debug)]
pub enum PublicKey {
    /// RSA.
    Rsa(Box<RsaPublicKey>),
    /// ECDSA P-256.
    P256(p256::ecdsa::VerifyingKey),
    /// ECDSA secp256k1.
    K256(k256::ecdsa::VerifyingKey),
}

impl PublicKey {
    /// Parses a DER SubjectPublicKeyInfo of an RSA, P-256 or secp256k1 key.
    ///
    /// Errors: `InvalidParameter` naming `param`.
    pub fn from_spki_der(param: &'static str, der: &[u8]) -> Result<Self, KmsError> {
        if let Ok(k) = RsaPublicKey::from_public_key_der(der) {
            return Ok(PublicKey::Rsa(Box::new(k)));
        }
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_der(der) {
            return Ok(PublicKey::P256(k));
        }
        if let Ok(k) = k256::ecdsa::VerifyingKey::from_public_key_der(der) {
            return Ok(PublicKey::K256(k));
        }
        Err(KmsError::invalid(
            param,
            "is not a DER SubjectPublicKeyInfo of an RSA, P-256 or secp256k1 key",
        ))
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn to_spki_der(&self) -> Result<Vec<u8>, KmsError> {
        let doc = match self {
            PublicKey::Rsa(k) => k.to_public_key_der(),
            PublicKey::P256(k) => k.to_public_key_der(),
            PublicKey::K256(k) => k.to_public_key_der(),
        }
        .map_err(|_| KmsError::internal("encoding a public key failed"))?;
        Ok(doc.as_bytes().to_vec())
    }

    /// The PEM SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`).
    pub fn to_pem(&self) -> Result<String, KmsError> {
        use base64::Engine;
        let der = self.to_spki_der()?;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        Ok(pem)
    }

    /// Size of the RSA modulus in bytes (0 for EC keys).
    pub fn modulus_len(&self) -> usize {
        match self {
            PublicKey::Rsa(k) => k.size(),
            _ => 0,
        }
    }

    /// Verifies a signature over a SHA-256 digest. A wrong or malformed signature is
    /// `Ok(false)`, not an error. PSS accepts any salt length.
    ///
    /// Errors: `InvalidParameter` for a digest that is not 32 bytes;
    /// `Rejected.UnsupportedOperation` for an algorithm of another key type.
    pub fn verify(
        &self,
        alg: SigningAlgorithm,
        digest: &[u8],
        signature: &[u8],
    ) -> Result<bool, KmsError> {
        check_digest(digest)?;
        use signature::hazmat::PrehashVerifier;
        Ok(match (self, alg) {
            (PublicKey::Rsa(k), SigningAlgorithm::RsaPssSha256) => {
                let mut pss = Pss::<sha2::Sha256>::new();
                pss.salt_len = None;
                k.verify(pss, digest, signature).is_ok()
            }
            (PublicKey::Rsa(k), SigningAlgorithm::RsaPkcs1Sha256) => k
                .verify(Pkcs1v15Sign::new::<sha2::Sha256>(), digest, signature)
                .is_ok(),
            (PublicKey::P256(k), SigningAlgorithm::EcdsaSha256) => {
                match p256::ecdsa::Signature::from_der(signature) {
                    Ok(sig) => k.verify_prehash(digest, &sig).is_ok(),
                    Err(_) => false,
                }
            }
            (PublicKey::K256(k), SigningAlgorithm::EcdsaSha256) => {
                // k256 refuses high-S signatures (a Bitcoin rule); plain ECDSA, as
                // openssl and other signers make it, is valid with either S.
                match k256::ecdsa::Signature::from_der(signature) {
                    Ok(sig) => k.verify_prehash(digest, &sig.normalize_s()).is_ok(),
                    Err(_) => false,
                }
            }
            (PublicKey::Rsa(_), _) => return Err(wrong_algorithm(alg.as_str(), "an RSA key")),
            _ => return Err(wrong_algorithm(alg.as_str(), "an EC key")),
        })
    }

    /// Encrypts with RSA-OAEP (or PKCS#1 v1.5), enforcing the plaintext limit.
    ///
    /// Errors: `InvalidParameter` naming `param` for a plaintext over the limit;
    /// `Rejected.UnsupportedOperation` for EC keys.
    pub fn encrypt(
        &self,
        param: &'static str,
        alg: EncryptionAlgorithm,
        plaintext: &[u8],
        source: &dyn RandomSource,
    ) -> Result<Vec<u8>, KmsError> {
        let PublicKey::Rsa(k) = self else {
            return Err(wrong_algorithm(alg.as_str(), "an EC key"));
        };
        let max = alg.max_plaintext(k.size());
        if plaintext.len() > max {
            return Err(KmsError::invalid(
                param,
                format!(
                    "is {} bytes; {alg} with a {}-bit key takes at most {max}",
                    plaintext.len(),
                    k.size() * 8
                ),
            ));
        }
        let mut rng = SeededRng::new(source)?;
        match alg {
            EncryptionAlgorithm::RsaesOaepSha1 => {
                k.encrypt(&mut rng, Oaep::<sha1::Sha1>::new(), plaintext)
            }
            EncryptionAlgorithm::RsaesOaepSha256 => {
                k.encrypt(&mut rng, Oaep::<sha2::Sha256>::new(), plaintext)
            }
            EncryptionAlgorithm::RsaesPkcs1V15 => k.encrypt(&mut rng, Pkcs1v15Encrypt, plaintext),
        }
        .map_err(|e| KmsError::internal(format!("RSA encryption failed: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::OsRandom;

    fn digest(msg: &[u8]) -> Vec<u8> {
        ring::digest::digest(&ring::digest::SHA256, msg)
            .as_ref()
            .to_vec()
    }

    #[test]
    fn ec_keys_sign_and_verify_der_signatures() {
        for spec in [KeySpec::EcP256, KeySpec::EcP256K] {
            let (key, der) = PrivateKey::generate(spec, &OsRandom).unwrap();
            let again = PrivateKey::from_pkcs8(spec, der.expose()).unwrap();
            let d = digest(b"message");
            let sig = again
                .sign(SigningAlgorithm::EcdsaSha256, &d, &OsRandom)
                .unwrap();
            assert_eq!(sig[0], 0x30, "DER SEQUENCE");
            let public = key.public_key();
            assert!(public
                .verify(SigningAlgorithm::EcdsaSha256, &d, &sig)
                .unwrap());
            assert!(!public
                .verify(SigningAlgorithm::EcdsaSha256, &digest(b"other"), &sig)
                .unwrap());
            assert!(!public
                .verify(SigningAlgorithm::EcdsaSha256, &d, b"garbage")
                .unwrap());
            let spki = public.to_spki_der().unwrap();
            let parsed = PublicKey::from_spki_der("PublicKeyBlob", &spki).unwrap();
            assert!(parsed
                .verify(SigningAlgorithm::EcdsaSha256, &d, &sig)
                .unwrap());
            assert_eq!(
                key.sign(SigningAlgorithm::RsaPssSha256, &d, &OsRandom)
                    .unwrap_err()
                    .code(),
                "Rejected.UnsupportedOperation"
            );
        }
    }

    #[test]
    fn digest_must_be_32_bytes() {
        let (key, _) = PrivateKey::generate(KeySpec::EcP256, &OsRandom).unwrap();
        for len in [0, 31, 33, 64] {
            let e = key
                .sign(SigningAlgorithm::EcdsaSha256, &vec![0; len], &OsRandom)
                .unwrap_err();
            assert_eq!(e.code(), "InvalidParameter");
            assert!(e.to_string().contains("Digest"));
        }
    }

    #[test]
    fn malformed_spki_and_pkcs8_are_errors() {
        for bad in [&b""[..], b"\x30", b"\x30\x03\x02\x01\x01", &[0xff; 300]] {
            assert_eq!(
                PublicKey::from_spki_der("PublicKeyBlob", bad)
                    .unwrap_err()
                    .code(),
                "InvalidParameter"
            );
            assert!(PrivateKey::from_pkcs8(KeySpec::Rsa2048, bad).is_err());
            assert!(PrivateKey::from_pkcs8(KeySpec::EcP256, bad).is_err());
        }
    }

    #[test]
    fn oaep_plaintext_limits_follow_the_spec() {
        use EncryptionAlgorithm::*;
        assert_eq!(RsaesOaepSha256.max_plaintext(256), 190);
        assert_eq!(RsaesOaepSha1.max_plaintext(256), 214);
        assert_eq!(RsaesOaepSha256.max_plaintext(384), 318);
        assert_eq!(RsaesOaepSha1.max_plaintext(384), 342);
        assert_eq!(RsaesOaepSha256.max_plaintext(512), 446);
        assert_eq!(RsaesOaepSha1.max_plaintext(512), 470);
    }

    #[test]
    fn rsa_2048_signs_encrypts_and_rejects_bad_input() {
        let (key, der) = PrivateKey::generate(KeySpec::Rsa2048, &OsRandom).unwrap();
        assert!(PrivateKey::from_pkcs8(KeySpec::Rsa3072, der.expose()).is_err());
        let public = key.public_key();
        let d = digest(b"m");
        for alg in [
            SigningAlgorithm::RsaPssSha256,
            SigningAlgorithm::RsaPkcs1Sha256,
        ] {
            let sig = key.sign(alg, &d, &OsRandom).unwrap();
            assert_eq!(sig.len(), 256);
            assert!(public.verify(alg, &d, &sig).unwrap());
            let mut bad = sig.clone();
            bad[10] ^= 1;
            assert!(!public.verify(alg, &d, &bad).unwrap());
            assert!(!public.verify(alg, &d, &sig[..100]).unwrap());
        }
        for alg in [
            EncryptionAlgorithm::RsaesOaepSha1,
            EncryptionAlgorithm::RsaesOaepSha256,
        ] {
            let max = alg.max_plaintext(256);
            let ct = public
                .encrypt("Plaintext", alg, &vec![7; max], &OsRandom)
                .unwrap();
            assert_eq!(&key.decrypt(alg, &ct).unwrap()[..], &vec![7; max][..]);
            assert_eq!(
                public
                    .encrypt("Plaintext", alg, &vec![7; max + 1], &OsRandom)
                    .unwrap_err()
                    .code(),
                "InvalidParameter"
            );
            assert_eq!(
                key.decrypt(alg, &ct[1..]).unwrap_err().code(),
                "InvalidCiphertext"
            );
            assert_eq!(
                key.decrypt(alg, &[0u8; 256]).unwrap_err().code(),
                "InvalidCiphertext"
            );
        }
        assert!(public
            .to_pem()
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----\n"));
    }
}
