//! `tagsmith run` as a service, through the binary against a real registry and real Git
//! remotes: the registry's own notifications alone bring a new tag to Git, webhook floods
//! coalesce, a restart keeps its state and pushes nothing again, a corrupt state file is
//! rebuilt, a notification that arrives before the registry lists its tag still gets there,
//! a registry outage backs off and recovers without a duplicate commit, a target
//! outside its schedule waits, a failed run is retried after a backoff, SIGTERM during a
//! push lets the push finish, a registry that never answers holds up only its own images, a
//! dead scheduler fails the probes and the process, and files that cannot be processed are
//! visible and retried. `/metrics` and `/status` are read the way an operator would. The
//! scheduling rules themselves are tested without IO in `src/engine/schedule.rs`.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::gitserver::{GitHttpServer, bare_repo, count_commits, git, show};
use crate::support::service::Service;
use crate::support::{Auth, Registry, free_port};
use futures_util::StreamExt as _;

const APP: &str = "apps/app.yaml";

fn push(registry: &Registry, tags: &[&str]) {
    let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(registry.pusher().push_tags("org/app", &tags));
}

/// A registry holding `org/app` 1.0.0 and 1.1.0, and a bare repository (in a temp dir) whose
/// marker still reads 1.0.0, with its file:// URL.
fn seeded() -> (Registry, tempfile::TempDir, PathBuf, String) {
    let registry = Registry::start(Auth::None);
    push(&registry, &["1.0.0", "1.1.0"]);
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(tmp.path(), "manifests", &[(APP, &manifest(&registry))]);
    let url = format!("file://{}", bare.display());
    (registry, tmp, bare, url)
}

fn manifest(registry: &Registry) -> String {
    format!(
        "image: {}/org/app:1.0.0 # {{\"$imagepolicy\": \"team-a:app\"}}\n",
        registry.host
    )
}

/// Writes a config for one image (`interval`) and one target (`git_url`) under `dir` and
/// starts the service; the state lives in `dir/state`.
fn start(dir: &Path, registry: &Registry, git_url: &str, interval: &str) -> Service {
    start_with(dir, registry, git_url, interval, "", free_port())
}

/// [`start`] with more keys for the target (`, key: value`).
fn start_with(
    dir: &Path,
    registry: &Registry,
    git_url: &str,
    interval: &str,
    target_extra: &str,
    port: u16,
) -> Service {
    let reg = &registry.host;
    let images = format!(
        "  - {{ policy: 'team-a:app', image: '{reg}/org/app', semver: '^1', interval: {interval} }}\n"
    );
    let targets =
        format!("  - {{ name: prod, git: {{ url: '{git_url}', branch: main }}{target_extra} }}\n");
    let registries = format!("  - {{ host: '{reg}', insecure: true }}\n");
    launch(dir, &images, &targets, &registries, port, &[])
}

/// Writes a config with these `images:`, `targets:` and `registries:` entries (YAML list
/// items), the server on `port` and its metrics on a free port, and starts the service with
/// `env` added; the state lives in `dir/state`.
fn launch(
    dir: &Path,
    images: &str,
    targets: &str,
    registries: &str,
    port: u16,
    env: &[(&str, &str)],
) -> Service {
    std::fs::write(dir.join("hook-token"), "hook-secret\n").unwrap();
    let metrics_port = free_port();
    let config = format!(
        "images:\n{images}targets:\n{targets}registries:\n{registries}\
         server: {{ listen: '127.0.0.1:{port}', metrics: '127.0.0.1:{metrics_port}' }}\n\
         receivers:\n  - {{ name: ci, type: generic, secretFile: hook-token }}\n\
         \x20 - {{ name: registry, type: distribution, secretFile: hook-token }}\n\
         state: {{ dir: state }}\n"
    );
    Service::start(dir, &config, port, metrics_port, env)
}

