//! The pure-Rust provider: RustCrypto's `aes-gcm`, `p256`/`k256` (with precomputed tables),
//! `rsa` 0.10 (constant-time, crypto-bigint) and `hmac`. Every key type here zeroizes on
//! drop.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use hmac::{KeyInit as _, Mac};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, Pkcs1v15Encrypt, Pkcs1v15Sign, Pss, RsaPrivateKey, RsaPublicKey};
use signature::hazmat::{PrehashSigner, PrehashVerifier};
use zeroize::Zeroizing;

use super::{
    AeadKey, AeadSuite, AsymmetricSuite, CryptoProvider, KeyKind, MacSuite, PrivateKeyOps,
    PublicKeyOps, SpkiKind,
};
use crate::crypto::asym::{EncryptionAlgorithm, SigningAlgorithm, PSS_SALT_LEN};
use crate::crypto::{AeadAlgorithm, AeadError, OsRandom, RandomSource, NONCE_LEN, TAG_LEN};
use crate::error::KmsError;
use crate::keys::model::KeySpec;

pub(super) const PROVIDER: CryptoProvider = CryptoProvider {
    name: "rust-crypto",
    aead: &RustCrypto,
    asymmetric: &RustCrypto,
    mac: &RustCrypto,
    random: &OsRandom,
};

struct RustCrypto;

type Aes192Gcm = aes_gcm::AesGcm<aes_gcm::aes::Aes192, aes_gcm::aead::consts::U12>;

/// An `aes-gcm` cipher (its key schedule zeroizes on drop with the crate's `zeroize` feature).
struct Gcm<C>(C);

impl<C> AeadKey for Gcm<C>
where
    C: AeadInPlace<NonceSize = aes_gcm::aead::consts::U12, TagSize = aes_gcm::aead::consts::U16>
        + Send
        + Sync,
{
    fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<[u8; TAG_LEN], AeadError> {
        let tag = self
            .0
            .encrypt_in_place_detached(aes_gcm::Nonce::from_slice(nonce), aad, in_out)
            .map_err(|_| AeadError)?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(&tag);
        Ok(out)
    }

    fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<usize, AeadError> {
        let len = in_out.len().checked_sub(TAG_LEN).ok_or(AeadError)?;
        let (body, tag) = in_out.split_at_mut(len);
        self.0
            .decrypt_in_place_detached(
                aes_gcm::Nonce::from_slice(nonce),
                aad,
                body,
                aes_gcm::Tag::from_slice(tag),
            )
            .map_err(|_| AeadError)?;
        Ok(len)
    }
}

fn gcm<C>(key: &[u8]) -> Result<Box<dyn AeadKey>, AeadError>
where
    C: KeyInit
        + AeadInPlace<NonceSize = aes_gcm::aead::consts::U12, TagSize = aes_gcm::aead::consts::U16>
        + Send
        + Sync
        + 'static,
{
    Ok(Box::new(
        Gcm(C::new_from_slice(key).map_err(|_| AeadError)?),
    ))
}

impl AeadSuite for RustCrypto {
    fn key(&self, alg: AeadAlgorithm, key: &[u8]) -> Result<Box<dyn AeadKey>, AeadError> {
        if key.len() != alg.key_len() {
            return Err(AeadError);
        }
        match alg {
            AeadAlgorithm::Aes128Gcm => gcm::<aes_gcm::Aes128Gcm>(key),
            AeadAlgorithm::Aes192Gcm => gcm::<Aes192Gcm>(key),
            AeadAlgorithm::Aes256Gcm => gcm::<aes_gcm::Aes256Gcm>(key),
            AeadAlgorithm::ExternalAes256Gcm => Err(AeadError),
        }
    }
}

impl MacSuite for RustCrypto {
    fn hmac_sha256(&self, key: &[u8], message: &[u8]) -> [u8; 32] {
        // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
        let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(key) {
            Ok(m) => m,
            Err(_) => return [0u8; 32],
        };
        mac.update(message);
        mac.finalize().into_bytes().into()
    }
}

/// An infallible CSPRNG for the RustCrypto APIs: HMAC-SHA-256 in counter mode, keyed with 32
/// bytes drawn from the engine's [`RandomSource`] (so a failing source fails before any key is
/// made, and a deterministic source makes deterministic keys in tests).
pub(crate) struct SeededRng {
    key: Zeroizing<[u8; 32]>,
    counter: u64,
}

impl SeededRng {
    pub(crate) fn new(source: &dyn RandomSource) -> Result<Self, KmsError> {
        let mut key = Zeroizing::new([0u8; 32]);
        source.fill(&mut key[..])?;
        Ok(SeededRng { key, counter: 0 })
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
            let block =
                Zeroizing::new(RustCrypto.hmac_sha256(&self.key[..], &self.counter.to_be_bytes()));
            for (d, s) in chunk.iter_mut().zip(block.iter()) {
                *d = *s;
            }
        }
        Ok(())
    }
}

impl rand_core::TryCryptoRng for SeededRng {}

