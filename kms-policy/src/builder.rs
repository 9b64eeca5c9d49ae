//! Ready-made policy documents: the default policy and the custom-policy roles of Alibaba's key
//! management guide.

use serde_json::{json, Value};

use crate::actions::{ADMINISTRATOR_ACTIONS, USER_ACTIONS};

/// Builds a key policy from the guide's roles. The owning account's root always keeps full
/// control, so a policy can never lock the owner out of its own key.
///
/// ```
/// let policy = kms_policy::PolicyBuilder::new("1234")
///     .administrator("acs:ram::1234:user/alice")
///     .user("acs:ram::1234:role/app")
///     .cross_account_user("acs:ram::5678:user/partner")
///     .build();
/// kms_policy::PolicyDocument::parse(&policy).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct PolicyBuilder {
    account_id: String,
    administrators: Vec<String>,
    users: Vec<String>,
    cross_account_users: Vec<String>,
}

fn statement(sid: &str, principals: &[String], actions: &[&str]) -> Value {
    json!({
        "Sid": sid,
        "Effect": "Allow",
        "Principal": {"RAM": principals},
        "Action": actions,
        "Resource": ["*"],
    })
}

impl PolicyBuilder {
    /// A policy for a key of `account_id`.
    pub fn new(account_id: impl Into<String>) -> Self {
        PolicyBuilder {
            account_id: account_id.into(),
            administrators: Vec::new(),
            users: Vec::new(),
            cross_account_users: Vec::new(),
        }
    }

    /// A RAM user or role of the account that manages the key but cannot use it.
    pub fn administrator(mut self, principal_arn: impl Into<String>) -> Self {
        self.administrators.push(principal_arn.into());
        self
    }

    /// A RAM user or role of the account that uses the key for cryptography.
    pub fn user(mut self, principal_arn: impl Into<String>) -> Self {
        self.users.push(principal_arn.into());
        self
    }

    /// A RAM user or role of another account that uses the key for cryptography.
    pub fn cross_account_user(mut self, principal_arn: impl Into<String>) -> Self {
        self.cross_account_users.push(principal_arn.into());
        self
    }

    /// The policy document as JSON text.
    pub fn build(self) -> String {
        let mut statements = vec![statement(
            "Enable account root permissions",
            &[format!("acs:ram::{}:root", self.account_id)],
            &["kms:*"],
        )];
        if !self.administrators.is_empty() {
            statements.push(statement(
                "Key administrators",
                &self.administrators,
                ADMINISTRATOR_ACTIONS,
            ));
        }
        if !self.users.is_empty() {
            statements.push(statement("Key users", &self.users, USER_ACTIONS));
        }
        if !self.cross_account_users.is_empty() {
            statements.push(statement(
                "Cross-account key users",
                &self.cross_account_users,
                USER_ACTIONS,
            ));
        }
        json!({"Version": "1", "Statement": statements}).to_string()
    }
}
