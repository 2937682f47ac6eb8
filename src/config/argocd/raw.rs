//! Argo CD `Application` and Argo CD Image Updater `ImageUpdater` documents as read from
//! Git: of an Application only the fields AIU reads; of an ImageUpdater its whole `spec`
//! (AIU `api/v1alpha1/imageupdater_types.go`), so that a field tagsmith does not know is an
//! error where it is written. Values keep their position.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

pub use crate::config::flux::raw::LabelSelector;

#[derive(Debug, Deserialize)]
pub struct Head {
    #[serde(default, rename = "apiVersion")]
    pub api_version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Application {
    pub metadata: Metadata,
    #[serde(default)]
    pub spec: Option<Spec>,
}

#[derive(Debug, Deserialize)]
pub struct Metadata {
    pub name: Spanned<String>,
    #[serde(default)]
    pub namespace: Option<Spanned<String>>,
    #[serde(default)]
    pub annotations: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Spec {
    #[serde(default)]
    pub source: Option<Spanned<Source>>,
    #[serde(default)]
    pub sources: Option<Vec<Spanned<Source>>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    #[serde(default, rename = "repoURL")]
    pub repo_url: Option<String>,
    #[serde(default)]
    pub target_revision: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub chart: Option<String>,
    #[serde(default)]
    pub kustomize: Option<Kustomize>,
    #[serde(default)]
    pub helm: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Kustomize {
    #[serde(default)]
    pub images: Vec<String>,
}

/// `argocd-image-updater.argoproj.io/v1alpha1` `ImageUpdater`; `status` is not read.
#[derive(Debug, Deserialize)]
pub struct ImageUpdater {
    pub metadata: Metadata,
    pub spec: Spanned<UpdaterSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdaterSpec {
    #[serde(default)]
    pub common_update_settings: Option<Spanned<CommonUpdateSettings>>,
    #[serde(default)]
    pub write_back_config: Option<Spanned<WriteBackConfig>>,
    #[serde(default)]
    pub application_refs: Vec<Spanned<ApplicationRef>>,
    #[serde(default)]
    pub images_verification: Option<Spanned<serde_json::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApplicationRef {
    pub name_pattern: Spanned<String>,
    #[serde(default)]
    pub label_selectors: Option<Spanned<LabelSelector>>,
    #[serde(default)]
    pub use_annotations: Option<Spanned<bool>>,
    #[serde(default)]
    pub images_verification: Option<Spanned<serde_json::Value>>,
    #[serde(default)]
    pub common_update_settings: Option<Spanned<CommonUpdateSettings>>,
    #[serde(default)]
    pub write_back_config: Option<Spanned<WriteBackConfig>>,
    #[serde(default)]
    pub images: Vec<Spanned<ImageConfig>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImageConfig {
    pub alias: Spanned<String>,
    pub image_name: Spanned<String>,
    #[serde(default)]
    pub common_update_settings: Option<Spanned<CommonUpdateSettings>>,
    #[serde(default)]
    pub manifest_targets: Option<Spanned<ManifestTarget>>,
    #[serde(default)]
    pub images_verification: Option<Spanned<serde_json::Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CommonUpdateSettings {
    #[serde(default)]
    pub update_strategy: Option<Spanned<String>>,
    #[serde(default)]
    pub force_update: Option<Spanned<bool>>,
    #[serde(default)]
    pub allow_tags: Option<Spanned<String>>,
    #[serde(default)]
    pub ignore_tags: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub pull_secret: Option<Spanned<String>>,
    #[serde(default)]
    pub platforms: Option<Spanned<Vec<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WriteBackConfig {
    #[serde(default)]
    pub method: Option<Spanned<String>>,
    #[serde(default)]
    pub git_config: Option<Spanned<GitConfig>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GitConfig {
    #[serde(default)]
    pub repository: Option<Spanned<String>>,
    #[serde(default)]
    pub branch: Option<Spanned<String>>,
    #[serde(default)]
    pub write_back_target: Option<Spanned<String>>,
    #[serde(default)]
    pub pull_request: Option<Spanned<serde_json::Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestTarget {
    #[serde(default)]
    pub helm: Option<Spanned<HelmTarget>>,
    #[serde(default)]
    pub kustomize: Option<Spanned<KustomizeTarget>>,
    #[serde(default)]
    pub plugin: Option<Spanned<serde_json::Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelmTarget {
    #[serde(default)]
    pub name: Option<Spanned<String>>,
    #[serde(default)]
    pub tag: Option<Spanned<String>>,
    #[serde(default)]
    pub spec: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KustomizeTarget {
    pub name: Spanned<String>,
}
