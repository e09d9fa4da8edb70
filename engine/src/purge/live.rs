//! The set of blobs retained runs need.

use std::collections::HashSet;

use crate::format::run::RunManifest;
use crate::format::tree::NodeKind;
use crate::id::Id;
use crate::repo::{Indexed, Repository};
use crate::{Error, Result};

/// Every tree and data blob reachable from `runs`. Any listing that cannot be read stops the
/// purge: deleting data on the strength of a partial walk could destroy what a run needs.
pub(crate) fn live_blobs(repo: &Repository<Indexed>, runs: &[RunManifest]) -> Result<HashSet<Id>> {
    let mut live = HashSet::new();
    let mut stack: Vec<(Id, &str)> = Vec::new();
    for run in runs {
        for source in &run.sources {
            if let Some(t) = source.tree {
                stack.push((t, run.label.as_str()));
            }
        }
    }
    while let Some((id, label)) = stack.pop() {
        if !live.insert(id) {
            continue;
        }
        let tree = repo.load_tree(&id).map_err(|e| {
            Error::corrupt(format!(
                "run {label} has an unreadable listing ({e}); purge stopped so nothing it may need is deleted \
                 (run `holdfast verify --deep`)"
            ))
        })?;
        for node in tree.nodes {
            match node.kind {
                NodeKind::Dir => {
                    if let Some(sub) = node.subtree {
                        stack.push((sub, label));
                    }
                }
                NodeKind::File => live.extend(node.content),
                _ => {}
            }
        }
    }
    Ok(live)
}
