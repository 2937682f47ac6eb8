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
    /// Writes the commit of `tree` on `parent` with the configured identity and signing into
    /// `repo`, a handle of this workspace's repository (one that keeps new objects in memory,
    /// say); HEAD stays where it is.
    pub(super) fn write_commit(
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
}
