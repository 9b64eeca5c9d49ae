//! Tags on keys, secrets and certificates: TagResource, UntagResource and ListResourceTags on
//! one resource, and the batch TagResources, UntagResources and ListTagResources.
//!
//! [`Tagged`] is what a record kind provides; [`with_tags`] and [`without_tags`] are the one
//! tag and untag rule every kind goes through. In a batch call every named resource is read, checked and changed in memory first; then one storage batch
//! (each record guarded by its revision) applies all of it, or nothing.

pub(crate) mod api;

use std::collections::BTreeMap;

use base64::Engine;

use crate::api::*;
use crate::engine::Kms;
use crate::error::KmsError;
use crate::keys::model::KeyRecord;
use crate::keys::rules;
use crate::policy::{Action, Caller};
use crate::schema;
use crate::secrets::ops::in_delete_window;
use crate::secrets::rules::SecretRecord;
use crate::storage::{Batch, Precondition};
use crate::time::UnixTime;
use crate::validate;

/// A record that carries tags.
pub(crate) trait Tagged: Clone {
    /// The record's tags, by tag key.
    fn tags_mut(&mut self) -> &mut BTreeMap<String, String>;
    /// Whether the record's state lets its tags change (by default, in every state).
    fn check_taggable(&self) -> Result<(), KmsError> {
        Ok(())
    }
    /// Notes a change made at `now` (a record's update time).
    fn touch(&mut self, now: UnixTime);
}

/// TagResource's rule: `add` merged into the record's tags (existing keys take the new
/// value).
///
/// Errors: the record's state check; `InvalidParameter` for a bad tag;
/// `Rejected.LimitExceeded` past 20 tags.
pub(crate) fn with_tags<R: Tagged>(
    record: &R,
    add: &BTreeMap<String, String>,
    now: UnixTime,
) -> Result<R, KmsError> {
    record.check_taggable()?;
    let mut next = record.clone();
    rules::merge_tags(next.tags_mut(), add)?;
    next.touch(now);
    Ok(next)
}

/// The change a batch tag call makes to every resource it names.
#[derive(Clone, Copy)]
enum TagChange<'a> {
    /// TagResources.
    Add(&'a BTreeMap<String, String>),
    /// UntagResources with TagKey.
    Remove(&'a [String]),
    /// UntagResources with All.
    RemoveAll,
}

impl TagChange<'_> {
    fn apply<R: Tagged>(self, record: &R, now: UnixTime) -> Result<R, KmsError> {
        match self {
            TagChange::Add(tags) => with_tags(record, tags, now),
            TagChange::Remove(keys) => untagged(record, Some(keys), now),
            TagChange::RemoveAll => untagged(record, None, now),
        }
    }
}

/// UntagResource's rule: the tags under `keys` removed (absent keys are ignored).
///
/// Errors: the record's state check; `InvalidParameter` (TagKeys) for a malformed tag key.
pub(crate) fn without_tags<R: Tagged>(
    record: &R,
    keys: &[String],
    now: UnixTime,
) -> Result<R, KmsError> {
    untagged(record, Some(keys), now)
}

/// The tags under `keys` removed, or every tag for `None`.
fn untagged<R: Tagged>(record: &R, keys: Option<&[String]>, now: UnixTime) -> Result<R, KmsError> {
    record.check_taggable()?;
    let mut next = record.clone();
    match keys {
        Some(keys) => {
            for k in keys {
                validate::tag_key("TagKeys", k)?;
            }
            for k in keys {
                next.tags_mut().remove(k);
            }
        }
        None => next.tags_mut().clear(),
    }
    next.touch(now);
    Ok(next)
}

pub(crate) fn tags_to_map(
    param: &'static str,
    tags: &[Tag],
) -> Result<BTreeMap<String, String>, KmsError> {
    let mut map = BTreeMap::new();
    for t in tags {
        validate::tag_key(param, &t.tag_key)?;
        validate::tag_value(param, &t.tag_value)?;
        map.insert(t.tag_key.clone(), t.tag_value.clone());
    }
    Ok(map)
}

