//! Certificate manager operations.
//!
//! A certificate record (`x/<id>`) holds the key pair (PKCS#8, sealed like every record), the
//! request, and once uploaded the certificate and chain. The status rules are
//! [`crate::certificates::rules`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::api::*;
use crate::certificates::rules::{self, CertificateStatus};
use crate::certificates::x509::{self, CertificateInfo};
use crate::crypto::asym::{EncryptionAlgorithm, PrivateKey, PublicKey, SigningAlgorithm};
use crate::engine::mutate::Record;
use crate::engine::Kms;
use crate::error::KmsError;
use crate::ids::new_uuid;
use crate::keys::model::{KeyMaterial, KeySpec};
use crate::policy::{AccessRequest, Action, Caller};
use crate::schema;
use crate::storage::{Batch, Precondition};
use crate::tags::Tagged;
use crate::time::UnixTime;
use crate::validate;

/// Largest RAW message CertificatePrivateKeySign takes (it hashes it with SHA-256).
pub const MAX_RAW_MESSAGE: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CertificateRecord {
    id: String,
    key_spec: KeySpec,
    private_key: KeyMaterial,
    exportable_private_key: bool,
    subject: String,
    sans: Vec<String>,
    csr: String,
    certificate: Option<String>,
    chain: Option<String>,
    info: Option<CertificateInfo>,
    status: CertificateStatus,
    created: UnixTime,
    updated: UnixTime,
    tags: BTreeMap<String, String>,
}

/// The digest a certificate operation signs: SHA-256 of a RAW message, or the DIGEST itself.
fn message_digest(message: &[u8], message_type: Option<&str>) -> Result<Vec<u8>, KmsError> {
    if message.is_empty() {
        return Err(KmsError::missing("Message"));
    }
    match message_type.unwrap_or("RAW") {
        "" | "RAW" => {
            if message.len() >= MAX_RAW_MESSAGE {
                return Err(KmsError::invalid(
                    "Message",
                    format!("a RAW message must be under {MAX_RAW_MESSAGE} bytes; send its SHA-256 digest with MessageType DIGEST"),
                ));
            }
            use sha2::Digest;
            Ok(sha2::Sha256::digest(message).to_vec())
        }
        "DIGEST" => Ok(message.to_vec()),
        other => Err(KmsError::invalid(
            "MessageType",
            format!("{other:?} is not one of RAW, DIGEST"),
        )),
    }
}

impl Kms {
    fn certificate_arn(&self, id: &str) -> String {
        self.scope.certificate_arn(id)
    }

    fn authorize_certificate(
        &self,
        caller: &Caller,
        action: Action,
        id: &str,
    ) -> Result<(), KmsError> {
        let arn = self.certificate_arn(id);
        self.decide(&AccessRequest {
            caller,
            action,
            resource: &arn,
            resource_account: &self.scope.account_id,
            policy: None,
            creator: Some(&self.scope.account_id),
            instance_id: None,
        })
    }

    fn load_certificate(
        &self,
        caller: &Caller,
        action: Action,
        id: &str,
    ) -> Result<(CertificateRecord, u64), KmsError> {
        validate::required("CertificateId", id)?;
        let not_found = || KmsError::CertificateNotFound {
            certificate_id: id.to_owned(),
        };
        let id = id.to_ascii_lowercase();
        if !crate::ids::is_uuid(&id) {
            return Err(not_found());
        }
        let (rec, entry) = self
            .read::<CertificateRecord>(&schema::certificate(&id))?
            .ok_or_else(not_found)?;
        self.authorize_certificate(caller, action, &id)?;
        Ok((rec, entry.revision))
    }

    pub(crate) fn mutate_certificate(
        &self,
        caller: &Caller,
        action: Action,
        id: &str,
        apply: impl Fn(&CertificateRecord, UnixTime) -> Result<CertificateRecord, KmsError>,
    ) -> Result<CertificateRecord, KmsError> {
        self.mutate(|_| self.load_certificate(caller, action, id), apply, Ok)
    }

