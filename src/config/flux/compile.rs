//! Flux objects -> the `tagsmith.yaml` they amount to. Each object's fields are checked where
//! they are written; what tagsmith cannot honour becomes a diagnostic naming the file, line,
//! object and field, and the object (or just the field) is left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_saphyr::Spanned;

use super::doc::{self, Doc};
use super::raw::{self, Object};
use super::secrets::Secrets;
use super::{Diagnostic, Options, Severity, selector};
use crate::config::duration;
use crate::model::{ImageName, PolicyId};
use crate::policy::{FilterSpec, Order, Policy, PolicySpec, RuleSpec};

/// Flux's commit message when an automation gives none (image-automation-controller
/// internal/source/source.go `defaultMessageTemplate`).
pub const FLUX_DEFAULT_MESSAGE: &str = "Update from image update automation";
/// source-controller api/v1 `GitRepositoryRef`: "defaults to 'master' if no other field is defined".
const FLUX_DEFAULT_BRANCH: &str = "master";
const DEFAULT_NAMESPACE: &str = "default";

const IMAGE_GROUP: &str = "image.toolkit.fluxcd.io";
const SOURCE_GROUP: &str = "source.toolkit.fluxcd.io";
const NOTIFICATION_GROUP: &str = "notification.toolkit.fluxcd.io";

/// One object and where it was read.
#[derive(Debug)]
pub struct Located<S> {
    pub file: PathBuf,
    pub namespace: String,
    pub name: String,
    pub object: Object<S>,
}

impl<S> Located<S> {
    fn label(&self) -> String {
        format!(
            "{} {}/{}",
            self.object.kind.value, self.namespace, self.name
        )
    }
}

#[derive(Debug, Default)]
pub struct Objects {
    pub repositories: Vec<Located<raw::ImageRepositorySpec>>,
    pub policies: Vec<Located<raw::ImagePolicySpec>>,
    pub automations: Vec<Located<raw::ImageUpdateAutomationSpec>>,
    pub git_repositories: Vec<Located<raw::GitRepositorySpec>>,
    pub receivers: Vec<Located<raw::ReceiverSpec>>,
    seen: BTreeSet<(String, String, String)>,
}

/// Collects diagnostics about one object.
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

    fn ignored(&mut self, at: &raw::Any, field: &str, why: &str) {
        if let Some(at) = at {
            self.warn(
                at,
                field,
                format!("not supported by tagsmith; ignored ({why})"),
            );
        }
    }
}

fn report<'a, S>(out: &'a mut Vec<Diagnostic>, o: &'a Located<S>) -> Report<'a> {
    Report {
        out,
        file: &o.file,
        object: o.label(),
    }
}

/// Splits a YAML stream at `---` lines. Each document keeps its line numbers: the lines of
/// the others are blanked.
fn documents(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut starts = vec![0];
    for (i, line) in lines.iter().enumerate() {
        let l = line.trim_end_matches(['\n', '\r']);
        if (l == "---" || l.starts_with("--- ") || l.starts_with("---\t")) && i > 0 {
            starts.push(i);
        }
    }
    starts.push(lines.len());
    starts
        .windows(2)
        .map(|w| {
            let mut doc = "\n".repeat(w[0]);
            for line in &lines[w[0]..w[1]] {
                let l = line.trim_end_matches(['\n', '\r']);
                if l == "---" || l.starts_with("--- ") || l.starts_with("---\t") {
                    doc.push_str(&" ".repeat(3));
                    doc.push_str(&line[3..]);
                } else if l == "..." {
                    doc.push('\n');
                } else {
                    doc.push_str(line);
                }
            }
            doc
        })
        .collect()
}

impl Objects {
    pub fn is_empty(&self) -> bool {
        self.repositories.is_empty()
            && self.policies.is_empty()
            && self.automations.is_empty()
            && self.git_repositories.is_empty()
            && self.receivers.is_empty()
    }

