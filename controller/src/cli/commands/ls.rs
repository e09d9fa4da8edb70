//! `holdfast ls`

use holdfast_engine::format::tree::{Node, NodeKind};
use holdfast_engine::repo::{RunSelector, select_run};
use serde::Serialize;

use crate::cli::{CliError, Ctx, exit, human};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run label (default: the newest run).
    label: Option<String>,

    /// Only this source.
    #[arg(long, short = 's')]
    source: Option<String>,

    /// Only entries at or below this path (e.g. /images).
    #[arg(long, short = 'p', default_value = "/")]
    path: String,

    /// Show mode, owner, size and modification time.
    #[arg(long, short = 'l')]
    long: bool,
}

#[derive(Serialize)]
struct Entry {
    source: String,
    path: String,
    kind: &'static str,
    size: u64,
    mode: String,
    uid: u32,
    gid: u32,
    mtime: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
}

fn mode_string(node: &Node) -> String {
    let t = match node.kind {
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::Fifo => 'p',
        NodeKind::CharDevice => 'c',
        NodeKind::BlockDevice => 'b',
        NodeKind::Socket => 's',
        NodeKind::File => '-',
    };
    let m = node.mode;
    let bit = |mask: u32, c: char| if m & mask != 0 { c } else { '-' };
    let special = |x: bool, s: bool, lower: char, upper: char| match (x, s) {
        (true, true) => lower,
        (false, true) => upper,
        (true, false) => 'x',
        (false, false) => '-',
    };
    format!(
        "{t}{}{}{}{}{}{}{}{}{}",
        bit(0o400, 'r'),
        bit(0o200, 'w'),
        special(m & 0o100 != 0, m & 0o4000 != 0, 's', 'S'),
        bit(0o040, 'r'),
        bit(0o020, 'w'),
        special(m & 0o010 != 0, m & 0o2000 != 0, 's', 'S'),
        bit(0o004, 'r'),
        bit(0o002, 'w'),
        special(m & 0o001 != 0, m & 0o1000 != 0, 't', 'T'),
    )
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8, CliError> {
    let repo = ctx.open()?.load_index()?;
    let runs = repo.runs()?;
    let selector = args
        .label
        .map(RunSelector::Label)
        .unwrap_or(RunSelector::Newest);
    let run = select_run(&runs, &selector, true)?;
    let prefix = args.path.trim_end_matches('/').as_bytes().to_vec();
    let mut entries = Vec::new();
    for source in &run.sources {
        if args.source.as_ref().is_some_and(|s| s != &source.name) {
            continue;
        }
        repo.walk_source(source, |path, node| {
            let within = prefix.is_empty()
                || path == prefix.as_slice()
                || (path.starts_with(&prefix) && path.get(prefix.len()) == Some(&b'/'));
            let leads_there = prefix.starts_with(path);
            if within {
                entries.push(Entry {
                    source: source.name.clone(),
                    path: String::from_utf8_lossy(path).into_owned(),
                    kind: node.kind.name(),
                    size: node.size,
                    mode: mode_string(node),
                    uid: node.uid,
                    gid: node.gid,
                    mtime: chrono::DateTime::from_timestamp(node.mtime.sec, node.mtime.nsec)
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_default(),
                    target: (node.kind == NodeKind::Symlink)
                        .then(|| String::from_utf8_lossy(&node.target).into_owned()),
                });
            }
            within || leads_there
        })?;
    }
    ctx.emit(&entries, || {
        let mut out = String::new();
        for e in &entries {
            let link = e
                .target
                .as_ref()
                .map(|t| format!(" -> {t}"))
                .unwrap_or_default();
            if args.long {
                out.push_str(&format!(
                    "{} {:>5} {:>5} {:>10} {} {}:{}{}\n",
                    e.mode,
                    e.uid,
                    e.gid,
                    human::bytes(e.size),
                    e.mtime.get(..19).unwrap_or(&e.mtime).replace('T', " "),
                    e.source,
                    e.path,
                    link
                ));
            } else {
                out.push_str(&format!("{}:{}{}\n", e.source, e.path, link));
            }
        }
        out
    })?;
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use holdfast_engine::format::tree::Timespec;

    #[test]
    fn mode_strings_show_special_bits() {
        let mut n = Node {
            name: vec![],
            kind: NodeKind::File,
            mode: 0o4755,
            uid: 0,
            gid: 0,
            mtime: Timespec::default(),
            ctime: Timespec::default(),
            inode: 0,
            device: 0,
            size: 0,
            xattrs: vec![],
            content: vec![],
            extents: None,
            subtree: None,
            target: vec![],
            rdev: 0,
            link_group: None,
            flags: 0,
        };
        assert_eq!(mode_string(&n), "-rwsr-xr-x");
        n.kind = NodeKind::Dir;
        n.mode = 0o1777;
        assert_eq!(mode_string(&n), "drwxrwxrwt");
        n.mode = 0o2640;
        assert_eq!(mode_string(&n), "drw-r-S---");
    }
}
