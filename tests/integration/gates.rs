//! Gates against the real registry: images pushed with chosen `created` times, multi-platform
//! indexes and cosign signature artifacts (written as cosign writes them, with real keys), read
//! through `tagsmith policy eval --policy --explain`, `tagsmith once` and `tagsmith run`.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::gitserver::{bare_repo, show};
use crate::support::cosign::{Key, payload};
use crate::support::service::Service;
use crate::support::{Auth, Pusher, Registry, free_port};

fn tagsmith(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tagsmith"))
        .args(args)
        .env_remove("DOCKER_CONFIG")
        .env("HOME", "/nonexistent")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Runtime::new().unwrap().block_on(f)
}

/// `tagsmith.yaml` with one image `gates:app` on `org/<repo>` and `gates` added to it.
fn config(dir: &Path, registry: &Registry, repo: &str, gates: &str) -> PathBuf {
    let path = dir.join("tagsmith.yaml");
    std::fs::write(
        &path,
        format!(
            "images:\n  - policy: gates:app\n    image: {reg}/org/{repo}\n    semver: '^1'\n{gates}\
             registries:\n  - host: {reg}\n    insecure: true\n",
            reg = registry.host
        ),
    )
    .unwrap();
    path
}

/// `policy eval --policy gates:app --explain --output json`: the JSON result.
fn explain(config: &Path, env: &[(&str, &str)]) -> (Output, Value) {
    let out = tagsmith(
        &[
            "policy",
            "eval",
            "-c",
            config.to_str().unwrap(),
            "--policy",
            "gates:app",
            "--explain",
            "--output",
            "json",
        ],
        env,
    );
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", text(&out.stdout), text(&out.stderr)));
    (out, json)
}

