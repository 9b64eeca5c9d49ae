//! Policy documents: parsing with precise errors, and evaluation.
//!
//! ```json
//! {"Version": "1",
//!  "Statement": [{"Sid": "...", "Effect": "Allow" | "Deny",
//!                 "Principal": {"RAM": ["acs:ram::<uid>:user/<name>", ...]},
//!                 "Action": ["kms:Encrypt", "kms:List*"],
//!                 "Resource": ["*"],
//!                 "Condition": {"StringEquals": {"kms:ViaService": ["oss"]}}}]}
//! ```
//!
//! Explicit Deny wins over Allow, and anything not allowed is denied.
//!
//! Two kinds of document share this grammar: key and secret policies (resource policies, whose
//! statements name a `Principal`) and RAM identity policies (attached to a RAM user or role,
//! without `Principal`). [`crate::PolicyAuthorizer`] combines them as RAM does.

use kms_core::Caller;
use kms_core::KmsError;
use serde_json::{Map, Value};

use crate::actions::is_known_action;
use crate::pattern::Pattern;

/// Largest policy document, in bytes.
pub const MAX_POLICY_BYTES: usize = kms_core::MAX_POLICY_BYTES;
/// Most statements in one document.
pub const MAX_STATEMENTS: usize = 100;

/// Allow or Deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Grants the actions.
    Allow,
    /// Refuses the actions, over any Allow.
    Deny,
}

/// How a condition compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// Equal to one of the values.
    StringEquals,
    /// Equal to none of the values.
    StringNotEquals,
    /// Matches one of the wildcard values.
    StringLike,
    /// Matches none of the wildcard values.
    StringNotLike,
}

/// A request attribute a condition can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionKey {
    /// `kms:ViaService`: the integrated service the call is made for (absent if none).
    ViaService,
    /// `acs:PrincipalAccount`: the caller's account id.
    PrincipalAccount,
    /// `acs:PrincipalARN`: the caller's principal ARN.
    PrincipalArn,
}

impl ConditionKey {
    fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "kms:viaservice" => Some(ConditionKey::ViaService),
            "acs:principalaccount" => Some(ConditionKey::PrincipalAccount),
            "acs:principalarn" => Some(ConditionKey::PrincipalArn),
            _ => None,
        }
    }
}

/// One condition: `operator(key, values)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// The comparison.
    pub operator: Operator,
    /// The request attribute.
    pub key: ConditionKey,
    /// The values (patterns for the *Like operators).
    pub values: Vec<Pattern>,
}

/// One statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// Optional statement id.
    pub sid: Option<String>,
    /// Allow or Deny.
    pub effect: Effect,
    /// Principal patterns (ARNs; `*` for anyone); empty in an identity policy.
    pub principals: Vec<Pattern>,
    /// Action patterns (case-insensitive).
    pub actions: Vec<Pattern>,
    /// Resource patterns (`*` or ARNs).
    pub resources: Vec<Pattern>,
    /// All must hold.
    pub conditions: Vec<Condition>,
}

/// A parsed, validated policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDocument {
    /// The statements, in document order (order never changes a decision).
    pub statements: Vec<Statement>,
}

/// What a document says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A Deny statement matched.
    ExplicitDeny,
    /// An Allow statement matched and no Deny did.
    Allow,
    /// No statement matched: denied by default.
    NoMatch,
}

/// The request attributes a document is evaluated against.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext<'a> {
    /// The caller.
    pub caller: &'a Caller,
    /// The caller's principal ARN (`Caller::arn`).
    pub principal_arn: &'a str,
    /// The action, e.g. `kms:Encrypt`.
    pub action: &'a str,
    /// The resource ARN.
    pub resource: &'a str,
}

fn err(path: &str, reason: impl std::fmt::Display) -> KmsError {
    KmsError::invalid("Policy", format!("{path}: {reason}"))
}

/// A string or a list of strings, as policy fields allow.
fn string_list(path: &str, v: &Value) -> Result<Vec<String>, KmsError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => {
            if items.is_empty() {
                return Err(err(path, "must not be an empty list"));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(err(&format!("{path}[{i}]"), "must be a string")),
                })
                .collect()
        }
        _ => Err(err(path, "must be a string or a list of strings")),
    }
}

