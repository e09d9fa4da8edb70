//! Visiting every entry of a run's source, depth first, in name order.

use crate::format::run::SourceManifest;
use crate::format::tree::{Node, NodeKind};
use crate::id::Id;
use crate::{Error, Result};

use super::{Indexed, Repository};

impl Repository<Indexed> {
    /// Call `visit` with each entry's path (`/` for the source root, then `/a`, `/a/b` …)
    /// and node. Returning `false` from `visit` for a directory skips its contents.
    pub fn walk_source(
        &self,
        source: &SourceManifest,
        mut visit: impl FnMut(&[u8], &Node) -> bool,
    ) -> Result<()> {
        let Some(root) = source.tree else {
            return Ok(());
        };
        let tree = self.load_tree(&root)?;
        let node = tree
            .nodes
            .first()
            .ok_or_else(|| Error::corrupt(format!("source {} has an empty root", source.name)))?;
        if visit(b"/", node)
            && node.kind == NodeKind::Dir
            && let Some(sub) = node.subtree
        {
            self.walk_tree(sub, &mut Vec::new(), &mut visit)?;
        }
        Ok(())
    }

    fn walk_tree(
        &self,
        id: Id,
        path: &mut Vec<u8>,
        visit: &mut impl FnMut(&[u8], &Node) -> bool,
    ) -> Result<()> {
        let tree = self.load_tree(&id)?;
        for node in &tree.nodes {
            let len = path.len();
            path.push(b'/');
            path.extend_from_slice(&node.name);
            if visit(path, node)
                && node.kind == NodeKind::Dir
                && let Some(sub) = node.subtree
            {
                self.walk_tree(sub, path, visit)?;
            }
            path.truncate(len);
        }
        Ok(())
    }
}
