//! The long-running loop behind `tagsmith run`: scans each image on its interval (with jitter)
//! or at once when a webhook names it, keeps the last good selection of every policy, and runs
//! a target when a selection it may use changed. Triggers coalesce: a target never runs twice at
//! once, and changes that arrive while it runs make one more run afterwards.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::select::{ImageReport, SelectionSet, select_images};
use super::target::{TargetReport, TargetRun, run_target};
use super::workspace_dir;
use crate::config::{Config, ImagePolicy};
use crate::model::{ImageRef, PolicyId};
use crate::registry::Client;
use crate::server::ScanRequest;

/// Bounds of the service.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    pub state_dir: PathBuf,
    /// Targets worked on at once.
    pub target_concurrency: usize,
    /// How long shutdown waits for target runs in flight.
    pub shutdown_deadline: Duration,
}

/// What the service knows; the last good selection survives failed scans.
#[derive(Debug, Default)]
struct Known {
    selections: BTreeMap<PolicyId, ImageRef>,
    reports: BTreeMap<PolicyId, ImageReport>,
}

impl Known {
    /// Merges a scan's outcome; true when a selection changed.
    fn merge(&mut self, fresh: SelectionSet) -> bool {
        let mut changed = false;
        for report in fresh.reports {
            let Ok(id) = report.policy.parse::<PolicyId>() else {
                continue;
            };
            if let Some(selection) = fresh.selections.get(&id)
                && self.selections.get(&id) != Some(selection)
            {
                tracing::info!(policy = %id, selected = %selection, "selection changed");
                self.selections.insert(id.clone(), selection.clone());
                changed = true;
            }
            self.reports.insert(id, report);
        }
        changed
    }

    fn snapshot(&self) -> SelectionSet {
        SelectionSet {
            selections: self.selections.clone(),
            reports: self.reports.values().cloned().collect(),
        }
    }
}

/// Up to a tenth of the interval added, so images configured alike do not scan in lockstep.
fn jittered(interval: Duration) -> Duration {
    let spread = interval.as_millis() / 10;
    let extra = u64::try_from(spread).unwrap_or(u64::MAX);
    interval + Duration::from_millis(fastrand::u64(0..=extra))
}

/// Runs until `shutdown` turns true, then waits for target runs in flight up to the deadline.
pub async fn serve(
    config: Arc<Config>,
    client: Arc<Client>,
    options: ServiceOptions,
    mut requests: mpsc::Receiver<ScanRequest>,
    mut shutdown: watch::Receiver<bool>,
) {
    let now = Instant::now();
    // Every image is due at start: the first cycle applies whatever is pending.
    let mut due: Vec<Instant> = vec![now; config.images.len()];
    let mut known = Known::default();
    let targets = config.targets.len();
    let mut dirty = vec![false; targets];
    let mut running = vec![false; targets];
    let mut tasks: JoinSet<(usize, TargetReport)> = JoinSet::new();
    let mut requests_open = true;
    // Every target runs once after the first scan, whatever it found.
    let mut first_scan = true;

    loop {
        let next = due
            .iter()
            .min()
            .copied()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
            request = requests.recv(), if requests_open => match request {
                Some(request) => wake(&config, &request, &mut due),
                None => requests_open = false,
            },
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                if let Ok((i, report)) = joined {
                    running[i] = false;
                    tracing::info!(target = %report.target, outcome = ?report.outcome, "target run finished");
                }
            }
            () = tokio::time::sleep_until(next) => {
                let now = Instant::now();
                let scan: Vec<&ImagePolicy> = config
                    .images
                    .iter()
                    .zip(&due)
                    .filter(|(_, d)| **d <= now)
                    .map(|(i, _)| i)
                    .collect();
                for (image, d) in config.images.iter().zip(due.iter_mut()) {
                    if *d <= now {
                        *d = now + jittered(image.interval);
                    }
                }
                let changed = known.merge(select_images(&scan, &client).await);
                if changed || first_scan {
                    dirty.iter_mut().for_each(|d| *d = true);
                    first_scan = false;
                }
            }
        }
        launch(
            &config,
            &options,
            &known,
            &mut dirty,
            &mut running,
            &mut tasks,
        );
    }

    tracing::info!(in_flight = tasks.len(), "shutting down: no new runs");
    let deadline = tokio::time::sleep(options.shutdown_deadline);
    tokio::pin!(deadline);
    while !tasks.is_empty() {
        tokio::select! {
            _ = tasks.join_next() => {}
            () = &mut deadline => {
                tracing::warn!(in_flight = tasks.len(), "shutdown deadline passed; abandoning runs in flight (the next start resets their workspaces)");
                break;
            }
        }
    }
}

