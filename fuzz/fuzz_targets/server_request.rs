//! kms-server's request path without the socket: the query string and form body decoding,
//! their merge, signature verification (V3 `ACS3-HMAC-SHA256` and V1 `HMAC-SHA1`, timestamp
//! window, nonce cache), the operation parameters, and the dispatch table into an engine.
//!
//! Input: `method \0 path \0 query \0 headers \0 body`, headers one `name: value` per line;
//! missing parts are empty. The seed corpus holds correctly signed requests (made by
//! `examples/make_seeds.rs` with [`kms_fuzz::server::SECRET`] at [`kms_fuzz::NOW`]), so the
//! fuzzer starts past the signature check. Errors are fine; a panic is a bug.
#![no_main]
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::sync::OnceLock;

use kms_fuzz::server::{authenticator, split_request};
use kms_fuzz::{record_template, RecordTemplate, NOW};
use kms_server::auth::{claimed_access_key_id, SignedRequest};
use kms_server::{dispatch, request};
use libfuzzer_sys::fuzz_target;

static TEMPLATE: OnceLock<RecordTemplate> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let t = TEMPLATE.get_or_init(record_template);
    let parts = split_request(data);
    let Ok(query) = request::parse_form("QueryString", parts.query) else {
        return;
    };
    let Ok(body) = request::parse_form("Body", parts.body) else {
        return;
    };
    let Ok(params) = request::merge(&query, body) else {
        return;
    };
    let signed = SignedRequest {
        method: &parts.method,
        path: &parts.path,
        headers: &parts.headers,
        query: &query,
        params: &params,
        body: parts.body,
    };
    let _ = claimed_access_key_id(&signed);
    let identity = authenticator().authenticate(&signed, NOW);
    let action = params
        .get("Action")
        .or_else(|| signed.header("x-acs-action"))
        .unwrap_or_default();
    if !dispatch::is_action(action) {
        return;
    }
    let json = params.operation_json();
    // RSA key generation takes up to seconds per key: a fuzzer that found the RSA key specs
    // would spend its time there, not in decoding.
    if json.to_string().to_ascii_uppercase().contains("RSA") || action == "GetParametersForImport" {
        return;
    }
    // A fresh engine per input (the template store: one key, two versions, an alias, a tag),
    // so every input runs against the same state. Unsigned inputs are dispatched too, as the
    // account root: this fuzzes the decoding and the engine, not the authentication.
    let Ok(kms) = kms_fuzz::build_engine(t.storage(), 4) else {
        return;
    };
    let caller = identity.map_or_else(|_| kms_fuzz::caller(), |id| id.caller);
    let _ = dispatch::call(&kms, &caller, action, json);
});
