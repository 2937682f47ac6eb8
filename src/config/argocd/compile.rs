//! Applications -> images, targets and write-backs, as Argo CD Image Updater reads them
//! (`pkg/argocd/annotations.go` for the annotations, `pkg/argocd/update.go` `parseTarget`,
//! `parseKustomizeBase`, `parseDefaultTarget`, `parseGitConfig`, `pkg/argocd/git.go`
//! `getWriteBackBranch`, `pkg/argocd/argocd.go` `getApplicationSource`,
//! registry-scanner `pkg/image/options.go` `ParseUpdateStrategy`/`ParseMatch`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_saphyr::Spanned;

use super::doc::{self, Doc, Filter, Image};
use super::glob;
use super::options;
use super::raw::{self, Application, Source};
use crate::config::flux::{Diagnostic, Severity};
use crate::writeback::{HelmKeys, Kind, WriteBack, WriteImage};

const PREFIX: &str = "argocd-image-updater.argoproj.io/";
const APP_GROUP: &str = "argoproj.io";
/// AIU's controller namespace: an Application there gets `.argocd-source-<app>.yaml`,
/// one elsewhere `.argocd-source-<namespace>_<app>.yaml` (`parseDefaultTarget`).
pub const CONTROLLER_NAMESPACE: &str = "argocd";
/// AIU's default `--interval`.
const AIU_INTERVAL: &str = "2m";
/// `common.DefaultGitCommitMessage`, in tagsmith's placeholders.
const COMMIT_MESSAGE: &str = "build: automatic update of {{target}}\n\n{{changes}}\n";

/// Annotations valid on the Application as a whole.
const APP_KEYS: [&str; 10] = [
    "image-list",
    "write-back-method",
    "write-back-target",
    "git-branch",
    "git-repository",
    "update-strategy",
    "allow-tags",
    "ignore-tags",
    "force-update",
    "pull-secret",
];
/// Annotations valid after `<alias>.`.
const ALIAS_KEYS: [&str; 10] = [
    "update-strategy",
    "allow-tags",
    "ignore-tags",
    "force-update",
    "pull-secret",
    "platforms",
    "helm.image-name",
    "helm.image-tag",
    "helm.image-spec",
    "kustomize.image-name",
];

#[derive(Debug)]
pub struct Located {
    pub file: PathBuf,
    pub app: Application,
}

pub fn read(file: &Path, text: &str, apps: &mut Vec<Located>, out: &mut Vec<Diagnostic>) {
    for doc in crate::config::flux::compile::documents(text) {
        let Ok(Some(head)) = serde_saphyr::from_str::<Option<raw::Head>>(&doc) else {
            continue;
        };
        let (Some(api_version), Some(kind)) = (head.api_version, head.kind) else {
            continue;
        };
        let group = api_version.split('/').next().unwrap_or("");
        if group == "argocd-image-updater.argoproj.io" && kind == "ImageUpdater" {
            out.push(Diagnostic {
                severity: Severity::Error,
                file: file.to_path_buf(),
                line: 0,
                column: 0,
                object: "ImageUpdater".into(),
                field: String::new(),
                message: "ImageUpdater objects are not read yet; put the settings on the Applications as annotations".into(),
            });
            continue;
        }
        if group != APP_GROUP || kind != "Application" {
            continue;
        }
        match serde_saphyr::from_str::<Application>(&doc) {
            Ok(app) => apps.push(Located {
                file: file.to_path_buf(),
                app,
            }),
            Err(e) => out.push(Diagnostic {
                severity: Severity::Error,
                file: file.to_path_buf(),
                line: 0,
                column: 0,
                object: "Application".into(),
                field: String::new(),
                message: format!("cannot read this Application: {e}"),
            }),
        }
    }
}

struct Report<'a> {
    out: &'a mut Vec<Diagnostic>,
    file: &'a Path,
    object: String,
}

