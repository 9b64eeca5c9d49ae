//! Malformed policy documents: each is `InvalidParameter` naming `Policy`, the statement and the
//! field, both from `PolicyDocument::parse` and through CreateKey / SetKeyPolicy, which then
//! store nothing.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use common::*;
use kms_policy::PolicyDocument;
use serde_json::{json, Value};

fn good() -> Value {
    json!({"Effect": "Allow", "Principal": {"RAM": ["acs:ram::1234:*"]},
           "Action": ["kms:*"], "Resource": ["*"]})
}

/// A document whose Statement[1] is `good()` changed by `edit`.
fn second_statement(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut bad = good();
    edit(bad.as_object_mut().unwrap());
    json!({"Version": "1", "Statement": [good(), bad]}).to_string()
}

fn set(field: &str, value: Value) -> impl FnOnce(&mut serde_json::Map<String, Value>) {
    let field = field.to_owned();
    move |m| {
        m.insert(field, value);
    }
}

fn remove(field: &str) -> impl FnOnce(&mut serde_json::Map<String, Value>) {
    let field = field.to_owned();
    move |m| {
        m.remove(&field);
    }
}

/// Every malformed document with the fragments its error message must contain.
fn cases() -> Vec<(&'static str, String, Vec<&'static str>)> {
    let too_many: Vec<Value> = (0..101).map(|_| good()).collect();
    let oversized = {
        let mut s = good();
        s["Sid"] = json!("x".repeat(32768));
        json!({"Version": "1", "Statement": [s]}).to_string()
    };
    vec![
        ("not JSON", "{\"Version\": \"1\", ".to_owned(), vec!["JSON"]),
        ("not an object", "[1, 2, 3]".to_owned(), vec!["object"]),
        ("a JSON string", "\"Version\"".to_owned(), vec!["object"]),
        (
            "unknown document field",
            json!({"Version": "1", "Statement": [good()], "Id": "x"}).to_string(),
            vec!["Id"],
        ),
        (
            "Version missing",
            json!({"Statement": [good()]}).to_string(),
            vec!["Version", "required"],
        ),
        (
            "Version 2",
            json!({"Version": "2", "Statement": [good()]}).to_string(),
            vec!["Version", "\"1\""],
        ),
        (
            "Version a number",
            json!({"Version": 1, "Statement": [good()]}).to_string(),
            vec!["Version"],
        ),
        (
            "Statement missing",
            json!({"Version": "1"}).to_string(),
            vec!["Statement", "required"],
        ),
        (
            "Statement empty",
            json!({"Version": "1", "Statement": []}).to_string(),
            vec!["Statement", "1 to 100"],
        ),
        (
            "Statement not a list",
            json!({"Version": "1", "Statement": good()}).to_string(),
            vec!["Statement", "list"],
        ),
        (
            "101 statements",
            json!({"Version": "1", "Statement": too_many}).to_string(),
            vec!["Statement", "100"],
        ),
        (
            "statement not an object",
            json!({"Version": "1", "Statement": [good(), "Allow"]}).to_string(),
            vec!["Statement[1]", "object"],
        ),
        (
            "Effect missing",
            second_statement(remove("Effect")),
            vec!["Statement[1].Effect", "required"],
        ),
        (
            "Effect Maybe",
            second_statement(set("Effect", json!("Maybe"))),
            vec!["Statement[1].Effect", "Allow or Deny"],
        ),
        (
            "Effect lower-case",
            second_statement(set("Effect", json!("allow"))),
            vec!["Statement[1].Effect"],
        ),
        (
            "unknown statement field",
            second_statement(set("NotAction", json!(["kms:Encrypt"]))),
            vec!["Statement[1].NotAction", "not a statement field"],
        ),
        (
            "Sid not a string",
            second_statement(set("Sid", json!(7))),
            vec!["Statement[1].Sid"],
        ),
        (
            "Action not kms:",
            second_statement(set("Action", json!(["ecs:RunInstances"]))),
            vec!["Statement[1].Action[0]", "ecs:RunInstances", "kms:"],
        ),
        (
            "unknown action",
            second_statement(set("Action", json!(["kms:Encrypt", "kms:Fly"]))),
            vec!["Statement[1].Action[1]", "kms:Fly", "not a known action"],
        ),
        (
            "empty action list",
            second_statement(set("Action", json!([]))),
            vec!["Statement[1].Action", "empty"],
        ),
        (
            "Action missing",
            second_statement(remove("Action")),
            vec!["Statement[1].Action", "required"],
        ),
        (
            "Action not a string",
            second_statement(set("Action", json!([42]))),
            vec!["Statement[1].Action[0]", "string"],
        ),
        (
            "Action an object",
            second_statement(set("Action", json!({"kms": "Encrypt"}))),
            vec!["Statement[1].Action"],
        ),
        (
            "Principal of a non-RAM kind",
            second_statement(set("Principal", json!({"Service": ["oss.aliyuncs.com"]}))),
            vec!["Statement[1].Principal.Service", "RAM"],
        ),
        (
            "Principal missing",
            second_statement(remove("Principal")),
            vec!["Statement[1].Principal", "required"],
        ),
        (
            "Principal an empty object",
            second_statement(set("Principal", json!({}))),
            vec!["Statement[1].Principal"],
        ),
        (
            "Principal an empty RAM list",
            second_statement(set("Principal", json!({"RAM": []}))),
            vec!["Statement[1].Principal.RAM", "empty"],
        ),
        (
            "Principal a bare string other than *",
            second_statement(set("Principal", json!("acs:ram::1234:root"))),
            vec!["Statement[1].Principal"],
        ),
        (
            "Principal ARN without the double colon",
            second_statement(set(
                "Principal",
                json!({"RAM": ["acs:ram:1234:user/alice"]}),
            )),
            vec!["Statement[1].Principal[0]", "acs:ram:1234:user/alice"],
        ),
        (
            "Principal ARN with a malformed account",
            second_statement(set(
                "Principal",
                json!({"RAM": ["acs:ram::12ab:user/alice"]}),
            )),
            vec!["Statement[1].Principal[0]", "account"],
        ),
        (
            "Principal ARN of a group",
            second_statement(set(
                "Principal",
                json!({"RAM": ["acs:ram::1234:root", "acs:ram::1234:group/dev"]}),
            )),
            vec!["Statement[1].Principal[1]", "group/dev"],
        ),
        (
            "Principal ARN with an empty user name",
            second_statement(set("Principal", json!({"RAM": ["acs:ram::1234:user/"]}))),
            vec!["Statement[1].Principal[0]"],
        ),
        (
            "Principal ARN without a principal",
            second_statement(set("Principal", json!({"RAM": ["acs:ram::1234"]}))),
            vec!["Statement[1].Principal[0]"],
        ),
        (
            "Resource not an ARN",
            second_statement(set("Resource", json!(["key/1234"]))),
            vec!["Statement[1].Resource[0]", "key/1234"],
        ),
        (
            "Resource missing",
            second_statement(remove("Resource")),
            vec!["Statement[1].Resource", "required"],
        ),
        (
            "Condition not an object",
            second_statement(set("Condition", json!(["StringEquals"]))),
            vec!["Statement[1].Condition"],
        ),
        (
            "unknown condition operator",
            second_statement(set(
                "Condition",
                json!({"NumericEquals": {"kms:ViaService": ["oss"]}}),
            )),
            vec!["Statement[1].Condition.NumericEquals", "operator"],
        ),
        (
            "unknown condition key",
            second_statement(set(
                "Condition",
                json!({"StringEquals": {"kms:EncryptionContext": ["a"]}}),
            )),
            vec![
                "Statement[1].Condition.StringEquals.kms:EncryptionContext",
                "condition key",
            ],
        ),
        (
            "condition body not an object",
            second_statement(set("Condition", json!({"StringEquals": "oss"}))),
            vec!["Statement[1].Condition.StringEquals"],
        ),
        (
            "condition with no values",
            second_statement(set(
                "Condition",
                json!({"StringEquals": {"kms:ViaService": []}}),
            )),
            vec![
                "Statement[1].Condition.StringEquals.kms:ViaService",
                "empty",
            ],
        ),
        ("over 32768 bytes", oversized, vec!["32768"]),
    ]
}

