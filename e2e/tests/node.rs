//! What only a real node proves (`e2e/kind/run.sh`; the loopback suite leaves this file
//! out): a job pod over its memory limit is OOM-killed by the kernel and the run says so,
//! S3 reached through a Service's DNS name, the chart's Deployment (probes, two replicas
//! behind the Lease) losing its leader pod, a node drained in the middle of a backup, and
//! job pods that pass the `restricted` Pod Security level running as the data's owner.
#![allow(clippy::unwrap_used)] // reason: tests

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Instant;

use holdfast_e2e::controller::helm;
use holdfast_e2e::harness::{
    Backend, Cluster, api, apply, claim, condition, prepared_volume, repo_root, wait_for,
};
use holdfast_e2e::scenario::{
    PRIVILEGED_MOVER, RUN, SOON, Shop, Target, command_set, set_manifest,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, ListParams};

/// The drain cordons a node of the cluster every scenario shares: while it does, the other
/// scenarios here (whose pods it would push onto one node, or off their node) wait, and it
/// waits for them. Scenarios of other files run after this file's.
static NODES: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// The names of the chart's controller pods.
async fn controller_pods(pods: &Api<Pod>) -> Vec<String> {
    pods.list(&ListParams::default().labels("app.kubernetes.io/component=controller"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect()
}

async fn kind() -> Cluster {
    let c = Cluster::connect().await;
    assert_eq!(
        c.backend,
        Backend::Kind,
        "these scenarios need real kubelets: bash e2e/kind/run.sh"
    );
    c
}

#[tokio::test]
#[ignore = "needs real kubelets: bash e2e/kind/run.sh"]
async fn a_job_pod_over_its_memory_limit_is_oom_killed_the_run_says_so_and_the_next_run_works() {
    kind().await;
    let _nodes = NODES.read().await;
    let shop = Shop::new("oom", Target::S3).await;
    // Backing up a 64 MiB file takes the engine about 40 MiB (chunks in flight, compression
    // contexts, the S3 client; a small tree about 13): 16 MiB lets it start, not finish.
    std::fs::write(
        shop.data.join("big.bin"),
        holdfast_testkit::pseudo_random(64 << 20, 64),
    )
    .unwrap();
    let tight = "  resources: {limits: {memory: 16Mi}, requests: {memory: 16Mi}}\n";
    let last = shop.run(tight, "one", "full").await;
    assert_eq!(last["phase"], "Failed", "{last:#}");
    let message = last["message"].as_str().unwrap_or_default();
    assert!(message.contains("OOMKilled"), "{message}");
    assert!(message.contains("memory"), "{message}");

    let last = shop.run("", "two", "full").await;
    assert_eq!(last["phase"], "Complete", "{last:#}");
}

#[tokio::test]
#[ignore = "needs real kubelets: bash e2e/kind/run.sh"]
async fn a_bucket_behind_a_service_is_reached_by_its_dns_name() {
    let c = kind().await;
    let _nodes = NODES.read().await;
    let s3_image = std::env::var("HOLDFAST_E2E_S3_IMAGE").unwrap();
    let shop = Shop::new("svc", Target::S3).await;
    apply(
        &c,
        &shop.ns,
        &format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: s3}}\nspec:\n  selector: {{matchLabels: {{app: s3}}}}\n  template:\n    metadata: {{labels: {{app: s3}}}}\n    spec:\n      initContainers:\n      - {{name: bucket, image: {shell}, command: [mkdir, -p, /data/in-cluster]}}\n      containers:\n      - name: s3\n        image: {s3_image}\n        args: [--host, 0.0.0.0, --port, \"9000\", --access-key, in-cluster, --secret-key, in-cluster-secret, /data]\n        ports: [{{containerPort: 9000}}]\n        readinessProbe: {{tcpSocket: {{port: 9000}}, periodSeconds: 1}}\n      volumes: [{{name: data, emptyDir: {{}}}}]\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: s3}}\nspec:\n  selector: {{app: s3}}\n  ports: [{{port: 9000, targetPort: 9000}}]\n",
            shell = c.shell_image,
        )
        .replace(
            "command: [mkdir, -p, /data/in-cluster]}",
            "command: [mkdir, -p, /data/in-cluster], volumeMounts: [{name: data, mountPath: /data}]}",
        )
        .replace(
            "        readinessProbe:",
            "        volumeMounts: [{name: data, mountPath: /data}]\n        readinessProbe:",
        ),
    );
    let deployments: Api<Deployment> = api(&c, &shop.ns);
    wait_for(&deployments, "s3", "the S3 server to be ready", RUN, |d| {
        (d.status.as_ref()?.ready_replicas? == 1).then_some(())
    })
    .await;
    // A second StorageSet, on the in-cluster bucket by its Service's name.
    apply(
        &c,
        &shop.ns,
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: s3-in-cluster}}\nstringData:\n  AWS_ACCESS_KEY_ID: in-cluster\n  AWS_SECRET_ACCESS_KEY: in-cluster-secret\n---\napiVersion: holdfast.io/v1alpha1\nkind: StorageSet\nmetadata: {{name: incluster}}\nspec:\n  s3:\n    bucket: in-cluster\n    endpoint: http://s3.{ns}.svc.cluster.local:9000\n    forcePathStyle: true\n    region: us-east-1\n    credentialsSecretRef: {{name: s3-in-cluster}}\n",
            ns = shop.ns
        ),
    );
    shop.ready("StorageSet", "incluster").await;
    let set = set_manifest("  manualRun: {token: one, level: full}\n").replace(
        "storageSetRef: {name: offsite}",
        "storageSetRef: {name: incluster}",
    );
    let before = BTreeSet::new();
    shop.apply(&set);
    let last = shop.next_run(&before).await;
    assert_eq!(last["phase"], "Complete", "{last:#}");
    // The StorageSet counts the set's usage on its next reconcile, which the set's status
    // change triggers a moment after the run is recorded: wait for it (times out, with the
    // object, if it never comes).
    shop.wait(
        "StorageSet",
        "incluster",
        "Ready, with the run in its inventory",
        RUN,
        |o| {
            let (ready, _, _) = holdfast_e2e::harness::condition(o, "Ready")?;
            (ready == "True" && o.pointer("/status/inventory/totalBytes")?.as_u64()? > 0)
                .then_some(())
        },
    )
    .await;
    // And back, exact.
    let original = holdfast_e2e::tree::snapshot(&shop.data);
    let fresh = holdfast_e2e::harness::prepared_volume(&c, &shop.ns, "uploads-copy");
    shop.apply(
        "apiVersion: holdfast.io/v1alpha1\nkind: Restore\nmetadata: {name: copy}\nspec:\n  backupSetRef: {name: shop}\n  target:\n    newPersistentVolumeClaim: {name: uploads-copy, size: 1Gi, storageClassName: e2e-host}\n",
    );
    let status = shop.restored("copy").await;
    assert_eq!(status["phase"], "Completed", "{status:#}");
    holdfast_e2e::tree::assert_same(&original, &holdfast_e2e::tree::snapshot(&fresh));
}

