//! A remote's branch heads read without libgit2: the smart HTTP advertisement, or a local
//! repository's ref files. A `once` whose remote and inputs did not move since its last run
//! then never starts libgit2 (whose start-up alone parses the system's CA certificates).
//! `None` wherever only libgit2 knows the way: SSH, credentials in the URL, a repository
//! whose refs are stored some other way; the caller then opens the workspace as always.

use std::path::{Path, PathBuf};

use super::Workspace;
use super::auth::Credentials;
use super::direct_push::{Remote, remote};
use super::receive_pack::HttpRemote;
use crate::config::GitSource;

/// Each branch asked for, with the id its head points at (40 hex digits) or `None` where the
/// remote has no such branch, in the order asked.
pub type Heads = Vec<(String, Option<String>)>;

/// The heads of `branches` on `source`'s remote, when tagsmith can read them itself.
pub fn remote_heads(source: &GitSource, branches: &[&str]) -> Option<Heads> {
    let refnames = refnames(branches)?;
    match remote(&source.url)? {
        Remote::Local(path) => local_heads(&path, &refnames),
        Remote::Http(url) => {
            // Credentials that cannot be read now fail the full run, where they are reported.
            let creds = Credentials::resolve(&source.auth).ok()?;
            let remote = HttpRemote {
                url,
                basic: creds.as_ref().and_then(Credentials::basic),
            };
            match remote.listed_refs() {
                Ok(listed) => Some(pick(&refnames, |name| {
                    listed
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, id)| id.clone())
                })),
                Err(e) => {
                    tracing::debug!(error = %e, "remote heads not read; the workspace is opened");
                    None
                }
            }
        }
    }
}

impl Workspace {
    /// The heads of `branches` as this workspace last fetched them (its remote-tracking refs).
    pub fn fetched_heads(&self, branches: &[&str]) -> Heads {
        branches
            .iter()
            .map(|b| {
                let id = self
                    .repo
                    .refname_to_id(&super::workspace::remote_ref(b))
                    .ok()
                    .map(|id| id.to_string());
                ((*b).to_string(), id)
            })
            .collect()
    }
}

/// `refs/heads/<branch>` for each branch, or `None` when one is not a valid ref name (it
/// would never be fetched; nor may it name a path to read).
fn refnames(branches: &[&str]) -> Option<Vec<(String, String)>> {
    branches
        .iter()
        .map(|b| {
            let name = format!("refs/heads/{b}");
            super::refname::is_valid(&name).then(|| ((*b).to_string(), name))
        })
        .collect()
}

fn pick(refnames: &[(String, String)], mut find: impl FnMut(&str) -> Option<String>) -> Heads {
    refnames
        .iter()
        .map(|(branch, name)| (branch.clone(), find(name)))
        .collect()
}

/// The heads of a repository on this machine, from its loose refs and `packed-refs`, as git
/// stores them by default. A linked worktree, reftable storage or a symbolic ref is left to
/// libgit2.
fn local_heads(path: &Path, refnames: &[(String, String)]) -> Option<Heads> {
    let git_dir = git_dir(path)?;
    if git_dir.join("reftable").exists() || git_dir.join("commondir").exists() {
        return None;
    }
    let packed = match std::fs::read_to_string(git_dir.join("packed-refs")) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(_) => return None,
    };
    let mut heads = Vec::with_capacity(refnames.len());
    for (branch, name) in refnames {
        let id = match std::fs::read_to_string(git_dir.join(name)) {
            Ok(text) => Some(hex_id(text.trim_end_matches('\n'))?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => packed_id(&packed, name)?,
            Err(_) => return None,
        };
        heads.push((branch.clone(), id));
    }
    Some(heads)
}

/// A bare repository is its own git directory; a repository with a work tree has `.git`.
fn git_dir(path: &Path) -> Option<PathBuf> {
    let dot_git = path.join(".git");
    if dot_git.is_dir() {
        return Some(dot_git);
    }
    // A `.git` file points elsewhere (a worktree or submodule): libgit2's to follow.
    (!dot_git.exists() && path.join("HEAD").is_file()).then(|| path.to_path_buf())
}

/// `Some(None)`: `packed-refs` does not have `name`; `None`: a line naming it is unreadable.
fn packed_id(packed: &str, name: &str) -> Option<Option<String>> {
    for line in packed.lines() {
        if line.starts_with('#') || line.starts_with('^') {
            continue;
        }
        if let Some((id, refname)) = line.split_once(' ')
            && refname == name
        {
            return Some(Some(hex_id(id)?));
        }
    }
    Some(None)
}

/// Forty hex digits, lower-cased; anything else (a symbolic `ref: ...`) is `None`.
fn hex_id(text: &str) -> Option<String> {
    (text.len() == 40 && text.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| text.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn names(branches: &[&str]) -> Vec<(String, String)> {
        refnames(branches).unwrap()
    }

    #[test]
    fn loose_refs_win_over_packed_ones_and_a_missing_branch_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path();
        std::fs::create_dir_all(repo.join("refs/heads")).unwrap();
        std::fs::write(repo.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(repo.join("refs/heads/main"), format!("{A}\n")).unwrap();
        std::fs::write(
            repo.join("packed-refs"),
            format!("# pack-refs with: peeled fully-peeled sorted\n{B} refs/heads/main\n{B} refs/heads/other\n^{A}\n"),
        )
        .unwrap();
        let heads = local_heads(repo, &names(&["main", "other", "gone"])).unwrap();
        assert_eq!(
            heads,
            vec![
                ("main".to_string(), Some(A.to_string())),
                ("other".to_string(), Some(B.to_string())),
                ("gone".to_string(), None),
            ]
        );
    }

    #[test]
    fn what_only_libgit2_reads_is_left_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path();
        std::fs::create_dir_all(repo.join("refs/heads")).unwrap();
        std::fs::write(repo.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(repo.join("refs/heads/main"), "ref: refs/heads/other\n").unwrap();
        assert_eq!(local_heads(repo, &names(&["main"])), None, "a symbolic ref");
        std::fs::write(repo.join("refs/heads/main"), format!("{A}\n")).unwrap();
        std::fs::create_dir(repo.join("reftable")).unwrap();
        assert_eq!(
            local_heads(repo, &names(&["main"])),
            None,
            "reftable storage"
        );
        assert_eq!(local_heads(&repo.join("nowhere"), &names(&["main"])), None);
        assert!(refnames(&["../../etc"]).is_none(), "not a ref name");
    }

    #[test]
    fn a_work_tree_is_read_through_its_dot_git() {
        let dir = tempfile::tempdir().unwrap();
        let git = dir.path().join(".git");
        std::fs::create_dir_all(git.join("refs/heads")).unwrap();
        std::fs::write(git.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(git.join("refs/heads/main"), format!("{B}\n")).unwrap();
        assert_eq!(
            local_heads(dir.path(), &names(&["main"])),
            Some(vec![("main".to_string(), Some(B.to_string()))])
        );
    }
}
