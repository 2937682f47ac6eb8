//! `.argocd-source-<app>.yaml`, written as AIU writes it (`pkg/argocd/update.go`
//! `marshalParamsOverride`, `mergeKustomizeOverride`, `mergeHelmOverride`,
//! `sortHelmParameters`, `marshalWithIndent`: go-yaml v3, indent 2, compact sequences, keys
//! from the Go field names in lower case, `forcestring` always written). An existing file is
//! read, merged and written out again, as AIU does; a file that does not parse is replaced.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::scalar::{Identifier, encode, kustomize_image_key};
use super::{Changed, Edited, HelmKeys, WriteBackError, WriteImage, selected};
use crate::model::{ImageRef, PolicyId};

#[derive(Debug, Default, Deserialize)]
struct KustomizeFile {
    #[serde(default)]
    kustomize: Option<KustomizeImages>,
}

#[derive(Debug, Default, Deserialize)]
struct KustomizeImages {
    #[serde(default)]
    images: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
struct HelmFile {
    #[serde(default)]
    helm: Option<HelmParameters>,
}

#[derive(Debug, Default, Deserialize)]
struct HelmParameters {
    #[serde(default)]
    parameters: Option<Vec<HelmParameter>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct HelmParameter {
    #[serde(default)]
    name: String,
    #[serde(default)]
    value: String,
    #[serde(default, alias = "forceString")]
    forcestring: bool,
}

/// The leading comments, blank lines and directives with the `---` after them, kept when
/// the file is written again (`leadingDocumentStartPrefix`).
fn document_start_prefix(raw: &str) -> &str {
    let mut offset = 0;
    for line in raw.split_inclusive('\n') {
        let trimmed = line.trim();
        let bare = line.trim_end_matches(['\n', '\r']);
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('%') {
            offset += line.len();
            continue;
        }
        if bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t") {
            return &raw[..offset + line.len()];
        }
        return "";
    }
    ""
}

fn text(existing: Option<&[u8]>) -> Option<&str> {
    existing
        .and_then(|b| std::str::from_utf8(b).ok())
        .filter(|t| !t.trim().is_empty())
}

/// The Kustomize image a selection writes: `SetKustomizeImage`'s `ksImageParam`.
fn kustomize_param(image: &WriteImage, full: &str) -> String {
    match &image.kustomize_name {
        Some(k) => format!("{k}={full}"),
        None => full.to_string(),
    }
}

/// `spec.source.kustomize.images` after AIU's `SetKustomizeImage` for every selection.
pub(super) fn kustomize_images(
    spec_images: &[String],
    images: &[WriteImage],
    selections: &BTreeMap<PolicyId, ImageRef>,
) -> (Vec<String>, Vec<(PolicyId, String)>) {
    let mut list: Vec<String> = spec_images.to_vec();
    let mut params = Vec::new();
    for (image, sel) in selected(images, selections) {
        let param = kustomize_param(image, &sel.full(&image.name));
        let over = Identifier::parse(&param);
        for entry in &mut list {
            let curr = Identifier::parse(entry);
            let mut matched = curr.name == over.name;
            if image.kustomize_name.is_some() && curr.alias.is_some() {
                matched = matched && curr.alias == image.kustomize_name;
            }
            if matched {
                *entry = param.clone();
            }
        }
        match list
            .iter()
            .position(|e| kustomize_image_key(e) == kustomize_image_key(&param))
        {
            Some(i) => list[i] = param.clone(),
            None => list.push(param.clone()),
        }
        params.push((image.policy.clone(), param));
    }
    (list, params)
}

pub fn edit_kustomize(
    file: &Path,
    existing: Option<&[u8]>,
    spec_images: &[String],
    images: &[WriteImage],
    selections: &BTreeMap<PolicyId, ImageRef>,
) -> Result<Option<Edited>, WriteBackError> {
    let (new, params) = kustomize_images(spec_images, images, selections);
    if params.is_empty() {
        return Ok(None);
    }
    let original = text(existing);
    let prefix = original.map(document_start_prefix).unwrap_or("");
    let parsed = original.and_then(|t| serde_saphyr::from_str::<KustomizeFile>(t).ok());
    let mut out_list = match &parsed {
        Some(f) => f
            .kustomize
            .as_ref()
            .and_then(|k| k.images.clone())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let before = out_list.clone();
    if parsed.is_some() {
        for image in &new {
            let n = Identifier::parse(image);
            match out_list
                .iter()
                .position(|e| Identifier::parse(e).same_image(&n))
            {
                Some(i) => {
                    let e = Identifier::parse(&out_list[i]);
                    let differs = (n.tag.is_some() || n.digest.is_some())
                        && (e.tag != n.tag || e.digest != n.digest);
                    if (e.tag.is_none() && e.digest.is_none()) || differs {
                        out_list[i] = image.clone();
                    }
                }
                None => out_list.push(image.clone()),
            }
        }
    } else {
        out_list = new;
    }
    let mut out = String::from(prefix);
    out.push_str("kustomize:\n");
    if out_list.is_empty() {
        out.push_str("  images: []\n");
    } else {
        out.push_str("  images:\n");
        for image in &out_list {
            out.push_str("  - ");
            out.push_str(&encode(image));
            out.push('\n');
        }
    }
    if original.is_some_and(|t| t == out) {
        return Ok(None);
    }
    let changes = params
        .into_iter()
        .filter_map(|(policy, param)| {
            let old = before
                .iter()
                .find(|e| Identifier::parse(e).same_image(&Identifier::parse(&param)))
                .cloned()
                .unwrap_or_default();
            let line = out.lines().position(|l| l.ends_with(&encode(&param)))? + 1;
            (old != param).then_some(Changed {
                policy,
                line,
                old,
                new: param,
            })
        })
        .collect();
    check_reads_back(file, &out)?;
    Ok(Some(Edited {
        bytes: out.into_bytes(),
        changes,
    }))
}

/// The Helm parameters a selection sets: `SetHelmImage`.
fn helm_params(image: &WriteImage, sel: &super::Selected) -> Vec<HelmParameter> {
    match &image.helm {
        HelmKeys::Spec(spec) => vec![HelmParameter {
            name: spec.clone(),
            value: sel.full(&image.name),
            forcestring: true,
        }],
        HelmKeys::NameTag { name, tag } => {
            let mut params = vec![HelmParameter {
                name: name.clone(),
                value: image.name.clone(),
                forcestring: true,
            }];
            let value = sel.tag_with_digest();
            if !value.is_empty() {
                params.push(HelmParameter {
                    name: tag.clone(),
                    value,
                    forcestring: true,
                });
            }
            params
        }
    }
}

pub fn edit_helm(
    file: &Path,
    existing: Option<&[u8]>,
    images: &[WriteImage],
    selections: &BTreeMap<PolicyId, ImageRef>,
) -> Result<Option<Edited>, WriteBackError> {
    let mut new: Vec<(PolicyId, HelmParameter)> = Vec::new();
    for (image, sel) in selected(images, selections) {
        for p in helm_params(image, &sel) {
            match new.iter().position(|(_, q)| q.name == p.name) {
                Some(i) => new[i] = (image.policy.clone(), p),
                None => new.push((image.policy.clone(), p)),
            }
        }
    }
    if new.is_empty() {
        return Ok(None);
    }
    let original = text(existing);
    let prefix = original.map(document_start_prefix).unwrap_or("");
    let mut params: Vec<HelmParameter> = original
        .and_then(|t| serde_saphyr::from_str::<HelmFile>(t).ok())
        .and_then(|f| f.helm)
        .and_then(|h| h.parameters)
        .unwrap_or_default();
    let before = params.clone();
    for (_, p) in &new {
        match params.iter().position(|q| q.name == p.name) {
            Some(i) => params[i] = p.clone(),
            None => params.push(p.clone()),
        }
    }
    params.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = String::from(prefix);
    out.push_str("helm:\n");
    if params.is_empty() {
        out.push_str("  parameters: []\n");
    } else {
        out.push_str("  parameters:\n");
        for p in &params {
            out.push_str(&format!(
                "  - name: {}\n    value: {}\n    forcestring: {}\n",
                encode(&p.name),
                encode(&p.value),
                p.forcestring
            ));
        }
    }
    if original.is_some_and(|t| t == out) {
        return Ok(None);
    }
    let changes = new
        .into_iter()
        .filter_map(|(policy, p)| {
            let old = before
                .iter()
                .find(|q| q.name == p.name)
                .map(|q| q.value.clone())
                .unwrap_or_default();
            let needle = format!("- name: {}", encode(&p.name));
            let line = out.lines().position(|l| l.ends_with(&needle))? + 2;
            (old != p.value).then_some(Changed {
                policy,
                line,
                old,
                new: p.value,
            })
        })
        .collect();
    check_reads_back(file, &out)?;
    Ok(Some(Edited {
        bytes: out.into_bytes(),
        changes,
    }))
}

fn check_reads_back(file: &Path, out: &str) -> Result<(), WriteBackError> {
    serde_saphyr::from_str::<serde_json::Value>(out)
        .map(|_| ())
        .map_err(|e| WriteBackError::Verify {
            file: file.to_path_buf(),
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ImageRef;

    fn image(policy: &str, name: &str, helm: HelmKeys) -> WriteImage {
        WriteImage {
            policy: policy.parse().unwrap(),
            name: name.into(),
            kustomize_name: None,
            helm,
        }
    }

    fn sel(policy: &str, r: &str) -> BTreeMap<PolicyId, ImageRef> {
        BTreeMap::from([(policy.parse().unwrap(), r.parse().unwrap())])
    }

    fn default_keys() -> HelmKeys {
        HelmKeys::NameTag {
            name: "image.name".into(),
            tag: "image.tag".into(),
        }
    }

    // AIU pkg/argocd/update_test.go "Good commit to helm override": the file it writes for
    // image.name nginx, image.tag 1.2.3.
    #[test]
    fn new_helm_file_matches_aiu_byte_for_byte() {
        let images = [image("argocd:app-nginx", "nginx", default_keys())];
        let out = edit_helm(
            Path::new("f"),
            None,
            &images,
            &sel("argocd:app-nginx", "nginx:1.2.3"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            String::from_utf8(out.bytes).unwrap(),
            "helm:\n  parameters:\n  - name: image.name\n    value: nginx\n    forcestring: true\n  - name: image.tag\n    value: 1.2.3\n    forcestring: true\n"
        );
        assert_eq!(out.changes.len(), 2);
    }

    // AIU update_test.go: existing parameters are merged and sorted by name (bar, baz, foo).
    #[test]
    fn existing_helm_parameters_are_merged_and_sorted() {
        let existing =
            "helm:\n  parameters:\n  - name: foo\n    value: foo\n    forcestring: true\n";
        let images = [image("argocd:app-x", "x", HelmKeys::Spec("bar".into()))];
        let out = edit_helm(
            Path::new("f"),
            Some(existing.as_bytes()),
            &images,
            &sel("argocd:app-x", "x:1"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            String::from_utf8(out.bytes).unwrap(),
            "helm:\n  parameters:\n  - name: bar\n    value: x:1\n    forcestring: true\n  - name: foo\n    value: foo\n    forcestring: true\n"
        );
    }

    // AIU update_test.go "Good commit to kustomize override": kustomize images list.
    #[test]
    fn new_kustomize_file_matches_aiu() {
        let images = [image("argocd:app-nginx", "nginx", default_keys())];
        let out = edit_kustomize(
            Path::new("f"),
            None,
            &[],
            &images,
            &sel("argocd:app-nginx", "nginx:1.2.3"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            String::from_utf8(out.bytes).unwrap(),
            "kustomize:\n  images:\n  - nginx:1.2.3\n"
        );
    }

    #[test]
    fn unchanged_file_is_not_rewritten_and_prefix_is_kept() {
        let existing = "# managed\n---\nkustomize:\n  images:\n  - nginx:1.2.3\n";
        let images = [image("argocd:app-nginx", "nginx", default_keys())];
        let same = edit_kustomize(
            Path::new("f"),
            Some(existing.as_bytes()),
            &[],
            &images,
            &sel("argocd:app-nginx", "nginx:1.2.3"),
        )
        .unwrap();
        assert!(same.is_none());
        let newer = edit_kustomize(
            Path::new("f"),
            Some(existing.as_bytes()),
            &[],
            &images,
            &sel("argocd:app-nginx", "nginx:1.3.0"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            String::from_utf8(newer.bytes).unwrap(),
            "# managed\n---\nkustomize:\n  images:\n  - nginx:1.3.0\n"
        );
        assert_eq!(newer.changes[0].old, "nginx:1.2.3");
    }

    #[test]
    fn kustomize_image_name_writes_an_alias() {
        let mut img = image("argocd:app-web", "quay.io/org/web", default_keys());
        img.kustomize_name = Some("web".into());
        let out = edit_kustomize(
            Path::new("f"),
            None,
            &["web=quay.io/org/web:0.1".to_string(), "other:1".to_string()],
            &[img],
            &sel("argocd:app-web", "quay.io/org/web:0.2"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            String::from_utf8(out.bytes).unwrap(),
            "kustomize:\n  images:\n  - web=quay.io/org/web:0.2\n  - other:1\n"
        );
    }
}
