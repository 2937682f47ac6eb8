//! `tagsmith convert flux PATH... > tagsmith.yaml`: the tagsmith.yaml that Flux objects amount
//! to. `--flux PATH` validates exactly this text, so running either gives the same result.

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, Subcommand};

use super::Status;
use crate::config::{argocd, flux};
use crate::writeback::{HelmKeys, Kind};

#[derive(Debug, Subcommand)]
pub enum ConvertCommand {
    /// From Flux objects: ImageRepository, ImagePolicy, ImageUpdateAutomation, GitRepository and
    /// Receiver files or folders (read recursively). Warnings go to stderr.
    Flux(ConvertFluxArgs),
    /// From Argo CD Applications with Argo CD Image Updater annotations or ImageUpdater objects
    /// (files or folders).
    /// Write-backs to Helm values or a kustomization become markers, listed on stderr to add
    /// to those files; `.argocd-source-*` write-backs have no marker form and are refused
    /// (run those with --argocd).
    Argocd(ConvertArgocdArgs),
}

#[derive(Debug, Args)]
pub struct ConvertArgocdArgs {
    /// Files or folders of Argo CD Applications.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
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
    let args = match cmd {
        ConvertCommand::Flux(args) => args,
        ConvertCommand::Argocd(args) => return run_argocd(&args),
    };
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

/// The markers that make a write-back a marker edit, or why there is none.
fn markers(wb: &crate::writeback::WriteBack) -> Result<Vec<String>, String> {
    let file = wb.file.display();
    match wb.kind {
        Kind::SourceKustomize { .. } | Kind::SourceHelm => Err(format!(
            "Application {}: the write-back to {file} (an .argocd-source file tagsmith creates) has no marker form; run with --argocd, or set write-back-target to kustomization or helmvalues",
            wb.application
        )),
        Kind::Kustomization { .. } => Ok(wb
            .images
            .iter()
            .map(|i| {
                let name = i.kustomize_name.as_deref().unwrap_or(&i.name);
                format!(
                    "{file}/kustomization.yaml: images entry `name: {name}`: add `# {{\"$imagepolicy\": \"{}:tag\"}}` after its newTag",
                    i.policy
                )
            })
            .collect()),
        Kind::HelmValues => Ok(wb
            .images
            .iter()
            .flat_map(|i| match &i.helm {
                HelmKeys::Spec(key) => vec![format!(
                    "{file}: key {key}: add `# {{\"$imagepolicy\": \"{}\"}}` after its value",
                    i.policy
                )],
                HelmKeys::NameTag { name, tag } => vec![
                    format!(
                        "{file}: key {tag}: add `# {{\"$imagepolicy\": \"{}:tag\"}}` after its value",
                        i.policy
                    ),
                    format!(
                        "{file}: key {name}: add `# {{\"$imagepolicy\": \"{}:name\"}}` after its value",
                        i.policy
                    ),
                ],
            })
            .collect()),
    }
}

fn run_argocd(args: &ConvertArgocdArgs) -> anyhow::Result<Status> {
    let compiled = argocd::compile(&args.paths)?;
    for d in &compiled.diagnostics {
        eprintln!("{d}");
    }
    if compiled.has_errors() {
        bail!("the Argo CD Applications cannot be converted (errors above)");
    }
    let mut refused = Vec::new();
    let mut add = Vec::new();
    for wb in compiled.writebacks.values().flatten() {
        match markers(wb) {
            Ok(list) => add.extend(list),
            Err(why) => refused.push(why),
        }
    }
    if !refused.is_empty() {
        for why in &refused {
            eprintln!("{why}");
        }
        bail!(
            "{} write-back(s) cannot be expressed as markers plus tagsmith.yaml (listed above)",
            refused.len()
        );
    }
    compiled.config()?;
    for line in &add {
        eprintln!("add marker: {line}");
    }
    print!("{}", compiled.yaml()?);
    Ok(Status::Ok)
}