    /// Reads the Flux objects of one file; other documents are skipped.
    pub fn read(&mut self, file: &Path, text: &str, out: &mut Vec<Diagnostic>) {
        for doc in documents(text) {
            let Ok(Some(head)) = serde_saphyr::from_str::<Option<raw::Head>>(&doc) else {
                if doc.contains("toolkit.fluxcd.io") {
                    out.push(file_diagnostic(
                        file,
                        "cannot read this document as YAML; Flux objects in it are not seen",
                    ));
                }
                continue;
            };
            let (Some(api_version), Some(kind)) = (head.api_version, head.kind) else {
                continue;
            };
            let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
            let image_version = ["v1beta2", "v1"].contains(&version);
            match (group, kind.as_str()) {
                (IMAGE_GROUP, "ImageRepository" | "ImagePolicy" | "ImageUpdateAutomation")
                    if !image_version =>
                {
                    out.push(file_diagnostic(file, format!("{kind} {api_version} is not supported: use {IMAGE_GROUP}/v1 (or v1beta2)")));
                }
                (IMAGE_GROUP, "ImageRepository") => {
                    push(&mut self.repositories, &mut self.seen, file, &doc, out)
                }
                (IMAGE_GROUP, "ImagePolicy") => {
                    push(&mut self.policies, &mut self.seen, file, &doc, out)
                }
                (IMAGE_GROUP, "ImageUpdateAutomation") => {
                    push(&mut self.automations, &mut self.seen, file, &doc, out)
                }
                (SOURCE_GROUP, "GitRepository") if version != "v1" => out.push(file_diagnostic(
                    file,
                    format!("GitRepository {api_version} is not supported: use {SOURCE_GROUP}/v1"),
                )),
                (SOURCE_GROUP, "GitRepository") => {
                    push(&mut self.git_repositories, &mut self.seen, file, &doc, out)
                }
                (NOTIFICATION_GROUP, "Receiver") if version != "v1" => out.push(file_diagnostic(
                    file,
                    format!("Receiver {api_version} is not supported: use {NOTIFICATION_GROUP}/v1"),
                )),
                (NOTIFICATION_GROUP, "Receiver") => {
                    push(&mut self.receivers, &mut self.seen, file, &doc, out)
                }
                _ => {}
            }
        }
    }
}

fn file_diagnostic(file: &Path, message: impl Into<String>) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        file: file.to_path_buf(),
        line: 0,
        column: 0,
        object: String::new(),
        field: String::new(),
        message: message.into(),
    }
}

fn push<S: DeserializeOwned>(
    list: &mut Vec<Located<S>>,
    seen: &mut BTreeSet<(String, String, String)>,
    file: &Path,
    doc: &str,
    out: &mut Vec<Diagnostic>,
) {
    let options = serde_saphyr::options! { strict_booleans: true };
    let object: Object<S> = match serde_saphyr::from_str_with_options(doc, options) {
        Ok(o) => o,
        Err(e) => {
            out.push(file_diagnostic(file, e.to_string()));
            return;
        }
    };
    let name = object.metadata.name.value.clone();
    let namespace = match &object.metadata.namespace {
        Some(ns) => ns.value.clone(),
        None => {
            out.push(Diagnostic {
                severity: Severity::Warning,
                file: file.to_path_buf(),
                line: object.metadata.name.referenced.line(),
                column: object.metadata.name.referenced.column(),
                object: format!("{} {name}", object.kind.value),
                field: "metadata.namespace".into(),
                message: format!("not set; taken as {DEFAULT_NAMESPACE:?}, as kubectl would"),
            });
            DEFAULT_NAMESPACE.to_string()
        }
    };
    let located = Located {
        file: file.to_path_buf(),
        namespace,
        name,
        object,
    };
    let key = (
        located.object.kind.value.clone(),
        located.namespace.clone(),
        located.name.clone(),
    );
    if !seen.insert(key) {
        let at = &located.object.metadata.name;
        report(out, &located).error(at, "metadata.name", "defined more than once");
        return;
    }
    list.push(located);
}

fn find<'a, S>(list: &'a [Located<S>], namespace: &str, name: &str) -> Option<&'a Located<S>> {
    list.iter()
        .find(|o| o.namespace == namespace && o.name == name)
}

fn is_true(b: &Option<Spanned<bool>>) -> Option<&Spanned<bool>> {
    b.as_ref().filter(|b| b.value)
}

/// A tagsmith name (lower-case letters, digits, '-') for a namespaced Flux object.
fn tagsmith_name(namespace: &str, name: &str) -> Result<String, String> {
    let joined = format!("{namespace}-{name}").replace('.', "-");
    let ok = joined.len() <= 63
        && !joined.starts_with('-')
        && joined
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(joined)
    } else {
        Err(format!(
            "{joined:?} is not usable as a tagsmith name (lower-case letters, digits and '-', at most 63)"
        ))
    }
}

fn path_text(p: &Path) -> String {
    p.display().to_string()
}

/// A Go duration tagsmith reads the same; `None` and a diagnostic otherwise.
fn interval(r: &mut Report<'_>, at: &Spanned<String>, field: &str) -> Option<String> {
    match duration::parse(&at.value) {
        Ok(d) if d >= std::time::Duration::from_secs(1) => Some(at.value.clone()),
        Ok(_) => {
            r.error(at, field, "must be at least 1s");
            None
        }
        Err(e) => {
            r.error(at, field, e);
            None
        }
    }
}

