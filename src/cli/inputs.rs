//! Where the config comes from: `-c tagsmith.yaml`, Flux objects (`--flux PATH...`, or the
//! file's `flux:` key), Argo CD Applications (`--argocd PATH...`), or several, with `-c`
//! then supplying what the objects cannot say.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;

use crate::config::Config;
use crate::config::argocd;
use crate::config::flux::{self, Compiled};

pub const DEFAULT_CONFIG: &str = "tagsmith.yaml";

#[derive(Debug, Clone, Default, Args)]
pub struct FluxArgs {
    /// Flux objects to run from: ImageRepository, ImagePolicy, ImageUpdateAutomation,
    /// GitRepository and Receiver files or folders (read recursively). With -c, the file adds
    /// server, state and registry settings.
    #[arg(long = "flux", value_name = "PATH", num_args = 1..)]
    pub flux: Vec<PathBuf>,
    /// Where the Flux objects' secretRefs resolve: DIR/<namespace>/<name>/<key>, as Kubernetes
    /// mounts Secrets.
    #[arg(long, value_name = "DIR")]
    pub secrets_dir: Option<PathBuf>,
    /// Argo CD Applications to run from, with Argo CD Image Updater's annotations or its
    /// ImageUpdater objects (files or folders, read recursively); updates are written back to
    /// Git as its git method does.
    /// With -c, the file adds server, state, registry and git credential settings.
    #[arg(long = "argocd", value_name = "PATH", num_args = 1..)]
    pub argocd: Vec<PathBuf>,
}

/// The `-c` file (when given, or when no Flux objects are) and the compiled Flux objects
/// (from `--flux` and the file's `flux:` key), not yet merged.
#[derive(Debug)]
pub struct Inputs {
    pub base: Option<Config>,
    pub flux: Option<Compiled>,
    pub argocd: Option<argocd::Compiled>,
}

pub fn read(config: Option<&Path>, args: &FluxArgs) -> anyhow::Result<Inputs> {
    let base = match (config, args.flux.is_empty() && args.argocd.is_empty()) {
        (Some(path), _) => Some(Config::load(path)?),
        (None, true) => Some(Config::load(Path::new(DEFAULT_CONFIG))?),
        (None, false) => None,
    };
    let argocd = if args.argocd.is_empty() {
        None
    } else {
        Some(argocd::compile(&args.argocd)?)
    };
    let mut paths = args.flux.clone();
    if let Some(base) = &base {
        paths.extend(base.flux.iter().cloned());
    }
    if paths.is_empty() {
        return Ok(Inputs {
            base,
            flux: None,
            argocd,
        });
    }
    let options = flux::Options {
        secrets_dir: args.secrets_dir.clone(),
    };
    let compiled = flux::compile(&paths, &options)?;
    Ok(Inputs {
        base,
        flux: Some(compiled),
        argocd,
    })
}

impl Inputs {
    /// One config; Flux errors fail it, listed all at once.
    pub fn config(self) -> anyhow::Result<Config> {
        let mut config = self.base;
        if let Some(compiled) = self.flux {
            let flux = compiled.config()?;
            config = Some(match config {
                Some(base) => flux::merge(base, flux)?,
                None => flux,
            });
        }
        if let Some(compiled) = self.argocd {
            let apps = compiled.config()?;
            config = Some(match config {
                Some(base) => flux::merge(base, apps)?,
                None => apps,
            });
        }
        config.context("no configuration given")
    }
}

/// For `once` and `run`: warnings are logged once each, errors end the command.
pub fn load(config: Option<&Path>, args: &FluxArgs) -> anyhow::Result<Config> {
    let inputs = read(config, args)?;
    if let Some(compiled) = &inputs.flux {
        for warning in compiled.warnings() {
            tracing::warn!("{warning}");
        }
    }
    if let Some(compiled) = &inputs.argocd {
        for warning in compiled.warnings() {
            tracing::warn!("{warning}");
        }
    }
    inputs.config()
}
