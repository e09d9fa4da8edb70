//! The agent's Nodes: registered with their labels and capacity, kept Ready by heartbeats
//! (a Lease in `kube-node-lease`, and the Ready condition), as a kubelet keeps its node.

use std::collections::BTreeMap;

use chrono::Utc;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::schedule::NodeInfo;

const MANAGER: &str = "holdfast-node-agent";

/// The labels a node gets.
pub fn labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("kubernetes.io/hostname".to_owned(), name.to_owned()),
        ("kubernetes.io/os".to_owned(), "linux".to_owned()),
        (
            "kubernetes.io/arch".to_owned(),
            std::env::consts::ARCH.replace("x86_64", "amd64"),
        ),
        ("holdfast.io/e2e-node".to_owned(), "true".to_owned()),
    ])
}

pub fn info(name: &str) -> NodeInfo {
    NodeInfo {
        name: name.to_owned(),
        labels: labels(name),
    }
}

/// Create or update a node and mark it Ready.
pub async fn register(client: &kube::Client, name: &str) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels(name)},
    });
    nodes
        .patch(
            name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(node),
        )
        .await?;
    heartbeat(client, name, true).await
}

/// Renew the node's lease; with `status`, also its Ready condition.
pub async fn heartbeat(client: &kube::Client, name: &str, status: bool) -> Result<(), kube::Error> {
    let now = Utc::now();
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
                 "renewTime": now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)},
    });
    leases
        .patch(
            name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(lease),
        )
        .await?;
    if status {
        let t = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let cap = json!({"cpu": "2", "memory": "24Gi", "pods": "110", "ephemeral-storage": "50Gi"});
        let patch = json!({"status": {
            "capacity": cap, "allocatable": cap,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "holdfast e2e node agent is running pods",
                            "lastHeartbeatTime": t, "lastTransitionTime": t}],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                          {"type": "Hostname", "address": name}],
            "nodeInfo": {"machineID": name, "systemUUID": name, "bootID": "e2e",
                         "kernelVersion": "", "osImage": "holdfast e2e", "containerRuntimeVersion": "holdfast-node-agent://0",
                         "kubeletVersion": "v0.0.0-holdfast-agent", "kubeProxyVersion": "",
                         "operatingSystem": "linux", "architecture": "amd64"},
        }});
        Api::<Node>::all(client.clone())
            .patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
            .await?;
    }
    Ok(())
}
