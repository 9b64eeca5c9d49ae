//! [`PolicyAuthorizer`]: kms-core's `Authorizer` over key policies and KMS instances.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use kms_core::KmsError;
use kms_core::{default_policy_document, AccessRequest, Authorizer, Decision, Principal};

use crate::document::{PolicyDocument, RequestContext, ResourceVerdict, Verdict};

/// Parsed policies kept per document text; more than this many distinct documents and the
/// cache starts over (each key's policy is parsed again on its next use).
const MAX_CACHED_POLICIES: usize = 4096;

#[derive(Debug, Clone)]
struct Instance {
    owner: String,
    shared_with: HashSet<String>,
}

/// Authorizes every engine call as Alibaba RAM and AWS evaluate a request: by the resource's
/// policy (the key's or secret's document, or the default policy when it has none) together
/// with the caller's *identity policies* (RAM policy documents attached to RAM users and roles
/// with [`PolicyAuthorizer::attach_identity_policy`]).
///
/// 1. An explicit Deny in an identity policy or in the resource policy refuses.
/// 2. A resource policy that allows the caller itself (its ARN, a `user/*` pattern, `*`)
///    allows a caller of the owning account. A caller of another account also needs its own
///    account's consent: its identity policy must allow the action (an account root consents
///    for itself).
/// 3. A resource policy that allows only the caller's account (`acs:ram::<account>:root` or
///    `acs:ram::<account>:*`; the default policy does this for the owning account) allows the
///    account root, and a RAM user or role as far as its identity policy allows the action on
///    the resource ARN.
/// 4. Anything else is refused: a RAM user or role with no identity policy can do nothing the
///    resource policy does not grant it by name.
///
/// The default policy gives full control to the owning account. For a key in a shared KMS instance,
/// the rule of Alibaba's key management guide: a key created by the instance owner is the owner's
/// alone; a key created by an account the instance is shared with belongs to both. Account-level
/// actions (CreateKey, ListKeys, ListSecrets...) are authorized on the collection ARN
/// (`acs:kms:<region>:<account>:key`...) under the default policy of the owning account (and
/// CreateKey in an instance shared with the caller's account).
///
/// Parsed documents are cached by their text, so the hot path parses nothing.
#[derive(Debug, Default)]
pub struct PolicyAuthorizer {
    instances: RwLock<HashMap<String, Instance>>,
    cache: RwLock<HashMap<Arc<str>, Arc<PolicyDocument>>>,
    identities: RwLock<HashMap<String, Vec<Arc<PolicyDocument>>>>,
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

    /// Attaches a RAM identity policy (a document without `Principal`) to a RAM user or role,
    /// by its ARN (`acs:ram::<account>:user/<name>` or `...:role/<name>`). A principal may have
    /// several; their statements apply together. The account root needs none: it has full
    /// control of whatever its account's resource policies grant the account.
    ///
    /// Errors: `InvalidParameter` naming `Policy` for a malformed document, or naming
    /// `Principal` for an ARN that is not a RAM user or role.
    pub fn attach_identity_policy(
        &self,
        principal_arn: &str,
        document: &str,
    ) -> Result<(), KmsError> {
        let is_user_or_role = principal_arn
            .strip_prefix("acs:ram::")
            .and_then(|rest| rest.split_once(':'))
            .is_some_and(|(account, who)| {
                !account.is_empty()
                    && account.bytes().all(|c| c.is_ascii_digit())
                    && who
                        .strip_prefix("user/")
                        .or_else(|| who.strip_prefix("role/"))
                        .is_some_and(|n| !n.is_empty())
            });
        if !is_user_or_role {
            return Err(KmsError::invalid(
                "Principal",
                format!(
                    "{principal_arn:?} is not acs:ram::<account>:user/<name> or \
                     acs:ram::<account>:role/<name>"
                ),
            ));
        }
        let doc = Arc::new(PolicyDocument::parse_identity(document)?);
        let mut m = self
            .identities
            .write()
            .map_err(|_| KmsError::internal("identity policy lock poisoned"))?;
        m.entry(principal_arn.to_owned()).or_default().push(doc);
        Ok(())
    }

    /// Detaches every identity policy of a principal.
    pub fn detach_identity_policies(&self, principal_arn: &str) {
        if let Ok(mut m) = self.identities.write() {
            m.remove(principal_arn);
        }
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

impl PolicyAuthorizer {
    /// The identity verdict: explicit Deny, Allow, or no match (also for a principal with no
    /// identity policy).
    fn identity_verdict(&self, ctx: &RequestContext<'_>) -> Verdict {
        let Ok(identities) = self.identities.read() else {
            // Fail closed: a poisoned lock denies.
            return Verdict::ExplicitDeny;
        };
        let Some(docs) = identities.get(ctx.principal_arn) else {
            return Verdict::NoMatch;
        };
        let mut verdict = Verdict::NoMatch;
        for doc in docs {
            match doc.evaluate(ctx) {
                Verdict::ExplicitDeny => return Verdict::ExplicitDeny,
                Verdict::Allow => verdict = Verdict::Allow,
                Verdict::NoMatch => {}
            }
        }
        verdict
    }

    /// The resource verdict, from the stored document or the default policy.
    fn resource_verdict(
        &self,
        request: &AccessRequest<'_>,
        ctx: &RequestContext<'_>,
    ) -> ResourceVerdict {
        match request.policy {
            // A stored document that no longer parses denies: never fail open.
            Some(text) => match self.parsed(text) {
                Ok(doc) => doc.evaluate_resource(ctx),
                Err(_) => ResourceVerdict::ExplicitDeny,
            },
            None => {
                let caller_account = &request.caller.account_id;
                let allowed = if request.creator.is_none() && request.instance_id.is_none() {
                    *caller_account == request.resource_account
                } else {
                    self.default_accounts(request).contains(caller_account)
                };
                if allowed {
                    ResourceVerdict::AllowAccount
                } else {
                    ResourceVerdict::NoMatch
                }
            }
        }
    }
}

impl Authorizer for PolicyAuthorizer {
    fn authorize(&self, request: &AccessRequest<'_>) -> Decision {
        let caller = request.caller;
        let arn = caller.arn();
        let ctx = RequestContext {
            caller,
            principal_arn: &arn,
            action: request.action.as_str(),
            resource: request.resource,
        };
        let is_root = caller.principal == Principal::Root;
        let identity = if is_root {
            Verdict::NoMatch
        } else {
            self.identity_verdict(&ctx)
        };
        if identity == Verdict::ExplicitDeny {
            return Decision::Deny;
        }
        // The caller's own account consents: its root always, its users and roles through
        // their identity policies.
        let own_account_allows = is_root || identity == Verdict::Allow;
        let same_account = caller.account_id == request.resource_account;
        let allowed = match self.resource_verdict(request, &ctx) {
            ResourceVerdict::ExplicitDeny | ResourceVerdict::NoMatch => false,
            ResourceVerdict::AllowPrincipal => same_account || own_account_allows,
            ResourceVerdict::AllowAccount => own_account_allows,
        };
        if allowed {
            Decision::Allow
        } else {
            Decision::Deny
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
