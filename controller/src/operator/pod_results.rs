//! What job pods left behind, kept as soon as it is seen. A pod's termination message is
//! the only way a result reaches the controller, and a pod can be gone a moment after its
//! container ends: an aborted (suspended) Job's pods are deleted by the Job controller, a
//! node drain evicts them, a TTL removes the Job. A watch on the controller's own job pods
//! sees every status change before the deletion, so the result survives in memory until
//! the reconciler that owns the Job takes it in.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::watcher;

use super::names::MAIN_CONTAINER;
use super::names::{MANAGED_BY, MANAGED_BY_VALUE};

/// The engine container's end, as its pod reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminated {
    pub finished: Timestamp,
    pub message: String,
    pub exit_code: i32,
    pub reason: String,
}

/// The engine container's end in one pod, if it ended.
pub fn main_terminated(pod: &Pod) -> Option<Terminated> {
    let status = pod.status.as_ref()?;
    status
        .container_statuses
        .iter()
        .flatten()
        .filter(|c| c.name == MAIN_CONTAINER)
        .find_map(|c| {
            let t = c.state.as_ref()?.terminated.as_ref()?;
            Some(Terminated {
                finished: t
                    .finished_at
                    .as_ref()
                    .map_or(Timestamp::UNIX_EPOCH, |f| f.0),
                message: t.message.clone().unwrap_or_default(),
                exit_code: t.exit_code,
                reason: t.reason.clone().unwrap_or_default(),
            })
        })
}

/// A job pod stopped by a disruption (a node drain, a preemption, a taint), which the Job
/// does not count as a failure and runs again: its `DisruptionTarget` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interruption {
    pub pod: String,
    /// The node it was stopped on.
    pub node: Option<String>,
    /// The condition's reason and message (e.g. `EvictionByEvictionAPI: Eviction API:
    /// evicting`).
    pub reason: String,
}

impl Interruption {
    /// As a run's message says it.
    pub fn describe(&self) -> String {
        match &self.node {
            Some(node) => format!(
                "pod {} on node {node} was stopped ({})",
                self.pod, self.reason
            ),
            None => format!("pod {} was stopped ({})", self.pod, self.reason),
        }
    }
}

/// The disruption that stopped `pod`, if one did.
pub fn interruption(pod: &Pod) -> Option<Interruption> {
    let c = pod
        .status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionTarget" && c.status == "True")?;
    let reason = match (c.reason.as_deref(), c.message.as_deref()) {
        (Some(r), Some(m)) if !m.is_empty() => format!("{r}: {m}"),
        (r, m) => r.or(m).unwrap_or("DisruptionTarget").to_owned(),
    };
    Some(Interruption {
        pod: pod.metadata.name.clone().unwrap_or_default(),
        node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        reason,
    })
}

/// What the pods of one Job left: the newest engine end, and the interrupted attempts.
#[derive(Debug)]
struct Seen {
    newest: Option<Terminated>,
    interruptions: Vec<Interruption>,
    at: Instant,
}

/// Results seen, by (namespace, Job name): the newest per Job, and its interrupted pods.
#[derive(Debug, Default)]
pub struct PodResults {
    seen: Mutex<HashMap<(String, String), Seen>>,
}

