//! An [`ExternalKeyStore`] that talks to an external key proxy over HTTP.
//!
//! # The external key proxy protocol
//!
//! A small JSON protocol modelled on the AWS XKS proxy API. Every call is
//! `POST {base_url}/keys/{externalKeyId}/{operation}` with `Content-Type: application/json`
//! and, when a token is configured, `Authorization: Bearer {token}`. Byte strings are standard
//! Base64. `requestMetadata` tells the proxy who asks (`kmsOperation`: `CheckKey`, `Encrypt` or
//! `Decrypt`) for its audit log.
//!
//! | operation | request body | 200 answer |
//! | --- | --- | --- |
//! | `metadata` | `{"requestMetadata"}` | `{"keySpec": "AES_256", "keyUsage": ["ENCRYPT", "DECRYPT"], "keyStatus": "ENABLED"}` |
//! | `encrypt` | `{"requestMetadata", "plaintext", "encryptionAlgorithm": "AES_GCM", "additionalAuthenticatedData"}` | `{"ciphertext", "initializationVector" (12 bytes), "authenticationTag" (16 bytes)}` |
//! | `decrypt` | `{"requestMetadata", "ciphertext", "encryptionAlgorithm": "AES_GCM", "initializationVector", "authenticationTag", "additionalAuthenticatedData"}` | `{"plaintext"}` |
//!
//! Errors are non-200 answers with `{"errorName": ..., "errorMessage": ...}`:
//! `KeyNotFoundException`, `InvalidStateException` and `InvalidKeyUsageException` make the
//! engine answer `Rejected.ExternalKeyUnusable`; `InvalidCiphertextException` makes it answer
//! `InvalidCiphertext`; anything else, a refused connection, a timeout, or a malformed answer
//! makes it answer `Rejected.Unavailable` (HTTP 503). The engine caches nothing from the proxy,
//! so a failure changes no state and the next call tries again.

use std::time::Duration;

use base64::Engine;
use kms_core::KmsError;
use kms_core::{ExternalCiphertext, ExternalKeyStore};
use serde::Deserialize;
use serde_json::json;
use zeroize::Zeroizing;

/// Default time a proxy call may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// The HTTP client of an external key proxy.
pub struct HttpExternalKeyStore {
    base_url: String,
    token: Option<Zeroizing<String>>,
    agent: ureq::Agent,
}

impl std::fmt::Debug for HttpExternalKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpExternalKeyStore")
            .field("base_url", &self.base_url)
            .field("token", &self.token.as_ref().map(|_| "..redacted.."))
            .finish()
    }
}

