//! Cryptographic primitives the engine is built from: the crypto provider, the random
//! source, the ciphertext blob, record sealing, the root key and key providers.

pub mod asym;
pub(crate) mod backend;
pub mod blob;
pub(crate) mod external;
pub(crate) mod hsm;
pub(crate) mod root_key;
pub(crate) mod seal;

use crate::error::KmsError;

/// A source of cryptographically secure random bytes.
///
/// The engine takes one as a parameter so that tests can be deterministic; by default it uses
/// its crypto provider's.
pub trait RandomSource: Send + Sync {
    /// Fills `buf` with random bytes.
    ///
    /// Errors: `InternalFailure` when the source fails.
    fn fill(&self, buf: &mut [u8]) -> Result<(), KmsError>;
}

/// The operating system's random source (`getrandom`), one system call per fill.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), KmsError> {
        getrandom::fill(buf)
            .map_err(|_| KmsError::internal("the operating system random source failed"))
    }
}

/// Length of an AES-GCM nonce in bytes.
pub const NONCE_LEN: usize = 12;
/// Length of an AES-GCM tag in bytes.
pub const TAG_LEN: usize = 16;

/// A symmetric AEAD algorithm; the byte is its code in the ciphertext blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AeadAlgorithm {
    /// AES-128-GCM.
    Aes128Gcm = 1,
    /// AES-192-GCM.
    Aes192Gcm = 2,
    /// AES-256-GCM.
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

/// Authentication failed, or the key was malformed. Carries nothing on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AeadError;

/// Overwrites a secret buffer's whole allocation, contents and spare capacity, with zeros,
/// each byte once (a `memset` the optimizer must keep, since the buffer is handed to an
/// opaque barrier afterwards), instead of zeroize's byte-at-a-time volatile writes: the
/// difference is ~2,000 instructions per KiB of plaintext. `v` is left `capacity()` zeros.
pub(crate) fn wipe(v: &mut Vec<u8>) {
    let len = v.len();
    // The spare capacity is zeroed by the resize, the contents by the fill.
    v.resize(v.capacity(), 0);
    if let Some(contents) = v.get_mut(..len) {
        contents.fill(0);
    }
    std::hint::black_box(&mut *v);
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
}

/// Wipes a secret buffer ([`wipe`]) and frees it. Taking the `Vec` out of a `Zeroizing`
/// wrapper before it drops leaves the wrapper an empty vector, so its own byte-wise
/// zeroization has nothing to do.
pub(crate) fn wipe_vec(mut v: Vec<u8>) {
    wipe(&mut v);
}

/// Secret bytes on the API (a plaintext, a data key): wiped in bulk when dropped (contents
/// and spare capacity, see [`wipe_vec`]), redacted in `Debug`, compared in constant time.
///
/// It dereferences to the `Vec<u8>` it holds; build one from a `Vec<u8>` with `.into()`.
#[derive(Clone, Default)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Wraps `bytes`.
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(bytes)
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        wipe_vec(std::mem::take(&mut self.0));
    }
}

impl std::ops::Deref for SecretBytes {
    type Target = Vec<u8>;

    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl std::ops::DerefMut for SecretBytes {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl AsRef<[u8]> for SecretBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(bytes: Vec<u8>) -> Self {
        SecretBytes(bytes)
    }
}

impl From<zeroize::Zeroizing<Vec<u8>>> for SecretBytes {
    fn from(mut bytes: zeroize::Zeroizing<Vec<u8>>) -> Self {
        // The vector moves out; the wrapper is left empty and has nothing to wipe.
        SecretBytes(std::mem::take(&mut *bytes))
    }
}

impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        ct_eq(&self.0, &other.0)
    }
}

impl Eq for SecretBytes {}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBytes(..{} bytes redacted..)", self.0.len())
    }
}

/// Constant-time equality of two secrets (lengths are not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_eq_compares_content_and_length() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }

    #[test]
    fn wipe_zeroes_contents_and_spare_capacity() {
        let mut v = Vec::with_capacity(64);
        v.extend_from_slice(&[0xAA; 40]);
        let cap = v.capacity();
        wipe(&mut v);
        assert_eq!(v.len(), cap);
        assert!(v.iter().all(|&b| b == 0));
        wipe_vec(v);
    }

    #[test]
    fn secret_bytes_are_redacted_and_compared_by_content() {
        let a = SecretBytes::from(b"key".to_vec());
        assert_eq!(format!("{a:?}"), "SecretBytes(..3 bytes redacted..)");
        assert_eq!(
            a,
            SecretBytes::from(zeroize::Zeroizing::new(b"key".to_vec()))
        );
        assert_ne!(a, SecretBytes::from(b"kez".to_vec()));
        assert_eq!(&a[..], b"key");
    }
}
