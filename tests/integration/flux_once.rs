//! `tagsmith once --flux` on a generated multi-team Flux repository against the real registry
//! and a real Git remote, and `tagsmith once -c` on what `tagsmith convert flux` wrote for the
//! same objects: the commits are the same, byte for byte (tree, author, message, parent).

#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Output};

use crate::gitserver::{bare_repo, git, rev, show};
use crate::support::{Auth, Registry};

const TEAMS: usize = 3;

fn tagsmith(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tagsmith"))
        .args(args)
        .env_remove("DOCKER_CONFIG")
        .env("HOME", "/nonexistent")
        .output()
        .unwrap()
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

fn push(registry: &Registry, repo: &str, tags: &[&str]) {
    let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(registry.pusher().push_tags(repo, &tags));
}

/// A team's deployment: its own app, the shared image (an ImageRepository in another
/// namespace), a policy its automation's selector leaves out, and another team's policy.
fn deployment(reg: &str, team: usize) -> String {
    let other = team % TEAMS + 1;
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n\
         \x20       - image: {reg}/org/team-{team}-app:1.0.0 # {{\"$imagepolicy\": \"team-{team}:app\"}}\n\
         \x20       - image: {reg}/org/shared:1.0.0 # {{\"$imagepolicy\": \"team-{team}:shared\"}}\n\
         \x20       - image: {reg}/org/team-{team}-app:1.0.0 # {{\"$imagepolicy\": \"team-{team}:held\"}}\n\
         \x20       - image: {reg}/org/team-{other}-app:1.0.0 # {{\"$imagepolicy\": \"team-{other}:app\"}}\n"
    )
}

/// The Flux objects: one GitRepository, the shared ImageRepository, and per team an
/// ImageRepository, three ImagePolicies and an ImageUpdateAutomation.
fn flux_objects(dir: &Path, reg: &str, url: &str, insecure: bool) {
    let insecure = if insecure { "  insecure: true\n" } else { "" };
    std::fs::create_dir_all(dir.join("teams")).unwrap();
    std::fs::write(
        dir.join("kustomization.yaml"),
        "resources:\n  - source.yaml\n  - teams\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("source.yaml"),
        format!(
            "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: manifests\n  namespace: flux-system\nspec:\n  interval: 1m\n  url: {url}\n  ref:\n    branch: main\n\
             ---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata:\n  name: shared\n  namespace: shared\nspec:\n  image: {reg}/org/shared\n  interval: 5m\n{insecure}"
        ),
    )
    .unwrap();
    for team in 1..=TEAMS {
        let mut text = String::new();
        write!(
            text,
            "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata:\n  name: app\n  namespace: team-{team}\nspec:\n  image: {reg}/org/team-{team}-app\n  interval: 5m\n{insecure}\
             ---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata:\n  name: app\n  namespace: team-{team}\n  labels: {{ auto: 'yes' }}\nspec:\n  imageRepositoryRef: {{ name: app }}\n  policy: {{ semver: {{ range: '^1' }} }}\n\
             ---\napiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImagePolicy\nmetadata:\n  name: shared\n  namespace: team-{team}\n  labels: {{ auto: 'yes' }}\nspec:\n  imageRepositoryRef: {{ name: shared, namespace: shared }}\n  policy: {{ semver: {{ range: '>=1.0.0 <2.0.0' }} }}\n\
             ---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata:\n  name: held\n  namespace: team-{team}\n  labels: {{ auto: 'no' }}\nspec:\n  imageRepositoryRef: {{ name: app }}\n  policy: {{ alphabetical: {{ order: asc }} }}\n\
             ---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageUpdateAutomation\nmetadata:\n  name: apps\n  namespace: team-{team}\nspec:\n  interval: 10m\n  sourceRef: {{ kind: GitRepository, name: manifests, namespace: flux-system }}\n  git:\n    commit:\n      author: {{ name: flux-team-{team}, email: team-{team}@example.invalid }}\n"
        )
        .unwrap();
        if team == 1 {
            // The ResultV2 form of image-automation-controller internal/source/source_test.go
            // (testCommitTemplateResultV2), with the setter added.
            text.push_str(
                "      messageTemplate: |-\n        Automated image update by {{ .AutomationObject }}\n\n\
                 \x20       {{ range $filename, $objchange := .Changed.FileChanges -}}\n\
                 \x20       - File: {{ $filename }}\n\
                 \x20       {{- range $obj, $changes := $objchange }}\n\
                 \x20         - Object: {{ $obj.Kind }}/{{ $obj.Namespace }}/{{ $obj.Name }}\n\
                 \x20           Changes:\n\
                 \x20       {{- range $_ , $change := $changes }}\n\
                 \x20           - {{ $change.OldValue }} -> {{ $change.NewValue }} ({{ $change.Setter }})\n\
                 \x20       {{ end -}}\n\
                 \x20       {{ end -}}\n\
                 \x20       {{ end -}}\n",
            );
        }
        write!(
            text,
            "    push:\n      branch: auto/team-{team}\n  update:\n    path: ./apps/team-{team}\n    strategy: Setters\n  policySelector:\n    matchLabels: {{ auto: 'yes' }}\n"
        )
        .unwrap();
        std::fs::write(dir.join(format!("teams/team-{team}.yaml")), text).unwrap();
    }
}

