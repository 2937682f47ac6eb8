//! `tagsmith check -c tagsmith.yaml [DIR]`: validate the config and, given a checkout, every
//! marker in it (unknown policies, near-misses, tenancy violations, values that cannot be set).
//! With `--flux PATH...` it first lists everything the Flux objects say that tagsmith cannot do.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::json;

use super::{OutputFormat, Status, inputs};
use crate::config::flux::Compiled;
use crate::config::{Config, Target};
use crate::model::{Digest, ImageRef, PolicyId};
use crate::rewrite::walk::{Mode, rewrite_tree_allowed};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The configuration file (default: tagsmith.yaml, unless --flux is given).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub flux: super::inputs::FluxArgs,
    /// A checkout of a target's repository whose markers to check (put it before --flux, which
    /// takes every path after it).
    pub dir: Option<PathBuf>,
    /// The target whose paths and tenancy apply to DIR (default: every target, or the whole
    /// tree without tenancy when the config has none).
    #[arg(long, value_name = "NAME")]
    pub target: Option<String>,
    /// Results as text for people or one JSON document for scripts.
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// A stand-in selection per configured policy: planning against it exercises every marker
/// (including `:digest`) and the verification of the edit, without a registry.
fn probe_selections(config: &Config) -> anyhow::Result<BTreeMap<PolicyId, ImageRef>> {
    let digest: Digest = format!("sha256:{}", "0".repeat(64)).parse()?;
    config
        .images
        .iter()
        .map(|i| {
            Ok((
                i.id.clone(),
                ImageRef {
                    name: i.image.clone(),
                    tag: Some("tagsmith-check".parse()?),
                    digest: Some(digest.clone()),
                },
            ))
        })
        .collect()
}

/// Lists the Flux objects' diagnostics as text; as JSON, returns them with the model built
/// from them, for the command's one JSON document.
fn flux_report(compiled: &Compiled, output: OutputFormat) -> serde_json::Value {
    match output {
        OutputFormat::Text => {
            for d in &compiled.diagnostics {
                println!("{d}");
            }
            println!(
                "{} Flux file(s): {} image(s), {} target(s), {} receiver(s), {} diagnostic(s)",
                compiled.files.len(),
                compiled.doc.images.len(),
                compiled.doc.targets.len(),
                compiled.doc.receivers.len(),
                compiled.diagnostics.len()
            );
            serde_json::Value::Null
        }
        OutputFormat::Json => json!({
            "files": compiled.files,
            "valid": !compiled.has_errors(),
            "diagnostics": compiled.diagnostics,
            "model": compiled.doc,
        }),
    }
}

pub fn run(args: CheckArgs) -> anyhow::Result<Status> {
    let inputs = inputs::read(args.config.as_deref(), &args.flux)?;
    let (flux_problems, flux_json) = match &inputs.flux {
        Some(compiled) => {
            let report = flux_report(compiled, args.output);
            if compiled.has_errors() {
                if args.output == OutputFormat::Json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&json!({ "valid": false, "flux": report }))?
                    );
                }
                bail!("the Flux objects have errors (listed above)");
            }
            (compiled.diagnostics.len(), report)
        }
        None => (0, serde_json::Value::Null),
    };
    let config = inputs.config()?;
    let config_name = config.path.clone();
    let Some(dir) = &args.dir else {
        match args.output {
            OutputFormat::Text => println!(
                "{}: valid ({} images, {} targets)",
                config_name.display(),
                config.images.len(),
                config.targets.len()
            ),
            OutputFormat::Json => println!(
                "{}",
                json!({ "config": config_name.display().to_string(), "valid": true, "problems": [], "flux": flux_json })
            ),
        }
        return Ok(if flux_problems == 0 {
            Status::Ok
        } else {
            Status::Pending
        });
    };
    let targets: Vec<Option<&Target>> = match &args.target {
        Some(name) => match config.targets.iter().find(|t| &t.name == name) {
            Some(t) => vec![Some(t)],
            None => bail!("no target named {name} in {}", config_name.display()),
        },
        None if config.targets.is_empty() => vec![None],
        None => config.targets.iter().map(Some).collect(),
    };
    let selections = probe_selections(&config)?;
    let mut problems = Vec::new();
    let mut markers = 0;
    for target in targets {
        let (paths, label) = match target {
            Some(t) => (t.paths.clone(), format!("target {}", t.name)),
            None => (Vec::new(), "tree".to_string()),
        };
        let allow = |path: &std::path::Path, policy: &PolicyId| {
            target.is_none_or(|t| {
                t.allows_policy(policy)
                    && t.tenancy
                        .allows(&path.to_string_lossy(), policy.namespace())
            })
        };
        let report = rewrite_tree_allowed(dir, &paths, &selections, Mode::DryRun, &allow, None)
            .with_context(|| format!("cannot check {}", dir.display()))?;
        markers += report.changes.len();
        for p in report.problems {
            let severity = if p.kind.is_error() {
                "error"
            } else {
                "warning"
            };
            problems.push((label.clone(), severity, p.to_string()));
        }
    }
    problems.dedup();
    match args.output {
        OutputFormat::Text => {
            for (label, severity, problem) in &problems {
                println!("{severity}: {label}: {problem}");
            }
            println!("{markers} marker(s) checked, {} problem(s)", problems.len());
        }
        OutputFormat::Json => {
            let list: Vec<_> = problems
                .iter()
                .map(|(label, severity, message)| json!({ "scope": label, "severity": severity, "message": message }))
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &json!({ "valid": problems.is_empty(), "markers": markers, "problems": list, "flux": flux_json })
                )?
            );
        }
    }
    Ok(if problems.is_empty() && flux_problems == 0 {
        Status::Ok
    } else {
        Status::Pending
    })
}
