//! `--argocd` on Argo CD Image Updater 1.x `ImageUpdater` objects
//! (`argocd-image-updater.argoproj.io/v1alpha1`). Expected values follow AIU's code:
//! pkg/argocd/argocd.go `FilterApplicationsForUpdate` (Applications of the ImageUpdater's
//! namespace only; refs sorted by `calculateSpecificity`, the first whose namePattern and
//! labelSelectors match wins; `useAnnotations: true` reads the Application's annotations and
//! falls through to the next ref when they give no image list), `mergeCommonUpdateSettings`
//! and `mergeWBCSettings` (spec -> ref -> image, field by field), `parseImageList` and
//! `newImageFromManifestTargetSettings` (manifest targets), and api/v1alpha1
//! imageupdater_types.go (fields and validation rules). The fixtures in
//! tests/fixtures/argocd/imageupdater are written after AIU's docs/configuration/applications.md
//! and config/samples.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::gitserver::{bare_repo, count_commits, git, show};
use crate::support::{Auth, Registry};

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/argocd/imageupdater"
);

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

/// `check --argocd PATH... --output json`'s `argocd` part.
fn check(paths: &[&Path]) -> Value {
    let mut args = vec!["check", "--output", "json"];
    for p in paths {
        args.extend(["--argocd", p.to_str().unwrap()]);
    }
    let out = tagsmith(&args);
    let v: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    v["argocd"].clone()
}

fn image<'a>(m: &'a Value, policy: &str) -> &'a Value {
    m["model"]["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["policy"] == policy)
        .unwrap_or_else(|| panic!("no policy {policy} in {}", m["model"]["images"]))
}

fn policies(m: &Value) -> Vec<String> {
    let mut list: Vec<String> = m["model"]["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["policy"].as_str().unwrap().to_string())
        .collect();
    list.sort();
    list
}

fn writeback<'a>(m: &'a Value, application: &str) -> &'a Value {
    m["writebacks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["application"] == application)
        .unwrap_or_else(|| panic!("no write-back for {application} in {}", m["writebacks"]))
}

#[test]
fn refs_select_applications_most_specific_first_by_name_and_labels() {
    let m = check(&[Path::new(FIXTURES)]);
    assert_eq!(m["valid"], true, "{m}");
    // One ref per Application: app-1 by its exact name over app-*, app-prod-eu by app-prod-*
    // (9 literal characters) over app-* (4), web-shop by web-* with matching labels, web-legacy
    // (environment: dev is not In [production, staging]) and other by `*`. team-a/app-9 is in
    // another namespace than the ImageUpdater, ghost-* matches nothing.
    assert_eq!(
        policies(&m),
        [
            "argocd:app-1-test1",
            "argocd:app-dev-redis",
            "argocd:app-prod-eu-job",
            "argocd:app-prod-eu-nginx",
            "argocd:chart-a-dex",
            "argocd:other-catchall",
            "argocd:web-legacy-catchall",
            "argocd:web-shop-webapp",
        ]
    );
    assert_eq!(
        image(&m, "argocd:app-1-test1")["image"],
        "registry.example/org/test"
    );
    // Two warnings, each where it is written.
    let diagnostics = m["diagnostics"].as_array().unwrap();
    assert_eq!(diagnostics.len(), 2, "{}", m["diagnostics"]);
    let ghost = diagnostics
        .iter()
        .find(|d| d["field"] == "spec.applicationRefs[5].namePattern")
        .unwrap();
    assert_eq!(ghost["severity"], "warning");
    assert_eq!(ghost["object"], "ImageUpdater argocd/my-image-updater");
    assert_eq!(ghost["line"], 66, "{ghost}");
    assert!(
        ghost["message"]
            .as_str()
            .unwrap()
            .contains("selects no Application"),
        "{ghost}"
    );
    let nine = diagnostics
        .iter()
        .find(|d| d["object"] == "Application team-a/app-9")
        .unwrap();
    assert_eq!(nine["severity"], "warning");
    assert_eq!(nine["line"], 123, "{nine}");
    assert!(
        nine["message"]
            .as_str()
            .unwrap()
            .contains("no ImageUpdater selects this Application"),
        "{nine}"
    );
}