    /// CreateCertificate: a new key pair and a PKCS#10 request for the subject, signed by
    /// that key. The certificate is PENDING until UploadCertificate.
    ///
    /// Errors: `MissingParameter`/`InvalidParameter` (Subject without CN, C, O and OU;
    /// SubjectAlternativeNames; KeySpec).
    pub fn create_certificate(
        &self,
        caller: &Caller,
        req: CreateCertificateRequest,
    ) -> Result<CreateCertificateResponse, KmsError> {
        let subject = x509::parse_subject(&req.subject)?;
        x509::check_sans(&req.subject_alternative_names)?;
        let key_spec = rules::key_spec(req.key_spec.as_deref())?;
        self.authorize_account(caller, Action::CreateCertificate, None)?;
        let (key, der) = PrivateKey::generate(self.crypto, key_spec, &*self.rng)?;
        let csr = x509::build_csr(&key, subject, &req.subject_alternative_names)?;
        let now = self.clock.now();
        let id = new_uuid(&*self.rng)?;
        let rec = CertificateRecord {
            id: id.clone(),
            key_spec,
            private_key: der,
            exportable_private_key: req.exportable_private_key.unwrap_or(true),
            subject: req.subject,
            sans: req.subject_alternative_names,
            csr: csr.clone(),
            certificate: None,
            chain: None,
            info: None,
            status: CertificateStatus::Pending,
            created: now,
            updated: now,
            tags: BTreeMap::new(),
        };
        let rk = schema::certificate(&id);
        let mut batch = Batch::new();
        self.stage_put(&mut batch, rk, &rec, Precondition::Absent)?;
        self.commit(batch)?;
        Ok(CreateCertificateResponse {
            request_id: self.request_id(),
            arn: self.certificate_arn(&id),
            certificate_id: id,
            csr,
        })
    }

    /// UploadCertificate: stores the signed certificate and chain, if the certificate's
    /// public key is this certificate's key; a PENDING certificate becomes ACTIVE.
    ///
    /// Errors: `InvalidParameter` (malformed PEM, or a certificate for another key),
    /// `Rejected.UnsupportedOperation` (REVOKED), `Certificate.NotFound`.
    pub fn upload_certificate(
        &self,
        caller: &Caller,
        req: UploadCertificateRequest,
    ) -> Result<EmptyResponse, KmsError> {
        validate::required("Certificate", &req.certificate)?;
        let cert = x509::parse_certificate("Certificate", &req.certificate)?;
        let chain = x509::parse_chain(req.certificate_chain.as_deref().unwrap_or_default())?;
        let info = x509::describe(&cert)?;
        let cert_spki = x509::public_key_der(&cert)?;
        let cert_pem = x509::to_pem(&cert)?;
        let chain_pem = chain
            .iter()
            .map(x509::to_pem)
            .collect::<Result<Vec<_>, _>>()?
            .concat();
        self.mutate_certificate(
            caller,
            Action::UploadCertificate,
            &req.certificate_id,
            |r, now| {
                let status = rules::after_upload(&r.id, r.status)?;
                let key = PrivateKey::from_pkcs8(self.crypto, r.key_spec, r.private_key.expose())?;
                if !crate::crypto::ct_eq(&x509::key_spki_der(&key)?, &cert_spki) {
                    return Err(KmsError::invalid(
                        "Certificate",
                        "its public key is not this certificate's key",
                    ));
                }
                Ok(CertificateRecord {
                    certificate: Some(cert_pem.clone()),
                    chain: (!chain_pem.is_empty()).then(|| chain_pem.clone()),
                    info: Some(info.clone()),
                    status,
                    updated: now,
                    ..r.clone()
                })
            },
        )?;
        Ok(EmptyResponse {
            request_id: self.request_id(),
        })
    }

    /// GetCertificate: the certificate, chain and request (PEM).
    ///
    /// Errors: `Certificate.NotFound`.
    pub fn get_certificate(
        &self,
        caller: &Caller,
        req: CertificateIdRequest,
    ) -> Result<GetCertificateResponse, KmsError> {
        let (rec, _) =
            self.load_certificate(caller, Action::GetCertificate, &req.certificate_id)?;
        Ok(GetCertificateResponse {
            request_id: self.request_id(),
            certificate_id: rec.id,
            certificate: rec.certificate,
            certificate_chain: rec.chain,
            csr: rec.csr,
        })
    }