/// The one resource TagResource and UntagResource name.
enum TagTarget<'a> {
    Key(&'a str),
    Secret(&'a str),
    Certificate(&'a str),
}

fn tag_target<'a>(
    key_id: &'a str,
    secret_name: &'a str,
    certificate_id: &'a str,
) -> Result<TagTarget<'a>, KmsError> {
    match (key_id, secret_name, certificate_id) {
        ("", "", "") => Err(KmsError::missing("KeyId")),
        (k, "", "") => Ok(TagTarget::Key(k)),
        ("", s, "") => Ok(TagTarget::Secret(s)),
        ("", "", c) => Ok(TagTarget::Certificate(c)),
        _ => Err(KmsError::invalid(
            "KeyId",
            "give exactly one of KeyId, SecretName and CertificateId",
        )),
    }
}

/// Most resources one batch call names.
pub const MAX_RESOURCES: usize = 50;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Key,
    Secret,
}

impl Kind {
    fn parse(s: &str) -> Result<Self, KmsError> {
        match s {
            "key" => Ok(Kind::Key),
            "secret" => Ok(Kind::Secret),
            "" => Err(KmsError::missing("ResourceType")),
            other => Err(KmsError::invalid(
                "ResourceType",
                format!("{other:?} is not one of key, secret"),
            )),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Kind::Key => "key",
            Kind::Secret => "secret",
        }
    }
}

fn check_ids(ids: &[String], required: bool) -> Result<(), KmsError> {
    if required && ids.is_empty() {
        return Err(KmsError::missing("ResourceId"));
    }
    if ids.len() > MAX_RESOURCES {
        return Err(KmsError::invalid(
            "ResourceId",
            format!(
                "at most {MAX_RESOURCES} resources per call, got {}",
                ids.len()
            ),
        ));
    }
    Ok(())
}

