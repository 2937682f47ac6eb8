//! The IO edge of rewriting: finds candidate files under a tree, processes them in parallel
//! and writes changed files atomically. Everything else in `rewrite` is pure.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use memchr::memmem;
use thiserror::Error;

use super::{
    Change, Lang, MARKER_NEEDLE, Problem, ProblemKind, ScanCache, apply, apply_with, plan_allowed,
    scan,
};
use crate::model::{ImageRef, PolicyId};

#[derive(Debug, Error)]
pub enum WalkError {
    #[error("cannot open the tree at {path}: {source}")]
    Base {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Whether changed files are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Write,
    /// Plan, apply and verify in memory only (`--check`, `--dry-run`).
    DryRun,
}

/// A file whose bytes change (or would change, in [`Mode::DryRun`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedFile {
    /// Relative to the tree's base.
    pub path: PathBuf,
    pub before: Vec<u8>,
    pub after: Vec<u8>,
}

impl ChangedFile {
    /// A unified diff (3 lines of context) from `a/PATH` to `b/PATH`, as `git diff` shows it.
    pub fn unified_diff(&self) -> String {
        let before = String::from_utf8_lossy(&self.before);
        let after = String::from_utf8_lossy(&self.after);
        let path = self.path.display().to_string();
        similar::TextDiff::from_lines(before.as_ref(), after.as_ref())
            .unified_diff()
            .context_radius(3)
            .header(&format!("a/{path}"), &format!("b/{path}"))
            .to_string()
    }
}

/// The outcome over a whole tree; paths are relative to its base and sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeReport {
    /// Files with a rewritable name.
    pub files_seen: usize,
    /// Files that held the marker bytes and were parsed.
    pub files_parsed: usize,
    pub changed: Vec<ChangedFile>,
    pub changes: Vec<Change>,
    pub problems: Vec<Problem>,
    /// Every policy a marker names, known or not.
    pub policies: BTreeSet<PolicyId>,
}

impl TreeReport {
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|p| p.kind.is_error())
    }
}

/// Rewrites the marked values under `paths` (relative to `base`; empty means all of it).
/// Problems in one file never stop the others; only an unusable `base` is an error.
/// With a `cache`, files whose bytes were scanned before are not parsed again, and the
/// scans made here (of files as found and as edited) are added to it.
pub fn rewrite_tree(
    base: &Path,
    paths: &[PathBuf],
    selections: &BTreeMap<PolicyId, ImageRef>,
    mode: Mode,
    cache: Option<&ScanCache>,
) -> Result<TreeReport, WalkError> {
    rewrite_tree_allowed(base, paths, selections, mode, &|_, _| true, cache)
}

/// [`rewrite_tree`] with tenancy: `allowed(file, policy)` (file relative to `base`) says
/// whether a policy may change a file; refused markers are reported and left alone.
pub fn rewrite_tree_allowed(
    base: &Path,
    paths: &[PathBuf],
    selections: &BTreeMap<PolicyId, ImageRef>,
    mode: Mode,
    allowed: &(dyn Fn(&Path, &PolicyId) -> bool + Sync),
    cache: Option<&ScanCache>,
) -> Result<TreeReport, WalkError> {
    rewrite_tree_with(
        base,
        paths,
        selections,
        mode,
        allowed,
        cache,
        &Hooks::default(),
    )
}

/// Points in the IO edge where a caller can step in; a seam that lets tests make races
/// deterministic.
#[derive(Default)]
pub struct Hooks<'a> {
    /// Called with a file's absolute path once its new bytes are in the temporary file, just
    /// before tagsmith checks the file still holds the bytes it read and replaces it.
    pub before_replace: Option<&'a (dyn Fn(&Path) + Sync)>,
    /// Called with each planned change; a change it refuses is not made (a marker held for a
    /// person's rollback).
    pub keep: Option<&'a (dyn Fn(&Change) -> bool + Sync)>,
}

impl std::fmt::Debug for Hooks<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("before_replace", &self.before_replace.is_some())
            .field("keep", &self.keep.is_some())
            .finish()
    }
}

