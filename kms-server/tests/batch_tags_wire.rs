//! Batch tagging on the wire: the flattened `ResourceId.N` / `Tag.N.Key` / `TagKey.N`
//! parameters the SDKs send, decoded into the engine's requests, and driven through a real
//! server.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod common;

use common::*;
use kms_core::api::{
    ListTagResourcesRequest, TagKeyValue, TagResourcesRequest, UntagResourcesRequest,
};
use kms_server::request::parse_form;

fn kv(key: &str, value: &str) -> TagKeyValue {
    TagKeyValue {
        key: key.into(),
        value: value.into(),
    }
}

#[test]
fn flattened_form_parameters_decode_into_batch_requests() {
    let params = parse_form(
        "QueryString",
        b"ResourceType=key&ResourceId.2=alias%2Ftwo&ResourceId.1=k-1\
          &Tag.2.Key=env&Tag.1.Value=core&Tag.1.Key=team&Tag.2.Value=prod",
    )
    .unwrap();
    let req: TagResourcesRequest = kms_core::api::decode_request(params.operation_json()).unwrap();
    assert_eq!(req.resource_type, "key");
    assert_eq!(
        req.resource_id,
        vec!["k-1".to_owned(), "alias/two".to_owned()]
    );
    assert_eq!(req.tag, vec![kv("team", "core"), kv("env", "prod")]);

    let params = parse_form(
        "QueryString",
        b"ResourceType=secret&ResourceId.1=db%2Fprod&TagKey.1=a&TagKey.2=b&All=false",
    )
    .unwrap();
    let req: UntagResourcesRequest =
        kms_core::api::decode_request(params.operation_json()).unwrap();
    assert_eq!(req.resource_id, vec!["db/prod".to_owned()]);
    assert_eq!(req.tag_key, vec!["a".to_owned(), "b".to_owned()]);
    assert_eq!(req.all, Some(false));

    let params = parse_form(
        "QueryString",
        b"Action=ListTagResources&ResourceType=key&Tag.1.Key=env&MaxResults=5&NextToken=abc",
    )
    .unwrap();
    let req: ListTagResourcesRequest =
        kms_core::api::decode_request(params.operation_json()).unwrap();
    assert_eq!(req.tag, vec![kv("env", "")]);
    assert_eq!(req.max_results, Some(5));
    assert_eq!(req.next_token.as_deref(), Some("abc"));
    assert!(req.resource_id.is_empty());
}

