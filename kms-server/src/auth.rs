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

use std::collections::HashMap;
use std::sync::Mutex;

use kms_core::{Caller, UnixTime};
use ring::digest;

use crate::config::AccessKeys;
use crate::request::Params;
use crate::response::ApiError;
use crate::signature;

/// How far a request's time may be from the server's: 15 minutes either way.
pub const TIMESTAMP_WINDOW_SECS: i64 = 15 * 60;

/// Default bound on the nonces remembered within the window.
pub const DEFAULT_NONCE_CAPACITY: usize = 1_000_000;

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
    nonces: Mutex<NonceCache>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator over `keys`, remembering at most `nonce_capacity` nonces.
    pub fn new(keys: AccessKeys, nonce_capacity: usize) -> Self {
        Authenticator {
            keys,
            nonces: Mutex::new(NonceCache::new(nonce_capacity)),
        }
    }

    /// Authenticates a request at server time `now`.
    ///
    /// Errors: `IncompleteSignature`, `InvalidAccessKeyId.NotFound`, `InvalidTimeStamp.Format`,
    /// `InvalidTimeStamp.Expired`, `SignatureDoesNotMatch`, `SignatureNonceUsed`, and
    /// `ServiceUnavailable` when the nonce cache is full.
    pub fn authenticate(
        &self,
        request: &SignedRequest<'_>,
        now: UnixTime,
    ) -> Result<Identity, ApiError> {
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
        let mut cache = self
            .nonces
            .lock()
            .map_err(|_| ApiError::new(500, "InternalFailure", "the nonce cache lock failed"))?;
        cache.insert(
            access_key_id,
            nonce,
            timestamp.plus_secs(TIMESTAMP_WINDOW_SECS),
            now,
        )
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

/// The nonces seen within the window, bounded in number.
///
/// Entries are keyed by a 128-bit digest of (access key, nonce), so memory per entry is fixed
/// whatever the nonce's length, and each expires when a request carrying it could no longer
/// pass the timestamp check. Expired entries are swept at most once a second, and whenever
/// the cache is full.
#[derive(Debug)]
pub struct NonceCache {
    seen: HashMap<[u8; 16], i64>,
    capacity: usize,
    last_sweep: i64,
}

impl NonceCache {
    /// An empty cache holding at most `capacity` nonces.
    pub fn new(capacity: usize) -> Self {
        NonceCache {
            seen: HashMap::new(),
            capacity: capacity.max(1),
            last_sweep: i64::MIN,
        }
    }

    /// Records a nonce valid until `expires`.
    ///
    /// Errors: `SignatureNonceUsed` when it is already recorded and not expired;
    /// `ServiceUnavailable` when the cache is full of unexpired nonces.
    pub fn insert(
        &mut self,
        access_key_id: &str,
        nonce: &str,
        expires: UnixTime,
        now: UnixTime,
    ) -> Result<(), ApiError> {
        if now.secs() > self.last_sweep || self.seen.len() >= self.capacity {
            self.seen.retain(|_, exp| *exp >= now.secs());
            self.last_sweep = now.secs();
        }
        let id = nonce_id(access_key_id, nonce);
        if let Some(exp) = self.seen.get(&id) {
            if *exp >= now.secs() {
                return Err(ApiError::nonce_used());
            }
        }
        if self.seen.len() >= self.capacity {
            return Err(ApiError::replay_cache_full());
        }
        self.seen.insert(id, expires.secs());
        Ok(())
    }

    /// Number of nonces held.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

fn nonce_id(access_key_id: &str, nonce: &str) -> [u8; 16] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&(access_key_id.len() as u64).to_be_bytes());
    ctx.update(access_key_id.as_bytes());
    ctx.update(nonce.as_bytes());
    let full = ctx.finish();
    let mut id = [0u8; 16];
    for (dst, src) in id.iter_mut().zip(full.as_ref()) {
        *dst = *src;
    }
    id
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn nonce_is_refused_until_it_expires() {
        let mut c = NonceCache::new(10);
        let now = UnixTime(1_000);
        c.insert("ak", "n1", UnixTime(1_900), now).unwrap();
        assert_eq!(
            c.insert("ak", "n1", UnixTime(1_900), now).unwrap_err().code,
            "SignatureNonceUsed"
        );
        // Another key's nonce of the same text is distinct.
        c.insert("ak2", "n1", UnixTime(1_900), now).unwrap();
        // After expiry it is forgotten.
        c.insert("ak", "n1", UnixTime(3_000), UnixTime(1_901))
            .unwrap();
    }

    #[test]
    fn cache_is_bounded_and_sweeps_expired() {
        let mut c = NonceCache::new(2);
        c.insert("ak", "a", UnixTime(100), UnixTime(0)).unwrap();
        c.insert("ak", "b", UnixTime(200), UnixTime(0)).unwrap();
        assert_eq!(
            c.insert("ak", "c", UnixTime(300), UnixTime(0))
                .unwrap_err()
                .code,
            "ServiceUnavailable"
        );
        c.insert("ak", "c", UnixTime(300), UnixTime(101)).unwrap();
        assert_eq!(c.len(), 2);
    }

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
