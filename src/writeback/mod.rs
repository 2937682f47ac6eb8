//! Argo CD Image Updater's git write-back targets as pure, byte-exact editors: the
//! `.argocd-source-<app>.yaml` parameter file (Kustomize images or Helm parameters), a
//! kustomization's `images:` (`kustomize edit set image`), and named keys of a Helm values
//! file. Each editor takes a file's bytes and the selections and returns the new bytes; IO
//! lives in [`tree`], which the engine calls beside the marker rewrite.

mod kustomization;
pub mod scalar;
mod source;
pub mod tree;
mod values;

use std::collections::BTreeMap;
use std::path::PathBuf;

use thiserror::Error;

use crate::model::{ImageRef, PolicyId};

pub use kustomization::edit as edit_kustomization;
pub use source::{edit_helm as edit_source_helm, edit_kustomize as edit_source_kustomize};
pub use values::edit as edit_values;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum WriteBackError {
    #[error("{file}: not valid YAML: {message}", file = file.display())]
    Parse { file: PathBuf, message: String },
    #[error("{file}: {message}", file = file.display())]
    Unsupported { file: PathBuf, message: String },
    #[error("{file}: key {key:?} not found (tagsmith edits existing keys only; add it)", file = file.display())]
    MissingKey { file: PathBuf, key: String },
    #[error("{file}: the edited file does not read back as written: {message}", file = file.display())]
    Verify { file: PathBuf, message: String },
    #[error("{file}: does not exist", file = file.display())]
    Missing { file: PathBuf },
}

impl WriteBackError {
    pub fn file(&self) -> &std::path::Path {
        match self {
            Self::Parse { file, .. }
            | Self::Unsupported { file, .. }
            | Self::MissingKey { file, .. }
            | Self::Verify { file, .. }
            | Self::Missing { file } => file,
        }
    }
}

/// Which file an Application's updates are written to, as its `write-back-target` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `.argocd-source-<app>.yaml` holding `kustomize.images`.
    SourceKustomize {
        /// `spec.source.kustomize.images` of the Application, as written in Git.
        spec_images: Vec<String>,
    },
    /// `.argocd-source-<app>.yaml` holding `helm.parameters`.
    SourceHelm,
    /// `kustomization[:<dir>]`: the kustomization file in `file` (a folder).
    Kustomization {
        /// `spec.source.kustomize.images` of the Application, applied too, as AIU does.
        spec_images: Vec<String>,
    },
    /// `helmvalues[:<file>]`.
    HelmValues,
}

/// One image an Application updates, with the names it is written under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteImage {
    pub policy: PolicyId,
    /// The image as `image-list` names it, registry included, without tag or constraint.
    pub name: String,
    /// `<alias>.kustomize.image-name`: the kustomize image to set instead of `name`.
    pub kustomize_name: Option<String>,
    /// Helm parameters: `image-spec` wins over `image-name`/`image-tag`.
    pub helm: HelmKeys,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelmKeys {
    Spec(String),
    NameTag { name: String, tag: String },
}

/// One Application's write-back: which file, how, for which images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteBack {
    /// `namespace/name` of the Application, for messages.
    pub application: String,
    /// Relative to the repository root. For `Kustomization`, the folder.
    pub file: PathBuf,
    pub kind: Kind,
    pub images: Vec<WriteImage>,
}

/// What one editor changed: for messages and the run report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub policy: PolicyId,
    pub line: usize,
    pub old: String,
    pub new: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edited {
    pub bytes: Vec<u8>,
    pub changes: Vec<Changed>,
}

/// The selected reference of each image, in AIU's spelling: the image-list name, `:tag`,
/// `@digest`. Images without a selection (their scan failed) are left as the file has them.
pub(crate) fn selected<'a>(
    images: &'a [WriteImage],
    selections: &BTreeMap<PolicyId, ImageRef>,
) -> Vec<(&'a WriteImage, Selected)> {
    images
        .iter()
        .filter_map(|image| {
            let sel = selections.get(&image.policy)?;
            let tag = sel.tag.as_ref().map(|t| t.as_str().to_string());
            let digest = sel.digest.as_ref().map(|d| d.as_str().to_string());
            Some((image, Selected { tag, digest }))
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selected {
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Selected {
    /// registry-scanner `ContainerImage.GetTagWithDigest`.
    pub fn tag_with_digest(&self) -> String {
        let mut s = self.tag.clone().unwrap_or_default();
        if let Some(d) = &self.digest {
            if s.is_empty() {
                s.push_str("latest");
            }
            s.push('@');
            s.push_str(d);
        }
        s
    }

    /// registry-scanner `ContainerImage.GetFullNameWithTag`.
    pub fn full(&self, name: &str) -> String {
        let mut s = name.to_string();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }
}

/// An `image-list` entry split as registry-scanner splits identifiers (for the config step).
pub fn scalar_identifier(image: &str) -> scalar::Identifier {
    scalar::Identifier::parse(image)
}
