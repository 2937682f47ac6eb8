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

/// What a `ref` checks out, with source-controller's precedence (fluxcd/pkg git/gogit
/// client.go clone: commit, then name, tag, semver, branch); `branch` stays beside a commit
/// (where it is fetched from) and is the push branch Flux infers when none is given.
#[derive(Debug, Default)]
struct Checkout {
    branch: Option<String>,
    tag: Option<String>,
    semver: Option<String>,
    commit: Option<String>,
    name: Option<String>,
}

fn checkout(r: &mut Report<'_>, reference: &Spanned<raw::GitRef>, field: &str) -> Option<Checkout> {
    let g = &reference.value;
    let mut out = Checkout {
        branch: g.branch.as_ref().map(|b| b.value.clone()),
        ..Checkout::default()
    };
    let fixed = [
        ("commit", &g.commit),
        ("name", &g.name),
        ("tag", &g.tag),
        ("semver", &g.semver),
    ];
    let mut chosen: Option<&str> = None;
    for (what, value) in fixed {
        let Some(v) = value else { continue };
        if let Some(first) = chosen {
            r.warn(
                v,
                &format!("{field}.{what}"),
                format!("ignored: {field}.{first} takes precedence, as in Flux"),
            );
            continue;
        }
        chosen = Some(what);
        let text = v.value.trim().to_string();
        match what {
            "commit" if !(text.len() == 40 && text.bytes().all(|b| b.is_ascii_hexdigit())) => {
                r.error(
                    v,
                    &format!("{field}.commit"),
                    format!("{text:?} is not a full commit id (40 hex digits)"),
                );
                return None;
            }
            "commit" => out.commit = Some(text),
            "name" if !text.starts_with("refs/") => {
                r.error(
                    v,
                    &format!("{field}.name"),
                    format!("{text:?} is not a full reference name (refs/...)"),
                );
                return None;
            }
            "name" => out.name = Some(text),
            "tag" => out.tag = Some(text),
            _ => {
                if let Err(e) = crate::policy::semver::Range::parse(&text) {
                    r.error(
                        v,
                        &format!("{field}.semver"),
                        format!("semver parse error: {e}"),
                    );
                    return None;
                }
                out.semver = Some(text);
            }
        }
    }
    if chosen.is_some_and(|c| c != "commit")
        && let Some(b) = &g.branch
    {
        r.warn(b, &format!("{field}.branch"), format!("not checked out: {field}.{} takes precedence, as in Flux; only the push branch is inferred from it", chosen.unwrap_or_default()));
    }
    if chosen.is_none() && out.branch.is_none() {
        out.branch = Some(FLUX_DEFAULT_BRANCH.to_string());
    }
    Some(out)
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
    // As image-automation-controller's buildGitConfig: the automation's checkout ref, else
    // the GitRepository's; none at all checks out Flux's default branch.
    let checkout = match &git_spec.checkout {
        Some(c) => checkout(&mut r, &c.reference, "spec.git.checkout.ref"),
        None => match &git_repository.object.spec.reference {
            Some(reference) => {
                let mut gr = report(r.out, git_repository);
                checkout(&mut gr, reference, "spec.ref")
            }
            None => Some(Checkout {
                branch: Some(FLUX_DEFAULT_BRANCH.to_string()),
                ..Checkout::default()
            }),
        },
    };
    let git = git(git_repository, secrets, r.out);
    let push_branch = git_spec
        .push
        .as_ref()
        .and_then(|p| p.branch.as_ref())
        .filter(|b| !b.value.is_empty())
        .map(|b| b.value.clone());
    // configurePush: without push.branch the checkout ref must name a branch. Flux refuses
    // an automation with no ref anywhere too; tagsmith keeps pushing to the branch it checks
    // out (master) there, as it always has.
    let ref_branch = checkout.as_ref().and_then(|c| c.branch.clone());
    let pushed = push_branch.clone().or(ref_branch);
    if pushed.is_none() && checkout.is_some() {
        r.error(
            &git_spec.commit,
            "spec.git.push.branch",
            "push spec not provided, and cannot be inferred from .spec.git.checkout.ref or GitRepository .spec.ref",
        );
    }
    let mut push_options = Vec::new();
    if let Some(push) = &git_spec.push {
        if let Some(refspec) = &push.refspec {
            let effective = pushed.clone().unwrap_or_default();
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
            // As `git push -o key=value`; a key with no value is sent alone (`-o key`).
            for (key, value) in &o.value {
                let option = if value.is_empty() {
                    key.clone()
                } else {
                    format!("{key}={value}")
                };
                if option.is_empty() || option.contains(['\n', '\r', '\0']) {
                    r.error(
                        o,
                        "spec.git.push.options",
                        format!("invalid push option {option:?}"),
                    );
                } else {
                    push_options.push(option);
                }
            }
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
    // image-automation-controller internal/source/signing.go: `gpg` (the default) reads
    // `git.asc` and an optional `passphrase`, `ssh` reads `identity`.
    let signing_key = commit.signing_key.as_ref().and_then(|k| {
        let kind = k.value.kind.as_ref().map_or("", |t| t.value.as_str());
        let secret = &k.value.secret_ref.value.name.value;
        let ns = &automation.namespace;
        match kind {
            "" | "gpg" => {
                let key = secrets
                    .key(ns, secret, "git.asc")
                    .map_err(|e| r.error(k, "spec.git.commit.signingKey.secretRef", e))
                    .ok()?;
                let passphrase_file = secrets
                    .has(ns, secret, "passphrase")
                    .then(|| secrets.key(ns, secret, "passphrase").ok())
                    .flatten()
                    .map(|f| path_text(&f));
                Some(doc::SigningKey::OpenPgp {
                    openpgp: path_text(&key),
                    passphrase_file,
                })
            }
            "ssh" => {
                if secrets.has(ns, secret, "password") {
                    r.error(
                        k,
                        "spec.git.commit.signingKey",
                        "a passphrase-protected SSH signing key is not supported",
                    );
                }
                secrets
                    .key(ns, secret, "identity")
                    .map(|f| doc::SigningKey::Ssh(path_text(&f)))
                    .map_err(|e| r.error(k, "spec.git.commit.signingKey.secretRef", e))
                    .ok()
            }
            other => {
                r.error(
                    k,
                    "spec.git.commit.signingKey.type",
                    format!("unknown signing key type {other:?}"),
                );
                None
            }
        }
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
    let (git, checkout) = (git?, checkout?);
    if failed {
        return None;
    }
    // tagsmith.yaml's git.branch: the branch checked out, or beside a commit the branch it
    // is on; with a tag, semver or name there is none and push.branch says where to push.
    let branch = if checkout.commit.is_some()
        || checkout.tag.is_none() && checkout.semver.is_none() && checkout.name.is_none()
    {
        checkout.branch.clone()
    } else {
        None
    };
    let push_to = pushed.filter(|p| branch.as_ref() != Some(p));
    let push = (push_to.is_some() || !push_options.is_empty()).then_some(doc::Push {
        branch: push_to,
        options: push_options,
    });
    Some(doc::Target {
        name,
        git: doc::Git {
            url: git.0,
            branch,
            tag: checkout.tag,
            semver: checkout.semver,
            commit: checkout.commit,
            reference: checkout.name,
            auth: git.1,
        },
        paths,
        policies: selected,
        push,
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
