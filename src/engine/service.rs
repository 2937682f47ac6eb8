//! The driver behind `tagsmith run`: feeds [`Schedule`] with webhooks, finished scans, finished
//! runs and the time, and carries out what it answers. Scans run as tasks of their own, one per
//! repository, so a slow registry holds up only its own images; target runs go to blocking
//! threads; state store writes go to a writer thread, in order, never on the async threads.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;

use super::report::Outcome;
use super::report::{RunError, TargetReport};
use super::run::{
    TargetRun, log_finished, run_target_cached, save_cache, scan_cache_file, workspace_dir,
};
use super::schedule::{Command, Event, Mono, Now, Reason, Schedule, millis};
use super::select::{RepositoryScan, SelectionSet, scan_repository};
use crate::config::{Config, ImagePolicy};
use crate::metrics::{label, metrics};
use crate::model::Tag;
use crate::notify::Notifier;
use crate::registry::Client;
use crate::rewrite::ScanCache;
use crate::server::ScanRequest;
use crate::state::{Batch, Snapshot, Store, now_ms};

/// The longest the driver sleeps without looking at the clock again: far-off wake-ups (a
/// huge interval) never need an instant beyond what the platform can hold.
const MAX_SLEEP: Duration = Duration::from_secs(3600);
/// How long shutdown waits for queued notifications after the runs in flight.
const NOTIFY_DEADLINE: Duration = Duration::from_secs(10);
/// Rescans of an image whose tag list does not show a tag a webhook announced yet, and the
/// wait before the first (doubling after each): 50 ms to 1.6 s, about 3 s in all. A
/// registry sends its notification before it links the tag; this covers that and a lagging
/// replica, not a tag that never comes (the image's interval still scans it).
const ANNOUNCED_RESCANS: u32 = 6;
const ANNOUNCED_FIRST_WAIT: Duration = Duration::from_millis(50);

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

/// Writes batches to the store on a thread of its own, in the order they were sent.
struct Writer {
    queue: Option<std::sync::mpsc::Sender<Batch>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(store: Arc<Store>) -> Self {
        let (queue, batches) = std::sync::mpsc::channel::<Batch>();
        let thread = std::thread::Builder::new()
            .name("tagsmith-state".into())
            .spawn(move || {
                for batch in batches {
                    if let Err(e) = store.write(batch) {
                        tracing::warn!(error = %e, "cannot record in the state store");
                    }
                }
            })
            .map_err(|e| tracing::error!(error = %e, "cannot start the state writer; nothing is recorded"))
            .ok();
        Self {
            queue: Some(queue),
            thread,
        }
    }

    fn send(&self, batch: Batch) {
        if !batch.is_empty()
            && let Some(queue) = &self.queue
        {
            // Only fails once the thread is gone, which it already logged.
            let _ = queue.send(batch);
        }
    }

