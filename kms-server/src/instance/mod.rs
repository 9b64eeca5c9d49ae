//! The instance gateway (`kms serve --instance-listen ADDR`): Alibaba's KMS 3.0 instance API
//! (`dkms-gcs-0.2`), which the official instance SDKs (`alibabacloud-dkms-gcs` and the
//! KMS 3.0 `Client` of `alibabacloud-kms-python-sdk`, in every language) speak.
//!
//! `POST /`, the body a protobuf request message ([`proto`]) named by `x-kms-apiname`, signed
//! with an application's client key: RSA PKCS#1 v1.5 SHA-256 over the string to sign of
//! [`string_to_sign`], in `authorization: Bearer <base64>` (or the documented `TOKEN`
//! prefix), the client key id in `x-kms-acccesskeyid` (three c's, as the SDKs send it). Answers
//! are protobuf too; errors are an `Error` message with the HTTP status. docs/wire.md
//! describes the protocol; the operations are the engine's `kms_core::instance`.

pub mod proto;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, StatusCode};
use kms_core::api::SecretBytes;
use kms_core::instance as api;
use kms_core::{Caller, Kms, KmsError, SigningAlgorithm, UnixTime};
use prost::Message;

use crate::audit::{AuditEvent, EventType};
use crate::response::ApiError;
use crate::server::AppState;

/// The API version the gateway speaks.
pub const API_VERSION: &str = "dkms-gcs-0.2";
/// The one signature method.
pub const SIGNATURE_METHOD: &str = "RSA_PKCS1_SHA_256";
/// Largest request body: 3 MiB, as Alibaba's gateway.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
/// How far a request's `date` may be from the server's clock: 15 minutes.
pub const MAX_SKEW_SECS: i64 = 15 * 60;

/// Every API the gateway serves, by `x-kms-apiname`.
pub const API_NAMES: &[&str] = &[
    "Encrypt",
    "Decrypt",
    "AdvanceEncrypt",
    "AdvanceDecrypt",
    "GenerateDataKey",
    "AdvanceGenerateDataKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "AdvanceGenerateDataKeyPair",
    "AdvanceGenerateDataKeyPairWithoutPlaintext",
    "Sign",
    "Verify",
    "GetPublicKey",
    "GetSecretValue",
    "GenerateRandom",
    "Hmac",
];

type Request = axum::http::Request<Body>;
type Response = axum::http::Response<Body>;

/// The string an instance API request is signed over: `POST`, the `content-sha256`,
/// `content-type` and `date` values as sent, each `x-kms-*` header (lower-case name, sorted)
/// as `name:trimmed value`, each followed by a newline, then `/`.
pub fn string_to_sign<'a>(
    method: &str,
    content_sha256: &str,
    content_type: &str,
    date: &str,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    let mut kms_headers: Vec<(String, &str)> = headers
        .into_iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v))
        .filter(|(n, _)| n.starts_with("x-kms-"))
        .collect();
    kms_headers.sort();
    let mut out = format!("{method}\n{content_sha256}\n{content_type}\n{date}\n");
    for (name, value) in kms_headers {
        out.push_str(&name);
        out.push(':');
        out.push_str(value.trim());
        out.push('\n');
    }
    out.push('/');
    out
}

/// Parses an RFC 1123 date (`Wed, 02 Dec 2026 18:04:21 GMT`; also `UTC`, a one-digit day,
/// and no weekday).
pub fn parse_http_date(text: &str) -> Option<UnixTime> {
    let mut parts: Vec<&str> = text.split_whitespace().collect();
    if parts.first().is_some_and(|p| p.ends_with(',')) {
        parts.remove(0);
    }
    let [day, month, year, time, zone] = parts.as_slice() else {
        return None;
    };
    if !matches!(*zone, "GMT" | "UTC" | "Z" | "+0000") {
        return None;
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month))? + 1;
    let day: u32 = day.parse().ok()?;
    if year.len() != 4 || time.len() != 8 {
        return None;
    }
    UnixTime::parse_iso8601(&format!("{year}-{month:02}-{day:02}T{time}Z"))
}

/// A failed gateway request.
fn fail(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(status, code, message)
}

