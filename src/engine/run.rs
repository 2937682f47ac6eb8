//! One target's run, the loop written once: sync, rewrite, stop when there is nothing to do,
//! commit, deliver, and on a non-fast-forward fetch and go again (bounded). It works on Git
//! objects: the synced commit's tree is read from the workspace's repository, new blobs and
//! trees are written there, and no file is checked out. Blocking (git2 and file IO): async
//! callers use `spawn_blocking`.

use std::path::{Path, PathBuf};

use super::deliver::{Delivered, Delivery, Pending, for_target};
use super::holds::{self, HoldRun};
use super::message;
use super::report::{ChangeReport, Outcome, RunError, TargetReport, chain, timed};
use super::select::SelectionSet;
use crate::config::{ImagePolicy, Target};
use crate::git::{GitError, Workspace};
use crate::model::PolicyId;
use crate::rewrite::walk::{Core, TreeReport};
use crate::rewrite::{ProblemKind, ScanCache};

/// Where a target's workspace lives under the state directory.
pub fn workspace_dir(state_dir: &Path, target: &str) -> PathBuf {
    state_dir.join("workspaces").join(target)
}

/// Where a target's scan cache lives under the state directory (beside, not inside, the
/// workspaces, which hold only repositories).
pub fn scan_cache_file(state_dir: &Path, target: &str) -> PathBuf {
    state_dir.join("cache").join(format!("{target}.scan"))
}

/// Pushes lost to a concurrent writer before giving up for this cycle.
const MAX_PUSH_ATTEMPTS: u32 = 3;

/// Inputs of one target run.
#[derive(Debug)]
pub struct TargetRun<'a> {
    pub target: &'a Target,
    pub workspace: PathBuf,
    /// The target's scan cache file (see [`scan_cache_file`]).
    pub cache_file: PathBuf,
    pub selections: &'a SelectionSet,
    /// The configured images: their policies order tags for holds; suspended ones are left be.
    pub images: &'a [ImagePolicy],
    /// The target's holds (see [`crate::state::holds_file`]).
    pub holds_file: PathBuf,
    pub dry_run: bool,
}

/// Runs a target with its scan cache loaded from, and saved back to, `run.cache_file`:
/// unchanged files are not parsed again, in this process or the next.
pub fn run_target(run: &TargetRun<'_>) -> TargetReport {
    let opened = open_target(run.target, &run.workspace, &run.cache_file);
    run_opened(run, opened)
}

/// A target's workspace opened and synced, and its scan cache loaded, before the run's
/// selections are known: a `once` cycle does this while the registries are scanned, since
/// none of it depends on the tags.
pub struct OpenedTarget<'t> {
    delivery: Box<dyn Delivery + 't>,
    ws: Result<Workspace, RunError>,
    report: TargetReport,
    cache: ScanCache,
}

/// Opens and syncs `target`'s workspace in `workspace` and loads its scan cache from
/// `cache_file`; a failure is kept for [`run_opened`] to report.
pub fn open_target<'t>(
    target: &'t Target,
    workspace: &Path,
    cache_file: &Path,
) -> OpenedTarget<'t> {
    let cache = ScanCache::load(cache_file);
    let mut report = TargetReport::new(&target.name);
    let mut delivery = for_target(target);
    let ws = open_workspace(delivery.as_mut(), target, workspace, &mut report).and_then(|ws| {
        timed(&mut report.timings.sync_ms, || delivery.sync(&ws, target))?;
        Ok(ws)
    });
    OpenedTarget {
        delivery,
        ws,
        report,
        cache,
    }
}

impl OpenedTarget<'_> {
    /// The heads of `branches` as the sync fetched them, when the remote is one tagsmith
    /// reaches without libgit2 (see [`crate::git::remote_heads`]).
    pub fn synced_heads(&self, branches: &[&str]) -> Option<crate::git::Heads> {
        let ws = self.ws.as_ref().ok()?;
        ws.reached_directly().then(|| ws.fetched_heads(branches))
    }
}

/// Opens (or clones) `target`'s workspace in `dir`, set to sign as the target says.
fn open_workspace(
    delivery: &mut dyn Delivery,
    target: &Target,
    dir: &Path,
    report: &mut TargetReport,
) -> Result<Workspace, RunError> {
    let mut ws = timed(&mut report.timings.open_ms, || delivery.open(target, dir))?;
    ws.sign_commits_with(target.signing_key.clone());
    Ok(ws)
}

/// Runs a target [`open_target`] opened, then saves its scan cache back.
pub fn run_opened(run: &TargetRun<'_>, opened: OpenedTarget<'_>) -> TargetReport {
    let OpenedTarget {
        mut delivery,
        ws,
        mut report,
        cache,
    } = opened;
    let mut held = None;
    let result = ws.and_then(|ws| {
        run_loop(
            run,
            delivery.as_mut(),
            &ws,
            true,
            &mut report,
            &cache,
            &mut held,
        )
    });
    if let Err(error) = result {
        report.fail(&error);
    }
    holds::finish(run, held, &mut report);
    cache.retain_used();
    save_cache(run, &cache);
    report
}

