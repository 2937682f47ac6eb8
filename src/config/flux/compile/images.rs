//! ImageRepository and ImagePolicy -> `images[]` and `registries[]`.

use std::collections::{BTreeMap, BTreeSet};

use serde_saphyr::Spanned;

use super::super::doc;
use super::super::raw;
use super::super::secrets::Secrets;
use super::super::{Diagnostic, Severity};
use super::{Located, Objects, Report, find, interval, is_true, path_text, report};
use crate::model::{ImageName, PolicyId};
use crate::policy::{FilterSpec, Order, Policy, PolicySpec, RuleSpec};

/// Checks an ImageRepository and records its registry's settings; false when its policies
/// cannot be used.
pub(super) fn repository(
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
            "suspended: not scanned, and its ImagePolicies' markers are left as they are (suspend: true), as Flux stops scanning it",
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

pub(super) fn image(
    policy: &Located<raw::ImagePolicySpec>,
    objects: &Objects,
    usable: &BTreeSet<(String, String)>,
    out: &mut Vec<Diagnostic>,
) -> Option<doc::Image> {
    let spec = &policy.object.spec;
    let mut r = report(out, policy);
    let before = r.out.len();
    let suspended = is_true(&spec.suspend);
    if let Some(at) = suspended {
        r.warn(
            at,
            "spec.suspend",
            "suspended: not scanned, markers naming it are left as they are (suspend: true)",
        );
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
    // A suspended repository suspends its policies rather than leaving them out.
    let repo_suspended = is_true(&repo.object.spec.suspend).is_some();
    if !repo_suspended && !usable.contains(&(repo.namespace.clone(), repo.name.clone())) {
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
        newest_build: None,
        filter_tags: None,
        exclude: None,
        digest: None,
        suspend: suspended.is_some() || repo_suspended,
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
                crate::policy::PolicyError::FilterPattern { .. } => {
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
