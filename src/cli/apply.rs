//! `tagsmith apply DIR --set NS:NAME=IMAGE[:TAG][@DIGEST]... [--check] [--dry-run]`: offline
//! rewrite of a tree, no registry and no git.
//!
//! Scans are cached across runs (see [`crate::rewrite::cache`]): one file per tree in the
//! user's cache folder, so a CI job or pre-commit hook that runs `--check` over a tree that
//! barely changed parses only what did.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::Args;
use serde_json::json;

use super::{OutputFormat, Status};
use crate::model::{ImageRef, PolicyId};
use crate::rewrite::walk::{Mode, TreeReport, rewrite_tree};
use crate::rewrite::{ProblemKind, ScanCache};

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
    /// Where scan caches live (default: $XDG_CACHE_HOME/tagsmith, else ~/.cache/tagsmith).
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    pub cache_dir: Option<PathBuf>,
    /// Parse every file with markers; neither read nor write the scan cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Also warn about each marker naming a policy that no --set gives (text output otherwise
    /// reports only their count)
    #[arg(long)]
    pub strict: bool,
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
    let cache_file = if args.no_cache {
        None
    } else {
        cache_file(args.cache_dir, &args.dir)
    };
    let cache = cache_file.as_deref().map(ScanCache::load);
    let mut report = rewrite_tree(&base, &paths, &selections, mode, cache.as_ref())?;
    if let (Some(cache), Some(path)) = (&cache, &cache_file) {
        cache.retain_used();
        if cache.is_changed()
            && let Err(err) = cache.save(path)
        {
            tracing::warn!(error = %err, "scan cache not saved; the next run parses again");
        }
    }

    match args.output {
        OutputFormat::Text => {
            // A partial --set is the usual way to move a few images: the markers of the others
            // are not warnings unless asked for (JSON keeps every problem for scripts).
            // A marker naming a policy near one that --set gives is likely a typo on one side:
            // said with the suggestion, --strict or not.
            let given: Vec<String> = selections.keys().map(ToString::to_string).collect();
            let near = |p: &crate::rewrite::Problem| match &p.kind {
                ProblemKind::UnknownPolicy { policy } => {
                    let hint = crate::config::suggest::did_you_mean(
                        &policy.to_string(),
                        given.iter().map(String::as_str),
                    );
                    (!hint.is_empty()).then(|| format!("warning: {p}{hint}"))
                }
                _ => None,
            };
            let near_misses: Vec<String> = report.problems.iter().filter_map(near).collect();
            report.problems.retain(|p| near(p).is_none());
            let unset = if args.strict {
                0
            } else {
                let before = report.problems.len();
                report
                    .problems
                    .retain(|p| !matches!(p.kind, ProblemKind::UnknownPolicy { .. }));
                before - report.problems.len()
            };
            for line in &near_misses {
                eprintln!("{line}");
            }
            print_text(&report, args.dry_run);
            if unset > 0 {
                eprintln!(
                    "{unset} marker(s) name policies no --set gives; left as they are (--strict lists them)"
                );
            }
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

/// The scan cache file for the tree (or file) `dir`: named by a hash of its canonical path,
/// so each tree keeps its own and runs over other trees never evict it. `None`, with a
/// warning, when there is no usable cache folder: the run goes on without a cache.
fn cache_file(flag: Option<PathBuf>, dir: &Path) -> Option<PathBuf> {
    let folder = flag.or_else(|| {
        let xdg = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty());
        match xdg {
            Some(xdg) => Some(PathBuf::from(xdg).join("tagsmith")),
            None => {
                std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/tagsmith"))
            }
        }
    });
    let Some(folder) = folder else {
        tracing::warn!("no --cache-dir, XDG_CACHE_HOME or HOME; running without a scan cache");
        return None;
    };
    // The walk reports an unusable tree itself.
    let canonical = std::fs::canonicalize(dir).ok()?;
    if let Err(err) = std::fs::create_dir_all(&folder) {
        tracing::warn!(dir = %folder.display(), error = %err, "cannot create the scan cache folder; running without a scan cache");
        return None;
    }
    let hash = blake3::hash(canonical.as_os_str().as_encoded_bytes()).to_hex();
    Some(folder.join(format!("{}.scan", &hash[..32])))
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
            // A directory's files keep their old bytes.
            print!(
                "{}",
                file.unified_diff(file.before.bytes().unwrap_or_default())
            );
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
            .map(|f| json!({ "path": f.path.display().to_string(), "diff": f.unified_diff(f.before.bytes().unwrap_or_default()) }))
            .collect();
        doc["diffs"] = json!(diffs);
    }
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}
