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
    Change, Lang, MARKER_NEEDLE, Problem, ProblemKind, ScanCache, ScanResult, apply, apply_with,
    plan_allowed, scan,
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
    pub before: Before,
    pub after: Vec<u8>,
}

/// What a changed file held before its rewrite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Before {
    /// Its bytes: a file in a directory (its write checks them again), or none for a new file.
    Bytes(Vec<u8>),
    /// A blob of the synced commit, by id, read again only where its bytes are needed (a
    /// `--dry-run` diff): a commit of thousands of files need not hold them all.
    Blob {
        id: [u8; 20],
        /// Whether the blob holds a CR, which decides `text=auto`'s conversion.
        has_cr: bool,
    },
}

impl Before {
    /// The old bytes, when they are kept.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Self::Bytes(bytes) => Some(bytes),
            Self::Blob { .. } => None,
        }
    }

    /// Whether the old bytes hold a CR.
    pub fn has_cr(&self) -> bool {
        match self {
            Self::Bytes(bytes) => bytes.contains(&b'\r'),
            Self::Blob { has_cr, .. } => *has_cr,
        }
    }
}

impl ChangedFile {
    /// Keeps only the id of the blob the old bytes came from (see [`Before::Blob`]).
    pub fn forget_before(&mut self, id: [u8; 20]) {
        let has_cr = self.before.has_cr();
        self.before = Before::Blob { id, has_cr };
    }

    /// A unified diff (3 lines of context) from `a/PATH` to `b/PATH`, as `git diff` shows it,
    /// `before` being the old bytes.
    pub fn unified_diff(&self, before: &[u8]) -> String {
        let before = String::from_utf8_lossy(before);
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
    /// Blobs whose bytes were read from the object store (a directory walk reads every file
    /// and leaves this 0): the rest were known to the scan cache by id.
    pub blobs_read: usize,
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

    /// Adds one file's outcome (the caller counts it in `files_seen`).
    pub fn add(&mut self, outcome: FileOutcome) {
        self.files_parsed += usize::from(outcome.parsed);
        self.policies.extend(outcome.policies);
        self.changes.extend(outcome.changes);
        self.problems.extend(outcome.problems);
        self.changed.extend(outcome.changed);
    }

    /// Sorts by path (and line), the order reports and commits use.
    pub fn sort(&mut self) {
        self.changed.sort_by(|a, b| a.path.cmp(&b.path));
        self.changes
            .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        self.problems
            .sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
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
        core: Core::new(selections, allowed, cache).with_keep(hooks.keep),
        mode,
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
    report.sort();
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

/// What rewriting one file's bytes came to: the step both pipelines (files in a directory,
/// blobs in a Git tree) share, so that they cannot differ in what they find or write.
#[derive(Debug, Default)]
pub struct FileOutcome {
    /// The bytes held the marker and were scanned.
    pub parsed: bool,
    pub policies: Vec<PolicyId>,
    pub changed: Option<ChangedFile>,
    pub changes: Vec<Change>,
    pub problems: Vec<Problem>,
}

impl FileOutcome {
    /// The file could not be written after all: its change is dropped and `problem` kept.
    fn failed(mut self, problem: Problem) -> Self {
        self.changed = None;
        self.changes.clear();
        self.problems.push(problem);
        self
    }
}

/// The pure per-file step: the marker prefilter, scan (through the cache), plan and apply.
pub struct Core<'a> {
    finder: memmem::Finder<'static>,
    selections: &'a BTreeMap<PolicyId, ImageRef>,
    allowed: &'a (dyn Fn(&Path, &PolicyId) -> bool + Sync),
    cache: Option<&'a ScanCache>,
    keep: Option<&'a (dyn Fn(&Change) -> bool + Sync)>,
}

impl std::fmt::Debug for Core<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("selections", &self.selections.len())
            .finish_non_exhaustive()
    }
}

impl<'a> Core<'a> {
    pub fn new(
        selections: &'a BTreeMap<PolicyId, ImageRef>,
        allowed: &'a (dyn Fn(&Path, &PolicyId) -> bool + Sync),
        cache: Option<&'a ScanCache>,
    ) -> Self {
        Self {
            finder: memmem::Finder::new(MARKER_NEEDLE),
            selections,
            allowed,
            cache,
            keep: None,
        }
    }

