//! Round trips of policy documents: a document serialized from random statements, in any of
//! the JSON shapes each field may take, parses back to exactly those statements; a document
//! written back from the parsed statements parses to the same statements again; and
//! `PolicyBuilder` output parses to the statements of the roles it was given.
//!
//! (tests/properties.rs covers evaluation: order independence, agreement with a reference
//! evaluator, and that builder policies keep the root's access.)
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::BTreeMap;

use kms_policy::actions::{ACTIONS, ADMINISTRATOR_ACTIONS, USER_ACTIONS};
use kms_policy::document::{Condition, ConditionKey, Operator, Statement};
use kms_policy::pattern::Pattern;
use kms_policy::{Effect, PolicyBuilder, PolicyDocument};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// `default` cases, or `PROPTEST_CASES` when set.
fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

const OPERATORS: &[(&str, Operator)] = &[
    ("StringEquals", Operator::StringEquals),
    ("StringNotEquals", Operator::StringNotEquals),
    ("StringLike", Operator::StringLike),
    ("StringNotLike", Operator::StringNotLike),
];

/// Condition keys as a document may spell them (case-insensitive).
const CONDITION_KEYS: &[(&str, ConditionKey)] = &[
    ("kms:ViaService", ConditionKey::ViaService),
    ("KMS:viaservice", ConditionKey::ViaService),
    ("acs:PrincipalAccount", ConditionKey::PrincipalAccount),
    ("acs:PrincipalARN", ConditionKey::PrincipalArn),
    ("ACS:principalarn", ConditionKey::PrincipalArn),
];

/// A statement as a document states it, with the JSON shape chosen for each field.
#[derive(Debug, Clone)]
struct Written {
    sid: Option<String>,
    effect: Effect,
    principals: Vec<String>,
    actions: Vec<String>,
    resources: Vec<String>,
    /// Operator → condition key spelling → values.
    conditions: BTreeMap<&'static str, BTreeMap<&'static str, Vec<String>>>,
    /// Write one-element lists as a bare string.
    bare: bool,
    /// Write `Principal: "*"` rather than `{"RAM": ["*"]}` when the only principal is `*`.
    star: bool,
    /// Write `Condition: {}` rather than leaving it out when there are none.
    empty_condition: bool,
}

fn list(items: &[String], bare: bool) -> Value {
    match items {
        [one] if bare => json!(one),
        _ => json!(items),
    }
}

impl Written {
    fn to_json(&self) -> Value {
        let mut s = Map::new();
        if let Some(sid) = &self.sid {
            s.insert("Sid".into(), json!(sid));
        }
        let effect = match self.effect {
            Effect::Allow => "Allow",
            Effect::Deny => "Deny",
        };
        s.insert("Effect".into(), json!(effect));
        let principal = if self.star && self.principals == ["*"] {
            json!("*")
        } else {
            json!({"RAM": list(&self.principals, self.bare)})
        };
        s.insert("Principal".into(), principal);
        s.insert("Action".into(), list(&self.actions, self.bare));
        s.insert("Resource".into(), list(&self.resources, self.bare));
        if !self.conditions.is_empty() || self.empty_condition {
            let c: Map<String, Value> = self
                .conditions
                .iter()
                .map(|(op, keys)| {
                    let keys: Map<String, Value> = keys
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), list(v, self.bare)))
                        .collect();
                    ((*op).to_owned(), Value::Object(keys))
                })
                .collect();
            s.insert("Condition".into(), Value::Object(c));
        }
        Value::Object(s)
    }

    /// The statement `PolicyDocument::parse` must make of it.
    fn expected(&self) -> Statement {
        let mut conditions = Vec::new();
        for (op, keys) in &self.conditions {
            let operator = OPERATORS.iter().find(|(n, _)| n == op).unwrap().1;
            for (k, values) in keys {
                conditions.push(Condition {
                    operator,
                    key: CONDITION_KEYS.iter().find(|(n, _)| n == k).unwrap().1,
                    values: values.iter().map(|v| Pattern::new(v)).collect(),
                });
            }
        }
        Statement {
            sid: self.sid.clone(),
            effect: self.effect,
            principals: self.principals.iter().map(|p| Pattern::new(p)).collect(),
            actions: self
                .actions
                .iter()
                .map(|a| Pattern::ignoring_case(a))
                .collect(),
            resources: self.resources.iter().map(|r| Pattern::new(r)).collect(),
            conditions,
        }
    }
}

