//! Receiver -> `receivers[]`.

use std::collections::BTreeSet;

use super::super::doc;
use super::super::raw;
use super::super::secrets::Secrets;
use super::super::{Diagnostic, Severity};
use super::{Located, is_true, path_text, report, tagsmith_name};

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

pub(super) fn receiver(
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