    /// Waits until everything sent is written.
    async fn finish(mut self) {
        self.queue = None;
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

struct Driver {
    config: Arc<Config>,
    client: Arc<Client>,
    options: ServiceOptions,
    store: Arc<Store>,
    schedule: Schedule,
    epoch: Instant,
    scans: JoinSet<(Vec<usize>, RepositoryScan)>,
    runs: JoinSet<(usize, bool, TargetReport)>,
    announced: Announced,
    /// Rescans waiting for a tag a webhook announced: each yields the image's canonical name.
    rescans: JoinSet<String>,
    /// Per target, loaded (on the run's blocking thread) at its first run.
    caches: Vec<Arc<OnceLock<ScanCache>>>,
    writer: Writer,
    notifier: Notifier,
    status: watch::Sender<String>,
}

/// What the service listens to besides the clock.
#[derive(Debug)]
pub struct Inputs {
    /// Webhooks and `POST /scan`.
    pub requests: mpsc::Receiver<ScanRequest>,
    /// `POST /run`: target names.
    pub runs: mpsc::Receiver<String>,
    /// Turns true to stop.
    pub shutdown: watch::Receiver<bool>,
}

/// Runs until `shutdown` turns true, then waits for target runs in flight up to the deadline.
/// `status` receives the `/status` JSON whenever something in it changes.
pub async fn serve(service: Service, inputs: Inputs, status: watch::Sender<String>) {
    let Inputs {
        mut requests,
        mut runs,
        mut shutdown,
    } = inputs;
    let mut driver = Driver::new(service, status);
    let mut requests_open = true;
    let mut runs_open = true;
    driver.feed(Event::Tick);
    let mut notified = driver.notifier.changed();
    let notifying = !driver.notifier.is_empty();
    loop {
        let wake = driver.wake_at();
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
            request = requests.recv(), if requests_open => match request {
                Some(request) => driver.webhooks(request, &mut requests),
                None => requests_open = false,
            },
            name = runs.recv(), if runs_open => match name {
                Some(name) => driver.manual(&name),
                None => runs_open = false,
            },
            Some(joined) = driver.scans.join_next(), if !driver.scans.is_empty() => {
                driver.scan_done(joined);
            }
            Some(joined) = driver.runs.join_next(), if !driver.runs.is_empty() => {
                driver.run_done(joined);
            }
            Some(Ok(image)) = driver.rescans.join_next(), if !driver.rescans.is_empty() => {
                driver.feed(Event::Webhook { images: vec![image] });
            }
            Ok(()) = notified.changed(), if notifying => driver.publish(),
            () = tokio::time::sleep_until(wake) => driver.feed(Event::Tick),
        }
    }
    driver.shut_down().await;
}

impl Driver {
    fn new(service: Service, status: watch::Sender<String>) -> Self {
        let Service {
            config,
            client,
            options,
            store,
            snapshot,
        } = service;
        let epoch = Instant::now();
        let now = Now {
            mono: Mono(0),
            wall_ms: now_ms(),
        };
        let schedule = Schedule::new(
            &config,
            &snapshot,
            options.target_concurrency,
            now,
            fastrand::u64(..),
        );
        let announced = Announced::new(
            config
                .images
                .iter()
                .filter(|i| !i.suspend)
                .map(|i| i.image.canonical()),
        );
        Self {
            caches: (0..config.targets.len()).map(|_| Arc::default()).collect(),
            writer: Writer::start(Arc::clone(&store)),
            notifier: Notifier::start(&config),
            config,
            client,
            options,
            store,
            schedule,
            epoch,
            scans: JoinSet::new(),
            runs: JoinSet::new(),
            announced,
            rescans: JoinSet::new(),
            status,
        }
    }

    fn now(&self) -> Now {
        Now {
            mono: Mono(millis(self.epoch.elapsed())),
            wall_ms: now_ms(),
        }
    }

    fn wake_at(&self) -> Instant {
        let now = self.now();
        let wait = self.schedule.next_wake().map_or(MAX_SLEEP, |at| {
            Duration::from_millis(at.0.saturating_sub(now.mono.0))
        });
        Instant::now() + wait.min(MAX_SLEEP)
    }

    fn feed(&mut self, event: Event) {
        #[cfg(debug_assertions)]
        fault::scheduler(&event);
        let commands = self.schedule.on(event, self.now());
        for command in commands {
            self.execute(command);
        }
        let pending = i64::try_from(self.schedule.pending()).unwrap_or(i64::MAX);
        metrics().targets_pending.set(pending);
    }

    /// A flood becomes one event: everything already queued is taken now.
    fn webhooks(&mut self, first: ScanRequest, queue: &mut mpsc::Receiver<ScanRequest>) {
        let mut images: Vec<String> = Vec::new();
        let announced = &mut self.announced;
        let mut add = |request: ScanRequest| {
            tracing::debug!(receiver = %request.receiver, images = request.images.len(), "webhook");
            for (image, tag) in request.tags {
                announced.announce(image.canonical(), tag);
            }
            images.extend(
                request
                    .images
                    .iter()
                    .map(crate::model::ImageName::canonical),
            );
        };
        add(first);
        while let Ok(request) = queue.try_recv() {
            add(request);
        }
        images.sort();
        images.dedup();
        self.feed(Event::Webhook { images });
    }

    fn manual(&mut self, name: &str) {
        if let Some(target) = self.config.targets.iter().position(|t| t.name == name) {
            tracing::info!(target = name, "manual run requested");
            self.feed(Event::Manual { target });
        }
    }

    fn execute(&mut self, command: Command) {
        match command {
            Command::Scan { images } => self.scan(images),
            Command::Run {
                target,
                reason,
                selections,
                preview,
            } => self.run(target, reason, selections, preview),
            Command::Changed { image, selected } => {
                let policy = &self.config.images[image].id;
                tracing::info!(%policy, %selected, "selection changed");
                metrics().selections_changed.inc();
            }
            Command::Persist { images, targets } => {
                let mut batch = Batch::default();
                for (policy, record) in images {
                    batch.image(&policy, record);
                }
                for (name, record) in targets {
                    batch.target(&name, record);
                }
                self.writer.send(batch);
            }
            Command::NewProblems { target, problems } => {
                let target = &self.config.targets[target].name;
                for problem in problems {
                    tracing::warn!(%target, %problem, "marker problem");
                }
            }
            Command::Publish => self.publish(),
        }
    }

