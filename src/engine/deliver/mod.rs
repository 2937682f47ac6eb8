//! How a target's commit reaches its remote: pushed to a branch, or through a pull request.
//! The run loop drives one [`Delivery`]; each does only its own part.

mod pull_request;
mod push;

use std::path::Path;

use git2::Oid;

pub use self::pull_request::{PullRequest, body};
pub use self::push::Push;
use super::report::{ChangeReport, Outcome, RunError};
use super::select::SelectionSet;
use crate::config::Target;
use crate::git::Workspace;

/// What a run is about to commit.
#[derive(Debug)]
pub struct Pending<'a> {
    pub target: &'a Target,
    pub changes: &'a [ChangeReport],
    /// The selections the run rewrote with (a pull request's body names each policy's image).
    pub selections: &'a SelectionSet,
    /// Markers held for a person's rollback (a pull request's body lists them).
    pub holds: &'a [crate::status::HoldStatus],
}

/// The result of handing a commit to a delivery.
#[derive(Debug)]
pub enum Delivered {
    /// Done; `pushed` says whether a push was attempted.
    Done { outcome: Outcome, pushed: bool },
    /// The remote branch moved under the push: fetch, rewrite and try again (the error is
    /// the run's when no attempts are left).
    Moved(RunError),
}

/// One way of delivering. Blocking, like the rest of a target run.
pub trait Delivery {
    /// Opens (or clones) the target's workspace.
    fn open(&mut self, target: &Target, dir: &Path) -> Result<Workspace, RunError>;
    /// Fetches and resets the workspace to what the update is computed on.
    fn sync(&mut self, ws: &Workspace, target: &Target) -> Result<(), RunError>;
    /// Before committing: `Some` finishes the run without a commit.
    fn before_commit(
        &mut self,
        ws: &Workspace,
        pending: &Pending<'_>,
    ) -> Result<Option<Outcome>, RunError>;
    /// Delivers `commit`, made on top of the synced workspace.
    fn deliver(
        &mut self,
        ws: &Workspace,
        commit: Oid,
        pending: &Pending<'_>,
    ) -> Result<Delivered, RunError>;
}

/// The delivery a target is configured with.
pub fn for_target(target: &Target) -> Box<dyn Delivery + '_> {
    match &target.pull_request {
        Some(settings) => Box::new(PullRequest::new(settings)),
        None => Box::new(Push),
    }
}
