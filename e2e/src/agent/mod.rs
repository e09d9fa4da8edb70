//! The node agent: a small stand-in for the kubelet (and, for binding, the scheduler) on a
//! control plane without container runtime. It registers Nodes and keeps them Ready, binds
//! pending pods to them, runs their containers as local processes (see [`container`]) and
//! writes pod status like a kubelet. What it cannot emulate it refuses, with a pod
//! condition, instead of pretending. Test infrastructure, not product: see e2e/README.md.

pub mod container;
pub mod env;
pub mod nodes;
pub mod pod;
pub mod schedule;
pub mod status;
pub mod volumes;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;
use tokio::sync::watch;

use pod::{PodRun, Stop};

/// How the agent is set up.
#[derive(Debug, Clone)]
pub struct Config {
    pub state_dir: PathBuf,
    /// The binary that Holdfast images run.
    pub holdfast_bin: PathBuf,
    pub nodes: Vec<String>,
    /// The API server as containers reach it (`KUBERNETES_SERVICE_HOST`/`PORT`).
    pub api_host: String,
    pub api_port: u16,
}

/// Shared by every pod task.
pub struct Agent {
    pub client: kube::Client,
    pub state_dir: PathBuf,
    pub holdfast_bin: PathBuf,
    pub nodes: Vec<String>,
    pub api_host: String,
    pub api_port: u16,
    /// Pods being run, by uid: the stop signal of each.
    running: Mutex<HashMap<String, watch::Sender<Stop>>>,
    /// Pods whose run has ended, by uid: a watch event older than the run's last status
    /// write (it still says Running) must not start a pod again, as a kubelet never would.
    ran: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// Variables every container gets unless it sets them itself.
    pub fn defaults(&self, pod: &Pod, env: &mut Vec<(String, String)>) {
        let mut add = |k: &str, v: String| {
            if !env.iter().any(|(n, _)| n == k) {
                env.insert(0, (k.to_owned(), v));
            }
        };
        add(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
        add("HOSTNAME", pod.metadata.name.clone().unwrap_or_default());
        add("KUBERNETES_SERVICE_HOST", self.api_host.clone());
        add("KUBERNETES_SERVICE_PORT", self.api_port.to_string());
        add("HOME", "/root".into());
    }

    fn ours(&self, node: Option<&str>) -> bool {
        node.is_some_and(|n| self.nodes.iter().any(|m| m == n))
    }
}

/// Errors that end the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("registering node {node}: {source}")]
    Register {
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error("creating the state directory {path}: {source}")]
    State {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Run until `shutdown` resolves.
pub async fn run(
    client: kube::Client,
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), AgentError> {
    std::fs::create_dir_all(config.state_dir.join("pods")).map_err(|source| AgentError::State {
        path: config.state_dir.display().to_string(),
        source,
    })?;
    for n in &config.nodes {
        nodes::register(&client, n)
            .await
            .map_err(|source| AgentError::Register {
                node: n.clone(),
                source,
            })?;
    }
    let agent = Arc::new(Agent {
        client: client.clone(),
        state_dir: config.state_dir,
        holdfast_bin: config.holdfast_bin,
        nodes: config.nodes,
        api_host: config.api_host,
        api_port: config.api_port,
        running: Mutex::new(HashMap::new()),
        ran: Mutex::new(HashSet::new()),
    });
    let beats = tokio::spawn(heartbeats(agent.clone()));
    let pods: Api<Pod> = Api::all(client);
    let mut events = watcher(pods, watcher::Config::default()).boxed();
    let mut first_list = true;
    tokio::pin!(shutdown);
    loop {
        let event = tokio::select! {
            _ = &mut shutdown => break,
            e = events.next() => e,
        };
        match event {
            Some(Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p))) => {
                handle(&agent, p, first_list).await
            }
            Some(Ok(watcher::Event::Delete(p))) => {
                if let Some(uid) = &p.metadata.uid
                    && let Some(tx) = lock(&agent.running).remove(uid)
                {
                    let _ = tx.send(Stop::Delete(Duration::ZERO));
                }
            }
            Some(Ok(watcher::Event::InitDone)) => first_list = false,
            Some(Ok(watcher::Event::Init)) => {}
            Some(Err(e)) => {
                tracing::warn!("pod watch: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            None => break,
        }
    }
    beats.abort();
    // Stop every pod still running, as a node going away would.
    for (_, tx) in lock(&agent.running).drain() {
        let _ = tx.send(Stop::Delete(Duration::from_secs(2)));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn heartbeats(agent: Arc<Agent>) {
    let mut tick = 0u64;
    loop {
        tokio::time::sleep(Duration::from_secs(10)).await;
        tick += 1;
        for n in &agent.nodes {
            if let Err(e) = nodes::heartbeat(&agent.client, n, tick.is_multiple_of(4)).await {
                tracing::warn!(node = n.as_str(), "heartbeat failed: {e}");
            }
        }
    }
}

async fn handle(agent: &Arc<Agent>, pod: Pod, initial: bool) {
    let Some(uid) = pod.metadata.uid.clone() else {
        return;
    };
    let spec = pod.spec.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(agent.client.clone(), &namespace);
    let node = spec.node_name.clone();
    if node.is_none() {
        if pod.metadata.deletion_timestamp.is_some() {
            return;
        }
        bind(agent, &api, &pod, &name).await;
        return;
    }
    if !agent.ours(node.as_deref()) {
        return;
    }
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default();
    let finished = phase == "Succeeded" || phase == "Failed";
    if let Some(grace) = pod.metadata.deletion_grace_period_seconds
        && pod.metadata.deletion_timestamp.is_some()
    {
        let tx = lock(&agent.running).remove(&uid);
        match tx {
            Some(tx) => {
                let _ = tx.send(Stop::Delete(Duration::from_secs(grace.max(0) as u64)));
            }
            None => {
                // Nothing runs for it here: finish the deletion as a kubelet would.
                let _ = api
                    .delete(&name, &DeleteParams::default().grace_period(0))
                    .await;
                let _ = std::fs::remove_dir_all(pod::pod_dir(&agent.state_dir, &uid));
            }
        }
        return;
    }
    if finished || lock(&agent.running).contains_key(&uid) || lock(&agent.ran).contains(&uid) {
        return;
    }
    if initial && phase == "Running" {
        // Its processes died with an earlier agent: say so rather than run it twice.
        let patch = json!({"status": {"phase": "Failed", "reason": "NodeAgentRestarted",
            "message": "the e2e node agent restarted while this pod ran"}});
        let _ = api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await;
        return;
    }
    let (tx, rx) = watch::channel(Stop::No);
    lock(&agent.running).insert(uid.clone(), tx);
    let run = PodRun {
        agent: agent.clone(),
        pod,
        stop: rx,
    };
    let agent = agent.clone();
    tokio::spawn(async move {
        run.run().await;
        // Marked ran before it stops counting as running, so no event sees neither.
        lock(&agent.ran).insert(uid.clone());
        lock(&agent.running).remove(&uid);
    });
}

async fn bind(agent: &Arc<Agent>, api: &Api<Pod>, pod: &Pod, name: &str) {
    let spec = pod.spec.clone().unwrap_or_default();
    if spec
        .scheduler_name
        .as_deref()
        .is_some_and(|s| s != "default-scheduler")
    {
        return;
    }
    let infos: Vec<schedule::NodeInfo> = agent.nodes.iter().map(|n| nodes::info(n)).collect();
    match schedule::choose_node(&spec, &infos) {
        Ok(node) => {
            let binding = Binding {
                metadata: kube::api::ObjectMeta {
                    name: Some(name.to_owned()),
                    ..Default::default()
                },
                target: ObjectReference {
                    kind: Some("Node".into()),
                    name: Some(node.clone()),
                    api_version: Some("v1".into()),
                    ..Default::default()
                },
            };
            let r: Result<serde_json::Value, _> = api
                .create_subresource("binding", name, &PostParams::default(), &binding)
                .await;
            match r {
                Ok(_) => tracing::info!(pod = name, node = node.as_str(), "bound"),
                Err(e) => tracing::warn!(pod = name, "binding failed: {e}"),
            }
        }
        Err(why) => {
            let already = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c.type_ == "PodScheduled" && c.message.as_deref() == Some(&why.0))
                });
            if !already {
                let patch = json!({"status": {"conditions": [{"type": "PodScheduled",
                    "status": "False", "reason": "Unschedulable", "message": why.0,
                    "lastTransitionTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}]}});
                let _ = api
                    .patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
                    .await;
            }
        }
    }
}
