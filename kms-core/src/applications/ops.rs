//! The OpenAPI operations of KMS 3.0 applications: KMS instances (GetKmsInstance,
//! ListKmsInstances, GetDefaultKmsInstance), network rules, policies, application access
//! points and client keys.
//!
//! References by name are resolved when an application calls, as Alibaba's: a policy may
//! name network rules, and an AAP policies, that do not exist yet (they grant nothing until
//! they do). A client key belongs to an AAP that exists, and deleting an AAP deletes its
//! client keys in the same commit, so that an AAP made later under the same name never
//! inherits an old credential.

use serde::de::DeserializeOwned;

use crate::api::EmptyResponse;
use crate::applications::api::*;
use crate::applications::client_key;
use crate::applications::model::*;
use crate::engine::mutate::Record;
use crate::engine::Kms;
use crate::error::KmsError;
use crate::ids::new_uuid;
use crate::policy::{AccessRequest, Action, Caller};
use crate::schema;
use crate::storage::{Batch, Precondition};
use crate::time::UnixTime;
use crate::validate;

/// Default page size of these lists.
const PAGE_SIZE: i64 = 20;

/// The KMS instances an engine serves: a default one, and any more its host declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Instances {
    /// The default instance: keys and secrets created without `DKMSInstanceId` belong to it.
    pub(crate) default: String,
    /// Every instance, the default first.
    pub(crate) all: Vec<String>,
    /// The CA chain (PEM) the instance gateway's certificate chains to, if the host said.
    pub(crate) ca_pem: String,
    /// When this engine started (GetKmsInstance's CreateTime).
    pub(crate) started: UnixTime,
}

impl Instances {
    /// The default instance id of an account and region when the host names none:
    /// `kst-` and 21 characters derived from both, so that it is the same at every start and
    /// on every engine of one store.
    pub(crate) fn default_id(account_id: &str, region: &str) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(format!("kms-instance\0{account_id}\0{region}"));
        const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
        let mut id = String::from("kst-");
        id.extend(
            digest
                .iter()
                .take(21)
                .filter_map(|b| ALPHABET.get(usize::from(b & 31)).copied().map(char::from)),
        );
        id
    }

    /// Whether `id` is one of the instances.
    pub(crate) fn contains(&self, id: &str) -> bool {
        self.all.iter().any(|i| i == id)
    }

    /// The instance a key or secret belongs to: its own, or the default.
    pub(crate) fn of<'a>(&'a self, own: Option<&'a str>) -> &'a str {
        own.filter(|s| !s.is_empty()).unwrap_or(&self.default)
    }
}

fn not_found(name: &str) -> KmsError {
    KmsError::ResourceNotFound {
        resource: name.to_owned(),
    }
}

impl Kms {
    fn authorize_named(&self, caller: &Caller, action: Action, arn: &str) -> Result<(), KmsError> {
        self.decide(&AccessRequest {
            caller,
            action,
            resource: arn,
            resource_account: &self.scope.account_id,
            policy: None,
            creator: Some(&self.scope.account_id),
            instance_id: None,
        })
    }

    /// A named record and its revision.
    ///
    /// Errors: `Forbidden.ResourceNotFound`.
    pub(crate) fn load_named<R: DeserializeOwned>(
        &self,
        record_key: &[u8],
        name: &str,
    ) -> Result<(R, u64), KmsError> {
        self.read::<R>(record_key)?
            .map(|(r, e)| (r, e.revision))
            .ok_or_else(|| not_found(name))
    }

    fn create_named<R: Record>(&self, record: &R, name: &str) -> Result<(), KmsError> {
        let rk = record.record_key();
        if self.read::<serde_json::Value>(&rk)?.is_some() {
            return Err(KmsError::ResourceExist {
                resource: name.to_owned(),
            });
        }
        let mut batch = Batch::new();
        self.stage_put(&mut batch, rk, record, Precondition::Absent)?;
        self.commit(batch)
    }

