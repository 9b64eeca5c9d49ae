//! Response bodies: Alibaba's JSON error shape and the protocol errors of docs/wire.md.
//!
//! An error answers `{"RequestId","HostId","Code","Message"}` with the HTTP status of the code:
//! the engine's [`KmsError::http_status`] for engine errors, and for the protocol's own errors
//! the statuses below.

use std::borrow::Cow;

use kms_core::KmsError;
use serde::Serialize;

/// The API version this server speaks.
pub const API_VERSION: &str = "2016-01-20";

/// A failed request: HTTP status, Alibaba error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Alibaba error code (e.g. `SignatureDoesNotMatch`).
    pub code: Cow<'static, str>,
    /// Human message; never contains secrets, plaintext or key material.
    pub message: String,
}

impl ApiError {
    /// An error with an explicit status and code.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: Cow::Borrowed(code),
            message: message.into(),
        }
    }

    /// `IncompleteSignature` (400): the signature or one of its parameters is absent or
    /// malformed.
    pub fn incomplete_signature(message: impl Into<String>) -> Self {
        Self::new(400, "IncompleteSignature", message)
    }

    /// `SignatureDoesNotMatch` (400).
    pub fn signature_mismatch(message: impl Into<String>) -> Self {
        Self::new(400, "SignatureDoesNotMatch", message)
    }

    /// `InvalidAccessKeyId.NotFound` (404).
    pub fn access_key_not_found(access_key_id: &str) -> Self {
        Self::new(
            404,
            "InvalidAccessKeyId.NotFound",
            format!("the AccessKeyId {access_key_id} is not found"),
        )
    }

    /// `InvalidTimeStamp.Expired` (400): the request time is outside the accepted window.
    pub fn timestamp_expired(timestamp: &str, window_secs: i64) -> Self {
        Self::new(
            400,
            "InvalidTimeStamp.Expired",
            format!(
                "the request time {timestamp} is more than {} minutes away from the server's \
                 time",
                window_secs / 60
            ),
        )
    }

    /// `InvalidTimeStamp.Format` (400): the request time is not `YYYY-MM-DDThh:mm:ssZ`.
    pub fn timestamp_malformed(name: &str) -> Self {
        Self::new(
            400,
            "InvalidTimeStamp.Format",
            format!("{name} must be an ISO 8601 UTC time like 2016-03-28T03:13:08Z"),
        )
    }

    /// `SignatureNonceUsed` (400): the nonce was already used within the window.
    pub fn nonce_used() -> Self {
        Self::new(
            400,
            "SignatureNonceUsed",
            "the SignatureNonce has already been used",
        )
    }

    /// `InvalidAction.NotFound` (404): no such API.
    pub fn unknown_action(action: &str) -> Self {
        Self::new(
            404,
            "InvalidAction.NotFound",
            format!("the action {action:?} is not an API of KMS {API_VERSION}"),
        )
    }

    /// `InvalidVersion` (400): an API version other than [`API_VERSION`].
    pub fn invalid_version(version: &str) -> Self {
        Self::new(
            400,
            "InvalidVersion",
            format!("the API version {version:?} is not supported; use {API_VERSION}"),
        )
    }

    /// `RequestTooLarge` (413): the query string or body exceeds the size limit.
    pub fn too_large(what: &str, limit: usize) -> Self {
        Self::new(
            413,
            "RequestTooLarge",
            format!("the {what} exceeds the limit of {limit} bytes"),
        )
    }

    /// `UnsupportedHTTPMethod` (405).
    pub fn method_not_allowed(method: &str) -> Self {
        Self::new(
            405,
            "UnsupportedHTTPMethod",
            format!("the HTTP method {method} is not supported; use GET or POST"),
        )
    }

    /// `InvalidParameter` (400) naming the parameter.
    pub fn invalid(name: impl Into<Cow<'static, str>>, reason: impl Into<String>) -> Self {
        KmsError::invalid(name, reason).into()
    }

    /// `MissingParameter` (400) naming the parameter.
    pub fn missing(name: impl Into<Cow<'static, str>>) -> Self {
        KmsError::missing(name).into()
    }

    /// The JSON error body.
    pub fn body(&self, request_id: &str, host_id: &str) -> Vec<u8> {
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct ErrorBody<'a> {
            request_id: &'a str,
            host_id: &'a str,
            code: &'a str,
            message: &'a str,
        }
        let body = ErrorBody {
            request_id,
            host_id,
            code: &self.code,
            message: &self.message,
        };
        // Serializing four strings cannot fail; fall back to a fixed body regardless.
        serde_json::to_vec(&body).unwrap_or_else(|_| {
            br#"{"Code":"InternalFailure","Message":"error body encoding failed"}"#.to_vec()
        })
    }
}

impl From<KmsError> for ApiError {
    fn from(e: KmsError) -> Self {
        ApiError {
            status: e.http_status(),
            code: Cow::Borrowed(e.code()),
            message: e.to_string(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// A fresh UUID v4 for a response the engine did not answer (protocol errors).
pub fn new_request_id() -> String {
    kms_core::new_request_id()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn engine_errors_keep_code_and_status() {
        let e: ApiError = KmsError::KeyNotFound { key_id: "k".into() }.into();
        assert_eq!((e.status, &*e.code), (404, "Forbidden.KeyNotFound"));
        let e: ApiError = KmsError::Disabled { key_id: "k".into() }.into();
        assert_eq!((e.status, &*e.code), (409, "Rejected.Disabled"));
        let e: ApiError = KmsError::missing("KeyId").into();
        assert_eq!((e.status, &*e.code), (400, "MissingParameter"));
        assert!(e.message.contains("KeyId"));
    }

    #[test]
    fn error_body_has_alibaba_shape() {
        let body = ApiError::nonce_used().body("rid", "host");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["RequestId"], "rid");
        assert_eq!(v["HostId"], "host");
        assert_eq!(v["Code"], "SignatureNonceUsed");
        assert!(v["Message"].as_str().unwrap().contains("SignatureNonce"));
        assert_eq!(v.as_object().unwrap().len(), 4);
    }
}
