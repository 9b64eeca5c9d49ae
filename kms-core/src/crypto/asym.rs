//! Asymmetric keys: RSA, and ECDSA over P-256 and secp256k1, performed by the
//! [`CryptoProvider`].
//!
//! Private keys are stored as PKCS#8 DER inside sealed version records and parsed by the
//! provider into types that zeroize on drop. Public keys travel as SubjectPublicKeyInfo (DER or PEM). Every
//! function here takes untrusted input (signatures, ciphertexts, DER) and answers with an
//! error, never a panic.

use std::fmt;

use std::sync::Arc;

use zeroize::Zeroizing;

use crate::crypto::backend::{CryptoProvider, KeyKind, PrivateKeyOps, PublicKeyOps};
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

fn bad_key(what: &str) -> KmsError {
    KmsError::internal(format!("stored {what} private key is malformed"))
}

fn kind_name(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Rsa(_) => "an RSA key",
        KeyKind::P256 | KeyKind::K256 => "an EC key",
    }
}

fn spec_kind(spec: KeySpec) -> Option<KeyKind> {
    match spec {
        KeySpec::Rsa2048 => Some(KeyKind::Rsa(256)),
        KeySpec::Rsa3072 => Some(KeyKind::Rsa(384)),
        KeySpec::Rsa4096 => Some(KeyKind::Rsa(512)),
        KeySpec::EcP256 => Some(KeyKind::P256),
        KeySpec::EcP256K => Some(KeyKind::K256),
        _ => None,
    }
}

/// A parsed private key, held by the provider that parsed it. Zeroized on drop (by the
/// provider's key types); `Debug` is redacted.
pub(crate) struct PrivateKey {
    kind: KeyKind,
    provider: CryptoProvider,
    ops: Box<dyn PrivateKeyOps>,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(..redacted..)")
    }
}

impl PrivateKey {
    /// Generates a key of `spec` and returns it with its PKCS#8 DER encoding.
    pub(crate) fn generate(
        provider: CryptoProvider,
        spec: KeySpec,
        source: &dyn RandomSource,
    ) -> Result<(Self, KeyMaterial), KmsError> {
        let der = provider.asymmetric.generate(spec, source)?;
        let key = Self::from_pkcs8(provider, spec, &der)?;
        Ok((key, KeyMaterial::new(der)))
    }

    /// Parses PKCS#8 DER of the given spec.
    pub(crate) fn from_pkcs8(
        provider: CryptoProvider,
        spec: KeySpec,
        der: &[u8],
    ) -> Result<Self, KmsError> {
        let what = match spec {
            KeySpec::EcP256 => "EC_P256",
            KeySpec::EcP256K => "EC_P256K",
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => "RSA",
            _ => "asymmetric",
        };
        let kind = spec_kind(spec).ok_or_else(|| bad_key(what))?;
        let ops = provider
            .asymmetric
            .private_key(spec, der)
            .map_err(|()| bad_key(what))?;
        Ok(PrivateKey {
            kind,
            provider,
            ops,
        })
    }

    /// True for RSA keys.
    pub(crate) fn is_rsa(&self) -> bool {
        matches!(self.kind, KeyKind::Rsa(_))
    }

    /// The DER SubjectPublicKeyInfo of the matching public key.
    pub(crate) fn public_key_der(&self) -> Result<Vec<u8>, KmsError> {
        self.ops.public_key_der()
    }

    /// The matching public key.
    pub(crate) fn public_key(&self) -> Result<PublicKey, KmsError> {
        PublicKey::parse(self.provider, "PublicKey", &self.public_key_der()?)
    }

    /// Signs a SHA-256 digest.
    ///
    /// Errors: `InvalidParameter` for a digest that is not 32 bytes;
    /// `Rejected.UnsupportedOperation` for an algorithm of another key type.
    pub(crate) fn sign(&self, alg: SigningAlgorithm, digest: &[u8]) -> Result<Vec<u8>, KmsError> {
        let digest = check_digest(digest)?;
        if !alg_fits(alg, self.kind) {
            return Err(wrong_algorithm(alg.as_str(), kind_name(self.kind)));
        }
        self.ops.sign_digest(alg, digest)
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
        let KeyKind::Rsa(size) = self.kind else {
            return Err(wrong_algorithm(alg.as_str(), kind_name(self.kind)));
        };
        let failed = || KmsError::InvalidCiphertext {
            reason: "RSA decryption failed",
        };
        if ciphertext.len() != size {
            return Err(failed());
        }
        self.ops.decrypt(alg, ciphertext).map_err(|()| failed())
    }
}

fn alg_fits(alg: SigningAlgorithm, kind: KeyKind) -> bool {
    match alg {
        SigningAlgorithm::EcdsaSha256 => !matches!(kind, KeyKind::Rsa(_)),
        SigningAlgorithm::RsaPssSha256 | SigningAlgorithm::RsaPkcs1Sha256 => {
            matches!(kind, KeyKind::Rsa(_))
        }
    }
}

fn wrong_algorithm(alg: &str, kind: &str) -> KmsError {
    KmsError::UnsupportedOperation {
        reason: format!("algorithm {alg} does not apply to {kind}"),
    }
}

fn check_digest(digest: &[u8]) -> Result<&[u8; DIGEST_LEN], KmsError> {
    digest.try_into().map_err(|_| {
        KmsError::invalid(
            "Digest",
            format!(
                "must be a {DIGEST_LEN}-byte SHA-256 digest, got {} bytes",
                digest.len()
            ),
        )
    })
}