fn check_principal(path: &str, p: &str) -> Result<(), KmsError> {
    if p == "*" {
        return Ok(());
    }
    let rest = p.strip_prefix("acs:ram::").ok_or_else(|| {
        err(
            path,
            format!("{p:?} is not * or acs:ram::<account>:root|user/<name>|role/<name>|*"),
        )
    })?;
    let (account, who) = rest
        .split_once(':')
        .ok_or_else(|| err(path, format!("{p:?} has no principal after the account")))?;
    if account.is_empty() || !account.bytes().all(|c| c.is_ascii_digit() || c == b'*') {
        return Err(err(path, format!("{p:?} has a malformed account id")));
    }
    let ok = who == "*"
        || who == "root"
        || who
            .strip_prefix("user/")
            .or_else(|| who.strip_prefix("role/"))
            .is_some_and(|n| !n.is_empty());
    if !ok {
        return Err(err(
            path,
            format!("{p:?} must end in root, *, user/<name> or role/<name>"),
        ));
    }
    Ok(())
}

fn parse_principals(path: &str, v: Option<&Value>) -> Result<Vec<Pattern>, KmsError> {
    let v = v.ok_or_else(|| err(path, "is required"))?;
    let list = match v {
        Value::String(s) if s == "*" => vec![s.clone()],
        Value::Object(map) => {
            let mut out = Vec::new();
            for (kind, value) in map {
                if kind != "RAM" {
                    return Err(err(
                        &format!("{path}.{kind}"),
                        "only RAM principals are supported",
                    ));
                }
                out.extend(string_list(&format!("{path}.RAM"), value)?);
            }
            if out.is_empty() {
                return Err(err(path, "must name at least one RAM principal"));
            }
            out
        }
        _ => return Err(err(path, "must be \"*\" or {\"RAM\": [...]}")),
    };
    list.iter()
        .enumerate()
        .map(|(i, p)| {
            check_principal(&format!("{path}[{i}]"), p)?;
            Ok(Pattern::new(p))
        })
        .collect()
}

fn parse_actions(path: &str, v: Option<&Value>) -> Result<Vec<Pattern>, KmsError> {
    let list = string_list(path, v.ok_or_else(|| err(path, "is required"))?)?;
    list.iter()
        .enumerate()
        .map(|(i, a)| {
            let here = format!("{path}[{i}]");
            let pattern = Pattern::ignoring_case(a);
            let lower = pattern.as_str();
            if lower != "*" && !lower.starts_with("kms:") {
                return Err(err(&here, format!("{a:?} is not a kms: action")));
            }
            if !pattern.is_wildcard() && !is_known_action(a) {
                return Err(err(&here, format!("{a:?} is not a known action")));
            }
            Ok(pattern)
        })
        .collect()
}

fn parse_resources(path: &str, v: Option<&Value>) -> Result<Vec<Pattern>, KmsError> {
    let list = string_list(path, v.ok_or_else(|| err(path, "is required"))?)?;
    list.iter()
        .enumerate()
        .map(|(i, r)| {
            if r != "*" && !r.starts_with("acs:kms:") {
                return Err(err(
                    &format!("{path}[{i}]"),
                    format!("{r:?} is not * or an acs:kms: ARN"),
                ));
            }
            Ok(Pattern::new(r))
        })
        .collect()
}

fn parse_conditions(path: &str, v: Option<&Value>) -> Result<Vec<Condition>, KmsError> {
    let Some(v) = v else {
        return Ok(Vec::new());
    };
    let map = v
        .as_object()
        .ok_or_else(|| err(path, "must be an object of operators"))?;
    let mut out = Vec::new();
    for (op, body) in map {
        let here = format!("{path}.{op}");
        let operator = match op.as_str() {
            "StringEquals" => Operator::StringEquals,
            "StringNotEquals" => Operator::StringNotEquals,
            "StringLike" => Operator::StringLike,
            "StringNotLike" => Operator::StringNotLike,
            _ => {
                return Err(err(
                    &here,
                    "unsupported operator; use StringEquals, StringNotEquals, StringLike or StringNotLike",
                ))
            }
        };
        let keys = body
            .as_object()
            .ok_or_else(|| err(&here, "must be an object of condition keys"))?;
        for (key, values) in keys {
            let key_path = format!("{here}.{key}");
            let key = ConditionKey::parse(key).ok_or_else(|| {
                err(
                    &key_path,
                    "unsupported condition key; use kms:ViaService, acs:PrincipalAccount or acs:PrincipalARN",
                )
            })?;
            let values = string_list(&key_path, values)?
                .iter()
                .map(|s| Pattern::new(s))
                .collect();
            out.push(Condition {
                operator,
                key,
                values,
            });
        }
    }
    Ok(out)
}