    fn scan(&mut self, images: Vec<usize>) {
        let config = Arc::clone(&self.config);
        let client = Arc::clone(&self.client);
        let known = self.schedule.last_selections(&images);
        self.scans.spawn(async move {
            let policies: Vec<&ImagePolicy> = images.iter().map(|&i| &config.images[i]).collect();
            let repository = &config.images[images[0]].image;
            let started = Instant::now();
            let scan = scan_repository(repository, &policies, &client, &known).await;
            tracing::debug!(image = %repository, elapsed_ms = millis(started.elapsed()), "scanned");
            (images, scan)
        });
    }

    fn scan_done(&mut self, joined: Result<(Vec<usize>, RepositoryScan), JoinError>) {
        let Ok((images, scan)) = joined else {
            // Scans hold no state of their own: a panicked scan is a bug, and its images stay
            // marked as scanning; say so loudly.
            tracing::error!("an image scan task panicked");
            return;
        };
        let now = self.now();
        let name = scan.image.canonical();
        match self.announced.scanned(&name, scan.tags.as_deref()) {
            Recheck::Done => {}
            Recheck::After(wait) => {
                tracing::debug!(image = %name, ?wait, "an announced tag is not listed yet; rescanning");
                self.rescans.spawn(async move {
                    tokio::time::sleep(wait).await;
                    name
                });
            }
            Recheck::GiveUp(tags) => {
                let tags: Vec<&str> = tags.iter().map(Tag::as_str).collect();
                tracing::warn!(image = %name, tags = %tags.join(", "), rescans = ANNOUNCED_RESCANS, "a webhook announced tags the registry still does not list; the image's next scan looks again");
            }
        }
        if let Some(tags) = &scan.tags {
            let mut batch = Batch::default();
            self.store
                .tags(&mut batch, &scan.image.canonical(), tags, now.wall_ms);
            for (image, tag, at) in super::gates::take_new_first_seen() {
                batch.first_seen(&image, &tag, at);
            }
            for (key, at) in super::gates::take_new_build_times() {
                batch.build_time(key, at);
            }
            self.writer.send(batch);
        }
        #[allow(clippy::cast_precision_loss)]
        metrics().last_scan_time.set(now.wall_ms as f64 / 1000.0);
        for (i, policy) in images.into_iter().zip(scan.policies) {
            let failed = policy.report.failed;
            self.feed(Event::Scanned {
                image: i,
                scan: policy,
            });
            let id = self.config.images[i].id.to_string();
            let m = metrics();
            let failures = i64::from(self.schedule.image_failures(i));
            m.policy_failures
                .get_or_create(&label("policy", &id))
                .set(failures);
            if !failed {
                #[allow(clippy::cast_precision_loss)]
                m.policy_last_success
                    .get_or_create(&label("policy", &id))
                    .set(now.wall_ms as f64 / 1000.0);
            }
        }
    }

    /// A `preview` is a dry run: it finds what would change and delivers nothing.
    fn run(&mut self, i: usize, reason: Reason, selections: SelectionSet, preview: bool) {
        let config = Arc::clone(&self.config);
        let name = config.targets[i].name.clone();
        let workspace = workspace_dir(&self.options.state_dir, &name);
        let cache_file = scan_cache_file(&self.options.state_dir, &name);
        let holds_file = crate::state::holds_file(&self.options.state_dir, &name);
        // Each target's scan cache stays in memory between runs (one run at a time uses it).
        let cache = Arc::clone(&self.caches[i]);
        let span = tracing::info_span!("target", target = %name, reason = reason.as_str(), preview);
        self.runs.spawn_blocking(move || {
            let _entered = span.enter();
            // A panic must not leave the target marked as running forever.
            let run = std::panic::AssertUnwindSafe(|| {
                let cache = cache.get_or_init(|| ScanCache::load(&cache_file));
                let run = TargetRun {
                    target: &config.targets[i],
                    workspace,
                    cache_file,
                    selections: &selections,
                    images: &config.images,
                    holds_file,
                    dry_run: preview,
                };
                let report = run_target_cached(&run, cache);
                let saving = std::time::Instant::now();
                save_cache(&run, cache);
                let t = &report.timings;
                tracing::debug!(
                    open_ms = t.open_ms,
                    sync_ms = t.sync_ms,
                    rewrite_ms = t.rewrite_ms,
                    commit_ms = t.commit_ms,
                    push_ms = t.push_ms,
                    cache_save_ms = millis(saving.elapsed()),
                    "run phases"
                );
                report
            });
            let report = std::panic::catch_unwind(run)
                .unwrap_or_else(|_| TargetReport::failed(&name, &RunError::Panicked));
            if !preview {
                log_finished(&report);
            }
            (i, preview, report)
        });
    }

