//! `tagsmith tags` end to end: the binary against the real registry.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::proxy::{Canned, Scripted};
use crate::support::{Auth, Registry, tag_names};
use bytes::Bytes;

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
    let port = crate::support::free_port();
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
    let server = runtime.block_on(crate::support::token::scripted_registry(
        "18446744073709551615",
    ));
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

/// Runs tagsmith, killing it if it has not ended within `limit`.
fn tagsmith_within(args: &[&str], envs: &[(&str, String)], limit: Duration) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tagsmith"));
    command
        .args(args)
        .env_remove("DOCKER_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in envs {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "tagsmith {args:?} still running after {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn tags_keeps_credentials_from_a_realm_a_redirect_target_names() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (registry, other, realm) = runtime.block_on(async {
        let realm = Scripted::start(|_| Canned::json(401, "{}")).await;
        let realm_url = format!("{}/token", realm.url());
        let other = Scripted::start(move |_| {
            Canned::json(401, "{}").header(
                "www-authenticate",
                format!(r#"Bearer realm="{realm_url}",service="evil""#),
            )
        })
        .await;
        let other_url = other.url();
        let registry =
            Scripted::start(move |seen| Canned::redirect(307, format!("{other_url}{}", seen.uri)))
                .await;
        (registry, other, realm)
    });
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tagsmith.yaml");
    std::fs::write(
        &config,
        format!(
            "registries:\n  - host: {}\n    insecure: true\n    auth: {{ basic: {{ username: bot, passwordEnv: REG_PASSWORD }} }}\n",
            registry.host()
        ),
    )
    .unwrap();
    let out = tagsmith_within(
        &[
            "tags",
            &format!("{}/team/app", registry.host()),
            "-c",
            config.to_str().unwrap(),
        ],
        &[
            ("REG_PASSWORD", "s3cret-pw".to_string()),
            ("HOME", dir.path().display().to_string()),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("redirected to"), "{stderr}");
    assert!(realm.log().is_empty(), "{:?}", realm.log());
    assert!(
        other.log().iter().all(|s| s.authorization.is_none()),
        "{:?}",
        other.log()
    );
}

#[test]
fn tags_stops_at_the_answer_size_limit_naming_it() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let huge = runtime.block_on(async {
        // About 17 MiB, sent in chunks without a content length.
        let chunk = Bytes::from(format!("\"{}\",", "x".repeat(1022)));
        Scripted::start(move |_| Canned {
            body: Bytes::from_static(br#"{"name":"team/app","tags":["#),
            repeat: Some((chunk.clone(), 17 * 1024)),
            ..Canned::json(200, "")
        })
        .await
    });
    let dir = tempfile::tempdir().unwrap();
    let out = tagsmith_within(
        &["tags", &format!("{}/team/app", huge.host())],
        &[("HOME", dir.path().display().to_string())],
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&huge.host()) && stderr.contains("larger than 16777216 bytes"),
        "{stderr}"
    );
}

#[test]
fn tags_stops_endless_paging_at_the_tag_limit_naming_it() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let endless = runtime.block_on(async {
        let page = Arc::new(AtomicUsize::new(0));
        Scripted::start(move |_| {
            let n = page.fetch_add(1, Ordering::SeqCst);
            let tags: Vec<String> = (0..1000).map(|i| format!("p{n}-{i}")).collect();
            Canned::json(
                200,
                serde_json::json!({ "name": "team/app", "tags": tags }).to_string(),
            )
            .header(
                "link",
                format!("</v2/team/app/tags/list?page={}>; rel=\"next\"", n + 1),
            )
        })
        .await
    });
    let dir = tempfile::tempdir().unwrap();
    let out = tagsmith_within(
        &["tags", &format!("{}/team/app", endless.host())],
        &[("HOME", dir.path().display().to_string())],
        Duration::from_secs(120),
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&endless.host()) && stderr.contains("more than 500000 distinct tags"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no partial list");
    assert_eq!(endless.log().len(), 501);
}
