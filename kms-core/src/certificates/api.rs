//! Certificate manager requests and responses.

use crate::crypto::SecretBytes;
use serde::{Deserialize, Serialize};

use crate::api::TagList;
use crate::time::UnixTime;
use crate::wire::{base64_bytes, json_text, lenient_bool};

request!(
    /// CreateCertificate.
    CreateCertificateRequest {
        /// RFC 2253 distinguished name naming at least CN, C, O and OU.
        pub subject: String,
        /// Up to 10 DNS names.
        #[serde(with = "json_text")]
        pub subject_alternative_names: Vec<String>,
        /// `RSA_2048` (default), `EC_P256` or `EC_P256K`.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub key_spec: Option<String>,
        /// Whether the private key may ever be exported (default true).
        #[serde(with = "lenient_bool", skip_serializing_if = "Option::is_none")]
        pub exportable_private_key: Option<bool>,
    }
);

response!(
    /// CreateCertificate's answer.
    CreateCertificateResponse {
        /// The certificate id.
        pub certificate_id: String,
        /// Its ARN.
        pub arn: String,
        /// The PKCS#10 request (PEM) to have signed by a CA.
        pub csr: String,
    }
);

request!(
    /// A request naming only a certificate: GetCertificate, DescribeCertificate,
    /// DeleteCertificate.
    CertificateIdRequest {
        /// The certificate id.
        pub certificate_id: String,
    }
);

request!(
    /// UploadCertificate.
    UploadCertificateRequest {
        /// The certificate id.
        pub certificate_id: String,
        /// The signed certificate (PEM); its public key must be the certificate's key.
        pub certificate: String,
        /// The issuing chain (PEM, optional).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub certificate_chain: Option<String>,
    }
);

response!(
    /// GetCertificate's answer.
    GetCertificateResponse {
        /// The certificate id.
        pub certificate_id: String,
        /// The certificate (PEM), once uploaded.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub certificate: Option<String>,
        /// The chain (PEM), once uploaded.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub certificate_chain: Option<String>,
        /// The request (PEM).
        pub csr: String,
    }
);

response!(
    /// DescribeCertificate's answer.
    DescribeCertificateResponse {
        /// The certificate id.
        pub certificate_id: String,
        /// Its ARN.
        pub arn: String,
        /// Subject (RFC 4514 of the uploaded certificate, or as requested).
        pub subject: String,
        /// Issuer, once uploaded.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub issuer: Option<String>,
        /// Serial number (hex), once uploaded.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub serial: Option<String>,
        /// Validity start, once uploaded.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub not_before: Option<UnixTime>,
        /// Validity end, once uploaded.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub not_after: Option<UnixTime>,
        /// `PENDING`, `ACTIVE`, `INACTIVE` or `REVOKED`.
        pub status: String,
        /// The key spec.
        pub key_spec: String,
        /// DNS names.
        pub subject_alternative_names: Vec<String>,
        /// Subject key identifier (hex), once uploaded.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub subject_key_identifier: Option<String>,
        /// The public key (PEM SubjectPublicKeyInfo).
        pub subject_public_key: String,
        /// The certificate's signature algorithm, once uploaded.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub signature_algorithm: Option<String>,
        /// Whether the private key is exportable.
        pub exportable_private_key: bool,
        /// Creation time.
        pub created_at: UnixTime,
        /// Last change.
        pub updated_at: UnixTime,
        /// Tags.
        pub tags: TagList,
    }
);

request!(
    /// UpdateCertificateStatus.
    UpdateCertificateStatusRequest {
        /// The certificate id.
        pub certificate_id: String,
        /// `ACTIVE`, `INACTIVE` or `REVOKED` (final).
        pub status: String,
    }
);

request!(
    /// CertificatePrivateKeySign.
    CertificatePrivateKeySignRequest {
        /// The certificate id.
        pub certificate_id: String,
        /// `RSA_PKCS1_SHA_256`, `RSA_PSS_SHA_256` or `ECDSA_SHA_256`.
        pub algorithm: String,
        /// The message (RAW, under 4 KiB) or its SHA-256 digest (DIGEST); Base64 on the wire.
        #[serde(with = "base64_bytes")]
        pub message: Vec<u8>,
        /// `RAW` (default) or `DIGEST`.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub message_type: Option<String>,
    }
);

response!(
    /// CertificatePrivateKeySign's answer.
    CertificatePrivateKeySignResponse {
        /// The certificate id.
        pub certificate_id: String,
        /// The signature (Base64 on the wire).
        #[serde(with = "base64_bytes")]
        pub signature_value: Vec<u8>,
    }
);

request!(
    /// CertificatePublicKeyVerify.
    CertificatePublicKeyVerifyRequest {
        /// The certificate id.
        pub certificate_id: String,
        /// The signature algorithm.
        pub algorithm: String,
        /// The message or digest (Base64 on the wire).
        #[serde(with = "base64_bytes")]
        pub message: Vec<u8>,
        /// `RAW` (default) or `DIGEST`.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub message_type: Option<String>,
        /// The signature (Base64 on the wire).
        #[serde(with = "base64_bytes")]
        pub signature_value: Vec<u8>,
    }
);

response!(
    /// CertificatePublicKeyVerify's answer.
    CertificatePublicKeyVerifyResponse {
        /// The certificate id.
        pub certificate_id: String,
        /// True when the signature is valid.
        pub signature_valid: bool,
    }
);

request!(
    /// CertificatePublicKeyEncrypt.
    CertificatePublicKeyEncryptRequest {
        /// The certificate id.
        pub certificate_id: String,
        /// `RSAES_OAEP_SHA_1` or `RSAES_OAEP_SHA_256`.
        pub algorithm: String,
        /// The plaintext (Base64 on the wire).
        #[serde(with = "base64_bytes")]
        pub plaintext: SecretBytes,
    }
);

response!(
    /// CertificatePublicKeyEncrypt's answer.
    CertificatePublicKeyEncryptResponse {
        /// The certificate id.
        pub certificate_id: String,
        /// The ciphertext (Base64 on the wire).
        #[serde(with = "base64_bytes")]
        pub ciphertext_blob: Vec<u8>,
    }
);

request!(
    /// CertificatePrivateKeyDecrypt.
    CertificatePrivateKeyDecryptRequest {
        /// The certificate id.
        pub certificate_id: String,
        /// `RSAES_OAEP_SHA_1` or `RSAES_OAEP_SHA_256`.
        pub algorithm: String,
        /// The ciphertext (Base64 on the wire).
        #[serde(with = "base64_bytes")]
        pub ciphertext_blob: Vec<u8>,
    }
);

response!(
    /// CertificatePrivateKeyDecrypt's answer.
    CertificatePrivateKeyDecryptResponse {
        /// The certificate id.
        pub certificate_id: String,
        /// The plaintext (Base64 on the wire).
        #[serde(with = "base64_bytes")]
        pub plaintext: SecretBytes,
    }
);