    fn run_done(&mut self, joined: Result<(usize, bool, TargetReport), JoinError>) {
        let Ok((i, preview, report)) = joined else {
            // The run caught its own panics; a join error means the runtime cancelled it.
            return;
        };
        if !preview {
            count_run(&self.config.targets[i].name, &report);
            self.notifier.report(&self.config.targets[i], &report);
        }
        self.feed(Event::Finished { target: i, report });
    }

    fn publish(&self) {
        let mut view = self.schedule.view(self.now());
        view.notifications = self.notifier.status();
        let json = serde_json::to_string_pretty(&view).unwrap_or_default();
        self.status.send_replace(json);
    }

    async fn shut_down(mut self) {
        self.scans.abort_all();
        self.rescans.abort_all();
        let in_flight = self.runs.len();
        tracing::info!(in_flight, "shutting down: no new runs");
        let deadline = tokio::time::sleep(self.options.shutdown_deadline);
        tokio::pin!(deadline);
        while !self.runs.is_empty() {
            tokio::select! {
                joined = self.runs.join_next() => {
                    if let Some(joined) = joined {
                        self.run_done(joined);
                    }
                }
                () = &mut deadline => {
                    tracing::warn!(in_flight = self.runs.len(), "shutdown deadline passed; abandoning runs in flight (the next start resets their workspaces)");
                    break;
                }
            }
        }
        self.writer.finish().await;
        self.notifier.finish(NOTIFY_DEADLINE).await;
    }
}

/// Tags webhooks announced that the image's scans did not list yet, by canonical image name.
#[derive(Debug, Default)]
struct Announced {
    images: HashMap<String, Waiting>,
    /// The images that are scanned (configured, not suspended): no other is waited for, so
    /// nothing piles up for an image no scan ever clears.
    scanned: HashSet<String>,
}

#[derive(Debug, Default)]
struct Waiting {
    tags: BTreeSet<Tag>,
    rescans: u32,
}

/// What to do after a scan of an image with announced tags.
#[derive(Debug, PartialEq, Eq)]
enum Recheck {
    /// Nothing is waiting (every announced tag is listed, or the scan failed and its backoff
    /// takes over).
    Done,
    /// Scan again after this wait.
    After(Duration),
    /// Still missing after every rescan.
    GiveUp(BTreeSet<Tag>),
}

impl Announced {
    fn new(scanned: impl IntoIterator<Item = String>) -> Self {
        Self {
            images: HashMap::new(),
            scanned: scanned.into_iter().collect(),
        }
    }

    /// A new announcement starts the rescans afresh.
    fn announce(&mut self, image: String, tag: Tag) {
        if !self.scanned.contains(&image) {
            return;
        }
        let waiting = self.images.entry(image).or_default();
        waiting.tags.insert(tag);
        waiting.rescans = 0;
    }

