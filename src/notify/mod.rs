//! Messages about what tagsmith did: Slack, Microsoft Teams and generic webhooks (`notify:`),
//! and a GitHub commit status on each delivered commit (`push.status`).
//!
//! Sending never holds up or fails a delivery: each sink has a bounded queue and a task of its
//! own that sends, retrying with backoff; a full queue drops the message (a metric and one
//! warning). The drivers hand each finished run to [`Notifier::report`]; `once` then waits for
//! the queues with a deadline ([`Notifier::finish`]).

pub mod body;
pub mod event;
mod send;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

pub use self::event::{Event, ImageChange, PullRequestRef};
use crate::config::{CommitStatus, Config, EventKind, Sink, Target};
use crate::engine::{ChangeReport, TargetReport};
use crate::metrics::metrics;
use crate::status::{NotificationStatus, timestamp};

/// Messages waiting per sink; beyond this they are dropped, never waited for.
pub const QUEUE: usize = 256;

/// Why one message could not be sent. Never holds a webhook URL or key.
#[derive(Debug, Error)]
pub enum NotifyError {
    #[error("cannot read the webhook url from {source_name}: {reason}")]
    Url { source_name: String, reason: String },
    #[error("the webhook url from {source_name} is not an http(s) url")]
    BadUrl { source_name: String },
    #[error("cannot read the signing key from {source_name}: {reason}")]
    Key { source_name: String, reason: String },
    #[error("cannot reach the receiver: {message}")]
    Http { message: String },
    #[error("the receiver answered {status}{}", if body.is_empty() { String::new() } else { format!(": {body}") })]
    Status { status: u16, body: String },
    #[error(transparent)]
    Forge(#[from] crate::forge::ForgeError),
}

impl NotifyError {
    /// Worth another attempt: the network, a busy or failing receiver, a rate limit.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Http { .. } => true,
            Self::Status { status, .. } => *status == 429 || *status >= 500,
            Self::Forge(e) => e.is_transient(),
            Self::Url { .. } | Self::BadUrl { .. } | Self::Key { .. } => false,
        }
    }
}

/// Where one queue's messages go.
#[derive(Debug, Clone)]
enum Destination {
    Sink(Sink),
    Status(CommitStatus),
}

impl Destination {
    fn kind(&self) -> &'static str {
        match self {
            Self::Sink(s) => s.kind.as_str(),
            Self::Status(_) => "github-status",
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    sent: u64,
    failed: u64,
    dropped: u64,
    last_error: Option<String>,
    last_failure_ms: Option<u64>,
    /// Dropping since the last message that fit: warn once per episode.
    dropping: bool,
}

#[derive(Debug)]
struct Queue {
    name: String,
    kind: &'static str,
    /// `None` for a commit status queue: only its own target's delivered events.
    sink: Option<Sink>,
    target: Option<String>,
    tx: mpsc::Sender<Arc<Event>>,
    counts: Arc<Mutex<Counts>>,
}

impl Queue {
    fn wants(&self, event: &Event) -> bool {
        match (&self.sink, &self.target) {
            (Some(sink), _) => sink.wants(event.kind, &event.target),
            (None, Some(target)) => event.kind == EventKind::Delivered && *target == event.target,
            (None, None) => false,
        }
    }

    /// Queues without waiting; a full queue drops.
    fn offer(&self, event: &Arc<Event>) {
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match self.tx.try_send(Arc::clone(event)) {
            Ok(()) => counts.dropping = false,
            Err(_) => {
                counts.dropped += 1;
                metrics()
                    .notifications
                    .get_or_create(&result_labels(&self.name, "dropped"))
                    .inc();
                if !counts.dropping {
                    counts.dropping = true;
                    tracing::warn!(sink = %self.name, capacity = QUEUE, "notification queue full; dropping messages until it drains");
                }
            }
        }
    }
}

fn result_labels(sink: &str, result: &str) -> Vec<(&'static str, String)> {
    vec![("sink", sink.to_string()), ("result", result.to_string())]
}

/// The sending side: one queue and worker task per sink. Needs a tokio runtime.
#[derive(Debug)]
pub struct Notifier {
    queues: Vec<Queue>,
    workers: JoinSet<()>,
    /// Per target, the failure last announced: the same failure again (a retry) is not news.
    announced: HashMap<String, String>,
    /// Per target, the holds already announced: a hold is news once, when it starts.
    held: HashMap<String, BTreeSet<(String, String, String)>>,
    changed: watch::Receiver<u64>,
}

impl Notifier {
    /// Starts a worker per `notify:` sink and per target with `push.status`.
    pub fn start(config: &Config) -> Self {
        Self::with_retry(config, send::Retry::default())
    }

