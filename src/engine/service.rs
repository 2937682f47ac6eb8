//! The long-running loop behind `tagsmith run`: scans each image on its interval (with jitter)
//! or at once when a webhook names it, keeps the last good selection of every policy, and runs
//! a target when a selection it uses changed, when its own interval passed, or to retry a
//! failure (with backoff). Triggers coalesce: a target never runs twice at once, and changes
//! that arrive while it runs make one more run afterwards. A target with a `schedule` delivers
//! only at the times it names. What it learns is kept in the state store, so a restart keeps
//! its selections and does not scan what is not due.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::select::{ImageReport, SelectionSet, select_images};
use super::status::{ImageStatus, StatusView, TargetStatus, timestamp};
use super::target::{TargetReport, TargetRun, run_target_cached, save_cache};
use super::{Outcome, PullRequestAction, scan_cache_file, workspace_dir};
use crate::config::{Config, ImagePolicy};
use crate::metrics::{label, metrics};
use crate::model::{ImageRef, PolicyId};
use crate::registry::Client;
use crate::rewrite::ScanCache;
use crate::server::ScanRequest;
use crate::state::{Batch, ImageRecord, Snapshot, Store, TargetRecord, now_ms};

/// First wait after a failure; it doubles with each failure in a row.
const BACKOFF_START: Duration = Duration::from_secs(10);
/// The longest wait after failures (a failed scan also never waits longer than its interval).
const BACKOFF_MAX: Duration = Duration::from_secs(600);

/// Bounds of the service.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    pub state_dir: PathBuf,
    /// Targets worked on at once.
    pub target_concurrency: usize,
    /// How long shutdown waits for target runs in flight.
    pub shutdown_deadline: Duration,
}

/// What the service is given to run.
#[derive(Debug)]
pub struct Service {
    pub config: Arc<Config>,
    pub client: Arc<Client>,
    pub options: ServiceOptions,
    pub store: Arc<Store>,
    /// What the store held at start.
    pub snapshot: Snapshot,
}

/// What the service knows; the last good selection survives failed scans.
#[derive(Debug, Default)]
struct Known {
    selections: BTreeMap<PolicyId, ImageRef>,
    reports: BTreeMap<PolicyId, ImageReport>,
}

impl Known {
    /// Merges a scan's outcome; returns the policies whose selection changed.
    fn merge(&mut self, fresh: &SelectionSet) -> BTreeSet<PolicyId> {
        let mut changed = BTreeSet::new();
        for report in &fresh.reports {
            let Ok(id) = report.policy.parse::<PolicyId>() else {
                continue;
            };
            if let Some(selection) = fresh.selections.get(&id)
                && self.selections.get(&id) != Some(selection)
            {
                tracing::info!(policy = %id, selected = %selection, "selection changed");
                self.selections.insert(id.clone(), selection.clone());
                changed.insert(id.clone());
            }
            self.reports.insert(id, report.clone());
        }
        changed
    }

    fn snapshot(&self) -> SelectionSet {
        SelectionSet {
            selections: self.selections.clone(),
            reports: self.reports.values().cloned().collect(),
            tags: BTreeMap::new(),
        }
    }
}

/// Up to a tenth of the interval added, so images configured alike do not scan in lockstep.
fn jittered(interval: Duration) -> Duration {
    let spread = interval.as_millis() / 10;
    let extra = u64::try_from(spread).unwrap_or(u64::MAX);
    interval + Duration::from_millis(fastrand::u64(0..=extra))
}

/// The wait after `failures` failures in a row, never above `cap`.
fn backoff(failures: u32, cap: Duration) -> Duration {
    let exp = BACKOFF_START.saturating_mul(1 << failures.saturating_sub(1).min(16));
    jittered(exp.min(BACKOFF_MAX).min(cap))
}

/// The monotonic instant of a wall-clock time in Unix milliseconds.
fn instant_of(unix_ms: u64) -> Instant {
    let now = now_ms();
    let now_i = Instant::now();
    if unix_ms >= now {
        now_i + Duration::from_millis(unix_ms - now)
    } else {
        now_i
            .checked_sub(Duration::from_millis(now - unix_ms))
            .unwrap_or(now_i)
    }
}