/// What makes a commit: its tree, parent, author and message (not its timestamps).
fn commit(bare: &Path, branch: &str) -> String {
    git(
        bare,
        &["log", "-1", "--format=%T%n%P%n%an <%ae>%n%B", branch],
    )
}

#[test]
fn once_with_flux_objects_and_once_with_the_converted_config_make_the_same_commits() {
    let registry = Registry::start(Auth::None);
    let reg = registry.host.clone();
    push(&registry, "org/shared", &["1.0.0", "1.4.0", "2.0.0"]);
    for team in 1..=TEAMS {
        push(
            &registry,
            &format!("org/team-{team}-app"),
            &["1.0.0", &format!("1.{team}.0"), "3.0.0"],
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let files: Vec<(String, String)> = (1..=TEAMS)
        .map(|t| (format!("apps/team-{t}/deploy.yaml"), deployment(&reg, t)))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let bare = bare_repo(tmp.path(), "manifests", &refs);
    let seed = rev(&bare, "main");
    let flux = tmp.path().join("flux");
    flux_objects(&flux, &reg, &format!("file://{}", bare.display()), true);
    let flux = flux.to_str().unwrap();

    let check = tagsmith(&["check", "--flux", flux]);
    assert_eq!(
        check.status.code(),
        Some(0),
        "no diagnostics: {}",
        String::from_utf8_lossy(&check.stdout)
    );

    let state = tmp.path().join("state-flux");
    let stdout = ok(&tagsmith(&[
        "once",
        "--flux",
        flux,
        "--state-dir",
        state.to_str().unwrap(),
    ]));
    let mut by_flux = Vec::new();
    for team in 1..=TEAMS {
        let branch = format!("auto/team-{team}");
        assert!(
            stdout.contains(&format!("target team-{team}-apps: committed")),
            "{stdout}"
        );
        let deploy = show(&bare, &branch, &format!("apps/team-{team}/deploy.yaml"));
        let other = team % TEAMS + 1;
        // The team's policies selected by policySelector changed, nothing else did.
        assert_eq!(
            deploy,
            deployment(&reg, team)
                .replacen(
                    &format!(
                        "org/team-{team}-app:1.0.0 # {{\"$imagepolicy\": \"team-{team}:app\"}}"
                    ),
                    &format!(
                        "org/team-{team}-app:1.{team}.0 # {{\"$imagepolicy\": \"team-{team}:app\"}}"
                    ),
                    1
                )
                .replace("org/shared:1.0.0", "org/shared:1.4.0"),
            "held and team-{other}:app are left alone"
        );
        assert_eq!(rev(&bare, &format!("{branch}~1")), seed);
        by_flux.push(commit(&bare, &branch));
    }
    assert!(
        by_flux[0].contains(
            "\nflux-team-1 <team-1@example.invalid>\nAutomated image update by team-1/apps\n"
        ),
        "{}",
        by_flux[0]
    );
    // Files relative to update.path, the Deployment document (no metadata) as the object,
    // values and setters as the markers wrote them; the range body's own newlines leave a
    // blank line between two changes, as text/template does.
    assert!(
        by_flux[0].contains(&format!(
            "\nAutomated image update by team-1/apps\n\n- File: deploy.yaml\n  - Object: Deployment//\n    Changes:\n\
             \x20   - {reg}/org/team-1-app:1.0.0 -> {reg}/org/team-1-app:1.1.0 (team-1:app)\n\n\
             \x20   - {reg}/org/shared:1.0.0 -> {reg}/org/shared:1.4.0 (team-1:shared)\n"
        )),
        "{}",
        by_flux[0]
    );
    assert!(
        by_flux[1].contains("\nUpdate from image update automation\n"),
        "Flux's default message: {}",
        by_flux[1]
    );
    assert_eq!(rev(&bare, "main"), seed, "main is not pushed to");

    // Again from the converted config, on a remote reset to the seed.
    for team in 1..=TEAMS {
        git(
            &bare,
            &["update-ref", "-d", &format!("refs/heads/auto/team-{team}")],
        );
    }
    let converted = ok(&tagsmith(&["convert", "flux", flux]));
    let config = tmp.path().join("tagsmith.yaml");
    std::fs::write(&config, &converted).unwrap();
    let state = tmp.path().join("state-converted");
    ok(&tagsmith(&[
        "once",
        "-c",
        config.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ]));
    for team in 1..=TEAMS {
        assert_eq!(
            commit(&bare, &format!("auto/team-{team}")),
            by_flux[team - 1],
            "team {team}: the same commit from --flux and from the converted config"
        );
    }

    // Nothing new either way: the branches hold the updates.
    let state = tmp.path().join("state-flux");
    let again = ok(&tagsmith(&[
        "once",
        "--flux",
        flux,
        "--state-dir",
        state.to_str().unwrap(),
    ]));
    assert!(again.contains("target team-1-apps: unchanged"), "{again}");
}

#[test]
fn a_tagsmith_yaml_given_with_flux_objects_adds_registry_and_state_settings() {
    let registry = Registry::start(Auth::None);
    let reg = registry.host.clone();
    push(&registry, "org/shared", &["1.0.0", "1.4.0"]);
    for team in 1..=TEAMS {
        push(
            &registry,
            &format!("org/team-{team}-app"),
            &["1.0.0", "1.1.0"],
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let files: Vec<(String, String)> = (1..=TEAMS)
        .map(|t| (format!("apps/team-{t}/deploy.yaml"), deployment(&reg, t)))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let bare = bare_repo(tmp.path(), "manifests", &refs);
    let flux = tmp.path().join("flux");
    // The objects do not say the registry speaks plain http; the file does, and names the
    // state folder.
    flux_objects(&flux, &reg, &format!("file://{}", bare.display()), false);
    let state = tmp.path().join("state");
    let config = tmp.path().join("tagsmith.yaml");
    std::fs::write(
        &config,
        format!(
            "registries:\n  - host: {reg}\n    insecure: true\n    timeout: 20s\nstate: {{ dir: '{}' }}\n",
            state.display()
        ),
    )
    .unwrap();
    let stdout = ok(&tagsmith(&[
        "once",
        "-c",
        config.to_str().unwrap(),
        "--flux",
        flux.to_str().unwrap(),
    ]));
    assert!(stdout.contains("target team-2-apps: committed"), "{stdout}");
    assert!(show(&bare, "auto/team-2", "apps/team-2/deploy.yaml").contains("org/team-2-app:1.1.0"));
    assert!(state.join("workspaces").is_dir(), "state.dir from the file");
}