#[test]
fn a_flood_of_webhooks_for_one_image_makes_a_handful_of_runs_and_one_commit() {
    let (registry, tmp, bare, url) = seeded();
    let service = start(tmp.path(), &registry, &url, "1h");
    service.wait_until("the first commit", Duration::from_secs(60), || {
        show(&bare, "main", APP).contains("org/app:1.1.0")
    });
    let runs_before = service.metric("tagsmith_target_runs_total", &["target=\"prod\""]);

    push(&registry, &["1.2.0"]);
    let image = format!("{}/org/app", registry.host);
    let port = service.port;
    let codes: Vec<u16> = service.runtime.block_on(async {
        let client = reqwest::Client::new();
        let sends = (0..1000).map(|_| {
            let client = client.clone();
            let body = format!("{{\"images\":[\"{image}\"]}}");
            async move {
                client
                    .post(format!("http://127.0.0.1:{port}/hook/ci"))
                    .bearer_auth("hook-secret")
                    .body(body)
                    .send()
                    .await
                    .map_or(0, |r| r.status().as_u16())
            }
        });
        futures_util::stream::iter(sends)
            .buffer_unordered(64)
            .collect()
            .await
    });
    assert!(codes.iter().all(|&c| c == 202), "every webhook is taken");
    service.wait_until("the webhooks' commit", Duration::from_secs(60), || {
        show(&bare, "main", APP).contains("org/app:1.2.0")
    });
    // Stragglers of the flood, if any, get their chance to run: the queue drains and the
    // target settles.
    service.wait_until("the flood to drain", Duration::from_secs(60), || {
        let status = service.status();
        let target = &status["targets"][0];
        service.metric("tagsmith_queue_depth", &[]) == 0.0
            && target["running"] == false
            && target["pending"] == false
    });
    assert_eq!(count_commits(&bare, "main"), 3, "one commit for the flood");
    let runs = service.metric("tagsmith_target_runs_total", &["target=\"prod\""]) - runs_before;
    assert!(
        (1.0..=3.0).contains(&runs),
        "1,000 webhooks made {runs} target runs"
    );
    let queued = service.metric(
        "tagsmith_webhook_requests_total",
        &["receiver=\"ci\"", "result=\"queued\""],
    );
    assert_eq!(queued, 1000.0);
    let scans = service.metric("tagsmith_scans_total", &[]);
    assert!(scans < 1000.0, "the flood coalesced into {scans} scans");
    eprintln!("1,000 webhooks: {scans} scans, {runs} target runs");
    assert!(service.metric("tagsmith_commits_total", &[]) >= 2.0);
    assert!(service.metric("tagsmith_registry_requests_total", &["status=\"200\""]) >= 2.0);
}

#[test]
fn a_restart_keeps_selections_without_scanning_and_pushes_nothing_again() {
    let (mut registry, tmp, bare, url) = seeded();
    let selected = format!("{}/org/app:1.1.0", registry.host);

    let mut first = start(tmp.path(), &registry, &url, "1h");
    first.wait_until("the first commit", Duration::from_secs(60), || {
        show(&bare, "main", APP).contains("org/app:1.1.0")
    });
    first.wait_until("the run to be recorded", Duration::from_secs(30), || {
        first.status()["targets"][0]["outcome"] == "pushed"
    });
    assert_eq!(first.stop(), Some(0), "{}", first.log());

    // The registry is down; the state still knows the selection and that no scan is due.
    registry.stop();
    let mut second = start(tmp.path(), &registry, &url, "1h");
    let status = second.status();
    assert_eq!(
        status["images"][0]["selected"],
        selected.as_str(),
        "{status}"
    );
    assert_eq!(status["images"][0]["tags"], 2);
    second.wait_until("the start-up run", Duration::from_secs(60), || {
        second.metric("tagsmith_target_runs_total", &["outcome=\"unchanged\""]) >= 1.0
    });
    assert_eq!(
        second.metric("tagsmith_scans_total", &[]),
        0.0,
        "nothing was due"
    );
    assert_eq!(count_commits(&bare, "main"), 2, "nothing pushed again");
    // A manual rescan while the registry is down fails and keeps the selection.
    let image = format!("{}/org/app", registry.host);
    assert_eq!(
        second.post(second.metrics_port, "/scan?image=ghcr.io/org/other"),
        404
    );
    assert_eq!(
        second.post(second.metrics_port, &format!("/scan?image={image}")),
        202
    );
    second.wait_until("the manual scan", Duration::from_secs(30), || {
        second.metric("tagsmith_scans_total", &["result=\"error\""]) >= 1.0
    });
    let status = second.status();
    assert_eq!(
        status["images"][0]["selected"],
        selected.as_str(),
        "{status}"
    );
    assert!(status["images"][0]["error"].as_str().is_some(), "{status}");
    assert_eq!(second.stop(), Some(0));

    // A corrupt state file is set aside with a warning and rebuilt from a scan.
    registry.restart();
    std::fs::write(
        tmp.path().join("state/state.redb"),
        b"garbage, not a database",
    )
    .unwrap();
    let mut third = start(tmp.path(), &registry, &url, "1h");
    third.wait_until("the rebuilt selection", Duration::from_secs(60), || {
        third.status()["images"][0]["selected"] == selected.as_str()
    });
    third.wait_until("the start-up run", Duration::from_secs(60), || {
        third.metric("tagsmith_target_runs_total", &[]) >= 1.0
    });
    assert!(
        third.log().contains("state store unreadable"),
        "{}",
        third.log()
    );
    let set_aside = std::fs::read_dir(tmp.path().join("state"))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().starts_with("state.redb.corrupt-")
        })
        .count();
    assert_eq!(set_aside, 1, "kept under its own timestamped name");
    assert_eq!(count_commits(&bare, "main"), 2, "nothing pushed again");
    assert_eq!(third.stop(), Some(0));
}