    fn with_retry(config: &Config, retry: send::Retry) -> Self {
        // Built for the first destination: with none configured (most `once` runs), the
        // client's TLS set-up (reading the CA certificates) is not paid at all.
        let mut client: Option<reqwest::Client> = None;
        let (bump, changed) = watch::channel(0u64);
        let bump = Arc::new(bump);
        let mut destinations: Vec<(String, Destination, Option<String>)> = config
            .notify
            .iter()
            .map(|s| (s.name.clone(), Destination::Sink(s.clone()), None))
            .collect();
        destinations.extend(config.targets.iter().filter_map(|t| {
            t.status.as_ref().map(|s| {
                (
                    format!("github-status:{}", t.name),
                    Destination::Status(s.clone()),
                    Some(t.name.clone()),
                )
            })
        }));
        let mut queues = Vec::new();
        let mut workers = JoinSet::new();
        for (name, destination, target) in destinations {
            let (tx, rx) = mpsc::channel(QUEUE);
            let counts = Arc::new(Mutex::new(Counts::default()));
            queues.push(Queue {
                name: name.clone(),
                kind: destination.kind(),
                sink: match &destination {
                    Destination::Sink(s) => Some(s.clone()),
                    Destination::Status(_) => None,
                },
                target,
                tx,
                counts: Arc::clone(&counts),
            });
            let worker = Worker {
                name,
                destination,
                client: client.get_or_insert_with(send::client).clone(),
                retry,
                counts,
                bump: Arc::clone(&bump),
            };
            workers.spawn(worker.run(rx));
        }
        Self {
            queues,
            workers,
            announced: HashMap::new(),
            held: HashMap::new(),
            changed,
        }
    }

    /// Whether anything is configured to receive messages.
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// Hands a finished (not dry) run over: queues its event, if it makes one, for every sink
    /// that wants it. Never waits.
    pub fn report(&mut self, target: &Target, report: &TargetReport) {
        if self.queues.is_empty() {
            return;
        }
        let now = timestamp(crate::state::now_ms()).unwrap_or_default();
        self.report_holds(target, report, &now);
        let Some(event) = Event::from_report(target, report, now) else {
            self.announced.remove(&target.name);
            return;
        };
        match (&event.kind, &event.error) {
            (EventKind::Failed | EventKind::Stalled, Some(error)) => {
                if self.announced.get(&target.name) == Some(error) {
                    return;
                }
                self.announced.insert(target.name.clone(), error.clone());
            }
            _ => {
                self.announced.remove(&target.name);
            }
        }
        self.send(event);
    }

    /// One `held` event for the markers whose hold started in this run (a person's rollback
    /// that tagsmith leaves alone); holds that go on are not news again.
    fn report_holds(&mut self, target: &Target, report: &TargetReport, now: &str) {
        let current: BTreeSet<(String, String, String)> = report
            .holds
            .iter()
            .map(|h| (h.file.clone(), h.marker.clone(), h.to.clone()))
            .collect();
        let known = self.held.entry(target.name.clone()).or_default();
        let started: Vec<ChangeReport> = report
            .holds
            .iter()
            .filter(|h| !known.contains(&(h.file.clone(), h.marker.clone(), h.to.clone())))
            .map(|h| ChangeReport {
                file: h.file.clone(),
                line: h.line,
                policy: h.policy.clone(),
                old: h.to.clone(),
                new: h.from.clone(),
            })
            .collect();
        *known = current;
        if !started.is_empty() {
            let reason = format!(
                "{} marker(s) left as a person rolled them back, until a newer tag or `tagsmith release`",
                started.len()
            );
            self.send(Event::held(target, &started, &reason, now.to_string()));
        }
    }

    /// Queues `event` for every sink that wants it.
    pub fn send(&self, event: Event) {
        let event = Arc::new(event);
        for queue in self.queues.iter().filter(|q| q.wants(&event)) {
            queue.offer(&event);
        }
    }

