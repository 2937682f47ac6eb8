//! Sequencing: the only place IO steps meet. `once` scans and selects every image while each
//! target's workspace is synced, then runs each target (rewrite, commit, deliver) with bounded
//! concurrency; `run` does the same
//! on a schedule ([`schedule`] decides, [`service`] carries it out).
//!
//! Layers, each importing only those below it: `service` -> `schedule` -> `report`, and
//! `service`/`once` -> `run` -> `deliver` -> `report`; `select` and `message` import nothing
//! of the engine.

mod deliver;
pub mod gates;
mod holds;
mod memo;
mod message;
mod records;
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
pub use self::records::{known_selections, scan_records};
pub use self::report::{
    ChangeReport, Outcome, PullRequestAction, Retry, RunError, TargetReport, Timings,
};
pub use self::run::{
    TargetRun, run_target, run_target_cached, save_cache, scan_cache_file, workspace_dir,
};
use self::run::{log_finished, open_target, run_opened};
pub use self::select::{ImageReport, Known, SelectionSet, select_all, select_images};
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

/// One full cycle over every target: what `tagsmith once` runs. `known` holds the last
/// selections (see [`Known`]). Each target's workspace is opened and fetched while the
/// registries are scanned, since neither needs the other; its rewrite starts when the scan is
/// done.
pub async fn run_once(
    config: Arc<Config>,
    client: &Client,
    state_dir: &Path,
    dry_run: bool,
    known: &Known,
) -> CycleReport {
    let started = std::time::Instant::now();
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..config.targets.len())
        .map(|_| std::sync::mpsc::channel::<Arc<SelectionSet>>())
        .unzip();
    let jobs = receivers.into_iter().enumerate().map(|(i, selections)| {
        let config = Arc::clone(&config);
        let name = config.targets[i].name.clone();
        let workspace = workspace_dir(state_dir, &name);
        let cache_file = scan_cache_file(state_dir, &name);
        let holds_file = crate::state::holds_file(state_dir, &name);
        let memo_file = (!dry_run && memo::applies_to(&config.targets[i]))
            .then(|| memo::memo_file(state_dir, &name));
        let span = tracing::info_span!("target", target = %name, reason = "once");
        let joined = tokio::task::spawn_blocking(move || {
            span.in_scope(|| {
                let target = &config.targets[i];
                // A note whose heads still stand leaves the workspace closed until the
                // selections say whether the run is needed at all.
                let before = match memo_file.as_deref().and_then(|f| standing_memo(target, f)) {
                    Some(standing) => Before::Noted(standing),
                    None => Before::Opened(Box::new(open_target(target, &workspace, &cache_file))),
                };
                // The scan sends to every target once it is done; a closed channel is a
                // scan that panicked.
                let Ok(set) = selections.recv() else {
                    return TargetReport::failed(&target.name, &RunError::Panicked);
                };
                let run = TargetRun {
                    target,
                    workspace: workspace.clone(),
                    cache_file: cache_file.clone(),
                    selections: &set,
                    images: &config.images,
                    holds_file,
                    dry_run,
                };
                let opened = match before {
                    Before::Opened(opened) => *opened,
                    Before::Noted((memo, sync_ms)) if memo.inputs == memo::inputs(&run) => {
                        tracing::debug!(
                            "nothing moved since the last run: unchanged, the workspace not opened"
                        );
                        let report = memo::report(target, &memo, sync_ms);
                        log_finished(&report);
                        return report;
                    }
                    Before::Noted(_) => {
                        tracing::debug!(
                            "the selections or the configuration changed since the last run"
                        );
                        open_target(target, &workspace, &cache_file)
                    }
                };
                let synced = memo_file
                    .as_ref()
                    .and_then(|_| opened.synced_heads(&memo::branches(target)));
                let report = run_opened(&run, opened);
                if let (Some(file), Some(heads)) = (&memo_file, synced)
                    && let Some(memo) = memo::after(target, &report, heads, memo::inputs(&run))
                {
                    memo::save(file, &memo);
                }
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
    let scan = async {
        // A selection that moved means some target runs in full: libgit2 starts now, beside
        // the rest of the scan, unless it is under way already.
        let mut set = select_all(&config, client, known, &crate::git::start).await;
        // Only the service stores the tag lists; a once reports their counts, and its
        // targets need the selections alone (100,000 tags, megabytes, through every run).
        set.tags.clear();
        let set = Arc::new(set);
        let scan_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        for sender in senders {
            // A target job that is gone has reported already.
            let _ = sender.send(Arc::clone(&set));
        }
        (set, scan_ms)
    };
    let runs = futures_util::stream::iter(jobs)
        .buffered(TARGET_CONCURRENCY)
        .collect::<Vec<TargetReport>>();
    let ((set, scan_ms), mut targets) = futures_util::future::join(scan, runs).await;
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
                listing: None,
            }),
    );
    CycleReport {
        scan_ms,
        images,
        targets,
    }
}

/// Whether a `once` over `config` opens some target's workspace whatever the scan finds: a
/// dry run, or a target without a note of its last run that may stand for this one.
pub fn opens_workspaces_at_once(config: &Config, state_dir: &Path, dry_run: bool) -> bool {
    dry_run
        || config.targets.iter().any(|t| {
            !memo::applies_to(t) || memo::load(&memo::memo_file(state_dir, &t.name)).is_none()
        })
}

/// What a `once` target job has while the registries are scanned.
enum Before<'t> {
    Opened(Box<run::OpenedTarget<'t>>),
    /// A note whose heads still stand, and how long reading them took in milliseconds.
    Noted((memo::Memo, u64)),
}

/// The target's note from its last run (see [`memo`]) when the remote's heads are still the
/// ones it names, and how long reading them took in milliseconds.
fn standing_memo(target: &crate::config::Target, file: &Path) -> Option<(memo::Memo, u64)> {
    let memo = memo::load(file)?;
    let started = std::time::Instant::now();
    let heads = crate::git::remote_heads(&target.git, &memo::branches(target))?;
    let sync_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    if heads != memo.heads {
        tracing::debug!(noted = ?memo.heads, now = ?heads, "the remote moved since the last run");
        return None;
    }
    Some((memo, sync_ms))
}
