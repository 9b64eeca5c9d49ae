//! Key providers: where the material of `ProtectionLevel: HSM` keys lives.
//!
//! A SOFTWARE key's material is kept by the engine, sealed at rest under the root key. An HSM
//! key's material never enters the engine: a [`KeyProvider`] (a hardware security module, a
//! cloud HSM, a PKCS#11 token...) creates or imports it and hands back an opaque handle, which
//! the engine stores in the key version in place of material and passes back for every
//! private-key operation. Public-key operations (verify, public-key encrypt) use the public key
//! the provider reports.
//!
//! [`InMemoryHsm`] is a provider that keeps material in process memory only: a stand-in for
//! tests and demos that shows the contract (nothing secret reaches storage).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use zeroize::Zeroizing;

use crate::crypto::asym::{EncryptionAlgorithm, PrivateKey, PublicKey, SigningAlgorithm};
use crate::crypto::backend::CryptoProvider;
use crate::crypto::{AeadAlgorithm, NONCE_LEN};
use crate::error::KmsError;
use crate::keys::model::{KeyMaterial, KeySpec};

/// A module that holds key material and performs private-key operations by handle.
///
/// Every method returns a [`KmsError`]; a module that is unreachable should answer
/// [`KmsError::KeyProviderUnavailable`] (`ServiceUnavailable`, 503) so the engine changes no
/// state and the caller knows to retry.
pub trait KeyProvider: Send + Sync {
    /// Creates new material of `spec` inside the module; returns its handle. `label` names
    /// the key version the material belongs to (`<KeyId>/<KeyVersionId>`), for the module's
    /// own object labels.
    fn generate(&self, spec: KeySpec, label: &str) -> Result<Vec<u8>, KmsError>;

    /// Imports raw material (BYOK into the module); returns its handle. Used when the module
    /// has no wrapping keys of its own ([`KeyProvider::create_wrapping_key`] answers `None`):
    /// the engine then unwraps the material itself.
    fn import(&self, spec: KeySpec, material: &[u8], label: &str) -> Result<Vec<u8>, KmsError>;

    /// Makes an RSA-2048 key pair for wrapping imported material (GetParametersForImport)
    /// inside the module, and returns the private half's handle with the public key; `None`
    /// (the default) when the module does not unwrap, so the engine makes the pair in
    /// software and calls [`KeyProvider::import`] with the unwrapped material.
    ///
    /// `spec` is the key's spec and `alg` the WrappingAlgorithm the material will come
    /// with; a module that cannot unwrap them answers `Rejected.UnsupportedOperation`.
    fn create_wrapping_key(
        &self,
        spec: KeySpec,
        alg: EncryptionAlgorithm,
        label: &str,
    ) -> Result<Option<(Vec<u8>, PublicKey)>, KmsError> {
        let _ = (spec, alg, label);
        Ok(None)
    }

    /// Unwraps `wrapped` (ImportKeyMaterial's EncryptedKeyMaterial) inside the module with
    /// the wrapping key `wrapping_handle` and `alg`, into new material of `spec` that never
    /// leaves it.
    ///
    /// Errors: `InvalidKeyMaterial` when it does not unwrap; the default answers
    /// `Rejected.UnsupportedOperation` (providers whose `create_wrapping_key` answers `None`
    /// are never asked).
    fn unwrap_import(
        &self,
        wrapping_handle: &[u8],
        alg: EncryptionAlgorithm,
        spec: KeySpec,
        wrapped: &[u8],
        label: &str,
    ) -> Result<ImportedMaterial, KmsError> {
        let _ = (wrapping_handle, alg, spec, wrapped, label);
        Err(KmsError::UnsupportedOperation {
            reason: "this key provider does not unwrap imported material".into(),
        })
    }

    /// AES-GCM: encrypts `buf[start..]` in place and appends the tag.
    fn aead_seal(
        &self,
        handle: &[u8],
        alg: AeadAlgorithm,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut Vec<u8>,
        start: usize,
    ) -> Result<(), KmsError>;