pub fn compile(objects: &Objects, options: &Options, out: &mut Vec<Diagnostic>) -> Doc {
    let secrets = Secrets::new(options.secrets_dir.as_deref());
    let mut doc = Doc::default();
    let mut registries: BTreeMap<String, (doc::Registry, String)> = BTreeMap::new();
    let mut compiled: BTreeMap<(String, String), &Located<raw::ImagePolicySpec>> = BTreeMap::new();
    let mut usable_repositories = BTreeSet::new();
    for repo in &objects.repositories {
        if repository(repo, &secrets, &mut registries, out) {
            usable_repositories.insert((repo.namespace.clone(), repo.name.clone()));
        }
    }
    for policy in &objects.policies {
        if let Some(image) = image(policy, objects, &usable_repositories, out) {
            compiled.insert((policy.namespace.clone(), policy.name.clone()), policy);
            doc.images.push(image);
        }
    }
    doc.images.sort_by(|a, b| a.policy.cmp(&b.policy));
    doc.registries = registries
        .into_values()
        .map(|(r, _)| r)
        .filter(|r| r.insecure || r.ca.is_some() || r.auth.is_some())
        .collect();
    let mut names = BTreeSet::new();
    for automation in &objects.automations {
        if let Some(target) = target(automation, objects, &compiled, &secrets, &mut names, out) {
            doc.targets.push(target);
        }
    }
    doc.targets.sort_by(|a, b| a.name.cmp(&b.name));
    let mut receiver_names = BTreeSet::new();
    for receiver in &objects.receivers {
        if let Some(r) = self::receiver(receiver, &secrets, &mut receiver_names, out) {
            doc.receivers.push(r);
        }
    }
    doc.receivers.sort_by(|a, b| a.name.cmp(&b.name));
    doc
}

/// Checks an ImageRepository and records its registry's settings; false when its policies
/// cannot be used.
fn repository(
    repo: &Located<raw::ImageRepositorySpec>,
    secrets: &Secrets,
    registries: &mut BTreeMap<String, (doc::Registry, String)>,
    out: &mut Vec<Diagnostic>,
) -> bool {
    let spec = &repo.object.spec;
    let mut r = report(out, repo);
    let before = r.out.len();
    let errors = |r: &Report<'_>| {
        r.out[before..]
            .iter()
            .any(|d| d.severity == Severity::Error)
    };
    if let Some(at) = is_true(&spec.suspend) {
        r.warn(
            at,
            "spec.suspend",
            "suspended: its ImagePolicies are left out, as Flux stops scanning it",
        );
        return false;
    }
    let name = match spec.image.value.trim().parse::<ImageName>() {
        Ok(n) => Some(n),
        Err(e) => {
            r.error(&spec.image, "spec.image", e.to_string());
            None
        }
    };
    if let Some(i) = &spec.interval {
        interval(&mut r, i, "spec.interval");
    }
    if let Some(p) = &spec.provider
        && !(p.value.is_empty() || p.value == "generic")
    {
        r.error(p, "spec.provider", format!("provider {:?} is not supported: tagsmith reads registry credentials from secretRef (a Docker config), a credential helper or basic auth", p.value));
    }
    if let Some(t) = &spec.timeout {
        r.warn(
            t,
            "spec.timeout",
            "ignored: set `timeout` on the registry in tagsmith.yaml (-c)",
        );
    }
    if let Some(sa) = &spec.service_account_name {
        r.warn(
            sa,
            "spec.serviceAccountName",
            "ignored: tagsmith cannot read a service account's image pull secrets; use secretRef",
        );
    }
    if let Some(p) = &spec.proxy_secret_ref {
        r.error(
            p,
            "spec.proxySecretRef",
            "not supported: tagsmith uses HTTPS_PROXY from its environment",
        );
    }
    r.ignored(
        &spec.access_from,
        "spec.accessFrom",
        "tagsmith lets any ImagePolicy refer to any ImageRepository",
    );
    let Some(name) = name else {
        return false;
    };
    let host = name.registry().to_string();
    let mut settings = doc::Registry {
        host: host.clone(),
        insecure: spec.insecure.as_ref().is_some_and(|b| b.value),
        ca: None,
        auth: None,
    };
    if let Some(cert) = &spec.cert_secret_ref {
        let secret = &cert.value.name.value;
        if secrets.has(&repo.namespace, secret, "tls.crt")
            || secrets.has(&repo.namespace, secret, "tls.key")
        {
            r.error(
                cert,
                "spec.certSecretRef",
                "client certificates (tls.crt, tls.key) are not supported; only ca.crt",
            );
        }
        match secrets.key(&repo.namespace, secret, "ca.crt") {
            Ok(file) => settings.ca = Some(path_text(&file)),
            Err(e) => r.error(cert, "spec.certSecretRef", e),
        }
    }
    if let Some(secret_ref) = &spec.secret_ref {
        match secrets.key(
            &repo.namespace,
            &secret_ref.value.name.value,
            ".dockerconfigjson",
        ) {
            Ok(file) => {
                settings.auth = Some(doc::RegistryAuth {
                    docker_config: path_text(&file),
                })
            }
            Err(e) => r.error(
                secret_ref,
                "spec.secretRef",
                format!("{e}; a docker-registry Secret holds the key .dockerconfigjson"),
            ),
        }
    }
    match registries.get_mut(&host) {
        None => {
            registries.insert(host, (settings, repo.label()));
        }
        Some((known, by)) => {
            // tagsmith keeps one set of settings per registry host: fill in, never override.
            let clash = known.insecure != settings.insecure
                || matches!((&known.ca, &settings.ca), (Some(a), Some(b)) if a != b)
                || matches!((&known.auth, &settings.auth), (Some(a), Some(b)) if a != b);
            if clash {
                r.error(&spec.image, "spec.image", format!("registry {host} is also used by {by} with other insecure/certSecretRef/secretRef settings; tagsmith keeps one set of settings per registry host"));
            } else {
                if known.ca.is_none() {
                    known.ca = settings.ca;
                }
                if known.auth.is_none() {
                    known.auth = settings.auth;
                }
            }
        }
    }
    !errors(&r)
}

