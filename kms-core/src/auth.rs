//! Authorization: who is calling ([`Caller`]), what they ask ([`Action`]), and the
//! [`Authorizer`] the engine consults before every operation.

use std::fmt;

/// The principal a call is made as.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// The account itself (its root identity).
    Root,
    /// A RAM user of the account, by name.
    User(String),
    /// A RAM role of the account, by name.
    Role(String),
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

    /// The principal's ARN: `acs:ram::<uid>:root`, `...:user/<name>` or `...:role/<name>`.
    pub fn arn(&self) -> String {
        match &self.principal {
            Principal::Root => format!("acs:ram::{}:root", self.account_id),
            Principal::User(n) => format!("acs:ram::{}:user/{}", self.account_id, n),
            Principal::Role(n) => format!("acs:ram::{}:role/{}", self.account_id, n),
        }
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arn())
    }
}

/// An API action, named as in key policies (`kms:Encrypt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Action(&'static str);

impl Action {
    /// The action for an operation name (`Encrypt` → `kms:Encrypt`).
    pub const fn new(policy_name: &'static str) -> Self {
        Action(policy_name)
    }

    /// The policy name, e.g. `kms:Encrypt`.
    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// What the engine asks the authorizer.
#[derive(Debug, Clone, Copy)]
pub struct AccessRequest<'a> {
    /// Who is calling.
    pub caller: &'a Caller,
    /// What they want to do.
    pub action: Action,
    /// The resource ARN, or `*` for account-level operations (CreateKey, ListKeys...).
    pub resource: &'a str,
    /// The account that owns the resource.
    pub resource_account: &'a str,
    /// The key's (or secret's) policy document, if it has one.
    pub policy: Option<&'a str>,
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
}
