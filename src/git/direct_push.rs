//! Pushing a commit without libgit2's packbuilder, over `file://` (and local paths) and smart
//! HTTP(S). libgit2 builds a pack for every push by walking the parent's whole tree to mark
//! what the remote has, then searching deltas: most of a push's time on a large repository.
//! tagsmith knows what is new: the commit it just made on top of a commit it just fetched from
//! this remote. That is sent as it is (the pack `commit_changes` stored), or, for any other
//! commit on a parent the remote has, the objects found by comparing the two trees.
//!
//! SSH, URLs carrying credentials, git `http.*` settings (proxies, CA files, extra headers:
//! libgit2 reads some of them) and `url.*` rewrites, a push URL of its own, remotes that are not
//! bare repositories, and commits that are not one step from something the remote has all keep
//! libgit2's push: [`Workspace::push_direct`] answers `None` for them.
//!
//! Why the commit's own objects are enough: its parent was fetched from this remote by this
//! run (the remote advertises a reference to it, or holds it), and a repository holds whatever
//! its commits reach, so everything the commit shares with its parent is there already.
//!
//! The lease is the server's compare-and-swap in both cases: the update names the old value
//! the push is based on, and the server (or libgit2, under the ref's lock file, for a local
//! remote) refuses it if the branch holds anything else by then.
//! Hooks are not run on a local push, as libgit2's local transport never ran them.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use git2::{ErrorCode, ObjectType, Oid, Repository, Tree};
use thiserror::Error;

use super::Workspace;
use super::pack::PackError;
use super::receive_pack::{Advertisement, Command, HttpRemote, ReceivePackError, Status};