fn id_of(v: &serde_json::Value) -> String {
    v["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned()
}

fn listed(v: &serde_json::Value) -> Vec<(String, String, String)> {
    v["TagResources"]["TagResource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["ResourceId"].as_str().unwrap().to_owned(),
                t["TagKey"].as_str().unwrap().to_owned(),
                t["TagValue"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn batch_tagging_over_http_with_flattened_parameters() {
    let server = TestServer::start();
    let a = id_of(&call_ok(&server, "CreateKey", &[]));
    let b = id_of(&call_ok(&server, "CreateKey", &[]));
    call_ok(
        &server,
        "CreateAlias",
        &[("AliasName", "alias/bee"), ("KeyId", &b)],
    );
    let mut sorted = [a.clone(), b.clone()];
    sorted.sort();

    call_ok(
        &server,
        "TagResources",
        &[
            ("ResourceType", "key"),
            ("ResourceId.1", &a),
            ("ResourceId.2", "alias/bee"),
            ("Tag.1.Key", "team"),
            ("Tag.1.Value", "core"),
            ("Tag.2.Key", "env"),
            ("Tag.2.Value", "prod"),
        ],
    );
    let got = call_ok(
        &server,
        "ListTagResources",
        &[
            ("ResourceType", "key"),
            ("ResourceId.1", &a),
            ("ResourceId.2", &b),
        ],
    );
    let mut expected = Vec::new();
    for k in &sorted {
        expected.push((k.clone(), "env".to_owned(), "prod".to_owned()));
        expected.push((k.clone(), "team".to_owned(), "core".to_owned()));
    }
    assert_eq!(listed(&got), expected);
    assert!(got.get("NextToken").is_none(), "{got}");

    // Paging with NextToken over the wire.
    let first = call_ok(
        &server,
        "ListTagResources",
        &[
            ("ResourceType", "key"),
            ("Tag.1.Key", "team"),
            ("MaxResults", "1"),
        ],
    );
    let token = first["NextToken"].as_str().unwrap().to_owned();
    let second = call_ok(
        &server,
        "ListTagResources",
        &[
            ("ResourceType", "key"),
            ("Tag.1.Key", "team"),
            ("MaxResults", "1"),
            ("NextToken", &token),
        ],
    );
    assert!(second.get("NextToken").is_none());
    let both: Vec<_> = listed(&first).into_iter().chain(listed(&second)).collect();
    assert_eq!(
        both,
        sorted
            .iter()
            .map(|k| (k.clone(), "team".to_owned(), "core".to_owned()))
            .collect::<Vec<_>>()
    );

    // The batch error codes with their HTTP statuses; nothing changes.
    let r = V3Request::new(
        "TagResources",
        &[
            ("ResourceType", "key"),
            ("ResourceId.1", &a),
            ("Tag.1.Key", "x"),
            ("Tag.1.Value", "1"),
            ("Tag.2.Key", "x"),
            ("Tag.2.Value", "2"),
        ],
    )
    .send(&server);
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "Duplicate.TagKey")
    );
    let r = V3Request::new(
        "TagResources",
        &[
            ("ResourceType", "key"),
            ("ResourceId.1", &a),
            ("Tag.1.Key", "aliyun:reserved"),
            ("Tag.1.Value", "1"),
        ],
    )
    .send(&server);
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "InvalidParameter.TagKey")
    );
    let r = V3Request::new(
        "TagResources",
        &[
            ("ResourceType", "key"),
            ("ResourceId.1", &a),
            ("Tag.1.Key", "k"),
            ("Tag.1.Value", "bad value!"),
        ],
    )
    .send(&server);
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "InvalidParameter.TagValue")
    );
    let r = V3Request::new(
        "TagResources",
        &[
            ("ResourceType", "key"),
            ("ResourceId.1", &a),
            ("ResourceId.2", "alias/none"),
            ("Tag.1.Key", "new"),
            ("Tag.1.Value", "1"),
        ],
    )
    .send(&server);
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (404, "InvalidResourceId.NotFound")
    );
    let r = V3Request::new(
        "ListTagResources",
        &[
            ("ResourceType", "key"),
            ("ResourceId.1", &a),
            ("NextToken", "bogus"),
        ],
    )
    .send(&server);
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "InvalidParameter")
    );
    let unchanged = call_ok(
        &server,
        "ListTagResources",
        &[
            ("ResourceType", "key"),
            ("ResourceId.1", &a),
            ("ResourceId.2", &b),
        ],
    );
    assert_eq!(listed(&unchanged), expected);

    // UntagResources with TagKey.N, then with All.
    call_ok(
        &server,
        "UntagResources",
        &[
            ("ResourceType", "key"),
            ("ResourceId.1", &a),
            ("TagKey.1", "env"),
        ],
    );
    let after = call_ok(
        &server,
        "ListTagResources",
        &[("ResourceType", "key"), ("ResourceId.1", &a)],
    );
    assert_eq!(
        listed(&after),
        vec![(a.clone(), "team".into(), "core".into())]
    );
    call_ok(
        &server,
        "UntagResources",
        &[
            ("ResourceType", "key"),
            ("ResourceId.1", "alias/bee"),
            ("All", "true"),
        ],
    );
    let after = call_ok(
        &server,
        "ListTagResources",
        &[("ResourceType", "key"), ("ResourceId.1", &b)],
    );
    assert!(listed(&after).is_empty());

    // A secret by name.
    call_ok(
        &server,
        "CreateSecret",
        &[
            ("SecretName", "db/prod"),
            ("SecretData", "pw"),
            ("VersionId", "v1"),
            ("EncryptionKeyId", &a),
        ],
    );
    call_ok(
        &server,
        "TagResources",
        &[
            ("ResourceType", "secret"),
            ("ResourceId.1", "db/prod"),
            ("Tag.1.Key", "owner"),
            ("Tag.1.Value", "dba"),
        ],
    );
    let got = call_ok(
        &server,
        "ListTagResources",
        &[("ResourceType", "secret"), ("ResourceId.1", "db/prod")],
    );
    assert_eq!(
        listed(&got),
        vec![("db/prod".to_owned(), "owner".to_owned(), "dba".to_owned())]
    );
    assert_eq!(
        got["TagResources"]["TagResource"][0]["ResourceType"],
        "secret"
    );
}
