//! The `holdfast` binary end to end: commands, JSON output, exit codes, crash safety.
#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: tests

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_holdfast");
const PASS: &str = "cli test passphrase";

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        let env = Env {
            dir: tempfile::tempdir().unwrap(),
        };
        let out = env.run(&["init", "--kdf-iterations", "1000", "--volume-size", "1MiB"]);
        assert!(
            out.status.success(),
            "init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        env
    }

    fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env("HOLDFAST_REPO", format!("file://{}", self.repo().display()))
            .env("HOLDFAST_PASSPHRASE", PASS)
            .env_remove("HOLDFAST_KEY_FILE")
            .env_remove("HOLDFAST_OWNER")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.run(&all);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn write_tree(root: &Path, files: usize, size: usize, seed: u64) {
    fs::create_dir_all(root.join("nested")).unwrap();
    let mut x = seed | 1;
    for i in 0..files {
        let data: Vec<u8> = (0..size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        let dir = if i % 2 == 0 {
            root.to_path_buf()
        } else {
            root.join("nested")
        };
        fs::write(dir.join(format!("file-{i:03}.bin")), data).unwrap();
    }
}

fn same_content(a: &Path, b: &Path) {
    let out = Command::new("diff")
        .args(["-r", "--no-dereference"])
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "trees differ:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn backup_runs_ls_restore_verify_with_json() {
    let env = Env::new();
    let src = env.path("src");
    write_tree(&src, 6, 200_000, 1);
    fs::write(src.join("note.txt"), "hello").unwrap();

    let report = env.json(&["backup", src.to_str().unwrap()]);
    let label = report["run"]["label"].as_str().unwrap().to_owned();
    assert!(label.starts_with("full-"), "{label}");
    assert_eq!(report["run"]["status"], "Complete");
    assert_eq!(report["run"]["stats"]["files"], 7);

    let incr = env.json(&["backup", "--level", "incr", src.to_str().unwrap()]);
    assert_eq!(incr["run"]["level"], "incr");
    assert_eq!(incr["run"]["parent"], label.as_str());
    assert_eq!(incr["run"]["stats"]["filesUnchanged"], 7);

    let runs = env.json(&["runs"]);
    assert_eq!(runs.as_array().unwrap().len(), 2);
    assert_eq!(runs[0]["label"], label.as_str());

    let ls = env.json(&["ls", &label, "--path", "/nested"]);
    let paths: Vec<&str> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "/nested",
            "/nested/file-001.bin",
            "/nested/file-003.bin",
            "/nested/file-005.bin"
        ]
    );

    let target = env.path("restored");
    let restored = env.json(&[
        "restore",
        "--label",
        &label,
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_eq!(restored["status"], "Complete");
    assert_eq!(restored["unrestored"], 0);
    same_content(&src, &target);

    let verify = env.json(&["verify", "--deep"]);
    assert_eq!(verify["ok"], true);
    assert_eq!(verify["dataVerified"], true);
    let sampled = env.json(&["verify", "--deep", "--sample", "50"]);
    assert_eq!(sampled["dataVerified"], false);

    // Human output is readable too.
    let out = env.run(&["runs"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("LABEL") && text.contains(&label) && text.contains("2 of 2 runs"),
        "{text}"
    );
}

#[test]
fn point_in_time_restore_picks_the_run_at_or_before() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("v"), "one").unwrap();
    let first = env.json(&["backup", src.to_str().unwrap()]);
    std::thread::sleep(Duration::from_millis(1100));
    fs::write(src.join("v"), "two").unwrap();
    env.json(&["backup", src.to_str().unwrap()]);
    let first_time = first["run"]["finished"].as_str().unwrap();
    let out = env.path("pit");
    let r = env.json(&[
        "restore",
        "--at",
        first_time,
        "--target",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r["run"], first["run"]["label"]);
    assert_eq!(fs::read_to_string(out.join("v")).unwrap(), "one");
    let bad = env.run(&[
        "restore",
        "--at",
        "2001-01-01T00:00:00Z",
        "--target",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code(&bad), 11);
    assert!(
        stderr(&bad).contains(first["run"]["label"].as_str().unwrap()),
        "names the first run: {}",
        stderr(&bad)
    );
}

#[test]
fn exit_codes_for_bad_input() {
    let env = Env::new();
    let src = env.path("src");
    write_tree(&src, 1, 1000, 2);

    let wrong = env
        .cmd(&["runs"])
        .env("HOLDFAST_PASSPHRASE", "wrong")
        .output()
        .unwrap();
    assert_eq!(code(&wrong), 10, "{}", stderr(&wrong));
    assert!(stderr(&wrong).contains("wrong key"));

    let missing_repo = env
        .cmd(&["runs"])
        .env("HOLDFAST_REPO", env.path("nowhere"))
        .output()
        .unwrap();
    assert_eq!(code(&missing_repo), 11);
    assert!(
        stderr(&missing_repo).contains(env.path("nowhere").to_str().unwrap()),
        "{}",
        stderr(&missing_repo)
    );

    let missing_source = env.run(&["backup", env.path("no-such-dir").to_str().unwrap()]);
    assert_eq!(code(&missing_source), 2);
    assert!(
        stderr(&missing_source).contains("no-such-dir"),
        "{}",
        stderr(&missing_source)
    );

    let no_key = env
        .cmd(&["runs"])
        .env_remove("HOLDFAST_PASSPHRASE")
        .output()
        .unwrap();
    assert_eq!(code(&no_key), 2);
    assert!(
        stderr(&no_key).contains("HOLDFAST_PASSPHRASE"),
        "{}",
        stderr(&no_key)
    );

    let unknown = env.run(&[
        "restore",
        "--label",
        "full-20000101.000000",
        "--target",
        "/tmp/x",
    ]);
    assert_eq!(code(&unknown), 11);

    let again = env.run(&["init", "--kdf-iterations", "1000"]);
    assert_ne!(code(&again), 0);
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );

    // JSON mode reports the error as JSON too.
    let json_err = env
        .cmd(&["runs", "--json"])
        .env("HOLDFAST_PASSPHRASE", "wrong")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json_err.stdout).unwrap();
    assert_eq!(v["error"]["category"], "WrongKey");

    let key_file = env.path("key");
    fs::write(&key_file, format!("{PASS}\n")).unwrap();
    let with_file = env
        .cmd(&["runs"])
        .env_remove("HOLDFAST_PASSPHRASE")
        .env("HOLDFAST_KEY_FILE", &key_file)
        .output()
        .unwrap();
    assert_eq!(code(&with_file), 0, "{}", stderr(&with_file));
}