#[tokio::test]
#[ignore = "needs real kubelets: bash e2e/kind/run.sh"]
async fn the_charts_two_replicas_pass_their_probes_and_another_replica_takes_over_when_the_leader_pod_dies()
 {
    let c = kind().await;
    let _nodes = NODES.read().await;
    let ns = c.namespace("ha").await;
    let chart = repo_root().join("helm/holdfast");
    let (repository, tag) = c.job_image.rsplit_once(':').unwrap();
    let out = Command::new(helm(&c))
        .args(["install", "hf", chart.to_str().unwrap(), "--namespace", &ns])
        .args(["--set", &format!("watchNamespaces={{{ns}}}")])
        .args(["--set", "replicaCount=2"])
        .args(["--set", &format!("image.repository={repository}")])
        .args(["--set", &format!("image.tag={tag}")])
        .args(["--wait", "--timeout", "120s"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "helm install: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deployments: Api<Deployment> = api(&c, &ns);
    wait_for(
        &deployments,
        "hf-holdfast",
        "both replicas ready (their readiness probes pass)",
        RUN,
        |d| (d.status.as_ref()?.ready_replicas? == 2).then_some(()),
    )
    .await;
    let leases: Api<Lease> = api(&c, &ns);
    let leader = wait_for(&leases, "hf-holdfast", "a leader", SOON, |l| {
        l.spec.as_ref()?.holder_identity.clone()
    })
    .await;
    let pods: Api<Pod> = api(&c, &ns);
    let replicas = controller_pods(&pods).await;
    assert!(replicas.contains(&leader), "{leader} not in {replicas:?}");

    // The leader's pod is deleted at once: another replica takes the Lease over and does
    // the work. That is the standby or, as often, the pod the ReplicaSet starts in its
    // place (the leader steps down on SIGTERM, and whichever replica polls first wins).
    let died = Instant::now();
    pods.delete(&leader, &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    let new = wait_for(&leases, "hf-holdfast", "another leader", RUN, |l| {
        let h = l.spec.as_ref()?.holder_identity.clone()?;
        (h != leader).then_some(h)
    })
    .await;
    let live = controller_pods(&pods).await;
    assert!(
        live.contains(&new) && !live.contains(&leader),
        "the new leader {new} is not one of the Deployment's pods {live:?} (the deleted leader was {leader})"
    );
    eprintln!(
        "leader pod {leader} deleted; {new} leads after {:?}",
        died.elapsed()
    );
    let data = claim(&c, &ns, "uploads").await;
    holdfast_e2e::tree::fill(&data, 3);
    apply(
        &c,
        &ns,
        &holdfast_e2e::scenario::storage_manifests(&c, &ns, Target::S3),
    );
    apply(
        &c,
        &ns,
        &set_manifest("  manualRun: {token: one, level: full}\n"),
    );
    let last =
        holdfast_e2e::harness::wait_holdfast(&c, &ns, "BackupSet", "shop", "a run", RUN, |o| {
            let last = o.pointer("/status/lastRun")?;
            matches!(last["phase"].as_str()?, "Complete" | "Partial" | "Failed")
                .then(|| last.clone())
        })
        .await;
    assert_eq!(last["phase"], "Complete", "{last:#}");
}

#[tokio::test]
#[ignore = "needs real kubelets: bash e2e/kind/run.sh"]
async fn a_node_drained_mid_backup_records_the_attempt_as_aborted_and_the_retry_completes_on_the_other_node()
 {
    let c = kind().await;
    let _nodes = NODES.write().await;
    let shop = Shop::new("drain", Target::S3).await;
    let link = c.link().await;
    // A dump that says it has started (each attempt), then waits for the flag `go`.
    let set = command_set(
        &c,
        &format!(
            "echo dump; {}; {}",
            link.raise_cmd("started"),
            link.wait_cmd("go")
        ),
        "  manualRun: {token: one, level: full}\n",
    );
    shop.apply(&set);
    let job = shop
        .wait("BackupSet", "shop", "the backup to run", RUN, |o| {
            let last = o.pointer("/status/lastRun")?;
            (last["phase"] == "Running").then(|| last["job"].as_str().map(str::to_owned))?
        })
        .await;
    link.wait_raised("started", "the dump never started", RUN)
        .await;
    let pods: Api<Pod> = api(&c, &shop.ns);
    let selector = format!("job-name={job}");
    let first = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .unwrap()
        .items;
    assert_eq!(first.len(), 1, "one pod of the job before the drain");
    let first_pod = first[0].metadata.name.clone().unwrap();
    let node = first[0]
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap();

    // Drain the job's node (only the job's pod: other scenarios share the cluster), as an
    // upgrade would: cordon, then evict.
    let _uncordon = Uncordon(c.clone(), node.clone());
    let drained = Instant::now();
    // Off the test's thread: the host link the dump is waiting on must keep answering.
    let (cluster, on) = (c.clone(), node.clone());
    let drain = selector.clone();
    tokio::task::spawn_blocking(move || {
        cluster.kubectl_ok(
            &[
                "drain",
                &on,
                "--pod-selector",
                &drain,
                "--delete-emptydir-data",
                "--ignore-daemonsets",
                "--timeout",
                "60s",
            ],
            None,
        )
    })
    .await
    .unwrap();
    eprintln!("{node} drained of {first_pod} in {:?}", drained.elapsed());
    link.raise("go");
    let last = shop
        .wait("BackupSet", "shop", "the retried run to end", RUN, |o| {
            let last = o.pointer("/status/lastRun")?;
            (last["job"] == job.as_str() && last["phase"] != "Running").then(|| last.clone())
        })
        .await;
    assert_eq!(last["phase"], "Complete", "{last:#}");
    // The run says why it took longer: the evicted attempt, its pod and node.
    assert_eq!(last["interruptions"], 1, "{last:#}");
    let why = last["message"].as_str().unwrap_or_default();
    assert!(
        why.contains(&first_pod) && why.contains(&node) && why.contains("Evict"),
        "{last:#}"
    );
    let all = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .unwrap()
        .items;
    let elsewhere: Vec<_> = all
        .iter()
        .filter(|p| p.metadata.name.as_deref() != Some(first_pod.as_str()))
        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
        .collect();
    assert!(
        !elsewhere.is_empty() && elsewhere.iter().all(|n| *n != node),
        "the retry ran on {elsewhere:?}, the drained node is {node}"
    );
    // The evicted attempt stopped cleanly: the repository records it as Aborted, beside the
    // complete run, and verifies.
    let (ok, runs, err) = shop.cli(&["runs"]);
    assert!(ok, "{err}");
    let statuses: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["status"].as_str())
        .collect();
    assert!(statuses.contains(&"Aborted"), "{runs:#}");
    assert!(statuses.contains(&"Complete"), "{runs:#}");
    let (ok, _, err) = shop.cli(&["verify", "--deep"]);
    assert!(ok, "verify after the drain: {err}");
}

/// Uncordons a node when dropped, so a failing scenario leaves the cluster whole.
struct Uncordon(Cluster, String);

impl Drop for Uncordon {
    fn drop(&mut self) {
        let _ = self.0.kubectl(&["uncordon", &self.1], None);
    }
}

/// The application's data, as an application running as user 1000 keeps it: its own files,
/// one of them readable by it alone, and a key file only another user may read.
fn owned_tree(root: &std::path::Path) {
    use std::os::unix::fs::{PermissionsExt, chown};
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
    }
    let put = |rel: &str, data: Option<&[u8]>, mode: u32, owner: u32| {
        let path = root.join(rel);
        match data {
            Some(d) => std::fs::write(&path, d).unwrap(),
            None => std::fs::create_dir(&path).unwrap(),
        }
        chown(&path, Some(owner), Some(owner)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    put("app", None, 0o750, 1000);
    put("app/config.yaml", Some(b"threads: 4\n"), 0o640, 1000);
    put(
        "app/data.bin",
        Some(&holdfast_testkit::pseudo_random(1 << 20, 7)),
        0o600,
        1000,
    );
    put("private.key", Some(b"not for the app\n"), 0o600, 2000);
    chown(root, Some(1000), Some(1000)).unwrap();
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o750)).unwrap();
}

/// `kubectl label|annotate namespace NS --overwrite KEY=VALUE`.
fn mark(shop: &Shop, verb: &str, kv: &str) {
    shop.c
        .kubectl_ok(&[verb, "namespace", &shop.ns, "--overwrite", kv], None);
}

#[tokio::test]
#[ignore = "needs real kubelets: bash e2e/kind/run.sh"]
async fn in_a_restricted_namespace_the_default_mover_backs_up_and_restores_as_the_datas_owner_and_root_needs_the_namespaces_consent()
 {
    let c = kind().await;
    let _nodes = NODES.read().await;
    let shop = Shop::new("restricted", Target::S3).await;
    owned_tree(&shop.data);
    // The application: user 1000, group 1000, fsGroup 1000, as the restricted level wants.
    apply(
        &c,
        &shop.ns,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: app}}\nspec:\n  securityContext: {{runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000, seccompProfile: {{type: RuntimeDefault}}}}\n  containers:\n  - name: app\n    image: {}\n    command: [sleep, '3600']\n    securityContext: {{allowPrivilegeEscalation: false, capabilities: {{drop: [ALL]}}}}\n    volumeMounts: [{{name: data, mountPath: /data}}]\n  volumes: [{{name: data, persistentVolumeClaim: {{claimName: uploads}}}}]\n",
            c.shell_image
        ),
    );
    let pods: Api<Pod> = api(&c, &shop.ns);
    wait_for(&pods, "app", "the application to run", SOON, |p| {
        (p.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(())
    })
    .await;
    mark(
        &shop,
        "label",
        "pod-security.kubernetes.io/enforce=restricted",
    );
    mark(&shop, "annotate", "holdfast.io/privileged-movers=false");

    // No mover in the set: its pods run as the application, and pass `restricted`.
    let set = |extra: &str| {
        format!(
            "apiVersion: holdfast.io/v1alpha1\nkind: BackupSet\nmetadata: {{name: shop}}\nspec:\n  storageSetRef: {{name: offsite}}\n  sources:\n  - name: uploads\n    persistentVolumeClaim: {{claimName: uploads}}\n  encryption:\n    keySecretRef: {{name: shop-key, key: passphrase}}\n{extra}"
        )
    };
    let before: BTreeSet<String> = shop.jobs().await.into_iter().collect();
    shop.apply(&set("  manualRun: {token: one, level: full}\n"));
    let last = shop.next_run(&before).await;
    assert_eq!(last["phase"], "Partial", "{last:#}");
    assert_eq!(
        last["mover"], "restricted uid 1000 gid 1000 fsGroup 1000 (from pod app)",
        "{last:#}"
    );
    assert_eq!(
        last["liveSources"],
        serde_json::json!(["uploads"]),
        "a claim read in place says it was read live: {last:#}"
    );
    // What the application's user may not read is listed, not skipped in silence.
    assert_eq!(last["errors"], 1, "{last:#}");
    let message = last["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("private.key") && message.contains("ermission denied"),
        "{message}"
    );

    // A restore into a new claim runs as the same user (no pod mounts the new claim, the
    // set's claims say who): contents, modes and owners as backed up; the new volume's
    // root, which the restoring user does not own, keeps its mode, and the status says so.
    let fresh = prepared_volume(&c, &shop.ns, "uploads-copy");
    shop.apply(
        "apiVersion: holdfast.io/v1alpha1\nkind: Restore\nmetadata: {name: copy}\nspec:\n  backupSetRef: {name: shop}\n  allowPartial: true\n  target:\n    newPersistentVolumeClaim: {name: uploads-copy, size: 1Gi, storageClassName: e2e-host}\n",
    );
    let status = shop.restored("copy").await;
    assert_eq!(status["phase"], "Completed", "{status:#}");
    assert!(
        status["mover"]
            .as_str()
            .is_some_and(|m| m.starts_with("restricted uid 1000 gid 1000")),
        "{status:#}"
    );
    assert_eq!(status["ownersNotSet"], 1, "the volume's root: {status:#}");
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.contains("mover.privileged")),
        "{status:#}"
    );
    for (rel, mode) in [
        ("app", 0o750),
        ("app/config.yaml", 0o640),
        ("app/data.bin", 0o600),
    ] {
        use std::os::unix::fs::MetadataExt;
        let md = std::fs::symlink_metadata(fresh.join(rel)).unwrap();
        assert_eq!(
            (md.mode() & 0o7777, md.uid(), md.gid()),
            (mode, 1000, 1000),
            "{rel}"
        );
    }
    assert_eq!(
        std::fs::read(fresh.join("app/data.bin")).unwrap(),
        std::fs::read(shop.data.join("app/data.bin")).unwrap()
    );
    assert!(!fresh.join("private.key").exists());

    // Root is the set's to ask for and the namespace's to allow: refused without the
    // annotation, naming it; with it (and the privileged level), every file is read.
    let privileged = format!(
        "{}  manualRun: {{token: two, level: full}}\n",
        PRIVILEGED_MOVER
    );
    shop.apply(&set(&privileged));
    let why = shop
        .wait(
            "BackupSet",
            "shop",
            "Stalled=True (PrivilegedMoverNotAllowed)",
            SOON,
            |o| {
                let (s, r, m) = condition(o, "Stalled")?;
                (s == "True" && r == "PrivilegedMoverNotAllowed").then_some(m)
            },
        )
        .await;
    assert!(
        why.contains(&format!(
            "kubectl annotate namespace {} holdfast.io/privileged-movers=true",
            shop.ns
        )),
        "{why}"
    );
    let before: BTreeSet<String> = shop.jobs().await.into_iter().collect();
    mark(
        &shop,
        "label",
        "pod-security.kubernetes.io/enforce=privileged",
    );
    mark(&shop, "annotate", "holdfast.io/privileged-movers=true");
    let last = shop.next_run(&before).await;
    assert_eq!(last["phase"], "Complete", "{last:#}");
    assert_eq!(last["errors"], 0, "{last:#}");
    assert_eq!(
        last["mover"], "privileged (root, allowed by the namespace)",
        "{last:#}"
    );
}

