//! What an unauthenticated request can make the server do before its signature is refused,
//! beside the floor of that work: hashing the body, which any server checking
//! `x-acs-content-sha256` must do.
//!
//! `pre_auth/max_request`: a maximum-size form body (64 KiB, the most parameters a request may
//! carry) decoded, merged with the query, and checked against a V3 signature that does not
//! match (the canonical request over every parameter is built and hashed). `pre_auth/sha256`:
//! SHA-256 of the same 64 KiB.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kms_core::{Caller, UnixTime};
use kms_server::auth::{Authenticator, SignedRequest};
use kms_server::config::{AccessKeys, Credential};
use kms_server::request;

const BODY_LIMIT: usize = 64 * 1024;

/// The largest body a request may carry: as many parameters as allowed, padded to the limit.
fn max_body() -> Vec<u8> {
    let n = request::MAX_PARAMETERS - 8;
    let value_len = BODY_LIMIT / n - 12;
    let mut body = String::new();
    for i in 0..n {
        if i > 0 {
            body.push('&');
        }
        body.push_str(&format!("P{i:04}="));
        body.push_str(&"v".repeat(value_len));
    }
    body.truncate(BODY_LIMIT);
    body.into_bytes()
}

fn pre_auth(c: &mut Criterion) {
    let body = max_body();
    let mut keys = AccessKeys::new();
    keys.insert("ak", Credential::new("sk", Caller::account_root("1")))
        .unwrap();
    let auth = Authenticator::new(keys, 1024);
    let now = UnixTime::parse_iso8601("2026-12-01T00:00:00Z").unwrap();
    let headers: Vec<(String, String)> = vec![
        ("host".into(), "kms.local".into()),
        ("x-acs-action".into(), "Encrypt".into()),
        ("x-acs-version".into(), "2016-01-20".into()),
        ("x-acs-date".into(), "2026-12-01T00:00:00Z".into()),
        ("x-acs-signature-nonce".into(), "n".into()),
        (
            "authorization".into(),
            "ACS3-HMAC-SHA256 Credential=ak,SignedHeaders=host;x-acs-action;x-acs-date;\
             x-acs-signature-nonce;x-acs-version,Signature=00"
                .into(),
        ),
    ];
    let mut g = c.benchmark_group("pre_auth");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("max_request", |b| {
        b.iter(|| {
            let query = request::parse_form("QueryString", b"").unwrap();
            let form = request::parse_form("Body", &body).unwrap();
            let params = request::merge(&query, form).unwrap();
            let signed = SignedRequest {
                method: "POST",
                path: "/",
                headers: &headers,
                query: &query,
                params: &params,
                body: &body,
            };
            let refused = auth.authenticate(&signed, now).unwrap_err();
            assert_eq!(refused.code, "SignatureDoesNotMatch");
        })
    });
    g.bench_function("sha256", |b| {
        b.iter(|| ring::digest::digest(&ring::digest::SHA256, &body))
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = pre_auth
}
criterion_main!(benches);
