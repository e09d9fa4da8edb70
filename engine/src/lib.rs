//! Holdfast's dump/restore engine: an encrypted, deduplicating, versioned backup repository.
//!
//! This crate knows nothing of Kubernetes; the controller's job pods and people at a shell
//! both drive it through the `holdfast` CLI. See `engine/FORMAT.md` for the bytes on disk.
//!
//! A repository lives in a [`storage::Store`] (a directory or an S3 bucket). Open or create
//! it with [`repo::Repository`], load its index, then [`backup::backup`] sources into it,
//! [`restore::restore`] a run, [`verify::verify`] it, or [`purge::purge`] what a
//! [`retention::RetentionPolicy`] no longer keeps. Every failure is an [`Error`] whose
//! [`ErrorCategory`] says what kind it is.
//!
//! ```
//! use std::sync::Arc;
//!
//! use holdfast_engine::backup::{BackupOptions, SourceSpec, backup};
//! use holdfast_engine::progress::Progress;
//! use holdfast_engine::repo::{InitOptions, Repository};
//! use holdfast_engine::restore::{RestoreOptions, RestoreStatus, RestoreTarget, restore};
//! use holdfast_engine::storage::{LocalStorage, Store};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let scratch = tempfile::tempdir()?;
//! let (data, repository, target) = (
//!     scratch.path().join("data"),
//!     scratch.path().join("repository"),
//!     scratch.path().join("restored"),
//! );
//! std::fs::create_dir(&data)?;
//! std::fs::write(data.join("hello.txt"), "hello, holdfast")?;
//!
//! // A new repository in a local directory, sealed with a passphrase.
//! let store = Store::new(Arc::new(LocalStorage::new(&repository)))?;
//! let passphrase = b"correct horse battery staple";
//! let mut repo = Repository::init(store, passphrase, &InitOptions::default())?.load_index()?;
//!
//! // A full backup of the directory: one run, labelled by its level and UTC start time.
//! let report = backup(
//!     &mut repo,
//!     &[SourceSpec::path("data", &data)],
//!     &BackupOptions::default(),
//!     &Progress::default(),
//! )?;
//! assert!(report.run.label.starts_with("full-"));
//!
//! // Restore the newest run into another directory.
//! let restored = restore(
//!     &repo,
//!     &RestoreOptions {
//!         target: RestoreTarget::Directory(target.clone()),
//!         ..RestoreOptions::default()
//!     },
//!     &Progress::default(),
//! )?;
//! assert_eq!(restored.status, RestoreStatus::Complete);
//! assert_eq!(std::fs::read_to_string(target.join("hello.txt"))?, "hello, holdfast");
//! # Ok(())
//! # }
//! ```

// Every public item is documented: this crate's surface is its API.
#![warn(missing_docs)]

pub mod backup;
pub mod catalog;
mod chunker;
pub mod compress;
pub mod copy;
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
pub use id::{Id, ParseIdError};
