//! Run manifests (`runs/<label>`): what one backup run stored, written last.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::Id;

/// Manifest schema version within format version 1. Version 2 records each source's own
/// level, parent and base full (feature `source-levels`); version 1 manifests have one level
/// for the whole run, which readers apply to each source (see [`crate::catalog`]).
pub const MANIFEST_VERSION: u32 = 2;

/// Backup level, as in Amanda and Zimbra.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Level 0: read and hash every byte.
    Full,
    /// Level 1: changes since the last full run.
    Diff,
    /// Level 2+: changes since the previous run of any level.
    Incr,
}

impl Level {
    pub(crate) fn prefix(self) -> &'static str {
        match self {
            Level::Full => "full",
            Level::Diff => "diff",
            Level::Incr => "incr",
        }
    }

    // Only the unit tests below use it: the engine itself never needs it.
    #[cfg(test)]
    pub(crate) fn number(self) -> u8 {
        match self {
            Level::Full => 0,
            Level::Diff => 1,
            Level::Incr => 2,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.prefix())
    }
}

/// A level name that is not one of the accepted spellings.
#[derive(Debug, thiserror::Error)]
#[error("unknown level {0:?}: use full (0), diff (1) or incr (2)")]
pub struct ParseLevelError(String);

impl FromStr for Level {
    type Err = ParseLevelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "full" | "0" => Ok(Level::Full),
            "diff" | "differential" | "1" => Ok(Level::Diff),
            "incr" | "incremental" | "2" => Ok(Level::Incr),
            _ => Err(ParseLevelError(s.to_owned())),
        }
    }
}

/// Outcome of a run that produced a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunStatus {
    /// Every item was stored.
    Complete,
    /// Some items failed and are listed; everything else was stored.
    Partial,
    /// Stopped on request (a signal, an abort) before every source was read; what it stored
    /// is recorded, the sources it did not finish are listed as failed. Restorable and
    /// retained like a Partial run. Written with feature `aborted-runs`.
    Aborted,
}

impl RunStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RunStatus::Complete => "Complete",
            RunStatus::Partial => "Partial",
            RunStatus::Aborted => "Aborted",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name that is not one of the accepted spellings.
#[derive(Debug, thiserror::Error)]
#[error("unknown status {0:?}: use complete, partial or aborted")]
pub struct ParseRunStatusError(String);

impl FromStr for RunStatus {
    type Err = ParseRunStatusError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "complete" => Ok(RunStatus::Complete),
            "partial" => Ok(RunStatus::Partial),
            "aborted" => Ok(RunStatus::Aborted),
            _ => Err(ParseRunStatusError(s.to_owned())),
        }
    }
}

/// Label `<level>-YYYYMMDD.HHMMSS` in UTC.
pub(crate) fn label_for(level: Level, at: DateTime<Utc>) -> String {
    format!("{}-{}", level.prefix(), at.format("%Y%m%d.%H%M%S"))
}

/// Parse a label back into level and time.
pub(crate) fn parse_label(label: &str) -> Option<(Level, DateTime<Utc>)> {
    let (prefix, stamp) = label.split_once('-')?;
    let level = match prefix {
        "full" => Level::Full,
        "diff" => Level::Diff,
        "incr" => Level::Incr,
        _ => return None,
    };
    let naive = chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%d.%H%M%S").ok()?;
    Some((level, naive.and_utc()))
}

/// A path as raw bytes, shown as text when it is UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PathText {
    /// The path, when it is valid UTF-8.
    Utf8(String),
    /// The path's bytes in hex, when it is not.
    Bytes {
        /// The path's bytes in hex.
        hex: String,
    },
}

impl PathText {
    pub(crate) fn from_bytes(bytes: &[u8]) -> Self {
        match std::str::from_utf8(bytes) {
            Ok(s) => PathText::Utf8(s.to_owned()),
            Err(_) => PathText::Bytes {
                hex: hex::encode(bytes),
            },
        }
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        match self {
            PathText::Utf8(s) => s.as_bytes().to_vec(),
            PathText::Bytes { hex } => hex::decode(hex).unwrap_or_default(),
        }
    }

    /// Lossy text for display.
    pub fn display(&self) -> String {
        match self {
            PathText::Utf8(s) => s.clone(),
            PathText::Bytes { hex } => {
                String::from_utf8_lossy(&hex::decode(hex).unwrap_or_default()).into_owned()
            }
        }
    }
}

/// What kind of source produced a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A directory tree.
    Directory,
    /// A byte stream (stdin or a command's output) stored as one file.
    Stream,
}

/// Per-source state after a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceStatus {
    /// Every item was stored.
    Complete,
    /// Some items could not be read; the rest were stored.
    Partial,
    /// Nothing usable was stored.
    Failed,
}

/// An item that could not be stored, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemError {
    /// The item's path inside its source.
    pub path: String,
    /// Why it could not be stored.
    pub error: String,
}

/// Counters of one source or a whole run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunStats {
    /// Regular files stored.
    pub files: u64,
    /// Directories stored.
    pub dirs: u64,
    /// Other entries (symlinks, devices, FIFOs, sockets) stored.
    pub others: u64,
    /// Files whose metadata matched the parent run, reused without reading.
    pub files_unchanged: u64,
    /// Bytes of file content in the run (logical size).
    pub bytes_total: u64,
    /// Bytes read from the sources.
    pub bytes_read: u64,
    /// Raw bytes of blobs new to the repository.
    pub bytes_new: u64,
    /// Bytes those new blobs took after compression and encryption.
    pub bytes_stored: u64,
    /// Blobs new to the repository.
    pub blobs_new: u64,
    /// Items that could not be stored.
    pub errors: u64,
    /// Items stored with a problem worth knowing (say, changed while read).
    pub warnings: u64,
}