#[test]
fn unreadable_file_makes_the_run_partial_and_is_listed() {
    let env = Env::new();
    let src = env.path("src");
    write_tree(&src, 2, 1000, 3);
    let secret = src.join("secret.key");
    fs::write(&secret, "no peeking").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).unwrap();
    let running_as_root = rustix_free_euid() == 0;
    let mut cmd = if running_as_root {
        // Root reads everything; run the backup as `nobody` so the file is really unreadable.
        for p in [env.dir.path().to_path_buf(), env.repo()] {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o777)).unwrap();
        }
        chmod_recursive(&env.repo(), 0o777);
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
        c
    } else {
        Command::new(BIN)
    };
    let out = cmd
        .args(["backup", "--json", src.to_str().unwrap()])
        .env("HOLDFAST_REPO", env.repo())
        .env("HOLDFAST_PASSPHRASE", PASS)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(code(&out), 3, "partial run exits 3: {}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["run"]["status"], "Partial");
    let errors = v["run"]["sources"][0]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["path"], "/secret.key");
    assert!(
        errors[0]["error"]
            .as_str()
            .unwrap()
            .contains("ermission denied"),
        "{errors:?}"
    );
    assert_eq!(
        v["run"]["stats"]["files"], 3,
        "the other files are in the run"
    );
}

