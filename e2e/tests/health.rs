//! Health as Argo CD (the chart's Lua script) and kstatus read it, for states the other
//! scenarios do not stop in: a suspended set, an invalid Schedule, a Restore waiting for a
//! first backup, a StorageSet whose check cannot run yet. Each is captured for the
//! kstatus check that follows the suite.
#![allow(clippy::unwrap_used)] // reason: tests

use holdfast_e2e::harness::{apply, condition};
use holdfast_e2e::health::capture;
use holdfast_e2e::scenario::{SOON, Shop, Target, set_manifest};

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn argo_cd_and_kstatus_read_suspended_invalid_waiting_and_checking_objects() {
    let shop = Shop::new("health", Target::S3).await;

    shop.apply(&set_manifest("  suspend: true\n"));
    let set = shop.ready("BackupSet", "shop").await;
    assert_eq!(set.pointer("/status/phase").unwrap(), "Suspended");
    capture(&shop.c, "backupset-suspended", &set, "Suspended", "Current");

    shop.apply(
        "apiVersion: holdfast.io/v1alpha1\nkind: Schedule\nmetadata: {name: mars}\nspec:\n  timeZone: Mars/Olympus_Mons\n  full: \"0 1 * * *\"\n",
    );
    let schedule = shop
        .wait("Schedule", "mars", "Stalled=True", SOON, |o| {
            let (s, _, _) = condition(o, "Stalled")?;
            (s == "True").then(|| o.clone())
        })
        .await;
    let (_, reason, message) = condition(&schedule, "Stalled").unwrap();
    assert_eq!(reason, "ScheduleInvalid", "{message}");
    assert!(message.contains("Mars/Olympus_Mons"), "{message}");
    capture(&shop.c, "schedule-invalid", &schedule, "Degraded", "Failed");

    // A Restore of a set that has never run waits for its first backup.
    shop.apply(
        "apiVersion: holdfast.io/v1alpha1\nkind: Restore\nmetadata: {name: early}\nspec:\n  backupSetRef: {name: shop}\n  target:\n    persistentVolumeClaim: {claimName: uploads}\n",
    );
    let restore = shop
        .wait(
            "Restore",
            "early",
            "waiting for the first backup",
            SOON,
            |o| {
                let (s, r, _) = condition(o, "Reconciling")?;
                (s == "True" && r == "WaitingForFirstBackup").then(|| o.clone())
            },
        )
        .await;
    capture(
        &shop.c,
        "restore-waiting",
        &restore,
        "Progressing",
        "InProgress",
    );

    // A filesystem StorageSet on a claim that no volume binds: its check cannot run yet.
    apply(
        &shop.c,
        &shop.ns,
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: nowhere}\nspec:\n  accessModes: [ReadWriteOnce]\n  storageClassName: no-such-class\n  resources: {requests: {storage: 1Gi}}\n---\napiVersion: holdfast.io/v1alpha1\nkind: StorageSet\nmetadata: {name: pending}\nspec:\n  filesystem:\n    persistentVolumeClaim: {claimName: nowhere}\n",
    );
    let storage = shop
        .wait("StorageSet", "pending", "checking", SOON, |o| {
            let (s, _, _) = condition(o, "Reconciling")?;
            (s == "True"
                && o.pointer("/status/observedGeneration") == o.pointer("/metadata/generation"))
            .then(|| o.clone())
        })
        .await;
    capture(
        &shop.c,
        "storageset-checking",
        &storage,
        "Progressing",
        "InProgress",
    );
}
