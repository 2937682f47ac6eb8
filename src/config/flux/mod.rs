//! Flux's own objects as configuration (`--flux PATH`, the `flux:` key): ImageRepository,
//! ImagePolicy, ImageUpdateAutomation, GitRepository and Receiver documents, read from files
//! and folders, compiled into the `tagsmith.yaml` they amount to (`doc::Doc`) and validated by
//! the same code as a `tagsmith.yaml`. Every field tagsmith cannot honour is a located
//! diagnostic: file:line, the object, the field path.

pub(crate) mod compile;
pub mod doc;
pub(crate) mod files;
pub mod gotemplate;
pub mod raw;
mod secrets;
pub(crate) mod selector;
pub mod template;

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;
use thiserror::Error;

use super::{Config, ConfigError};

#[derive(Debug, Error)]
pub enum FluxError {
    #[error("cannot read {path}: {source}", path = path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", diagnostics.iter().filter(|d| d.severity == Severity::Error).map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid { diagnostics: Vec<Diagnostic> },
    #[error("cannot write the compiled configuration: {message}")]
    Serialize { message: String },
    #[error("the configuration compiled from Flux objects is invalid:\n{source}")]
    Compiled { source: ConfigError },
    #[error("{message}")]
    Merge { message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One thing tagsmith cannot do as Flux would, where it is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    pub line: u64,
    pub column: u64,
    /// `Kind namespace/name`, or empty for a problem with a whole file.
    pub object: String,
    /// The field path inside the object, e.g. `spec.provider`.
    pub field: String,
    pub message: String,
}

/// Whether any diagnostic is an error: an input front end's result is then unusable.
pub(crate) fn has_errors(diagnostics: &[Diagnostic]) -> bool {
    diagnostics.iter().any(|d| d.severity == Severity::Error)
}

pub(crate) fn warnings(diagnostics: &[Diagnostic]) -> impl Iterator<Item = &Diagnostic> {
    diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
}

/// A front end's compiled model as the `tagsmith.yaml` text it amounts to, headed by a
/// comment naming the input files. The error is the serializer's message.
pub(crate) fn render(
    doc: &impl Serialize,
    header: &str,
    files: &[PathBuf],
) -> Result<String, String> {
    let mut body = serde_saphyr::to_string(doc).map_err(|e| e.to_string())?;
    if !body.ends_with('\n') {
        body.push('\n');
    }
    let sources = files
        .iter()
        .map(|f| format!("#   {}\n", f.display()))
        .collect::<String>();
    Ok(format!("# {header}:\n{sources}{body}"))
}

/// Errors before warnings, each by place, and each once: how every input front end lists them.
pub(crate) fn order(diagnostics: &mut Vec<Diagnostic>) {
    diagnostics.sort_by(|a, b| {
        (a.severity, &a.file, a.line, a.column).cmp(&(b.severity, &b.file, b.line, b.column))
    });
    diagnostics.dedup();
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        write!(f, ": {severity}:")?;
        if !self.object.is_empty() {
            write!(f, " {}", self.object)?;
        }
        if !self.field.is_empty() {
            write!(f, " {}:", self.field)?;
        } else if !self.object.is_empty() {
            write!(f, ":")?;
        }
        write!(f, " {}", self.message)
    }
}

/// Where `secretRef`s resolve: Secrets mounted as Kubernetes mounts them,
/// `DIR/<namespace>/<name>/<key>`.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub secrets_dir: Option<PathBuf>,
}

/// The Flux objects under some paths, compiled.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub doc: doc::Doc,
    pub diagnostics: Vec<Diagnostic>,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
    /// Names the source in messages (the first path given).
    pub origin: PathBuf,
}

/// Reads and compiles every Flux object under `paths`. Problems with single fields are
/// diagnostics in the result; only unreadable paths fail here.
pub fn compile(paths: &[PathBuf], options: &Options) -> Result<Compiled, FluxError> {
    let found = files::discover(paths)?;
    let mut diagnostics = found.diagnostics;
    let mut objects = compile::Objects::default();
    for file in &found.files {
        let text = std::fs::read_to_string(file).map_err(|source| FluxError::Read {
            path: file.clone(),
            source,
        })?;
        objects.read(file, &text, &mut diagnostics);
    }
    if objects.is_empty() {
        diagnostics.push(Diagnostic {
            severity: Severity::Warning,
            file: paths.first().cloned().unwrap_or_default(),
            line: 0,
            column: 0,
            object: String::new(),
            field: String::new(),
            message: format!(
                "no ImageRepository, ImagePolicy, ImageUpdateAutomation, GitRepository or Receiver in {} file(s) read",
                found.files.len()
            ),
        });
    }
    let doc = compile::compile(&objects, options, &mut diagnostics);
    order(&mut diagnostics);
    Ok(Compiled {
        doc,
        diagnostics,
        files: found.files,
        origin: paths.first().cloned().unwrap_or_else(|| PathBuf::from(".")),
    })
}

impl Compiled {
    pub fn has_errors(&self) -> bool {
        has_errors(&self.diagnostics)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        warnings(&self.diagnostics)
    }

    /// The equivalent `tagsmith.yaml`.
    pub fn yaml(&self) -> Result<String, FluxError> {
        render(
            &self.doc,
            "Compiled by `tagsmith convert flux` from",
            &self.files,
        )
        .map_err(|message| FluxError::Serialize { message })
    }

    /// The validated config; fails when any diagnostic is an error.
    pub fn config(&self) -> Result<Config, FluxError> {
        if self.has_errors() {
            return Err(FluxError::Invalid {
                diagnostics: self.diagnostics.clone(),
            });
        }
        let text = self.yaml()?;
        Config::parse(&text, &self.origin).map_err(|source| FluxError::Compiled { source })
    }
}

/// `base` (a `tagsmith.yaml` given with `-c`) supplies what Flux objects cannot say: server
/// addresses, the state folder, registry transport settings. Images, targets and receivers of
/// both are kept; a name defined in both is an error.
pub fn merge(mut base: Config, flux: Config) -> Result<Config, FluxError> {
    let duplicate = |what: &str, name: &str| FluxError::Merge {
        message: format!(
            "{what} {name} is defined both in {} and by the Flux objects",
            base.path.display()
        ),
    };
    for image in flux.images {
        if base.image(&image.id).is_some() {
            return Err(duplicate("policy", &image.id.to_string()));
        }
        base.images.push(image);
    }
    for target in flux.targets {
        if base.targets.iter().any(|t| t.name == target.name) {
            return Err(duplicate("target", &target.name));
        }
        base.targets.push(target);
    }
    for receiver in flux.receivers {
        if base.receivers.iter().any(|r| r.name == receiver.name) {
            return Err(duplicate("receiver", &receiver.name));
        }
        base.receivers.push(receiver);
    }
    for registry in flux.registries {
        match base.registries.iter_mut().find(|r| r.host == registry.host) {
            // The file's transport settings stay; what the objects say about TLS and
            // credentials fills in what the file leaves open.
            Some(known) => {
                if known.insecure.is_none() {
                    known.insecure = registry.insecure;
                }
                if known.ca.is_none() {
                    known.ca = registry.ca;
                }
                if known.auth.is_none() {
                    known.auth = registry.auth;
                }
            }
            None => base.registries.push(registry),
        }
    }
    Ok(base)
}
