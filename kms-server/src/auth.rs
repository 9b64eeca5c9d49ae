//! Authentication: which access key signed a request, checked against the configured secrets,
//! the timestamp window and the nonces already seen.
//!
//! A request with an `Authorization: ACS3-...` header is a V3 request; otherwise one with a
//! `Signature` parameter is a V1 request; anything else is `IncompleteSignature`. The order of
//! checks is: the signature's parts are present (`IncompleteSignature`), the access key exists
//! (`InvalidAccessKeyId.NotFound`), the time is within the window (`InvalidTimeStamp.*`), the
//! signature matches (`SignatureDoesNotMatch`), and only then is the nonce recorded
//! (`SignatureNonceUsed` when it was seen before), so that unsigned traffic cannot use up
//! nonces.

use kms_core::{Caller, UnixTime};

use crate::config::AccessKeys;
use crate::replay::ReplayGuard;
use crate::request::Params;
use crate::response::ApiError;
use crate::signature;

pub use crate::replay::{DEFAULT_NONCE_CAPACITY, TIMESTAMP_WINDOW_SECS};

/// Longest accepted nonce.
const MAX_NONCE_LEN: usize = 256;

/// What the authenticator looks at in a request.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// HTTP method, upper case.
    pub method: &'a str,
    /// Request path (as sent, still percent-encoded).
    pub path: &'a str,
    /// Headers as (name, value); names in any case.
    pub headers: &'a [(String, String)],
    /// The query string's parameters.
    pub query: &'a Params,
    /// Query and body parameters merged.
    pub params: &'a Params,
    /// The raw body.
    pub body: &'a [u8],
}

impl SignedRequest<'_> {
    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The signature scheme a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `ACS3-HMAC-SHA256`.
    V3,
    /// `HMAC-SHA1`, signature version 1.0.
    V1,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The access key that signed.
    pub access_key_id: String,
    /// The principal it acts as.
    pub caller: Caller,
    /// How it signed.
    pub scheme: Scheme,
}

/// Verifies signatures against the configured access keys and refuses replays.
pub struct Authenticator {
    keys: AccessKeys,
    replay: ReplayGuard,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator over `keys`, remembering at most `nonce_capacity` nonces per access
    /// key, in memory only.
    pub fn new(keys: AccessKeys, nonce_capacity: usize) -> Self {
        let replay = ReplayGuard::in_memory(keys.ids(), nonce_capacity);
        Authenticator { keys, replay }
    }

    /// An authenticator over `keys` with the given replay refusal (see
    /// [`ReplayGuard::open`] for the one that survives restarts).
    pub fn with_replay_guard(keys: AccessKeys, replay: ReplayGuard) -> Self {
        Authenticator { keys, replay }
    }

    /// The replay refusal.
    pub fn replay_guard(&self) -> &ReplayGuard {
        &self.replay
    }

    /// The configured access keys.
    pub fn access_keys(&self) -> &AccessKeys {
        &self.keys
    }

    /// Authenticates a request at server time `now`.
    ///
    /// Errors: `IncompleteSignature`, `InvalidAccessKeyId.NotFound`, `InvalidTimeStamp.Format`,
    /// `InvalidTimeStamp.Expired` (also for a request signed before an unclean restart),
    /// `SignatureDoesNotMatch`, `SignatureNonceUsed`, and `Throttling.User` (429) when the
    /// access key has more signed requests in the window than its nonce capacity.
    pub fn authenticate(
        &self,
        request: &SignedRequest<'_>,
        now: UnixTime,
    ) -> Result<Identity, ApiError> {
        // Time never runs backwards here: a clock stepped back would otherwise reopen the
        // window for requests whose nonces were already forgotten.
        let now = UnixTime(self.replay.now(now.secs()));
        if let Some(auth) = request.header("authorization") {
            if auth.trim_start().starts_with("ACS3-") {
                return self.authenticate_v3(request, auth, now);
            }
            if request.params.get("Signature").is_none() {
                return Err(ApiError::incomplete_signature(format!(
                    "unsupported Authorization scheme; use {} or V1 HMAC-SHA1 parameters",
                    signature::V3_ALGORITHM
                )));
            }
        }
        if request.params.get("Signature").is_some() {
            return self.authenticate_v1(request, now);
        }
        Err(ApiError::incomplete_signature(
            "the request is not signed: send an ACS3-HMAC-SHA256 Authorization header or \
             V1 Signature parameters",
        ))
    }

