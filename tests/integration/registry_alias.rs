//! Registry aliases (`registries: [{ host, mirror }]`): images keep their public name in
//! markers and selections while tags and digests are read from the mirror, a real
//! docker-registry on 127.0.0.1. The public host does not resolve, so any request that went
//! there instead would fail the test.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use crate::gitserver::{bare_repo, count_commits, show};
use crate::support::{Auth, Registry};
use base64::Engine as _;

/// `.invalid` never resolves (RFC 2606).
const PUBLIC: &str = "registry.example.invalid";

fn tagsmith(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tagsmith"));
    command
        .args(args)
        .env_remove("DOCKER_CONFIG")
        .env("HOME", "/nonexistent");
    for (key, value) in envs {
        command.env(key, value);
    }
    command.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

fn push(registry: &Registry, repo: &str, tags: &[&str]) -> String {
    let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(registry.pusher().push_tags(repo, &tags))
}

const APP: &str = "image: REG/org/app:1.0.0 # {\"$imagepolicy\": \"team-a:app\"}\npinned: REG/org/app:1.0.0 # {\"$imagepolicy\": \"team-a:pinned\"}\n";

fn write_config(dir: &Path, registries: &str, target: &str) -> String {
    let path = dir.join("tagsmith.yaml");
    std::fs::write(
        &path,
        format!(
            "images:\n\
             \x20 - policy: team-a:app\n    image: {PUBLIC}/org/app\n    semver: '^1'\n\
             \x20 - policy: team-a:pinned\n    image: {PUBLIC}/org/app\n    semver: '^1'\n    digest: Always\n\
             {target}\
             registries:\n{registries}"
        ),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn tags_and_once_read_the_mirror_and_keep_the_public_name() {
    let mirror = Registry::start(Auth::None);
    let digest = push(&mirror, "org/app", &["1.0.0", "1.2.0", "2.0.0"]);
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(
        tmp.path(),
        "manifests",
        &[("apps/app.yaml", &APP.replace("REG", PUBLIC))],
    );
    let target = format!(
        "targets:\n  - name: prod\n    git: {{ url: 'file://{}', branch: main }}\n    paths: [apps]\n",
        bare.display()
    );
    let registries = format!("  - host: {PUBLIC}\n    mirror: {}\n", mirror.host);
    let cfg = write_config(tmp.path(), &registries, &target);

    let image = format!("{PUBLIC}/org/app");
    let out = tagsmith(&["tags", &image, "-c", &cfg], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut listed: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    listed.sort();
    assert_eq!(listed, ["1.0.0", "1.2.0", "2.0.0"]);

    // The same image without the alias goes to the public host, which does not resolve:
    // proof that the listing above came from the mirror.
    let out = tagsmith(&["tags", &image], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains(PUBLIC), "{}", text(&out.stderr));

    let state = tmp.path().join("state");
    let out = tagsmith(
        &[
            "once",
            "-c",
            &cfg,
            "--state-dir",
            state.to_str().unwrap(),
            "--output",
            "json",
        ],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // JSON keys are camelCase, as the config's are (README, "JSON output.").
    assert!(report["scanMs"].is_u64(), "{report}");
    let target = &report["targets"][0];
    assert_eq!(target["pushAttempts"], 1, "{report}");
    assert_eq!(target["fileErrors"], serde_json::json!([]), "{report}");
    assert!(target["timings"]["rewriteMs"].is_u64(), "{report}");
    assert_eq!(target["outcome"], "pushed", "{report}");
    let selected: Vec<&str> = report["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["selected"].as_str().unwrap())
        .collect();
    assert_eq!(
        selected,
        [
            format!("{PUBLIC}/org/app:1.2.0"),
            format!("{PUBLIC}/org/app:1.2.0@{digest}")
        ]
    );
    assert_eq!(count_commits(&bare, "main"), 2);
    assert_eq!(
        show(&bare, "main", "apps/app.yaml"),
        format!(
            "image: {PUBLIC}/org/app:1.2.0 # {{\"$imagepolicy\": \"team-a:app\"}}\npinned: {PUBLIC}/org/app:1.2.0@{digest} # {{\"$imagepolicy\": \"team-a:pinned\"}}\n"
        )
    );
}

#[test]
fn the_mirror_gets_its_own_credentials_never_the_public_hosts() {
    let mirror = Registry::start(Auth::Htpasswd {
        user: "ci".into(),
        password: "mirror-pw".into(),
    });
    push(&mirror, "org/app", &["1.0.0", "1.2.0"]);
    let tmp = tempfile::tempdir().unwrap();
    // A Docker config holding the mirror's working password, but for the public host: it
    // must not be sent to the mirror.
    let docker = tmp.path().join("docker");
    std::fs::create_dir(&docker).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode("ci:mirror-pw");
    std::fs::write(
        docker.join("config.json"),
        format!("{{\"auths\": {{\"{PUBLIC}\": {{\"auth\": \"{auth}\"}}}}}}"),
    )
    .unwrap();
    let docker = docker.to_str().unwrap();
    let image = format!("{PUBLIC}/org/app");

    let bare_alias = format!("  - host: {PUBLIC}\n    mirror: {}\n", mirror.host);
    let cfg = write_config(tmp.path(), &bare_alias, "");
    let out = tagsmith(&["tags", &image, "-c", &cfg], &[("DOCKER_CONFIG", docker)]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.contains("unauthorized"), "{err}");
    assert!(!err.contains("mirror-pw"), "{err}");

    let with_mirror_entry = format!(
        "{bare_alias}  - host: {}\n    auth: {{ basic: {{ username: ci, passwordEnv: MIRROR_PW }} }}\n",
        mirror.host
    );
    let cfg = write_config(tmp.path(), &with_mirror_entry, "");
    let out = tagsmith(
        &["tags", &image, "-c", &cfg],
        &[("DOCKER_CONFIG", docker), ("MIRROR_PW", "mirror-pw")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 2);
}

#[test]
fn an_alias_chain_or_credentials_on_the_aliased_host_are_config_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let registries = format!(
        "  - host: {PUBLIC}\n    mirror: mirror.example\n    auth: anonymous\n  - host: mirror.example\n    mirror: {PUBLIC}\n"
    );
    let cfg = write_config(tmp.path(), &registries, "");
    let out = tagsmith(&["check", "-c", &cfg], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "{cfg}:11:13: mirror \"mirror.example\" is itself read through a mirror"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{cfg}:11:13: an entry with a mirror takes no other settings (auth)"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{cfg}:14:13: mirror \"{PUBLIC}\" is itself")),
        "{err}"
    );
}
