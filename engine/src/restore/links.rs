//! Later members of hard-link groups: linked to the group's first restored member, or
//! written in full when that one was not restored.

use super::file::with_replacement;
use super::report::ItemOutcome;
use super::{Ctx, FileJob};

/// A later member of a hard-link group: link to the first restored member, or, when that
/// one was not restored, write the content and become the group's first. Records the
/// outcome.
pub(super) fn restore_link_or_copy(ctx: &Ctx<'_>, job: FileJob) {
    let first = job.node.link_group.and_then(|g| {
        ctx.link_firsts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&g)
            .cloned()
    });
    match first.filter(|p| !p.as_os_str().is_empty()) {
        Some(first) => {
            let r = with_replacement(&job.path, job.replace, |tmp| {
                std::fs::hard_link(&first, tmp)
            });
            ctx.progress.add_done(1, 0);
            let outcome = match r {
                Ok(()) => ItemOutcome::Restored { bytes: 0 },
                Err(e) => ItemOutcome::Unrestored(format!(
                    "hard link to {} not created: {e}",
                    first.display()
                )),
            };
            ctx.record(&job.rel, outcome);
        }
        None => super::volumes::restore_files(ctx, vec![job]),
    }
}