    fn authenticate_v3(
        &self,
        request: &SignedRequest<'_>,
        authorization: &str,
        now: UnixTime,
    ) -> Result<Identity, ApiError> {
        let auth = signature::parse_v3_authorization(authorization)
            .map_err(ApiError::incomplete_signature)?;
        // The time, the nonce and the action must be covered by the signature, or a replayed
        // or rewritten request would still verify.
        for required in ["x-acs-date", "x-acs-signature-nonce"] {
            if request.header(required).is_none() {
                return Err(ApiError::incomplete_signature(format!(
                    "the header {required} is required"
                )));
            }
        }
        for name in [
            "x-acs-date",
            "x-acs-signature-nonce",
            "x-acs-action",
            "x-acs-version",
            "x-acs-content-sha256",
        ] {
            if request.header(name).is_some() && !auth.signed_headers.iter().any(|h| h == name) {
                return Err(ApiError::incomplete_signature(format!(
                    "the header {name} must be among SignedHeaders"
                )));
            }
        }
        let credential = self
            .keys
            .get(&auth.access_key_id)
            .ok_or_else(|| ApiError::access_key_not_found(&auth.access_key_id))?;
        let date = request.header("x-acs-date").unwrap_or_default();
        let timestamp = check_time("x-acs-date", date, now)?;
        let payload_hash = signature::sha256_hex(request.body);
        if let Some(claimed) = request.header("x-acs-content-sha256") {
            if !claimed.trim().eq_ignore_ascii_case(&payload_hash) {
                return Err(ApiError::signature_mismatch(
                    "the body's SHA-256 differs from the x-acs-content-sha256 header",
                ));
            }
        }
        let canonical = signature::v3_canonical_request(
            request.method,
            request.path,
            request.query.iter(),
            request.headers,
            &auth.signed_headers,
            &payload_hash,
        );
        let string_to_sign = signature::v3_string_to_sign(&canonical);
        if !signature::v3_verify(credential.secret(), &string_to_sign, &auth.signature) {
            return Err(ApiError::signature_mismatch(format!(
                "the signature does not match the server's calculation; server StringToSign: \
                 {string_to_sign:?}"
            )));
        }
        let nonce = request.header("x-acs-signature-nonce").unwrap_or_default();
        self.record_nonce(&auth.access_key_id, nonce, timestamp, now)?;
        Ok(Identity {
            access_key_id: auth.access_key_id,
            caller: credential.caller().clone(),
            scheme: Scheme::V3,
        })
    }

    fn authenticate_v1(
        &self,
        request: &SignedRequest<'_>,
        now: UnixTime,
    ) -> Result<Identity, ApiError> {
        let params = request.params;
        let get = |name: &str| {
            params.get(name).filter(|v| !v.is_empty()).ok_or_else(|| {
                ApiError::incomplete_signature(format!("the parameter {name} is required"))
            })
        };
        let access_key_id = get("AccessKeyId")?;
        let given = get("Signature")?;
        let method = get("SignatureMethod")?;
        if method != signature::V1_METHOD {
            return Err(ApiError::incomplete_signature(format!(
                "SignatureMethod {method:?} is not supported; use {}",
                signature::V1_METHOD
            )));
        }
        let version = get("SignatureVersion")?;
        if version != signature::V1_VERSION {
            return Err(ApiError::incomplete_signature(format!(
                "SignatureVersion {version:?} is not supported; use {}",
                signature::V1_VERSION
            )));
        }
        let timestamp = get("Timestamp")?;
        let nonce = get("SignatureNonce")?;
        let credential = self
            .keys
            .get(access_key_id)
            .ok_or_else(|| ApiError::access_key_not_found(access_key_id))?;
        let timestamp = check_time("Timestamp", timestamp, now)?;
        let string_to_sign = signature::v1_string_to_sign(
            request.method,
            params.iter().filter(|(n, _)| *n != "Signature"),
        );
        if !signature::v1_verify(credential.secret(), &string_to_sign, given) {
            // aliyunsdkcore reads the text after the first ':' of this message as the server's
            // StringToSign (and fails on a message without one). Alibaba sends the V1
            // StringToSign there; it holds every parameter value, Plaintext included, so this
            // server does not echo it.
            return Err(ApiError::signature_mismatch(
                "the signature does not match the server's calculation: check the \
                 AccessKeySecret and the signing method",
            ));
        }
        self.record_nonce(access_key_id, nonce, timestamp, now)?;
        Ok(Identity {
            access_key_id: access_key_id.to_owned(),
            caller: credential.caller().clone(),
            scheme: Scheme::V1,
        })
    }

    fn record_nonce(
        &self,
        access_key_id: &str,
        nonce: &str,
        timestamp: UnixTime,
        now: UnixTime,
    ) -> Result<(), ApiError> {
        if nonce.is_empty() || nonce.len() > MAX_NONCE_LEN {
            return Err(ApiError::incomplete_signature(format!(
                "the signature nonce must be 1 to {MAX_NONCE_LEN} characters"
            )));
        }
        self.replay
            .check(access_key_id, nonce, timestamp.secs(), now.secs())
    }
}

/// The AccessKeyId a request claims to be signed with, before any check (for the request log).
pub fn claimed_access_key_id(request: &SignedRequest<'_>) -> Option<String> {
    if let Some(auth) = request.header("authorization") {
        if let Ok(a) = signature::parse_v3_authorization(auth) {
            return Some(a.access_key_id);
        }
    }
    request.params.get("AccessKeyId").map(str::to_owned)
}

/// Parses a request time and checks it is within the window of `now`.
fn check_time(name: &str, text: &str, now: UnixTime) -> Result<UnixTime, ApiError> {
    let t =
        UnixTime::parse_iso8601(text.trim()).ok_or_else(|| ApiError::timestamp_malformed(name))?;
    if t.secs().abs_diff(now.secs()) > TIMESTAMP_WINDOW_SECS.unsigned_abs() {
        return Err(ApiError::timestamp_expired(text, TIMESTAMP_WINDOW_SECS));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn time_window_is_fifteen_minutes_either_way() {
        let now = UnixTime::parse_iso8601("2026-01-01T00:15:00Z").unwrap();
        assert!(check_time("T", "2026-01-01T00:00:00Z", now).is_ok());
        assert!(check_time("T", "2026-01-01T00:30:00Z", now).is_ok());
        assert_eq!(
            check_time("T", "2025-12-31T23:59:59Z", now)
                .unwrap_err()
                .code,
            "InvalidTimeStamp.Expired"
        );
        assert_eq!(
            check_time("T", "2026-01-01T00:30:01Z", now)
                .unwrap_err()
                .code,
            "InvalidTimeStamp.Expired"
        );
        assert_eq!(
            check_time("T", "yesterday", now).unwrap_err().code,
            "InvalidTimeStamp.Format"
        );
    }
}