/// Takes a node's taint off when dropped (the scenario passes or panics).
struct Untaint(Cluster, String, &'static str);

impl Drop for Untaint {
    fn drop(&mut self) {
        let _ = self
            .0
            .kubectl(&["taint", "nodes", &self.1, &format!("{}-", self.2)], None);
    }
}

#[tokio::test]
#[ignore = "needs real kubelets: bash e2e/kind/run.sh"]
async fn a_claim_used_on_a_tainted_node_is_backed_up_there_with_the_sets_job_template_on_the_pod() {
    let c = kind().await;
    // The taint keeps every other scenario's pods off the node: none may run meanwhile.
    let _nodes = NODES.write().await;
    let shop = Shop::new("taint", Target::S3).await;
    shop.ready("StorageSet", "offsite").await;
    let nodes = c.kubectl_ok(
        &["get", "nodes", "-o", "jsonpath={.items[*].metadata.name}"],
        None,
    );
    let node = nodes.split_whitespace().last().unwrap().to_owned();
    // A dedicated node pool: only pods that tolerate `dedicated=db` run there.
    c.kubectl_ok(
        &[
            "taint",
            "nodes",
            &node,
            "dedicated=db:NoSchedule",
            "--overwrite",
        ],
        None,
    );
    let _untaint = Untaint(c.clone(), node.clone(), "dedicated=db:NoSchedule");
    // The database pod tolerates it and holds the ReadWriteOnce claim on that node.
    apply(
        &c,
        &shop.ns,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: db}}\nspec:\n  nodeSelector: {{kubernetes.io/hostname: {node}}}\n  tolerations: [{{key: dedicated, operator: Equal, value: db, effect: NoSchedule}}]\n  containers:\n  - name: db\n    image: {}\n    command: [sleep, '3600']\n    volumeMounts: [{{name: data, mountPath: /data}}]\n  volumes: [{{name: data, persistentVolumeClaim: {{claimName: uploads}}}}]\n",
            c.shell_image
        ),
    );
    let pods: Api<Pod> = api(&c, &shop.ns);
    wait_for(&pods, "db", "the database pod to run", SOON, |p| {
        (p.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(())
    })
    .await;

    // The set's template: labels, annotations, a priority class and a toleration of its
    // own; nothing says `dedicated`: that comes from the database pod.
    let template = "  jobTemplate:\n    podLabels: {team: shop}\n    podAnnotations: {cost-center: '42'}\n    priorityClassName: system-cluster-critical\n    tolerations: [{key: backup-pool, operator: Exists}]\n";
    let last = shop.run(template, "one", "full").await;
    assert_eq!(last["phase"], "Complete", "{last:#}");
    let job = last["job"].as_str().unwrap();
    let pod = pods
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .next()
        .unwrap();
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(
        spec.node_name.as_deref(),
        Some(node.as_str()),
        "beside the database"
    );
    let tolerated: Vec<&str> = spec
        .tolerations
        .iter()
        .flatten()
        .filter_map(|t| t.key.as_deref())
        .collect();
    for key in ["dedicated", "backup-pool"] {
        assert!(tolerated.contains(&key), "{key}: {tolerated:?}");
    }
    assert_eq!(
        spec.priority_class_name.as_deref(),
        Some("system-cluster-critical")
    );
    let meta = &pod.metadata;
    assert_eq!(meta.labels.as_ref().unwrap()["team"], "shop");
    assert_eq!(meta.annotations.as_ref().unwrap()["cost-center"], "42");
}

