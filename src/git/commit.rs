//! One commit of the files a run changed, with the configured identity.

use std::path::Path;

use git2::{Commit, Oid, Repository, Signature, Tree};

use super::{GitError, Workspace, message};
use crate::config::{Author, SigningKey};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    pub id: Oid,
    pub parent: Oid,
}

/// Signs like `git commit -S` with `gpg.format=ssh`: `ssh-keygen -Y sign -n git`, which also
/// handles keys held by an agent and every key type OpenSSH knows.
fn ssh_sign(key: &Path, content: &[u8]) -> Result<String, GitError> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};

    let fail = |m: String| GitError::Sign {
        key: key.to_path_buf(),
        message: m,
    };
    let mut child = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", "git", "-f"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            fail(format!(
                "cannot run ssh-keygen ({e}); install openssh-client"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(content).map_err(|e| fail(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        return Err(fail(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    String::from_utf8(out.stdout).map_err(|e| fail(e.to_string()))
}

impl Workspace {
    /// Writes the commit of `tree` on `parent` with the configured identity and signing;
    /// HEAD stays where it is.
    pub(super) fn write_commit(
        &self,
        parent: &Commit<'_>,
        tree: &Tree<'_>,
        author: &Author,
        text: &str,
    ) -> Result<Oid, GitError> {
        self.write_commit_in(&self.repo, parent, tree, author, text)
    }

    /// [`Self::write_commit`] into `repo`, a handle of this workspace's repository (one that
    /// keeps new objects in memory, say).
    pub(super) fn write_commit_in(
        &self,
        repo: &Repository,
        parent: &Commit<'_>,
        tree: &Tree<'_>,
        author: &Author,
        text: &str,
    ) -> Result<Oid, GitError> {
        let err = |e: git2::Error| GitError::Commit {
            message: message(&e),
        };
        let signature = Signature::now(&author.name, &author.email).map_err(err)?;
        match &self.signing_key {
            None => repo
                .commit(None, &signature, &signature, text, tree, &[parent])
                .map_err(err),
            Some(key) => {
                let buffer = repo
                    .commit_create_buffer(&signature, &signature, text, tree, &[parent])
                    .map_err(err)?;
                let content = std::str::from_utf8(&buffer).map_err(|e| GitError::Commit {
                    message: format!("commit is not UTF-8: {e}"),
                })?;
                let armored = match key {
                    SigningKey::Ssh(key) => ssh_sign(key, content.as_bytes())?,
                    SigningKey::OpenPgp {
                        key_file,
                        passphrase,
                    } => super::openpgp::sign(key_file, passphrase.as_ref(), content.as_bytes())?,
                };
                repo.commit_signed(content, &armored, Some("gpgsig"))
                    .map_err(err)
            }
        }
    }

    /// Sign the commits this workspace makes with an SSH key (a path) or an OpenPGP key
    /// (`None`: unsigned).
    pub fn sign_commits_with(&mut self, key: Option<impl Into<SigningKey>>) {
        self.signing_key = key.map(Into::into);
    }

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
        let id = self.write_commit(&parent, &tree, author, text)?;
        self.repo.set_head_detached(id).map_err(err)?;
        // The files are exactly the new HEAD's only if what was committed is still what is on
        // disk: a file written again meanwhile leaves the workspace to a full reset next time.
        let unchanged = changed.iter().all(|path| {
            self.repo
                .status_file(path)
                .is_ok_and(|s| s == git2::Status::CURRENT)
        });
        if unchanged {
            self.remember_clean()?;
        }
        Ok(CommitInfo {
            id,
            parent: parent_id,
        })
    }
}