impl Report<'_> {
    fn at<T>(
        &mut self,
        severity: Severity,
        at: &Spanned<T>,
        field: &str,
        message: impl Into<String>,
    ) {
        self.out.push(Diagnostic {
            severity,
            file: self.file.to_path_buf(),
            line: at.referenced.line(),
            column: at.referenced.column(),
            object: self.object.clone(),
            field: field.to_string(),
            message: message.into(),
        });
    }
    fn error<T>(&mut self, at: &Spanned<T>, field: &str, message: impl Into<String>) {
        self.at(Severity::Error, at, field, message);
    }
    fn warn<T>(&mut self, at: &Spanned<T>, field: &str, message: impl Into<String>) {
        self.at(Severity::Warning, at, field, message);
    }
}

/// One Application's part of the result.
struct Compiled {
    repo: String,
    branch: String,
    push: Option<String>,
    path: String,
    images: Vec<Image>,
    writeback: WriteBack,
    registries: Vec<Pulled>,
}

/// Registry credentials a `pull-secret` gives, and where it was written.
struct Pulled {
    host: String,
    auth: doc::RegistryAuth,
    file: PathBuf,
    line: u64,
    column: u64,
    field: String,
    object: String,
}

fn annotation_field(key: &str) -> String {
    format!("metadata.annotations[{PREFIX}{key}]")
}

/// `filepath.Join` of repository-relative paths: `.` and `..` resolved, never above the root.
fn join(base: &str, rel: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for p in base.split('/').chain(rel.split('/')) {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    })
}

fn policy_name(s: &str) -> String {
    let mut out: String = s
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    out = out.trim_matches(['-', '.']).to_string();
    out.truncate(63);
    out.trim_end_matches(['-', '.']).to_string()
}

