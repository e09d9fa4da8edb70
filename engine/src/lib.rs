//! Holdfast's dump/restore engine: an encrypted, deduplicating, versioned backup repository.
//!
//! This crate knows nothing of Kubernetes; the controller's job pods and people at a shell
//! both drive it through the `holdfast` CLI. See `engine/FORMAT.md` for the bytes on disk.

pub mod backup;
pub mod catalog;
mod chunker;
pub mod compress;
pub mod crypto;
mod error;
mod error_category;
mod faults;
pub mod format;
mod fsmeta;
mod id;
pub mod inventory;
mod pattern;
pub mod progress;
pub mod purge;
pub mod repo;
pub mod restore;
pub mod retention;
mod sink;
pub mod storage;
pub mod verify;

pub use error::{Error, Result};
pub use error_category::{ErrorCategory, error_chain};
pub use id::Id;
