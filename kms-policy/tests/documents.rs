//! Policy documents on their own: what `PolicyDocument::parse` accepts and what `evaluate`
//! decides (wildcards, case-insensitive actions, explicit Deny over Allow over default deny,
//! conditions).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use kms_core::Caller;
use kms_policy::document::{RequestContext, MAX_POLICY_BYTES, MAX_STATEMENTS};
use kms_policy::pattern::Pattern;
use kms_policy::{Effect, PolicyBuilder, PolicyDocument, Verdict};
use serde_json::json;

const KEY_ARN: &str = "acs:kms:cn-hangzhou:1234:key/0b8d1f6e-3c2a-4f1e-9a7b-2c4d6e8f0a1b";
const OTHER_KEY_ARN: &str = "acs:kms:cn-hangzhou:1234:key/11111111-2222-4333-8444-555555555555";

fn alice() -> Caller {
    Caller::ram_user("1234", "alice")
}
fn bob() -> Caller {
    Caller::ram_user("1234", "bob")
}
fn app() -> Caller {
    Caller::ram_role("1234", "app")
}
fn root() -> Caller {
    Caller::account_root("1234")
}
fn partner() -> Caller {
    Caller::ram_user("5678", "partner")
}
fn via(caller: Caller, service: &str) -> Caller {
    Caller {
        via_service: Some(service.into()),
        ..caller
    }
}

fn doc(statements: serde_json::Value) -> PolicyDocument {
    PolicyDocument::parse(&json!({"Version": "1", "Statement": statements}).to_string()).unwrap()
}

fn allow(principals: &[&str], actions: &[&str]) -> serde_json::Value {
    json!({"Effect": "Allow", "Principal": {"RAM": principals}, "Action": actions, "Resource": ["*"]})
}

fn deny(principals: &[&str], actions: &[&str]) -> serde_json::Value {
    json!({"Effect": "Deny", "Principal": {"RAM": principals}, "Action": actions, "Resource": ["*"]})
}

fn verdict_on(d: &PolicyDocument, caller: &Caller, action: &str, resource: &str) -> Verdict {
    let arn = caller.arn();
    d.evaluate(&RequestContext {
        caller,
        principal_arn: &arn,
        action,
        resource,
    })
}

fn verdict(d: &PolicyDocument, caller: &Caller, action: &str) -> Verdict {
    verdict_on(d, caller, action, KEY_ARN)
}

