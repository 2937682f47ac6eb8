//! The quickstart example through `tagsmith once --dry-run`: the exact diff a user sees.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use crate::gitserver::{git, rev};
use crate::support::{Auth, Registry};

const EXAMPLE_HOST: &str = "127.0.0.1:5000";

fn copy_tree(from: &Path, to: &Path, host: &str) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target, host);
        } else {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            std::fs::write(target, text.replace(EXAMPLE_HOST, host)).unwrap();
        }
    }
}

#[test]
fn dry_run_on_the_quickstart_prints_exactly_the_expected_diff() {
    let registry = Registry::start(Auth::None);
    let host = registry.host.clone();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let pusher = registry.pusher();
        let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        pusher
            .push_tags(
                "demo/app",
                &tags(&["1.0.0", "1.1.0", "1.2.0", "2.0.0-rc.1", "latest"]),
            )
            .await;
        pusher
            .push_tags("demo/worker", &tags(&["2.1.0", "2.1.3", "2.2.0"]))
            .await;
    });

    let tmp = tempfile::tempdir().unwrap();
    let seed = tmp.path().join("seed");
    std::fs::create_dir_all(&seed).unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
    copy_tree(&example, &seed, &host);
    git(&seed, &["init", "-q", "--initial-branch=main"]);
    git(&seed, &["add", "-A"]);
    git(&seed, &["commit", "-qm", "Initial manifests"]);
    let bare = tmp.path().join("manifests.git");
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            "--bare",
            seed.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    let head = rev(&bare, "main");

    let config = tmp.path().join("tagsmith.yaml");
    std::fs::write(
        &config,
        format!(
            "images:\n  - policy: demo:app\n    image: {host}/demo/app\n    semver: '^1.0'\n  - policy: demo:worker\n    image: {host}/demo/worker\n    semver: '~2.1'\n\
             targets:\n  - name: demo\n    git: {{ url: 'file://{}', branch: main }}\n    paths: [clusters]\n\
             registries:\n  - host: '{host}'\n    insecure: true\nstate: {{ dir: '{}' }}\n",
            bare.display(),
            tmp.path().join("state").display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tagsmith"))
        .args(["once", "-c", config.to_str().unwrap(), "--dry-run"])
        .env("HOME", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout)
        .unwrap()
        .replace(&host, EXAMPLE_HOST);
    let golden =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/quickstart/dry-run.txt");
    // After a deliberate change to the example, `TAGSMITH_BLESS=1` rewrites the golden file;
    // review its diff before committing.
    if std::env::var_os("TAGSMITH_BLESS").is_some() {
        std::fs::write(&golden, &stdout).unwrap();
    }
    let expected = std::fs::read_to_string(&golden).unwrap();
    assert_eq!(stdout, expected, "--- got ---\n{stdout}");
    assert_eq!(rev(&bare, "main"), head, "a dry run pushes nothing");
}