/// The wall-clock time of a monotonic instant, as Unix milliseconds.
fn wall_of(at: Instant) -> u64 {
    let now = Instant::now();
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if at >= now {
        now_ms().saturating_add(ms(at - now))
    } else {
        now_ms().saturating_sub(ms(now - at))
    }
}

#[derive(Debug)]
struct ImageSlot {
    due: Instant,
    failures: u32,
    record: ImageRecord,
}

#[derive(Debug, Default)]
struct TargetSlot {
    pending: bool,
    running: bool,
    failures: u32,
    /// Backoff after a failure.
    not_before: Option<Instant>,
    /// The schedule's next time, once changes are pending.
    window: Option<Instant>,
    /// The same as Unix milliseconds, for `/status`.
    window_ms: Option<u64>,
    resync_at: Option<Instant>,
    /// Policies its markers named at the last good run; `None` until one finished.
    policies: Option<BTreeSet<String>>,
    record: Option<TargetRecord>,
}

impl TargetSlot {
    /// When a pending run may start.
    fn ready_at(&self, now: Instant) -> Option<Instant> {
        if !self.pending || self.running {
            return None;
        }
        Some(
            [self.not_before, self.window]
                .into_iter()
                .flatten()
                .fold(now, Instant::max),
        )
    }

    /// When the target runs next, if nothing else happens: its pending run, else its resync;
    /// `None` while it runs.
    fn next_run(&self, now: Instant) -> Option<Instant> {
        if self.running {
            None
        } else if self.pending {
            self.ready_at(now)
        } else {
            self.resync_at
        }
    }

    fn uses_any(&self, changed: &BTreeSet<PolicyId>) -> bool {
        match &self.policies {
            None => true,
            Some(used) => changed.iter().any(|p| used.contains(&p.to_string())),
        }
    }
}

struct Loop {
    config: Arc<Config>,
    client: Arc<Client>,
    options: ServiceOptions,
    store: Arc<Store>,
    known: Known,
    images: Vec<ImageSlot>,
    targets: Vec<TargetSlot>,
    /// Per target, loaded at its first run.
    caches: Vec<Option<Arc<ScanCache>>>,
    tasks: JoinSet<(usize, TargetReport)>,
    status: watch::Sender<String>,
    started_at: u64,
}

/// Runs until `shutdown` turns true, then waits for target runs in flight up to the deadline.
/// `status` receives the `/status` JSON whenever something in it changes.
pub async fn serve(
    service: Service,
    mut requests: mpsc::Receiver<ScanRequest>,
    mut shutdown: watch::Receiver<bool>,
    status: watch::Sender<String>,
) {
    let mut state = Loop::new(service, status);
    let mut requests_open = true;
    state.publish();
    loop {
        let next = state.next_wake();
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
            request = requests.recv(), if requests_open => match request {
                Some(request) => {
                    state.wake(&request);
                    // A flood becomes one scan: take everything already queued now.
                    while let Ok(request) = requests.try_recv() {
                        state.wake(&request);
                    }
                }
                None => requests_open = false,
            },
            Some(joined) = state.tasks.join_next(), if !state.tasks.is_empty() => {
                if let Ok((i, report)) = joined {
                    state.finished(i, &report);
                }
            }
            () = tokio::time::sleep_until(next) => {}
        }
        if state.images.iter().any(|i| i.due <= Instant::now()) {
            tokio::select! {
                () = state.scan_due() => {}
                _ = shutdown.wait_for(|s| *s) => break,
            }
        }
        state.resync_due();
        state.launch();
        metrics()
            .targets_pending
            .set(i64::try_from(state.targets.iter().filter(|t| t.pending).count()).unwrap_or(0));
    }

    let in_flight = state.tasks.len();
    tracing::info!(in_flight, "shutting down: no new runs");
    let deadline = tokio::time::sleep(state.options.shutdown_deadline);
    tokio::pin!(deadline);
    while !state.tasks.is_empty() {
        tokio::select! {
            joined = state.tasks.join_next() => {
                if let Some(Ok((i, report))) = joined {
                    state.finished(i, &report);
                }
            }
            () = &mut deadline => {
                tracing::warn!(in_flight = state.tasks.len(), "shutdown deadline passed; abandoning runs in flight (the next start resets their workspaces)");
                break;
            }
        }
    }
}

