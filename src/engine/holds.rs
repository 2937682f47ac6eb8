//! A target run's side of holds (see `crate::hold`): reads the target's holds file and what
//! Git says before the rewrite, refuses the held changes during it, and afterwards records
//! what was delivered and which holds started or ended, with one log line for each.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use super::report::{RunError, TargetReport};
use super::run::TargetRun;
use crate::config::ImagePolicy;
use crate::git::Workspace;
use crate::hold::{Facts, Hold, HoldBook, Verdict, decide};
use crate::model::PolicyId;
use crate::rewrite::Change;
use crate::state::{now_ms, update_holds};
use crate::status::{HoldStatus, timestamp};

/// One rewrite's view of the holds.
#[derive(Debug)]
pub struct HoldRun {
    book: HoldBook,
    /// Holds of files that are gone.
    gone: Vec<Hold>,
    /// Per commit tagsmith delivered a marker with: whether a person committed after it.
    others: BTreeMap<String, bool>,
    verdicts: Mutex<Vec<(Change, Verdict)>>,
    now_ms: u64,
}

impl HoldRun {
    /// Reads the target's holds and asks Git about the commits they name. The workspace holds
    /// the branch as read (after sync, before the rewrite).
    pub fn prepare(run: &TargetRun<'_>, ws: &Workspace) -> Result<Self, RunError> {
        let mut book = crate::state::load_holds(&run.holds_file)?;
        let files: std::collections::BTreeSet<&str> = book
            .holds
            .iter()
            .map(|h| h.key.file.as_str())
            .chain(book.written.iter().map(|w| w.key.file.as_str()))
            .collect();
        let files: Vec<&str> = files.into_iter().collect();
        let present: std::collections::BTreeSet<std::path::PathBuf> = files
            .iter()
            .zip(ws.head_has_files(&files))
            .filter(|(_, present)| *present)
            .map(|(file, _)| std::path::PathBuf::from(file))
            .collect();
        let gone = book.retain_files(|file| present.contains(file));
        let mut others = BTreeMap::new();
        for written in &book.written {
            if !others.contains_key(&written.commit) {
                let since = ws.committed_by_others_since(&written.commit, &run.target.author)?;
                others.insert(written.commit.clone(), since);
            }
        }
        Ok(Self {
            book,
            gone,
            others,
            verdicts: Mutex::new(Vec::new()),
            now_ms: now_ms(),
        })
    }

    /// Whether the rewrite may make `change`; the verdict is kept for [`finish`].
    pub fn keep(&self, change: &Change, images: &[ImagePolicy]) -> bool {
        let newer = |policy: &PolicyId, a: &str, b: &str| newer(images, policy, a, b);
        let person = |commit: &str| self.others.get(commit).copied().unwrap_or(false);
        let facts = Facts {
            newer: &newer,
            person_committed_since: &person,
            now_ms: self.now_ms,
        };
        let verdict = decide(&self.book, change, &facts);
        let writes = verdict.writes();
        self.verdicts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((change.clone(), verdict));
        writes
    }
}

impl HoldRun {
    /// The holds as they stand with this rewrite's verdicts.
    pub fn current(&self) -> Vec<HoldStatus> {
        let mut book = self.book.clone();
        let verdicts = self.verdicts.lock().unwrap_or_else(PoisonError::into_inner);
        let plain: Vec<Verdict> = verdicts.iter().map(|(_, v)| v.clone()).collect();
        book.note(&plain);
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
/// ended and what was delivered. The report gets the target's holds as they now stand.
pub fn finish(run: &TargetRun<'_>, holds: Option<HoldRun>, report: &mut TargetReport) {
    let Some(holds) = holds else {
        // The run failed before the rewrite: the file says what holds.
        if let Ok(book) = crate::state::load_holds(&run.holds_file) {
            report.holds = statuses(&book);
        }
        return;
    };
    let verdicts = holds
        .verdicts
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    let plain: Vec<Verdict> = verdicts.iter().map(|(_, v)| v.clone()).collect();
    if run.dry_run {
        let mut book = holds.book;
        book.note(&plain);
        report.holds = statuses(&book);
        return;
    }
    let delivered: Vec<Change> = match report.outcome.delivered() {
        Some(_) => verdicts
            .iter()
            .filter(|(c, v)| {
                v.writes()
                    && report
                        .changes
                        .iter()
                        .any(|r| r.line == c.line && Path::new(&r.file) == c.file.as_path())
            })
            .map(|(c, _)| c.clone())
            .collect(),
        None => Vec::new(),
    };
    let commit = report.outcome.delivered().map(str::to_string);
    let now = holds.now_ms;
    let gone = holds.gone;
    let saved = update_holds(&run.holds_file, |book| {
        book.retain_files(|file| !gone.iter().any(|h| Path::new(&h.key.file) == file));
        book.note(&plain);
        if let Some(commit) = &commit {
            book.delivered(&delivered, commit, now);
        }
        statuses(book)
    });
    match saved {
        Ok(now_held) => report.holds = now_held,
        Err(e) => {
            // The verdicts stand for this run; the next one decides again from the file.
            tracing::warn!(error = %e, "holds not saved");
            let mut book = holds.book;
            book.note(&plain);
            report.holds = statuses(&book);
            return;
        }
    }
    for hold in &gone {
        tracing::info!(policy = %hold.policy(), file = %hold.key.file, "hold ended: the file is gone");
    }
    for (_, verdict) in &verdicts {
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
