//! One target's run: sync the workspace, rewrite, commit, push; retried when the remote moves.
//! Blocking (git2 and file IO): async callers use `spawn_blocking`.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::message;
use super::select::SelectionSet;
use crate::config::Target;
use crate::git::{GitError, Workspace};
use crate::model::PolicyId;
use crate::rewrite::walk::{ChangedFile, Mode, TreeReport, rewrite_tree_allowed};
use crate::rewrite::{Change, ProblemKind, ScanCache};

/// Pushes lost to a concurrent writer before giving up for this cycle.
const MAX_PUSH_ATTEMPTS: u32 = 3;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Every marker already reads its selection: no commit.
    Unchanged,
    /// `--dry-run`: what would be committed.
    WouldCommit {
        diff: String,
    },
    Pushed {
        branch: String,
        commit: String,
    },
    /// Delivered through a pull request from `branch`, whose head is `commit`.
    PullRequest {
        number: u64,
        url: String,
        action: super::pull_request::PullRequestAction,
        branch: String,
        commit: String,
    },
    Failed {
        error: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    pub target: String,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub changes: Vec<ChangeReport>,
    /// file:line: message, warnings and errors both.
    pub problems: Vec<String>,
    pub push_attempts: u32,
    pub timings: Timings,
    /// Every policy the target's markers name; the service runs the target when one changes.
    #[serde(skip)]
    pub policies: Vec<String>,
}

/// Where a target's run spent its time, in milliseconds, summed over push attempts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Timings {
    /// Opening or cloning the workspace.
    pub open_ms: u64,
    /// Fetching and resetting the workspace.
    pub sync_ms: u64,
    /// Finding markers, planning, applying and verifying edits, writing files.
    pub rewrite_ms: u64,
    pub commit_ms: u64,
    pub push_ms: u64,
}

fn timed<T>(slot: &mut u64, f: impl FnOnce() -> T) -> T {
    let start = std::time::Instant::now();
    let value = f();
    *slot += u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    value
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeReport {
    pub file: String,
    pub line: usize,
    pub policy: String,
    pub old: String,
    pub new: String,
}

impl From<&Change> for ChangeReport {
    fn from(c: &Change) -> Self {
        Self {
            file: c.file.display().to_string(),
            line: c.line,
            policy: c.policy.to_string(),
            old: c.old.clone(),
            new: c.new.clone(),
        }
    }
}

/// Inputs of one target run.
#[derive(Debug)]
pub struct TargetRun<'a> {
    pub target: &'a Target,
    pub workspace: PathBuf,
    /// The target's scan cache file (see [`super::scan_cache_file`]).
    pub cache_file: PathBuf,
    pub selections: &'a SelectionSet,
    pub dry_run: bool,
}

/// Runs a target with its scan cache loaded from, and saved back to, `run.cache_file`:
/// unchanged files are not parsed again, in this process or the next.
pub fn run_target(run: &TargetRun<'_>) -> TargetReport {
    let cache = ScanCache::load(&run.cache_file);
    let report = run_target_cached(run, &cache);
    save_cache(run, &cache);
    report
}

/// Writes the cache back when the run changed it; a cache that cannot be saved costs only
/// parsing next time.
pub fn save_cache(run: &TargetRun<'_>, cache: &ScanCache) {
    if cache.is_changed()
        && let Err(err) = cache.save(&run.cache_file)
    {
        tracing::warn!(target = %run.target.name, error = %err, "scan cache not saved");
    }
}

/// [`run_target`] with a cache the caller keeps in memory across runs (one per target, not
/// shared between targets run at once). Afterwards it holds just what this run used.
pub fn run_target_cached(run: &TargetRun<'_>, cache: &ScanCache) -> TargetReport {
    let mut report = TargetReport {
        target: run.target.name.clone(),
        outcome: Outcome::Unchanged,
        changes: Vec::new(),
        problems: Vec::new(),
        push_attempts: 0,
        timings: Timings::default(),
        policies: Vec::new(),
    };
    let result = match &run.target.pull_request {
        Some(settings) => super::pull_request::attempt(run, settings, &mut report, cache)
            .map_err(|e| e.to_string()),
        None => attempt(run, &mut report, cache).map_err(|e| e.to_string()),
    };
    if let Err(error) = result {
        tracing::error!(target = %run.target.name, %error, "target failed");
        report.outcome = Outcome::Failed { error };
    }
    cache.retain_used();
    report
}