/// Conditions are a conjunction: their order carries no meaning (and a JSON object's key
/// order need not survive parsing), so compare them as a sorted list.
fn normalized(mut s: Statement) -> Statement {
    s.conditions.sort_by_key(|c| format!("{c:?}"));
    s
}

fn principal() -> impl Strategy<Value = String> {
    let who = prop_oneof![
        Just("root".to_owned()),
        Just("*".to_owned()),
        "user/[A-Za-z0-9._@*?/-]{1,12}",
        "role/[A-Za-z0-9._@*?/-]{1,12}",
    ];
    prop_oneof![
        1 => Just("*".to_owned()),
        6 => ("[0-9*]{1,16}", who).prop_map(|(account, who)| format!("acs:ram::{account}:{who}")),
    ]
}

/// Known actions in any letter case, and wildcard patterns.
fn action() -> impl Strategy<Value = String> {
    prop_oneof![
        (prop::sample::select(ACTIONS), any::<u64>()).prop_map(|(a, mask)| {
            a.chars()
                .enumerate()
                .map(|(i, c)| {
                    if mask >> (i % 64) & 1 == 1 {
                        c.to_ascii_uppercase()
                    } else {
                        c.to_ascii_lowercase()
                    }
                })
                .collect()
        }),
        prop::sample::select(
            &[
                "*",
                "kms:*",
                "KMS:List*",
                "kms:Describe*",
                "kms:*Key",
                "kms:Get?eyPolicy",
                "kms:*crypt*",
            ][..]
        )
        .prop_map(str::to_owned),
    ]
}

fn resource() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_owned()),
        "acs:kms:[a-z0-9*-]{0,12}:[0-9*]{0,8}:key/[a-f0-9*?-]{0,36}",
        "acs:kms:[a-z0-9*-]{0,12}:[0-9*]{0,8}:alias/[A-Za-z0-9_/*-]{0,12}",
        "acs:kms:\\PC{0,24}",
    ]
}

fn some<T: std::fmt::Debug>(s: impl Strategy<Value = T>) -> impl Strategy<Value = Vec<T>> {
    prop::collection::vec(s, 1..4)
}

fn written() -> impl Strategy<Value = Written> {
    let conditions = prop::collection::btree_map(
        prop::sample::select(OPERATORS).prop_map(|(n, _)| n),
        prop::collection::btree_map(
            prop::sample::select(CONDITION_KEYS).prop_map(|(n, _)| n),
            some("\\PC{0,12}"),
            1..3,
        ),
        0..3,
    );
    (
        prop::option::of("\\PC{0,16}"),
        prop::sample::select(&[Effect::Allow, Effect::Deny][..]),
        some(principal()),
        some(action()),
        some(resource()),
        conditions,
        any::<(bool, bool, bool)>(),
    )
        .prop_map(
            |(sid, effect, principals, actions, resources, conditions, (bare, star, empty))| {
                Written {
                    sid,
                    effect,
                    principals,
                    actions,
                    resources,
                    conditions,
                    bare,
                    star,
                    empty_condition: empty,
                }
            },
        )
}

fn document(statements: &[Value]) -> String {
    json!({"Version": "1", "Statement": statements}).to_string()
}

