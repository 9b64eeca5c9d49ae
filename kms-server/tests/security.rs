//! The service as an attacker meets it: RAM identities and their identity policies over the
//! wire, the lockout check, HTTPS and mTLS, replay capacity per access key, and the audit
//! trail (no secrets in it, a chain that a one-byte edit breaks, fail-closed).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use kms_core::Caller;
use kms_server::config::{AuditSettings, Credential, Settings};
use kms_server::tls::{write_dev_cert, DevCertPaths, TlsFiles};

const ALICE_AK: &str = "ak-alice-crypto";
const ALICE_SK: &str = "sk-alice-crypto";
const BOB_AK: &str = "ak-bob-none";
const BOB_SK: &str = "sk-bob-none";

const ALICE_POLICY: &str = r#"{"Version":"1","Statement":[{"Effect":"Allow",
    "Action":["kms:Encrypt","kms:Decrypt","kms:DescribeKey"],"Resource":["acs:kms:*:*:key/*"]}]}"#;

/// Adds alice (a RAM user with an identity policy for cryptography) and bob (a RAM user
/// without one) of the owner's account.
fn with_ram_users(settings: &mut Settings) {
    settings
        .access_keys
        .insert(
            ALICE_AK,
            Credential::new(ALICE_SK, Caller::ram_user(ACCOUNT, "alice")),
        )
        .unwrap();
    settings
        .access_keys
        .insert(
            BOB_AK,
            Credential::new(BOB_SK, Caller::ram_user(ACCOUNT, "bob")),
        )
        .unwrap();
    settings.identity_policies.push((
        Caller::ram_user(ACCOUNT, "alice").arn(),
        ALICE_POLICY.to_owned(),
    ));
}

fn as_key(action: &str, query: &[(&str, &str)], ak: &str, sk: &str) -> V3Request {
    let mut r = V3Request::new(action, query);
    r.access_key_id = ak.into();
    r.secret = sk.into();
    r
}

#[test]
fn ram_users_get_only_what_their_identity_policy_allows() {
    let server = TestServer::start_with(|s, _| with_ram_users(s));
    let key = call_ok(&server, "CreateKey", &[])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret = call_ok(
        &server,
        "CreateSecret",
        &[
            ("SecretName", "owner-db"),
            ("SecretData", "owner-password"),
            ("VersionId", "v1"),
        ],
    );
    assert_eq!(secret["SecretName"], "owner-db");

    // alice: cryptography with the owner's key, nothing else.
    let enc = as_key(
        "Encrypt",
        &[("KeyId", &key), ("Plaintext", "aGVsbG8=")],
        ALICE_AK,
        ALICE_SK,
    )
    .send(&server);
    assert_eq!(enc.status, 200, "{}", String::from_utf8_lossy(&enc.body));
    let blob = enc.json()["CiphertextBlob"].as_str().unwrap().to_owned();
    let dec = as_key("Decrypt", &[("CiphertextBlob", &blob)], ALICE_AK, ALICE_SK).send(&server);
    assert_eq!(dec.status, 200);
    for (action, query) in [
        (
            "ScheduleKeyDeletion",
            vec![("KeyId", key.as_str()), ("PendingWindowInDays", "7")],
        ),
        ("GetSecretValue", vec![("SecretName", "owner-db")]),
        (
            "PutSecretValue",
            vec![
                ("SecretName", "owner-db"),
                ("SecretData", "stolen"),
                ("VersionId", "v2"),
            ],
        ),
        ("CreateKey", vec![]),
    ] {
        let r = as_key(action, &query, ALICE_AK, ALICE_SK).send(&server);
        assert_eq!(r.status, 403, "alice {action}");
        assert_eq!(r.error_code(), "Forbidden.NoPermission", "alice {action}");
    }
    // bob has no identity policy: nothing at all.
    for (action, query) in [
        (
            "Encrypt",
            vec![("KeyId", key.as_str()), ("Plaintext", "aGk=")],
        ),
        ("Decrypt", vec![("CiphertextBlob", blob.as_str())]),
        ("ListKeys", vec![]),
        ("GetSecretValue", vec![("SecretName", "owner-db")]),
    ] {
        let r = as_key(action, &query, BOB_AK, BOB_SK).send(&server);
        assert_eq!(r.error_code(), "Forbidden.NoPermission", "bob {action}");
    }
    // The owner keeps full control.
    call_ok(
        &server,
        "ScheduleKeyDeletion",
        &[("KeyId", &key), ("PendingWindowInDays", "7")],
    );
}