fn order(r: &mut Report<'_>, o: &Spanned<raw::Order>, field: &str) -> Option<String> {
    match &o.value.order {
        None => Some("asc".into()),
        Some(v) => match v.value.parse::<Order>() {
            Ok(_) => Some(v.value.clone()),
            Err(e) => {
                r.error(v, &format!("{field}.order"), e.to_string());
                None
            }
        },
    }
}

fn image(
    policy: &Located<raw::ImagePolicySpec>,
    objects: &Objects,
    usable: &BTreeSet<(String, String)>,
    out: &mut Vec<Diagnostic>,
) -> Option<doc::Image> {
    let spec = &policy.object.spec;
    let mut r = report(out, policy);
    let before = r.out.len();
    if let Some(at) = is_true(&spec.suspend) {
        r.warn(
            at,
            "spec.suspend",
            "suspended: left out, markers naming it are not changed",
        );
        return None;
    }
    let id = format!("{}:{}", policy.namespace, policy.name);
    if let Err(e) = id.parse::<PolicyId>() {
        r.error(&policy.object.metadata.name, "metadata.name", e.to_string());
    }
    let reference = &spec.image_repository_ref.value;
    let repo_namespace = reference
        .namespace
        .as_ref()
        .map_or(policy.namespace.as_str(), |n| n.value.as_str());
    let Some(repo) = find(&objects.repositories, repo_namespace, &reference.name.value) else {
        r.error(
            &reference.name,
            "spec.imageRepositoryRef",
            format!(
                "no ImageRepository {repo_namespace}/{} among the Flux objects read",
                reference.name.value
            ),
        );
        return None;
    };
    if !usable.contains(&(repo.namespace.clone(), repo.name.clone())) {
        r.warn(&reference.name, "spec.imageRepositoryRef", format!("ImageRepository {repo_namespace}/{} is suspended or unusable (see its diagnostics); this policy is left out", reference.name.value));
        return None;
    }
    let choice = &spec.policy.value;
    let given = [
        choice.semver.is_some(),
        choice.alphabetical.is_some(),
        choice.numerical.is_some(),
    ]
    .iter()
    .filter(|g| **g)
    .count();
    let mut image = doc::Image {
        policy: id,
        image: repo.object.spec.image.value.trim().to_string(),
        interval: repo.object.spec.interval.as_ref().map(|i| i.value.clone()),
        semver: None,
        alphabetical: None,
        numerical: None,
        filter_tags: None,
        exclude: None,
        digest: None,
    };
    if given != 1 {
        r.error(
            &spec.policy,
            "spec.policy",
            "give exactly one of semver, alphabetical or numerical",
        );
    }
    let mut rule = None;
    if let Some(s) = &choice.semver {
        image.semver = Some(s.value.range.value.clone());
        rule = Some(RuleSpec::Semver(s.value.range.value.clone()));
    }
    if let Some(a) = &choice.alphabetical {
        image.alphabetical = order(&mut r, a, "spec.policy.alphabetical");
        rule = image
            .alphabetical
            .as_deref()
            .and_then(|o| o.parse().ok())
            .map(RuleSpec::Alphabetical);
    }
    if let Some(n) = &choice.numerical {
        image.numerical = order(&mut r, n, "spec.policy.numerical");
        rule = image
            .numerical
            .as_deref()
            .and_then(|o| o.parse().ok())
            .map(RuleSpec::Numerical);
    }
    if let Some(f) = &spec.filter_tags {
        let pattern = f.pattern.as_ref().filter(|p| !p.value.is_empty());
        let extract = f.extract.as_ref().filter(|e| !e.value.is_empty());
        match (pattern, extract) {
            (Some(p), e) => {
                image.filter_tags = Some(doc::Filter {
                    pattern: p.value.clone(),
                    extract: e.map(|e| e.value.clone()),
                })
            }
            (None, Some(e)) => r.warn(
                e,
                "spec.filterTags.extract",
                "ignored without a pattern, as in Flux",
            ),
            (None, None) => {}
        }
    }
    if let Some(list) = repo
        .object
        .spec
        .exclusion_list
        .as_ref()
        .filter(|l| !l.is_empty())
    {
        image.exclude = Some(list.iter().map(|e| e.value.clone()).collect());
    }
    if let Some(d) = &spec.digest_reflection_policy {
        match d.value.as_str() {
            "Never" | "IfNotPresent" | "Always" => image.digest = Some(d.value.clone()),
            other => r.error(
                d,
                "spec.digestReflectionPolicy",
                format!("invalid value {other:?}: expected Never, IfNotPresent or Always"),
            ),
        }
    }
    if let Some(i) = &spec.interval {
        // The CRD's rule: an interval only with digestReflectionPolicy Always.
        if image.digest.as_deref() == Some("Always") {
            image.interval = interval(&mut r, i, "spec.interval");
        } else {
            r.error(
                i,
                "spec.interval",
                "only allowed with digestReflectionPolicy: Always, as in Flux",
            );
        }
    }
    // The policy as tagsmith will build it: errors found now carry the Flux location.
    if let Some(rule) = rule {
        let spec_ = PolicySpec {
            rule,
            filter: image.filter_tags.as_ref().map(|f| FilterSpec {
                pattern: f.pattern.clone(),
                extract: f.extract.clone(),
            }),
            exclude: image.exclude.clone(),
        };
        if let Err(e) = Policy::new(&spec_) {
            match &e {
                crate::policy::PolicyError::Range(_) => match &choice.semver {
                    Some(s) => r.error(&s.value.range, "spec.policy.semver.range", e.to_string()),
                    None => r.error(&spec.policy, "spec.policy", e.to_string()),
                },
                crate::policy::PolicyError::FilterPattern { .. }
                | crate::policy::PolicyError::FilterExtract { .. } => {
                    match spec.filter_tags.as_ref().and_then(|f| f.pattern.as_ref()) {
                        Some(p) => r.error(p, "spec.filterTags", e.to_string()),
                        None => r.error(&spec.policy, "spec.policy", e.to_string()),
                    }
                }
                _ => match repo
                    .object
                    .spec
                    .exclusion_list
                    .as_ref()
                    .and_then(|l| l.first())
                {
                    Some(at) => r.error(
                        at,
                        &format!(
                            "spec.exclusionList (of ImageRepository {}/{})",
                            repo.namespace, repo.name
                        ),
                        e.to_string(),
                    ),
                    None => r.error(&spec.policy, "spec.policy", e.to_string()),
                },
            }
        }
    }
    let failed = r.out[before..]
        .iter()
        .any(|d| d.severity == Severity::Error);
    (!failed).then_some(image)
}

