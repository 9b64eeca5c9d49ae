//! The audit trail: hash chain, verification, parameter allowlist, file mode, escaping.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use kms_core::UnixTime;
use kms_server::audit::{
    safe_parameters, verify, verify_reader, AuditError, AuditEvent, AuditLog, AuditOptions,
    EventType, IdentityType, UserIdentity, GENESIS_HASH, MAX_VALUE_BYTES, SAFE_PARAMETER_NAMES,
};
use serde_json::{json, Value};

const T0: UnixTime = UnixTime(1_796_164_208); // 2026-12-01T22:30:08Z

fn trail(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("audit.log")
}

fn ram_user() -> UserIdentity {
    UserIdentity {
        kind: IdentityType::RamUser,
        account_id: "1234567890".to_owned(),
        principal_id: "28815334868278****".to_owned(),
        access_key_id: Some("LTAI-test-key".to_owned()),
        user_name: Some("alice".to_owned()),
    }
}

fn encrypt_event(i: usize) -> AuditEvent {
    AuditEvent {
        event_name: "Encrypt".to_owned(),
        request_id: format!("req-{i}"),
        region: "cn-hangzhou".to_owned(),
        identity: Some(ram_user()),
        source_ip: Some("10.0.0.1".to_owned()),
        user_agent: Some("AlibabaCloud (Linux) Rust/test".to_owned()),
        request_parameters: safe_parameters([("KeyId", "key-1"), ("Plaintext", "dGVzdA==")]),
        resources: vec!["acs:kms:cn-hangzhou:1234567890:key/key-1".to_owned()],
        ..Default::default()
    }
}

/// A trail of `n` Encrypt events, one second apart from T0.
fn write_events(path: &Path, n: usize) {
    let log = AuditLog::open(path).unwrap();
    for i in 0..n {
        log.record(&encrypt_event(i), T0.plus_secs(i as i64))
            .unwrap();
    }
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    fs::write(path, text).unwrap();
}

#[test]
fn a_written_trail_of_n_events_verifies_and_reopening_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = trail(&dir);
    write_events(&path, 5);
    assert_eq!(verify(&path).unwrap(), 5);

    // Reopen and append: the chain continues from the last line.
    let log = AuditLog::open(&path).unwrap();
    for i in 5..8 {
        log.record(&encrypt_event(i), T0.plus_secs(i as i64))
            .unwrap();
    }
    drop(log);
    assert_eq!(verify(&path).unwrap(), 8);
    let bytes = fs::read(&path).unwrap();
    assert_eq!(verify_reader(&bytes[..]).unwrap(), 8);

    // And with fsync on, through open_with.
    let log = AuditLog::open_with(&path, AuditOptions { sync: true }).unwrap();
    assert!(log.options().sync);
    log.record(&encrypt_event(8), T0).unwrap();
    assert_eq!(verify(&path).unwrap(), 9);
}

#[test]
fn the_first_line_chains_from_64_zeros_and_each_line_from_the_previous_lines_hash() {
    let dir = tempfile::tempdir().unwrap();
    let path = trail(&dir);
    write_events(&path, 3);
    let lines = lines(&path);
    let first: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first["previousHash"], GENESIS_HASH);
    assert_eq!(GENESIS_HASH, "0".repeat(64));
    for pair in lines.windows(2) {
        let digest = ring::digest::digest(&ring::digest::SHA256, pair[0].as_bytes());
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        let next: Value = serde_json::from_str(&pair[1]).unwrap();
        assert_eq!(next["previousHash"], hex.as_str());
    }
}

#[test]
fn an_empty_trail_verifies_with_zero_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = trail(&dir);
    drop(AuditLog::open(&path).unwrap());
    assert_eq!(verify(&path).unwrap(), 0);
    // Opening an empty existing file starts the chain at the genesis hash.
    write_events(&path, 2);
    assert_eq!(verify(&path).unwrap(), 2);
}

#[test]
fn a_json_preserving_edit_in_line_2_fails_verify_at_line_3() {
    let dir = tempfile::tempdir().unwrap();
    let path = trail(&dir);
    write_events(&path, 5);
    let mut lines = lines(&path);
    // Line 2's eventTime is 2026-12-01T22:30:09Z: change its seconds digit.
    let edited = lines[1].replace("T22:30:09Z", "T22:30:07Z");
    assert_ne!(edited, lines[1]);
    assert_eq!(edited.len(), lines[1].len(), "a one-byte edit");
    serde_json::from_str::<Value>(&edited).unwrap();
    lines[1] = edited;
    write_lines(&path, &lines);
    let err = verify(&path).unwrap_err();
    assert_eq!(err.line, 3, "{err}");
    assert!(err.to_string().starts_with("line 3: "), "{err}");
}