fn invalid_param(name: &str) -> ApiError {
    fail(400, "InvalidParam", format!("The Param {name} is invalid."))
}

/// What one request carried and did, for its log line and audit event.
#[derive(Default)]
struct Outcome {
    api: Option<String>,
    caller: Option<Caller>,
    client_key_id: Option<String>,
    key_id: Option<String>,
    parameters: serde_json::Map<String, serde_json::Value>,
    key_version_id: Option<String>,
}

/// Serves one gateway request.
pub(crate) async fn handle(state: Arc<AppState>, peer: SocketAddr, request: Request) -> Response {
    let started = Instant::now();
    let request_id = state.kms.request_id();
    let mut outcome = Outcome::default();
    let (parts, body) = request.into_parts();
    let result = process(&state, &parts, body, peer, &mut outcome).await;
    let (status, code, reply) = match result {
        Ok(body) => (200, None, body),
        Err(e) => {
            if e.status >= 500 {
                tracing::error!(code = %e.code, status = e.status, message = %e.message, "instance request failed");
            }
            let body = proto::Error {
                status_code: i32::from(e.status),
                error_code: e.code.to_string(),
                error_message: e.message.clone(),
                request_id: request_id.clone(),
            }
            .encode_to_vec();
            (e.status, Some(e), body)
        }
    };
    if let Some(audit) = &state.audit {
        let event = audit_event(
            &state.kms,
            &parts,
            peer,
            &request_id,
            &outcome,
            code.as_ref(),
        );
        let _ = audit.record(&event, state.kms.now());
    }
    let label = match outcome.api.as_deref() {
        Some(a) if API_NAMES.contains(&a) => a,
        _ => "unknown",
    };
    let code_text = code.as_ref().map_or("OK", |e| &e.code);
    state
        .metrics
        .request(label, code_text, started.elapsed().as_secs_f64());
    tracing::info!(
        api = %label,
        status,
        code = %code_text,
        latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        request_id = %request_id,
        client_key_id = %outcome.client_key_id.as_deref().unwrap_or("-"),
        "instance request"
    );
    let mut response = Response::new(Body::from(reply));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-protobuf"),
    );
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert("x-kms-requestid", v);
    }
    // The SDKs' KMS 1.0 compatibility layer reads the key version of a call from here.
    if let Some(v) = outcome
        .key_version_id
        .as_deref()
        .filter(|_| status == 200)
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        headers.insert("x-kms-migrationkeyversionid", v);
    }
    response
}

fn audit_event(
    kms: &Kms,
    parts: &axum::http::request::Parts,
    peer: SocketAddr,
    request_id: &str,
    outcome: &Outcome,
    error: Option<&ApiError>,
) -> AuditEvent {
    let identity = outcome.caller.as_ref().map(|caller| {
        crate::server::caller_identity(caller, outcome.client_key_id.as_deref().unwrap_or_default())
    });
    let authenticated = identity.is_some();
    let resources = match (&outcome.key_id, authenticated) {
        (Some(k), true) if kms_core::internal::ids::is_uuid(k) => vec![kms.scope().key_arn(k)],
        _ => Vec::new(),
    };
    AuditEvent {
        event_name: outcome.api.clone().unwrap_or_default(),
        event_type: EventType::ApiCall,
        request_id: request_id.to_owned(),
        region: kms.scope().region.clone(),
        identity,
        source_ip: Some(peer.ip().to_string()),
        user_agent: parts
            .headers
            .get(header::USER_AGENT)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        request_parameters: if authenticated {
            outcome.parameters.clone()
        } else {
            serde_json::Map::new()
        },
        resources,
        error_code: error.map(|e| e.code.to_string()),
        error_message: error.map(|e| e.message.clone()),
        event_phase: None,
        related_event_id: None,
    }
}

