//! Who committed after a given commit: what tells a person's rollback from tagsmith's own
//! history (see `crate::hold`).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use git2::{Oid, Repository};

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
        others_since(&self.repo, self.root(), self.head()?, commit, author)
    }

    /// The paths (relative to the root) whose entries differ between `commit`'s tree and the
    /// checked-out head's: trees are compared by id, so only folders that changed are read.
    /// `None` when `commit` is not in the repository: then any path may have changed.
    pub fn changed_since(&self, commit: &str) -> Option<BTreeSet<String>> {
        let old = Oid::from_str(commit).ok()?;
        let old = self.repo.find_commit(old).and_then(|c| c.tree()).ok()?;
        let head = self.head().ok()?;
        let head = self.repo.find_commit(head).and_then(|c| c.tree()).ok()?;
        let diff = self
            .repo
            .diff_tree_to_tree(Some(&old), Some(&head), None)
            .ok()?;
        Some(
            diff.deltas()
                .filter_map(|d| d.old_file().path())
                .map(|p| p.to_string_lossy().into_owned())
                .collect(),
        )
    }

    /// A handle that answers [`Self::committed_by_others_since`] for the head checked out now,
    /// from any thread (the rewrite's workers), opening the repository only when first asked.
    pub fn history(&self) -> Result<History, GitError> {
        Ok(History {
            git_dir: self.repo.path().to_path_buf(),
            root: self.root().to_path_buf(),
            head: self.head()?,
            repo: Mutex::new(None),
        })
    }
}

/// See [`Workspace::history`]. A `git2::Repository` may move between threads but not be
/// shared, hence its own handle behind a lock.
pub struct History {
    git_dir: PathBuf,
    root: PathBuf,
    head: Oid,
    repo: Mutex<Option<Repository>>,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History")
            .field("root", &self.root)
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

impl History {
    /// [`Workspace::committed_by_others_since`] at the head the handle was made at.
    pub fn committed_by_others_since(
        &self,
        commit: &str,
        author: &Author,
    ) -> Result<bool, GitError> {
        let mut repo = self.repo.lock().unwrap_or_else(PoisonError::into_inner);
        if repo.is_none() {
            super::ready();
            let opened = Repository::open(&self.git_dir).map_err(|e| GitError::Open {
                path: self.root.clone(),
                message: message(&e),
            })?;
            *repo = Some(opened);
        }
        match repo.as_ref() {
            Some(repo) => others_since(repo, &self.root, self.head, commit, author),
            None => Ok(false),
        }
    }
}

fn others_since(
    repo: &Repository,
    root: &std::path::Path,
    head: Oid,
    commit: &str,
    author: &Author,
) -> Result<bool, GitError> {
    let err = |e: git2::Error| GitError::Open {
        path: root.to_path_buf(),
        message: message(&e),
    };
    let Ok(since) = Oid::from_str(commit) else {
        return Ok(false);
    };
    if head == since || repo.find_commit(since).is_err() {
        return Ok(false);
    }
    if !repo.graph_descendant_of(head, since).map_err(err)? {
        return Ok(false);
    }
    let mut walk = repo.revwalk().map_err(err)?;
    walk.push(head).map_err(err)?;
    walk.hide(since).map_err(err)?;
    for id in walk {
        let found = repo.find_commit(id.map_err(err)?).map_err(err)?;
        let who = found.author();
        if who.name_bytes() != author.name.as_bytes()
            || who.email_bytes() != author.email.as_bytes()
        {
            return Ok(true);
        }
    }
    Ok(false)
}
