//! A BackupSet and what it references, checked: either everything a job needs, validated,
//! or the one problem to report (a Stalled condition). Pure, table-tested.

use crate::operator::snapshots::objects::SnapshotSource;
use holdfast_engine::compress::CompressionLevel;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Toleration};

use crate::api::backup_set::Retention;
use crate::api::backup_set::{GroupSnapshot, PvcSource};
use crate::api::common::SecretKeyReference;
use crate::api::{BackupSet, StorageSet};
use crate::job::plan::{SourcePlan, paths};
use crate::operator::claim_users;
use crate::operator::error::Problem;
use crate::operator::job::PodSource;
use crate::operator::mover::{self, MoverPlan, PodIdentity};
use crate::operator::plan::schedule::{
    ValidSchedule, parse_duration, validate as validate_schedule,
};
use crate::operator::secrets::missing_key;
use crate::operator::storage::{self, StorageMount, Target};

use super::fetch::{Refs, repo_label_of};

mod copies;
pub use copies::ValidCopy;

/// Secrets and claims may appear any time and are not watched: look again this often.
const RECHECK: std::time::Duration = std::time::Duration::from_secs(30);

/// A set ready to run.
#[derive(Debug, Clone)]
pub struct ValidSet {
    pub repository: String,
    pub url: String,
    pub repo_label: String,
    pub storage: StorageMount,
    pub key: SecretKeyReference,
    pub sources: Vec<(PodSource, SourcePlan)>,
    pub schedule: Option<ValidSchedule>,
    /// Where a ReadWriteOnce source is mounted now: the backup runs there.
    pub node: Option<String>,
    /// What the pods that mount the set's claims on `node` tolerate.
    pub node_tolerations: Vec<Toleration>,
    pub retention: Option<Retention>,
    pub compression: Option<CompressionLevel>,
    pub backup_timeout: Option<i64>,
    pub maintenance_timeout: Option<i64>,
    /// Who the set's job pods run as.
    pub mover: MoverPlan,
    /// The sources read through a snapshot (copyMethod `Snapshot`).
    pub snapshots: Vec<SnapshotSource>,
    /// Those snapshots taken together as one VolumeGroupSnapshot.
    pub group: Option<GroupSnapshot>,
    /// The set's copies.
    pub copies: Vec<ValidCopy>,
}

fn access_modes(pvc: &PersistentVolumeClaim) -> Vec<String> {
    pvc.spec
        .as_ref()
        .and_then(|s| s.access_modes.clone())
        .unwrap_or_default()
}

/// A set with hooks needs a controller allowed to run them (the chart's `hooks.enabled`,
/// which grants it `pods/exec`): without, the set says so rather than run unhooked backups
/// of data it was told need them.
pub fn hooks(set: &BackupSet, allowed: bool) -> Result<(), Problem> {
    if set.spec.hooks.is_empty() || allowed {
        return Ok(());
    }
    Err(Problem::new(
        "HooksNotEnabled",
        "this set has hooks, and this controller does not run hooks: install the chart with \
         hooks.enabled=true (it grants the controller pods/exec in the namespaces it serves), \
         or remove spec.hooks; no backup runs until then"
            .to_owned(),
    ))
}

/// Check the set against what was read: each stage below in turn, the first problem found
/// reported (pure).
pub fn validate(set: &BackupSet, refs: &Refs) -> Result<ValidSet, Problem> {
    let storage = storage_set(set, refs)?;
    let repository = set.repository();
    storage::check_repository(&repository).map_err(|m| Problem::new("RepositoryInvalid", m))?;
    let Target { url, mount } = target(set, storage, &repository)?;
    unclaimed(set, refs, &repository)?;
    let key = key(set, refs)?;
    credentials(&set.spec.storage_set_ref.name, refs, &mount)?;
    storage_ready(storage)?;
    let schedule = schedule(set, refs)?;
    let Sources {
        each,
        node,
        snapshots,
    } = sources(set, refs)?;
    group(set, refs, &snapshots)?;
    let node_tolerations = node
        .as_deref()
        .map(|n| claim_tolerations(set, refs, n))
        .unwrap_or_default();
    if let Some(r) = &set.spec.retention {
        crate::job::plan::retention_policy(r).map_err(|m| Problem::new("RetentionInvalid", m))?;
    }
    let compression = set
        .spec
        .compression
        .as_ref()
        .map(|c| c.level.parse::<CompressionLevel>())
        .transpose()
        .map_err(|e| Problem::new("CompressionInvalid", format!("compression.level: {e}")))?;
    let timeouts = set.spec.timeouts.clone().unwrap_or_default();
    let mover = mover(set, refs, &mount)?;
    let copies = copies::copies(
        set,
        refs,
        &repository,
        |filesystem| mover_for(set, refs, filesystem),
        |storage, mount| credentials(storage, refs, mount),
    )?;
    Ok(ValidSet {
        copies,
        repo_label: repo_label_of(set),
        repository,
        url,
        storage: mount,
        key,
        sources: each,
        schedule,
        node,
        node_tolerations,
        retention: set.spec.retention.clone(),
        compression,
        backup_timeout: timeout(&timeouts.backup, "backup")?,
        maintenance_timeout: timeout(&timeouts.maintenance, "maintenance")?,
        snapshots,
        group: set.spec.group_snapshot.clone(),
        mover,
    })
}