#[test]
fn settings_cascade_from_spec_to_ref_to_image() {
    let m = check(&[Path::new(FIXTURES)]);
    let excluded = json!(["^latest$", "^master$", "^.*\\.sig$"]);
    // spec.commonUpdateSettings alone: alphabetical, ignoreTags as excludes.
    let redis = image(&m, "argocd:app-dev-redis");
    assert_eq!(redis["alphabetical"], "asc");
    assert_eq!(redis["semver"], Value::Null);
    assert_eq!(redis["exclude"], excluded);
    // The ref's updateStrategy over the spec's; ignoreTags still from the spec; the
    // imageName's tag is the semver constraint, as the image-list's is.
    let nginx = image(&m, "argocd:app-prod-eu-nginx");
    assert_eq!(nginx["semver"], "1.20");
    assert_eq!(nginx["alphabetical"], Value::Null);
    assert_eq!(nginx["exclude"], excluded);
    // The image's own updateStrategy over the ref's.
    let job = image(&m, "argocd:app-prod-eu-job");
    assert_eq!(job["digest"], "Always");
    assert_eq!(job["filterTags"]["pattern"], "^latest$");
    // The image's allowTags with the spec's strategy.
    let web = image(&m, "argocd:web-shop-webapp");
    assert_eq!(web["alphabetical"], "asc");
    assert_eq!(web["filterTags"]["pattern"], "^v[0-9]+");

    // Write-back: spec method git everywhere; the default target is
    // .argocd-source-<app>.yaml, the ref's writeBackTarget is resolved against the source
    // path, the ref's repository and `base:write` branch make a second target.
    assert_eq!(
        writeback(&m, "argocd/app-1")["file"],
        "apps/app-1/.argocd-source-app-1.yaml"
    );
    assert_eq!(
        writeback(&m, "argocd/app-1")["kind"],
        "argocd-source-kustomize"
    );
    assert_eq!(
        writeback(&m, "argocd/app-prod-eu")["file"],
        "apps/app-prod-eu"
    );
    assert_eq!(writeback(&m, "argocd/app-prod-eu")["kind"], "kustomization");
    let chart = writeback(&m, "argocd/chart-a");
    assert_eq!(chart["file"], "apps/chart-a/values-prod.yaml");
    assert_eq!(chart["kind"], "helmvalues");
    let targets = m["model"]["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2, "{targets:?}");
    let values = targets
        .iter()
        .find(|t| t["git"]["url"] == "https://git.example/values.git")
        .unwrap();
    assert_eq!(values["git"]["branch"], "main");
    assert_eq!(values["push"]["branch"], "image-updates");
    assert_eq!(values["policies"], json!(["argocd:chart-a-dex"]));
}

const P: &str = "    argocd-image-updater.argoproj.io/";

fn application(name: &str, labels: &str, annotations: &str, source_extra: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\n  namespace: argocd\n{labels}{annotations}spec:\n  source:\n    repoURL: https://git.example/apps.git\n    targetRevision: main\n    path: apps/{name}\n{source_extra}"
    )
}