impl Loop {
    fn new(service: Service, status: watch::Sender<String>) -> Self {
        let Service {
            config,
            client,
            options,
            store,
            snapshot,
        } = service;
        let now = Instant::now();
        let mut known = Known::default();
        let images = config
            .images
            .iter()
            .map(|image| {
                let id = image.id.to_string();
                let fingerprint = policy_fingerprint(image);
                let record = snapshot
                    .images
                    .get(&id)
                    .filter(|r| r.image == image.image.to_string() && r.policy == fingerprint)
                    .cloned()
                    // A policy edited while tagsmith was down starts over.
                    .unwrap_or_else(|| ImageRecord {
                        image: image.image.to_string(),
                        policy: fingerprint,
                        ..ImageRecord::default()
                    });
                // A restart scans only what is due; a failed or unknown last scan is due now.
                let due = match record.succeeded_at {
                    Some(at) if at == record.scanned_at => instant_of(at.saturating_add(
                        u64::try_from(image.interval.as_millis()).unwrap_or(u64::MAX),
                    )),
                    _ => now,
                };
                if let Some(selected) = &record.selected
                    && let Ok(reference) = selected.parse::<ImageRef>()
                {
                    known.selections.insert(image.id.clone(), reference);
                }
                ImageSlot {
                    due,
                    failures: 0,
                    record,
                }
            })
            .collect();
        // Every target runs once at start with what is known, so changes made in Git while
        // tagsmith was down are seen; a run with nothing to change commits nothing.
        let targets: Vec<TargetSlot> = config
            .targets
            .iter()
            .map(|target| {
                let record = snapshot.targets.get(&target.name).cloned();
                TargetSlot {
                    pending: true,
                    window: None,
                    ..TargetSlot::default()
                }
                .with_record(record)
            })
            .collect();
        let mut state = Self {
            config,
            client,
            options,
            store,
            known,
            images,
            caches: vec![None; targets.len()],
            targets,
            tasks: JoinSet::new(),
            status,
            started_at: now_ms(),
        };
        for i in 0..state.targets.len() {
            state.schedule_window(i);
        }
        state
    }

    fn next_wake(&self) -> Instant {
        let images = self.images.iter().map(|i| i.due);
        let now = Instant::now();
        let targets = self.targets.iter().filter_map(|t| t.next_run(now));
        images
            .chain(targets)
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
    }

    /// A webhook makes the images it names due now.
    fn wake(&mut self, request: &ScanRequest) {
        let now = Instant::now();
        let mut matched = 0;
        for named in &request.images {
            let canonical = named.canonical();
            for (image, slot) in self.config.images.iter().zip(&mut self.images) {
                if image.image.canonical() == canonical {
                    slot.due = now;
                    matched += 1;
                }
            }
        }
        tracing::debug!(receiver = %request.receiver, images = request.images.len(), matched, "webhook");
    }