    /// Drops the planned changes `keep` refuses (markers held for a person's rollback).
    pub fn with_keep(mut self, keep: Option<&'a (dyn Fn(&Change) -> bool + Sync)>) -> Self {
        self.keep = keep;
        self
    }

    /// Whether `bytes` hold the marker (and so must be scanned).
    pub fn has_marker(&self, bytes: &[u8]) -> bool {
        self.finder.find(bytes).is_some()
    }

    /// Rewrites one file's bytes (`rel` is its path in the tree).
    pub fn rewrite(&self, rel: &Path, lang: Lang, before: Vec<u8>) -> FileOutcome {
        if !self.has_marker(&before) {
            let mut outcome = FileOutcome::default();
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
        let scanned = match self.cache {
            Some(cache) => cache.scan(&before, lang),
            None => scan(&before, lang),
        };
        self.rewrite_scanned(rel, lang, scanned, || Ok(before))
    }

    /// [`Self::rewrite`] for bytes whose scan is known: they are loaded only when a marked
    /// value changes.
    pub fn rewrite_scanned(
        &self,
        rel: &Path,
        lang: Lang,
        scanned: ScanResult,
        load: impl FnOnce() -> Result<Vec<u8>, String>,
    ) -> FileOutcome {
        let mut outcome = FileOutcome {
            parsed: true,
            ..FileOutcome::default()
        };
        let mut plan = plan_allowed(rel, lang, scanned, self.selections, |policy| {
            (self.allowed)(rel, policy)
        });
        if let Some(keep) = self.keep {
            plan.retain_changes(keep);
        }
        outcome.problems = plan.problems.clone();
        outcome.policies = plan.sites.iter().map(|s| s.marker.policy.clone()).collect();
        if plan.is_noop() {
            return outcome;
        }
        let problem = |kind| Problem {
            path: rel.to_path_buf(),
            line: 0,
            kind,
        };
        let before = match load() {
            Ok(before) => before,
            Err(reason) => return outcome.failed(problem(ProblemKind::Io { reason })),
        };
        // The edited bytes' scan is cached too: they are what the next run reads.
        let applied = match self.cache {
            Some(cache) => apply_with(&before, &plan, |after| {
                cache.rescan(lang, &before, after, &plan.edits)
            }),
            None => apply(&before, &plan),
        };
        let after = match applied {
            Ok(after) => after,
            Err(err) => {
                return outcome.failed(problem(ProblemKind::Verify {
                    reason: err.to_string(),
                }));
            }
        };
        outcome.changes = plan.changes;
        outcome.changed = Some(ChangedFile {
            path: rel.to_path_buf(),
            before: Before::Bytes(before),
            after,
        });
        outcome
    }
}

fn process(job: &Job<'_>, rel: &Path, lang: Lang) -> FileOutcome {
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
            return FileOutcome {
                problems: vec![io_problem("read", err)],
                ..FileOutcome::default()
            };
        }
    };
    let outcome = job.core.rewrite(rel, lang, before);
    if job.mode == Mode::Write
        && let Some(file) = &outcome.changed
        && let Before::Bytes(before) = &file.before
    {
        match write_atomic(&abs, before, &file.after, job.hooks) {
            Ok(()) => {
                tracing::debug!(path = %rel.display(), edits = outcome.changes.len(), "file rewritten");
            }
            Err(WriteError::Changed) => {
                return outcome.failed(Problem {
                    path: rel.to_path_buf(),
                    line: 0,
                    kind: ProblemKind::ChangedMeanwhile,
                });
            }
            Err(WriteError::Io(err)) => return outcome.failed(io_problem("write", err)),
        }
    }
    outcome
}

struct Job<'a> {
    base: &'a Path,
    core: Core<'a>,
    mode: Mode,
    hooks: &'a Hooks<'a>,
    report: Mutex<TreeReport>,
}

impl Job<'_> {
    fn process_files(&self, files: Vec<(PathBuf, Lang)>) {
        if files.is_empty() {
            return;
        }
        let outcomes: Vec<FileOutcome> = files
            .iter()
            .map(|(rel, lang)| process(self, rel, *lang))
            .collect();
        let mut report = self.report.lock().unwrap_or_else(PoisonError::into_inner);
        report.files_seen += files.len();
        for outcome in outcomes {
            report.add(outcome);
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