/// Writes the cache back when the run changed it; a cache that cannot be saved costs only
/// parsing next time.
pub fn save_cache(run: &TargetRun<'_>, cache: &ScanCache) {
    if cache.is_changed()
        && let Err(err) = cache.save(&run.cache_file)
    {
        tracing::warn!(target = %run.target.name, error = %chain(&err), "scan cache not saved");
    }
}

/// [`run_target`] with a cache the caller keeps in memory across runs (one per target, not
/// shared between targets run at once). Afterwards it holds just what this run used. The
/// caller logs the outcome (once); this records it in the report.
pub fn run_target_cached(run: &TargetRun<'_>, cache: &ScanCache) -> TargetReport {
    let mut report = TargetReport::new(&run.target.name);
    let mut delivery = for_target(run.target);
    let mut held = None;
    let result = open_workspace(delivery.as_mut(), run.target, &run.workspace, &mut report)
        .and_then(|ws| {
            run_loop(
                run,
                delivery.as_mut(),
                &ws,
                false,
                &mut report,
                cache,
                &mut held,
            )
        });
    if let Err(error) = result {
        report.fail(&error);
    }
    holds::finish(run, held, &mut report);
    cache.retain_used();
    report
}

/// `synced`: the workspace was synced already for the first pass.
fn run_loop(
    run: &TargetRun<'_>,
    delivery: &mut dyn Delivery,
    ws: &Workspace,
    mut synced: bool,
    report: &mut TargetReport,
    cache: &ScanCache,
    held: &mut Option<HoldRun>,
) -> Result<(), RunError> {
    let target = run.target;
    loop {
        if !synced {
            timed(&mut report.timings.sync_ms, || delivery.sync(ws, target))?;
        }
        synced = false;
        let mut tree = timed(&mut report.timings.rewrite_ms, || {
            rewrite(run, ws, cache, held)
        })?;
        report.holds = held.as_ref().map(HoldRun::current).unwrap_or_default();
        if !to_deliver(run, ws, &tree, report)? {
            return Ok(());
        }
        let pending = Pending {
            target,
            changes: &report.changes,
            selections: run.selections,
            holds: &report.holds,
        };
        if let Some(outcome) = delivery.before_commit(ws, &pending)? {
            report.outcome = outcome;
            return Ok(());
        }
        let commit = timed(&mut report.timings.commit_ms, || {
            // Before the message and the commit, the run's peak of memory.
            cache.settle();
            return_freed_pages();
            let text = message_of(run, &tree)?;
            // In the message now, and in the report: not held through the commit too.
            tree.changes = Vec::new();
            commit(run, ws, &tree, text, cache)
        })?;
        // The rewritten files are in the commit now; a push need not hold them too.
        drop(tree);
        return_freed_pages();
        let pending = Pending {
            target,
            changes: &report.changes,
            selections: run.selections,
            holds: &report.holds,
        };
        let mut push_ms = 0;
        let delivered = timed(&mut push_ms, || delivery.deliver(ws, commit, &pending))?;
        report.timings.push_ms = report.timings.push_ms.saturating_add(push_ms);
        match delivered {
            Delivered::Done { outcome, pushed } => {
                report.push_attempts += u32::from(pushed);
                report.outcome = outcome;
                return Ok(());
            }
            Delivered::Moved(error) => {
                report.push_attempts += 1;
                if report.push_attempts >= MAX_PUSH_ATTEMPTS {
                    return Err(error);
                }
                tracing::info!(
                    attempt = report.push_attempts,
                    "remote moved; fetching and applying again"
                );
            }
        }
    }
}

/// Gives the pages of the memory freed so far back to the system before the commit and
/// the push, the run's peaks of memory. glibc keeps a freed chunk inside its heap (only the top of a heap
/// shrinks by itself), so what the scan and the rewrite freed (tag lists, parsed files,
/// blob bytes) stayed resident under what the commit adds: `malloc_trim` releases every
/// whole free page of every arena.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_freed_pages() {
    // SAFETY: malloc_trim only walks malloc's own free lists under its locks; it is safe to
    // call from any thread at any time. Its result (whether pages were released) does not
    // matter here.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_freed_pages() {}

/// The commit message of `tree`'s changes, as the target's template writes it.
fn message_of(run: &TargetRun<'_>, tree: &TreeReport) -> Result<String, RunError> {
    Ok(match run.target.message.as_flux() {
        Some(flux) => message::render_flux(flux, &run.target.paths, &tree.changes, &tree.changed)?,
        None => message::render(
            &run.target.message,
            &run.target.name,
            &tree.changes,
            &run.selections.selections,
        ),
    })
}

fn commit(
    run: &TargetRun<'_>,
    ws: &Workspace,
    tree: &TreeReport,
    text: String,
    cache: &ScanCache,
) -> Result<git2::Oid, RunError> {
    Ok(ws
        .commit_changes(&tree.changed, &run.target.author, text, Some(cache))?
        .id)
}

