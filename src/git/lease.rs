//! A branch tagsmith owns (a pull request's head): synced onto the base, checked for commits
//! tagsmith did not write, and replaced with force-with-lease so that a push by someone else
//! between our fetch and our push is never overwritten.

use std::cell::Cell;

use git2::Oid;

use super::auth::callbacks;
use super::direct_push::Mode;
use super::workspace::{Synced, pushed_record};
use super::{Cause, GitError, PushOutcome, Workspace, failure, message};
use crate::config::Author;
use crate::state::PushedHead;

const LEASE_REF: &str = "refs/tagsmith/lease";

/// A commit on a branch tagsmith owns that it may not replace, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignCommit {
    pub commit: Oid,
    pub reason: ForeignReason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForeignReason {
    /// Written by someone else (`name <email>`).
    Author(String),
    /// Authored as tagsmith but committed by someone else: an amend or a rebase.
    Committer(String),
    /// More than one commit beyond the base: tagsmith makes one.
    Stacked(usize),
    /// Looks like tagsmith's, but is not the head tagsmith last pushed.
    NotPushedByUs,
}

impl std::fmt::Display for ForeignCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "commit {}", self.commit)?;
        match &self.reason {
            ForeignReason::Author(who) => write!(f, " is authored by {who}"),
            ForeignReason::Committer(who) => {
                write!(f, " is committed by {who} (amended or rebased by hand?)")
            }
            ForeignReason::Stacked(n) => {
                write!(f, " heads {n} commits beyond the base; tagsmith writes one")
            }
            ForeignReason::NotPushedByUs => {
                write!(f, " is not the commit tagsmith last pushed there")
            }
        }
    }
}

impl Workspace {
    /// Fetches `base` and `head`, then points HEAD at the base: updates are always
    /// computed on top of the current base, never on an older head.
    pub fn sync_onto_base(&self, base: &str, head: &str) -> Result<Synced, GitError> {
        let synced = self.sync(base, head)?;
        let base_head = self
            .repo
            .refname_to_id(&format!("refs/remotes/origin/{base}"))
            .map_err(|_| GitError::MissingBranch {
                url: self.url.clone(),
                branch: base.to_string(),
            })?;
        if synced.base != base_head {
            self.reset_to(base_head)?;
        }
        Ok(Synced {
            base: base_head,
            push_head: synced.push_head,
        })
    }

    /// The first commit on `branch` (head `head`) that tagsmith did not make, if any; `None`
    /// means the branch may be replaced. A commit is tagsmith's when its author and its
    /// committer are both `author` (a person's `git commit --amend` keeps the author but makes
    /// them the committer), and tagsmith never stacks commits, so the branch holds exactly one
    /// beyond `base`'s history. When this workspace has pushed to `branch` before, the head
    /// must also be the commit it last pushed: a commit made to look like tagsmith's is not.
    /// With no record (a new state directory) identities alone decide.
    pub fn foreign_commit(
        &self,
        branch: &str,
        head: Oid,
        base: Oid,
        author: &Author,
    ) -> Result<Option<ForeignCommit>, GitError> {
        let record = self.pushed_head()?;
        self.check_branch(head, base, author, |commit| match &record {
            Some(record) if record.branch == branch => record.names(branch, &commit.to_string()),
            _ => true,
        })
    }