    /// Deletes the record `name` of kind `R` under the write lock, if it is still the revision
    /// read.
    ///
    /// Errors: `Forbidden.ResourceNotFound`; storage errors.
    fn delete_named<R: DeserializeOwned>(
        &self,
        record_key: Vec<u8>,
        name: &str,
    ) -> Result<EmptyResponse, KmsError> {
        let _guard = self.write_guard()?;
        let (_, revision) = self.load_named::<R>(&record_key, name)?;
        let mut batch = Batch::new();
        batch.delete_if(record_key, Precondition::Revision(revision));
        self.commit(batch)?;
        Ok(EmptyResponse {
            request_id: self.request_id(),
        })
    }

    fn list_named<R: DeserializeOwned>(
        &self,
        prefix: &[u8],
        req: &ListPageRequest,
    ) -> Result<validate::Paged<R>, KmsError> {
        let page = validate::paging(req.page_number, req.page_size, PAGE_SIZE)?;
        let all: Vec<R> = self
            .scan_all(prefix)?
            .into_iter()
            .map(|(_, r, _)| r)
            .collect();
        Ok(page.take(all))
    }

    fn check_policy_count(names: &[String]) -> Result<(), KmsError> {
        if names.is_empty() {
            return Err(KmsError::missing("Policies"));
        }
        if names.len() > MAX_AAP_POLICIES {
            return Err(KmsError::invalid(
                "Policies",
                format!("an application access point has at most {MAX_AAP_POLICIES} policies"),
            ));
        }
        for n in names {
            validate_name("Policies", n)?;
        }
        Ok(())
    }

    // ---- instances ------------------------------------------------------------------------

    /// The default KMS instance's id.
    pub fn default_kms_instance(&self) -> &str {
        &self.instances.default
    }

    /// GetDefaultKmsInstance.
    ///
    /// Errors: `Forbidden.NoPermission`.
    pub fn get_default_kms_instance(
        &self,
        caller: &Caller,
        _req: crate::api::NoParamsRequest,
    ) -> Result<GetDefaultKmsInstanceResponse, KmsError> {
        self.authorize_account(caller, Action::GetDefaultKmsInstance, None)?;
        Ok(GetDefaultKmsInstanceResponse {
            request_id: self.request_id(),
            default_kms_instance_id: self.instances.default.clone(),
        })
    }

    /// ListKmsInstances.
    ///
    /// Errors: `InvalidParameter` (paging), `Forbidden.NoPermission`.
    pub fn list_kms_instances(
        &self,
        caller: &Caller,
        req: ListPageRequest,
    ) -> Result<ListKmsInstancesResponse, KmsError> {
        self.authorize_account(caller, Action::ListKmsInstances, None)?;
        let page = validate::paging(req.page_number, req.page_size, PAGE_SIZE)?;
        let paged = page.take(self.instances.all.clone());
        Ok(ListKmsInstancesResponse {
            request_id: self.request_id(),
            kms_instances: KmsInstanceList {
                kms_instance: paged
                    .items
                    .into_iter()
                    .map(|id| KmsInstanceEntry {
                        kms_instance_arn: self.scope.instance_arn(&id),
                        kms_instance_id: id,
                    })
                    .collect(),
            },
            page_number: paged.page_number,
            page_size: paged.page_size,
            total_count: paged.total_count,
        })
    }