async fn process(
    state: &Arc<AppState>,
    parts: &axum::http::request::Parts,
    body: Body,
    peer: SocketAddr,
    outcome: &mut Outcome,
) -> Result<Vec<u8>, ApiError> {
    if parts.method != Method::POST {
        return Err(fail(
            405,
            "MethodNotAllowed",
            format!("the instance API takes POST, not {}", parts.method),
        ));
    }
    let text =
        |name: &str| -> Option<&str> { parts.headers.get(name).and_then(|v| v.to_str().ok()) };
    let api = text("x-kms-apiname").unwrap_or_default().to_owned();
    outcome.api = Some(api.clone());
    match text("x-kms-apiversion") {
        Some(API_VERSION) => {}
        Some(other) => {
            return Err(fail(
                400,
                "InvalidApiVersion",
                format!("The ApiVersion \"{other}\" is invalid."),
            ))
        }
        None => {
            return Err(fail(
                400,
                "MissingParameter",
                "Parameter x-kms-apiversion does not exist in http header or body.",
            ))
        }
    }
    if !API_NAMES.contains(&api.as_str()) {
        return Err(fail(
            400,
            "InvalidApiName",
            format!("The ApiName \"{api}\" is invalid."),
        ));
    }
    if text("x-kms-signaturemethod") != Some(SIGNATURE_METHOD) {
        return Err(invalid_param("x-kms-signaturemethod"));
    }
    let client_key_id = text("x-kms-acccesskeyid")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            fail(
                400,
                "MissingParameter",
                "Parameter x-kms-acccesskeyid does not exist in http header or body.",
            )
        })?
        .to_owned();
    let date = text("date").ok_or_else(|| invalid_param("Date"))?;
    let when = parse_http_date(date).ok_or_else(|| invalid_param("Date"))?;
    let now = state.kms.now();
    if (when.secs() - now.secs()).abs() > MAX_SKEW_SECS {
        return Err(fail(
            400,
            "RequestTimeTooSkewed",
            format!(
                "the request date {date} is more than {} minutes away from the server's time",
                MAX_SKEW_SECS / 60
            ),
        ));
    }
    let signature = text("authorization")
        .and_then(|a| {
            a.strip_prefix("Bearer ")
                .or_else(|| a.strip_prefix("TOKEN "))
        })
        .and_then(|s| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .ok()
        })
        .filter(|s| !s.is_empty() && s.len() <= 1024)
        .ok_or_else(|| invalid_param("Authorization"))?;
    let content_sha256 = text("content-sha256").unwrap_or_default().to_owned();
    let content_type = text("content-type").unwrap_or_default().to_owned();
    let declared = text("content-length").and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let bytes = match tokio::time::timeout(
        state.body_read_timeout,
        axum::body::to_bytes(body, MAX_BODY_BYTES),
    )
    .await
    {
        Ok(read) => read.map_err(|_| too_large())?,
        Err(_) => {
            return Err(fail(
                408,
                "RequestTimeout",
                format!(
                    "the request body did not arrive within {} s",
                    state.body_read_timeout.as_secs()
                ),
            ))
        }
    };
    let digest = {
        use sha2::Digest;
        sha2::Sha256::digest(&bytes)
    };
    let hex: String = digest.iter().map(|b| format!("{b:02X}")).collect();
    if !kms_core::ct_eq(
        hex.as_bytes(),
        content_sha256.to_ascii_uppercase().as_bytes(),
    ) {
        return Err(invalid_param("content-sha256"));
    }
    let to_sign = string_to_sign(
        "POST",
        &content_sha256,
        &content_type,
        date,
        parts
            .headers
            .iter()
            .filter_map(|(n, v)| Some((n.as_str(), v.to_str().ok()?))),
    );
    let kms = state.kms.clone();
    let source = peer.ip();
    outcome.client_key_id = Some(client_key_id.clone());
    let (caller, result) = tokio::task::spawn_blocking(move || {
        let caller = authenticate(&kms, &client_key_id, source, &to_sign, &signature)?;
        let result = call(&kms, &caller, &api, &bytes);
        Ok::<_, ApiError>((caller, result))
    })
    .await
    .map_err(|e| ApiError::from(KmsError::internal(format!("the call failed: {e}"))))??;
    outcome.caller = Some(caller);
    let done = result?;
    outcome.key_id = done.key_id;
    outcome.parameters = done.parameters;
    outcome.key_version_id = done.key_version_id;
    Ok(done.body)
}

