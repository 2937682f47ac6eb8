//! `tagsmith apply DIR --set NS:NAME=IMAGE[:TAG][@DIGEST]... [--check] [--dry-run]`: offline
//! rewrite of a tree, no registry and no git.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use serde_json::json;

use super::{OutputFormat, Status};
use crate::model::{ImageRef, PolicyId};
use crate::rewrite::walk::{Mode, TreeReport, rewrite_tree};

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The tree (or single file) to rewrite: `*.yaml`, `*.yml`, `Kustomization`, `*.cue`.
    pub dir: PathBuf,
    /// A policy's selection, e.g. `team-a:app=ghcr.io/org/app:1.2.3`; repeatable.
    #[arg(long = "set", value_name = "NS:NAME=IMAGE[:TAG][@DIGEST]", value_parser = parse_selection)]
    pub set: Vec<(PolicyId, ImageRef)>,
    /// Write nothing; exit 1 when something would change.
    #[arg(long)]
    pub check: bool,
    /// Write nothing; print a unified diff of what would change.
    #[arg(long)]
    pub dry_run: bool,
    /// Results as text for people or one JSON document for scripts.
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

fn parse_selection(s: &str) -> Result<(PolicyId, ImageRef), String> {
    let (policy, image) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NS:NAME=IMAGE[:TAG][@DIGEST], got {s:?}"))?;
    let policy: PolicyId = policy.parse().map_err(|e| format!("{e}"))?;
    let image: ImageRef = image.parse().map_err(|e| format!("{e}"))?;
    Ok((policy, image))
}

pub fn run(args: ApplyArgs) -> anyhow::Result<Status> {
    let mut selections = BTreeMap::new();
    for (policy, image) in args.set {
        if let Some(previous) = selections.insert(policy.clone(), image.clone())
            && previous != image
        {
            bail!("--set names {policy} twice ({previous} and {image})");
        }
    }
    let write = !(args.check || args.dry_run);
    let mode = if write { Mode::Write } else { Mode::DryRun };
    // A single file is rewritten as the only path of the tree around it.
    let (base, paths) = match (args.dir.is_file(), args.dir.parent(), args.dir.file_name()) {
        (true, Some(parent), Some(name)) => (parent.to_path_buf(), vec![PathBuf::from(name)]),
        _ => (args.dir.clone(), Vec::new()),
    };
    let base = if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base
    };
    let report = rewrite_tree(&base, &paths, &selections, mode)?;

    match args.output {
        OutputFormat::Text => {
            print_text(&report, args.dry_run);
            let done = if write { "written" } else { "not written" };
            eprintln!(
                "{} change(s) in {} file(s), {done}; {} file(s) with markers of {} scanned",
                report.changes.len(),
                report.changed.len(),
                report.files_parsed,
                report.files_seen
            );
        }
        OutputFormat::Json => print_json(&report, args.dry_run, write)?,
    }
    let errors = report.problems.iter().filter(|p| p.kind.is_error()).count();
    if errors > 0 {
        bail!("{errors} file(s) could not be processed");
    }
    if args.check && !report.changes.is_empty() {
        return Ok(Status::Pending);
    }
    Ok(Status::Ok)
}

fn print_text(report: &TreeReport, dry_run: bool) {
    for problem in &report.problems {
        let level = if problem.kind.is_error() {
            "error"
        } else {
            "warning"
        };
        eprintln!("{level}: {problem}");
    }
    if dry_run {
        for file in &report.changed {
            print!("{}", file.unified_diff());
        }
    } else {
        for change in &report.changes {
            println!("{change}");
        }
    }
}

fn print_json(report: &TreeReport, dry_run: bool, written: bool) -> anyhow::Result<()> {
    let changes: Vec<_> = report
        .changes
        .iter()
        .map(|c| {
            json!({
                "file": c.file.display().to_string(),
                "line": c.line,
                "policy": c.policy.to_string(),
                "old": c.old,
                "new": c.new,
            })
        })
        .collect();
    let problems: Vec<_> = report
        .problems
        .iter()
        .map(|p| {
            json!({
                "path": p.path.display().to_string(),
                "line": p.line,
                "severity": if p.kind.is_error() { "error" } else { "warning" },
                "message": p.kind.to_string(),
            })
        })
        .collect();
    let mut doc = json!({
        "files": { "seen": report.files_seen, "parsed": report.files_parsed, "changed": report.changed.len() },
        "written": written && !report.changed.is_empty(),
        "changes": changes,
        "problems": problems,
    });
    if dry_run {
        let diffs: Vec<_> = report
            .changed
            .iter()
            .map(|f| json!({ "path": f.path.display().to_string(), "diff": f.unified_diff() }))
            .collect();
        doc["diffs"] = json!(diffs);
    }
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}
