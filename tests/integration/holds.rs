//! Holds that respect a person's rollback, through the binary against a real registry and a
//! real Git remote: tagsmith writes 1.3.0, a person commits 1.2.0, tagsmith leaves it (across a
//! restart) until 1.4.0 appears; a hold is lifted with `tagsmith release` (through the running
//! service's admin address, and offline beside `tagsmith once`) and with `POST /release`;
//! a suspended image is neither scanned nor written.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::gitserver::{bare_repo, commit_elsewhere, count_commits, git, show};
use crate::support::service::Service;
use crate::support::{Auth, Registry, free_port};

const APP: &str = "apps/app.yaml";
const LIMIT: Duration = Duration::from_secs(60);

fn push(registry: &Registry, tags: &[&str]) {
    let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(registry.pusher().push_tags("org/app", &tags));
}

fn manifest(registry: &Registry, tag: &str) -> String {
    format!(
        "image: {}/org/app:{tag} # {{\"$imagepolicy\": \"team-a:app\"}}\n",
        registry.host
    )
}

fn config(registry: &Registry, git_url: &str, port: u16, metrics_port: u16, extra: &str) -> String {
    let reg = &registry.host;
    format!(
        "images:\n  - {{ policy: 'team-a:app', image: '{reg}/org/app', semver: '^1', interval: 1h }}\n{extra}\
         targets:\n  - {{ name: prod, git: {{ url: '{git_url}', branch: main }} }}\n\
         registries:\n  - {{ host: '{reg}', insecure: true }}\n\
         server: {{ listen: '127.0.0.1:{port}', metrics: '127.0.0.1:{metrics_port}' }}\n\
         state: {{ dir: state }}\n"
    )
}

fn start(dir: &Path, registry: &Registry, git_url: &str) -> Service {
    let (port, metrics_port) = (free_port(), free_port());
    Service::start(
        dir,
        &config(registry, git_url, port, metrics_port, ""),
        port,
        metrics_port,
        &[],
    )
}

/// A registry with 1.0.0 and 1.3.0, a repository whose marker reads 1.0.0, and a service that
/// has written 1.3.0; then a person rolls it back to 1.2.0 and the service runs the target.
fn rolled_back() -> (
    Registry,
    tempfile::TempDir,
    std::path::PathBuf,
    String,
    Service,
) {
    let registry = Registry::start(Auth::None);
    push(&registry, &["1.0.0", "1.2.0", "1.3.0"]);
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(
        tmp.path(),
        "manifests",
        &[(APP, &manifest(&registry, "1.0.0"))],
    );
    let url = format!("file://{}", bare.display());
    let service = start(tmp.path(), &registry, &url);
    service.wait_until("tagsmith to write 1.3.0", LIMIT, || {
        show(&bare, "main", APP).contains("org/app:1.3.0")
    });
    service.wait_until("the push to be recorded", LIMIT, || {
        service.status()["targets"][0]["outcome"] == "pushed"
    });
    commit_elsewhere(&bare, "main", APP, &manifest(&registry, "1.2.0"));
    hold_after_a_run(&service);
    (registry, tmp, bare, url, service)
}

/// Runs the target and waits until `/status` shows the hold.
fn hold_after_a_run(service: &Service) {
    assert_eq!(service.post(service.metrics_port, "/run?target=prod"), 202);
    service.wait_until("the hold in /status", LIMIT, || {
        service.status()["targets"][0]["holds"]
            .as_array()
            .is_some_and(|h| h.len() == 1)
    });
}