    /// Each sink's counts and last failure, for `/status`.
    pub fn status(&self) -> Vec<NotificationStatus> {
        self.queues
            .iter()
            .map(|q| {
                let c = q
                    .counts
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                NotificationStatus {
                    name: q.name.clone(),
                    kind: q.kind.to_string(),
                    sent: c.sent,
                    failed: c.failed,
                    dropped: c.dropped,
                    last_error: c.last_error.clone(),
                    last_failure: c.last_failure_ms.and_then(timestamp),
                }
            })
            .collect()
    }

    /// Changes whenever a message was sent or failed.
    pub fn changed(&self) -> watch::Receiver<u64> {
        self.changed.clone()
    }

    /// Closes the queues and waits up to `deadline` for what is in them to be sent (or to
    /// fail); what is left then is abandoned, and said so.
    pub async fn finish(mut self, deadline: Duration) {
        let waiting: usize = self.queues.iter().map(|q| QUEUE - q.tx.capacity()).sum();
        self.queues.clear();
        let all = async { while self.workers.join_next().await.is_some() {} };
        if tokio::time::timeout(deadline, all).await.is_err() {
            tracing::warn!(
                waiting,
                deadline_secs = deadline.as_secs(),
                "notifications still being sent at exit were abandoned"
            );
            self.workers.abort_all();
        }
    }
}

/// Sends one sink's messages, in order.
struct Worker {
    name: String,
    destination: Destination,
    client: reqwest::Client,
    retry: send::Retry,
    counts: Arc<Mutex<Counts>>,
    bump: Arc<watch::Sender<u64>>,
}

impl Worker {
    async fn run(self, mut rx: mpsc::Receiver<Arc<Event>>) {
        while let Some(event) = rx.recv().await {
            let span = tracing::info_span!("notify", sink = %self.name, event = event.kind.as_str(), target = %event.target);
            let result = tracing::Instrument::instrument(self.deliver(&event), span).await;
            let label = if result.is_ok() { "sent" } else { "failed" };
            metrics()
                .notifications
                .get_or_create(&result_labels(&self.name, label))
                .inc();
            {
                let mut c = self
                    .counts
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                match result {
                    Ok(()) => c.sent += 1,
                    Err(e) => {
                        let error = e.to_string();
                        tracing::warn!(sink = %self.name, event = event.kind.as_str(), target = %event.target, %error, "notification not sent");
                        c.failed += 1;
                        c.last_error = Some(error);
                        c.last_failure_ms = Some(crate::state::now_ms());
                    }
                }
            }
            self.bump.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    async fn deliver(&self, event: &Event) -> Result<(), NotifyError> {
        match &self.destination {
            Destination::Sink(sink) => send::post(&self.client, sink, event, self.retry).await,
            Destination::Status(status) => send::commit_status(status, event, self.retry).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(notify: &str) -> Config {
        Config::parse(
            &format!(
                "targets:\n  - name: prod\n    git: {{ url: 'https://git.example/org/m.git' }}\nnotify:\n{notify}"
            ),
            std::path::Path::new("t.yaml"),
        )
        .unwrap()
    }

    fn failed(error: &str, retry: crate::engine::Retry) -> TargetReport {
        let mut report = TargetReport::new("prod");
        report.outcome = crate::engine::Outcome::Failed {
            error: error.into(),
        };
        report.retry = retry;
        report
    }

    #[test]
    fn runs_make_the_events_their_outcome_says() {
        let config = config("  []\n");
        let target = &config.targets[0];
        let kind = |r: &TargetReport| Event::from_report(target, r, String::new()).map(|e| e.kind);
        assert_eq!(kind(&TargetReport::new("prod")), None, "unchanged");
        let mut pushed = TargetReport::new("prod");
        pushed.outcome = crate::engine::Outcome::Pushed {
            branch: "main".into(),
            commit: "abc".into(),
        };
        let event = Event::from_report(target, &pushed, String::new()).unwrap();
        assert_eq!(event.kind, EventKind::Delivered);
        assert_eq!(event.link(), Some("https://git.example/org/m/commit/abc"));
        let mut same_pr = TargetReport::new("prod");
        same_pr.outcome = crate::engine::Outcome::PullRequest {
            number: 3,
            url: "u".into(),
            action: crate::engine::PullRequestAction::Unchanged,
            branch: "b".into(),
            commit: "c".into(),
        };
        assert_eq!(
            kind(&same_pr),
            None,
            "a pull request that already held it all"
        );
        assert_eq!(
            kind(&failed("x", crate::engine::Retry::Backoff)),
            Some(EventKind::Failed)
        );
        assert_eq!(
            kind(&failed("x", crate::engine::Retry::Stalled)),
            Some(EventKind::Stalled)
        );
        let mut partial = TargetReport::new("prod");
        partial.file_errors = vec!["a.yaml:1: bad".into()];
        assert_eq!(kind(&partial), Some(EventKind::Failed));
    }

    #[tokio::test]
    async fn the_same_failure_again_is_not_announced_again() {
        // The URL variable is unset: each message fails at once, without a retry.
        let config =
            config("  - { name: a, type: webhook, urlEnv: TAGSMITH_TEST_SURELY_UNSET_URL }\n");
        let mut notifier = Notifier::start(&config);
        let counts = Arc::clone(&notifier.queues[0].counts);
        let target = config.targets[0].clone();
        let backoff = crate::engine::Retry::Backoff;
        let stalled = crate::engine::Retry::Stalled;
        notifier.report(&target, &failed("git down", backoff));
        notifier.report(&target, &failed("git down", backoff));
        notifier.report(&target, &failed("token refused", stalled));
        notifier.report(&target, &TargetReport::new("prod"));
        notifier.report(&target, &failed("token refused", stalled));
        // Waits until the queue is drained.
        notifier.finish(Duration::from_secs(10)).await;
        let counts = counts.lock().unwrap();
        assert_eq!(counts.failed, 3, "{counts:?}");
        assert_eq!(counts.sent, 0);
        assert!(
            counts
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("env TAGSMITH_TEST_SURELY_UNSET_URL: not set")),
            "{counts:?}"
        );
    }

    #[tokio::test]
    async fn a_hold_is_announced_once_when_it_starts() {
        // The URL variable is unset: each message fails at once, so failures count messages.
        let config = config(
            "  - { name: a, type: webhook, urlEnv: TAGSMITH_TEST_SURELY_UNSET_URL, events: [held] }\n",
        );
        let mut notifier = Notifier::start(&config);
        let counts = Arc::clone(&notifier.queues[0].counts);
        let target = config.targets[0].clone();
        let hold = |file: &str, to: &str| crate::status::HoldStatus {
            policy: "team:app".into(),
            marker: "team:app".into(),
            file: file.into(),
            line: 3,
            from: "app:1.3.0".into(),
            to: to.into(),
            since: None,
        };
        let with_holds = |holds: Vec<crate::status::HoldStatus>| {
            let mut report = TargetReport::new("prod");
            report.holds = holds;
            report
        };
        notifier.report(&target, &with_holds(vec![hold("a.yaml", "app:1.2.0")]));
        notifier.report(&target, &with_holds(vec![hold("a.yaml", "app:1.2.0")]));
        notifier.report(
            &target,
            &with_holds(vec![
                hold("a.yaml", "app:1.2.0"),
                hold("b.yaml", "app:1.1.0"),
            ]),
        );
        notifier.report(&target, &with_holds(Vec::new()));
        notifier.finish(Duration::from_secs(10)).await;
        assert_eq!(counts.lock().unwrap().failed, 2);
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_without_waiting() {
        let (tx, _rx) = mpsc::channel(1);
        let queue = Queue {
            name: "q".into(),
            kind: "webhook",
            sink: None,
            target: None,
            tx,
            counts: Arc::default(),
        };
        let config_target = crate::config::Config::parse(
            "targets:\n  - name: prod\n    git: { url: 'file:///m.git' }\n",
            std::path::Path::new("t.yaml"),
        )
        .unwrap();
        let mut report = TargetReport::new("prod");
        report.outcome = crate::engine::Outcome::Failed { error: "x".into() };
        let event = Arc::new(
            Event::from_report(&config_target.targets[0], &report, String::new()).unwrap(),
        );
        queue.offer(&event);
        queue.offer(&event);
        queue.offer(&event);
        let counts = queue.counts.lock().unwrap();
        assert_eq!(counts.dropped, 2);
        assert!(counts.dropping);
    }
}
