//! Direct push to the target's push branch (`push.branch`, else `git.branch`).

use std::path::Path;

use git2::Oid;

use super::{Delivered, Delivery, Pending};
use crate::config::Target;
use crate::engine::report::{Outcome, RunError};
use crate::git::{GitError, Workspace};

#[derive(Debug)]
pub struct Push;

impl Delivery for Push {
    fn open(&mut self, target: &Target, dir: &Path) -> Result<Workspace, RunError> {
        let mut ws = Workspace::open_objects(dir, &target.git)?;
        // A direct push looks at nothing beyond the heads it builds on.
        ws.fetch_shallow(true);
        Ok(ws)
    }

    fn sync(&mut self, ws: &Workspace, target: &Target) -> Result<(), RunError> {
        ws.sync(&target.git.branch, target.push_branch())?;
        Ok(())
    }

    fn before_commit(
        &mut self,
        _ws: &Workspace,
        _pending: &Pending<'_>,
    ) -> Result<Option<Outcome>, RunError> {
        Ok(None)
    }

    fn deliver(
        &mut self,
        ws: &Workspace,
        commit: Oid,
        pending: &Pending<'_>,
    ) -> Result<Delivered, RunError> {
        match ws.push(commit, pending.target.push_branch()) {
            Ok(pushed) => Ok(Delivered::Done {
                outcome: Outcome::Pushed {
                    branch: pushed.branch,
                    commit: pushed.commit.to_string(),
                },
                pushed: true,
            }),
            Err(e @ GitError::NonFastForward { .. }) => Ok(Delivered::Moved(e.into())),
            Err(e) => Err(e.into()),
        }
    }
}
