//! Notifications end to end: the binary against the real registry and Git remotes, with real
//! HTTP receivers on 127.0.0.1 (Slack, Teams, generic and CloudEvents webhooks) and the GitHub
//! fake for commit statuses.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::github_fake::FakeGitHub;
use crate::gitserver::{bare_repo, rev};
use crate::support::proxy::{Canned, Scripted, Seen};
use crate::support::service::Service;
use crate::support::{Auth, Registry, free_port};

const APP: &str = "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: REG/org/app:1.0.0 # {\"$imagepolicy\": \"team-a:app\"}\n";
const KEY: &str = "webhook-signing-key";
const TOKEN: &str = "ghp_tagsmithnotify0123456789";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

struct Setup {
    rt: tokio::runtime::Runtime,
    registry: Registry,
    tmp: tempfile::TempDir,
    bare: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let registry = Registry::start(Auth::None);
        let tags: Vec<String> = ["1.0.0", "1.2.0"].iter().map(|t| t.to_string()).collect();
        rt.block_on(registry.pusher().push_tags("org/app", &tags));
        let tmp = tempfile::tempdir().unwrap();
        let bare = bare_repo(
            tmp.path(),
            "manifests",
            &[("apps/app.yaml", &APP.replace("REG", &registry.host))],
        );
        std::fs::write(tmp.path().join("key"), format!("{KEY}\n")).unwrap();
        Self {
            rt,
            registry,
            tmp,
            bare,
        }
    }

    /// A receiver that answers with `script`; its URL goes to the file `name`.
    fn receiver(
        &self,
        name: &str,
        script: impl Fn(&Seen) -> Canned + Send + Sync + 'static,
    ) -> Scripted {
        let server = self.rt.block_on(Scripted::start(script));
        std::fs::write(
            self.tmp.path().join(name),
            format!("{}/hook/secret-path\n", server.url()),
        )
        .unwrap();
        server
    }

    /// The config: one target `prod` pushing to the bare repository, `target_extra` added to
    /// it, and `notify` as the `notify:` list.
    fn config(&self, target_extra: &str, notify: &str) -> String {
        let path = self.tmp.path().join("tagsmith.yaml");
        std::fs::write(
            &path,
            format!(
                "images:\n  - policy: team-a:app\n    image: {reg}/org/app\n    semver: '^1'\n\
                 targets:\n  - name: prod\n    git: {{ url: 'file://{bare}', branch: main }}\n    paths: [apps]\n{target_extra}\
                 registries:\n  - host: {reg}\n    insecure: true\n\
                 notify:\n{notify}",
                reg = self.registry.host,
                bare = self.bare.display(),
            ),
        )
        .unwrap();
        path.display().to_string()
    }

    fn once(&self, config: &str) -> Output {
        self.once_with(config, &[])
    }

    fn once_with(&self, config: &str, extra: &[&str]) -> Output {
        let state = self.tmp.path().join("state");
        Command::new(env!("CARGO_BIN_EXE_tagsmith"))
            .args(["once", "-c", config, "--state-dir", state.to_str().unwrap()])
            .args(extra)
            .env_remove("DOCKER_CONFIG")
            .env("HOME", "/nonexistent")
            .env("TAGSMITH_TEST_NOTIFY_TOKEN", TOKEN)
            .output()
            .unwrap()
    }

    fn once_ok(&self, config: &str) -> String {
        let out = self.once(config);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{}{stderr}", text(&out.stdout));
        stderr
    }
}

fn sink(name: &str, kind: &str, extra: &str) -> String {
    format!("  - name: {name}\n    type: {kind}\n    urlFile: {name}\n{extra}")
}

fn json(seen: &Seen) -> Value {
    serde_json::from_str(&seen.body).unwrap_or_else(|e| panic!("{e}: {}", seen.body))
}