/// The hook results of a run, as `(hook, phase, outcome, pod)`.
fn hook_results(last: &serde_json::Value) -> Vec<(String, String, String, String)> {
    last["hooks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|h| {
            let s = |k: &str| h[k].as_str().unwrap_or_default().to_owned();
            (s("hook"), s("phase"), s("outcome"), s("pod"))
        })
        .collect()
}

#[tokio::test]
#[ignore = "needs real kubelets: bash e2e/kind/run.sh"]
async fn hooks_run_in_the_applications_pod_pre_before_the_read_and_post_after_it_also_when_pre_fails()
 {
    let c = kind().await;
    let _nodes = NODES.read().await;
    let shop = Shop::with_hooks("hooks", Target::S3).await;
    apply(
        &c,
        &shop.ns,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: db, labels: {{app: db}}}}\nspec:\n  containers:\n  - name: db\n    image: {}\n    command: [sleep, '3600']\n    volumeMounts: [{{name: data, mountPath: /data}}]\n  volumes: [{{name: data, persistentVolumeClaim: {{claimName: uploads}}}}]\n",
            c.shell_image
        ),
    );
    let pods: Api<Pod> = api(&c, &shop.ns);
    wait_for(&pods, "db", "the application to run", SOON, |p| {
        (p.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(())
    })
    .await;
    let hooked = |pre: &str, extra: &str| {
        format!(
            "  hooks:\n  - name: mark\n    podLabels: {{app: db}}\n    pre: [sh, -c, {pre:?}]\n    post: [sh, -c, 'echo after >> /data/post-hook.txt']\n{extra}"
        )
    };
    let post_marks = || {
        std::fs::read_to_string(shop.data.join("post-hook.txt"))
            .unwrap_or_default()
            .lines()
            .count()
    };

    // pre, then the backup reads what pre wrote, then post: the run holds pre's file and
    // not post's.
    let ok = hooked("echo before > /data/pre-hook.txt && echo consistent", "");
    let last = shop.run(&ok, "one", "full").await;
    assert_eq!(last["phase"], "Complete", "{last:#}");
    let s = |a: &str, b: &str, o: &str, p: &str| {
        (a.to_owned(), b.to_owned(), o.to_owned(), p.to_owned())
    };
    assert_eq!(
        hook_results(&last),
        [
            s("mark", "Pre", "Succeeded", "db"),
            s("mark", "Post", "Succeeded", "db")
        ],
        "{last:#}"
    );
    assert_eq!(last["hooks"][0]["output"], "consistent", "{last:#}");
    assert_eq!(post_marks(), 1, "post ran once");
    let label = last["label"].as_str().unwrap().to_owned();
    let (done, files, err) = shop.cli(&["ls", &label]);
    assert!(done, "{err}");
    let listed = files.to_string();
    assert!(listed.contains("pre-hook.txt"), "{listed}");
    assert!(
        !listed.contains("post-hook.txt"),
        "post ran after the read: {listed}"
    );

    // A pre that fails stops the run before anything is read; post still runs.
    let runs_before = shop.cli(&["runs"]).1.as_array().map_or(0, Vec::len);
    let failing = hooked("echo no lock for you >&2; exit 3", "");
    let last = shop.run(&failing, "two", "incr").await;
    assert_eq!(last["phase"], "Failed", "{last:#}");
    let message = last["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("pre hook \"mark\" in pod db exited with 3: no lock for you"),
        "{message}"
    );
    assert_eq!(
        hook_results(&last),
        [
            s("mark", "Pre", "Failed", "db"),
            s("mark", "Post", "Succeeded", "db")
        ],
        "{last:#}"
    );
    assert_eq!(post_marks(), 2, "post ran after the failed pre");
    assert_eq!(
        shop.cli(&["runs"]).1.as_array().map_or(0, Vec::len),
        runs_before,
        "no run was recorded: the job pod never started"
    );

    // A pre over its timeout with onError: Continue is recorded, and the backup goes on.
    let slow = hooked("sleep 20", "    timeout: 2s\n    onError: Continue\n");
    let last = shop.run(&slow, "three", "incr").await;
    assert_eq!(last["phase"], "Complete", "{last:#}");
    assert_eq!(last["hooks"][0]["outcome"], "TimedOut", "{last:#}");
    assert!(
        last["message"]
            .as_str()
            .unwrap_or_default()
            .contains("pre hook \"mark\" in pod db timed out"),
        "{last:#}"
    );
    assert_eq!(post_marks(), 3);

    // A hook whose pods are not there fails the run (onError: Fail), saying so.
    let nobody = hooked("true", "").replace("{app: db}", "{app: nobody}");
    let last = shop.run(&nobody, "four", "incr").await;
    assert_eq!(last["phase"], "Failed", "{last:#}");
    assert!(
        last["message"]
            .as_str()
            .unwrap_or_default()
            .contains("found no running pod"),
        "{last:#}"
    );
    assert_eq!(post_marks(), 3, "no pod: no post either");

    // The metric counts commands by phase and outcome.
    let series = |phase: &str, outcome: &str| {
        format!(
            "holdfast_hook_commands_total{{namespace=\"{}\",backup_set=\"shop\",phase=\"{phase}\",outcome=\"{outcome}\"}}",
            shop.ns
        )
    };
    assert_eq!(shop.ctl.metric(&series("pre", "failed")).await, Some(1.0));
    assert_eq!(
        shop.ctl.metric(&series("post", "succeeded")).await,
        Some(3.0)
    );
    assert_eq!(
        shop.ctl.metric(&series("pre", "timed_out")).await,
        Some(1.0)
    );

    // An aborted run gets its post too: a dump that hangs until told, stopped on request.
    let link = c.link().await;
    let hanging = command_set(
        &c,
        &format!(
            "head -c 1000 /dev/zero; {}; {}",
            link.raise_cmd("started"),
            link.wait_cmd("go")
        ),
        &hooked("true", ""),
    );
    let mut before: BTreeSet<String> = shop.jobs().await.into_iter().collect();
    before.insert(last["job"].as_str().unwrap_or_default().to_owned());
    shop.apply(&format!(
        "{hanging}  manualRun: {{token: five, level: full}}\n"
    ));
    link.wait_raised("started", "the dump never started", RUN)
        .await;
    c.kubectl_ok(
        &[
            "annotate",
            "-n",
            &shop.ns,
            "backupset",
            "shop",
            "holdfast.io/abort=stop-1",
        ],
        None,
    );
    let last = shop.next_run(&before).await;
    link.raise("go");
    assert_eq!(last["phase"], "Aborted", "{last:#}");
    assert_eq!(
        hook_results(&last),
        [
            s("mark", "Pre", "Succeeded", "db"),
            s("mark", "Post", "Succeeded", "db")
        ],
        "{last:#}"
    );
    assert_eq!(post_marks(), 4, "post ran after the abort");
}

