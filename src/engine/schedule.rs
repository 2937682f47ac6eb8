//! What `tagsmith run` does next, decided without IO: a state machine fed with events (a tick,
//! a webhook, an image scanned, a target run finished) and the time, answering with commands
//! (scan these images, run that target for this reason, persist, publish the status). The
//! clock is passed in, so tests drive it in virtual time.
//!
//! Rules: each image is scanned on its interval (with jitter) or at once when a webhook names
//! it; a failed scan backs off and keeps the last good selection. A target runs at start, when
//! a selection it uses changed, when its own interval passed (to pick up markers edited in
//! Git), on a manual trigger, and to retry a failure (with backoff, or after the wait a rate
//! limit asked for; a failure no retry can fix waits for a change instead). A target never runs
//! twice at once: triggers that arrive while it runs make one more run afterwards. A target
//! with a `schedule` delivers only at the times it names. At most `concurrency` targets run.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::report::{Retry, TargetReport};
use super::select::{ImageReport, PolicyScan, SelectionSet};
use super::status::{ImageStatus, StatusView, TargetStatus, timestamp};
use crate::config::{Config, ImagePolicy, Schedule as Cron};
use crate::model::{ImageRef, PolicyId};
use crate::state::{ImageRecord, Snapshot, TargetRecord};

/// First wait after a failure; it doubles with each failure in a row.
pub const BACKOFF_START: Duration = Duration::from_secs(10);
/// The longest wait after failures (a failed scan also never waits longer than its interval).
pub const BACKOFF_MAX: Duration = Duration::from_secs(600);
/// A schedule that names no future time parks its changes this long (and says so in /status).
const PARKED: Duration = Duration::from_secs(365 * 24 * 3600);

/// A monotonic time in milliseconds since the driver started; arithmetic saturates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Mono(pub u64);

impl Mono {
    pub fn after(self, wait: Duration) -> Self {
        Self(self.0.saturating_add(millis(wait)))
    }
}

