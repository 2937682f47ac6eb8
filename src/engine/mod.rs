//! Sequencing: the only place IO steps meet. A cycle scans and selects every image, then runs
//! each target (sync, rewrite, commit, push) with bounded concurrency.

mod message;
mod pull_request;
mod select;
mod service;
mod status;
mod target;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt as _;
use serde::Serialize;

pub use self::message::render as render_message;
pub use self::pull_request::{DeliveryError, PullRequestAction, body as pull_request_body};
pub use self::select::{ImageReport, SelectionSet, select_all, select_images};
pub use self::service::{Service, ServiceOptions, serve};
pub use self::status::{ImageStatus, StatusView, TargetStatus};
pub use self::target::{
    ChangeReport, Outcome, TargetReport, TargetRun, Timings, run_target, run_target_cached,
    save_cache,
};
use crate::config::Config;
use crate::registry::Client;

/// Targets worked on at once; each holds a workspace and a git connection.
const TARGET_CONCURRENCY: usize = 4;

#[derive(Debug, Clone, Serialize)]
pub struct CycleReport {
    /// Scanning every image and selecting, in milliseconds.
    pub scan_ms: u64,
    pub images: Vec<ImageReport>,
    pub targets: Vec<TargetReport>,
}

impl CycleReport {
    /// A scan, lookup or target failed (as opposed to "nothing to do").
    pub fn failed(&self) -> bool {
        self.images.iter().any(|i| i.tags.is_none())
            || self
                .targets
                .iter()
                .any(|t| matches!(t.outcome, Outcome::Failed { .. }))
    }
}

/// Where a target's workspace lives under the state directory.
pub fn workspace_dir(state_dir: &Path, target: &str) -> PathBuf {
    state_dir.join("workspaces").join(target)
}

/// Where a target's scan cache lives under the state directory (beside, not inside, the
/// workspaces, which hold only checkouts).
pub fn scan_cache_file(state_dir: &Path, target: &str) -> PathBuf {
    state_dir.join("cache").join(format!("{target}.scan"))
}

/// One full cycle over every target: what `tagsmith once` runs.
pub async fn run_once(
    config: Arc<Config>,
    client: &Client,
    state_dir: &Path,
    dry_run: bool,
) -> CycleReport {
    let started = std::time::Instant::now();
    let set = Arc::new(select_all(&config, client).await);
    let scan_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let jobs = (0..config.targets.len()).map(|i| {
        let config = Arc::clone(&config);
        let set = Arc::clone(&set);
        let workspace = workspace_dir(state_dir, &config.targets[i].name);
        let cache_file = scan_cache_file(state_dir, &config.targets[i].name);
        tokio::task::spawn_blocking(move || {
            run_target(&TargetRun {
                target: &config.targets[i],
                workspace,
                cache_file,
                selections: &set,
                dry_run,
            })
        })
    });
    let mut targets: Vec<TargetReport> = futures_util::stream::iter(jobs)
        .buffered(TARGET_CONCURRENCY)
        .map(|joined| {
            joined.unwrap_or_else(|e| TargetReport {
                target: "?".into(),
                outcome: Outcome::Failed {
                    error: format!("target task panicked: {e}"),
                },
                changes: Vec::new(),
                problems: Vec::new(),
                push_attempts: 0,
                timings: Timings::default(),
                policies: Vec::new(),
            })
        })
        .collect()
        .await;
    targets.sort_by(|a, b| a.target.cmp(&b.target));
    CycleReport {
        scan_ms,
        images: set.reports.clone(),
        targets,
    }
}