    async fn scan_due(&mut self) {
        let now = Instant::now();
        let due: Vec<usize> = (0..self.images.len())
            .filter(|&i| self.images[i].due <= now)
            .collect();
        let scan: Vec<&ImagePolicy> = due.iter().map(|&i| &self.config.images[i]).collect();
        let fresh = select_images(&scan, &self.client).await;
        let finished = now_ms();
        let changed = self.known.merge(&fresh);
        metrics().selections_changed.inc_by(changed.len() as u64);
        #[allow(clippy::cast_precision_loss)]
        metrics().last_scan_time.set(finished as f64 / 1000.0);

        let mut batch = Batch::default();
        for (image_name, tags) in &fresh.tags {
            self.store
                .tags(&mut batch, &image_name.canonical(), tags, finished);
        }
        for &i in &due {
            let image = &self.config.images[i];
            let slot = &mut self.images[i];
            let report = fresh
                .reports
                .iter()
                .find(|r| r.policy == image.id.to_string());
            let scanned = fresh.tags.contains_key(&image.image);
            slot.record.image = image.image.to_string();
            slot.record.scanned_at = finished;
            if scanned {
                slot.failures = 0;
                slot.record.succeeded_at = Some(finished);
                slot.record.tags = fresh.tags.get(&image.image).map(Vec::len);
                slot.due = Instant::now() + jittered(image.interval);
            } else {
                slot.failures += 1;
                slot.due = Instant::now() + backoff(slot.failures, image.interval);
            }
            slot.record.error = report.and_then(|r| r.error.clone());
            slot.record.selected = self
                .known
                .selections
                .get(&image.id)
                .map(ToString::to_string);
            batch.image(&image.id.to_string(), slot.record.clone());
        }
        // A blocking write of a few records; the store is local and small.
        if let Err(e) = self.store.write(batch) {
            tracing::warn!(error = %e, "cannot record scans in the state store");
        }
        if !changed.is_empty() {
            for slot in &mut self.targets {
                if slot.uses_any(&changed) {
                    slot.pending = true;
                }
            }
            for i in 0..self.targets.len() {
                self.schedule_window(i);
            }
        }
        self.publish();
    }

    /// A target whose interval passed re-reads its repository for new or edited markers.
    fn resync_due(&mut self) {
        let now = Instant::now();
        for i in 0..self.targets.len() {
            let slot = &mut self.targets[i];
            if !slot.pending && !slot.running && slot.resync_at.is_some_and(|at| at <= now) {
                slot.pending = true;
                self.schedule_window(i);
            }
        }
    }

    /// A pending target with a schedule waits for its next time.
    fn schedule_window(&mut self, i: usize) {
        let slot = &mut self.targets[i];
        if !slot.pending || slot.window.is_some() {
            return;
        }
        let Some(schedule) = &self.config.targets[i].schedule else {
            return;
        };
        let now = Utc::now();
        let next = schedule.next_from(now);
        slot.window_ms = next.and_then(|at| u64::try_from(at.timestamp_millis()).ok());
        slot.window = next.map(|at| {
            let wait = (at - now).to_std().unwrap_or_default();
            Instant::now() + wait
        });
        if slot.window.is_none() {
            tracing::warn!(target = %self.config.targets[i].name, %schedule, "schedule names no future time; changes wait");
            slot.window = Some(Instant::now() + Duration::from_secs(365 * 24 * 3600));
        }
    }

    /// Starts runs for pending targets that are ready, within the concurrency bound.
    fn launch(&mut self) {
        let now = Instant::now();
        let mut launched = false;
        for i in 0..self.targets.len() {
            if self.tasks.len() >= self.options.target_concurrency.max(1) {
                break;
            }
            let slot = &mut self.targets[i];
            if slot.ready_at(now).is_none_or(|at| at > now) {
                continue;
            }
            slot.pending = false;
            slot.running = true;
            slot.window = None;
            slot.window_ms = None;
            slot.resync_at = Some(now + jittered(self.config.targets[i].interval));
            launched = true;
            let config = Arc::clone(&self.config);
            let selections = self.known.snapshot();
            let workspace = workspace_dir(&self.options.state_dir, &config.targets[i].name);
            let cache_file = scan_cache_file(&self.options.state_dir, &config.targets[i].name);
            // Each target's scan cache stays in memory between runs (one run at a time uses it).
            let cache = Arc::clone(
                self.caches[i].get_or_insert_with(|| Arc::new(ScanCache::load(&cache_file))),
            );
            self.tasks.spawn_blocking(move || {
                // A panic must not leave the target marked as running forever.
                let run = std::panic::AssertUnwindSafe(|| {
                    let run = TargetRun {
                        target: &config.targets[i],
                        workspace,
                        cache_file,
                        selections: &selections,
                        dry_run: false,
                    };
                    let report = run_target_cached(&run, &cache);
                    save_cache(&run, &cache);
                    report
                });
                let report = std::panic::catch_unwind(run).unwrap_or_else(|_| TargetReport {
                    target: config.targets[i].name.clone(),
                    outcome: Outcome::Failed {
                        error: "target run panicked".into(),
                    },
                    changes: Vec::new(),
                    problems: Vec::new(),
                    push_attempts: 0,
                    timings: super::Timings::default(),
                    policies: Vec::new(),
                });
                (i, report)
            });
        }
        if launched {
            self.publish();
        }
    }

