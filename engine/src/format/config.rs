//! The plaintext `config` object: format version, feature flags, identity.

use serde::{Deserialize, Serialize};

use crate::chunker::ChunkerParams;

/// The newest format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// Feature flags this build understands, per operation. A repository may require features
/// for an operation; a build that does not know one of them refuses that operation only.
pub const KNOWN_FEATURES: &[&str] = &[];

/// Default target size of a volume.
pub const DEFAULT_PACK_SIZE: u32 = 16 * 1024 * 1024;

/// What a command is about to do with the repository, for feature checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Read,
    Write,
    Check,
    Delete,
}

impl Operation {
    pub fn name(self) -> &'static str {
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
    pub read: Vec<String>,
    #[serde(default)]
    pub write: Vec<String>,
    #[serde(default)]
    pub check: Vec<String>,
    #[serde(default)]
    pub delete: Vec<String>,
}

impl Features {
    /// The features `op` needs that this build does not know.
    pub fn unknown_for(&self, op: Operation) -> Vec<String> {
        let list = match op {
            Operation::Read => &self.read,
            Operation::Write => &self.write,
            Operation::Check => &self.check,
            Operation::Delete => &self.delete,
        };
        list.iter()
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
    pub version: u32,
    /// Random repository identifier, 32 hex digits.
    pub id: String,
    pub features: Features,
    pub chunker: ChunkerParams,
    /// Target volume size in bytes.
    pub pack_size: u32,
    pub created: String,
}

pub const CONFIG_KIND: &str = "holdfast-repository";