/// Poll `kubectl <args>` until its output satisfies `done` (at most `timeout`); the output.
async fn kubectl_until(
    c: &Cluster,
    args: &[&str],
    what: &str,
    timeout: std::time::Duration,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let (_, out, err) = c.kubectl(args, None);
        if done(&out) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not after {timeout:?}; kubectl {args:?} said:\n{out}\n{err}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

#[tokio::test]
#[ignore = "needs real kubelets: bash e2e/kind/run.sh"]
async fn the_test_csi_driver_snapshots_a_claim_being_written_at_one_instant_and_restores_a_claim_from_it()
 {
    let c = kind().await;
    let _nodes = NODES.read().await;
    let ns = c.namespace("csi").await;
    // Two counters written in lockstep, `a` first: any one instant has a == b or a == b + 1.
    let writer = "i=0; while true; do i=$((i+1)); echo $i > /data/a.tmp; mv /data/a.tmp /data/a; echo $i > /data/b.tmp; mv /data/b.tmp /data/b; done";
    apply(
        &c,
        &ns,
        &format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: data}}\nspec:\n  storageClassName: holdfast-btrfs\n  accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: 1Gi}}}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: writer}}\nspec:\n  containers:\n  - name: w\n    image: {shell}\n    command: [sh, -c, {writer:?}]\n    volumeMounts: [{{name: data, mountPath: /data}}]\n  volumes: [{{name: data, persistentVolumeClaim: {{claimName: data}}}}]\n",
            shell = c.shell_image
        ),
    );
    let pods: Api<Pod> = api(&c, &ns);
    wait_for(&pods, "writer", "the writer to run", RUN, |p| {
        (p.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    apply(
        &c,
        &ns,
        "apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\nmetadata: {name: snap}\nspec:\n  volumeSnapshotClassName: holdfast-btrfs\n  source: {persistentVolumeClaimName: data}\n",
    );
    kubectl_until(
        &c,
        &[
            "get",
            "volumesnapshot",
            "snap",
            "-n",
            &ns,
            "-o",
            "jsonpath={.status.readyToUse}",
        ],
        "the snapshot to be ready",
        SOON,
        |o| o == "true",
    )
    .await;
    apply(
        &c,
        &ns,
        &format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: restored}}\nspec:\n  storageClassName: holdfast-btrfs\n  accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: 1Gi}}}}\n  dataSource: {{apiGroup: snapshot.storage.k8s.io, kind: VolumeSnapshot, name: snap}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: reader}}\nspec:\n  restartPolicy: Never\n  containers:\n  - name: r\n    image: {shell}\n    command: [sh, -c, 'cat /r/a /r/b']\n    volumeMounts: [{{name: r, mountPath: /r, readOnly: true}}]\n  volumes: [{{name: r, persistentVolumeClaim: {{claimName: restored, readOnly: true}}}}]\n",
            shell = c.shell_image
        ),
    );
    wait_for(&pods, "reader", "the reader to finish", RUN, |p| {
        (p.status.as_ref()?.phase.as_deref() == Some("Succeeded")).then_some(())
    })
    .await;
    let out = c.kubectl_ok(&["logs", "reader", "-n", &ns], None);
    let n: Vec<u64> = out.lines().map(|l| l.trim().parse().unwrap()).collect();
    let (a, b) = (n[0], n[1]);
    assert!(
        b > 0 && (a == b || a == b + 1),
        "a={a} b={b}: not one instant"
    );

    // Deleting the snapshot deletes its content and the driver's copy.
    c.kubectl_ok(
        &["delete", "volumesnapshot", "snap", "-n", &ns, "--wait=true"],
        None,
    );
    kubectl_until(
        &c,
        &[
            "get",
            "volumesnapshotcontents",
            "-o",
            "jsonpath={.items[*].spec.volumeSnapshotRef.namespace}",
        ],
        "the snapshot's content to be deleted",
        SOON,
        |o| !o.contains(&ns),
    )
    .await;
    c.kubectl_ok(&["delete", "namespace", &ns, "--wait=false"], None);
}

/// The application `db` (label `app: db`) over its claim `db` on the btrfs driver, never
/// stopping: it appends to a log (and syncs it, as a database makes its log durable before
/// it goes on: a crash-consistent snapshot promises no order between unsynced data and
/// later renames), then rewrites two counters in lockstep (`a` first). At any one instant
/// the log ends at `a` or `a + 1`, and `a == b` or `a == b + 1`.
async fn counting_application(c: &Cluster, shop: &Shop) {
    let writer = "i=0; while true; do i=$((i+1)); echo $i >> /data/log; sync /data/log; echo $i > /data/a.tmp; mv /data/a.tmp /data/a; echo $i > /data/b.tmp; mv /data/b.tmp /data/b; done";
    apply(
        c,
        &shop.ns,
        &format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: db}}\nspec:\n  storageClassName: holdfast-btrfs\n  accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: 1Gi}}}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: db, labels: {{app: db}}}}\nspec:\n  containers:\n  - name: db\n    image: {shell}\n    command: [sh, -c, {writer:?}]\n    volumeMounts: [{{name: data, mountPath: /data}}]\n  volumes: [{{name: data, persistentVolumeClaim: {{claimName: db}}}}]\n",
            shell = c.shell_image
        ),
    );
    let pods: Api<Pod> = api(c, &shop.ns);
    wait_for(&pods, "db", "the application to run", RUN, |p| {
        (p.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(())
    })
    .await;
}

