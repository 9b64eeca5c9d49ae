//! Cryptographic primitives the engine is built from: the random source and AES-GCM.

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