/// The branch a `ref` names; other kinds of refs are refused.
fn branch(r: &mut Report<'_>, reference: &Spanned<raw::GitRef>, field: &str) -> Option<String> {
    let g = &reference.value;
    for (what, value) in [
        ("tag", &g.tag),
        ("semver", &g.semver),
        ("name", &g.name),
        ("commit", &g.commit),
    ] {
        if let Some(v) = value {
            r.error(v, &format!("{field}.{what}"), format!("checking out a {what} is not supported: tagsmith works on a branch; give {field}.branch"));
            return None;
        }
    }
    Some(
        g.branch
            .as_ref()
            .map_or(FLUX_DEFAULT_BRANCH.to_string(), |b| b.value.clone()),
    )
}

fn target(
    automation: &Located<raw::ImageUpdateAutomationSpec>,
    objects: &Objects,
    policies: &BTreeMap<(String, String), &Located<raw::ImagePolicySpec>>,
    secrets: &Secrets,
    names: &mut BTreeSet<String>,
    out: &mut Vec<Diagnostic>,
) -> Option<doc::Target> {
    let spec = &automation.object.spec;
    let mut r = report(out, automation);
    let before = r.out.len();
    if let Some(at) = is_true(&spec.suspend) {
        r.warn(at, "spec.suspend", "suspended: no target is made for it");
        return None;
    }
    let name = match tagsmith_name(&automation.namespace, &automation.name) {
        Ok(n) if names.insert(n.clone()) => n,
        Ok(n) => {
            r.error(
                &automation.object.metadata.name,
                "metadata.name",
                format!("target name {n} is taken by another ImageUpdateAutomation"),
            );
            return None;
        }
        Err(e) => {
            r.error(&automation.object.metadata.name, "metadata.name", e);
            return None;
        }
    };
    let source = &spec.source_ref.value;
    if let Some(kind) = &source.kind
        && kind.value != "GitRepository"
    {
        r.error(
            kind,
            "spec.sourceRef.kind",
            format!("{:?} is not supported: only GitRepository", kind.value),
        );
        return None;
    }
    let source_namespace = source
        .namespace
        .as_ref()
        .map_or(automation.namespace.as_str(), |n| n.value.as_str());
    let Some(git_repository) = find(
        &objects.git_repositories,
        source_namespace,
        &source.name.value,
    ) else {
        r.error(
            &source.name,
            "spec.sourceRef",
            format!(
                "no GitRepository {source_namespace}/{} among the Flux objects read",
                source.name.value
            ),
        );
        return None;
    };
    let Some(git_spec) = &spec.git else {
        r.error(
            &spec.source_ref,
            "spec.git",
            "missing: tagsmith needs at least git.commit.author",
        );
        return None;
    };
    let git_spec = &git_spec.value;
    let checkout_branch = match &git_spec.checkout {
        Some(c) => branch(&mut r, &c.reference, "spec.git.checkout.ref"),
        None => match &git_repository.object.spec.reference {
            Some(reference) => {
                let mut gr = report(r.out, git_repository);
                branch(&mut gr, reference, "spec.ref")
            }
            None => Some(FLUX_DEFAULT_BRANCH.to_string()),
        },
    };
    let git = git(git_repository, secrets, r.out);
    let push_branch = git_spec
        .push
        .as_ref()
        .and_then(|p| p.branch.as_ref())
        .map(|b| b.value.clone());
    if let Some(push) = &git_spec.push {
        if let Some(refspec) = &push.refspec {
            let effective = push_branch
                .clone()
                .or_else(|| checkout_branch.clone())
                .unwrap_or_default();
            let same = match refspec.value.split_once(':') {
                Some((src, dst)) => {
                    dst == format!("refs/heads/{effective}")
                        && ["HEAD", &format!("refs/heads/{effective}"), &effective].contains(&src)
                }
                None => false,
            };
            if !same {
                r.error(refspec, "spec.git.push.refspec", format!("pushing to a second ref ({:?}) is not supported: tagsmith pushes one branch ({effective}); use push.branch, or a pull request in tagsmith.yaml", refspec.value));
            }
        }
        if let Some(o) = &push.options {
            r.error(
                o,
                "spec.git.push.options",
                "git push options are not supported",
            );
        }
    }
    let commit = &git_spec.commit.value;
    let author = &commit.author.value;
    let author_name = match &author.name {
        Some(n) if !n.value.is_empty() => n.value.clone(),
        _ => {
            r.error(
                &commit.author,
                "spec.git.commit.author.name",
                "tagsmith needs an author name",
            );
            String::new()
        }
    };
    let signing_key = commit.signing_key.as_ref().and_then(|k| {
        let kind = k.value.kind.as_ref().map_or("gpg", |t| t.value.as_str());
        if kind != "ssh" {
            r.error(k, "spec.git.commit.signingKey", format!("{kind} signing keys are not supported: tagsmith signs with SSH keys (signingKey.type: ssh)"));
            return None;
        }
        let secret = &k.value.secret_ref.value.name.value;
        if secrets.has(&automation.namespace, secret, "password") {
            r.error(k, "spec.git.commit.signingKey", "a passphrase-protected signing key is not supported");
        }
        secrets
            .key(&automation.namespace, secret, "identity")
            .map(|f| path_text(&f))
            .map_err(|e| r.error(k, "spec.git.commit.signingKey.secretRef", e))
            .ok()
    });
    let message = match &commit.message_template {
        None => FLUX_DEFAULT_MESSAGE.to_string(),
        Some(t) if t.value.is_empty() => FLUX_DEFAULT_MESSAGE.to_string(),
        Some(t) => match super::template::translate(
            &t.value,
            &automation.namespace,
            &automation.name,
            commit.message_template_values.as_ref().map(|v| &v.value),
        ) {
            Ok(m) => m,
            Err(e) => {
                r.error(t, "spec.git.commit.messageTemplate", e);
                String::new()
            }
        },
    };
    let mut paths = None;
    if let Some(update) = &spec.update {
        if let Some(s) = &update.value.strategy
            && s.value != "Setters"
        {
            r.error(
                s,
                "spec.update.strategy",
                format!("{:?} is not supported: only Setters", s.value),
            );
        }
        if let Some(p) = &update.value.path {
            let relative = p.value.trim_start_matches("./");
            if p.value.starts_with('/')
                || Path::new(relative)
                    .components()
                    .any(|c| c == std::path::Component::ParentDir)
            {
                r.error(p, "spec.update.path", "must stay inside the repository");
            } else if !relative.is_empty() && relative != "." {
                paths = Some(vec![relative.trim_end_matches('/').to_string()]);
            }
        }
    }
    let selector = spec.policy_selector.as_ref();
    if let Some(s) = selector {
        for (i, problem) in selector::check(&s.value) {
            let at = &s.value.match_expressions[i];
            r.error(
                at,
                &format!("spec.policySelector.matchExpressions[{i}]"),
                problem,
            );
        }
    }
    // As Flux: the automation's own namespace, then the selector (none selects all of them).
    let selected: Vec<String> = policies
        .iter()
        .filter(|((ns, _), p)| {
            ns == &automation.namespace
                && selector.is_none_or(|s| selector::matches(&s.value, &p.object.metadata.labels))
        })
        .map(|((ns, name), _)| format!("{ns}:{name}"))
        .collect();
    let interval = spec
        .interval
        .as_ref()
        .and_then(|i| interval(&mut r, i, "spec.interval"));
    let failed = r.out[before..]
        .iter()
        .any(|d| d.severity == Severity::Error);
    let (git, branch) = (git?, checkout_branch?);
    if failed {
        return None;
    }
    Some(doc::Target {
        name,
        git: doc::Git {
            url: git.0,
            branch: branch.clone(),
            auth: git.1,
        },
        paths,
        policies: selected,
        push: push_branch
            .filter(|b| *b != branch)
            .map(|branch| doc::Push { branch }),
        commit: doc::Commit {
            author: doc::Author {
                name: author_name,
                email: author.email.value.clone(),
            },
            message,
            signing_key,
        },
        interval,
    })
}

