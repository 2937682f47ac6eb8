//! `tagsmith run` end to end: the service applies pending updates at start, reacts to a webhook
//! with a commit (no polling: the interval is an hour), and stops cleanly on SIGTERM.

#![allow(clippy::unwrap_used)]

mod gitserver;
mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gitserver::{bare_repo, count_commits, show};
use support::{Auth, Registry, free_port};

fn push(registry: &Registry, tags: &[&str]) {
    let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(registry.pusher().push_tags("org/app", &tags));
}

fn wait_until(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> bool,
    log: impl Fn() -> String,
) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < limit,
            "timed out waiting for {what}; log:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args(["-s", name, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn applies_pending_updates_reacts_to_a_webhook_and_stops_on_sigterm() {
    let registry = Registry::start(Auth::None);
    push(&registry, &["1.0.0", "1.1.0"]);
    let reg = registry.host.clone();
    let tmp = tempfile::tempdir().unwrap();
    let file = format!("image: {reg}/org/app:1.0.0 # {{\"$imagepolicy\": \"team-a:app\"}}\n");
    let bare = bare_repo(tmp.path(), "manifests", &[("apps/app.yaml", &file)]);
    std::fs::write(tmp.path().join("hook-token"), "hook-secret\n").unwrap();
    let port = free_port();
    let config = tmp.path().join("tagsmith.yaml");
    std::fs::write(
        &config,
        format!(
            "images:\n  - {{ policy: 'team-a:app', image: '{reg}/org/app', semver: '^1', interval: 1h }}\n\
             targets:\n  - {{ name: prod, git: {{ url: 'file://{}', branch: main }} }}\n\
             registries:\n  - {{ host: '{reg}', insecure: true }}\n\
             server: {{ listen: '127.0.0.1:{port}' }}\n\
             receivers:\n  - {{ name: ci, type: generic, secretFile: hook-token }}\n\
             state: {{ dir: state }}\n",
            bare.display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(tmp.path().join("run.log")).unwrap();
    let mut service = Service(
        Command::new(env!("CARGO_BIN_EXE_tagsmith"))
            .args(["run", "-c", config.to_str().unwrap(), "--log", "info"])
            .env("HOME", "/nonexistent")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let app = |bare: &Path| show(bare, "main", "apps/app.yaml");

    // At start: the pending update is applied.
    let log_path = tmp.path().join("run.log");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    wait_until(
        "the first commit",
        Duration::from_secs(60),
        || app(&bare).contains("org/app:1.1.0"),
        log,
    );
    assert_eq!(count_commits(&bare, "main"), 2);

    // A new tag and a webhook naming the image: a commit follows without waiting for the interval.
    push(&registry, &["1.2.0"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let status = runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/hook/ci"))
            .bearer_auth("hook-secret")
            .body(format!("{{\"images\":[\"{reg}/org/app\"]}}"))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status.as_u16(), 202);
    wait_until(
        "the webhook's commit",
        Duration::from_secs(60),
        || app(&bare).contains("org/app:1.2.0"),
        log,
    );
    assert_eq!(count_commits(&bare, "main"), 3);

    // Graceful stop: exit 0.
    signal(&service.0, "TERM");
    let start = Instant::now();
    let code = loop {
        if let Some(status) = service.0.try_wait().unwrap() {
            break status.code();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "tagsmith run did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(tmp.path().join("run.log")).unwrap();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("stopped"), "{log}");
    assert!(
        !log.contains("hook-secret"),
        "the secret never reaches the log"
    );
}
