//! Test data on volumes, and exact comparison of two trees: kinds, contents, modes,
//! owners, modification times, extended attributes, symlink targets and hard links.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use holdfast_testkit::pseudo_random;

/// What a restore must reproduce of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Files: their bytes; symlinks: their target.
    pub content: Vec<u8>,
    /// Whole seconds and nanoseconds; directories' times are left out (a restore into an
    /// existing directory may touch them).
    pub mtime: Option<(i64, i64)>,
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// The first path (in order) of the entry's hard-link group, when it has more than one.
    pub link_group: Option<String>,
}

/// Every entry under `root`, by path relative to it (`/` for the root itself is left out).
pub fn snapshot(root: &Path) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), String> = BTreeMap::new();
    walk(root, root, &mut out, &mut inodes);
    out
}

fn walk(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<String, Entry>,
    inodes: &mut BTreeMap<(u64, u64), String>,
) {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            e.unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .path()
        })
        .collect();
    names.sort();
    for path in names {
        let rel = format!(
            "/{}",
            path.strip_prefix(root).unwrap_or(&path).to_string_lossy()
        );
        if rel == "/lost+found" {
            continue;
        }
        let md = std::fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_file() {
            "file"
        } else {
            "other"
        };
        let content = match kind {
            "file" => std::fs::read(&path).unwrap_or_else(|e| panic!("{rel}: {e}")),
            "symlink" => std::fs::read_link(&path)
                .unwrap_or_else(|e| panic!("{rel}: {e}"))
                .into_os_string()
                .into_encoded_bytes(),
            _ => Vec::new(),
        };
        let mut xattrs = BTreeMap::new();
        if kind != "symlink"
            && let Ok(names) = xattr::list(&path)
        {
            for n in names {
                let n = n.to_string_lossy().into_owned();
                if !n.starts_with("user.") {
                    continue;
                }
                if let Ok(Some(v)) = xattr::get(&path, &n) {
                    xattrs.insert(n, v);
                }
            }
        }
        let link_group = (kind == "file" && md.nlink() > 1).then(|| {
            inodes
                .entry((md.dev(), md.ino()))
                .or_insert_with(|| rel.clone())
                .clone()
        });
        out.insert(
            rel.clone(),
            Entry {
                kind,
                mode: md.permissions().mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                content,
                mtime: (kind != "dir").then(|| (md.mtime(), md.mtime_nsec())),
                xattrs,
                link_group,
            },
        );
        if kind == "dir" {
            walk(root, &path, out, inodes);
        }
    }
}

/// Assert two snapshots are the same, naming the first differences.
pub fn assert_same(expected: &BTreeMap<String, Entry>, got: &BTreeMap<String, Entry>) {
    let mut problems = Vec::new();
    for (path, e) in expected {
        match got.get(path) {
            None => problems.push(format!("{path}: missing")),
            Some(g) if g != e => {
                let mut what = Vec::new();
                if g.kind != e.kind {
                    what.push(format!("kind {} ≠ {}", g.kind, e.kind));
                }
                if g.content != e.content {
                    what.push("content".into());
                }
                if g.mode != e.mode {
                    what.push(format!("mode {:o} ≠ {:o}", g.mode, e.mode));
                }
                if (g.uid, g.gid) != (e.uid, e.gid) {
                    what.push(format!("owner {}:{} ≠ {}:{}", g.uid, g.gid, e.uid, e.gid));
                }
                if g.mtime != e.mtime {
                    what.push(format!("mtime {:?} ≠ {:?}", g.mtime, e.mtime));
                }
                if g.xattrs != e.xattrs {
                    what.push(format!("xattrs {:?} ≠ {:?}", g.xattrs, e.xattrs));
                }
                if g.link_group != e.link_group {
                    what.push(format!("hard link {:?} ≠ {:?}", g.link_group, e.link_group));
                }
                problems.push(format!("{path}: {}", what.join(", ")));
            }
            Some(_) => {}
        }
    }
    for path in got.keys() {
        if !expected.contains_key(path) {
            problems.push(format!("{path}: not expected"));
        }
    }
    assert!(
        problems.is_empty(),
        "the trees differ ({} problems):\n{}",
        problems.len(),
        problems
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn set_times(path: &Path, secs: i64, nanos: i64) {
    use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, utimensat};
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: nanos,
    };
    utimensat(
        CWD,
        path,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// A tree worth backing up: nested directories with their own modes, empty, small, large
/// random and compressible files, an executable, a setgid directory, relative and dangling
/// symlinks, a hard-link pair, extended attributes, several owners and fixed times.
pub fn fill(root: &Path, seed: u64) {
    let d = |p: &str, mode: u32| {
        let path = root.join(p);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("{p}: {e}"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("{p}: {e}"));
    };
    let f = |p: &str, data: &[u8], mode: u32| {
        let path = root.join(p);
        std::fs::write(&path, data).unwrap_or_else(|e| panic!("{p}: {e}"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("{p}: {e}"));
    };
    d("docs", 0o755);
    d("docs/2026/11", 0o750);
    d("shared", 0o2775);
    d("empty-dir", 0o700);
    f("docs/empty.txt", b"", 0o644);
    f(
        "docs/readme.md",
        b"# Shop uploads\n\nKept by Holdfast.\n",
        0o644,
    );
    f(
        "docs/2026/11/invoice.pdf",
        &pseudo_random(1_500_000, seed),
        0o640,
    );
    f(
        "docs/2026/11/report.csv",
        "date,amount\n2026-11-01,12.50\n".repeat(40_000).as_bytes(),
        0o600,
    );
    f("tool.sh", b"#!/bin/sh\necho hello\n", 0o755);
    f("shared/a.bin", &pseudo_random(70_000, seed + 1), 0o664);
    std::fs::hard_link(root.join("shared/a.bin"), root.join("shared/a-link.bin"))
        .unwrap_or_else(|e| panic!("hard link: {e}"));
    std::os::unix::fs::symlink("../docs/readme.md", root.join("shared/readme"))
        .unwrap_or_else(|e| panic!("symlink: {e}"));
    std::os::unix::fs::symlink("/nowhere/at/all", root.join("dangling"))
        .unwrap_or_else(|e| panic!("symlink: {e}"));
    xattr::set(
        root.join("docs/readme.md"),
        "user.origin",
        b"upload-service",
    )
    .unwrap_or_else(|e| panic!("xattr: {e}"));
    xattr::set(root.join("docs/2026"), "user.retention", b"7y")
        .unwrap_or_else(|e| panic!("xattr: {e}"));
    for (p, uid, gid) in [
        ("docs/2026/11/invoice.pdf", 1001, 1001),
        ("shared", 1002, 2000),
        ("shared/a.bin", 1002, 2000),
        ("dangling", 1003, 1003),
    ] {
        rustix::fs::chownat(
            rustix::fs::CWD,
            root.join(p),
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap_or_else(|e| panic!("chown {p}: {e}"));
    }
    // chown clears setgid on directories for non-root; put it back.
    std::fs::set_permissions(root.join("shared"), std::fs::Permissions::from_mode(0o2775))
        .unwrap_or_else(|e| panic!("chmod: {e}"));
    for (i, p) in [
        "docs/empty.txt",
        "docs/readme.md",
        "docs/2026/11/invoice.pdf",
        "docs/2026/11/report.csv",
        "tool.sh",
        "shared/a.bin",
        "shared/readme",
        "dangling",
    ]
    .iter()
    .enumerate()
    {
        set_times(
            &root.join(p),
            1_700_000_000 + i as i64 * 86_400,
            123_456_789,
        );
    }
}
