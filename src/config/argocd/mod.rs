//! Argo CD Image Updater's configuration as input (`--argocd PATH`): `argoproj.io/v1alpha1`
//! Applications with AIU's annotations, or selected and configured by AIU 1.x
//! `ImageUpdater` objects, read from files and folders, compiled into the
//! `tagsmith.yaml` they amount to (images and targets) plus the write-backs AIU's `git`
//! method would make, attached to the targets. Diagnostics are Flux's: file:line:col, the
//! object, the annotation.

mod annotations;
mod compile;
mod crd;
pub mod doc;
mod glob;
mod options;
pub mod raw;
mod settings;

use std::collections::BTreeMap;
use std::path::PathBuf;

use thiserror::Error;

use super::flux::{Diagnostic, Severity};
use super::{Config, ConfigError};
use crate::writeback::WriteBack;

#[derive(Debug, Error)]
pub enum ArgocdError {
    #[error("cannot read {path}: {source}", path = path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", diagnostics.iter().filter(|d| d.severity == Severity::Error).map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid { diagnostics: Vec<Diagnostic> },
    #[error("cannot write the compiled configuration: {message}")]
    Serialize { message: String },
    #[error("the configuration compiled from Argo CD Applications is invalid:\n{source}")]
    Compiled { source: ConfigError },
}

/// The Applications under some paths, compiled.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub doc: doc::Doc,
    /// Per target name, the files its Applications write back to.
    pub writebacks: BTreeMap<String, Vec<WriteBack>>,
    pub diagnostics: Vec<Diagnostic>,
    pub files: Vec<PathBuf>,
    pub origin: PathBuf,
}

/// Reads and compiles every Application under `paths`. Problems with single annotations are
/// diagnostics in the result; only unreadable paths fail here.
pub fn compile(paths: &[PathBuf]) -> Result<Compiled, ArgocdError> {
    let found = super::flux::files::discover(paths).map_err(|e| match e {
        super::flux::FluxError::Read { path, source } => ArgocdError::Read { path, source },
        other => ArgocdError::Serialize {
            message: other.to_string(),
        },
    })?;
    let mut diagnostics = found.diagnostics;
    let mut inputs = compile::Inputs::default();
    for file in &found.files {
        let text = std::fs::read_to_string(file).map_err(|source| ArgocdError::Read {
            path: file.clone(),
            source,
        })?;
        compile::read(file, &text, &mut inputs, &mut diagnostics);
    }
    if inputs.apps.is_empty() {
        diagnostics.push(Diagnostic {
            severity: Severity::Warning,
            file: paths.first().cloned().unwrap_or_default(),
            line: 0,
            column: 0,
            object: String::new(),
            field: String::new(),
            message: format!(
                "no argoproj.io Application in {} file(s) read",
                found.files.len()
            ),
        });
    }
    let (doc, writebacks) = compile::compile(&inputs, &mut diagnostics);
    super::flux::order(&mut diagnostics);
    Ok(Compiled {
        doc,
        writebacks,
        diagnostics,
        files: found.files,
        origin: paths.first().cloned().unwrap_or_else(|| PathBuf::from(".")),
    })
}

impl Compiled {
    pub fn has_errors(&self) -> bool {
        super::flux::has_errors(&self.diagnostics)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        super::flux::warnings(&self.diagnostics)
    }

    /// The images and targets as a `tagsmith.yaml` (without the write-backs, which have no
    /// key there).
    pub fn yaml(&self) -> Result<String, ArgocdError> {
        super::flux::render(
            &self.doc,
            "Compiled by tagsmith from Argo CD Applications in",
            &self.files,
        )
        .map_err(|message| ArgocdError::Serialize { message })
    }

    /// The validated config with the write-backs attached; fails when any diagnostic is an
    /// error.
    pub fn config(&self) -> Result<Config, ArgocdError> {
        if self.has_errors() {
            return Err(ArgocdError::Invalid {
                diagnostics: self.diagnostics.clone(),
            });
        }
        let text = self.yaml()?;
        let mut config = Config::parse(&text, &self.origin)
            .map_err(|source| ArgocdError::Compiled { source })?;
        for target in &mut config.targets {
            if let Some(wbs) = self.writebacks.get(&target.name) {
                target.writebacks = wbs.clone();
            }
        }
        Ok(config)
    }
}