#[test]
fn a_registry_outage_backs_off_and_recovers_with_one_commit() {
    let (mut registry, tmp, bare, url) = seeded();
    let mut service = start(tmp.path(), &registry, &url, "2s");
    service.wait_until("the first commit", Duration::from_secs(60), || {
        show(&bare, "main", APP).contains("org/app:1.1.0")
    });
    let runs_before = service.metric("tagsmith_target_runs_total", &[]);

    registry.stop();
    service.wait_until("two failed scans", Duration::from_secs(60), || {
        service.status()["images"][0]["failures"]
            .as_u64()
            .is_some_and(|f| f >= 2)
    });
    let status = service.status();
    let image = &status["images"][0];
    assert!(image["error"].as_str().is_some(), "{status}");
    assert!(
        image["selected"]
            .as_str()
            .unwrap()
            .ends_with("org/app:1.1.0"),
        "a failed scan keeps the selection: {status}"
    );
    assert!(
        image["nextScan"].as_str().unwrap() > image["lastScan"].as_str().unwrap(),
        "{status}"
    );
    assert!(service.metric("tagsmith_scans_total", &["result=\"error\""]) >= 2.0);
    assert_eq!(
        service.metric("tagsmith_target_runs_total", &[]),
        runs_before,
        "failed scans run no target"
    );

    registry.restart();
    push(&registry, &["1.2.0"]);
    service.wait_until("the recovery commit", Duration::from_secs(60), || {
        show(&bare, "main", APP).contains("org/app:1.2.0")
    });
    // Several more scans succeed; none of them commits again.
    let good = service.metric("tagsmith_scans_total", &["result=\"ok\""]);
    service.wait_until("two more good scans", Duration::from_secs(60), || {
        service.metric("tagsmith_scans_total", &["result=\"ok\""]) >= good + 2.0
            && service.status()["targets"][0]["running"] == false
    });
    assert_eq!(count_commits(&bare, "main"), 3);
    assert_eq!(service.status()["images"][0]["failures"], 0);
    assert_eq!(service.stop(), Some(0));
}

#[test]
fn sigterm_during_a_push_lets_the_push_finish_and_exits_zero() {
    let registry = Registry::start(Auth::None);
    push(&registry, &["1.0.0", "1.1.0"]);
    let tmp = tempfile::tempdir().unwrap();
    let repos = tmp.path().join("repos");
    let bare = bare_repo(&repos, "manifests", &[(APP, &manifest(&registry))]);
    let started = tmp.path().join("push-started");
    let flag = started.clone();
    // The server holds the push for two seconds once it has the whole request.
    let server = GitHttpServer::start(
        &repos,
        None,
        Some(Box::new(move || {
            std::fs::write(&flag, b"").unwrap();
            std::thread::sleep(Duration::from_secs(2));
        })),
    );
    let url = format!("{}/manifests.git", server.base_url);
    let mut service = start(tmp.path(), &registry, &url, "1h");
    service.wait_until("the push to start", Duration::from_secs(60), || {
        started.exists()
    });
    let code = service.stop();
    let log = service.log();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        !log.contains("abandoning"),
        "the push finished within the deadline: {log}"
    );
    assert!(show(&bare, "main", APP).contains("org/app:1.1.0"), "{log}");
    assert_eq!(count_commits(&bare, "main"), 2);
    git(&bare, &["fsck", "--strict"]);
    assert!(log.contains("pushed"), "{log}");
}

