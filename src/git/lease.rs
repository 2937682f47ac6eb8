//! A branch tagsmith owns (a pull request's head): synced onto the base, checked for commits
//! tagsmith did not write, and replaced with force-with-lease so that a push by someone else
//! between our fetch and our push is never overwritten.

use std::cell::Cell;

use git2::Oid;

use super::auth::callbacks;
use super::workspace::Synced;
use super::{Cause, GitError, PushOutcome, Workspace, failure, message};
use crate::config::Author;

const LEASE_REF: &str = "refs/tagsmith/lease";

impl Workspace {
    /// Fetches `base` and `head`, then resets the working tree to the base: updates are always
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

    /// Whether `head` is a commit tagsmith wrote: a single commit by `author` directly on top
    /// of a commit of the base's history. Anything else means someone else pushed to the branch.
    pub fn is_own_commit(&self, head: Oid, base: Oid, author: &Author) -> Result<bool, GitError> {
        let err = |e: git2::Error| GitError::Open {
            path: self.root().to_path_buf(),
            message: message(&e),
        };
        let commit = self.repo.find_commit(head).map_err(err)?;
        if commit.parent_count() != 1 {
            return Ok(false);
        }
        let signature = commit.author();
        let by_us = signature.email().ok() == Some(author.email.as_str())
            && signature.name().ok() == Some(author.name.as_str());
        let parent = commit.parent_id(0).map_err(err)?;
        let on_base = parent == base || self.repo.graph_descendant_of(base, parent).map_err(err)?;
        Ok(by_us && on_base)
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
        let dst = format!("refs/heads/{branch}");
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
        Ok(PushOutcome {
            branch: branch.to_string(),
            commit,
        })
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
