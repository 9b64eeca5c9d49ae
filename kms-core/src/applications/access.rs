//! Authorization of applications: a call made with a client key is allowed when the client
//! key is inside its validity window and one of its AAP's policies covers it: the policy's
//! instance is the resource's, its permissions include what the action needs, one of its
//! resources matches, and the caller's source address lies in one of its network rules.
//! Anything else an AAP asks (management actions, other instances) is refused.

use std::net::IpAddr;

use crate::applications::model::*;
use crate::crypto::asym::PublicKey;
use crate::engine::Kms;
use crate::error::KmsError;
use crate::policy::{AccessRequest, Caller, Principal};
use crate::schema;

/// The identity of an application's call: which AAP, through which client key, from where.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccessPointCaller {
    /// The AAP's name.
    pub name: String,
    /// The client key the call was signed with (`KAAP.<uuid>`).
    pub client_key_id: String,
    /// The address the call came from (network rules need one).
    pub source: Option<IpAddr>,
}

/// A client key as the gateway needs it to authenticate a request.
#[derive(Debug, Clone)]
pub struct ClientKeyCredential {
    /// The AAP the key belongs to.
    pub aap_name: String,
    /// The key's public half, to verify request signatures with.
    pub public_key: PublicKey,
    /// Start of validity.
    pub not_before: crate::time::UnixTime,
    /// End of validity.
    pub not_after: crate::time::UnixTime,
}

/// `Forbidden.NoPermission` for an application.
fn refused(request: &AccessRequest<'_>, why: &str) -> KmsError {
    KmsError::NoPermission {
        action: request.action.as_str().to_owned(),
        principal: format!("{} ({why})", request.caller.arn()),
        resource: request.resource.to_owned(),
    }
}

impl Kms {
    /// The client key `client_key_id`, for authenticating a request signed with it.
    ///
    /// Errors: `Forbidden.ResourceNotFound` for an unknown or malformed id.
    pub fn client_key_credential(
        &self,
        client_key_id: &str,
    ) -> Result<ClientKeyCredential, KmsError> {
        let well_formed = client_key_id
            .strip_prefix(CLIENT_KEY_PREFIX)
            .is_some_and(crate::ids::is_uuid);
        let not_found = || KmsError::ResourceNotFound {
            resource: client_key_id.to_owned(),
        };
        if !well_formed {
            return Err(not_found());
        }
        let (rec, _) = self
            .read::<ClientKeyRecord>(&schema::client_key(client_key_id))?
            .ok_or_else(not_found)?;
        let cert =
            crate::certificates::x509::parse_certificate("PublicKeyData", &rec.certificate_pem)?;
        let spki = crate::certificates::x509::public_key_der(&cert)?;
        let public_key = PublicKey::from_spki_der("PublicKeyData", &spki)?;
        Ok(ClientKeyCredential {
            aap_name: rec.aap_name,
            public_key,
            not_before: rec.not_before,
            not_after: rec.not_after,
        })
    }

    /// The caller an application's request runs as, once its signature verified with the
    /// client key's public key.
    pub fn access_point_caller(
        &self,
        credential: &ClientKeyCredential,
        client_key_id: &str,
        source: Option<IpAddr>,
    ) -> Caller {
        Caller {
            account_id: self.scope.account_id.clone(),
            principal: Principal::AccessPoint(AccessPointCaller {
                name: credential.aap_name.clone(),
                client_key_id: client_key_id.to_owned(),
                source,
            }),
            via_service: None,
        }
    }

    /// Checks that an application's client key exists, belongs to its AAP and is inside its
    /// validity window; returns the AAP.
    ///
    /// Errors: `Forbidden.NoPermission` naming why.
    pub(crate) fn live_access_point(
        &self,
        request: &AccessRequest<'_>,
        who: &AccessPointCaller,
    ) -> Result<AccessPointRecord, KmsError> {
        let key = self
            .read::<ClientKeyRecord>(&schema::client_key(&who.client_key_id))?
            .map(|(k, _)| k)
            .filter(|k| k.aap_name == who.name)
            .ok_or_else(|| refused(request, "the client key does not exist"))?;
        let now = self.clock.now();
        if now < key.not_before || now > key.not_after {
            return Err(KmsError::ClientKeyNotValid {
                client_key_id: key.id,
                reason: format!(
                    "it is valid from {} to {}, and it is {now}",
                    key.not_before, key.not_after
                ),
            });
        }
        self.read::<AccessPointRecord>(&schema::access_point(&who.name))?
            .map(|(a, _)| a)
            .ok_or_else(|| refused(request, "the application access point does not exist"))
    }

    /// The decision on an application's request; see the module documentation.
    pub(crate) fn authorize_access_point(
        &self,
        request: &AccessRequest<'_>,
        who: &AccessPointCaller,
    ) -> Result<(), KmsError> {
        let aap = self.live_access_point(request, who)?;
        let Some(needed) = Permission::needed_for(request.action) else {
            return Err(refused(
                request,
                "applications may only use keys and read secrets",
            ));
        };
        // `acs:kms:<region>:<account>:key/<id>` → `key/<id>`.
        let prefix = format!(
            "{}{}:{}:",
            schema::ARN_PREFIX,
            self.scope.region,
            self.scope.account_id
        );
        let Some(resource) = request.resource.strip_prefix(&prefix) else {
            return Err(refused(request, "the resource is not this account's"));
        };
        let instance = self.instances.of(request.instance_id);
        let shared = request.instance_id.is_none_or(str::is_empty);
        for name in &aap.policies {
            let Some((policy, _)) = self.read::<PolicyRecord>(&schema::aap_policy(name))? else {
                continue;
            };
            let in_scope =
                policy.kms_instance == instance || (shared && policy.kms_instance == SHARED_SCOPE);
            let grants = in_scope
                && policy
                    .permissions
                    .iter()
                    .any(|p| Permission::parse(p).is_ok_and(|p| p == needed))
                && policy.resources.iter().any(|r| glob_matches(r, resource));
            if grants && self.source_allowed(&policy, who.source)? {
                return Ok(());
            }
        }
        Err(refused(
            request,
            "no policy of the application access point allows this from this address",
        ))
    }

    /// Whether `source` lies in one of the policy's network rules.
    fn source_allowed(
        &self,
        policy: &PolicyRecord,
        source: Option<IpAddr>,
    ) -> Result<bool, KmsError> {
        let Some(addr) = source else {
            return Ok(false);
        };
        for name in &policy.network_rules {
            let Some((rule, _)) = self.read::<NetworkRuleRecord>(&schema::network_rule(name))?
            else {
                continue;
            };
            if rule
                .source_private_ip
                .iter()
                .filter_map(|s| parse_source(s).ok())
                .any(|s| s.contains(addr))
            {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