/// [`rewrite_tree_allowed`] with [`Hooks`].
pub fn rewrite_tree_with(
    base: &Path,
    paths: &[PathBuf],
    selections: &BTreeMap<PolicyId, ImageRef>,
    mode: Mode,
    allowed: &(dyn Fn(&Path, &PolicyId) -> bool + Sync),
    cache: Option<&ScanCache>,
    hooks: &Hooks<'_>,
) -> Result<TreeReport, WalkError> {
    let base = fs::canonicalize(base).map_err(|source| WalkError::Base {
        path: base.to_path_buf(),
        source,
    })?;
    let started = std::time::Instant::now();
    let job = Job {
        base: &base,
        finder: memmem::Finder::new(MARKER_NEEDLE),
        selections,
        mode,
        allowed,
        cache,
        hooks,
        report: Mutex::new(TreeReport::default()),
    };
    let cache_before = cache.map(ScanCache::stats).unwrap_or_default();
    let (dirs, files) = roots(&base, paths, &job);
    // Directories are read and their files processed as tasks of one pool, so reading the
    // tree overlaps with parsing instead of preceding it.
    rayon::scope(|scope| {
        for dir in dirs {
            scope.spawn(|scope| walk_dir(scope, &job, dir));
        }
        job.process_files(files);
    });
    let mut report = job
        .report
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    report.changed.sort_by(|a, b| a.path.cmp(&b.path));
    report
        .changes
        .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    report
        .problems
        .sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
    let cache_after = cache.map(ScanCache::stats).unwrap_or_default();
    tracing::info!(
        elapsed = ?started.elapsed(),
        files = report.files_seen,
        parsed = report.files_parsed,
        cache_hits = cache_after.hits - cache_before.hits,
        cache_misses = cache_after.misses - cache_before.misses,
        changed = report.changed.len(),
        problems = report.problems.len(),
        "rewrite done"
    );
    Ok(report)
}

#[derive(Default)]
struct Outcome {
    parsed: bool,
    policies: Vec<PolicyId>,
    changed: Option<ChangedFile>,
    changes: Vec<Change>,
    problems: Vec<Problem>,
}

fn process(job: &Job<'_>, rel: &Path, lang: Lang) -> Outcome {
    let mut outcome = Outcome::default();
    let abs = job.base.join(rel);
    let io_problem = |what: &str, err: std::io::Error| Problem {
        path: rel.to_path_buf(),
        line: 0,
        kind: ProblemKind::Io {
            reason: format!("cannot {what}: {err}"),
        },
    };
    let before = match fs::read(&abs) {
        Ok(bytes) => bytes,
        Err(err) => {
            outcome.problems.push(io_problem("read", err));
            return outcome;
        }
    };
    if job.finder.find(&before).is_none() {
        if let Some(encoding) = super::wide_encoding_with_marker(&before) {
            outcome.problems.push(Problem {
                path: rel.to_path_buf(),
                line: 0,
                kind: ProblemKind::Encoding {
                    encoding: encoding.to_string(),
                },
            });
        }
        return outcome;
    }
    outcome.parsed = true;
    let scanned = match job.cache {
        Some(cache) => cache.scan(&before, lang),
        None => scan(&before, lang),
    };
    let mut plan = plan_allowed(rel, lang, scanned, job.selections, |policy| {
        (job.allowed)(rel, policy)
    });
    if let Some(keep) = job.hooks.keep {
        plan.retain_changes(keep);
    }
    outcome.problems = plan.problems.clone();
    outcome.policies = plan.sites.iter().map(|s| s.marker.policy.clone()).collect();
    if plan.is_noop() {
        return outcome;
    }
    // The edited bytes' scan is cached too: they are what the next run reads.
    let applied = match job.cache {
        Some(cache) => apply_with(&before, &plan, |after| {
            cache.rescan(lang, &before, after, &plan.edits)
        }),
        None => apply(&before, &plan),
    };
    let after = match applied {
        Ok(after) => after,
        Err(err) => {
            outcome.problems.push(Problem {
                path: rel.to_path_buf(),
                line: 0,
                kind: ProblemKind::Verify {
                    reason: err.to_string(),
                },
            });
            return outcome;
        }
    };
    if job.mode == Mode::Write {
        match write_atomic(&abs, &before, &after, job.hooks) {
            Ok(()) => {}
            Err(WriteError::Changed) => {
                outcome.problems.push(Problem {
                    path: rel.to_path_buf(),
                    line: 0,
                    kind: ProblemKind::ChangedMeanwhile,
                });
                return outcome;
            }
            Err(WriteError::Io(err)) => {
                outcome.problems.push(io_problem("write", err));
                return outcome;
            }
        }
        tracing::debug!(path = %rel.display(), edits = plan.edits.len(), "file rewritten");
    }
    outcome.changes = plan.changes;
    outcome.changed = Some(ChangedFile {
        path: rel.to_path_buf(),
        before,
        after,
    });
    outcome
}

struct Job<'a> {
    base: &'a Path,
    finder: memmem::Finder<'static>,
    selections: &'a BTreeMap<PolicyId, ImageRef>,
    mode: Mode,
    allowed: &'a (dyn Fn(&Path, &PolicyId) -> bool + Sync),
    cache: Option<&'a ScanCache>,
    hooks: &'a Hooks<'a>,
    report: Mutex<TreeReport>,
}