#[test]
fn a_full_document_parses_into_its_statements() {
    let d = PolicyDocument::parse(
        r#"{"Version":"1","Statement":[
            {"Sid":"s0","Effect":"Allow","Principal":{"RAM":["acs:ram::1234:user/alice","acs:ram::1234:role/app"]},
             "Action":["kms:Encrypt","kms:List*"],"Resource":["*"],
             "Condition":{"StringEquals":{"kms:ViaService":["oss","ecs"]}}},
            {"Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"acs:kms:*:1234:key/*"}]}"#,
    )
    .unwrap();
    assert_eq!(d.statements.len(), 2);
    let s0 = &d.statements[0];
    assert_eq!(s0.sid.as_deref(), Some("s0"));
    assert_eq!(s0.effect, Effect::Allow);
    assert_eq!(s0.principals.len(), 2);
    assert_eq!(s0.actions.len(), 2);
    assert_eq!(s0.conditions.len(), 1);
    assert_eq!(s0.conditions[0].values.len(), 2);
    let s1 = &d.statements[1];
    assert_eq!(s1.sid, None);
    assert_eq!(s1.effect, Effect::Deny);
    assert_eq!(s1.principals, vec![Pattern::new("*")]);
    assert!(s1.conditions.is_empty());
}

#[test]
fn single_strings_are_accepted_where_lists_are() {
    let d = PolicyDocument::parse(
        r#"{"Version":"1","Statement":[{"Effect":"Allow","Principal":{"RAM":"acs:ram::1234:root"},
            "Action":"kms:Encrypt","Resource":"*"}]}"#,
    )
    .unwrap();
    assert_eq!(verdict(&d, &root(), "kms:Encrypt"), Verdict::Allow);
}

#[test]
fn nothing_matches_means_default_deny() {
    let d = doc(json!([allow(
        &["acs:ram::1234:user/alice"],
        &["kms:Encrypt"]
    )]));
    assert_eq!(verdict(&d, &alice(), "kms:Encrypt"), Verdict::Allow);
    assert_eq!(verdict(&d, &alice(), "kms:Decrypt"), Verdict::NoMatch);
    assert_eq!(verdict(&d, &bob(), "kms:Encrypt"), Verdict::NoMatch);
    assert_eq!(verdict(&d, &root(), "kms:Encrypt"), Verdict::NoMatch);
    assert_eq!(verdict(&d, &partner(), "kms:Encrypt"), Verdict::NoMatch);
}

#[test]
fn list_wildcard_covers_every_list_action_and_nothing_else() {
    let d = doc(json!([allow(
        &["acs:ram::1234:user/alice"],
        &["kms:List*"]
    )]));
    for a in [
        "kms:ListKeys",
        "kms:ListKeyVersions",
        "kms:ListAliases",
        "kms:ListAliasesByKeyId",
        "kms:ListResourceTags",
    ] {
        assert_eq!(verdict(&d, &alice(), a), Verdict::Allow, "{a}");
    }
    for a in [
        "kms:DescribeKey",
        "kms:Encrypt",
        "kms:DisableKey",
        "kms:GetKeyPolicy",
    ] {
        assert_eq!(verdict(&d, &alice(), a), Verdict::NoMatch, "{a}");
    }
}

#[test]
fn describe_wildcard_covers_describe_actions_only() {
    let d = doc(json!([allow(
        &["acs:ram::1234:user/alice"],
        &["kms:Describe*"]
    )]));
    assert_eq!(verdict(&d, &alice(), "kms:DescribeKey"), Verdict::Allow);
    assert_eq!(
        verdict(&d, &alice(), "kms:DescribeKeyVersion"),
        Verdict::Allow
    );
    assert_eq!(verdict(&d, &alice(), "kms:ListKeys"), Verdict::NoMatch);
    assert_eq!(verdict(&d, &alice(), "kms:Decrypt"), Verdict::NoMatch);
}

#[test]
fn kms_star_and_bare_star_cover_every_known_action() {
    for pattern in ["kms:*", "*"] {
        let d = doc(json!([allow(&["acs:ram::1234:user/alice"], &[pattern])]));
        for a in kms_policy::actions::ACTIONS {
            assert_eq!(verdict(&d, &alice(), a), Verdict::Allow, "{pattern} {a}");
        }
    }
}

#[test]
fn actions_match_case_insensitively_in_both_directions() {
    let d = doc(json!([allow(
        &["acs:ram::1234:user/alice"],
        &["KMS:ENCRYPT", "kms:decrypt", "Kms:List*"]
    )]));
    assert_eq!(verdict(&d, &alice(), "kms:Encrypt"), Verdict::Allow);
    assert_eq!(verdict(&d, &alice(), "kms:Decrypt"), Verdict::Allow);
    assert_eq!(verdict(&d, &alice(), "kms:ListKeys"), Verdict::Allow);
    assert_eq!(verdict(&d, &alice(), "KMS:LISTKEYS"), Verdict::Allow);
    assert_eq!(
        verdict(&d, &alice(), "kms:GenerateDataKey"),
        Verdict::NoMatch
    );
}

#[test]
fn principals_match_case_sensitively() {
    let d = doc(json!([allow(&["acs:ram::1234:user/Alice"], &["kms:*"])]));
    assert_eq!(verdict(&d, &alice(), "kms:Encrypt"), Verdict::NoMatch);
    let alice_upper = Caller::ram_user("1234", "Alice");
    assert_eq!(verdict(&d, &alice_upper, "kms:Encrypt"), Verdict::Allow);
}

#[test]
fn account_wildcard_principal_covers_root_users_and_roles_of_that_account_only() {
    let d = doc(json!([allow(&["acs:ram::1234:*"], &["kms:*"])]));
    for c in [root(), alice(), bob(), app()] {
        assert_eq!(verdict(&d, &c, "kms:Encrypt"), Verdict::Allow, "{c}");
    }
    assert_eq!(verdict(&d, &partner(), "kms:Encrypt"), Verdict::NoMatch);
    // A longer account id that starts with the same digits is another account.
    let other = Caller::ram_user("12345", "alice");
    assert_eq!(verdict(&d, &other, "kms:Encrypt"), Verdict::NoMatch);
}

#[test]
fn user_wildcard_principal_covers_users_but_not_roles_or_root() {
    let d = doc(json!([allow(&["acs:ram::1234:user/*"], &["kms:*"])]));
    assert_eq!(verdict(&d, &alice(), "kms:Encrypt"), Verdict::Allow);
    assert_eq!(verdict(&d, &bob(), "kms:Encrypt"), Verdict::Allow);
    assert_eq!(verdict(&d, &app(), "kms:Encrypt"), Verdict::NoMatch);
    assert_eq!(verdict(&d, &root(), "kms:Encrypt"), Verdict::NoMatch);
}

#[test]
fn star_principal_covers_every_account() {
    for principal in [json!("*"), json!({"RAM": ["*"]})] {
        let d = doc(
            json!([{"Effect": "Allow", "Principal": principal, "Action": ["kms:Encrypt"], "Resource": ["*"]}]),
        );
        for c in [root(), alice(), partner(), Caller::account_root("42")] {
            assert_eq!(verdict(&d, &c, "kms:Encrypt"), Verdict::Allow, "{c}");
        }
    }
}

#[test]
fn root_principal_is_the_root_identity_only() {
    let d = doc(json!([allow(&["acs:ram::1234:root"], &["kms:*"])]));
    assert_eq!(verdict(&d, &root(), "kms:DisableKey"), Verdict::Allow);
    assert_eq!(verdict(&d, &alice(), "kms:DisableKey"), Verdict::NoMatch);
}

#[test]
fn resource_patterns_select_keys() {
    let d = doc(
        json!([{"Effect": "Allow", "Principal": {"RAM": ["acs:ram::1234:*"]},
        "Action": ["kms:*"], "Resource": [KEY_ARN]}]),
    );
    assert_eq!(
        verdict_on(&d, &alice(), "kms:Encrypt", KEY_ARN),
        Verdict::Allow
    );
    assert_eq!(
        verdict_on(&d, &alice(), "kms:Encrypt", OTHER_KEY_ARN),
        Verdict::NoMatch
    );
    let any_key = doc(
        json!([{"Effect": "Allow", "Principal": {"RAM": ["acs:ram::1234:*"]},
        "Action": ["kms:*"], "Resource": ["acs:kms:*:1234:key/*"]}]),
    );
    assert_eq!(
        verdict_on(&any_key, &alice(), "kms:Encrypt", OTHER_KEY_ARN),
        Verdict::Allow
    );
    assert_eq!(
        verdict_on(
            &any_key,
            &alice(),
            "kms:Encrypt",
            "acs:kms:cn-hangzhou:5678:key/x"
        ),
        Verdict::NoMatch
    );
}

#[test]
fn explicit_deny_beats_an_allow_of_everything() {
    let d = doc(json!([
        allow(&["acs:ram::1234:*"], &["kms:*"]),
        deny(&["acs:ram::1234:user/alice"], &["kms:Decrypt"]),
    ]));
    assert_eq!(verdict(&d, &alice(), "kms:Decrypt"), Verdict::ExplicitDeny);
    assert_eq!(verdict(&d, &alice(), "kms:Encrypt"), Verdict::Allow);
    assert_eq!(verdict(&d, &bob(), "kms:Decrypt"), Verdict::Allow);
    assert_eq!(verdict(&d, &root(), "kms:Decrypt"), Verdict::Allow);
}

#[test]
fn explicit_deny_wins_whatever_the_statement_order() {
    let allow_all = allow(&["*"], &["kms:*"]);
    let deny_partner = deny(&["acs:ram::5678:*"], &["kms:*"]);
    for statements in [
        json!([allow_all.clone(), deny_partner.clone()]),
        json!([deny_partner.clone(), allow_all.clone()]),
    ] {
        let d = doc(statements);
        assert_eq!(
            verdict(&d, &partner(), "kms:Encrypt"),
            Verdict::ExplicitDeny
        );
        assert_eq!(verdict(&d, &alice(), "kms:Encrypt"), Verdict::Allow);
    }
}

#[test]
fn a_deny_that_matches_nothing_leaves_the_allow_standing() {
    let d = doc(json!([
        allow(&["acs:ram::1234:user/alice"], &["kms:Encrypt"]),
        deny(&["acs:ram::1234:user/alice"], &["kms:Decrypt"]),
    ]));
    assert_eq!(verdict(&d, &alice(), "kms:Encrypt"), Verdict::Allow);
    assert_eq!(verdict(&d, &alice(), "kms:Decrypt"), Verdict::ExplicitDeny);
    assert_eq!(verdict(&d, &bob(), "kms:Decrypt"), Verdict::NoMatch);
}

fn with_condition(condition: serde_json::Value) -> PolicyDocument {
    doc(
        json!([{"Effect": "Allow", "Principal": {"RAM": ["acs:ram::1234:*"]},
        "Action": ["kms:*"], "Resource": ["*"], "Condition": condition}]),
    )
}

#[test]
fn string_equals_via_service_allows_only_calls_through_that_service() {
    let d = with_condition(json!({"StringEquals": {"kms:ViaService": ["oss"]}}));
    assert_eq!(
        verdict(&d, &via(alice(), "oss"), "kms:Encrypt"),
        Verdict::Allow
    );
    assert_eq!(
        verdict(&d, &via(alice(), "ecs"), "kms:Encrypt"),
        Verdict::NoMatch
    );
    assert_eq!(verdict(&d, &alice(), "kms:Encrypt"), Verdict::NoMatch);
    // Values compare exactly: no wildcard, no case folding.
    assert_eq!(
        verdict(&d, &via(alice(), "OSS"), "kms:Encrypt"),
        Verdict::NoMatch
    );
    let star = with_condition(json!({"StringEquals": {"kms:ViaService": "o*"}}));
    assert_eq!(
        verdict(&star, &via(alice(), "oss"), "kms:Encrypt"),
        Verdict::NoMatch
    );
}

#[test]
fn string_not_equals_via_service_excludes_that_service() {
    let d = with_condition(json!({"StringNotEquals": {"kms:ViaService": ["oss"]}}));
    assert_eq!(
        verdict(&d, &via(alice(), "oss"), "kms:Encrypt"),
        Verdict::NoMatch
    );
    assert_eq!(
        verdict(&d, &via(alice(), "ecs"), "kms:Encrypt"),
        Verdict::Allow
    );
    // No service at all is "not equal to oss".
    assert_eq!(verdict(&d, &alice(), "kms:Encrypt"), Verdict::Allow);
}

#[test]
fn string_like_via_service_matches_wildcards() {
    let d = with_condition(json!({"StringLike": {"kms:ViaService": ["o*", "rd?"]}}));
    assert_eq!(
        verdict(&d, &via(alice(), "oss"), "kms:Encrypt"),
        Verdict::Allow
    );
    assert_eq!(
        verdict(&d, &via(alice(), "rds"), "kms:Encrypt"),
        Verdict::Allow
    );
    assert_eq!(
        verdict(&d, &via(alice(), "rdsx"), "kms:Encrypt"),
        Verdict::NoMatch
    );
    assert_eq!(
        verdict(&d, &via(alice(), "ecs"), "kms:Encrypt"),
        Verdict::NoMatch
    );
    assert_eq!(verdict(&d, &alice(), "kms:Encrypt"), Verdict::NoMatch);
}

#[test]
fn string_not_like_via_service_excludes_matching_services() {
    let d = with_condition(json!({"StringNotLike": {"kms:ViaService": ["o*"]}}));
    assert_eq!(
        verdict(&d, &via(alice(), "oss"), "kms:Encrypt"),
        Verdict::NoMatch
    );
    assert_eq!(
        verdict(&d, &via(alice(), "ecs"), "kms:Encrypt"),
        Verdict::Allow
    );
    assert_eq!(verdict(&d, &alice(), "kms:Encrypt"), Verdict::Allow);
}

#[test]
fn principal_account_and_arn_conditions_test_the_caller() {
    let d = doc(
        json!([{"Effect": "Allow", "Principal": "*", "Action": ["kms:*"], "Resource": ["*"],
        "Condition": {"StringEquals": {"acs:PrincipalAccount": "5678"}}}]),
    );
    assert_eq!(verdict(&d, &partner(), "kms:Encrypt"), Verdict::Allow);
    assert_eq!(verdict(&d, &alice(), "kms:Encrypt"), Verdict::NoMatch);
    let d = doc(
        json!([{"Effect": "Allow", "Principal": "*", "Action": ["kms:*"], "Resource": ["*"],
        "Condition": {"StringLike": {"acs:PrincipalARN": "acs:ram::1234:role/*"}}}]),
    );
    assert_eq!(verdict(&d, &app(), "kms:Encrypt"), Verdict::Allow);
    assert_eq!(verdict(&d, &alice(), "kms:Encrypt"), Verdict::NoMatch);
}

#[test]
fn condition_keys_are_case_insensitive() {
    let d = with_condition(json!({"StringEquals": {"KMS:VIASERVICE": ["oss"]}}));
    assert_eq!(
        verdict(&d, &via(alice(), "oss"), "kms:Encrypt"),
        Verdict::Allow
    );
    assert_eq!(verdict(&d, &alice(), "kms:Encrypt"), Verdict::NoMatch);
}

#[test]
fn every_condition_of_a_statement_must_hold() {
    let d = with_condition(json!({
        "StringEquals": {"kms:ViaService": ["oss"]},
        "StringLike": {"acs:PrincipalARN": ["acs:ram::1234:user/*"]},
    }));
    assert_eq!(
        verdict(&d, &via(alice(), "oss"), "kms:Encrypt"),
        Verdict::Allow
    );
    assert_eq!(
        verdict(&d, &via(app(), "oss"), "kms:Encrypt"),
        Verdict::NoMatch
    );
    assert_eq!(verdict(&d, &alice(), "kms:Encrypt"), Verdict::NoMatch);
}

#[test]
fn a_conditional_deny_applies_only_when_its_condition_holds() {
    let d = doc(json!([
        allow(&["acs:ram::1234:*"], &["kms:*"]),
        {"Effect": "Deny", "Principal": {"RAM": ["acs:ram::1234:*"]}, "Action": ["kms:Decrypt"],
         "Resource": ["*"], "Condition": {"StringNotEquals": {"kms:ViaService": "oss"}}},
    ]));
    assert_eq!(verdict(&d, &alice(), "kms:Decrypt"), Verdict::ExplicitDeny);
    assert_eq!(
        verdict(&d, &via(alice(), "ecs"), "kms:Decrypt"),
        Verdict::ExplicitDeny
    );
    assert_eq!(
        verdict(&d, &via(alice(), "oss"), "kms:Decrypt"),
        Verdict::Allow
    );
    assert_eq!(verdict(&d, &alice(), "kms:Encrypt"), Verdict::Allow);
}

#[test]
fn a_document_of_exactly_the_size_limit_parses() {
    let base = json!({"Version": "1", "Statement": [{"Sid": "", "Effect": "Allow",
        "Principal": {"RAM": ["acs:ram::1234:*"]}, "Action": ["kms:*"], "Resource": ["*"]}]})
    .to_string();
    let pad = "x".repeat(MAX_POLICY_BYTES - base.len());
    let text = base.replace(r#""Sid":"""#, &format!(r#""Sid":"{pad}""#));
    assert_eq!(text.len(), MAX_POLICY_BYTES);
    assert_eq!(MAX_POLICY_BYTES, 32768);
    PolicyDocument::parse(&text).unwrap();
}

#[test]
fn a_document_of_exactly_the_statement_limit_parses() {
    let statements: Vec<_> = (0..MAX_STATEMENTS)
        .map(|_| allow(&["acs:ram::1234:*"], &["kms:Encrypt"]))
        .collect();
    assert_eq!(MAX_STATEMENTS, 100);
    assert_eq!(doc(json!(statements)).statements.len(), 100);
}

#[test]
fn wildcard_actions_need_not_name_known_actions_but_literal_ones_must() {
    // A wildcard is a pattern over actions, so it is accepted even when it matches none yet.
    let d = doc(json!([allow(&["acs:ram::1234:*"], &["kms:Future*"])]));
    assert_eq!(verdict(&d, &alice(), "kms:Encrypt"), Verdict::NoMatch);
    assert!(PolicyDocument::parse(
        &json!({"Version": "1", "Statement": [allow(&["acs:ram::1234:*"], &["kms:Future"])]})
            .to_string()
    )
    .is_err());
}

#[test]
fn every_builder_policy_parses_and_keeps_the_root_in_full_control() {
    let policy = PolicyBuilder::new("1234")
        .administrator("acs:ram::1234:user/alice")
        .user("acs:ram::1234:role/app")
        .cross_account_user("acs:ram::5678:user/partner")
        .build();
    let d = PolicyDocument::parse(&policy).unwrap();
    for a in kms_policy::actions::ACTIONS {
        assert_eq!(verdict(&d, &root(), a), Verdict::Allow, "{a}");
    }
    // An empty builder is the root alone.
    let d = PolicyDocument::parse(&PolicyBuilder::new("1234").build()).unwrap();
    assert_eq!(d.statements.len(), 1);
    assert_eq!(verdict(&d, &root(), "kms:Encrypt"), Verdict::Allow);
    assert_eq!(verdict(&d, &alice(), "kms:Encrypt"), Verdict::NoMatch);
}

#[test]
fn the_role_action_lists_are_the_guides() {
    use kms_policy::actions::{ADMINISTRATOR_ACTIONS, USER_ACTIONS};
    assert_eq!(
        ADMINISTRATOR_ACTIONS,
        &[
            "kms:List*",
            "kms:Describe*",
            "kms:Create*",
            "kms:Enable*",
            "kms:Disable*",
            "kms:Get*",
            "kms:Set*",
            "kms:Update*",
            "kms:Delete*",
            "kms:Cancel*",
            "kms:TagResource",
            "kms:UntagResource",
            "kms:ImportKeyMaterial",
            "kms:ScheduleKeyDeletion",
        ]
    );
    assert_eq!(
        USER_ACTIONS,
        &[
            "kms:Encrypt",
            "kms:Decrypt",
            "kms:GenerateDataKey",
            "kms:GenerateAndExportDataKey",
            "kms:AsymmetricEncrypt",
            "kms:AsymmetricDecrypt",
            "kms:DescribeKey",
            "kms:DescribeKeyVersion",
            "kms:ListKeyVersions",
            "kms:ListAliasesByKeyId",
            "kms:TagResource",
        ]
    );
}

#[test]
fn administrators_get_no_cryptographic_action() {
    let d = PolicyDocument::parse(
        &PolicyBuilder::new("1234")
            .administrator("acs:ram::1234:user/alice")
            .build(),
    )
    .unwrap();
    for a in [
        "kms:Encrypt",
        "kms:Decrypt",
        "kms:GenerateDataKey",
        "kms:GenerateDataKeyWithoutPlaintext",
        "kms:GenerateAndExportDataKey",
        "kms:ExportDataKey",
        "kms:ReEncryptFrom",
        "kms:ReEncryptTo",
        "kms:AsymmetricSign",
        "kms:AsymmetricVerify",
        "kms:AsymmetricEncrypt",
        "kms:AsymmetricDecrypt",
    ] {
        assert_eq!(verdict(&d, &alice(), a), Verdict::NoMatch, "{a}");
    }
}

#[test]
fn pattern_question_mark_matches_exactly_one_character() {
    let p = Pattern::new("user/?");
    assert!(p.matches("user/a"));
    assert!(!p.matches("user/"));
    assert!(!p.matches("user/ab"));
    // One character, even when it takes several bytes in UTF-8.
    assert!(p.matches("user/é"));
    assert!(p.matches("user/鍵"));
    assert!(Pattern::new("??").matches("éa"));
    assert!(!Pattern::new("???").matches("éa"));
    assert!(Pattern::new("*?c").matches("ébc"));
    assert!(!Pattern::new("*??").matches("é"));
}
