//! Properties: a policy's verdict never depends on statement order and agrees with a plain
//! reference evaluator; wildcard patterns agree with a reference matcher; the authorizer's
//! default decision agrees with the default policy document it shows; parsing never panics.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use kms_core::{AccessRequest, Action, Authorizer, Caller, Decision};
use kms_policy::document::RequestContext;
use kms_policy::pattern::Pattern;
use kms_policy::{PolicyAuthorizer, PolicyBuilder, PolicyDocument, Verdict};
use proptest::prelude::*;
use serde_json::json;

const KEY_ARN: &str = "acs:kms:cn-hangzhou:1234:key/0b8d1f6e-3c2a-4f1e-9a7b-2c4d6e8f0a1b";
const OTHER_KEY_ARN: &str = "acs:kms:cn-hangzhou:1234:key/11111111-2222-4333-8444-555555555555";

// ---- a reference wildcard matcher -------------------------------------------------------------

/// `*` any run of characters, `?` exactly one character, anything else itself; by dynamic
/// programming over characters.
fn reference_match(pattern: &str, value: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    // m[i][j]: p[i..] matches v[j..]
    let mut m = vec![vec![false; v.len() + 1]; p.len() + 1];
    m[p.len()][v.len()] = true;
    for i in (0..p.len()).rev() {
        for j in (0..=v.len()).rev() {
            m[i][j] = match p[i] {
                '*' => m[i + 1][j] || (j < v.len() && m[i][j + 1]),
                '?' => j < v.len() && m[i + 1][j + 1],
                c => j < v.len() && v[j] == c && m[i + 1][j + 1],
            };
        }
    }
    m[0][0]
}

#[test]
fn the_reference_matcher_is_itself_right() {
    assert!(reference_match("a*b", "aXYb"));
    assert!(reference_match("*", ""));
    assert!(!reference_match("?", ""));
    assert!(reference_match("?", "é"));
    assert!(!reference_match("a*b", "aXYc"));
}

fn text(alphabet: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(alphabet), 0..max).prop_map(|v| v.concat())
}

const PATTERN_ALPHABET: &[&str] = &["a", "b", "A", ":", "/", "é", "鍵", "*", "?", "**"];
const VALUE_ALPHABET: &[&str] = &["a", "b", "A", "B", ":", "/", "é", "鍵"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn pattern_matching_agrees_with_the_reference(
        pattern in text(PATTERN_ALPHABET, 10),
        value in text(VALUE_ALPHABET, 12),
    ) {
        prop_assert_eq!(
            Pattern::new(&pattern).matches(&value),
            reference_match(&pattern, &value),
            "pattern {:?} value {:?}", pattern, value
        );
    }

    #[test]
    fn case_insensitive_matching_agrees_with_the_reference_on_lower_case(
        pattern in text(PATTERN_ALPHABET, 10),
        value in text(VALUE_ALPHABET, 12),
    ) {
        prop_assert_eq!(
            Pattern::ignoring_case(&pattern).matches(&value),
            reference_match(&pattern.to_ascii_lowercase(), &value.to_ascii_lowercase()),
            "pattern {:?} value {:?}", pattern, value
        );
    }

    #[test]
    fn a_pattern_without_wildcards_matches_only_itself(
        literal in text(VALUE_ALPHABET, 10),
        value in text(VALUE_ALPHABET, 10),
    ) {
        let p = Pattern::new(&literal);
        prop_assert!(!p.is_wildcard());
        prop_assert!(p.matches(&literal));
        prop_assert_eq!(p.matches(&value), value == literal);
    }
}

// ---- random statements --------------------------------------------------------------------------

const EFFECTS: &[&str] = &["Allow", "Deny"];
const PRINCIPALS: &[&str] = &[
    "*",
    "acs:ram::1234:*",
    "acs:ram::1234:root",
    "acs:ram::1234:user/alice",
    "acs:ram::1234:user/*",
    "acs:ram::1234:role/app",
    "acs:ram::5678:*",
    "acs:ram::5678:user/partner",
    "acs:ram::*:role/app",
];
const ACTION_PATTERNS: &[&str] = &[
    "*",
    "kms:*",
    "kms:Encrypt",
    "kms:encrypt",
    "KMS:DECRYPT",
    "kms:Decrypt",
    "kms:List*",
    "kms:Describe*",
    "kms:Generate*",
    "kms:*Key",
    "kms:ReEncrypt*",
    "kms:DisableKey",
    "kms:Get*Policy",
];
const RESOURCES: &[&str] = &["*", KEY_ARN, OTHER_KEY_ARN, "acs:kms:*:1234:key/*"];
/// (operator, values) for a kms:ViaService condition; "" means no condition.
const CONDITIONS: &[(&str, &str)] = &[
    ("", ""),
    ("StringEquals", "oss"),
    ("StringNotEquals", "oss"),
    ("StringLike", "*s"),
    ("StringNotLike", "o*"),
];

