//! The server over real HTTP: signatures, request decoding, dispatch and error mapping.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod common;

use common::*;

// ---- signed requests that work -----------------------------------------------------------

#[test]
fn v3_request_drives_the_engine_end_to_end() {
    let server = TestServer::start();
    let key = call_ok(&server, "CreateKey", &[("Description", "a b*c~")]);
    let meta = &key["KeyMetadata"];
    assert_eq!(meta["KeyState"], "Enabled");
    assert_eq!(meta["Description"], "a b*c~");
    let id = meta["KeyId"].as_str().unwrap();
    assert_eq!(
        meta["Arn"],
        format!("acs:kms:cn-hangzhou:{ACCOUNT}:key/{id}").as_str()
    );

    let ctx = r#"{"tenant":"acme"}"#;
    let sealed = call_ok(
        &server,
        "Encrypt",
        &[
            ("KeyId", id),
            ("Plaintext", "héllo + wörld"),
            ("EncryptionContext", ctx),
        ],
    );
    let blob = sealed["CiphertextBlob"].as_str().unwrap();
    let opened = call_ok(
        &server,
        "Decrypt",
        &[("CiphertextBlob", blob), ("EncryptionContext", ctx)],
    );
    assert_eq!(opened["Plaintext"], "héllo + wörld");
    assert_eq!(opened["KeyId"], id);
    assert!(opened["RequestId"].as_str().unwrap().len() == 36);
}

#[test]
fn v3_parameters_in_a_form_body_are_covered_by_the_body_hash() {
    let server = TestServer::start();
    let id = call_ok(&server, "CreateKey", &[])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = V3Request::new("Encrypt", &[("KeyId", &id)])
        .form(&[("Plaintext", "from the body & more=stuff")])
        .send(&server);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let blob = r.json()["CiphertextBlob"].as_str().unwrap().to_owned();
    let opened = call_ok(&server, "Decrypt", &[("CiphertextBlob", &blob)]);
    assert_eq!(opened["Plaintext"], "from the body & more=stuff");
}

#[test]
fn v1_get_and_post_form_both_verify() {
    let server = TestServer::start();
    // GET with everything in the query string.
    let params = v1_params(
        "GET",
        "CreateKey",
        &[("Description", "v1 * key ~")],
        AK,
        SK,
        &now_iso(),
        &nonce(),
    );
    let target = format!("/?{}", query_string(&pairs(&params)));
    let r = send(server.addr, "GET", &target, &[], b"");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let id = r.json()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();

    // POST with everything in a form body.
    let params = v1_params(
        "POST",
        "DescribeKey",
        &[("KeyId", &id)],
        AK,
        SK,
        &now_iso(),
        &nonce(),
    );
    let body = query_string(&pairs(&params));
    let headers = vec![(
        "content-type".to_owned(),
        "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
    )];
    let r = send(server.addr, "POST", "/", &headers, body.as_bytes());
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["KeyMetadata"]["Description"], "v1 * key ~");
}

// ---- signature failures ------------------------------------------------------------------

#[test]
fn wrong_secret_is_signature_does_not_match() {
    let server = TestServer::start();
    let mut req = V3Request::new("ListKeys", &[]);
    req.secret = "not-the-secret".into();
    let r = req.send(&server);
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "SignatureDoesNotMatch")
    );

    let params = v1_params("GET", "ListKeys", &[], AK, "nope", &now_iso(), &nonce());
    let r = send(
        server.addr,
        "GET",
        &format!("/?{}", query_string(&pairs(&params))),
        &[],
        b"",
    );
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "SignatureDoesNotMatch")
    );
    // aliyunsdkcore splits the message at ':' and fails on a message without one.
    assert!(r.json()["Message"].as_str().unwrap().contains(':'));
}

#[test]
fn changed_parameter_after_signing_is_refused() {
    let server = TestServer::start();
    let params = v1_params(
        "GET",
        "ListKeys",
        &[("PageSize", "5")],
        AK,
        SK,
        &now_iso(),
        &nonce(),
    );
    let tampered: Vec<(String, String)> = params
        .into_iter()
        .map(|(k, v)| {
            if k == "PageSize" {
                (k, "6".into())
            } else {
                (k, v)
            }
        })
        .collect();
    let r = send(
        server.addr,
        "GET",
        &format!("/?{}", query_string(&pairs(&tampered))),
        &[],
        b"",
    );
    assert_eq!(r.error_code(), "SignatureDoesNotMatch");
}

