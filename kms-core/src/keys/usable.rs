//! [`UsableKey`]: the proof that a key passed the checks cryptography needs.
//!
//! The version operations that use key material (seal, open, sign, MAC, decrypt, the public
//! key) accept only a [`UsableKey`], and [`Kms::usable_key`] is the only way to make one: a
//! Disabled, PendingDeletion or PendingImport key, or a caller the authorizer refused, cannot
//! reach the material, and the compiler holds every new operation to it (as ring's
//! `UnboundKey` must become a `LessSafeKey` before it seals anything).

use std::ops::Deref;
use std::sync::Arc;

use crate::engine::{CachedKey, Kms};
use crate::error::KmsError;
use crate::keys::rules::{self, Usage};
use crate::policy::{Action, Caller};

/// A live key that the caller may use for `action` and whose (effective) state allows
/// cryptography. Reads through to the cached key; cannot be built outside this module.
pub(crate) struct UsableKey(Arc<CachedKey>);

impl Deref for UsableKey {
    type Target = CachedKey;

    fn deref(&self) -> &CachedKey {
        &self.0
    }
}

impl Kms {
    /// The key a crypto operation uses: resolves `input` (a key id, ARN or alias, reported as
    /// `param`), asks the authorizer about `action`, checks the key's state allows
    /// cryptography, and notes the call for ListKeyAssociations.
    ///
    /// Errors: `Forbidden.KeyNotFound`/`Forbidden.AliasNotFound`, `Forbidden.NoPermission`,
    /// and the state errors of [`rules::check_usable`] (`Rejected.Disabled`,
    /// `Rejected.PendingDeletion`, `Rejected.PendingImport`...).
    pub(crate) fn usable_key(
        &self,
        caller: &Caller,
        action: Action,
        param: &'static str,
        input: &str,
    ) -> Result<UsableKey, KmsError> {
        let now = self.clock.now();
        let mut key = self.live_key(param, input, now)?;
        if self.strict {
            key = self.revalidated(key, input, now)?;
        }
        self.authorize(caller, action, Some(&key))?;
        rules::check_usable(&rules::effective(&key.record, now), Usage::Crypto)?;
        self.note_association(caller, &key.record.key_id, now);
        Ok(UsableKey(key))
    }
}
