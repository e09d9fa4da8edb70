//! The controller when things go wrong or repeat: killed mid-run and restarted, two replicas
//! behind a Lease, a GitOps tool re-applying everything, a ReadWriteOnce claim in use on
//! another node, and bad input (a missing Secret, a wrong passphrase, an unreachable bucket)
//! that must give a clear condition and Event and recover once fixed.
#![allow(clippy::unwrap_used)] // reason: tests

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use holdfast_e2e::controller::{Controller, FULLNAME, install_rbac};
use holdfast_e2e::harness::{Cluster, api, condition, events, obj, wait_for};
use holdfast_e2e::health::capture;
use holdfast_e2e::link::Link;
use holdfast_e2e::scenario::{
    PASSPHRASE, RUN, SOON, Shop, Target, command_set, set_manifest, storage_manifests,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;

/// A set whose `db` dump hangs until the link's flag `go` is raised, beside the claim.
fn slow_set(c: &Cluster, link: &Link) -> String {
    command_set(c, &format!("echo dump; {}", link.wait_cmd("go")), "")
}

async fn backup_jobs(shop: &Shop) -> Vec<String> {
    shop.jobs()
        .await
        .into_iter()
        .filter(|j| j.contains("-backup-"))
        .collect()
}

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn a_controller_killed_mid_run_and_restarted_starts_nothing_twice_and_catches_up() {
    let mut shop = Shop::new("restart", Target::S3).await;
    let link = shop.c.link().await;
    let set = slow_set(&shop.c, &link);
    shop.apply(&format!("{set}  manualRun: {{token: one, level: full}}\n"));
    shop.wait("BackupSet", "shop", "the run to start", RUN, |o| {
        (o.pointer("/status/lastRun/phase")? == "Running").then_some(())
    })
    .await;
    shop.ctl.kill();
    // While it is down, the run finishes; a re-sync re-applies the same token.
    link.raise("go");
    shop.apply(&format!("{set}  manualRun: {{token: one, level: full}}\n"));
    let jobs: Api<Job> = api(&shop.c, &shop.ns);
    let name = backup_jobs(&shop).await.pop().unwrap();
    wait_for(&jobs, &name, "the job to complete", RUN, |j| {
        (j.status.as_ref()?.succeeded? == 1).then_some(())
    })
    .await;
    shop.ctl.restart().await;
    let last = shop
        .wait(
            "BackupSet",
            "shop",
            "the restarted controller to take the run in",
            SOON,
            |o| {
                let last = o.pointer("/status/lastRun")?;
                (last["phase"] == "Complete").then(|| last.clone())
            },
        )
        .await;
    assert_eq!(last["job"], name.as_str());
    assert_eq!(
        backup_jobs(&shop).await,
        vec![name],
        "one Job for one token"
    );
    let set = shop.get("BackupSet", "shop").await.unwrap();
    let runs = set
        .pointer("/status/recentRuns")
        .unwrap()
        .as_array()
        .unwrap();
    assert_eq!(runs.len(), 1, "the run is recorded once: {runs:#?}");
}

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn two_replicas_one_leads_and_the_other_takes_over_when_it_dies() {
    let c = Cluster::connect().await;
    let ns = c.namespace("leader").await;
    install_rbac(&c, &ns);
    let mut a = Controller::replica(&c, &ns, "replica-a").await;
    let mut b = Controller::replica(&c, &ns, "replica-b").await;
    let leases: Api<Lease> = api(&c, &ns);
    let holder = wait_for(&leases, FULLNAME, "a leader", SOON, |l| {
        l.spec.as_ref()?.holder_identity.clone()
    })
    .await;
    let (leader, follower) = if holder == "replica-a" {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    // The shop, served by the leader only.
    holdfast_e2e::harness::claim(&c, &ns, "uploads").await;
    holdfast_e2e::harness::apply(&c, &ns, &storage_manifests(&c, &ns, Target::S3));
    holdfast_e2e::harness::apply(
        &c,
        &ns,
        &set_manifest("  manualRun: {token: one, level: full}\n"),
    );
    holdfast_e2e::harness::wait_holdfast(&c, &ns, "BackupSet", "shop", "the first run", RUN, |o| {
        (o.pointer("/status/lastRun/phase")? == "Complete").then_some(())
    })
    .await;
    assert!(
        follower
            .metric("holdfast_reconciles_total{kind=\"BackupSet\"}")
            .await
            .is_none(),
        "the follower reconciled something:\n{}",
        follower.log_text()
    );

    // The leader dies without giving the lease up; the follower takes over once it expires.
    leader.kill();
    let died = Instant::now();
    let new = wait_for(
        &leases,
        FULLNAME,
        "a new leader",
        Duration::from_secs(60),
        |l| {
            let h = l.spec.as_ref()?.holder_identity.clone()?;
            (h != holder).then_some(h)
        },
    )
    .await;
    assert_eq!(new, follower.identity);
    let takeover = died.elapsed();
    holdfast_e2e::harness::apply(
        &c,
        &ns,
        &set_manifest("  manualRun: {token: two, level: incr}\n"),
    );
    holdfast_e2e::harness::wait_holdfast(
        &c,
        &ns,
        "BackupSet",
        "shop",
        "the second run",
        RUN,
        |o| {
            let last = o.pointer("/status/lastRun")?;
            (last["phase"] == "Complete" && last["level"] == "incr").then_some(())
        },
    )
    .await;
    let jobs: Vec<String> = holdfast_e2e::harness::jobs(&c, &ns)
        .await
        .into_iter()
        .filter(|j| j.contains("-backup-"))
        .collect();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    eprintln!("leader takeover after SIGKILL: {takeover:?}");
    assert!(takeover < Duration::from_secs(40), "{takeover:?}");

    // A graceful stop hands the lease over at once.
    follower.stop();
    leader.restart().await;
    let t = Instant::now();
    wait_for(
        &leases,
        FULLNAME,
        "the restarted replica to lead",
        Duration::from_secs(30),
        |l| {
            (l.spec.as_ref()?.holder_identity.as_deref() == Some(leader.identity.as_str()))
                .then_some(())
        },
    )
    .await;
    eprintln!("leader takeover after a graceful stop: {:?}", t.elapsed());
}

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn a_gitops_resync_of_every_manifest_100_times_changes_nothing() {
    let shop = Shop::new("resync", Target::S3).await;
    let schedule = "apiVersion: holdfast.io/v1alpha1\nkind: Schedule\nmetadata: {name: nightly}\nspec:\n  timeZone: Europe/Paris\n  full: \"0 1 * * 6\"\n  incremental: \"0 1 * * 0-5\"\n  purge: \"0 3 * * *\"\n";
    let restore = "apiVersion: holdfast.io/v1alpha1\nkind: Restore\nmetadata: {name: copy}\nspec:\n  backupSetRef: {name: shop}\n  target:\n    persistentVolumeClaim: {claimName: copy}\n";
    holdfast_e2e::harness::claim(&shop.c, &shop.ns, "copy").await;
    // As Argo CD applies them: every object carries its tracking label.
    let all = format!(
        "{}---\n{schedule}---\n{}---\n{restore}",
        storage_manifests(&shop.c, &shop.ns, Target::S3),
        set_manifest("  scheduleRef: {name: nightly}\n  manualRun: {token: once, level: full}\n"),
    )
    .replace(
        "metadata: {name: ",
        "metadata: {labels: {app.kubernetes.io/instance: shop-app}, name: ",
    );
    assert_eq!(
        all.matches("app.kubernetes.io/instance").count(),
        6,
        "{all}"
    );
    shop.apply(&all);
    let status = shop.restored("copy").await;
    assert_eq!(status["phase"], "Completed", "{status:#}");
    shop.ready("BackupSet", "shop").await;
    shop.ready("StorageSet", "offsite").await;
    // Let every follow-up reconcile (the storage check after the run) settle.
    shop.wait("StorageSet", "offsite", "the inventory", SOON, |o| {
        (o.pointer("/status/inventory/totalBytes")?.as_u64()? > 0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let versions = |objs: &[Option<serde_json::Value>]| -> Vec<(String, String)> {
        objs.iter()
            .map(|o| {
                let o = o.as_ref().unwrap();
                (
                    o.pointer("/metadata/generation").unwrap().to_string(),
                    o.pointer("/metadata/resourceVersion").unwrap().to_string(),
                )
            })
            .collect()
    };
    let snapshot = || async {
        vec![
            shop.get("BackupSet", "shop").await,
            shop.get("StorageSet", "offsite").await,
            shop.get("Schedule", "nightly").await,
            shop.get("Restore", "copy").await,
        ]
    };
    let before = versions(&snapshot().await);
    let jobs_before = shop.jobs().await;
    let t = Instant::now();
    for _ in 0..100 {
        shop.apply(&all);
    }
    eprintln!(
        "100 server-side applies of {} objects in {:?}",
        6,
        t.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = versions(&snapshot().await);
    assert_eq!(
        before, after,
        "generation and resourceVersion (spec and status) of every object unchanged"
    );
    assert_eq!(jobs_before, shop.jobs().await, "no new Job");
    // What the controller creates is not the application's: Argo CD never prunes it nor
    // shows it out of sync (it appears under its owner instead).
    let jobs: Api<Job> = api(&shop.c, &shop.ns);
    for j in jobs.list(&Default::default()).await.unwrap().items {
        let labels = j.metadata.labels.unwrap_or_default();
        assert!(
            !labels.contains_key("app.kubernetes.io/instance"),
            "{labels:?}"
        );
        assert_eq!(
            labels
                .get("app.kubernetes.io/managed-by")
                .map(String::as_str),
            Some("holdfast")
        );
    }
}

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn a_readwriteonce_claim_in_use_on_node_b_is_backed_up_on_node_b() {
    let shop = Shop::new("rwo", Target::S3).await;
    let node_b = shop.c.nodes().await.pop().unwrap();
    let pods: Api<Pod> = api(&shop.c, &shop.ns);
    let app: Pod = obj(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "shop-app"},
        "spec": {"nodeName": node_b, "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "app", "image": shop.c.shell_image,
                                 "command": ["sleep", "3600"],
                                 "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                 "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "uploads"}}]},
    }));
    pods.create(&PostParams::default(), &app).await.unwrap();
    wait_for(&pods, "shop-app", "the app to run", SOON, |p| {
        (p.status.as_ref()?.phase.as_deref()? == "Running").then_some(())
    })
    .await;
    let last = shop.run("", "one", "full").await;
    assert_eq!(last["phase"], "Complete", "{last:#}");
    let job = last["job"].as_str().unwrap();
    let list = pods
        .list(
            &kube::api::ListParams::default()
                .labels(&format!("batch.kubernetes.io/job-name={job}")),
        )
        .await
        .unwrap();
    let nodes: BTreeSet<String> = list
        .items
        .iter()
        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
        .collect();
    assert_eq!(nodes, BTreeSet::from([node_b.clone()]));
}

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn a_missing_secret_is_stalled_with_a_reason_and_recovers_when_created() {
    let shop = Shop::new("nosecret", Target::S3).await;
    shop.c
        .kubectl_ok(&["delete", "secret", "shop-key", "-n", &shop.ns], None);
    shop.apply(&set_manifest("  manualRun: {token: one, level: full}\n"));
    let (reason, message) = shop
        .wait("BackupSet", "shop", "Stalled=True", SOON, |o| {
            let (s, r, m) = condition(o, "Stalled")?;
            (s == "True").then_some((r, m))
        })
        .await;
    assert_eq!(reason, "KeySecretNotFound");
    let set = shop.get("BackupSet", "shop").await.unwrap();
    capture(
        &shop.c,
        "backupset-stalled-missing-secret",
        &set,
        "Degraded",
        "Failed",
    );
    assert!(message.contains("shop-key"), "{message}");
    let ev = events(&shop.c, &shop.ns, "shop").await;
    assert!(
        ev.iter()
            .any(|(t, r, _)| t == "Warning" && r == "KeySecretNotFound"),
        "{ev:?}"
    );
    assert!(backup_jobs(&shop).await.is_empty(), "nothing ran");
    // Creating the Secret is enough (no change to the set): the run goes.
    shop.apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: shop-key}}\nstringData: {{passphrase: {PASSPHRASE:?}}}\n"
    ));
    let last = shop.next_run(&BTreeSet::new()).await;
    assert_eq!(last["phase"], "Complete", "{last:#}");
    shop.ready("BackupSet", "shop").await;
}

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn a_wrong_passphrase_fails_the_run_clearly_damages_nothing_and_recovers() {
    let shop = Shop::new("wrongkey", Target::S3).await;
    shop.apply(&set_manifest(""));
    let first = shop.run("", "one", "full").await;
    assert_eq!(first["phase"], "Complete", "{first:#}");
    shop.apply("apiVersion: v1\nkind: Secret\nmetadata: {name: shop-key}\nstringData: {passphrase: not-the-passphrase}\n");
    let last = shop.run("", "two", "incr").await;
    assert_eq!(last["phase"], "Failed", "{last:#}");
    let message = last["message"].as_str().unwrap_or_default().to_lowercase();
    assert!(
        message.contains("passphrase") || message.contains("key"),
        "the message names the key: {message}"
    );
    let (reason, _) = shop
        .wait("BackupSet", "shop", "Stalled=True", SOON, |o| {
            let (s, r, m) = condition(o, "Stalled")?;
            (s == "True").then_some((r, m))
        })
        .await;
    assert_eq!(reason, "BackupFailed");
    let set = shop.get("BackupSet", "shop").await.unwrap();
    capture(
        &shop.c,
        "backupset-backup-failed",
        &set,
        "Degraded",
        "Failed",
    );
    // The repository is as it was.
    let (ok, runs, err) = shop.cli(&["runs"]);
    assert!(ok, "{err}");
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs:#}");
    let (ok, _, err) = shop.cli(&["verify"]);
    assert!(ok, "{err}");
    // The right passphrase again: the next run completes and the set is Ready.
    shop.apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: shop-key}}\nstringData: {{passphrase: {PASSPHRASE:?}}}\n"
    ));
    let next = shop.run("", "three", "incr").await;
    assert_eq!(next["phase"], "Complete", "{next:#}");
    let set = shop.ready("BackupSet", "shop").await;
    assert_eq!(set.pointer("/status/consecutiveFailures").unwrap(), 0);
}

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn an_unreachable_bucket_makes_the_storage_set_not_ready_until_fixed() {
    let shop = Shop::new("nobucket", Target::S3).await;
    shop.ready("StorageSet", "offsite").await;
    let good = shop.c.s3_endpoint.clone();
    let bad = storage_manifests(&shop.c, &shop.ns, Target::S3).replace(&good, "http://127.0.0.1:9");
    shop.apply(&bad);
    let (status, reason, message) = shop
        .wait(
            "StorageSet",
            "offsite",
            "Ready=False after the check",
            RUN,
            |o| {
                let (s, r, m) = condition(o, "Ready")?;
                (s == "False"
                    && r == "StorageCheckFailed"
                    && o.pointer("/status/observedGeneration") == o.pointer("/metadata/generation"))
                .then_some((s, r, m))
            },
        )
        .await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "StorageCheckFailed")
    );
    let storage = shop.get("StorageSet", "offsite").await.unwrap();
    capture(
        &shop.c,
        "storageset-check-failed",
        &storage,
        "Degraded",
        "Failed",
    );
    assert!(
        message.contains("127.0.0.1:9") || message.to_lowercase().contains("connect"),
        "{message}"
    );
    let ev = events(&shop.c, &shop.ns, "offsite").await;
    assert!(
        ev.iter()
            .any(|(t, r, _)| t == "Warning" && r == "StorageCheckFailed"),
        "{ev:?}"
    );
    assert_eq!(
        shop.ctl
            .metric(&format!(
                "holdfast_storage_ready{{namespace=\"{}\",storage_set=\"offsite\"}}",
                shop.ns
            ))
            .await,
        Some(0.0)
    );
    shop.apply(&storage_manifests(&shop.c, &shop.ns, Target::S3));
    shop.ready("StorageSet", "offsite").await;
}
