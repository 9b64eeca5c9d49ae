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