#[test]
fn a_policy_that_would_lock_the_owner_out_is_refused_unless_bypassed() {
    let server = TestServer::start_with(|s, _| with_ram_users(s));
    let key = call_ok(&server, "CreateKey", &[])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let only_alice = serde_json::json!({"Version": "1", "Statement": [{"Effect": "Allow",
        "Principal": {"RAM": [format!("acs:ram::{ACCOUNT}:user/alice")]},
        "Action": ["kms:*"], "Resource": ["*"]}]})
    .to_string();
    let r = V3Request::new(
        "SetKeyPolicy",
        &[
            ("KeyId", &key),
            ("PolicyName", "default"),
            ("Policy", &only_alice),
        ],
    )
    .send(&server);
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "InvalidParameter");
    let message = r.json()["Message"].as_str().unwrap().to_owned();
    assert!(message.contains("Policy") && message.contains("BypassPolicyLockoutSafetyCheck"));
    // CreateKey with such a policy creates nothing.
    let r = V3Request::new("CreateKey", &[("Policy", &only_alice)]).send(&server);
    assert_eq!(r.error_code(), "InvalidParameter");
    assert_eq!(call_ok(&server, "ListKeys", &[])["TotalCount"], 1);
    // With the bypass it is stored, and the owner is then refused on that key.
    call_ok(
        &server,
        "SetKeyPolicy",
        &[
            ("KeyId", &key),
            ("PolicyName", "default"),
            ("Policy", &only_alice),
            ("BypassPolicyLockoutSafetyCheck", "true"),
        ],
    );
    let r = V3Request::new("DescribeKey", &[("KeyId", &key)]).send(&server);
    assert_eq!(r.error_code(), "Forbidden.NoPermission");
}

// ---- TLS ---------------------------------------------------------------------------------------

fn dev_certs(dir: &Path) -> DevCertPaths {
    write_dev_cert(&dir.join("tls"), false).unwrap()
}