/// The set `shop` reading the counting application's claim `db` from a snapshot of class
/// `class`, its hook `mark` running `pre` and then writing /data/post-hook, run by `token`.
fn snapshot_set(class: &str, pre: &str, token: &str) -> String {
    format!(
        "apiVersion: holdfast.io/v1alpha1\nkind: BackupSet\nmetadata: {{name: shop}}\nspec:\n  storageSetRef: {{name: offsite}}\n  sources:\n  - name: db\n    persistentVolumeClaim: {{claimName: db, copyMethod: Snapshot, volumeSnapshotClassName: {class}}}\n  encryption:\n    keySecretRef: {{name: shop-key, key: passphrase}}\n{PRIVILEGED_MOVER}  hooks:\n  - name: mark\n    podLabels: {{app: db}}\n    pre: [sh, -c, {pre:?}]\n    post: [sh, -c, 'echo post > /data/post-hook']\n    timeout: 5m\n  manualRun: {{token: {token}, level: full}}\n"
    )
}

/// Restore `shop`'s newest run into `<dir>/<name>` and check that the counting
/// application's files there are of one instant; returns the directory.
fn restored_at_one_instant(shop: &Shop, name: &str) -> std::path::PathBuf {
    let target = shop.c.dir.join(name);
    let (ok, _, err) = shop.cli(&["restore", "--target", target.to_str().unwrap()]);
    assert!(ok, "{err}");
    let read = |f: &str| std::fs::read_to_string(target.join(f)).unwrap();
    let n = |f: &str| read(f).trim().parse::<u64>().unwrap();
    let (a, b) = (n("a"), n("b"));
    assert!(
        b > 0 && (a == b || a == b + 1),
        "a={a} b={b}: not one instant"
    );
    let lines: Vec<u64> = read("log").lines().map(|l| l.parse().unwrap()).collect();
    let want: Vec<u64> = (1..=lines.len() as u64).collect();
    assert!(
        lines == want && (lines.len() as u64 == a || lines.len() as u64 == a + 1),
        "the appended log ({} lines, last {:?}) is not the instant of a={a}",
        lines.len(),
        lines.last()
    );
    target
}

#[tokio::test]
#[ignore = "needs real kubelets: bash e2e/kind/run.sh"]
async fn a_snapshot_source_is_read_at_one_instant_between_pre_and_post_and_leaves_no_snapshot_or_claim()
 {
    let c = kind().await;
    let _nodes = NODES.read().await;
    let shop = Shop::with_hooks("snapread", Target::S3).await;
    counting_application(&c, &shop).await;
    let set = |class: &str, token: &str| snapshot_set(class, "echo pre > /data/pre-hook", token);

    // A class that does not exist: the set says so and starts nothing.
    shop.apply(&set("nonesuch", "one"));
    let message = shop
        .stalled("BackupSet", "shop", "VolumeSnapshotClassNotFound")
        .await;
    assert!(
        message.contains("VolumeSnapshotClass nonesuch does not exist"),
        "{message}"
    );
    assert!(
        !shop
            .jobs()
            .await
            .iter()
            .any(|j| j.starts_with("shop-backup")),
        "no backup without its snapshot class"
    );

    // With the class: pre, the snapshot, post, then the backup reads the snapshot.
    let before: BTreeSet<String> = BTreeSet::new();
    shop.apply(&set("holdfast-btrfs", "two"));
    let last = shop.next_run(&before).await;
    assert_eq!(last["phase"], "Complete", "{last:#}");
    let snaps = last["snapshots"].as_array().cloned().unwrap_or_default();
    assert_eq!(snaps.len(), 1, "{last:#}");
    assert_eq!(snaps[0]["source"], "db");
    assert!(snaps[0]["creationTime"].is_string(), "{last:#}");
    let phases: Vec<_> = hook_results(&last).into_iter().map(|h| h.1).collect();
    assert_eq!(phases, ["Pre", "Post"], "{last:#}");

    let target = restored_at_one_instant(&shop, "snapread-restored");
    let read = |f: &str| std::fs::read_to_string(target.join(f)).ok();
    assert!(
        last.get("liveSources").is_none(),
        "a snapshot source is not read live: {last:#}"
    );
    // The restore point is the snapshot's instant, before the run started: a point in time
    // between the two restores it, a second before the snapshot finds nothing.
    let (ok, runs, err) = shop.cli(&["runs"]);
    assert!(ok, "{err}");
    let captured = runs[0]["sourceLevels"][0]["captured"]
        .as_str()
        .unwrap_or_else(|| panic!("no captured time: {runs:#}"))
        .to_owned();
    let captured_at = chrono::DateTime::parse_from_rfc3339(&captured).unwrap();
    let created =
        chrono::DateTime::parse_from_rfc3339(snaps[0]["creationTime"].as_str().unwrap()).unwrap();
    assert_eq!(
        captured_at.timestamp(),
        created.timestamp(),
        "the run records the snapshot's instant"
    );
    let started =
        chrono::DateTime::parse_from_rfc3339(runs[0]["started"].as_str().unwrap()).unwrap();
    assert!(captured_at < started, "{captured} is not before {started}");
    let at_snapshot = shop.c.dir.join("snapread-at-snapshot");
    let (ok, _, err) = shop.cli(&[
        "restore",
        "--target",
        at_snapshot.to_str().unwrap(),
        "--at",
        &captured,
    ]);
    assert!(ok, "a restore at the snapshot's instant: {err}");
    let before_snapshot = (captured_at - chrono::Duration::seconds(1)).to_rfc3339();
    let (ok, _, err) = shop.cli(&[
        "restore",
        "--target",
        at_snapshot.to_str().unwrap(),
        "--at",
        &before_snapshot,
    ]);
    assert!(!ok && err.contains("before"), "{err}");
    assert_eq!(
        read("pre-hook").as_deref(),
        Some("pre\n"),
        "pre ran before the snapshot"
    );
    assert_eq!(read("post-hook"), None, "post ran after the snapshot");

    // Nothing of the run is left: its VolumeSnapshot and temporary claim are deleted.
    let leftovers = [
        "get",
        "volumesnapshots,persistentvolumeclaims",
        "-n",
        &shop.ns,
        "-l",
        "holdfast.io/job",
        "-o",
        "name",
    ];
    kubectl_until(
        &c,
        &leftovers,
        "the run's snapshot and temporary claim to be deleted",
        SOON,
        |o| o.trim().is_empty(),
    )
    .await;

    // A snapshot the driver refuses fails the run with its words; post still runs, and
    // nothing is left.
    let last = shop.run_with(&set("holdfast-btrfs-failing", "three")).await;
    assert_eq!(last["phase"], "Failed", "{last:#}");
    let message = last["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("failed") && message.contains("asks this test driver to fail"),
        "{message}"
    );
    let phases: Vec<_> = hook_results(&last).into_iter().map(|h| h.1).collect();
    assert_eq!(phases, ["Pre", "Post"], "{last:#}");
    kubectl_until(
        &c,
        &leftovers,
        "the failed run's snapshot to be deleted",
        SOON,
        |o| o.trim().is_empty(),
    )
    .await;

    // The set deleted in the middle of a run (a dump beside the snapshot hangs until told):
    // the run is stopped, its snapshot and temporary claim are deleted, and the set goes.
    let link = c.link().await;
    let dump = format!(
        "  - name: dump\n    command: {{image: {}, command: [sh, -c], args: [{:?}]}}\n  encryption:",
        c.shell_image,
        format!(
            "head -c 1000 /dev/zero; {}; {}",
            link.raise_cmd("started"),
            link.wait_cmd("go")
        )
    );
    shop.apply(&set("holdfast-btrfs", "four").replacen("  encryption:", &dump, 1));
    link.wait_raised("started", "the run never started", RUN)
        .await;
    kubectl_until(
        &c,
        &leftovers,
        "the running backup's temporary claim",
        SOON,
        |o| o.contains("persistentvolumeclaim/"),
    )
    .await;
    c.kubectl_ok(
        &[
            "delete",
            "backupset",
            "shop",
            "-n",
            &shop.ns,
            "--wait=false",
        ],
        None,
    );
    kubectl_until(
        &c,
        &["get", "backupsets", "-n", &shop.ns, "-o", "name"],
        "the set to go",
        RUN,
        |o| o.trim().is_empty(),
    )
    .await;
    link.raise("go");
    kubectl_until(
        &c,
        &leftovers,
        "the deleted set's snapshot and claim to be deleted",
        RUN,
        |o| o.trim().is_empty(),
    )
    .await;
}

