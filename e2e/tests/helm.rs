//! The Helm chart installed for real with the helm built from its Go module: its
//! Deployment's pod runs the controller in-cluster (ServiceAccount token, the chart's RBAC,
//! restricted security context), the quick start works through it, and uninstalling
//! leaves the CRDs, the BackupSets and the data.
#![allow(clippy::unwrap_used)] // reason: tests

use std::process::Command;
use std::time::Duration;

use holdfast_e2e::controller::helm;
use holdfast_e2e::harness::{Cluster, api, apply, claim, repo_root, wait_for, wait_holdfast};
use holdfast_e2e::scenario::{RUN, Target, set_manifest, storage_manifests};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;

fn helm_ok(c: &Cluster, args: &[&str]) -> String {
    let out = Command::new(helm(c))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run helm: {e}"));
    assert!(
        out.status.success(),
        "helm {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn the_chart_installs_runs_the_quick_start_and_uninstalls_keeping_the_data() {
    let c = Cluster::connect().await;
    let ns = c.namespace("helm").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let chart = repo_root().join("helm/holdfast");
    let notes = helm_ok(
        &c,
        &[
            "install",
            "hf",
            chart.to_str().unwrap(),
            "--namespace",
            &ns,
            "--set",
            &format!("watchNamespaces={{{ns}}}"),
            "--set",
            "replicaCount=1",
            "--set",
            "image.repository=ghcr.io/holdfast-io/holdfast",
            "--set",
            "image.tag=e2e",
            "--set",
            &format!("metrics.port={port}"),
            "--set",
            "logFormat=text",
            // What a platform sets on every job pod: a private registry's pull secret
            // (the node has the image; the kubelet does not need it), a node pool's
            // toleration, a priority class (the built-in one: no PriorityClass to create),
            // resources a quota would require.
            "--set",
            "imagePullSecrets[0].name=registry",
            "--set",
            "jobs.tolerations[0].key=backup-pool",
            "--set",
            "jobs.tolerations[0].operator=Exists",
            "--set",
            "jobs.priorityClassName=system-cluster-critical",
            "--set",
            "jobs.resources.requests.memory=64Mi",
            "--wait",
            "--timeout",
            "90s",
        ],
    );
    assert!(notes.contains("KEEP A COPY OUTSIDE THE CLUSTER"), "{notes}");
    let deployments: Api<Deployment> = api(&c, &ns);
    wait_for(
        &deployments,
        "hf-holdfast",
        "the controller to be available",
        Duration::from_secs(60),
        |d| (d.status.as_ref()?.available_replicas? == 1).then_some(()),
    )
    .await;
    // The pod runs as the chart says: non-root, read-only root, no capabilities.
    let pods: Api<Pod> = api(&c, &ns);
    let list = pods
        .list(&kube::api::ListParams::default().labels("app.kubernetes.io/component=controller"))
        .await
        .unwrap();
    let pod = list.items.first().unwrap();
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.service_account_name.as_deref(), Some("hf-holdfast"));
    assert_eq!(
        spec.security_context.as_ref().unwrap().run_as_user,
        Some(65532)
    );

    let data = claim(&c, &ns, "uploads").await;
    holdfast_e2e::tree::fill(&data, 5);
    apply(&c, &ns, &storage_manifests(&c, &ns, Target::S3));
    apply(
        &c,
        &ns,
        &set_manifest("  manualRun: {token: one, level: full}\n"),
    );
    let last = wait_holdfast(&c, &ns, "BackupSet", "shop", "the first run", RUN, |o| {
        let last = o.pointer("/status/lastRun")?;
        matches!(
            last["phase"].as_str()?,
            "Complete" | "Partial" | "Failed" | "Aborted"
        )
        .then(|| last.clone())
    })
    .await;
    assert_eq!(last["phase"], "Complete", "{last:#}");
    // Job pods run as the chart's job ServiceAccount, without its token.
    let job = last["job"].as_str().unwrap();
    let jp = pods
        .list(
            &kube::api::ListParams::default()
                .labels(&format!("batch.kubernetes.io/job-name={job}")),
        )
        .await
        .unwrap();
    let jspec = jp.items[0].spec.as_ref().unwrap();
    assert_eq!(
        jspec.service_account_name.as_deref(),
        Some("hf-holdfast-job")
    );
    assert_eq!(jspec.automount_service_account_token, Some(false));
    // And carry the chart's job settings: pull secrets, tolerations, priority, resources,
    // and the labels and annotations that keep mesh sidecars out.
    let secrets: Vec<&str> = jspec
        .image_pull_secrets
        .iter()
        .flatten()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(secrets, ["registry"]);
    let tolerations = jspec.tolerations.clone().unwrap_or_default();
    assert!(
        tolerations
            .iter()
            .any(|t| t.key.as_deref() == Some("backup-pool")),
        "{tolerations:?}"
    );
    assert_eq!(
        jspec.priority_class_name.as_deref(),
        Some("system-cluster-critical")
    );
    let main = jspec
        .containers
        .iter()
        .find(|c| c.name == "holdfast")
        .unwrap();
    let requests = main.resources.as_ref().unwrap().requests.as_ref().unwrap();
    assert_eq!(requests["memory"].0, "64Mi");
    let meta = &jp.items[0].metadata;
    assert_eq!(
        meta.labels.as_ref().unwrap()["sidecar.istio.io/inject"],
        "false"
    );
    assert_eq!(
        meta.annotations.as_ref().unwrap()["linkerd.io/inject"],
        "disabled"
    );

    helm_ok(&c, &["uninstall", "hf", "--namespace", &ns, "--wait"]);
    let (ok, out, _) = c.kubectl(&["get", "crd", "backupsets.holdfast.io"], None);
    assert!(ok, "the CRDs stay: {out}");
    let set = holdfast_e2e::harness::holdfast(&c, &ns, "BackupSet", "shop").await;
    assert!(set.is_some(), "the BackupSet stays");
}
