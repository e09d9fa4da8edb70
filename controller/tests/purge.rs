//! Purge through the real binary: retention, reclaimed space, and crash safety: the process
//! is killed (SIGKILL) between every two steps of a purge, and each time the repository must
//! verify deeply, every retained run must restore exactly, and the next purge must finish.
#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: tests

#[path = "support/binary.rs"]
mod binary;

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use binary::{build, check_all_retained, hf, ok_json};

#[test]
fn purge_reclaims_space_of_expired_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, versions) = build(dir.path());
    let before = ok_json(&repo, &["inventory"]);
    let dry = ok_json(
        &repo,
        &["purge", "--keep-fulls", "2", "--grace", "0s", "--dry-run"],
    );
    assert_eq!(dry["dryRun"], true);
    assert_eq!(dry["runsExpired"].as_array().unwrap().len(), 2);
    assert_eq!(
        ok_json(&repo, &["runs"]).as_array().unwrap().len(),
        4,
        "a dry run changes nothing"
    );

    let summary_file = dir.path().join("summary.json");
    // Volumes mix chunks of several files; repack anything under 90% live so the dead
    // chunks of partly-live volumes are reclaimed too.
    let args = [
        "purge",
        "--keep-fulls",
        "2",
        "--grace",
        "0s",
        "--repack-below",
        "90",
        "--summary-file",
        summary_file.to_str().unwrap(),
    ];
    let report = ok_json(&repo, &args);
    let reclaimed = report["bytesReclaimed"].as_u64().unwrap();
    let summary = fs::read_to_string(&summary_file).unwrap();
    assert!(summary.len() <= 4096);
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary["op"], "purge");
    assert_eq!(summary["bytesReclaimed"].as_u64().unwrap(), reclaimed);

    let after = ok_json(&repo, &["inventory"]);
    let (b, a) = (
        before["volumeBytes"].as_u64().unwrap(),
        after["volumeBytes"].as_u64().unwrap(),
    );
    // The two expired versions of the 2.5 MB incompressible file are gone, net of repacking,
    // except what the policy lets stay: a volume at least 90% live is kept with its dead
    // part, so at most a tenth of what remains can be dead. (Chunk boundaries are keyed per
    // repository, so how the dead chunks share volumes differs from run to run.)
    assert!(
        b - a >= 2 * 2_500_000 - a / 10,
        "net reclaimed {} bytes ({b} -> {a})",
        b - a
    );
    assert!(
        b - a >= 2 * 2_500_000 / 2,
        "most of the expired data is reclaimed: {b} -> {a}"
    );
    assert!(
        reclaimed >= b - a,
        "deleted volume bytes {reclaimed} cover the net saving"
    );
    assert!(
        after["reclaimableBytes"].as_u64().unwrap() < 2_500_000,
        "{after}"
    );
    eprintln!("purge deleted {reclaimed} bytes of volumes; repository {b} -> {a} bytes");
    check_all_retained(
        &repo,
        &versions,
        &dir.path().join("restores"),
        "after purge",
    );

    let refused = hf(&repo, &["purge", "--keep-fulls", "0"], None);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("keeps nothing"));
}

