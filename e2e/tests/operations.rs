//! The controller's operations on the real control plane: a cron slot at its planned
//! level, command sources (a dump restored byte-identical, a failing dump as a Partial run
//! with its reason), retention through the purge window, and aborting a running backup.
#![allow(clippy::unwrap_used)] // reason: tests

use std::collections::BTreeSet;
use std::time::Duration;

use holdfast_e2e::harness::{Cluster, condition, events, prepared_volume};
use holdfast_e2e::scenario::{
    PRIVILEGED_MOVER, RUN, SOON, Shop, Target, command_set, set_manifest,
};

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn a_cron_slot_fires_at_its_planned_level_and_an_incremental_follows() {
    let shop = Shop::new("cron", Target::S3).await;
    // A full at the next whole minute, at least 30 s ahead (the set must be planned before
    // it, on a loaded CI machine too), incrementals every minute. Late in a minute, wait for
    // the next one: a full two minutes ahead would leave an incremental slot before it.
    let second = u64::from(chrono::Timelike::second(&chrono::Utc::now()));
    if second >= 30 {
        tokio::time::sleep(std::time::Duration::from_secs(61 - second)).await;
    }
    let minute = (chrono::Timelike::minute(&chrono::Utc::now()) + 1) % 60;
    shop.apply(&format!(
        "apiVersion: holdfast.io/v1alpha1\nkind: Schedule\nmetadata: {{name: minutely}}\nspec:\n  timeZone: UTC\n  full: \"{minute} * * * *\"\n  incremental: \"* * * * *\"\n"
    ));
    let extra = "  scheduleRef: {name: minutely}\n";
    shop.apply(&set_manifest(extra));
    let set = shop.ready("BackupSet", "shop").await;
    let next = set.pointer("/status/nextRun").unwrap().clone();
    assert_eq!(next["level"], "full", "{next:#}");

    let first = shop.next_run(&BTreeSet::new()).await;
    assert_eq!(first["phase"], "Complete", "{first:#}");
    assert_eq!(first["level"], "full", "{first:#}");
    // The run's label is its slot's time, not the time the pod happened to start.
    let label = first["label"].as_str().unwrap();
    assert!(
        label.ends_with(&format!("{minute:02}00")),
        "label {label} is not the slot's minute {minute}"
    );
    let seen: BTreeSet<String> = [first["job"].as_str().unwrap().to_owned()].into();
    let second = shop.next_run(&seen).await;
    assert_eq!(second["phase"], "Complete", "{second:#}");
    assert_eq!(second["level"], "incr", "{second:#}");
    let s = shop.get("Schedule", "minutely").await.unwrap();
    assert_eq!(s.pointer("/status/usedBy/0").unwrap(), "shop", "{s:#}");
}