#[test]
fn a_target_outside_its_schedule_waits_with_its_changes() {
    let (registry, tmp, bare, url) = seeded();
    // Midnight on the first of January: not today.
    let mut service = start_with(
        tmp.path(),
        &registry,
        &url,
        "1h",
        ", schedule: '0 0 1 1 *'",
        free_port(),
    );
    service.wait_until("the scan", Duration::from_secs(30), || {
        service.status()["images"][0]["selected"]
            .as_str()
            .is_some_and(|s| s.ends_with("org/app:1.1.0"))
    });
    // The start-up run would have been launched before the scan finished.
    let status = service.status();
    let target = &status["targets"][0];
    assert_eq!(target["pending"], true, "{status}");
    assert_eq!(target["schedule"], "0 0 1 1 *");
    let next = target["nextRun"].as_str().unwrap();
    assert!(next.contains("-01-01T00:00:00"), "{status}");
    assert_eq!(service.metric("tagsmith_target_runs_total", &[]), 0.0);
    assert_eq!(service.metric("tagsmith_targets_pending", &[]), 1.0);
    assert_eq!(
        count_commits(&bare, "main"),
        1,
        "nothing delivered outside the schedule"
    );
    assert_eq!(service.stop(), Some(0));
}

#[test]
fn a_tag_pushed_to_the_registry_reaches_git_through_its_notifications_alone() {
    // tagsmith's port first: the registry's config names it.
    let port = free_port();
    let notifications = format!(
        "notifications:\n  endpoints:\n\
         \x20   - name: tagsmith\n      url: http://127.0.0.1:{port}/hook/registry/hook-secret\n      timeout: 2s\n      threshold: 3\n      backoff: 200ms\n"
    );
    let registry = Registry::start_configured(Auth::None, None, &notifications);
    push(&registry, &["1.0.0", "1.1.0"]);
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(tmp.path(), "manifests", &[(APP, &manifest(&registry))]);
    let url = format!("file://{}", bare.display());
    // Polling is off: an hour between scans.
    let mut service = start_with(tmp.path(), &registry, &url, "1h", "", port);
    service.wait_until("the first commit", Duration::from_secs(60), || {
        show(&bare, "main", APP).contains("org/app:1.1.0")
    });
    let scans_before = service.metric("tagsmith_scans_total", &[]);

    push(&registry, &["1.2.0"]);
    service.wait_until("the notification's commit", Duration::from_secs(60), || {
        show(&bare, "main", APP).contains("org/app:1.2.0")
    });
    assert_eq!(count_commits(&bare, "main"), 3);
    assert!(
        service.metric(
            "tagsmith_webhook_requests_total",
            &["receiver=\"registry\"", "result=\"queued\""]
        ) >= 1.0
    );
    assert!(service.metric("tagsmith_scans_total", &[]) > scans_before);
    assert_eq!(service.stop(), Some(0));
}