#[test]
fn an_edit_that_breaks_line_2s_json_fails_verify_at_line_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = trail(&dir);
    write_events(&path, 5);
    let mut lines = lines(&path);
    // Flip the closing brace.
    let mut bytes = lines[1].clone().into_bytes();
    let last = bytes.len() - 1;
    assert_eq!(bytes[last], b'}');
    bytes[last] = b']';
    lines[1] = String::from_utf8(bytes).unwrap();
    write_lines(&path, &lines);
    let err = verify(&path).unwrap_err();
    assert_eq!(err.line, 2, "{err}");
}

#[test]
fn a_deleted_line_fails_verify_at_the_line_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = trail(&dir);
    write_events(&path, 5);
    let mut lines = lines(&path);
    lines.remove(1);
    write_lines(&path, &lines);
    // The old line 3 is now line 2, and its previousHash is of the deleted line.
    let err = verify(&path).unwrap_err();
    assert_eq!(err.line, 2, "{err}");

    // Deleting the first line: the new first line does not chain from 64 zeros.
    let dir = tempfile::tempdir().unwrap();
    let path = trail(&dir);
    write_events(&path, 3);
    let lines = self::lines(&path);
    write_lines(&path, &lines[1..]);
    assert_eq!(verify(&path).unwrap_err().line, 1);
}

#[test]
fn a_truncated_last_line_fails_verify_at_that_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = trail(&dir);
    write_events(&path, 5);
    let bytes = fs::read(&path).unwrap();
    // Cut the last line in the middle.
    fs::write(&path, &bytes[..bytes.len() - 20]).unwrap();
    let err = verify(&path).unwrap_err();
    assert_eq!(err.line, 5, "{err}");
    // Only the newline missing: still a torn line.
    fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    let err = verify(&path).unwrap_err();
    assert_eq!(err.line, 5, "{err}");
    assert!(err.reason.contains("newline"), "{err}");
}

