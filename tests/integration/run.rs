//! `tagsmith run` end to end: the service applies pending updates at start, reacts to a webhook
//! with a commit (no polling: the interval is an hour), and stops cleanly on SIGTERM.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::gitserver::{bare_repo, count_commits, show};
use crate::support::{Auth, Registry, free_port};

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
    // The default level says what happened; a log file gets no colour codes.
    assert!(log.contains("tagsmith run started"), "{log}");
    assert!(
        log.contains(" pushed "),
        "one line per delivered change: {log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "no ANSI codes outside a terminal: {log}"
    );
    assert!(
        !log.contains("hook-secret"),
        "the secret never reaches the log"
    );
}

fn tagsmith(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tagsmith"))
        .args(args)
        .env("HOME", "/nonexistent")
        .output()
        .unwrap()
}

/// A config for `org/app` (`digest` mode) and one target on `bare`, with `paths`.
fn write_config(dir: &Path, registry: &Registry, bare: &Path, digest: &str, paths: &str) -> String {
    let reg = &registry.host;
    let config = dir.join("tagsmith.yaml");
    std::fs::write(
        &config,
        format!(
            "images:\n  - {{ policy: 'team-a:app', image: '{reg}/org/app', semver: '^1', digest: {digest} }}\n\
             targets:\n  - {{ name: prod, git: {{ url: 'file://{}', branch: main }}, paths: {paths} }}\n\
             registries:\n  - {{ host: '{reg}', insecure: true }}\n",
            bare.display()
        ),
    )
    .unwrap();
    config.display().to_string()
}

