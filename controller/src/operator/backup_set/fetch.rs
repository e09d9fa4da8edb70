//! The reads a BackupSet's reconcile needs, all at the start: its references, the claims of
//! its sources and who uses them, its Jobs and those of its repository, its siblings. The
//! controller reads only Secrets' metadata (whether they exist), never their data.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::Api;
use kube::api::ListParams;

use crate::api::{BackupSet, Schedule, StorageSet};
pub use crate::operator::claim_users::ClaimUser;
use crate::operator::claim_users::claim_users;
use crate::operator::context::SetStores;
use crate::operator::error::Error;
use crate::operator::mover::Consent;
use crate::operator::names::{LABEL_BACKUP_SET, LABEL_REPOSITORY, repository_label};

/// Everything read.
#[derive(Debug, Clone, Default)]
pub struct Refs {
    pub storage: Option<StorageSet>,
    /// The StorageSets the set's copies name, those that exist (the set's own too when a
    /// copy names it).
    pub copy_storages: BTreeMap<String, StorageSet>,
    pub schedule: Option<Schedule>,
    /// Secrets of the namespace the set names that exist.
    pub secrets: BTreeSet<String>,
    /// The key names of those Secrets, where their metadata tells them.
    pub secret_keys: BTreeMap<String, BTreeSet<String>>,
    pub claims: BTreeMap<String, PersistentVolumeClaim>,
    /// Running or starting pods using each claim (read where the node of a single-node
    /// claim or the mover's identity depends on them).
    pub claim_users: BTreeMap<String, Vec<ClaimUser>>,
    /// Whether the namespace allows privileged movers (read only when the set asks).
    pub consent: Consent,
    /// The set's own Jobs.
    pub jobs: Vec<Job>,
    /// Every Job of its repository (restores too): the queue.
    pub repo_jobs: Vec<Job>,
    /// The other sets of the namespace that keep their repository at the same place, or
    /// around or inside this set's.
    pub siblings: Vec<BackupSet>,
    /// Whether each VolumeSnapshotClass the set's `Snapshot` sources name exists.
    pub snapshot_classes: BTreeMap<String, bool>,
    /// For a set with a `groupSnapshot`: whether its class exists, and the claims its
    /// selector selects (`None`: the selector does not parse).
    pub group: Option<GroupRefs>,
}

/// What a `groupSnapshot` refers to.
#[derive(Debug, Clone, Default)]
pub struct GroupRefs {
    pub class_exists: bool,
    pub selected: Option<BTreeSet<String>>,
}

/// The repository label of a set's Jobs.
pub fn repo_label_of(set: &BackupSet) -> String {
    repository_label(
        set.metadata.namespace.as_deref().unwrap_or_default(),
        &set.spec.storage_set_ref.name,
        &set.repository(),
    )
}

pub async fn fetch(
    client: &kube::Client,
    set: &BackupSet,
    stores: &SetStores,
) -> Result<Refs, Error> {
    let ns = set.metadata.namespace.as_deref().unwrap_or("default");
    let name = set.metadata.name.as_deref().unwrap_or_default();
    let mut refs = Refs::default();
    let storages: Api<StorageSet> = Api::namespaced(client.clone(), ns);
    refs.storage = storages
        .get_opt(&set.spec.storage_set_ref.name)
        .await
        .map_err(Error::api("reading the StorageSet"))?;
    let copy_storages: BTreeSet<&String> = set
        .spec
        .copies
        .iter()
        .map(|c| &c.storage_set_ref.name)
        .collect();
    for name in copy_storages {
        let found = if *name == set.spec.storage_set_ref.name {
            refs.storage.clone()
        } else {
            storages
                .get_opt(name)
                .await
                .map_err(Error::api("reading a copy's StorageSet"))?
        };
        if let Some(s) = found {
            refs.copy_storages.insert(name.clone(), s);
        }
    }
    if let Some(s) = &set.spec.schedule_ref {
        let schedules: Api<Schedule> = Api::namespaced(client.clone(), ns);
        refs.schedule = schedules
            .get_opt(&s.name)
            .await
            .map_err(Error::api("reading the Schedule"))?;
    }
    if set.spec.mover.as_ref().is_some_and(|m| m.privileged) {
        refs.consent = crate::operator::namespace::privileged_movers(client, ns).await?;
    }
    secrets(client, ns, set, &mut refs).await?;
    claims(client, ns, set, &mut refs).await?;
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    refs.jobs = jobs
        .list(&ListParams::default().labels(&format!("{LABEL_BACKUP_SET}={name}")))
        .await
        .map_err(Error::api("listing the set's jobs"))?
        .items;
    refs.repo_jobs = jobs
        .list(&ListParams::default().labels(&format!("{LABEL_REPOSITORY}={}", repo_label_of(set))))
        .await
        .map_err(Error::api("listing the repository's jobs"))?
        .items;
    refs.siblings = siblings(client, ns, set, stores).await?;
    let classes: BTreeSet<String> = set
        .spec
        .sources
        .iter()
        .filter_map(|s| s.persistent_volume_claim.as_ref())
        .filter_map(|p| p.volume_snapshot_class_name.clone())
        .collect();
    for class in classes {
        let exists = crate::operator::snapshots::class_exists(client, &class).await?;
        refs.snapshot_classes.insert(class, exists);
    }
    if let Some(g) = &set.spec.group_snapshot {
        refs.group = Some(group(client, ns, g).await?);
    }
    Ok(refs)
}

