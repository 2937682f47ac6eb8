//! Flux objects -> the `tagsmith.yaml` they amount to. Each object's fields are checked where
//! they are written; what tagsmith cannot honour becomes a diagnostic naming the file, line,
//! object and field, and the object (or just the field) is left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_saphyr::Spanned;

mod images;
mod receivers;
mod targets;

use super::doc::Doc;
use super::raw::{self, Object};
use super::secrets::Secrets;
use super::{Diagnostic, Options, Severity};
use crate::config::duration;

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
pub(crate) fn documents(text: &str) -> Vec<String> {
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
    let mut registries: BTreeMap<String, (super::doc::Registry, String)> = BTreeMap::new();
    let mut compiled: BTreeMap<(String, String), &Located<raw::ImagePolicySpec>> = BTreeMap::new();
    let mut usable_repositories = BTreeSet::new();
    for repo in &objects.repositories {
        if images::repository(repo, &secrets, &mut registries, out) {
            usable_repositories.insert((repo.namespace.clone(), repo.name.clone()));
        }
    }
    for policy in &objects.policies {
        if let Some(image) = images::image(policy, objects, &usable_repositories, out) {
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
        if let Some(target) =
            targets::target(automation, objects, &compiled, &secrets, &mut names, out)
        {
            doc.targets.push(target);
        }
    }
    doc.targets.sort_by(|a, b| a.name.cmp(&b.name));
    let mut receiver_names = BTreeSet::new();
    for receiver in &objects.receivers {
        if let Some(r) = receivers::receiver(receiver, &secrets, &mut receiver_names, out) {
            doc.receivers.push(r);
        }
    }
    doc.receivers.sort_by(|a, b| a.name.cmp(&b.name));
    doc
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