#[test]
fn a_restore_not_run_as_root_keeps_modes_and_times_and_counts_the_owners_it_could_not_set() {
    // As an unprivileged restore pod runs: root backs up files root owns, `nobody` restores
    // them into a directory root owns (a fresh volume's root).
    if !root_with_setpriv() {
        return;
    }
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let env = Env::new();
    let src = env.path("src");
    write_tree(&src, 3, 100, 5);
    fs::set_permissions(src.join("file-000.bin"), fs::Permissions::from_mode(0o640)).unwrap();
    let out = env.run(&["backup", "--quiet", &src.display().to_string()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    for p in [env.dir.path().to_path_buf(), env.repo()] {
        fs::set_permissions(&p, fs::Permissions::from_mode(0o777)).unwrap();
    }
    chmod_recursive(&env.repo(), 0o777);
    let target = env.path("volume");
    fs::create_dir(&target).unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o777)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
        .args(["restore", "--json", "--target"])
        .arg(&target)
        .env("HOLDFAST_REPO", format!("file://{}", env.repo().display()))
        .env("HOLDFAST_PASSPHRASE", PASS)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "complete: {}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "Complete", "{report:#}");
    // Every entry was root's: none could be given back, and each is counted.
    assert_eq!(report["ownersNotSet"], report["restored"], "{report:#}");
    // The volume's root is not the restoring user's: its mode and times stay.
    assert_eq!(report["modesNotSet"], 1, "{report:#}");
    same_content(&src, &target);
    let (a, b) = (
        fs::metadata(src.join("file-000.bin")).unwrap(),
        fs::metadata(target.join("file-000.bin")).unwrap(),
    );
    assert_eq!(b.mode() & 0o7777, 0o640);
    assert_eq!(a.mtime(), b.mtime());
    assert_eq!(b.uid(), 65534);
}

/// Root, with `setpriv` to run the binary as another user or without a capability; the
/// tests that need both say when they cannot run.
fn root_with_setpriv() -> bool {
    let able = rustix_free_euid() == 0 && Command::new("setpriv").arg("--help").output().is_ok();
    if !able {
        eprintln!("SKIP: needs root and setpriv");
    }
    able
}

fn rustix_free_euid() -> u32 {
    // Read our effective uid from /proc, to avoid a dependency just for this.
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

fn chmod_recursive(dir: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if e.file_type().unwrap().is_dir() {
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            chmod_recursive(&p, mode);
        } else {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o666)).unwrap();
        }
    }
}

