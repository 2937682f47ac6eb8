//! `tagsmith tags` end to end: the binary against the real registry.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use support::{Auth, Registry, tag_names};

fn tagsmith(args: &[&str], envs: &[(&str, String)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tagsmith"));
    command.args(args).env_remove("DOCKER_CONFIG");
    for (key, value) in envs {
        command.env(key, value);
    }
    command.output().unwrap()
}

fn stdout_lines(output: &Output) -> Vec<String> {
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn lists_the_pushed_tags_and_digests_with_configured_credentials() {
    let registry = Registry::start(Auth::Htpasswd {
        user: "ci".into(),
        password: "pw-from-env".into(),
    });
    let tags = tag_names("3.1.", 1100);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (single, index) = runtime.block_on(async {
        let pusher = registry.pusher();
        let single = pusher.push_tags("team/app", &tags).await;
        let (index, _) = pusher.push_index("team/app", "multi").await;
        (single, index)
    });
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tagsmith.yaml");
    std::fs::write(
        &config,
        format!(
            "images: []\nregistries:\n  - host: {}\n    insecure: true\n    auth: {{ basic: {{ usernameEnv: REG_USER, passwordEnv: REG_PASSWORD }} }}\n",
            registry.host
        ),
    )
    .unwrap();
    let image = format!("{}/team/app", registry.host);
    let envs = [
        ("REG_USER", "ci".to_string()),
        ("REG_PASSWORD", "pw-from-env".to_string()),
        ("HOME", dir.path().display().to_string()),
    ];

    let out = tagsmith(&["tags", &image, "-c", config.to_str().unwrap()], &envs);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: BTreeSet<String> = stdout_lines(&out).into_iter().collect();
    let mut expected: BTreeSet<String> = tags.iter().cloned().collect();
    expected.insert("multi".into());
    assert_eq!(listed, expected);
    assert_eq!(stdout_lines(&out).len(), expected.len());

    let out = tagsmith(
        &[
            "tags",
            &image,
            "-c",
            config.to_str().unwrap(),
            "--digests",
            "--output",
            "json",
        ],
        &envs,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["image"], image.as_str());
    let entries = json["tags"].as_array().unwrap();
    assert_eq!(entries.len(), expected.len());
    for entry in entries {
        let want = if entry["tag"] == "multi" {
            &index
        } else {
            &single
        };
        assert_eq!(entry["digest"].as_str().unwrap(), want, "{entry}");
    }

    // Wrong password: exit 2, the reason names the credential source, never the secret.
    let wrong = [
        ("REG_USER", "ci".to_string()),
        ("REG_PASSWORD", "not-the-pw".to_string()),
        ("HOME", dir.path().display().to_string()),
    ];
    let out = tagsmith(&["tags", &image, "-c", config.to_str().unwrap()], &wrong);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("401") && stderr.contains("env REG_PASSWORD"),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-pw"), "{stderr}");
    assert!(out.stdout.is_empty(), "no partial listing on failure");
}

#[test]
fn credential_helpers_from_docker_config_are_called_by_their_protocol() {
    let registry = Registry::start(Auth::Htpasswd {
        user: "helper-user".into(),
        password: "helper-secret".into(),
    });
    let tags = tag_names("0.9.", 12);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(registry.pusher().push_tags("helped/app", &tags));

    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    // The helper checks it is asked `get` for our host, as the protocol says, and records it.
    let asked = dir.path().join("asked");
    write_executable(
        &bin.join("docker-credential-tagsmithtest"),
        &format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 3\nread server\necho \"$server\" > {asked}\n\
             [ \"$server\" = \"{host}\" ] || {{ echo 'credentials not found in native keychain'; exit 1; }}\n\
             echo '{{\"ServerURL\":\"{host}\",\"Username\":\"helper-user\",\"Secret\":\"helper-secret\"}}'\n",
            asked = asked.display(),
            host = registry.host
        ),
    );
    let docker_dir = dir.path().join("docker");
    std::fs::create_dir(&docker_dir).unwrap();
    std::fs::write(
        docker_dir.join("config.json"),
        format!(
            r#"{{"auths":{{}},"credHelpers":{{"{}":"tagsmithtest"}}}}"#,
            registry.host
        ),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let image = format!("{}/helped/app", registry.host);

    // No -c: the default Docker config is used, as the Docker CLI would.
    let out = tagsmith(
        &["tags", &image],
        &[
            ("PATH", path.clone()),
            ("DOCKER_CONFIG", docker_dir.display().to_string()),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: BTreeSet<String> = stdout_lines(&out).into_iter().collect();
    assert_eq!(listed, tags.iter().cloned().collect());
    assert_eq!(
        std::fs::read_to_string(&asked).unwrap().trim(),
        registry.host
    );

    // A helper that has nothing for the host leaves us anonymous, and the error says so.
    std::fs::write(
        docker_dir.join("config.json"),
        r#"{"credsStore":"tagsmithtest"}"#,
    )
    .unwrap();
    write_executable(
        &bin.join("docker-credential-tagsmithtest"),
        "#!/bin/sh\necho 'credentials not found in native keychain'\nexit 1\n",
    );
    let out = tagsmith(
        &["tags", &image],
        &[
            ("PATH", path),
            ("DOCKER_CONFIG", docker_dir.display().to_string()),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("anonymous") && stderr.contains("helped/app"),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_registry_exits_2_with_the_reason() {
    let port = support::free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tagsmith.yaml");
    std::fs::write(
        &config,
        format!(
            "registries:\n  - host: 127.0.0.1:{port}\n    insecure: true\n    connectTimeout: 1s\n"
        ),
    )
    .unwrap();
    let out = tagsmith(
        &[
            "tags",
            &format!("127.0.0.1:{port}/gone/app"),
            "-c",
            config.to_str().unwrap(),
        ],
        &[("HOME", dir.path().display().to_string())],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("gone/app") && stderr.contains("attempt"),
        "{stderr}"
    );

    // An unknown key in a registries entry is an error too.
    std::fs::write(&config, "registries:\n  - host: x\n    insecur: true\n").unwrap();
    let out = tagsmith(&["tags", "x/app", "-c", config.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("insecur"));
}

#[test]
fn check_reports_invalid_registry_values_with_their_location() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tagsmith.yaml");
    std::fs::write(
        &config,
        "registries:
  - host: https://ghcr.io
  - host: a.example
    requestsPerSecond: -1
  - host: b.example
    requestsPerSecond: 1e-300
    timeout: 0s
  - host: A.example
    auth: { basic: { username: bot } }
  - host: c.example
    auth: { exec: { command: [] } }
",
    )
    .unwrap();
    let out = tagsmith(&["check", "-c", config.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = config.display().to_string();
    for (at, says) in [
        ("2:11", "scheme"),
        ("4:24", "requestsPerSecond"),
        ("6:24", "requestsPerSecond"),
        ("7:14", "timeout"),
        ("8:11", "configured twice"),
        ("9:11", "passwordEnv or passwordFile"),
        ("11:11", "command is empty"),
    ] {
        let line = stderr
            .lines()
            .find(|l| l.contains(&format!("{file}:{at}:")))
            .unwrap_or_else(|| panic!("nothing at {at}:\n{stderr}"));
        assert!(line.contains(says), "{line}");
    }
}

#[test]
fn a_loopback_registry_is_plain_http_with_or_without_an_entry() {
    let registry = Registry::start(Auth::Htpasswd {
        user: "ci".into(),
        password: "pw".into(),
    });
    let tags = tag_names("7.", 5);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(registry.pusher().push_tags("loop/app", &tags));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tagsmith.yaml");
    let image = format!("{}/loop/app", registry.host);
    let envs = [
        ("REG_PASSWORD", "pw".to_string()),
        ("HOME", dir.path().display().to_string()),
    ];
    // An entry that only adds credentials: still plain http, as without an entry.
    std::fs::write(
        &config,
        format!(
            "registries:\n  - host: {}\n    auth: {{ basic: {{ username: ci, passwordEnv: REG_PASSWORD }} }}\n",
            registry.host
        ),
    )
    .unwrap();
    let out = tagsmith(&["tags", &image, "-c", config.to_str().unwrap()], &envs);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout_lines(&out).len(), tags.len());

    // Asking for https from a registry that speaks plain http says so, at once.
    std::fs::write(
        &config,
        format!(
            "registries:\n  - host: {}\n    insecure: false\n    auth: {{ basic: {{ username: ci, passwordEnv: REG_PASSWORD }} }}\n",
            registry.host
        ),
    )
    .unwrap();
    let out = tagsmith(&["tags", &image, "-c", config.to_str().unwrap()], &envs);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("answers plain http") && stderr.contains("insecure: true"),
        "{stderr}"
    );
    assert!(stderr.contains("1 attempt"), "not retried: {stderr}");
}

#[test]
fn a_token_that_never_expires_does_not_crash_tags() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(support::token::scripted_registry("18446744073709551615"));
    let dir = tempfile::tempdir().unwrap();
    let out = tagsmith(
        &["tags", &format!("{}/team/app", server.host())],
        &[("HOME", dir.path().display().to_string())],
    );
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout_lines(&out), ["1.0"]);
}
