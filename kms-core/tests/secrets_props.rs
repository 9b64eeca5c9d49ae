#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
//! Property test of secret version stages: random sequences of PutSecretValue and
//! UpdateSecretVersionStage against the engine, checking after every step that every stage is
//! on exactly one existing version, ACSCurrent always exists, at most 10 versions are kept
//! (the oldest unstaged ones going first), every version reads back the data it was put with,
//! successful calls did what they said, and failed calls changed nothing.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use common::*;
use kms_core::api::*;
use kms_core::KmsError;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

const NAME: &str = "prop/secret";
const CURRENT: &str = "ACSCurrent";
const PREVIOUS: &str = "ACSPrevious";
const STAGES: [&str; 4] = [CURRENT, PREVIOUS, "Beta", "Gamma"];
const DATA: [&str; 3] = ["alpha", "bravo", "charlie"];
/// More ids than a secret keeps, so the 10-version limit is reached.
const VERSIONS: usize = 16;

fn version(i: usize) -> String {
    format!("v{i}")
}

#[derive(Debug, Clone)]
enum Step {
    Put {
        version: usize,
        stages: Vec<usize>,
        data: usize,
    },
    Stage {
        stage: usize,
        remove_from: Option<Target>,
        move_to: Option<Target>,
    },
}

/// A version argument of UpdateSecretVersionStage, resolved against the secret's state so that
/// many calls are valid while wrong ones still occur.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// The version the stage is on (if any; else a version id that may not exist).
    Holder(usize),
    /// The n-th existing version (modulo their number).
    Existing(usize),
    /// Any version id of the pool, existing or not.
    Any(usize),
}

impl Target {
    fn resolve(self, holder: Option<&String>, listing: &Listing) -> String {
        match self {
            Target::Holder(i) => holder.cloned().unwrap_or_else(|| version(i)),
            Target::Existing(i) => listing[i % listing.len()].0.clone(),
            Target::Any(i) => version(i),
        }
    }
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        2 => (0..VERSIONS).prop_map(Target::Holder),
        2 => (0..VERSIONS).prop_map(Target::Existing),
        1 => (0..VERSIONS).prop_map(Target::Any),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (
            0..VERSIONS,
            prop::collection::vec(0..STAGES.len(), 0..3),
            0..DATA.len()
        )
            .prop_map(|(version, stages, data)| Step::Put {
                version,
                stages,
                data
            }),
        2 => (
            0..STAGES.len(),
            prop::option::weighted(0.7, target()),
            prop::option::weighted(0.8, target())
        )
            .prop_map(|(stage, remove_from, move_to)| Step::Stage {
                stage,
                remove_from,
                move_to
            }),
    ]
}

/// ListSecretVersionIds with IncludeDeprecated: (version, stages), newest first.
type Listing = Vec<(String, Vec<String>)>;

fn listing(env: &Env) -> Listing {
    env.kms
        .list_secret_version_ids(
            &env.me,
            ListSecretVersionIdsRequest {
                secret_name: NAME.into(),
                include_deprecated: Some(true),
                page_size: Some(100),
                ..Default::default()
            },
        )
        .unwrap()
        .version_ids
        .version_id
        .into_iter()
        .map(|e| (e.version_id, e.version_stages.version_stage))
        .collect()
}

/// Stage → version, checking that no stage is on two versions.
fn stage_map(l: &Listing) -> Result<BTreeMap<String, String>, TestCaseError> {
    let mut map = BTreeMap::new();
    for (id, stages) in l {
        for s in stages {
            let previous = map.insert(s.clone(), id.clone());
            prop_assert!(previous.is_none(), "stage {} on two versions: {:?}", s, l);
        }
    }
    Ok(map)
}

