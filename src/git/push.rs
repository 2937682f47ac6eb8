//! Pushing a commit to a branch, never forcing: a remote that moved is reported as
//! `NonFastForward` so the caller can fetch, re-apply and try again.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use git2::{ErrorCode, Oid, PushOptions, RemoteCallbacks};

use super::auth::callbacks;
use super::direct_push::{DirectPushError, Mode, Pushed};
use super::{Cause, GitError, Workspace, failure};

const PUSH_REF: &str = "refs/tagsmith/push";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushOutcome {
    pub branch: String,
    pub commit: Oid,
}

pub(super) fn is_non_fast_forward(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("non-fast-forward")
        || t.contains("fetch first")
        || t.contains("not present locally")
        || t.contains("stale info")
}

impl Workspace {
    /// Pushes `refspec` to origin with `cbs` (credentials, host keys and any checks of the
    /// caller's), returning libgit2's result and the server's refusal of the reference, if any:
    /// git2's push() returns Ok even when the server refuses a reference.
    pub(super) fn push_refspec<'cb>(
        &self,
        refspec: &str,
        mut cbs: RemoteCallbacks<'cb>,
    ) -> Result<(Result<(), git2::Error>, Option<String>), git2::Error> {
        let rejected: Rc<RefCell<Option<String>>> = Rc::default();
        let status_slot = Rc::clone(&rejected);
        cbs.push_update_reference(move |_refname, status| {
            if let Some(status) = status {
                *status_slot.borrow_mut() = Some(status.to_string());
            }
            Ok(())
        });
        let mut options = PushOptions::new();
        let push_options: Vec<&str> = self.push_options.iter().map(String::as_str).collect();
        options
            .remote_callbacks(cbs)
            .remote_push_options(&push_options)
            // The pack of new objects is searched for deltas on every core, not on one (0:
            // as many threads as the machine has).
            .packbuilder_parallelism(0);
        let mut remote = self.repo.find_remote("origin")?;
        let result = remote.push(&[refspec], Some(&mut options));
        drop(options);
        let refusal = rejected.borrow_mut().take();
        Ok((result, refusal))
    }

    /// Pushes `commit` to `branch` when the branch's remote head is an ancestor of it (or the
    /// branch does not exist yet). Over `file://` and smart HTTP(S) only the objects the commit
    /// adds to its parent are sent ([`super::direct_push`]); other transports use libgit2.
    pub fn push(&self, commit: Oid, branch: &str) -> Result<PushOutcome, GitError> {
        let refname = format!("refs/heads/{branch}");
        if let Some(result) = self.push_direct(commit, &refname, Mode::FastForward) {
            return self.direct_outcome(result, commit, branch);
        }
        let push_err = |(message, cause): (String, Cause)| GitError::Push {
            url: self.url.clone(),
            branch: branch.to_string(),
            message,
            cause,
        };
        // libgit2 pushes references, not bare commit ids.
        self.repo
            .reference(PUSH_REF, commit, true, "tagsmith push")
            .map_err(|e| push_err(failure(&e, None)))?;
        let attempts = Cell::new(0);
        let cbs = callbacks(self.creds.as_ref(), self.host_keys.as_ref(), &attempts);
        let refspec = format!("{PUSH_REF}:refs/heads/{branch}");
        let (result, rejected) = self
            .push_refspec(&refspec, cbs)
            .map_err(|e| push_err(failure(&e, None)))?;
        let non_fast_forward = || GitError::NonFastForward {
            url: self.url.clone(),
            branch: branch.to_string(),
        };
        let failure = match (result, rejected) {
            (Ok(()), None) => None,
            (Err(e), _)
                if e.code() == ErrorCode::NotFastForward || is_non_fast_forward(e.message()) =>
            {
                return Err(non_fast_forward());
            }
            (Err(e), _) => Some(push_err(failure(&e, self.refusal()))),
            (Ok(()), Some(status)) if is_non_fast_forward(&status) => {
                return Err(non_fast_forward());
            }
            (Ok(()), Some(status)) => Some(GitError::PushRejected {
                url: self.url.clone(),
                branch: branch.to_string(),
                status: super::redact_url(&status),
            }),
        };
        if let Some(failure) = failure {
            // A writer that pushed between our ref advertisement and our update makes the server
            // answer only "failed to update ref": look whether the branch moved under us.
            return Err(if self.branch_moved(commit, branch) {
                non_fast_forward()
            } else {
                failure
            });
        }
        Ok(PushOutcome {
            branch: branch.to_string(),
            commit,
        })
    }
}

impl Workspace {
    /// A direct push's result as libgit2's pushes report theirs.
    pub(super) fn direct_outcome(
        &self,
        result: Result<Pushed, DirectPushError>,
        commit: Oid,
        branch: &str,
    ) -> Result<PushOutcome, GitError> {
        match result {
            Ok(Pushed::Done) => Ok(PushOutcome {
                branch: branch.to_string(),
                commit,
            }),
            Ok(Pushed::Moved) => Err(GitError::NonFastForward {
                url: self.url.clone(),
                branch: branch.to_string(),
            }),
            Ok(Pushed::Refused(status)) => Err(GitError::PushRejected {
                url: self.url.clone(),
                branch: branch.to_string(),
                status: super::redact_url(&status),
            }),
            Err(e) => Err(GitError::Push {
                url: self.url.clone(),
                branch: branch.to_string(),
                message: super::redact_url(&error_chain(&e)),
                cause: if e.is_rejection() {
                    Cause::Rejected
                } else {
                    Cause::Other
                },
            }),
        }
    }

    /// Whether the remote branch now points somewhere other than `commit`'s parent.
    fn branch_moved(&self, commit: Oid, branch: &str) -> bool {
        let Ok(parent) = self.repo.find_commit(commit).and_then(|c| c.parent_id(0)) else {
            return false;
        };
        let tracking = format!("refs/remotes/origin/{branch}");
        if self
            .fetch(&[format!("+refs/heads/{branch}:{tracking}")])
            .is_err()
        {
            return false;
        }
        // A branch that does not exist remotely has not moved: creating it failed for another reason.
        self.repo
            .refname_to_id(&tracking)
            .is_ok_and(|head| head != parent)
    }
}

/// An error and its sources, as one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}