fn unavailable(reason: impl Into<String>) -> KmsError {
    KmsError::ExternalKeyStoreUnavailable {
        reason: reason.into(),
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(field: &str, text: &str) -> Result<Vec<u8>, KmsError> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| unavailable(format!("the proxy answered a malformed {field}")))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorAnswer {
    error_name: String,
    #[serde(default)]
    error_message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetadataAnswer {
    key_spec: String,
    key_usage: Vec<String>,
    key_status: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EncryptAnswer {
    ciphertext: String,
    initialization_vector: String,
    authentication_tag: String,
}

#[derive(Deserialize)]
struct DecryptAnswer {
    plaintext: Zeroizing<String>,
}

impl HttpExternalKeyStore {
    /// A client of the proxy at `base_url` (e.g. `http://127.0.0.1:9000/kms/xks/v1`), with an
    /// optional bearer token and a per-call timeout.
    pub fn new(base_url: impl Into<String>, token: Option<String>, timeout: Duration) -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build();
        HttpExternalKeyStore {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            token: token.map(Zeroizing::new),
            agent: config.into(),
        }
    }

    /// One call: POST the body, answer the parsed 200 body or the mapped error.
    fn call<T: serde::de::DeserializeOwned>(
        &self,
        external_key_id: &str,
        operation: &str,
        body: serde_json::Value,
    ) -> Result<T, KmsError> {
        kms_core::validate_external_key_id(external_key_id)?;
        let id: String = external_key_id
            .bytes()
            .map(|c| match c {
                b'/' => "%2F".to_owned(),
                b':' => "%3A".to_owned(),
                other => char::from(other).to_string(),
            })
            .collect();
        let url = format!("{}/keys/{id}/{operation}", self.base_url);
        let mut request = self.agent.post(&url);
        if let Some(token) = &self.token {
            request = request.header("Authorization", &format!("Bearer {}", token.as_str()));
        }
        let mut response = request.send_json(&body).map_err(|e| {
            unavailable(format!(
                "the proxy at {} did not answer: {e}",
                self.base_url
            ))
        })?;
        let status = response.status().as_u16();
        let text = Zeroizing::new(
            response
                .body_mut()
                .with_config()
                .limit(1 << 20)
                .read_to_string()
                .map_err(|e| unavailable(format!("reading the proxy's answer failed: {e}")))?,
        );
        if status == 200 {
            return serde_json::from_str(&text).map_err(|_| {
                unavailable(format!("the proxy answered malformed JSON to {operation}"))
            });
        }
        let err: ErrorAnswer = serde_json::from_str(&text)
            .map_err(|_| unavailable(format!("the proxy answered HTTP {status} to {operation}")))?;
        Err(match err.error_name.as_str() {
            "KeyNotFoundException" | "InvalidStateException" | "InvalidKeyUsageException" => {
                KmsError::ExternalKeyUnusable {
                    external_key_id: external_key_id.to_owned(),
                    reason: format!("{}: {}", err.error_name, err.error_message),
                }
            }
            "InvalidCiphertextException" => KmsError::InvalidCiphertext {
                reason: "the external key store could not authenticate the ciphertext",
            },
            other => unavailable(format!("the proxy answered {other} (HTTP {status})")),
        })
    }
}

impl ExternalKeyStore for HttpExternalKeyStore {
    fn check_key(&self, external_key_id: &str) -> Result<(), KmsError> {
        let m: MetadataAnswer = self.call(
            external_key_id,
            "metadata",
            json!({"requestMetadata": {"kmsOperation": "CheckKey"}}),
        )?;
        let unusable = |reason: String| KmsError::ExternalKeyUnusable {
            external_key_id: external_key_id.to_owned(),
            reason,
        };
        if m.key_spec != "AES_256" {
            return Err(unusable(format!("its spec is {}, not AES_256", m.key_spec)));
        }
        if !(m.key_usage.iter().any(|u| u == "ENCRYPT")
            && m.key_usage.iter().any(|u| u == "DECRYPT"))
        {
            return Err(unusable("it is not an ENCRYPT/DECRYPT key".into()));
        }
        if m.key_status != "ENABLED" {
            return Err(unusable(format!("its status is {}", m.key_status)));
        }
        Ok(())
    }

    fn encrypt(
        &self,
        external_key_id: &str,
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<ExternalCiphertext, KmsError> {
        let body = json!({
            "requestMetadata": {"kmsOperation": "Encrypt"},
            "plaintext": Zeroizing::new(b64(plaintext)).as_str(),
            "encryptionAlgorithm": "AES_GCM",
            "additionalAuthenticatedData": b64(aad),
        });
        let a: EncryptAnswer = self.call(external_key_id, "encrypt", body)?;
        let iv: [u8; 12] = unb64("initializationVector", &a.initialization_vector)?
            .try_into()
            .map_err(|_| unavailable("the proxy answered an IV that is not 12 bytes"))?;
        let mut ciphertext_and_tag = unb64("ciphertext", &a.ciphertext)?;
        let tag = unb64("authenticationTag", &a.authentication_tag)?;
        if tag.len() != 16 {
            return Err(unavailable("the proxy answered a tag that is not 16 bytes"));
        }
        ciphertext_and_tag.extend_from_slice(&tag);
        Ok(ExternalCiphertext {
            iv,
            ciphertext_and_tag,
        })
    }

    fn decrypt(
        &self,
        external_key_id: &str,
        aad: &[u8],
        ciphertext: &ExternalCiphertext,
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let split = ciphertext.ciphertext_and_tag.len().checked_sub(16).ok_or(
            KmsError::InvalidCiphertext {
                reason: "the blob is truncated",
            },
        )?;
        let (body, tag) = ciphertext.ciphertext_and_tag.split_at(split);
        let request = json!({
            "requestMetadata": {"kmsOperation": "Decrypt"},
            "ciphertext": b64(body),
            "encryptionAlgorithm": "AES_GCM",
            "initializationVector": b64(&ciphertext.iv),
            "authenticationTag": b64(tag),
            "additionalAuthenticatedData": b64(aad),
        });
        let a: DecryptAnswer = self.call(external_key_id, "decrypt", request)?;
        Ok(Zeroizing::new(unb64("plaintext", &a.plaintext)?))
    }
}