fn rsa_bits(spec: KeySpec) -> Option<usize> {
    match spec {
        KeySpec::Rsa2048 => Some(2048),
        KeySpec::Rsa3072 => Some(3072),
        KeySpec::Rsa4096 => Some(4096),
        _ => None,
    }
}

fn encode_failed<E>(_: E) -> KmsError {
    KmsError::internal("encoding a key failed")
}

impl AsymmetricSuite for RustCrypto {
    fn generate(
        &self,
        spec: KeySpec,
        source: &dyn RandomSource,
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        use p256::elliptic_curve::Generate;
        let mut rng = SeededRng::new(source)?;
        let doc = match spec {
            KeySpec::EcP256 => p256::ecdsa::SigningKey::generate_from_rng(&mut rng)
                .to_pkcs8_der()
                .map_err(encode_failed)?,
            KeySpec::EcP256K => k256::ecdsa::SigningKey::generate_from_rng(&mut rng)
                .to_pkcs8_der()
                .map_err(encode_failed)?,
            other => {
                let bits = rsa_bits(other).ok_or_else(|| {
                    KmsError::internal(format!("{other} is not an asymmetric key spec"))
                })?;
                RsaPrivateKey::new(&mut rng, bits)
                    .map_err(|e| KmsError::internal(format!("RSA key generation failed: {e}")))?
                    .to_pkcs8_der()
                    .map_err(encode_failed)?
            }
        };
        Ok(Zeroizing::new(doc.as_bytes().to_vec()))
    }

    fn private_key(&self, spec: KeySpec, pkcs8: &[u8]) -> Result<Box<dyn PrivateKeyOps>, ()> {
        Ok(match spec {
            KeySpec::EcP256 => Box::new(P256Key(
                p256::ecdsa::SigningKey::from_pkcs8_der(pkcs8).map_err(|_| ())?,
            )),
            KeySpec::EcP256K => Box::new(K256Key(
                k256::ecdsa::SigningKey::from_pkcs8_der(pkcs8).map_err(|_| ())?,
            )),
            other => {
                let bits = rsa_bits(other).ok_or(())?;
                let key = RsaPrivateKey::from_pkcs8_der(pkcs8).map_err(|_| ())?;
                if key.size() * 8 != bits {
                    return Err(());
                }
                Box::new(RsaKey(Box::new(key)))
            }
        })
    }

    fn public_key(&self, spki: &[u8]) -> Result<(KeyKind, Box<dyn PublicKeyOps>), ()> {
        Ok(match super::spki_kind(spki)? {
            SpkiKind::Rsa => {
                let k = RsaPublicKey::from_public_key_der(spki).map_err(|_| ())?;
                (KeyKind::Rsa(k.size()), Box::new(RsaPublic(Box::new(k))))
            }
            SpkiKind::P256 => (
                KeyKind::P256,
                Box::new(P256Public(
                    p256::ecdsa::VerifyingKey::from_public_key_der(spki).map_err(|_| ())?,
                )),
            ),
            SpkiKind::K256 => (
                KeyKind::K256,
                Box::new(K256Public(
                    k256::ecdsa::VerifyingKey::from_public_key_der(spki).map_err(|_| ())?,
                )),
            ),
        })
    }
}

fn spki_of(doc: Result<spki::Document, spki::Error>) -> Result<Vec<u8>, KmsError> {
    Ok(doc
        .map_err(|_| KmsError::internal("encoding a public key failed"))?
        .as_bytes()
        .to_vec())
}

/// The ECDSA private key of a RustCrypto curve crate (`p256`, `k256`): DER signatures of a
/// prehash (RFC 6979 nonces), no decryption.
macro_rules! ec_private_key {
    ($name:ident, $curve:ident) => {
        struct $name($curve::ecdsa::SigningKey);

        impl PrivateKeyOps for $name {
            fn sign_digest(
                &self,
                _: SigningAlgorithm,
                digest: &[u8; 32],
            ) -> Result<Vec<u8>, KmsError> {
                let sig: $curve::ecdsa::Signature = self
                    .0
                    .sign_prehash(digest)
                    .map_err(|_| KmsError::internal("ECDSA signing failed"))?;
                Ok(sig.to_der().as_bytes().to_vec())
            }

            fn decrypt(&self, _: EncryptionAlgorithm, _: &[u8]) -> Result<Zeroizing<Vec<u8>>, ()> {
                Err(())
            }

            fn public_key_der(&self) -> Result<Vec<u8>, KmsError> {
                spki_of(self.0.verifying_key().to_public_key_der())
            }
        }
    };
}

ec_private_key!(P256Key, p256);
ec_private_key!(K256Key, k256);

struct RsaKey(Box<RsaPrivateKey>);