/// A `groupSnapshot`'s class exists and its selector selects exactly the claims of the
/// set's `Snapshot` sources: no claim left out of the instant, none snapshotted for
/// nothing.
fn group(set: &BackupSet, refs: &Refs, snapshots: &[SnapshotSource]) -> Result<(), Problem> {
    let (Some(g), Some(found)) = (&set.spec.group_snapshot, &refs.group) else {
        return Ok(());
    };
    let class = &g.volume_group_snapshot_class_name;
    if !found.class_exists {
        return Err(Problem::new(
            "VolumeGroupSnapshotClassNotFound",
            format!(
                "groupSnapshot: VolumeGroupSnapshotClass {class} does not exist (or the cluster \
                 serves no group snapshot API: it needs the groupsnapshot.storage.k8s.io CRDs, \
                 external-snapshotter 8.x and a CSI driver with group snapshots); `kubectl get \
                 volumegroupsnapshotclass` lists the classes"
            ),
        )
        .recheck(RECHECK));
    }
    let Some(selected) = &found.selected else {
        return Err(Problem::new(
            "GroupSnapshotSelectorMismatch",
            "groupSnapshot.claimSelector is not a valid label selector".to_owned(),
        ));
    };
    let wanted: std::collections::BTreeSet<&str> = snapshots
        .iter()
        .filter(|s| !s.clone)
        .map(|s| s.claim.as_str())
        .collect();
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|c| !selected.contains(**c))
        .copied()
        .collect();
    let extra: Vec<&str> = selected
        .iter()
        .map(String::as_str)
        .filter(|c| !wanted.contains(c))
        .collect();
    if missing.is_empty() && extra.is_empty() {
        return Ok(());
    }
    let mut why = Vec::new();
    if !missing.is_empty() {
        why.push(format!(
            "it does not select {} (label them, or read them Direct)",
            missing.join(", ")
        ));
    }
    if !extra.is_empty() {
        why.push(format!(
            "it also selects {}, which are not Snapshot sources of this set (they would be \
             snapshotted for nothing)",
            extra.join(", ")
        ));
    }
    Err(Problem::new(
        "GroupSnapshotSelectorMismatch",
        format!(
            "groupSnapshot.claimSelector must select exactly the claims of the Snapshot \
             sources: {}",
            why.join("; ")
        ),
    )
    .recheck(RECHECK))
}

/// Who the set's job pods run as: its `mover`, else the pods that mount its claims.
fn mover(set: &BackupSet, refs: &Refs, mount: &StorageMount) -> Result<MoverPlan, Problem> {
    mover_for(set, refs, matches!(mount, StorageMount::Filesystem { .. }))
}

/// Who a job pod of the set runs as, given whether it touches a filesystem repository.
fn mover_for(set: &BackupSet, refs: &Refs, filesystem: bool) -> Result<MoverPlan, Problem> {
    let users: Vec<(&str, &PodIdentity)> = set
        .source_claims()
        .filter_map(|c| refs.claim_users.get(c))
        .flatten()
        .map(|u| (u.pod.as_str(), &u.identity))
        .collect();
    mover::choose(
        set.spec.mover.as_ref(),
        &users,
        filesystem,
        namespace(set),
        refs.consent,
    )
    .map_err(Problem::from)
}

fn namespace(set: &BackupSet) -> &str {
    set.metadata.namespace.as_deref().unwrap_or_default()
}