fn pem_certs(path: &Path) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_file_iter(path)
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn client_config(ca: &Path, client: Option<(&Path, &Path)>) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in pem_certs(ca) {
        roots.add(c).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                pem_certs(cert),
                rustls::pki_types::PrivateKeyDer::from_pem_file(key).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// Sends a V3 request over TLS; `Err` when the connection or handshake fails.
fn send_tls(
    server: &TestServer,
    config: Arc<rustls::ClientConfig>,
    req: &V3Request,
) -> Result<HttpResponse, String> {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(server.addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    // Complete the handshake (and learn of a refusal) before writing the request.
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(|e| e.to_string())?;
    }
    let headers = req.signed_headers(&server.host());
    let mut raw = Vec::new();
    {
        use std::io::{Read, Write};
        let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.target());
        for (n, v) in &headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str(&format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            req.body.len()
        ));
        tls.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
        tls.write_all(&req.body).map_err(|e| e.to_string())?;
        tls.flush().map_err(|e| e.to_string())?;
        match tls.read_to_end(&mut raw) {
            Ok(_) => {}
            Err(e) if !raw.is_empty() && e.kind() == std::io::ErrorKind::UnexpectedEof => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    if raw.is_empty() {
        return Err("no response".into());
    }
    Ok(parse_response(&raw))
}

#[test]
fn https_serves_signed_requests_and_plain_http_gets_no_answer() {
    let mut paths: Option<DevCertPaths> = None;
    let server = TestServer::start_with(|s, dir| {
        let p = dev_certs(dir);
        s.tls = Some(p.tls_files(false));
        paths = Some(p);
    });
    let paths = paths.unwrap();
    let config = client_config(&paths.ca, None);
    let r = send_tls(&server, config, &V3Request::new("CreateKey", &[])).unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // The same request in clear gets no HTTP answer from a TLS port.
    let req = V3Request::new("ListKeys", &[]);
    let headers = req.signed_headers(&server.host());
    let stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let raw = {
        use std::io::{Read, Write};
        let mut s = stream;
        let mut head = format!("POST {} HTTP/1.1\r\n", req.target());
        for (n, v) in &headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("content-length: 0\r\nconnection: close\r\n\r\n");
        let _ = s.write_all(head.as_bytes());
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        raw
    };
    assert!(
        !raw.starts_with(b"HTTP/"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    // A client that does not trust the server's CA refuses it.
    let other = tempfile::tempdir().unwrap();
    let stranger_ca = write_dev_cert(&other.path().join("x"), false).unwrap().ca;
    let e = send_tls(
        &server,
        client_config(&stranger_ca, None),
        &V3Request::new("ListKeys", &[]),
    )
    .unwrap_err();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
}

#[test]
fn mtls_refuses_a_client_without_a_certificate_from_the_client_ca() {
    let mut paths: Option<DevCertPaths> = None;
    let server = TestServer::start_with(|s, dir| {
        let p = dev_certs(dir);
        s.tls = Some(p.tls_files(true));
        paths = Some(p);
    });
    let paths = paths.unwrap();
    let without = send_tls(
        &server,
        client_config(&paths.ca, None),
        &V3Request::new("ListKeys", &[]),
    );
    assert!(without.is_err(), "{:?}", without.map(|r| r.status));
    let with = send_tls(
        &server,
        client_config(&paths.ca, Some((&paths.client_cert, &paths.client_key))),
        &V3Request::new("ListKeys", &[]),
    )
    .unwrap();
    assert_eq!(with.status, 200, "{}", String::from_utf8_lossy(&with.body));
}

#[test]
fn tls_settings_need_both_files_and_plain_http_stays_on_loopback() {
    use kms_server::config::{FileConfig, Overrides};
    let resolve = |text: &str, o: Overrides| {
        Settings::resolve(
            FileConfig::parse(&format!(
                "{text}\n[[access_keys]]\nid = \"a\"\nsecret = \"b\"\n"
            ))
            .unwrap(),
            &o,
            None,
        )
    };
    let e = resolve("listen = \"0.0.0.0:8443\"", Overrides::default()).unwrap_err();
    assert!(
        e.0.contains("insecure-http") && e.0.contains("0.0.0.0"),
        "{}",
        e.0
    );
    resolve(
        "listen = \"0.0.0.0:8443\"\ninsecure_http = true",
        Overrides::default(),
    )
    .unwrap();
    resolve(
        "listen = \"0.0.0.0:8443\"",
        Overrides {
            insecure_http: true,
            ..Overrides::default()
        },
    )
    .unwrap();
    let s = resolve(
        "listen = \"[::]:8443\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"",
        Overrides::default(),
    )
    .unwrap();
    assert_eq!(
        s.tls,
        Some(TlsFiles {
            cert: PathBuf::from("c.pem"),
            key: PathBuf::from("k.pem"),
            client_ca: None
        })
    );
    assert!(resolve("tls_cert = \"c.pem\"", Overrides::default()).is_err());
    assert!(resolve("tls_client_ca = \"ca.pem\"", Overrides::default()).is_err());
    resolve("listen = \"127.0.0.1:8080\"", Overrides::default()).unwrap();
}

// ---- replay capacity ---------------------------------------------------------------------------

#[test]
fn a_nonce_flood_from_one_key_leaves_other_keys_untouched() {
    let server = TestServer::start_with(|s, _| {
        s.nonce_cache_capacity = 5;
        with_ram_users(s);
    });
    for _ in 0..5 {
        call_ok(&server, "ListKeys", &[]);
    }
    let r = V3Request::new("ListKeys", &[]).send(&server);
    assert_eq!(r.status, 429);
    assert_eq!(r.error_code(), "Throttling.User");
    // Another access key is served as usual, up to its own capacity.
    for _ in 0..5 {
        let r = as_key("DescribeRegions", &[], ALICE_AK, ALICE_SK).send(&server);
        assert_ne!(r.status, 429);
        assert_ne!(r.status, 503);
    }
}

// ---- audit trail -------------------------------------------------------------------------------

fn audited(path: &Path, fail_closed: bool) -> TestServer {
    let path = path.to_owned();
    TestServer::start_with(move |s, _| {
        with_ram_users(s);
        s.audit = Some(AuditSettings {
            path,
            fail_closed,
            sync: false,
        });
    })
}

#[test]
fn the_audit_trail_records_who_did_what_and_never_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let trail = dir.path().join("audit.jsonl");
    let server = audited(&trail, false);
    let key = call_ok(&server, "CreateKey", &[])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let plaintext = "dG9wLXNlY3JldC1wbGFpbnRleHQ="; // "top-secret-plaintext"
    let blob = call_ok(
        &server,
        "Encrypt",
        &[
            ("KeyId", &key),
            ("Plaintext", plaintext),
            ("EncryptionContext", r#"{"tenant":"acme"}"#),
        ],
    )["CiphertextBlob"]
        .as_str()
        .unwrap()
        .to_owned();
    let data_key = call_ok(&server, "GenerateDataKey", &[("KeyId", &key)]);
    let data_key_plain = data_key["Plaintext"].as_str().unwrap().to_owned();
    call_ok(
        &server,
        "CreateSecret",
        &[
            ("SecretName", "db"),
            ("SecretData", "hunter2-secret-value"),
            ("VersionId", "v1"),
        ],
    );
    let got = call_ok(&server, "GetSecretValue", &[("SecretName", "db")]);
    assert_eq!(got["SecretData"], "hunter2-secret-value");
    // alice decrypts (allowed) and reads the secret (refused).
    let r = as_key(
        "Decrypt",
        &[
            ("CiphertextBlob", &blob),
            ("EncryptionContext", r#"{"tenant":"acme"}"#),
        ],
        ALICE_AK,
        ALICE_SK,
    )
    .send(&server);
    assert_eq!(r.status, 200);
    let r = as_key(
        "GetSecretValue",
        &[("SecretName", "db")],
        ALICE_AK,
        ALICE_SK,
    )
    .send(&server);
    assert_eq!(r.status, 403);
    // A request with a bad signature is recorded too.
    let mut forged = V3Request::new("ListKeys", &[]);
    forged.secret = "wrong".into();
    assert_eq!(forged.send(&server).status, 400);
    drop(server);

    let text = std::fs::read_to_string(&trail).unwrap();
    for secret in [
        "top-secret-plaintext",
        plaintext,
        blob.as_str(),
        data_key_plain.as_str(),
        "hunter2-secret-value",
        SK,
        ALICE_SK,
    ] {
        assert!(!text.contains(secret), "the trail holds {secret:?}");
    }
    assert_eq!(kms_server::audit::verify(&trail).unwrap(), 8);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = lines
        .iter()
        .map(|l| l["eventName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "CreateKey",
            "Encrypt",
            "GenerateDataKey",
            "CreateSecret",
            "GetSecretValue",
            "Decrypt",
            "GetSecretValue",
            "ListKeys"
        ]
    );
    let encrypt = &lines[1];
    assert_eq!(encrypt["userIdentity"]["type"], "root-account");
    assert_eq!(encrypt["userIdentity"]["accessKeyId"], AK);
    assert_eq!(encrypt["userIdentity"]["accountId"], ACCOUNT);
    assert_eq!(encrypt["requestParameters"]["KeyId"], key.as_str());
    assert_eq!(
        encrypt["requestParameters"]["EncryptionContext"]["tenant"],
        "acme"
    );
    assert!(encrypt["requestParameters"].get("Plaintext").is_none());
    assert_eq!(encrypt["sourceIpAddress"], "127.0.0.1");
    assert_eq!(encrypt["acsRegion"], "cn-hangzhou");
    let arn = format!("acs:kms:cn-hangzhou:{ACCOUNT}:key/{key}");
    assert_eq!(encrypt["resources"][0]["ARN"], arn.as_str());
    let decrypt = &lines[5];
    assert_eq!(decrypt["userIdentity"]["type"], "ram-user");
    assert_eq!(decrypt["userIdentity"]["userName"], "alice");
    assert_eq!(decrypt["userIdentity"]["accessKeyId"], ALICE_AK);
    // Decrypt names no key; the trail takes it from the answer.
    assert_eq!(decrypt["resources"][0]["ARN"], arn.as_str());
    let refused = &lines[6];
    assert_eq!(refused["errorCode"], "Forbidden.NoPermission");
    assert_eq!(refused["requestParameters"]["SecretName"], "db");
    let forged = &lines[7];
    assert_eq!(forged["errorCode"], "SignatureDoesNotMatch");
    assert!(forged.get("userIdentity").is_none());
    for line in &lines {
        assert_eq!(line["eventSource"], "kms.aliyuncs.com");
        assert!(line["eventId"].is_string() && line["eventTime"].is_string());
    }
}

#[test]
fn a_one_byte_edit_breaks_the_chain_at_the_next_line() {
    let dir = tempfile::tempdir().unwrap();
    let trail = dir.path().join("audit.jsonl");
    let server = audited(&trail, false);
    for _ in 0..4 {
        call_ok(&server, "ListKeys", &[]);
    }
    drop(server);
    assert_eq!(kms_server::audit::verify(&trail).unwrap(), 4);
    let mut bytes = std::fs::read(&trail).unwrap();
    // Change one character of line 2's eventName ("ListKeys" -> "ListKeyz").
    let second_line_start = bytes.iter().position(|b| *b == b'\n').unwrap() + 1;
    let at = second_line_start
        + bytes[second_line_start..]
            .windows(8)
            .position(|w| w == b"ListKeys")
            .unwrap()
        + 7;
    bytes[at] = b'z';
    std::fs::write(&trail, bytes).unwrap();
    let e = kms_server::audit::verify(&trail).unwrap_err();
    assert_eq!(e.line, 3, "{e}");
}

#[test]
fn fail_closed_refuses_requests_whose_line_cannot_be_written() {
    if !Path::new("/dev/full").exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let on = |trail: &Path, fail_closed: bool| {
        let trail = trail.to_owned();
        let data = data.clone();
        TestServer::start_with(move |s, _| {
            s.engine.data_dir = data;
            s.audit = Some(AuditSettings {
                path: trail,
                fail_closed,
                sync: false,
            });
        })
    };
    // Every write to /dev/full fails with ENOSPC: nothing is carried out.
    let server = on(Path::new("/dev/full"), true);
    for _ in 0..2 {
        let r = V3Request::new("CreateKey", &[]).send(&server);
        assert_eq!(r.status, 503);
        assert_eq!(r.error_code(), "ServiceUnavailable");
    }
    drop(server);

    // With a writable trail: two lines per request, the outcome naming its Started line.
    let trail = dir.path().join("audit.jsonl");
    let server = on(&trail, true);
    assert_eq!(
        call_ok(&server, "ListKeys", &[])["TotalCount"],
        0,
        "the refused CreateKeys created nothing"
    );
    drop(server);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&trail)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["eventPhase"], "Started");
    assert_eq!(lines[1]["relatedEventId"], lines[0]["eventId"]);
    assert!(lines[1].get("eventPhase").is_none());

    // Without fail_closed, the service goes on (and logs the failure).
    let server = on(Path::new("/dev/full"), false);
    let r = V3Request::new("CreateKey", &[]).send(&server);
    assert_eq!(r.status, 200);
}
