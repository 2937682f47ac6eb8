//! Applications with their settings (`settings`: from annotations, or from the ImageUpdaters
//! that select them) -> images, targets and write-backs, as Argo CD Image Updater makes them
//! (`pkg/argocd/update.go` `parseTarget`,
//! `parseKustomizeBase`, `parseDefaultTarget`, `parseGitConfig`, `pkg/argocd/git.go`
//! `getWriteBackBranch`, `pkg/argocd/argocd.go` `getApplicationSource`,
//! registry-scanner `pkg/image/options.go` `ParseUpdateStrategy`/`ParseMatch`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_saphyr::Spanned;

use super::annotations;
use super::crd::{self, Updater};
use super::doc::{self, Doc, Filter, Image};
use super::glob;
use super::options;
use super::raw::{self, Application, Source};
use super::settings::{AppSettings, Common, ImageSettings, Loc, WriteBackSettings};
use crate::config::flux::{Diagnostic, Severity};
use crate::writeback::{HelmKeys, Kind, WriteBack, WriteImage};

const APP_GROUP: &str = "argoproj.io";
const UPDATER_GROUP: &str = "argocd-image-updater.argoproj.io";
/// AIU's controller namespace: an Application there gets `.argocd-source-<app>.yaml`,
/// one elsewhere `.argocd-source-<namespace>_<app>.yaml` (`parseDefaultTarget`).
pub const CONTROLLER_NAMESPACE: &str = "argocd";
/// AIU's default `--interval`.
const AIU_INTERVAL: &str = "2m";
/// `common.DefaultGitCommitMessage`, in tagsmith's placeholders.
const COMMIT_MESSAGE: &str = "build: automatic update of {{target}}\n\n{{changes}}\n";

#[derive(Debug)]
pub struct Located {
    pub file: PathBuf,
    pub app: Application,
}

/// The Applications and ImageUpdaters read so far.
#[derive(Debug, Default)]
pub struct Inputs {
    pub apps: Vec<Located>,
    pub updaters: Vec<Updater>,
}

fn file_error(file: &Path, object: &str, message: String) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        file: file.to_path_buf(),
        line: 0,
        column: 0,
        object: object.into(),
        field: String::new(),
        message,
    }
}