#[derive(Debug, Error)]
pub enum DirectPushError {
    #[error(transparent)]
    Http(#[from] ReceivePackError),
    #[error("cannot read the objects to send: {0}")]
    Objects(#[source] git2::Error),
    #[error(transparent)]
    Pack(#[from] PackError),
    #[error("cannot read the pack {path}: {source}", path = path.display())]
    ReadPack {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the remote repository {path}: {source}", path = path.display())]
    Remote {
        path: PathBuf,
        #[source]
        source: git2::Error,
    },
    #[error("cannot copy the pack into {path}: {source}", path = path.display())]
    CopyPack {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot store the objects in {path}: {source}", path = path.display())]
    StorePack {
        path: PathBuf,
        #[source]
        source: git2::Error,
    },
    #[error("cannot update {refname} in {path}: {source}", path = path.display())]
    UpdateRef {
        refname: String,
        path: PathBuf,
        #[source]
        source: git2::Error,
    },
}

impl DirectPushError {
    /// The remote refused our credentials (or wanted some): the same settings fail again.
    pub fn is_rejection(&self) -> bool {
        matches!(self, Self::Http(e) if e.is_rejection())
    }
}

/// Which old values of the branch the update may replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Any ancestor of the commit (a plain, unforced push).
    FastForward,
    /// Exactly this value (`None`: the branch must not exist), whatever the commit.
    Lease(Option<Oid>),
}

/// How a direct push ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    Done,
    /// The branch no longer holds what the push was based on.
    Moved,
    /// The server refused the update (a hook, a protected branch): its reason and messages.
    Refused(String),
}

/// Where a remote is, for the transports handled here.
#[derive(Debug)]
pub(super) enum Remote {
    Local(PathBuf),
    Http(reqwest::Url),
}

/// What the remote gets.
#[derive(Debug)]
enum Objects {
    /// The pack `commit_changes` stored (its `.idx` lies next to it).
    Pack(PathBuf),
    Ids(Vec<Oid>),
}

/// The remote at `url` when this module pushes to it.
pub(super) fn remote(url: &str) -> Option<Remote> {
    if super::credentials_in_url(url).is_some() {
        return None;
    }
    if let Some(path) = url.strip_prefix("file://") {
        // Percent-escapes are libgit2's to decode.
        return (!path.contains('%')).then(|| Remote::Local(PathBuf::from(path)));
    }
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        let parsed = reqwest::Url::parse(url).ok()?;
        let plain = parsed.username().is_empty() && parsed.password().is_none();
        return plain.then_some(Remote::Http(parsed));
    }
    // A path, as libgit2 reads a URL without a scheme or an scp-like `host:`.
    (url.starts_with('/') || !url.contains(':')).then(|| Remote::Local(PathBuf::from(url)))
}

/// Whether the repository's, the user's or the system's git config has a key matching
/// `pattern` (a regular expression).
fn has_config(repo: &Repository, pattern: &str) -> bool {
    let Ok(config) = repo.config() else {
        return true;
    };
    match config.entries(Some(pattern)) {
        Ok(mut entries) => entries.next().is_some(),
        Err(_) => true,
    }
}

/// `url.<base>.insteadOf` / `pushInsteadOf` rewrite where libgit2 pushes.
const URL_REWRITES: &str = "^url\\.";
/// `http.*` changes how libgit2 speaks HTTP (proxies, CA files, extra headers).
const HTTP_SETTINGS: &str = "^http\\.";

impl Workspace {
    /// Whether tagsmith reaches the remote itself, without libgit2 (as [`Self::push_direct`]
    /// does).
    pub fn reached_directly(&self) -> bool {
        self.direct_remote().is_some()
    }

    /// The remote when tagsmith reaches it itself: no push URL, a `file://`, path or plain
    /// `http(s)://` URL, and no git config that would make libgit2 go elsewhere or speak
    /// HTTP differently.
    fn direct_remote(&self) -> Option<Remote> {
        let origin = self.repo.find_remote("origin").ok()?;
        if origin.pushurl_bytes().is_some() {
            return None;
        }
        let remote = remote(origin.url().ok()?)?;
        let configured = match remote {
            Remote::Local(_) => has_config(&self.repo, URL_REWRITES),
            Remote::Http(_) => {
                has_config(&self.repo, URL_REWRITES) || has_config(&self.repo, HTTP_SETTINGS)
            }
        };
        (!configured).then_some(remote)
    }

    /// Pushes `commit` to `refname` without the packbuilder when the transport and the commit
    /// allow it; `None` means libgit2's push is to be used (nothing was changed remotely).
    pub(super) fn push_direct(
        &self,
        commit: Oid,
        refname: &str,
        mode: Mode,
    ) -> Option<Result<Pushed, DirectPushError>> {
        let remote = self.direct_remote()?;
        let started = std::time::Instant::now();
        let (transport, result) = match remote {
            Remote::Local(path) => ("file", self.push_local(&path, commit, refname, mode)),
            Remote::Http(url) => ("http", self.push_http(url, commit, refname, mode)),
        };
        let result = result.transpose()?;
        tracing::debug!(transport, elapsed = ?started.elapsed(), outcome = ?result.as_ref().map_err(ToString::to_string), "direct push");
        Some(result)
    }

    fn push_http(
        &self,
        url: reqwest::Url,
        commit: Oid,
        refname: &str,
        mode: Mode,
    ) -> Result<Option<Pushed>, DirectPushError> {
        let remote = HttpRemote {
            url,
            basic: self.creds.as_ref().and_then(|c| c.basic()),
        };
        let adv = remote.advertisement()?;
        let current = adv.get(refname);
        let old = match self.decide(mode, current, commit) {
            Decision::Moved => return Ok(Some(Pushed::Moved)),
            Decision::UpToDate => return Ok(Some(Pushed::Done)),
            Decision::Update(old) => old,
        };
        if !self.push_options.is_empty() && !adv.has("push-options") {
            return Err(ReceivePackError::NoPushOptions.into());
        }
        // What the advertisement names, the remote has, and everything those reach.
        let Some(objects) = self.objects_for(commit, |id| adv.points_at(id))? else {
            return Ok(None);
        };
        let (pack, count) = match objects {
            Objects::Pack(path) => {
                let bytes = std::fs::read(&path)
                    .map_err(|source| DirectPushError::ReadPack { path, source })?;
                (bytes, None)
            }
            Objects::Ids(ids) => {
                let odb = self.repo.odb().map_err(DirectPushError::Objects)?;
                let mut bytes = Vec::new();
                let written = super::pack::write(&odb, &ids, &mut bytes)?;
                (bytes, Some(written.objects))
            }
        };
        tracing::debug!(bytes = pack.len(), objects = ?count, "sending pack");
        let command = Command {
            old,
            new: commit,
            refname,
            push_options: &self.push_options,
        };
        match remote.push(&adv, &command, pack)? {
            Status::Ok => Ok(Some(Pushed::Done)),
            Status::Refused { reason, .. } if moved(&reason) => Ok(Some(Pushed::Moved)),
            Status::Refused { reason, messages } => {
                // receive-pack says only "failed to update ref" when the ref's value no longer
                // matched the command's old one under its lock: look whether it moved.
                if reason.contains("failed to update ref")
                    && changed_since(&remote, refname, old).unwrap_or(false)
                {
                    return Ok(Some(Pushed::Moved));
                }
                Ok(Some(Pushed::Refused(Status::describe(&reason, &messages))))
            }
        }
    }

    fn push_local(
        &self,
        path: &Path,
        commit: Oid,
        refname: &str,
        mode: Mode,
    ) -> Result<Option<Pushed>, DirectPushError> {
        // A remote that cannot be opened here fails in libgit2's push with its own words; a
        // repository with a work tree is libgit2's too.
        let Ok(remote) = Repository::open_bare(path) else {
            return Ok(None);
        };
        // `open_bare` opens a work tree's `.git` too; its config says what it is.
        let bare = remote
            .config()
            .and_then(|c| c.get_bool("core.bare"))
            .unwrap_or(false);
        if !bare || !self.push_options.is_empty() {
            // Push options: libgit2 refuses them on a local remote, and so it stays.
            return Ok(None);
        }
        let remote_err = |source| DirectPushError::Remote {
            path: path.to_path_buf(),
            source,
        };
        let current = match remote.refname_to_id(refname) {
            Ok(id) => Some(id),
            Err(e) if e.code() == ErrorCode::NotFound => None,
            Err(e) => return Err(remote_err(e)),
        };
        let old = match self.decide(mode, current, commit) {
            Decision::Moved => return Ok(Some(Pushed::Moved)),
            Decision::UpToDate => return Ok(Some(Pushed::Done)),
            Decision::Update(old) => old,
        };
        let remote_odb = remote.odb().map_err(remote_err)?;
        // An object in the remote's database came with everything it reaches: git stores
        // (and fetches, and collects garbage) whole histories.
        let Some(objects) = self.objects_for(commit, |id| remote_odb.exists(id))? else {
            return Ok(None);
        };
        let pack_dir = remote.path().join("objects").join("pack");
        match objects {
            Objects::Pack(pack) => {
                copy_pack(&pack, &pack_dir).map_err(|source| DirectPushError::CopyPack {
                    path: pack_dir.clone(),
                    source,
                })?
            }
            Objects::Ids(ids) => {
                let store_err = |source| DirectPushError::StorePack {
                    path: pack_dir.clone(),
                    source,
                };
                let odb = self.repo.odb().map_err(DirectPushError::Objects)?;
                let mut writer = remote_odb.packwriter().map_err(store_err)?;
                super::pack::write(&odb, &ids, &mut writer)?;
                writer.flush().map_err(|source| DirectPushError::CopyPack {
                    path: pack_dir.clone(),
                    source,
                })?;
                writer.commit().map_err(store_err)?;
            }
        }
        // Under the ref's lock file, as git takes it: a writer that moved the branch since
        // `current` was read makes this fail instead of being overwritten.
        let message = "push by tagsmith";
        let updated = match old {
            Some(old) => remote.reference_matching(refname, commit, true, old, message),
            None => remote.reference(refname, commit, false, message),
        };
        match updated {
            Ok(_) => Ok(Some(Pushed::Done)),
            Err(e)
                if matches!(
                    e.code(),
                    ErrorCode::Modified
                        | ErrorCode::Exists
                        | ErrorCode::Locked
                        | ErrorCode::NotFound
                ) =>
            {
                Ok(Some(Pushed::Moved))
            }
            Err(source) => Err(DirectPushError::UpdateRef {
                refname: refname.to_string(),
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// What the update may replace, given the branch's `current` value on the remote.
    fn decide(&self, mode: Mode, current: Option<Oid>, commit: Oid) -> Decision {
        match (mode, current) {
            (Mode::Lease(expected), _) if current != expected => Decision::Moved,
            (Mode::Lease(expected), _) => Decision::Update(expected),
            (Mode::FastForward, None) => Decision::Update(None),
            (Mode::FastForward, Some(c)) if c == commit => Decision::UpToDate,
            // A head we do not have, or one our commit does not build on, is someone else's
            // work: never replaced by a plain push.
            (Mode::FastForward, Some(c)) => match self.repo.graph_descendant_of(commit, c) {
                Ok(true) => Decision::Update(Some(c)),
                _ => Decision::Moved,
            },
        }
    }

    /// The objects `commit` adds to its parent, when `remote_has` the parent; `None` for a
    /// merge, a root commit or a parent the remote does not have (libgit2 negotiates those).
    fn objects_for(
        &self,
        commit: Oid,
        remote_has: impl Fn(Oid) -> bool,
    ) -> Result<Option<Objects>, DirectPushError> {
        let c = self
            .repo
            .find_commit(commit)
            .map_err(DirectPushError::Objects)?;
        let parents: Vec<Oid> = c.parent_ids().collect();
        let [parent] = parents[..] else {
            return Ok(None);
        };
        if !remote_has(parent) {
            return Ok(None);
        }
        let stored = self.new_pack.borrow().clone();
        if let Some(stored) = stored
            && stored.commit == commit
            && stored.parent == parent
            && stored.path.is_file()
            && stored.path.with_extension("idx").is_file()
        {
            return Ok(Some(Objects::Pack(stored.path)));
        }
        let parent_tree = c
            .parent(0)
            .and_then(|p| p.tree())
            .map_err(DirectPushError::Objects)?;
        let tree = c.tree().map_err(DirectPushError::Objects)?;
        let mut ids = vec![commit];
        new_objects(&self.repo, &tree, Some(&parent_tree), &mut ids)
            .map_err(DirectPushError::Objects)?;
        Ok(Some(Objects::Ids(ids)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Moved,
    UpToDate,
    Update(Option<Oid>),
}

/// A refusal that means the branch is not where the push expected it.
fn moved(reason: &str) -> bool {
    super::push::is_non_fast_forward(reason)
        || reason.to_ascii_lowercase().contains("failed to lock")
}

/// Whether `refname` on the remote now holds something other than `old`.
fn changed_since(
    remote: &HttpRemote<'_>,
    refname: &str,
    old: Option<Oid>,
) -> Result<bool, ReceivePackError> {
    let adv: Advertisement = remote.advertisement()?;
    Ok(adv.get(refname) != old)
}

/// The trees and blobs under `tree` that are not at the same path in `old`, `tree` included
/// unless it is `old` itself. An entry whose id equals the one at its path in `old` is in the
/// parent's tree, so the remote has it and everything below it: only the paths that changed
/// are read, not the repository. A blob that moved is sent again, which costs little.
fn new_objects(
    repo: &Repository,
    tree: &Tree<'_>,
    old: Option<&Tree<'_>>,
    out: &mut Vec<Oid>,
) -> Result<(), git2::Error> {
    if old.is_some_and(|o| o.id() == tree.id()) {
        return Ok(());
    }
    out.push(tree.id());
    for entry in tree.iter() {
        let before = old.and_then(|o| o.get_name_bytes(entry.name_bytes()));
        if before.as_ref().is_some_and(|b| b.id() == entry.id()) {
            continue;
        }
        match entry.kind() {
            Some(ObjectType::Tree) => {
                let sub = repo.find_tree(entry.id())?;
                let old_sub = match &before {
                    Some(b) if b.kind() == Some(ObjectType::Tree) => Some(repo.find_tree(b.id())?),
                    _ => None,
                };
                new_objects(repo, &sub, old_sub.as_ref(), out)?;
            }
            Some(ObjectType::Blob) => out.push(entry.id()),
            // A submodule's commit lives in another repository.
            _ => {}
        }
    }
    Ok(())
}

/// Copies `pack` and its `.idx` into `dir` (a remote's `objects/pack`) under temporary names,
/// then renames them into place, the index last: git reads a pack only once its index is
/// there, so a reader never sees half of one.
fn copy_pack(pack: &Path, dir: &Path) -> std::io::Result<()> {
    for file in [pack.to_path_buf(), pack.with_extension("idx")] {
        let name = file
            .file_name()
            .ok_or_else(|| std::io::Error::other("a pack path without a file name"))?;
        let tmp = dir.join(format!(
            "tmp_tagsmith_{}_{}",
            std::process::id(),
            name.to_string_lossy()
        ));
        let copied = std::fs::copy(&file, &tmp).and_then(|_| std::fs::rename(&tmp, dir.join(name)));
        if let Err(e) = copied {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handled_remotes_are_local_paths_and_plain_http_urls() {
        assert!(
            matches!(remote("file:///srv/git/r.git"), Some(Remote::Local(p)) if p == Path::new("/srv/git/r.git"))
        );
        assert!(matches!(remote("/srv/git/r.git"), Some(Remote::Local(_))));
        assert!(matches!(
            remote("https://git.example/r.git"),
            Some(Remote::Http(_))
        ));
        assert!(matches!(
            remote("HTTP://127.0.0.1:8080/r.git"),
            Some(Remote::Http(_))
        ));
        for url in [
            "ssh://git@git.example/r.git",
            "git@git.example:r.git",
            "https://bot:token@git.example/r.git",
            "https://token@git.example/r.git",
            "file:///srv/with%20space.git",
        ] {
            assert!(remote(url).is_none(), "{url}");
        }
    }

    fn commit_tree(repo: &Repository, files: &[(&str, &str)]) -> Oid {
        let mut index = git2::Index::new().unwrap();
        for (path, content) in files {
            let blob = repo.blob(content.as_bytes()).unwrap();
            let mut entry = git2::IndexEntry {
                ctime: git2::IndexTime::new(0, 0),
                mtime: git2::IndexTime::new(0, 0),
                dev: 0,
                ino: 0,
                mode: 0o100644,
                uid: 0,
                gid: 0,
                file_size: 0,
                id: blob,
                flags: 0,
                flags_extended: 0,
                path: path.as_bytes().to_vec(),
            };
            entry.flags = u16::try_from(path.len()).unwrap().min(0xfff);
            index.add(&entry).unwrap();
        }
        index.write_tree_to(repo).unwrap()
    }

    /// The objects reachable from `tree` that are not reachable from `old`, by a full walk.
    fn reachable_difference(repo: &Repository, tree: Oid, old: Oid) -> Vec<Oid> {
        fn all(repo: &Repository, tree: Oid, out: &mut std::collections::BTreeSet<Oid>) {
            out.insert(tree);
            let tree = repo.find_tree(tree).unwrap();
            for e in tree.iter() {
                match e.kind() {
                    Some(ObjectType::Tree) => all(repo, e.id(), out),
                    _ => {
                        out.insert(e.id());
                    }
                }
            }
        }
        let (mut new, mut before) = Default::default();
        all(repo, tree, &mut new);
        all(repo, old, &mut before);
        new.difference(&before).copied().collect()
    }

    #[test]
    fn new_objects_are_exactly_what_the_parent_tree_lacks() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(tmp.path()).unwrap();
        let old = commit_tree(
            &repo,
            &[
                ("a/b/c.yaml", "c: 1\n"),
                ("a/b/d.yaml", "d: 1\n"),
                ("a/e.yaml", "e: 1\n"),
                ("f.yaml", "f: 1\n"),
                ("g/h.yaml", "h: 1\n"),
            ],
        );
        let new = commit_tree(
            &repo,
            &[
                ("a/b/c.yaml", "c: 2\n"),
                ("a/b/d.yaml", "d: 1\n"),
                ("a/e.yaml", "e: 1\n"),
                ("f.yaml", "f: 1\n"),
                ("g/h.yaml", "h: 1\n"),
                ("g/i/j.yaml", "j: 1\n"),
            ],
        );
        let mut ids = Vec::new();
        let (t, o) = (repo.find_tree(new).unwrap(), repo.find_tree(old).unwrap());
        new_objects(&repo, &t, Some(&o), &mut ids).unwrap();
        ids.sort();
        let mut expected = reachable_difference(&repo, new, old);
        expected.sort();
        // c.yaml's blob, a/b, a, g/i, j.yaml's blob, g and the root.
        assert_eq!(ids.len(), 7);
        assert_eq!(ids, expected);

        let mut none = Vec::new();
        new_objects(&repo, &o, Some(&o), &mut none).unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn a_pack_lands_under_its_own_name_and_no_temporary_file_stays() {
        let tmp = tempfile::tempdir().unwrap();
        let from = tmp.path().join("from");
        let to = tmp.path().join("to");
        std::fs::create_dir_all(&from).unwrap();
        std::fs::create_dir_all(&to).unwrap();
        std::fs::write(from.join("pack-1.pack"), b"PACK").unwrap();
        std::fs::write(from.join("pack-1.idx"), b"IDX").unwrap();
        copy_pack(&from.join("pack-1.pack"), &to).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(&to)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["pack-1.idx", "pack-1.pack"]);
        std::fs::remove_file(from.join("pack-1.idx")).unwrap();
        assert!(copy_pack(&from.join("pack-1.pack"), &tmp.path().join("missing")).is_err());
    }
}