/// The StorageSet it names exists.
fn storage_set<'a>(set: &BackupSet, refs: &'a Refs) -> Result<&'a StorageSet, Problem> {
    refs.storage.as_ref().ok_or_else(|| {
        Problem::missing(
            "StorageSetNotFound",
            format!(
                "StorageSet {} does not exist in namespace {}",
                set.spec.storage_set_ref.name,
                namespace(set)
            ),
            "create it (the set waits for it)",
        )
    })
}

/// The repository's URL and how job pods reach the StorageSet's target.
fn target(set: &BackupSet, storage: &StorageSet, repository: &str) -> Result<Target, Problem> {
    storage::target(&storage.spec, Some(repository)).map_err(|m| {
        Problem::new(
            "StorageSetInvalid",
            format!("StorageSet {}: {m}", set.spec.storage_set_ref.name),
        )
    })
}

/// No older set keeps its repository at the same place, or around or inside this one: the
/// older one keeps it.
fn unclaimed(set: &BackupSet, refs: &Refs, repository: &str) -> Result<(), Problem> {
    let name = set.metadata.name.as_deref().unwrap_or_default();
    let storage_name = &set.spec.storage_set_ref.name;
    let created = |s: &BackupSet| {
        (
            s.metadata.creation_timestamp.clone().map(|t| t.0),
            s.metadata.name.clone().unwrap_or_default(),
        )
    };
    let Some(other) = refs.siblings.iter().find(|o| {
        o.metadata.name.as_deref() != Some(name)
            && o.metadata.deletion_timestamp.is_none()
            && o.spec.storage_set_ref.name == *storage_name
            && storage::repositories_overlap(&o.repository(), repository)
            && created(o) < created(set)
    }) else {
        return Ok(());
    };
    let theirs = other.repository();
    let how = if theirs == repository {
        format!("already keeps its repository at {repository}")
    } else if theirs.len() < repository.len() {
        format!("keeps its repository at {theirs}, around this set's {repository}")
    } else {
        format!("keeps its repository at {theirs}, inside this set's {repository}")
    };
    Err(Problem::new(
        "RepositoryClaimed",
        format!(
            "BackupSet {} {how} in StorageSet {storage_name}: each set needs a repository of \
             its own, neither inside another nor around one (the outer one's purge or deletion \
             would destroy the inner one); set spec.repository to a path apart from it",
            other.metadata.name.as_deref().unwrap_or_default()
        ),
    ))
}

/// The key Secret exists and holds the key it names.
fn key(set: &BackupSet, refs: &Refs) -> Result<SecretKeyReference, Problem> {
    let key = set.spec.encryption.key_secret_ref.clone();
    if !refs.secrets.contains(&key.name) {
        return Err(Problem::missing(
            "KeySecretNotFound",
            format!("Secret {} (the repository key) does not exist", key.name),
            &format!("create it with the passphrase under key {:?}", key.key),
        )
        .recheck(RECHECK));
    }
    if let Some(why) = missing_key(&key.name, &key.key, refs.secret_keys.get(&key.name)) {
        return Err(
            Problem::new("KeySecretInvalid", format!("{why} (the repository key)"))
                .recheck(RECHECK),
        );
    }
    Ok(key)
}

