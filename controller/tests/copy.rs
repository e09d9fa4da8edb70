//! `holdfast copy` through the real binary: a copy killed (SIGKILL) between any two steps,
//! at any run, converges on the next copy with nothing lost and no run copied twice, and
//! the copy alone verifies deeply and restores every run exactly.
#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: tests

#[path = "support/binary.rs"]
mod binary;

use std::os::unix::process::ExitStatusExt;

use binary::{build, check_all_retained, hf, ok_json};

fn labels(runs: &serde_json::Value) -> Vec<String> {
    runs.as_array()
        .unwrap()
        .iter()
        .map(|r| r["label"].as_str().unwrap().to_owned())
        .collect()
}

fn copied(report: &serde_json::Value) -> Vec<String> {
    labels(&report["copied"])
}

fn copy_args<'a>(to: &'a str, only: &'a [String]) -> Vec<&'a str> {
    let mut args = vec!["copy", "--to", to, "--kdf-iterations", "1000"];
    for l in only {
        args.extend(["--label", l.as_str()]);
    }
    args
}

#[test]
fn a_copy_killed_at_any_step_of_any_run_converges_with_nothing_lost_or_copied_twice() {
    let base = tempfile::tempdir().unwrap();
    let (repo, versions) = build(base.path());
    let source = labels(&ok_json(&repo, &["runs"]));
    assert_eq!(source.len(), 4);
    let points = [
        "sink:after-volume",
        "copy:after-volumes",
        "copy:after-manifest",
        "copy:after-record",
    ];
    for point in points {
        for done_before in [0, 2] {
            let what = format!("{point}@{done_before}");
            let to = base
                .path()
                .join(format!("copy-{}", what.replace([':', '@'], "-")));
            let to_arg = to.to_str().unwrap();
            if done_before > 0 {
                let first = ok_json(&repo, &copy_args(to_arg, &source[..done_before]));
                assert_eq!(copied(&first), source[..done_before].to_vec(), "{what}");
            }
            let killed = hf(&repo, &copy_args(to_arg, &[]), Some(point));
            assert_eq!(
                killed.status.signal(),
                Some(9),
                "{what}: {}",
                String::from_utf8_lossy(&killed.stderr)
            );
            let held = labels(&ok_json(&to, &["runs"]));
            let finish = ok_json(&repo, &copy_args(to_arg, &[]));
            let moved = copied(&finish);
            assert!(
                moved.iter().all(|l| !held.contains(l)),
                "{what}: {moved:?} copied again though the copy held {held:?}"
            );
            let mut all: Vec<String> = held.iter().chain(&moved).cloned().collect();
            all.sort();
            let mut want = source.clone();
            want.sort();
            assert_eq!(all, want, "{what}: every run once");
            if point == "copy:after-manifest" {
                let recorded = labels_of(&finish["recorded"]);
                assert_eq!(recorded, vec![source[done_before].clone()], "{what}");
            }
            assert_eq!(labels(&ok_json(&to, &["runs"])), source, "{what}");
            check_all_retained(&to, &versions, &base.path().join("restores"), &what);
            let again = ok_json(&repo, &copy_args(to_arg, &[]));
            assert!(copied(&again).is_empty(), "{what}: {again}");
        }
    }
}

fn labels_of(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn copying_into_a_repository_of_its_own_is_refused_with_the_way_out() {
    let base = tempfile::tempdir().unwrap();
    let (repo, _) = build(base.path());
    let other = base.path().join("other");
    let init = hf(&other, &["init", "--kdf-iterations", "1000"], None);
    assert!(init.status.success());
    let out = hf(&repo, &copy_args(other.to_str().unwrap(), &[]), None);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not made as a copy") && err.contains("empty location"),
        "{err}"
    );
    assert!(labels(&ok_json(&other, &["runs"])).is_empty());
    let same = hf(&repo, &copy_args(repo.to_str().unwrap(), &[]), None);
    assert_eq!(same.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&same.stderr).contains("somewhere else"));
}

/// What a copy job pod runs: `holdfast job run` with a copy plan creates the copy the first
/// time and leaves a summary the controller reads; the next run finds nothing to move.
#[test]
fn job_run_with_a_copy_plan_creates_the_copy_and_reports_what_it_moved() {
    let base = tempfile::tempdir().unwrap();
    let (repo, versions) = build(base.path());
    let to = base.path().join("offsite");
    let plan = serde_json::json!({
        "version": 1,
        "repository": {"url": format!("file://{}", repo.display()), "create": false},
        "operation": {"type": "copy", "name": "offsite",
            "to": {"url": format!("file://{}", to.display()), "create": true}},
    });
    let summary_file = base.path().join("summary");
    let run = || {
        let out = std::process::Command::new(binary::BIN)
            .args(["job", "run"])
            .env("HOLDFAST_PASSPHRASE", "purge test")
            .env("HOLDFAST_JOB_PLAN", plan.to_string())
            .env("HOLDFAST_SUMMARY_FILE", &summary_file)
            .env_remove("HOLDFAST_REPO")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&summary_file).unwrap()).unwrap();
        s
    };
    let first = run();
    assert_eq!(
        (&first["op"], &first["name"], &first["created"]),
        (&"copy".into(), &"offsite".into(), &true.into()),
        "{first}"
    );
    assert_eq!(first["runsCopiedCount"], 4, "{first}");
    assert!(first["bytesMoved"].as_u64().unwrap() > 4_000_000, "{first}");
    assert!(first["repository"]["runs"].as_u64().is_some(), "{first}");
    let second = run();
    assert_eq!(
        (
            &second["created"],
            &second["runsCopiedCount"],
            &second["bytesMoved"]
        ),
        (&false.into(), &0.into(), &0.into()),
        "{second}"
    );
    check_all_retained(&to, &versions, &base.path().join("restores"), "job copy");
}