#[tokio::test]
#[ignore = "needs real kubelets: bash e2e/kind/run.sh"]
async fn two_claims_written_in_lockstep_are_read_from_one_group_snapshot_inside_the_freeze_and_restore_equal()
 {
    let c = kind().await;
    let _nodes = NODES.read().await;
    let shop = Shop::with_hooks("group", Target::S3).await;
    // One application over two claims: each step writes the counter to `db`, then to `wal`.
    // It stops between steps while /db/pause exists (and says so in /db/paused).
    let writer = "i=0; while true; do if [ -e /db/pause ]; then touch /db/paused; sleep 0.1; continue; fi; rm -f /db/paused; i=$((i+1)); echo $i > /db/c; echo $i > /wal/c; done";
    let claim = |name: &str, tier: &str| {
        format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {name}, labels: {{app: shop-db, tier: {tier}}}}}\nspec:\n  storageClassName: holdfast-btrfs\n  accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: 1Gi}}}}\n---\n"
        )
    };
    apply(
        &c,
        &shop.ns,
        &format!(
            "{}{}apiVersion: v1\nkind: Pod\nmetadata: {{name: writer, labels: {{app: writer}}}}\nspec:\n  containers:\n  - name: w\n    image: {shell}\n    command: [sh, -c, {writer:?}]\n    volumeMounts: [{{name: db, mountPath: /db}}, {{name: wal, mountPath: /wal}}]\n  volumes: [{{name: db, persistentVolumeClaim: {{claimName: db}}}}, {{name: wal, persistentVolumeClaim: {{claimName: wal}}}}]\n",
            claim("db", "data"),
            claim("wal", "log"),
            shell = c.shell_image
        ),
    );
    let pods: Api<Pod> = api(&c, &shop.ns);
    wait_for(&pods, "writer", "the application to run", RUN, |p| {
        (p.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(())
    })
    .await;
    let set = |selector: &str, token: &str| {
        format!(
            "apiVersion: holdfast.io/v1alpha1\nkind: BackupSet\nmetadata: {{name: shop}}\nspec:\n  storageSetRef: {{name: offsite}}\n  sources:\n  - name: db\n    persistentVolumeClaim: {{claimName: db, copyMethod: Snapshot}}\n  - name: wal\n    persistentVolumeClaim: {{claimName: wal, copyMethod: Snapshot}}\n  groupSnapshot:\n    volumeGroupSnapshotClassName: holdfast-btrfs\n    claimSelector: {{matchLabels: {selector}}}\n  encryption:\n    keySecretRef: {{name: shop-key, key: passphrase}}\n{PRIVILEGED_MOVER}  hooks:\n  - name: freeze\n    podLabels: {{app: writer}}\n    pre: [sh, -c, 'touch /db/pause; until [ -e /db/paused ]; do sleep 0.1; done']\n    post: [sh, -c, 'rm -f /db/pause']\n  manualRun: {{token: {token}, level: full}}\n"
        )
    };

    // A selector that leaves one claim out: the set names it and starts nothing.
    shop.apply(&set("{app: shop-db, tier: data}", "one"));
    let message = shop
        .stalled("BackupSet", "shop", "GroupSnapshotSelectorMismatch")
        .await;
    assert!(message.contains("does not select wal"), "{message}");

    // Both claims in one group, inside the freeze.
    let before: BTreeSet<String> = BTreeSet::new();
    shop.apply(&set("{app: shop-db}", "two"));
    let last = shop.next_run(&before).await;
    assert_eq!(last["phase"], "Complete", "{last:#}");
    let snaps = last["snapshots"].as_array().cloned().unwrap_or_default();
    assert_eq!(snaps.len(), 2, "{last:#}");
    let group = snaps[0]["volumeGroupSnapshot"].as_str().unwrap_or_default();
    assert!(!group.is_empty(), "taken in a group: {last:#}");
    assert_eq!(snaps[1]["volumeGroupSnapshot"], group, "{last:#}");
    assert_eq!(
        snaps[0]["creationTime"], snaps[1]["creationTime"],
        "one instant: {last:#}"
    );
    let counter = |source: &str| {
        let target = shop.c.dir.join(format!("group-{source}"));
        let (ok, _, err) = shop.cli(&[
            "restore",
            "--source",
            source,
            "--target",
            target.to_str().unwrap(),
        ]);
        assert!(ok, "{err}");
        std::fs::read_to_string(target.join("c"))
            .unwrap()
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    let (db, wal) = (counter("db"), counter("wal"));
    assert!(db > 0 && db == wal, "db={db} wal={wal}: not one instant");

    // Nothing of the run is left: the group, its members, the temporary claims.
    kubectl_until(
        &c,
        &[
            "get",
            "volumegroupsnapshots,volumesnapshots,persistentvolumeclaims",
            "-n",
            &shop.ns,
            "-o",
            "name",
        ],
        "the run's group snapshot, its members and its temporary claims to be deleted",
        SOON,
        |o| {
            let mut left: Vec<&str> = o.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            left.sort_unstable();
            // The application's claims stay (`uploads` is the harness's).
            left == [
                "persistentvolumeclaim/db",
                "persistentvolumeclaim/uploads",
                "persistentvolumeclaim/wal",
            ]
        },
    )
    .await;
}

#[tokio::test]
#[ignore = "needs real kubelets: bash e2e/kind/run.sh"]
async fn a_clone_source_is_read_from_a_csi_clone_made_between_pre_and_post_and_leaves_no_claim() {
    let c = kind().await;
    let _nodes = NODES.read().await;
    let shop = Shop::with_hooks("cloneread", Target::S3).await;
    counting_application(&c, &shop).await;
    let last = shop
        .run_with(&format!(
            "apiVersion: holdfast.io/v1alpha1\nkind: BackupSet\nmetadata: {{name: shop}}\nspec:\n  storageSetRef: {{name: offsite}}\n  sources:\n  - name: db\n    persistentVolumeClaim: {{claimName: db, copyMethod: Clone}}\n  encryption:\n    keySecretRef: {{name: shop-key, key: passphrase}}\n{PRIVILEGED_MOVER}  hooks:\n  - name: mark\n    podLabels: {{app: db}}\n    pre: [sh, -c, 'echo pre > /data/pre-hook']\n    post: [sh, -c, 'echo post > /data/post-hook']\n  manualRun: {{token: one, level: full}}\n"
        ))
        .await;
    assert_eq!(last["phase"], "Complete", "{last:#}");
    assert_eq!(last["clonedSources"], serde_json::json!(["db"]), "{last:#}");
    let series = format!(
        "holdfast_source_reads_total{{namespace=\"{}\",backup_set=\"shop\",method=\"clone\"}}",
        shop.ns
    );
    assert_eq!(shop.ctl.metric(&series).await, Some(1.0), "{series}");
    assert!(last.get("liveSources").is_none(), "{last:#}");
    let phases: Vec<_> = hook_results(&last).into_iter().map(|h| h.1).collect();
    assert_eq!(phases, ["Pre", "Post"], "{last:#}");

    let target = restored_at_one_instant(&shop, "cloneread-restored");
    let read = |f: &str| std::fs::read_to_string(target.join(f)).ok();
    assert_eq!(
        read("pre-hook").as_deref(),
        Some("pre\n"),
        "pre ran before the clone"
    );
    assert_eq!(read("post-hook"), None, "post ran after the clone was made");
    let (ok, runs, err) = shop.cli(&["runs"]);
    assert!(ok, "{err}");
    assert!(
        runs[0]["sourceLevels"][0]["captured"].is_string(),
        "a clone is dated, not read live: {runs:#}"
    );
    kubectl_until(
        &c,
        &[
            "get",
            "persistentvolumeclaims",
            "-n",
            &shop.ns,
            "-l",
            "holdfast.io/job",
            "-o",
            "name",
        ],
        "the run's clone to be deleted",
        SOON,
        |o| o.trim().is_empty(),
    )
    .await;
}

#[tokio::test]
#[ignore = "needs real kubelets: bash e2e/kind/run.sh"]
async fn a_controller_killed_mid_pre_or_mid_snapshot_owes_no_post_and_leaves_no_snapshot_or_claim()
{
    let c = kind().await;
    let _nodes = NODES.read().await;
    let mut shop = Shop::with_hooks("cutshort", Target::S3).await;
    counting_application(&c, &shop).await;
    let link = c.link().await;
    let leftovers = [
        "get",
        "volumesnapshots,persistentvolumeclaims",
        "-n",
        &shop.ns,
        "-l",
        "holdfast.io/job",
        "-o",
        "name",
    ];

    // Killed while `pre` runs: the next controller cannot know what it did, so it runs
    // `post` and fails the run rather than start it.
    let pre = format!("{}; {}", link.raise_cmd("pre"), link.wait_cmd("go"));
    shop.apply(&snapshot_set("holdfast-btrfs", &pre, "one"));
    link.wait_raised("pre", "the pre hook never started", RUN)
        .await;
    shop.ctl.kill();
    shop.ctl.restart().await;
    let last = shop.next_run(&BTreeSet::new()).await;
    link.raise("go");
    assert_eq!(last["phase"], "Failed", "{last:#}");
    let message = last["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("controller stopped while the pre hooks ran"),
        "{message}"
    );
    let phases: Vec<_> = hook_results(&last).into_iter().map(|h| h.1).collect();
    assert_eq!(phases.last().map(String::as_str), Some("Post"), "{last:#}");

    // Killed while the snapshot is being cut (a class whose snapshots the driver refuses
    // keeps it there for the 30 s an error may stand): the next controller picks the run up
    // where it stood, fails it with the driver's words, runs `post` once, deletes the rest.
    let mut before: BTreeSet<String> = shop.jobs().await.into_iter().collect();
    before.insert(last["job"].as_str().unwrap_or_default().to_owned());
    shop.apply(&snapshot_set("holdfast-btrfs-failing", "true", "two"));
    kubectl_until(
        &c,
        &[
            "get",
            "jobs",
            "-n",
            &shop.ns,
            "-o",
            "jsonpath={.items[*].metadata.annotations.holdfast\\.io/copy}",
        ],
        "the run's snapshot to be asked for",
        RUN,
        |o| o.contains("snapshotting"),
    )
    .await;
    shop.ctl.kill();
    kubectl_until(&c, &leftovers, "the snapshot being cut", SOON, |o| {
        o.contains("volumesnapshot")
    })
    .await;
    shop.ctl.restart().await;
    let last = shop.next_run(&before).await;
    assert_eq!(last["phase"], "Failed", "{last:#}");
    let message = last["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("asks this test driver to fail"),
        "{message}"
    );
    let phases: Vec<_> = hook_results(&last).into_iter().map(|h| h.1).collect();
    assert_eq!(phases, ["Pre", "Post"], "post ran once: {last:#}");
    kubectl_until(
        &c,
        &leftovers,
        "the cut-short run's snapshot to be deleted",
        SOON,
        |o| o.trim().is_empty(),
    )
    .await;
}

#[tokio::test]
#[ignore = "needs real kubelets: bash e2e/kind/run.sh"]
async fn in_a_restricted_namespace_a_snapshot_source_is_read_by_the_unprivileged_mover_as_the_datas_owner()
 {
    let c = kind().await;
    let _nodes = NODES.read().await;
    let shop = Shop::new("snaprestricted", Target::S3).await;
    mark(
        &shop,
        "label",
        "pod-security.kubernetes.io/enforce=restricted",
    );
    // The application runs as 1000 and writes a file only its owner may read.
    apply(
        &c,
        &shop.ns,
        &format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: db}}\nspec:\n  storageClassName: holdfast-btrfs\n  accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: 1Gi}}}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: app}}\nspec:\n  securityContext: {{runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000, seccompProfile: {{type: RuntimeDefault}}}}\n  initContainers:\n  - name: own\n    image: {shell}\n    command: [sh, -c, 'mkdir -p /data/d && echo secret > /data/d/private && chmod 600 /data/d/private']\n    securityContext: {{allowPrivilegeEscalation: false, capabilities: {{drop: [ALL]}}}}\n    volumeMounts: [{{name: data, mountPath: /data}}]\n  containers:\n  - name: app\n    image: {shell}\n    command: [sleep, '3600']\n    securityContext: {{allowPrivilegeEscalation: false, capabilities: {{drop: [ALL]}}}}\n    volumeMounts: [{{name: data, mountPath: /data}}]\n  volumes: [{{name: data, persistentVolumeClaim: {{claimName: db}}}}]\n",
            shell = c.shell_image
        ),
    );
    let pods: Api<Pod> = api(&c, &shop.ns);
    wait_for(&pods, "app", "the application to run", RUN, |p| {
        (p.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(())
    })
    .await;
    let set = "apiVersion: holdfast.io/v1alpha1\nkind: BackupSet\nmetadata: {name: shop}\nspec:\n  storageSetRef: {name: offsite}\n  sources:\n  - name: db\n    persistentVolumeClaim: {claimName: db, copyMethod: Snapshot, volumeSnapshotClassName: holdfast-btrfs}\n  encryption:\n    keySecretRef: {name: shop-key, key: passphrase}\n  manualRun: {token: one, level: full}\n";
    let last = shop.run_with(set).await;
    assert_eq!(last["phase"], "Complete", "{last:#}");
    assert_eq!(
        last["mover"], "restricted uid 1000 gid 1000 fsGroup 1000 (from pod app)",
        "{last:#}"
    );
    assert_eq!(last["errors"], 0, "{last:#}");
    let target = shop.c.dir.join("snaprestricted-restored");
    let (ok, _, err) = shop.cli(&["restore", "--target", target.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read_to_string(target.join("d/private")).unwrap(),
        "secret\n"
    );
}
