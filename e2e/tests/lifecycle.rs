//! Deleting things, and rebuilding from the bucket: a BackupSet deleted with `Retain` and
//! with `Purge`, a whole namespace deleted at once (both policies), and disaster recovery
//! into a namespace that has nothing but a StorageSet, the Secrets and a Restore.
#![allow(clippy::unwrap_used)] // reason: tests

use std::time::Duration;

use holdfast_e2e::controller::Controller;
use holdfast_e2e::harness::{Cluster, claim, condition, wait_gone};
use holdfast_e2e::scenario::{
    RUN, SOON, Shop, Target, recover_lost_namespace, set_manifest, storage_manifests,
};
use holdfast_e2e::tree;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn deleting_a_set_with_retain_keeps_the_repository_and_with_purge_deletes_it() {
    let shop = Shop::new("delete", Target::S3).await;
    shop.apply(&set_manifest(""));
    assert_eq!(shop.run("", "one", "full").await["phase"], "Complete");
    let set = shop.get("BackupSet", "shop").await.unwrap();
    assert!(
        set.pointer("/metadata/finalizers").is_none(),
        "a Retain set holds no finalizer: {set:#}"
    );
    shop.c.kubectl_ok(
        &["delete", "backupset", "shop", "-n", &shop.ns, "--wait=true"],
        None,
    );
    let (ok, runs, err) = shop.cli(&["runs"]);
    assert!(ok, "{err}");
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "kept: {runs:#}");

    // The same repository, adopted by a new set that purges on deletion.
    let purge = "  deletionPolicy: Purge\n";
    shop.apply(&set_manifest(purge));
    assert_eq!(shop.run(purge, "two", "incr").await["phase"], "Complete");
    shop.wait("StorageSet", "offsite", "the in-use finalizer", SOON, |o| {
        o.pointer("/metadata/finalizers")?
            .as_array()?
            .iter()
            .any(|f| f == "holdfast.io/in-use")
            .then_some(())
    })
    .await;
    // Deleting the StorageSet too, at once: it stays until the purge has used it.
    shop.c.kubectl_ok(
        &[
            "delete",
            "backupset,storageset",
            "--all",
            "-n",
            &shop.ns,
            "--wait=false",
        ],
        None,
    );
    let api = holdfast_e2e::harness::holdfast_api(&shop.c, &shop.ns, "BackupSet");
    wait_gone(&api, "shop", RUN).await;
    let api = holdfast_e2e::harness::holdfast_api(&shop.c, &shop.ns, "StorageSet");
    wait_gone(&api, "offsite", SOON).await;
    let (ok, _, err) = shop.cli(&["runs"]);
    assert!(!ok, "the repository is gone");
    assert!(err.contains("no Holdfast repository"), "{err}");
}

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn deleting_a_namespace_at_once_never_hangs_without_saying_why() {
    // The controller runs from its own namespace (a cluster-wide install), as in real life.
    let c = Cluster::connect().await;
    let ns = c.namespace("nsdel").await;
    let ctl = Controller::start_outside(&c, &ns).await;
    let data = claim(&c, &ns, "uploads").await;
    tree::fill(&data, 11);
    holdfast_e2e::harness::apply(&c, &ns, &storage_manifests(&c, &ns, Target::S3));
    let purge = "  deletionPolicy: Purge\n";
    holdfast_e2e::harness::apply(
        &c,
        &ns,
        &set_manifest(&format!(
            "{purge}  manualRun: {{token: one, level: full}}\n"
        )),
    );
    holdfast_e2e::harness::wait_holdfast(&c, &ns, "BackupSet", "shop", "the run", RUN, |o| {
        (o.pointer("/status/lastRun/phase")? == "Complete").then_some(())
    })
    .await;

    // Kubernetes starts nothing in a terminating namespace, so the purge cannot run: the
    // set says so and how to let go, and the namespace waits for that decision.
    c.kubectl_ok(&["delete", "namespace", &ns, "--wait=false"], None);
    let (reason, message) = holdfast_e2e::harness::wait_holdfast(
        &c,
        &ns,
        "BackupSet",
        "shop",
        "Stalled=True (NamespaceTerminating)",
        SOON,
        |o| {
            let (s, r, m) = condition(o, "Stalled")?;
            (s == "True" && r == "NamespaceTerminating").then_some((r, m))
        },
    )
    .await;
    // Whichever went first (its Secrets, or the set), the advice is what can be done in a
    // namespace that refuses new objects: let the set go, delete the repository later.
    assert_eq!(reason, "NamespaceTerminating", "{message}");
    assert!(message.contains("holdfast.io/release=true"), "{message}");
    assert!(message.contains("holdfast destroy"), "{message}");
    assert!(!message.contains("create it"), "{message}");
    c.kubectl_ok(
        &[
            "annotate",
            "-n",
            &ns,
            "backupset",
            "shop",
            "holdfast.io/release=true",
        ],
        None,
    );
    let namespaces: Api<Namespace> = Api::all(c.client.clone());
    wait_gone(&namespaces, &ns, Duration::from_secs(90)).await;
    drop(ctl);

    // A namespace of Retain sets goes at once, whatever the controller does.
    let ns2 = c.namespace("nsdel-retain").await;
    let _ctl2 = Controller::start(&c, &ns2).await;
    claim(&c, &ns2, "uploads").await;
    holdfast_e2e::harness::apply(&c, &ns2, &storage_manifests(&c, &ns2, Target::S3));
    holdfast_e2e::harness::apply(
        &c,
        &ns2,
        &set_manifest("  manualRun: {token: one, level: full}\n"),
    );
    holdfast_e2e::harness::wait_holdfast(&c, &ns2, "BackupSet", "shop", "the run", RUN, |o| {
        (o.pointer("/status/lastRun/phase")? == "Complete").then_some(())
    })
    .await;
    c.kubectl_ok(&["delete", "namespace", &ns2, "--wait=false"], None);
    wait_gone(&namespaces, &ns2, Duration::from_secs(60)).await;
}

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn disaster_recovery_restores_from_the_bucket_into_an_empty_namespace() {
    let shop = Shop::new("dr", Target::S3).await;
    let original = tree::snapshot(&shop.data);
    shop.apply(&set_manifest(""));
    assert_eq!(shop.run("", "one", "full").await["phase"], "Complete");
    std::fs::write(shop.data.join("docs/after.txt"), b"second run").unwrap();
    assert_eq!(shop.run("", "two", "incr").await["phase"], "Complete");
    let newest = tree::snapshot(&shop.data);
    let (c, ns) = (shop.c.clone(), shop.ns.clone());

    // The cluster is lost: the namespace, the controller, its RBAC, all history. A fresh
    // namespace of the same name holds only what git and the vault give back.
    drop(shop);
    let manifests = storage_manifests(&c, &ns, Target::S3);
    let (status, target) = recover_lost_namespace(&c, &ns, &manifests, "offsite").await;
    assert_eq!(status["phase"], "Completed", "{status:#}");
    assert!(
        status["run"].as_str().unwrap().starts_with("incr-"),
        "the newest run: {status:#}"
    );
    tree::assert_same(&newest, &tree::snapshot(&target));
    assert_ne!(original.len(), newest.len());
}

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn four_purge_sets_deleted_at_once_keep_their_repositories_until_each_is_approved() {
    let shop = Shop::new("burst", Target::S3).await;
    let purge = "  deletionPolicy: Purge\n";
    let names = ["shop", "shop-b", "shop-c", "shop-d"];
    for name in names {
        shop.apply(&set_manifest(purge).replace(
            "metadata: {name: shop}",
            &format!("metadata: {{name: {name}}}"),
        ));
    }
    for name in names {
        shop.wait("BackupSet", name, "the cleanup finalizer", SOON, |o| {
            o.pointer("/metadata/finalizers")?
                .as_array()?
                .iter()
                .any(|f| f == "holdfast.io/cleanup")
                .then_some(())
        })
        .await;
    }
    assert_eq!(shop.run(purge, "one", "full").await["phase"], "Complete");
    shop.c.kubectl_ok(
        &[
            "delete",
            "backupset",
            "--all",
            "-n",
            &shop.ns,
            "--wait=false",
        ],
        None,
    );
    for name in names {
        let message = shop.stalled("BackupSet", name, "DeletionBraked").await;
        assert!(message.contains("4 sets"), "{message}");
    }
    let (ok, runs, err) = shop.cli(&["runs"]);
    assert!(
        ok && runs.as_array().map(Vec::len) == Some(1),
        "kept: {runs:#} {err}"
    );

    // One approved: its repository goes, and it with it; the others wait on.
    shop.c.kubectl_ok(
        &[
            "annotate",
            "-n",
            &shop.ns,
            "backupset",
            "shop",
            "holdfast.io/approve-deletion=true",
        ],
        None,
    );
    let api = holdfast_e2e::harness::holdfast_api(&shop.c, &shop.ns, "BackupSet");
    wait_gone(&api, "shop", RUN).await;
    let (ok, _, err) = shop.cli(&["runs"]);
    assert!(!ok && err.contains("no Holdfast repository"), "{err}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    for name in &names[1..] {
        assert!(shop.get("BackupSet", name).await.is_some(), "{name} waits");
    }
    // Released, the rest go, keeping whatever they had.
    for name in &names[1..] {
        shop.c.kubectl_ok(
            &[
                "annotate",
                "-n",
                &shop.ns,
                "backupset",
                name,
                "holdfast.io/release=true",
            ],
            None,
        );
        wait_gone(&api, name, RUN).await;
    }
}
