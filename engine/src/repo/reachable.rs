//! The blobs runs need: every listing and data blob reachable from their root trees.

use std::collections::HashSet;

use crate::format::run::RunManifest;
use crate::format::tree::NodeKind;
use crate::id::Id;
use crate::{Error, Result};

use super::{Indexed, Repository};

impl Repository<Indexed> {
    /// Add to `seen` every tree and data blob reachable from `runs` that is not in it yet,
    /// calling `new` with each (a tree already in `seen` is not walked again, so a caller
    /// going run by run reads each shared listing once). A listing that cannot be read
    /// stops the walk with `unreadable(run label, error)`: a decision taken on a partial
    /// walk could delete or leave out what a run needs.
    pub(crate) fn reachable_blobs(
        &self,
        runs: &[RunManifest],
        seen: &mut HashSet<Id>,
        mut new: impl FnMut(Id),
        unreadable: impl Fn(&str, Error) -> Error,
    ) -> Result<()> {
        let mut stack: Vec<(Id, &str)> = Vec::new();
        for run in runs {
            for source in &run.sources {
                if let Some(t) = source.tree {
                    stack.push((t, run.label.as_str()));
                }
            }
        }
        while let Some((id, label)) = stack.pop() {
            if !seen.insert(id) {
                continue;
            }
            new(id);
            let tree = self.load_tree(&id).map_err(|e| unreadable(label, e))?;
            for node in tree.nodes {
                match node.kind {
                    NodeKind::Dir => {
                        if let Some(sub) = node.subtree {
                            stack.push((sub, label));
                        }
                    }
                    NodeKind::File => {
                        for c in node.content {
                            if seen.insert(c) {
                                new(c);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

/// Every tree and data blob reachable from `runs`. Any listing that cannot be read stops the
/// purge: deleting data on the strength of a partial walk could destroy what a run needs.
pub(crate) fn live_blobs(repo: &Repository<Indexed>, runs: &[RunManifest]) -> Result<HashSet<Id>> {
    let mut live = HashSet::new();
    repo.reachable_blobs(runs, &mut live, |_| {}, |label, e| {
        Error::corrupt(format!(
            "run {label} has an unreadable listing ({e}); purge stopped so nothing it may need is deleted \
             (run `holdfast verify --deep`)"
        ))
    })?;
    Ok(live)
}