fn holds(service: &Service) -> Vec<serde_json::Value> {
    service.status()["targets"][0]["holds"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn tagsmith(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tagsmith"))
        .args(args)
        .current_dir(dir)
        .env("HOME", "/nonexistent")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_persons_rollback_is_held_across_a_restart_until_a_newer_tag_appears() {
    let (registry, tmp, bare, url, mut service) = rolled_back();
    let commits = count_commits(&bare, "main");
    let held = holds(&service);
    assert_eq!(held[0]["policy"], "team-a:app", "{held:?}");
    assert_eq!(held[0]["file"], APP);
    assert!(
        held[0]["from"].as_str().unwrap().ends_with(":1.3.0"),
        "{held:?}"
    );
    assert!(
        held[0]["to"].as_str().unwrap().ends_with(":1.2.0"),
        "{held:?}"
    );
    assert!(
        show(&bare, "main", APP).contains("org/app:1.2.0"),
        "left as the person set it"
    );
    assert_eq!(
        count_commits(&bare, "main"),
        commits,
        "nothing written back"
    );
    assert_eq!(service.metric("tagsmith_holds", &["target=\"prod\""]), 1.0);
    assert_eq!(
        service.log().matches("hold started").count(),
        1,
        "{}",
        service.log()
    );
    assert_eq!(service.stop(), Some(0));

    // A restart keeps the hold: the start-up run leaves the marker.
    let service = start(tmp.path(), &registry, &url);
    service.wait_until("the start-up run", LIMIT, || {
        service.metric("tagsmith_target_runs_total", &["outcome=\"unchanged\""]) >= 1.0
    });
    assert_eq!(holds(&service).len(), 1, "{}", service.log());
    assert!(show(&bare, "main", APP).contains("org/app:1.2.0"));
    assert_eq!(count_commits(&bare, "main"), commits);
    assert!(
        !service.log().contains("hold started"),
        "the same hold, not a new one"
    );

    // 1.4.0 is newer than the 1.3.0 rolled back from: tagsmith writes it and the hold ends.
    push(&registry, &["1.4.0"]);
    let image = format!("{}/org/app", registry.host);
    assert_eq!(
        service.post(service.metrics_port, &format!("/scan?image={image}")),
        202
    );
    service.wait_until("tagsmith to write 1.4.0", LIMIT, || {
        show(&bare, "main", APP).contains("org/app:1.4.0")
    });
    service.wait_until("the hold to end in /status", LIMIT, || {
        holds(&service).is_empty()
    });
    assert_eq!(service.metric("tagsmith_holds", &["target=\"prod\""]), 0.0);
    assert!(service.log().contains("hold ended"), "{}", service.log());
    let author = git(&bare, &["log", "-1", "--format=%an", "main"]);
    assert_eq!(author.trim(), "tagsmith");
}

#[test]
fn a_person_bumping_to_a_newer_tag_by_hand_is_not_held() {
    let registry = Registry::start(Auth::None);
    push(&registry, &["1.0.0", "1.3.0"]);
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(
        tmp.path(),
        "manifests",
        &[(APP, &manifest(&registry, "1.0.0"))],
    );
    let url = format!("file://{}", bare.display());
    let service = start(tmp.path(), &registry, &url);
    service.wait_until("tagsmith to write 1.3.0", LIMIT, || {
        show(&bare, "main", APP).contains("org/app:1.3.0")
    });
    // A value the policy ranks above its own selection (1.9.0 is not in the registry).
    commit_elsewhere(&bare, "main", APP, &manifest(&registry, "1.9.0"));
    assert_eq!(service.post(service.metrics_port, "/run?target=prod"), 202);
    service.wait_until("tagsmith to write its selection", LIMIT, || {
        show(&bare, "main", APP).contains("org/app:1.3.0")
    });
    assert!(holds(&service).is_empty());
}

#[test]
fn a_hold_is_released_through_the_cli_and_post_release() {
    let (registry, tmp, bare, _url, mut service) = rolled_back();
    let config = service.config.to_str().unwrap().to_string();

    // The CLI beside a running service sends the release to its admin address.
    let (code, out, err) = tagsmith(tmp.path(), &["release", "team-a:app", "-c", &config]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("released apps/app.yaml:1"), "{out}");
    service.wait_until("tagsmith to write 1.3.0 again", LIMIT, || {
        show(&bare, "main", APP).contains("org/app:1.3.0")
    });
    service.wait_until("no hold in /status", LIMIT, || holds(&service).is_empty());

    // Rolled back again: held again; released with POST /release.
    commit_elsewhere(&bare, "main", APP, &manifest(&registry, "1.2.0"));
    hold_after_a_run(&service);
    let port = service.metrics_port;
    assert_eq!(service.post(port, "/release?policy=team-b:other"), 404);
    assert_eq!(service.post(port, "/release?policy=not-an-id"), 400);
    assert_eq!(
        service.post(port, "/release?policy=team-a:app&target=nope"),
        404
    );
    let answer = service.runtime.block_on(async {
        reqwest::Client::new()
            .post(format!(
                "http://127.0.0.1:{port}/release?policy=team-a:app&file={APP}"
            ))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["released"][0]["target"], "prod", "{answer}");
    assert_eq!(answer["released"][0]["file"], APP, "{answer}");
    service.wait_until("tagsmith to write 1.3.0 again", LIMIT, || {
        show(&bare, "main", APP).contains("org/app:1.3.0")
    });
    assert_eq!(service.stop(), Some(0));

    // Without a service: `once` holds and reports it, the CLI releases offline, `once` writes.
    commit_elsewhere(&bare, "main", APP, &manifest(&registry, "1.2.0"));
    let (code, out, err) = tagsmith(tmp.path(), &["once", "-c", &config]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("held: apps/app.yaml:1: team-a:app"), "{out}");
    assert!(show(&bare, "main", APP).contains("org/app:1.2.0"));
    let (code, out, err) = tagsmith(tmp.path(), &["release", "team-a:app", "-c", &config]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("released apps/app.yaml:1"), "{out}");
    let (code, out, _) = tagsmith(tmp.path(), &["release", "team-a:app", "-c", &config]);
    assert_eq!(code, 0);
    assert!(out.contains("nothing was held"), "{out}");
    let (code, out, err) = tagsmith(tmp.path(), &["once", "-c", &config]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(show(&bare, "main", APP).contains("org/app:1.3.0"), "{out}");
    assert!(!out.contains("held:"), "{out}");
}

#[test]
fn a_suspended_image_is_not_scanned_and_its_markers_are_left() {
    let registry = Registry::start(Auth::None);
    push(&registry, &["1.0.0", "1.3.0"]);
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(
        tmp.path(),
        "manifests",
        &[(APP, &manifest(&registry, "1.0.0"))],
    );
    let url = format!("file://{}", bare.display());
    let (port, metrics_port) = (free_port(), free_port());
    let config = config(&registry, &url, port, metrics_port, "")
        .replace("interval: 1h }", "interval: 1h, suspend: true }");
    assert!(config.contains("suspend: true"));
    let service = Service::start(tmp.path(), &config, port, metrics_port, &[]);
    service.wait_until("the start-up run", LIMIT, || {
        service.metric("tagsmith_target_runs_total", &[]) >= 1.0
    });
    let status = service.status();
    assert_eq!(status["images"][0]["suspended"], true, "{status}");
    assert!(status["images"][0]["selected"].is_null(), "{status}");
    assert_eq!(status["targets"][0]["outcome"], "unchanged", "{status}");
    assert_eq!(
        status["targets"][0]["problems"],
        serde_json::json!([]),
        "{status}"
    );
    assert_eq!(
        service.metric("tagsmith_scans_total", &[]),
        0.0,
        "not scanned"
    );
    assert!(show(&bare, "main", APP).contains("org/app:1.0.0"));
    drop(service);

    let path = tmp.path().join("tagsmith.yaml");
    let (code, out, err) = tagsmith(tmp.path(), &["once", "-c", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("suspended"), "{out}");
    assert!(!out.contains("problem"), "{out}");
    assert!(show(&bare, "main", APP).contains("org/app:1.0.0"));
}

/// Over smart HTTP a direct push fetches shallow; only the first fetch may be, or the
/// history back to tagsmith's own commit (which tells a rollback apart) would be cut off.
#[test]
fn a_persons_rollback_is_held_when_the_remote_is_fetched_over_http() {
    let registry = Registry::start(Auth::None);
    push(&registry, &["1.0.0", "1.2.0", "1.3.0"]);
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(
        tmp.path(),
        "manifests",
        &[(APP, &manifest(&registry, "1.0.0"))],
    );
    let server = crate::gitserver::GitHttpServer::start(tmp.path(), None, None);
    let url = format!("{}/manifests.git", server.base_url);
    let service = start(tmp.path(), &registry, &url);
    service.wait_until("tagsmith to write 1.3.0", LIMIT, || {
        show(&bare, "main", APP).contains("org/app:1.3.0")
    });
    service.wait_until("the push to be recorded", LIMIT, || {
        service.status()["targets"][0]["outcome"] == "pushed"
    });
    commit_elsewhere(&bare, "main", APP, &manifest(&registry, "1.2.0"));
    commit_elsewhere(&bare, "main", "README.md", "a later, unrelated commit\n");
    let commits = count_commits(&bare, "main");
    hold_after_a_run(&service);
    let held = holds(&service);
    assert!(
        held[0]["to"].as_str().unwrap().ends_with(":1.2.0"),
        "{held:?}"
    );
    assert!(show(&bare, "main", APP).contains("org/app:1.2.0"));
    assert_eq!(
        count_commits(&bare, "main"),
        commits,
        "nothing written back"
    );
}

/// Runs with nothing new leave the holds file as it is (not even written again) and keep the
/// hold; the held file deleted upstream ends the hold, once, and tagsmith forgets what it
/// wrote to every file that is gone, held or not (a file added again later under that name is
/// new to it; before, the records of files without a hold stayed in the file for good).
#[test]
fn a_hold_stands_through_runs_with_nothing_new_and_ends_with_its_file() {
    use std::os::unix::fs::MetadataExt as _;

    let registry = Registry::start(Auth::None);
    push(&registry, &["1.0.0", "1.2.0", "1.3.0"]);
    let tmp = tempfile::tempdir().unwrap();
    let (other, third) = ("apps/other.yaml", "apps/third.yaml");
    let bare = bare_repo(
        tmp.path(),
        "manifests",
        &[
            (APP, &manifest(&registry, "1.0.0")),
            (other, &manifest(&registry, "1.0.0")),
            (third, &manifest(&registry, "1.0.0")),
        ],
    );
    let url = format!("file://{}", bare.display());
    let cfg = config(&registry, &url, free_port(), free_port(), "");
    std::fs::write(tmp.path().join("tagsmith.yaml"), cfg).unwrap();
    let once = || {
        let (code, out, err) = tagsmith(tmp.path(), &["once", "-c", "tagsmith.yaml"]);
        assert_eq!(code, 0, "{out}{err}");
        (out, err)
    };
    once();
    assert!(show(&bare, "main", APP).contains("org/app:1.3.0"));
    commit_elsewhere(&bare, "main", APP, &manifest(&registry, "1.2.0"));
    let (out, _) = once();
    assert!(out.contains("held: apps/app.yaml:1: team-a:app"), "{out}");

    let file = tmp.path().join("state/holds/prod.json");
    let stamp = || {
        let meta = std::fs::metadata(&file).unwrap();
        (meta.ino(), meta.modified().unwrap(), meta.len())
    };
    let before = stamp();
    let (out, _) = once();
    assert!(out.contains("held: apps/app.yaml:1: team-a:app"), "{out}");
    assert_eq!(stamp(), before, "the holds file was written again");
    assert!(show(&bare, "main", APP).contains("org/app:1.2.0"));

    let clone = tmp.path().join("deleting");
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            bare.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    // The held file and one tagsmith wrote without a hold.
    git(&clone, &["rm", "-q", APP, third]);
    git(&clone, &["commit", "-qm", "drop the app"]);
    git(&clone, &["push", "-q", "origin", "main"]);
    let (out, err) = once();
    assert!(!out.contains("held:"), "{out}");
    assert!(err.contains("hold ended: the file is gone"), "{err}");
    let book: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let files: Vec<&str> = book["written"]
        .as_array()
        .unwrap()
        .iter()
        .chain(book["holds"].as_array().unwrap())
        .map(|r| r["key"]["file"].as_str().unwrap())
        .collect();
    assert_eq!(files, vec![other], "{book}");
    let (_, err) = once();
    assert!(!err.contains("the file is gone"), "{err}");
}