/// The invariants that hold after every step.
fn check_invariants(
    env: &Env,
    l: &Listing,
    data_of: &HashMap<String, String>,
) -> Result<(), TestCaseError> {
    let map = stage_map(l)?;
    prop_assert!(map.contains_key(CURRENT), "ACSCurrent is gone: {:?}", l);
    prop_assert!(l.len() <= 10, "{} versions kept", l.len());
    let ids: BTreeSet<&String> = l.iter().map(|(id, _)| id).collect();
    prop_assert_eq!(ids.len(), l.len(), "a version listed twice");
    for (stage, id) in &map {
        prop_assert!(
            ids.contains(id),
            "stage {} on a missing version {}",
            stage,
            id
        );
    }
    // GetSecretValue by stage agrees with the listing.
    let current = env
        .kms
        .get_secret_value(
            &env.me,
            GetSecretValueRequest {
                secret_name: NAME.into(),
                ..Default::default()
            },
        )
        .unwrap();
    prop_assert_eq!(&current.version_id, &map[CURRENT]);
    for (id, stages) in l {
        let v = env
            .kms
            .get_secret_value(
                &env.me,
                GetSecretValueRequest {
                    secret_name: NAME.into(),
                    version_id: Some(id.clone()),
                    ..Default::default()
                },
            )
            .unwrap();
        prop_assert_eq!(
            v.secret_data.expose(),
            data_of[id].as_str(),
            "data of {}",
            id
        );
        prop_assert_eq!(&v.version_stages.version_stage, stages);
    }
    // The version list without IncludeDeprecated is exactly the staged versions.
    let staged: Vec<String> = env
        .kms
        .list_secret_version_ids(
            &env.me,
            ListSecretVersionIdsRequest {
                secret_name: NAME.into(),
                ..Default::default()
            },
        )
        .unwrap()
        .version_ids
        .version_id
        .into_iter()
        .map(|e| e.version_id)
        .collect();
    let expected: Vec<String> = l
        .iter()
        .filter(|(_, s)| !s.is_empty())
        .map(|(id, _)| id.clone())
        .collect();
    prop_assert_eq!(staged, expected);
    Ok(())
}

fn put(env: &Env, version: &str, stages: &[String], data: &str) -> Result<(), KmsError> {
    env.kms
        .put_secret_value(
            &env.me,
            PutSecretValueRequest {
                secret_name: NAME.into(),
                version_id: version.into(),
                secret_data: data.into(),
                version_stages: stages.to_vec(),
                ..Default::default()
            },
        )
        .map(|r| {
            assert_eq!(r.version_id, version);
        })
}

/// Checks a successful PutSecretValue of a new version against the rules.
fn check_new_version(
    before: &Listing,
    after: &Listing,
    version: &str,
    requested: &BTreeSet<String>,
) -> Result<(), TestCaseError> {
    let (old, new) = (stage_map(before)?, stage_map(after)?);
    prop_assert_eq!(&after[0].0, version, "the new version is the newest");
    for s in requested {
        prop_assert_eq!(new.get(s), Some(&version.to_owned()), "stage {}", s);
    }
    let current_moved = requested.contains(CURRENT) && old[CURRENT] != version;
    if current_moved && !requested.contains(PREVIOUS) {
        prop_assert_eq!(&new[PREVIOUS], &old[CURRENT], "ACSPrevious follows");
    }
    for (s, v) in &old {
        let moved = requested.contains(s) || (s == PREVIOUS && current_moved);
        if !moved {
            prop_assert_eq!(new.get(s), Some(v), "stage {} moved without reason", s);
        }
    }
    // Only unstaged versions were dropped, the oldest first, and only to keep 10.
    let kept: BTreeSet<&String> = after.iter().map(|(id, _)| id).collect();
    let dropped: Vec<usize> = before
        .iter()
        .enumerate()
        .filter(|(_, (id, _))| !kept.contains(id))
        .map(|(pos, _)| pos)
        .collect();
    prop_assert_eq!(after.len(), (before.len() + 1).min(10));
    prop_assert_eq!(dropped.len(), before.len() + 1 - after.len());
    for &pos in &dropped {
        let id = &before[pos].0;
        prop_assert!(
            !new.values().any(|v| v == id),
            "a staged version was dropped"
        );
        // Every unstaged version still kept is newer (earlier in the newest-first listing).
        for (later_pos, (other, _)) in before.iter().enumerate() {
            if kept.contains(other) && !new.values().any(|v| v == other) {
                prop_assert!(later_pos < pos, "{} dropped before older {}", id, other);
            }
        }
    }
    Ok(())
}

