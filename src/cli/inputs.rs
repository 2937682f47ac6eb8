//! Where the config comes from: `-c tagsmith.yaml`, Flux objects (`--flux PATH...`, or the
//! file's `flux:` key), or both, with `-c` then supplying what Flux objects cannot say.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;

use crate::config::Config;
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
}

/// The `-c` file (when given, or when no Flux objects are) and the compiled Flux objects
/// (from `--flux` and the file's `flux:` key), not yet merged.
#[derive(Debug)]
pub struct Inputs {
    pub base: Option<Config>,
    pub flux: Option<Compiled>,
}

pub fn read(config: Option<&Path>, args: &FluxArgs) -> anyhow::Result<Inputs> {
    let base = match (config, args.flux.is_empty()) {
        (Some(path), _) => Some(Config::load(path)?),
        (None, true) => Some(Config::load(Path::new(DEFAULT_CONFIG))?),
        (None, false) => None,
    };
    let mut paths = args.flux.clone();
    if let Some(base) = &base {
        paths.extend(base.flux.iter().cloned());
    }
    if paths.is_empty() {
        return Ok(Inputs { base, flux: None });
    }
    let options = flux::Options {
        secrets_dir: args.secrets_dir.clone(),
    };
    let compiled = flux::compile(&paths, &options)?;
    Ok(Inputs {
        base,
        flux: Some(compiled),
    })
}

impl Inputs {
    /// One config; Flux errors fail it, listed all at once.
    pub fn config(self) -> anyhow::Result<Config> {
        let Some(compiled) = self.flux else {
            return self.base.context("no configuration given");
        };
        let flux = compiled.config()?;
        match self.base {
            Some(base) => Ok(flux::merge(base, flux)?),
            None => Ok(flux),
        }
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
    inputs.config()
}