fn compile_app(located: &Located, out: &mut Vec<Diagnostic>) -> Option<Compiled> {
    let app = &located.app;
    let name = &app.metadata.name.value;
    let namespace = app
        .metadata
        .namespace
        .as_ref()
        .map_or(CONTROLLER_NAMESPACE, |n| n.value.as_str())
        .to_string();
    let mut r = Report {
        out,
        file: &located.file,
        object: format!("Application {namespace}/{name}"),
    };
    let ann = &app.metadata.annotations;
    let get = |k: &str| ann.get(&format!("{PREFIX}{k}"));
    let Some(list) = get("image-list") else {
        for (key, value) in ann {
            if key.starts_with(PREFIX) {
                r.warn(value, &format!("metadata.annotations[{key}]"), "no image-list annotation: Argo CD Image Updater does not update this Application, nor does tagsmith");
            }
        }
        return None;
    };
    // Images and their aliases first: they say which annotations are known.
    let mut entries: Vec<(Option<String>, String)> = Vec::new();
    for item in list.value.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        match item.split_once('=') {
            Some((alias, image)) if !image.trim().is_empty() => {
                entries.push((
                    Some(alias.trim().to_string()).filter(|a| !a.is_empty()),
                    image.trim().to_string(),
                ));
            }
            Some(_) => {
                r.error(
                    list,
                    &annotation_field("image-list"),
                    format!("empty image name in {item:?}"),
                );
                return None;
            }
            None => entries.push((None, item.to_string())),
        }
    }
    if entries.is_empty() {
        r.error(
            list,
            &annotation_field("image-list"),
            "the image-list is empty",
        );
        return None;
    }
    let aliases: BTreeSet<&str> = entries.iter().filter_map(|(a, _)| a.as_deref()).collect();
    for (key, value) in ann {
        let Some(short) = key.strip_prefix(PREFIX) else {
            continue;
        };
        let known = APP_KEYS.contains(&short)
            || short
                .split_once('.')
                .is_some_and(|(alias, rest)| aliases.contains(alias) && ALIAS_KEYS.contains(&rest));
        if !known {
            let why = if short.starts_with("git-commit") || short.starts_with("git-write") {
                "commit settings come from the target (-c: commit.author, commit.message)"
            } else {
                "not an annotation tagsmith knows, or its alias is not in image-list"
            };
            r.warn(
                value,
                &format!("metadata.annotations[{key}]"),
                format!("ignored: {why}"),
            );
        }
    }
    // Write-back method.
    match get("write-back-method") {
        None => {
            r.warn(&app.metadata.name, &annotation_field("write-back-method"), "no write-back-method: AIU's default, argocd, patches the live Application, which tagsmith does not do (out of scope); set write-back-method: git. Application skipped");
            return None;
        }
        Some(m) if m.value.trim() == "argocd" => {
            r.warn(m, &annotation_field("write-back-method"), "the argocd method patches the live Application, which tagsmith does not do (out of scope); use git. Application skipped");
            return None;
        }
        Some(m) if m.value.trim() == "git" || m.value.trim() == "git:repocreds" => {}
        Some(m) if m.value.trim().starts_with("git:") => {
            r.warn(m, &annotation_field("write-back-method"), "the credential reference is not resolved: tagsmith uses the target's git auth (from -c, or none)");
        }
        Some(m) => {
            r.error(
                m,
                &annotation_field("write-back-method"),
                format!("unknown write-back method {:?}", m.value),
            );
            return None;
        }
    }
    // Write-back target, which also says which source is meant.
    enum Target {
        Source,
        Kustomization(String),
        HelmValues(String),
    }
    let wbt = get("write-back-target");
    let target_kind = match wbt.map(|t| t.value.trim()) {
        None => Target::Source,
        Some("kustomization") => Target::Kustomization(String::new()),
        Some("helmvalues") => Target::HelmValues(String::new()),
        Some(t) if t.starts_with("kustomization:") => {
            Target::Kustomization(t["kustomization:".len()..].to_string())
        }
        Some(t) if t.starts_with("helmvalues:") => {
            Target::HelmValues(t["helmvalues:".len()..].to_string())
        }
        Some(t) => {
            let wbt = wbt?;
            r.error(wbt, &annotation_field("write-back-target"), format!("unknown write-back-target {t:?}: use kustomization[:<dir>] or helmvalues[:<file>], or leave it out for .argocd-source-<app>.yaml"));
            return None;
        }
    };
    let spec = app.spec.as_ref();
    let sources: Vec<&Spanned<Source>> = match spec {
        Some(s) => match (&s.sources, &s.source) {
            (Some(list), _) if !list.is_empty() => list.iter().collect(),
            (_, Some(one)) => vec![one],
            _ => Vec::new(),
        },
        None => Vec::new(),
    };
    if sources.is_empty() {
        r.error(
            &app.metadata.name,
            "spec.source",
            "the Application has no source",
        );
        return None;
    }
    // getApplicationSource: with several sources, the one of the write-back's type, else the
    // first Helm or Kustomize source, else the first.
    let source: &Spanned<Source> = if sources.len() > 1 {
        let by_kind = match target_kind {
            Target::Kustomization(_) => sources.iter().find(|s| s.value.kustomize.is_some()),
            Target::HelmValues(_) => sources.iter().find(|s| s.value.helm.is_some()),
            Target::Source => None,
        };
        by_kind
            .or_else(|| {
                sources
                    .iter()
                    .find(|s| s.value.helm.is_some() || s.value.kustomize.is_some())
            })
            .copied()
            .unwrap_or(sources[0])
    } else {
        sources[0]
    };
    let src = &source.value;
    let repo_annotation = get("git-repository");
    let repo = match (repo_annotation, &src.repo_url) {
        (Some(a), _) => a.value.trim().to_string(),
        (None, _) if src.chart.is_some() => {
            r.error(
                source,
                "spec.source.repoURL",
                "the source is a Helm chart repository, not Git: set the git-repository annotation",
            );
            return None;
        }
        (None, Some(url)) => url.clone(),
        (None, None) => {
            r.error(source, "spec.source.repoURL", "no repoURL");
            return None;
        }
    };
    // git-branch `base[:write]`; base defaults to the source's targetRevision
    // (getWriteBackBranch: the source whose repoURL is the git-repository annotation).
    let (mut base, mut push) = (String::new(), None);
    if let Some(b) = get("git-branch") {
        let parts: Vec<&str> = b.value.trim().split(':').collect();
        if parts.len() > 2 {
            r.error(
                b,
                &annotation_field("git-branch"),
                format!("invalid format for git-branch: {:?}", b.value),
            );
            return None;
        }
        base = parts[0].to_string();
        if let Some(w) = parts.get(1) {
            if w.contains("{{") {
                r.error(b, &annotation_field("git-branch"), "a templated write branch is not supported: tagsmith keeps one branch per target (name it, or use push.pullRequest in -c)");
                return None;
            }
            push = Some(w.to_string()).filter(|w| !w.is_empty());
        }
    }
    if base.is_empty() {
        let matching = repo_annotation.and_then(|a| {
            sources
                .iter()
                .find(|s| s.value.repo_url.as_deref() == Some(a.value.trim()))
        });
        base = matching
            .map(|s| &s.value)
            .unwrap_or(src)
            .target_revision
            .clone()
            .unwrap_or_default();
    }
    if base.is_empty() || base == "HEAD" {
        r.error(source, "spec.source.targetRevision", "the branch is HEAD or not set: AIU asks the remote for its default branch; tagsmith needs it named: set git-branch");
        return None;
    }
    let path = join(src.path.as_deref().unwrap_or("."), ".").unwrap_or_else(|| ".".into());
    let rel_path = |r: &mut Report<'_>, given: &str, default: &str| -> Option<String> {
        let joined = match given.strip_prefix('/') {
            Some(abs) => join("", abs),
            None => join(&path, if given.is_empty() { default } else { given }),
        };
        if joined.is_none()
            && let Some(w) = wbt
        {
            r.error(
                w,
                &annotation_field("write-back-target"),
                format!("{given:?} leaves the repository"),
            );
        }
        joined
    };
    // Images.
    let mut images = Vec::new();
    let mut registries = Vec::new();
    let mut write_images = Vec::new();
    let mut helm_hint = false;
    let mut kustomize_hint = false;
    for (alias, image) in &entries {
        let setting = |key: &str| -> Option<(&Spanned<String>, String)> {
            alias
                .as_ref()
                .and_then(|a| get(&format!("{a}.{key}")).map(|v| (v, format!("{a}.{key}"))))
                .or_else(|| {
                    APP_KEYS
                        .contains(&key)
                        .then(|| get(key).map(|v| (v, key.to_string())))
                        .flatten()
                })
        };
        // `<alias>.platforms` (image-specific only in AIU); None after reporting a bad one.
        let alias_platforms = |r: &mut Report<'_>| -> Option<Vec<String>> {
            let Some(v) = alias.as_ref().and_then(|a| get(&format!("{a}.platforms"))) else {
                return Some(Vec::new());
            };
            let key = format!("{}.platforms", alias.as_deref().unwrap_or(""));
            options::platforms(&v.value)
                .map_err(|e| r.error(v, &annotation_field(&key), e))
                .ok()
        };
        let id = crate::writeback::scalar_identifier(image);
        if id.digest.is_some() {
            r.warn(
                list,
                &annotation_field("image-list"),
                format!("{image}: a digest in the image-list is ignored"),
            );
        }
        let name = id.full_name();
        let constraint = id.tag.clone();
        let label = alias
            .clone()
            .unwrap_or_else(|| name.rsplit('/').next().unwrap_or(&name).to_string());
        let policy = format!(
            "{}:{}",
            policy_name(&namespace),
            policy_name(&format!("{name}-{label}", name = app.metadata.name.value))
        );
        let Ok(policy_id) = policy.parse::<crate::model::PolicyId>() else {
            r.error(
                list,
                &annotation_field("image-list"),
                format!("{image}: cannot name a policy {policy:?} for it"),
            );
            continue;
        };
        let mut img = Image {
            policy: policy.clone(),
            image: name.clone(),
            interval: Some(AIU_INTERVAL.into()),
            semver: None,
            alphabetical: None,
            numerical: None,
            newest_build: None,
            filter_tags: None,
            exclude: None,
            digest: None,
            suspend: false,
        };
        let strategy = setting("update-strategy");
        let strategy_name = strategy.as_ref().map_or("semver".to_string(), |(v, _)| {
            v.value.trim().to_ascii_lowercase()
        });
        match strategy_name.as_str() {
            "semver" => img.semver = Some(constraint.clone().unwrap_or_else(|| "*".into())),
            "name" | "alphabetical" => {
                if let (Some((v, key)), "name") = (&strategy, strategy_name.as_str()) {
                    r.warn(
                        *v,
                        &annotation_field(key),
                        "\"name\" is AIU's old name for alphabetical",
                    );
                }
                img.alphabetical = Some("asc".into());
            }
            "latest" | "newest-build" => {
                if let (Some((v, key)), "latest") = (&strategy, strategy_name.as_str()) {
                    r.warn(
                        *v,
                        &annotation_field(key),
                        "\"latest\" is AIU's old name for newest-build",
                    );
                }
                let Some(platforms) = alias_platforms(&mut r) else {
                    continue;
                };
                if let Some(w) = options::newest_build(&mut img, constraint.as_deref(), platforms) {
                    r.warn(
                        list,
                        &annotation_field("image-list"),
                        format!("{image}: {w}"),
                    );
                }
            }
            "digest" => {
                let Some(tag) = &constraint else {
                    let (v, key) = strategy.as_ref()?;
                    r.error(*v, &annotation_field(key), format!("{image}: the digest strategy needs the tag to follow in the image-list (e.g. {name}:latest)"));
                    continue;
                };
                img.alphabetical = Some("asc".into());
                img.filter_tags = Some(Filter {
                    pattern: format!("^{}$", regex::escape(tag)),
                    extract: None,
                });
                img.digest = Some("Always".into());
            }
            other => {
                if let Some((v, key)) = &strategy {
                    r.warn(
                        *v,
                        &annotation_field(key),
                        format!("unknown update strategy {other:?}; using semver, as AIU does"),
                    );
                }
                img.semver = Some(constraint.clone().unwrap_or_else(|| "*".into()));
            }
        }
        if let Some((v, key)) = setting("allow-tags") {
            let value = v.value.trim();
            match value.split_once(':') {
                _ if value.eq_ignore_ascii_case("any") => {}
                Some((f, re)) if f.eq_ignore_ascii_case("regexp") => {
                    if regex::Regex::new(re).is_err() {
                        r.error(
                            v,
                            &annotation_field(&key),
                            format!(
                                "{re:?} is not a valid regular expression (AIU then allows no tag)"
                            ),
                        );
                        continue;
                    }
                    if img.filter_tags.is_some() {
                        r.warn(
                            v,
                            &annotation_field(&key),
                            "ignored with the digest strategy: the tag is fixed",
                        );
                    } else {
                        img.filter_tags = Some(Filter {
                            pattern: re.to_string(),
                            extract: None,
                        });
                    }
                }
                _ => {
                    r.error(v, &annotation_field(&key), format!("{value:?}: use regexp:<expression> or any (AIU allows no tag for anything else)"));
                    continue;
                }
            }
        }
        if let Some((v, key)) = setting("ignore-tags") {
            let mut exclude = Vec::new();
            for g in v.value.split(',').map(str::trim).filter(|g| !g.is_empty()) {
                match glob::to_regex(g) {
                    Some(re) => exclude.push(re),
                    None => r.warn(
                        v,
                        &annotation_field(&key),
                        format!("{g:?} is not a valid pattern; it matches nothing, as in AIU"),
                    ),
                }
            }
            if !exclude.is_empty() {
                exclude.push(r"^.*\.sig$".into());
                img.exclude = Some(exclude);
            }
        }
        if let Some((v, key)) = setting("force-update")
            && !matches!(
                v.value.trim(),
                "true"
                    | "false"
                    | "1"
                    | "0"
                    | "t"
                    | "f"
                    | "T"
                    | "F"
                    | "TRUE"
                    | "FALSE"
                    | "True"
                    | "False"
            )
        {
            r.error(
                v,
                &annotation_field(&key),
                format!("{:?} is not a boolean", v.value),
            );
            continue;
        }
        if let Some((v, key)) = setting("pull-secret") {
            match options::pull_secret(&v.value) {
                Ok(secret) => match (options::registry_auth(&secret), name.parse::<crate::model::ImageName>()) {
                    (Some(auth), Ok(parsed)) => registries.push(Pulled {
                        host: parsed.registry().to_string(),
                        auth,
                        file: located.file.clone(),
                        line: v.referenced.line(),
                        column: v.referenced.column(),
                        field: annotation_field(&key),
                        object: r.object.clone(),
                    }),
                    (Some(_), Err(e)) => r.error(v, &annotation_field(&key), format!("{image}: {e}")),
                    (None, _) => r.warn(v, &annotation_field(&key), "a Kubernetes secret is not read outside a cluster: give the registry's credentials in -c (registries[].auth)"),
                },
                Err(e) => {
                    r.error(v, &annotation_field(&key), e);
                    continue;
                }
            }
        }
        if let (Some((v, key)), "semver" | "name" | "alphabetical") =
            (setting("platforms"), strategy_name.as_str())
        {
            r.warn(v, &annotation_field(&key), format!("no effect with the {strategy_name} strategy, as in Argo CD Image Updater (only newest-build and digest read platforms)"));
        } else if let (Some(tag), "digest") = (&constraint, strategy_name.as_str()) {
            let Some(platforms) = alias_platforms(&mut r) else {
                continue;
            };
            if !platforms.is_empty() {
                options::digest_platforms(&mut img, tag, platforms);
            }
        }
        let alias_get = |k: &str| alias.as_ref().and_then(|a| get(&format!("{a}.{k}")));
        let kustomize_name = alias_get("kustomize.image-name").map(|v| v.value.trim().to_string());
        let spec = alias_get("helm.image-spec").map(|v| v.value.trim().to_string());
        let hname = alias_get("helm.image-name").map(|v| v.value.trim().to_string());
        let htag = alias_get("helm.image-tag").map(|v| v.value.trim().to_string());
        if kustomize_name.is_some() && (spec.is_some() || hname.is_some() || htag.is_some()) {
            r.error(
                list,
                &annotation_field("image-list"),
                format!(
                    "both helm and kustomize manifest targets configured for alias {:?}",
                    alias.as_deref().unwrap_or("")
                ),
            );
            continue;
        }
        helm_hint |= spec.is_some() || hname.is_some() || htag.is_some();
        kustomize_hint |= kustomize_name.is_some();
        let helm = match spec {
            Some(s) => HelmKeys::Spec(s),
            None => HelmKeys::NameTag {
                name: hname.unwrap_or_else(|| "image.name".into()),
                tag: htag.unwrap_or_else(|| "image.tag".into()),
            },
        };
        write_images.push(WriteImage {
            policy: policy_id,
            name,
            kustomize_name,
            helm,
        });
        images.push(img);
    }
    if write_images.is_empty() {
        return None;
    }
    let spec_images = src
        .kustomize
        .as_ref()
        .map(|k| k.images.clone())
        .unwrap_or_default();
    let (file, kind) = match target_kind {
        Target::Kustomization(dir) => (
            rel_path(&mut r, &dir, ".")?,
            Kind::Kustomization { spec_images },
        ),
        Target::HelmValues(file) => (rel_path(&mut r, &file, "values.yaml")?, Kind::HelmValues),
        Target::Source => {
            let file_name = if namespace == CONTROLLER_NAMESPACE || namespace.is_empty() {
                format!(".argocd-source-{name}.yaml")
            } else {
                format!(".argocd-source-{namespace}_{name}.yaml")
            };
            let kustomize = src.kustomize.is_some() || (!helm_hint && kustomize_hint);
            let helm = src.helm.is_some() || src.chart.is_some() || helm_hint;
            let kind = match (kustomize, helm) {
                (true, false) => Kind::SourceKustomize { spec_images },
                (false, true) => Kind::SourceHelm,
                _ => {
                    r.error(source, "spec.source", "cannot tell whether this is a Kustomize or a Helm source (Argo CD knows it from the live status): add `kustomize: {}` or `helm: {}` to the source");
                    return None;
                }
            };
            (join(&path, &file_name)?, kind)
        }
    };
    Some(Compiled {
        repo,
        branch: base,
        push,
        path,
        images,
        writeback: WriteBack {
            application: format!("{namespace}/{name}"),
            file: PathBuf::from(file),
            kind,
            images: write_images,
        },
        registries,
    })
}

