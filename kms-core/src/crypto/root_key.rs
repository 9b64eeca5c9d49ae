//! The root key: the one secret the host gives the engine.
//!
//! Every record the engine stores is sealed under a keyring that is itself sealed under the
//! root key, so whoever holds the storage but not the root key holds only ciphertext.

use std::fmt;

use zeroize::Zeroizing;

use crate::error::KmsError;

/// Length of a root key in bytes (AES-256).
pub const ROOT_KEY_LEN: usize = 32;

/// A 256-bit root key. Zeroized on drop; its `Debug` output is redacted.
#[derive(Clone)]
pub struct RootKey(Zeroizing<[u8; ROOT_KEY_LEN]>);

impl RootKey {
    /// Builds a root key from exactly 32 bytes.
    ///
    /// Errors: `InvalidParameter` when `bytes` is not 32 bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KmsError> {
        let arr: [u8; ROOT_KEY_LEN] = bytes.try_into().map_err(|_| {
            KmsError::invalid("RootKey", format!("must be exactly {ROOT_KEY_LEN} bytes"))
        })?;
        Ok(Self(Zeroizing::new(arr)))
    }

    /// Generates a fresh root key from the default crypto provider's random source.
    ///
    /// Errors: `InternalFailure` when the OS random source fails.
    pub fn generate() -> Result<Self, KmsError> {
        let mut bytes = Zeroizing::new([0u8; ROOT_KEY_LEN]);
        crate::crypto::backend::CryptoProvider::default()
            .random()
            .fill(&mut bytes[..])?;
        Ok(Self(bytes))
    }

    /// The raw key bytes, for a host that persists the key itself.
    pub fn expose_secret(&self) -> &[u8; ROOT_KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for RootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RootKey(..redacted..)")
    }
}

/// A root key held inside a module (an HSM's non-extractable AES-256 key, as Vault's PKCS#11
/// seal keeps its key): it seals and opens the keyring itself, so the engine never holds the
/// root key and a copy of the store alone decrypts nothing.
///
/// Both methods are AES-256-GCM with the engine's 12-byte nonce and associated data; a
/// module that is unreachable answers [`KmsError::KeyProviderUnavailable`].
pub trait RootKeyProvider: Send + Sync {
    /// Encrypts `plaintext`; returns `ciphertext || tag`.
    fn seal(
        &self,
        nonce: &[u8; crate::crypto::NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, KmsError>;

    /// Authenticates and decrypts `ciphertext || tag`.
    ///
    /// Errors: `InvalidCiphertext` when authentication fails (another root key).
    fn open(
        &self,
        nonce: &[u8; crate::crypto::NONCE_LEN],
        aad: &[u8],
        ciphertext_and_tag: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KmsError>;

    /// Where the key is, for messages (no secrets): "PKCS#11 token kms, key kms-root".
    fn describe(&self) -> String;
}

/// What seals the keyring: a root key the engine holds, or one a module holds.
#[derive(Clone)]
pub enum RootSeal {
    /// A 32-byte root key (a root key file, an environment variable...).
    Key(RootKey),
    /// A root key inside a module.
    Provider(std::sync::Arc<dyn RootKeyProvider>),
}

impl fmt::Debug for RootSeal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootSeal::Key(_) => f.write_str("RootSeal::Key(..redacted..)"),
            RootSeal::Provider(p) => write!(f, "RootSeal::Provider({})", p.describe()),
        }
    }
}

impl From<RootKey> for RootSeal {
    fn from(key: RootKey) -> Self {
        RootSeal::Key(key)
    }
}

impl RootSeal {
    /// AES-256-GCM seal of `plaintext` under the root key; `ciphertext || tag`.
    pub(crate) fn seal(
        &self,
        crypto: crate::crypto::backend::CryptoProvider,
        nonce: &[u8; crate::crypto::NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        match self {
            RootSeal::Key(key) => {
                let mut buf = Vec::with_capacity(plaintext.len() + crate::crypto::TAG_LEN);
                buf.extend_from_slice(plaintext);
                crypto
                    .seal(
                        crate::crypto::AeadAlgorithm::Aes256Gcm,
                        key.expose_secret(),
                        nonce,
                        aad,
                        &mut buf,
                        0,
                    )
                    .map_err(|_| KmsError::internal("sealing the keyring failed"))?;
                Ok(buf)
            }
            RootSeal::Provider(p) => p.seal(nonce, aad, plaintext),
        }
    }

    /// AES-256-GCM open under the root key.
    ///
    /// Errors: `InvalidCiphertext` when it does not authenticate; the provider's own errors.
    pub(crate) fn open(
        &self,
        crypto: crate::crypto::backend::CryptoProvider,
        nonce: &[u8; crate::crypto::NONCE_LEN],
        aad: &[u8],
        ciphertext_and_tag: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        match self {
            RootSeal::Key(key) => crypto
                .open(
                    crate::crypto::AeadAlgorithm::Aes256Gcm,
                    key.expose_secret(),
                    nonce,
                    aad,
                    ciphertext_and_tag,
                )
                .map_err(|_| KmsError::InvalidCiphertext {
                    reason: "the keyring does not authenticate under this root key",
                }),
            RootSeal::Provider(p) => p.open(nonce, aad, ciphertext_and_tag),
        }
    }

    /// Where the root key is, for messages.
    pub fn describe(&self) -> String {
        match self {
            RootSeal::Key(_) => "a root key".into(),
            RootSeal::Provider(p) => p.describe(),
        }
    }
}