/// The verdict and reason `--explain` gives `tag`.
fn verdict<'a>(json: &'a Value, tag: &str) -> (&'a str, &'a str) {
    let v = json["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tag"] == tag)
        .unwrap_or_else(|| panic!("no verdict for {tag}: {json}"));
    (
        v["verdict"].as_str().unwrap(),
        v["reason"].as_str().unwrap(),
    )
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[test]
fn min_age_holds_young_tags_and_picks_the_newest_old_enough() {
    let registry = Registry::start(Auth::None);
    let p = registry.pusher();
    let now = chrono::Utc::now();
    block(async {
        p.push_image("org/app", "1.0.0", Some("2020-01-01T00:00:00Z"))
            .await;
        p.push_image(
            "org/app",
            "1.1.0",
            Some(&rfc3339(now - chrono::Duration::hours(30))),
        )
        .await;
        p.push_image(
            "org/app",
            "1.2.0",
            Some(&rfc3339(now - chrono::Duration::hours(2))),
        )
        .await;
        // A config time in the future does not count: the age runs from first sight.
        p.push_image("org/app", "1.3.0", Some("2999-01-01T00:00:00Z"))
            .await;
        // No `created` at all: the same.
        p.push_image("org/app", "1.4.0", None).await;
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &registry, "app", "    minAge: 24h\n");
    let (out, json) = explain(&cfg, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(json["selected"], "1.1.0", "{json}");
    let (v, reason) = verdict(&json, "1.2.0");
    assert_eq!(v, "stopped");
    assert!(
        reason.starts_with("minAge: younger than 24h (created "),
        "{reason}"
    );
    for tag in ["1.3.0", "1.4.0"] {
        let (v, reason) = verdict(&json, tag);
        assert_eq!(v, "stopped", "{tag}");
        assert!(reason.contains("(first seen "), "{tag}: {reason}");
    }
    assert_eq!(verdict(&json, "1.0.0"), ("kept", "lost to 1.1.0"));
    // Best first, each with when it comes of age.
    let stopped: Vec<&str> = json["stopped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["tag"].as_str().unwrap())
        .collect();
    assert_eq!(stopped, ["1.4.0", "1.3.0", "1.2.0"]);
    let at = json["stopped"][2]["eligibleAt"].as_u64().unwrap();
    let expected = (now + chrono::Duration::hours(22)).timestamp_millis() as u64;
    assert!(at.abs_diff(expected) < 5_000, "{at} vs {expected}");
}

#[test]
fn platforms_need_every_listed_one_and_pinning_keeps_the_index_digest() {
    let registry = Registry::start(Auth::None);
    let p = registry.pusher();
    let old = Some("2020-01-01T00:00:00Z");
    let (good, single) = block(async {
        p.push_platforms("org/multi", "1.0.0", &["linux/amd64", "linux/arm64"], old)
            .await;
        // arm64 with a variant serves a wanted linux/arm64 (Argo CD Image Updater's rule).
        let good = p
            .push_platforms(
                "org/multi",
                "1.1.0",
                &["linux/amd64", "linux/arm64/v8"],
                old,
            )
            .await;
        p.push_platforms(
            "org/multi",
            "1.2.0",
            &["linux/amd64", "unknown/unknown"],
            old,
        )
        .await;
        let single = p.push_image("org/multi", "1.3.0", old).await;
        (good, single)
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &registry,
        "multi",
        "    digest: Always\n    platforms: [linux/amd64, linux/arm64]\n",
    );
    let (out, json) = explain(&cfg, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(json["selected"], "1.1.0", "{json}");
    assert_eq!(json["digest"], good.as_str(), "the index digest is pinned");
    assert_eq!(
        verdict(&json, "1.3.0"),
        (
            "stopped",
            "platforms: lacks linux/arm64 (provides linux/amd64)"
        )
    );
    assert_eq!(json["stopped"][0]["digest"], single.as_str());
    assert_eq!(
        verdict(&json, "1.2.0"),
        (
            "stopped",
            "platforms: lacks linux/arm64 (provides linux/amd64)"
        )
    );

    // minAge on an index reads the config of the first wanted platform's image, and says so.
    let now = rfc3339(chrono::Utc::now());
    block(p.push_platforms(
        "org/multi",
        "1.4.0",
        &["linux/arm64", "linux/amd64"],
        Some(&now),
    ));
    let cfg = config(
        dir.path(),
        &registry,
        "multi",
        "    minAge: 1h\n    platforms: [linux/amd64, linux/arm64]\n",
    );
    let (_, json) = explain(&cfg, &[]);
    let (v, reason) = verdict(&json, "1.4.0");
    assert_eq!(v, "stopped");
    assert!(
        reason.ends_with("; created of the linux/amd64 image"),
        "{reason}"
    );
    assert_eq!(json["selected"], "1.1.0");
}

/// Tags signed in every wrong way, and the one eligible tag below them.
struct Signed {
    registry: Registry,
    dir: tempfile::TempDir,
    /// The environment variable holding the second key.
    env: (String, String),
}

fn signed() -> Signed {
    let registry = Registry::start(Auth::None);
    let p: Pusher = registry.pusher();
    let ours = Key::ecdsa(7);
    let ours_too = Key::ed25519(5);
    let theirs = Key::ecdsa(9);
    let reference = format!("{}/org/signed", registry.host);
    let old = Some("2020-01-01T00:00:00Z");
    block(async {
        let d = |tag: &'static str| p.push_image("org/signed", tag, old);
        let d100 = d("1.0.0").await;
        let body = payload(&reference, &d100);
        p.push_signature("org/signed", &d100, &[(body.clone(), ours.sign(&body))])
            .await;
        // Ed25519, the second configured key.
        let d110 = d("1.1.0").await;
        let body = payload(&reference, &d110);
        p.push_signature("org/signed", &d110, &[(body.clone(), ours_too.sign(&body))])
            .await;
        // A valid signature of 1.0.0's digest copied under 1.2.0's signature tag.
        let d120 = d("1.2.0").await;
        let body = payload(&reference, &d100);
        p.push_signature("org/signed", &d120, &[(body.clone(), ours.sign(&body))])
            .await;
        // Payload changed after signing.
        let d130 = d("1.3.0").await;
        let body = payload(&reference, &d130);
        let signature = ours.sign(&body);
        let tampered = payload(&format!("{reference}-evil"), &d130);
        p.push_signature("org/signed", &d130, &[(tampered, signature)])
            .await;
        // Someone else's key.
        let d140 = d("1.4.0").await;
        let body = payload(&reference, &d140);
        p.push_signature("org/signed", &d140, &[(body.clone(), theirs.sign(&body))])
            .await;
        // No signature at all.
        d("1.5.0").await;
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cosign.pub"), ours.public_pem()).unwrap();
    Signed {
        registry,
        dir,
        env: ("TEST_COSIGN_PUB".into(), ours_too.public_pem()),
    }
}

const VERIFY: &str = "    verify:\n      cosign:\n        publicKeys:\n          - file: cosign.pub\n          - env: TEST_COSIGN_PUB\n";

#[test]
fn signatures_that_do_not_verify_are_refused_and_the_next_signed_tag_is_chosen() {
    let s = signed();
    let cfg = config(s.dir.path(), &s.registry, "signed", VERIFY);
    let env = [(s.env.0.as_str(), s.env.1.as_str())];
    let (out, json) = explain(&cfg, &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(json["selected"], "1.1.0", "{json}");
    assert_eq!(
        verdict(&json, "1.5.0"),
        ("stopped", "signature: no cosign signature")
    );
    assert_eq!(
        verdict(&json, "1.4.0"),
        (
            "stopped",
            "signature: no valid cosign signature (1 found: no configured key verifies it)"
        )
    );
    assert_eq!(
        verdict(&json, "1.3.0"),
        (
            "stopped",
            "signature: no valid cosign signature (1 found: no configured key verifies it)"
        )
    );
    let (v, reason) = verdict(&json, "1.2.0");
    assert_eq!(v, "stopped");
    assert!(reason.contains("1 found: it signs sha256:"), "{reason}");

    // Without the Ed25519 key, 1.1.0 is refused too and 1.0.0 (ECDSA) is chosen.
    let cfg = config(
        s.dir.path(),
        &s.registry,
        "signed",
        "    verify: { cosign: { publicKeys: [ { file: cosign.pub } ] } }\n",
    );
    let (_, json) = explain(&cfg, &[]);
    assert_eq!(json["selected"], "1.0.0", "{json}");
    assert_eq!(
        verdict(&json, "1.1.0").0,
        "stopped",
        "an Ed25519 signature needs the Ed25519 key"
    );
}

/// Debian's registry predates the OCI 1.1 referrers API: the signatures above were found
/// through the `sha256-<hex>.sig` tag, the fallback. This pins that the API is really absent
/// here, so the test above exercises the fallback and not the API.
#[test]
fn the_test_registry_has_no_referrers_api_so_the_tag_layout_is_what_is_read() {
    let registry = Registry::start(Auth::None);
    let digest = block(registry.pusher().push_image("org/plain", "1.0.0", None));
    let url = format!("{}/v2/org/plain/referrers/{digest}", registry.base_url());
    let status = block(async { reqwest::get(url).await.unwrap().status().as_u16() });
    assert_eq!(status, 404);
}

#[test]
fn gate_keys_in_tagsmith_yaml_are_checked_with_their_line() {
    let registry = Registry::start(Auth::None);
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("    minAge: 1d\n", 5, "minAge: invalid duration"),
        ("    minAge: 0s\n", 5, "minAge must be longer than 0s"),
        (
            "    platforms: [linux/amd64, linux]\n",
            5,
            "invalid platform \"linux\"",
        ),
        (
            "    verify: { cosign: { publicKeys: [ { file: missing.pub } ] } }\n",
            5,
            "cannot read public key",
        ),
        (
            "    verify: { cosign: { publicKeys: [ { env: TAGSMITH_TEST_NO_SUCH_KEY } ] } }\n",
            5,
            "environment variable TAGSMITH_TEST_NO_SUCH_KEY (a public key) is not set",
        ),
        ("    platform: [linux/amd64]\n", 5, "platform"),
    ];
    for (gates, line, message) in cases {
        let cfg = config(dir.path(), &registry, "app", gates);
        let out = tagsmith(&["check", "-c", cfg.to_str().unwrap()], &[]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{gates}: {err}");
        assert!(
            err.contains(&format!("tagsmith.yaml:{line}:")),
            "{gates}: {err}"
        );
        assert!(err.contains(message), "{gates}: {err}");
    }
    std::fs::write(dir.path().join("bad.pub"), "not a key").unwrap();
    let cfg = config(
        dir.path(),
        &registry,
        "app",
        "    verify:\n      cosign:\n        publicKeys:\n          - file: bad.pub\n",
    );
    let out = tagsmith(&["check", "-c", cfg.to_str().unwrap()], &[]);
    let err = text(&out.stderr);
    assert!(
        err.contains("tagsmith.yaml:8:") && err.contains("not a PEM public key"),
        "{err}"
    );
}

const DEPLOY: &str = "image: REG/org/signed:1.0.0 # {\"$imagepolicy\": \"gates:app\"}\n";

#[test]
fn once_reports_which_gate_stopped_which_tag_in_text_and_json() {
    let s = signed();
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(
        tmp.path(),
        "manifests",
        &[("apps/app.yaml", &DEPLOY.replace("REG", &s.registry.host))],
    );
    let cfg = config(s.dir.path(), &s.registry, "signed", VERIFY);
    let mut yaml = std::fs::read_to_string(&cfg).unwrap();
    yaml.push_str(&format!(
        "targets:\n  - name: prod\n    git: {{ url: 'file://{}', branch: main }}\n    paths: [apps]\n    commit: {{ author: {{ name: bot, email: bot@example.invalid }} }}\n",
        bare.display()
    ));
    std::fs::write(&cfg, yaml).unwrap();
    let state = tmp.path().join("state");
    let env = [(s.env.0.as_str(), s.env.1.as_str())];
    let args = |json: bool| {
        let mut a = vec![
            "once".to_string(),
            "-c".into(),
            cfg.display().to_string(),
            "--state-dir".into(),
            state.display().to_string(),
        ];
        if json {
            a.extend(["--dry-run".into(), "--output".into(), "json".into()]);
        }
        a
    };
    let run = |json: bool| {
        let a = args(json);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        tagsmith(&a, &env)
    };
    let out = run(true);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let image = &json["images"][0];
    assert!(
        image["selected"].as_str().unwrap().ends_with(":1.1.0"),
        "{image}"
    );
    let gates: Vec<(&str, &str)> = image["stopped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["tag"].as_str().unwrap(), s["gate"].as_str().unwrap()))
        .collect();
    assert_eq!(
        gates,
        [
            ("1.5.0", "signature"),
            ("1.4.0", "signature"),
            ("1.3.0", "signature"),
            ("1.2.0", "signature")
        ]
    );
    let out = run(false);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("  1.5.0 stopped by signature: no cosign signature"),
        "{stdout}"
    );
    assert!(show(&bare, "main", "apps/app.yaml").contains("org/signed:1.1.0"));
}

#[test]
fn run_writes_a_tag_held_by_min_age_the_moment_it_comes_of_age_without_a_poll() {
    let registry = Registry::start(Auth::None);
    let p = registry.pusher();
    // Whole seconds, as the config carries it.
    let created = chrono::DateTime::parse_from_rfc3339(&rfc3339(chrono::Utc::now()))
        .unwrap()
        .with_timezone(&chrono::Utc);
    block(async {
        p.push_image("org/young", "1.0.0", Some("2020-01-01T00:00:00Z"))
            .await;
        // Comes of age 8 s after it was built; the poll interval is an hour.
        p.push_image("org/young", "1.1.0", Some(&rfc3339(created)))
            .await;
    });
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(
        tmp.path(),
        "manifests",
        &[(
            "apps/app.yaml",
            &format!(
                "image: {}/org/young:0.9.0 # {{\"$imagepolicy\": \"gates:app\"}}\n",
                registry.host
            ),
        )],
    );
    let (port, metrics_port) = (free_port(), free_port());
    let yaml = format!(
        "images:\n  - policy: gates:app\n    image: {reg}/org/young\n    semver: '^1'\n    interval: 1h\n    minAge: 8s\n\
         targets:\n  - name: prod\n    git: {{ url: 'file://{bare}', branch: main }}\n    paths: [apps]\n    interval: 1h\n    commit: {{ author: {{ name: bot, email: bot@example.invalid }} }}\n\
         registries:\n  - host: {reg}\n    insecure: true\n\
         server: {{ listen: '127.0.0.1:{port}', metrics: '127.0.0.1:{metrics_port}' }}\n\
         state: {{ dir: state }}\n",
        reg = registry.host,
        bare = bare.display()
    );
    let service = Service::start(tmp.path(), &yaml, port, metrics_port, &[]);
    service.wait_until("1.0.0 written", Duration::from_secs(30), || {
        show(&bare, "main", "apps/app.yaml").contains("org/young:1.0.0")
    });
    let status = service.status();
    let image = &status["images"][0];
    let stopped = image["stopped"][0].as_str().unwrap_or_default().to_string();
    assert!(
        stopped.starts_with("1.1.0 stopped by minAge: younger than 8s"),
        "{status}"
    );
    let stops = ["policy=\"gates:app\"", "gate=\"minAge\""];
    assert_eq!(service.metric("tagsmith_gate_stops", &stops), 1.0);
    service.wait_until(
        "1.1.0 written when it comes of age",
        Duration::from_secs(30),
        || show(&bare, "main", "apps/app.yaml").contains("org/young:1.1.0"),
    );
    assert_eq!(service.metric("tagsmith_gate_stops", &stops), 0.0);
    assert!(chrono::Utc::now() >= created + chrono::Duration::seconds(8));
}

#[test]
fn first_seen_times_outlive_the_process_so_a_tag_without_created_comes_of_age() {
    let registry = Registry::start(Auth::None);
    let p = registry.pusher();
    block(async {
        p.push_image("org/nodate", "1.0.0", Some("2020-01-01T00:00:00Z"))
            .await;
        p.push_image("org/nodate", "1.1.0", None).await;
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &registry, "nodate", "    minAge: 3s\n");
    let state = dir.path().join("state");
    let once = || {
        let out = tagsmith(
            &[
                "once",
                "-c",
                cfg.to_str().unwrap(),
                "--state-dir",
                state.to_str().unwrap(),
                "--output",
                "json",
            ],
            &[],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        json["images"][0].clone()
    };
    let first = once();
    assert!(
        first["selected"].as_str().unwrap().ends_with(":1.0.0"),
        "{first}"
    );
    assert!(
        first["stopped"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("(first seen "),
        "{first}"
    );
    // Each `once` is a new process: only the state store remembers when 1.1.0 was first seen.
    // Were the time not kept, every run would see it for the first time and hold it again.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let image = once();
        if image["selected"].as_str().unwrap().ends_with(":1.1.0") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "1.1.0 never came of age: {image}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