    fn finished(&mut self, i: usize, report: &TargetReport) {
        let name = &self.config.targets[i].name;
        let m = metrics();
        let outcome = outcome_label(&report.outcome);
        m.target_runs
            .get_or_create(&vec![
                ("target", name.clone()),
                ("outcome", outcome.to_string()),
            ])
            .inc();
        let rejected = u64::from(report.push_attempts.saturating_sub(1));
        m.pushes
            .get_or_create(&label("result", "rejected"))
            .inc_by(rejected);
        let mut record = TargetRecord {
            finished_at: now_ms(),
            outcome: outcome.to_string(),
            ..TargetRecord::default()
        };
        let slot = &mut self.targets[i];
        slot.running = false;
        match &report.outcome {
            Outcome::Failed { error } => {
                slot.failures += 1;
                let wait = backoff(slot.failures, BACKOFF_MAX);
                slot.pending = true;
                slot.not_before = Some(Instant::now() + wait);
                record.error = Some(error.clone());
                record.policies = slot
                    .record
                    .as_ref()
                    .map(|r| r.policies.clone())
                    .unwrap_or_default();
                tracing::warn!(target = %name, %error, failures = slot.failures, retry_in = ?wait, "target run failed");
            }
            other => {
                slot.failures = 0;
                slot.not_before = None;
                let delivered = match other {
                    Outcome::Pushed { commit, .. } => Some(commit),
                    Outcome::PullRequest { commit, action, .. } => {
                        m.pull_requests
                            .get_or_create(&label("action", action.as_str()))
                            .inc();
                        matches!(
                            action,
                            PullRequestAction::Created | PullRequestAction::Updated
                        )
                        .then_some(commit)
                    }
                    _ => None,
                };
                if let Some(commit) = delivered {
                    m.commits.inc();
                    m.pushes.get_or_create(&label("result", "ok")).inc();
                    record.commit = Some(commit.clone());
                }
                let used: BTreeSet<String> = report.policies.iter().cloned().collect();
                record.policies = used.iter().cloned().collect();
                slot.policies = Some(used);
                let t = &report.timings;
                tracing::info!(target = %name, outcome, changes = report.changes.len(), sync_ms = t.sync_ms, rewrite_ms = t.rewrite_ms, commit_ms = t.commit_ms, push_ms = t.push_ms, "target run finished");
            }
        }
        slot.record = Some(record.clone());
        let mut batch = Batch::default();
        batch.target(name, record);
        if let Err(e) = self.store.write(batch) {
            tracing::warn!(error = %e, "cannot record a target run in the state store");
        }
        self.schedule_window(i);
        self.publish();
    }

    fn publish(&self) {
        let view = self.view();
        let json = serde_json::to_string_pretty(&view).unwrap_or_default();
        self.status.send_replace(json);
    }

    fn view(&self) -> StatusView {
        let images = self
            .config
            .images
            .iter()
            .zip(&self.images)
            .map(|(image, slot)| ImageStatus {
                policy: image.id.to_string(),
                image: image.image.to_string(),
                last_scan: (slot.record.scanned_at > 0)
                    .then(|| timestamp(slot.record.scanned_at))
                    .flatten(),
                last_success: slot.record.succeeded_at.and_then(timestamp),
                next_scan: timestamp(wall_of(slot.due)),
                tags: slot.record.tags,
                selected: slot.record.selected.clone(),
                error: slot.record.error.clone(),
                failures: slot.failures,
            })
            .collect();
        let targets = self
            .config
            .targets
            .iter()
            .zip(&self.targets)
            .map(|(target, slot)| {
                let next_ms = match slot.next_run(Instant::now()) {
                    // Exactly the schedule's time, not a round trip through the clock.
                    Some(at) if Some(at) == slot.window => slot.window_ms,
                    other => other.map(wall_of),
                };
                TargetStatus {
                    name: target.name.clone(),
                    last_run: slot.record.as_ref().and_then(|r| timestamp(r.finished_at)),
                    outcome: slot.record.as_ref().map(|r| r.outcome.clone()),
                    commit: slot.record.as_ref().and_then(|r| r.commit.clone()),
                    error: slot.record.as_ref().and_then(|r| r.error.clone()),
                    running: slot.running,
                    pending: slot.pending,
                    next_run: next_ms.and_then(timestamp),
                    schedule: target.schedule.as_ref().map(ToString::to_string),
                    failures: slot.failures,
                }
            })
            .collect();
        StatusView {
            started_at: timestamp(self.started_at).unwrap_or_default(),
            images,
            targets,
        }
    }
}