#[test]
fn open_refuses_a_partial_last_line_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = trail(&dir);
    write_events(&path, 3);
    let bytes = fs::read(&path).unwrap();

    // No trailing newline (a torn write).
    fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    let err = AuditLog::open(&path).unwrap_err();
    assert!(matches!(err, AuditError::MalformedTail { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );

    // A newline-terminated last line that is not JSON.
    let mut bad = bytes.clone();
    bad.extend_from_slice(b"{\"eventId\":\"x\", trunc\n");
    fs::write(&path, &bad).unwrap();
    let err = AuditLog::open(&path).unwrap_err();
    assert!(matches!(err, AuditError::MalformedTail { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );

    // JSON, but not an audit line.
    let mut bad = bytes.clone();
    bad.extend_from_slice(b"[1,2]\n");
    fs::write(&path, &bad).unwrap();
    assert!(matches!(
        AuditLog::open(&path).unwrap_err(),
        AuditError::MalformedTail { .. }
    ));

    // The intact file opens again.
    fs::write(&path, &bytes).unwrap();
    AuditLog::open(&path).unwrap();
}

#[test]
fn open_reads_only_the_last_line_even_one_longer_than_its_read_chunk() {
    // Garbage before the last line is not read by open (verify catches it).
    let dir = tempfile::tempdir().unwrap();
    let path = trail(&dir);
    write_events(&path, 3);
    let mut text = b"not json at all\n".to_vec();
    text.extend_from_slice(&fs::read(&path).unwrap());
    fs::write(&path, &text).unwrap();
    AuditLog::open(&path).unwrap();
    assert_eq!(verify(&path).unwrap_err().line, 1);

    // A last line longer than the read chunk, after many lines: the chain still continues.
    let dir = tempfile::tempdir().unwrap();
    let path = trail(&dir);
    write_events(&path, 200);
    let log = AuditLog::open(&path).unwrap();
    let mut event = encrypt_event(200);
    for i in 0..10 {
        event
            .request_parameters
            .insert(format!("ResourceId.{i}"), Value::String("r".repeat(2000)));
    }
    log.record(&event, T0).unwrap();
    drop(log);
    let log = AuditLog::open(&path).unwrap();
    log.record(&encrypt_event(201), T0).unwrap();
    assert_eq!(verify(&path).unwrap(), 202);
}

#[test]
fn open_fails_naming_the_path_when_the_parent_directory_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("audit.log");
    let err = AuditLog::open(&path).unwrap_err();
    assert!(matches!(err, AuditError::Io { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn safe_parameters_keeps_allowlisted_names_and_drops_secrets_and_unknown_names() {
    let params = [
        ("KeyId", "key-1"),
        ("EncryptionContext", r#"{"purpose":"test","user":"bob"}"#),
        ("SecretName", "db-password"),
        ("Algorithm", "RSAES_OAEP_SHA_256"),
        ("Plaintext", "cGxhaW50ZXh0"),
        ("CiphertextBlob", "Y2lwaGVydGV4dA=="),
        ("SecretData", "hunter2"),
        ("SecretDataType", "text"),
        ("EncryptedKeyMaterial", "bWF0ZXJpYWw="),
        ("ImportToken", "dG9rZW4="),
        ("PublicKeyBlob", "cHVi"),
        ("Signature", "c2ln"),
        ("SignatureValue", "c2ln"),
        ("Digest", "ZGlnZXN0"),
        ("Value", "dmFsdWU="),
        ("Message", "bWVzc2FnZQ=="),
        ("Mac", "bWFj"),
        ("NotAParameter", "x"),
        ("keyid", "lowercase is another name"),
    ];
    let kept = safe_parameters(params);
    let expected = json!({
        "KeyId": "key-1",
        "EncryptionContext": {"purpose": "test", "user": "bob"},
        "SecretName": "db-password",
        "Algorithm": "RSAES_OAEP_SHA_256",
    });
    assert_eq!(Value::Object(kept), expected);
}

#[test]
fn safe_parameters_leaves_out_the_protocol_parameters() {
    let params = [
        ("Action", "Encrypt"),
        ("Version", "2016-01-20"),
        ("Format", "JSON"),
        ("AccessKeyId", "LTAI-test-key"),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureNonce", "n-1"),
        ("SignatureVersion", "1.0"),
        ("SignatureType", ""),
        ("Timestamp", "2026-12-01T22:30:08Z"),
        ("Signature", "abc="),
        ("RegionId", "cn-hangzhou"),
        ("KeyId", "key-1"),
    ];
    let kept = safe_parameters(params);
    assert_eq!(Value::Object(kept), json!({"KeyId": "key-1"}));
}

#[test]
fn safe_parameters_records_non_json_encryption_context_as_a_string_and_flattened_lists() {
    let kept = safe_parameters([
        ("EncryptionContext", "not json"),
        ("Tags", r#"[{"TagKey":"k","TagValue":"v"}]"#),
        ("ResourceId.1", "key-1"),
        ("ResourceId.2", "key-2"),
        ("Tag.1.TagKey", "env"),
        ("Tag.1.TagValue", "prod"),
        ("ResourceId.1.Plaintext", "nope"),
        ("ResourceId.x", "nope"),
        ("Plaintext.1", "nope"),
        ("Tag.1.Secret", "nope"),
        ("Tag.1.TagKey.2", "nope"),
        ("PageSize", "10"),
    ]);
    assert_eq!(
        Value::Object(kept),
        json!({
            "EncryptionContext": "not json",
            "Tags": [{"TagKey": "k", "TagValue": "v"}],
            "ResourceId.1": "key-1",
            "ResourceId.2": "key-2",
            "Tag.1.TagKey": "env",
            "Tag.1.TagValue": "prod",
            "PageSize": "10",
        })
    );
}

#[test]
fn safe_parameters_caps_long_values_with_a_marker() {
    let long = "é".repeat(MAX_VALUE_BYTES); // 2 bytes each: the cut falls on a boundary
    let context = format!(r#"{{"k":"{}"}}"#, "v".repeat(3000));
    let kept = safe_parameters([
        ("Description", long.as_str()),
        ("EncryptionContext", context.as_str()),
    ]);
    let description = kept["Description"].as_str().unwrap();
    assert!(
        description.len() < MAX_VALUE_BYTES + 40,
        "{}",
        description.len()
    );
    assert!(description.starts_with(&"é".repeat(MAX_VALUE_BYTES / 2)));
    assert!(
        description.ends_with(&format!("...[truncated, {} bytes]", long.len())),
        "{description}"
    );
    // Too long to parse: a truncated string, not an object.
    let context = kept["EncryptionContext"].as_str().unwrap();
    assert!(context.contains("[truncated, "), "{context}");
}

#[test]
fn the_allowlist_names_nothing_that_carries_secrets() {
    for name in SAFE_PARAMETER_NAMES {
        assert!(
            !name.contains("Secret") || *name == "SecretName" || *name == "SecretType",
            "{name}"
        );
        for never in [
            "Plaintext",
            "CiphertextBlob",
            "EncryptedKeyMaterial",
            "ImportToken",
            "PublicKeyBlob",
            "Digest",
            "Value",
            "Signature",
            "Mac",
            "Message",
            "AccessKeyId",
        ] {
            assert_ne!(*name, never);
        }
    }
    assert!(SAFE_PARAMETER_NAMES.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn plaintexts_and_secret_values_never_reach_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = trail(&dir);
    let log = AuditLog::open(&path).unwrap();
    let encrypt = AuditEvent {
        event_name: "Encrypt".to_owned(),
        request_id: "req-encrypt".to_owned(),
        region: "cn-hangzhou".to_owned(),
        identity: Some(ram_user()),
        request_parameters: safe_parameters([
            ("Action", "Encrypt"),
            ("KeyId", "key-1"),
            ("Plaintext", "top-secret-plaintext"),
            ("EncryptionContext", r#"{"a":"b"}"#),
        ]),
        resources: vec!["acs:kms:cn-hangzhou:1234567890:key/key-1".to_owned()],
        ..Default::default()
    };
    let put = AuditEvent {
        event_name: "PutSecretValue".to_owned(),
        request_id: "req-put".to_owned(),
        region: "cn-hangzhou".to_owned(),
        identity: Some(ram_user()),
        request_parameters: safe_parameters([
            ("Action", "PutSecretValue"),
            ("SecretName", "db-password"),
            ("VersionId", "v2"),
            ("SecretData", "hunter2-secret"),
            ("SecretDataType", "text"),
        ]),
        resources: vec!["acs:kms:cn-hangzhou:1234567890:secret/db-password".to_owned()],
        ..Default::default()
    };
    log.record(&encrypt, T0).unwrap();
    log.record(&put, T0.plus_secs(1)).unwrap();
    drop(log);

    let text = fs::read_to_string(&path).unwrap();
    assert!(!text.contains("top-secret-plaintext"), "{text}");
    assert!(!text.contains("hunter2-secret"), "{text}");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines[0]["requestParameters"],
        json!({"KeyId": "key-1", "EncryptionContext": {"a": "b"}})
    );
    assert_eq!(
        lines[1]["requestParameters"],
        json!({"SecretName": "db-password", "VersionId": "v2"})
    );
    assert_eq!(verify(&path).unwrap(), 2);
}

#[test]
fn a_line_has_actiontrails_shape_with_keys_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = trail(&dir);
    let log = AuditLog::open(&path).unwrap();
    let mut event = encrypt_event(0);
    event.error_code = Some("Forbidden.NoPermission".to_owned());
    event.error_message = Some("denied".to_owned());
    let id = log.record(&event, T0).unwrap();
    drop(log);

    let text = fs::read_to_string(&path).unwrap();
    let line = text.strip_suffix('\n').unwrap();
    assert!(!line.contains('\n'));
    let keys = [
        "eventId",
        "eventVersion",
        "eventSource",
        "eventType",
        "eventTime",
        "eventName",
        "requestId",
        "acsRegion",
        "userIdentity",
        "sourceIpAddress",
        "userAgent",
        "requestParameters",
        "resources",
        "errorCode",
        "errorMessage",
        "previousHash",
    ];
    let positions: Vec<usize> = keys
        .iter()
        .map(|k| line.find(&format!("\"{k}\":")).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{line}");

    let v: Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["eventId"], id.as_str());
    // A UUID v4: 8-4-4-4-12 lowercase hex, version 4, variant 10xx.
    let groups: Vec<&str> = id.split('-').collect();
    assert_eq!(
        groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
        [8, 4, 4, 4, 12]
    );
    assert!(id
        .chars()
        .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c)));
    assert!(groups[2].starts_with('4'));
    assert!(matches!(
        groups[3].chars().next(),
        Some('8' | '9' | 'a' | 'b')
    ));

    assert_eq!(v["eventVersion"], "1");
    assert_eq!(v["eventSource"], "kms.aliyuncs.com");
    assert_eq!(v["eventType"], "ApiCall");
    assert_eq!(v["eventTime"], "2026-12-01T22:30:08Z");
    assert_eq!(v["eventName"], "Encrypt");
    assert_eq!(v["requestId"], "req-0");
    assert_eq!(v["acsRegion"], "cn-hangzhou");
    assert_eq!(
        v["userIdentity"],
        json!({
            "type": "ram-user",
            "accountId": "1234567890",
            "principalId": "28815334868278****",
            "accessKeyId": "LTAI-test-key",
            "userName": "alice",
        })
    );
    assert_eq!(v["sourceIpAddress"], "10.0.0.1");
    assert_eq!(
        v["resources"],
        json!([{"ARN": "acs:kms:cn-hangzhou:1234567890:key/key-1"}])
    );
    assert_eq!(v["errorCode"], "Forbidden.NoPermission");
    assert_eq!(v["errorMessage"], "denied");
    assert_eq!(v["previousHash"], GENESIS_HASH);
}

#[test]
fn maintenance_and_host_events_record_system_and_host_identities_and_omit_absent_fields() {
    let dir = tempfile::tempdir().unwrap();
    let path = trail(&dir);
    let log = AuditLog::open(&path).unwrap();
    let rotate = AuditEvent {
        event_name: "RotateKey".to_owned(),
        event_type: EventType::ServiceEvent,
        request_id: "maint-1".to_owned(),
        region: "cn-hangzhou".to_owned(),
        resources: vec!["acs:kms:cn-hangzhou:1234567890:key/key-1".to_owned()],
        ..Default::default()
    };
    let reset = AuditEvent {
        event_name: "ResetPolicy".to_owned(),
        event_type: EventType::HostCommand,
        request_id: "cli-1".to_owned(),
        region: "cn-hangzhou".to_owned(),
        ..Default::default()
    };
    let unauthenticated = AuditEvent {
        event_name: "Encrypt".to_owned(),
        request_id: "req-x".to_owned(),
        region: "cn-hangzhou".to_owned(),
        error_code: Some("IncompleteSignature".to_owned()),
        ..Default::default()
    };
    for e in [&rotate, &reset, &unauthenticated] {
        log.record(e, T0).unwrap();
    }
    drop(log);
    let lines: Vec<Value> = lines(&path)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["eventType"], "ServiceEvent");
    assert_eq!(lines[0]["userIdentity"], json!({"type": "system"}));
    assert_eq!(lines[1]["eventType"], "HostCommand");
    assert_eq!(lines[1]["userIdentity"], json!({"type": "host"}));
    assert_eq!(lines[2]["eventType"], "ApiCall");
    let obj = lines[2].as_object().unwrap();
    for absent in [
        "userIdentity",
        "sourceIpAddress",
        "userAgent",
        "errorMessage",
    ] {
        assert!(!obj.contains_key(absent), "{absent}");
    }
    assert_eq!(lines[2]["requestParameters"], json!({}));
    assert_eq!(lines[2]["resources"], json!([]));
    assert_eq!(verify(&path).unwrap(), 3);
}

#[cfg(unix)]
#[test]
fn the_created_trail_has_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = trail(&dir);
    let log = AuditLog::open(&path).unwrap();
    log.record(&encrypt_event(0), T0).unwrap();
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
}

#[test]
fn a_user_agent_with_a_newline_stays_on_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = trail(&dir);
    let log = AuditLog::open(&path).unwrap();
    let forged =
        format!("ua\n{{\"eventId\":\"forged\",\"previousHash\":\"{GENESIS_HASH}\"}}\r\n{{");
    let mut event = encrypt_event(0);
    event.user_agent = Some(forged.clone());
    event.error_message = Some("bad\nmessage\u{1b}[31m".to_owned());
    log.record(&event, T0).unwrap();
    log.record(&encrypt_event(1), T0).unwrap();
    drop(log);

    let lines = lines(&path);
    assert_eq!(lines.len(), 2);
    let first: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first["userAgent"], forged.as_str());
    assert_eq!(first["errorMessage"], "bad\nmessage\u{1b}[31m");
    assert!(!lines[0].contains('\r') && !lines[0].contains('\u{1b}'));
    assert_eq!(verify(&path).unwrap(), 2);
}

#[test]
fn concurrent_records_keep_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = trail(&dir);
    let log = AuditLog::open(&path).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let log = &log;
            s.spawn(move || {
                for i in 0..25 {
                    log.record(&encrypt_event(t * 100 + i), T0).unwrap();
                }
            });
        }
    });
    assert_eq!(log.path(), path.as_path());
    drop(log);
    assert_eq!(verify(&path).unwrap(), 100);
}

#[test]
fn verify_reports_an_unreadable_file_as_line_0() {
    let dir = tempfile::tempdir().unwrap();
    let err = verify(&dir.path().join("nope.log")).unwrap_err();
    assert_eq!(err.line, 0);
    assert!(err.reason.contains("nope.log"), "{err}");
}

#[test]
fn appended_garbage_with_a_newline_fails_verify_at_that_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = trail(&dir);
    write_events(&path, 2);
    let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(b"not json\n").unwrap();
    drop(f);
    assert_eq!(verify(&path).unwrap_err().line, 3);
}
