//! What a repository holds, in the few figures a status or summary reports.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Indexed, Repository};
use crate::Result;
use crate::format::run::RunManifest;

/// Size of a repository.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryTotals {
    /// Volumes stored.
    pub volumes: u64,
    /// Their size.
    pub bytes: u64,
    /// Bytes retained runs need (known after a purge or verify walked the runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_bytes: Option<u64>,
    /// Bytes a purge could reclaim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reclaimable_bytes: Option<u64>,
    /// Restore points: (count, oldest start, newest start) over every source.
    #[serde(default)]
    pub runs: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// When the oldest restore point started.
    pub oldest_run: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// When the newest restore point started.
    pub newest_run: Option<DateTime<Utc>>,
}

impl Repository<Indexed> {
    /// Volumes and bytes in the repository, and its restore points.
    pub fn totals(&self) -> Result<RepositoryTotals> {
        let volumes = self.list_volumes()?;
        let runs = self.runs()?;
        let restorable: Vec<&RunManifest> = runs
            .iter()
            .filter(|r| r.sources.iter().any(crate::catalog::source_restorable))
            .collect();
        Ok(RepositoryTotals {
            volumes: volumes.len() as u64,
            bytes: volumes.iter().map(|(_, s)| s).sum(),
            live_bytes: None,
            reclaimable_bytes: None,
            runs: restorable.len() as u64,
            oldest_run: restorable.first().map(|r| r.started),
            newest_run: restorable.last().map(|r| r.started),
        })
    }
}