#[test]
fn parse_rejects_each_malformed_document_naming_policy_statement_and_field() {
    for (name, text, fragments) in cases() {
        let r = PolicyDocument::parse(&text);
        assert!(r.is_err(), "{name}: accepted");
        let e = r.unwrap_err();
        assert_eq!(e.code(), "InvalidParameter", "{name}: {e}");
        let message = e.to_string();
        assert!(message.contains("Policy"), "{name}: {message}");
        for f in &fragments {
            assert!(message.contains(f), "{name}: {message:?} lacks {f:?}");
        }
    }
}

#[test]
fn create_key_rejects_each_malformed_policy_and_creates_no_key() {
    let env = Env::new();
    for (name, text, fragments) in cases() {
        let r = env.try_key(&root(), Some(&text), None);
        println!("{name}");
        assert_invalid_policy(r, &fragments);
        assert_eq!(env.key_count(), 0, "{name}: a key was stored");
    }
}

#[test]
fn set_key_policy_rejects_each_malformed_policy_and_keeps_the_old_one() {
    let env = Env::new();
    let policy = kms_policy::PolicyBuilder::new(OWNER)
        .user("acs:ram::1234:user/alice")
        .build();
    let key = env.key(&root(), Some(&policy));
    let bare = env.key(&root(), None);
    let default_before = get_policy(&env.kms, &root(), &bare).unwrap();
    for (name, text, fragments) in cases() {
        println!("{name}");
        assert_invalid_policy(set_policy(&env.kms, &root(), &key, &text), &fragments);
        assert_eq!(
            get_policy(&env.kms, &root(), &key).unwrap(),
            policy,
            "{name}"
        );
        assert_invalid_policy(set_policy(&env.kms, &root(), &bare, &text), &fragments);
        assert_eq!(
            get_policy(&env.kms, &root(), &bare).unwrap(),
            default_before,
            "{name}"
        );
    }
    // Nothing changed for the callers either: alice still encrypts under the kept policy.
    encrypt(&env.kms, &alice(), &key).unwrap();
    // And a restarted engine reads the same stored policy.
    assert_eq!(get_policy(&env.reopen(), &root(), &key).unwrap(), policy);
}

#[test]
fn a_document_one_byte_over_the_limit_is_refused_and_one_at_the_limit_is_stored() {
    let env = Env::new();
    let base = json!({"Version": "1", "Statement": [{"Sid": "", "Effect": "Allow",
        "Principal": {"RAM": ["acs:ram::1234:*"]}, "Action": ["kms:*"], "Resource": ["*"]}]})
    .to_string();
    let at_limit = base.replace(
        r#""Sid":"""#,
        &format!(r#""Sid":"{}""#, "x".repeat(32768 - base.len())),
    );
    assert_eq!(at_limit.len(), 32768);
    let over = at_limit.replace(r#""Sid":""#, r#""Sid":"y"#);
    assert_eq!(over.len(), 32769);
    assert_invalid_policy(env.try_key(&root(), Some(&over), None), &["32768"]);
    assert_eq!(env.key_count(), 0);
    let key = env.key(&root(), Some(&at_limit));
    assert_eq!(get_policy(&env.kms, &root(), &key).unwrap(), at_limit);
    assert_invalid_policy(set_policy(&env.kms, &root(), &key, &over), &["32768"]);
    assert_eq!(get_policy(&env.kms, &root(), &key).unwrap(), at_limit);
}