    /// `listed` is the scan's tag list, `None` when the scan failed.
    fn scanned(&mut self, image: &str, listed: Option<&[Tag]>) -> Recheck {
        let Some(waiting) = self.images.get_mut(image) else {
            return Recheck::Done;
        };
        let Some(listed) = listed else {
            self.images.remove(image);
            return Recheck::Done;
        };
        waiting.tags.retain(|t| !listed.contains(t));
        if waiting.tags.is_empty() {
            self.images.remove(image);
            return Recheck::Done;
        }
        if waiting.rescans >= ANNOUNCED_RESCANS {
            let gone = self
                .images
                .remove(image)
                .map(|w| w.tags)
                .unwrap_or_default();
            return Recheck::GiveUp(gone);
        }
        let wait = ANNOUNCED_FIRST_WAIT.saturating_mul(1 << waiting.rescans);
        waiting.rescans += 1;
        Recheck::After(wait)
    }
}

/// A finished run in the metrics.
fn count_run(name: &str, report: &TargetReport) {
    let m = metrics();
    m.target_runs
        .get_or_create(&vec![
            ("target", name.to_string()),
            ("outcome", report.outcome.label().to_string()),
        ])
        .inc();
    let rejected = u64::from(report.push_attempts.saturating_sub(1));
    m.pushes
        .get_or_create(&label("result", "rejected"))
        .inc_by(rejected);
    if let Outcome::PullRequest { action, .. } = &report.outcome {
        m.pull_requests
            .get_or_create(&label("action", action.as_str()))
            .inc();
    }
    if report.outcome.delivered().is_some() {
        m.commits.inc();
        m.pushes.get_or_create(&label("result", "ok")).inc();
    }
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    m.holds
        .get_or_create(&label("target", name))
        .set(count(report.holds.len()));
    m.file_errors
        .get_or_create(&label("target", name))
        .set(count(report.file_errors.len()));
    if !matches!(report.outcome, Outcome::Failed { .. }) {
        m.marker_problems
            .get_or_create(&label("target", name))
            .set(count(report.problems.len()));
    }
}

/// Faults a test can ask for, to see that the process notices them. Debug builds only.
#[cfg(debug_assertions)]
mod fault {
    use super::Event;

    /// `TAGSMITH_FAULT=scheduler` makes the scheduler panic on the first webhook.
    pub(super) fn scheduler(event: &Event) {
        if matches!(event, Event::Webhook { .. })
            && std::env::var("TAGSMITH_FAULT").is_ok_and(|v| v == "scheduler")
        {
            panic!("fault injected: the scheduler stops");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(names: &[&str]) -> Vec<Tag> {
        names.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn an_announced_tag_is_rescanned_for_with_doubling_waits_until_it_is_listed() {
        let mut announced = Announced::new(["reg/app".to_string()]);
        assert_eq!(
            announced.scanned("reg/app", Some(&tags(&["1.0.0"]))),
            Recheck::Done
        );
        announced.announce("reg/app".into(), "1.1.0".parse().unwrap());
        let before = tags(&["1.0.0"]);
        assert_eq!(
            announced.scanned("reg/app", Some(&before)),
            Recheck::After(Duration::from_millis(50))
        );
        assert_eq!(
            announced.scanned("reg/app", Some(&before)),
            Recheck::After(Duration::from_millis(100))
        );
        // Another image's scan is no news for this one.
        assert_eq!(announced.scanned("reg/other", Some(&before)), Recheck::Done);
        assert_eq!(
            announced.scanned("reg/app", Some(&tags(&["1.0.0", "1.1.0"]))),
            Recheck::Done
        );
        assert_eq!(announced.scanned("reg/app", Some(&before)), Recheck::Done);
    }

    #[test]
    fn a_tag_that_never_shows_is_given_up_after_the_last_rescan() {
        let mut announced = Announced::new(["reg/app".to_string()]);
        announced.announce("reg/app".into(), "2.0.0".parse().unwrap());
        let listed = tags(&["1.0.0"]);
        let mut waits = Vec::new();
        while let Recheck::After(wait) = announced.scanned("reg/app", Some(&listed)) {
            waits.push(wait.as_millis());
        }
        assert_eq!(waits, [50, 100, 200, 400, 800, 1600]);
        assert!(announced.images.is_empty());
        // A failed scan hands the image to its backoff.
        announced.announce("reg/app".into(), "2.0.0".parse().unwrap());
        assert_eq!(announced.scanned("reg/app", None), Recheck::Done);
        assert!(announced.images.is_empty());
    }

    #[test]
    fn only_images_that_are_scanned_wait_for_their_tags() {
        let mut announced = Announced::new(["reg/app".to_string()]);
        announced.announce("reg/suspended".into(), "2.0.0".parse().unwrap());
        assert!(announced.images.is_empty());
        assert_eq!(
            announced.scanned("reg/suspended", Some(&tags(&["1.0.0"]))),
            Recheck::Done
        );
    }

    #[test]
    fn a_new_announcement_starts_the_rescans_afresh() {
        let mut announced = Announced::new(["reg/app".to_string()]);
        announced.announce("reg/app".into(), "2.0.0".parse().unwrap());
        let listed = tags(&["1.0.0"]);
        for _ in 0..3 {
            announced.scanned("reg/app", Some(&listed));
        }
        announced.announce("reg/app".into(), "2.1.0".parse().unwrap());
        assert_eq!(
            announced.scanned("reg/app", Some(&tags(&["2.0.0"]))),
            Recheck::After(Duration::from_millis(50))
        );
    }
}
