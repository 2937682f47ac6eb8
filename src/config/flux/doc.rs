//! The `tagsmith.yaml` the Flux objects amount to. `tagsmith convert flux` prints it, and
//! `--flux` validates exactly this text as a `tagsmith.yaml`, so both give the same `Config`.

use serde::Serialize;

fn is_false(b: &bool) -> bool {
    !b
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Doc {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Image>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<Target>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub registries: Vec<Registry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub receivers: Vec<Receiver>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    pub policy: String,
    pub image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub semver: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alphabetical: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub numerical: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newest_build: Option<NewestBuild>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_tags: Option<Filter>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclude: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// A suspended ImagePolicy, or one of a suspended ImageRepository.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
}

/// `newestBuild: {}`, with the platforms whose images count.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NewestBuild {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Filter {
    pub pattern: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extract: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    pub name: String,
    pub git: Git,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// The ImagePolicies the automation's policySelector picks.
    pub policies: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push: Option<Push>,
    pub commit: Commit,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Git {
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub semver: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<GitAuth>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GitAuth {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_key_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub known_hosts_file: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Push {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Commit {
    pub author: Author,
    pub go_template: GoTemplate,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<SigningKey>,
}

/// `commit.signingKey`: an SSH key file, or an OpenPGP key with its passphrase file.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum SigningKey {
    Ssh(String),
    #[serde(rename_all = "camelCase")]
    OpenPgp {
        openpgp: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        passphrase_file: Option<String>,
    },
}

/// The automation's messageTemplate, rendered at commit time as Flux renders it.
#[derive(Debug, Clone, Serialize)]
pub struct GoTemplate {
    pub template: String,
    pub namespace: String,
    pub name: String,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub values: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Author {
    pub name: String,
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Registry {
    pub host: String,
    #[serde(skip_serializing_if = "is_false")]
    pub insecure: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<RegistryAuth>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistryAuth {
    pub docker_config: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Receiver {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub secret_file: String,
}
