//! What `/status` shows: per image the last scan and selection, per target the last run and
//! the next. Plain data, built by the engine's schedule from its state and serialised as JSON;
//! a leaf module, so the server (which renders it as the dashboard) need not import the engine.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StatusView {
    pub started_at: String,
    pub images: Vec<ImageStatus>,
    pub targets: Vec<TargetStatus>,
    /// Each `notify:` sink (and each target's GitHub commit status).
    pub notifications: Vec<NotificationStatus>,
}

/// A notification sink's counts and its last failure.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NotificationStatus {
    pub name: String,
    /// `slack`, `teams`, `webhook` or `github-status`.
    pub kind: String,
    pub sent: u64,
    pub failed: u64,
    /// Dropped because the sink's queue was full.
    pub dropped: u64,
    /// Why the last message that failed did (never the URL).
    pub last_error: Option<String>,
    pub last_failure: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ImageStatus {
    pub policy: String,
    pub image: String,
    /// When the last scan finished, successful or not.
    pub last_scan: Option<String>,
    pub last_success: Option<String>,
    pub next_scan: Option<String>,
    /// Tags listed by the last successful scan.
    pub tags: Option<usize>,
    /// The last good selection; a failed scan keeps it.
    pub selected: Option<String>,
    /// The selection's digest (`sha256:...`), when it names one.
    pub digest: Option<String>,
    /// When the selection last changed to what it is.
    pub changed_at: Option<String>,
    /// Why the last scan selected nothing.
    pub error: Option<String>,
    /// Scans failed in a row (each waits longer before the next).
    pub failures: u32,
    /// `suspend: true`: not scanned, its markers are left as they are.
    pub suspended: bool,
    /// Better-ranked tags a gate stopped at the last scan: `tag stopped by gate: reason`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stopped: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TargetStatus {
    pub name: String,
    /// The Git repository's URL and the branch the target reads.
    pub repository: String,
    pub branch: String,
    pub last_run: Option<String>,
    /// `unchanged`, `pushed`, `pull_request` or `failed`.
    pub outcome: Option<String>,
    pub commit: Option<String>,
    /// The pull request the last run delivered to, when the target delivers by pull request.
    pub pull_request: Option<String>,
    pub error: Option<String>,
    pub running: bool,
    /// Changes are waiting for a run (or for the schedule).
    pub pending: bool,
    /// Why the pending run will run: `start`, `selection changed`, `resync`, `retry`, `manual`.
    pub reason: Option<String>,
    /// The last run failed in a way retrying will not fix (credentials, someone else's commit):
    /// it runs again when a selection changes, its interval passes, or on a manual trigger.
    pub stalled: bool,
    pub next_run: Option<String>,
    pub schedule: Option<String>,
    /// Runs failed in a row (each waits longer before the next).
    pub failures: u32,
    /// Marker and file problems the last run found, as `file:line: message`.
    pub problems: Vec<String>,
    /// Marker edits not on the target's branch yet: what a dry run found while the schedule
    /// holds delivery, or what the last run's pull request (or failed delivery) carries.
    pub pending_changes: Vec<PendingChange>,
    /// Markers left as a person rolled them back (see [`HoldStatus`]).
    pub holds: Vec<HoldStatus>,
}

/// A marker tagsmith leaves as a person set it: they rolled it back from `from` (what tagsmith
/// had written) to `to`. It stays until the policy selects a tag newer than `from`, or until
/// `tagsmith release POLICY` (or `POST /release`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HoldStatus {
    pub policy: String,
    /// The marker with its part, e.g. `team-a:app:tag`.
    pub marker: String,
    pub file: String,
    pub line: usize,
    pub from: String,
    pub to: String,
    pub since: Option<String>,
}

/// One marker that would move from `old` to `new`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PendingChange {
    pub policy: String,
    pub file: String,
    pub line: usize,
    pub old: String,
    pub new: String,
}

/// RFC 3339 in UTC, to the millisecond.
pub fn timestamp(unix_ms: u64) -> Option<String> {
    let ms = i64::try_from(unix_ms).ok()?;
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
}
