//! Argo CD Image Updater's newest-build strategy and `platforms` option against the real
//! registry, images pushed with chosen `created` times and platforms. Expected answers follow
//! AIU's code: registry-scanner `pkg/tag/tag.go` (`SortByDate`: by `created`, equal times by
//! name), `pkg/image/version.go` (`GetNewestVersionFromTags` takes the last; the constraint
//! is not checked for newest-build), `pkg/registry/registry.go` (`GetTags`: only tags passing
//! allow-tags and ignore-tags are looked up; a tag without metadata is left out),
//! `pkg/registry/client.go` (`TagMetadata`, `TagInfoFromReferences`: for an index, the newest
//! `created` among the manifests of wanted platforms; none wanted, no metadata) and
//! `pkg/options/options.go` (`WantsPlatform`: any one listed platform is enough).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::gitserver::{bare_repo, count_commits, show};
use crate::support::proxy::{Paging, Proxy};
use crate::support::service::Service;
use crate::support::{Auth, OCI_INDEX, OCI_MANIFEST, Pusher, Registry, free_port, sha256};

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

const P: &str = "    argocd-image-updater.argoproj.io/";

fn application(name: &str, url: &str, annotations: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\n  namespace: argocd\n  annotations:\n{annotations}{P}write-back-method: git\nspec:\n  project: default\n  source:\n    repoURL: {url}\n    targetRevision: main\n    path: apps/{name}\n    kustomize: {{}}\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: {name}\n"
    )
}

/// An index under `tag` with one image per (platform, created).
async fn push_index(p: &Pusher, repo: &str, tag: &str, images: &[(&str, Option<&str>)]) {
    let mut entries = Vec::new();
    for (platform, created) in images {
        let manifest = p
            .image_manifest_for(repo, platform, *created, &format!("{tag}-{platform}"))
            .await;
        let digest = p
            .manifest(repo, &sha256(&manifest), OCI_MANIFEST, &manifest)
            .await;
        let mut parts = platform.split('/');
        let (os, arch) = (parts.next().unwrap(), parts.next().unwrap());
        entries.push(format!(
            r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{digest}","size":{},"platform":{{"architecture":"{arch}","os":"{os}"}}}}"#,
            manifest.len()
        ));
    }
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
        entries.join(",")
    );
    p.manifest(repo, tag, OCI_INDEX, index.as_bytes()).await;
}

fn push_builds(p: &Pusher, repo: &str) {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        // Newest of all, but not allowed (allow-tags regexp:^main-).
        p.push_image(repo, "feature-x", Some("2027-01-01T00:00:00Z"))
            .await;
        // Allowed but ignored (ignore-tags main-c*).
        p.push_image(repo, "main-ccc", Some("2026-12-01T00:00:00Z"))
            .await;
        // The newest allowed build, twice: equal times go to the greater name.
        p.push_image(repo, "main-aaa", Some("2026-05-01T00:00:00Z"))
            .await;
        p.push_image(repo, "main-bbb", Some("2026-05-01T00:00:00Z"))
            .await;
        // The greatest name, built earlier: alphabetical would take it, newest-build does not.
        p.push_image(repo, "main-zzz", Some("2026-04-01T00:00:00Z"))
            .await;
        // No `created`: AIU cannot date it and leaves it out.
        p.push_image(repo, "main-undated", None).await;
    });
}