impl PodResults {
    /// Keep the result of `pod` if its engine container ended, and its interruption if a
    /// disruption stopped it.
    pub fn observe(&self, pod: &Pod) {
        let (Some(ns), Some(job)) = (
            pod.metadata.namespace.clone(),
            pod.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("batch.kubernetes.io/job-name").cloned()),
        ) else {
            return;
        };
        let ended = main_terminated(pod);
        let stopped = interruption(pod);
        if ended.is_none() && stopped.is_none() {
            return;
        }
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        let entry = seen.entry((ns, job)).or_insert(Seen {
            newest: None,
            interruptions: Vec::new(),
            at: Instant::now(),
        });
        entry.at = Instant::now();
        if let Some(t) = ended
            && entry
                .newest
                .as_ref()
                .is_none_or(|n| t.finished >= n.finished)
        {
            entry.newest = Some(t);
        }
        if let Some(i) = stopped {
            add_interruption(&mut entry.interruptions, i);
        }
    }

    pub fn get(&self, namespace: &str, job: &str) -> Option<Terminated> {
        let seen = self.seen.lock().ok()?;
        seen.get(&(namespace.to_owned(), job.to_owned()))?
            .newest
            .clone()
    }

    /// The attempts of `job` a disruption stopped, as seen so far.
    pub fn interruptions(&self, namespace: &str, job: &str) -> Vec<Interruption> {
        let Ok(seen) = self.seen.lock() else {
            return Vec::new();
        };
        seen.get(&(namespace.to_owned(), job.to_owned()))
            .map(|s| s.interruptions.clone())
            .unwrap_or_default()
    }

    /// Forget results older than `age` (their Jobs were taken in long ago).
    pub fn prune(&self, age: Duration) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.retain(|_, s| s.at.elapsed() < age);
        }
    }

    pub fn len(&self) -> usize {
        self.seen.lock().map_or(0, |s| s.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Add `i` to `all` unless its pod is there already (a pod's every update repeats it).
fn add_interruption(all: &mut Vec<Interruption>, i: Interruption) {
    if !all.iter().any(|o| o.pod == i.pod) {
        all.push(i);
    }
}

/// Watch the controller's job pods in `api`'s scope until the stream ends, keeping results.
pub async fn watch(api: Api<Pod>, results: std::sync::Arc<PodResults>) {
    let config = watcher::Config::default().labels(&format!("{MANAGED_BY}={MANAGED_BY_VALUE}"));
    let mut last_prune = Instant::now();
    let mut events = std::pin::pin!(watcher::watcher(api, config));
    while let Some(event) = events.next().await {
        match event {
            // A deletion carries the pod's last state too: the one chance left when the
            // update before it was not seen (a watch that restarted in between).
            Ok(
                watcher::Event::Apply(p) | watcher::Event::InitApply(p) | watcher::Event::Delete(p),
            ) => results.observe(&p),
            Ok(_) => {}
            Err(e) => tracing::debug!("watching job pods: {e}"),
        }
        if last_prune.elapsed() > Duration::from_secs(600) {
            results.prune(Duration::from_secs(6 * 3600));
            last_prune = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(job: &str, finished: &str, message: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("{job}-x"), "namespace": "shop",
                         "labels": {"batch.kubernetes.io/job-name": job}},
            "status": {"containerStatuses": [{
                "name": MAIN_CONTAINER, "image": "h", "imageID": "", "ready": false,
                "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "finishedAt": finished,
                                          "message": message, "reason": "Completed"}}}]}
        }))
        .unwrap()
    }

    #[test]
    fn the_newest_result_of_a_job_is_kept_after_its_pod_is_gone() {
        let r = PodResults::default();
        r.observe(&pod("j", "2026-12-01T10:00:00Z", "first try"));
        r.observe(&pod("j", "2026-12-01T10:05:00Z", "retry"));
        r.observe(&pod("j", "2026-12-01T10:01:00Z", "late event of the first"));
        assert_eq!(r.get("shop", "j").unwrap().message, "retry");
        assert!(r.get("shop", "other").is_none());
        r.prune(Duration::ZERO);
        assert!(r.is_empty());
    }

    #[test]
    fn a_pod_stopped_by_a_drain_is_kept_as_an_interruption_once_with_its_node() {
        let evicted: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "j-a", "namespace": "shop",
                         "labels": {"batch.kubernetes.io/job-name": "j"}},
            "spec": {"nodeName": "worker", "containers": []},
            "status": {"conditions": [{"type": "DisruptionTarget", "status": "True",
                "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting"}]}
        }))
        .unwrap();
        let r = PodResults::default();
        r.observe(&evicted);
        r.observe(&evicted);
        r.observe(&pod("j", "2026-12-01T10:05:00Z", "retry"));
        let seen = r.interruptions("shop", "j");
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(
            seen[0].describe(),
            "pod j-a on node worker was stopped (EvictionByEvictionAPI: Eviction API: evicting)"
        );
        assert_eq!(r.get("shop", "j").unwrap().message, "retry");
        assert!(r.interruptions("shop", "other").is_empty());
        assert!(interruption(&pod("j", "2026-12-01T10:05:00Z", "done")).is_none());
    }
}