impl TargetSlot {
    fn with_record(mut self, record: Option<TargetRecord>) -> Self {
        self.policies = record
            .as_ref()
            .filter(|r| r.outcome != "failed" || !r.policies.is_empty())
            .map(|r| r.policies.iter().cloned().collect());
        self.record = record;
        self
    }
}

/// What makes a stored selection reusable: the same image, rule, filter and digest mode. A
/// fingerprint that changes with a new tagsmith build only costs one rescan.
fn policy_fingerprint(image: &ImagePolicy) -> String {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::hash::DefaultHasher::new();
    format!("{:?}|{:?}|{:?}", image.image, image.policy, image.digest).hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

fn outcome_label(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Unchanged => "unchanged",
        Outcome::WouldCommit { .. } => "would_commit",
        Outcome::Pushed { .. } => "pushed",
        Outcome::PullRequest { .. } => "pull_request",
        Outcome::Failed { .. } => "failed",
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
    fn backoff_doubles_and_stays_under_its_caps() {
        let secs = |n| backoff(n, BACKOFF_MAX).as_secs();
        assert!((10..=11).contains(&secs(1)));
        assert!((20..=22).contains(&secs(2)));
        assert!((40..=44).contains(&secs(3)));
        assert!((600..=660).contains(&secs(30)));
        // A failed scan never waits longer than its interval.
        assert!(backoff(5, Duration::from_secs(60)).as_secs() <= 66);
    }

    #[test]
    fn wall_and_monotonic_times_convert_both_ways() {
        let at = now_ms() + 60_000;
        let back = wall_of(instant_of(at));
        assert!(back.abs_diff(at) < 50, "{back} vs {at}");
    }

    #[test]
    fn a_target_runs_only_for_the_policies_it_uses() {
        let a: PolicyId = "team-a:app".parse().unwrap();
        let b: PolicyId = "team-b:web".parse().unwrap();
        let fresh = TargetSlot::default();
        assert!(
            fresh.uses_any(&BTreeSet::from([b.clone()])),
            "unknown: runs"
        );
        let used = TargetSlot {
            policies: Some(BTreeSet::from([a.to_string()])),
            ..TargetSlot::default()
        };
        assert!(used.uses_any(&BTreeSet::from([a.clone(), b.clone()])));
        assert!(!used.uses_any(&BTreeSet::from([b])));
    }

    #[test]
    fn an_edited_policy_does_not_reuse_the_stored_selection() {
        let config = |range: &str| {
            let text = format!(
                "images:\n  - {{ policy: 'team-a:app', image: ghcr.io/org/app, semver: '{range}' }}\n\
                 targets:\n  - {{ name: prod, git: {{ url: 'file:///tmp/none' }} }}\n"
            );
            Config::parse(&text, std::path::Path::new("/tmp/tagsmith.yaml")).unwrap()
        };
        let a = policy_fingerprint(&config("^1").images[0]);
        assert_eq!(a, policy_fingerprint(&config("^1").images[0]));
        assert_ne!(a, policy_fingerprint(&config("~1.2").images[0]));
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
            tags: BTreeMap::new(),
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
            tags: BTreeMap::new(),
        };
        let mut known = Known::default();
        assert_eq!(known.merge(&ok), BTreeSet::from([id.clone()]));
        assert!(
            known.merge(&ok).is_empty(),
            "the same selection again is no change"
        );
        assert!(known.merge(&failed).is_empty());
        assert_eq!(known.selections.get(&id), Some(&selected));
        assert_eq!(known.snapshot().failed(&id), Some("registry down"));
    }
}