fn dump_set(c: &Cluster, command: &str, with_claim: bool) -> String {
    let claim = if with_claim {
        "  - name: uploads\n    persistentVolumeClaim: {claimName: uploads}\n"
    } else {
        ""
    };
    format!(
        "apiVersion: holdfast.io/v1alpha1\nkind: BackupSet\nmetadata: {{name: shop}}\nspec:\n  storageSetRef: {{name: offsite}}\n  sources:\n{claim}  - name: db\n    command:\n      image: {}\n      command: [sh, -c]\n      args: [{command:?}]\n      fileName: shop.sql\n  encryption:\n    keySecretRef: {{name: shop-key, key: passphrase}}\n{PRIVILEGED_MOVER}",
        c.shell_image
    )
}

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn a_dump_is_restored_byte_identical_and_a_failing_dump_is_a_partial_run() {
    let shop = Shop::new("dump", Target::S3).await;
    let link = shop.c.link().await;
    let content: Vec<u8> = holdfast_testkit::pseudo_random(2_000_000, 3);
    link.publish("dump.sql", content.clone());
    let set = dump_set(&shop.c, &link.cat_cmd("dump.sql"), false);
    shop.apply(&format!("{set}  manualRun: {{token: one, level: full}}\n"));
    let last = shop.next_run(&BTreeSet::new()).await;
    assert_eq!(last["phase"], "Complete", "{last:#}");
    assert_eq!(last["bytesRead"], 2_000_000, "{last:#}");

    let target = prepared_volume(&shop.c, &shop.ns, "dump-copy");
    shop.apply(
        "apiVersion: holdfast.io/v1alpha1\nkind: Restore\nmetadata: {name: dump}\nspec:\n  backupSetRef: {name: shop}\n  target:\n    newPersistentVolumeClaim: {name: dump-copy, size: 1Gi, storageClassName: e2e-host}\n",
    );
    let status = shop.restored("dump").await;
    assert_eq!(status["phase"], "Completed", "{status:#}");
    assert_eq!(std::fs::read(target.join("shop.sql")).unwrap(), content);

    // The database refuses: the claim is stored, the run is Partial, with the dump's exit
    // status and what it said.
    let failing = dump_set(
        &shop.c,
        "echo '-- partial output'; echo 'pg_dumpall: error: role \"backup\" does not exist' >&2; exit 3",
        true,
    );
    let before: BTreeSet<String> = shop.jobs().await.into_iter().collect();
    shop.apply(&format!(
        "{failing}  manualRun: {{token: two, level: full}}\n"
    ));
    let last = shop.next_run(&before).await;
    assert_eq!(last["phase"], "Partial", "{last:#}");
    let message = last["message"].as_str().unwrap_or_default();
    assert!(message.contains("3"), "exit status in {message:?}");
    assert!(
        message.contains("role \"backup\" does not exist"),
        "{message:?}"
    );
    let set = shop.get("BackupSet", "shop").await.unwrap();
    let ev = events(&shop.c, &shop.ns, "shop").await;
    assert!(
        ev.iter()
            .any(|(t, r, _)| t == "Warning" && r == "BackupPartial"),
        "{ev:?}"
    );
    // A partial run is not a failed one.
    assert_eq!(set.pointer("/status/consecutiveFailures").unwrap(), 0);

    // With the dump as the only source nothing is stored: a Failed run, and the set says
    // why in its Stalled condition until a run succeeds.
    let only = dump_set(
        &shop.c,
        "echo 'could not connect to server' >&2; exit 2",
        false,
    );
    let before: BTreeSet<String> = shop.jobs().await.into_iter().collect();
    shop.apply(&format!(
        "{only}  manualRun: {{token: three, level: full}}\n"
    ));
    let last = shop.next_run(&before).await;
    assert_eq!(last["phase"], "Failed", "{last:#}");
    let set = shop
        .wait("BackupSet", "shop", "Stalled=True", SOON, |o| {
            let (s, r, m) = condition(o, "Stalled")?;
            (s == "True").then_some((r, m))
        })
        .await;
    assert_eq!(set.0, "BackupFailed");
    assert!(set.1.contains("could not connect to server"), "{}", set.1);
}

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn the_purge_window_waits_for_approval_of_a_mass_expiry_then_expires_exactly_it() {
    let shop = Shop::new("purge", Target::S3).await;
    // Backups only on request (the yearly full never comes during the test); a purge every
    // minute.
    shop.apply(
        "apiVersion: holdfast.io/v1alpha1\nkind: Schedule\nmetadata: {name: purging}\nspec:\n  timeZone: UTC\n  full: \"0 0 1 1 *\"\n  purge: \"* * * * *\"\n",
    );
    // The schedule comes after the three fulls: a purge between two of them (fulls take
    // longer on a real node) would expire one run at a time.
    let extra = "  retention: {keepFulls: 1}\n";
    shop.apply(&set_manifest(extra));
    for (i, token) in ["a", "b", "c"].iter().enumerate() {
        // Each full holds a new big file, so expiring it frees its chunks.
        std::fs::write(
            shop.data.join("docs/2026/11/invoice.pdf"),
            holdfast_testkit::pseudo_random(1_000_000, 100 + i as u64),
        )
        .unwrap();
        let last = shop.run(extra, token, "full").await;
        assert_eq!(last["phase"], "Complete", "{last:#}");
    }
    shop.apply(&set_manifest(&format!(
        "  scheduleRef: {{name: purging}}\n{extra}  manualRun: {{token: c, level: full}}\n"
    )));
    // Two of three runs, every full but the newest: the brake stops it, and says so.
    let waiting = shop
        .wait(
            "BackupSet",
            "shop",
            "the purge to wait for approval",
            Duration::from_secs(150),
            |o| {
                let a = o.pointer("/status/retention/awaitingApproval")?;
                Some((a.clone(), o.clone()))
            },
        )
        .await;
    let (approval, set) = waiting;
    assert_eq!(approval["runsCount"], 2, "{approval:#}");
    assert_eq!(set.pointer("/status/retention/runsExpired").unwrap(), 0);
    let (on, reason, message) = condition(&set, "AwaitingApproval").unwrap();
    assert_eq!(
        (on.as_str(), reason.as_str()),
        ("True", "PurgeBraked"),
        "{message}"
    );
    let plan = approval["plan"].as_str().unwrap().to_owned();
    assert!(message.contains(&plan), "{message}");
    let (ok, runs, _) = shop.cli(&["runs"]);
    assert!(
        ok && runs.as_array().map(Vec::len) == Some(3),
        "nothing expired: {runs:#}"
    );
    let seen = events(&shop.c, &shop.ns, "shop").await;
    assert!(seen.iter().any(|(_, r, _)| r == "PurgeBraked"), "{seen:?}");

    // Approved: exactly that purge runs.
    shop.c.kubectl_ok(
        &[
            "annotate",
            "-n",
            &shop.ns,
            "backupset",
            "shop",
            &format!("holdfast.io/approve-purge={plan}"),
        ],
        None,
    );
    let status = shop
        .wait(
            "BackupSet",
            "shop",
            "a purge after the third full",
            Duration::from_secs(150),
            |o| {
                let r = o.pointer("/status/retention")?;
                (r["runsExpired"].as_u64()? >= 2).then(|| o["status"].clone())
            },
        )
        .await;
    let r = &status["retention"];
    assert_eq!(r["runsKept"], 1, "{r:#}");
    assert!(r["bytesReclaimed"].as_u64().unwrap() > 1_500_000, "{r:#}");
    assert_eq!(status.pointer("/restorePoints/count").unwrap(), 1);
    let storage = shop
        .wait(
            "StorageSet",
            "offsite",
            "the inventory after the purge",
            SOON,
            |o| {
                let total = o.pointer("/status/inventory/totalBytes")?.as_u64()?;
                (total < 3_500_000).then(|| o.clone())
            },
        )
        .await;
    assert!(
        storage
            .pointer("/status/inventory/perBackupSet/0/bytes")
            .is_some()
    );
    // What the engine says agrees.
    let (ok, runs, err) = shop.cli(&["runs"]);
    assert!(ok, "{err}");
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs:#}");
}

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn an_aborted_backup_is_recorded_the_repository_verifies_and_the_next_run_completes() {
    let shop = Shop::new("abort", Target::S3).await;
    let link = shop.c.link().await;
    // A dump that says when it has written its first megabyte, then hangs until the flag
    // `go` is raised.
    let set = command_set(
        &shop.c,
        &format!(
            "head -c 1000000 /dev/zero; {}; {}",
            link.raise_cmd("started"),
            link.wait_cmd("go")
        ),
        "",
    );
    shop.apply(&format!("{set}  manualRun: {{token: one, level: full}}\n"));
    let job = shop
        .wait("BackupSet", "shop", "the backup to run", RUN, |o| {
            let last = o.pointer("/status/lastRun")?;
            (last["phase"] == "Running").then(|| last["job"].as_str().map(str::to_owned))?
        })
        .await;
    // Abort once the dump's first megabyte is in the engine's hands (a fixed wait raced a
    // slow pod start on a loaded machine), and the pipe's last buffer had time to drain.
    link.wait_raised("started", "the dump never wrote its first megabyte", RUN)
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    shop.c.kubectl_ok(
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
    let last = shop
        .wait("BackupSet", "shop", "the aborted run", RUN, |o| {
            let last = o.pointer("/status/lastRun")?;
            (last["job"] == job.as_str() && last["phase"] != "Running").then(|| last.clone())
        })
        .await;
    assert_eq!(last["phase"], "Aborted", "{last:#}");
    let ev = events(&shop.c, &shop.ns, "shop").await;
    assert!(ev.iter().any(|(_, r, _)| r == "BackupAborting"), "{ev:?}");
    assert!(ev.iter().any(|(_, r, _)| r == "BackupAborted"), "{ev:?}");

    // What it read counts (the claim and the dump's first megabyte), and the repository
    // records the run as Aborted, as the status does.
    assert!(
        last["bytesRead"].as_u64().unwrap_or(0) >= 1_000_000,
        "{last:#}"
    );
    let (ok, runs, err) = shop.cli(&["runs", "--status", "aborted"]);
    assert!(ok, "{err}");
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs:#}");
    assert_eq!(runs[0]["status"], "Aborted", "{runs:#}");

    // Nothing is damaged, and no lock is left.
    let (ok, _, err) = shop.cli(&["verify", "--deep"]);
    assert!(ok, "verify after the abort: {err}");

    link.raise("go");
    // The aborted Job itself is deleted once taken in (a suspended Job would stay forever).
    let mut before: BTreeSet<String> = shop.jobs().await.into_iter().collect();
    before.insert(job.clone());
    shop.apply(&format!("{set}  manualRun: {{token: two, level: full}}\n"));
    let next = shop.next_run(&before).await;
    assert_eq!(next["phase"], "Complete", "{next:#}");
    let set = shop.ready("BackupSet", "shop").await;
    assert!(condition(&set, "Stalled").is_some_and(|(s, _, _)| s == "False"));
}
