//! Driving the real `holdfast` binary: a repository of changing versions, and checks that
//! every retained run restores exactly.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // reason: test helpers; not every test binary uses each one

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use holdfast_testkit::pseudo_random;

pub const BIN: &str = env!("CARGO_BIN_EXE_holdfast");

pub fn hf(repo: &Path, args: &[&str], crash_point: Option<&str>) -> Output {
    let mut c = Command::new(BIN);
    c.args(args)
        .env("HOLDFAST_REPO", repo)
        .env("HOLDFAST_PASSPHRASE", "purge test")
        .env_remove("HOLDFAST_CRASH_POINT")
        .stdin(Stdio::null());
    if let Some(p) = crash_point {
        c.env("HOLDFAST_CRASH_POINT", p);
    }
    c.output().unwrap()
}

pub fn ok_json(repo: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = hf(repo, &all, None);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn same_content(a: &Path, b: &Path) {
    let out = Command::new("diff")
        .arg("-r")
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} and {} differ:\n{}",
        a.display(),
        b.display(),
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A repository with four full runs of a changing tree; returns the versions' directories
/// keyed by label.
pub fn build(dir: &Path) -> (PathBuf, Vec<(String, PathBuf)>) {
    let repo = dir.join("repo");
    let out = hf(
        &repo,
        &["init", "--kdf-iterations", "1000", "--volume-size", "1MiB"],
        None,
    );
    assert!(out.status.success());
    let mut versions = Vec::new();
    for v in 0..4u64 {
        let src = dir.join(format!("v{v}"));
        fs::create_dir_all(src.join("sub")).unwrap();
        // One file shared by all versions, one replaced each time, one small.
        fs::write(src.join("stable.bin"), pseudo_random(1_500_000, 99)).unwrap();
        fs::write(
            src.join("sub/changing.bin"),
            pseudo_random(2_500_000, 2 * v + 11),
        )
        .unwrap();
        fs::write(src.join("note.txt"), format!("version {v}")).unwrap();
        let arg = format!("site={}", src.display());
        let r = ok_json(&repo, &["backup", &arg]);
        versions.push((r["run"]["label"].as_str().unwrap().to_owned(), src));
    }
    (repo, versions)
}

pub fn check_all_retained(repo: &Path, versions: &[(String, PathBuf)], scratch: &Path, what: &str) {
    let verify = hf(repo, &["verify", "--deep"], None);
    assert!(
        verify.status.success(),
        "{what}: verify --deep failed:\n{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    let runs = ok_json(repo, &["runs"]);
    let labels: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["label"].as_str().unwrap())
        .collect();
    assert!(!labels.is_empty());
    for label in labels {
        let (_, src) = versions
            .iter()
            .find(|(l, _)| l == label)
            .expect("a known run");
        let target = scratch.join(format!("{}-{}", what.replace(':', "_"), label));
        let r = ok_json(
            repo,
            &[
                "restore",
                "--label",
                label,
                "--target",
                target.to_str().unwrap(),
            ],
        );
        assert_eq!(r["status"], "Complete", "{what}: restore of {label}");
        same_content(src, &target);
    }
}