/// HMAC-SHA256 in hex, computed with ring (not the code under test's crates).
fn hmac_hex(key: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
    let tag = ring::hmac::sign(&key, body);
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn each_sink_gets_one_message_in_its_own_shape_and_a_no_op_run_sends_nothing() {
    let s = Setup::new();
    let slack = s.receiver("slack", |_| Canned::status(200));
    let teams = s.receiver("teams", |_| Canned::status(202));
    let hook = s.receiver("hook", |_| Canned::status(204));
    let events = s.receiver("events", |_| Canned::status(200));
    let failures_only = s.receiver("failures", |_| Canned::status(200));
    let notify = [
        sink("slack", "slack", ""),
        sink("teams", "teams", ""),
        sink("hook", "webhook", "    secretFile: key\n"),
        sink("events", "webhook", "    format: cloudevents\n"),
        sink("failures", "webhook", "    events: [failed, stalled]\n"),
    ]
    .concat();
    let config = s.config("", &notify);
    // A dry run delivers nothing, so it announces nothing.
    let dry = s.once_with(&config, &["--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry.stderr));
    assert!(
        text(&dry.stdout).contains("would commit"),
        "{}",
        text(&dry.stdout)
    );
    assert!(slack.log().is_empty() && hook.log().is_empty());
    let stderr = s.once_ok(&config);
    let commit = rev(&s.bare, "main");
    let old = format!("{}/org/app:1.0.0", s.registry.host);
    let new = format!("{}/org/app:1.2.0", s.registry.host);

    // Slack incoming webhook: `text` plus `blocks` (docs.slack.dev, "Sending messages using
    // incoming webhooks"): sections of mrkdwn text and a context block.
    let got = slack.log();
    assert_eq!(got.len(), 1, "{got:?}\n{stderr}");
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].uri, "/hook/secret-path");
    assert_eq!(got[0].header("content-type"), Some("application/json"));
    let body = json(&got[0]);
    assert!(body["text"].as_str().unwrap().contains("prod"), "{body}");
    let blocks = body["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "section");
    assert_eq!(blocks[0]["text"]["type"], "mrkdwn");
    assert_eq!(
        blocks[1]["text"]["text"],
        format!("`{old}` -> `{new}`"),
        "{body}"
    );
    assert_eq!(blocks.last().unwrap()["type"], "context");

    // Teams workflow webhook: a message with one Adaptive Card attachment (learn.microsoft.com,
    // "Create incoming webhooks with Workflows for Microsoft Teams").
    let got = teams.log();
    assert_eq!(got.len(), 1, "{got:?}");
    let body = json(&got[0]);
    assert_eq!(body["type"], "message");
    let attachment = &body["attachments"][0];
    assert_eq!(
        attachment["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(attachment["content"]["type"], "AdaptiveCard");
    assert!(attachment["content"]["version"].is_string());
    let card = attachment["content"]["body"].to_string();
    assert!(card.contains(&format!("{old} -> {new}")), "{card}");
    assert!(card.contains(&commit), "{card}");

    // The generic webhook: the event as JSON, signed over the raw body.
    let got = hook.log();
    assert_eq!(got.len(), 1, "{got:?}");
    let signature = got[0].header("x-tagsmith-signature").unwrap();
    assert_eq!(
        signature,
        format!("sha256={}", hmac_hex(KEY, got[0].body.as_bytes()))
    );
    assert_eq!(got[0].header("x-tagsmith-event"), Some("delivered"));
    let body = json(&got[0]);
    assert_eq!(body["type"], "delivered");
    assert_eq!(body["target"], "prod");
    assert_eq!(body["commit"], commit.as_str());
    assert_eq!(body["branch"], "main");
    assert_eq!(body["images"][0]["old"], old.as_str());
    assert_eq!(body["images"][0]["new"], new.as_str());
    assert_eq!(body["changes"][0]["file"], "apps/app.yaml");
    assert_eq!(got[0].header("x-tagsmith-delivery"), body["id"].as_str());

    // CloudEvents 1.0 structured mode (cloudevents/spec json-format.md): the attributes beside
    // `data`, as `application/cloudevents+json`.
    let got = events.log();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        got[0].header("content-type"),
        Some("application/cloudevents+json")
    );
    assert_eq!(got[0].header("x-tagsmith-signature"), None);
    let body = json(&got[0]);
    assert_eq!(body["specversion"], "1.0");
    assert_eq!(body["type"], "io.tagsmith.delivered");
    assert_eq!(body["subject"], "prod");
    assert_eq!(body["datacontenttype"], "application/json");
    for attribute in ["id", "source", "time"] {
        assert!(
            body[attribute].as_str().is_some_and(|v| !v.is_empty()),
            "{attribute}: {body}"
        );
    }
    assert_eq!(body["data"]["commit"], commit.as_str());

    assert!(
        failures_only.log().is_empty(),
        "a sink for failures heard of a delivery"
    );

    // Nothing changed: nothing is sent.
    s.once_ok(&config);
    for (name, server) in [
        ("slack", &slack),
        ("teams", &teams),
        ("hook", &hook),
        ("events", &events),
    ] {
        assert_eq!(server.log().len(), 1, "{name} heard of a no-op run");
    }
}

#[test]
fn a_failing_receiver_is_retried_and_never_fails_the_delivery_nor_shows_its_url() {
    let s = Setup::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let flaky = s.receiver("flaky", move |_| {
        if counted.fetch_add(1, Ordering::SeqCst) < 2 {
            Canned::status(500)
        } else {
            Canned::status(200)
        }
    });
    let broken = s.receiver("broken", |_| Canned::status(400));
    // Nothing listens on this port.
    let dead = format!("http://127.0.0.1:{}/hook/secret-path", free_port());
    std::fs::write(s.tmp.path().join("dead"), &dead).unwrap();
    let notify = [
        sink("flaky", "webhook", ""),
        sink("broken", "slack", ""),
        sink("dead", "webhook", ""),
    ]
    .concat();
    let config = s.config("", &notify);
    let before = rev(&s.bare, "main");
    let stderr = s.once_ok(&config);
    assert_ne!(
        rev(&s.bare, "main"),
        before,
        "the delivery happened whatever the receivers said"
    );
    let got = flaky.log();
    assert_eq!(got.len(), 3, "two 500s, then delivered: {got:?}");
    assert!(
        got.iter().all(|g| g.body == got[0].body),
        "a retry sends the same body"
    );
    // A 400 is not retried: the receiver will not change its mind.
    assert_eq!(broken.log().len(), 1);
    assert!(stderr.contains("notification not sent"), "{stderr}");
    assert!(stderr.contains("answered 400"), "{stderr}");
    assert!(
        !stderr.contains("secret-path"),
        "a webhook URL is a credential and must not be logged:\n{stderr}"
    );
}

#[test]
fn a_failed_run_is_announced_as_failed_or_stalled_only_to_sinks_that_want_it() {
    let s = Setup::new();
    let failures = s.receiver("failures", |_| Canned::status(200));
    let deliveries = s.receiver("deliveries", |_| Canned::status(200));
    let notify = [
        sink("failures", "webhook", "    events: [failed, stalled]\n"),
        sink("deliveries", "webhook", "    events: [delivered]\n"),
    ]
    .concat();
    let config = s.config("", &notify);
    // The repository is gone: the run fails.
    std::fs::remove_dir_all(&s.bare).unwrap();
    let out = s.once(&config);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let got = failures.log();
    assert_eq!(got.len(), 1, "{got:?}");
    let body = json(&got[0]);
    assert!(
        body["type"] == "failed" || body["type"] == "stalled",
        "{body}"
    );
    assert_eq!(body["target"], "prod");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    assert!(body["commit"].is_null());
    assert!(deliveries.log().is_empty());
}

#[test]
fn a_pull_request_target_with_status_gets_a_commit_status_on_its_head() {
    let s = Setup::new();
    let github = FakeGitHub::start(&s.bare, TOKEN);
    let hook = s.receiver("hook", |_| Canned::status(200));
    let target_extra = format!(
        "    push:\n      status: true\n      pullRequest:\n        repository: org/manifests\n        apiUrl: {}\n        auth: {{ tokenEnv: TAGSMITH_TEST_NOTIFY_TOKEN }}\n",
        github.url
    );
    let config = s.config(&target_extra, &sink("hook", "webhook", ""));
    s.once_ok(&config);
    let head = rev(&s.bare, "tagsmith/prod");
    let statuses = github.statuses();
    assert_eq!(statuses.len(), 1, "{statuses:?}");
    assert_eq!(statuses[0].0, head);
    assert_eq!(statuses[0].1["state"], "success");
    assert_eq!(statuses[0].1["context"], "tagsmith");
    let pr_url = "https://github.com/org/manifests/pull/1";
    assert_eq!(statuses[0].1["target_url"], pr_url);
    let body = json(&hook.log()[0]);
    assert_eq!(body["pullRequest"]["url"], pr_url);
    assert_eq!(body["pullRequest"]["action"], "created");
    assert_eq!(body["commit"], head.as_str());
    // The same changes again: the pull request is unchanged, nothing is announced or set.
    s.once_ok(&config);
    assert_eq!(github.statuses().len(), 1);
    assert_eq!(hook.log().len(), 1);
}

#[test]
fn run_sends_from_the_service_and_shows_sink_failures_in_status() {
    let s = Setup::new();
    let good = s.receiver("good", |_| Canned::status(200));
    let bad = s.receiver("bad", |_| Canned::status(403));
    let notify = [sink("good", "teams", ""), sink("bad", "webhook", "")].concat();
    let (port, metrics_port) = (free_port(), free_port());
    let config = format!(
        "{}server: {{ listen: 127.0.0.1:{port}, metrics: 127.0.0.1:{metrics_port} }}\nstate: {{ dir: state }}\n",
        std::fs::read_to_string(s.config("", &notify)).unwrap()
    );
    let dir: &Path = s.tmp.path();
    let service = Service::start(dir, &config, port, metrics_port, &[]);
    service.wait_until("a delivered message", Duration::from_secs(30), || {
        good.log().len() == 1
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let bad_status = loop {
        let status = service.status();
        let sinks = status["notifications"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if let Some(b) = sinks
            .iter()
            .find(|n| n["name"] == "bad" && n["failed"] == 1)
        {
            break b.clone();
        }
        assert!(Instant::now() < deadline, "{status}\n{}", service.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(bad_status["kind"], "webhook");
    assert!(
        bad_status["lastError"].as_str().unwrap().contains("403"),
        "{bad_status}"
    );
    let (_, metrics) = service.get(metrics_port, "/metrics");
    assert!(
        metrics.contains("tagsmith_notifications_total{sink=\"good\",result=\"sent\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tagsmith_notifications_total{sink=\"bad\",result=\"failed\"} 1"),
        "{metrics}"
    );
    assert!(!service.log().contains("secret-path"), "{}", service.log());
    assert_eq!(bad.log().len(), 1, "a 403 is not retried");
}