#[test]
fn unknown_access_key_is_404() {
    let server = TestServer::start();
    let mut req = V3Request::new("ListKeys", &[]);
    req.access_key_id = "who".into();
    let r = req.send(&server);
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (404, "InvalidAccessKeyId.NotFound")
    );
    let params = v1_params("GET", "ListKeys", &[], "who", SK, &now_iso(), &nonce());
    let r = send(
        server.addr,
        "GET",
        &format!("/?{}", query_string(&pairs(&params))),
        &[],
        b"",
    );
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (404, "InvalidAccessKeyId.NotFound")
    );
}

#[test]
fn stale_or_future_timestamp_is_expired() {
    let server = TestServer::start();
    for offset in [-16 * 60, 16 * 60] {
        let mut req = V3Request::new("ListKeys", &[]);
        req.date = iso_at(offset);
        let r = req.send(&server);
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (400, "InvalidTimeStamp.Expired"),
            "offset {offset}"
        );
        let params = v1_params("GET", "ListKeys", &[], AK, SK, &iso_at(offset), &nonce());
        let r = send(
            server.addr,
            "GET",
            &format!("/?{}", query_string(&pairs(&params))),
            &[],
            b"",
        );
        assert_eq!(r.error_code(), "InvalidTimeStamp.Expired");
    }
    // Fourteen minutes off is still inside the window.
    let mut req = V3Request::new("ListKeys", &[]);
    req.date = iso_at(-14 * 60);
    assert_eq!(req.send(&server).status, 200);
    let mut req = V3Request::new("ListKeys", &[]);
    req.date = "2026-13-01T00:00:00Z".into();
    assert_eq!(req.send(&server).error_code(), "InvalidTimeStamp.Format");
}

#[test]
fn replayed_nonce_is_refused() {
    let server = TestServer::start();
    let req = V3Request::new("ListKeys", &[]);
    assert_eq!(req.send(&server).status, 200);
    let again = req.send(&server);
    assert_eq!(
        (again.status, again.error_code().as_str()),
        (400, "SignatureNonceUsed")
    );

    let params = v1_params("GET", "ListKeys", &[], AK, SK, &now_iso(), &nonce());
    let target = format!("/?{}", query_string(&pairs(&params)));
    assert_eq!(send(server.addr, "GET", &target, &[], b"").status, 200);
    let again = send(server.addr, "GET", &target, &[], b"");
    assert_eq!(again.error_code(), "SignatureNonceUsed");
}

#[test]
fn a_bad_signature_does_not_use_up_the_nonce() {
    let server = TestServer::start();
    let mut req = V3Request::new("ListKeys", &[]);
    req.secret = "wrong".into();
    assert_eq!(req.send(&server).error_code(), "SignatureDoesNotMatch");
    req.secret = SK.into();
    assert_eq!(req.send(&server).status, 200);
}

#[test]
fn tampered_body_differs_from_content_sha256() {
    let server = TestServer::start();
    let id = call_ok(&server, "CreateKey", &[])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let req = V3Request::new("Encrypt", &[("KeyId", &id)]).form(&[("Plaintext", "original")]);
    let headers = req.signed_headers(&server.host());
    let tampered = query_string(&[("Plaintext", "tampered")]);
    let r = send(
        server.addr,
        "POST",
        &req.target(),
        &headers,
        tampered.as_bytes(),
    );
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "SignatureDoesNotMatch")
    );
    assert!(r.json()["Message"]
        .as_str()
        .unwrap()
        .contains("x-acs-content-sha256"));

    // Signing with a claimed hash that is not the body's hash fails the same way.
    let mut req = V3Request::new("Encrypt", &[("KeyId", &id)]).form(&[("Plaintext", "x")]);
    req.content_sha256 = Some("00".repeat(32));
    assert_eq!(req.send(&server).error_code(), "SignatureDoesNotMatch");
}