    /// AES-GCM: authenticates and decrypts `ciphertext || tag`.
    ///
    /// Errors: `InvalidCiphertext` when authentication fails.
    fn aead_open(
        &self,
        handle: &[u8],
        alg: AeadAlgorithm,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        ciphertext_and_tag: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KmsError>;

    /// Signs a SHA-256 digest with an asymmetric key.
    fn sign(
        &self,
        handle: &[u8],
        spec: KeySpec,
        alg: SigningAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>, KmsError>;

    /// Decrypts with an RSA key.
    ///
    /// Errors: `InvalidCiphertext` when decryption fails.
    fn decrypt(
        &self,
        handle: &[u8],
        spec: KeySpec,
        alg: EncryptionAlgorithm,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KmsError>;

    /// HMAC-SHA256 of `message` with an HMAC key.
    ///
    /// Errors: the default answers `Rejected.UnsupportedOperation`, for providers without
    /// HMAC keys.
    fn mac(&self, handle: &[u8], message: &[u8]) -> Result<Vec<u8>, KmsError> {
        let _ = (handle, message);
        Err(KmsError::UnsupportedOperation {
            reason: "this key provider does not support HMAC keys".into(),
        })
    }

    /// The public key of an asymmetric key.
    fn public_key(&self, handle: &[u8], spec: KeySpec) -> Result<PublicKey, KmsError>;

    /// Destroys the material (the key was purged or its material deleted).
    fn destroy(&self, handle: &[u8]) -> Result<(), KmsError>;
}

/// Material a module unwrapped inside itself ([`KeyProvider::unwrap_import`]).
#[derive(Debug, Clone)]
pub struct ImportedMaterial {
    /// The new material's handle.
    pub handle: Vec<u8>,
    /// The material's length in bytes (checked against the key spec by the engine).
    pub len: usize,
    /// A value that is the same for the same material and different otherwise (a key check
    /// value computed inside the module), so that only the same material can be imported
    /// again; it must not reveal the material.
    pub check_value: [u8; 32],
}

/// A [`KeyProvider`] that keeps material in process memory, never in storage. For tests and
/// demonstrations: its keys are lost when the process ends. Its primitives are the default
/// [`CryptoProvider`]'s.
#[derive(Default)]
pub struct InMemoryHsm {
    slots: Mutex<HashMap<Vec<u8>, (KeySpec, KeyMaterial)>>,
    crypto: CryptoProvider,
}

impl std::fmt::Debug for InMemoryHsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryHsm").finish_non_exhaustive()
    }
}

fn lost<T>(_: PoisonError<T>) -> KmsError {
    KmsError::internal("the in-memory HSM lock was poisoned")
}

impl InMemoryHsm {
    /// An empty module.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of keys the module holds.
    pub fn len(&self) -> usize {
        self.slots.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// True when the module holds no keys.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn store(&self, spec: KeySpec, material: KeyMaterial) -> Result<Vec<u8>, KmsError> {
        let handle =
            format!("hsm-slot-{}", crate::ids::new_uuid(self.crypto.random())?).into_bytes();
        self.slots
            .lock()
            .map_err(lost)?
            .insert(handle.clone(), (spec, material));
        Ok(handle)
    }

    fn with<T>(
        &self,
        handle: &[u8],
        f: impl FnOnce(KeySpec, &KeyMaterial) -> Result<T, KmsError>,
    ) -> Result<T, KmsError> {
        let slots = self.slots.lock().map_err(lost)?;
        let (spec, material) = slots
            .get(handle)
            .ok_or_else(|| KmsError::internal("the HSM has no key under this handle"))?;
        f(*spec, material)
    }
}

impl KeyProvider for InMemoryHsm {
    fn generate(&self, spec: KeySpec, _label: &str) -> Result<Vec<u8>, KmsError> {
        let material = match spec.symmetric_key_len() {
            Some(len) => {
                let mut bytes = Zeroizing::new(vec![0u8; len]);
                self.crypto.random().fill(&mut bytes)?;
                KeyMaterial::new(bytes)
            }
            None => PrivateKey::generate(self.crypto, spec, self.crypto.random())?.1,
        };
        self.store(spec, material)
    }

    fn import(&self, spec: KeySpec, material: &[u8], _label: &str) -> Result<Vec<u8>, KmsError> {
        self.store(spec, KeyMaterial::new(Zeroizing::new(material.to_vec())))
    }

    fn aead_seal(
        &self,
        handle: &[u8],
        alg: AeadAlgorithm,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut Vec<u8>,
        start: usize,
    ) -> Result<(), KmsError> {
        self.with(handle, |_, m| {
            self.crypto
                .seal(alg, m.expose(), nonce, aad, buf, start)
                .map_err(|_| KmsError::internal("HSM encryption failed"))
        })
    }

    fn aead_open(
        &self,
        handle: &[u8],
        alg: AeadAlgorithm,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        ciphertext_and_tag: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        self.with(handle, |_, m| {
            self.crypto.open(alg, m.expose(), nonce, aad, ciphertext_and_tag).map_err(|_| {
                KmsError::InvalidCiphertext {
                    reason: "authentication failed: the EncryptionContext differs or the blob was altered",
                }
            })
        })
    }

    fn sign(
        &self,
        handle: &[u8],
        spec: KeySpec,
        alg: SigningAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        self.with(handle, |_, m| {
            PrivateKey::from_pkcs8(self.crypto, spec, m.expose())?.sign(alg, digest)
        })
    }

    fn decrypt(
        &self,
        handle: &[u8],
        spec: KeySpec,
        alg: EncryptionAlgorithm,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        self.with(handle, |_, m| {
            PrivateKey::from_pkcs8(self.crypto, spec, m.expose())?.decrypt(alg, ciphertext)
        })
    }

    fn mac(&self, handle: &[u8], message: &[u8]) -> Result<Vec<u8>, KmsError> {
        self.with(handle, |_, m| {
            Ok(self.crypto.mac.hmac_sha256(m.expose(), message).to_vec())
        })
    }

    fn public_key(&self, handle: &[u8], spec: KeySpec) -> Result<PublicKey, KmsError> {
        self.with(handle, |_, m| {
            PrivateKey::from_pkcs8(self.crypto, spec, m.expose())?.public_key()
        })
    }

    fn destroy(&self, handle: &[u8]) -> Result<(), KmsError> {
        self.slots.lock().map_err(lost)?.remove(handle);
        Ok(())
    }
}