/// What the target needs exists: S3 credentials with both keys, or the filesystem's claim.
fn credentials(storage_name: &str, refs: &Refs, mount: &StorageMount) -> Result<(), Problem> {
    match mount {
        StorageMount::S3 {
            credentials_secret: Some(c),
        } => {
            if !refs.secrets.contains(c) {
                return Err(Problem::missing(
                    "CredentialsSecretNotFound",
                    format!(
                        "Secret {c} (S3 credentials of StorageSet {storage_name}) does not exist"
                    ),
                    "create it with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                )
                .recheck(RECHECK));
            }
            for needed in storage::CREDENTIAL_KEYS {
                if let Some(why) = missing_key(c, needed, refs.secret_keys.get(c)) {
                    return Err(Problem::new(
                        "CredentialsSecretInvalid",
                        format!("{why} (S3 credentials of StorageSet {storage_name})"),
                    )
                    .recheck(RECHECK));
                }
            }
            Ok(())
        }
        StorageMount::Filesystem { claim } if !refs.claims.contains_key(claim) => {
            Err(Problem::new(
                "StorageClaimNotFound",
                format!("PersistentVolumeClaim {claim} (the filesystem of StorageSet {storage_name}) does not exist"),
            )
            .recheck(RECHECK))
        }
        _ => Ok(()),
    }
}

/// A StorageSet whose spec (the first, or a changed one) has not been checked holds every
/// run back until its check ends; so does a target that only a user can fix; a transient
/// failure (a timeout, a 5xx) does not.
fn storage_ready(storage: &StorageSet) -> Result<(), Problem> {
    // Applied in one sync with a StorageSet whose bucket is missing (or with a change of its
    // bucket), a set would otherwise start a run, and spend a manual token, that fails on it.
    // A StorageSet being deleted checks nothing any more, and its deletion moved its
    // generation on: the sets that purge through it on their own deletion must not wait.
    let checked = storage.status.as_ref().and_then(|s| s.checked_generation);
    let deleting = storage.metadata.deletion_timestamp.is_some();
    if !deleting && checked != storage.metadata.generation {
        let what = if checked.is_none() {
            "has not finished its first storage check"
        } else {
            "has not finished checking its changed spec"
        };
        return Err(Problem::waiting(
            "StorageNotChecked",
            format!(
                "StorageSet {} {what}: the set runs once it passes (a missing bucket or a \
                 wrong credential would show here instead)",
                storage.metadata.name.as_deref().unwrap_or_default()
            ),
        )
        .recheck(RECHECK));
    }
    if let Some(st) = &storage.status
        && st.checked_generation == storage.metadata.generation
        && let Some(reason) = &st.failure_reason
    {
        return Err(Problem::new(
            "StorageNotReady",
            format!(
                "StorageSet {} is not ready ({reason}: {}): no run starts until its storage \
                 check passes (it checks again every few minutes, and at once when its spec \
                 changes)",
                storage.metadata.name.as_deref().unwrap_or_default(),
                st.failed_checks.join("; ")
            ),
        )
        .recheck(RECHECK));
    }
    Ok(())
}

/// The Schedule it names exists and is valid.
fn schedule(set: &BackupSet, refs: &Refs) -> Result<Option<ValidSchedule>, Problem> {
    match (&set.spec.schedule_ref, &refs.schedule) {
        (None, _) => Ok(None),
        (Some(r), None) => Err(Problem::missing(
            "ScheduleNotFound",
            format!(
                "Schedule {} does not exist in namespace {}",
                r.name,
                namespace(set)
            ),
            "create it (the set waits for it)",
        )),
        (Some(r), Some(s)) => validate_schedule(&s.spec)
            .map(Some)
            .map_err(|m| Problem::new("ScheduleInvalid", format!("Schedule {}: {m}", r.name))),
    }
}

/// The sources as a pod mounts or runs each and as the plan names it, and the node a
/// ReadWriteOnce source is mounted on now (all such sources must be on one).
struct Sources {
    each: Vec<(PodSource, SourcePlan)>,
    node: Option<String>,
    snapshots: Vec<SnapshotSource>,
}

/// A `Snapshot` source as its claim says (its class must exist).
fn snapshot_source(
    name: &str,
    p: &PvcSource,
    group: Option<&GroupSnapshot>,
    refs: &Refs,
) -> Result<SnapshotSource, Problem> {
    let clone = p.clone_copy();
    let class = match group {
        _ if clone => String::new(),
        Some(g) => g.volume_group_snapshot_class_name.clone(),
        None => p.volume_snapshot_class_name.clone().unwrap_or_default(),
    };
    if !clone && group.is_none() && refs.snapshot_classes.get(&class) != Some(&true) {
        return Err(Problem::new(
            "VolumeSnapshotClassNotFound",
            format!(
                "source {name}: VolumeSnapshotClass {class} does not exist (or the cluster \
                 serves no snapshot API: it needs the snapshot CRDs and controller of \
                 kubernetes-csi/external-snapshotter and a CSI driver with snapshots); \
                 `kubectl get volumesnapshotclass` lists the classes"
            ),
        )
        .recheck(RECHECK));
    }
    let spec = refs.claims.get(&p.claim_name).and_then(|c| c.spec.as_ref());
    Ok(SnapshotSource {
        source: name.to_owned(),
        claim: p.claim_name.clone(),
        clone,
        class,
        storage_class: spec.and_then(|s| s.storage_class_name.clone()),
        size: spec
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage").cloned()),
    })
}

fn sources(set: &BackupSet, refs: &Refs) -> Result<Sources, Problem> {
    let mut sources = Vec::new();
    let mut nodes: Vec<(String, String)> = Vec::new();
    let mut snapshots = Vec::new();
    for s in &set.spec.sources {
        if let Some(p) = &s.persistent_volume_claim {
            if p.copied() {
                // Read from a new claim: no place beside the application needed.
                snapshots.push(snapshot_source(
                    &s.name,
                    p,
                    set.spec.group_snapshot.as_ref(),
                    refs,
                )?);
            } else if let Some(node) = claim_node(&s.name, p, refs)? {
                nodes.push((s.name.clone(), node));
            }
            sources.push((
                PodSource::Claim {
                    name: s.name.clone(),
                    claim: p.claim_name.clone(),
                    sub_path: p.path.clone(),
                },
                SourcePlan {
                    name: s.name.clone(),
                    path: Some(format!("{}/{}", paths::SOURCES, s.name)),
                    fifo: None,
                    exclude: p.exclude.clone(),
                    file_name: None,
                    copied: p.copied(),
                },
            ));
        } else if let Some(c) = &s.command {
            if c.command.is_empty() && c.args.is_empty() {
                return Err(Problem::new(
                    "SourceInvalid",
                    format!(
                        "source {}: the command source names no command or args",
                        s.name
                    ),
                ));
            }
            sources.push((
                PodSource::Command {
                    name: s.name.clone(),
                    command: c.clone(),
                },
                SourcePlan {
                    name: s.name.clone(),
                    path: None,
                    fifo: Some(format!("{}/{}", paths::STREAMS, s.name)),
                    exclude: vec![],
                    file_name: c.file_name.clone(),
                    copied: false,
                },
            ));
        }
    }
    nodes.sort();
    nodes.dedup_by(|a, b| a.1 == b.1);
    if nodes.len() > 1 {
        let list: Vec<String> = nodes.iter().map(|(s, n)| format!("{s} on {n}")).collect();
        return Err(Problem::new(
            "SourcesOnDifferentNodes",
            format!(
                "ReadWriteOnce sources are mounted on different nodes ({}): one pod cannot mount them all; \
                 back them up in separate BackupSets",
                list.join(", ")
            ),
        )
        .recheck(RECHECK));
    }
    Ok(Sources {
        each: sources,
        node: nodes.first().map(|(_, n)| n.clone()),
        snapshots,
    })
}

/// What the pods that mount the set's claims on `node` tolerate: its job pod runs there.
fn claim_tolerations(set: &BackupSet, refs: &Refs, node: &str) -> Vec<Toleration> {
    let users = set
        .source_claims()
        .filter_map(|c| refs.claim_users.get(c))
        .flatten();
    claim_users::tolerations_on(node, users)
}

/// A claim source's claim exists and a backup pod can mount it: the node it must run on
/// when the claim is ReadWriteOnce and in use.
fn claim_node(source: &str, p: &PvcSource, refs: &Refs) -> Result<Option<String>, Problem> {
    let Some(pvc) = refs.claims.get(&p.claim_name) else {
        return Err(Problem::new(
            "SourceClaimNotFound",
            format!(
                "source {source}: PersistentVolumeClaim {} does not exist",
                p.claim_name
            ),
        )
        .recheck(RECHECK));
    };
    let modes = access_modes(pvc);
    let users = refs
        .claim_users
        .get(&p.claim_name)
        .cloned()
        .unwrap_or_default();
    if modes.iter().any(|m| m == "ReadWriteOncePod") && !users.is_empty() {
        return Err(Problem::new(
            "ReadWriteOncePodInUse",
            format!(
                "source {source}: claim {} is ReadWriteOncePod and pod {} uses it, so no backup pod can mount it; \
                 back it up from inside that workload (a command source) or make the claim ReadWriteOnce",
                p.claim_name, users[0].pod
            ),
        )
        .recheck(RECHECK));
    }
    if modes.iter().any(|m| m == "ReadWriteOnce") {
        return Ok(users.iter().find_map(|u| u.node.clone()));
    }
    Ok(None)
}

fn timeout(v: &Option<String>, what: &str) -> Result<Option<i64>, Problem> {
    v.as_deref()
        .map(|d| {
            parse_duration(d)
                .map(|d| d.as_secs())
                .map_err(|m| Problem::new("TimeoutInvalid", format!("timeouts.{what}: {m}")))
        })
        .transpose()
}

#[cfg(test)]
mod tests;
