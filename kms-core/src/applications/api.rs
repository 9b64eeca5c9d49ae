//! Request and response structs of the OpenAPI actions that manage KMS instances, network
//! rules, permission policies, application access points and client keys (API 2016-01-20),
//! with Alibaba's wire names. Lists in requests (`Policies`, `Permissions`, `Resources`,
//! `SourcePrivateIp`) are JSON arrays as text, or comma-separated; `AccessControlRules` is
//! `{"NetworkRules":[...]}` as text.

use serde::{Deserialize, Serialize};

use crate::wire::lenient_int;

request!(
    /// CreateNetworkRule.
    CreateNetworkRuleRequest {
        /// The rule's name.
        pub name: String,
        /// `Private`.
        #[serde(rename = "Type")]
        pub rule_type: String,
        /// The addresses and CIDR blocks.
        pub source_private_ip: String,
        /// Free text.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
    }
);

response!(
    /// CreateNetworkRule's answer.
    CreateNetworkRuleResponse {
        /// `acs:kms:<region>:<account>:network/<name>`.
        pub arn: String,
        /// The name.
        pub name: String,
        /// `Private`.
        #[serde(rename = "Type")]
        pub rule_type: String,
        /// The addresses, a JSON array as text.
        pub source_private_ip: String,
        /// Free text.
        pub description: String,
    }
);

request!(
    /// DescribeNetworkRule, DeleteNetworkRule, DescribePolicy, DeletePolicy,
    /// DescribeApplicationAccessPoint and DeleteApplicationAccessPoint: a name.
    NameRequest {
        /// The name.
        pub name: String,
    }
);

response!(
    /// DescribeNetworkRule's answer.
    DescribeNetworkRuleResponse {
        /// The rule's ARN.
        pub arn: String,
        /// `Private`.
        #[serde(rename = "Type")]
        pub rule_type: String,
        /// The addresses, a JSON array as text.
        pub source_private_ip: String,
        /// Free text.
        pub description: String,
    }
);

request!(
    /// UpdateNetworkRule.
    UpdateNetworkRuleRequest {
        /// The rule.
        pub name: String,
        /// New addresses, when given.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub source_private_ip: Option<String>,
        /// New description, when given.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
    }
);

request!(
    /// ListNetworkRules, ListPolicies, ListApplicationAccessPoints and ListKmsInstances.
    ListPageRequest {
        /// Page number, from 1.
        #[serde(with = "lenient_int", skip_serializing_if = "Option::is_none")]
        pub page_number: Option<i64>,
        /// Page size, 1 to 100 (default 20).
        #[serde(with = "lenient_int", skip_serializing_if = "Option::is_none")]
        pub page_size: Option<i64>,
    }
);

/// One network rule in ListNetworkRules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkRuleEntry {
    /// The name.
    pub name: String,
    /// `Private`.
    #[serde(rename = "Type")]
    pub rule_type: String,
}

/// `{"NetworkRule": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRuleList {
    /// The rules.
    #[serde(rename = "NetworkRule")]
    pub network_rule: Vec<NetworkRuleEntry>,
}

response!(
    /// ListNetworkRules' answer.
    ListNetworkRulesResponse {
        /// This page's rules.
        pub network_rules: NetworkRuleList,
        /// Page number.
        pub page_number: i64,
        /// Page size.
        pub page_size: i64,
        /// Number of rules.
        pub total_count: i64,
    }
);

request!(
    /// CreatePolicy.
    CreatePolicyRequest {
        /// The policy's name.
        pub name: String,
        /// Permission templates, e.g. `["RbacPermission/Template/CryptoServiceKeyUser"]`.
        pub permissions: String,
        /// `["key/*", "secret/<name>", ...]`.
        pub resources: String,
        /// The KMS instance the resources belong to.
        pub kms_instance: String,
        /// `{"NetworkRules":["<rule>", ...]}`.
        pub access_control_rules: String,
        /// Free text.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
    }
);

response!(
    /// CreatePolicy's answer.
    CreatePolicyResponse {
        /// `acs:kms:<region>:<account>:policy/<name>`.
        pub arn: String,
        /// The name.
        pub name: String,
        /// The permissions, a JSON array as text.
        pub permissions: String,
        /// The resources, a JSON array as text.
        pub resources: String,
        /// The KMS instance.
        pub kms_instance: String,
        /// `{"NetworkRules":[...]}` as text.
        pub access_control_rules: String,
        /// Free text.
        pub description: String,
    }
);