fn attempt(
    run: &TargetRun<'_>,
    report: &mut TargetReport,
    cache: &ScanCache,
) -> Result<(), GitError> {
    let target = run.target;
    let t = &mut report.timings;
    let mut ws = timed(&mut t.open_ms, || {
        Workspace::open(&run.workspace, &target.git)
    })?;
    ws.sign_commits_with(target.signing_key.clone());
    let push_branch = target.push_branch();
    loop {
        let t = &mut report.timings;
        timed(&mut t.sync_ms, || ws.sync(&target.git.branch, push_branch))?;
        let tree = timed(&mut t.rewrite_ms, || rewrite(run, &ws, cache))?;
        if !to_deliver(run, &tree, report) {
            if run.dry_run {
                // Leave the workspace as the remote has it.
                ws.sync(&target.git.branch, push_branch)?;
            }
            return Ok(());
        }
        let paths: Vec<&Path> = tree.changed.iter().map(|f| f.path.as_path()).collect();
        let text = message::render(
            &target.message,
            &target.name,
            &tree.changes,
            &run.selections.selections,
        );
        let t = &mut report.timings;
        let commit = timed(&mut t.commit_ms, || {
            ws.commit(&paths, &target.author, &text)
        })?;
        report.push_attempts += 1;
        match timed(&mut report.timings.push_ms, || {
            ws.push(commit.id, push_branch)
        }) {
            Ok(pushed) => {
                tracing::info!(target = %target.name, branch = %pushed.branch, commit = %pushed.commit, changes = tree.changes.len(), "pushed");
                report.outcome = Outcome::Pushed {
                    branch: pushed.branch,
                    commit: pushed.commit.to_string(),
                };
                return Ok(());
            }
            Err(GitError::NonFastForward { .. }) if report.push_attempts < MAX_PUSH_ATTEMPTS => {
                tracing::info!(target = %target.name, attempt = report.push_attempts, "remote moved; fetching and applying again");
            }
            Err(e) => return Err(e),
        }
    }
}

/// Rewrites the workspace's files; it counts as clean again only when nothing was written.
pub(super) fn rewrite(
    run: &TargetRun<'_>,
    ws: &Workspace,
    cache: &ScanCache,
) -> Result<TreeReport, GitError> {
    let root = ws.root();
    ws.forget_clean()?;
    let tenancy = &run.target.tenancy;
    let allow = |path: &Path, policy: &PolicyId| {
        run.target.allows_policy(policy)
            && tenancy.allows(&path.to_string_lossy(), policy.namespace())
    };
    let tree = rewrite_tree_allowed(
        root,
        &run.target.paths,
        &run.selections.selections,
        Mode::Write,
        &allow,
        Some(cache),
    )
    .map_err(|e| GitError::Open {
        path: root.to_path_buf(),
        message: e.to_string(),
    })?;
    if tree.changed.is_empty() {
        ws.remember_clean()?;
    }
    Ok(tree)
}

/// Records a rewrite in `report`; true when there is something to deliver. Otherwise the
/// outcome is set: unchanged, or (`--dry-run`) the diff that would be committed.
pub(super) fn to_deliver(
    run: &TargetRun<'_>,
    tree: &TreeReport,
    report: &mut TargetReport,
) -> bool {
    report.changes = tree.changes.iter().map(ChangeReport::from).collect();
    report.policies = tree.policies.iter().map(ToString::to_string).collect();
    report.problems = problems(run, tree);
    if tree.changed.is_empty() {
        report.outcome = Outcome::Unchanged;
        return false;
    }
    if run.dry_run {
        report.outcome = Outcome::WouldCommit {
            diff: tree.changed.iter().map(ChangedFile::unified_diff).collect(),
        };
        return false;
    }
    true
}

fn problems(run: &TargetRun<'_>, tree: &TreeReport) -> Vec<String> {
    tree.problems
        .iter()
        .map(|p| match &p.kind {
            ProblemKind::UnknownPolicy { policy } => match run.selections.failed(policy) {
                Some(why) => format!(
                    "{}:{}: policy {policy} not updated: {why}",
                    p.path.display(),
                    p.line
                ),
                None => p.to_string(),
            },
            _ => p.to_string(),
        })
        .collect()
}