#[test]
fn newest_build_takes_the_last_built_allowed_tag_and_breaks_ties_by_name() {
    let registry = Registry::start(Auth::None);
    let reg = registry.host.clone();
    push_builds(&registry.pusher(), "org/app");
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(
        tmp.path(),
        "manifests",
        &[("apps/app/kustomization.yaml", "resources: []\n")],
    );
    let apps = tmp.path().join("apps.yaml");
    std::fs::write(
        &apps,
        application(
            "app",
            &format!("file://{}", bare.display()),
            &format!(
                "{P}image-list: app={reg}/org/app:1.x\n{P}app.update-strategy: latest\n{P}app.allow-tags: 'regexp:^main-'\n{P}app.ignore-tags: 'main-c*'\n"
            ),
        ),
    )
    .unwrap();
    let apps = apps.to_str().unwrap();
    // The old name and the ignored constraint are located warnings; the model is newestBuild.
    let check = tagsmith(&["check", "--argocd", apps, "--output", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    let argocd = &report["argocd"];
    let messages: Vec<String> = argocd["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| format!("{} {}: {}", d["severity"], d["line"], d["message"]))
        .collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages.iter().all(|m| m.starts_with("\"warning\"")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("old name for newest-build")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("\\\"1.x\\\" in the image-list is ignored with newest-build")),
        "{messages:?}"
    );
    let image = &argocd["model"]["images"][0];
    assert_eq!(image["newestBuild"], serde_json::json!({}), "{image}");
    assert_eq!(image["filterTags"]["pattern"], "^main-");
    assert!(image.get("semver").is_none(), "{image}");

    let config = tmp.path().join("tagsmith.yaml");
    std::fs::write(
        &config,
        format!(
            "registries:\n  - host: {reg}\n    insecure: true\nstate: {{ dir: '{}' }}\n",
            tmp.path().join("state").display()
        ),
    )
    .unwrap();
    let before = count_commits(&bare, "main");
    let once = tagsmith(&["once", "-c", config.to_str().unwrap(), "--argocd", apps]);
    assert_eq!(once.status.code(), Some(0), "{}", text(&once));
    assert_eq!(count_commits(&bare, "main"), before + 1);
    assert_eq!(
        show(&bare, "main", "apps/app/.argocd-source-app.yaml"),
        format!("kustomize:\n  images:\n  - {reg}/org/app:main-bbb\n")
    );
}

/// `tagsmith.yaml` with one newest-build policy on `repo`, `extra` under `newestBuild`.
fn newest_config(dir: &Path, host: &str, repo: &str, extra: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{}.yaml", free_port()));
    std::fs::write(
        &path,
        format!(
            "images:\n  - policy: nb:app\n    image: {host}/{repo}\n    newestBuild: {extra}\n\
             registries:\n  - host: {host}\n    insecure: true\n"
        ),
    )
    .unwrap();
    path
}

fn selected(config: &Path) -> serde_json::Value {
    let out = tagsmith(&[
        "policy",
        "eval",
        "-c",
        config.to_str().unwrap(),
        "--policy",
        "nb:app",
        "--output",
        "json",
    ]);
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    json["selected"].clone()
}

#[test]
fn platforms_choose_which_images_of_an_index_date_a_tag() {
    let registry = Registry::start(Auth::None);
    let p = registry.pusher();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        // amd64 built late, arm64 early: dated by whichever platforms count.
        push_index(
            &p,
            "org/multi",
            "a",
            &[
                ("linux/amd64", Some("2026-09-01T00:00:00Z")),
                ("linux/arm64", Some("2026-01-01T00:00:00Z")),
            ],
        )
        .await;
        push_index(
            &p,
            "org/multi",
            "b",
            &[
                ("linux/amd64", Some("2026-05-01T00:00:00Z")),
                ("linux/arm64", Some("2026-05-01T00:00:00Z")),
            ],
        )
        .await;
        // A single amd64 image, the newest build of all.
        p.push_image("org/multi", "c", Some("2026-12-01T00:00:00Z"))
            .await;
    });
    let tmp = tempfile::tempdir().unwrap();
    let host = &registry.host;
    // Every platform counts: c. Only arm64: c has none, a's arm64 is older than b's.
    assert_eq!(
        selected(&newest_config(tmp.path(), host, "org/multi", "{}")),
        "c"
    );
    let arm = newest_config(
        tmp.path(),
        host,
        "org/multi",
        "{ platforms: [linux/arm64] }",
    );
    assert_eq!(selected(&arm), "b");
    // Any one listed platform is enough; an index counts its newest wanted image (a: amd64).
    let both = newest_config(
        tmp.path(),
        host,
        "org/multi",
        "{ platforms: [linux/arm64, linux/s390x] }",
    );
    assert_eq!(selected(&both), "b");
    let amd = newest_config(
        tmp.path(),
        host,
        "org/multi",
        "{ platforms: [linux/amd64] }",
    );
    assert_eq!(selected(&amd), "c");
    let none = newest_config(
        tmp.path(),
        host,
        "org/multi",
        "{ platforms: [windows/amd64] }",
    );
    assert_eq!(selected(&none), serde_json::Value::Null);
}

