//! The controller against the real control plane: a GitOps-applied BackupSet backs up a
//! real tree on a claim, to S3 (s3s-fs) and to a filesystem claim, and Restores bring it
//! back exactly, once.
#![allow(clippy::unwrap_used)] // reason: tests

use std::collections::BTreeSet;

use holdfast_e2e::harness::{condition, events, prepared_volume};
use holdfast_e2e::health::capture;
use holdfast_e2e::scenario::{SOON, Shop, Target, set_manifest};
use holdfast_e2e::tree;

async fn quick_start(target: Target) {
    let shop = Shop::new(
        match target {
            Target::S3 => "quick-s3",
            Target::Filesystem => "quick-fs",
        },
        target,
    )
    .await;
    shop.apply(
        "apiVersion: holdfast.io/v1alpha1\nkind: Schedule\nmetadata: {name: nightly}\nspec:\n  timeZone: Europe/Paris\n  full: \"0 1 * * 6\"\n  incremental: \"0 1 * * 0-5\"\n",
    );
    let extra = "  scheduleRef: {name: nightly}\n";
    shop.apply(&set_manifest(extra));
    // Applying a scheduled set starts nothing by itself; it plans the next run.
    let set = shop.ready("BackupSet", "shop").await;
    assert!(set.pointer("/status/nextRun/time").is_some(), "{set:#}");
    assert!(shop.jobs().await.iter().all(|j| !j.contains("-backup-")));

    let last = shop.run(extra, "first", "full").await;
    assert_eq!(last["phase"], "Complete", "{last:#}");
    assert_eq!(last["level"], "full");
    assert_eq!(
        last["files"], 7,
        "the regular files, hard links included: {last:#}"
    );
    assert!(last["bytesRead"].as_u64().unwrap() > 2_000_000, "{last:#}");
    let set = shop.get("BackupSet", "shop").await.unwrap();
    let label = format!("{target:?}").to_lowercase();
    capture(
        &shop.c,
        &format!("backupset-ready-{label}"),
        &set,
        "Healthy",
        "Current",
    );
    assert_eq!(set.pointer("/status/restorePoints/count").unwrap(), 1);
    assert_eq!(set.pointer("/status/consecutiveFailures").unwrap(), 0);
    assert_eq!(set.pointer("/status/sources/0/lastLevel").unwrap(), "full");
    let backups: Vec<String> = shop
        .jobs()
        .await
        .into_iter()
        .filter(|j| j.contains("-backup-"))
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");

    // The StorageSet checked itself and counts the set's repository.
    let storage = shop
        .wait("StorageSet", "offsite", "an inventory", SOON, |o| {
            let (ready, _, _) = condition(o, "Ready")?;
            let inv = o.pointer("/status/inventory")?;
            (ready == "True" && inv["totalBytes"].as_u64()? > 0).then(|| o.clone())
        })
        .await;
    assert_eq!(storage.pointer("/status/usedBy/0").unwrap(), "shop");
    capture(
        &shop.c,
        &format!("storageset-ready-{label}"),
        &storage,
        "Healthy",
        "Current",
    );
    let schedule = shop.ready("Schedule", "nightly").await;
    capture(
        &shop.c,
        &format!("schedule-ready-{label}"),
        &schedule,
        "Healthy",
        "Current",
    );
    if target == Target::Filesystem {
        assert!(storage.pointer("/status/capacity/availableBytes").is_some());
    }

    // The same token again (a GitOps re-sync) runs nothing.
    shop.apply(&set_manifest(&format!(
        "{extra}  manualRun: {{token: first, level: full}}\n"
    )));
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        shop.jobs()
            .await
            .into_iter()
            .filter(|j| j.contains("-backup-"))
            .count(),
        1
    );

    // An incremental on a new token: only what changed is read.
    std::fs::write(shop.data.join("docs/new.txt"), b"added after the full").unwrap();
    let incr = shop.run(extra, "second", "incr").await;
    assert_eq!(incr["phase"], "Complete", "{incr:#}");
    assert_eq!(incr["level"], "incr");
    assert!(incr["bytesRead"].as_u64().unwrap() < 100_000, "{incr:#}");

    // Events a user reads with kubectl describe, and metrics to alert on.
    let ev = events(&shop.c, &shop.ns, "shop").await;
    for reason in ["BackupStarted", "BackupComplete"] {
        assert!(ev.iter().any(|(_, r, _)| r == reason), "{reason}: {ev:?}");
    }
    let last_success = shop
        .ctl
        .metric(&format!(
            "holdfast_last_success_timestamp_seconds{{namespace=\"{}\",backup_set=\"shop\"}}",
            shop.ns
        ))
        .await;
    assert!(last_success.is_some_and(|t| t > 1.7e9), "{last_success:?}");
    let interval = shop
        .ctl
        .metric(&format!(
            "holdfast_backup_interval_seconds{{namespace=\"{}\",backup_set=\"shop\"}}",
            shop.ns
        ))
        .await;
    assert_eq!(
        interval,
        Some(25.0 * 3600.0),
        "the longest gap (a DST change)"
    );

    // The repository is sound from outside the cluster too.
    let (ok, _, err) = shop.cli(&["verify", "--deep"]);
    assert!(ok, "{err}");
}

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn quick_start_to_s3_backs_up_a_claim_on_a_manual_token() {
    quick_start(Target::S3).await;
}

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn quick_start_to_a_filesystem_claim_backs_up_a_claim_on_a_manual_token() {
    quick_start(Target::Filesystem).await;
}

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn restores_into_a_new_claim_and_the_existing_one_are_exact_and_run_once() {
    let shop = Shop::new("restore", Target::S3).await;
    std::fs::set_permissions(&shop.data, std::fs::Permissions::from_mode(0o750)).unwrap();
    let original = tree::snapshot(&shop.data);
    shop.apply(&set_manifest(""));
    let last = shop.run("", "one", "full").await;
    assert_eq!(last["phase"], "Complete", "{last:#}");

    // Into a new claim, which the controller creates (a prepared volume binds to it).
    let fresh = prepared_volume(&shop.c, &shop.ns, "uploads-copy");
    shop.apply(
        "apiVersion: holdfast.io/v1alpha1\nkind: Restore\nmetadata: {name: copy}\nspec:\n  backupSetRef: {name: shop}\n  target:\n    newPersistentVolumeClaim: {name: uploads-copy, size: 1Gi, storageClassName: e2e-host}\n",
    );
    let status = shop.restored("copy").await;
    assert_eq!(status["phase"], "Completed", "{status:#}");
    let restore = shop.get("Restore", "copy").await.unwrap();
    capture(&shop.c, "restore-completed", &restore, "Healthy", "Current");
    assert_eq!(status["unrestored"], 0);
    tree::assert_same(&original, &tree::snapshot(&fresh));
    // A fresh volume's root takes the backed-up root's mode.
    assert_eq!(
        std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o7777,
        0o750
    );

    // Into the existing claim, after damage: overwrite brings every entry back.
    std::fs::remove_file(shop.data.join("docs/readme.md")).unwrap();
    std::fs::write(shop.data.join("tool.sh"), b"tampered").unwrap();
    std::fs::remove_dir_all(shop.data.join("docs/2026")).unwrap();
    shop.apply(
        "apiVersion: holdfast.io/v1alpha1\nkind: Restore\nmetadata: {name: in-place}\nspec:\n  backupSetRef: {name: shop}\n  overwrite: Always\n  target:\n    persistentVolumeClaim: {claimName: uploads}\n",
    );
    let status = shop.restored("in-place").await;
    assert_eq!(status["phase"], "Completed", "{status:#}");
    tree::assert_same(&original, &tree::snapshot(&shop.data));

    // Re-applying both Restores, and restarting the controller, runs nothing again.
    let before: BTreeSet<String> = shop.jobs().await.into_iter().collect();
    for _ in 0..3 {
        shop.apply(
            "apiVersion: holdfast.io/v1alpha1\nkind: Restore\nmetadata: {name: in-place}\nspec:\n  backupSetRef: {name: shop}\n  overwrite: Always\n  target:\n    persistentVolumeClaim: {claimName: uploads}\n",
        );
    }
    let mut ctl = shop.ctl;
    ctl.stop();
    ctl.restart().await;
    // Once the restarted controller has reconciled both Restores (its metrics say so),
    // anything it would start would exist.
    let deadline = std::time::Instant::now() + SOON;
    while ctl
        .metric("holdfast_reconciles_total{kind=\"Restore\"}")
        .await
        .unwrap_or(0.0)
        < 2.0
    {
        assert!(std::time::Instant::now() < deadline, "{}", ctl.log_text());
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let after: BTreeSet<String> = holdfast_e2e::harness::jobs(&shop.c, &shop.ns)
        .await
        .into_iter()
        .collect();
    assert_eq!(before, after, "no new Job after re-apply and restart");
}

use std::os::unix::fs::PermissionsExt as _;
