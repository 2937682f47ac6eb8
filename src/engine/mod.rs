//! Sequencing: the only place IO steps meet. `once` scans and selects every image, then runs
//! each target (sync, rewrite, commit, deliver) with bounded concurrency; `run` does the same
//! on a schedule ([`schedule`] decides, [`service`] carries it out).
//!
//! Layers, each importing only those below it: `service` -> `schedule` -> `report`, and
//! `service`/`once` -> `run` -> `deliver` -> `report`; `select` and `message` import nothing
//! of the engine.

mod deliver;
pub mod gates;
mod holds;
mod message;
mod report;
mod run;
mod schedule;
mod select;
mod service;

use std::path::Path;
use std::sync::Arc;

use futures_util::StreamExt as _;
use serde::Serialize;

pub use self::deliver::body as pull_request_body;
pub use self::message::render as render_message;
pub use self::report::{
    ChangeReport, Outcome, PullRequestAction, Retry, RunError, TargetReport, Timings,
};
use self::run::log_finished;
pub use self::run::{
    TargetRun, run_target, run_target_cached, save_cache, scan_cache_file, workspace_dir,
};
pub use self::select::{ImageReport, SelectionSet, select_all, select_images};
pub use self::service::{Inputs, Service, ServiceOptions, serve};
use crate::config::Config;
use crate::registry::Client;
pub use crate::status::{ImageStatus, PendingChange, StatusView, TargetStatus};

/// Targets worked on at once; each holds a workspace and a git connection.
const TARGET_CONCURRENCY: usize = 4;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CycleReport {
    /// Scanning every image and selecting, in milliseconds.
    pub scan_ms: u64,
    pub images: Vec<ImageReport>,
    pub targets: Vec<TargetReport>,
}

impl CycleReport {
    /// A scan, lookup, target or file failed (as opposed to "nothing to do").
    pub fn failed(&self) -> bool {
        self.images.iter().any(|i| i.failed) || self.targets.iter().any(TargetReport::is_failure)
    }
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
        let name = config.targets[i].name.clone();
        let workspace = workspace_dir(state_dir, &name);
        let cache_file = scan_cache_file(state_dir, &name);
        let holds_file = crate::state::holds_file(state_dir, &name);
        let span = tracing::info_span!("target", target = %name, reason = "once");
        let joined = tokio::task::spawn_blocking(move || {
            span.in_scope(|| {
                let report = run_target(&TargetRun {
                    target: &config.targets[i],
                    workspace,
                    cache_file,
                    selections: &set,
                    images: &config.images,
                    holds_file,
                    dry_run,
                });
                log_finished(&report);
                report
            })
        });
        async move {
            joined
                .await
                .unwrap_or_else(|_| TargetReport::failed(&name, &RunError::Panicked))
        }
    });
    let mut targets: Vec<TargetReport> = futures_util::stream::iter(jobs)
        .buffered(TARGET_CONCURRENCY)
        .collect()
        .await;
    targets.sort_by(|a, b| a.target.cmp(&b.target));
    let mut images = set.reports.clone();
    images.extend(
        config
            .images
            .iter()
            .filter(|i| i.suspend)
            .map(|i| ImageReport {
                policy: i.id.to_string(),
                image: i.image.to_string(),
                tags: None,
                selected: None,
                error: Some("suspended: not scanned, its markers are left as they are".into()),
                failed: false,
                transient: false,
                stopped: Vec::new(),
                retry_at: None,
            }),
    );
    CycleReport {
        scan_ms,
        images,
        targets,
    }
}
