//! An Application's `argocd-image-updater.argoproj.io/*` annotations -> its settings, as AIU
//! reads them (`pkg/argocd/annotations.go`): `image-list` entries `[alias=]image[:constraint]`,
//! per-alias settings over application-wide ones, `platforms` and the manifest targets per
//! alias only.

use std::collections::BTreeSet;

use super::compile::{CONTROLLER_NAMESPACE, Located};
use super::settings::{AppSettings, Common, ImageSettings, Keys, Loc, Val, WriteBackSettings};
use crate::config::flux::{Diagnostic, Severity};

pub const PREFIX: &str = "argocd-image-updater.argoproj.io/";

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

pub fn annotation_field(key: &str) -> String {
    format!("metadata.annotations[{PREFIX}{key}]")
}

/// `Application namespace/name`, the object diagnostics name.
pub fn object(located: &Located) -> String {
    let app = &located.app;
    let namespace = app
        .metadata
        .namespace
        .as_ref()
        .map_or(CONTROLLER_NAMESPACE, |n| n.value.as_str());
    format!("Application {namespace}/{}", app.metadata.name.value)
}

/// Whether the Application carries any of AIU's annotations.
pub fn has_any(located: &Located) -> bool {
    located
        .app
        .metadata
        .annotations
        .keys()
        .any(|k| k.starts_with(PREFIX))
}

/// The settings the annotations give, or `None` when AIU would not update the Application
/// from them (no or a broken `image-list`), with the reason in `out`.
pub fn settings(located: &Located, out: &mut Vec<Diagnostic>) -> Option<AppSettings> {
    let app = &located.app;
    let object = object(located);
    let ann = &app.metadata.annotations;
    let val = |key: &str| -> Option<Val> {
        ann.get(&format!("{PREFIX}{key}")).map(|v| Val {
            value: v.value.clone(),
            at: Loc::of(&located.file, &object, v, annotation_field(key)),
        })
    };
    let Some(list) = val("image-list") else {
        for (key, value) in ann {
            if key.starts_with(PREFIX) {
                out.push(Loc::of(&located.file, &object, value, format!("metadata.annotations[{key}]")).diagnostic(Severity::Warning, "no image-list annotation: Argo CD Image Updater does not update this Application, nor does tagsmith"));
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
                out.push(
                    list.at
                        .diagnostic(Severity::Error, format!("empty image name in {item:?}")),
                );
                return None;
            }
            None => entries.push((None, item.to_string())),
        }
    }
    if entries.is_empty() {
        out.push(
            list.at
                .diagnostic(Severity::Error, "the image-list is empty"),
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
            out.push(
                Loc::of(
                    &located.file,
                    &object,
                    value,
                    format!("metadata.annotations[{key}]"),
                )
                .diagnostic(Severity::Warning, format!("ignored: {why}")),
            );
        }
    }
    let list_of = |v: Option<Val>| {
        v.map(|v| Val {
            value: v
                .value
                .split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(String::from)
                .collect(),
            at: v.at,
        })
    };
    let common = |prefix: &str, platforms: bool| Common {
        update_strategy: val(&format!("{prefix}update-strategy")),
        force_update: val(&format!("{prefix}force-update")),
        allow_tags: val(&format!("{prefix}allow-tags")),
        ignore_tags: list_of(val(&format!("{prefix}ignore-tags"))),
        pull_secret: val(&format!("{prefix}pull-secret")),
        // `platforms` was only ever an alias annotation (getImageUpdateStrategyAnnotations).
        platforms: if platforms {
            list_of(val(&format!("{prefix}platforms")))
        } else {
            None
        },
    };
    let app_wide = common("", false);
    let images = entries
        .into_iter()
        .map(|(alias, image)| {
            let by_alias = |k: &str| alias.as_ref().and_then(|a| val(&format!("{a}.{k}")));
            let own = match &alias {
                Some(a) => common(&format!("{a}."), true),
                None => Common::default(),
            };
            ImageSettings {
                image,
                at: list.at.clone(),
                common: app_wide.under(&own),
                kustomize_name: by_alias("kustomize.image-name"),
                helm_spec: by_alias("helm.image-spec"),
                helm_name: by_alias("helm.image-name"),
                helm_tag: by_alias("helm.image-tag"),
                alias,
            }
        })
        .collect();
    Some(AppSettings {
        images,
        writeback: WriteBackSettings {
            method: val("write-back-method"),
            method_unset: Loc::of(
                &located.file,
                &object,
                &app.metadata.name,
                annotation_field("write-back-method"),
            ),
            keys: Keys::Annotations,
            target: val("write-back-target"),
            branch: val("git-branch"),
            repository: val("git-repository"),
        },
    })
}
