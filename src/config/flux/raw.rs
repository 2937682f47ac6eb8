//! Flux's objects as written: serde types for the fields of ImageRepository, ImagePolicy,
//! ImageUpdateAutomation (image.toolkit.fluxcd.io v1beta2 and v1), GitRepository
//! (source.toolkit.fluxcd.io v1) and Receiver (notification.toolkit.fluxcd.io v1), named as in
//! the controllers' Go API types (`api/v1/*_types.go`). A field Flux does not know is an error, as
//! the API server's strict validation makes it; fields tagsmith does not use are kept as
//! `Spanned<IgnoredAny>` so the compile step can say where they are.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_saphyr::Spanned;

pub type Any = Option<Spanned<IgnoredAny>>;

/// Just enough of any document to decide whether it is one of ours.
#[derive(Debug, Deserialize)]
pub struct Head {
    #[serde(default, rename = "apiVersion")]
    pub api_version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Object<Spec> {
    pub api_version: Spanned<String>,
    pub kind: Spanned<String>,
    pub metadata: Metadata,
    pub spec: Spec,
    /// Objects exported from a cluster carry their status; it says nothing about intent.
    #[serde(default)]
    pub status: Any,
}

/// The parts of ObjectMeta that matter; the rest (annotations, uid, ...) is accepted and unused.
#[derive(Debug, Deserialize)]
pub struct Metadata {
    pub name: Spanned<String>,
    #[serde(default)]
    pub namespace: Option<Spanned<String>>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
pub struct LocalRef {
    pub name: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NamespacedRef {
    #[serde(default)]
    pub api_version: Option<Spanned<String>>,
    #[serde(default)]
    pub kind: Option<Spanned<String>>,
    pub name: Spanned<String>,
    #[serde(default)]
    pub namespace: Option<Spanned<String>>,
}

/// image-reflector-controller `ImageRepositorySpec`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImageRepositorySpec {
    pub image: Spanned<String>,
    #[serde(default)]
    pub interval: Option<Spanned<String>>,
    #[serde(default)]
    pub timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub secret_ref: Option<Spanned<LocalRef>>,
    #[serde(default)]
    pub proxy_secret_ref: Any,
    #[serde(default)]
    pub service_account_name: Option<Spanned<String>>,
    #[serde(default)]
    pub cert_secret_ref: Option<Spanned<LocalRef>>,
    #[serde(default)]
    pub suspend: Option<Spanned<bool>>,
    #[serde(default)]
    pub access_from: Any,
    #[serde(default)]
    pub exclusion_list: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub provider: Option<Spanned<String>>,
    #[serde(default)]
    pub insecure: Option<Spanned<bool>>,
}

/// image-reflector-controller `ImagePolicySpec` (the same in v1beta2 and v1).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImagePolicySpec {
    pub image_repository_ref: Spanned<NamespacedRef>,
    pub policy: Spanned<PolicyChoice>,
    #[serde(default)]
    pub filter_tags: Option<TagFilter>,
    #[serde(default)]
    pub digest_reflection_policy: Option<Spanned<String>>,
    #[serde(default)]
    pub interval: Option<Spanned<String>>,
    #[serde(default)]
    pub suspend: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyChoice {
    #[serde(default)]
    pub semver: Option<Spanned<SemVer>>,
    #[serde(default)]
    pub alphabetical: Option<Spanned<Order>>,
    #[serde(default)]
    pub numerical: Option<Spanned<Order>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SemVer {
    pub range: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Order {
    #[serde(default)]
    pub order: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagFilter {
    #[serde(default)]
    pub pattern: Option<Spanned<String>>,
    #[serde(default)]
    pub extract: Option<Spanned<String>>,
}

/// image-automation-controller `ImageUpdateAutomationSpec` (api/v1 and api/v1beta2).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImageUpdateAutomationSpec {
    pub source_ref: Spanned<NamespacedRef>,
    #[serde(default)]
    pub git: Option<Spanned<GitSpec>>,
    #[serde(default)]
    pub interval: Option<Spanned<String>>,
    #[serde(default)]
    pub policy_selector: Option<Spanned<LabelSelector>>,
    #[serde(default)]
    pub update: Option<Spanned<UpdateStrategy>>,
    #[serde(default)]
    pub suspend: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitSpec {
    #[serde(default)]
    pub checkout: Option<Checkout>,
    pub commit: Spanned<CommitSpec>,
    #[serde(default)]
    pub push: Option<PushSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkout {
    #[serde(rename = "ref")]
    pub reference: Spanned<GitRef>,
}

/// source-controller `GitRepositoryRef`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitRef {
    #[serde(default)]
    pub branch: Option<Spanned<String>>,
    #[serde(default)]
    pub tag: Option<Spanned<String>>,
    #[serde(default)]
    pub semver: Option<Spanned<String>>,
    #[serde(default)]
    pub name: Option<Spanned<String>>,
    #[serde(default)]
    pub commit: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CommitSpec {
    pub author: Spanned<CommitUser>,
    #[serde(default)]
    pub signing_key: Option<Spanned<SigningKey>>,
    #[serde(default)]
    pub message_template: Option<Spanned<String>>,
    #[serde(default)]
    pub message_template_values: Option<Spanned<BTreeMap<String, String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitUser {
    #[serde(default)]
    pub name: Option<Spanned<String>>,
    pub email: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SigningKey {
    pub secret_ref: Spanned<LocalRef>,
    /// `gpg` (the default) or `ssh`.
    #[serde(default, rename = "type")]
    pub kind: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushSpec {
    #[serde(default)]
    pub branch: Option<Spanned<String>>,
    #[serde(default)]
    pub refspec: Option<Spanned<String>>,
    #[serde(default)]
    pub options: Option<Spanned<BTreeMap<String, String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateStrategy {
    #[serde(default)]
    pub strategy: Option<Spanned<String>>,
    #[serde(default)]
    pub path: Option<Spanned<String>>,
}

/// Kubernetes `metav1.LabelSelector`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub match_expressions: Vec<Spanned<Requirement>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    pub key: String,
    pub operator: Spanned<String>,
    #[serde(default)]
    pub values: Vec<String>,
}

/// source-controller `GitRepositorySpec` (api/v1).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GitRepositorySpec {
    pub url: Spanned<String>,
    #[serde(default)]
    pub secret_ref: Option<Spanned<LocalRef>>,
    #[serde(default)]
    pub provider: Option<Spanned<String>>,
    #[serde(default)]
    pub service_account_name: Option<Spanned<String>>,
    #[serde(default)]
    pub interval: Option<Spanned<String>>,
    #[serde(default)]
    pub timeout: Option<Spanned<String>>,
    #[serde(default, rename = "ref")]
    pub reference: Option<Spanned<GitRef>>,
    #[serde(default)]
    pub verify: Any,
    #[serde(default)]
    pub proxy_secret_ref: Any,
    #[serde(default)]
    pub ignore: Any,
    #[serde(default)]
    pub suspend: Option<Spanned<bool>>,
    #[serde(default)]
    pub recurse_submodules: Option<Spanned<bool>>,
    #[serde(default)]
    pub include: Any,
    #[serde(default)]
    pub sparse_checkout: Any,
}

/// notification-controller `ReceiverSpec` (api/v1).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReceiverSpec {
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    #[serde(default)]
    pub interval: Any,
    #[serde(default)]
    pub events: Any,
    #[serde(default)]
    pub resources: Vec<Spanned<ReceiverResource>>,
    #[serde(default)]
    pub resource_filter: Any,
    #[serde(default)]
    pub secret_ref: Option<Spanned<LocalRef>>,
    #[serde(default)]
    pub oidc_providers: Any,
    #[serde(default)]
    pub suspend: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReceiverResource {
    #[serde(default)]
    pub api_version: Option<String>,
    pub kind: Spanned<String>,
    pub name: Spanned<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub match_labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub filter: Any,
}

/// A Kustomize `kustomization.yaml`: only `resources` is read, to find more files.
#[derive(Debug, Deserialize)]
pub struct Kustomization {
    #[serde(default)]
    pub resources: Vec<Spanned<String>>,
}
