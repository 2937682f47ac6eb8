//! `tagsmith status` against a running `tagsmith run` (real registry, real bare repository):
//! the tables show what `/status` says, `--output json` is the document itself, and a service
//! that is not there is a clear error naming the address. The same service shows that a webhook
//! for an image no policy watches is answered 200 `ignored` and counted so.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::gitserver::{bare_repo, rev, show};
use crate::support::service::Service;
use crate::support::{Auth, Registry, free_port};

const APP: &str = "apps/app.yaml";

/// One image of `registry` and one target (`git_url`) in a config under `dir`, as
/// tests/integration/run_service.rs writes it; returns once `/readyz` answers.
fn start(dir: &Path, registry: &Registry, git_url: &str) -> Service {
    let reg = &registry.host;
    std::fs::write(dir.join("hook-token"), "hook-secret\n").unwrap();
    let port = free_port();
    let metrics_port = free_port();
    let config = format!(
        "images:\n  - {{ policy: 'team-a:app', image: '{reg}/org/app', semver: '^1', interval: 1h }}\n\
         targets:\n  - {{ name: prod, git: {{ url: '{git_url}', branch: main }} }}\n\
         registries:\n  - {{ host: '{reg}', insecure: true }}\n\
         server: {{ listen: '127.0.0.1:{port}', metrics: '127.0.0.1:{metrics_port}' }}\n\
         receivers:\n  - {{ name: ci, type: generic, secretFile: hook-token }}\n\
         state: {{ dir: state }}\n"
    );
    Service::start(dir, &config, port, metrics_port, &[])
}

/// A generic webhook naming `image` to `service`: the status and the JSON answer.
fn webhook(service: &Service, image: &str) -> (u16, serde_json::Value) {
    let port = service.port;
    service.runtime.block_on(async {
        let response = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/hook/ci"))
            .bearer_auth("hook-secret")
            .body(format!("{{\"images\":[\"{image}\"]}}"))
            .send()
            .await
            .unwrap();
        let code = response.status().as_u16();
        (
            code,
            serde_json::from_str(&response.text().await.unwrap()).unwrap(),
        )
    })
}

fn tagsmith(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tagsmith"))
        .args(args)
        .env("HOME", "/nonexistent")
        .output()
        .unwrap()
}

/// The cells of a table row: columns are two or more spaces apart.
fn cells(row: &str) -> Vec<&str> {
    row.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

#[test]
fn status_prints_the_services_images_and_targets_as_tables() {
    let registry = Registry::start(Auth::None);
    tokio::runtime::Runtime::new().unwrap().block_on(
        registry
            .pusher()
            .push_tags("org/app", &["1.0.0".to_string(), "1.1.0".to_string()]),
    );
    let tmp = tempfile::tempdir().unwrap();
    let reg = &registry.host;
    let manifest = format!("image: {reg}/org/app:1.0.0 # {{\"$imagepolicy\": \"team-a:app\"}}\n");
    let bare = bare_repo(tmp.path(), "manifests", &[(APP, &manifest)]);
    let service = start(tmp.path(), &registry, &format!("file://{}", bare.display()));
    service.wait_until("the first push", Duration::from_secs(60), || {
        service.status()["targets"][0]["outcome"] == "pushed"
    });
    assert!(show(&bare, "main", APP).contains("org/app:1.1.0"));
    let head = rev(&bare, "main");

    let out = tagsmith(&["status", "-c", service.config.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with(&format!(
            "tagsmith at http://127.0.0.1:{}, started ",
            service.metrics_port
        )),
        "{stdout}"
    );
    let header = |title: &str| {
        let at = lines.iter().position(|l| *l == title).unwrap();
        (cells(lines[at + 1]), cells(lines[at + 2]))
    };
    let (columns, image) = header("Images");
    assert_eq!(
        columns,
        [
            "POLICY",
            "IMAGE",
            "SELECTED",
            "LAST SCAN",
            "RESULT",
            "FAILURES",
            "LAST ERROR"
        ],
        "{stdout}"
    );
    assert_eq!(
        image[..3],
        [
            "team-a:app",
            &format!("{reg}/org/app"),
            &format!("{reg}/org/app:1.1.0")
        ],
        "{stdout}"
    );
    assert!(image[3].starts_with("20"), "a last-scan time: {stdout}");
    assert_eq!(image[4..], ["ok", "0", "-"], "{stdout}");
    let (columns, target) = header("Targets");
    assert_eq!(
        columns,
        [
            "NAME", "LAST RUN", "OUTCOME", "COMMIT", "PENDING", "NEXT RUN", "FAILURES", "PROBLEMS"
        ],
        "{stdout}"
    );
    assert_eq!(target[0], "prod", "{stdout}");
    assert!(target[1].starts_with("20"), "a last-run time: {stdout}");
    assert_eq!(target[2..5], ["pushed", &head[..12], "no"], "{stdout}");
    // `problems` is a list in newer services and absent in older ones: a count or `-`.
    let problems = service.status()["targets"][0]["problems"]
        .as_array()
        .map_or("-".to_string(), |p| p.len().to_string());
    assert_eq!(target[6..], ["0", problems.as_str()], "{stdout}");

    // JSON is the service's own document.
    let out = tagsmith(&[
        "status",
        "--url",
        &format!("http://127.0.0.1:{}", service.metrics_port),
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["targets"][0]["commit"], head.as_str(), "{json}");
    assert_eq!(json["images"][0]["policy"], "team-a:app", "{json}");

    // Issue 18: a webhook for an image no policy watches is answered 200 `ignored` (it was
    // 202 `queued`) and counted as ignored; one for the watched image is still queued.
    let (code, answer) = webhook(&service, &format!("{reg}/org/other"));
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["result"], "ignored", "{answer}");
    let (code, answer) = webhook(&service, &format!("{reg}/org/app"));
    assert_eq!(code, 202, "{answer}");
    assert_eq!(answer["result"], "queued", "{answer}");
    let count = |result: &str| {
        service.metric(
            "tagsmith_webhook_requests_total",
            &["receiver=\"ci\"", &format!("result=\"{result}\"")],
        )
    };
    assert_eq!((count("ignored"), count("queued")), (1.0, 1.0));
}

#[test]
fn status_of_a_service_that_is_not_running_names_the_address() {
    let port = free_port();
    let out = tagsmith(&["status", "--url", &format!("http://127.0.0.1:{port}")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.contains(&format!("cannot read http://127.0.0.1:{port}/status"))
            && stderr.contains("is `tagsmith run` running"),
        "{stderr}"
    );

    // The address comes from the config's server.metrics; a config without one says so.
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("tagsmith.yaml");
    std::fs::write(
        &config,
        format!("images: []\ntargets: []\nserver: {{ metrics: '0.0.0.0:{port}' }}\n"),
    )
    .unwrap();
    let out = tagsmith(&["status", "-c", config.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("http://127.0.0.1:{port}/status")),
        "0.0.0.0 is asked on loopback: {stderr}"
    );
    std::fs::write(&config, "images: []\ntargets: []\n").unwrap();
    let out = tagsmith(&["status", "-c", config.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("sets no server.metrics"), "{stderr}");
}
