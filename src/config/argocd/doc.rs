//! The `tagsmith.yaml` Applications amount to: images (one per `image-list` entry) and
//! targets (one per repository and branch).

use serde::Serialize;

pub use crate::config::flux::doc::{Filter, Image};

#[derive(Debug, Default, Clone, Serialize)]
pub struct Doc {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Image>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<Target>,
    /// Credentials from `pull-secret` annotations, one entry per registry host.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub registries: Vec<Registry>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Registry {
    pub host: String,
    pub auth: RegistryAuth,
}

/// `registries[].auth` forms a pull secret maps onto.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RegistryAuth {
    Basic {
        #[serde(rename = "credentialsEnv")]
        credentials_env: String,
    },
    Exec {
        command: Vec<String>,
        output: &'static str,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub name: String,
    pub git: Git,
    pub paths: Vec<String>,
    pub policies: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push: Option<Push>,
    pub commit: Commit,
}

#[derive(Debug, Clone, Serialize)]
pub struct Git {
    pub url: String,
    pub branch: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Push {
    pub branch: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Commit {
    pub message: String,
}