fn count_files(dir: &Path) -> usize {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    if e.file_type().unwrap().is_dir() {
                        count_files(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Kill -9 a real backup at several points (after N volumes, after the first index
/// segment); each time the repository must verify deep, and the next backup and restore
/// must be exact.
#[test]
fn backup_killed_at_any_point_leaves_a_repository_that_verifies() {
    let env = Env::new();
    let src = env.path("src");
    // 100 files of 1.5 MiB random data, 1 MiB volumes: about 150 volumes and 3 index segments.
    write_tree(&src, 100, 1_500_000, 9);
    type Trigger = (&'static str, Box<dyn Fn(&Env) -> bool>);
    let triggers: Vec<Trigger> = vec![
        (
            "after 1 volume",
            Box::new(|e: &Env| count_files(&e.repo().join("data")) >= 1),
        ),
        (
            "after 20 volumes",
            Box::new(|e: &Env| count_files(&e.repo().join("data")) >= 20),
        ),
        (
            "after the first index segment",
            Box::new(|e: &Env| count_files(&e.repo().join("index")) >= 1),
        ),
    ];
    let mut killed = 0;
    for (what, trigger) in &triggers {
        let mut child = env
            .cmd(&["backup", "--quiet", src.to_str().unwrap()])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        let mut fired = false;
        while start.elapsed() < Duration::from_secs(120) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if trigger(&env) {
                child.kill().unwrap(); // SIGKILL
                fired = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let status = child.wait().unwrap();
        if fired {
            killed += 1;
            assert!(!status.success(), "{what}: the process was killed");
        }
        let v = env.run(&["verify", "--deep"]);
        assert_eq!(
            code(&v),
            0,
            "{what}: verify after kill -9 failed:\n{}{}",
            String::from_utf8_lossy(&v.stdout),
            stderr(&v)
        );
        // Each killed backup left (at most) volumes no index names, reported, not counted as damage.
    }
    assert!(
        killed >= 2,
        "the backup was killed mid-way at least twice (killed {killed} times)"
    );
    let runs = env.json(&["runs"]);
    assert!(
        runs.as_array().unwrap().len() < 3,
        "killed runs wrote no manifest"
    );
    let done = env.json(&["backup", src.to_str().unwrap()]);
    assert_eq!(done["run"]["status"], "Complete");
    let target = env.path("restored");
    let r = env.json(&["restore", "--target", target.to_str().unwrap()]);
    assert_eq!(r["status"], "Complete");
    same_content(&src, &target);
    let v = env.json(&["verify", "--deep"]);
    assert_eq!(v["ok"], true);
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let env = Env::new();
    let src = env.path("src");
    write_tree(&src, 50, 10, 4);
    assert!(
        env.run(&["backup", "--quiet", src.to_str().unwrap()])
            .status
            .success()
    );
    // `holdfast ls | head -1`: the reader is gone before the listing is written.
    let mut child = env
        .cmd(&["ls"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 141, "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

#[test]
fn a_backup_killed_on_this_machine_does_not_hold_up_purge() {
    let env = Env::new();
    let src = env.path("src");
    write_tree(&src, 40, 1_500_000, 11);
    let mut child = env
        .cmd(&["backup", "--quiet", src.to_str().unwrap()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while count_files(&env.repo().join("data")) < 2 && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL: the lock stays behind, in its lease
    child.wait().unwrap();
    let locks = env.json(&["locks"]);
    assert_eq!(locks[0]["stale"], true, "{locks}");
    assert_eq!(locks[0]["stale_because"], "holder is gone", "{locks}");
    // An exclusive phase is not refused for the five minutes of the lease.
    let purge = env.run(&["purge", "--keep-fulls", "1", "--grace", "0s"]);
    assert_eq!(code(&purge), 0, "{}", stderr(&purge));
    let unlock = env.run(&["unlock"]);
    assert!(String::from_utf8_lossy(&unlock.stdout).contains("removed"));
}

#[test]
fn first_use_messages() {
    let env = Env::new();
    // Both a key file and a passphrase: the key file wins, and says so.
    let key_file = env.path("key");
    fs::write(&key_file, format!("{PASS}\n")).unwrap();
    let both = env
        .cmd(&["runs"])
        .env("HOLDFAST_KEY_FILE", &key_file)
        .output()
        .unwrap();
    assert_eq!(code(&both), 0);
    assert!(
        stderr(&both).contains("both a key file"),
        "{}",
        stderr(&both)
    );

    // init into a directory holding other data is refused with its own exit code.
    let occupied = env.path("occupied");
    fs::create_dir(&occupied).unwrap();
    fs::write(occupied.join("notes.txt"), "mine").unwrap();
    let init = env
        .cmd(&["init", "--kdf-iterations", "1000"])
        .env("HOLDFAST_REPO", &occupied)
        .output()
        .unwrap();
    assert_eq!(code(&init), 16, "{}", stderr(&init));
    assert!(
        stderr(&init).contains("--allow-non-empty"),
        "{}",
        stderr(&init)
    );
    let again = env.run(&["init", "--kdf-iterations", "1000"]);
    assert_eq!(
        code(&again),
        16,
        "an existing repository is not a storage failure"
    );

    // storage check of the (existing) repository passes.
    let check = env.run(&["storage", "check"]);
    assert_eq!(
        code(&check),
        0,
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    // An unreachable endpoint says it is retrying instead of going silent.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!(
        "s3://bucket/p?endpoint=http://127.0.0.1:{port}&path_style=true&max_attempts=2&connect_timeout=1s"
    );
    let unreachable = env
        .cmd(&["storage", "check", &url])
        .env("AWS_ACCESS_KEY_ID", "k")
        .env("AWS_SECRET_ACCESS_KEY", "s")
        .output()
        .unwrap();
    assert_eq!(code(&unreachable), 15);
    assert!(
        stderr(&unreachable).contains("retrying (attempt 2 of 2)"),
        "{}",
        stderr(&unreachable)
    );
}

#[test]
fn runs_show_levels_per_source_and_preview_gfs_retention() {
    let env = Env::new();
    let (a, b) = (env.path("a"), env.path("b"));
    write_tree(&a, 2, 100, 5);
    write_tree(&b, 2, 100, 6);
    let arg = |n: &str, p: &Path| format!("{n}={}", p.display());
    assert!(
        env.run(&["backup", "--quiet", &arg("a", &a)])
            .status
            .success()
    );
    std::thread::sleep(Duration::from_millis(1100));
    let out = env.run(&[
        "backup",
        "--quiet",
        "--level",
        "incr",
        &arg("a", &a),
        &arg("b", &b),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let runs = env.json(&["runs"]);
    let second = &runs[1];
    assert_eq!(second["level"], "incr");
    let levels: Vec<(String, String)> = second["sourceLevels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().into(),
                s["level"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        levels,
        [("a".into(), "incr".into()), ("b".into(), "full".into())]
    );
    let text = String::from_utf8_lossy(&env.run(&["runs"]).stdout).into_owned();
    assert!(text.contains("a b(full)"), "{text}");
    let preview = env.json(&["runs", "--keep-daily", "1"]);
    assert_eq!(preview[0]["retention"]["action"], "keep", "{preview}");
    assert!(
        preview[1]["retention"]["reason"]
            .as_str()
            .unwrap()
            .contains("daily")
    );
}

#[test]
fn a_device_node_restored_without_the_mknod_capability_names_it() {
    // Needs root to make the device node, and setpriv to restore without CAP_MKNOD (as a
    // restore pod without `deviceNodes: true` runs).
    if !root_with_setpriv() {
        return;
    }
    let env = Env::new();
    let src = env.path("src");
    write_tree(&src, 2, 100, 9);
    let made = Command::new("mknod")
        .arg(src.join("null"))
        .args(["c", "1", "3"])
        .status()
        .unwrap();
    assert!(made.success());
    let out = env.run(&["backup", "--quiet", &src.display().to_string()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let target = env.path("out");
    let out = Command::new("setpriv")
        .args(["--bounding-set", "-mknod", "--inh-caps", "-mknod", "--"])
        .arg(BIN)
        .args(["restore", "--json", "--target"])
        .arg(&target)
        .env("HOLDFAST_REPO", format!("file://{}", env.repo().display()))
        .env("HOLDFAST_PASSPHRASE", PASS)
        .output()
        .unwrap();
    assert_eq!(code(&out), 3, "partial: {}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let items = report["unrestoredItems"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{report:#}");
    assert!(
        items[0]["path"].as_str().unwrap().ends_with("/null"),
        "{report:#}"
    );
    let reason = items[0]["reason"].as_str().unwrap();
    assert!(reason.contains("CAP_MKNOD"), "{reason}");
    // With the capability (root as it is), it is restored.
    let again = env.path("again");
    let out = env.run(&["restore", "--target", &again.display().to_string()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    use std::os::unix::fs::FileTypeExt;
    assert!(
        fs::symlink_metadata(again.join("null"))
            .unwrap()
            .file_type()
            .is_char_device()
    );
}

#[test]
fn version_names_the_commit_and_date_of_the_build() {
    let out = Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .arg("--version")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let text = text.trim();
    let rest = text
        .strip_prefix(concat!("holdfast ", env!("CARGO_PKG_VERSION"), " (commit "))
        .unwrap_or_else(|| panic!("{text}"));
    let (commit, date) = rest
        .trim_end_matches(')')
        .split_once(", ")
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "{text}"
    );
    assert!(
        date == "unknown" || (date.len() == 10 && date.as_bytes()[4] == b'-'),
        "{text}"
    );
}

fn sigterm(child: &std::process::Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// `job tools` into `tools/` with the FIFO `fifo`, as a backup pod's init container runs it.
fn job_tools(env: &Env, fifo: &Path) {
    let out = env.run(&[
        "job",
        "tools",
        "--into",
        env.path("tools").to_str().unwrap(),
        "--fifo",
        fifo.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

/// `job pipe` running `command` into `fifo`, as a command container runs it.
fn spawn_pipe(env: &Env, fifo: &Path, command: &[&str]) -> std::process::Child {
    env.cmd(&["job", "pipe", "--fifo", fifo.to_str().unwrap(), "--"])
        .args(command)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Wait until `path` exists (a process's sign that it got somewhere), at most 20 s.
fn wait_for_path(path: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGTERM `child` and wait for it to exit within `limit`; its exit status.
fn terminate_within(
    child: &mut std::process::Child,
    limit: Duration,
    what: &str,
) -> std::process::ExitStatus {
    sigterm(child);
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(t.elapsed() < limit, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_records_an_aborted_run_and_leaves_a_clean_repository() {
    let env = Env::new();
    let (a, b) = (env.path("a"), env.path("b"));
    write_tree(&a, 4, 100, 21);
    write_tree(&b, 100, 1_500_000, 22);
    let arg = |n: &str, p: &Path| format!("{n}={}", p.display());
    let child = env
        .cmd(&[
            "backup",
            "--quiet",
            "--read-threads",
            "1",
            &arg("a", &a),
            &arg("b", &b),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while count_files(&env.repo().join("data")) < 3 && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    sigterm(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 5, "aborted: {}", stderr(&out));
    let runs = env.json(&["runs"]);
    let run = &runs[0];
    assert_eq!(run["status"], "Aborted", "{runs}");
    // What was read before the stop counts, also of the source it was reading: about the
    // new data it stored (which also holds a few listings). Before, it counted only `a`.
    let (read, added) = (
        run["bytesRead"].as_u64().unwrap(),
        run["bytesAdded"].as_u64().unwrap(),
    );
    assert!(
        added > 1_000_000 && read * 10 >= added * 9,
        "read {read}, added {added}: {runs}"
    );
    let aborted = env.json(&["runs", "--status", "aborted"]);
    assert_eq!(aborted.as_array().unwrap().len(), 1, "{aborted}");
    assert_eq!(aborted[0]["label"], run["label"]);
    let partial = env.json(&["runs", "--status", "Partial"]);
    assert_eq!(partial.as_array().unwrap().len(), 0, "{partial}");
    let levels = run["sourceLevels"].as_array().unwrap();
    let status_of = |n: &str| levels.iter().find(|s| s["name"] == n).unwrap()["status"].clone();
    assert_eq!(
        status_of("a"),
        "Complete",
        "a was read before the stop: {runs}"
    );
    assert_eq!(status_of("b"), "Failed", "{runs}");
    let locks = env.json(&["locks"]);
    assert_eq!(
        locks.as_array().unwrap().len(),
        0,
        "the lock was released: {locks}"
    );
    let v = env.run(&["verify", "--deep"]);
    assert_eq!(code(&v), 0, "{}", String::from_utf8_lossy(&v.stdout));
    let done = env.json(&["backup", &arg("a", &a), &arg("b", &b)]);
    assert_eq!(done["run"]["status"], "Complete");

    // A second signal ends it at once; crash safety keeps the repository clean.
    let c = env.path("c");
    write_tree(&c, 100, 1_500_000, 40);
    let before = count_files(&env.repo().join("data"));
    let mut child = env
        .cmd(&["backup", "--quiet", "--read-threads", "1", &arg("c", &c)])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while count_files(&env.repo().join("data")) < before + 2
        && start.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    sigterm(&child);
    sigterm(&child);
    let status = child.wait().unwrap();
    assert!(!status.success());
    let v = env.run(&["verify", "--deep"]);
    assert_eq!(code(&v), 0, "{}", String::from_utf8_lossy(&v.stdout));
}

/// A backup pod's containers, as processes: `job tools` (the init container) makes the FIFOs,
/// `job pipe` (the command container) streams a command into one, `job run` backs it up.
#[test]
fn job_run_backs_up_command_streams_through_fifos_and_reports_a_failing_one() {
    let env = Env::new();
    let streams = env.path("streams");
    let tools = env.path("tools");
    let (ok_fifo, bad_fifo) = (streams.join("db"), streams.join("broken"));
    let out = env.run(&[
        "job",
        "tools",
        "--into",
        tools.to_str().unwrap(),
        "--fifo",
        ok_fifo.to_str().unwrap(),
        "--fifo",
        bad_fifo.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(tools.join("holdfast").exists());
    // The helper starts as a command container starts it: through the loader and the
    // libraries copied beside it, whatever the image's own libc.
    assert!(tools.join("ld.so").exists() && tools.join("lib").is_dir());
    let pipe = |fifo: &Path, cmd: &[&str]| {
        let mut c = Command::new(tools.join("ld.so"));
        c.arg("--library-path")
            .arg(tools.join("lib"))
            .arg(tools.join("holdfast"))
            .args(["job", "pipe", "--fifo", fifo.to_str().unwrap(), "--"])
            .args(cmd);
        c.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut good = pipe(&ok_fifo, &["sh", "-c", "seq 1 200000"]);
    let mut bad = pipe(
        &bad_fifo,
        &[
            "sh",
            "-c",
            "echo partial; echo 'connection refused' >&2; exit 3",
        ],
    );
    let plan = serde_json::json!({
        "version": 1,
        "repository": {"url": format!("file://{}", env.repo().display()), "owner": "shop/db", "create": false},
        "operation": {"type": "backup", "slotTime": "2026-12-01T01:00:00Z", "slotId": "db-backup-202612010100",
            "level": "full",
            "sources": [{"name": "db", "fifo": ok_fifo, "fileName": "dump.sql"},
                        {"name": "broken", "fifo": bad_fifo}]},
    });
    let summary = env.path("summary");
    let run = env
        .cmd(&["job", "run"])
        .env("HOLDFAST_JOB_PLAN", plan.to_string())
        .env("HOLDFAST_SUMMARY_FILE", &summary)
        .output()
        .unwrap();
    assert_eq!(code(&run), 0, "a partial run is a result: {}", stderr(&run));
    assert!(
        good.wait().unwrap().success() && bad.wait().unwrap().success(),
        "helpers exit 0"
    );
    let s: serde_json::Value = serde_json::from_slice(&fs::read(&summary).unwrap()).unwrap();
    assert_eq!(s["op"], "backup");
    assert_eq!(s["status"], "Partial");
    assert_eq!(
        s["label"], "full-20261201.010000",
        "labelled by its slot: {s}"
    );
    let broken = s["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "broken")
        .unwrap();
    let why = broken["error"].as_str().unwrap();
    assert!(
        why.contains("exited with status 3") && why.contains("connection refused"),
        "{why}"
    );

    // The dump restores byte-identical under its file name.
    let target = env.path("restored");
    let r = env.json(&[
        "restore",
        "--source",
        "db",
        "--partial",
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_eq!(r["status"], "Complete", "{r}");
    let expected: String = (1..=200000).map(|i| format!("{i}\n")).collect();
    assert_eq!(
        fs::read_to_string(target.join("dump.sql")).unwrap(),
        expected
    );

    // A retried pod finds the run its slot already recorded: no second run.
    let mut again_good = pipe(&ok_fifo, &["sh", "-c", "seq 1 200000"]);
    let again = env
        .cmd(&["job", "run"])
        .env("HOLDFAST_JOB_PLAN", plan.to_string())
        .env("HOLDFAST_SUMMARY_FILE", &summary)
        .output()
        .unwrap();
    let _ = again_good.kill();
    let _ = again_good.wait();
    let s: serde_json::Value = serde_json::from_slice(&fs::read(&summary).unwrap()).unwrap();
    assert_eq!(s["reused"], true, "{s}: {}", stderr(&again));
    assert_eq!(env.json(&["runs"]).as_array().unwrap().len(), 1);

    // A failure before any result is a typed failure summary.
    let wrong = env
        .cmd(&["job", "run"])
        .env("HOLDFAST_JOB_PLAN", plan.to_string())
        .env("HOLDFAST_SUMMARY_FILE", &summary)
        .env("HOLDFAST_PASSPHRASE", "wrong")
        .output()
        .unwrap();
    assert_eq!(code(&wrong), 10);
    let s: serde_json::Value = serde_json::from_slice(&fs::read(&summary).unwrap()).unwrap();
    assert_eq!(
        (s["op"].as_str(), s["category"].as_str()),
        (Some("failed"), Some("WrongKey")),
        "{s}"
    );
    assert_eq!(s["operation"], "backup");
}

#[test]
fn controller_builds_its_client_and_reports_an_unreachable_api_server_without_panicking() {
    // rustls panics when building a client if two crypto providers are linked and none was
    // chosen; kube is built with aws-lc-rs like the AWS SDK and `main` installs it anyway,
    // so a dependency that turns ring's provider on cannot bring the panic back. The API
    // server here refuses connections: the error must say so, plainly.
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}\nusers:\n- name: u\n  user: {token: abc}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["controller", "--kubeconfig"])
        .arg(&kubeconfig)
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_ne!(code(&out), 0);
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("CryptoProvider"), "{err}");
    assert!(err.contains("cannot reach the Kubernetes API"), "{err}");
    assert!(!err.contains("abc"), "the token is never printed: {err}");
}

#[test]
fn controller_refuses_job_pod_defaults_that_are_not_a_job_template_before_it_starts() {
    // The chart passes its `jobs` values as JSON; a field the template does not have (an
    // image, a security context) is refused by name, not dropped.
    for (json, named) in [
        (
            r#"{"podLabels": {"a": "b"}, "securityContext": {"privileged": true}}"#,
            "securityContext",
        ),
        (r#"{"image": "evil"}"#, "image"),
        ("{not json", "--job-pod-defaults"),
    ] {
        let out = Command::new(BIN)
            .args([
                "controller",
                "--listen",
                "127.0.0.1:0",
                "--job-pod-defaults",
                json,
            ])
            .env("KUBECONFIG", "/nonexistent")
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(code(&out), 2, "{json}: {err}");
        assert!(err.contains(named), "{json}: {err}");
        assert!(
            !err.contains("Kubernetes API"),
            "refused before connecting: {err}"
        );
    }
}

/// A pod being deleted (a drain, an abort) sends its containers SIGTERM: `job pipe`, its
/// container's pid 1, stops the dump and exits, recording the signal, instead of holding
/// the pod for its whole grace period.
#[test]
fn job_pipe_stops_its_command_and_exits_on_sigterm() {
    let env = Env::new();
    let fifo = env.path("streams").join("db");
    job_tools(&env, &fifo);
    // A shell whose own child (as `pg_dump | gzip` has) holds stderr open.
    let mut helper = spawn_pipe(&env, &fifo, &["sh", "-c", "sleep 600 & wait"]);
    wait_for_path(
        &env.path("streams").join("db.started"),
        "the helper never started",
    );
    // The handler is installed just after the marker: give it a moment.
    std::thread::sleep(Duration::from_millis(500));
    let status = terminate_within(
        &mut helper,
        Duration::from_secs(15),
        "the helper outlived SIGTERM",
    );
    assert!(status.success(), "{status:?}");
    let recorded: serde_json::Value =
        serde_json::from_slice(&fs::read(env.path("streams").join("db.status")).unwrap()).unwrap();
    assert_eq!(recorded["signal"], 15, "{recorded}");
}

/// A dump that ends but leaves a background process behind (holding its stderr) must still
/// be recorded, and its helper exit once the backup is done reading.
#[test]
fn job_pipe_records_a_command_that_leaves_a_process_behind_and_exits() {
    let env = Env::new();
    let fifo = env.path("streams").join("db");
    job_tools(&env, &fifo);
    let mut helper = spawn_pipe(
        &env,
        &fifo,
        &["sh", "-c", "sleep 600 & echo dump; echo done >&2"],
    );
    let status_file = env.path("streams").join("db.status");
    wait_for_path(&status_file, "the command's end was never recorded");
    let recorded: serde_json::Value =
        serde_json::from_slice(&fs::read(&status_file).unwrap()).unwrap();
    assert_eq!(recorded["exitCode"], 0, "{recorded}");
    // The backup is done reading: the helper goes.
    fs::write(env.path("streams").join(".done"), b"").unwrap();
    let t = Instant::now();
    while helper.try_wait().unwrap().is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the helper outlived the backup"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A dump that writes nothing (a database waiting on a lock) must not hold a stopping
/// backup: on SIGTERM `job run` gives up the blocked read of its FIFO and records an
/// Aborted run at once, instead of waiting for the dump (a deleted or drained pod would
/// otherwise wait out its grace period).
#[test]
fn job_run_stops_on_sigterm_while_a_dump_writes_nothing_and_the_retry_runs_again() {
    let env = Env::new();
    let fifo = env.path("streams").join("db");
    job_tools(&env, &fifo);
    let mut helper = spawn_pipe(&env, &fifo, &["sh", "-c", "echo dump; sleep 600"]);
    let plan = serde_json::json!({
        "version": 1,
        "repository": {"url": format!("file://{}", env.repo().display()), "owner": "shop/db", "create": false},
        "operation": {"type": "backup", "slotTime": "2026-12-01T01:00:00Z", "slotId": "db-backup-1",
            "level": "full", "sources": [{"name": "db", "fifo": fifo}]},
    });
    let mut run = env
        .cmd(&["job", "run"])
        .env("HOLDFAST_JOB_PLAN", plan.to_string())
        .env("HOLDFAST_SUMMARY_FILE", env.path("summary"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_path(
        &env.path("streams").join("db.reading"),
        "the backup never read the FIFO",
    );
    std::thread::sleep(Duration::from_millis(500));
    let status = terminate_within(
        &mut run,
        Duration::from_secs(10),
        "job run outlived SIGTERM while the dump was silent",
    );
    assert_eq!(status.code(), Some(5), "aborted: {status:?}");
    let _ = helper.kill();
    let _ = helper.wait();

    // The Job retries the evicted pod (fresh volumes, same slot): the stopped attempt is no
    // result, so the retry runs the backup again instead of reporting the aborted run.
    let fifo = env.path("retry-streams").join("db");
    job_tools(&env, &fifo);
    let mut helper = spawn_pipe(&env, &fifo, &["sh", "-c", "echo dump"]);
    let mut plan = plan;
    plan["operation"]["sources"][0]["fifo"] = serde_json::json!(fifo);
    let summary = env.path("retry-summary");
    let retry = env
        .cmd(&["job", "run"])
        .env("HOLDFAST_JOB_PLAN", plan.to_string())
        .env("HOLDFAST_SUMMARY_FILE", &summary)
        .output()
        .unwrap();
    assert_eq!(code(&retry), 0, "{}", stderr(&retry));
    let _ = helper.wait();
    let s: serde_json::Value = serde_json::from_slice(&fs::read(&summary).unwrap()).unwrap();
    assert_eq!(
        (s["status"].as_str(), s["reused"].as_bool()),
        (Some("Complete"), Some(false)),
        "{s}"
    );
    let statuses: Vec<String> = env
        .json(&["runs"])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(statuses, ["Aborted", "Complete"]);
}