/// The GitRepository's URL and credentials; `None` when they cannot be used.
fn git(
    repo: &Located<raw::GitRepositorySpec>,
    secrets: &Secrets,
    out: &mut Vec<Diagnostic>,
) -> Option<(String, Option<doc::GitAuth>)> {
    let spec = &repo.object.spec;
    let mut r = report(out, repo);
    let before = r.out.len();
    if let Some(p) = &spec.provider
        && !(p.value.is_empty() || p.value == "generic")
    {
        r.error(p, "spec.provider", format!("provider {:?} is not supported: use a secretRef with username and password (a token)", p.value));
    }
    if let Some(sa) = &spec.service_account_name {
        r.error(
            sa,
            "spec.serviceAccountName",
            "not supported: use a secretRef",
        );
    }
    if let Some(p) = &spec.proxy_secret_ref {
        r.error(
            p,
            "spec.proxySecretRef",
            "not supported: tagsmith uses HTTPS_PROXY from its environment",
        );
    }
    r.ignored(
        &spec.verify,
        "spec.verify",
        "the image automation does not verify commits either",
    );
    r.ignored(
        &spec.include,
        "spec.include",
        "included repositories are not updated",
    );
    if let Some(s) = is_true(&spec.recurse_submodules) {
        r.warn(
            s,
            "spec.recurseSubmodules",
            "ignored: submodules are not updated",
        );
    }
    let url = spec.url.value.trim().to_string();
    let ssh = url.starts_with("ssh://");
    let auth = match &spec.secret_ref {
        None => {
            if ssh {
                r.error(
                    &spec.url,
                    "spec.url",
                    "an ssh URL needs a secretRef with identity and known_hosts",
                );
            }
            None
        }
        Some(secret_ref) => {
            let secret = secret_ref.value.name.value.as_str();
            let ns = repo.namespace.as_str();
            let mut auth = doc::GitAuth::default();
            match secrets.folder(ns, secret) {
                Err(e) => r.error(secret_ref, "spec.secretRef", e),
                Ok(_) if ssh => {
                    match secrets.key(ns, secret, "identity") {
                        Ok(f) => auth.ssh_key_file = Some(path_text(&f)),
                        Err(e) => r.error(secret_ref, "spec.secretRef", e),
                    }
                    match secrets.key(ns, secret, "known_hosts") {
                        Ok(f) => auth.known_hosts_file = Some(path_text(&f)),
                        Err(e) => r.error(secret_ref, "spec.secretRef", e),
                    }
                    if secrets.has(ns, secret, "password") {
                        r.error(
                            secret_ref,
                            "spec.secretRef",
                            "a passphrase-protected identity (key \"password\") is not supported",
                        );
                    }
                }
                Ok(_) => {
                    if secrets.has(ns, secret, "bearerToken") {
                        r.error(secret_ref, "spec.secretRef", "bearerToken is not supported: give the token as password (with a username)");
                    }
                    if secrets.has(ns, secret, "ca.crt") {
                        r.error(
                            secret_ref,
                            "spec.secretRef",
                            "a custom CA (ca.crt) for Git is not supported",
                        );
                    }
                    match (
                        secrets.key(ns, secret, "username"),
                        secrets.key(ns, secret, "password"),
                    ) {
                        (Ok(user), Ok(password)) => match std::fs::read_to_string(&user) {
                            Ok(u) if !u.contains(['\n', '\r']) && !u.is_empty() => {
                                auth.username = Some(u);
                                auth.password_file = Some(path_text(&password));
                            }
                            Ok(_) => r.error(
                                secret_ref,
                                "spec.secretRef",
                                format!("secret {ns}/{secret}: username is empty or spans lines"),
                            ),
                            Err(e) => r.error(
                                secret_ref,
                                "spec.secretRef",
                                format!("cannot read {}: {e}", user.display()),
                            ),
                        },
                        (Err(e), _) | (_, Err(e)) => r.error(secret_ref, "spec.secretRef", e),
                    }
                }
            }
            Some(auth)
        }
    };
    let failed = r.out[before..]
        .iter()
        .any(|d| d.severity == Severity::Error);
    (!failed).then_some((url, auth))
}