#[derive(Debug, Clone)]
struct Stmt {
    effect: &'static str,
    principals: Vec<&'static str>,
    actions: Vec<&'static str>,
    resources: Vec<&'static str>,
    condition: (&'static str, &'static str),
}

impl Stmt {
    fn to_json(&self) -> serde_json::Value {
        let mut s = json!({
            "Effect": self.effect,
            "Principal": {"RAM": self.principals},
            "Action": self.actions,
            "Resource": self.resources,
        });
        if !self.condition.0.is_empty() {
            s["Condition"] = json!({self.condition.0: {"kms:ViaService": [self.condition.1]}});
        }
        s
    }

    /// The reference semantics of one statement.
    fn applies(&self, caller: &Caller, action: &str, resource: &str) -> bool {
        let arn = caller.arn();
        let condition = match self.condition {
            ("", _) => true,
            (op, value) => {
                let via = caller.via_service.as_deref();
                let eq = via == Some(value);
                let like = via.is_some_and(|v| reference_match(value, v));
                match op {
                    "StringEquals" => eq,
                    "StringNotEquals" => !eq,
                    "StringLike" => like,
                    "StringNotLike" => !like,
                    _ => unreachable!(),
                }
            }
        };
        self.actions
            .iter()
            .any(|a| reference_match(&a.to_ascii_lowercase(), &action.to_ascii_lowercase()))
            && self.principals.iter().any(|p| reference_match(p, &arn))
            && self.resources.iter().any(|r| reference_match(r, resource))
            && condition
    }

    /// The statement with every principal replaced by `*`: does it apply to the request?
    fn applies_to_request(&self, caller: &Caller, action: &str, resource: &str) -> bool {
        Stmt {
            principals: vec!["*"],
            ..self.clone()
        }
        .applies(caller, action, resource)
    }
}

/// How a resource-policy principal covers a caller, by RAM's rules: (covers, only with the
/// consent of the caller's account). `acs:ram::<account>:root` and `acs:ram::<account>:*`
/// name the account: they cover its root outright and its users and roles only when their
/// identity policies consent; any other principal is a pattern of caller ARNs.
fn reference_cover(principal: &str, caller: &Caller) -> (bool, bool) {
    let account = principal
        .strip_prefix("acs:ram::")
        .and_then(|r| r.strip_suffix(":root").or_else(|| r.strip_suffix(":*")))
        .filter(|a| !a.contains(':'));
    match account {
        Some(a) => (
            reference_match(a, &caller.account_id),
            caller.principal != kms_core::Principal::Root,
        ),
        None => (reference_match(principal, &caller.arn()), false),
    }
}

/// RAM's decision for a key of account 1234 under `statements`, for a caller whose identity
/// policy allows everything (`consents`) or that has none.
fn reference_decision(
    statements: &[Stmt],
    caller: &Caller,
    action: &str,
    resource: &str,
    consents: bool,
) -> bool {
    let is_root = caller.principal == kms_core::Principal::Root;
    let own_account_consents = is_root || consents;
    let same_account = caller.account_id == "1234";
    let mut allowed = false;
    for s in statements
        .iter()
        .filter(|s| s.applies_to_request(caller, action, resource))
    {
        for p in &s.principals {
            let (covers, needs_consent) = reference_cover(p, caller);
            if !covers {
                continue;
            }
            if s.effect == "Deny" {
                return false;
            }
            let ok = if needs_consent {
                own_account_consents
            } else {
                same_account || own_account_consents
            };
            allowed |= ok;
        }
    }
    allowed
}

fn some_of(alphabet: &'static [&'static str]) -> impl Strategy<Value = Vec<&'static str>> {
    prop::collection::vec(prop::sample::select(alphabet), 1..4)
}

fn statement() -> impl Strategy<Value = Stmt> {
    (
        prop::sample::select(EFFECTS),
        some_of(PRINCIPALS),
        some_of(ACTION_PATTERNS),
        some_of(RESOURCES),
        prop::sample::select(CONDITIONS),
    )
        .prop_map(|(effect, principals, actions, resources, condition)| Stmt {
            effect,
            principals,
            actions,
            resources,
            condition,
        })
}