    /// GetKmsInstance: the instance, with the number of its keys and secrets.
    ///
    /// Errors: `MissingParameter`, `Forbidden.ResourceNotFound`, `Forbidden.NoPermission`.
    pub fn get_kms_instance(
        &self,
        caller: &Caller,
        req: GetKmsInstanceRequest,
    ) -> Result<GetKmsInstanceResponse, KmsError> {
        validate::required("KmsInstanceId", &req.kms_instance_id)?;
        if !self.instances.contains(&req.kms_instance_id) {
            return Err(KmsError::InstanceNotFound {
                instance_id: req.kms_instance_id,
            });
        }
        let arn = self.scope.instance_arn(&req.kms_instance_id);
        self.authorize_named(caller, Action::GetKmsInstance, &arn)?;
        let id = &req.kms_instance_id;
        let keys = self
            .scan_all::<crate::keys::model::KeyRecord>(schema::KEY)?
            .into_iter()
            .filter(|(_, k, _)| self.instances.of(k.dkms_instance_id.as_deref()) == id)
            .count();
        let secrets = self
            .scan_all::<crate::secrets::rules::SecretRecord>(schema::SECRET)?
            .into_iter()
            .filter(|(_, s, _)| self.instances.of(s.dkms_instance_id.as_deref()) == id)
            .count();
        Ok(GetKmsInstanceResponse {
            request_id: self.request_id(),
            kms_instance: KmsInstanceInfo {
                instance_id: id.clone(),
                instance_name: id.clone(),
                status: "Connected".into(),
                product_type: "software".into(),
                product_version: "3".into(),
                create_time: self.instances.started,
                sale_status: "Normal".into(),
                key_num: i64::try_from(keys).unwrap_or(i64::MAX),
                secret_num: secrets.to_string(),
                ca_certificate_chain_pem: self.instances.ca_pem.clone(),
                vpc_id: String::new(),
                vswitch_ids: Vec::new(),
                zone_ids: Vec::new(),
            },
        })
    }

    // ---- network rules ---------------------------------------------------------------------

    /// CreateNetworkRule.
    ///
    /// Errors: `MissingParameter`/`InvalidParameter` (Name, Type, SourcePrivateIp,
    /// Description), `Rejected.ResourceExist`, `Forbidden.NoPermission`.
    pub fn create_network_rule(
        &self,
        caller: &Caller,
        req: CreateNetworkRuleRequest,
    ) -> Result<CreateNetworkRuleResponse, KmsError> {
        validate_name("Name", &req.name)?;
        validate::required("Type", &req.rule_type)?;
        if req.rule_type != NETWORK_PRIVATE {
            return Err(KmsError::invalid(
                "Type",
                format!("{:?} is not {NETWORK_PRIVATE}", req.rule_type),
            ));
        }
        let sources = parse_sources(&req.source_private_ip)?;
        let description = validate_description(req.description.as_deref())?;
        self.authorize_account(caller, Action::CreateNetworkRule, None)?;
        let now = self.clock.now();
        let rec = NetworkRuleRecord {
            name: req.name.clone(),
            description,
            rule_type: req.rule_type,
            source_private_ip: sources,
            created: now,
            updated: now,
        };
        {
            let _guard = self.write_guard()?;
            self.create_named(&rec, &rec.name)?;
        }
        Ok(CreateNetworkRuleResponse {
            request_id: self.request_id(),
            arn: self.scope.network_rule_arn(&rec.name),
            source_private_ip: list_text(&rec.source_private_ip),
            name: rec.name,
            rule_type: rec.rule_type,
            description: rec.description,
        })
    }

    /// DescribeNetworkRule.
    ///
    /// Errors: `Forbidden.ResourceNotFound`, `Forbidden.NoPermission`.
    pub fn describe_network_rule(
        &self,
        caller: &Caller,
        req: NameRequest,
    ) -> Result<DescribeNetworkRuleResponse, KmsError> {
        validate_name("Name", &req.name)?;
        let arn = self.scope.network_rule_arn(&req.name);
        self.authorize_named(caller, Action::DescribeNetworkRule, &arn)?;
        let (rec, _) =
            self.load_named::<NetworkRuleRecord>(&schema::network_rule(&req.name), &req.name)?;
        Ok(DescribeNetworkRuleResponse {
            request_id: self.request_id(),
            arn,
            rule_type: rec.rule_type,
            source_private_ip: list_text(&rec.source_private_ip),
            description: rec.description,
        })
    }

