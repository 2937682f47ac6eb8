//! One commit of the files a run changed, with the configured identity.

use std::path::Path;

use git2::{Oid, Signature};

use super::{GitError, Workspace, message};
use crate::config::Author;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    pub id: Oid,
    pub parent: Oid,
}

impl Workspace {
    /// Commits `changed` (paths relative to the root) on top of HEAD and moves HEAD to it.
    pub fn commit(
        &self,
        changed: &[&Path],
        author: &Author,
        text: &str,
    ) -> Result<CommitInfo, GitError> {
        let err = |e: git2::Error| GitError::Commit {
            message: message(&e),
        };
        let parent_id = self.head()?;
        let parent = self.repo.find_commit(parent_id).map_err(err)?;
        let mut index = self.repo.index().map_err(err)?;
        for path in changed {
            index.add_path(path).map_err(err)?;
        }
        index.write().map_err(err)?;
        let tree_id = index.write_tree().map_err(err)?;
        if tree_id == parent.tree_id() {
            return Err(GitError::Commit {
                message: "nothing to commit: the files equal the base commit".into(),
            });
        }
        let tree = self.repo.find_tree(tree_id).map_err(err)?;
        let signature = Signature::now(&author.name, &author.email).map_err(err)?;
        let id = self
            .repo
            .commit(None, &signature, &signature, text, &tree, &[&parent])
            .map_err(err)?;
        self.repo.set_head_detached(id).map_err(err)?;
        Ok(CommitInfo {
            id,
            parent: parent_id,
        })
    }
}
