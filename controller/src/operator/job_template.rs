//! What a platform requires of a job pod (placement, priority, pull secrets, labels,
//! annotations, resources): the cluster's defaults (the chart's `jobs`) under a set's or a
//! restore's own `jobTemplate`, merged here and nowhere else. Pure, table-tested; `job.rs`
//! puts the result on the pod.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Toleration;

use crate::api::common::JobTemplate;

/// `own` over `defaults`: maps (labels, annotations, node selector) key by key with `own`
/// winning; lists (tolerations, pull secrets) both, without repeats; single values
/// (affinity, priority class, resources) `own`'s where it has one.
pub fn merge(defaults: &JobTemplate, own: Option<&JobTemplate>) -> JobTemplate {
    let Some(own) = own else {
        return defaults.clone();
    };
    let mut pull_secrets = defaults.image_pull_secrets.clone();
    for s in &own.image_pull_secrets {
        if !pull_secrets.iter().any(|d| d.name == s.name) {
            pull_secrets.push(s.clone());
        }
    }
    JobTemplate {
        pod_labels: overlay(&defaults.pod_labels, &own.pod_labels),
        pod_annotations: overlay(&defaults.pod_annotations, &own.pod_annotations),
        tolerations: union(&defaults.tolerations, &own.tolerations),
        node_selector: overlay(&defaults.node_selector, &own.node_selector),
        affinity: own.affinity.clone().or_else(|| defaults.affinity.clone()),
        priority_class_name: own
            .priority_class_name
            .clone()
            .or_else(|| defaults.priority_class_name.clone()),
        image_pull_secrets: pull_secrets,
        resources: own.resources.clone().or_else(|| defaults.resources.clone()),
    }
}

/// `under` with `over`'s entries added, `over` winning where both have a key.
pub fn overlay(
    under: &BTreeMap<String, String>,
    over: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut m = under.clone();
    m.extend(over.iter().map(|(k, v)| (k.clone(), v.clone())));
    m
}

/// `a` then what of `b` is not in `a`.
pub fn union(a: &[Toleration], b: &[Toleration]) -> Vec<Toleration> {
    let mut all = a.to_vec();
    for t in b {
        if !all.contains(t) {
            all.push(t.clone());
        }
    }
    all
}

/// The tolerations of the pods that mount a job's claims on the node it is pinned to: the
/// node's taints let those pods run there, so they let the job pod run beside them. A
/// toleration with `tolerationSeconds` (how long a pod stays on a node that turned
/// unreachable) is taken without it: a job pod is not evicted on a timer.
pub fn of_claim_users<'a>(users: impl IntoIterator<Item = &'a [Toleration]>) -> Vec<Toleration> {
    let mut all: Vec<Toleration> = Vec::new();
    for list in users {
        let plain: Vec<Toleration> = list
            .iter()
            .filter(|t| t.toleration_seconds.is_none())
            .cloned()
            .collect();
        all = union(&all, &plain);
    }
    all
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    use super::*;
    use crate::api::common::LocalObjectReference;

    fn toleration(key: &str) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            ..Default::default()
        }
    }

    fn secret(name: &str) -> LocalObjectReference {
        LocalObjectReference { name: name.into() }
    }

    fn memory(limit: &str) -> ResourceRequirements {
        ResourceRequirements {
            limits: Some(BTreeMap::from([("memory".into(), Quantity(limit.into()))])),
            ..Default::default()
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn cluster() -> JobTemplate {
        JobTemplate {
            pod_labels: labels(&[("sidecar.istio.io/inject", "false"), ("team", "platform")]),
            pod_annotations: labels(&[("linkerd.io/inject", "disabled")]),
            tolerations: vec![toleration("backup-pool")],
            node_selector: labels(&[("pool", "backup")]),
            affinity: None,
            priority_class_name: Some("backup-low".into()),
            image_pull_secrets: vec![secret("registry")],
            resources: Some(memory("1Gi")),
        }
    }

    #[test]
    fn without_a_template_of_its_own_a_job_gets_the_cluster_defaults() {
        assert_eq!(merge(&cluster(), None), cluster());
        assert_eq!(
            merge(&cluster(), Some(&JobTemplate::default())),
            cluster(),
            "an empty template changes nothing"
        );
    }

    #[test]
    fn a_sets_template_wins_key_by_key_and_adds_to_the_lists() {
        let own = JobTemplate {
            pod_labels: labels(&[("team", "shop"), ("cost-center", "42")]),
            tolerations: vec![toleration("dedicated"), toleration("backup-pool")],
            node_selector: labels(&[("zone", "a")]),
            affinity: Some(Affinity::default()),
            priority_class_name: Some("backup-high".into()),
            image_pull_secrets: vec![secret("registry"), secret("shop-registry")],
            resources: Some(memory("4Gi")),
            ..Default::default()
        };
        let m = merge(&cluster(), Some(&own));
        assert_eq!(
            m.pod_labels,
            labels(&[
                ("cost-center", "42"),
                ("sidecar.istio.io/inject", "false"),
                ("team", "shop"),
            ])
        );
        assert_eq!(m.pod_annotations, cluster().pod_annotations);
        assert_eq!(
            m.tolerations,
            vec![toleration("backup-pool"), toleration("dedicated")]
        );
        assert_eq!(
            m.node_selector,
            labels(&[("pool", "backup"), ("zone", "a")])
        );
        assert_eq!(m.affinity, Some(Affinity::default()));
        assert_eq!(m.priority_class_name.as_deref(), Some("backup-high"));
        assert_eq!(
            m.image_pull_secrets,
            vec![secret("registry"), secret("shop-registry")]
        );
        assert_eq!(m.resources, Some(memory("4Gi")));
    }

    #[test]
    fn a_pinned_job_tolerates_what_the_claims_pods_tolerate_but_not_their_eviction_timers() {
        let timed = Toleration {
            key: Some("node.kubernetes.io/unreachable".into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: Some(300),
            ..Default::default()
        };
        let db = vec![toleration("dedicated"), timed];
        let web = vec![toleration("dedicated"), toleration("gpu")];
        assert_eq!(
            of_claim_users([db.as_slice(), web.as_slice()]),
            vec![toleration("dedicated"), toleration("gpu")]
        );
        assert!(of_claim_users(std::iter::empty::<&[Toleration]>()).is_empty());
    }
}