/// A public key (RSA, P-256 or secp256k1), parsed by a crypto provider.
#[derive(Clone)]
pub struct PublicKey {
    spki: Arc<[u8]>,
    kind: KeyKind,
    ops: Arc<dyn PublicKeyOps>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl PublicKey {
    /// Parses a DER SubjectPublicKeyInfo of an RSA, P-256 or secp256k1 key with the default
    /// crypto provider.
    ///
    /// Errors: `InvalidParameter` naming `param`.
    pub fn from_spki_der(param: &'static str, der: &[u8]) -> Result<Self, KmsError> {
        Self::parse(CryptoProvider::default(), param, der)
    }

    /// Parses a DER SubjectPublicKeyInfo with `provider`.
    ///
    /// Errors: `InvalidParameter` naming `param`.
    pub(crate) fn parse(
        provider: CryptoProvider,
        param: &'static str,
        der: &[u8],
    ) -> Result<Self, KmsError> {
        let (kind, ops) = provider.asymmetric.public_key(der).map_err(|()| {
            KmsError::invalid(
                param,
                "is not a DER SubjectPublicKeyInfo of an RSA, P-256 or secp256k1 key",
            )
        })?;
        Ok(PublicKey {
            spki: der.into(),
            kind,
            ops: ops.into(),
        })
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn to_spki_der(&self) -> Result<Vec<u8>, KmsError> {
        Ok(self.spki.to_vec())
    }

    /// The PEM SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`).
    pub fn to_pem(&self) -> Result<String, KmsError> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.spki);
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
        match self.kind {
            KeyKind::Rsa(n) => n,
            _ => 0,
        }
    }

    /// True for RSA keys.
    pub fn is_rsa(&self) -> bool {
        matches!(self.kind, KeyKind::Rsa(_))
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
        let digest = check_digest(digest)?;
        if !alg_fits(alg, self.kind) {
            return Err(wrong_algorithm(alg.as_str(), kind_name(self.kind)));
        }
        Ok(self.ops.verify_digest(alg, digest, signature))
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
    ) -> Result<Vec<u8>, KmsError> {
        let KeyKind::Rsa(size) = self.kind else {
            return Err(wrong_algorithm(alg.as_str(), "an EC key"));
        };
        let max = alg.max_plaintext(size);
        if plaintext.len() > max {
            return Err(KmsError::invalid(
                param,
                format!(
                    "is {} bytes; {alg} with a {}-bit key takes at most {max}",
                    plaintext.len(),
                    size * 8
                ),
            ));
        }
        self.ops.encrypt(alg, plaintext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::backend::all_providers;
    use crate::crypto::OsRandom;
    use sha2::Digest;

    fn digest(msg: &[u8]) -> Vec<u8> {
        sha2::Sha256::digest(msg).to_vec()
    }

    #[test]
    fn ec_keys_sign_and_verify_der_signatures() {
        for (spec, p) in [KeySpec::EcP256, KeySpec::EcP256K]
            .into_iter()
            .flat_map(|s| all_providers().into_iter().map(move |p| (s, p)))
        {
            let (key, der) = PrivateKey::generate(p, spec, &OsRandom).unwrap();
            let again = PrivateKey::from_pkcs8(p, spec, der.expose()).unwrap();
            let d = digest(b"message");
            let sig = again.sign(SigningAlgorithm::EcdsaSha256, &d).unwrap();
            assert_eq!(sig[0], 0x30, "DER SEQUENCE");
            let public = key.public_key().unwrap();
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
                key.sign(SigningAlgorithm::RsaPssSha256, &d)
                    .unwrap_err()
                    .code(),
                "Rejected.UnsupportedOperation"
            );
        }
    }

    #[test]
    fn digest_must_be_32_bytes() {
        let p = CryptoProvider::default();
        let (key, _) = PrivateKey::generate(p, KeySpec::EcP256, &OsRandom).unwrap();
        for len in [0, 31, 33, 64] {
            let e = key
                .sign(SigningAlgorithm::EcdsaSha256, &vec![0; len])
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
            for p in all_providers() {
                assert!(PrivateKey::from_pkcs8(p, KeySpec::Rsa2048, bad).is_err());
                assert!(PrivateKey::from_pkcs8(p, KeySpec::EcP256, bad).is_err());
                assert!(PublicKey::parse(p, "PublicKeyBlob", bad).is_err());
            }
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
        for p in all_providers() {
            let (key, der) = PrivateKey::generate(p, KeySpec::Rsa2048, &OsRandom).unwrap();
            assert!(PrivateKey::from_pkcs8(p, KeySpec::Rsa3072, der.expose()).is_err());
            let public = key.public_key().unwrap();
            let d = digest(b"m");
            for alg in [
                SigningAlgorithm::RsaPssSha256,
                SigningAlgorithm::RsaPkcs1Sha256,
            ] {
                let sig = key.sign(alg, &d).unwrap();
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
                let ct = public.encrypt("Plaintext", alg, &vec![7; max]).unwrap();
                assert_eq!(&key.decrypt(alg, &ct).unwrap()[..], &vec![7; max][..]);
                assert_eq!(
                    public
                        .encrypt("Plaintext", alg, &vec![7; max + 1])
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
}
