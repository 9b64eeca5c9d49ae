//! [`PolicyAuthorizer`]: kms-core's `Authorizer` over key policies and KMS instances.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use kms_core::auth::{default_policy_document, AccessRequest, Authorizer, Decision};
use kms_core::KmsError;

use crate::document::{PolicyDocument, RequestContext, Verdict};

/// Parsed policies kept per document text; more than this many distinct documents and the
/// cache starts over (each key's policy is parsed again on its next use).
const MAX_CACHED_POLICIES: usize = 4096;

#[derive(Debug, Clone)]
struct Instance {
    owner: String,
    shared_with: HashSet<String>,
}

/// Authorizes every engine call by the resource's key policy, or by the default policy when
/// the resource has none.
///
/// - A key with a policy document: explicit Deny wins, then Allow, else deny.
/// - A key without one (the default policy): every principal of the owning account has full
///   control. For a key in a shared KMS instance, the seed's rule: a key created by the
///   instance owner is the owner's alone; a key created by an account the instance is shared
///   with is usable by both.
/// - Account-level actions (CreateKey, ListKeys, ListAliases...): the owning account; and
///   CreateKey in a KMS instance shared with the caller's account.
///
/// Parsed documents are cached by their text, so the hot path parses nothing.
#[derive(Debug, Default)]
pub struct PolicyAuthorizer {
    instances: RwLock<HashMap<String, Instance>>,
    cache: RwLock<HashMap<Arc<str>, Arc<PolicyDocument>>>,
}

impl PolicyAuthorizer {
    /// An authorizer with no KMS instances.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a KMS instance owned by `owner_account`.
    pub fn add_instance(&self, instance_id: &str, owner_account: &str) {
        if let Ok(mut m) = self.instances.write() {
            m.insert(
                instance_id.to_owned(),
                Instance {
                    owner: owner_account.to_owned(),
                    shared_with: HashSet::new(),
                },
            );
        }
    }

    /// Shares an instance with another account.
    ///
    /// Errors: `InvalidParameter` naming `DKMSInstanceId` for an unknown instance.
    pub fn share_instance(&self, instance_id: &str, account: &str) -> Result<(), KmsError> {
        let mut m = self
            .instances
            .write()
            .map_err(|_| KmsError::internal("instance lock poisoned"))?;
        let inst = m.get_mut(instance_id).ok_or_else(|| {
            KmsError::invalid(
                "DKMSInstanceId",
                format!("{instance_id:?} is not an instance"),
            )
        })?;
        inst.shared_with.insert(account.to_owned());
        Ok(())
    }

    /// Parses a document, or returns it from the cache.
    pub fn parsed(&self, text: &str) -> Result<Arc<PolicyDocument>, KmsError> {
        if let Some(doc) = self.cache.read().ok().and_then(|c| c.get(text).cloned()) {
            return Ok(doc);
        }
        let doc = Arc::new(PolicyDocument::parse(text)?);
        if let Ok(mut c) = self.cache.write() {
            if c.len() >= MAX_CACHED_POLICIES {
                c.clear();
            }
            c.insert(Arc::from(text), doc.clone());
        }
        Ok(doc)
    }

    /// The accounts the default policy gives full control of a resource.
    fn default_accounts<'a>(&self, request: &AccessRequest<'a>) -> Vec<String> {
        let owner = request.resource_account.to_owned();
        let Some(instance_id) = request.instance_id else {
            return vec![owner];
        };
        let instances = match self.instances.read() {
            Ok(i) => i,
            Err(_) => return vec![owner],
        };
        let Some(inst) = instances.get(instance_id) else {
            return vec![owner];
        };
        match request.creator {
            // Account-level (CreateKey into the instance): owner and every sharing account.
            None => std::iter::once(inst.owner.clone())
                .chain(inst.shared_with.iter().cloned())
                .collect(),
            Some(c) if c != inst.owner && inst.shared_with.contains(c) => {
                vec![inst.owner.clone(), c.to_owned()]
            }
            Some(_) => vec![inst.owner.clone()],
        }
    }
}

impl Authorizer for PolicyAuthorizer {
    fn authorize(&self, request: &AccessRequest<'_>) -> Decision {
        let caller = request.caller;
        let Some(text) = request.policy else {
            let allowed = if request.resource == "*" && request.instance_id.is_none() {
                caller.account_id == request.resource_account
            } else {
                self.default_accounts(request).contains(&caller.account_id)
            };
            return if allowed {
                Decision::Allow
            } else {
                Decision::Deny
            };
        };
        // A stored document that no longer parses denies: never fail open.
        let Ok(doc) = self.parsed(text) else {
            return Decision::Deny;
        };
        let arn = caller.arn();
        let ctx = RequestContext {
            caller,
            principal_arn: &arn,
            action: request.action.as_str(),
            resource: request.resource,
        };
        match doc.evaluate(&ctx) {
            Verdict::Allow => Decision::Allow,
            Verdict::ExplicitDeny | Verdict::NoMatch => Decision::Deny,
        }
    }

    fn validate_policy(&self, document: &str) -> Result<(), KmsError> {
        self.parsed(document).map(|_| ())
    }

    fn default_policy(&self, request: &AccessRequest<'_>) -> String {
        let accounts = self.default_accounts(request);
        let refs: Vec<&str> = accounts.iter().map(String::as_str).collect();
        default_policy_document(&refs)
    }
}