/// Whole milliseconds of `d`, saturating.
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The one clock: monotonic for waits, wall time (Unix ms) for records, cron and `/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub mono: Mono,
    pub wall_ms: u64,
}

impl Now {
    fn wall_of(self, at: Mono) -> u64 {
        if at >= self.mono {
            self.wall_ms.saturating_add(at.0 - self.mono.0)
        } else {
            self.wall_ms.saturating_sub(self.mono.0 - at.0)
        }
    }

    fn mono_of(self, wall_ms: u64) -> Mono {
        if wall_ms >= self.wall_ms {
            Mono(self.mono.0.saturating_add(wall_ms - self.wall_ms))
        } else {
            Mono(self.mono.0.saturating_sub(self.wall_ms - wall_ms))
        }
    }
}

/// Why a target runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Start,
    SelectionChanged,
    Resync,
    Retry,
    Manual,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::SelectionChanged => "selection changed",
            Self::Resync => "resync",
            Self::Retry => "retry",
            Self::Manual => "manual",
        }
    }
}

#[derive(Debug)]
pub enum Event {
    /// Time passed (the driver's wake-up).
    Tick,
    /// A webhook or `POST /scan` named these images (canonical names).
    Webhook {
        images: Vec<String>,
    },
    /// One policy's scan finished (image index into the config).
    Scanned {
        image: usize,
        scan: PolicyScan,
    },
    Finished {
        target: usize,
        report: TargetReport,
    },
    /// Someone asked for this target to run now.
    Manual {
        target: usize,
    },
}

#[derive(Debug)]
pub enum Command {
    /// Scan these images (config indices), which all watch one repository.
    Scan { images: Vec<usize> },
    Run {
        target: usize,
        reason: Reason,
        selections: SelectionSet,
    },
    /// A policy's selection changed to `selected`.
    Changed { image: usize, selected: ImageRef },
    /// Records for the state store.
    Persist {
        images: Vec<(String, ImageRecord)>,
        targets: Vec<(String, TargetRecord)>,
    },
    /// Problems that appeared in a target's markers since its last run.
    NewProblems {
        target: usize,
        problems: Vec<String>,
    },
    /// `/status` changed.
    Publish,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ImageState {
    Idle {
        due: Mono,
    },
    /// The last scan failed; the next waits longer.
    Backoff {
        due: Mono,
    },
    /// `again`: a webhook named it meanwhile, so it scans once more at once.
    Scanning {
        again: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TargetState {
    Idle {
        resync_at: Mono,
    },
    Pending {
        reason: Reason,
        not_before: Mono,
        /// The schedule's next time, exactly, when that is what `not_before` waits for.
        window_ms: Option<u64>,
    },
    Running {
        again: Option<Reason>,
    },
    /// The last run failed in a way a retry will not fix.
    Stalled {
        resync_at: Mono,
    },
}

#[derive(Debug)]
struct ImageSlot {
    id: PolicyId,
    image: String,
    canonical: String,
    interval: Duration,
    state: ImageState,
    failures: u32,
    record: ImageRecord,
    report: Option<ImageReport>,
}

#[derive(Debug)]
struct TargetSlot {
    name: String,
    interval: Duration,
    cron: Option<Cron>,
    state: TargetState,
    failures: u32,
    /// Policies its markers named at the last good run; `None` until one finished.
    policies: Option<BTreeSet<String>>,
    record: Option<TargetRecord>,
    problems: Vec<String>,
}

impl TargetSlot {
    fn uses_any(&self, changed: &BTreeSet<PolicyId>) -> bool {
        match &self.policies {
            None => true,
            Some(used) => changed.iter().any(|p| used.contains(&p.to_string())),
        }
    }
}

#[derive(Debug)]
pub struct Schedule {
    images: Vec<ImageSlot>,
    targets: Vec<TargetSlot>,
    selections: BTreeMap<PolicyId, ImageRef>,
    concurrency: usize,
    started_ms: u64,
    rng: fastrand::Rng,
    out: Vec<Command>,
    dirty: bool,
}

impl Schedule {
    /// The schedule at start, from the config and what the store kept: images scanned
    /// successfully within their interval are not due yet, and every target runs once.
    pub fn new(
        config: &Config,
        snapshot: &Snapshot,
        concurrency: usize,
        now: Now,
        seed: u64,
    ) -> Self {
        let mut selections = BTreeMap::new();
        let images = config
            .images
            .iter()
            .map(|image| {
                let slot = image_slot(image, snapshot, now);
                if let Some(selected) = slot.record.selected.as_deref()
                    && let Ok(reference) = selected.parse::<ImageRef>()
                {
                    selections.insert(image.id.clone(), reference);
                }
                slot
            })
            .collect();
        let targets = config
            .targets
            .iter()
            .map(|target| target_slot(target, snapshot.targets.get(&target.name).cloned(), now))
            .collect();
        let mut schedule = Self {
            images,
            targets,
            selections,
            concurrency: concurrency.max(1),
            started_ms: now.wall_ms,
            rng: fastrand::Rng::with_seed(seed),
            out: Vec::new(),
            dirty: true,
        };
        for i in 0..schedule.targets.len() {
            schedule.wait_for_window(i, now);
        }
        schedule
    }

    /// Takes in `event` at `now`; returns what to do.
    pub fn on(&mut self, event: Event, now: Now) -> Vec<Command> {
        match event {
            Event::Tick => {}
            Event::Webhook { images } => self.webhook(&images),
            Event::Scanned { image, scan } => self.scanned(image, scan, now),
            Event::Finished { target, report } => self.finished(target, &report, now),
            Event::Manual { target } => self.trigger(target, Reason::Manual, now, now.mono),
        }
        self.advance(now);
        if std::mem::take(&mut self.dirty) {
            self.out.push(Command::Publish);
        }
        std::mem::take(&mut self.out)
    }

    /// When something is next due if no event comes first; `None` when nothing is.
    pub fn next_wake(&self) -> Option<Mono> {
        let images = self.images.iter().filter_map(|slot| match slot.state {
            ImageState::Idle { due } | ImageState::Backoff { due } => Some(due),
            ImageState::Scanning { .. } => None,
        });
        let room = self.running() < self.concurrency;
        let targets = self.targets.iter().filter_map(|slot| match slot.state {
            TargetState::Idle { resync_at } | TargetState::Stalled { resync_at } => Some(resync_at),
            TargetState::Pending { not_before, .. } if room => Some(not_before),
            TargetState::Pending { .. } | TargetState::Running { .. } => None,
        });
        images.chain(targets).min()
    }

    /// The image's failed scans in a row.
    pub fn image_failures(&self, image: usize) -> u32 {
        self.images.get(image).map_or(0, |s| s.failures)
    }

    /// The targets with a run waiting (including those waiting for their schedule).
    pub fn pending(&self) -> usize {
        self.targets
            .iter()
            .filter(|t| matches!(t.state, TargetState::Pending { .. }))
            .count()
    }

    fn running(&self) -> usize {
        self.targets
            .iter()
            .filter(|t| matches!(t.state, TargetState::Running { .. }))
            .count()
    }

    fn jittered(&mut self, interval: Duration) -> Duration {
        jittered(&mut self.rng, interval)
    }

    fn webhook(&mut self, names: &[String]) {
        for slot in &mut self.images {
            if !names.contains(&slot.canonical) {
                continue;
            }
            slot.state = match slot.state {
                ImageState::Idle { .. } | ImageState::Backoff { .. } => {
                    ImageState::Idle { due: Mono(0) }
                }
                ImageState::Scanning { .. } => ImageState::Scanning { again: true },
            };
        }
    }

    fn scanned(&mut self, i: usize, scan: PolicyScan, now: Now) {
        let Some(interval) = self.images.get(i).map(|s| s.interval) else {
            return;
        };
        let failures = self.images[i].failures;
        let wait = if scan.report.failed {
            backoff(&mut self.rng, failures.saturating_add(1), interval)
        } else {
            self.jittered(interval)
        };
        let slot = &mut self.images[i];
        let again = matches!(slot.state, ImageState::Scanning { again: true });
        let due = if again {
            now.mono
        } else {
            now.mono.after(wait)
        };
        slot.record.scanned_at = now.wall_ms;
        slot.record.error.clone_from(&scan.report.error);
        if scan.report.failed {
            slot.failures = failures.saturating_add(1);
            slot.state = ImageState::Backoff { due };
        } else {
            slot.failures = 0;
            slot.record.succeeded_at = Some(now.wall_ms);
            slot.record.tags = scan.report.tags;
            slot.state = ImageState::Idle { due };
        }
        let id = slot.id.clone();
        slot.report = Some(scan.report);
        if let Some(selected) = scan.selection
            && self.selections.get(&id) != Some(&selected)
        {
            self.selections.insert(id.clone(), selected.clone());
            self.out.push(Command::Changed { image: i, selected });
            self.selection_changed(&BTreeSet::from([id.clone()]), now);
        }
        let slot = &mut self.images[i];
        slot.record.selected = self.selections.get(&id).map(ToString::to_string);
        self.out.push(Command::Persist {
            images: vec![(id.to_string(), slot.record.clone())],
            targets: Vec::new(),
        });
        self.dirty = true;
    }

    fn selection_changed(&mut self, changed: &BTreeSet<PolicyId>, now: Now) {
        for i in 0..self.targets.len() {
            if self.targets[i].uses_any(changed) {
                self.trigger(i, Reason::SelectionChanged, now, now.mono);
            }
        }
    }

    /// Makes a target run for `reason`, not before `not_before` (nor its schedule's time).
    fn trigger(&mut self, i: usize, reason: Reason, now: Now, not_before: Mono) {
        let Some(slot) = self.targets.get_mut(i) else {
            return;
        };
        match slot.state {
            TargetState::Idle { .. } | TargetState::Stalled { .. } => {
                slot.state = TargetState::Pending {
                    reason,
                    not_before,
                    window_ms: None,
                };
                self.wait_for_window(i, now);
            }
            // Already waiting: it will see this change too.
            TargetState::Pending { .. } => {}
            TargetState::Running { again } => {
                slot.state = TargetState::Running {
                    again: again.or(Some(reason)),
                };
            }
        }
        self.dirty = true;
    }

    /// A pending target with a schedule waits for its next time.
    fn wait_for_window(&mut self, i: usize, now: Now) {
        let slot = &mut self.targets[i];
        let (
            TargetState::Pending {
                reason, not_before, ..
            },
            Some(cron),
        ) = (slot.state, &slot.cron)
        else {
            return;
        };
        let wall = i64::try_from(now.wall_ms)
            .ok()
            .and_then(DateTime::<Utc>::from_timestamp_millis);
        let next = wall
            .and_then(|at| cron.next_from(at))
            .and_then(|at| u64::try_from(at.timestamp_millis()).ok());
        let (window, window_ms) = match next {
            Some(ms) => (now.mono_of(ms), Some(ms)),
            None => (now.mono.after(PARKED), None),
        };
        slot.state = TargetState::Pending {
            reason,
            not_before: not_before.max(window),
            window_ms: window_ms.filter(|_| window >= not_before),
        };
    }

    fn finished(&mut self, i: usize, report: &TargetReport, now: Now) {
        let Some(slot) = self.targets.get(i) else {
            return;
        };
        let again = match slot.state {
            TargetState::Running { again } => again,
            _ => None,
        };
        let kept: Vec<String> = slot
            .record
            .as_ref()
            .map(|r| r.policies.clone())
            .unwrap_or_default();
        let record = report.record(now.wall_ms, &kept);
        let failures = slot.failures;
        let (state, failures) = if report.is_failure() {
            let failures = failures.saturating_add(1);
            (
                self.after_failure(i, report.retry, failures, again, now),
                failures,
            )
        } else {
            let resync_at = now.mono.after(self.jittered(self.targets[i].interval));
            let state = match again {
                Some(reason) => TargetState::Pending {
                    reason,
                    not_before: now.mono,
                    window_ms: None,
                },
                None => TargetState::Idle { resync_at },
            };
            (state, 0)
        };
        let slot = &mut self.targets[i];
        slot.state = state;
        slot.failures = failures;
        if !matches!(report.outcome, super::Outcome::Failed { .. }) {
            slot.policies = Some(report.policies.iter().cloned().collect());
            let fresh: Vec<String> = report
                .problems
                .iter()
                .filter(|p| !slot.problems.contains(p))
                .cloned()
                .collect();
            slot.problems.clone_from(&report.problems);
            if !fresh.is_empty() {
                self.out.push(Command::NewProblems {
                    target: i,
                    problems: fresh,
                });
            }
        }
        let slot = &mut self.targets[i];
        slot.record = Some(record.clone());
        self.out.push(Command::Persist {
            images: Vec::new(),
            targets: vec![(slot.name.clone(), record)],
        });
        self.wait_for_window(i, now);
        self.dirty = true;
    }

    fn after_failure(
        &mut self,
        i: usize,
        retry: Retry,
        failures: u32,
        again: Option<Reason>,
        now: Now,
    ) -> TargetState {
        let wait = match retry {
            Retry::After(wait) => wait.max(BACKOFF_START),
            Retry::Backoff | Retry::Stalled => backoff(&mut self.rng, failures, BACKOFF_MAX),
        };
        let not_before = now.mono.after(wait);
        match (retry, again) {
            // A change arrived while it ran: that may be what fixes it.
            (Retry::Stalled, Some(reason)) => TargetState::Pending {
                reason,
                not_before,
                window_ms: None,
            },
            (Retry::Stalled, None) => TargetState::Stalled {
                resync_at: now.mono.after(self.jittered(self.targets[i].interval)),
            },
            _ => TargetState::Pending {
                reason: Reason::Retry,
                not_before,
                window_ms: None,
            },
        }
    }

    /// Starts what is due: resyncs, scans, and runs within the concurrency bound.
    fn advance(&mut self, now: Now) {
        for i in 0..self.targets.len() {
            if let TargetState::Idle { resync_at } | TargetState::Stalled { resync_at } =
                self.targets[i].state
                && resync_at <= now.mono
            {
                self.trigger(i, Reason::Resync, now, now.mono);
            }
        }
        self.start_scans(now);
        self.launch(now);
    }

    fn start_scans(&mut self, now: Now) {
        let mut by_repository: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, slot) in self.images.iter_mut().enumerate() {
            if let ImageState::Idle { due } | ImageState::Backoff { due } = slot.state
                && due <= now.mono
            {
                slot.state = ImageState::Scanning { again: false };
                by_repository
                    .entry(slot.canonical.clone())
                    .or_default()
                    .push(i);
            }
        }
        for images in by_repository.into_values() {
            self.dirty = true;
            self.out.push(Command::Scan { images });
        }
    }

    fn launch(&mut self, now: Now) {
        for i in 0..self.targets.len() {
            if self.running() >= self.concurrency {
                return;
            }
            let TargetState::Pending {
                reason, not_before, ..
            } = self.targets[i].state
            else {
                continue;
            };
            if not_before > now.mono {
                continue;
            }
            self.targets[i].state = TargetState::Running { again: None };
            self.dirty = true;
            let selections = self.selection_set();
            self.out.push(Command::Run {
                target: i,
                reason,
                selections,
            });
        }
    }

    /// What a run rewrites with: the last good selections, and why the others have none.
    fn selection_set(&self) -> SelectionSet {
        SelectionSet {
            selections: self.selections.clone(),
            reports: self
                .images
                .iter()
                .filter_map(|s| s.report.clone())
                .collect(),
            tags: BTreeMap::new(),
        }
    }

    /// What `/status` shows.
    pub fn view(&self, now: Now) -> StatusView {
        let images = self
            .images
            .iter()
            .map(|slot| image_status(slot, now))
            .collect();
        let targets = self
            .targets
            .iter()
            .map(|slot| target_status(slot, now))
            .collect();
        StatusView {
            started_at: timestamp(self.started_ms).unwrap_or_default(),
            images,
            targets,
        }
    }
}

fn image_status(slot: &ImageSlot, now: Now) -> ImageStatus {
    let next = match slot.state {
        ImageState::Idle { due } | ImageState::Backoff { due } => Some(due.max(now.mono)),
        ImageState::Scanning { .. } => Some(now.mono),
    };
    ImageStatus {
        policy: slot.id.to_string(),
        image: slot.image.clone(),
        last_scan: (slot.record.scanned_at > 0)
            .then(|| timestamp(slot.record.scanned_at))
            .flatten(),
        last_success: slot.record.succeeded_at.and_then(timestamp),
        next_scan: next.and_then(|at| timestamp(now.wall_of(at))),
        tags: slot.record.tags,
        selected: slot.record.selected.clone(),
        error: slot.record.error.clone(),
        failures: slot.failures,
    }
}

fn target_status(slot: &TargetSlot, now: Now) -> TargetStatus {
    let record = slot.record.as_ref();
    let (next_ms, reason) = match slot.state {
        TargetState::Pending {
            window_ms: Some(ms),
            reason,
            ..
        } => (Some(ms), Some(reason)),
        TargetState::Pending {
            not_before, reason, ..
        } => (Some(now.wall_of(not_before.max(now.mono))), Some(reason)),
        TargetState::Idle { resync_at } | TargetState::Stalled { resync_at } => {
            (Some(now.wall_of(resync_at)), None)
        }
        TargetState::Running { .. } => (None, None),
    };
    TargetStatus {
        name: slot.name.clone(),
        last_run: record.and_then(|r| timestamp(r.finished_at)),
        outcome: record.map(|r| r.outcome.clone()),
        commit: record.and_then(|r| r.commit.clone()),
        error: record.and_then(|r| r.error.clone()),
        running: matches!(slot.state, TargetState::Running { .. }),
        pending: matches!(slot.state, TargetState::Pending { .. }),
        reason: reason.map(|r| r.as_str().to_string()),
        stalled: matches!(slot.state, TargetState::Stalled { .. }),
        next_run: next_ms.and_then(timestamp),
        schedule: slot.cron.as_ref().map(ToString::to_string),
        failures: slot.failures,
        problems: slot.problems.clone(),
    }
}

fn image_slot(image: &ImagePolicy, snapshot: &Snapshot, now: Now) -> ImageSlot {
    let fingerprint = policy_fingerprint(image);
    let record = snapshot
        .images
        .get(&image.id.to_string())
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
        Some(at) if at == record.scanned_at => {
            now.mono_of(at.saturating_add(millis(image.interval)))
        }
        _ => now.mono,
    };
    ImageSlot {
        id: image.id.clone(),
        image: image.image.to_string(),
        canonical: image.image.canonical(),
        interval: image.interval,
        state: ImageState::Idle { due },
        failures: 0,
        record,
        report: None,
    }
}

fn target_slot(
    target: &crate::config::Target,
    record: Option<TargetRecord>,
    now: Now,
) -> TargetSlot {
    let policies = record
        .as_ref()
        .filter(|r| r.outcome != "failed" || !r.policies.is_empty())
        .map(|r| r.policies.iter().cloned().collect());
    TargetSlot {
        name: target.name.clone(),
        interval: target.interval,
        cron: target.schedule.clone(),
        // Every target runs once at start with what is known, so changes made in Git while
        // tagsmith was down are seen; a run with nothing to change commits nothing.
        state: TargetState::Pending {
            reason: Reason::Start,
            not_before: now.mono,
            window_ms: None,
        },
        failures: 0,
        policies,
        record,
        problems: Vec::new(),
    }
}

/// Up to a tenth of the interval added, so images configured alike do not scan in lockstep.
fn jittered(rng: &mut fastrand::Rng, interval: Duration) -> Duration {
    let extra = millis(interval) / 10;
    interval.saturating_add(Duration::from_millis(rng.u64(0..=extra)))
}

/// The wait after `failures` failures in a row, never above `cap`.
fn backoff(rng: &mut fastrand::Rng, failures: u32, cap: Duration) -> Duration {
    let exp = BACKOFF_START.saturating_mul(1 << failures.saturating_sub(1).min(16));
    jittered(rng, exp.min(BACKOFF_MAX).min(cap))
}

/// What makes a stored selection reusable: the same image, rule, filter and digest mode. A
/// fingerprint that changes with a new tagsmith build only costs one rescan.
pub fn policy_fingerprint(image: &ImagePolicy) -> String {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::hash::DefaultHasher::new();
    format!("{:?}|{:?}|{:?}", image.image, image.policy, image.digest).hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}