fn run(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let env = Env::new();
    env.kms
        .create_secret(
            &env.me,
            CreateSecretRequest {
                secret_name: NAME.into(),
                secret_data: DATA[0].into(),
                version_id: version(0),
                ..Default::default()
            },
        )
        .unwrap();
    let mut data_of: HashMap<String, String> = HashMap::from([(version(0), DATA[0].to_owned())]);
    let mut l = listing(&env);
    check_invariants(&env, &l, &data_of)?;

    for step in steps {
        env.clock.advance(1);
        let before = l.clone();
        let old = stage_map(&before)?;
        let exists = |id: &str| before.iter().any(|(v, _)| v == id);
        match step {
            Step::Put {
                version: v,
                stages,
                data,
            } => {
                let (id, data) = (version(v), DATA[data]);
                let stages: Vec<String> = stages.iter().map(|&i| STAGES[i].to_owned()).collect();
                let result = put(&env, &id, &stages, data);
                l = listing(&env);
                if exists(&id) {
                    if data_of[&id] == data {
                        prop_assert!(result.is_ok(), "idempotent put failed: {:?}", result);
                    } else {
                        prop_assert_eq!(
                            result.as_ref().map_err(KmsError::code).err(),
                            Some("Rejected.ResourceExist")
                        );
                    }
                    prop_assert_eq!(&l, &before, "a put of an existing version changed things");
                } else {
                    let mut requested: BTreeSet<String> = stages.into_iter().collect();
                    if requested.is_empty() {
                        requested.insert(CURRENT.to_owned());
                    }
                    match result {
                        Ok(()) => {
                            data_of.insert(id.clone(), data.to_owned());
                            check_new_version(&before, &l, &id, &requested)?;
                        }
                        Err(e) => {
                            prop_assert_eq!(e.code(), "Rejected.LimitExceeded", "{}", e);
                            prop_assert_eq!(before.len(), 10);
                            prop_assert_eq!(&l, &before, "a failed put changed things");
                        }
                    }
                }
            }
            Step::Stage {
                stage,
                remove_from,
                move_to,
            } => {
                let stage = STAGES[stage];
                let holder = old.get(stage);
                let from = remove_from.map(|t| t.resolve(holder, &before));
                let to = move_to.map(|t| t.resolve(holder, &before));
                let result = env.kms.update_secret_version_stage(
                    &env.me,
                    UpdateSecretVersionStageRequest {
                        secret_name: NAME.into(),
                        version_stage: stage.into(),
                        remove_from_version: from.clone(),
                        move_to_version: to.clone(),
                    },
                );
                l = listing(&env);
                let must_fail = (from.is_some() && from.as_ref() != holder)
                    || to.as_ref().is_some_and(|t| !exists(t))
                    || (to.is_none() && (from.is_none() || stage == CURRENT || stage == PREVIOUS))
                    || (to.is_some()
                        && holder.is_some()
                        && holder != to.as_ref()
                        && from.is_none());
                match result {
                    Ok(_) => {
                        prop_assert!(!must_fail, "{} {:?}->{:?} succeeded", stage, from, to);
                        let new = stage_map(&l)?;
                        let ids =
                            |x: &Listing| x.iter().map(|(v, _)| v.clone()).collect::<Vec<_>>();
                        prop_assert_eq!(ids(&l), ids(&before), "a stage move changed versions");
                        match &to {
                            Some(t) => {
                                prop_assert_eq!(new.get(stage), Some(t));
                                let current_moved = stage == CURRENT && &old[CURRENT] != t;
                                if current_moved {
                                    prop_assert_eq!(&new[PREVIOUS], &old[CURRENT]);
                                }
                                for (s, v) in &old {
                                    if s != stage && !(s == PREVIOUS && current_moved) {
                                        prop_assert_eq!(new.get(s), Some(v));
                                    }
                                }
                            }
                            None => {
                                prop_assert!(!new.contains_key(stage));
                                let mut expected = old.clone();
                                expected.remove(stage);
                                prop_assert_eq!(new, expected);
                            }
                        }
                    }
                    Err(e) => {
                        prop_assert!(
                            matches!(e.code(), "InvalidParameter" | "MissingParameter"),
                            "{}",
                            e
                        );
                        prop_assert!(must_fail, "{} {:?}->{:?} failed: {}", stage, from, to, e);
                        prop_assert_eq!(&l, &before, "a failed stage change changed things");
                    }
                }
            }
        }
        check_invariants(&env, &l, &data_of)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn stage_invariants_hold_over_random_operation_sequences(
        steps in prop::collection::vec(step(), 1..=30)
    ) {
        run(steps)?;
    }
}

/// A long fixed walk that surely fills the secret past 10 versions and hits the limit.
#[test]
fn a_long_walk_fills_the_secret_and_keeps_the_invariants() {
    let mut steps = Vec::new();
    for i in 1..VERSIONS {
        steps.push(Step::Put {
            version: i,
            stages: if i % 3 == 0 { vec![2 + i % 2] } else { vec![] },
            data: i % DATA.len(),
        });
    }
    for i in 0..VERSIONS {
        steps.push(Step::Put {
            version: i,
            stages: vec![i % STAGES.len()],
            data: (i + 1) % DATA.len(),
        });
        steps.push(Step::Stage {
            stage: 2,
            remove_from: Some(Target::Holder(i)),
            move_to: Some(Target::Existing(i + 5)),
        });
    }
    run(steps).unwrap();
}
