//! How `--argocd` reads Argo CD Image Updater's annotations into images and targets, seen
//! through `tagsmith check --argocd --output json`. Expected values follow AIU's code:
//! registry-scanner pkg/image/options.go (`ParseUpdateStrategy`, `ParseMatch`),
//! pkg/image/version.go (semver constraint from the image-list, `*` without one; digest
//! strategy keeps only the constraint tag), pkg/argocd/annotations.go (alias settings over
//! application-wide ones), pkg/argocd/update.go (`parseGitConfig`: `base:target` branches),
//! pkg/argocd/argocd.go (`getApplicationSource` for multi-source Applications).

#![allow(clippy::unwrap_used)]

use std::process::Command;

fn model(yaml: &str) -> serde_json::Value {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("apps.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tagsmith"))
        .args([
            "check",
            "--argocd",
            file.to_str().unwrap(),
            "--output",
            "json",
        ])
        .env("HOME", "/nonexistent")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    v["argocd"].clone()
}

const P: &str = "    argocd-image-updater.argoproj.io/";

fn app(annotations: &str, spec: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: shop\n  annotations:\n{annotations}{P}write-back-method: git\nspec:\n{spec}"
    )
}

const SOURCE: &str = "  source:\n    repoURL: https://git.example/shop.git\n    targetRevision: main\n    path: deploy\n    kustomize: {}\n";

#[test]
fn each_strategy_maps_onto_a_policy() {
    let m = model(&app(
        &format!(
            "{P}image-list: a=ghcr.io/org/a:~1.26, b=ghcr.io/org/b, c=ghcr.io/org/c:latest, d=ghcr.io/org/d\n\
             {P}update-strategy: alphabetical\n\
             {P}a.update-strategy: semver\n\
             {P}c.update-strategy: digest\n\
             {P}d.update-strategy: semver\n\
             {P}d.allow-tags: 'regexp:^v[0-9]'\n\
             {P}d.ignore-tags: '*-rc*, v0.*'\n"
        ),
        SOURCE,
    ));
    assert_eq!(m["valid"], true, "{m}");
    let images = m["model"]["images"].as_array().unwrap();
    let by = |p: &str| images.iter().find(|i| i["policy"] == p).unwrap().clone();
    // An alias's own strategy wins; the constraint is the image-list tag.
    assert_eq!(by("argocd:shop-a")["semver"], "~1.26");
    // The application-wide strategy for an alias without its own.
    assert_eq!(by("argocd:shop-b")["alphabetical"], "asc");
    // digest: the constraint tag only, its digest pinned.
    let c = by("argocd:shop-c");
    assert_eq!(c["filterTags"]["pattern"], "^latest$");
    assert_eq!(c["digest"], "Always");
    // semver without a constraint is `*` (Masterminds: no prereleases); allow-tags regexp is
    // the filter, ignore-tags globs are excludes (tagsmith's .sig exclusion kept).
    let d = by("argocd:shop-d");
    assert_eq!(d["semver"], "*");
    assert_eq!(d["filterTags"]["pattern"], "^v[0-9]");
    assert_eq!(
        d["exclude"],
        serde_json::json!(["^[^/]*\\-rc[^/]*$", "^v0\\.[^/]*$", "^.*\\.sig$"])
    );
    assert_eq!(d["interval"], "2m", "AIU's default interval");
    let target = &m["model"]["targets"][0];
    assert_eq!(target["git"]["url"], "https://git.example/shop.git");
    assert_eq!(target["git"]["branch"], "main");
    assert_eq!(target["paths"], serde_json::json!(["deploy"]));
    assert_eq!(
        m["writebacks"][0]["file"], "deploy/.argocd-source-shop.yaml",
        "{m}"
    );
}