impl PrivateKeyOps for RsaKey {
    fn sign_digest(&self, alg: SigningAlgorithm, digest: &[u8; 32]) -> Result<Vec<u8>, KmsError> {
        match alg {
            SigningAlgorithm::RsaPssSha256 => {
                let mut rng = SeededRng::new(&OsRandom)?;
                self.0.sign_with_rng(
                    &mut rng,
                    Pss::<sha2::Sha256>::new_with_salt(PSS_SALT_LEN),
                    digest,
                )
            }
            SigningAlgorithm::RsaPkcs1Sha256 => {
                self.0.sign(Pkcs1v15Sign::new::<sha2::Sha256>(), digest)
            }
            SigningAlgorithm::EcdsaSha256 => return Err(KmsError::internal("ECDSA with RSA")),
        }
        .map_err(|e| KmsError::internal(format!("RSA signing failed: {e}")))
    }

    fn decrypt(
        &self,
        alg: EncryptionAlgorithm,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, ()> {
        match alg {
            EncryptionAlgorithm::RsaesOaepSha1 => {
                self.0.decrypt(Oaep::<sha1::Sha1>::new(), ciphertext)
            }
            EncryptionAlgorithm::RsaesOaepSha256 => {
                self.0.decrypt(Oaep::<sha2::Sha256>::new(), ciphertext)
            }
            EncryptionAlgorithm::RsaesPkcs1V15 => self.0.decrypt(Pkcs1v15Encrypt, ciphertext),
        }
        .map(Zeroizing::new)
        .map_err(|_| ())
    }

    fn public_key_der(&self) -> Result<Vec<u8>, KmsError> {
        spki_of(self.0.to_public_key().to_public_key_der())
    }
}

struct RsaPublic(Box<RsaPublicKey>);
struct P256Public(p256::ecdsa::VerifyingKey);
struct K256Public(k256::ecdsa::VerifyingKey);

#[cfg(feature = "aws-lc")]
/// RSA-PSS verification that accepts any salt length (the salt length is read from the
/// signature), as AsymmetricVerify does.
pub(super) fn verify_pss_any_salt(spki: &[u8], digest: &[u8; 32], signature: &[u8]) -> bool {
    match RsaPublicKey::from_public_key_der(spki) {
        Ok(k) => {
            RsaPublic(Box::new(k)).verify_digest(SigningAlgorithm::RsaPssSha256, digest, signature)
        }
        Err(_) => false,
    }
}

impl PublicKeyOps for RsaPublic {
    fn verify_digest(&self, alg: SigningAlgorithm, digest: &[u8; 32], signature: &[u8]) -> bool {
        match alg {
            SigningAlgorithm::RsaPssSha256 => {
                let mut pss = Pss::<sha2::Sha256>::new();
                pss.salt_len = None;
                self.0.verify(pss, digest, signature).is_ok()
            }
            SigningAlgorithm::RsaPkcs1Sha256 => self
                .0
                .verify(Pkcs1v15Sign::new::<sha2::Sha256>(), digest, signature)
                .is_ok(),
            SigningAlgorithm::EcdsaSha256 => false,
        }
    }

    fn encrypt(&self, alg: EncryptionAlgorithm, plaintext: &[u8]) -> Result<Vec<u8>, KmsError> {
        let mut rng = SeededRng::new(&OsRandom)?;
        match alg {
            EncryptionAlgorithm::RsaesOaepSha1 => {
                self.0
                    .encrypt(&mut rng, Oaep::<sha1::Sha1>::new(), plaintext)
            }
            EncryptionAlgorithm::RsaesOaepSha256 => {
                self.0
                    .encrypt(&mut rng, Oaep::<sha2::Sha256>::new(), plaintext)
            }
            EncryptionAlgorithm::RsaesPkcs1V15 => {
                self.0.encrypt(&mut rng, Pkcs1v15Encrypt, plaintext)
            }
        }
        .map_err(|e| KmsError::internal(format!("RSA encryption failed: {e}")))
    }
}

impl PublicKeyOps for P256Public {
    fn verify_digest(&self, alg: SigningAlgorithm, digest: &[u8; 32], signature: &[u8]) -> bool {
        alg == SigningAlgorithm::EcdsaSha256
            && match p256::ecdsa::Signature::from_der(signature) {
                Ok(sig) => self.0.verify_prehash(digest, &sig).is_ok(),
                Err(_) => false,
            }
    }

    fn encrypt(&self, _: EncryptionAlgorithm, _: &[u8]) -> Result<Vec<u8>, KmsError> {
        Err(KmsError::internal("EC keys do not encrypt"))
    }
}

impl PublicKeyOps for K256Public {
    fn verify_digest(&self, alg: SigningAlgorithm, digest: &[u8; 32], signature: &[u8]) -> bool {
        // k256 refuses high-S signatures (a Bitcoin rule); plain ECDSA, as openssl and other
        // signers make it, is valid with either S.
        alg == SigningAlgorithm::EcdsaSha256
            && match k256::ecdsa::Signature::from_der(signature) {
                Ok(sig) => self.0.verify_prehash(digest, &sig.normalize_s()).is_ok(),
                Err(_) => false,
            }
    }

    fn encrypt(&self, _: EncryptionAlgorithm, _: &[u8]) -> Result<Vec<u8>, KmsError> {
        Err(KmsError::internal("EC keys do not encrypt"))
    }
}
