//! `tagsmith convert flux PATH... > tagsmith.yaml`: the tagsmith.yaml that Flux objects amount
//! to. `--flux PATH` validates exactly this text, so running either gives the same result.

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, Subcommand};

use super::Status;
use crate::config::flux;

#[derive(Debug, Subcommand)]
pub enum ConvertCommand {
    /// From Flux objects: ImageRepository, ImagePolicy, ImageUpdateAutomation, GitRepository and
    /// Receiver files or folders (read recursively). Warnings go to stderr.
    Flux(ConvertFluxArgs),
}

#[derive(Debug, Args)]
pub struct ConvertFluxArgs {
    /// Files or folders of Flux objects.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Where secretRefs resolve: DIR/<namespace>/<name>/<key>, as Kubernetes mounts Secrets.
    /// The written config names these files; it never holds their values.
    #[arg(long, value_name = "DIR")]
    pub secrets_dir: Option<PathBuf>,
}

pub fn run(cmd: ConvertCommand) -> anyhow::Result<Status> {
    let ConvertCommand::Flux(args) = cmd;
    let compiled = flux::compile(
        &args.paths,
        &flux::Options {
            secrets_dir: args.secrets_dir,
        },
    )?;
    for d in &compiled.diagnostics {
        eprintln!("{d}");
    }
    if compiled.has_errors() {
        bail!("the Flux objects cannot be converted (errors above)");
    }
    // Validated as tagsmith would read it back, so what is printed is known to load.
    compiled.config()?;
    print!("{}", compiled.yaml()?);
    Ok(Status::Ok)
}
