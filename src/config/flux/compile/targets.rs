//! ImageUpdateAutomation and its GitRepository -> `targets[]`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_saphyr::Spanned;

use super::super::doc;
use super::super::raw;
use super::super::secrets::Secrets;
use super::super::selector;
use super::super::{Diagnostic, Severity};
use super::{
    FLUX_DEFAULT_BRANCH, FLUX_DEFAULT_MESSAGE, Located, Objects, Report, find, interval, is_true,
    path_text, report, tagsmith_name,
};

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

pub(super) fn target(
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
    let template = match &commit.message_template {
        Some(t) if !t.value.is_empty() => t.value.clone(),
        _ => FLUX_DEFAULT_MESSAGE.to_string(),
    };
    let values = commit
        .message_template_values
        .as_ref()
        .map(|v| v.value.clone())
        .unwrap_or_default();
    match super::super::template::FluxMessage::new(
        &template,
        &automation.namespace,
        &automation.name,
        values.clone(),
    ) {
        Err(e) => match commit.message_template.as_ref() {
            Some(t) => r.error(t, "spec.git.commit.messageTemplate", e),
            None => r.error(&git_spec.commit, "spec.git.commit.messageTemplate", e),
        },
        Ok(m) => {
            if let Some(t) = commit.message_template.as_ref() {
                for key in m.missing_values() {
                    r.warn(t, "spec.git.commit.messageTemplate", format!(".Values.{key}: messageTemplateValues has no key {key:?}; Flux and tagsmith print <no value>"));
                }
            }
        }
    }
    let go_template = doc::GoTemplate {
        template,
        namespace: automation.namespace.clone(),
        name: automation.name.clone(),
        values,
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
            go_template,
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