fn target_name(repo: &str, branch: &str, push: Option<&str>) -> String {
    let repo = repo
        .trim_end_matches('/')
        .trim_end_matches(".git")
        .rsplit(['/', ':'])
        .take(2)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("-");
    let raw = match push {
        Some(p) => format!("argocd-{repo}-{branch}-{p}"),
        None => format!("argocd-{repo}-{branch}"),
    };
    let mut name = policy_name(&raw).replace('.', "-");
    if name.len() > 55 {
        use sha2::Digest as _;
        let hash = sha2::Sha256::digest(raw.as_bytes());
        name.truncate(46);
        name = format!(
            "{}-{:02x}{:02x}{:02x}{:02x}",
            name.trim_end_matches('-'),
            hash[0],
            hash[1],
            hash[2],
            hash[3]
        );
    }
    name
}

pub fn compile(
    apps: &[Located],
    out: &mut Vec<Diagnostic>,
) -> (Doc, BTreeMap<String, Vec<WriteBack>>) {
    let mut doc = Doc::default();
    let mut writebacks: BTreeMap<String, Vec<WriteBack>> = BTreeMap::new();
    let mut seen_policies = BTreeSet::new();
    for located in apps {
        let Some(c) = compile_app(located, out) else {
            continue;
        };
        let name = target_name(&c.repo, &c.branch, c.push.as_deref());
        for image in &c.images {
            if !seen_policies.insert(image.policy.clone()) {
                out.push(Diagnostic {
                    severity: Severity::Error,
                    file: located.file.clone(),
                    line: located.app.metadata.name.referenced.line(),
                    column: located.app.metadata.name.referenced.column(),
                    object: format!("Application {}", c.writeback.application),
                    field: String::new(),
                    message: format!(
                        "policy {} is defined twice (the same Application in two files?)",
                        image.policy
                    ),
                });
            }
        }
        let policies: Vec<String> = c.images.iter().map(|i| i.policy.clone()).collect();
        doc.images.extend(c.images);
        match doc.targets.iter_mut().find(|t| t.name == name) {
            Some(t) => {
                if !t.paths.contains(&c.path) {
                    t.paths.push(c.path.clone());
                }
                t.policies.extend(policies);
            }
            None => doc.targets.push(doc::Target {
                name: name.clone(),
                git: doc::Git {
                    url: c.repo.clone(),
                    branch: c.branch.clone(),
                },
                paths: vec![c.path.clone()],
                policies,
                push: c.push.clone().map(|branch| doc::Push { branch }),
                commit: doc::Commit {
                    message: COMMIT_MESSAGE.into(),
                },
            }),
        }
        writebacks.entry(name).or_default().push(c.writeback);
        for pulled in c.registries {
            match doc.registries.iter().find(|r| r.host == pulled.host) {
                Some(known) if known.auth == pulled.auth => {}
                Some(_) => out.push(Diagnostic {
                    severity: Severity::Error,
                    file: pulled.file,
                    line: pulled.line,
                    column: pulled.column,
                    object: pulled.object,
                    field: pulled.field,
                    message: format!("another pull-secret is given for registry {}: tagsmith has one set of credentials per registry host", pulled.host),
                }),
                None => doc.registries.push(doc::Registry {
                    host: pulled.host,
                    auth: pulled.auth,
                }),
            }
        }
    }
    (doc, writebacks)
}
