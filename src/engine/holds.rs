//! A target run's side of holds (see `crate::hold`): reads the target's holds file and what
//! Git says before the rewrite, refuses the held changes during it, and afterwards records
//! what was delivered and which holds started or ended, with one log line for each.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use super::report::{Outcome, RunError, TargetReport};
use super::run::TargetRun;
use crate::config::ImagePolicy;
use crate::git::{GitError, History, Workspace};
use crate::hold::{Facts, Hold, HoldBook, Verdict, Wrote, decide};
use crate::model::PolicyId;
use crate::rewrite::{Change, Part};
use crate::state::{LoadedHolds, now_ms};
use crate::status::{HoldStatus, timestamp};

/// One rewrite's view of the holds.
#[derive(Debug)]
pub struct HoldRun {
    /// The holds file as read.
    loaded: LoadedHolds,
    /// The book without the files that are gone, when some are (else the book as read).
    kept: Option<HoldBook>,
    /// The commit the book now holds good for (see [`HoldBook::checked`]): the synced head.
    head: String,
    /// Files of the record that the synced tree no longer has.
    gone_files: BTreeSet<String>,
    /// Holds of files that are gone.
    gone: Vec<Hold>,
    /// Asked only for a marker that no longer reads what tagsmith wrote there.
    history: History,
    /// Per commit tagsmith delivered a marker with: whether a person committed after it.
    others: Mutex<BTreeMap<String, bool>>,
    /// The first question Git could not answer: the run fails with it.
    error: Mutex<Option<GitError>>,
    /// The verdicts other than [`Verdict::Write`], which changes nothing in the book: a
    /// cold run writes thousands of markers, and a copy of each change here was the largest
    /// part of the holds' memory. What was delivered is read from the report (see
    /// [`Self::marker_parts`]).
    verdicts: Mutex<Vec<Verdict>>,
    /// The part each marker's change sets, in the order of the rewrite's changes (the first
    /// of the report's changes; write-backs' come after and have no verdict).
    parts: Vec<Part>,
    now_ms: u64,
}

impl HoldRun {
    /// Reads the target's holds and checks that their files are still there. The workspace
    /// holds the branch as read (after sync, before the rewrite). A record already checked
    /// against this very commit is not checked again, one checked against an earlier commit
    /// only for the paths changed since, and Git's history is read only for the markers that
    /// need it (see [`Self::keep`]).
    pub fn prepare(run: &TargetRun<'_>, ws: &Workspace) -> Result<Self, RunError> {
        let loaded = crate::state::load_holds_stamped(&run.holds_file)?;
        let history = ws.history()?;
        let head = ws.head()?.to_string();
        let book = &loaded.book;
        let mut gone_files = BTreeSet::new();
        if book.checked.as_deref() != Some(head.as_str()) {
            let files: BTreeSet<&str> = book
                .holds
                .iter()
                .map(|h| h.key.file.as_str())
                .chain(book.written.iter().map(|w| w.key.file.as_str()))
                .collect();
            // The files of the commit last checked are all there: only a path that changed
            // since can have gone.
            let changed = book.checked.as_deref().and_then(|c| ws.changed_since(c));
            let files: Vec<&str> = files
                .into_iter()
                .filter(|f| changed.as_ref().is_none_or(|c| c.contains(*f)))
                .collect();
            gone_files = files
                .iter()
                .zip(ws.head_has_files(&files))
                .filter(|(_, present)| !*present)
                .map(|(file, _)| (*file).to_string())
                .collect();
        }
        let mut gone = Vec::new();
        let kept = (!gone_files.is_empty()).then(|| {
            let mut kept = book.clone();
            gone = kept.retain_files(|file| !is_gone(&gone_files, file));
            kept
        });
        Ok(Self {
            loaded,
            kept,
            head,
            gone_files,
            gone,
            history,
            others: Mutex::new(BTreeMap::new()),
            error: Mutex::new(None),
            verdicts: Mutex::new(Vec::new()),
            parts: Vec::new(),
            now_ms: now_ms(),
        })
    }

    /// Whether the rewrite may make `change`; the verdict is kept for [`finish`].
    pub fn keep(&self, change: &Change, run: &TargetRun<'_>) -> bool {
        let newer = |policy: &PolicyId, a: &str, b: &str| newer(run.images, policy, a, b);
        let person = |commit: &str| self.person_committed_since(commit, run);
        let facts = Facts {
            newer: &newer,
            person_committed_since: &person,
            now_ms: self.now_ms,
        };
        let verdict = decide(self.book(), change, &facts);
        let writes = verdict.writes();
        if !matches!(verdict, Verdict::Write) {
            self.verdicts
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(verdict);
        }
        writes
    }

    /// Notes the changes the rewrite kept (each one [`Self::keep`] let through), before any
    /// write-back adds its own: the first of the report's changes are these, and the ones
    /// [`finish`] records as delivered.
    pub fn marker_parts(&mut self, changes: &[Change]) {
        self.parts = changes.iter().map(|c| c.part).collect();
    }

    /// Git's answer for `commit`, walked once per run; an error is kept for
    /// [`Self::take_error`] and counts as no person's commit meanwhile.
    fn person_committed_since(&self, commit: &str, run: &TargetRun<'_>) -> bool {
        let mut others = self.others.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(known) = others.get(commit) {
            return *known;
        }
        match self
            .history
            .committed_by_others_since(commit, &run.target.author)
        {
            Ok(since) => {
                others.insert(commit.to_string(), since);
                since
            }
            Err(e) => {
                let mut error = self.error.lock().unwrap_or_else(PoisonError::into_inner);
                error.get_or_insert(e);
                false
            }
        }
    }

