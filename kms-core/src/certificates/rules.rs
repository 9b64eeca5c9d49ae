//! The certificate status rules, as pure functions over a status (as [`crate::keys::rules`] is
//! for keys).
//!
//! PENDING until a certificate whose public key is the record's key is uploaded, then ACTIVE;
//! ACTIVE and INACTIVE switch freely; REVOKED is final. Only an ACTIVE certificate signs or
//! decrypts; nothing is encrypted to a REVOKED one; verification works in every status.

use crate::error::KmsError;
use crate::keys::model::KeySpec;

wire_enum!(
    /// A certificate's status.
    CertificateStatus, "Status", {
        /// Created; waiting for its certificate (UploadCertificate).
        Pending => "PENDING",
        /// In use: signs, decrypts, verifies, encrypts.
        Active => "ACTIVE",
        /// Switched off: verifies and encrypts only.
        Inactive => "INACTIVE",
        /// Revoked for good: verifies only.
        Revoked => "REVOKED",
    }
);

/// The key specs a certificate's key pair may have.
pub const KEY_SPECS: [KeySpec; 3] = [KeySpec::Rsa2048, KeySpec::EcP256, KeySpec::EcP256K];

fn refused(id: &str, status: CertificateStatus, what: &str) -> KmsError {
    KmsError::UnsupportedOperation {
        reason: format!("certificate {id} is {status}; {what}"),
    }
}

/// CreateCertificate's KeySpec: `RSA_2048` (the default), `EC_P256` or `EC_P256K`.
///
/// Errors: `InvalidParameter` (KeySpec) for anything else.
pub fn key_spec(value: Option<&str>) -> Result<KeySpec, KmsError> {
    let value = value.unwrap_or_default();
    if value.is_empty() {
        return Ok(KeySpec::Rsa2048);
    }
    KEY_SPECS
        .into_iter()
        .find(|s| s.as_str() == value)
        .ok_or_else(|| {
            KmsError::invalid(
                "KeySpec",
                format!("{value:?} is not one of RSA_2048, EC_P256, EC_P256K"),
            )
        })
}

/// The status UpdateCertificateStatus asks for: ACTIVE, INACTIVE or REVOKED.
///
/// Errors: `MissingParameter` (Status) when empty; `InvalidParameter` (Status) otherwise.
pub fn requested_status(value: &str) -> Result<CertificateStatus, KmsError> {
    match CertificateStatus::parse(value) {
        Ok(CertificateStatus::Pending) | Err(KmsError::InvalidParameter { .. }) => {
            Err(KmsError::invalid(
                "Status",
                format!("{value:?} is not one of ACTIVE, INACTIVE, REVOKED"),
            ))
        }
        other => other,
    }
}

/// UploadCertificate: the status after a certificate is uploaded (PENDING becomes ACTIVE,
/// others stay).
///
/// Errors: `Rejected.UnsupportedOperation` for a REVOKED certificate.
pub fn after_upload(id: &str, status: CertificateStatus) -> Result<CertificateStatus, KmsError> {
    match status {
        CertificateStatus::Revoked => Err(refused(
            id,
            status,
            "a revoked certificate cannot be replaced",
        )),
        CertificateStatus::Pending => Ok(CertificateStatus::Active),
        other => Ok(other),
    }
}

/// UpdateCertificateStatus: whether `current` may become `requested`.
///
/// Errors: `Rejected.UnsupportedOperation` for a PENDING certificate (upload one first) and
/// for leaving REVOKED.
pub fn change_status(
    id: &str,
    current: CertificateStatus,
    requested: CertificateStatus,
) -> Result<(), KmsError> {
    match current {
        CertificateStatus::Revoked if requested != CertificateStatus::Revoked => {
            Err(refused(id, current, "REVOKED is final"))
        }
        CertificateStatus::Pending => Err(refused(id, current, "upload a certificate first")),
        _ => Ok(()),
    }
}

/// CertificatePrivateKeySign and CertificatePrivateKeyDecrypt: only ACTIVE.
///
/// Errors: `Rejected.UnsupportedOperation` in any other status.
pub fn check_private_key_use(id: &str, status: CertificateStatus) -> Result<(), KmsError> {
    if status == CertificateStatus::Active {
        Ok(())
    } else {
        Err(refused(
            id,
            status,
            "only an ACTIVE certificate signs or decrypts",
        ))
    }
}

/// CertificatePublicKeyEncrypt: every status but REVOKED.
///
/// Errors: `Rejected.UnsupportedOperation` for a REVOKED certificate.
pub fn check_encrypt_to(id: &str, status: CertificateStatus) -> Result<(), KmsError> {
    if status == CertificateStatus::Revoked {
        Err(refused(
            id,
            status,
            "nothing is encrypted to a revoked certificate",
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CertificateStatus::*;

    fn code<T>(r: Result<T, KmsError>) -> &'static str {
        r.err().map_or("ok", |e| e.code())
    }

    #[test]
    fn uploading_activates_a_pending_certificate_and_keeps_the_others() {
        assert_eq!(after_upload("c", Pending).unwrap(), Active);
        assert_eq!(after_upload("c", Active).unwrap(), Active);
        assert_eq!(after_upload("c", Inactive).unwrap(), Inactive);
        assert_eq!(
            code(after_upload("c", Revoked)),
            "Rejected.UnsupportedOperation"
        );
    }

    #[test]
    fn revoked_is_final_and_pending_cannot_change_status() {
        for to in [Active, Inactive, Revoked] {
            assert_eq!(code(change_status("c", Active, to)), "ok");
            assert_eq!(code(change_status("c", Inactive, to)), "ok");
            assert_eq!(
                code(change_status("c", Pending, to)),
                "Rejected.UnsupportedOperation"
            );
        }
        assert_eq!(code(change_status("c", Revoked, Revoked)), "ok");
        for to in [Active, Inactive] {
            assert_eq!(
                code(change_status("c", Revoked, to)),
                "Rejected.UnsupportedOperation"
            );
        }
    }

    #[test]
    fn only_active_uses_the_private_key_and_only_revoked_refuses_encryption() {
        for s in CertificateStatus::ALL {
            let private = if *s == Active {
                "ok"
            } else {
                "Rejected.UnsupportedOperation"
            };
            assert_eq!(code(check_private_key_use("c", *s)), private, "{s}");
            let encrypt = if *s == Revoked {
                "Rejected.UnsupportedOperation"
            } else {
                "ok"
            };
            assert_eq!(code(check_encrypt_to("c", *s)), encrypt, "{s}");
        }
    }

    #[test]
    fn status_and_key_spec_parameters_name_their_allowed_values() {
        assert_eq!(requested_status("REVOKED").unwrap(), Revoked);
        assert_eq!(code(requested_status("")), "MissingParameter");
        for bad in ["PENDING", "active", "X"] {
            let e = requested_status(bad).unwrap_err();
            assert_eq!(e.code(), "InvalidParameter");
            assert!(e.to_string().contains("ACTIVE, INACTIVE, REVOKED"), "{e}");
        }
        assert_eq!(key_spec(None).unwrap(), KeySpec::Rsa2048);
        assert_eq!(key_spec(Some("")).unwrap(), KeySpec::Rsa2048);
        assert_eq!(key_spec(Some("EC_P256K")).unwrap(), KeySpec::EcP256K);
        assert_eq!(code(key_spec(Some("AES_256"))), "InvalidParameter");
        // The record's status keeps its stored form.
        assert_eq!(serde_json::to_string(&Inactive).unwrap(), "\"INACTIVE\"");
    }
}