/// A webhook makes the images it names due now; several before the next scan become one scan.
fn wake(config: &Config, request: &ScanRequest, due: &mut [Instant]) {
    let now = Instant::now();
    let mut matched = 0;
    for named in &request.images {
        let canonical = named.canonical();
        for (image, d) in config.images.iter().zip(due.iter_mut()) {
            if image.image.canonical() == canonical {
                *d = now;
                matched += 1;
            }
        }
    }
    tracing::debug!(receiver = %request.receiver, images = request.images.len(), matched, "webhook");
}

/// Starts runs for dirty targets that are not running, within the concurrency bound.
fn launch(
    config: &Arc<Config>,
    options: &ServiceOptions,
    known: &Known,
    dirty: &mut [bool],
    running: &mut [bool],
    tasks: &mut JoinSet<(usize, TargetReport)>,
) {
    for i in 0..dirty.len() {
        if tasks.len() >= options.target_concurrency.max(1) {
            return;
        }
        if !dirty[i] || running[i] {
            continue;
        }
        dirty[i] = false;
        running[i] = true;
        let config = Arc::clone(config);
        let selections = known.snapshot();
        let workspace = workspace_dir(&options.state_dir, &config.targets[i].name);
        tasks.spawn_blocking(move || {
            // A panic must not leave the target marked as running forever.
            let run = std::panic::AssertUnwindSafe(|| {
                run_target(&TargetRun {
                    target: &config.targets[i],
                    workspace,
                    selections: &selections,
                    dry_run: false,
                })
            });
            let report = std::panic::catch_unwind(run).unwrap_or_else(|_| TargetReport {
                target: config.targets[i].name.clone(),
                outcome: super::Outcome::Failed {
                    error: "target run panicked".into(),
                },
                changes: Vec::new(),
                problems: Vec::new(),
                push_attempts: 0,
                timings: super::Timings::default(),
            });
            (i, report)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_a_tenth() {
        for _ in 0..100 {
            let d = jittered(Duration::from_secs(100));
            assert!(
                d >= Duration::from_secs(100) && d <= Duration::from_secs(110),
                "{d:?}"
            );
        }
    }

    #[test]
    fn a_failed_scan_keeps_the_last_selection() {
        let id: PolicyId = "team-a:app".parse().unwrap();
        let selected: ImageRef = "ghcr.io/org/app:1.1.0".parse().unwrap();
        let ok = SelectionSet {
            selections: BTreeMap::from([(id.clone(), selected.clone())]),
            reports: vec![ImageReport {
                policy: id.to_string(),
                image: "ghcr.io/org/app".into(),
                tags: Some(2),
                selected: Some(selected.to_string()),
                error: None,
            }],
        };
        let failed = SelectionSet {
            selections: BTreeMap::new(),
            reports: vec![ImageReport {
                policy: id.to_string(),
                image: "ghcr.io/org/app".into(),
                tags: None,
                selected: None,
                error: Some("registry down".into()),
            }],
        };
        let mut known = Known::default();
        assert!(known.merge(ok.clone()));
        assert!(!known.merge(ok), "the same selection again is no change");
        assert!(!known.merge(failed));
        assert_eq!(known.selections.get(&id), Some(&selected));
        assert_eq!(known.snapshot().failed(&id), Some("registry down"));
    }
}