const STATEMENT_FIELDS: [&str; 6] = [
    "Sid",
    "Effect",
    "Principal",
    "Action",
    "Resource",
    "Condition",
];

fn parse_statement(path: &str, v: &Value, kind: PolicyKind) -> Result<Statement, KmsError> {
    let map: &Map<String, Value> = v
        .as_object()
        .ok_or_else(|| err(path, "must be an object"))?;
    if let Some(unknown) = map.keys().find(|k| !STATEMENT_FIELDS.contains(&k.as_str())) {
        return Err(err(
            &format!("{path}.{unknown}"),
            "is not a statement field",
        ));
    }
    let effect = match map.get("Effect") {
        Some(Value::String(s)) if s == "Allow" => Effect::Allow,
        Some(Value::String(s)) if s == "Deny" => Effect::Deny,
        Some(_) => return Err(err(&format!("{path}.Effect"), "must be Allow or Deny")),
        None => return Err(err(&format!("{path}.Effect"), "is required")),
    };
    let sid = match map.get("Sid") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(err(&format!("{path}.Sid"), "must be a string")),
    };
    let principals = match kind {
        PolicyKind::Resource => {
            parse_principals(&format!("{path}.Principal"), map.get("Principal"))?
        }
        PolicyKind::Identity => {
            if map.contains_key("Principal") {
                return Err(err(
                    &format!("{path}.Principal"),
                    "is not allowed in a RAM identity policy: it applies to the principal it \
                     is attached to",
                ));
            }
            Vec::new()
        }
    };
    Ok(Statement {
        sid,
        effect,
        principals,
        actions: parse_actions(&format!("{path}.Action"), map.get("Action"))?,
        resources: parse_resources(&format!("{path}.Resource"), map.get("Resource"))?,
        conditions: parse_conditions(&format!("{path}.Condition"), map.get("Condition"))?,
    })
}

/// Which kind of document is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// A key or secret policy: every statement names its principals.
    Resource,
    /// A RAM identity policy, attached to a user or role: statements have no Principal.
    Identity,
}

/// What a resource policy says about one request, telling apart a grant to the caller itself
/// from a grant to the caller's account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceVerdict {
    /// A Deny statement matched the caller (directly or through its account).
    ExplicitDeny,
    /// An Allow statement names the caller (its ARN, a pattern of users or roles, or `*`).
    AllowPrincipal,
    /// An Allow statement names only the caller's account (`acs:ram::<account>:root` or
    /// `acs:ram::<account>:*`): the account root is allowed, and the account's RAM users and
    /// roles are allowed as far as their identity policies allow.
    AllowAccount,
    /// No statement matched.
    NoMatch,
}

/// When a principal pattern names an account (`acs:ram::<account>:root` or
/// `acs:ram::<account>:*`), the account part.
fn account_principal(pattern: &str) -> Option<&str> {
    let rest = pattern.strip_prefix("acs:ram::")?;
    let (account, who) = rest.split_once(':')?;
    (who == "root" || who == "*").then_some(account)
}

impl PolicyDocument {
    /// Parses and validates a key or secret policy.
    ///
    /// Errors: `InvalidParameter` naming `Policy`, the statement and the field
    /// (e.g. `Statement[1].Action[0]: "kms:Fly" is not a known action`).
    pub fn parse(text: &str) -> Result<Self, KmsError> {
        Self::parse_as(text, PolicyKind::Resource)
    }

    /// Parses and validates a RAM identity policy (statements without Principal).
    ///
    /// Errors: as [`PolicyDocument::parse`].
    pub fn parse_identity(text: &str) -> Result<Self, KmsError> {
        Self::parse_as(text, PolicyKind::Identity)
    }