#[test]
fn a_notification_that_arrives_before_the_registry_lists_its_tag_still_reaches_git() {
    // The distribution registry notifies of a manifest push before it links the tag, so the
    // scan the notification starts can miss it. Here the notification comes first on
    // purpose, and the tag only after the scan it started has finished.
    let (registry, tmp, bare, url) = seeded();
    let mut service = start(tmp.path(), &registry, &url, "1h");
    service.wait_until("the first commit", Duration::from_secs(60), || {
        show(&bare, "main", APP).contains("org/app:1.1.0")
    });
    let pusher = registry.pusher();
    let manifest = service
        .runtime
        .block_on(pusher.image_manifest("org/app", "amd64"));
    let scans_before = service.metric("tagsmith_scans_total", &[]);
    let envelope = serde_json::json!({ "events": [{
        "action": "push",
        "target": {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "repository": "org/app",
            "tag": "1.2.0",
        },
        "request": { "host": registry.host },
    }]});
    let port = service.port;
    let code = service.runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/hook/registry/hook-secret"))
            .body(envelope.to_string())
            .send()
            .await
            .map_or(0, |r| r.status().as_u16())
    });
    assert_eq!(code, 202);
    service.wait_until("the notification's scan", Duration::from_secs(30), || {
        service.metric("tagsmith_scans_total", &[]) > scans_before
    });
    service.runtime.block_on(pusher.manifest(
        "org/app",
        "1.2.0",
        "application/vnd.oci.image.manifest.v1+json",
        &manifest,
    ));
    // Polling is off (1h): only a rescan for the announced tag can find it.
    service.wait_until(
        "the announced tag's commit",
        Duration::from_secs(30),
        || show(&bare, "main", APP).contains("org/app:1.2.0"),
    );
    assert_eq!(count_commits(&bare, "main"), 3);
    assert_eq!(service.stop(), Some(0));
}

#[test]
fn a_failed_target_run_is_retried_after_a_backoff() {
    let (registry, tmp, _bare, _url) = seeded();
    // A remote that does not exist: every run fails at the fetch.
    let missing = format!("file://{}", tmp.path().join("missing.git").display());
    let mut service = start(tmp.path(), &registry, &missing, "1h");
    service.wait_until("the failed run", Duration::from_secs(60), || {
        service.status()["targets"][0]["outcome"] == "failed"
    });
    let status = service.status();
    let target = &status["targets"][0];
    assert_eq!(target["failures"], 1, "{status}");
    assert_eq!(target["pending"], true, "a failed run is retried: {status}");
    assert!(
        target["error"].as_str().unwrap().contains("missing.git"),
        "{status}"
    );
    let at = |key: &str| {
        chrono::DateTime::parse_from_rfc3339(target[key].as_str().unwrap())
            .unwrap()
            .timestamp_millis()
    };
    let wait = at("nextRun") - at("lastRun");
    assert!(
        (9_000..=12_000).contains(&wait),
        "the first retry waits about 10 s, not {wait} ms: {status}"
    );
    assert_eq!(
        service.metric("tagsmith_target_runs_total", &["outcome=\"failed\""]),
        1.0,
        "no retry before the backoff"
    );
    assert_eq!(service.stop(), Some(0));
}

/// A registry that takes connections and never answers (issue 13.7).
fn black_hole() -> (String, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in listener.incoming().flatten() {
            open.push(stream);
        }
    });
    (host, held)
}

#[test]
fn a_registry_that_never_answers_delays_only_its_own_images() {
    let (registry, tmp, bare, url) = seeded();
    let (slow, _held) = black_hole();
    let reg = &registry.host;
    let images = format!(
        "  - {{ policy: 'team-a:app', image: '{reg}/org/app', semver: '^1', interval: 1h }}\n\
         \x20 - {{ policy: 'team-b:stuck', image: '{slow}/org/stuck', semver: '^1', interval: 1h }}\n"
    );
    let targets = format!("  - {{ name: prod, git: {{ url: '{url}', branch: main }} }}\n");
    let registries = format!(
        "  - {{ host: '{reg}', insecure: true }}\n  - {{ host: '{slow}', insecure: true }}\n"
    );
    let mut service = launch(tmp.path(), &images, &targets, &registries, free_port(), &[]);
    // The stuck registry's requests time out after 30 s; the healthy image does not wait.
    service.wait_until("the first commit", Duration::from_secs(20), || {
        show(&bare, "main", APP).contains("org/app:1.1.0")
    });
    push(&registry, &["1.2.0"]);
    let started = Instant::now();
    let image = format!("{reg}/org/app");
    assert_eq!(
        service.post(service.metrics_port, &format!("/scan?image={image}")),
        202
    );
    service.wait_until("the webhook's commit", Duration::from_secs(20), || {
        show(&bare, "main", APP).contains("org/app:1.2.0")
    });
    let status = service.status();
    assert!(
        status["images"][1]["lastScan"].is_null(),
        "the stuck image's scan was still in flight: {status}"
    );
    eprintln!(
        "webhook to commit with a stuck registry: {:?}",
        started.elapsed()
    );
    assert_eq!(service.stop(), Some(0));
}