/// Statements and the same statements in another order.
fn statements_and_permutation() -> impl Strategy<Value = (Vec<Stmt>, Vec<Stmt>)> {
    prop::collection::vec(statement(), 1..8)
        .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle()))
}

fn document(statements: &[Stmt]) -> String {
    let list: Vec<_> = statements.iter().map(Stmt::to_json).collect();
    json!({"Version": "1", "Statement": list}).to_string()
}

/// A RAM identity policy allowing every KMS action on every resource.
const FULL_ACCESS: &str =
    r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":["kms:*"],"Resource":["*"]}]}"#;

fn callers() -> Vec<Caller> {
    let base = [
        Caller::account_root("1234"),
        Caller::ram_user("1234", "alice"),
        Caller::ram_user("1234", "bob"),
        Caller::ram_role("1234", "app"),
        Caller::ram_user("5678", "partner"),
        Caller::account_root("5678"),
        Caller::ram_role("9999", "app"),
    ];
    let mut out = Vec::new();
    for c in base {
        for via in [None, Some("oss"), Some("ecs")] {
            out.push(Caller {
                via_service: via.map(str::to_owned),
                ..c.clone()
            });
        }
    }
    out
}

const REQUEST_ACTIONS: &[&str] = &[
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ListKeyVersions",
    "kms:DescribeKey",
    "kms:GenerateDataKey",
    "kms:ReEncryptFrom",
    "kms:DisableKey",
    "kms:GetKeyPolicy",
    "kms:CreateKey",
    "kms:TagResource",
];

