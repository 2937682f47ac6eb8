//! The seam between the two ways Argo CD Image Updater is configured and the model tagsmith
//! builds: one Application's images with their update settings, and its write-back. AIU 1.x
//! itself reads annotations into the `ImageUpdater` CRD's types (`pkg/argocd/annotations.go`
//! `getImagesFromAnnotations`, `getWriteBackConfigFromAnnotations`) and cascades the CRD's
//! levels field by field (`pkg/argocd/argocd.go` `mergeCommonUpdateSettings`,
//! `mergeWBCSettings`); these types are that shape, with every value's place kept for
//! diagnostics.

use std::path::{Path, PathBuf};

use serde_saphyr::Spanned;

use crate::config::flux::{Diagnostic, Severity};

/// Where a setting is written: file:line:col, the object and the field path.
#[derive(Debug, Clone)]
pub struct Loc {
    pub file: PathBuf,
    pub line: u64,
    pub column: u64,
    pub object: String,
    pub field: String,
}

impl Loc {
    pub fn of<T>(file: &Path, object: &str, at: &Spanned<T>, field: impl Into<String>) -> Loc {
        Loc {
            file: file.to_path_buf(),
            line: at.referenced.line(),
            column: at.referenced.column(),
            object: object.to_string(),
            field: field.into(),
        }
    }

    pub fn diagnostic(&self, severity: Severity, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity,
            file: self.file.clone(),
            line: self.line,
            column: self.column,
            object: self.object.clone(),
            field: self.field.clone(),
            message: message.into(),
        }
    }
}

/// A setting and where it is written.
#[derive(Debug, Clone)]
pub struct Val<T = String> {
    pub value: T,
    pub at: Loc,
}

impl Val {
    pub fn trimmed(&self) -> &str {
        self.value.trim()
    }
}

/// `CommonUpdateSettings`: what selects an image's tags. Values are as written (strings for
/// annotations; the CRD's booleans as `true`/`false`), checked when the model is built.
#[derive(Debug, Clone, Default)]
pub struct Common {
    pub update_strategy: Option<Val>,
    pub force_update: Option<Val>,
    pub allow_tags: Option<Val>,
    pub ignore_tags: Option<Val<Vec<String>>>,
    pub pull_secret: Option<Val>,
    pub platforms: Option<Val<Vec<String>>>,
}

impl Common {
    /// `mergeCommonUpdateSettings(self, more)`: each field of `more` that is set wins.
    pub fn under(&self, more: &Common) -> Common {
        fn pick<T: Clone>(base: &Option<T>, more: &Option<T>) -> Option<T> {
            more.clone().or_else(|| base.clone())
        }
        Common {
            update_strategy: pick(&self.update_strategy, &more.update_strategy),
            force_update: pick(&self.force_update, &more.force_update),
            allow_tags: pick(&self.allow_tags, &more.allow_tags),
            ignore_tags: pick(&self.ignore_tags, &more.ignore_tags),
            pull_secret: pick(&self.pull_secret, &more.pull_secret),
            platforms: pick(&self.platforms, &more.platforms),
        }
    }
}

/// One image of an Application (`ImageConfig`, or one `image-list` entry).
#[derive(Debug, Clone)]
pub struct ImageSettings {
    pub alias: Option<String>,
    /// The image name with an optional tag or constraint, as written.
    pub image: String,
    /// Where the image is named: problems with the image as a whole are reported here.
    pub at: Loc,
    /// Already cascaded down to this image.
    pub common: Common,
    pub kustomize_name: Option<Val>,
    pub helm_spec: Option<Val>,
    pub helm_name: Option<Val>,
    pub helm_tag: Option<Val>,
}

/// Which input the settings come from, to name its keys in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    Annotations,
    Crd,
}

impl Keys {
    pub fn method(self) -> &'static str {
        match self {
            Keys::Annotations => "write-back-method",
            Keys::Crd => "writeBackConfig.method",
        }
    }

    pub fn repository(self) -> &'static str {
        match self {
            Keys::Annotations => "the git-repository annotation",
            Keys::Crd => "writeBackConfig.gitConfig.repository",
        }
    }

    pub fn branch(self) -> &'static str {
        match self {
            Keys::Annotations => "git-branch",
            Keys::Crd => "writeBackConfig.gitConfig.branch",
        }
    }
}

/// `WriteBackConfig` with its `gitConfig`, cascaded.
#[derive(Debug, Clone)]
pub struct WriteBackSettings {
    pub method: Option<Val>,
    /// Where a missing method is reported.
    pub method_unset: Loc,
    pub keys: Keys,
    pub target: Option<Val>,
    pub branch: Option<Val>,
    pub repository: Option<Val>,
}

/// Everything tagsmith needs to know about one Application besides its `spec.source`.
#[derive(Debug, Clone)]
pub struct AppSettings {
    pub images: Vec<ImageSettings>,
    pub writeback: WriteBackSettings,
}