impl Job<'_> {
    fn process_files(&self, files: Vec<(PathBuf, Lang)>) {
        if files.is_empty() {
            return;
        }
        let outcomes: Vec<Outcome> = files
            .iter()
            .map(|(rel, lang)| process(self, rel, *lang))
            .collect();
        let mut report = self.report.lock().unwrap_or_else(PoisonError::into_inner);
        report.files_seen += files.len();
        for outcome in outcomes {
            report.files_parsed += usize::from(outcome.parsed);
            report.policies.extend(outcome.policies);
            report.changes.extend(outcome.changes);
            report.problems.extend(outcome.problems);
            report.changed.extend(outcome.changed);
        }
    }

    fn problem(&self, problem: Problem) {
        let mut report = self.report.lock().unwrap_or_else(PoisonError::into_inner);
        report.problems.push(problem);
    }
}

/// The directories to walk and the files named directly, all relative to `base`; paths
/// that leave the tree are reported.
fn roots(base: &Path, paths: &[PathBuf], job: &Job<'_>) -> (Vec<PathBuf>, Vec<(PathBuf, Lang)>) {
    let (mut dirs, mut files) = (Vec::new(), Vec::new());
    let roots: Vec<PathBuf> = if paths.is_empty() {
        vec![PathBuf::new()]
    } else {
        paths.to_vec()
    };
    for root in roots {
        let problem = |reason: String| Problem {
            path: root.clone(),
            line: 0,
            kind: ProblemKind::Path { reason },
        };
        let abs = match fs::canonicalize(base.join(&root)) {
            Ok(abs) => abs,
            Err(err) => {
                job.problem(problem(format!("cannot open: {err}")));
                continue;
            }
        };
        let Ok(rel) = abs.strip_prefix(base) else {
            job.problem(problem("is outside the tree".to_string()));
            continue;
        };
        if abs.is_dir() {
            dirs.push(rel.to_path_buf());
        } else if let Some(lang) = Lang::from_path(rel) {
            files.push((rel.to_path_buf(), lang));
        }
    }
    // Overlapping roots (`a` and `a/b`) would visit files twice.
    dirs.sort();
    dirs.dedup();
    let mut kept: Vec<PathBuf> = Vec::new();
    for dir in dirs {
        if !kept.iter().any(|k| dir.starts_with(k)) {
            kept.push(dir);
        }
    }
    files.retain(|(f, _)| !kept.iter().any(|k| f.starts_with(k)));
    files.sort();
    files.dedup();
    (kept, files)
}

/// Symlinks are never followed: a link's target inside the tree is visited under its own
/// path, and one outside the tree must not be read or written.
fn walk_dir<'s>(scope: &rayon::Scope<'s>, job: &'s Job<'s>, rel: PathBuf) {
    let entries = match fs::read_dir(job.base.join(&rel)) {
        Ok(entries) => entries,
        Err(err) => {
            job.problem(Problem {
                path: rel,
                line: 0,
                kind: ProblemKind::Io {
                    reason: format!("cannot list: {err}"),
                },
            });
            return;
        }
    };
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let name = entry.file_name();
        let path = rel.join(&name);
        if kind.is_dir() {
            if name != ".git" {
                scope.spawn(move |scope| walk_dir(scope, job, path));
            }
        } else if kind.is_file() {
            if let Some(lang) = Lang::from_path(&path) {
                files.push((path, lang));
            }
        } else if kind.is_symlink() {
            tracing::debug!(path = %path.display(), "symlink not followed");
        }
    }
    job.process_files(files);
}

enum WriteError {
    /// The file no longer holds the bytes the edit was made from.
    Changed,
    Io(std::io::Error),
}

impl From<std::io::Error> for WriteError {
    fn from(err: std::io::Error) -> Self {
        Self::Io(err)
    }
}

/// Temp file in the same directory, same permissions, then rename: readers see the old or
/// the new file, never a half-written one. Right before the rename the file must still hold
/// `expected`, the bytes the edit was made from: an edit someone made meanwhile (an editor
/// saving, another tool) is kept and reported rather than replaced. A write landing between
/// that check and the rename is not caught; the window is one comparison long.
fn write_atomic(
    path: &Path,
    expected: &[u8],
    bytes: &[u8],
    hooks: &Hooks<'_>,
) -> Result<(), WriteError> {
    let permissions = fs::metadata(path)?.permissions();
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tagsmith-{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = fs::File::create_new(&tmp)?;
        file.write_all(bytes)?;
        file.set_permissions(permissions)?;
        file.sync_all()?;
        if let Some(hook) = hooks.before_replace {
            hook(path);
        }
        if fs::read(path)? != expected {
            return Err(WriteError::Changed);
        }
        fs::rename(&tmp, path)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