/// Flux receiver types tagsmith parses the same way (notification-controller api/v1).
const RECEIVER_TYPES: [&str; 7] = [
    "dockerhub",
    "quay",
    "harbor",
    "acr",
    "gcr",
    "generic",
    "generic-hmac",
];

fn receiver(
    receiver: &Located<raw::ReceiverSpec>,
    secrets: &Secrets,
    names: &mut BTreeSet<String>,
    out: &mut Vec<Diagnostic>,
) -> Option<doc::Receiver> {
    let spec = &receiver.object.spec;
    let mut r = report(out, receiver);
    let before = r.out.len();
    if let Some(at) = is_true(&spec.suspend) {
        r.warn(at, "spec.suspend", "suspended: no receiver is made for it");
        return None;
    }
    let kind = spec.kind.value.as_str();
    if !RECEIVER_TYPES.contains(&kind) {
        r.error(
            &spec.kind,
            "spec.type",
            format!(
                "{kind:?} is not supported: tagsmith receives registry webhooks ({})",
                RECEIVER_TYPES.join(", ")
            ),
        );
    } else if kind.starts_with("generic") {
        r.warn(&spec.kind, "spec.type", "tagsmith's generic receivers read the images to rescan from the body ({\"images\": [...]}), and `generic` ones take the token as `Authorization: Bearer`; a request without images rescans nothing");
    }
    for (i, resource) in spec.resources.iter().enumerate() {
        if resource.value.kind.value != "ImageRepository" {
            r.warn(&resource.value.kind, &format!("spec.resources[{i}]"), format!("{} resources are not reconciled: tagsmith receivers rescan the images a webhook names", resource.value.kind.value));
        }
    }
    r.ignored(
        &spec.events,
        "spec.events",
        "the payload decides what is rescanned",
    );
    r.ignored(
        &spec.resource_filter,
        "spec.resourceFilter",
        "the payload decides what is rescanned",
    );
    r.ignored(&spec.interval, "spec.interval", "nothing to reconcile");
    if let Some(o) = &spec.oidc_providers {
        r.error(o, "spec.oidcProviders", "not supported");
    }
    let name = match tagsmith_name(&receiver.namespace, &receiver.name) {
        Ok(n) if names.insert(n.clone()) => Some(n),
        Ok(n) => {
            r.error(
                &receiver.object.metadata.name,
                "metadata.name",
                format!("receiver name {n} is taken by another Receiver"),
            );
            None
        }
        Err(e) => {
            r.error(&receiver.object.metadata.name, "metadata.name", e);
            None
        }
    };
    let secret_file = match &spec.secret_ref {
        None => {
            r.error(
                &spec.kind,
                "spec.secretRef",
                "missing: every tagsmith receiver checks a secret",
            );
            None
        }
        Some(s) => secrets
            .key(&receiver.namespace, &s.value.name.value, "token")
            .map(|f| path_text(&f))
            .map_err(|e| r.error(s, "spec.secretRef", e))
            .ok(),
    };
    let failed = r.out[before..]
        .iter()
        .any(|d| d.severity == Severity::Error);
    if failed {
        return None;
    }
    Some(doc::Receiver {
        name: name?,
        kind: kind.to_string(),
        secret_file: secret_file?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_keep_their_lines() {
        let docs = documents("a: 1\n---\nb: 2\n--- \nc: 3\n");
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0], "a: 1\n");
        assert_eq!(docs[1], "\n   \nb: 2\n");
        assert_eq!(docs[2], "\n\n\n    \nc: 3\n");
        assert_eq!(documents("---\nx: 1\n"), vec!["   \nx: 1\n".to_string()]);
    }
}
