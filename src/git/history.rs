//! Who committed after a given commit: what tells a person's rollback from tagsmith's own
//! history (see `crate::hold`).

use git2::Oid;

use super::{GitError, Workspace, message};
use crate::config::Author;

impl Workspace {
    /// Whether `commit` is in the history of the checked-out head and someone other than
    /// `author` made a commit after it (a commit counts as tagsmith's when its author is, as
    /// for the branches tagsmith owns). A commit not in that history (an unmerged or squashed
    /// pull request, a rewritten branch) gives `false`: nothing a person did can be told apart.
    pub fn committed_by_others_since(
        &self,
        commit: &str,
        author: &Author,
    ) -> Result<bool, GitError> {
        let err = |e: git2::Error| GitError::Open {
            path: self.root().to_path_buf(),
            message: message(&e),
        };
        let Ok(since) = Oid::from_str(commit) else {
            return Ok(false);
        };
        let head = self.head()?;
        if head == since || self.repo.find_commit(since).is_err() {
            return Ok(false);
        }
        if !self.repo.graph_descendant_of(head, since).map_err(err)? {
            return Ok(false);
        }
        let mut walk = self.repo.revwalk().map_err(err)?;
        walk.push(head).map_err(err)?;
        walk.hide(since).map_err(err)?;
        for id in walk {
            let found = self.repo.find_commit(id.map_err(err)?).map_err(err)?;
            let who = found.author();
            if who.name_bytes() != author.name.as_bytes()
                || who.email_bytes() != author.email.as_bytes()
            {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
