//! A copy's ledger: which of its source's runs were copied into it (`copied/<label>`).
//!
//! The ledger outlives the runs: once a copy's own retention expires a run, the next copy
//! must not bring it back, so the record stays until the source has expired the run too.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use crate::format::aad;
use crate::{Error, Result};

use super::Repository;

const COPIED: &str = "copied/";

/// What the ledger says of one run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct CopiedRecord {
    label: String,
    copied_at: DateTime<Utc>,
    /// The id of the repository it was copied from.
    from: String,
}

impl<S> Repository<S> {
    /// Labels of the runs the ledger says were copied here (whether or not they are still
    /// here).
    pub fn copied_labels(&self) -> Result<HashSet<String>> {
        Ok(self
            .store()
            .list(COPIED)?
            .into_iter()
            .filter_map(|o| o.key.strip_prefix(COPIED).map(str::to_owned))
            .collect())
    }

    /// Record that run `label` was copied here from the repository with id `from`.
    pub(crate) fn record_copied(&self, label: &str, from: &str) -> Result<()> {
        let rec = CopiedRecord {
            label: label.to_owned(),
            copied_at: Utc::now(),
            from: from.to_owned(),
        };
        let json = serde_json::to_vec(&rec).map_err(Error::internal)?;
        self.store().put(
            &format!("{COPIED}{label}"),
            self.key().seal(aad::COPIED, &json)?,
        )?;
        Ok(())
    }

    /// Drop the record of `label` (the source no longer has the run).
    pub(crate) fn forget_copied(&self, label: &str) -> Result<()> {
        Ok(self.store().delete(&format!("{COPIED}{label}"))?)
    }
}
