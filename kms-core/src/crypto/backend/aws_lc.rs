//! The aws-lc-rs provider (AWS-LC). Every key object here is an AWS-LC allocation, wiped by
//! `OPENSSL_free` when it is dropped.

use aws_lc_rs::aead::{
    Aad, Algorithm, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_192_GCM, AES_256_GCM,
};
use aws_lc_rs::digest::{Digest, SHA256};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rsa::{
    KeySize, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, Pkcs1PrivateDecryptingKey,
    Pkcs1PublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey, OAEP_SHA1_MGF1SHA1,
    OAEP_SHA256_MGF1SHA256,
};
use aws_lc_rs::signature::{
    EcdsaKeyPair, EcdsaSigningAlgorithm, EcdsaVerificationAlgorithm, KeyPair, RsaKeyPair,
    UnparsedPublicKey, ECDSA_P256K1_SHA256_ASN1, ECDSA_P256K1_SHA256_ASN1_SIGNING,
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, RSA_PKCS1_2048_8192_SHA256,
    RSA_PKCS1_SHA256, RSA_PSS_2048_8192_SHA256, RSA_PSS_SHA256,
};
use zeroize::Zeroizing;

use super::{
    AeadKey, AeadSuite, AsymmetricSuite, CryptoProvider, KeyKind, MacSuite, PrivateKeyOps,
    PublicKeyOps,
};
use crate::crypto::asym::{EncryptionAlgorithm, SigningAlgorithm};
use crate::crypto::{AeadAlgorithm, AeadError, RandomSource, NONCE_LEN, TAG_LEN};
use crate::error::KmsError;
use crate::keys::model::KeySpec;

pub(super) const PROVIDER: CryptoProvider = CryptoProvider {
    name: "aws-lc-rs",
    aead: &AwsLc,
    asymmetric: &AwsLc,
    mac: &AwsLc,
    random: &AwsLcRandom,
};

struct AwsLc;

/// AWS-LC's `RAND_bytes`.
#[derive(Debug)]
struct AwsLcRandom;

impl RandomSource for AwsLcRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), KmsError> {
        aws_lc_rs::rand::fill(buf).map_err(|_| KmsError::internal("the random source failed"))
    }
}

fn algorithm(alg: AeadAlgorithm) -> Result<&'static Algorithm, AeadError> {
    match alg {
        AeadAlgorithm::Aes128Gcm => Ok(&AES_128_GCM),
        AeadAlgorithm::Aes192Gcm => Ok(&AES_192_GCM),
        AeadAlgorithm::Aes256Gcm => Ok(&AES_256_GCM),
        // The engine never holds an external key's material.
        AeadAlgorithm::ExternalAes256Gcm => Err(AeadError),
    }
}

struct GcmKey(LessSafeKey);

impl AeadKey for GcmKey {
    fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<[u8; TAG_LEN], AeadError> {
        let tag = self
            .0
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                in_out,
            )
            .map_err(|_| AeadError)?;
        tag.as_ref().try_into().map_err(|_| AeadError)
    }

    fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<usize, AeadError> {
        self.0
            .open_in_place(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), in_out)
            .map(|plain| plain.len())
            .map_err(|_| AeadError)
    }
}

impl AeadSuite for AwsLc {
    fn key(&self, alg: AeadAlgorithm, key: &[u8]) -> Result<Box<dyn AeadKey>, AeadError> {
        if key.len() != alg.key_len() {
            return Err(AeadError);
        }
        let unbound = UnboundKey::new(algorithm(alg)?, key).map_err(|_| AeadError)?;
        Ok(Box::new(GcmKey(LessSafeKey::new(unbound))))
    }
}

impl MacSuite for AwsLc {
    fn hmac_sha256(&self, key: &[u8], message: &[u8]) -> [u8; 32] {
        use aws_lc_rs::hmac;
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), message);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }
}

fn rsa_size(spec: KeySpec) -> Option<KeySize> {
    match spec {
        KeySpec::Rsa2048 => Some(KeySize::Rsa2048),
        KeySpec::Rsa3072 => Some(KeySize::Rsa3072),
        KeySpec::Rsa4096 => Some(KeySize::Rsa4096),
        _ => None,
    }
}

fn ec_signing(spec: KeySpec) -> Option<&'static EcdsaSigningAlgorithm> {
    match spec {
        KeySpec::EcP256 => Some(&ECDSA_P256_SHA256_ASN1_SIGNING),
        KeySpec::EcP256K => Some(&ECDSA_P256K1_SHA256_ASN1_SIGNING),
        _ => None,
    }
}

fn generation_failed(_: impl std::fmt::Debug) -> KmsError {
    KmsError::internal("key generation failed")
}

