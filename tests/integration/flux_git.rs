//! Flux's Git settings beyond a branch, run for real: checkout refs by tag, semver and commit
//! pushed to `push.branch`, `push.options` received by a server-side hook over smart HTTP,
//! and commits signed with an OpenPGP `signingKey` that `gpg` verifies.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use crate::gitserver::{GitHttpServer, bare_repo, commit_elsewhere, git, rev, show};
use crate::support::{Auth, Registry};

const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - image: REG/org/app:1.0.0 # {\"$imagepolicy\": \"team-a:app\"}\n";

fn tagsmith(args: &[&str], gnupg_home: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tagsmith"));
    cmd.args(args)
        .env_remove("DOCKER_CONFIG")
        .env("HOME", "/nonexistent");
    if let Some(home) = gnupg_home {
        cmd.env("GNUPGHOME", home);
    }
    cmd.output().unwrap()
}

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn registry_with_app() -> Registry {
    let registry = Registry::start(Auth::None);
    tokio::runtime::Runtime::new().unwrap().block_on(
        registry
            .pusher()
            .push_tags("org/app", &["1.0.0".to_string(), "1.5.0".to_string()]),
    );
    registry
}

fn image_objects(reg: &str) -> String {
    format!(
        "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {{ name: app, namespace: team-a }}\nspec:\n  image: {reg}/org/app\n  interval: 5m\n  insecure: true\n\
         ---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {{ name: app, namespace: team-a }}\nspec:\n  imageRepositoryRef: {{ name: app }}\n  policy: {{ semver: {{ range: '^1' }} }}\n"
    )
}

fn git_repository(url: &str) -> String {
    format!(
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata: {{ name: manifests, namespace: team-a }}\nspec:\n  interval: 1m\n  url: {url}\n  ref: {{ branch: main }}\n"
    )
}

/// An ImageUpdateAutomation in team-a; `git` is the body of its `spec.git` past `commit`.
fn automation(name: &str, commit_extra: &str, git: &str) -> String {
    format!(
        "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageUpdateAutomation\nmetadata: {{ name: {name}, namespace: team-a }}\nspec:\n  interval: 5m\n  sourceRef: {{ kind: GitRepository, name: manifests }}\n  git:\n    commit:\n      author: {{ name: fluxcdbot, email: bot@example.invalid }}\n{commit_extra}{git}  update: {{ path: ./apps, strategy: Setters }}\n"
    )
}

#[test]
fn checkout_by_tag_semver_and_commit_builds_on_that_commit_and_pushes_to_push_branch() {
    checkout_refs(false);
}

/// Over smart HTTP a direct push fetches shallow where it can; a commit that is not a
/// branch's tip must still be found.
#[test]
fn checkout_refs_work_over_smart_http() {
    checkout_refs(true);
}