    /// The error Git gave while the rewrite asked it (see [`Self::keep`]): the rewrite's
    /// verdicts cannot be trusted then, and the run fails as it would have before it.
    pub fn take_error(&self) -> Option<GitError> {
        self.error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

impl HoldRun {
    /// The record as this run decides by: without the files that are gone.
    fn book(&self) -> &HoldBook {
        self.kept.as_ref().unwrap_or(&self.loaded.book)
    }
}

fn is_gone(gone_files: &BTreeSet<String>, file: &Path) -> bool {
    file.to_str().is_some_and(|f| gone_files.contains(f))
}

impl HoldRun {
    /// The holds as they stand with this rewrite's verdicts.
    pub fn current(&self) -> Vec<HoldStatus> {
        let mut book = HoldBook {
            holds: self.book().holds.clone(),
            ..HoldBook::default()
        };
        book.note(&self.verdicts.lock().unwrap_or_else(PoisonError::into_inner));
        statuses(&book)
    }
}

/// Whether tag `a` is newer than `b` under `policy`: the policy, given both, selects `a`.
fn newer(images: &[ImagePolicy], policy: &PolicyId, a: &str, b: &str) -> bool {
    images
        .iter()
        .find(|i| &i.id == policy)
        .is_some_and(|i| i.policy.select(&[b, a]).tag == Some(a))
}

/// After the run: a dry run only reports; otherwise the holds file takes in what started and
/// ended and what was delivered, and the commit it was last checked against; it is written
/// only when that changed anything. The report gets the target's holds as they now stand.
pub fn finish(run: &TargetRun<'_>, holds: Option<HoldRun>, report: &mut TargetReport) {
    let Some(holds) = holds else {
        // The run failed before the rewrite: the file says what holds.
        if let Ok(book) = crate::state::load_holds(&run.holds_file) {
            report.holds = statuses(&book);
        }
        return;
    };
    let plain = holds
        .verdicts
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    if run.dry_run {
        let mut book = holds.kept.unwrap_or(holds.loaded.book);
        book.note(&plain);
        report.holds = statuses(&book);
        return;
    }
    // The markers' changes the rewrite kept are the first of the report's, in its order.
    let delivered: Vec<Wrote<'_>> = match report.outcome.delivered() {
        Some(_) => report
            .changes
            .iter()
            .zip(&holds.parts)
            .map(|(c, part)| Wrote {
                file: c.file.as_str().into(),
                policy: c.policy.as_str().into(),
                part: *part,
                line: c.line,
                new: &c.new,
            })
            .collect(),
        None => Vec::new(),
    };
    let commit = report.outcome.delivered().map(str::to_string);
    // A commit pushed to the branch was made on the synced head, whose files it keeps: the
    // next run, reading it, need not look for them.
    let checked = match &report.outcome {
        Outcome::Pushed { commit, .. } => commit.clone(),
        _ => holds.head.clone(),
    };
    let fallback = HoldBook {
        holds: holds
            .kept
            .as_ref()
            .unwrap_or(&holds.loaded.book)
            .holds
            .clone(),
        ..HoldBook::default()
    };
    let now = holds.now_ms;
    let gone = holds.gone;
    let gone_files = holds.gone_files;
    let saved = crate::state::update_loaded_holds(&run.holds_file, holds.loaded, |book| {
        book.retain_files(|file| !is_gone(&gone_files, file));
        book.note(&plain);
        if let Some(commit) = &commit {
            book.delivered_values(&delivered, commit, now);
        }
        book.checked = (!book.holds.is_empty() || !book.written.is_empty()).then_some(checked);
        statuses(book)
    });
    match saved {
        Ok(now_held) => report.holds = now_held,
        Err(e) => {
            // The verdicts stand for this run; the next one decides again from the file.
            tracing::warn!(error = %e, "holds not saved");
            let mut book = fallback;
            book.note(&plain);
            report.holds = statuses(&book);
            return;
        }
    }
    for hold in &gone {
        tracing::info!(policy = %hold.policy(), file = %hold.key.file, "hold ended: the file is gone");
    }
    for verdict in &plain {
        match verdict {
            Verdict::Starts(h) => tracing::info!(
                policy = %h.policy(), file = %h.key.file, line = h.key.line, from = %h.from, to = %h.to,
                "hold started: a person rolled the marker back; tagsmith leaves it until the policy selects a newer tag or `tagsmith release` lifts it"
            ),
            Verdict::Ends(h) => tracing::info!(
                policy = %h.policy(), file = %h.key.file, line = h.key.line, from = %h.from,
                "hold ended: the policy selects a tag newer than the one rolled back from"
            ),
            Verdict::Write | Verdict::Held(_) => {}
        }
    }
}

/// The book's holds as `/status` shows them.
pub fn statuses(book: &HoldBook) -> Vec<HoldStatus> {
    book.holds.iter().map(status).collect()
}

fn status(hold: &Hold) -> HoldStatus {
    HoldStatus {
        policy: hold.policy().to_string(),
        marker: hold.key.marker.clone(),
        file: hold.key.file.clone(),
        line: hold.key.line,
        from: hold.from.clone(),
        to: hold.to.clone(),
        since: timestamp(hold.since_ms),
    }
}