impl AsymmetricSuite for AwsLc {
    fn generate(
        &self,
        spec: KeySpec,
        rng: &dyn RandomSource,
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        // AWS-LC draws key material from its own DRBG; a failing engine source still fails
        // key creation before anything is made, as it does with the other provider.
        rng.fill(&mut [0u8; 1])?;
        if let Some(alg) = ec_signing(spec) {
            let key = EcdsaKeyPair::generate(alg).map_err(generation_failed)?;
            let doc = key.to_pkcs8v1().map_err(generation_failed)?;
            return Ok(Zeroizing::new(doc.as_ref().to_vec()));
        }
        let size = rsa_size(spec)
            .ok_or_else(|| KmsError::internal(format!("{spec} is not an asymmetric key spec")))?;
        let key = PrivateDecryptingKey::generate(size).map_err(generation_failed)?;
        let der: Pkcs8V1Der<'static> = key.as_der().map_err(generation_failed)?;
        Ok(Zeroizing::new(der.as_ref().to_vec()))
    }

    fn private_key(&self, spec: KeySpec, pkcs8: &[u8]) -> Result<Box<dyn PrivateKeyOps>, ()> {
        if let Some(alg) = ec_signing(spec) {
            let key = EcdsaKeyPair::from_pkcs8(alg, pkcs8).map_err(|_| ())?;
            return Ok(Box::new(EcKey(key, spec)));
        }
        let bits = rsa_size(spec).ok_or(())?.len() * 8;
        let signing = RsaKeyPair::from_pkcs8(pkcs8).map_err(|_| ())?;
        let decrypting = PrivateDecryptingKey::from_pkcs8(pkcs8).map_err(|_| ())?;
        if decrypting.key_size_bits() != bits {
            return Err(());
        }
        let public = decrypting.public_key();
        Ok(Box::new(RsaKey {
            signing,
            oaep: OaepPrivateDecryptingKey::new(decrypting.clone()).map_err(|_| ())?,
            pkcs1: Pkcs1PrivateDecryptingKey::new(decrypting).map_err(|_| ())?,
            public,
        }))
    }

    fn public_key(&self, spki: &[u8]) -> Result<(KeyKind, Box<dyn PublicKeyOps>), ()> {
        match super::spki_kind(spki)? {
            super::SpkiKind::Rsa => {
                let key = PublicEncryptingKey::from_der(spki).map_err(|_| ())?;
                let kind = KeyKind::Rsa(key.key_size_bytes());
                Ok((
                    kind,
                    Box::new(RsaPublic {
                        spki: spki.to_vec(),
                        key,
                    }),
                ))
            }
            kind @ (super::SpkiKind::P256 | super::SpkiKind::K256) => {
                let (kind, alg) = if kind == super::SpkiKind::P256 {
                    (KeyKind::P256, &ECDSA_P256_SHA256_ASN1)
                } else {
                    (KeyKind::K256, &ECDSA_P256K1_SHA256_ASN1)
                };
                UnparsedPublicKey::new(alg, spki).parse().map_err(|_| ())?;
                Ok((
                    kind,
                    Box::new(EcPublic {
                        spki: spki.to_vec(),
                        alg,
                    }),
                ))
            }
        }
    }
}

fn imported(digest: &[u8; 32]) -> Result<Digest, KmsError> {
    Digest::import_less_safe(digest, &SHA256).map_err(|_| KmsError::internal("bad digest"))
}

struct EcKey(EcdsaKeyPair, KeySpec);

impl PrivateKeyOps for EcKey {
    fn sign_digest(&self, _alg: SigningAlgorithm, digest: &[u8; 32]) -> Result<Vec<u8>, KmsError> {
        fn failed<E>(_: E) -> KmsError {
            KmsError::internal("ECDSA signing failed")
        }
        let sig = self.0.sign_digest(&imported(digest)?).map_err(failed)?;
        if self.1 != KeySpec::EcP256K {
            return Ok(sig.as_ref().to_vec());
        }
        // secp256k1 signatures are made low-S, as the other provider makes them and as strict
        // verifiers (Bitcoin's rule, the k256 crate) require; AWS-LC returns either S.
        let sig = k256::ecdsa::Signature::from_der(sig.as_ref()).map_err(failed)?;
        Ok(sig.normalize_s().to_der().as_bytes().to_vec())
    }

    fn decrypt(&self, _: EncryptionAlgorithm, _: &[u8]) -> Result<Zeroizing<Vec<u8>>, ()> {
        Err(())
    }

    fn public_key_der(&self) -> Result<Vec<u8>, KmsError> {
        public_der(self.0.public_key())
    }
}

fn public_der<K>(key: &K) -> Result<Vec<u8>, KmsError>
where
    K: AsDer<aws_lc_rs::encoding::PublicKeyX509Der<'static>>,
{
    key.as_der()
        .map(|d| d.as_ref().to_vec())
        .map_err(|_| KmsError::internal("encoding a public key failed"))
}

struct RsaKey {
    signing: RsaKeyPair,
    oaep: OaepPrivateDecryptingKey,
    pkcs1: Pkcs1PrivateDecryptingKey,
    public: PublicEncryptingKey,
}

