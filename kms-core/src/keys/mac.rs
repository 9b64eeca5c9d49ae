//! HMAC keys: GenerateMac and VerifyMac.

use crate::api::*;
use crate::crypto::ct_eq;
use crate::engine::{CachedKey, Kms};
use crate::error::KmsError;
use crate::keys::model::{KeyUsage, VersionRecord};
use crate::keys::symmetric::dry_run;
use crate::policy::{Action, Caller};
use crate::schema;

/// Largest message GenerateMac and VerifyMac take, in bytes.
pub const MAX_MAC_MESSAGE: usize = 4096;

/// The MAC algorithm of HMAC_SHA256 keys, as the `Algorithm` parameter names it.
pub const MAC_ALGORITHM: &str = "HMAC_SHA_256";

/// Checks the optional `Algorithm` parameter.
fn check_algorithm(algorithm: Option<&str>) -> Result<(), KmsError> {
    match algorithm {
        None | Some("") | Some(MAC_ALGORITHM) => Ok(()),
        Some(other) => Err(KmsError::invalid(
            "Algorithm",
            format!("{other:?} is not one of {MAC_ALGORITHM}"),
        )),
    }
}

fn check_message(message: &[u8]) -> Result<(), KmsError> {
    if message.is_empty() {
        return Err(KmsError::missing("Message"));
    }
    if message.len() > MAX_MAC_MESSAGE {
        return Err(KmsError::invalid(
            "Message",
            format!(
                "is {} bytes; at most {MAX_MAC_MESSAGE} are allowed",
                message.len()
            ),
        ));
    }
    Ok(())
}

fn check_mac_key(key: &CachedKey) -> Result<(), KmsError> {
    if key.record.key_usage != KeyUsage::GenerateVerifyMac {
        return Err(KmsError::UnsupportedOperation {
            reason: format!(
                "key {} is {} / {}; MACs need an HMAC_SHA256 GENERATE/VERIFY_MAC key",
                key.record.key_id, key.record.key_spec, key.record.key_usage
            ),
        });
    }
    Ok(())
}

impl Kms {
    /// GenerateMac: HMAC-SHA256 of the message under the key's primary version.
    ///
    /// Errors: `MissingParameter`/`InvalidParameter` (Message), the state errors,
    /// `Rejected.UnsupportedOperation` (not an HMAC key).
    pub fn generate_mac(
        &self,
        caller: &Caller,
        req: GenerateMacRequest,
    ) -> Result<GenerateMacResponse, KmsError> {
        dry_run(req.dry_run, || {
            check_message(&req.message)?;
            check_algorithm(req.algorithm.as_deref())?;
            let key = self.usable_key(caller, Action::GenerateMac, "KeyId", &req.key_id)?;
            check_mac_key(&key)?;
            let version = self.primary_version(&key)?;
            let mac = self.version_mac(&key, &version, &req.message)?;
            Ok(GenerateMacResponse {
                request_id: self.request_id(),
                key_id: key.record.key_id.clone(),
                key_version_id: version.version_id().to_owned(),
                algorithm: MAC_ALGORITHM.into(),
                mac,
            })
        })
    }

    /// VerifyMac: compares in constant time against the named version, or against every
    /// version (newest first) so MACs made before a rotation still verify.
    ///
    /// Errors: as [`Kms::generate_mac`]; `Forbidden.KeyVersionNotFound` for an unknown
    /// KeyVersionId.
    pub fn verify_mac(
        &self,
        caller: &Caller,
        req: VerifyMacRequest,
    ) -> Result<VerifyMacResponse, KmsError> {
        dry_run(req.dry_run, || self.verify_mac_checked(caller, &req))
    }

    fn verify_mac_checked(
        &self,
        caller: &Caller,
        req: &VerifyMacRequest,
    ) -> Result<VerifyMacResponse, KmsError> {
        check_message(&req.message)?;
        check_algorithm(req.algorithm.as_deref())?;
        if req.mac.is_empty() {
            return Err(KmsError::missing("Mac"));
        }
        let key = self.usable_key(caller, Action::VerifyMac, "KeyId", &req.key_id)?;
        check_mac_key(&key)?;
        let candidates: Vec<String> = match req.key_version_id.as_deref().filter(|v| !v.is_empty())
        {
            Some(v) => vec![v.to_ascii_lowercase()],
            None => {
                let mut all: Vec<VersionRecord> = self
                    .scan_all::<VersionRecord>(&schema::versions_of(&key.record.key_id))?
                    .into_iter()
                    .map(|(_, v, _)| v)
                    .collect();
                all.sort_by_key(|v| std::cmp::Reverse(v.seq));
                all.into_iter().map(|v| v.version_id).collect()
            }
        };
        let mut matched = None;
        for id in &candidates {
            let version = self.load_version(&key, id)?;
            if version.record.material.is_none() {
                continue;
            }
            let mac = self.version_mac(&key, &version, &req.message)?;
            // Every candidate is computed and compared, so timing reveals nothing.
            if ct_eq(&mac, &req.mac) && matched.is_none() {
                matched = Some(id.clone());
            }
        }
        Ok(VerifyMacResponse {
            request_id: self.request_id(),
            key_id: key.record.key_id.clone(),
            algorithm: MAC_ALGORITHM.into(),
            value: matched.is_some(),
            key_version_id: matched.or_else(|| {
                req.key_version_id
                    .as_deref()
                    .filter(|v| !v.is_empty())
                    .map(|v| v.to_ascii_lowercase())
            }),
        })
    }
}