    /// UpdateNetworkRule: new addresses and/or description.
    ///
    /// Errors: as [`Kms::create_network_rule`]; `Forbidden.ResourceNotFound`.
    pub fn update_network_rule(
        &self,
        caller: &Caller,
        req: UpdateNetworkRuleRequest,
    ) -> Result<EmptyResponse, KmsError> {
        validate_name("Name", &req.name)?;
        let sources = req
            .source_private_ip
            .as_deref()
            .map(parse_sources)
            .transpose()?;
        let description = req
            .description
            .as_deref()
            .map(|d| validate_description(Some(d)))
            .transpose()?;
        let arn = self.scope.network_rule_arn(&req.name);
        self.authorize_named(caller, Action::UpdateNetworkRule, &arn)?;
        let rk = schema::network_rule(&req.name);
        self.mutate(
            |_| self.load_named::<NetworkRuleRecord>(&rk, &req.name),
            |r, now| {
                let mut next = r.clone();
                if let Some(s) = &sources {
                    next.source_private_ip = s.clone();
                }
                if let Some(d) = &description {
                    next.description = d.clone();
                }
                if next != *r {
                    next.updated = now;
                }
                Ok(next)
            },
            |_| Ok(()),
        )?;
        Ok(EmptyResponse {
            request_id: self.request_id(),
        })
    }

    /// DeleteNetworkRule.
    ///
    /// Errors: `Forbidden.ResourceNotFound`, `Forbidden.NoPermission`.
    pub fn delete_network_rule(
        &self,
        caller: &Caller,
        req: NameRequest,
    ) -> Result<EmptyResponse, KmsError> {
        validate_name("Name", &req.name)?;
        let arn = self.scope.network_rule_arn(&req.name);
        self.authorize_named(caller, Action::DeleteNetworkRule, &arn)?;
        self.delete_named::<NetworkRuleRecord>(schema::network_rule(&req.name), &req.name)
    }

    /// ListNetworkRules.
    ///
    /// Errors: `InvalidParameter` (paging), `Forbidden.NoPermission`.
    pub fn list_network_rules(
        &self,
        caller: &Caller,
        req: ListPageRequest,
    ) -> Result<ListNetworkRulesResponse, KmsError> {
        self.authorize_account(caller, Action::ListNetworkRules, None)?;
        let paged = self.list_named::<NetworkRuleRecord>(schema::NETWORK_RULE, &req)?;
        Ok(ListNetworkRulesResponse {
            request_id: self.request_id(),
            network_rules: NetworkRuleList {
                network_rule: paged
                    .items
                    .into_iter()
                    .map(|r| NetworkRuleEntry {
                        name: r.name,
                        rule_type: r.rule_type,
                    })
                    .collect(),
            },
            page_number: paged.page_number,
            page_size: paged.page_size,
            total_count: paged.total_count,
        })
    }

    // ---- policies --------------------------------------------------------------------------

    /// A policy's scope: an instance of this service, or `shared` (keys and secrets made
    /// without `DKMSInstanceId`).
    fn check_instance(&self, id: &str) -> Result<(), KmsError> {
        validate::required("KmsInstance", id)?;
        if self.instances.contains(id) || id == SHARED_SCOPE {
            Ok(())
        } else {
            Err(KmsError::invalid(
                "KmsInstance",
                format!("{id:?} is not a KMS instance of this service"),
            ))
        }
    }

    /// CreatePolicy.
    ///
    /// Errors: `MissingParameter`/`InvalidParameter` (Name, Permissions, Resources,
    /// KmsInstance, AccessControlRules), `Rejected.ResourceExist`, `Forbidden.NoPermission`.
    pub fn create_policy(
        &self,
        caller: &Caller,
        req: CreatePolicyRequest,
    ) -> Result<CreatePolicyResponse, KmsError> {
        validate_name("Name", &req.name)?;
        let permissions = parse_permissions(&req.permissions)?;
        let resources = parse_resources(&req.resources)?;
        self.check_instance(&req.kms_instance)?;
        validate::required("AccessControlRules", &req.access_control_rules)?;
        let network_rules = parse_access_control_rules(&req.access_control_rules)?;
        let description = validate_description(req.description.as_deref())?;
        self.authorize_account(caller, Action::CreatePolicy, None)?;
        let now = self.clock.now();
        let rec = PolicyRecord {
            name: req.name.clone(),
            description,
            permissions,
            resources,
            kms_instance: req.kms_instance,
            network_rules,
            created: now,
            updated: now,
        };
        {
            let _guard = self.write_guard()?;
            self.create_named(&rec, &rec.name)?;
        }
        Ok(CreatePolicyResponse {
            request_id: self.request_id(),
            arn: self.scope.aap_policy_arn(&rec.name),
            permissions: list_text(&rec.permissions),
            resources: list_text(&rec.resources),
            access_control_rules: access_control_rules_text(&rec.network_rules),
            name: rec.name,
            kms_instance: rec.kms_instance,
            description: rec.description,
        })
    }