/// A warm `tagsmith run` asks the registry for each tag's digest, and for nothing else it
/// already read: manifests by digest and config blobs are fetched once per digest.
#[test]
fn a_warm_run_does_not_fetch_build_times_again() {
    let registry = Registry::start(Auth::None);
    push_builds(&registry.pusher(), "org/app");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let proxy = rt.block_on(Proxy::start(&registry.host, Paging::PassThrough));
    let host = proxy.host();
    let tmp = tempfile::tempdir().unwrap();
    let (port, metrics_port) = (free_port(), free_port());
    let yaml = format!(
        "images:\n  - policy: nb:app\n    image: {host}/org/app\n    newestBuild: {{}}\n    interval: 1s\n\
         registries:\n  - host: {host}\n    insecure: true\n\
         server: {{ listen: '127.0.0.1:{port}', metrics: '127.0.0.1:{metrics_port}' }}\n\
         state: {{ dir: state }}\n"
    );
    let _service = Service::start(tmp.path(), &yaml, port, metrics_port, &[]);
    let lists = || {
        proxy
            .log()
            .iter()
            .filter(|l| l.method == "GET" && l.uri.contains("/tags/list"))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while lists() < 3 {
        assert!(
            Instant::now() < deadline,
            "three scans within 60 s: {:?}",
            proxy.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = proxy.log();
    let mut by_digest: Vec<&str> = log
        .iter()
        .filter(|l| l.method == "GET" && l.uri.contains("sha256:"))
        .map(|l| l.uri.as_str())
        .collect();
    let fetched = by_digest.len();
    assert!(
        fetched >= 2 * 6,
        "manifest and config of every tag: {by_digest:?}"
    );
    by_digest.sort_unstable();
    by_digest.dedup();
    assert_eq!(by_digest.len(), fetched, "fetched again: {log:?}");
    // Digests are asked for every scan: a tag may move.
    let heads = log.iter().filter(|l| l.method == "HEAD").count();
    assert!(heads >= 2 * 6, "{log:?}");
}

/// helmvalues with keys the values file lacks: AIU's `setHelmValue` (pkg/argocd/update.go)
/// appends a missing key to the mapping its path reaches and creates missing parents; here
/// that is an insertion, so comments, anchors and the rest of the file stay as they were.
#[test]
fn helmvalues_adds_missing_keys_where_aiu_adds_them() {
    let registry = Registry::start(Auth::None);
    let reg = registry.host.clone();
    tokio::runtime::Runtime::new().unwrap().block_on(
        registry
            .pusher()
            .push_tags("org/api", &["1.0.0".into(), "1.2.0".into()]),
    );
    let values = "# api values\ncommon: &common\n  pullPolicy: IfNotPresent # keep\n\nimage: *common\nreplicas: 2 # two\n";
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(
        tmp.path(),
        "manifests",
        &[
            ("apps/api/values.yaml", values),
            ("apps/api/Chart.yaml", "name: api\n"),
        ],
    );
    let apps = tmp.path().join("apps.yaml");
    std::fs::write(
        &apps,
        application(
            "api",
            &format!("file://{}", bare.display()),
            &format!(
                "{P}image-list: api={reg}/org/api\n{P}api.helm.image-name: image.repository\n{P}api.helm.image-tag: image.tag\n{P}write-back-target: helmvalues\n"
            ),
        )
        .replace("    kustomize: {}\n", "    helm: {}\n"),
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
    let once = tagsmith(&[
        "once",
        "-c",
        config.to_str().unwrap(),
        "--argocd",
        apps.to_str().unwrap(),
    ]);
    assert_eq!(once.status.code(), Some(0), "{}", text(&once));
    // image is an alias of common: the keys go to the anchored mapping, tag first.
    assert_eq!(
        show(&bare, "main", "apps/api/values.yaml"),
        values.replace(
            "  pullPolicy: IfNotPresent # keep\n",
            &format!(
                "  pullPolicy: IfNotPresent # keep\n  tag: 1.2.0\n  repository: {reg}/org/api\n"
            )
        )
    );
}

/// `pull-secret: env:VAR` and `ext:/path` as registry-scanner `pkg/image/credentials.go`
/// (`FetchCredentials`) resolves them: the variable holds `user:password`; the script, run
/// without arguments, prints `user:password`. They are the credentials of that image's
/// registry host only: another registry in the same run gets none.
#[test]
fn pull_secrets_from_env_and_a_script_go_to_their_registry_only() {
    let secured = Registry::start(Auth::Htpasswd {
        user: "robot".into(),
        password: "s3cret-pw".into(),
    });
    let open = Registry::start(Auth::None);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        secured
            .pusher()
            .push_tags("org/a", &["1.0.0".into(), "1.1.0".into()])
            .await;
        secured
            .pusher()
            .push_tags("org/b", &["2.0.0".into(), "2.1.0".into()])
            .await;
        open.pusher()
            .push_tags("org/c", &["3.0.0".into(), "3.1.0".into()])
            .await;
    });
    let proxy = rt.block_on(Proxy::start(&open.host, Paging::PassThrough));
    let (sec, other) = (secured.host.clone(), proxy.host());
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("creds.sh");
    std::fs::write(&script, "#!/bin/sh\necho robot:s3cret-pw\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let bare = bare_repo(
        tmp.path(),
        "manifests",
        &[
            ("apps/a/kustomization.yaml", "resources: []\n"),
            ("apps/b/kustomization.yaml", "resources: []\n"),
            ("apps/c/kustomization.yaml", "resources: []\n"),
        ],
    );
    let url = format!("file://{}", bare.display());
    let write = |a_secret: &str, b_secret: &str| {
        let apps = [
            application(
                "a",
                &url,
                &format!("{P}image-list: a={sec}/org/a\n{P}a.pull-secret: '{a_secret}'\n"),
            ),
            application(
                "b",
                &url,
                &format!("{P}image-list: b={sec}/org/b\n{P}b.pull-secret: '{b_secret}'\n"),
            ),
            // Two images of different hosts in one Application would share a Kustomize
            // image key (AIU's `KustomizeImage.Match` splits at the port's `:`).
            application("c", &url, &format!("{P}image-list: c={other}/org/c\n")),
        ]
        .join("---\n");
        let path = tmp.path().join("apps.yaml");
        std::fs::write(&path, apps).unwrap();
        path
    };
    let run = |apps: &Path, env: &[(&str, &str)]| {
        Command::new(env!("CARGO_BIN_EXE_tagsmith"))
            .args(["once", "--argocd", apps.to_str().unwrap(), "--state-dir"])
            .arg(tmp.path().join("state"))
            .env_remove("DOCKER_CONFIG")
            .env_remove("REG_CREDS")
            .env("HOME", "/nonexistent")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    // Two different sources for one host: a located error (one set of credentials per host).
    let ext = format!("ext:{}", script.display());
    let apps = write("env:REG_CREDS", &ext);
    let check = tagsmith(&["check", "--argocd", apps.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(2), "{}", text(&check));
    assert!(
        text(&check).contains(&format!("another pull-secret is given for registry {sec}")),
        "{}",
        text(&check)
    );

    // The script alone.
    let apps = write(&ext, &ext);
    let once = run(&apps, &[]);
    assert_eq!(once.status.code(), Some(0), "{}", text(&once));
    assert!(!text(&once).contains("s3cret-pw"), "{}", text(&once));
    assert_eq!(
        show(&bare, "main", "apps/a/.argocd-source-a.yaml"),
        format!("kustomize:\n  images:\n  - {sec}/org/a:1.1.0\n")
    );
    assert_eq!(
        show(&bare, "main", "apps/b/.argocd-source-b.yaml"),
        format!("kustomize:\n  images:\n  - {sec}/org/b:2.1.0\n")
    );
    assert_eq!(
        show(&bare, "main", "apps/c/.argocd-source-c.yaml"),
        format!("kustomize:\n  images:\n  - {other}/org/c:3.1.0\n")
    );
    let log = proxy.log();
    assert!(!log.is_empty());
    assert!(
        log.iter().all(|l| !l.authorized),
        "credentials sent to another registry: {log:?}"
    );

    // env: both with the variable; a value that is not user:password fails without showing it.
    let apps = write("env:REG_CREDS", "env:REG_CREDS");
    let bad = run(&apps, &[("REG_CREDS", "s3cret-pw")]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(
        text(&bad).contains("env REG_CREDS does not hold user:password"),
        "{}",
        text(&bad)
    );
    assert!(!text(&bad).contains("s3cret-pw"), "{}", text(&bad));
    let good = run(&apps, &[("REG_CREDS", "robot:s3cret-pw")]);
    assert_eq!(good.status.code(), Some(0), "{}", text(&good));
}

/// `tagsmith once` keeps the build times it read in its state: the next `once` asks the
/// registry for each tag's digest only.
#[test]
fn a_second_once_reads_build_times_from_the_state() {
    let registry = Registry::start(Auth::None);
    push_builds(&registry.pusher(), "org/app");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let proxy = rt.block_on(Proxy::start(&registry.host, Paging::PassThrough));
    let host = proxy.host();
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(
        tmp.path(),
        "manifests",
        &[(
            "app.yaml",
            &format!("image: {host}/org/app:old # {{\"$imagepolicy\": \"nb:app\"}}\n"),
        )],
    );
    let config = tmp.path().join("tagsmith.yaml");
    std::fs::write(
        &config,
        format!(
            "images:\n  - policy: nb:app\n    image: {host}/org/app\n    newestBuild: {{}}\n    filterTags: {{ pattern: '^main-' }}\n\
             targets:\n  - name: prod\n    git: {{ url: 'file://{}', branch: main }}\n    commit: {{ author: {{ name: bot, email: bot@example.invalid }} }}\n\
             registries:\n  - host: {host}\n    insecure: true\nstate: {{ dir: state }}\n",
            bare.display()
        ),
    )
    .unwrap();
    let by_digest = || {
        proxy
            .log()
            .iter()
            .filter(|l| l.method == "GET" && l.uri.contains("sha256:"))
            .count()
    };
    let once = tagsmith(&["once", "-c", config.to_str().unwrap()]);
    assert_eq!(once.status.code(), Some(0), "{}", text(&once));
    assert_eq!(
        show(&bare, "main", "app.yaml"),
        // main-ccc: the newest main- build (nothing ignores it here).
        format!("image: {host}/org/app:main-ccc # {{\"$imagepolicy\": \"nb:app\"}}\n")
    );
    let first = by_digest();
    assert!(
        first >= 2 * 5,
        "manifest and config of each main- tag: {first}"
    );
    proxy.clear_log();
    let again = tagsmith(&["once", "-c", config.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(by_digest(), 0, "{:?}", proxy.log());
    assert!(proxy.log().iter().filter(|l| l.method == "HEAD").count() >= 5);
}

/// The same options from an `ImageUpdater` (AIU 1.x `commonUpdateSettings`: `updateStrategy`,
/// `platforms` as a list, `pullSecret`) map as the annotations do.
#[test]
fn an_image_updater_gives_newest_build_platforms_and_a_pull_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("argo.yaml");
    std::fs::write(
        &file,
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: api\n  namespace: argocd\nspec:\n  source:\n    repoURL: https://git.example/m.git\n    targetRevision: main\n    path: api\n    kustomize: {}\n\
         ---\napiVersion: argocd-image-updater.argoproj.io/v1alpha1\nkind: ImageUpdater\nmetadata:\n  name: u\n  namespace: argocd\nspec:\n  writeBackConfig:\n    method: git\n  commonUpdateSettings:\n    pullSecret: env:REG_CREDS\n  applicationRefs:\n    - namePattern: api\n      images:\n        - alias: api\n          imageName: ghcr.io/org/api\n          commonUpdateSettings:\n            updateStrategy: newest-build\n            platforms: [linux/arm64, linux/amd64]\n",
    )
    .unwrap();
    let out = tagsmith(&[
        "check",
        "--argocd",
        file.to_str().unwrap(),
        "--output",
        "json",
    ]);
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let m = &report["argocd"];
    assert_eq!(m["valid"], true, "{m}");
    let image = &m["model"]["images"][0];
    assert_eq!(
        image["newestBuild"]["platforms"],
        serde_json::json!(["linux/arm64", "linux/amd64"]),
        "{image}"
    );
    assert_eq!(
        m["model"]["registries"],
        serde_json::json!([{ "host": "ghcr.io", "auth": { "basic": { "credentialsEnv": "REG_CREDS" } } }]),
        "{m}"
    );
}
