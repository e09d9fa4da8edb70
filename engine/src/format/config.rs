//! The plaintext `config` object: format version, feature flags, identity.

use serde::{Deserialize, Serialize};

use crate::chunker::ChunkerParams;

/// The newest format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// Run manifests record a level, parent and base full per source (manifest version 2).
/// Required to write (level planning) and delete (retention reads levels per source): a
/// binary that reads one level per run would misplan both, and its purge could expire a
/// source's only run.
pub const FEATURE_SOURCE_LEVELS: &str = "source-levels";

/// Blob identifiers are keyed BLAKE3 instead of HMAC-SHA256. Required for every
/// operation: each one computes or checks ids (a restore re-checks every blob's), and a
/// build that computed them the other way would see every blob as corrupt, or store
/// duplicates that never match.
pub const FEATURE_BLAKE3_IDS: &str = "blake3-ids";

/// Run manifests may have the status `Aborted` (a run stopped on request). Required for
/// every operation, since each one reads the catalog and a build that does not know the
/// status could not read the manifest at all.
pub const FEATURE_ABORTED_RUNS: &str = "aborted-runs";

/// Feature flags this build understands, per operation. A repository may require features
/// for an operation; a build that does not know one of them refuses that operation only.
pub const KNOWN_FEATURES: &[&str] = &[
    FEATURE_SOURCE_LEVELS,
    FEATURE_BLAKE3_IDS,
    FEATURE_ABORTED_RUNS,
];

/// The operations each feature this build writes is required for.
pub(crate) fn feature_operations(feature: &str) -> &'static [Operation] {
    match feature {
        FEATURE_SOURCE_LEVELS => &[Operation::Write, Operation::Delete],
        FEATURE_BLAKE3_IDS | FEATURE_ABORTED_RUNS => &[
            Operation::Read,
            Operation::Write,
            Operation::Check,
            Operation::Delete,
        ],
        _ => &[],
    }
}

/// Default target size of a volume.
pub const DEFAULT_PACK_SIZE: u32 = 16 * 1024 * 1024;

/// What a command is about to do with the repository, for feature checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Reading runs and data.
    Read,
    /// Writing new runs.
    Write,
    /// Verifying.
    Check,
    /// Purging and destroying.
    Delete,
}

impl Operation {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Write => "write",
            Operation::Check => "check",
            Operation::Delete => "delete",
        }
    }
}

/// Features required per operation.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Features {
    #[serde(default)]
    /// Features a reader must know to read.
    pub read: Vec<String>,
    #[serde(default)]
    /// Features a writer must know to write.
    pub write: Vec<String>,
    #[serde(default)]
    /// Features verify must know to check.
    pub check: Vec<String>,
    #[serde(default)]
    /// Features purge must know to delete.
    pub delete: Vec<String>,
}

impl Features {
    /// Whether `feature` is already required for every operation it concerns.
    pub fn requires(&self, feature: &str) -> bool {
        feature_operations(feature)
            .iter()
            .all(|op| self.list(*op).iter().any(|f| f == feature))
    }

    /// Require `feature` for the operations it concerns.
    pub(crate) fn add(&mut self, feature: &str) {
        for op in feature_operations(feature) {
            let list = self.list_mut(*op);
            if !list.iter().any(|f| f == feature) {
                list.push(feature.to_owned());
            }
        }
    }

    fn list(&self, op: Operation) -> &Vec<String> {
        match op {
            Operation::Read => &self.read,
            Operation::Write => &self.write,
            Operation::Check => &self.check,
            Operation::Delete => &self.delete,
        }
    }

    fn list_mut(&mut self, op: Operation) -> &mut Vec<String> {
        match op {
            Operation::Read => &mut self.read,
            Operation::Write => &mut self.write,
            Operation::Check => &mut self.check,
            Operation::Delete => &mut self.delete,
        }
    }

    /// The features `op` needs that this build does not know.
    pub(crate) fn unknown_for(&self, op: Operation) -> Vec<String> {
        self.list(op)
            .iter()
            .filter(|f| !KNOWN_FEATURES.contains(&f.as_str()))
            .cloned()
            .collect()
    }
}

/// The `config` object. Plaintext, so the version can be checked before any key is asked for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RepoConfig {
    /// Always `"holdfast-repository"`; tells a Holdfast repository from other data.
    pub kind: String,
    /// The format version (see [`FORMAT_VERSION`]).
    pub version: u32,
    /// Random repository identifier, 32 hex digits.
    pub id: String,
    /// Format features in use, by the operation that must know them.
    pub features: Features,
    /// How files are cut into chunks; fixed for the repository's life, since dedup depends on it.
    pub chunker: ChunkerParams,
    /// Target volume size in bytes.
    pub pack_size: u32,
    /// When the repository was created (RFC 3339).
    pub created: String,
}

/// The `kind` every repository `config` carries, so that another tool's file is not taken for one.
pub const CONFIG_KIND: &str = "holdfast-repository";