#[test]
fn missing_or_malformed_signatures_are_incomplete() {
    let server = TestServer::start();
    // No signature at all.
    let r = send(
        server.addr,
        "POST",
        "/?Action=ListKeys&Version=2016-01-20",
        &[],
        b"",
    );
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "IncompleteSignature")
    );

    // Authorization without SignedHeaders.
    let req = V3Request::new("ListKeys", &[]);
    let mut headers = req.signed_headers(&server.host());
    for (n, v) in headers.iter_mut() {
        if n == "authorization" {
            *v = format!("ACS3-HMAC-SHA256 Credential={AK},Signature=00");
        }
    }
    let r = send(server.addr, "POST", "/", &headers, b"");
    assert_eq!(r.error_code(), "IncompleteSignature");

    // The nonce is sent but not signed: it could be swapped to replay the request.
    let mut req = V3Request::new("ListKeys", &[]);
    req.unsigned = vec!["x-acs-signature-nonce".into()];
    assert_eq!(req.send(&server).error_code(), "IncompleteSignature");

    // The action is sent but not signed: it could be rewritten.
    let mut req = V3Request::new("ListKeys", &[]);
    req.unsigned = vec!["x-acs-action".into()];
    assert_eq!(req.send(&server).error_code(), "IncompleteSignature");

    // V1 without SignatureNonce.
    let params: Vec<(String, String)> =
        v1_params("GET", "ListKeys", &[], AK, SK, &now_iso(), &nonce())
            .into_iter()
            .filter(|(k, _)| k != "SignatureNonce")
            .collect();
    let r = send(
        server.addr,
        "GET",
        &format!("/?{}", query_string(&pairs(&params))),
        &[],
        b"",
    );
    assert_eq!(r.error_code(), "IncompleteSignature");

    // An unsupported V1 method.
    let params: Vec<(String, String)> =
        v1_params("GET", "ListKeys", &[], AK, SK, &now_iso(), &nonce())
            .into_iter()
            .map(|(k, v)| {
                if k == "SignatureMethod" {
                    (k, "HMAC-MD5".into())
                } else {
                    (k, v)
                }
            })
            .collect();
    let r = send(
        server.addr,
        "GET",
        &format!("/?{}", query_string(&pairs(&params))),
        &[],
        b"",
    );
    assert_eq!(r.error_code(), "IncompleteSignature");
}

// ---- request decoding --------------------------------------------------------------------

#[test]
fn duplicate_parameters_are_refused_naming_them() {
    let server = TestServer::start();
    // Twice in the query (signed as sent).
    let mut req = V3Request::new("DescribeKey", &[("KeyId", "a"), ("KeyId", "b")]);
    req.query = vec![("KeyId".into(), "a".into()), ("KeyId".into(), "b".into())];
    let r = req.send(&server);
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "InvalidParameter")
    );
    assert!(r.json()["Message"].as_str().unwrap().contains("KeyId"));

    // Once in the query and once in the body.
    let r = V3Request::new("Encrypt", &[("KeyId", "a"), ("Plaintext", "x")])
        .form(&[("Plaintext", "y")])
        .send(&server);
    assert_eq!(r.error_code(), "InvalidParameter");
    assert!(r.json()["Message"].as_str().unwrap().contains("Plaintext"));
}

#[test]
fn malformed_percent_encoding_is_invalid_parameter() {
    let server = TestServer::start();
    for target in [
        "/?Action=ListKeys&Version=2016-01-20&PageSize=%zz",
        "/?Action=ListKeys&Version=2016-01-20&PageSize=%4",
        "/?Action=ListKeys&Version=2016-01-20&PageSize=%FF%FE",
    ] {
        let r = send(server.addr, "GET", target, &[], b"");
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (400, "InvalidParameter"),
            "{target}"
        );
        assert!(r.json()["Message"].as_str().unwrap().contains("PageSize"));
    }
    let r = send(server.addr, "GET", "/?%zz=1", &[], b"");
    assert_eq!(r.error_code(), "InvalidParameter");
}

#[test]
fn oversized_body_and_query_are_413() {
    let server = TestServer::start();
    let big = vec![b'a'; MAX_BODY + 1];
    let headers = vec![(
        "content-type".to_owned(),
        "application/x-www-form-urlencoded".to_owned(),
    )];
    let r = send(server.addr, "POST", "/", &headers, &big);
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (413, "RequestTooLarge")
    );

    let long = format!(
        "/?Action=ListKeys&Pad={}",
        "b".repeat(kms_server::server::MAX_QUERY_BYTES)
    );
    let r = send(server.addr, "GET", &long, &[], b"");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (413, "RequestTooLarge")
    );

    // Just under the limit is read and goes on to the next check.
    let mut body = b"Action=ListKeys&Pad=".to_vec();
    body.resize(MAX_BODY, b'c');
    let r = send(server.addr, "POST", "/", &headers, &body);
    assert_eq!(r.status, 400);
}

#[test]
fn unknown_and_missing_actions() {
    let server = TestServer::start();
    let r = V3Request::new("MakeCoffee", &[]).send(&server);
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (404, "InvalidAction.NotFound")
    );
    let r = send(server.addr, "GET", "/?Version=2016-01-20", &[], b"");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "MissingParameter")
    );
    assert!(r.json()["Message"].as_str().unwrap().contains("Action"));
    let r = send(
        server.addr,
        "GET",
        "/?Action=ListKeys&Version=2014-05-26",
        &[],
        b"",
    );
    assert_eq!((r.status, r.error_code().as_str()), (400, "InvalidVersion"));
    let r = send(server.addr, "GET", "/v2/keys", &[], b"");
    assert_eq!(r.status, 404);
    let r = send(server.addr, "DELETE", "/", &[], b"");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (405, "UnsupportedHTTPMethod")
    );
    // Header and parameter naming different actions.
    let r = V3Request::new("ListKeys", &[("Action", "DeleteAlias")]).send(&server);
    assert_eq!(r.error_code(), "InvalidParameter");
}