    /// DescribeCertificate: status, key, and the uploaded certificate's details.
    ///
    /// Errors: `Certificate.NotFound`.
    pub fn describe_certificate(
        &self,
        caller: &Caller,
        req: CertificateIdRequest,
    ) -> Result<DescribeCertificateResponse, KmsError> {
        let (rec, _) =
            self.load_certificate(caller, Action::DescribeCertificate, &req.certificate_id)?;
        let key = PrivateKey::from_pkcs8(self.crypto, rec.key_spec, rec.private_key.expose())?;
        let info = rec.info.clone();
        Ok(DescribeCertificateResponse {
            request_id: self.request_id(),
            arn: self.certificate_arn(&rec.id),
            certificate_id: rec.id.clone(),
            subject: info
                .as_ref()
                .map(|i| i.subject.clone())
                .unwrap_or_else(|| rec.subject.clone()),
            issuer: info.as_ref().map(|i| i.issuer.clone()),
            serial: info.as_ref().map(|i| i.serial.clone()),
            not_before: info.as_ref().map(|i| i.not_before),
            not_after: info.as_ref().map(|i| i.not_after),
            status: rec.status.as_str().to_owned(),
            key_spec: rec.key_spec.as_str().to_owned(),
            subject_alternative_names: info
                .as_ref()
                .map(|i| i.subject_alternative_names.clone())
                .unwrap_or_else(|| rec.sans.clone()),
            subject_key_identifier: info.as_ref().map(|i| i.subject_key_identifier.clone()),
            subject_public_key: key.public_key()?.to_pem()?,
            signature_algorithm: info.as_ref().map(|i| i.signature_algorithm.clone()),
            exportable_private_key: rec.exportable_private_key,
            created_at: rec.created,
            updated_at: rec.updated,
            tags: TagList {
                tag: rec
                    .tags
                    .iter()
                    .map(|(k, v)| Tag {
                        tag_key: k.clone(),
                        tag_value: v.clone(),
                    })
                    .collect(),
            },
        })
    }

    /// UpdateCertificateStatus: ACTIVE, INACTIVE or REVOKED (final), once a certificate was
    /// uploaded.
    ///
    /// Errors: `InvalidParameter` (Status), `Rejected.UnsupportedOperation` (PENDING, or
    /// already REVOKED), `Certificate.NotFound`.
    pub fn update_certificate_status(
        &self,
        caller: &Caller,
        req: UpdateCertificateStatusRequest,
    ) -> Result<EmptyResponse, KmsError> {
        let status = rules::requested_status(&req.status)?;
        self.mutate_certificate(
            caller,
            Action::UpdateCertificateStatus,
            &req.certificate_id,
            |r, now| {
                rules::change_status(&r.id, r.status, status)?;
                Ok(CertificateRecord {
                    status,
                    updated: if status == r.status { r.updated } else { now },
                    ..r.clone()
                })
            },
        )?;
        Ok(EmptyResponse {
            request_id: self.request_id(),
        })
    }

    /// DeleteCertificate: the certificate and its key are gone.
    ///
    /// Errors: `Certificate.NotFound`.
    pub fn delete_certificate(
        &self,
        caller: &Caller,
        req: CertificateIdRequest,
    ) -> Result<EmptyResponse, KmsError> {
        let _guard = self.write_guard()?;
        let (rec, revision) =
            self.load_certificate(caller, Action::DeleteCertificate, &req.certificate_id)?;
        let mut batch = Batch::new();
        batch.delete_if(
            schema::certificate(&rec.id),
            Precondition::Revision(revision),
        );
        self.commit(batch)?;
        Ok(EmptyResponse {
            request_id: self.request_id(),
        })
    }

    fn active_key(
        &self,
        caller: &Caller,
        action: Action,
        id: &str,
    ) -> Result<(CertificateRecord, PrivateKey), KmsError> {
        let (rec, _) = self.load_certificate(caller, action, id)?;
        rules::check_private_key_use(&rec.id, rec.status)?;
        let key = PrivateKey::from_pkcs8(self.crypto, rec.key_spec, rec.private_key.expose())?;
        Ok((rec, key))
    }

    /// CertificatePrivateKeySign: signs a RAW message (under 4 KiB, hashed with SHA-256) or
    /// a SHA-256 DIGEST with the certificate's key. ACTIVE certificates only.
    ///
    /// Errors: `InvalidParameter` (Algorithm, Message, MessageType),
    /// `Rejected.UnsupportedOperation` (not ACTIVE; algorithm of another key type).
    pub fn certificate_private_key_sign(
        &self,
        caller: &Caller,
        req: CertificatePrivateKeySignRequest,
    ) -> Result<CertificatePrivateKeySignResponse, KmsError> {
        let alg = SigningAlgorithm::parse(&req.algorithm)?;
        let digest = message_digest(&req.message, req.message_type.as_deref())?;
        let (rec, key) = self.active_key(
            caller,
            Action::CertificatePrivateKeySign,
            &req.certificate_id,
        )?;
        let signature = key.sign(alg, &digest)?;
        Ok(CertificatePrivateKeySignResponse {
            request_id: self.request_id(),
            certificate_id: rec.id,
            signature_value: signature,
        })
    }

