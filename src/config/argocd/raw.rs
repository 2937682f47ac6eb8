//! Argo CD `Application` documents as read from Git: only the fields Argo CD Image Updater
//! reads; the rest of an Application is not looked at. Values keep their position.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

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