fn reason(e: KmsError) -> String {
    match e {
        KmsError::InvalidParameter { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// Validates the tags of TagResources with the batch error codes.
fn check_tags(tags: &[TagKeyValue]) -> Result<BTreeMap<String, String>, KmsError> {
    if tags.is_empty() {
        return Err(KmsError::missing("Tag"));
    }
    if tags.len() > validate::MAX_TAGS {
        return Err(KmsError::invalid(
            "Tag",
            format!(
                "at most {} tags per call, got {}",
                validate::MAX_TAGS,
                tags.len()
            ),
        ));
    }
    let mut map = BTreeMap::new();
    for t in tags {
        validate::tag_key("Tag", &t.key).map_err(|e| KmsError::InvalidTagKey {
            tag_key: t.key.clone(),
            reason: reason(e),
        })?;
        validate::tag_value("Tag", &t.value).map_err(|e| KmsError::InvalidTagValue {
            tag_value: t.value.clone(),
            reason: reason(e),
        })?;
        if map.insert(t.key.clone(), t.value.clone()).is_some() {
            return Err(KmsError::DuplicateTagKey {
                tag_key: t.key.clone(),
            });
        }
    }
    Ok(map)
}

/// A resource read for a batch change.
enum Target {
    Key(KeyRecord, u64),
    Secret(SecretRecord, u64),
}

impl Kms {
    /// Reads one resource of a batch call (write lock held) and checks the caller may
    /// `action` it and its state allows tag changes.
    fn batch_target(
        &self,
        caller: &Caller,
        kind: Kind,
        id: &str,
        action: Action,
    ) -> Result<Target, KmsError> {
        let now = self.clock.now();
        let not_found = || KmsError::InvalidResourceIdNotFound {
            resource_type: kind.as_str().to_owned(),
            resource_id: id.to_owned(),
        };
        match kind {
            Kind::Key => {
                let key_id = match self.resolve_key_id("ResourceId", id) {
                    Ok(k) => k,
                    Err(KmsError::KeyNotFound { .. } | KmsError::AliasNotFound { .. }) => {
                        return Err(not_found())
                    }
                    Err(e) => return Err(e),
                };
                let (record, revision) = match self.load_for_update(&key_id, id, now) {
                    Ok(r) => r,
                    Err(KmsError::KeyNotFound { .. }) => return Err(not_found()),
                    Err(e) => return Err(e),
                };
                self.authorize_record(caller, action, &record)?;
                rules::check_not_service_key(&record)?;
                rules::check_usable(&record, rules::Usage::MetadataUpdate)?;
                Ok(Target::Key(record, revision))
            }
            Kind::Secret => {
                let (rec, revision) = match self.load_secret(id, now) {
                    Ok(r) => r,
                    Err(KmsError::ResourceNotFound { .. }) => return Err(not_found()),
                    Err(e) => return Err(e),
                };
                self.authorize_secret(caller, action, &rec)?;
                in_delete_window(&rec)?;
                Ok(Target::Secret(rec, revision))
            }
        }
    }

    /// Applies `change` to the tags of every named resource in one atomic batch.
    fn batch_change(
        &self,
        caller: &Caller,
        kind: Kind,
        ids: &[String],
        action: Action,
        change: TagChange<'_>,
    ) -> Result<(), KmsError> {
        let _guard = self.write_guard()?;
        let now = self.clock.now();
        let mut batch = Batch::new();
        let mut keys = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for id in ids {
            let target = self.batch_target(caller, kind, id, action)?;
            match target {
                Target::Key(record, revision) => {
                    if !seen.insert(record.key_id.clone()) {
                        continue;
                    }
                    let record = change.apply(&record, now)?;
                    let kk = schema::key(&record.key_id);
                    self.stage_put(&mut batch, kk, &record, Precondition::Revision(revision))?;
                    keys.push(record);
                }
                Target::Secret(rec, revision) => {
                    if !seen.insert(rec.name.clone()) {
                        continue;
                    }
                    let rec = change.apply(&rec, now)?;
                    let sk = schema::secret(&rec.name);
                    self.stage_put(&mut batch, sk, &rec, Precondition::Revision(revision))?;
                }
            }
        }
        self.commit(batch)?;
        for record in keys {
            self.cache_put(record, Vec::new())?;
        }
        Ok(())
    }

    /// TagResources: sets up to 20 tags on up to 50 keys or secrets, all or nothing.
    ///
    /// Errors: `Duplicate.TagKey`, `InvalidParameter.TagKey`, `InvalidParameter.TagValue`,
    /// `InvalidResourceId.NotFound`, `Rejected.LimitExceeded` (20 tags per resource), the
    /// state errors; on any error nothing changes.
    pub fn tag_resources(
        &self,
        caller: &Caller,
        req: TagResourcesRequest,
    ) -> Result<EmptyResponse, KmsError> {
        let kind = Kind::parse(&req.resource_type)?;
        check_ids(&req.resource_id, true)?;
        let tags = check_tags(&req.tag)?;
        self.batch_change(
            caller,
            kind,
            &req.resource_id,
            Action::TagResources,
            TagChange::Add(&tags),
        )?;
        Ok(EmptyResponse {
            request_id: self.request_id(),
        })
    }

    /// UntagResources: removes tag keys (or, with All, every tag) from up to 50 keys or
    /// secrets, all or nothing.
    ///
    /// Errors: `InvalidParameter.TagKey`, `InvalidResourceId.NotFound`, the state errors.
    pub fn untag_resources(
        &self,
        caller: &Caller,
        req: UntagResourcesRequest,
    ) -> Result<EmptyResponse, KmsError> {
        let kind = Kind::parse(&req.resource_type)?;
        check_ids(&req.resource_id, true)?;
        let all = req.all.unwrap_or(false);
        if !all && req.tag_key.is_empty() {
            return Err(KmsError::missing("TagKey"));
        }
        if req.tag_key.len() > validate::MAX_TAGS {
            return Err(KmsError::invalid(
                "TagKey",
                format!("at most {} tag keys per call", validate::MAX_TAGS),
            ));
        }
        for k in &req.tag_key {
            validate::tag_key("TagKey", k).map_err(|e| KmsError::InvalidTagKey {
                tag_key: k.clone(),
                reason: reason(e),
            })?;
        }
        let change = if all {
            TagChange::RemoveAll
        } else {
            TagChange::Remove(&req.tag_key)
        };
        self.batch_change(
            caller,
            kind,
            &req.resource_id,
            Action::UntagResources,
            change,
        )?;
        Ok(EmptyResponse {
            request_id: self.request_id(),
        })
    }

    /// ListTagResources: (resource, tag) pairs of the named resources, or of every resource
    /// of the type carrying one of the given tags; paged with NextToken.
    ///
    /// Errors: `MissingParameter` (neither ResourceId nor Tag), `InvalidParameter`
    /// (NextToken, MaxResults), `InvalidResourceId.NotFound`.
    pub fn list_tag_resources(
        &self,
        caller: &Caller,
        req: ListTagResourcesRequest,
    ) -> Result<ListTagResourcesResponse, KmsError> {
        let kind = Kind::parse(&req.resource_type)?;
        check_ids(&req.resource_id, false)?;
        if req.resource_id.is_empty() && req.tag.is_empty() {
            return Err(KmsError::missing("ResourceId"));
        }
        if req.tag.len() > validate::MAX_TAGS {
            return Err(KmsError::invalid(
                "Tag",
                format!("at most {} tags per call", validate::MAX_TAGS),
            ));
        }
        let size = match req.max_results {
            None => 20,
            Some(n) if (1..=100).contains(&n) => usize::try_from(n).unwrap_or(20),
            Some(n) => {
                return Err(KmsError::invalid(
                    "MaxResults",
                    format!("{n} is outside 1 to 100"),
                ))
            }
        };
        let offset = match req.next_token.as_deref().filter(|t| !t.is_empty()) {
            None => 0,
            Some(t) => base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| {
                    s.strip_prefix("offset:")
                        .and_then(|n| n.parse::<usize>().ok())
                })
                .ok_or_else(|| KmsError::invalid("NextToken", "is not a token of this call"))?,
        };
        let now = self.clock.now();
        // (resource id, tags) of every resource in scope.
        let mut resources: Vec<(String, BTreeMap<String, String>)> = Vec::new();
        if req.resource_id.is_empty() {
            match kind {
                Kind::Key => {
                    self.authorize_account(caller, Action::ListTagResources, None)?;
                    for (_, r, _) in self.scan_all::<KeyRecord>(schema::KEY)? {
                        // Each key's own policy (and the caller's identity policy) decides
                        // whether its tags are shown: a Deny on one key hides it.
                        if !rules::is_purged(&r, now)
                            && self
                                .authorize_record(caller, Action::ListTagResources, &r)
                                .is_ok()
                        {
                            resources.push((r.key_id, r.tags));
                        }
                    }
                }
                Kind::Secret => {
                    self.authorize_account(caller, Action::ListTagResources, None)?;
                    for (_, r, _) in self.scan_all::<SecretRecord>(schema::SECRET)? {
                        if !r.is_purged(now)
                            && self
                                .authorize_secret(caller, Action::ListTagResources, &r)
                                .is_ok()
                        {
                            resources.push((r.name, r.tags));
                        }
                    }
                }
            }
        } else {
            for id in &req.resource_id {
                let not_found = || KmsError::InvalidResourceIdNotFound {
                    resource_type: kind.as_str().to_owned(),
                    resource_id: id.clone(),
                };
                match kind {
                    Kind::Key => {
                        let key = match self.live_key("ResourceId", id, now) {
                            Ok(k) => k,
                            Err(KmsError::KeyNotFound { .. } | KmsError::AliasNotFound { .. }) => {
                                return Err(not_found())
                            }
                            Err(e) => return Err(e),
                        };
                        self.authorize(caller, Action::ListTagResources, Some(&key))?;
                        resources.push((key.record.key_id.clone(), key.record.tags.clone()));
                    }
                    Kind::Secret => {
                        let (rec, _) = match self.load_secret(id, now) {
                            Ok(r) => r,
                            Err(KmsError::ResourceNotFound { .. }) => return Err(not_found()),
                            Err(e) => return Err(e),
                        };
                        self.authorize_secret(caller, Action::ListTagResources, &rec)?;
                        resources.push((rec.name, rec.tags));
                    }
                }
            }
        }
        resources.sort_by(|a, b| a.0.cmp(&b.0));
        resources.dedup_by(|a, b| a.0 == b.0);
        let wanted = |k: &str, v: &str| {
            req.tag.is_empty()
                || req
                    .tag
                    .iter()
                    .any(|t| t.key == k && (t.value.is_empty() || t.value == v))
        };
        let pairs: Vec<TagResourceEntry> = resources
            .into_iter()
            .flat_map(|(id, tags)| tags.into_iter().map(move |(k, v)| (id.clone(), k, v)))
            .filter(|(_, k, v)| wanted(k, v))
            .map(|(resource_id, tag_key, tag_value)| TagResourceEntry {
                resource_type: kind.as_str().to_owned(),
                resource_id,
                tag_key,
                tag_value,
            })
            .collect();
        let end = offset.saturating_add(size);
        let next_token = (end < pairs.len()).then(|| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("offset:{end}"))
        });
        Ok(ListTagResourcesResponse {
            request_id: self.request_id(),
            tag_resources: TagResourceList {
                tag_resource: pairs.into_iter().skip(offset).take(size).collect(),
            },
            next_token,
        })
    }
}