response!(
    /// DescribePolicy's answer.
    DescribePolicyResponse {
        /// The policy's ARN.
        pub arn: String,
        /// The name.
        pub name: String,
        /// The permissions.
        pub permissions: Vec<String>,
        /// The resources.
        pub resources: Vec<String>,
        /// The KMS instance.
        pub kms_instance: String,
        /// `{"NetworkRules":[...]}` as text.
        pub access_control_rules: String,
        /// Free text.
        pub description: String,
    }
);

request!(
    /// UpdatePolicy: each field given replaces the policy's.
    UpdatePolicyRequest {
        /// The policy.
        pub name: String,
        /// New permissions.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub permissions: Option<String>,
        /// New resources.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub resources: Option<String>,
        /// New AccessControlRules.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub access_control_rules: Option<String>,
        /// New description.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
    }
);

/// One policy in ListPolicies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyEntry {
    /// The name.
    pub name: String,
}

/// `{"Policy": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyList {
    /// The policies.
    #[serde(rename = "Policy")]
    pub policy: Vec<PolicyEntry>,
}

response!(
    /// ListPolicies' answer.
    ListPoliciesResponse {
        /// This page's policies.
        pub policies: PolicyList,
        /// Page number.
        pub page_number: i64,
        /// Page size.
        pub page_size: i64,
        /// Number of policies.
        pub total_count: i64,
    }
);

request!(
    /// CreateApplicationAccessPoint.
    CreateApplicationAccessPointRequest {
        /// The AAP's name.
        pub name: String,
        /// `ClientKey` (the default and only method).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub authentication_method: Option<String>,
        /// 1 to 3 policy names, e.g. `["policy1"]`.
        pub policies: String,
        /// Free text.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
    }
);

response!(
    /// CreateApplicationAccessPoint's and DescribeApplicationAccessPoint's answer.
    ApplicationAccessPointResponse {
        /// `acs:kms:<region>:<account>:applicationaccesspoint/<name>`.
        pub arn: String,
        /// The name.
        pub name: String,
        /// `ClientKey`.
        pub authentication_method: String,
        /// The policy names, a JSON array as text.
        pub policies: String,
        /// Free text.
        pub description: String,
    }
);

request!(
    /// UpdateApplicationAccessPoint.
    UpdateApplicationAccessPointRequest {
        /// The AAP.
        pub name: String,
        /// New policies (1 to 3 names).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub policies: Option<String>,
        /// New description.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
    }
);

/// One AAP in ListApplicationAccessPoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ApplicationAccessPointEntry {
    /// The name.
    pub name: String,
    /// `ClientKey`.
    pub authentication_method: String,
}

/// `{"ApplicationAccessPoint": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplicationAccessPointList {
    /// The AAPs.
    #[serde(rename = "ApplicationAccessPoint")]
    pub application_access_point: Vec<ApplicationAccessPointEntry>,
}

response!(
    /// ListApplicationAccessPoints' answer.
    ListApplicationAccessPointsResponse {
        /// This page's AAPs.
        pub application_access_points: ApplicationAccessPointList,
        /// Page number.
        pub page_number: i64,
        /// Page size.
        pub page_size: i64,
        /// Number of AAPs.
        pub total_count: i64,
    }
);

request!(
    /// CreateClientKey.
    CreateClientKeyRequest {
        /// The AAP the key authenticates as.
        pub aap_name: String,
        /// The password protecting the PKCS#12 file (8 to 64 characters).
        pub password: String,
        /// Start of validity (`yyyy-MM-ddTHH:mm:ssZ`; default now).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub not_before: Option<String>,
        /// End of validity (default five years after now).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub not_after: Option<String>,
    }
);

/// CreateClientKey's answer: the private key, returned once and never again.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateClientKeyResponse {
    /// The id of this call.
    pub request_id: String,
    /// `KAAP.<uuid>`.
    pub client_key_id: String,
    /// `RSA_2048`.
    pub key_algorithm: String,
    /// Start of validity.
    pub not_before: crate::time::UnixTime,
    /// End of validity.
    pub not_after: crate::time::UnixTime,
    /// The PKCS#12 file (private key and certificate) under the password, base64.
    pub private_key_data: String,
}