fn evaluate(doc: &PolicyDocument, caller: &Caller, action: &str, resource: &str) -> Verdict {
    let arn = caller.arn();
    doc.evaluate(&RequestContext {
        caller,
        principal_arn: &arn,
        action,
        resource,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn reordering_statements_never_changes_a_verdict(
        (original, permuted) in statements_and_permutation(),
    ) {
        let a = PolicyDocument::parse(&document(&original)).unwrap();
        let b = PolicyDocument::parse(&document(&permuted)).unwrap();
        for caller in callers() {
            for action in REQUEST_ACTIONS {
                for resource in [KEY_ARN, OTHER_KEY_ARN] {
                    prop_assert_eq!(
                        evaluate(&a, &caller, action, resource),
                        evaluate(&b, &caller, action, resource),
                        "{} {} {}", caller, action, resource
                    );
                }
            }
        }
    }

}

proptest! {
    // Each case checks 420 requests against the reference evaluator.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn verdicts_follow_deny_over_allow_over_default_deny(
        statements in prop::collection::vec(statement(), 1..8),
    ) {
        let text = document(&statements);
        let doc = PolicyDocument::parse(&text).unwrap();
        let authorizer = PolicyAuthorizer::new();
        let consenting = PolicyAuthorizer::new();
        for caller in callers() {
            if caller.principal != kms_core::Principal::Root {
                consenting.attach_identity_policy(&caller.arn(), FULL_ACCESS).ok();
            }
        }
        for caller in callers() {
            for action in REQUEST_ACTIONS {
                for resource in [KEY_ARN, OTHER_KEY_ARN] {
                    let matching = statements.iter().filter(|s| s.applies(&caller, action, resource));
                    let (mut deny, mut allow) = (false, false);
                    for s in matching {
                        if s.effect == "Deny" { deny = true } else { allow = true }
                    }
                    let expected = if deny {
                        Verdict::ExplicitDeny
                    } else if allow {
                        Verdict::Allow
                    } else {
                        Verdict::NoMatch
                    };
                    prop_assert_eq!(evaluate(&doc, &caller, action, resource), expected,
                        "{} {} {}", caller, action, resource);
                    // The authorizer decides as RAM does, with and without identity policies.
                    let request = AccessRequest {
                        caller: &caller,
                        action: Action::from_policy_name(action).expect("a known action"),
                        resource,
                        resource_account: "1234",
                        policy: Some(&text),
                        creator: Some("1234"),
                        instance_id: None,
                    };
                    prop_assert_eq!(
                        authorizer.authorize(&request) == Decision::Allow,
                        reference_decision(&statements, &caller, action, resource, false),
                        "{} {} {} without an identity policy", caller, action, resource
                    );
                    prop_assert_eq!(
                        consenting.authorize(&request) == Decision::Allow,
                        reference_decision(&statements, &caller, action, resource, true),
                        "{} {} {} with a full identity policy", caller, action, resource
                    );
                }
            }
        }
    }
}

// ---- the default policy ---------------------------------------------------------------------

const ACCOUNTS: &[&str] = &["1234", "5678", "9999"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn the_default_decision_agrees_with_the_default_policy_document(
        instance in prop::sample::select(&[None, Some("kst-1"), Some("kst-unknown")][..]),
        owner in prop::sample::select(ACCOUNTS),
        shared_with in prop::collection::vec(prop::sample::select(ACCOUNTS), 0..3),
        creator in prop::sample::select(ACCOUNTS),
        caller_account in prop::sample::select(ACCOUNTS),
        who in 0usize..3,
        action in prop::sample::select(REQUEST_ACTIONS),
    ) {
        let authorizer = PolicyAuthorizer::new();
        authorizer.add_instance("kst-1", owner);
        for a in &shared_with {
            authorizer.share_instance("kst-1", a).unwrap();
        }
        let caller = match who {
            0 => Caller::account_root(caller_account),
            1 => Caller::ram_user(caller_account, "alice"),
            _ => Caller::ram_role(caller_account, "app"),
        };
        let request = AccessRequest {
            caller: &caller,
            action: Action::from_policy_name(action).expect("a known action"),
            resource: KEY_ARN,
            resource_account: "1234",
            policy: None,
            creator: Some(creator),
            instance_id: instance,
        };
        let shown = authorizer.default_policy(&request);
        let doc = PolicyDocument::parse(&shown).unwrap();
        let decision = authorizer.authorize(&request);
        // The shown document allows the caller's account; without identity policies only an
        // account root gets through.
        let is_root = caller.principal == kms_core::Principal::Root;
        prop_assert_eq!(
            decision == Decision::Allow,
            is_root && evaluate(&doc, &caller, action, KEY_ARN) == Verdict::Allow,
            "{} on a key by {} in {:?}: {}", caller, creator, instance, shown
        );
        // The shown document, set as the key's policy, decides the same.
        let with_policy = authorizer.authorize(&AccessRequest { policy: Some(&shown), ..request });
        prop_assert_eq!(with_policy, decision);
    }

    #[test]
    fn builder_policies_always_parse_and_keep_the_root(
        names in prop::collection::vec("[a-z][a-z0-9._-]{0,8}", 0..4),
        action in prop::sample::select(kms_policy::actions::ACTIONS),
    ) {
        let mut b = PolicyBuilder::new("1234");
        for (i, n) in names.iter().enumerate() {
            b = match i % 3 {
                0 => b.administrator(format!("acs:ram::1234:user/{n}")),
                1 => b.user(format!("acs:ram::1234:role/{n}")),
                _ => b.cross_account_user(format!("acs:ram::5678:user/{n}")),
            };
        }
        let doc = PolicyDocument::parse(&b.build()).unwrap();
        prop_assert_eq!(
            evaluate(&doc, &Caller::account_root("1234"), action, KEY_ARN),
            Verdict::Allow
        );
    }

    #[test]
    fn parsing_arbitrary_text_never_panics_and_errors_name_policy(text in ".{0,200}") {
        if let Err(e) = PolicyDocument::parse(&text) {
            prop_assert_eq!(e.code(), "InvalidParameter");
            prop_assert!(e.to_string().contains("Policy"));
        }
    }

    #[test]
    fn parsing_arbitrary_json_never_panics_and_errors_name_policy(value in arbitrary_json()) {
        let text = json!({"Version": "1", "Statement": [value]}).to_string();
        if let Err(e) = PolicyDocument::parse(&text) {
            prop_assert_eq!(e.code(), "InvalidParameter");
            prop_assert!(e.to_string().contains("Policy"));
            prop_assert!(e.to_string().contains("Statement[0]"), "{}", e);
        }
    }
}

/// JSON values built from statement-like parts, often almost valid.
fn arbitrary_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(json!(null)),
        any::<bool>().prop_map(|b| json!(b)),
        any::<i64>().prop_map(|n| json!(n)),
        prop::sample::select(
            &[
                "Allow",
                "Deny",
                "*",
                "kms:*",
                "kms:Encrypt",
                "kms:Fly",
                "acs:ram::1234:*",
                "acs:ram::1234:user/alice",
                "acs:ram::x:user/",
                "acs:kms:*",
                "oss",
                "",
            ][..]
        )
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(
                prop::sample::select(
                    &[
                        "Effect",
                        "Principal",
                        "Action",
                        "Resource",
                        "Condition",
                        "Sid",
                        "RAM",
                        "StringEquals",
                        "StringLike",
                        "kms:ViaService",
                        "Other",
                    ][..]
                ),
                inner,
                0..5,
            )
            .prop_map(|m| json!(m)),
        ]
    })
}