/// Rewrites the synced commit's blobs in memory, then applies the Argo CD write-backs to
/// them; the new blobs are written by the commit. Changes to markers held for a person's
/// rollback are dropped.
fn rewrite(
    run: &TargetRun<'_>,
    ws: &Workspace,
    cache: &ScanCache,
    held: &mut Option<HoldRun>,
) -> Result<TreeReport, RunError> {
    let holds: &HoldRun = held.insert(HoldRun::prepare(run, ws)?);
    let keep = |change: &crate::rewrite::Change| holds.keep(change, run);
    let tenancy = &run.target.tenancy;
    let allow = |path: &Path, policy: &PolicyId| {
        run.target.allows_policy(policy)
            && tenancy.allows(&path.to_string_lossy(), policy.namespace())
    };
    let core = Core::new(&run.selections.selections, &allow, Some(cache)).with_keep(Some(&keep));
    let mut tree = ws.rewrite_head(&run.target.paths, &core, Some(cache))?;
    if let Some(error) = holds.take_error() {
        return Err(error.into());
    }
    drop(core);
    if let Some(holds) = held.as_mut() {
        holds.marker_parts(&tree.changes);
    }
    // Argo CD write-backs: named files edited by their own writers, same tree, same commit.
    crate::writeback::tree::apply(
        &HeadFiles(ws),
        &run.target.writebacks,
        &run.selections.selections,
        &mut tree,
    );
    Ok(tree)
}

/// The files of the synced commit, as write-backs read them.
struct HeadFiles<'a>(&'a Workspace);

impl crate::writeback::tree::Files for HeadFiles<'_> {
    fn read(&self, path: &Path) -> Option<Vec<u8>> {
        self.0.head_file(path)
    }

    fn is_file(&self, path: &Path) -> bool {
        self.0.head_has_file(path)
    }
}

/// Records a rewrite in `report`; true when there is something to deliver. Otherwise the
/// outcome is set: unchanged, or (`--dry-run`) the diff that would be committed.
fn to_deliver(
    run: &TargetRun<'_>,
    ws: &Workspace,
    tree: &TreeReport,
    report: &mut TargetReport,
) -> Result<bool, RunError> {
    report.changes = tree.changes.iter().map(ChangeReport::from).collect();
    report.policies = tree.policies.iter().map(ToString::to_string).collect();
    (report.problems, report.file_errors) = problems(run, tree);
    if tree.changed.is_empty() {
        report.outcome = Outcome::Unchanged;
        return Ok(false);
    }
    if run.dry_run {
        report.outcome = Outcome::WouldCommit {
            diff: tree
                .changed
                .iter()
                .map(|file| Ok(file.unified_diff(&ws.before_bytes(file)?)))
                .collect::<Result<_, GitError>>()?,
        };
        return Ok(false);
    }
    Ok(true)
}

/// Every problem as `file:line: message`, and apart the ones that kept a file from being
/// processed.
fn problems(run: &TargetRun<'_>, tree: &TreeReport) -> (Vec<String>, Vec<String>) {
    let selections = run.selections;
    let mut all = Vec::new();
    let mut errors = Vec::new();
    for p in &tree.problems {
        let text = match &p.kind {
            // Suspended on purpose: its markers are left as they are, and that is no problem.
            ProblemKind::UnknownPolicy { policy }
                if run.images.iter().any(|i| i.suspend && &i.id == policy) =>
            {
                continue;
            }
            ProblemKind::UnknownPolicy { policy } => match selections.failed(policy) {
                Some(why) => format!(
                    "{}:{}: policy {policy} not updated: {why}",
                    p.path.display(),
                    p.line
                ),
                None => p.to_string(),
            },
            _ => p.to_string(),
        };
        if p.kind.is_error() {
            errors.push(text.clone());
        }
        all.push(text);
    }
    (all, errors)
}

/// The one log line of a finished run: a delivered change at info, a failure at warn.
pub fn log_finished(report: &TargetReport) {
    let t = &report.timings;
    let images: Vec<&str> = {
        let mut news: Vec<&str> = report.changes.iter().map(|c| c.new.as_str()).collect();
        news.sort_unstable();
        news.dedup();
        news
    };
    match &report.outcome {
        Outcome::Failed { error } => tracing::warn!(%error, "target run failed"),
        Outcome::Pushed { branch, commit } => {
            tracing::info!(%branch, %commit, changes = report.changes.len(), images = %images.join(", "), push_attempts = report.push_attempts, "pushed")
        }
        Outcome::PullRequest {
            number,
            url,
            action,
            commit,
            ..
        } if action.wrote() => {
            tracing::info!(number, %url, action = action.as_str(), %commit, changes = report.changes.len(), images = %images.join(", "), "pull request")
        }
        other => tracing::debug!(
            outcome = other.label(),
            changes = report.changes.len(),
            sync_ms = t.sync_ms,
            rewrite_ms = t.rewrite_ms,
            "target run finished"
        ),
    }
    if !report.file_errors.is_empty() {
        tracing::warn!(files = report.file_errors.len(), errors = %report.file_errors.join("; "), "files could not be processed; they are left as they were");
    }
}