    /// Parses and validates a document of either kind.
    ///
    /// Errors: as [`PolicyDocument::parse`].
    pub fn parse_as(text: &str, kind: PolicyKind) -> Result<Self, KmsError> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(err(
                "document",
                format!(
                    "is {} bytes; at most {MAX_POLICY_BYTES} are allowed",
                    text.len()
                ),
            ));
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| err("document", format!("not JSON: {e}")))?;
        let map = value
            .as_object()
            .ok_or_else(|| err("document", "must be a JSON object"))?;
        if let Some(unknown) = map.keys().find(|k| *k != "Version" && *k != "Statement") {
            return Err(err(unknown, "is not a policy field"));
        }
        match map.get("Version") {
            Some(Value::String(v)) if v == "1" => {}
            Some(_) => return Err(err("Version", "must be \"1\"")),
            None => return Err(err("Version", "is required")),
        }
        let statements = match map.get("Statement") {
            Some(Value::Array(items)) => items,
            Some(_) => return Err(err("Statement", "must be a list")),
            None => return Err(err("Statement", "is required")),
        };
        if statements.is_empty() || statements.len() > MAX_STATEMENTS {
            return Err(err(
                "Statement",
                format!("must hold 1 to {MAX_STATEMENTS} statements"),
            ));
        }
        let statements = statements
            .iter()
            .enumerate()
            .map(|(i, s)| parse_statement(&format!("Statement[{i}]"), s, kind))
            .collect::<Result<_, _>>()?;
        Ok(PolicyDocument { statements })
    }

    /// What the document says about a request: explicit Deny over Allow over no match.
    pub fn evaluate(&self, ctx: &RequestContext<'_>) -> Verdict {
        let mut allowed = false;
        for s in &self.statements {
            if s.applies(ctx) {
                match s.effect {
                    Effect::Deny => return Verdict::ExplicitDeny,
                    Effect::Allow => allowed = true,
                }
            }
        }
        if allowed {
            Verdict::Allow
        } else {
            Verdict::NoMatch
        }
    }

    /// What a resource policy says about a request, telling a grant to the caller apart
    /// from a grant to its account; explicit Deny over Allow over no match.
    ///
    /// A Deny naming an account (`acs:ram::<account>:*` or `...:root`) denies every principal
    /// of that account.
    pub fn evaluate_resource(&self, ctx: &RequestContext<'_>) -> ResourceVerdict {
        let mut verdict = ResourceVerdict::NoMatch;
        for s in &self.statements {
            if !s.matches_request(ctx) {
                continue;
            }
            let mut direct = false;
            let mut account = false;
            for p in &s.principals {
                match account_principal(p.as_str()) {
                    Some(acct) => {
                        if Pattern::new(acct).matches(&ctx.caller.account_id) {
                            account = true;
                        }
                    }
                    None => {
                        if p.matches(ctx.principal_arn) {
                            direct = true;
                        }
                    }
                }
            }
            match s.effect {
                Effect::Deny if direct || account => return ResourceVerdict::ExplicitDeny,
                Effect::Deny => {}
                Effect::Allow if direct => verdict = ResourceVerdict::AllowPrincipal,
                Effect::Allow if account && verdict == ResourceVerdict::NoMatch => {
                    verdict = ResourceVerdict::AllowAccount
                }
                Effect::Allow => {}
            }
        }
        verdict
    }
}

impl Statement {
    /// Whether the statement applies: its action, principal (any, in an identity policy),
    /// resource and conditions all match.
    fn applies(&self, ctx: &RequestContext<'_>) -> bool {
        (self.principals.is_empty() || self.principals.iter().any(|p| p.matches(ctx.principal_arn)))
            && self.matches_request(ctx)
    }

    /// Action, resource and conditions, without the principal.
    fn matches_request(&self, ctx: &RequestContext<'_>) -> bool {
        self.actions.iter().any(|a| a.matches(ctx.action))
            && self.resources.iter().any(|r| r.matches(ctx.resource))
            && self.conditions.iter().all(|c| c.holds(ctx))
    }
}

impl Condition {
    fn holds(&self, ctx: &RequestContext<'_>) -> bool {
        let value = match self.key {
            ConditionKey::ViaService => ctx.caller.via_service.as_deref(),
            ConditionKey::PrincipalAccount => Some(ctx.caller.account_id.as_str()),
            ConditionKey::PrincipalArn => Some(ctx.principal_arn),
        };
        let any = |like: bool| {
            value.is_some_and(|v| {
                self.values
                    .iter()
                    .any(|p| if like { p.matches(v) } else { p.as_str() == v })
            })
        };
        match self.operator {
            Operator::StringEquals => any(false),
            Operator::StringNotEquals => !any(false),
            Operator::StringLike => any(true),
            Operator::StringNotLike => !any(true),
        }
    }
}