    /// CertificatePublicKeyVerify: `SignatureValid: false` for a wrong signature. Works in
    /// every status (a REVOKED certificate still verifies what it signed).
    ///
    /// Errors: as [`Kms::certificate_private_key_sign`], without the status rule.
    pub fn certificate_public_key_verify(
        &self,
        caller: &Caller,
        req: CertificatePublicKeyVerifyRequest,
    ) -> Result<CertificatePublicKeyVerifyResponse, KmsError> {
        let alg = SigningAlgorithm::parse(&req.algorithm)?;
        let digest = message_digest(&req.message, req.message_type.as_deref())?;
        let (rec, _) = self.load_certificate(
            caller,
            Action::CertificatePublicKeyVerify,
            &req.certificate_id,
        )?;
        let public: PublicKey =
            PrivateKey::from_pkcs8(self.crypto, rec.key_spec, rec.private_key.expose())?
                .public_key()?;
        let valid = public.verify(alg, &digest, &req.signature_value)?;
        Ok(CertificatePublicKeyVerifyResponse {
            request_id: self.request_id(),
            certificate_id: rec.id,
            signature_valid: valid,
        })
    }

    /// CertificatePublicKeyEncrypt: RSA-OAEP with the certificate's public key; not for
    /// REVOKED certificates.
    ///
    /// Errors: `InvalidParameter` (Algorithm, plaintext over the OAEP limit),
    /// `Rejected.UnsupportedOperation` (EC keys, REVOKED).
    pub fn certificate_public_key_encrypt(
        &self,
        caller: &Caller,
        req: CertificatePublicKeyEncryptRequest,
    ) -> Result<CertificatePublicKeyEncryptResponse, KmsError> {
        let alg = oaep(&req.algorithm)?;
        if req.plaintext.is_empty() {
            return Err(KmsError::missing("Plaintext"));
        }
        let (rec, _) = self.load_certificate(
            caller,
            Action::CertificatePublicKeyEncrypt,
            &req.certificate_id,
        )?;
        rules::check_encrypt_to(&rec.id, rec.status)?;
        let public = PrivateKey::from_pkcs8(self.crypto, rec.key_spec, rec.private_key.expose())?
            .public_key()?;
        let ciphertext = public.encrypt("Plaintext", alg, &req.plaintext)?;
        Ok(CertificatePublicKeyEncryptResponse {
            request_id: self.request_id(),
            certificate_id: rec.id,
            ciphertext_blob: ciphertext,
        })
    }

    /// CertificatePrivateKeyDecrypt: RSA-OAEP with the certificate's key; ACTIVE only.
    ///
    /// Errors: `InvalidCiphertext`, `InvalidParameter` (Algorithm),
    /// `Rejected.UnsupportedOperation` (not ACTIVE, EC keys).
    pub fn certificate_private_key_decrypt(
        &self,
        caller: &Caller,
        req: CertificatePrivateKeyDecryptRequest,
    ) -> Result<CertificatePrivateKeyDecryptResponse, KmsError> {
        let alg = oaep(&req.algorithm)?;
        if req.ciphertext_blob.is_empty() {
            return Err(KmsError::missing("CiphertextBlob"));
        }
        let (rec, key) = self.active_key(
            caller,
            Action::CertificatePrivateKeyDecrypt,
            &req.certificate_id,
        )?;
        let plaintext = key.decrypt(alg, &req.ciphertext_blob)?;
        Ok(CertificatePrivateKeyDecryptResponse {
            request_id: self.request_id(),
            certificate_id: rec.id,
            plaintext: plaintext.into(),
        })
    }
}

fn oaep(s: &str) -> Result<EncryptionAlgorithm, KmsError> {
    match EncryptionAlgorithm::parse(s)? {
        EncryptionAlgorithm::RsaesPkcs1V15 => Err(KmsError::invalid(
            "Algorithm",
            "must be RSAES_OAEP_SHA_256 or RSAES_OAEP_SHA_1",
        )),
        alg => Ok(alg),
    }
}

impl Record for CertificateRecord {
    fn record_key(&self) -> Vec<u8> {
        schema::certificate(&self.id)
    }
}

impl Tagged for CertificateRecord {
    fn tags_mut(&mut self) -> &mut BTreeMap<String, String> {
        &mut self.tags
    }

    fn touch(&mut self, now: UnixTime) {
        self.updated = now;
    }
}