    fn check_branch(
        &self,
        head: Oid,
        base: Oid,
        author: &Author,
        pushed_by_us: impl Fn(Oid) -> bool,
    ) -> Result<Option<ForeignCommit>, GitError> {
        let err = |e: git2::Error| GitError::Open {
            path: self.root().to_path_buf(),
            message: message(&e),
        };
        let mut walk = self.repo.revwalk().map_err(err)?;
        walk.push(head).map_err(err)?;
        walk.hide(base).map_err(err)?;
        let mut beyond = Vec::new();
        for id in walk {
            beyond.push(id.map_err(err)?);
        }
        let identity = |s: &git2::Signature<'_>| {
            format!(
                "{} <{}>",
                String::from_utf8_lossy(s.name_bytes()),
                String::from_utf8_lossy(s.email_bytes())
            )
        };
        let ours = format!("{} <{}>", author.name, author.email);
        // Oldest first, so the message names where someone else's work begins.
        for &id in beyond.iter().rev() {
            let commit = self.repo.find_commit(id).map_err(err)?;
            let reason = if identity(&commit.author()) != ours {
                Some(ForeignReason::Author(identity(&commit.author())))
            } else if identity(&commit.committer()) != ours {
                Some(ForeignReason::Committer(identity(&commit.committer())))
            } else {
                None
            };
            if let Some(reason) = reason {
                return Ok(Some(ForeignCommit { commit: id, reason }));
            }
        }
        if beyond.len() > 1 {
            return Ok(Some(ForeignCommit {
                commit: head,
                reason: ForeignReason::Stacked(beyond.len()),
            }));
        }
        if !beyond.is_empty() && !pushed_by_us(head) {
            return Ok(Some(ForeignCommit {
                commit: head,
                reason: ForeignReason::NotPushedByUs,
            }));
        }
        Ok(None)
    }

    /// The record of the last push; an unreadable one counts as none (identities still
    /// decide), so a damaged record cannot stop every run.
    fn pushed_head(&self) -> Result<Option<PushedHead>, GitError> {
        match PushedHead::load(&pushed_record(self.repo.path())) {
            Ok(record) => Ok(record),
            Err(e) => {
                tracing::warn!(error = %e, "ignoring the record of the last pushed head");
                Ok(None)
            }
        }
    }

    /// Records `commit` as pending (before the push) or pushed (after it) to `branch`.
    fn record_push(&self, branch: &str, commit: Oid, pushed: bool) -> Result<(), GitError> {
        let path = pushed_record(self.repo.path());
        let mut record = self
            .pushed_head()
            .ok()
            .flatten()
            .filter(|r| r.branch == branch)
            .unwrap_or_else(|| PushedHead {
                branch: branch.to_string(),
                ..PushedHead::default()
            });
        if pushed {
            record.pushed = Some(commit.to_string());
            record.pending = None;
        } else {
            record.pending = Some(commit.to_string());
        }
        record.save(&path).map_err(|e| GitError::Open {
            path: path.clone(),
            message: e.to_string(),
        })
    }

    /// Whether two commits hold the same tree (the same files, whatever their history).
    pub fn same_tree(&self, a: Oid, b: Oid) -> Result<bool, GitError> {
        let tree = |id: Oid| {
            self.repo
                .find_commit(id)
                .map(|c| c.tree_id())
                .map_err(|e| GitError::Open {
                    path: self.root().to_path_buf(),
                    message: message(&e),
                })
        };
        Ok(tree(a)? == tree(b)?)
    }

    /// Sets `branch` to `commit` whatever it held, but only if it still holds `expected`
    /// (`None`: it must not exist). A branch that moved is reported as `NonFastForward`.
    pub fn push_with_lease(
        &self,
        commit: Oid,
        branch: &str,
        expected: Option<Oid>,
    ) -> Result<PushOutcome, GitError> {
        let push_err = |(message, cause): (String, Cause)| GitError::Push {
            url: self.url.clone(),
            branch: branch.to_string(),
            message,
            cause,
        };
        self.repo
            .reference(LEASE_REF, commit, true, "tagsmith lease push")
            .map_err(|e| push_err(failure(&e, None)))?;
        // Before the push: a crash right after it must still find the new head ours.
        self.record_push(branch, commit, false)?;
        let dst = format!("refs/heads/{branch}");
        if let Some(result) = self.push_direct(commit, &dst, Mode::Lease(expected)) {
            let pushed = self.direct_outcome(result, commit, branch)?;
            self.record_pushed(branch, commit);
            return Ok(pushed);
        }
        let attempts = Cell::new(0);
        let lease_broken = Cell::new(false);
        let mut cbs = callbacks(self.creds.as_ref(), self.host_keys.as_ref(), &attempts);
        // The advertised old value is what the server checks the update against (under its
        // lock), so comparing it with what we expect here is a real lease, not a racy pre-check.
        cbs.push_negotiation(|updates| {
            for update in updates {
                if update.dst_refname().ok() == Some(dst.as_str()) {
                    let current = (!update.src().is_zero()).then(|| update.src());
                    if current != expected {
                        lease_broken.set(true);
                        return Err(git2::Error::from_str("stale info: the branch moved"));
                    }
                }
            }
            Ok(())
        });
        let refspec = format!("+{LEASE_REF}:{dst}");
        let (result, rejected) = self
            .push_refspec(&refspec, cbs)
            .map_err(|e| push_err(failure(&e, None)))?;
        if lease_broken.get() {
            return Err(GitError::NonFastForward {
                url: self.url.clone(),
                branch: branch.to_string(),
            });
        }
        let failure = match (result, rejected) {
            (Ok(()), None) => None,
            (Err(e), _) => Some(push_err(failure(&e, None))),
            (Ok(()), Some(status)) => Some(GitError::PushRejected {
                url: self.url.clone(),
                branch: branch.to_string(),
                status: super::redact_url(&status),
            }),
        };
        if let Some(failure) = failure {
            // A writer between the ref advertisement and our update makes the server refuse the
            // update (its old value no longer matches): that is a broken lease too.
            return Err(if self.moved_from(branch, expected) {
                GitError::NonFastForward {
                    url: self.url.clone(),
                    branch: branch.to_string(),
                }
            } else {
                failure
            });
        }
        self.record_pushed(branch, commit);
        Ok(PushOutcome {
            branch: branch.to_string(),
            commit,
        })
    }

    fn record_pushed(&self, branch: &str, commit: Oid) {
        if let Err(e) = self.record_push(branch, commit, true) {
            // The pending record already names this commit: the next run still knows it.
            tracing::warn!(%branch, error = %e, "cannot record the pushed head");
        }
    }

    /// Whether the remote `branch` now holds something other than `expected`.
    fn moved_from(&self, branch: &str, expected: Option<Oid>) -> bool {
        let tracking = format!("refs/remotes/origin/{branch}");
        if self
            .fetch(&[format!("+refs/heads/{branch}:{tracking}")])
            .is_err()
        {
            return false;
        }
        self.repo.refname_to_id(&tracking).ok() != expected
    }
}