    /// DescribePolicy.
    ///
    /// Errors: `Forbidden.ResourceNotFound`, `Forbidden.NoPermission`.
    pub fn describe_policy(
        &self,
        caller: &Caller,
        req: NameRequest,
    ) -> Result<DescribePolicyResponse, KmsError> {
        validate_name("Name", &req.name)?;
        let arn = self.scope.aap_policy_arn(&req.name);
        self.authorize_named(caller, Action::DescribePolicy, &arn)?;
        let (rec, _) =
            self.load_named::<PolicyRecord>(&schema::aap_policy(&req.name), &req.name)?;
        Ok(DescribePolicyResponse {
            request_id: self.request_id(),
            arn,
            access_control_rules: access_control_rules_text(&rec.network_rules),
            name: rec.name,
            permissions: rec.permissions,
            resources: rec.resources,
            kms_instance: rec.kms_instance,
            description: rec.description,
        })
    }

    /// UpdatePolicy: each field given replaces the policy's.
    ///
    /// Errors: as [`Kms::create_policy`]; `Forbidden.ResourceNotFound`.
    pub fn update_policy(
        &self,
        caller: &Caller,
        req: UpdatePolicyRequest,
    ) -> Result<EmptyResponse, KmsError> {
        validate_name("Name", &req.name)?;
        let permissions = req
            .permissions
            .as_deref()
            .map(parse_permissions)
            .transpose()?;
        let resources = req.resources.as_deref().map(parse_resources).transpose()?;
        let network_rules = req
            .access_control_rules
            .as_deref()
            .map(parse_access_control_rules)
            .transpose()?;
        let description = req
            .description
            .as_deref()
            .map(|d| validate_description(Some(d)))
            .transpose()?;
        let arn = self.scope.aap_policy_arn(&req.name);
        self.authorize_named(caller, Action::UpdatePolicy, &arn)?;
        let rk = schema::aap_policy(&req.name);
        self.mutate(
            |_| self.load_named::<PolicyRecord>(&rk, &req.name),
            |r, now| {
                let mut next = r.clone();
                if let Some(p) = &permissions {
                    next.permissions = p.clone();
                }
                if let Some(res) = &resources {
                    next.resources = res.clone();
                }
                if let Some(n) = &network_rules {
                    next.network_rules = n.clone();
                }
                if let Some(d) = &description {
                    next.description = d.clone();
                }
                if next != *r {
                    next.updated = now;
                }
                Ok(next)
            },
            |_| Ok(()),
        )?;
        Ok(EmptyResponse {
            request_id: self.request_id(),
        })
    }

    /// DeletePolicy.
    ///
    /// Errors: `Forbidden.ResourceNotFound`, `Forbidden.NoPermission`.
    pub fn delete_policy(
        &self,
        caller: &Caller,
        req: NameRequest,
    ) -> Result<EmptyResponse, KmsError> {
        validate_name("Name", &req.name)?;
        let arn = self.scope.aap_policy_arn(&req.name);
        self.authorize_named(caller, Action::DeletePolicy, &arn)?;
        self.delete_named::<PolicyRecord>(schema::aap_policy(&req.name), &req.name)
    }

    /// ListPolicies.
    ///
    /// Errors: `InvalidParameter` (paging), `Forbidden.NoPermission`.
    pub fn list_policies(
        &self,
        caller: &Caller,
        req: ListPageRequest,
    ) -> Result<ListPoliciesResponse, KmsError> {
        self.authorize_account(caller, Action::ListPolicies, None)?;
        let paged = self.list_named::<PolicyRecord>(schema::AAP_POLICY, &req)?;
        Ok(ListPoliciesResponse {
            request_id: self.request_id(),
            policies: PolicyList {
                policy: paged
                    .items
                    .into_iter()
                    .map(|p| PolicyEntry { name: p.name })
                    .collect(),
            },
            page_number: paged.page_number,
            page_size: paged.page_size,
            total_count: paged.total_count,
        })
    }