// ---- error mapping -----------------------------------------------------------------------

#[test]
fn engine_errors_keep_their_code_and_status() {
    let server = TestServer::start();
    let r = V3Request::new(
        "DescribeKey",
        &[("KeyId", "1234abcd-12ab-44cd-86ef-1234567890ab")],
    )
    .send(&server);
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (404, "Forbidden.KeyNotFound")
    );
    assert_eq!(
        r.header("content-type"),
        Some("application/json;charset=utf-8")
    );
    let body = r.json();
    assert_eq!(r.header("x-acs-request-id"), body["RequestId"].as_str());
    assert_eq!(body["HostId"], server.host().as_str());

    let r = V3Request::new("DescribeKey", &[]).send(&server);
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "MissingParameter")
    );

    let r = V3Request::new("ListKeys", &[("PageSize", "lots")]).send(&server);
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "InvalidParameter")
    );
    assert!(r.json()["Message"].as_str().unwrap().contains("PageSize"));

    let id = call_ok(&server, "CreateKey", &[])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    call_ok(&server, "DisableKey", &[("KeyId", &id)]);
    let r = V3Request::new("Encrypt", &[("KeyId", &id), ("Plaintext", "x")]).send(&server);
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (409, "Rejected.Disabled")
    );

    let r = V3Request::new(
        "Decrypt",
        &[
            ("CiphertextBlob", "AAAA"),
            ("EncryptionContext", "{not json"),
        ],
    )
    .send(&server);
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "InvalidParameter")
    );
    assert!(r.json()["Message"]
        .as_str()
        .unwrap()
        .contains("EncryptionContext"));
}

#[test]
fn another_accounts_principal_is_denied() {
    let server = TestServer::start();
    let id = call_ok(&server, "CreateKey", &[])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut req = V3Request::new("DescribeKey", &[("KeyId", &id)]);
    req.access_key_id = "ak-alice".into();
    req.secret = "sk-alice".into();
    let r = req.send(&server);
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (403, "Forbidden.NoPermission")
    );
}

#[test]
fn json_parameters_and_wrapped_lists_round_trip() {
    let server = TestServer::start();
    let tags = r#"[{"TagKey":"team","TagValue":"a"}]"#;
    let id = call_ok(&server, "CreateKey", &[("Tags", tags)])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    call_ok(
        &server,
        "CreateAlias",
        &[("AliasName", "alias/http-test"), ("KeyId", &id)],
    );
    let aliases = call_ok(&server, "ListAliasesByKeyId", &[("KeyId", &id)]);
    assert_eq!(
        aliases["Aliases"]["Alias"][0]["AliasName"],
        "alias/http-test"
    );
    let listed = call_ok(
        &server,
        "ListKeys",
        &[("Filters", r#"[{"Key":"KeyState","Values":["Enabled"]}]"#)],
    );
    assert_eq!(listed["Keys"]["Key"][0]["KeyId"], id.as_str());
    let t = call_ok(&server, "ListResourceTags", &[("KeyId", "alias/http-test")]);
    assert_eq!(t["Tags"]["Tag"][0]["TagValue"], "a");
    let dk = call_ok(&server, "GenerateDataKey", &[("KeyId", &id)]);
    let opened = call_ok(
        &server,
        "Decrypt",
        &[("CiphertextBlob", dk["CiphertextBlob"].as_str().unwrap())],
    );
    assert_eq!(opened["Plaintext"], dk["Plaintext"]);
    let regions = call_ok(&server, "DescribeRegions", &[]);
    assert_eq!(regions["Regions"]["Region"][0]["RegionId"], "cn-hangzhou");
}

#[test]
fn an_answered_request_survives_the_server() {
    let mut server = TestServer::start();
    let id = call_ok(&server, "CreateKey", &[("Description", "durable")])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    server.stop();
    let kms = kms_server::open_engine(&kms_server::config::EngineSettings {
        data_dir: server.dir.path().join("data"),
        account_id: ACCOUNT.into(),
        ..Default::default()
    })
    .unwrap();
    let got = kms
        .describe_key(
            &kms_core::Caller::account_root(ACCOUNT),
            kms_core::api::KeyIdRequest { key_id: id },
        )
        .unwrap();
    assert_eq!(got.key_metadata.description, "durable");
}
