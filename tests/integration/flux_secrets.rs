//! `--secrets-dir` end to end: the Secrets a Flux installation uses, laid out as Kubernetes
//! mounts them, give tagsmith its registry login (a docker config), its Git login over SSH
//! (identity and known_hosts) and its commit signing key, against a real htpasswd registry and
//! a real OpenSSH server.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use crate::gitserver::ssh::SshServer;
use crate::gitserver::{bare_repo, git, show};
use crate::support::{Auth, Registry};
use base64::Engine as _;

fn tagsmith(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tagsmith"))
        .args(args)
        .env_remove("DOCKER_CONFIG")
        .env("HOME", "/nonexistent")
        .output()
        .unwrap()
}

fn secret(dir: &Path, path: &str, value: &[u8]) {
    let file = dir.join(path);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, value).unwrap();
}

const DEPLOY: &str = "image: REG/org/app:1.0.0 # {\"$imagepolicy\": \"team-a:app\"}\n";

#[test]
fn secret_refs_resolve_from_a_mounted_secrets_folder() {
    let registry = Registry::start(Auth::Htpasswd {
        user: "flux".into(),
        password: "registry-password".into(),
    });
    let reg = registry.host.clone();
    let tags: Vec<String> = ["1.0.0", "1.5.0", "2.0.0"].map(String::from).to_vec();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(registry.pusher().push_tags("org/app", &tags));
    let tmp = tempfile::tempdir().unwrap();
    let server = SshServer::start(tmp.path());
    let bare = bare_repo(
        tmp.path(),
        "manifests",
        &[("apps/deploy.yaml", &DEPLOY.replace("REG", &reg))],
    );

    let secrets = tmp.path().join("secrets");
    let login = base64::engine::general_purpose::STANDARD.encode("flux:registry-password");
    secret(
        &secrets,
        "team-a/registry-creds/.dockerconfigjson",
        format!("{{\"auths\":{{\"{reg}\":{{\"auth\":\"{login}\"}}}}}}").as_bytes(),
    );
    secret(
        &secrets,
        "flux-system/git-ssh/identity",
        &std::fs::read(&server.client_key).unwrap(),
    );
    secret(
        &secrets,
        "flux-system/git-ssh/known_hosts",
        &std::fs::read(&server.known_hosts).unwrap(),
    );
    let signing = tmp.path().join("signing");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "flux", "-f"])
        .arg(&signing)
        .output()
        .expect("ssh-keygen: install it with apt (openssh-client)");
    assert!(made.status.success());
    secret(
        &secrets,
        "team-a/signing/identity",
        &std::fs::read(&signing).unwrap(),
    );
    for key in ["flux-system/git-ssh/identity", "team-a/signing/identity"] {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(secrets.join(key), std::fs::Permissions::from_mode(0o600))
            .unwrap();
    }

    let flux = tmp.path().join("flux.yaml");
    std::fs::write(
        &flux,
        format!(
            "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata: {{ name: manifests, namespace: flux-system }}\nspec:\n  interval: 1m\n  url: {url}\n  ref: {{ branch: main }}\n  secretRef: {{ name: git-ssh }}\n\
             ---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {{ name: app, namespace: team-a }}\nspec:\n  image: {reg}/org/app\n  interval: 5m\n  insecure: true\n  secretRef: {{ name: registry-creds }}\n\
             ---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {{ name: app, namespace: team-a }}\nspec:\n  imageRepositoryRef: {{ name: app }}\n  policy: {{ semver: {{ range: '^1' }} }}\n\
             ---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageUpdateAutomation\nmetadata: {{ name: apps, namespace: team-a }}\nspec:\n  interval: 5m\n  sourceRef: {{ kind: GitRepository, name: manifests, namespace: flux-system }}\n  git:\n    commit:\n      author: {{ name: fluxcdbot, email: bot@example.invalid }}\n      signingKey: {{ type: ssh, secretRef: {{ name: signing }} }}\n    push: {{ branch: main }}\n  update: {{ path: ./apps }}\n",
            url = server.url(&bare)
        ),
    )
    .unwrap();
    let flux = flux.to_str().unwrap();
    let state = tmp.path().join("state");
    let secrets_arg = secrets.to_str().unwrap();

    let out = tagsmith(&[
        "once",
        "--flux",
        flux,
        "--secrets-dir",
        secrets_arg,
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("target team-a-apps: committed"), "{stdout}");
    assert!(
        !stderr.contains("registry-password"),
        "never logs a secret: {stderr}"
    );
    assert_eq!(
        show(&bare, "main", "apps/deploy.yaml"),
        DEPLOY.replace("REG", &reg).replace("1.0.0", "1.5.0")
    );
    let public = std::fs::read_to_string(signing.with_extension("pub")).unwrap();
    let allowed = tmp.path().join("allowed_signers");
    std::fs::write(&allowed, format!("bot@example.invalid {public}")).unwrap();
    let verdict = git(
        &bare,
        &[
            "-c",
            "gpg.format=ssh",
            "-c",
            &format!("gpg.ssh.allowedSignersFile={}", allowed.display()),
            "log",
            "-1",
            "--format=%G?",
            "main",
        ],
    );
    assert_eq!(
        verdict.trim(),
        "G",
        "signed with the signingKey Secret's identity"
    );

    // A Secret that is not mounted stops the run before anything is scanned, naming the
    // object and the field.
    std::fs::remove_file(secrets.join("flux-system/git-ssh/known_hosts")).unwrap();
    let out = tagsmith(&[
        "once",
        "--flux",
        flux,
        "--secrets-dir",
        secrets_arg,
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("GitRepository flux-system/manifests spec.secretRef: secret flux-system/git-ssh has no key \"known_hosts\""),
        "{stderr}"
    );
    assert!(stderr.contains("flux.yaml:8:"), "located: {stderr}");
}
