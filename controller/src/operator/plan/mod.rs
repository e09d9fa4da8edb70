//! The controller's decisions as pure functions of their inputs and `now`, with no client:
//! when operations are due ([`schedule`], [`set`]), each source's level in Auto mode
//! ([`auto`]), when a set's copies follow its runs ([`copies`]), when a burst of deletions
//! waits ([`deletions`]), and the order operations of one repository run in ([`queue`]).

pub mod auto;
pub mod copies;
pub mod deletions;
pub mod queue;
pub mod schedule;
pub mod set;
