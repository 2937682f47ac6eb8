//! `tagsmith once|check|convert --argocd` on Applications written as Argo CD Image Updater's
//! documentation shows them (docs/configuration/images.md, docs/basics/update-methods.md),
//! against the real registry and a real Git remote. Expected files follow AIU's code:
//! pkg/argocd/update.go (`marshalParamsOverride`, `parseDefaultTarget`, the Helm values
//! in-place patch) and pkg/argocd/git.go (`writeKustomization`).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use crate::gitserver::{bare_repo, count_commits, git, show};
use crate::support::{Auth, Registry};

fn tagsmith(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tagsmith"))
        .args(args)
        .env_remove("DOCKER_CONFIG")
        .env("HOME", "/nonexistent")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn push(registry: &Registry, repo: &str, tags: &[&str]) {
    let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(registry.pusher().push_tags(repo, &tags));
}

const KUSTOMIZATION: &str = "# web overlay\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\nresources:\n  - deployment.yaml\n\nimages:\n  - name: busybox # unrelated\n    newTag: \"1.36\"\n\ngenerators:\n  - configmap-gen.yaml\nopenapi:\n  path: schema.json\n";

const VALUES: &str = "# api chart values\ndefaults: &image\n  repository: REG/org/api   # where from\n  tag: 1.0.0 # bumped by automation\n\nimage: *image\nreplicas: 2\n";

fn application(
    name: &str,
    namespace: &str,
    url: &str,
    path: &str,
    source_extra: &str,
    annotations: &str,
) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  annotations:\n{annotations}spec:\n  project: default\n  source:\n    repoURL: {url}\n    targetRevision: main\n    path: {path}\n{source_extra}  destination:\n    server: https://kubernetes.default.svc\n    namespace: {name}\n"
    )
}

fn write_apps(dir: &Path, reg: &str, url: &str) {
    let p = "    argocd-image-updater.argoproj.io/";
    std::fs::create_dir_all(dir).unwrap();
    // Two Applications in one file, two in another: four write-back targets, one repository.
    let kustomize_apps = [
        application(
            "web",
            "argocd",
            url,
            "apps/web",
            "",
            &format!(
                "{p}image-list: web={reg}/org/web:~1\n{p}web.kustomize.image-name: nginx\n{p}write-back-method: git\n{p}write-back-target: kustomization\n"
            ),
        ),
        application(
            "src",
            "argocd",
            url,
            "apps/src",
            "    kustomize: {}\n",
            &format!(
                "{p}image-list: {reg}/org/web\n{p}update-strategy: name\n{p}ignore-tags: '2.*'\n{p}write-back-method: git\n"
            ),
        ),
    ]
    .join("---\n");
    std::fs::write(dir.join("kustomize.yaml"), kustomize_apps).unwrap();
    let helm_apps = [
        application(
            "api",
            "argocd",
            url,
            "apps/api",
            "",
            &format!(
                "{p}image-list: api={reg}/org/api\n{p}api.helm.image-name: image.repository\n{p}api.helm.image-tag: image.tag\n{p}api.allow-tags: regexp:^1\\.\n{p}write-back-method: git:repocreds\n{p}write-back-target: helmvalues\n"
            ),
        ),
        application(
            "other",
            "team-a",
            url,
            "apps/other",
            "    helm:\n      releaseName: other\n",
            &format!("{p}image-list: {reg}/org/api:1.0.x\n{p}write-back-method: git\n"),
        ),
    ]
    .join("---\n");
    std::fs::write(dir.join("helm.yaml"), helm_apps).unwrap();
}

