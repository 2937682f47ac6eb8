//! `tagsmith once -c tagsmith.yaml [--dry-run]`: one full cycle over every target, then exit.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;

use super::{OutputFormat, Status};
use crate::config::Config;
use crate::engine::{CycleReport, Outcome, run_once};
use crate::notify::Notifier;
use crate::registry::{Client, Options};
use crate::state::{StateDirLock, now_ms};

#[derive(Debug, Args)]
pub struct OnceArgs {
    /// The configuration file (default: tagsmith.yaml, unless --flux is given).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub flux: super::inputs::FluxArgs,
    /// Print the unified diff each target would commit; commit and push nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Where workspaces live (default: the config's `state.dir`, else $XDG_STATE_HOME/tagsmith).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Results as text for people or one JSON document for scripts.
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// `--state-dir`, then the config's `state.dir`, then the XDG state folder.
pub fn state_dir(flag: Option<PathBuf>, config: &Config) -> anyhow::Result<PathBuf> {
    if let Some(dir) = flag.or_else(|| config.state_dir.clone()) {
        return Ok(dir);
    }
    if let Some(xdg) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("tagsmith"));
    }
    let home = std::env::var_os("HOME")
        .context("no --state-dir, state.dir, XDG_STATE_HOME or HOME to keep workspaces in")?;
    Ok(PathBuf::from(home).join(".local/state/tagsmith"))
}

pub fn run(args: OnceArgs) -> anyhow::Result<Status> {
    let config = Arc::new(super::inputs::load(args.config.as_deref(), &args.flux)?);
    let state_dir = state_dir(args.state_dir.clone(), &config)?;
    if crate::engine::opens_workspaces_at_once(&config, &state_dir, args.dry_run) {
        // libgit2's start-up then runs beside the rest of the set-up and the scan.
        crate::git::start();
    }
    // Held until the cycle is over: workspaces are never shared with another process.
    let _lock = StateDirLock::acquire(&state_dir, "once")?;
    // The store keeps the last selections (an `IfNotPresent` digest of the same tag is not
    // looked up again) and the minAge gate's first-seen times; without it (unopenable), each
    // cycle starts from nothing.
    let opened = crate::state::Store::open(&state_dir)
        .map_err(|e| {
            tracing::warn!(error = %e, "cannot open the state store; digests are looked up again and minAge counts tags without a created time from now");
        })
        .ok();
    let known = opened
        .as_ref()
        .map(|o| crate::engine::known_selections(&config, &o.snapshot))
        .unwrap_or_default();
    if let Some(opened) = &opened {
        super::run::seed_first_seen(&opened.store);
    }
    let client = Client::new(config.registries.clone(), Options::default());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(async {
        let report = run_once(
            Arc::clone(&config),
            &client,
            &state_dir,
            args.dry_run,
            &known,
        )
        .await;
        if !args.dry_run {
            notify(&config, &report).await;
        }
        report
    });
    // Nothing runs on the runtime after the cycle (its target runs were joined), so its idle
    // worker threads are left to end with the process instead of being waited for.
    runtime.shutdown_background();
    if let Some(opened) = &opened {
        // A dry run changes nothing that a later cycle reads, the selections included.
        if !args.dry_run {
            let records =
                crate::engine::scan_records(&config, &opened.snapshot, &report.images, now_ms());
            let mut batch = crate::state::Batch::default();
            for (policy, record) in records {
                batch.image(&policy, record);
            }
            if let Err(e) = opened.store.write(batch) {
                tracing::warn!(error = %e, "cannot keep the selections; the next cycle looks their digests up again");
            }
        }
        super::run::save_first_seen(&opened.store);
    }
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Text => print_text(&report),
    }
    if report.failed() {
        anyhow::bail!("the cycle had failures (see above)");
    }
    Ok(Status::Ok)
}

/// How long `once` waits at exit for its notifications to be sent.
const NOTIFY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// Sends what the cycle did to the `notify:` sinks, waiting for them up to a deadline; a sink
/// that fails does not fail the cycle (it is logged and counted).
async fn notify(config: &Config, report: &CycleReport) {
    let mut notifier = Notifier::start(config);
    if notifier.is_empty() {
        return;
    }
    for target in &report.targets {
        if let Some(settings) = config.targets.iter().find(|t| t.name == target.target) {
            notifier.report(settings, target);
        }
    }
    notifier.finish(NOTIFY_DEADLINE).await;
}

fn print_text(report: &CycleReport) {
    for image in &report.images {
        match (&image.selected, &image.error) {
            (Some(selected), _) => println!(
                "image {} {}: {selected} ({} tags)",
                image.policy,
                image.image,
                image.tags.unwrap_or_default()
            ),
            (None, Some(error)) => println!("image {} {}: {error}", image.policy, image.image),
            (None, None) => println!("image {} {}: no selection", image.policy, image.image),
        }
        for stop in &image.stopped {
            println!("  {stop}");
        }
    }
    for target in &report.targets {
        match &target.outcome {
            Outcome::Unchanged => println!("target {}: unchanged", target.target),
            Outcome::WouldCommit { .. } => println!(
                "target {}: would commit {} change(s) (dry run)",
                target.target,
                target.changes.len()
            ),
            Outcome::Pushed { branch, commit } => println!(
                "target {}: committed {} and pushed {branch} ({} change(s){})",
                target.target,
                &commit[..commit.len().min(12)],
                target.changes.len(),
                if target.push_attempts > 1 {
                    format!(", {} push attempts", target.push_attempts)
                } else {
                    String::new()
                }
            ),
            Outcome::PullRequest {
                number,
                url,
                action,
                branch,
                commit,
            } => println!(
                "target {}: pull request #{number} {} {url} ({branch} at {}, {} change(s))",
                target.target,
                action.as_str(),
                &commit[..commit.len().min(12)],
                target.changes.len()
            ),
            Outcome::Failed { error } => println!("target {}: failed: {error}", target.target),
        }
        for change in &target.changes {
            println!(
                "  {}:{}: {}: {} -> {}",
                change.file, change.line, change.policy, change.old, change.new
            );
        }
        for problem in &target.problems {
            println!("  problem: {problem}");
        }
        for hold in &target.holds {
            println!(
                "  held: {}:{}: {}: left at {} (a person rolled it back from {}); `tagsmith release {}` lifts it",
                hold.file, hold.line, hold.marker, hold.to, hold.from, hold.policy
            );
        }
        if !target.file_errors.is_empty() {
            println!(
                "  failed: {} file(s) could not be processed and were left as they were",
                target.file_errors.len()
            );
        }
        if let Outcome::WouldCommit { diff } = &target.outcome {
            print!("{diff}");
        }
    }
}