fn checkout_refs(http: bool) {
    let registry = registry_with_app();
    let reg = registry.host.clone();
    let tmp = tempfile::tempdir().unwrap();
    let deploy = DEPLOY.replace("REG", &reg);
    let bare = bare_repo(tmp.path(), "manifests", &[("apps/deploy.yaml", &deploy)]);
    // v1.0.0 (lightweight) at the seed, v1.1.0 (annotated) and v1.1.0+build.2 on later
    // commits, v2.0.0 out of range, and main moving on past all of them.
    let seed = rev(&bare, "main");
    git(&bare, &["tag", "v1.0.0", &seed]);
    commit_elsewhere(&bare, "main", "notes/one.txt", "one\n");
    let one = rev(&bare, "main");
    git(&bare, &["tag", "-a", "-m", "release 1.1.0", "v1.1.0", &one]);
    commit_elsewhere(&bare, "main", "notes/two.txt", "two\n");
    let two = rev(&bare, "main");
    git(&bare, &["tag", "v1.1.0+build.2", &two]);
    commit_elsewhere(&bare, "main", "notes/three.txt", "three\n");
    git(&bare, &["tag", "v2.0.0", &rev(&bare, "main")]);
    commit_elsewhere(&bare, "main", "notes/four.txt", "four\n");
    let main = rev(&bare, "main");
    // A commit only a side branch holds: found without naming the branch (cloneCommit
    // fetches every branch then).
    git(&bare, &["branch", "side", &one]);
    commit_elsewhere(&bare, "side", "notes/side.txt", "side\n");
    let side = rev(&bare, "side");

    let flux = tmp.path().join("flux.yaml");
    let server = http.then(|| GitHttpServer::start(tmp.path(), None, None));
    let url = match &server {
        Some(server) => format!("{}/manifests.git", server.base_url),
        None => format!("file://{}", bare.display()),
    };
    std::fs::write(
        &flux,
        [
            git_repository(&url),
            image_objects(&reg),
            automation(
                "by-tag",
                "",
                "    checkout: { ref: { tag: v1.1.0 } }\n    push: { branch: auto/tag }\n",
            ),
            automation(
                "by-semver",
                "",
                "    checkout: { ref: { semver: '>=1.0.0 <2.0.0' } }\n    push: { branch: auto/semver }\n",
            ),
            automation(
                "by-commit",
                "",
                &format!("    checkout: {{ ref: {{ branch: main, commit: {seed} }} }}\n    push: {{ branch: auto/commit }}\n"),
            ),
            automation(
                "by-commit-anywhere",
                "",
                &format!("    checkout: {{ ref: {{ commit: {side} }} }}\n    push: {{ branch: auto/anywhere }}\n"),
            ),
            automation(
                "by-name",
                "",
                "    checkout: { ref: { name: 'refs/tags/v1.1.0' } }\n    push: { branch: auto/name }\n",
            ),
        ]
        .join("---\n"),
    )
    .unwrap();
    let flux = flux.to_str().unwrap();
    let check = tagsmith(&["check", "--flux", flux], None);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let state = tmp.path().join("state");
    let stdout = ok(&tagsmith(
        &[
            "once",
            "--flux",
            flux,
            "--state-dir",
            state.to_str().unwrap(),
        ],
        None,
    ));
    // Each push branch holds one commit on top of what its ref names
    // (fluxcd/pkg git/gogit clone.go: cloneTag, cloneSemVer, cloneCommit).
    for (target, branch, parent) in [
        ("team-a-by-tag", "auto/tag", &one),
        // The highest version in range; 1.1.0+build.2 equals 1.1.0 and its commit is later.
        ("team-a-by-semver", "auto/semver", &two),
        ("team-a-by-commit", "auto/commit", &seed),
        ("team-a-by-commit-anywhere", "auto/anywhere", &side),
        // An annotated tag's reference peels to its commit.
        ("team-a-by-name", "auto/name", &one),
    ] {
        assert!(
            stdout.contains(&format!("target {target}: committed")),
            "{stdout}"
        );
        assert_eq!(&rev(&bare, &format!("{branch}~1")), parent, "{branch}");
        assert_eq!(
            show(&bare, branch, "apps/deploy.yaml"),
            deploy.replace("1.0.0", "1.5.0")
        );
    }
    assert_eq!(
        rev(&bare, "main"),
        main,
        "the checkout branch is not pushed to"
    );

    // A second run builds on the push branch (Flux's SwitchBranch): nothing new.
    let again = ok(&tagsmith(
        &[
            "once",
            "--flux",
            flux,
            "--state-dir",
            state.to_str().unwrap(),
        ],
        None,
    ));
    assert!(again.contains("target team-a-by-tag: unchanged"), "{again}");

    // The converted config says the same in tagsmith.yaml.
    let converted = ok(&tagsmith(&["convert", "flux", flux], None));
    assert!(converted.contains("tag: v1.1.0"), "{converted}");
    assert!(
        converted.contains("semver: '>=1.0.0 <2.0.0'")
            || converted.contains("semver: \">=1.0.0 <2.0.0\""),
        "{converted}"
    );
    assert!(
        converted.contains(&format!("commit: {seed}")),
        "{converted}"
    );
    assert!(converted.contains("ref: refs/tags/v1.1.0"), "{converted}");
    for branch in [
        "auto/tag",
        "auto/semver",
        "auto/commit",
        "auto/anywhere",
        "auto/name",
    ] {
        git(
            &bare,
            &["update-ref", "-d", &format!("refs/heads/{branch}")],
        );
    }
    let config = tmp.path().join("tagsmith.yaml");
    std::fs::write(&config, &converted).unwrap();
    let state = tmp.path().join("state-converted");
    ok(&tagsmith(
        &[
            "once",
            "-c",
            config.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ],
        None,
    ));
    assert_eq!(rev(&bare, "auto/semver~1"), two);
    assert_eq!(rev(&bare, "auto/tag~1"), one);
    assert_eq!(rev(&bare, "auto/anywhere~1"), side);
    assert_eq!(rev(&bare, "auto/name~1"), one);
}