/// Issue 13.3: a file that cannot be processed makes `once` fail (exit 2) and is left intact,
/// while the other files are still delivered.
#[test]
fn once_fails_when_a_file_cannot_be_processed_and_leaves_it_intact() {
    let registry = Registry::start(Auth::None);
    push(&registry, &["1.0.0", "1.1.0"]);
    let reg = registry.host.clone();
    let tmp = tempfile::tempdir().unwrap();
    let good = format!("image: {reg}/org/app:1.0.0 # {{\"$imagepolicy\": \"team-a:app\"}}\n");
    let broken = "a: [unclosed # {\"$imagepolicy\": \"team-a:app\"}\n";
    let no_digest = "digest: sha256:00 # {\"$imagepolicy\": \"team-a:app:digest\"}\n";
    let bare = bare_repo(
        tmp.path(),
        "manifests",
        &[
            ("apps/app.yaml", &good),
            ("apps/broken.yaml", broken),
            ("pinned/digest.yaml", no_digest),
        ],
    );
    let cases = [
        ("[apps]", "apps/broken.yaml:1"),
        ("[pinned]", "pinned/digest.yaml:1"),
        ("[missing]", "missing"),
    ];
    for (paths, names) in cases {
        let config = write_config(tmp.path(), &registry, &bare, "Never", paths);
        let state = tmp.path().join("state");
        let out = tagsmith(&[
            "once",
            "-c",
            &config,
            "--state-dir",
            state.to_str().unwrap(),
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{paths}: {stdout}{stderr}");
        assert!(stdout.contains(names), "{paths}: {stdout}");
        assert!(
            stderr.contains("could not be processed"),
            "{paths}: {stderr}"
        );
    }
    assert_eq!(show(&bare, "main", "apps/broken.yaml"), broken);
    assert_eq!(show(&bare, "main", "pinned/digest.yaml"), no_digest);
    assert!(show(&bare, "main", "apps/app.yaml").contains("org/app:1.1.0"));
}

/// Issue 15: a failed digest lookup is a failed scan: exit 2, the error in the report, the
/// marker as it was.
#[test]
fn once_fails_when_a_digest_lookup_fails_and_keeps_the_marker() {
    let registry = Registry::start(Auth::None);
    push(&registry, &["1.0.0", "1.1.0"]);
    // Point the tag at a manifest the registry does not have: listing still names 1.1.0,
    // looking up its digest fails.
    let link = walkdir(registry.dir.path())
        .into_iter()
        .find(|p| p.ends_with("org/app/_manifests/tags/1.1.0/current/link"))
        .expect("the tag's link in the registry's storage");
    std::fs::write(&link, format!("sha256:{}", "0".repeat(64))).unwrap();
    let reg = registry.host.clone();
    let tmp = tempfile::tempdir().unwrap();
    let file = format!("image: {reg}/org/app:1.0.0 # {{\"$imagepolicy\": \"team-a:app\"}}\n");
    let bare = bare_repo(tmp.path(), "manifests", &[("apps/app.yaml", &file)]);
    let config = write_config(tmp.path(), &registry, &bare, "Always", "[apps]");
    let state = tmp.path().join("state");
    let out = tagsmith(&[
        "once",
        "-c",
        &config,
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("digest of 1.1.0"), "{stdout}");
    assert_eq!(show(&bare, "main", "apps/app.yaml"), file);
    assert_eq!(count_commits(&bare, "main"), 1);
}

fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

/// Issue 13.8: an interval too large for any clock is refused with its place, not a panic.
#[test]
fn a_huge_interval_is_refused_with_its_place_and_never_panics() {
    let registry = Registry::start(Auth::None);
    let tmp = tempfile::tempdir().unwrap();
    let reg = &registry.host;
    let config = tmp.path().join("tagsmith.yaml");
    std::fs::write(
        &config,
        format!(
            "images:\n  - {{ policy: 'team-a:app', image: '{reg}/org/app', semver: '^1', interval: 18446744073709551615s }}\n\
             targets:\n  - {{ name: prod, git: {{ url: 'file:///nonexistent' }} }}\n"
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    for command in ["check", "once", "run"] {
        let out = tagsmith(&[command, "-c", config]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(stderr.contains("tagsmith.yaml:2:"), "{command}: {stderr}");
        assert!(stderr.contains("interval"), "{command}: {stderr}");
    }
}

/// Issue 15: rejected Git credentials are classified by git2's error code as permanent: the
/// target stalls (no backoff retries hammering the server) and `/status` says so.
#[test]
fn rejected_git_credentials_stall_the_target_instead_of_retrying() {
    let registry = Registry::start(Auth::None);
    push(&registry, &["1.0.0", "1.1.0"]);
    let reg = registry.host.clone();
    let tmp = tempfile::tempdir().unwrap();
    let file = format!("image: {reg}/org/app:1.0.0 # {{\"$imagepolicy\": \"team-a:app\"}}\n");
    bare_repo(tmp.path(), "manifests", &[("apps/app.yaml", &file)]);
    let server = crate::gitserver::GitHttpServer::start(tmp.path(), Some(("bot", "right")), None);
    std::fs::write(tmp.path().join("wrong"), "wrong-password").unwrap();
    let metrics = free_port();
    let config = tmp.path().join("tagsmith.yaml");
    std::fs::write(
        &config,
        format!(
            "images:\n  - {{ policy: 'team-a:app', image: '{reg}/org/app', semver: '^1', interval: 1h }}\n\
             targets:\n  - {{ name: prod, git: {{ url: '{}/manifests.git', branch: main, auth: {{ username: bot, passwordFile: wrong }} }} }}\n\
             registries:\n  - {{ host: '{reg}', insecure: true }}\n\
             server: {{ listen: '127.0.0.1:{}', metrics: '127.0.0.1:{metrics}' }}\n\
             state: {{ dir: state }}\n",
            server.base_url,
            free_port()
        ),
    )
    .unwrap();
    let log_path = tmp.path().join("run.log");
    let _service = Service(
        Command::new(env!("CARGO_BIN_EXE_tagsmith"))
            .args(["run", "-c", config.to_str().unwrap()])
            .env("HOME", "/nonexistent")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap(),
    );
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let status = || -> serde_json::Value {
        runtime.block_on(async {
            match reqwest::get(format!("http://127.0.0.1:{metrics}/status")).await {
                Ok(r) => {
                    serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or_default()
                }
                Err(_) => serde_json::Value::Null,
            }
        })
    };
    wait_until(
        "the failed run",
        Duration::from_secs(60),
        || status()["targets"][0]["outcome"] == "failed",
        log,
    );
    let status = status();
    let target = &status["targets"][0];
    assert_eq!(target["stalled"], true, "{status}");
    assert_eq!(target["pending"], false, "no backoff retry: {status}");
    assert!(
        target["error"]
            .as_str()
            .unwrap()
            .contains("authentication failed"),
        "{status}"
    );
    assert!(!log().contains("wrong-password"));
}