fn too_large() -> ApiError {
    fail(
        413,
        "RequestEntityTooLarge",
        format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
    )
}

/// Verifies the signature with the client key's public key; the caller the request runs as.
fn authenticate(
    kms: &Kms,
    client_key_id: &str,
    source: std::net::IpAddr,
    to_sign: &str,
    signature: &[u8],
) -> Result<Caller, ApiError> {
    let unknown = || {
        fail(
            401,
            "Unauthorized",
            format!("the client key {client_key_id} is not found"),
        )
    };
    let credential = match kms.client_key_credential(client_key_id) {
        Ok(c) => c,
        Err(KmsError::ResourceNotFound { .. }) => return Err(unknown()),
        Err(e) => return Err(e.into()),
    };
    let digest: [u8; 32] = {
        use sha2::Digest;
        sha2::Sha256::digest(to_sign.as_bytes()).into()
    };
    let valid = credential
        .public_key
        .verify(SigningAlgorithm::RsaPkcs1Sha256, &digest, signature)
        .unwrap_or(false);
    if !valid {
        return Err(fail(
            401,
            "SignatureNotMatch",
            "the request signature does not match the one computed with the client key",
        ));
    }
    Ok(kms.access_point_caller(&credential, client_key_id, Some(source)))
}

/// An answered call: the response body and what the audit trail records of it.
struct Done {
    body: Vec<u8>,
    key_id: Option<String>,
    key_version_id: Option<String>,
    parameters: serde_json::Map<String, serde_json::Value>,
}

fn decode<M: Message + Default>(api: &str, bytes: &[u8]) -> Result<M, ApiError> {
    M::decode(bytes).map_err(|_| {
        fail(
            400,
            "InvalidParameter",
            format!("the body is not a valid {api}Request message"),
        )
    })
}

fn nonempty(v: &str) -> Option<serde_json::Value> {
    (!v.is_empty()).then(|| serde_json::Value::String(v.to_owned()))
}

/// The safe parameters of a request, for the audit trail: names and choices, never data.
fn params(fields: &[(&str, &str)]) -> serde_json::Map<String, serde_json::Value> {
    fields
        .iter()
        .filter_map(|(k, v)| Some(((*k).to_owned(), nonempty(v)?)))
        .collect()
}

/// A plaintext for a response field: copied into the answer (as every answer's plaintext is
/// on its way out), the secret's own buffer wiped when it drops here.
fn expose(secret: SecretBytes) -> Vec<u8> {
    secret.to_vec()
}

/// Runs one instance API call on its protobuf body as `caller` (already authenticated):
/// decodes the `api`'s request message, calls the engine, and encodes the answer.
///
/// Errors: `InvalidParameter` for a body that is not the API's message, `InvalidApiName`, and
/// the engine's errors.
pub fn call_api(kms: &Kms, caller: &Caller, api: &str, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    call(kms, caller, api, body).map(|done| done.body)
}