/// The class of a `groupSnapshot`, and the claims its selector selects.
async fn group(
    client: &kube::Client,
    ns: &str,
    g: &crate::api::backup_set::GroupSnapshot,
) -> Result<GroupRefs, Error> {
    let class_exists =
        crate::operator::snapshots::group_class_exists(client, &g.volume_group_snapshot_class_name)
            .await?;
    let Ok(selector) = kube::core::Selector::try_from(g.claim_selector.clone()) else {
        return Ok(GroupRefs {
            class_exists,
            selected: None,
        });
    };
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let selected = claims
        .list_metadata(&ListParams::default().labels_from(&selector))
        .await
        .map_err(Error::api("listing the claims the groupSnapshot selects"))?
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    Ok(GroupRefs {
        class_exists,
        selected: Some(selected),
    })
}

/// Which of the Secrets it names exist (the key, the StorageSet's S3 credentials), and
/// their key names: metadata only.
async fn secrets(
    client: &kube::Client,
    ns: &str,
    set: &BackupSet,
    refs: &mut Refs,
) -> Result<(), Error> {
    let mut wanted = BTreeSet::from([set.spec.encryption.key_secret_ref.name.clone()]);
    // The set's own StorageSet's credentials, and its copies'.
    for storage in refs.storage.iter().chain(refs.copy_storages.values()) {
        if let Some(c) = storage
            .spec
            .s3
            .as_ref()
            .and_then(|s3| s3.credentials_secret_ref.as_ref())
        {
            wanted.insert(c.name.clone());
        }
    }
    for w in wanted {
        if let crate::operator::secrets::Found::Present(keys) =
            crate::operator::secrets::lookup(client, ns, &w).await?
        {
            if let Some(keys) = keys {
                refs.secret_keys.insert(w.clone(), keys);
            }
            refs.secrets.insert(w);
        }
    }
    Ok(())
}

/// The claims of its sources and of a filesystem target, and who uses the single-node ones.
async fn claims(
    client: &kube::Client,
    ns: &str,
    set: &BackupSet,
    refs: &mut Refs,
) -> Result<(), Error> {
    let mut claim_names: Vec<String> = set.source_claims().map(str::to_owned).collect();
    for fs in refs
        .storage
        .iter()
        .chain(refs.copy_storages.values())
        .filter_map(|s| s.spec.filesystem.as_ref())
    {
        if !claim_names.contains(&fs.persistent_volume_claim.claim_name) {
            claim_names.push(fs.persistent_volume_claim.claim_name.clone());
        }
    }
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    for c in &claim_names {
        if let Some(pvc) = pvcs
            .get_opt(c)
            .await
            .map_err(Error::api(format!("reading persistentvolumeclaim {c}")))?
        {
            refs.claims.insert(c.clone(), pvc);
        }
    }
    let single_node = |pvc: &PersistentVolumeClaim| {
        pvc.spec
            .as_ref()
            .and_then(|s| s.access_modes.as_ref())
            .is_some_and(|m| {
                m.iter()
                    .any(|m| m == "ReadWriteOnce" || m == "ReadWriteOncePod")
            })
    };
    let mover = set.spec.mover.as_ref();
    let identity_from_users = mover.is_none_or(|m| m.security_context.is_none() && !m.privileged)
        && refs
            .storage
            .as_ref()
            .is_some_and(|s| s.spec.filesystem.is_none());
    if refs.claims.values().any(single_node) || identity_from_users {
        refs.claim_users = claim_users(client, ns, |c| refs.claims.contains_key(c)).await?;
    }
    Ok(())
}

/// The other sets of the namespace keeping their repository at the same place, or around
/// or inside this one's: from the watch cache once it has been filled, a list where no
/// controller keeps one.
async fn siblings(
    client: &kube::Client,
    ns: &str,
    set: &BackupSet,
    stores: &SetStores,
) -> Result<Vec<BackupSet>, Error> {
    let place = |s: &BackupSet| {
        s.metadata.namespace.as_deref() == Some(ns)
            && s.metadata.uid != set.metadata.uid
            && s.spec.storage_set_ref.name == set.spec.storage_set_ref.name
            && crate::operator::storage::repositories_overlap(&s.repository(), &set.repository())
    };
    let cached = match stores.for_namespace(ns) {
        Some(store) if store.wait_until_ready().await.is_ok() => Some(store),
        _ => None,
    };
    Ok(match cached {
        Some(store) => store
            .state()
            .iter()
            .filter(|s| place(s))
            .map(|s| (**s).clone())
            .collect(),
        None => {
            let sets: Api<BackupSet> = Api::namespaced(client.clone(), ns);
            sets.list(&ListParams::default())
                .await
                .map_err(Error::api("listing backup sets"))?
                .items
                .into_iter()
                .filter(place)
                .collect()
        }
    })
}
