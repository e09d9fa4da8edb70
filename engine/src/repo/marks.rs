//! Volumes marked for deletion (phase one of a purge) and archived runs.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::format::aad;
use crate::id::Id;
use crate::{Error, Result};

use super::Repository;

const MARKS: &str = "marks/";
const ARCHIVED: &str = "archived/";

/// One `marks/<id>` object: volumes a purge found dead at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MarkRecord {
    /// When the volumes were marked.
    pub marked_at: DateTime<Utc>,
    /// The volumes marked.
    pub volumes: Vec<Id>,
}

/// One `archived/<label>` object.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchiveRecord {
    label: String,
    archived_at: DateTime<Utc>,
}

impl<S> Repository<S> {
    /// Every mark object, with its key.
    pub fn marks(&self) -> Result<Vec<(String, MarkRecord)>> {
        let names: Vec<String> = self
            .store()
            .list(MARKS)?
            .into_iter()
            .map(|o| o.key)
            .collect();
        let bodies = self.store().get_many(&names, 16);
        names
            .into_iter()
            .zip(bodies)
            .map(|(name, body)| {
                let json = self
                    .key()
                    .open(aad::MARKS, &body?)
                    .map_err(|_| Error::corrupt(format!("{name} failed authentication")))?;
                let rec: MarkRecord = serde_json::from_slice(&json)
                    .map_err(|e| Error::corrupt(format!("{name}: {e}")))?;
                Ok((name, rec))
            })
            .collect()
    }

    /// Volumes marked for deletion by any purge.
    pub(crate) fn marked_volumes(&self) -> Result<HashSet<Id>> {
        Ok(self
            .marks()?
            .into_iter()
            .flat_map(|(_, r)| r.volumes)
            .collect())
    }

    pub(crate) fn write_marks(&self, record: &MarkRecord) -> Result<String> {
        let json = serde_json::to_vec(record).map_err(Error::internal)?;
        let name = format!(
            "{MARKS}{}",
            hex::encode(crate::crypto::random_bytes::<16>()?)
        );
        self.store()
            .put(&name, self.key().seal(aad::MARKS, &json)?)?;
        Ok(name)
    }

    /// Labels of archived runs.
    pub fn archived_labels(&self) -> Result<HashSet<String>> {
        Ok(self
            .store()
            .list(ARCHIVED)?
            .into_iter()
            .filter_map(|o| o.key.strip_prefix(ARCHIVED).map(str::to_owned))
            .collect())
    }

    /// Archive a run: retention never expires it.
    pub fn archive(&self, label: &str) -> Result<()> {
        self.load_run(label)?;
        let rec = ArchiveRecord {
            label: label.to_owned(),
            archived_at: Utc::now(),
        };
        let json = serde_json::to_vec(&rec).map_err(Error::internal)?;
        self.store().put(
            &format!("{ARCHIVED}{label}"),
            self.key().seal(aad::ARCHIVE, &json)?,
        )?;
        Ok(())
    }

    /// Return an archived run to normal retention.
    pub fn unarchive(&self, label: &str) -> Result<()> {
        if !self.archived_labels()?.contains(label) {
            self.load_run(label)?;
            return Err(Error::InvalidArgument(format!(
                "run {label} is not archived"
            )));
        }
        self.store().delete(&format!("{ARCHIVED}{label}"))?;
        Ok(())
    }
}
