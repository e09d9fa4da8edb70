//! Which running pods (not Holdfast's own) mount which claims, and on which node: a
//! ReadWriteOnce claim in use can only be mounted by a job pod on that node.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodSpec, Toleration};
use kube::Api;
use kube::api::ListParams;

use super::error::Error;
use super::mover::PodIdentity;
use super::names::{MANAGED_BY, MANAGED_BY_VALUE};

/// A pod (not one of ours) that mounts a claim, where it runs, as whom, and what taints it
/// tolerates (a job pod pinned beside it tolerates them too).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClaimUser {
    pub pod: String,
    pub node: Option<String>,
    /// The identity of the (first) container that mounts the claim.
    pub identity: PodIdentity,
    pub tolerations: Vec<Toleration>,
}

/// What the pods among `users` that run on `node` tolerate: a job pod pinned there runs
/// beside them (see `job_template::of_claim_users`).
pub fn tolerations_on<'a>(
    node: &str,
    users: impl IntoIterator<Item = &'a ClaimUser>,
) -> Vec<Toleration> {
    super::job_template::of_claim_users(
        users
            .into_iter()
            .filter(|u| u.node.as_deref() == Some(node))
            .map(|u| u.tolerations.as_slice()),
    )
}

/// Who the first container of `spec` that mounts `volume` runs as: its own security
/// context over the pod's.
pub fn identity_of(spec: &PodSpec, volume: &str) -> PodIdentity {
    let pod = spec.security_context.clone().unwrap_or_default();
    let container = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.volume_mounts.iter().flatten().any(|m| m.name == volume))
        .and_then(|c| c.security_context.clone())
        .unwrap_or_default();
    PodIdentity {
        user: container.run_as_user.or(pod.run_as_user),
        group: container.run_as_group.or(pod.run_as_group),
        fs_group: pod.fs_group,
        supplemental: pod.supplemental_groups.unwrap_or_default(),
    }
}

/// The users of each claim `wanted` accepts, among the pods of `namespace` that have not
/// finished.
pub async fn claim_users(
    client: &kube::Client,
    namespace: &str,
    wanted: impl Fn(&str) -> bool,
) -> Result<BTreeMap<String, Vec<ClaimUser>>, Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods
        .list(&ListParams::default())
        .await
        .map_err(Error::api("listing pods (who uses the claims)"))?;
    let mut users: BTreeMap<String, Vec<ClaimUser>> = BTreeMap::new();
    for p in list.items {
        let ours = p
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.get(MANAGED_BY).is_some_and(|v| v == MANAGED_BY_VALUE));
        let phase = p
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        if ours || phase == "Succeeded" || phase == "Failed" {
            continue;
        }
        let spec = p.spec.clone().unwrap_or_default();
        for v in spec.volumes.iter().flatten() {
            if let Some(c) = &v.persistent_volume_claim
                && wanted(&c.claim_name)
            {
                users
                    .entry(c.claim_name.clone())
                    .or_default()
                    .push(ClaimUser {
                        pod: p.metadata.name.clone().unwrap_or_default(),
                        node: spec.node_name.clone(),
                        identity: identity_of(&spec, &v.name),
                        tolerations: spec.tolerations.clone().unwrap_or_default(),
                    });
            }
        }
    }
    Ok(users)
}
