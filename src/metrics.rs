//! Prometheus metrics, served as text by `tagsmith run` on `server.metrics`.
//!
//! One process-wide registry: the counters are bumped from the registry client, the webhook
//! server and the engine, and threading a handle through all of them would add parameters to
//! every pure-ish function for no gain. Labels stay low-cardinality: results, status codes,
//! configured receiver and target names; never tags, digests or image names.

use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// Every metric tagsmith exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Image scans by result (`ok`, `error`).
    pub scans: Family<Labels, Counter>,
    /// Seconds one image's scan took (listing tags, selecting, resolving a digest).
    pub scan_duration: Histogram,
    /// Registry HTTP requests by status code (`error` when no response came).
    pub registry_requests: Family<Labels, Counter>,
    pub selections_changed: Counter,
    /// Target runs by target and outcome (`unchanged`, `pushed`, `pull_request`, `failed`).
    pub target_runs: Family<Labels, Counter>,
    pub commits: Counter,
    /// Pushes by result (`ok`, `rejected`, `error`).
    pub pushes: Family<Labels, Counter>,
    /// Pull requests by action (`opened`, `updated`, ...).
    pub pull_requests: Family<Labels, Counter>,
    /// Webhook requests by configured receiver and result.
    pub webhooks: Family<Labels, Counter>,
    /// Webhook events waiting for the scheduler.
    pub queue_depth: Gauge<i64>,
    /// Targets with changes waiting for a run (including those waiting for their schedule).
    pub targets_pending: Gauge<i64>,
    /// Unix time of the last completed scan of all due images.
    pub last_scan_time: Gauge<f64, AtomicU64>,
    /// Per policy: Unix time of its last successful scan (alert when it grows old).
    pub policy_last_success: Family<Labels, Gauge<f64, AtomicU64>>,
    /// Per policy: scans failed in a row (a failed digest lookup counts).
    pub policy_failures: Family<Labels, Gauge<i64>>,
    /// Per target: files its last run could not process (syntax error, failed write, ...).
    pub file_errors: Family<Labels, Gauge<i64>>,
    /// Per target: marker problems its last run found (unknown policy, near miss, tenancy, ...).
    pub marker_problems: Family<Labels, Gauge<i64>>,
    /// Per target: markers held for a person's rollback.
    pub holds: Family<Labels, Gauge<i64>>,
    /// Better-ranked tags each gate stopped at the policy's last scan.
    pub gate_stops: Family<Labels, Gauge<i64>>,
    /// Messages per `notify:` sink (and `github-status:<target>`) by result (`sent`, `failed`,
    /// `dropped` when the sink's queue was full).
    pub notifications: Family<Labels, Counter>,
    /// Always 1, labelled with the version.
    pub build_info: Family<Labels, Gauge<i64>>,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("tagsmith");
        let scans = Family::<Labels, Counter>::default();
        registry.register("scans", "Image scans by result", scans.clone());
        let scan_duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register(
            "scan_duration_seconds",
            "Seconds one image's scan and selection took",
            scan_duration.clone(),
        );
        let registry_requests = Family::<Labels, Counter>::default();
        registry.register(
            "registry_requests",
            "Registry HTTP requests by status code",
            registry_requests.clone(),
        );
        let selections_changed = Counter::default();
        registry.register(
            "selections_changed",
            "Policy selections that changed",
            selections_changed.clone(),
        );
        let target_runs = Family::<Labels, Counter>::default();
        registry.register(
            "target_runs",
            "Target runs by target and outcome",
            target_runs.clone(),
        );
        let commits = Counter::default();
        registry.register("commits", "Commits made", commits.clone());
        let pushes = Family::<Labels, Counter>::default();
        registry.register("pushes", "Pushes by result", pushes.clone());
        let pull_requests = Family::<Labels, Counter>::default();
        registry.register(
            "pull_requests",
            "Pull request writes by action",
            pull_requests.clone(),
        );
        let webhooks = Family::<Labels, Counter>::default();
        registry.register(
            "webhook_requests",
            "Webhook requests by receiver and result",
            webhooks.clone(),
        );
        let queue_depth = Gauge::<i64>::default();
        registry.register(
            "queue_depth",
            "Webhook events waiting for the scheduler",
            queue_depth.clone(),
        );
        let targets_pending = Gauge::<i64>::default();
        registry.register(
            "targets_pending",
            "Targets with changes waiting for a run",
            targets_pending.clone(),
        );
        let last_scan_time = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "last_scan_timestamp_seconds",
            "Unix time of the last completed scan",
            last_scan_time.clone(),
        );
        let policy_last_success = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "policy_last_success_timestamp_seconds",
            "Unix time of each policy's last successful scan",
            policy_last_success.clone(),
        );
        let policy_failures = Family::<Labels, Gauge<i64>>::default();
        registry.register(
            "policy_consecutive_failures",
            "Scans of each policy's image failed in a row",
            policy_failures.clone(),
        );
        let file_errors = Family::<Labels, Gauge<i64>>::default();
        registry.register(
            "target_file_errors",
            "Files the target's last run could not process",
            file_errors.clone(),
        );
        let marker_problems = Family::<Labels, Gauge<i64>>::default();
        registry.register(
            "target_marker_problems",
            "Marker problems the target's last run found",
            marker_problems.clone(),
        );
        let holds = Family::<Labels, Gauge<i64>>::default();
        registry.register(
            "holds",
            "Markers of the target held because a person rolled them back",
            holds.clone(),
        );
        let gate_stops = Family::<Labels, Gauge<i64>>::default();
        registry.register(
            "gate_stops",
            "Better-ranked tags a gate stopped at the policy's last scan, by policy and gate",
            gate_stops.clone(),
        );
        let notifications = Family::<Labels, Counter>::default();
        registry.register(
            "notifications",
            "Messages to notify sinks by sink and result",
            notifications.clone(),
        );
        let build_info = Family::<Labels, Gauge<i64>>::default();
        registry.register(
            "build_info",
            "Always 1; the version in a label",
            build_info.clone(),
        );
        build_info
            .get_or_create(&label("version", env!("CARGO_PKG_VERSION")))
            .set(1);
        Self {
            registry,
            scans,
            scan_duration,
            registry_requests,
            selections_changed,
            target_runs,
            commits,
            pushes,
            pull_requests,
            webhooks,
            queue_depth,
            targets_pending,
            last_scan_time,
            policy_last_success,
            policy_failures,
            file_errors,
            marker_problems,
            holds,
            gate_stops,
            notifications,
            build_info,
        }
    }

    /// The Prometheus/OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// A one-label set, the common case.
pub fn label(key: &'static str, value: impl Into<String>) -> Labels {
    vec![(key, value.into())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_show_up_prefixed_with_their_labels() {
        let m = metrics();
        m.scans.get_or_create(&label("result", "ok")).inc();
        m.webhooks
            .get_or_create(&vec![
                ("receiver", "hub".to_string()),
                ("result", "queued".to_string()),
            ])
            .inc();
        let text = m.encode();
        assert!(
            text.contains("tagsmith_scans_total{result=\"ok\"}"),
            "{text}"
        );
        assert!(
            text.contains("tagsmith_webhook_requests_total{receiver=\"hub\",result=\"queued\"}"),
            "{text}"
        );
        assert!(text.contains("# TYPE tagsmith_scan_duration_seconds histogram"));
        let version = env!("CARGO_PKG_VERSION");
        assert!(
            text.contains(&format!("tagsmith_build_info{{version=\"{version}\"}} 1")),
            "{text}"
        );
    }
}