    // ---- application access points ----------------------------------------------------------

    fn aap_response(&self, rec: AccessPointRecord) -> ApplicationAccessPointResponse {
        ApplicationAccessPointResponse {
            request_id: self.request_id(),
            arn: self.scope.aap_arn(&rec.name),
            policies: list_text(&rec.policies),
            name: rec.name,
            authentication_method: rec.authentication_method,
            description: rec.description,
        }
    }

    /// CreateApplicationAccessPoint.
    ///
    /// Errors: `MissingParameter`/`InvalidParameter` (Name, AuthenticationMethod, Policies
    /// (1 to 3 names)), `Rejected.ResourceExist`,
    /// `Forbidden.NoPermission`.
    pub fn create_application_access_point(
        &self,
        caller: &Caller,
        req: CreateApplicationAccessPointRequest,
    ) -> Result<ApplicationAccessPointResponse, KmsError> {
        validate_name("Name", &req.name)?;
        let method = req
            .authentication_method
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| CLIENT_KEY.to_owned());
        if method != CLIENT_KEY {
            return Err(KmsError::invalid(
                "AuthenticationMethod",
                format!("{method:?} is not {CLIENT_KEY}"),
            ));
        }
        let policies = string_list("Policies", &req.policies)?;
        Self::check_policy_count(&policies)?;
        let description = validate_description(req.description.as_deref())?;
        self.authorize_account(caller, Action::CreateApplicationAccessPoint, None)?;
        let now = self.clock.now();
        let rec = AccessPointRecord {
            name: req.name.clone(),
            description,
            authentication_method: method,
            policies,
            created: now,
            updated: now,
        };
        {
            let _guard = self.write_guard()?;
            self.create_named(&rec, &rec.name)?;
        }
        Ok(self.aap_response(rec))
    }

    /// DescribeApplicationAccessPoint.
    ///
    /// Errors: `Forbidden.ResourceNotFound`, `Forbidden.NoPermission`.
    pub fn describe_application_access_point(
        &self,
        caller: &Caller,
        req: NameRequest,
    ) -> Result<ApplicationAccessPointResponse, KmsError> {
        validate_name("Name", &req.name)?;
        let arn = self.scope.aap_arn(&req.name);
        self.authorize_named(caller, Action::DescribeApplicationAccessPoint, &arn)?;
        let (rec, _) =
            self.load_named::<AccessPointRecord>(&schema::access_point(&req.name), &req.name)?;
        Ok(self.aap_response(rec))
    }

    /// UpdateApplicationAccessPoint: new policies and/or description.
    ///
    /// Errors: as [`Kms::create_application_access_point`]; `Forbidden.ResourceNotFound`.
    pub fn update_application_access_point(
        &self,
        caller: &Caller,
        req: UpdateApplicationAccessPointRequest,
    ) -> Result<EmptyResponse, KmsError> {
        validate_name("Name", &req.name)?;
        let policies = req
            .policies
            .as_deref()
            .map(|p| string_list("Policies", p))
            .transpose()?;
        if let Some(p) = &policies {
            Self::check_policy_count(p)?;
        }
        let description = req
            .description
            .as_deref()
            .map(|d| validate_description(Some(d)))
            .transpose()?;
        let arn = self.scope.aap_arn(&req.name);
        self.authorize_named(caller, Action::UpdateApplicationAccessPoint, &arn)?;
        let rk = schema::access_point(&req.name);
        self.mutate(
            |_| self.load_named::<AccessPointRecord>(&rk, &req.name),
            |r, now| {
                let mut next = r.clone();
                if let Some(p) = &policies {
                    next.policies = p.clone();
                }
                if let Some(d) = &description {
                    next.description = d.clone();
                }
                if next != *r {
                    next.updated = now;
                }
                Ok(next)
            },
            |_| Ok(()),
        )?;
        Ok(EmptyResponse {
            request_id: self.request_id(),
        })
    }

    /// DeleteApplicationAccessPoint: the AAP and, in the same commit, its client keys.
    ///
    /// Errors: `Forbidden.ResourceNotFound`, `Forbidden.NoPermission`.
    pub fn delete_application_access_point(
        &self,
        caller: &Caller,
        req: NameRequest,
    ) -> Result<EmptyResponse, KmsError> {
        validate_name("Name", &req.name)?;
        let arn = self.scope.aap_arn(&req.name);
        self.authorize_named(caller, Action::DeleteApplicationAccessPoint, &arn)?;
        let _guard = self.write_guard()?;
        let rk = schema::access_point(&req.name);
        let (_, revision) = self.load_named::<AccessPointRecord>(&rk, &req.name)?;
        let mut batch = Batch::new();
        batch.delete_if(rk, Precondition::Revision(revision));
        for k in self.client_keys_of(Some(&req.name))? {
            batch.delete(schema::client_key(&k.id));
        }
        self.commit(batch)?;
        Ok(EmptyResponse {
            request_id: self.request_id(),
        })
    }

    /// ListApplicationAccessPoints.
    ///
    /// Errors: `InvalidParameter` (paging), `Forbidden.NoPermission`.
    pub fn list_application_access_points(
        &self,
        caller: &Caller,
        req: ListPageRequest,
    ) -> Result<ListApplicationAccessPointsResponse, KmsError> {
        self.authorize_account(caller, Action::ListApplicationAccessPoints, None)?;
        let paged = self.list_named::<AccessPointRecord>(schema::ACCESS_POINT, &req)?;
        Ok(ListApplicationAccessPointsResponse {
            request_id: self.request_id(),
            application_access_points: ApplicationAccessPointList {
                application_access_point: paged
                    .items
                    .into_iter()
                    .map(|a| ApplicationAccessPointEntry {
                        name: a.name,
                        authentication_method: a.authentication_method,
                    })
                    .collect(),
            },
            page_number: paged.page_number,
            page_size: paged.page_size,
            total_count: paged.total_count,
        })
    }

    // ---- client keys -------------------------------------------------------------------------

    fn client_keys_of(&self, aap: Option<&str>) -> Result<Vec<ClientKeyRecord>, KmsError> {
        Ok(self
            .scan_all::<ClientKeyRecord>(schema::CLIENT_KEY)?
            .into_iter()
            .map(|(_, k, _)| k)
            .filter(|k| aap.is_none_or(|a| k.aap_name == a))
            .collect())
    }

    fn client_key_info(rec: ClientKeyRecord) -> ClientKeyInfo {
        ClientKeyInfo {
            client_key_id: rec.id,
            aap_name: rec.aap_name,
            key_algorithm: rec.key_algorithm,
            key_origin: "KMS_PROVIDED".into(),
            not_before: rec.not_before,
            not_after: rec.not_after,
            create_time: rec.created,
            public_key_data: rec.certificate_pem,
        }
    }

    /// CreateClientKey: a new RSA 2048 key pair for the AAP. The private key is returned once,
    /// in a PKCS#12 file under `Password` with a self-signed certificate of the public key for
    /// the validity window; only the certificate is stored.
    ///
    /// Errors: `MissingParameter`/`InvalidParameter` (AapName, Password, NotBefore,
    /// NotAfter), `Forbidden.ResourceNotFound` (no such AAP), `Forbidden.NoPermission`.
    pub fn create_client_key(
        &self,
        caller: &Caller,
        req: CreateClientKeyRequest,
    ) -> Result<CreateClientKeyResponse, KmsError> {
        validate_name("AapName", &req.aap_name)?;
        validate_password(&req.password)?;
        let now = self.clock.now();
        let (not_before, not_after) =
            validity(req.not_before.as_deref(), req.not_after.as_deref(), now)?;
        self.authorize_account(caller, Action::CreateClientKey, None)?;
        self.load_named::<AccessPointRecord>(&schema::access_point(&req.aap_name), &req.aap_name)?;
        let id = format!("{CLIENT_KEY_PREFIX}{}", new_uuid(&*self.rng)?);
        let made = client_key::generate(self, &id, &req.password, not_before, not_after)?;
        let rec = ClientKeyRecord {
            id: id.clone(),
            aap_name: req.aap_name.clone(),
            key_algorithm: client_key::KEY_ALGORITHM.into(),
            certificate_pem: made.certificate_pem,
            not_before,
            not_after,
            created: now,
        };
        {
            let _guard = self.write_guard()?;
            // The AAP may have gone while the key pair was made.
            self.load_named::<AccessPointRecord>(
                &schema::access_point(&req.aap_name),
                &req.aap_name,
            )?;
            let mut batch = Batch::new();
            self.stage_put(
                &mut batch,
                schema::client_key(&id),
                &rec,
                Precondition::Absent,
            )?;
            self.commit(batch)?;
        }
        Ok(CreateClientKeyResponse {
            request_id: self.request_id(),
            client_key_id: id,
            key_algorithm: rec.key_algorithm,
            not_before,
            not_after,
            private_key_data: made.pkcs12_base64,
        })
    }

    fn load_client_key(&self, id: &str) -> Result<(ClientKeyRecord, u64), KmsError> {
        validate::required("ClientKeyId", id)?;
        let well_formed = id
            .strip_prefix(CLIENT_KEY_PREFIX)
            .is_some_and(crate::ids::is_uuid);
        if !well_formed {
            return Err(not_found(id));
        }
        self.load_named::<ClientKeyRecord>(&schema::client_key(id), id)
    }

    /// GetClientKey: a client key's public description.
    ///
    /// Errors: `Forbidden.ResourceNotFound`, `Forbidden.NoPermission`.
    pub fn get_client_key(
        &self,
        caller: &Caller,
        req: ClientKeyIdRequest,
    ) -> Result<GetClientKeyResponse, KmsError> {
        let (rec, _) = self.load_client_key(&req.client_key_id)?;
        let arn = self.scope.aap_arn(&rec.aap_name);
        self.authorize_named(caller, Action::GetClientKey, &arn)?;
        Ok(GetClientKeyResponse {
            request_id: self.request_id(),
            client_key: Self::client_key_info(rec),
        })
    }

    /// DeleteClientKey: the key no longer authenticates anything.
    ///
    /// Errors: `Forbidden.ResourceNotFound`, `Forbidden.NoPermission`.
    pub fn delete_client_key(
        &self,
        caller: &Caller,
        req: ClientKeyIdRequest,
    ) -> Result<EmptyResponse, KmsError> {
        let _guard = self.write_guard()?;
        let (rec, revision) = self.load_client_key(&req.client_key_id)?;
        let arn = self.scope.aap_arn(&rec.aap_name);
        self.authorize_named(caller, Action::DeleteClientKey, &arn)?;
        let mut batch = Batch::new();
        batch.delete_if(
            schema::client_key(&rec.id),
            Precondition::Revision(revision),
        );
        self.commit(batch)?;
        Ok(EmptyResponse {
            request_id: self.request_id(),
        })
    }

    /// ListClientKeys: every client key, or one AAP's.
    ///
    /// Errors: `InvalidParameter` (AapName), `Forbidden.NoPermission`.
    pub fn list_client_keys(
        &self,
        caller: &Caller,
        req: ListClientKeysRequest,
    ) -> Result<ListClientKeysResponse, KmsError> {
        let aap = req.aap_name.as_deref().filter(|s| !s.is_empty());
        if let Some(a) = aap {
            validate_name("AapName", a)?;
        }
        self.authorize_account(caller, Action::ListClientKeys, None)?;
        Ok(ListClientKeysResponse {
            request_id: self.request_id(),
            client_keys: self
                .client_keys_of(aap)?
                .into_iter()
                .map(Self::client_key_info)
                .collect(),
        })
    }
}