#[test]
fn git_branch_and_repository_annotations_and_multi_source_applications() {
    let spec = "  sources:\n    - repoURL: https://charts.example\n      chart: shop\n      targetRevision: 1.2.3\n      helm:\n        valueFiles: [$values/values.yaml]\n    - repoURL: https://git.example/values.git\n      targetRevision: release\n      ref: values\n";
    let m = model(&app(
        &format!(
            "{P}image-list: ghcr.io/org/shop\n{P}git-repository: https://git.example/values.git\n{P}git-branch: ':image-updates'\n{P}write-back-target: 'helmvalues:/shop/values.yaml'\n"
        ),
        spec,
    ));
    assert_eq!(m["valid"], true, "{m}");
    let target = &m["model"]["targets"][0];
    // The write branch after `:`; the base from the source whose repoURL is git-repository.
    assert_eq!(target["git"]["url"], "https://git.example/values.git");
    assert_eq!(target["git"]["branch"], "release");
    assert_eq!(target["push"]["branch"], "image-updates");
    // An absolute helmvalues path is relative to the repository root.
    assert_eq!(m["writebacks"][0]["file"], "shop/values.yaml");
    assert_eq!(m["writebacks"][0]["kind"], "helmvalues");
}

#[test]
fn kustomization_paths_resolve_against_the_source_path() {
    let spec = "  source:\n    repoURL: https://git.example/shop.git\n    targetRevision: main\n    path: config/overlays/foo\n";
    let m = model(&app(
        &format!(
            "{P}image-list: ghcr.io/org/shop\n{P}write-back-target: 'kustomization:../../base'\n"
        ),
        spec,
    ));
    // docs/basics/update-methods.md: "this would update the kustomization in config/base".
    assert_eq!(m["writebacks"][0]["file"], "config/base", "{m}");
    assert_eq!(m["writebacks"][0]["kind"], "kustomization");
}

#[test]
fn problems_are_located_errors() {
    let m = model(&app(
        &format!(
            "{P}image-list: ghcr.io/org/shop\n{P}update-strategy: digest\n{P}git-branch: a:b:c\n"
        ),
        SOURCE,
    ));
    assert_eq!(m["valid"], false);
    let d = &m["diagnostics"][0];
    assert_eq!(d["severity"], "error");
    assert_eq!(d["line"], 8, "{d}");
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .contains("invalid format for git-branch"),
        "{d}"
    );
    let m = model(&app(
        &format!("{P}image-list: ghcr.io/org/shop\n"),
        "  source:\n    repoURL: https://git.example/shop.git\n    targetRevision: HEAD\n    kustomize: {}\n",
    ));
    assert!(
        m["diagnostics"][0]["message"]
            .as_str()
            .unwrap()
            .contains("set git-branch"),
        "{m}"
    );
}

/// newest-build and `platforms` (registry-scanner pkg/image/options.go `ParseUpdateStrategy`:
/// `latest` is newest-build's old name; AIU docs/configuration/images.md "Image platforms":
/// platforms only have an effect with newest-build and digest).
#[test]
fn newest_build_and_platforms_map_as_aiu_reads_them() {
    let m = model(&app(
        &format!(
            "{P}image-list: a=ghcr.io/org/a, b=ghcr.io/org/b:stable, c=ghcr.io/org/c\n\
             {P}a.update-strategy: newest-build\n\
             {P}a.platforms: 'linux/arm64, linux/amd64'\n\
             {P}b.update-strategy: digest\n\
             {P}b.platforms: linux/arm/v7\n\
             {P}c.platforms: linux/arm64\n"
        ),
        SOURCE,
    ));
    assert_eq!(m["valid"], true, "{m}");
    let images = m["model"]["images"].as_array().unwrap();
    let by = |p: &str| images.iter().find(|i| i["policy"] == p).unwrap().clone();
    let a = by("argocd:shop-a");
    assert_eq!(
        a["newestBuild"]["platforms"],
        serde_json::json!(["linux/arm64", "linux/amd64"])
    );
    assert!(a.get("semver").is_none(), "{a}");
    // digest with platforms: the one tag, counted only with an image for a wanted platform.
    let b = by("argocd:shop-b");
    assert_eq!(
        b["newestBuild"]["platforms"],
        serde_json::json!(["linux/arm/v7"])
    );
    assert_eq!(b["filterTags"]["pattern"], "^stable$");
    assert_eq!(b["digest"], "Always");
    assert!(b.get("alphabetical").is_none(), "{b}");
    // semver ignores platforms: a located warning, the policy as without it.
    let c = by("argocd:shop-c");
    assert_eq!(c["semver"], "*");
    let d = &m["diagnostics"][0];
    assert_eq!(d["severity"], "warning", "{m}");
    assert_eq!(d["line"], 11, "{d}");
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .contains("no effect with the semver strategy"),
        "{d}"
    );
}