impl Kms {
    /// TagResource: sets tags on a key, a secret or a certificate (replacing values of
    /// existing tag keys).
    ///
    /// Errors: `MissingParameter`, `InvalidParameter` (tag rules), `Rejected.LimitExceeded`
    /// (20 tags), `Rejected.PendingDeletion`.
    pub fn tag_resource(
        &self,
        caller: &Caller,
        req: TagResourceRequest,
    ) -> Result<EmptyResponse, KmsError> {
        let target = tag_target(&req.key_id, &req.secret_name, &req.certificate_id)?;
        if req.tags.is_empty() {
            return Err(KmsError::missing("Tags"));
        }
        let tags = tags_to_map("Tags", &req.tags)?;
        let action = Action::TagResource;
        match target {
            TagTarget::Key(key_ref) => {
                self.mutate_key(caller, action, "KeyId", key_ref, |r, now| {
                    with_tags(r, &tags, now)
                })?;
            }
            TagTarget::Secret(name) => {
                self.mutate_secret(caller, action, name, false, |r, now| {
                    with_tags(r, &tags, now)
                })?;
            }
            TagTarget::Certificate(id) => {
                self.mutate_certificate(caller, action, id, |r, now| with_tags(r, &tags, now))?;
            }
        }
        Ok(self.empty())
    }