#[test]
fn a_checkout_ref_that_is_not_a_branch_needs_push_branch_and_a_missing_tag_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(tmp.path(), "manifests", &[("apps/deploy.yaml", DEPLOY)]);
    let url = format!("file://{}", bare.display());
    let flux = tmp.path().join("flux.yaml");
    std::fs::write(
        &flux,
        [
            git_repository(&url),
            image_objects("127.0.0.1:9"),
            automation("no-push", "", "    checkout: { ref: { tag: v1.0.0 } }\n"),
        ]
        .join("---\n"),
    )
    .unwrap();
    let out = tagsmith(&["check", "--flux", flux.to_str().unwrap()], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    // image-automation-controller internal/source/git.go configurePush.
    assert!(
        stdout.contains("ImageUpdateAutomation team-a/no-push")
            && stdout.contains("spec.git.push.branch")
            && stdout.contains("push spec not provided, and cannot be inferred from .spec.git.checkout.ref or GitRepository .spec.ref"),
        "{stdout}"
    );

    // In tagsmith.yaml the same rule, and a tag the remote lacks fails the run by name.
    let config = tmp.path().join("tagsmith.yaml");
    std::fs::write(
        &config,
        format!("targets:\n  - name: t\n    git: {{ url: '{url}', tag: v9.9.9 }}\n"),
    )
    .unwrap();
    let out = tagsmith(&["check", "-c", config.to_str().unwrap()], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("tagsmith.yaml:3:"), "{stderr}");
    assert!(
        stderr.contains("checking out tag v9.9.9 needs push.branch"),
        "{stderr}"
    );
    std::fs::write(
        &config,
        format!("targets:\n  - name: t\n    git: {{ url: '{url}', tag: v9.9.9 }}\n    push: {{ branch: auto }}\n"),
    )
    .unwrap();
    let state = tmp.path().join("state");
    let out = tagsmith(
        &[
            "once",
            "-c",
            config.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ],
        None,
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(all.contains("cannot check out tag v9.9.9"), "{all}");
}

#[test]
fn push_options_reach_the_server_hook() {
    let registry = registry_with_app();
    let reg = registry.host.clone();
    let tmp = tempfile::tempdir().unwrap();
    let deploy = DEPLOY.replace("REG", &reg);
    let bare = bare_repo(tmp.path(), "manifests", &[("apps/deploy.yaml", &deploy)]);
    git(&bare, &["config", "receive.advertisePushOptions", "true"]);
    let recorded = tmp.path().join("push-options.txt");
    let hook = bare.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\ncat >/dev/null\n: > '{r}'\ni=0\nwhile [ \"$i\" -lt \"${{GIT_PUSH_OPTION_COUNT:-0}}\" ]; do\n  eval \"echo \\\"\\$GIT_PUSH_OPTION_$i\\\"\" >> '{r}'\n  i=$((i+1))\ndone\n",
            r = recorded.display()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let server = GitHttpServer::start(tmp.path(), None, None);
    let url = format!("{}/manifests.git", server.base_url);
    let flux = tmp.path().join("flux.yaml");
    std::fs::write(
        &flux,
        [
            git_repository(&url),
            image_objects(&reg),
            automation(
                "apps",
                "",
                "    push:\n      branch: auto\n      options:\n        merge_request.create: ''\n        merge_request.target: main\n",
            ),
        ]
        .join("---\n"),
    )
    .unwrap();
    let state = tmp.path().join("state");
    let stdout = ok(&tagsmith(
        &[
            "once",
            "--flux",
            flux.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ],
        None,
    ));
    assert!(stdout.contains("target team-a-apps: committed"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(&recorded).unwrap(),
        "merge_request.create\nmerge_request.target=main\n",
        "the options as `git push -o` sends them, in key order"
    );
    let converted = ok(&tagsmith(
        &["convert", "flux", flux.to_str().unwrap()],
        None,
    ));
    assert!(
        converted.contains("merge_request.target=main"),
        "{converted}"
    );
}

/// A fresh GnuPG home with one key for bot@example.invalid, and its secret key exported
/// armored (protected with `passphrase` when given).
fn gpg_key(home: &Path, passphrase: Option<&str>) -> String {
    std::fs::create_dir_all(home).unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let gpg = |args: &[&str]| {
        let out = Command::new("gpg")
            .arg("--homedir")
            .arg(home)
            .args([
                "--batch",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                passphrase.unwrap_or(""),
            ])
            .args(args)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run gpg ({e}): install it with apt (gnupg), or run scripts/setup")
            });
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    gpg(&[
        "--quick-generate-key",
        "fluxcdbot <bot@example.invalid>",
        "ed25519",
        "sign",
        "never",
    ]);
    gpg(&["--armor", "--export-secret-keys", "bot@example.invalid"])
}

#[test]
fn commits_are_signed_with_an_openpgp_signing_key_that_gpg_verifies() {
    let registry = registry_with_app();
    let reg = registry.host.clone();
    let tmp = tempfile::tempdir().unwrap();
    let deploy = DEPLOY.replace("REG", &reg);
    let bare = bare_repo(tmp.path(), "manifests", &[("apps/deploy.yaml", &deploy)]);
    let url = format!("file://{}", bare.display());
    let home = tmp.path().join("gnupg");
    let armored = gpg_key(&home, Some("correct horse"));
    // The Secret as Kubernetes mounts it: team-a/pgp/{git.asc,passphrase}.
    let secrets = tmp.path().join("secrets");
    std::fs::create_dir_all(secrets.join("team-a/pgp")).unwrap();
    std::fs::write(secrets.join("team-a/pgp/git.asc"), &armored).unwrap();
    std::fs::write(secrets.join("team-a/pgp/passphrase"), "correct horse").unwrap();
    let flux = tmp.path().join("flux.yaml");
    std::fs::write(
        &flux,
        [
            git_repository(&url),
            image_objects(&reg),
            automation(
                "apps",
                "      signingKey: { secretRef: { name: pgp } }\n",
                "    push: { branch: main }\n",
            ),
        ]
        .join("---\n"),
    )
    .unwrap();
    let run = |state: &str| {
        tagsmith(
            &[
                "once",
                "--flux",
                flux.to_str().unwrap(),
                "--secrets-dir",
                secrets.to_str().unwrap(),
                "--state-dir",
                tmp.path().join(state).to_str().unwrap(),
            ],
            None,
        )
    };
    let stdout = ok(&run("state"));
    assert!(stdout.contains("target team-a-apps: committed"), "{stdout}");
    let verify = |rev: &str| {
        let out = Command::new("git")
            .current_dir(&bare)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GNUPGHOME", &home)
            .args(["log", "-1", "--format=%G?%n%GS", rev])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(
        verify("main"),
        "G\nfluxcdbot <bot@example.invalid>\n",
        "a good signature by the signingKey, checked by gpg"
    );
    let raw = git(&bare, &["cat-file", "commit", "main"]);
    assert!(
        raw.contains("\ngpgsig -----BEGIN PGP SIGNATURE-----"),
        "{raw}"
    );

    // Without the passphrase the key cannot sign: the run fails, naming why, and pushes nothing.
    let base = rev(&bare, "main~1");
    git(&bare, &["update-ref", "refs/heads/main", &base]);
    std::fs::remove_file(secrets.join("team-a/pgp/passphrase")).unwrap();
    let out = run("state-no-passphrase");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(all.contains("passphrase-protected"), "{all}");
    assert!(!all.contains("correct horse"), "never logs a secret");
    assert_eq!(rev(&bare, "main"), base, "nothing pushed");

    // tagsmith.yaml: an unprotected key given as commit.signingKey.openpgp.
    let plain_home = tmp.path().join("gnupg-plain");
    gpg_key(&plain_home, None);
    // A subkey flagged for signing signs, as go-crypto's Entity.SigningKey picks it.
    let subkey = gpg_signing_subkey(&plain_home);
    let plain = export_secret(&plain_home);
    let key = tmp.path().join("plain.asc");
    std::fs::write(&key, plain).unwrap();
    let config = tmp.path().join("tagsmith.yaml");
    std::fs::write(
        &config,
        format!(
            "images:\n  - {{ policy: 'team-a:app', image: '{reg}/org/app', semver: '^1' }}\nregistries:\n  - {{ host: '{reg}', insecure: true }}\ntargets:\n  - name: t\n    git: {{ url: '{url}', branch: main }}\n    commit:\n      author: {{ name: fluxcdbot, email: bot@example.invalid }}\n      signingKey: {{ openpgp: plain.asc }}\n"
        ),
    )
    .unwrap();
    ok(&tagsmith(
        &[
            "once",
            "-c",
            config.to_str().unwrap(),
            "--state-dir",
            tmp.path().join("state-yaml").to_str().unwrap(),
        ],
        None,
    ));
    let out = Command::new("git")
        .current_dir(&bare)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GNUPGHOME", &plain_home)
        .args(["log", "-1", "--format=%G?%n%GF", "main"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("G\n{subkey}\n"),
        "signed by the signing subkey"
    );
}

fn gpg_in(home: &Path, args: &[&str]) -> String {
    let out = Command::new("gpg")
        .arg("--homedir")
        .arg(home)
        .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run gpg ({e}): install it with apt (gnupg), or run scripts/setup")
        });
    assert!(
        out.status.success(),
        "gpg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Adds an ed25519 signing subkey to the one key in `home`; its fingerprint.
fn gpg_signing_subkey(home: &Path) -> String {
    let listing = gpg_in(
        home,
        &["--with-colons", "--list-keys", "bot@example.invalid"],
    );
    let primary = listing
        .lines()
        .find(|l| l.starts_with("fpr:"))
        .and_then(|l| l.split(':').nth(9))
        .unwrap()
        .to_string();
    gpg_in(
        home,
        &["--quick-add-key", &primary, "ed25519", "sign", "never"],
    );
    let listing = gpg_in(
        home,
        &["--with-colons", "--list-keys", "bot@example.invalid"],
    );
    listing
        .lines()
        .filter(|l| l.starts_with("fpr:"))
        .filter_map(|l| l.split(':').nth(9))
        .next_back()
        .unwrap()
        .to_string()
}

fn export_secret(home: &Path) -> String {
    gpg_in(
        home,
        &["--armor", "--export-secret-keys", "bot@example.invalid"],
    )
}
