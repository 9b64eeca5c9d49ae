//! kms-server's instance gateway without the socket: the `date` parser, the string to sign
//! over arbitrary headers, and each API's protobuf body decoded and run against a fresh engine
//! as the account root (the authentication is RSA over the string to sign, which the
//! fuzzer cannot forge; what follows it is what this drives).
//!
//! Input: `api \0 date \0 headers \0 body`, headers one `name: value` per line. The seeds are
//! requests of the official Python SDK. Errors are fine; a panic is a bug.
#![no_main]
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::sync::OnceLock;

use kms_fuzz::{record_template, RecordTemplate};
use kms_server::instance::{call_api, parse_http_date, string_to_sign, API_NAMES};
use libfuzzer_sys::fuzz_target;

static TEMPLATE: OnceLock<RecordTemplate> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let t = TEMPLATE.get_or_init(record_template);
    let mut parts = data.splitn(4, |b| *b == 0);
    let api = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let date = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let headers = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let body = parts.next().unwrap_or_default();
    let _ = parse_http_date(&date);
    let pairs = headers
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim(), v));
    let text = string_to_sign("POST", "", "application/x-protobuf", &date, pairs);
    assert!(text.ends_with('/'));
    if !API_NAMES.contains(&api.as_str()) {
        return;
    }
    // RSA key generation takes up to seconds per key (data key pairs of RSA specs).
    if api.contains("KeyPair") && body.windows(3).any(|w| w == b"RSA") {
        return;
    }
    let Ok(kms) = kms_fuzz::build_engine(t.storage(), 4) else {
        return;
    };
    let _ = call_api(&kms, &kms_fuzz::caller(), &api, body);
});