/// A parsed statement written back as JSON, from its public fields only.
fn rewrite(s: &Statement) -> Value {
    let strings =
        |ps: &[Pattern]| -> Vec<String> { ps.iter().map(|p| p.as_str().to_owned()).collect() };
    let mut conditions = Map::new();
    for c in &s.conditions {
        let op = OPERATORS.iter().find(|(_, o)| *o == c.operator).unwrap().0;
        let key = CONDITION_KEYS.iter().find(|(_, k)| *k == c.key).unwrap().0;
        let keys = conditions
            .entry(op)
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .unwrap();
        // The same key twice under one operator (two spellings) must both hold: write the
        // second under the other spelling.
        let key = if keys.contains_key(key) {
            CONDITION_KEYS
                .iter()
                .find(|(n, k)| *k == c.key && !keys.contains_key(*n))
                .unwrap()
                .0
        } else {
            key
        };
        keys.insert(key.to_owned(), json!(strings(&c.values)));
    }
    let mut out = json!({
        "Effect": if s.effect == Effect::Allow { "Allow" } else { "Deny" },
        "Principal": {"RAM": strings(&s.principals)},
        "Action": strings(&s.actions),
        "Resource": strings(&s.resources),
        "Condition": conditions,
    });
    if let Some(sid) = &s.sid {
        out["Sid"] = json!(sid);
    }
    out
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn a_document_serialized_from_statements_parses_back_to_those_statements(
        statements in prop::collection::vec(written(), 1..8),
    ) {
        let text = document(&statements.iter().map(Written::to_json).collect::<Vec<_>>());
        let parsed = PolicyDocument::parse(&text).unwrap();
        prop_assert_eq!(parsed.statements.len(), statements.len());
        for (got, w) in parsed.statements.iter().zip(&statements) {
            prop_assert_eq!(normalized(got.clone()), normalized(w.expected()), "{}", text);
        }

        // Written back from the parsed statements, it parses to the same statements.
        let again = document(&parsed.statements.iter().map(rewrite).collect::<Vec<_>>());
        let reparsed = PolicyDocument::parse(&again).unwrap();
        prop_assert_eq!(reparsed.statements.len(), parsed.statements.len());
        for (a, b) in reparsed.statements.into_iter().zip(parsed.statements) {
            prop_assert_eq!(normalized(a), normalized(b), "{}", again);
        }
    }

    #[test]
    fn builder_output_parses_to_the_statements_of_its_roles(
        account in "[0-9]{1,16}",
        administrators in prop::collection::vec("(user|role)/[A-Za-z0-9._@-]{1,12}", 0..3),
        users in prop::collection::vec("(user|role)/[A-Za-z0-9._@-]{1,12}", 0..3),
        partners in prop::collection::vec(("[0-9]{1,16}", "(user|role)/[A-Za-z0-9._@-]{1,12}"), 0..3),
    ) {
        let own = |who: &String| format!("acs:ram::{account}:{who}");
        let administrators: Vec<String> = administrators.iter().map(own).collect();
        let users: Vec<String> = users.iter().map(own).collect();
        let partners: Vec<String> = partners.iter().map(|(a, w)| format!("acs:ram::{a}:{w}")).collect();
        let mut b = PolicyBuilder::new(&account);
        for p in &administrators {
            b = b.administrator(p);
        }
        for p in &users {
            b = b.user(p);
        }
        for p in &partners {
            b = b.cross_account_user(p);
        }
        let parsed = PolicyDocument::parse(&b.build()).unwrap();

        let statement = |sid: &str, principals: &[String], actions: &[&str]| Statement {
            sid: Some(sid.to_owned()),
            effect: Effect::Allow,
            principals: principals.iter().map(|p| Pattern::new(p)).collect(),
            actions: actions.iter().map(|a| Pattern::ignoring_case(a)).collect(),
            resources: vec![Pattern::new("*")],
            conditions: Vec::new(),
        };
        let mut want = vec![statement(
            "Enable account root permissions",
            &[format!("acs:ram::{account}:root")],
            &["kms:*"],
        )];
        if !administrators.is_empty() {
            want.push(statement("Key administrators", &administrators, ADMINISTRATOR_ACTIONS));
        }
        if !users.is_empty() {
            want.push(statement("Key users", &users, USER_ACTIONS));
        }
        if !partners.is_empty() {
            want.push(statement("Cross-account key users", &partners, USER_ACTIONS));
        }
        prop_assert_eq!(parsed.statements, want);
    }
}