#[test]
fn four_applications_in_one_repository_make_one_commit_with_aius_files() {
    let registry = Registry::start(Auth::None);
    let reg = registry.host.clone();
    push(&registry, "org/web", &["1.0.0", "1.2.0", "2.0.0"]);
    push(&registry, "org/api", &["1.0.0", "1.0.3", "1.1.0", "2.0.0"]);
    let tmp = tempfile::tempdir().unwrap();
    let values = VALUES.replace("REG", &reg);
    let bare = bare_repo(
        tmp.path(),
        "manifests",
        &[
            ("apps/web/kustomization.yaml", KUSTOMIZATION),
            ("apps/web/deployment.yaml", "kind: Deployment\n"),
            ("apps/src/kustomization.yaml", "resources: []\n"),
            ("apps/api/values.yaml", &values),
            ("apps/other/Chart.yaml", "name: other\n"),
        ],
    );
    let before = count_commits(&bare, "main");
    let apps = tmp.path().join("apps");
    write_apps(&apps, &reg, &format!("file://{}", bare.display()));
    let apps = apps.to_str().unwrap();

    // The old strategy name is a located warning; nothing is an error.
    let check = tagsmith(&["check", "--argocd", apps, "--output", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    let diagnostics = report["argocd"]["diagnostics"].as_array().unwrap();
    assert_eq!(diagnostics.len(), 1, "{}", text(&check));
    assert_eq!(diagnostics[0]["severity"], "warning");
    assert_eq!(diagnostics[0]["object"], "Application argocd/src");
    assert_eq!(diagnostics[0]["line"], 28, "{}", diagnostics[0]);
    assert_eq!(report["argocd"]["writebacks"].as_array().unwrap().len(), 4);
    assert_eq!(
        report["argocd"]["model"]["targets"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let config = tmp.path().join("tagsmith.yaml");
    std::fs::write(
        &config,
        format!(
            "registries:\n  - host: {reg}\n    insecure: true\nstate: {{ dir: '{}' }}\n",
            tmp.path().join("state").display()
        ),
    )
    .unwrap();
    let once = tagsmith(&["once", "-c", config.to_str().unwrap(), "--argocd", apps]);
    assert_eq!(once.status.code(), Some(0), "{}", text(&once));
    assert_eq!(
        count_commits(&bare, "main"),
        before + 1,
        "one commit for all four"
    );

    // kustomization: the busybox entry, comments, generators: and openapi: stay; the nginx
    // entry is added as `kustomize edit set image nginx=REG/org/web:1.2.0` adds it.
    assert_eq!(
        show(&bare, "main", "apps/web/kustomization.yaml"),
        KUSTOMIZATION.replace(
            "    newTag: \"1.36\"\n",
            &format!("    newTag: \"1.36\"\n  - name: nginx\n    newName: {reg}/org/web\n    newTag: 1.2.0\n")
        )
    );
    // .argocd-source-<app>.yaml for a Kustomize source, alphabetical with 2.* ignored.
    assert_eq!(
        show(&bare, "main", "apps/src/.argocd-source-src.yaml"),
        format!("kustomize:\n  images:\n  - {reg}/org/web:1.2.0\n")
    );
    // helmvalues: semver `*` within allow-tags ^1\. is 1.1.0; only the tag literal (behind
    // the alias, in the anchored mapping) changes, the comments and the anchor stay.
    assert_eq!(
        show(&bare, "main", "apps/api/values.yaml"),
        values.replace("tag: 1.0.0 #", "tag: 1.1.0 #")
    );
    // An Application outside the controller's namespace gets the namespaced file name; its
    // parameters are sorted by name, forcestring as AIU writes it.
    assert_eq!(
        show(&bare, "main", "apps/other/.argocd-source-team-a_other.yaml"),
        format!(
            "helm:\n  parameters:\n  - name: image.name\n    value: {reg}/org/api\n    forcestring: true\n  - name: image.tag\n    value: 1.0.3\n    forcestring: true\n"
        )
    );
    let message = git(&bare, &["log", "-1", "--format=%B", "main"]);
    assert!(
        message.starts_with("build: automatic update of argocd-"),
        "{message}"
    );

    // Same inputs, same remote: nothing new.
    let again = tagsmith(&["once", "-c", config.to_str().unwrap(), "--argocd", apps]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(count_commits(&bare, "main"), before + 1, "{}", text(&again));
}

#[test]
fn check_lists_what_tagsmith_cannot_do_where_it_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let p = "    argocd-image-updater.argoproj.io/";
    let apps = [
        // AIU's default method (argocd) is out of scope: a warning, the Application skipped.
        application("live", "argocd", "https://git.example/m.git", "a", "    kustomize: {}\n", &format!("{p}image-list: nginx\n")),
        application(
            "built",
            "argocd",
            "https://git.example/m.git",
            "b",
            "    kustomize: {}\n",
            &format!("{p}image-list: app=nginx, web=org/web\n{p}app.update-strategy: newest-build\n{p}app.platforms: linux\n{p}write-back-method: git\n{p}git-commit-user: bot\n{p}web.pull-secret: pullsecret:argocd/regcred\n"),
        ),
    ]
    .join("---\n");
    let file = tmp.path().join("apps.yaml");
    std::fs::write(&file, apps).unwrap();
    let out = tagsmith(&["check", "--argocd", file.to_str().unwrap()]);
    let stdout = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    let f = file.display();
    assert!(stdout.contains(&format!("{f}:4:9: warning: Application argocd/live metadata.annotations[argocd-image-updater.argoproj.io/write-back-method]: no write-back-method")), "{stdout}");
    // A platform AIU cannot parse matches nothing there: never an update, so an error here.
    assert!(stdout.contains(&format!("{f}:27:53: error: Application argocd/built metadata.annotations[argocd-image-updater.argoproj.io/app.platforms]: invalid platform \"linux\"")), "{stdout}");
    assert!(
        stdout.contains("git-commit-user]: ignored: commit settings come from the target"),
        "{stdout}"
    );
    assert!(
        stdout.contains("web.pull-secret]: a Kubernetes secret is not read outside a cluster"),
        "{stdout}"
    );
}

#[test]
fn convert_gives_markers_for_values_and_refuses_argocd_source_files() {
    let tmp = tempfile::tempdir().unwrap();
    let p = "    argocd-image-updater.argoproj.io/";
    let values_app = application(
        "api",
        "argocd",
        "https://git.example/m.git",
        "charts/api",
        "",
        &format!(
            "{p}image-list: api=ghcr.io/org/api:^1.2\n{p}write-back-method: git\n{p}write-back-target: helmvalues:values-prod.yaml\n{p}git-branch: main:image-updates\n"
        ),
    );
    let file = tmp.path().join("api.yaml");
    std::fs::write(&file, &values_app).unwrap();
    let out = tagsmith(&["convert", "argocd", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let yaml = String::from_utf8_lossy(&out.stdout);
    assert!(yaml.contains("semver: ^1.2"), "{yaml}");
    assert!(yaml.contains("branch: image-updates"), "{yaml}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("add marker: charts/api/values-prod.yaml: key image.tag: add `# {\"$imagepolicy\": \"argocd:api-api:tag\"}`"),
        "{stderr}"
    );
    // What it prints loads as a tagsmith.yaml.
    let converted = tmp.path().join("tagsmith.yaml");
    std::fs::write(&converted, yaml.as_bytes()).unwrap();
    let check = tagsmith(&["check", "-c", converted.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));

    let source_app = values_app
        .replace(
            &format!("{p}write-back-target: helmvalues:values-prod.yaml\n"),
            "",
        )
        .replace("  source:\n", "  source:\n    helm: {}\n");
    std::fs::write(&file, source_app).unwrap();
    let out = tagsmith(&["convert", "argocd", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains(
            "Application argocd/api: the write-back to charts/api/.argocd-source-api.yaml"
        ),
        "{}",
        text(&out)
    );
}

/// The digest strategy (AIU registry-scanner pkg/image/version.go: only the constraint tag;
/// pkg/argocd/update.go `needsUpdate`: a changed digest is an update) writes
/// `tag@digest` as the Helm tag parameter (`GetTagWithDigest`), and a new push of the same
/// tag is a new commit.
#[test]
fn digest_strategy_follows_a_mutable_tag() {
    let registry = Registry::start(Auth::None);
    let reg = registry.host.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pusher = registry.pusher();
    let first = rt.block_on(pusher.push_tags("org/job", &["latest".to_string()]));
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(
        tmp.path(),
        "manifests",
        &[("job/Chart.yaml", "name: job\n")],
    );
    let p = "    argocd-image-updater.argoproj.io/";
    let apps = tmp.path().join("job.yaml");
    std::fs::write(
        &apps,
        application(
            "job",
            "argocd",
            &format!("file://{}", bare.display()),
            "job",
            "    helm: {}\n",
            &format!("{p}image-list: job={reg}/org/job:latest\n{p}job.update-strategy: digest\n{p}write-back-method: git\n"),
        ),
    )
    .unwrap();
    let config = tmp.path().join("tagsmith.yaml");
    std::fs::write(
        &config,
        format!(
            "registries:\n  - host: {reg}\n    insecure: true\nstate: {{ dir: '{}' }}\n",
            tmp.path().join("state").display()
        ),
    )
    .unwrap();
    let run = || {
        let out = tagsmith(&[
            "once",
            "-c",
            config.to_str().unwrap(),
            "--argocd",
            apps.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    };
    let expected = |digest: &str| {
        format!(
            "helm:\n  parameters:\n  - name: image.name\n    value: {reg}/org/job\n    forcestring: true\n  - name: image.tag\n    value: latest@{digest}\n    forcestring: true\n"
        )
    };
    run();
    assert_eq!(
        show(&bare, "main", "job/.argocd-source-job.yaml"),
        expected(&first)
    );
    let commits = count_commits(&bare, "main");
    // The same tag, pushed again with other content.
    let second = rt.block_on(async {
        let manifest = pusher.image_manifest("org/job", "arm64").await;
        pusher
            .manifest("org/job", "latest", crate::support::OCI_MANIFEST, &manifest)
            .await
    });
    assert_ne!(first, second);
    run();
    assert_eq!(
        show(&bare, "main", "job/.argocd-source-job.yaml"),
        expected(&second)
    );
    assert_eq!(count_commits(&bare, "main"), commits + 1);
}
