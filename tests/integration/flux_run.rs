//! `tagsmith run --flux`: the service runs from Flux objects (a Receiver among them), with a
//! `tagsmith.yaml` adding only the listen address, and reacts to the Receiver's webhook.

#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::gitserver::{bare_repo, show};
use crate::support::{Auth, Registry, free_port};

fn push(registry: &Registry, tags: &[&str]) {
    let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(registry.pusher().push_tags("org/app", &tags));
}

struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_until(what: &str, mut check: impl FnMut() -> bool, log: impl Fn() -> String) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}; log:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn run_takes_its_images_targets_and_receivers_from_flux_objects() {
    let registry = Registry::start(Auth::None);
    push(&registry, &["1.0.0", "1.1.0"]);
    let reg = registry.host.clone();
    let tmp = tempfile::tempdir().unwrap();
    let file = format!("image: {reg}/org/app:1.0.0 # {{\"$imagepolicy\": \"apps:app\"}}\n");
    let bare = bare_repo(tmp.path(), "manifests", &[("app.yaml", &file)]);
    let secrets = tmp.path().join("secrets");
    std::fs::create_dir_all(secrets.join("apps/hook")).unwrap();
    std::fs::write(secrets.join("apps/hook/token"), "hook-secret").unwrap();
    let flux = tmp.path().join("flux.yaml");
    std::fs::write(
        &flux,
        format!(
            "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata: {{ name: manifests, namespace: apps }}\nspec:\n  interval: 1m\n  url: file://{}\n  ref: {{ branch: main }}\n\
             ---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {{ name: app, namespace: apps }}\nspec:\n  image: {reg}/org/app\n  interval: 1h\n  insecure: true\n\
             ---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {{ name: app, namespace: apps }}\nspec:\n  imageRepositoryRef: {{ name: app }}\n  policy: {{ semver: {{ range: '^1' }} }}\n\
             ---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageUpdateAutomation\nmetadata: {{ name: apps, namespace: apps }}\nspec:\n  interval: 1h\n  sourceRef: {{ kind: GitRepository, name: manifests }}\n  git:\n    commit:\n      author: {{ name: fluxcdbot, email: bot@example.invalid }}\n\
             ---\napiVersion: notification.toolkit.fluxcd.io/v1\nkind: Receiver\nmetadata: {{ name: ci, namespace: apps }}\nspec:\n  type: generic\n  secretRef: {{ name: hook }}\n  resources:\n    - {{ kind: ImageRepository, name: app }}\n",
            bare.display()
        ),
    )
    .unwrap();
    let port = free_port();
    let config = tmp.path().join("tagsmith.yaml");
    std::fs::write(
        &config,
        format!("server: {{ listen: '127.0.0.1:{port}' }}\n"),
    )
    .unwrap();
    let log_path = tmp.path().join("run.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let _service = Service(
        Command::new(env!("CARGO_BIN_EXE_tagsmith"))
            .args(["run", "-c", config.to_str().unwrap(), "--state-dir"])
            .arg(tmp.path().join("state"))
            .args([
                "--secrets-dir",
                secrets.to_str().unwrap(),
                "--log",
                "info",
                "--flux",
            ])
            .arg(&flux)
            .env("HOME", "/nonexistent")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap(),
    );
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let app = || show(&bare, "main", "app.yaml");
    wait_until("the first commit", || app().contains("org/app:1.1.0"), log);
    assert!(
        log().contains("generic receivers read the images to rescan from the body"),
        "the Flux warning is logged: {}",
        log()
    );

    push(&registry, &["1.2.0"]);
    let status = tokio::runtime::Runtime::new().unwrap().block_on(async {
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/hook/apps-ci"))
            .bearer_auth("hook-secret")
            .body(format!("{{\"images\":[\"{reg}/org/app\"]}}"))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status.as_u16(), 202, "{}", log());
    wait_until(
        "the webhook's commit",
        || app().contains("org/app:1.2.0"),
        log,
    );
}
