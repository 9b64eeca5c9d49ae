//! Authorization: who is calling ([`Caller`]), what they ask ([`Action`]), and the
//! [`Authorizer`] the engine consults before every operation.

pub(crate) mod action;
pub(crate) mod api;
pub(crate) mod ops;

pub use action::Action;

use std::fmt;

use crate::error::KmsError;
use crate::schema;

/// The principal a call is made as.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// The account itself (its root identity).
    Root,
    /// A RAM user of the account, by name.
    User(String),
    /// A RAM role of the account, by name.
    Role(String),
    /// An application, through a client key of one of the account's application access
    /// points (the instance API). Authorized by the AAP's policies, not by the authorizer.
    AccessPoint(crate::applications::access::AccessPointCaller),
}

/// The identity of a call: the account and the principal within it, and optionally the
/// integrated cloud service the call is made for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Caller {
    /// The account id.
    pub account_id: String,
    /// Who in the account.
    pub principal: Principal,
    /// The integrated service (e.g. `oss`) the call is made on behalf of.
    pub via_service: Option<String>,
}

impl Caller {
    /// The account's root identity.
    pub fn account_root(account_id: impl Into<String>) -> Self {
        Caller {
            account_id: account_id.into(),
            principal: Principal::Root,
            via_service: None,
        }
    }

    /// A RAM user of the account.
    pub fn ram_user(account_id: impl Into<String>, name: impl Into<String>) -> Self {
        Caller {
            account_id: account_id.into(),
            principal: Principal::User(name.into()),
            via_service: None,
        }
    }

    /// A RAM role of the account.
    pub fn ram_role(account_id: impl Into<String>, name: impl Into<String>) -> Self {
        Caller {
            account_id: account_id.into(),
            principal: Principal::Role(name.into()),
            via_service: None,
        }
    }

    /// The principal's ARN: `acs:ram::<uid>:root`, `...:user/<name>` or `...:role/<name>`;
    /// an application's is `acs:kms::<uid>:applicationaccesspoint/<name>`.
    pub fn arn(&self) -> String {
        match &self.principal {
            Principal::Root => schema::ram_arn(&self.account_id, "root"),
            Principal::User(n) => schema::ram_arn(&self.account_id, &format!("user/{n}")),
            Principal::Role(n) => schema::ram_arn(&self.account_id, &format!("role/{n}")),
            Principal::AccessPoint(a) => {
                format!(
                    "acs:kms::{}:applicationaccesspoint/{}",
                    self.account_id, a.name
                )
            }
        }
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arn())
    }
}

/// What the engine asks the authorizer.
#[derive(Debug, Clone, Copy)]
pub struct AccessRequest<'a> {
    /// Who is calling.
    pub caller: &'a Caller,
    /// What they want to do.
    pub action: Action,
    /// The resource ARN. For account-level operations (CreateKey, ListKeys...), whose
    /// `creator` is `None`, the collection ARN RAM policies name
    /// (`acs:kms:<region>:<account>:key`, `...:secret`...; see
    /// [`crate::ArnScope::collection_arn`]) or `*`.
    pub resource: &'a str,
    /// The account that owns the resource (the engine's account).
    pub resource_account: &'a str,
    /// The key's (or secret's) policy document, if it has one.
    pub policy: Option<&'a str>,
    /// The account that created the resource; `None` for account-level operations.
    pub creator: Option<&'a str>,
    /// The KMS instance of the resource, or of the key being created.
    pub instance_id: Option<&'a str>,
}

/// The authorizer's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The call may proceed.
    Allow,
    /// The call is refused (`Forbidden.NoPermission`).
    Deny,
}

/// Decides whether a call may proceed. Consulted on every operation, so it must be cheap;
/// cache parsed policies.
pub trait Authorizer: Send + Sync {
    /// The decision for one request.
    fn authorize(&self, request: &AccessRequest<'_>) -> Decision;

    /// Checks a policy document before CreateKey or SetKeyPolicy stores it.
    ///
    /// Errors: `InvalidParameter` naming `Policy` and what is wrong. The default accepts any
    /// document of at most 32768 bytes that is a JSON object.
    fn validate_policy(&self, document: &str) -> Result<(), KmsError> {
        if document.len() > MAX_POLICY_BYTES {
            return Err(KmsError::invalid(
                "Policy",
                format!(
                    "is {} bytes; at most {MAX_POLICY_BYTES} are allowed",
                    document.len()
                ),
            ));
        }
        match serde_json::from_str::<serde_json::Value>(document) {
            Ok(serde_json::Value::Object(_)) => Ok(()),
            _ => Err(KmsError::invalid("Policy", "must be a JSON object")),
        }
    }

    /// The policy GetKeyPolicy shows for a resource without a policy of its own: the owning
    /// account has full control.
    fn default_policy(&self, request: &AccessRequest<'_>) -> String {
        default_policy_document(&[request.resource_account])
    }
}

/// Longest policy document, in bytes.
pub const MAX_POLICY_BYTES: usize = 32768;

/// The default key policy: every principal of the listed accounts may do everything.
pub fn default_policy_document(accounts: &[&str]) -> String {
    let principals: Vec<String> = accounts.iter().map(|a| schema::ram_arn(a, "*")).collect();
    serde_json::json!({
        "Version": "1",
        "Statement": [{
            "Sid": "Enable account permissions",
            "Effect": "Allow",
            "Principal": {"RAM": principals},
            "Action": ["kms:*"],
            "Resource": ["*"],
        }]
    })
    .to_string()
}

/// Allows everything: for hosts that authorize before calling the engine.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Authorizer for AllowAll {
    fn authorize(&self, _: &AccessRequest<'_>) -> Decision {
        Decision::Allow
    }
}

/// Allows only callers of the owning account: the default policy ("the owning account has
/// full control"), without policy documents.
#[derive(Debug, Clone, Copy, Default)]
pub struct SameAccountOnly;

impl Authorizer for SameAccountOnly {
    fn authorize(&self, request: &AccessRequest<'_>) -> Decision {
        if request.caller.account_id == request.resource_account {
            Decision::Allow
        } else {
            Decision::Deny
        }
    }
}

impl<A: Authorizer + ?Sized> Authorizer for std::sync::Arc<A> {
    fn authorize(&self, request: &AccessRequest<'_>) -> Decision {
        (**self).authorize(request)
    }
    fn validate_policy(&self, document: &str) -> Result<(), KmsError> {
        (**self).validate_policy(document)
    }
    fn default_policy(&self, request: &AccessRequest<'_>) -> String {
        (**self).default_policy(request)
    }
}
