//! The `kms` binary: one-off commands on a data directory, and `kms serve` as a process
//! (SIGTERM stops it cleanly; SIGKILL after a reply loses nothing).
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;

fn kms(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kms"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("KMS_ACCESS_KEY_ID")
        .env_remove("KMS_ACCESS_KEY_SECRET")
        .output()
        .unwrap()
}

fn kms_json(data_dir: &Path, args: &[&str]) -> serde_json::Value {
    let out = kms(data_dir, args);
    assert!(
        out.status.success(),
        "kms {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn one_off_commands_print_json() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = kms_json(&data, &["create-key", "--description", "cli key"]);
    let id = key["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
    assert_eq!(key["KeyMetadata"]["KeyState"], "Enabled");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("root.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let described = kms_json(&data, &["describe-key", &id]);
    assert_eq!(described["KeyMetadata"]["Description"], "cli key");
    kms_json(&data, &["create-alias", "alias/cli", &id]);
    let sealed = kms_json(
        &data,
        &[
            "encrypt",
            "--key-id",
            "alias/cli",
            "--plaintext",
            "secret text",
            "--context",
            r#"{"app":"cli"}"#,
        ],
    );
    let blob = sealed["CiphertextBlob"].as_str().unwrap();
    let opened = kms_json(
        &data,
        &[
            "decrypt",
            "--ciphertext-blob",
            blob,
            "--context",
            r#"{"app":"cli"}"#,
        ],
    );
    assert_eq!(opened["Plaintext"], "secret text");
    let listed = kms_json(&data, &["list-keys"]);
    assert_eq!(listed["TotalCount"], 1);
    let dk = kms_json(
        &data,
        &[
            "generate-data-key",
            "--key-id",
            &id,
            "--number-of-bytes",
            "16",
        ],
    );
    assert!(dk["Plaintext"].is_string());

    // The generic command reaches every action through the same dispatch table.
    let tagged = kms(
        &data,
        &[
            "call",
            "TagResource",
            "-p",
            &format!("KeyId={id}"),
            "-p",
            r#"Tags=[{"TagKey":"k","TagValue":"v"}]"#,
        ],
    );
    assert!(tagged.status.success());
    let tags = kms_json(
        &data,
        &[
            "call",
            "ListResourceTags",
            "--param",
            &format!("KeyId={id}"),
        ],
    );
    assert_eq!(tags["Tags"]["Tag"][0]["TagKey"], "k");

    kms_json(
        &data,
        &[
            "schedule-key-deletion",
            &id,
            "--pending-window-in-days",
            "7",
        ],
    );
    let d = kms_json(&data, &["describe-key", &id]);
    assert_eq!(d["KeyMetadata"]["KeyState"], "PendingDeletion");
    kms_json(&data, &["cancel-key-deletion", &id]);
    let report = kms_json(&data, &["run-maintenance"]);
    assert!(report["PurgedKeys"].as_array().unwrap().is_empty());

    let actions = kms(&data, &["actions"]);
    let text = String::from_utf8(actions.stdout).unwrap();
    assert!(text.lines().any(|l| l == "AsymmetricSign"));
}

#[test]
fn errors_go_to_stderr_with_failure_status() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = kms(&data, &["describe-key", "alias/none"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Forbidden.AliasNotFound"), "{err}");

    let out = kms(&data, &["call", "MakeCoffee"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown action"));

    let out = kms(&data, &["call", "ListKeys", "-p", "PageSize"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NAME=VALUE"));
}

#[test]
fn serve_refuses_to_start_without_an_access_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = kms(
        &dir.path().join("data"),
        &["serve", "--listen", "127.0.0.1:0"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("KMS_ACCESS_KEY_ID"));
}

struct Served {
    child: std::process::Child,
    addr: SocketAddr,
    log: std::sync::mpsc::Receiver<String>,
}

impl Drop for Served {
    fn drop(&mut self) {
        // A no-op for a process already waited for; reaps it when a test failed midway.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data_dir: &Path, config: Option<&Path>) -> Served {
    serve_with(data_dir, config, &[])
}

// The child is reaped by `Served`'s Drop (or the test panics and the harness exits).
#[allow(clippy::zombie_processes)]
fn serve_with(data_dir: &Path, config: Option<&Path>, extra: &[&str]) -> Served {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kms"));
    cmd.arg("--data-dir")
        .arg(data_dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--log-json"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    match config {
        Some(c) => {
            cmd.arg("--config").arg(c);
            cmd.env_remove("KMS_ACCESS_KEY_ID")
                .env_remove("KMS_ACCESS_KEY_SECRET");
        }
        None => {
            cmd.env("KMS_ACCESS_KEY_ID", AK)
                .env("KMS_ACCESS_KEY_SECRET", SK);
        }
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    loop {
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        if v["fields"]["message"] == "listening" {
            let addr = v["fields"]["addr"].as_str().unwrap().parse().unwrap();
            return Served {
                child,
                addr,
                log: rx,
            };
        }
    }
}

/// A TestServer-like handle for the V3 helpers, pointing at a served process.
fn v3(addr: SocketAddr, action: &str, query: &[(&str, &str)]) -> HttpResponse {
    let req = V3Request::new(action, query);
    let headers = req.signed_headers(&addr.to_string());
    send(addr, &req.method, &req.target(), &headers, &req.body)
}

#[test]
fn sigkill_after_a_reply_loses_nothing_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    let mut served = serve(&data, None);
    // Kept to replay after the crash.
    let create = V3Request::new("CreateKey", &[("Description", "survives kill -9")]);
    let create_headers = create.signed_headers(&served.addr.to_string());
    let r = send(
        served.addr,
        "POST",
        &create.target(),
        &create_headers,
        &create.body,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let id = r.json()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = v3(
        served.addr,
        "CreateAlias",
        &[("AliasName", "alias/durable"), ("KeyId", &id)],
    );
    assert_eq!(r.status, 200);
    served.child.kill().unwrap(); // SIGKILL
    served.child.wait().unwrap();

    // Everything answered is on disk.
    let d = kms_json(&data, &["describe-key", "alias/durable"]);
    assert_eq!(d["KeyMetadata"]["Description"], "survives kill -9");

    // A restarted server sees it too, refuses the replayed CreateKey (its nonces died with
    // the process, so it refuses what the crashed one could have accepted), logs one line per
    // request, and stops on SIGTERM.
    let mut served = serve(&data, None);
    let replayed = send(
        served.addr,
        "POST",
        &create.target(),
        &create_headers,
        &create.body,
    );
    assert_eq!(replayed.error_code(), "InvalidTimeStamp.Expired");
    // Fresh requests are served once their signed time is past the crashed run's reservation
    // (a few seconds).
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let r = loop {
        let r = v3(
            served.addr,
            "Encrypt",
            &[("KeyId", "alias/durable"), ("Plaintext", "do-not-log-me")],
        );
        if r.status != 400 || std::time::Instant::now() > deadline {
            break r;
        }
        assert_eq!(r.error_code(), "InvalidTimeStamp.Expired");
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let keys = v3(served.addr, "ListKeys", &[]);
    assert_eq!(keys.json()["TotalCount"], 1, "the replay created no key");
    let status = Command::new("kill")
        .args(["-TERM", &served.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = served.child.wait().unwrap();
    assert!(exit.success(), "exit after SIGTERM: {exit:?}");
    let log: Vec<String> = served.log.try_iter().collect();
    let served_encrypts: Vec<serde_json::Value> = log
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["fields"]["message"] == "request"
                && v["fields"]["action"] == "Encrypt"
                && v["fields"]["status"] == 200
        })
        .collect();
    assert_eq!(served_encrypts.len(), 1, "{log:?}");
    let line = &served_encrypts[0];
    assert_eq!(line["fields"]["action"], "Encrypt");
    assert_eq!(line["fields"]["status"], 200);
    assert_eq!(line["fields"]["access_key_id"], AK);
    assert!(line["fields"]["request_id"].is_string());
    assert!(line["fields"]["latency_us"].is_number());
    for l in &log {
        assert!(!l.contains("do-not-log-me") && !l.contains(SK), "leak: {l}");
    }
    assert!(log.iter().any(|l| l.contains("stopped")));
}

#[test]
fn a_request_replayed_across_a_clean_restart_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let served = serve(&data, None);
    let create = V3Request::new("CreateKey", &[("Description", "once")]);
    let headers = create.signed_headers(&served.addr.to_string());
    let r = send(
        served.addr,
        "POST",
        &create.target(),
        &headers,
        &create.body,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    stop(served);

    // The nonces were saved at the stop: the replay is a used nonce, and nothing else waits.
    let served = serve(&data, None);
    let replayed = send(
        served.addr,
        "POST",
        &create.target(),
        &headers,
        &create.body,
    );
    assert_eq!(replayed.error_code(), "SignatureNonceUsed");
    let keys = v3(served.addr, "ListKeys", &[]);
    assert_eq!(keys.status, 200, "{}", String::from_utf8_lossy(&keys.body));
    assert_eq!(keys.json()["TotalCount"], 1);
    stop(served);
}

/// Stops a served process with SIGTERM and checks it exits cleanly.
fn stop(mut served: Served) {
    let status = Command::new("kill")
        .args(["-TERM", &served.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = served.child.wait().unwrap();
    assert!(exit.success(), "exit after SIGTERM: {exit:?}");
}

#[test]
fn config_file_maps_access_keys_to_principals() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("kms.toml");
    std::fs::write(
        &config,
        format!(
            "account_id = \"{ACCOUNT}\"\nregion = \"cn-shanghai\"\n\
             [[access_keys]]\nid = \"{AK}\"\nsecret = \"{SK}\"\n\
             [[access_keys]]\nid = \"ak-outsider\"\nsecret = \"s\"\naccount_id = \"555\"\n"
        ),
    )
    .unwrap();
    let mut served = serve(&data, Some(&config));
    let r = v3(served.addr, "CreateKey", &[]);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let arn = r.json()["KeyMetadata"]["Arn"].as_str().unwrap().to_owned();
    assert!(
        arn.starts_with(&format!("acs:kms:cn-shanghai:{ACCOUNT}:key/")),
        "{arn}"
    );
    let mut req = V3Request::new("DescribeKey", &[("KeyId", &arn)]);
    req.access_key_id = "ak-outsider".into();
    req.secret = "s".into();
    let headers = req.signed_headers(&served.addr.to_string());
    let r = send(served.addr, "POST", &req.target(), &headers, b"");
    assert_eq!(r.error_code(), "Forbidden.NoPermission");
    served.child.kill().unwrap();
    served.child.wait().unwrap();
}

#[test]
fn maintenance_runs_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve_with(
        &dir.path().join("data"),
        None,
        &["--maintenance-interval", "1", "--log-level", "debug"],
    );
    let mut passes = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while passes < 2 && std::time::Instant::now() < deadline {
        if let Ok(line) = served.log.recv_timeout(Duration::from_secs(5)) {
            if line.contains("maintenance") {
                passes += 1;
            }
        }
    }
    assert!(passes >= 2, "saw {passes} maintenance passes");
}

#[test]
fn reset_policy_gives_the_owner_back_a_key_and_a_secret_and_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let trail = dir.path().join("audit.jsonl");
    let trail_arg = trail.to_str().unwrap();
    let only_alice = r#"{"Version":"1","Statement":[{"Effect":"Allow","Principal":{"RAM":["acs:ram::1234567890:user/alice"]},"Action":["kms:*"],"Resource":["*"]}]}"#;
    // Without the bypass the owner cannot lock itself out...
    let out = kms(
        &data,
        &["call", "CreateKey", "-p", &format!("Policy={only_alice}")],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("BypassPolicyLockoutSafetyCheck"));
    // ...with it, it can, and is then refused on the key.
    let key = kms_json(
        &data,
        &[
            "call",
            "CreateKey",
            "-p",
            &format!("Policy={only_alice}"),
            "-p",
            "BypassPolicyLockoutSafetyCheck=true",
        ],
    )["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = kms(&data, &["describe-key", &key]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Forbidden.NoPermission"));
    kms_json(
        &data,
        &[
            "call",
            "CreateSecret",
            "-p",
            "SecretName=locked",
            "-p",
            "SecretData=v",
            "-p",
            "VersionId=v1",
            "-p",
            &format!("Policy={only_alice}"),
            "-p",
            "BypassPolicyLockoutSafetyCheck=true",
        ],
    );

    let reset = kms_json(&data, &["--audit-log", trail_arg, "reset-policy", &key]);
    assert_eq!(reset["Reset"], true);
    kms_json(&data, &["describe-key", &key]);
    let reset = kms_json(&data, &["--audit-log", trail_arg, "reset-policy", "locked"]);
    assert_eq!(reset["Reset"], true);
    assert!(reset["Resource"]
        .as_str()
        .unwrap()
        .ends_with(":secret/locked"));
    kms_json(
        &data,
        &["call", "DescribeSecret", "-p", "SecretName=locked"],
    );
    let out = kms(
        &data,
        &["--audit-log", trail_arg, "reset-policy", "no-such-thing"],
    );
    assert!(!out.status.success());

    let text = std::fs::read_to_string(&trail).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for line in &lines {
        assert_eq!(line["eventName"], "ResetPolicy");
        assert_eq!(line["eventType"], "HostCommand");
        assert_eq!(line["userIdentity"]["type"], "host");
    }
    assert!(lines[0]["resources"][0]["ARN"]
        .as_str()
        .unwrap()
        .ends_with(&format!(":key/{key}")));
    assert!(lines[2]["errorCode"].is_string());

    // kms audit verify: intact, then broken by a one-byte edit.
    let out = kms(&data, &["audit", "verify", trail_arg]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 lines"));
    let edited = text.replacen("ResetPolicy", "ResetPolicz", 1);
    std::fs::write(&trail, edited).unwrap();
    let out = kms(&data, &["audit", "verify", trail_arg]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 2"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(unix)]
#[test]
fn the_data_directory_is_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let status = Command::new("sh")
        .arg("-c")
        .arg("umask 000; exec \"$0\" --data-dir \"$1\" create-key >/dev/null")
        .arg(env!("CARGO_BIN_EXE_kms"))
        .arg(&data)
        .status()
        .unwrap();
    assert!(status.success());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("kms.redb")), 0o600);
    assert_eq!(mode(&data.join("root.key")), 0o600);
    // A directory and store loosened by hand are tightened at the next start.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        data.join("kms.redb"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    kms_json(&data, &["list-keys"]);
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("kms.redb")), 0o600);
}

#[test]
fn dev_cert_writes_a_ca_and_a_localhost_certificate_once() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("tls");
    let out = kms(
        &dir.path().join("data"),
        &["dev-cert", "--out", out_dir.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "ca.pem",
        "cert.pem",
        "key.pem",
        "client-cert.pem",
        "client-key.pem",
    ] {
        assert!(out_dir.join(f).exists(), "{f}");
    }
    // The openssl CLI agrees the server certificate chains to the CA and names localhost.
    if let Ok(v) = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(out_dir.join("ca.pem"))
        .arg(out_dir.join("cert.pem"))
        .output()
    {
        assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
        let text = Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(out_dir.join("cert.pem"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(text.contains("DNS:localhost") && text.contains("IP Address:127.0.0.1"));
    }
    let again = kms(
        &dir.path().join("data"),
        &["dev-cert", "--out", out_dir.to_str().unwrap()],
    );
    assert!(!again.status.success());
}

/// The certificate a TLS server on `addr` presents (DER), over a connection kept open.
fn tls_connect(
    addr: SocketAddr,
    ca: &Path,
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let conn = rustls::ClientConnection::new(
        std::sync::Arc::new(config),
        rustls::pki_types::ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    tls
}

/// One keep-alive request on an open TLS connection; the status code.
fn keep_alive_request(
    tls: &mut rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>,
    host: &str,
) -> u16 {
    use std::io::{Read, Write};
    let req = V3Request::new("DescribeRegions", &[]);
    let mut head = format!("POST {} HTTP/1.1\r\n", req.target());
    for (n, v) in req.signed_headers(host) {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("content-length: 0\r\n\r\n");
    tls.write_all(head.as_bytes()).unwrap();
    // Read the head, then exactly content-length bytes of body.
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        tls.read_exact(&mut byte).unwrap();
        raw.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut body = vec![0u8; len];
    tls.read_exact(&mut body).unwrap();
    head.split(' ').nth(1).unwrap().parse().unwrap()
}

#[cfg(unix)]
#[test]
fn sighup_reloads_the_certificate_without_dropping_connections() {
    let dir = tempfile::tempdir().unwrap();
    let first = kms_server::tls::write_dev_cert(&dir.path().join("a"), false).unwrap();
    let second = kms_server::tls::write_dev_cert(&dir.path().join("b"), false).unwrap();
    let live = dir.path().join("live");
    std::fs::create_dir(&live).unwrap();
    std::fs::copy(&first.cert, live.join("cert.pem")).unwrap();
    std::fs::copy(&first.key, live.join("key.pem")).unwrap();
    let cert_arg = live.join("cert.pem");
    let key_arg = live.join("key.pem");
    let mut served = serve_with(
        &dir.path().join("data"),
        None,
        &[
            "--tls-cert",
            cert_arg.to_str().unwrap(),
            "--tls-key",
            key_arg.to_str().unwrap(),
        ],
    );
    let host = served.addr.to_string();
    let mut old = tls_connect(served.addr, &first.ca);
    let old_cert = old.conn.peer_certificates().unwrap()[0].clone();
    assert_eq!(keep_alive_request(&mut old, &host), 200);

    std::fs::copy(&second.cert, live.join("cert.pem")).unwrap();
    std::fs::copy(&second.key, live.join("key.pem")).unwrap();
    let status = Command::new("kill")
        .args(["-HUP", &served.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let line = served.log.recv_timeout(Duration::from_secs(30)).unwrap();
        if line.contains("reloaded") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no reload logged");
    }
    // New connections get the new certificate (trusted through the second CA only)...
    let new = tls_connect(served.addr, &second.ca);
    assert_ne!(new.conn.peer_certificates().unwrap()[0], old_cert);
    // ...and the connection opened before the reload still serves requests.
    assert_eq!(keep_alive_request(&mut old, &host), 200);
    drop(new);
    drop(old);
    served.child.kill().unwrap();
    served.child.wait().unwrap();
}

#[test]
fn a_data_directory_that_lost_its_store_or_root_key_is_refused_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let id = kms_json(&data, &["create-key"])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let store = data.join("kms.redb");
    let key = data.join("root.key");
    let saved_store = std::fs::read(&store).unwrap();
    let saved_key = std::fs::read(&key).unwrap();
    let refused = |what: &str, needle: &str| {
        let out = kms(&data, &["list-keys"]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{what}: {err}");
        assert!(err.contains(needle), "{what}: {err}");
    };

    // The store deleted: refused, naming it; no empty store appears.
    std::fs::remove_file(&store).unwrap();
    refused("store deleted", "kms.redb");
    assert!(!store.exists());
    // The store truncated to nothing.
    std::fs::write(&store, b"").unwrap();
    refused("store empty", "empty");
    std::fs::write(&store, &saved_store).unwrap();
    // The root key deleted: refused, and no new root key is written.
    std::fs::remove_file(&key).unwrap();
    refused("root key deleted", "root.key");
    assert!(!key.exists());
    // Restored from backup, everything is there.
    std::fs::write(&key, &saved_key).unwrap();
    kms_json(&data, &["describe-key", &id]);

    // A first start cut short after writing the root key (or a root key provisioned ahead)
    // is no loss: the next start creates the store.
    let provisioned = dir.path().join("provisioned");
    std::fs::create_dir(&provisioned).unwrap();
    std::fs::write(provisioned.join("root.key"), &saved_key).unwrap();
    kms_json(&provisioned, &["list-keys"]);
    assert!(provisioned.join("kms.initialized").exists());

    // kms init creates new directories only.
    let out = kms(&data, &["init"]);
    assert!(!out.status.success());
    let fresh = dir.path().join("fresh");
    let made = kms_json(&fresh, &["init"]);
    assert!(made["Store"].as_str().unwrap().ends_with("kms.redb"));
    assert!(fresh.join("kms.redb").exists() && fresh.join("root.key").exists());
}

#[test]
fn fsck_finds_a_bit_flipped_record_and_quarantine_moves_it_aside() {
    use kms_core::Storage;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            kms_json(&data, &["create-key"])["KeyMetadata"]["KeyId"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let out = kms(&data, &["fsck"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Flip one bit of one key record, through the store itself.
    {
        let store = kms_storage::RedbStorage::open(data.join("kms.redb")).unwrap();
        let key = format!("k/{}", ids[1]).into_bytes();
        let mut entry = store.get(&key).unwrap().unwrap();
        let mid = entry.value.len() / 2;
        entry.value[mid] ^= 1;
        let mut batch = kms_core::Batch::new();
        batch.put(key, entry.value);
        store.commit(batch).unwrap();
    }
    // Lists still answer. ListKeys is served from its index, whose entry still opens: the
    // damaged key is listed by id until something reads its record, and then it is not.
    let listed = kms_json(&data, &["list-keys"]);
    assert_eq!(listed["TotalCount"], 3);
    let out = kms(&data, &["describe-key", &ids[1]]);
    assert!(!out.status.success());
    let out = kms(&data, &["fsck"]);
    assert!(!out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["Corrupt"].as_array().unwrap().len(), 1);
    assert_eq!(report["Corrupt"][0]["Record"], format!("k/{}", ids[1]));
    let out = kms(&data, &["fsck", "--quarantine"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let moved: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let path = moved["Quarantined"][0].as_str().unwrap();
    assert!(std::path::Path::new(path).starts_with(data.join("quarantine")));
    assert!(!std::fs::read(path).unwrap().is_empty());
    let out = kms(&data, &["fsck"]);
    assert!(out.status.success());
    kms_json(&data, &["describe-key", &ids[0]]);

    // An index record that fails to open is moved aside too, and the indexes are rebuilt
    // from the records.
    {
        let store = kms_storage::RedbStorage::open(data.join("kms.redb")).unwrap();
        let (key, mut entry) = store
            .scan(b"i/c/K,", None, 1)
            .unwrap()
            .into_iter()
            .next()
            .unwrap();
        let mid = entry.value.len() / 2;
        entry.value[mid] ^= 1;
        let mut batch = kms_core::Batch::new();
        batch.put(key, entry.value);
        store.commit(batch).unwrap();
    }
    let out = kms(&data, &["fsck"]);
    assert!(!out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["Corrupt"][0]["Record"]
        .as_str()
        .unwrap()
        .starts_with("i/c/"));
    let fixed = kms_json(&data, &["fsck", "--quarantine"]);
    assert_eq!(fixed["Quarantined"].as_array().unwrap().len(), 1);
    assert!(fixed["Reindexed"].as_u64().unwrap() >= 4, "{fixed}");
    assert_eq!(kms_json(&data, &["list-keys"])["TotalCount"], 2);
    let out = kms(&data, &["fsck"]);
    assert!(out.status.success());
    // --reindex rebuilds on request.
    let again = kms_json(&data, &["fsck", "--reindex"]);
    assert!(again["Reindexed"].as_u64().unwrap() >= 4, "{again}");
    kms_json(&data, &["create-key"]);
    assert_eq!(kms_json(&data, &["list-keys"])["TotalCount"], 3);
}