    /// UntagResource: removes tags from a key, a secret or a certificate by tag key.
    ///
    /// Errors: `MissingParameter`, `InvalidParameter`, `Rejected.PendingDeletion`.
    pub fn untag_resource(
        &self,
        caller: &Caller,
        req: UntagResourceRequest,
    ) -> Result<EmptyResponse, KmsError> {
        let target = tag_target(&req.key_id, &req.secret_name, &req.certificate_id)?;
        if req.tag_keys.is_empty() {
            return Err(KmsError::missing("TagKeys"));
        }
        let keys = &req.tag_keys;
        if !matches!(target, TagTarget::Key(_)) {
            // Secrets and certificates check the tag keys before looking the resource up.
            for k in keys {
                validate::tag_key("TagKeys", k)?;
            }
        }
        let action = Action::UntagResource;
        match target {
            TagTarget::Key(key_ref) => {
                self.mutate_key(caller, action, "KeyId", key_ref, |r, now| {
                    without_tags(r, keys, now)
                })?;
            }
            TagTarget::Secret(name) => {
                self.mutate_secret(caller, action, name, false, |r, now| {
                    without_tags(r, keys, now)
                })?;
            }
            TagTarget::Certificate(id) => {
                self.mutate_certificate(caller, action, id, |r, now| without_tags(r, keys, now))?;
            }
        }
        Ok(self.empty())
    }

    /// ListResourceTags: a key's tags, by tag key. Works in every state.
    ///
    /// Errors: `Forbidden.KeyNotFound`.
    pub fn list_resource_tags(
        &self,
        caller: &Caller,
        req: ListResourceTagsRequest,
    ) -> Result<ListResourceTagsResponse, KmsError> {
        let key = self.readable_key(caller, Action::ListResourceTags, &req.key_id)?;
        let tag = key
            .record
            .tags
            .iter()
            .map(|(k, v)| ResourceTag {
                key_id: key.record.key_id.clone(),
                tag_key: k.clone(),
                tag_value: v.clone(),
            })
            .collect();
        Ok(ListResourceTagsResponse {
            request_id: self.request_id(),
            tags: ResourceTagList { tag },
        })
    }
}