pub fn read(file: &Path, text: &str, inputs: &mut Inputs, out: &mut Vec<Diagnostic>) {
    for doc in crate::config::flux::compile::documents(text) {
        let Ok(Some(head)) = serde_saphyr::from_str::<Option<raw::Head>>(&doc) else {
            continue;
        };
        let (Some(api_version), Some(kind)) = (head.api_version, head.kind) else {
            continue;
        };
        let group = api_version.split('/').next().unwrap_or("");
        if group == UPDATER_GROUP && kind == "ImageUpdater" {
            match serde_saphyr::from_str::<raw::ImageUpdater>(&doc) {
                Ok(object) => inputs.updaters.push(Updater {
                    file: file.to_path_buf(),
                    object,
                }),
                Err(e) => {
                    let mut d = file_error(
                        file,
                        "ImageUpdater",
                        format!("cannot read this ImageUpdater: {}", e.without_snippet()),
                    );
                    if let Some(at) = e.location() {
                        (d.line, d.column) = (at.line(), at.column());
                    }
                    out.push(d);
                }
            }
            continue;
        }
        if group != APP_GROUP || kind != "Application" {
            continue;
        }
        match serde_saphyr::from_str::<Application>(&doc) {
            Ok(app) => inputs.apps.push(Located {
                file: file.to_path_buf(),
                app,
            }),
            Err(e) => out.push(file_error(
                file,
                "Application",
                format!("cannot read this Application: {e}"),
            )),
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
    at: Loc,
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

/// Reports a problem where a setting is written.
fn note(out: &mut Vec<Diagnostic>, severity: Severity, at: &Loc, message: impl Into<String>) {
    out.push(at.diagnostic(severity, message));
}

/// One Application with its settings (from annotations or an ImageUpdater) -> its images,
/// its target's repository and branch, and its write-back.
fn compile_app(
    located: &Located,
    settings: &AppSettings,
    out: &mut Vec<Diagnostic>,
) -> Option<Compiled> {
    let app = &located.app;
    let name = &app.metadata.name.value;
    let namespace = app
        .metadata
        .namespace
        .as_ref()
        .map_or(CONTROLLER_NAMESPACE, |n| n.value.as_str())
        .to_string();
    let wb = &settings.writeback;
    write_back_method(wb, out)?;
    // Write-back target, which also says which source is meant.
    enum Target {
        Source,
        Kustomization(String),
        HelmValues(String),
    }
    let wbt = wb.target.as_ref();
    let target_kind = match wbt.map(|t| t.trimmed()) {
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
            note(
                out,
                Severity::Error,
                &wbt.at,
                format!(
                    "unknown write-back-target {t:?}: use kustomization[:<dir>] or helmvalues[:<file>], or leave it out for .argocd-source-<app>.yaml"
                ),
            );
            return None;
        }
    };
    if let Some(t) = wbt
        && t.value.contains("{{")
    {
        note(
            out,
            Severity::Error,
            &t.at,
            "a template in the write-back target is not resolved: ApplicationSet resolves it before the object is written; give the path",
        );
        return None;
    }
    let mut r = Report {
        out,
        file: &located.file,
        object: format!("Application {namespace}/{name}"),
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
    let repo_setting = wb.repository.as_ref();
    let repo = match (repo_setting, &src.repo_url) {
        (Some(a), _) => a.trimmed().to_string(),
        (None, _) if src.chart.is_some() => {
            r.error(
                source,
                "spec.source.repoURL",
                format!(
                    "the source is a Helm chart repository, not Git: set {}",
                    wb.keys.repository()
                ),
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
    if let Some(b) = &wb.branch {
        let parts: Vec<&str> = b.trimmed().split(':').collect();
        if parts.len() > 2 {
            note(
                r.out,
                Severity::Error,
                &b.at,
                format!("invalid format for git-branch: {:?}", b.value),
            );
            return None;
        }
        base = parts[0].to_string();
        if let Some(w) = parts.get(1) {
            if w.contains("{{") {
                note(
                    r.out,
                    Severity::Error,
                    &b.at,
                    "a templated write branch is not supported: tagsmith keeps one branch per target (name it, or use push.pullRequest in -c)",
                );
                return None;
            }
            push = Some(w.to_string()).filter(|w| !w.is_empty());
        }
    }
    if base.is_empty() {
        let matching = repo_setting.and_then(|a| {
            sources
                .iter()
                .find(|s| s.value.repo_url.as_deref() == Some(a.trimmed()))
        });
        base = matching
            .map(|s| &s.value)
            .unwrap_or(src)
            .target_revision
            .clone()
            .unwrap_or_default();
    }
    if base.is_empty() || base == "HEAD" {
        r.error(source, "spec.source.targetRevision", format!("the branch is HEAD or not set: AIU asks the remote for its default branch; tagsmith needs it named: set {}", wb.keys.branch()));
        return None;
    }
    let out = r.out;
    let path = join(src.path.as_deref().unwrap_or("."), ".").unwrap_or_else(|| ".".into());
    let rel_path = |out: &mut Vec<Diagnostic>, given: &str, default: &str| -> Option<String> {
        let joined = match given.strip_prefix('/') {
            Some(abs) => join("", abs),
            None => join(&path, if given.is_empty() { default } else { given }),
        };
        if joined.is_none()
            && let Some(w) = wbt
        {
            note(
                out,
                Severity::Error,
                &w.at,
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
    for setting in &settings.images {
        let Some((img, write, pulled)) = image(&namespace, name, setting, out) else {
            continue;
        };
        registries.extend(pulled);
        helm_hint |= matches!(write.helm, HelmKeys::Spec(_))
            || setting.helm_name.is_some()
            || setting.helm_tag.is_some();
        kustomize_hint |= write.kustomize_name.is_some();
        write_images.push(write);
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
            rel_path(out, &dir, ".")?,
            Kind::Kustomization { spec_images },
        ),
        Target::HelmValues(file) => (rel_path(out, &file, "values.yaml")?, Kind::HelmValues),
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
                    let mut r = Report {
                        out,
                        file: &located.file,
                        object: format!("Application {namespace}/{name}"),
                    };
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

/// `None` when tagsmith does not write this Application back: AIU's `argocd` method (its
/// default) patches the live object, which is out of scope.
fn write_back_method(wb: &WriteBackSettings, out: &mut Vec<Diagnostic>) -> Option<()> {
    match &wb.method {
        None => {
            let key = wb.keys.method();
            note(
                out,
                Severity::Warning,
                &wb.method_unset,
                format!(
                    "no {key}: AIU's default, argocd, patches the live Application, which tagsmith does not do (out of scope); set {key}: git. Application skipped"
                ),
            );
            None
        }
        Some(m) if m.trimmed() == "argocd" => {
            note(
                out,
                Severity::Warning,
                &m.at,
                "the argocd method patches the live Application, which tagsmith does not do (out of scope); use git. Application skipped",
            );
            None
        }
        Some(m) if m.trimmed() == "git" || m.trimmed() == "git:repocreds" => Some(()),
        Some(m) if m.trimmed().starts_with("git:") => {
            note(
                out,
                Severity::Warning,
                &m.at,
                "the credential reference is not resolved: tagsmith uses the target's git auth (from -c, or none)",
            );
            Some(())
        }
        Some(m) => {
            note(
                out,
                Severity::Error,
                &m.at,
                format!("unknown write-back method {:?}", m.value),
            );
            None
        }
    }
}

/// One image -> its policy and how its write-back names it; `None` (with the reason in
/// `out`) when it cannot be updated as AIU would.
fn image(
    namespace: &str,
    app: &str,
    setting: &ImageSettings,
    out: &mut Vec<Diagnostic>,
) -> Option<(Image, WriteImage, Option<Pulled>)> {
    let image = &setting.image;
    let alias = &setting.alias;
    let id = crate::writeback::scalar_identifier(image);
    if id.digest.is_some() {
        note(
            out,
            Severity::Warning,
            &setting.at,
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
        policy_name(namespace),
        policy_name(&format!("{app}-{label}"))
    );
    let Ok(policy_id) = policy.parse::<crate::model::PolicyId>() else {
        note(
            out,
            Severity::Error,
            &setting.at,
            format!("{image}: cannot name a policy {policy:?} for it"),
        );
        return None;
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
    let common = &setting.common;
    strategy(
        &mut img,
        image,
        &name,
        constraint.as_deref(),
        common,
        &setting.at,
        out,
    )?;
    allow_tags(&mut img, common, out)?;
    ignore_tags(&mut img, common, out);
    force_update(common, out)?;
    let pulled = pull_secret(&name, common, out)?;
    let kustomize_name = setting
        .kustomize_name
        .as_ref()
        .map(|v| v.trimmed().to_string());
    let spec = setting.helm_spec.as_ref().map(|v| v.trimmed().to_string());
    let hname = setting.helm_name.as_ref().map(|v| v.trimmed().to_string());
    let htag = setting.helm_tag.as_ref().map(|v| v.trimmed().to_string());
    if kustomize_name.is_some() && (spec.is_some() || hname.is_some() || htag.is_some()) {
        note(
            out,
            Severity::Error,
            &setting.at,
            format!(
                "both helm and kustomize manifest targets configured for alias {:?}",
                alias.as_deref().unwrap_or("")
            ),
        );
        return None;
    }
    let helm = match spec {
        Some(s) => HelmKeys::Spec(s),
        None => HelmKeys::NameTag {
            name: hname.unwrap_or_else(|| "image.name".into()),
            tag: htag.unwrap_or_else(|| "image.tag".into()),
        },
    };
    Some((
        img,
        WriteImage {
            policy: policy_id,
            name,
            kustomize_name,
            helm,
        },
        pulled,
    ))
}

/// `update-strategy` (registry-scanner `ParseUpdateStrategy`) -> the policy's ordering.
fn strategy(
    img: &mut Image,
    image: &str,
    name: &str,
    constraint: Option<&str>,
    common: &Common,
    at: &Loc,
    out: &mut Vec<Diagnostic>,
) -> Option<()> {
    let strategy = common.update_strategy.as_ref();
    let strategy_name = strategy.map_or("semver".to_string(), |v| v.trimmed().to_ascii_lowercase());
    match strategy_name.as_str() {
        "semver" => img.semver = Some(constraint.unwrap_or("*").to_string()),
        "name" | "alphabetical" => {
            if let (Some(v), "name") = (strategy, strategy_name.as_str()) {
                note(
                    out,
                    Severity::Warning,
                    &v.at,
                    "\"name\" is AIU's old name for alphabetical",
                );
            }
            img.alphabetical = Some("asc".into());
        }
        "latest" | "newest-build" => {
            if let (Some(v), "latest") = (strategy, strategy_name.as_str()) {
                note(
                    out,
                    Severity::Warning,
                    &v.at,
                    "\"latest\" is AIU's old name for newest-build",
                );
            }
            let platforms = platforms(common, out)?;
            if let Some(w) = options::newest_build(img, constraint, platforms) {
                note(out, Severity::Warning, at, format!("{image}: {w}"));
            }
        }
        "digest" => {
            let Some(tag) = constraint else {
                let v = strategy?;
                note(
                    out,
                    Severity::Error,
                    &v.at,
                    format!(
                        "{image}: the digest strategy needs the tag to follow in the image-list (e.g. {name}:latest)"
                    ),
                );
                return None;
            };
            img.alphabetical = Some("asc".into());
            img.filter_tags = Some(Filter {
                pattern: format!("^{}$", regex::escape(tag)),
                extract: None,
            });
            img.digest = Some("Always".into());
            let platforms = platforms(common, out)?;
            if !platforms.is_empty() {
                options::digest_platforms(img, tag, platforms);
            }
        }
        other => {
            if let Some(v) = strategy {
                note(
                    out,
                    Severity::Warning,
                    &v.at,
                    format!("unknown update strategy {other:?}; using semver, as AIU does"),
                );
            }
            img.semver = Some(constraint.unwrap_or("*").to_string());
        }
    }
    if let (Some(v), "semver" | "name" | "alphabetical") =
        (&common.platforms, strategy_name.as_str())
    {
        note(
            out,
            Severity::Warning,
            &v.at,
            format!(
                "no effect with the {strategy_name} strategy, as in Argo CD Image Updater (only newest-build and digest read platforms)"
            ),
        );
    }
    Some(())
}

/// `allow-tags` (registry-scanner `ParseMatch`): `regexp:<re>` or `any`.
fn allow_tags(img: &mut Image, common: &Common, out: &mut Vec<Diagnostic>) -> Option<()> {
    let Some(v) = &common.allow_tags else {
        return Some(());
    };
    let value = v.trimmed();
    match value.split_once(':') {
        _ if value.eq_ignore_ascii_case("any") => {}
        Some((f, re)) if f.eq_ignore_ascii_case("regexp") => {
            if regex::Regex::new(re).is_err() {
                note(
                    out,
                    Severity::Error,
                    &v.at,
                    format!("{re:?} is not a valid regular expression (AIU then allows no tag)"),
                );
                return None;
            }
            if img.filter_tags.is_some() {
                note(
                    out,
                    Severity::Warning,
                    &v.at,
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
            note(
                out,
                Severity::Error,
                &v.at,
                format!(
                    "{value:?}: use regexp:<expression> or any (AIU allows no tag for anything else)"
                ),
            );
            return None;
        }
    }
    Some(())
}

/// `ignore-tags` globs -> `exclude`, with AIU's signature tags kept out as well.
fn ignore_tags(img: &mut Image, common: &Common, out: &mut Vec<Diagnostic>) {
    let Some(v) = &common.ignore_tags else {
        return;
    };
    let mut exclude = Vec::new();
    for g in v.value.iter().map(|g| g.trim()).filter(|g| !g.is_empty()) {
        match glob::to_regex(g) {
            Some(re) => exclude.push(re),
            None => note(
                out,
                Severity::Warning,
                &v.at,
                format!("{g:?} is not a valid pattern; it matches nothing, as in AIU"),
            ),
        }
    }
    if !exclude.is_empty() {
        exclude.push(r"^.*\.sig$".into());
        img.exclude = Some(exclude);
    }
}

/// `force-update` must be a Go `strconv.ParseBool` boolean; tagsmith always writes.
fn force_update(common: &Common, out: &mut Vec<Diagnostic>) -> Option<()> {
    let Some(v) = &common.force_update else {
        return Some(());
    };
    if matches!(
        v.trimmed(),
        "true" | "false" | "1" | "0" | "t" | "f" | "T" | "F" | "TRUE" | "FALSE" | "True" | "False"
    ) {
        Some(())
    } else {
        note(
            out,
            Severity::Error,
            &v.at,
            format!("{:?} is not a boolean", v.value),
        );
        None
    }
}

/// `pull-secret` (registry-scanner `ParseCredentialSource`): `env:` and `ext:` become the
/// credentials of the image's registry host; Kubernetes secrets are not read here.
fn pull_secret(name: &str, common: &Common, out: &mut Vec<Diagnostic>) -> Option<Option<Pulled>> {
    let Some(v) = &common.pull_secret else {
        return Some(None);
    };
    let secret = match options::pull_secret(&v.value) {
        Ok(s) => s,
        Err(e) => {
            note(out, Severity::Error, &v.at, e);
            return None;
        }
    };
    let Some(auth) = options::registry_auth(&secret) else {
        note(
            out,
            Severity::Warning,
            &v.at,
            "a Kubernetes secret is not read outside a cluster: give the registry's credentials in -c (registries[].auth)",
        );
        return Some(None);
    };
    match name.parse::<crate::model::ImageName>() {
        Ok(parsed) => Some(Some(Pulled {
            host: parsed.registry().to_string(),
            auth,
            at: v.at.clone(),
        })),
        Err(e) => {
            note(out, Severity::Error, &v.at, format!("{name}: {e}"));
            None
        }
    }
}

/// `platforms` for newest-build and digest; `None` after reporting one AIU cannot parse.
fn platforms(common: &Common, out: &mut Vec<Diagnostic>) -> Option<Vec<String>> {
    let Some(v) = &common.platforms else {
        return Some(Vec::new());
    };
    options::platforms(&v.value)
        .map_err(|e| note(out, Severity::Error, &v.at, e))
        .ok()
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

/// The Applications' settings: from their annotations (AIU before 1.0), or, when any
/// ImageUpdater is read, from the ImageUpdaters that select them (AIU 1.x).
pub fn compile(
    inputs: &Inputs,
    out: &mut Vec<Diagnostic>,
) -> (Doc, BTreeMap<String, Vec<WriteBack>>) {
    let selected: Vec<(usize, AppSettings)> = if inputs.updaters.is_empty() {
        inputs
            .apps
            .iter()
            .enumerate()
            .filter_map(|(i, a)| annotations::settings(a, out).map(|s| (i, s)))
            .collect()
    } else {
        crd::settings(&inputs.updaters, &inputs.apps, out)
    };
    let mut doc = Doc::default();
    let mut writebacks: BTreeMap<String, Vec<WriteBack>> = BTreeMap::new();
    let mut seen_policies = BTreeSet::new();
    for (index, settings) in &selected {
        let located = &inputs.apps[*index];
        let Some(c) = compile_app(located, settings, out) else {
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
                Some(_) => out.push(pulled.at.diagnostic(
                    Severity::Error,
                    format!(
                        "another pull-secret is given for registry {}: tagsmith has one set of credentials per registry host",
                        pulled.host
                    ),
                )),
                None => doc.registries.push(doc::Registry {
                    host: pulled.host,
                    auth: pulled.auth,
                }),
            }
        }
    }
    (doc, writebacks)
}