#[test]
fn a_dead_scheduler_fails_the_probes_and_exits_non_zero() {
    let (registry, tmp, _bare, url) = seeded();
    let reg = &registry.host;
    let images = format!(
        "  - {{ policy: 'team-a:app', image: '{reg}/org/app', semver: '^1', interval: 1h }}\n"
    );
    let targets = format!("  - {{ name: prod, git: {{ url: '{url}', branch: main }} }}\n");
    let registries = format!("  - {{ host: '{reg}', insecure: true }}\n");
    let port = free_port();
    let mut service = launch(
        tmp.path(),
        &images,
        &targets,
        &registries,
        port,
        &[("TAGSMITH_FAULT", "scheduler")],
    );
    assert_eq!(service.get(port, "/healthz").0, 200);
    // The injected fault: the scheduler task panics on its next webhook.
    assert_eq!(service.post(service.metrics_port, "/scan"), 202);
    let mut saw = Vec::new();
    let start = Instant::now();
    let code = loop {
        if let Some(status) = service.child.try_wait().unwrap() {
            break status.code();
        }
        saw.push((
            service.get(port, "/healthz").0,
            service.get(port, "/readyz").0,
        ));
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "still running with a dead scheduler; log:\n{}",
            service.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = service.log();
    assert_eq!(code, Some(2), "{log}");
    assert!(
        saw.contains(&(503, 503)),
        "the probes failed before exit: {saw:?}"
    );
    assert!(log.contains("an essential task ended"), "{log}");
    assert!(log.contains("scheduler"), "{log}");
}

#[test]
fn files_that_cannot_be_processed_and_marker_problems_are_visible_and_retried() {
    let registry = Registry::start(Auth::None);
    push(&registry, &["1.0.0", "1.1.0"]);
    let tmp = tempfile::tempdir().unwrap();
    let broken = "a: [unclosed # {\"$imagepolicy\": \"team-a:app\"}\n";
    let unknown = format!(
        "image: {}/org/x:1 # {{\"$imagepolicy\": \"team-x:nope\"}}\n",
        registry.host
    );
    let bare = bare_repo(
        tmp.path(),
        "manifests",
        &[
            (APP, &manifest(&registry)),
            ("apps/broken.yaml", broken),
            ("apps/unknown.yaml", &unknown),
        ],
    );
    let url = format!("file://{}", bare.display());
    let mut service = start(tmp.path(), &registry, &url, "1h");
    // The good file is delivered; the broken one stays as it was.
    service.wait_until("the good file's commit", Duration::from_secs(60), || {
        show(&bare, "main", APP).contains("org/app:1.1.0")
    });
    service.wait_until("the partial run's record", Duration::from_secs(60), || {
        let status = service.status();
        status["targets"][0]["running"] == false
            && status["targets"][0]["failures"].as_u64() >= Some(1)
    });
    assert_eq!(show(&bare, "main", "apps/broken.yaml"), broken);
    let status = service.status();
    let target = &status["targets"][0];
    assert_eq!(target["pending"], true, "retried with backoff: {status}");
    assert!(
        target["error"]
            .as_str()
            .unwrap()
            .contains("apps/broken.yaml:1"),
        "{status}"
    );
    let problems: Vec<&str> = target["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("apps/unknown.yaml:1:") && p.contains("team-x:nope")),
        "{status}"
    );
    assert_eq!(
        service.metric("tagsmith_target_file_errors", &["target=\"prod\""]),
        1.0
    );
    assert!(service.metric("tagsmith_target_marker_problems", &["target=\"prod\""]) >= 2.0);
    let log = service.log();
    assert!(log.contains("files could not be processed"), "{log}");
    assert_eq!(
        log.matches("marker problem").count(),
        problems.len(),
        "each problem is announced once: {log}"
    );
    assert!(log.contains("WARN"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "no colour codes in a log file: {log}"
    );
    assert_eq!(service.stop(), Some(0));
}
