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

use super::report::{ChangeReport, Outcome, Retry, TargetReport};
use super::select::{ImageReport, PolicyScan, SelectionSet};
use crate::config::{Config, ImagePolicy, Schedule as Cron};
use crate::model::{ImageRef, PolicyId};
use crate::state::{ImageRecord, Snapshot, TargetRecord};
use crate::status::{ImageStatus, PendingChange, StatusView, TargetStatus, timestamp};

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
        /// A dry run of a target its schedule holds: it finds the pending changes for
        /// `/status` and delivers nothing.
        preview: bool,
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
    /// Scanned in this process, or a selection kept from before: the start-up run waits until
    /// every image is, so it does not report markers whose policy simply was not scanned yet.
    known: bool,
    /// `suspend: true`: never scanned, never selected.
    suspended: bool,
}

#[derive(Debug)]
struct TargetSlot {
    name: String,
    /// The repository (credentials never appear in it: config refuses them) and the branch
    /// it reads, for `/status`.
    repository: String,
    branch: String,
    interval: Duration,
    cron: Option<Cron>,
    state: TargetState,
    failures: u32,
    /// Policies its markers named at the last good run; `None` until one finished.
    policies: Option<BTreeSet<String>>,
    record: Option<TargetRecord>,
    problems: Vec<String>,
    /// The last run's pull request, when it delivered through one.
    pull_request: Option<String>,
    /// Marker edits not on the branch yet (see [`TargetStatus::pending_changes`]).
    pending_changes: Vec<ChangeReport>,
    /// Markers held for a person's rollback, as the last run (or preview) left them.
    holds: Vec<crate::status::HoldStatus>,
    /// A preview is running, with the selections of this generation.
    previewing: Option<u64>,
    /// The selection generation the last preview (or run) saw.
    previewed: Option<u64>,
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
    /// Counts selection changes, so a preview is repeated only when something changed.
    generation: u64,
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
                    && !slot.suspended
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
            generation: 0,
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
            _ if slot.suspended => None,
            ImageState::Idle { due } | ImageState::Backoff { due } => Some(due),
            ImageState::Scanning { .. } => None,
        });
        let room = self.running() < self.concurrency;
        let scanned = self.first_scans_done();
        let targets = self.targets.iter().filter_map(|slot| match slot.state {
            TargetState::Idle { resync_at } | TargetState::Stalled { resync_at } => Some(resync_at),
            TargetState::Pending {
                reason: Reason::Start,
                ..
            } if !scanned => None,
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

    fn first_scans_done(&self) -> bool {
        self.images.iter().all(|slot| slot.known)
    }

    /// Runs and previews under way: both hold a worker and the target's workspace.
    fn running(&self) -> usize {
        self.targets
            .iter()
            .filter(|t| matches!(t.state, TargetState::Running { .. }) || t.previewing.is_some())
            .count()
    }

    fn jittered(&mut self, interval: Duration) -> Duration {
        jittered(&mut self.rng, interval)
    }

    fn webhook(&mut self, names: &[String]) {
        for slot in &mut self.images {
            if slot.suspended || !names.contains(&slot.canonical) {
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
        // A tag held back by minAge is looked at again the moment it comes of age.
        let due = match scan.report.retry_at {
            Some(at) if !scan.report.failed => due.min(
                now.mono
                    .after(Duration::from_millis(at.saturating_sub(now.wall_ms))),
            ),
            _ => due,
        };
        slot.known = true;
        slot.record.scanned(
            now.wall_ms,
            scan.report.failed,
            scan.report.error.as_deref(),
            scan.report.tags,
        );
        if scan.report.failed {
            slot.failures = failures.saturating_add(1);
            slot.state = ImageState::Backoff { due };
        } else {
            slot.failures = 0;
            slot.state = ImageState::Idle { due };
        }
        let id = slot.id.clone();
        slot.report = Some(scan.report);
        if let Some(selected) = scan.selection
            && self.selections.get(&id) != Some(&selected)
        {
            self.selections.insert(id.clone(), selected.clone());
            self.generation += 1;
            self.images[i].record.changed_at = Some(now.wall_ms);
            self.out.push(Command::Changed { image: i, selected });
            self.selection_changed(&BTreeSet::from([id.clone()]), now);
        }
        let slot = &mut self.images[i];
        if let Some(selected) = self.selections.get(&id) {
            // The listing goes with the selection only when this scan made it.
            let listing = slot
                .report
                .as_ref()
                .filter(|r| r.selected.as_deref() == Some(selected.to_string().as_str()))
                .and_then(|r| r.listing.as_ref().map(|l| l.id.clone()));
            slot.record
                .select(&selected.to_string(), listing.as_deref(), now.wall_ms);
        }
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
            // Already waiting: it will see this change too; a start-up run that waits for the
            // first scans need not wait any more.
            TargetState::Pending {
                reason: Reason::Start,
                not_before,
                window_ms,
            } if reason != Reason::Retry => {
                slot.state = TargetState::Pending {
                    reason,
                    not_before,
                    window_ms,
                };
            }
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
        let Some(slot) = self.targets.get_mut(i) else {
            return;
        };
        if let Some(generation) = slot.previewing.take() {
            // A preview leaves the target pending; a failed one just shows nothing.
            if !report.is_failure() {
                slot.pending_changes.clone_from(&report.changes);
                slot.holds.clone_from(&report.holds);
                slot.policies = Some(report.policies.iter().cloned().collect());
            }
            slot.previewed = Some(generation);
            self.dirty = true;
            return;
        }
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
        if !matches!(report.outcome, Outcome::Failed { .. }) {
            slot.policies = Some(report.policies.iter().cloned().collect());
            self.note_problems(i, &report.problems);
        }
        let slot = &mut self.targets[i];
        (slot.pull_request, slot.pending_changes) = match &report.outcome {
            Outcome::PullRequest { url, action, .. } => (
                Some(url.clone()),
                // A pull request a person closed carries nothing that will land.
                if *action == super::report::PullRequestAction::LeftClosed {
                    Vec::new()
                } else {
                    report.changes.clone()
                },
            ),
            Outcome::Failed { .. } | Outcome::WouldCommit { .. } => (None, report.changes.clone()),
            Outcome::Unchanged | Outcome::Pushed { .. } => (None, Vec::new()),
        };
        let slot = &mut self.targets[i];
        slot.holds.clone_from(&report.holds);
        slot.record = Some(record.clone());
        self.out.push(Command::Persist {
            images: Vec::new(),
            targets: vec![(slot.name.clone(), record)],
        });
        self.wait_for_window(i, now);
        self.dirty = true;
    }

    /// Keeps the target's problems; those not seen at its last run are announced.
    fn note_problems(&mut self, i: usize, problems: &[String]) {
        let slot = &mut self.targets[i];
        let fresh: Vec<String> = problems
            .iter()
            .filter(|p| !slot.problems.contains(p))
            .cloned()
            .collect();
        slot.problems = problems.to_vec();
        if !fresh.is_empty() {
            self.out.push(Command::NewProblems {
                target: i,
                problems: fresh,
            });
        }
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
                && !slot.suspended
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
            let slot = &self.targets[i];
            if slot.previewing.is_some() || !self.first_scans_done() && reason == Reason::Start {
                continue;
            }
            if not_before > now.mono {
                self.preview(i, reason);
                continue;
            }
            let slot = &mut self.targets[i];
            slot.state = TargetState::Running { again: None };
            slot.previewed = Some(self.generation);
            self.dirty = true;
            let selections = self.selection_set();
            self.out.push(Command::Run {
                target: i,
                reason,
                selections,
                preview: false,
            });
        }
    }

    /// A target its schedule holds gets a dry run whenever the selections changed since it
    /// last saw them, so `/status` can say what will move when the window opens.
    fn preview(&mut self, i: usize, reason: Reason) {
        let slot = &mut self.targets[i];
        let TargetState::Pending {
            window_ms: Some(_), ..
        } = slot.state
        else {
            return;
        };
        if slot.previewed == Some(self.generation) {
            return;
        }
        slot.previewing = Some(self.generation);
        self.dirty = true;
        let selections = self.selection_set();
        self.out.push(Command::Run {
            target: i,
            reason,
            selections,
            preview: true,
        });
    }

    /// What a run rewrites with: the last good selections, and why the others have none.
    /// The last selections of `images` (indexes into the config's images), for a scan that
    /// keeps the digests it has (see [`super::select::Known`]).
    pub fn last_selections(&self, images: &[usize]) -> super::select::Known {
        images
            .iter()
            .filter_map(|&i| self.images.get(i))
            .filter_map(|slot| {
                let selected = self.selections.get(&slot.id)?;
                Some((slot.id.clone(), selected.clone()))
            })
            .collect()
    }

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
            notifications: Vec::new(),
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
        digest: slot
            .record
            .selected
            .as_deref()
            .and_then(|s| s.split_once('@'))
            .map(|(_, digest)| digest.to_string()),
        changed_at: slot.record.changed_at.and_then(timestamp),
        error: slot.record.error.clone(),
        failures: slot.failures,
        suspended: slot.suspended,
        stopped: slot
            .report
            .as_ref()
            .map(|r| r.stopped.iter().map(ToString::to_string).collect())
            .unwrap_or_default(),
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
        repository: slot.repository.clone(),
        branch: slot.branch.clone(),
        last_run: record.and_then(|r| timestamp(r.finished_at)),
        outcome: record.map(|r| r.outcome.clone()),
        commit: record.and_then(|r| r.commit.clone()),
        pull_request: slot.pull_request.clone(),
        error: record.and_then(|r| r.error.clone()),
        running: matches!(slot.state, TargetState::Running { .. }),
        pending: matches!(slot.state, TargetState::Pending { .. }),
        reason: reason.map(|r| r.as_str().to_string()),
        stalled: matches!(slot.state, TargetState::Stalled { .. }),
        next_run: next_ms.and_then(timestamp),
        schedule: slot.cron.as_ref().map(ToString::to_string),
        failures: slot.failures,
        problems: slot.problems.clone(),
        pending_changes: slot
            .pending_changes
            .iter()
            .map(|c| PendingChange {
                policy: c.policy.clone(),
                file: c.file.clone(),
                line: c.line,
                old: c.old.clone(),
                new: c.new.clone(),
            })
            .collect(),
        holds: slot.holds.clone(),
    }
}

/// The stored record of `image`'s policy; a record of another image or of the policy before
/// an edit starts over (`once` and the service alike).
pub fn stored_record(image: &ImagePolicy, snapshot: &Snapshot) -> ImageRecord {
    let fingerprint = policy_fingerprint(image);
    snapshot
        .images
        .get(&image.id.to_string())
        .filter(|r| r.image == image.image.to_string() && r.policy == fingerprint)
        .cloned()
        .unwrap_or_else(|| ImageRecord {
            image: image.image.to_string(),
            policy: fingerprint,
            ..ImageRecord::default()
        })
}

fn image_slot(image: &ImagePolicy, snapshot: &Snapshot, now: Now) -> ImageSlot {
    // A policy edited while tagsmith was down starts over.
    let record = stored_record(image, snapshot);
    // A restart scans only what is due; a failed or unknown last scan is due now.
    let due = match record.succeeded_at {
        Some(at) if at == record.scanned_at => {
            now.mono_of(at.saturating_add(millis(image.interval)))
        }
        _ => now.mono,
    };
    ImageSlot {
        // A suspended image is known as it is: the start-up run does not wait for its scan.
        known: image.suspend || record.selected.is_some() || record.succeeded_at.is_some(),
        suspended: image.suspend,
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
        repository: crate::git::redact_url(&target.git.url),
        branch: target.git.branch.clone(),
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
        pull_request: None,
        pending_changes: Vec::new(),
        holds: Vec::new(),
        previewing: None,
        previewed: None,
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
    use std::fmt::Write as _;
    use std::hash::Hasher as _;
    /// Hashes what is formatted into it, without the string: the same bytes, in the same
    /// order, as hashing the formatted `str` (whose `Hash` ends with `0xff`).
    struct Hashing(std::hash::DefaultHasher);
    impl std::fmt::Write for Hashing {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0.write(s.as_bytes());
            Ok(())
        }
    }
    let mut hashing = Hashing(std::hash::DefaultHasher::new());
    // Formatting into the hasher cannot fail.
    let _ = write!(
        hashing,
        "{:?}|{:?}|{:?}",
        image.image, image.policy, image.digest
    );
    hashing.0.write_u8(0xff);
    format!("{:016x}", hashing.0.finish())
}

#[cfg(test)]
mod tests {
    //! The service's scheduling scenarios in virtual time: no sockets, no sleeps.

    use super::*;
    use crate::engine::report::{Outcome, RunError};
    use crate::forge::{Action, ForgeError};

    const S: u64 = 1000;

    fn config(images: &str, targets: &str) -> Config {
        let text = format!("images:\n{images}targets:\n{targets}");
        Config::parse(&text, std::path::Path::new("/tmp/tagsmith.yaml")).unwrap()
    }

    /// One image (`team-a:app`, every 5 minutes) and one target (`prod`, every 10 minutes).
    fn simple() -> Config {
        config(
            "  - { policy: 'team-a:app', image: reg.example/org/app, semver: '^1', interval: 5m }\n",
            "  - { name: prod, git: { url: 'file:///tmp/none' }, interval: 10m }\n",
        )
    }

    fn at(ms: u64) -> Now {
        Now {
            mono: Mono(ms),
            wall_ms: ms.saturating_add(1_700_000_000_000),
        }
    }

    fn scan_ok(image: &str, policy: &str, tag: &str) -> PolicyScan {
        let selected: ImageRef = format!("{image}:{tag}").parse().unwrap();
        PolicyScan {
            report: ImageReport {
                policy: policy.into(),
                image: image.into(),
                tags: Some(2),
                selected: Some(selected.to_string()),
                error: None,
                failed: false,
                transient: false,
                stopped: Vec::new(),
                retry_at: None,
                listing: None,
            },
            selection: Some(selected),
        }
    }

    fn scan_failed(image: &str, policy: &str) -> PolicyScan {
        PolicyScan {
            report: ImageReport {
                policy: policy.into(),
                image: image.into(),
                tags: None,
                selected: None,
                error: Some("registry down".into()),
                failed: true,
                transient: true,
                stopped: Vec::new(),
                retry_at: None,
                listing: None,
            },
            selection: None,
        }
    }

    fn done(policies: &[&str]) -> TargetReport {
        let mut report = TargetReport::new("prod");
        report.policies = policies.iter().map(ToString::to_string).collect();
        report
    }

    fn failed(error: &RunError) -> TargetReport {
        TargetReport::failed("prod", error)
    }

    fn runs(commands: &[Command]) -> Vec<(usize, Reason)> {
        commands
            .iter()
            .filter_map(|c| match c {
                Command::Run {
                    target,
                    reason,
                    preview: false,
                    ..
                } => Some((*target, *reason)),
                _ => None,
            })
            .collect()
    }

    /// The dry runs of targets their schedule holds.
    fn previews(commands: &[Command]) -> Vec<usize> {
        commands
            .iter()
            .filter_map(|c| match c {
                Command::Run {
                    target,
                    preview: true,
                    ..
                } => Some(*target),
                _ => None,
            })
            .collect()
    }

    fn scans(commands: &[Command]) -> Vec<Vec<usize>> {
        commands
            .iter()
            .filter_map(|c| match c {
                Command::Scan { images } => Some(images.clone()),
                _ => None,
            })
            .collect()
    }

    fn start(config: &Config, concurrency: usize) -> (Schedule, Vec<Command>) {
        let mut schedule = Schedule::new(config, &Snapshot::default(), concurrency, at(0), 7);
        let first = schedule.on(Event::Tick, at(0));
        (schedule, first)
    }

    /// Starts `simple()` and lets the first scan and run finish with 1.1.0 selected.
    fn settled() -> Schedule {
        let (mut s, _) = start(&simple(), 4);
        let out = s.on(
            Event::Scanned {
                image: 0,
                scan: scan_ok("reg.example/org/app", "team-a:app", "1.1.0"),
            },
            at(100),
        );
        assert_eq!(runs(&out), vec![(0, Reason::SelectionChanged)]);
        let after = s.on(
            Event::Finished {
                target: 0,
                report: done(&["team-a:app"]),
            },
            at(200),
        );
        assert!(runs(&after).is_empty());
        s
    }

    /// [`start`], then every image's first scan selects nothing: the start-up runs go ahead.
    fn started(config: &Config, concurrency: usize) -> (Schedule, Vec<Command>) {
        let (mut s, _) = start(config, concurrency);
        let mut out = Vec::new();
        for (i, image) in config.images.iter().enumerate() {
            let mut scan = scan_failed(&image.image.to_string(), &image.id.to_string());
            scan.report.failed = false;
            scan.report.tags = Some(0);
            out.extend(s.on(Event::Scanned { image: i, scan }, at(1)));
        }
        (s, out)
    }

    #[test]
    fn at_start_every_image_scans_and_every_target_runs_once_the_first_scans_are_in() {
        let (_, first) = start(&simple(), 4);
        assert_eq!(scans(&first), vec![vec![0]]);
        assert!(
            runs(&first).is_empty(),
            "the start-up run waits for the first scans"
        );
        assert!(first.iter().any(|c| matches!(c, Command::Publish)));
        let (_, out) = started(&simple(), 4);
        assert_eq!(
            runs(&out),
            vec![(0, Reason::Start)],
            "a failed scan counts as in"
        );
    }

    #[test]
    fn policies_watching_one_repository_share_its_scan() {
        let config = config(
            "  - { policy: 'team-a:app', image: reg.example/org/app, semver: '^1' }\n\
             \x20 - { policy: 'team-b:app', image: reg.example/org/app, semver: '^2' }\n\
             \x20 - { policy: 'team-c:web', image: other.example/org/web, semver: '^1' }\n",
            "  - { name: prod, git: { url: 'file:///tmp/none' } }\n",
        );
        let (_, first) = start(&config, 4);
        let mut got = scans(&first);
        got.sort();
        assert_eq!(got, vec![vec![0, 1], vec![2]]);
    }

    #[test]
    fn a_slow_scan_of_one_repository_does_not_hold_up_another() {
        let config = config(
            "  - { policy: 'team-a:slow', image: slow.example/org/app, semver: '^1' }\n\
             \x20 - { policy: 'team-b:fast', image: fast.example/org/web, semver: '^1' }\n",
            "  - { name: prod, git: { url: 'file:///tmp/none' } }\n",
        );
        let (mut s, _) = start(&config, 4);
        // The slow image's first scan never finishes; the fast one finishes and changes.
        let after = s.on(
            Event::Scanned {
                image: 1,
                scan: scan_ok("fast.example/org/web", "team-b:fast", "1.2.0"),
            },
            at(100),
        );
        assert_eq!(runs(&after), vec![(0, Reason::SelectionChanged)]);
        let out = s.on(
            Event::Finished {
                target: 0,
                report: done(&["team-a:slow", "team-b:fast"]),
            },
            at(200),
        );
        assert!(runs(&out).is_empty());
        // A webhook for the fast image scans it at once, the slow one still in flight.
        let hooked = s.on(
            Event::Webhook {
                images: vec!["fast.example/org/web".into()],
            },
            at(300),
        );
        assert_eq!(scans(&hooked), vec![vec![1]]);
    }

    #[test]
    fn webhooks_while_a_scan_runs_coalesce_into_one_more_scan() {
        let (mut s, _) = start(&simple(), 4);
        let name = || Event::Webhook {
            images: vec!["reg.example/org/app".into()],
        };
        for ms in [10, 20, 30] {
            assert!(
                scans(&s.on(name(), at(ms))).is_empty(),
                "one scan at a time"
            );
        }
        let after = s.on(
            Event::Scanned {
                image: 0,
                scan: scan_ok("reg.example/org/app", "team-a:app", "1.1.0"),
            },
            at(40),
        );
        assert_eq!(scans(&after), vec![vec![0]], "exactly one more scan");
    }

    #[test]
    fn a_change_while_the_target_runs_makes_one_more_run_afterwards() {
        let (mut s, _) = started(&simple(), 4);
        let change = |s: &mut Schedule, tag: &str, ms| {
            s.on(
                Event::Webhook {
                    images: vec!["reg.example/org/app".into()],
                },
                at(ms),
            );
            s.on(
                Event::Scanned {
                    image: 0,
                    scan: scan_ok("reg.example/org/app", "team-a:app", tag),
                },
                at(ms + 1),
            )
        };
        // The start run is in flight: neither change starts a second one.
        assert!(runs(&change(&mut s, "1.1.0", 10)).is_empty());
        assert!(runs(&change(&mut s, "1.2.0", 20)).is_empty());
        let after = s.on(
            Event::Finished {
                target: 0,
                report: done(&["team-a:app"]),
            },
            at(30),
        );
        assert_eq!(runs(&after), vec![(0, Reason::SelectionChanged)]);
        let last = s.on(
            Event::Finished {
                target: 0,
                report: done(&["team-a:app"]),
            },
            at(40),
        );
        assert!(runs(&last).is_empty(), "nothing new: no third run");
    }

    #[test]
    fn a_target_runs_only_for_the_policies_it_uses() {
        let mut s = settled();
        s.targets[0].policies = Some(BTreeSet::from(["team-z:other".to_string()]));
        s.on(
            Event::Webhook {
                images: vec!["reg.example/org/app".into()],
            },
            at(1_000),
        );
        let after = s.on(
            Event::Scanned {
                image: 0,
                scan: scan_ok("reg.example/org/app", "team-a:app", "1.9.0"),
            },
            at(1_001),
        );
        assert!(after.iter().any(|c| matches!(c, Command::Changed { .. })));
        assert!(runs(&after).is_empty());
    }

    #[test]
    fn a_failed_scan_backs_off_doubling_within_its_interval_and_keeps_the_selection() {
        let mut s = settled();
        let mut now = 1_000;
        let mut waits = Vec::new();
        for _ in 0..7 {
            s.on(
                Event::Webhook {
                    images: vec!["reg.example/org/app".into()],
                },
                at(now),
            );
            let out = s.on(
                Event::Scanned {
                    image: 0,
                    scan: scan_failed("reg.example/org/app", "team-a:app"),
                },
                at(now + 1),
            );
            assert!(!out.iter().any(|c| matches!(c, Command::Changed { .. })));
            assert!(runs(&out).is_empty(), "a failed scan changes nothing");
            let ImageState::Backoff { due } = s.images[0].state else {
                panic!("{:?}", s.images[0].state);
            };
            waits.push((due.0 - (now + 1)) / S);
            now = due.0;
        }
        // 10, 20, 40, 80, 160 s, then the 5-minute interval caps it (plus up to 10% jitter).
        let expected = [10, 20, 40, 80, 160, 300, 300];
        for (wait, want) in waits.iter().zip(expected) {
            assert!((want..=want + want / 10).contains(wait), "{waits:?}");
        }
        assert_eq!(s.image_failures(0), 7);
        assert_eq!(
            s.selection_set()
                .selections
                .values()
                .next()
                .unwrap()
                .to_string(),
            "reg.example/org/app:1.1.0"
        );
        assert_eq!(
            s.selection_set().failed(&"team-a:app".parse().unwrap()),
            Some("registry down")
        );
        s.on(
            Event::Scanned {
                image: 0,
                scan: scan_ok("reg.example/org/app", "team-a:app", "1.1.0"),
            },
            at(now),
        );
        assert_eq!(s.image_failures(0), 0, "a good scan resets the count");
    }

    #[test]
    fn a_restart_scans_only_what_is_due_and_keeps_its_selection() {
        let config = simple();
        let fingerprint = policy_fingerprint(&config.images[0]);
        let scanned = at(0).wall_ms - 60 * S;
        let snapshot = Snapshot {
            images: BTreeMap::from([(
                "team-a:app".to_string(),
                ImageRecord {
                    image: "reg.example/org/app".into(),
                    policy: fingerprint,
                    scanned_at: scanned,
                    succeeded_at: Some(scanned),
                    tags: Some(2),
                    selected: Some("reg.example/org/app:1.1.0".into()),
                    changed_at: None,
                    error: None,
                    listing: None,
                },
            )]),
            ..Snapshot::default()
        };
        let mut s = Schedule::new(&config, &snapshot, 4, at(0), 7);
        let first = s.on(Event::Tick, at(0));
        assert!(
            scans(&first).is_empty(),
            "scanned a minute ago: due in four"
        );
        let run = first.iter().find_map(|c| match c {
            Command::Run { selections, .. } => Some(selections.clone()),
            _ => None,
        });
        assert_eq!(
            run.unwrap().selections.values().next().unwrap().to_string(),
            "reg.example/org/app:1.1.0",
            "the start run uses the stored selection"
        );
        s.on(
            Event::Finished {
                target: 0,
                report: done(&["team-a:app"]),
            },
            at(10),
        );
        assert_eq!(s.next_wake(), Some(Mono(240 * S)));
        assert_eq!(scans(&s.on(Event::Tick, at(240 * S))), vec![vec![0]]);
        // An edited policy does not reuse the stored selection: it scans at once.
        let edited = config_with_range("~1.2");
        let mut s = Schedule::new(&edited, &snapshot, 4, at(0), 7);
        assert_eq!(scans(&s.on(Event::Tick, at(0))), vec![vec![0]]);
    }

    fn config_with_range(range: &str) -> Config {
        config(
            &format!(
                "  - {{ policy: 'team-a:app', image: reg.example/org/app, semver: '{range}' }}\n"
            ),
            "  - { name: prod, git: { url: 'file:///tmp/none' } }\n",
        )
    }

    #[test]
    fn a_target_with_a_schedule_delivers_only_at_its_times() {
        let config = config(
            "  - { policy: 'team-a:app', image: reg.example/org/app, semver: '^1', interval: 24h }\n",
            "  - { name: prod, git: { url: 'file:///tmp/none' }, schedule: '0 0 * * *', interval: 24h }\n",
        );
        // 2023-11-14T22:13:20Z: the next midnight is 6400 s away.
        let (mut s, first) = started(&config, 4);
        assert!(
            runs(&first).is_empty(),
            "even the start-up run waits for the window"
        );
        let view = s.view(at(0));
        assert_eq!(
            view.targets[0].next_run.as_deref(),
            Some("2023-11-15T00:00:00.000Z")
        );
        assert!(view.targets[0].pending);
        assert_eq!(previews(&first), vec![0], "a dry run finds what is pending");
        s.on(
            Event::Finished {
                target: 0,
                report: done(&["team-a:app"]),
            },
            at(2),
        );
        assert_eq!(s.next_wake(), Some(Mono(6_400 * S)));
        assert!(runs(&s.on(Event::Tick, at(6_399 * S))).is_empty());
        assert_eq!(
            runs(&s.on(Event::Tick, at(6_400 * S))),
            vec![(0, Reason::Start)]
        );
    }

    #[test]
    fn a_target_its_schedule_holds_shows_its_pending_changes_from_a_dry_run() {
        const DIGEST: &str =
            "sha256:abababababababababababababababababababababababababababababababab";
        let config = config(
            "  - { policy: 'team-a:app', image: reg.example/org/app, semver: '^1', interval: 24h }\n",
            "  - { name: prod, git: { url: 'file:///tmp/none' }, schedule: '0 0 * * *', interval: 24h }\n",
        );
        let (mut s, _) = start(&config, 4);
        let out = s.on(
            Event::Scanned {
                image: 0,
                scan: scan_ok(
                    "reg.example/org/app",
                    "team-a:app",
                    &format!("1.1.0@{DIGEST}"),
                ),
            },
            at(100),
        );
        assert!(runs(&out).is_empty(), "delivery waits for the window");
        assert_eq!(previews(&out), vec![0]);
        let image = &s.view(at(100)).images[0];
        assert_eq!(
            image.changed_at.as_deref(),
            Some("2023-11-14T22:13:20.100Z")
        );
        assert_eq!(image.digest.as_deref(), Some(DIGEST));
        // While the preview runs, nothing else starts for the target, not even another one.
        assert!(previews(&s.on(Event::Manual { target: 0 }, at(150))).is_empty());
        let mut report = done(&["team-a:app"]);
        report.outcome = Outcome::WouldCommit {
            diff: String::new(),
        };
        report.changes = vec![ChangeReport {
            file: "apps/app.yaml".into(),
            line: 3,
            policy: "team-a:app".into(),
            old: "reg.example/org/app:1.0.0".into(),
            new: "reg.example/org/app:1.1.0".into(),
        }];
        let out = s.on(Event::Finished { target: 0, report }, at(200));
        assert!(previews(&out).is_empty() && runs(&out).is_empty());
        let target = &s.view(at(200)).targets[0];
        assert!(target.pending, "still held by its schedule");
        assert!(target.last_run.is_none(), "a preview is not a run");
        assert_eq!(
            target.pending_changes,
            vec![PendingChange {
                policy: "team-a:app".into(),
                file: "apps/app.yaml".into(),
                line: 3,
                old: "reg.example/org/app:1.0.0".into(),
                new: "reg.example/org/app:1.1.0".into(),
            }]
        );
        // The same selections are not previewed again; a new one is.
        assert!(previews(&s.on(Event::Tick, at(300))).is_empty());
        let out = s.on(
            Event::Scanned {
                image: 0,
                scan: scan_ok("reg.example/org/app", "team-a:app", "1.2.0"),
            },
            at(400),
        );
        assert_eq!(previews(&out), vec![0]);
    }

    #[test]
    fn a_pull_request_run_shows_its_link_and_the_changes_it_carries() {
        let mut s = settled();
        s.on(Event::Manual { target: 0 }, at(300));
        let mut report = done(&["team-a:app"]);
        report.outcome = Outcome::PullRequest {
            number: 7,
            url: "https://github.example/org/repo/pull/7".into(),
            action: crate::engine::report::PullRequestAction::Created,
            branch: "tagsmith/prod".into(),
            commit: "abc".into(),
        };
        report.changes = vec![ChangeReport {
            file: "a.yaml".into(),
            line: 1,
            policy: "team-a:app".into(),
            old: "1.0.0".into(),
            new: "1.1.0".into(),
        }];
        s.on(Event::Finished { target: 0, report }, at(400));
        let target = &s.view(at(400)).targets[0];
        assert_eq!(
            target.pull_request.as_deref(),
            Some("https://github.example/org/repo/pull/7")
        );
        assert_eq!(target.pending_changes.len(), 1);
        s.on(Event::Manual { target: 0 }, at(500));
        s.on(
            Event::Finished {
                target: 0,
                report: done(&["team-a:app"]),
            },
            at(600),
        );
        let target = &s.view(at(600)).targets[0];
        assert!(target.pull_request.is_none() && target.pending_changes.is_empty());
    }

    #[test]
    fn a_failed_run_is_retried_after_a_backoff() {
        let (mut s, _) = started(&simple(), 4);
        let down = RunError::Forge(ForgeError::Status {
            action: Action::ListPullRequests,
            status: 502,
            message: String::new(),
        });
        s.on(
            Event::Finished {
                target: 0,
                report: failed(&down),
            },
            at(1_000),
        );
        let view = s.view(at(1_000));
        assert!(view.targets[0].pending);
        assert_eq!(view.targets[0].failures, 1);
        assert_eq!(view.targets[0].reason.as_deref(), Some("retry"));
        let next = s.next_wake().unwrap().0;
        assert!((11_000..=12_000).contains(&next), "{next}");
        assert!(
            runs(&s.on(Event::Tick, at(next - 1))).is_empty(),
            "not before the backoff"
        );
        assert_eq!(runs(&s.on(Event::Tick, at(next))), vec![(0, Reason::Retry)]);
        s.on(
            Event::Finished {
                target: 0,
                report: failed(&down),
            },
            at(next),
        );
        let second = s.next_wake().unwrap().0 - next;
        assert!((20_000..=22_000).contains(&second), "doubles: {second}");
    }

    #[test]
    fn a_rate_limit_waits_as_long_as_the_forge_asked() {
        let (mut s, _) = started(&simple(), 4);
        let limited = RunError::Forge(ForgeError::RateLimited {
            action: Action::CreatePullRequest,
            wait: Duration::from_secs(120),
        });
        s.on(
            Event::Finished {
                target: 0,
                report: failed(&limited),
            },
            at(0),
        );
        assert_eq!(s.next_wake(), Some(Mono(120 * S)));
    }

    #[test]
    fn a_permanent_failure_stalls_until_something_changes() {
        let (mut s, _) = started(&simple(), 4);
        let foreign = RunError::ForeignCommits {
            branch: "tagsmith/prod".into(),
            foreign: crate::git::ForeignCommit {
                commit: git2::Oid::ZERO_SHA1,
                reason: crate::git::ForeignReason::NotPushedByUs,
            },
        };
        s.on(
            Event::Finished {
                target: 0,
                report: failed(&foreign),
            },
            at(0),
        );
        let view = s.view(at(0));
        assert!(view.targets[0].stalled && !view.targets[0].pending);
        // No backoff retry: the next wake is the image's scan or the target's 10-minute resync.
        s.on(
            Event::Scanned {
                image: 0,
                scan: scan_ok("reg.example/org/app", "team-a:app", "1.0.0"),
            },
            at(5),
        );
        let out = s.on(
            Event::Finished {
                target: 0,
                report: failed(&foreign),
            },
            at(10),
        );
        assert!(runs(&out).is_empty());
        assert!(s.next_wake().unwrap() >= Mono(300 * S));
        // A manual trigger runs it at once.
        assert_eq!(
            runs(&s.on(Event::Manual { target: 0 }, at(20))),
            vec![(0, Reason::Manual)]
        );
    }

    #[test]
    fn a_partial_run_counts_as_failed_and_is_retried() {
        let (mut s, _) = started(&simple(), 4);
        let mut partial = done(&["team-a:app"]);
        partial.file_errors = vec!["apps/a.yaml:3: syntax error; file not edited".into()];
        partial.problems.clone_from(&partial.file_errors);
        s.on(
            Event::Finished {
                target: 0,
                report: partial,
            },
            at(0),
        );
        let view = s.view(at(0));
        let target = &view.targets[0];
        assert_eq!(target.failures, 1);
        assert!(target.pending);
        assert!(
            target.error.as_deref().unwrap().contains("apps/a.yaml:3"),
            "{target:?}"
        );
        assert_eq!(
            target.problems,
            ["apps/a.yaml:3: syntax error; file not edited"]
        );
    }

    #[test]
    fn the_target_interval_resyncs_and_concurrency_is_bounded() {
        let config = config(
            "  - { policy: 'team-a:app', image: reg.example/org/app, semver: '^1' }\n",
            "  - { name: a, git: { url: 'file:///tmp/none' }, interval: 10m }\n\
             \x20 - { name: b, git: { url: 'file:///tmp/none' }, interval: 10m }\n",
        );
        let (mut s, first) = started(&config, 1);
        assert_eq!(runs(&first), vec![(0, Reason::Start)], "one at a time");
        let out = s.on(
            Event::Finished {
                target: 0,
                report: done(&[]),
            },
            at(10),
        );
        assert_eq!(runs(&out), vec![(1, Reason::Start)]);
        s.on(
            Event::Finished {
                target: 1,
                report: done(&[]),
            },
            at(20),
        );
        let mut now = 20;
        let mut resynced = Vec::new();
        while resynced.len() < 2 {
            now = s.next_wake().unwrap().0;
            for (target, reason) in runs(&s.on(Event::Tick, at(now))) {
                assert_eq!(reason, Reason::Resync);
                resynced.push(target);
                s.on(
                    Event::Finished {
                        target,
                        report: done(&[]),
                    },
                    at(now),
                );
            }
            if now > 700 * S {
                break;
            }
        }
        resynced.sort_unstable();
        assert_eq!(resynced, [0, 1]);
        assert!((600 * S..=660 * S + 20).contains(&now), "{now}");
    }

    #[test]
    fn marker_problems_are_announced_once_when_they_first_appear() {
        let (mut s, _) = started(&simple(), 4);
        let mut report = done(&["team-a:app"]);
        report.problems = vec!["a.yaml:2: unknown policy team-x:y".into()];
        let announced = |out: &[Command]| {
            out.iter()
                .filter_map(|c| match c {
                    Command::NewProblems { problems, .. } => Some(problems.clone()),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        let first = s.on(
            Event::Finished {
                target: 0,
                report: report.clone(),
            },
            at(0),
        );
        assert_eq!(announced(&first), vec![report.problems.clone()]);
        s.on(Event::Manual { target: 0 }, at(1));
        let again = s.on(Event::Finished { target: 0, report }, at(2));
        assert!(announced(&again).is_empty());
        assert_eq!(s.view(at(2)).targets[0].problems.len(), 1);
    }

    #[test]
    fn huge_intervals_and_waits_saturate_instead_of_overflowing() {
        let mut config = simple();
        config.images[0].interval = Duration::from_secs(u64::MAX);
        config.targets[0].interval = Duration::from_secs(u64::MAX);
        let (mut s, _) = started(&config, 4);
        s.on(
            Event::Scanned {
                image: 0,
                scan: scan_ok("reg.example/org/app", "team-a:app", "1.1.0"),
            },
            at(1),
        );
        s.on(
            Event::Finished {
                target: 0,
                report: done(&["team-a:app"]),
            },
            at(2),
        );
        s.on(
            Event::Finished {
                target: 0,
                report: done(&["team-a:app"]),
            },
            at(3),
        );
        assert_eq!(s.next_wake(), Some(Mono(u64::MAX)));
        let view = s.view(at(3));
        assert_eq!(view.images[0].next_scan, None, "beyond any date");
        let limited = RunError::Forge(ForgeError::RateLimited {
            action: Action::CreatePullRequest,
            wait: Duration::from_secs(u64::MAX),
        });
        s.on(Event::Manual { target: 0 }, at(4));
        s.on(
            Event::Finished {
                target: 0,
                report: failed(&limited),
            },
            at(5),
        );
        s.on(Event::Tick, at(u64::MAX));
    }

    #[test]
    fn failures_reach_status_and_a_failed_run_keeps_the_last_good_policies() {
        let s = settled();
        let view = s.view(at(400));
        assert_eq!(view.targets[0].outcome.as_deref(), Some("unchanged"));
        assert_eq!(
            view.images[0].selected.as_deref(),
            Some("reg.example/org/app:1.1.0")
        );
        let mut s = s;
        s.on(Event::Manual { target: 0 }, at(500));
        let out = s.on(
            Event::Finished {
                target: 0,
                report: failed(&RunError::Panicked),
            },
            at(600),
        );
        let record = out.iter().find_map(|c| match c {
            Command::Persist { targets, .. } => targets.first().cloned(),
            _ => None,
        });
        let (_, record) = record.unwrap();
        assert_eq!(record.outcome, "failed");
        assert_eq!(record.policies, ["team-a:app"]);
        assert!(matches!(
            failed(&RunError::Panicked).outcome,
            Outcome::Failed { .. }
        ));
    }

    // Stores written before the fingerprint was hashed without its string hold the hash of
    // the string: both must give the same value, or every stored selection starts over.
    #[test]
    fn the_policy_fingerprint_is_the_hash_of_its_formatted_string() {
        use std::hash::{Hash as _, Hasher as _};
        let config = simple();
        let image = &config.images[0];
        let mut hasher = std::hash::DefaultHasher::new();
        format!("{:?}|{:?}|{:?}", image.image, image.policy, image.digest).hash(&mut hasher);
        assert_eq!(
            policy_fingerprint(image),
            format!("{:016x}", hasher.finish())
        );
    }
}