#[test]
fn purge_killed_between_any_two_steps_loses_nothing_and_the_next_purge_finishes() {
    let base = tempfile::tempdir().unwrap();
    let (template, versions) = build(base.path());
    let points = [
        "purge:after-expire",
        "purge:after-repack",
        "purge:after-mark",
        "purge:after-index-write",
        "purge:after-index-delete",
        "purge:after-volume-delete",
    ];
    for point in points {
        let work = base.path().join(point.replace(':', "_"));
        fs::create_dir_all(&work).unwrap();
        let status = Command::new("cp")
            .arg("-r")
            .arg(&template)
            .arg(&work)
            .status()
            .unwrap();
        assert!(status.success());
        let repo = work.join("repo");
        // Repack everything below 90% live so the repack step really runs.
        let args = [
            "purge",
            "--keep-fulls",
            "2",
            "--grace",
            "0s",
            "--repack-below",
            "90",
        ];
        let killed = hf(&repo, &args, Some(point));
        assert_eq!(
            killed.status.signal(),
            Some(9),
            "{point}: the purge reached the crash point and died by SIGKILL ({})",
            String::from_utf8_lossy(&killed.stderr)
        );
        // The dead process's lock has a lease; a later purge must not wait for it.
        let unlock = hf(&repo, &["unlock", "--all"], None);
        assert!(unlock.status.success());
        check_all_retained(&repo, &versions, &work.join("restores-after-kill"), point);

        let finish = ok_json(&repo, &["purge", "--keep-fulls", "2", "--grace", "0s"]);
        let inv = ok_json(&repo, &["inventory"]);
        let vols = inv["volumes"].as_array().unwrap();
        let leftovers: Vec<_> = vols
            .iter()
            .filter(|v| {
                v["state"] == "unreferenced" || v["state"] == "marked" || v["state"] == "dead"
            })
            .collect();
        assert!(
            leftovers.is_empty(),
            "{point}: the next purge finished the job ({finish}); left: {leftovers:?}"
        );
        assert_eq!(ok_json(&repo, &["runs"]).as_array().unwrap().len(), 2);
        check_all_retained(&repo, &versions, &work.join("restores-after-finish"), point);
    }
}

#[test]
fn a_purge_that_would_expire_most_runs_changes_nothing_until_exactly_it_is_approved() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, versions) = build(dir.path());
    // Keeping one full of four expires 75% of the restore points, and every older full.
    let braked = hf(
        &repo,
        &["purge", "--keep-fulls", "1", "--grace", "0s", "--json"],
        None,
    );
    assert_eq!(
        braked.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&braked.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&braked.stdout).unwrap();
    let b = &report["braked"];
    assert!(
        b["reason"]
            .as_str()
            .unwrap()
            .contains("3 of 4 restore points (75%)"),
        "{b}"
    );
    assert_eq!(b["runs"].as_array().unwrap().len(), 3);
    assert_eq!(report["volumesMarked"], 0, "nothing marked: {report}");
    assert_eq!(ok_json(&repo, &["runs"]).as_array().unwrap().len(), 4);
    let plan = b["plan"].as_str().unwrap().to_owned();

    // An approval of another plan does not pass this one.
    let other = hf(
        &repo,
        &[
            "purge",
            "--keep-fulls",
            "1",
            "--max-age",
            "0d",
            "--approve",
            "0000000000000000",
        ],
        None,
    );
    assert_eq!(other.status.code(), Some(6));
    assert_eq!(ok_json(&repo, &["runs"]).as_array().unwrap().len(), 4);

    // Approved: exactly those three go.
    let done = ok_json(
        &repo,
        &[
            "purge",
            "--keep-fulls",
            "1",
            "--grace",
            "0s",
            "--approve",
            &plan,
        ],
    );
    let expired: Vec<&str> = done["runsExpired"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["label"].as_str().unwrap())
        .collect();
    let braked_runs: Vec<&str> = b["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["label"].as_str().unwrap())
        .collect();
    assert_eq!(expired, braked_runs);
    check_all_retained(&repo, &versions, &dir.path().join("restores"), "approved");

    // Half of them, by a steady policy, needs no approval; --max-expire 100 releases it.
    let (repo2, _) = build(&dir.path().join("second"));
    let half = ok_json(
        &repo2,
        &["purge", "--keep-fulls", "2", "--grace", "0s", "--dry-run"],
    );
    assert_eq!(half["runsExpired"].as_array().unwrap().len(), 2);
    let off = ok_json(
        &repo2,
        &[
            "purge",
            "--keep-fulls",
            "1",
            "--grace",
            "0s",
            "--max-expire",
            "100",
        ],
    );
    assert_eq!(off["runsExpired"].as_array().unwrap().len(), 3, "{off}");
}