impl PrivateKeyOps for RsaKey {
    fn sign_digest(&self, alg: SigningAlgorithm, digest: &[u8; 32]) -> Result<Vec<u8>, KmsError> {
        let padding: &'static dyn aws_lc_rs::signature::RsaEncoding = match alg {
            SigningAlgorithm::RsaPssSha256 => &RSA_PSS_SHA256,
            SigningAlgorithm::RsaPkcs1Sha256 => &RSA_PKCS1_SHA256,
            SigningAlgorithm::EcdsaSha256 => {
                return Err(KmsError::internal("ECDSA with an RSA key"))
            }
        };
        let mut sig = vec![0u8; self.signing.public_modulus_len()];
        self.signing
            .sign_digest(padding, &imported(digest)?, &mut sig)
            .map_err(|_| KmsError::internal("RSA signing failed"))?;
        Ok(sig)
    }

    fn decrypt(
        &self,
        alg: EncryptionAlgorithm,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, ()> {
        let mut out = Zeroizing::new(vec![0u8; self.oaep.min_output_size()]);
        let len = match alg {
            EncryptionAlgorithm::RsaesOaepSha1 => self
                .oaep
                .decrypt(&OAEP_SHA1_MGF1SHA1, ciphertext, &mut out, None)
                .map(|p| p.len()),
            EncryptionAlgorithm::RsaesOaepSha256 => self
                .oaep
                .decrypt(&OAEP_SHA256_MGF1SHA256, ciphertext, &mut out, None)
                .map(|p| p.len()),
            EncryptionAlgorithm::RsaesPkcs1V15 => {
                self.pkcs1.decrypt(ciphertext, &mut out).map(|p| p.len())
            }
        }
        .map_err(|_| ())?;
        out.truncate(len);
        Ok(out)
    }

    fn public_key_der(&self) -> Result<Vec<u8>, KmsError> {
        public_der(&self.public)
    }
}

struct RsaPublic {
    spki: Vec<u8>,
    key: PublicEncryptingKey,
}

impl PublicKeyOps for RsaPublic {
    fn verify_digest(&self, alg: SigningAlgorithm, digest: &[u8; 32], signature: &[u8]) -> bool {
        let Ok(d) = imported(digest) else {
            return false;
        };
        match alg {
            SigningAlgorithm::RsaPkcs1Sha256 => {
                UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &self.spki)
                    .verify_digest(&d, signature)
                    .is_ok()
            }
            // The common salt length (that of the digest) through AWS-LC; any other salt
            // length, which AsymmetricVerify also accepts, through the pure-Rust verifier.
            SigningAlgorithm::RsaPssSha256 => {
                UnparsedPublicKey::new(&RSA_PSS_2048_8192_SHA256, &self.spki)
                    .verify_digest(&d, signature)
                    .is_ok()
                    || super::rust_crypto::verify_pss_any_salt(&self.spki, digest, signature)
            }
            SigningAlgorithm::EcdsaSha256 => false,
        }
    }

    fn encrypt(&self, alg: EncryptionAlgorithm, plaintext: &[u8]) -> Result<Vec<u8>, KmsError> {
        let failed = |_| KmsError::internal("RSA encryption failed");
        let mut out = vec![0u8; self.key.key_size_bytes()];
        let len = match alg {
            EncryptionAlgorithm::RsaesOaepSha1 | EncryptionAlgorithm::RsaesOaepSha256 => {
                let oaep = if alg == EncryptionAlgorithm::RsaesOaepSha1 {
                    &OAEP_SHA1_MGF1SHA1
                } else {
                    &OAEP_SHA256_MGF1SHA256
                };
                OaepPublicEncryptingKey::new(self.key.clone())
                    .map_err(failed)?
                    .encrypt(oaep, plaintext, &mut out, None)
                    .map_err(failed)?
                    .len()
            }
            EncryptionAlgorithm::RsaesPkcs1V15 => Pkcs1PublicEncryptingKey::new(self.key.clone())
                .map_err(failed)?
                .encrypt(plaintext, &mut out)
                .map_err(failed)?
                .len(),
        };
        out.truncate(len);
        Ok(out)
    }
}

struct EcPublic {
    spki: Vec<u8>,
    alg: &'static EcdsaVerificationAlgorithm,
}

impl PublicKeyOps for EcPublic {
    fn verify_digest(&self, alg: SigningAlgorithm, digest: &[u8; 32], signature: &[u8]) -> bool {
        if alg != SigningAlgorithm::EcdsaSha256 {
            return false;
        }
        match imported(digest) {
            Ok(d) => UnparsedPublicKey::new(self.alg, &self.spki)
                .verify_digest(&d, signature)
                .is_ok(),
            Err(_) => false,
        }
    }

    fn encrypt(&self, _: EncryptionAlgorithm, _: &[u8]) -> Result<Vec<u8>, KmsError> {
        Err(KmsError::internal("EC keys do not encrypt"))
    }
}
