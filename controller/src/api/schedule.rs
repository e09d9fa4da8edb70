//! Schedule: when backups, purges and verifies run.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CRON_PATTERN, DURATION_PATTERN, conditions_schema};

/// A reusable backup plan: cron entries per level (full, differential, incremental), purge
/// and verify windows, or an `Auto` mode that balances fulls across nightly runs. BackupSets
/// refer to it by name.
// clippy reads the repeated `printcolumn(name, type_, json_path)` keys as duplicate attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "holdfast.io",
    doc = "When backups, purges and verifies run, per level or in Auto mode.",
    version = "v1alpha1",
    kind = "Schedule",
    namespaced,
    status = "ScheduleStatus",
    shortname = "hfsched",
    category = "holdfast",
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.mode"),
    printcolumn(name = "Full", type_ = "string", json_path = ".spec.full"),
    printcolumn(
        name = "Incremental",
        type_ = "string",
        json_path = ".spec.incremental"
    ),
    printcolumn(name = "Run", type_ = "string", json_path = ".spec.run"),
    printcolumn(name = "Next", type_ = "date", json_path = ".status.nextRuns[0].time"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self.mode != 'Levels' || has(self.full)").message("mode Levels needs a full cron entry"))]
#[x_kube(validation = Rule::new("self.mode != 'Auto' || (has(self.run) && has(self.cycle))").message("mode Auto needs run and cycle"))]
#[x_kube(validation = Rule::new("self.mode != 'Auto' || !(has(self.full) || has(self.differential) || has(self.incremental))").message("mode Auto plans levels itself: remove full, differential and incremental"))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleSpec {
    /// IANA time zone the cron entries are read in, e.g. `Europe/Paris`. Run labels are
    /// always UTC.
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// `Levels`: a cron entry per level. `Auto`: one `run` entry; the controller picks each
    /// source's level so that every source gets a full at least once per `cycle`, with fulls
    /// spread so each run moves a similar amount of data.
    #[serde(default)]
    pub mode: ScheduleMode,
    /// When to run full backups (level 0), e.g. `0 1 * * 6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(CRON_PATTERN))]
    pub full: Option<String>,
    /// When to run differential backups (level 1: changes since the last full).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(CRON_PATTERN))]
    pub differential: Option<String>,
    /// When to run incremental backups (level 2: changes since the previous run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(CRON_PATTERN))]
    pub incremental: Option<String>,
    /// `Auto` mode: when to run, e.g. `0 1 * * *`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(CRON_PATTERN))]
    pub run: Option<String>,
    /// `Auto` mode: every source gets a full at least this often, e.g. `7d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub cycle: Option<String>,
    /// When to purge (apply retention and reclaim space), e.g. `0 0 * * *`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(CRON_PATTERN))]
    pub purge: Option<String>,
    /// When and how deeply to verify the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyWindow>,
    /// A run that could not start within this long of its scheduled time is missed, e.g. `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub starting_deadline: Option<String>,
    /// What to do about missed runs (e.g. the controller was down): `Skip` them (counted in
    /// status), or `CatchUpOnce` (run once as soon as possible, however many were missed).
    #[serde(default)]
    pub missed_runs: MissedRunPolicy,
    /// Spread runs of many BackupSets sharing this schedule: each set is delayed by a
    /// stable amount up to this, derived from its name, e.g. `30m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub jitter: Option<String>,
}

fn default_time_zone() -> String {
    "UTC".to_owned()
}

/// How levels are chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ScheduleMode {
    /// A cron entry per level.
    #[default]
    Levels,
    /// One cron entry; the controller balances fulls across runs.
    Auto,
}

/// Missed-run handling.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MissedRunPolicy {
    /// Skip missed runs; they are counted in status.
    #[default]
    Skip,
    /// Run once as soon as possible.
    CatchUpOnce,
}

/// A verify window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("self.depth == 'Deep' || !has(self.samplePercent)").message("samplePercent applies to Deep verification only"))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyWindow {
    /// When to verify, e.g. `0 3 * * 0`.
    #[schemars(pattern(CRON_PATTERN))]
    pub cron: String,
    /// `Quick`: metadata and index consistency. `Deep`: read back and authenticate every
    /// volume (or a sample).
    #[serde(default)]
    pub depth: VerifyDepth,
    /// With `Deep`, read only this percentage of volumes, chosen at random each time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub sample_percent: Option<u32>,
}

/// Verification depth.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum VerifyDepth {
    /// Metadata and index consistency.
    #[default]
    Quick,
    /// Read back and authenticate every byte.
    Deep,
}

/// The schedule's observed state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleStatus {
    /// `Ready` is false with a reason when a cron entry or the time zone is invalid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The next few planned runs and their levels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub next_runs: Vec<PlannedRun>,
    /// The BackupSets that run on this schedule, by name (the first 100; `usedByCount` counts
    /// them all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub used_by: Vec<String>,
    /// How many BackupSets run on this schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_by_count: Option<u32>,
}

/// A planned run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlannedRun {
    /// When it is due.
    pub time: Time,
    /// `full`, `diff` or `incr` (in Auto mode `incr`: each source's level is chosen at the
    /// run, a full at least once per cycle).
    pub level: super::common::Level,
}
