//! `tagsmith once` end to end: the binary against the real registry and real Git remotes.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use crate::gitserver::{GitHttpServer, bare_repo, commit_elsewhere, count_commits, git, rev, show};
use crate::support::{Auth, Registry};

fn tagsmith(args: &[&str]) -> Output {
    tagsmith_with(args, &[])
}

/// [`tagsmith`] with `env` set as well.
fn tagsmith_with(args: &[&str], env: &[(&str, &Path)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tagsmith"))
        .args(args)
        .env_remove("DOCKER_CONFIG")
        .env("HOME", "/nonexistent")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

fn push(registry: &Registry, repo: &str, tags: &[&str]) {
    let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(registry.pusher().push_tags(repo, &tags));
}

const APP: &str = "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: REG/org/app:1.0.0 # {\"$imagepolicy\": \"team-a:app\"}\n        - name: sidecar\n          image: REG/org/sidecar:0.1 # not marked\n";
const WORKER: &str = "worker:\n  image:\n    repository: REG/org/worker # {\"$imagepolicy\": \"team-a:worker:name\"}\n    tag: 'main-a-100' # {\"$imagepolicy\": \"team-a:worker:tag\"}\n";

fn config(
    dir: &Path,
    registry: &Registry,
    git_url: &str,
    extra_images: &str,
    target_extra: &str,
) -> String {
    let path = dir.join("tagsmith.yaml");
    std::fs::write(
        &path,
        format!(
            "images:\n\
             \x20 - policy: team-a:app\n    image: {reg}/org/app\n    semver: '^1'\n\
             \x20 - policy: team-a:worker\n    image: {reg}/org/worker\n    numerical: asc\n    filterTags: {{ pattern: '^main-[a-f0-9]+-(?P<ts>[0-9]+)$', extract: '$ts' }}\n\
             {extra_images}\
             targets:\n\
             \x20 - name: prod\n    git: {{ url: '{git_url}', branch: main }}\n    paths: [apps]\n    commit: {{ author: {{ name: tagsmith-bot, email: bot@example.invalid }} }}\n\
             {target_extra}\
             registries:\n  - host: {reg}\n    insecure: true\n",
            reg = registry.host
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// Gives the target of the config file at `cfg` the user `bot` and the password in `token`.
fn with_basic_auth(cfg: &Path, token: &Path) {
    let text = std::fs::read_to_string(cfg).unwrap().replace(
        "branch: main }",
        &format!(
            "branch: main, auth: {{ username: bot, passwordFile: '{}' }} }}",
            token.display()
        ),
    );
    std::fs::write(cfg, text).unwrap();
}

fn seed(root: &Path, registry: &Registry) -> std::path::PathBuf {
    bare_repo(
        root,
        "manifests",
        &[
            ("apps/app.yaml", &APP.replace("REG", &registry.host)),
            (
                "apps/worker/values.yaml",
                &WORKER.replace("REG", &registry.host),
            ),
            ("docs/app.yaml", &APP.replace("REG", &registry.host)),
        ],
    )
}

#[test]
fn updates_commits_pushes_and_then_does_nothing() {
    let registry = Registry::start(Auth::None);
    push(
        &registry,
        "org/app",
        &["1.0.0", "1.1.0", "1.2.0", "2.0.0", "1.3.0-rc.1"],
    );
    push(
        &registry,
        "org/worker",
        &["main-a-100", "main-b-300", "main-c-200"],
    );
    let tmp = tempfile::tempdir().unwrap();
    let bare = seed(tmp.path(), &registry);
    let cfg = config(
        tmp.path(),
        &registry,
        &format!("file://{}", bare.display()),
        "",
        "",
    );
    let state = tmp.path().join("state");
    let state = state.to_str().unwrap();

    let out = tagsmith(&["once", "-c", &cfg, "--state-dir", state]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("target prod: committed"), "{stdout}");
    assert_eq!(count_commits(&bare, "main"), 2);

    let app = show(&bare, "main", "apps/app.yaml");
    let reg = &registry.host;
    assert_eq!(
        app,
        APP.replace("REG", reg)
            .replace("org/app:1.0.0", "org/app:1.2.0")
    );
    let worker = show(&bare, "main", "apps/worker/values.yaml");
    assert_eq!(
        worker,
        WORKER
            .replace("REG", reg)
            .replace("'main-a-100'", "'main-b-300'")
    );
    assert_eq!(
        show(&bare, "main", "docs/app.yaml"),
        APP.replace("REG", reg),
        "outside the target's paths"
    );
    let message = git(&bare, &["log", "-1", "--format=%an|%B", "main"]);
    assert!(message.starts_with("tagsmith-bot|Update "), "{message}");
    assert!(
        message.contains(&format!(
            "- team-a:app: {reg}/org/app:1.0.0 -> {reg}/org/app:1.2.0 (apps/app.yaml:8)"
        )),
        "{message}"
    );

    // The target's scan cache is in the state dir, not in the workspace (git would see it).
    assert!(Path::new(state).join("cache/prod.scan").is_file());

    // Nothing new: no commit, no push, and no file parsed: the files as pushed were
    // scanned when their edits were verified. (Without the note the run left, which would
    // spare reading the repository at all: see the tests below.)
    std::fs::remove_file(Path::new(state).join("cache/prod.last")).unwrap();
    let head = rev(&bare, "main");
    let out = tagsmith(&[
        "once",
        "-c",
        &cfg,
        "--state-dir",
        state,
        "--log",
        "tagsmith=info",
        "--log-format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let summary = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "rewrite done")
        .unwrap_or_else(|| panic!("no rewrite summary in {stderr}"));
    assert_eq!(summary["fields"]["cache_misses"], 0, "{summary}");
    assert_eq!(summary["fields"]["cache_hits"], 2, "{summary}");
    assert!(
        text(&out.stdout).contains("target prod: unchanged"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(rev(&bare, "main"), head);

    // A new tag: one more commit on top.
    push(&registry, "org/app", &["1.4.0"]);
    let out = tagsmith(&["once", "-c", &cfg, "--state-dir", state, "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["targets"][0]["outcome"], "pushed");
    assert_eq!(json["targets"][0]["changes"].as_array().unwrap().len(), 1);
    assert_eq!(
        json["targets"][0]["changes"][0]["new"],
        format!("{reg}/org/app:1.4.0")
    );
    assert_eq!(count_commits(&bare, "main"), 3);
}

#[test]
fn a_failed_scan_leaves_its_markers_and_the_others_still_update() {
    let registry = Registry::start(Auth::None);
    push(&registry, "org/app", &["1.0.0", "1.1.0"]);
    push(&registry, "org/worker", &["main-a-100", "main-b-300"]);
    let tmp = tempfile::tempdir().unwrap();
    let reg = registry.host.clone();
    let ghost_file =
        format!("image: {reg}/org/ghost:1.0.0 # {{\"$imagepolicy\": \"team-a:ghost\"}}\n");
    let bare = bare_repo(
        tmp.path(),
        "manifests",
        &[
            ("apps/app.yaml", &APP.replace("REG", &reg)),
            ("apps/ghost.yaml", &ghost_file),
            (
                "apps/broken.yaml",
                "a: [unclosed # {\"$imagepolicy\": \"team-a:app\"}\n",
            ),
        ],
    );
    let ghost = format!("  - policy: team-a:ghost\n    image: {reg}/org/ghost\n    semver: '*'\n");
    let cfg = config(
        tmp.path(),
        &registry,
        &format!("file://{}", bare.display()),
        &ghost,
        "",
    );
    let state = tmp.path().join("state");

    let out = tagsmith(&["once", "-c", &cfg, "--state-dir", state.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a failed scan makes the cycle fail: {stdout}"
    );
    assert!(
        stdout.contains("image team-a:ghost") && stdout.contains("not found (http 404)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("apps/ghost.yaml:1: policy team-a:ghost not updated"),
        "{stdout}"
    );
    assert!(
        stdout.contains("apps/broken.yaml:1"),
        "syntax error reported with its line: {stdout}"
    );
    assert_eq!(show(&bare, "main", "apps/ghost.yaml"), ghost_file);
    assert!(show(&bare, "main", "apps/app.yaml").contains("org/app:1.1.0"));
    assert!(
        text(&out.stderr).contains("failures"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn dry_run_prints_the_diff_and_pushes_nothing() {
    let registry = Registry::start(Auth::None);
    push(&registry, "org/app", &["1.0.0", "1.0.1"]);
    push(&registry, "org/worker", &["main-a-100"]);
    let tmp = tempfile::tempdir().unwrap();
    let bare = seed(tmp.path(), &registry);
    let cfg = config(
        tmp.path(),
        &registry,
        &format!("file://{}", bare.display()),
        "",
        "",
    );
    let head = rev(&bare, "main");
    let state = tmp.path().join("state");

    let out = tagsmith(&[
        "once",
        "-c",
        &cfg,
        "--dry-run",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let reg = &registry.host;
    let expected = format!(
        "--- a/apps/app.yaml\n+++ b/apps/app.yaml\n@@ -5,6 +5,6 @@\n     spec:\n       containers:\n         - name: app\n\
         -          image: {reg}/org/app:1.0.0 # {{\"$imagepolicy\": \"team-a:app\"}}\n\
         +          image: {reg}/org/app:1.0.1 # {{\"$imagepolicy\": \"team-a:app\"}}\n\
         \x20        - name: sidecar\n           image: {reg}/org/sidecar:0.1 # not marked\n"
    );
    assert!(
        stdout.contains("target prod: would commit 1 change(s) (dry run)"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with(&expected),
        "{stdout}\n--- expected tail ---\n{expected}"
    );
    assert_eq!(rev(&bare, "main"), head, "nothing pushed");
}

#[test]
fn smart_http_push_retries_after_a_concurrent_commit() {
    let registry = Registry::start(Auth::None);
    push(&registry, "org/app", &["1.0.0", "1.5.0"]);
    push(&registry, "org/worker", &["main-a-100"]);
    let tmp = tempfile::tempdir().unwrap();
    let bare = seed(tmp.path(), &registry);
    let other = bare.clone();
    let server = GitHttpServer::start(
        tmp.path(),
        Some(("bot", "t0ken")),
        Some(Box::new(move || {
            commit_elsewhere(&other, "main", "apps/other.yaml", "x: 1\n")
        })),
    );
    let token = tmp.path().join("token");
    std::fs::write(&token, "t0ken\n").unwrap();
    let cfg_path = config(
        tmp.path(),
        &registry,
        &format!("{}/manifests.git", server.base_url),
        "",
        "",
    );
    // Credentials from a file, with a literal user name.
    with_basic_auth(Path::new(&cfg_path), &token);
    let state = tmp.path().join("state");

    let out = tagsmith(&[
        "once",
        "-c",
        &cfg_path,
        "--state-dir",
        state.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["targets"][0]["pushAttempts"], 2, "{json}");
    assert_eq!(
        show(&bare, "main", "apps/other.yaml"),
        "x: 1\n",
        "the other writer's commit is kept"
    );
    assert!(show(&bare, "main", "apps/app.yaml").contains("org/app:1.5.0"));
    assert_eq!(count_commits(&bare, "main"), 3);
    assert!(!text(&out.stdout).contains("t0ken") && !text(&out.stderr).contains("t0ken"));
}

#[test]
fn tenancy_keeps_a_namespace_out_of_other_paths() {
    let registry = Registry::start(Auth::None);
    push(&registry, "org/app", &["1.0.0", "1.1.0"]);
    push(&registry, "org/worker", &["main-a-100", "main-b-300"]);
    let tmp = tempfile::tempdir().unwrap();
    let bare = seed(tmp.path(), &registry);
    let tenancy = "    tenancy: { 'apps/worker/**': [team-a], 'apps/*.yaml': [team-b] }\n";
    let cfg = config(
        tmp.path(),
        &registry,
        &format!("file://{}", bare.display()),
        "",
        tenancy,
    );
    let state = tmp.path().join("state");

    let out = tagsmith(&["once", "-c", &cfg, "--state-dir", state.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("apps/app.yaml:8: policy team-a:app may not change this file (tenancy)"),
        "{stdout}"
    );
    assert!(
        show(&bare, "main", "apps/app.yaml").contains("org/app:1.0.0"),
        "refused marker untouched"
    );
    assert!(
        show(&bare, "main", "apps/worker/values.yaml").contains("main-b-300"),
        "allowed path updated"
    );
}

#[test]
fn commits_are_signed_when_a_signing_key_is_configured() {
    let registry = Registry::start(Auth::None);
    push(&registry, "org/app", &["1.0.0", "1.1.0"]);
    push(&registry, "org/worker", &["main-a-100"]);
    let tmp = tempfile::tempdir().unwrap();
    let bare = seed(tmp.path(), &registry);
    let key = tmp.path().join("signing");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "tagsmith", "-f"])
        .arg(&key)
        .output()
        .expect("ssh-keygen: install it with apt (openssh-client)");
    assert!(made.status.success());
    let cfg = config(
        tmp.path(),
        &registry,
        &format!("file://{}", bare.display()),
        "",
        "",
    );
    let signed = std::fs::read_to_string(&cfg).unwrap().replace(
        "commit: { author:",
        &format!("commit: {{ signingKey: '{}', author:", key.display()),
    );
    std::fs::write(&cfg, signed).unwrap();
    let state = tmp.path().join("state");

    let out = tagsmith(&["once", "-c", &cfg, "--state-dir", state.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
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
        "the pushed commit carries a good signature"
    );
}

/// Every "- policy: old -> new (path:line)" line of `rev`'s message names a value its files
/// hold at that line: the commit's files agree with what it says.
fn assert_files_match_message(bare: &Path, rev: &str) {
    let message = git(bare, &["log", "-1", "--format=%B", rev]);
    let mut checked = 0;
    for line in message.lines().filter(|l| l.starts_with("- ")) {
        let (_, change) = line.split_once(": ").unwrap();
        let (_, rest) = change.split_once(" -> ").unwrap();
        let (new, place) = rest.rsplit_once(" (").unwrap();
        let (path, number) = place.trim_end_matches(')').rsplit_once(':').unwrap();
        let file = show(bare, rev, path);
        let at: usize = number.parse().unwrap();
        let held = file.lines().nth(at - 1).unwrap();
        assert!(
            held.contains(new),
            "{rev}: message says {path}:{at} is {new}, the file holds {held:?}\n{message}"
        );
        checked += 1;
    }
    assert!(checked > 0, "no changes listed in {message}");
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Fault injection: a second `tagsmith once` starts on the same state dir while the first is
/// pushing (an overlapping CronJob). It refuses at once, naming the first; the first's commit
/// holds what its message says, and a lone run afterwards finds nothing stale.
#[test]
fn a_second_once_on_the_same_state_dir_refuses_while_the_first_runs() {
    use std::sync::{Arc, Mutex};

    let registry = Registry::start(Auth::None);
    push(&registry, "org/app", &["1.0.0", "1.1.0"]);
    push(&registry, "org/worker", &["main-a-100", "main-b-200"]);
    let tmp = tempfile::tempdir().unwrap();
    let bare = seed(tmp.path(), &registry);
    let state = tmp.path().join("state");
    let cfg_slot: Arc<Mutex<String>> = Arc::default();
    let second: Arc<Mutex<Option<Output>>> = Arc::default();
    let server = {
        let (cfg_slot, second, state) = (cfg_slot.clone(), second.clone(), state.clone());
        GitHttpServer::start(
            tmp.path(),
            None,
            // Runs while the first process waits for its push to be taken.
            Some(Box::new(move || {
                let cfg = cfg_slot.lock().unwrap().clone();
                let out = tagsmith(&["once", "-c", &cfg, "--state-dir", state.to_str().unwrap()]);
                *second.lock().unwrap() = Some(out);
            })),
        )
    };
    let cfg = config(
        tmp.path(),
        &registry,
        &format!("{}/manifests.git", server.base_url),
        "",
        "",
    );
    *cfg_slot.lock().unwrap() = cfg.clone();

    let first = Command::new(env!("CARGO_BIN_EXE_tagsmith"))
        .args(["once", "-c", &cfg, "--state-dir", state.to_str().unwrap()])
        .env_remove("DOCKER_CONFIG")
        .env("HOME", "/nonexistent")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let first_pid = first.id();
    let out = first.wait_with_output().unwrap();
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("target prod: committed"), "{said}");

    let second = second.lock().unwrap().take().expect("the second once ran");
    let second_said = format!("{}{}", text(&second.stdout), text(&second.stderr));
    assert_eq!(second.status.code(), Some(2), "{second_said}");
    assert!(
        second_said.contains(&format!(
            "is in use by another tagsmith (tagsmith once, pid {first_pid}, since "
        )),
        "{second_said}"
    );
    assert!(!second_said.contains("committed"), "{second_said}");

    assert_eq!(count_commits(&bare, "main"), 2, "one commit, by the first");
    assert_files_match_message(&bare, "main");
    assert!(show(&bare, "main", "apps/app.yaml").contains("org/app:1.1.0 #"));

    // A lone run: nothing stale, nothing to do.
    let out = tagsmith(&["once", "-c", &cfg, "--state-dir", state.to_str().unwrap()]);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("target prod: unchanged"), "{said}");
    assert_eq!(count_commits(&bare, "main"), 2);

    // Owner-only: the state dir, the workspaces folder and the checkout.
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("workspaces")), 0o700);
    assert_eq!(mode(&state.join("workspaces/prod")), 0o700);
}

/// `once` beside a running `tagsmith run` on the same state dir is refused, naming the service.
#[test]
fn once_beside_run_on_the_same_state_dir_is_refused() {
    let registry = Registry::start(Auth::None);
    push(&registry, "org/app", &["1.0.0", "1.1.0"]);
    let tmp = tempfile::tempdir().unwrap();
    let bare = seed(tmp.path(), &registry);
    let cfg = config(
        tmp.path(),
        &registry,
        &format!("file://{}", bare.display()),
        "",
        "",
    );
    let mut text_cfg = std::fs::read_to_string(&cfg).unwrap();
    text_cfg.push_str(&format!(
        "server:\n  listen: 127.0.0.1:{}\n",
        crate::support::free_port()
    ));
    std::fs::write(&cfg, text_cfg).unwrap();
    let state = tmp.path().join("state");
    let mut service = Command::new(env!("CARGO_BIN_EXE_tagsmith"))
        .args(["run", "-c", &cfg, "--state-dir", state.to_str().unwrap()])
        .env_remove("DOCKER_CONFIG")
        .env("HOME", "/nonexistent")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let wanted = format!("tagsmith run, pid {}", service.id());
    while !std::fs::read_to_string(state.join("lock")).is_ok_and(|l| l.contains(&wanted)) {
        assert!(
            std::time::Instant::now() < deadline,
            "tagsmith run did not take the state dir"
        );
        assert!(service.try_wait().unwrap().is_none(), "tagsmith run exited");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = tagsmith(&["once", "-c", &cfg, "--state-dir", state.to_str().unwrap()]);
    service.kill().unwrap();
    service.wait().unwrap();
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains(&format!("is in use by another tagsmith ({wanted}")),
        "{said}"
    );
}

/// A workspace whose `.git` was damaged (here: HEAD overwritten, as a full disk can leave it)
/// is set aside with a warning and cloned again; the run delivers as if nothing happened.
#[test]
fn a_damaged_workspace_is_cloned_again_with_a_warning() {
    let registry = Registry::start(Auth::None);
    push(&registry, "org/app", &["1.0.0", "1.1.0"]);
    push(&registry, "org/worker", &["main-a-100"]);
    let tmp = tempfile::tempdir().unwrap();
    let bare = seed(tmp.path(), &registry);
    let cfg = config(
        tmp.path(),
        &registry,
        &format!("file://{}", bare.display()),
        "",
        "",
    );
    let state = tmp.path().join("state");
    let once = || tagsmith(&["once", "-c", &cfg, "--state-dir", state.to_str().unwrap()]);
    let out = once();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    std::fs::write(state.join("workspaces/prod/.git/HEAD"), b"").unwrap();
    push(&registry, "org/app", &["1.2.0"]);
    let out = once();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{}{stderr}", text(&out.stdout));
    assert!(
        stderr.contains("workspace damaged; set aside, cloning again"),
        "{stderr}"
    );
    assert!(text(&out.stdout).contains("target prod: committed"));
    assert!(show(&bare, "main", "apps/app.yaml").contains("org/app:1.2.0 #"));
    let aside: Vec<_> = std::fs::read_dir(state.join("workspaces"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("prod.damaged-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
}

/// A second `once` with nothing new makes no digest lookup for an `IfNotPresent` policy (the
/// selection and its digest are kept in the state store, as Flux keeps them in the policy's
/// status: image-reflector-controller `updateImageRefs`), and a new tag is looked up.
#[test]
fn if_not_present_digests_are_kept_between_cycles_and_a_new_tag_is_looked_up() {
    use crate::support::proxy::{Paging, Proxy};

    let registry = Registry::start(Auth::None);
    push(&registry, "org/app", &["1.0.0"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let proxy = rt.block_on(Proxy::start(&registry.host, Paging::PassThrough));
    let host = proxy.host();
    let tmp = tempfile::tempdir().unwrap();
    let marked = format!("image: {host}/org/app:0.9.0 # {{\"$imagepolicy\": \"team-a:app\"}}\n");
    let bare = bare_repo(tmp.path(), "manifests", &[("apps/app.yaml", &marked)]);
    let cfg = tmp.path().join("tagsmith.yaml");
    std::fs::write(
        &cfg,
        format!(
            "images:\n  - policy: team-a:app\n    image: {host}/org/app\n    semver: '^1'\n    digest: IfNotPresent\n\
             targets:\n  - name: prod\n    git: {{ url: 'file://{}', branch: main }}\n    commit: {{ author: {{ name: tagsmith-bot, email: bot@example.invalid }} }}\n\
             registries:\n  - host: {host}\n    insecure: true\n",
            bare.display()
        ),
    )
    .unwrap();
    let state = tmp.path().join("state");
    let once = || {
        let out = tagsmith(&[
            "once",
            "--config",
            cfg.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    let lookups = || {
        proxy
            .log()
            .iter()
            .filter(|l| l.uri.contains("/manifests/"))
            .count()
    };

    once();
    assert_eq!(lookups(), 1);
    let first = show(&bare, "main", "apps/app.yaml");
    assert!(first.contains(":1.0.0@sha256:"), "{first}");
    let head = rev(&bare, "main");

    once();
    assert_eq!(lookups(), 1, "nothing new: no lookup, {:?}", proxy.log());
    assert_eq!(rev(&bare, "main"), head, "nothing new: no commit");

    push(&registry, "org/app", &["1.1.0"]);
    once();
    assert_eq!(lookups(), 2, "a new tag is looked up");
    let third = show(&bare, "main", "apps/app.yaml");
    assert!(third.contains(":1.1.0@sha256:"), "{third}");
}

/// Over HTTPS: the fetch (libgit2, OpenSSL) and the push (tagsmith's own, rustls) both trust
/// the certificate authorities the system's `SSL_CERT_FILE` names, and the push is tagsmith's
/// own one (its user agent), not libgit2's.
#[test]
fn once_fetches_and_pushes_over_https_trusting_the_systems_ca_file() {
    let registry = Registry::start(Auth::None);
    push(&registry, "org/app", &["1.0.0", "1.5.0"]);
    push(&registry, "org/worker", &["main-a-100"]);
    let tmp = tempfile::tempdir().unwrap();
    let bare = seed(tmp.path(), &registry);
    let pki = crate::support::pki::Pki::new();
    let (cert, key) = pki.server_cert();
    let ca = tmp.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let server = GitHttpServer::start_tls(tmp.path(), &cert, &key);
    assert!(server.base_url.starts_with("https://"));
    let cfg = config(
        tmp.path(),
        &registry,
        &format!("{}/manifests.git", server.base_url),
        "",
        "",
    );
    let state = tmp.path().join("state");
    let empty = tmp.path().join("no-certs");
    std::fs::create_dir(&empty).unwrap();
    let once = |ca_file: &Path| {
        let state = state.to_str().unwrap();
        tagsmith_with(
            &["once", "-c", &cfg, "--state-dir", state],
            &[("SSL_CERT_FILE", ca_file), ("SSL_CERT_DIR", &empty)],
        )
    };

    // A CA file that does not hold the server's issuer: refused, nothing pushed.
    let other = tmp.path().join("other-ca.pem");
    std::fs::write(&other, crate::support::pki::Pki::new().ca_pem).unwrap();
    let head = rev(&bare, "main");
    let refused = once(&other);
    assert!(!refused.status.success(), "{}", text(&refused.stdout));
    assert_eq!(rev(&bare, "main"), head);

    let out = once(&ca);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_ne!(rev(&bare, "main"), head, "pushed over HTTPS");
    assert!(show(&bare, "main", "apps/app.yaml").contains(":1.5.0"));
    let agents = server.agents.lock().unwrap().clone();
    assert!(
        agents
            .iter()
            .any(|a| a.starts_with("POST ") && a.contains("tagsmith/")),
        "tagsmith's own push: {agents:?}"
    );
}

/// `tagsmith once` in `state` with `cfg`, which must succeed; its JSON report.
fn once_json(cfg: &str, state: &str, extra: &[&str]) -> (serde_json::Value, String) {
    let mut args = vec!["once", "-c", cfg, "--state-dir", state, "--output", "json"];
    args.extend_from_slice(extra);
    let out = tagsmith(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    (
        serde_json::from_slice(&out.stdout).unwrap(),
        text(&out.stderr),
    )
}

/// A run that ends unchanged or pushed leaves a note (`cache/<target>.last`); while the
/// remote's heads and every other input are what it names, the next `once` reports the target
/// unchanged without opening its workspace (here: removed, and not made again), over file://
/// and over smart HTTP alike.
#[test]
fn nothing_new_stands_on_the_last_runs_note_without_opening_the_workspace() {
    let registry = Registry::start(Auth::None);
    push(&registry, "org/app", &["1.0.0", "1.2.0"]);
    push(&registry, "org/worker", &["main-a-100", "main-b-300"]);
    let tmp = tempfile::tempdir().unwrap();
    let bare = seed(tmp.path(), &registry);
    // Over HTTP with credentials: the heads are read with them, as the push sends them.
    let server = GitHttpServer::start(tmp.path(), Some(("bot", "t0ken")), None);
    let token = tmp.path().join("token");
    std::fs::write(&token, "t0ken\n").unwrap();
    for (transport, url) in [
        ("file", format!("file://{}", bare.display())),
        ("http", format!("{}/manifests.git", server.base_url)),
    ] {
        let cfg = config(tmp.path(), &registry, &url, "", "");
        if transport == "http" {
            with_basic_auth(Path::new(&cfg), &token);
        }
        let state = tmp.path().join(format!("state-{transport}"));
        let state = state.to_str().unwrap();
        let (first, _) = once_json(&cfg, state, &[]);
        let note = Path::new(state).join("cache/prod.last");
        assert!(note.is_file(), "{transport}: no note after {first}");
        let head = rev(&bare, "main");

        let workspace = Path::new(state).join("workspaces/prod");
        std::fs::remove_dir_all(&workspace).unwrap();
        let (again, stderr) = once_json(&cfg, state, &["--log", "tagsmith=debug"]);
        assert_eq!(
            again["targets"][0]["outcome"], "unchanged",
            "{transport}: {again}"
        );
        assert!(
            stderr.contains("nothing moved since the last run"),
            "{transport}: {stderr}"
        );
        assert!(!workspace.exists(), "{transport}: the workspace was opened");
        if transport == "http" {
            let requests = server.requests.lock().unwrap().clone();
            assert!(
                requests.last().is_some_and(|r| r.contains("info/refs")),
                "the last request read the heads: {requests:?}"
            );
        }
        assert_eq!(rev(&bare, "main"), head, "{transport}");
        // The images are still scanned and reported as every cycle does.
        assert_eq!(
            again["images"][0]["selected"],
            format!("{}/org/app:1.2.0", registry.host),
            "{transport}: {again}"
        );
    }
}

/// The note gives way to anything it does not name: a head someone moved, a new tag, a change
/// to the target's configuration, and a dry run neither reads nor writes it.
#[test]
fn the_last_runs_note_gives_way_to_a_moved_head_a_new_tag_or_a_new_configuration() {
    let registry = Registry::start(Auth::None);
    push(&registry, "org/app", &["1.0.0", "1.2.0"]);
    push(&registry, "org/worker", &["main-a-100", "main-b-300"]);
    let tmp = tempfile::tempdir().unwrap();
    let bare = seed(tmp.path(), &registry);
    let reg = registry.host.clone();
    let url = format!("file://{}", bare.display());
    let cfg = config(tmp.path(), &registry, &url, "", "");
    let state = tmp.path().join("state");
    let state = state.to_str().unwrap();
    let (first, _) = once_json(&cfg, state, &[]);
    assert_eq!(first["targets"][0]["outcome"], "pushed", "{first}");
    let workspace = Path::new(state).join("workspaces/prod");

    // A person commits something else: the head moved, so the run reads the repository
    // again, finds nothing to do, and notes the new head.
    let noted = std::fs::read_to_string(Path::new(state).join("cache/prod.last")).unwrap();
    commit_elsewhere(&bare, "main", "apps/other.yaml", "x: 1\n");
    std::fs::remove_dir_all(&workspace).unwrap();
    let (moved, _) = once_json(&cfg, state, &[]);
    assert_eq!(moved["targets"][0]["outcome"], "unchanged", "{moved}");
    assert!(workspace.exists(), "the workspace was not opened");
    let renoted = std::fs::read_to_string(Path::new(state).join("cache/prod.last")).unwrap();
    assert!(renoted.contains(&rev(&bare, "main")), "{renoted}");
    assert_ne!(noted, renoted);

    // A new tag: a new selection.
    push(&registry, "org/app", &["1.3.0"]);
    let (tagged, _) = once_json(&cfg, state, &[]);
    assert_eq!(tagged["targets"][0]["outcome"], "pushed", "{tagged}");
    assert!(show(&bare, "main", "apps/app.yaml").contains("org/app:1.3.0"));

    // The same selections, but the target now also covers docs/.
    let wider = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("paths: [apps]", "paths: [apps, docs]");
    std::fs::write(&cfg, wider).unwrap();
    let (widened, _) = once_json(&cfg, state, &[]);
    assert_eq!(widened["targets"][0]["outcome"], "pushed", "{widened}");
    assert!(show(&bare, "main", "docs/app.yaml").contains("org/app:1.3.0"));

    // Nothing new again: the note stands; a dry run still reads the repository.
    std::fs::remove_dir_all(&workspace).unwrap();
    let note = Path::new(state).join("cache/prod.last");
    let written = std::fs::read(&note).unwrap();
    let (dry, _) = once_json(&cfg, state, &["--dry-run"]);
    assert_eq!(dry["targets"][0]["outcome"], "unchanged", "{dry}");
    assert!(workspace.exists(), "a dry run opens the workspace");
    assert_eq!(
        std::fs::read(&note).unwrap(),
        written,
        "a dry run leaves the note"
    );
    std::fs::remove_dir_all(&workspace).unwrap();
    let (standing, _) = once_json(&cfg, state, &[]);
    assert_eq!(standing["targets"][0]["outcome"], "unchanged", "{standing}");
    assert!(!workspace.exists());

    // A person sets a marker back: tagsmith holds it, and every later run says so (a run
    // with a hold leaves no note to hide it behind).
    let rolled_back =
        show(&bare, "main", "apps/app.yaml").replace("org/app:1.3.0", "org/app:1.0.0");
    commit_elsewhere(&bare, "main", "apps/app.yaml", &rolled_back);
    for round in 0..2 {
        let (held, _) = once_json(&cfg, state, &[]);
        assert_eq!(
            held["targets"][0]["outcome"], "unchanged",
            "round {round}: {held}"
        );
        assert_eq!(
            held["targets"][0]["holds"][0]["to"],
            format!("{reg}/org/app:1.0.0"),
            "round {round}: {held}"
        );
    }
}

/// A run that failed on a file leaves no note: the next run reads the repository again and
/// reports the error again, rather than hiding it behind an "unchanged".
#[test]
fn a_run_with_a_file_error_leaves_no_note_and_the_error_is_reported_again() {
    let registry = Registry::start(Auth::None);
    push(&registry, "org/app", &["1.0.0", "1.2.0"]);
    push(&registry, "org/worker", &["main-a-100"]);
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(
        tmp.path(),
        "manifests",
        &[
            ("apps/app.yaml", &APP.replace("REG", &registry.host)),
            (
                "apps/broken.yaml",
                "a: [1, 2\nimage: x:1 # {\"$imagepolicy\": \"team-a:app\"}\n",
            ),
        ],
    );
    let cfg = config(
        tmp.path(),
        &registry,
        &format!("file://{}", bare.display()),
        "",
        "",
    );
    let state = tmp.path().join("state");
    let state = state.to_str().unwrap();
    for round in 0..2 {
        let out = tagsmith(&["once", "-c", &cfg, "--state-dir", state, "--output", "json"]);
        assert_ne!(
            out.status.code(),
            Some(0),
            "round {round}: a file error fails the cycle"
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let errors = json["targets"][0]["fileErrors"].to_string();
        assert!(errors.contains("apps/broken.yaml"), "round {round}: {json}");
        assert!(
            !Path::new(state).join("cache/prod.last").exists(),
            "round {round}"
        );
    }
}