impl RunStats {
    pub(crate) fn add(&mut self, o: &RunStats) {
        self.files += o.files;
        self.dirs += o.dirs;
        self.others += o.others;
        self.files_unchanged += o.files_unchanged;
        self.bytes_total += o.bytes_total;
        self.bytes_read += o.bytes_read;
        self.bytes_new += o.bytes_new;
        self.bytes_stored += o.bytes_stored;
        self.blobs_new += o.blobs_new;
        self.errors += o.errors;
        self.warnings += o.warnings;
    }
}

/// One source in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceManifest {
    /// The source's name, unique in the run.
    pub name: String,
    /// Whether it is a tree or a stream.
    pub kind: SourceKind,
    /// Where the source was read from (absolute path, or the command line of a stream).
    pub origin: PathText,
    /// Root tree; a stream is a tree with one file.
    pub tree: Option<Id>,
    /// How completely it was stored.
    pub status: SourceStatus,
    /// Its counters.
    pub stats: RunStats,
    /// Items that could not be stored (the first few hundred).
    pub errors: Vec<ItemError>,
    /// Items stored with warnings (the first few hundred).
    pub warnings: Vec<ItemError>,
    /// This source's level in the run (manifest version 2; absent in version 1, where the
    /// run's level applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    /// The run whose listing of this source was compared to skip unchanged files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// The run holding this source's full that this entry depends on for retention; `None`
    /// for a full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_full: Option<String>,
    /// The instant its data was frozen at, when it was read from a snapshot (a CSI
    /// VolumeSnapshot's creation time); absent when it was read live during the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured: Option<DateTime<Utc>>,
}

impl SourceManifest {
    /// The instant this entry restores the source to, for point-in-time selection: its
    /// snapshot's, or else the run's start (a live read began then).
    pub fn restore_point_time(&self, run: &RunManifest) -> DateTime<Utc> {
        self.captured.unwrap_or(run.started)
    }
}

/// The manifest of one run. Sealed JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunManifest {
    /// The manifest's format version.
    pub version: u32,
    /// The run's label: its level and UTC start time, e.g. `full-20261203.040506`.
    pub label: String,
    /// The label's level: the most incremental level of any source in the run, so a run
    /// labelled `full-` is a full for every source it holds.
    pub level: Level,
    /// How completely the run was stored.
    pub status: RunStatus,
    /// When the run started.
    pub started: DateTime<Utc>,
    /// When the run was recorded.
    pub finished: DateTime<Utc>,
    /// The host that made it.
    pub host: String,
    /// The backup set the repository belongs to, when it has an owner.
    pub owner: Option<String>,
    /// The run whose metadata was compared to skip unchanged files, when every source had
    /// the same one (per source in `sources[].parent` from manifest version 2).
    pub parent: Option<String>,
    /// The full run this run depends on for retention, when every source had the same one
    /// (per source in `sources[].baseFull` from manifest version 2).
    pub base_full: Option<String>,
    /// One entry per source.
    pub sources: Vec<SourceManifest>,
    /// The sources' counters summed.
    pub stats: RunStats,
    /// Free-form tags given at backup time (and `job:<name>` for a controller's job).
    #[serde(default)]
    pub tags: Vec<String>,
    /// The run was stopped on request before every source was read. Its status is Aborted
    /// (feature `aborted-runs`); binaries before that feature wrote Partial with this flag,
    /// which readers take as Aborted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub aborted: bool,
}

impl RunManifest {
    /// Read a manifest the way this build writes it: a stopped run written before feature
    /// `aborted-runs` (status Partial, flag `aborted`) is an Aborted run.
    pub(crate) fn normalize(mut self) -> Self {
        if self.aborted && self.status == RunStatus::Partial {
            self.status = RunStatus::Aborted;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn labels_round_trip() {
        let t = Utc.with_ymd_and_hms(2026, 11, 22, 1, 0, 0).unwrap();
        assert_eq!(label_for(Level::Full, t), "full-20261122.010000");
        assert_eq!(parse_label("incr-20261122.010000"), Some((Level::Incr, t)));
        assert_eq!(parse_label("weekly-20261122.010000"), None);
        assert_eq!(parse_label("full-2026"), None);
    }

    #[test]
    fn path_text_keeps_non_utf8_bytes() {
        let p = PathText::from_bytes(b"/a/\xff");
        assert!(matches!(p, PathText::Bytes { .. }));
        assert_eq!(p.to_bytes(), b"/a/\xff");
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<PathText>(&json).unwrap(), p);
        assert_eq!(PathText::from_bytes(b"/ok"), PathText::Utf8("/ok".into()));
    }

    #[test]
    fn status_names_parse_in_any_case() {
        for s in [RunStatus::Complete, RunStatus::Partial, RunStatus::Aborted] {
            assert_eq!(s.as_str().to_uppercase().parse::<RunStatus>().unwrap(), s);
        }
        assert!("failed".parse::<RunStatus>().is_err());
    }

    #[test]
    fn level_names() {
        assert_eq!("incremental".parse::<Level>().unwrap(), Level::Incr);
        assert_eq!("1".parse::<Level>().unwrap(), Level::Diff);
        assert!("weekly".parse::<Level>().is_err());
    }
}