impl std::fmt::Debug for CreateClientKeyResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateClientKeyResponse")
            .field("request_id", &self.request_id)
            .field("client_key_id", &self.client_key_id)
            .field("private_key_data", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl CreateClientKeyResponse {
    /// The client key file the instance SDKs read (`clientKey_<id>.json`):
    /// `{"KeyId": ..., "PrivateKeyData": ...}`.
    pub fn client_key_file(&self) -> String {
        serde_json::json!({
            "KeyId": self.client_key_id,
            "PrivateKeyData": self.private_key_data,
        })
        .to_string()
    }
}

request!(
    /// GetClientKey and DeleteClientKey.
    ClientKeyIdRequest {
        /// `KAAP.<uuid>`.
        pub client_key_id: String,
    }
);

/// A client key's public description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ClientKeyInfo {
    /// `KAAP.<uuid>`.
    pub client_key_id: String,
    /// The AAP.
    pub aap_name: String,
    /// `RSA_2048`.
    pub key_algorithm: String,
    /// `KMS_PROVIDED`.
    pub key_origin: String,
    /// Start of validity.
    pub not_before: crate::time::UnixTime,
    /// End of validity.
    pub not_after: crate::time::UnixTime,
    /// When it was created.
    pub create_time: crate::time::UnixTime,
    /// The self-signed certificate of the public key, PEM.
    pub public_key_data: String,
}

/// GetClientKey's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetClientKeyResponse {
    /// The id of this call.
    pub request_id: String,
    /// The key.
    #[serde(flatten)]
    pub client_key: ClientKeyInfo,
}

request!(
    /// ListClientKeys.
    ListClientKeysRequest {
        /// Only this AAP's keys, when given.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub aap_name: Option<String>,
    }
);

response!(
    /// ListClientKeys' answer.
    ListClientKeysResponse {
        /// The keys.
        pub client_keys: Vec<ClientKeyInfo>,
    }
);

request!(
    /// GetKmsInstance.
    GetKmsInstanceRequest {
        /// The instance.
        pub kms_instance_id: String,
    }
);

/// A KMS instance as GetKmsInstance describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KmsInstanceInfo {
    /// `kst-...`.
    pub instance_id: String,
    /// Its name (the id).
    pub instance_name: String,
    /// `Connected`.
    pub status: String,
    /// `software` (keys in the engine's providers).
    pub product_type: String,
    /// `3`.
    pub product_version: String,
    /// When the engine first ran (the store's creation is not recorded: the engine's start).
    pub create_time: crate::time::UnixTime,
    /// `Normal`.
    pub sale_status: String,
    /// The keys in the instance.
    pub key_num: i64,
    /// The secrets in the instance.
    pub secret_num: String,
    /// The CA certificate chain the gateway's certificate chains to, when configured.
    pub ca_certificate_chain_pem: String,
    /// Not bound to any VPC.
    pub vpc_id: String,
    /// None.
    pub vswitch_ids: Vec<String>,
    /// None.
    pub zone_ids: Vec<String>,
}

response!(
    /// GetKmsInstance's answer.
    GetKmsInstanceResponse {
        /// The instance.
        pub kms_instance: KmsInstanceInfo,
    }
);

/// One instance in ListKmsInstances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KmsInstanceEntry {
    /// `kst-...`.
    pub kms_instance_id: String,
    /// `acs:kms:<region>:<account>:keystore/<id>`.
    pub kms_instance_arn: String,
}

/// `{"KmsInstance": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KmsInstanceList {
    /// The instances.
    #[serde(rename = "KmsInstance")]
    pub kms_instance: Vec<KmsInstanceEntry>,
}

response!(
    /// ListKmsInstances' answer.
    ListKmsInstancesResponse {
        /// This page's instances.
        pub kms_instances: KmsInstanceList,
        /// Page number.
        pub page_number: i64,
        /// Page size.
        pub page_size: i64,
        /// Number of instances.
        pub total_count: i64,
    }
);

response!(
    /// GetDefaultKmsInstance's answer.
    GetDefaultKmsInstanceResponse {
        /// The default instance.
        pub default_kms_instance_id: String,
    }
);