fn call(kms: &Kms, caller: &Caller, api: &str, bytes: &[u8]) -> Result<Done, ApiError> {
    let advance = api.starts_with("Advance");
    let done = |body: Vec<u8>, key_id: &str, version: &str, parameters| Done {
        body,
        key_id: Some(key_id.to_owned()),
        key_version_id: Some(version.to_owned()).filter(|v| !v.is_empty()),
        parameters,
    };
    Ok(match api {
        "Encrypt" | "AdvanceEncrypt" => {
            let r: proto::EncryptRequest = decode(api, bytes)?;
            let p = params(&[
                ("KeyId", &r.key_id),
                ("Algorithm", &r.algorithm),
                ("PaddingMode", &r.padding_mode),
            ]);
            let req = api::EncryptRequest {
                key_id: r.key_id,
                plaintext: SecretBytes::new(r.plaintext),
                algorithm: r.algorithm,
                aad: r.aad,
                iv: r.iv,
                padding_mode: r.padding_mode,
            };
            let out = if advance {
                kms.instance_advance_encrypt(caller, req)
            } else {
                kms.instance_encrypt(caller, req)
            }?;
            let body = proto::EncryptResponse {
                key_id: out.key_id.clone(),
                ciphertext_blob: out.ciphertext_blob,
                iv: out.iv,
                request_id: out.request_id,
                algorithm: out.algorithm,
                padding_mode: out.padding_mode,
                key_version_id: if advance {
                    out.key_version_id.clone()
                } else {
                    String::new()
                },
            }
            .encode_to_vec();
            done(body, &out.key_id, &out.key_version_id, p)
        }
        "Decrypt" | "AdvanceDecrypt" => {
            let r: proto::DecryptRequest = decode(api, bytes)?;
            let p = params(&[
                ("KeyId", &r.key_id),
                ("Algorithm", &r.algorithm),
                ("PaddingMode", &r.padding_mode),
            ]);
            let req = api::DecryptRequest {
                ciphertext_blob: r.ciphertext_blob,
                key_id: r.key_id,
                algorithm: r.algorithm,
                aad: r.aad,
                iv: r.iv,
                padding_mode: r.padding_mode,
            };
            let out = if advance {
                kms.instance_advance_decrypt(caller, req)
            } else {
                kms.instance_decrypt(caller, req)
            }?;
            let body = proto::DecryptResponse {
                key_id: out.key_id.clone(),
                plaintext: expose(out.plaintext),
                request_id: out.request_id,
                algorithm: out.algorithm,
                padding_mode: out.padding_mode,
                key_version_id: if advance {
                    out.key_version_id.clone()
                } else {
                    String::new()
                },
            }
            .encode_to_vec();
            done(body, &out.key_id, &out.key_version_id, p)
        }
        "GenerateDataKey" | "AdvanceGenerateDataKey" => {
            let req = if advance {
                let r: proto::AdvanceGenerateDataKeyRequest = decode(api, bytes)?;
                api::GenerateDataKeyRequest {
                    key_id: r.key_id,
                    algorithm: String::new(),
                    number_of_bytes: r.number_of_bytes,
                    aad: r.aad,
                }
            } else {
                let r: proto::GenerateDataKeyRequest = decode(api, bytes)?;
                api::GenerateDataKeyRequest {
                    key_id: r.key_id,
                    algorithm: r.algorithm,
                    number_of_bytes: r.number_of_bytes,
                    aad: r.aad,
                }
            };
            let n = req.number_of_bytes.to_string();
            let p = params(&[
                ("KeyId", &req.key_id),
                ("Algorithm", &req.algorithm),
                ("NumberOfBytes", &n),
            ]);
            let out = if advance {
                kms.instance_advance_generate_data_key(caller, req)
            } else {
                kms.instance_generate_data_key(caller, req)
            }?;
            let body = proto::GenerateDataKeyResponse {
                key_id: out.key_id.clone(),
                iv: out.iv,
                plaintext: expose(out.plaintext),
                ciphertext_blob: out.ciphertext_blob,
                request_id: out.request_id,
                algorithm: out.algorithm,
                key_version_id: if advance {
                    out.key_version_id.clone()
                } else {
                    String::new()
                },
            }
            .encode_to_vec();
            done(body, &out.key_id, &out.key_version_id, p)
        }
        "GenerateDataKeyPair"
        | "GenerateDataKeyPairWithoutPlaintext"
        | "AdvanceGenerateDataKeyPair"
        | "AdvanceGenerateDataKeyPairWithoutPlaintext" => {
            let with_plaintext = !api.ends_with("WithoutPlaintext");
            let req = if advance {
                let r: proto::AdvanceGenerateDataKeyPairRequest = decode(api, bytes)?;
                api::GenerateDataKeyPairRequest {
                    key_id: r.key_id,
                    algorithm: String::new(),
                    key_pair_spec: r.key_pair_spec,
                    key_format: r.key_format,
                    aad: r.aad,
                }
            } else {
                let r: proto::GenerateDataKeyPairRequest = decode(api, bytes)?;
                api::GenerateDataKeyPairRequest {
                    key_id: r.key_id,
                    algorithm: r.algorithm,
                    key_pair_spec: r.key_pair_spec,
                    key_format: r.key_format,
                    aad: r.aad,
                }
            };
            let p = params(&[
                ("KeyId", &req.key_id),
                ("Algorithm", &req.algorithm),
                ("KeyPairSpec", &req.key_pair_spec),
                ("KeyFormat", &req.key_format),
            ]);
            let out = if advance {
                kms.instance_advance_generate_data_key_pair(caller, req, with_plaintext)
            } else {
                kms.instance_generate_data_key_pair(caller, req, with_plaintext)
            }?;
            let version = if advance {
                out.key_version_id.clone()
            } else {
                String::new()
            };
            let body = if with_plaintext {
                proto::GenerateDataKeyPairResponse {
                    key_id: out.key_id.clone(),
                    iv: out.iv,
                    key_pair_spec: out.key_pair_spec,
                    private_key_plaintext: out
                        .private_key_plaintext
                        .map(expose)
                        .unwrap_or_default(),
                    private_key_ciphertext_blob: out.private_key_ciphertext_blob,
                    public_key: out.public_key,
                    request_id: out.request_id,
                    algorithm: out.algorithm,
                    key_version_id: version,
                }
                .encode_to_vec()
            } else {
                proto::GenerateDataKeyPairWithoutPlaintextResponse {
                    key_id: out.key_id.clone(),
                    iv: out.iv,
                    key_pair_spec: out.key_pair_spec,
                    private_key_ciphertext_blob: out.private_key_ciphertext_blob,
                    public_key: out.public_key,
                    request_id: out.request_id,
                    algorithm: out.algorithm,
                    key_version_id: version,
                }
                .encode_to_vec()
            };
            done(body, &out.key_id, &out.key_version_id, p)
        }
        "Sign" => {
            let r: proto::SignRequest = decode(api, bytes)?;
            let p = params(&[
                ("KeyId", &r.key_id),
                ("Algorithm", &r.algorithm),
                ("MessageType", &r.message_type),
            ]);
            // The older Digest field is a DIGEST message.
            let (message, message_type) = if r.message.is_empty() && !r.digest.is_empty() {
                (r.digest, "DIGEST".to_owned())
            } else {
                (r.message, r.message_type)
            };
            let out = kms.instance_sign(
                caller,
                api::SignRequest {
                    key_id: r.key_id,
                    algorithm: r.algorithm,
                    message,
                    message_type,
                },
            )?;
            let body = proto::SignResponse {
                key_id: out.key_id.clone(),
                signature: out.signature,
                request_id: out.request_id,
                algorithm: out.algorithm,
                message_type: out.message_type,
            }
            .encode_to_vec();
            done(body, &out.key_id, &out.key_version_id, p)
        }
        "Verify" => {
            let r: proto::VerifyRequest = decode(api, bytes)?;
            let p = params(&[
                ("KeyId", &r.key_id),
                ("Algorithm", &r.algorithm),
                ("MessageType", &r.message_type),
            ]);
            let (message, message_type) = if r.message.is_empty() && !r.digest.is_empty() {
                (r.digest, "DIGEST".to_owned())
            } else {
                (r.message, r.message_type)
            };
            let out = kms.instance_verify(
                caller,
                api::VerifyRequest {
                    key_id: r.key_id,
                    algorithm: r.algorithm,
                    message,
                    message_type,
                    signature: r.signature,
                },
            )?;
            let body = proto::VerifyResponse {
                key_id: out.key_id.clone(),
                value: out.value,
                request_id: out.request_id,
                algorithm: out.algorithm,
                message_type: out.message_type,
            }
            .encode_to_vec();
            done(body, &out.key_id, &out.key_version_id, p)
        }
        "GetPublicKey" => {
            let r: proto::GetPublicKeyRequest = decode(api, bytes)?;
            let p = params(&[("KeyId", &r.key_id)]);
            let out = kms.instance_get_public_key(caller, &r.key_id)?;
            let body = proto::GetPublicKeyResponse {
                key_id: out.key_id.clone(),
                public_key: out.public_key,
                request_id: out.request_id,
            }
            .encode_to_vec();
            done(body, &out.key_id, &out.key_version_id, p)
        }
        "Hmac" => {
            let r: proto::HmacRequest = decode(api, bytes)?;
            let p = params(&[("KeyId", &r.key_id)]);
            let out = kms.instance_hmac(caller, &r.key_id, &r.message)?;
            let body = proto::HmacResponse {
                key_id: out.key_id.clone(),
                signature: out.signature,
                request_id: out.request_id,
            }
            .encode_to_vec();
            done(body, &out.key_id, "", p)
        }
        "GenerateRandom" => {
            let r: proto::GenerateRandomRequest = decode(api, bytes)?;
            let n = r.length.to_string();
            let out = kms.instance_generate_random(caller, i64::from(r.length))?;
            Done {
                body: proto::GenerateRandomResponse {
                    random: expose(out.random),
                    request_id: out.request_id,
                }
                .encode_to_vec(),
                key_id: None,
                key_version_id: None,
                parameters: params(&[("Length", &n)]),
            }
        }
        "GetSecretValue" => {
            let r: proto::GetSecretValueRequest = decode(api, bytes)?;
            let p = params(&[
                ("SecretName", &r.secret_name),
                ("VersionStage", &r.version_stage),
                ("VersionId", &r.version_id),
            ]);
            let out = kms.instance_get_secret_value(
                caller,
                api::GetSecretValueRequest {
                    secret_name: r.secret_name,
                    version_stage: r.version_stage,
                    version_id: r.version_id,
                    fetch_extended_config: r.fetch_extended_config,
                },
            )?;
            let time = |t: Option<kms_core::UnixTime>| t.map(|t| t.to_string()).unwrap_or_default();
            Done {
                body: proto::GetSecretValueResponse {
                    secret_name: out.secret_name,
                    secret_type: out.secret_type,
                    secret_data: out.secret_data.expose().to_owned(),
                    secret_data_type: out.secret_data_type,
                    version_stages: out.version_stages,
                    version_id: out.version_id,
                    create_time: out.create_time.to_string(),
                    request_id: out.request_id,
                    last_rotation_date: time(out.last_rotation_date),
                    next_rotation_date: time(out.next_rotation_date),
                    extended_config: out.extended_config.unwrap_or_default(),
                    automatic_rotation: out.automatic_rotation.unwrap_or_default(),
                    rotation_interval: out.rotation_interval.unwrap_or_default(),
                }
                .encode_to_vec(),
                key_id: None,
                key_version_id: None,
                parameters: p,
            }
        }
        other => {
            return Err(fail(
                400,
                "InvalidApiName",
                format!("The ApiName \"{other}\" is invalid."),
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn http_dates_parse_as_the_sdks_send_them() {
        let t = parse_http_date("Wed, 02 Dec 2026 18:04:21 GMT").unwrap();
        assert_eq!(t, UnixTime::parse_iso8601("2026-12-02T18:04:21Z").unwrap());
        // Alibaba's documents show UTC and a one-digit day.
        let t = parse_http_date("Mon, 3 Jan 2010 08:33:47 UTC").unwrap();
        assert_eq!(t, UnixTime::parse_iso8601("2010-01-03T08:33:47Z").unwrap());
        for bad in [
            "",
            "yesterday",
            "Wed, 02 Dec 2026 18:04:21 PST",
            "Wed, 32 Dec 2026 18:04:21 GMT",
        ] {
            assert!(parse_http_date(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_string_to_sign_sorts_and_trims_the_kms_headers() {
        let s = string_to_sign(
            "POST",
            "ABC",
            "application/x-protobuf",
            "Wed, 02 Dec 2026 18:04:21 GMT",
            [
                ("x-kms-apiname", " Encrypt "),
                ("user-agent", "x"),
                ("X-Kms-ApiVersion", "dkms-gcs-0.2"),
                ("x-kms-acccesskeyid", "KAAP.1"),
            ],
        );
        assert_eq!(
            s,
            "POST\nABC\napplication/x-protobuf\nWed, 02 Dec 2026 18:04:21 GMT\n\
             x-kms-acccesskeyid:KAAP.1\nx-kms-apiname:Encrypt\nx-kms-apiversion:dkms-gcs-0.2\n/"
        );
    }
}