/// config/samples/argocd-image-updater_v1alpha1_imageupdater-short.yaml's second object,
/// plus a more specific useAnnotations ref for an Application without annotations, which AIU
/// then passes on to the next matching ref.
#[test]
fn use_annotations_reads_the_applications_annotations_as_without_an_image_updater() {
    let tmp = tempfile::tempdir().unwrap();
    let annotated = application(
        "shop",
        "  labels:\n    image-updater: my-image-updater\n",
        &format!(
            "  annotations:\n{P}image-list: web=ghcr.io/org/web:~1, api=ghcr.io/org/api\n{P}web.kustomize.image-name: nginx\n{P}api.update-strategy: alphabetical\n{P}api.ignore-tags: '*-rc*'\n{P}write-back-method: git\n{P}write-back-target: kustomization\n"
        ),
        "",
    );
    let plain = application(
        "plain",
        "  labels:\n    image-updater: my-image-updater\n",
        &format!("  annotations:\n{P}write-back-method: git\n"),
        "    kustomize: {}\n",
    );
    let apps = tmp.path().join("apps.yaml");
    std::fs::write(&apps, format!("{annotated}---\n{plain}")).unwrap();
    let updater = tmp.path().join("updater.yaml");
    std::fs::write(
        &updater,
        "apiVersion: argocd-image-updater.argoproj.io/v1alpha1\nkind: ImageUpdater\nmetadata:\n  name: argocd-image-updater-sample-short-1\n  namespace: argocd\nspec:\n  writeBackConfig:\n    method: git\n  applicationRefs:\n    - namePattern: \"*\"\n      useAnnotations: true\n      labelSelectors:\n        matchLabels:\n          image-updater: my-image-updater\n      images:\n        - alias: ignored\n          imageName: ghcr.io/org/ignored\n    - namePattern: \"plain\"\n      useAnnotations: true\n    - namePattern: \"pl*\"\n      images:\n        - alias: app\n          imageName: ghcr.io/org/plain\n",
    )
    .unwrap();

    let without = check(&[&apps]);
    let with = check(&[&apps, &updater]);
    assert_eq!(with["valid"], true, "{with}");
    // shop: exactly what its annotations give without any ImageUpdater.
    for policy in ["argocd:shop-web", "argocd:shop-api"] {
        assert_eq!(image(&with, policy), image(&without, policy));
    }
    assert_eq!(
        writeback(&with, "argocd/shop"),
        writeback(&without, "argocd/shop")
    );
    assert_eq!(writeback(&with, "argocd/shop")["kind"], "kustomization");
    // plain: its exact-name useAnnotations ref finds no image-list, so `pl*` applies.
    assert_eq!(
        policies(&with),
        ["argocd:plain-app", "argocd:shop-api", "argocd:shop-web"]
    );
    // The ref's images are ignored with useAnnotations, and it says so where they are.
    let ignored = with["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["field"] == "spec.applicationRefs[0].images")
        .unwrap_or_else(|| panic!("{}", with["diagnostics"]));
    assert_eq!(ignored["severity"], "warning");
    assert_eq!(ignored["line"], 16, "{ignored}");
    // plain's annotation is not read once a ref without useAnnotations configures it.
    let not_read = with["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["object"] == "Application argocd/plain" && d["field"] == "metadata.annotations")
        .unwrap_or_else(|| panic!("{}", with["diagnostics"]));
    assert!(
        not_read["message"]
            .as_str()
            .unwrap()
            .contains("ImageUpdater argocd/argocd-image-updater-sample-short-1 applicationRefs[2] configures this Application"),
        "{not_read}"
    );
}

#[test]
fn what_tagsmith_cannot_do_is_located_in_the_image_updater() {
    let tmp = tempfile::tempdir().unwrap();
    let apps = tmp.path().join("apps.yaml");
    std::fs::write(
        &apps,
        [
            application("app-1", "", "", "    kustomize: {}\n"),
            application("signed", "", "", "    kustomize: {}\n"),
            application("pr", "", "", "    kustomize: {}\n"),
            application("cmp", "", "", "    kustomize: {}\n"),
            application("live", "", "", "    kustomize: {}\n"),
        ]
        .join("---\n"),
    )
    .unwrap();
    let head = |name: &str| {
        format!(
            "apiVersion: argocd-image-updater.argoproj.io/v1alpha1\nkind: ImageUpdater\nmetadata:\n  name: {name}\n  namespace: argocd\nspec:\n"
        )
    };
    let updaters = [
        // Lines 1-17: a tie between app-? and app-* (4 literal characters each) for app-1,
        // and what tagsmith does not do: signature verification, pull requests, plugins.
        format!(
            "{}  writeBackConfig:\n    method: git\n  applicationRefs:\n    - namePattern: \"app-?\"\n      images: [{{ alias: a, imageName: ghcr.io/org/a }}]\n    - namePattern: \"app-*\"\n      images: [{{ alias: b, imageName: ghcr.io/org/b }}]\n    - namePattern: signed\n      imagesVerification:\n        cosignKey: {{ secretName: keys, key: cosign.pub }}\n      images: [{{ alias: s, imageName: ghcr.io/org/s }}]\n",
            head("one")
        ),
        // Lines 19-45: a second ImageUpdater selecting app-1 again; pullRequest; plugin.
        format!(
            "{}  writeBackConfig:\n    method: git\n  applicationRefs:\n    - namePattern: \"app-1\"\n      images: [{{ alias: c, imageName: ghcr.io/org/c }}]\n    - namePattern: pr\n      writeBackConfig:\n        gitConfig:\n          pullRequest: {{ github: {{}} }}\n      images: [{{ alias: p, imageName: ghcr.io/org/p }}]\n    - namePattern: cmp\n      images:\n        - alias: c\n          imageName: ghcr.io/org/c\n          manifestTargets:\n            plugin: {{ name: IMAGE }}\n    - namePattern: live\n      images: [{{ alias: l, imageName: ghcr.io/org/l }}]\n      writeBackConfig:\n        method: argocd\n",
            head("two")
        ),
        // Lines 46-: a bad pattern makes AIU refuse the whole object.
        format!(
            "{}  applicationRefs:\n    - namePattern: \"[app\"\n      images: [{{ alias: x, imageName: ghcr.io/org/x }}]\n    - namePattern: \"cmp\"\n",
            head("three")
        ),
        // Line 57: the first one again.
        format!(
            "{}  applicationRefs:\n    - namePattern: app-1\n      useAnnotations: true\n",
            head("one")
        ),
    ];
    let file = tmp.path().join("updaters.yaml");
    std::fs::write(&file, updaters.join("---\n")).unwrap();
    let unknown = tmp.path().join("unknown.yaml");
    std::fs::write(
        &unknown,
        format!(
            "{}  applicationRefs:\n    - namePattern: x\n      imageList: nginx\n",
            head("four")
        ),
    )
    .unwrap();

    let out = tagsmith(&[
        "check",
        "--argocd",
        apps.to_str().unwrap(),
        "--argocd",
        file.to_str().unwrap(),
        "--argocd",
        unknown.to_str().unwrap(),
    ]);
    let stdout = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    let f = file.display();
    let expect = [
        format!(
            "{f}:12:20: warning: ImageUpdater argocd/one spec.applicationRefs[1].namePattern: Application argocd/app-1 also matches applicationRefs[0], which is as specific: AIU takes the one listed first"
        ),
        format!(
            "{f}:16:9: error: ImageUpdater argocd/one spec.applicationRefs[2].imagesVerification: signature verification is not done by tagsmith"
        ),
        format!(
            "{f}:28:20: error: ImageUpdater argocd/two spec.applicationRefs[0].namePattern: Application argocd/app-1 is also selected by ImageUpdater argocd/one ({f}:10)"
        ),
        format!(
            "{f}:33:24: error: ImageUpdater argocd/two spec.applicationRefs[1].writeBackConfig.gitConfig.pullRequest: pull requests are opened by a tagsmith.yaml target"
        ),
        format!(
            "{f}:40:21: error: ImageUpdater argocd/two spec.applicationRefs[2].images[0].manifestTargets.plugin: Config Management Plugin targets are not written by tagsmith"
        ),
        format!(
            "{f}:44:17: warning: ImageUpdater argocd/two spec.applicationRefs[3].writeBackConfig.method: the argocd method patches the live Application"
        ),
        format!(
            "{f}:53:20: error: ImageUpdater argocd/three spec.applicationRefs[0].namePattern: invalid application name pattern \"[app\": AIU refuses the whole ImageUpdater"
        ),
        format!("{f}:60:9: error: ImageUpdater argocd/one metadata.name: defined more than once"),
        format!(
            "{f}:55:20: error: ImageUpdater argocd/three spec.applicationRefs[1].images: either useAnnotations must be true, or images must list at least one image"
        ),
        format!(
            "{}:9:7: error: ImageUpdater: cannot read this ImageUpdater:",
            unknown.display()
        ),
    ];
    for line in &expect {
        assert!(stdout.contains(line.as_str()), "missing {line}\n{stdout}");
    }
    // Nothing else: the Applications the refs skip are not also reported on their own.
    assert!(stdout.contains("10 diagnostic(s)"), "{stdout}");
}

#[test]
fn convert_prints_the_tagsmith_yaml_an_image_updater_amounts_to() {
    let tmp = tempfile::tempdir().unwrap();
    let apps = tmp.path().join("apps.yaml");
    std::fs::write(&apps, application("api", "", "", "")).unwrap();
    let updater = tmp.path().join("updater.yaml");
    std::fs::write(
        &updater,
        "apiVersion: argocd-image-updater.argoproj.io/v1alpha1\nkind: ImageUpdater\nmetadata:\n  name: api\nspec:\n  applicationRefs:\n    - namePattern: api\n      writeBackConfig:\n        method: git\n        gitConfig:\n          branch: main:image-updates\n          writeBackTarget: helmvalues:values-prod.yaml\n      images:\n        - alias: api\n          imageName: ghcr.io/org/api:^1.2\n          manifestTargets:\n            helm: { name: image.repository, tag: image.tag }\n",
    )
    .unwrap();
    let out = tagsmith(&[
        "convert",
        "argocd",
        apps.to_str().unwrap(),
        updater.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let yaml = String::from_utf8_lossy(&out.stdout);
    assert!(yaml.contains("semver: ^1.2"), "{yaml}");
    assert!(yaml.contains("branch: image-updates"), "{yaml}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Without a namespace the object is taken to be in AIU's, where the Application is.
    assert!(
        stderr.contains(&format!(
            "{}:4:9: warning: ImageUpdater argocd/api metadata.namespace: not set; taken as \"argocd\"",
            updater.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("add marker: apps/api/values-prod.yaml: key image.tag: add `# {\"$imagepolicy\": \"argocd:api-api:tag\"}`"),
        "{stderr}"
    );
    assert!(
        stderr
            .contains("key image.repository: add `# {\"$imagepolicy\": \"argocd:api-api:name\"}`"),
        "{stderr}"
    );
    let converted = tmp.path().join("tagsmith.yaml");
    std::fs::write(&converted, yaml.as_bytes()).unwrap();
    let check = tagsmith(&["check", "-c", converted.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
}

const KUSTOMIZATION: &str = "# web overlay\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\nresources:\n  - deployment.yaml\n\nimages:\n  - name: busybox # unrelated\n    newTag: \"1.36\"\n\ngenerators:\n  - configmap-gen.yaml\nopenapi:\n  path: schema.json\n";

const VALUES: &str = "# api chart values\nimage:\n  repository: REG/org/api   # where from\n  tag: 1.0.0 # bumped by automation\nreplicas: 2\n";

/// The same three Applications configured once with annotations, once by an ImageUpdater,
/// each against its own copy of one repository: `tagsmith once` makes the same change.
#[test]
fn once_with_an_image_updater_makes_the_commit_the_annotations_make() {
    let registry = Registry::start(Auth::None);
    let reg = registry.host.clone();
    let tags = |list: &[&str]| list.iter().map(|t| t.to_string()).collect::<Vec<_>>();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pusher = registry.pusher();
        pusher
            .push_tags("org/web", &tags(&["1.0.0", "1.2.0", "2.0.0"]))
            .await;
        pusher
            .push_tags("org/api", &tags(&["1.0.0", "1.0.3", "1.1.0", "2.0.0"]))
            .await;
    });
    let tmp = tempfile::tempdir().unwrap();
    let values = VALUES.replace("REG", &reg);
    let files = [
        ("apps/web/kustomization.yaml", KUSTOMIZATION),
        ("apps/web/deployment.yaml", "kind: Deployment\n"),
        ("apps/src/kustomization.yaml", "resources: []\n"),
        ("apps/api/values.yaml", values.as_str()),
    ];
    let config = tmp.path().join("tagsmith.yaml");
    std::fs::write(
        &config,
        format!(
            "registries:\n  - host: {reg}\n    insecure: true\nstate: {{ dir: '{}' }}\n",
            tmp.path().join("state").display()
        ),
    )
    .unwrap();
    let app = |name: &str, url: &str, annotations: &str, extra: &str| {
        format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\n  namespace: argocd\n{annotations}spec:\n  source:\n    repoURL: {url}\n    targetRevision: main\n    path: apps/{name}\n{extra}"
        )
    };
    let run = |dir: &str, with_updater: bool| -> (std::path::PathBuf, usize) {
        // The same last two path segments: the same target name in both commit messages.
        let root = tmp.path().join(dir).join("repo");
        std::fs::create_dir_all(&root).unwrap();
        let bare = bare_repo(&root, "manifests", &files);
        let url = format!("file://{}", bare.display());
        let input = tmp.path().join(dir).join("argocd");
        std::fs::create_dir_all(&input).unwrap();
        let none = String::new();
        let (web, src, api) = if with_updater {
            (none.clone(), none.clone(), none)
        } else {
            (
                format!(
                    "  annotations:\n{P}image-list: web={reg}/org/web:~1\n{P}web.kustomize.image-name: nginx\n{P}write-back-method: git\n{P}write-back-target: kustomization\n"
                ),
                format!(
                    "  annotations:\n{P}image-list: src={reg}/org/web\n{P}src.update-strategy: alphabetical\n{P}src.ignore-tags: '2.*'\n{P}write-back-method: git\n"
                ),
                format!(
                    "  annotations:\n{P}image-list: api={reg}/org/api\n{P}api.helm.image-name: image.repository\n{P}api.helm.image-tag: image.tag\n{P}api.allow-tags: regexp:^1\\.\n{P}write-back-method: git\n{P}write-back-target: helmvalues\n"
                ),
            )
        };
        std::fs::write(
            input.join("apps.yaml"),
            [
                app("web", &url, &web, ""),
                app("src", &url, &src, "    kustomize: {}\n"),
                app("api", &url, &api, ""),
            ]
            .join("---\n"),
        )
        .unwrap();
        if with_updater {
            std::fs::write(
                input.join("updater.yaml"),
                format!(
                    "apiVersion: argocd-image-updater.argoproj.io/v1alpha1\nkind: ImageUpdater\nmetadata:\n  name: all\n  namespace: argocd\nspec:\n  writeBackConfig:\n    method: git\n  applicationRefs:\n    - namePattern: web\n      writeBackConfig:\n        gitConfig: {{ writeBackTarget: kustomization }}\n      images:\n        - alias: web\n          imageName: {reg}/org/web:~1\n          manifestTargets:\n            kustomize: {{ name: nginx }}\n    - namePattern: src\n      commonUpdateSettings:\n        updateStrategy: alphabetical\n        ignoreTags: ['2.*']\n      images:\n        - {{ alias: src, imageName: {reg}/org/web }}\n    - namePattern: api\n      writeBackConfig:\n        gitConfig: {{ writeBackTarget: helmvalues }}\n      images:\n        - alias: api\n          imageName: {reg}/org/api\n          commonUpdateSettings: {{ allowTags: 'regexp:^1\\.' }}\n          manifestTargets:\n            helm: {{ name: image.repository, tag: image.tag }}\n"
                ),
            )
            .unwrap();
        }
        let before = count_commits(&bare, "main");
        let out = tagsmith(&[
            "once",
            "-c",
            config.to_str().unwrap(),
            "--argocd",
            input.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        (bare, before)
    };
    let (annotated, before_a) = run("annotations", false);
    let (crd, before_c) = run("imageupdater", true);
    assert_eq!(count_commits(&annotated, "main"), before_a + 1);
    assert_eq!(
        count_commits(&crd, "main"),
        before_c + 1,
        "one commit for all three"
    );
    let change = |bare: &Path| git(bare, &["show", "--format=%B", "main"]);
    assert_eq!(change(&crd), change(&annotated));
    // And the change is AIU's (as tests/integration/argocd_once.rs spells out).
    assert_eq!(
        show(&crd, "main", "apps/web/kustomization.yaml"),
        KUSTOMIZATION.replace(
            "    newTag: \"1.36\"\n",
            &format!("    newTag: \"1.36\"\n  - name: nginx\n    newName: {reg}/org/web\n    newTag: 1.2.0\n")
        )
    );
    assert_eq!(
        show(&crd, "main", "apps/src/.argocd-source-src.yaml"),
        format!("kustomize:\n  images:\n  - {reg}/org/web:1.2.0\n")
    );
    assert_eq!(
        show(&crd, "main", "apps/api/values.yaml"),
        values.replace("tag: 1.0.0 #", "tag: 1.1.0 #")
    );
}
