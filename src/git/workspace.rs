//! A target's repository: created once, then fetched before every run. It is used bare: a
//! sync only moves HEAD to the commit the run reads, and nothing is ever checked out, so
//! nothing from an earlier (perhaps interrupted) run can leak into a commit.

use std::cell::Cell;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use git2::{ErrorCode, FetchOptions, FetchPrune, Oid, Repository};

use super::auth::{Credentials, HostKeys, callbacks};
use super::{GitError, failure, message, redact_url};
use crate::config::GitSource;
use crate::state::{PushedHead, create_private_dir};

const REMOTE: &str = "origin";

pub struct Workspace {
    pub(super) repo: Repository,
    dir: PathBuf,
    pub(super) url: String,
    pub(super) creds: Option<Credentials>,
    pub(super) host_keys: Option<HostKeys>,
    pub(super) signing_key: Option<crate::config::SigningKey>,
    /// Fetch only the commits a run needs where the transport can ([`Self::fetch_shallow`]).
    shallow: bool,
    /// Checked out instead of the base branch's head, when set.
    checkout: Option<crate::config::CheckoutRef>,
    pub(super) push_options: Vec<String>,
    /// The pack of the last commit this workspace made: exactly the objects that commit added
    /// to its parent, which is what a push of it on top of that parent has to send.
    pub(super) new_pack: std::cell::RefCell<Option<NewPack>>,
}

/// See [`Workspace::new_pack`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NewPack {
    pub commit: git2::Oid,
    pub parent: git2::Oid,
    pub path: PathBuf,
}

/// Where a sync left the workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Synced {
    /// The commit the workspace now holds, which new commits build on.
    pub base: Oid,
    /// The push branch's remote head, when it exists.
    pub push_head: Option<Oid>,
}

impl std::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workspace")
            .field("dir", &self.dir)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

pub(super) fn remote_ref(branch: &str) -> String {
    format!("refs/remotes/{REMOTE}/{branch}")
}

impl Workspace {
    /// Opens the workspace in `dir`, creating it (an empty repository with the remote set) if
    /// needed, and uses its `.git` as a bare repository: syncs move HEAD without touching
    /// files, and files an older tagsmith checked out are removed. Folders it creates are
    /// owner-only (0700), and so is the workspace itself. A workspace whose `.git` is damaged
    /// is set aside (`<dir>.damaged-<UTC time>`, the newest one kept) and created again, with
    /// a warning: the next sync fetches it anew.
    pub fn open_objects(dir: &Path, source: &GitSource) -> Result<Self, GitError> {
        super::ready();
        let creds = Credentials::resolve(&source.auth)?;
        let host_keys = HostKeys::load(&source.url, &source.auth)?;
        let open_err = |e: git2::Error| GitError::Open {
            path: dir.to_path_buf(),
            message: message(&e),
        };
        let io_err = |e: std::io::Error| GitError::Open {
            path: dir.to_path_buf(),
            message: e.to_string(),
        };
        let existing = if dir.join(".git").exists() {
            match Repository::open(dir)
                .map_err(|e| message(&e))
                .and_then(|repo| damage(&repo).map_or(Ok(repo), Err))
            {
                Ok(repo) => Some(repo),
                Err(reason) => {
                    let kept = PushedHead::load(&pushed_record(&dir.join(".git")))
                        .ok()
                        .flatten();
                    let aside = set_aside(dir).map_err(|e| GitError::Open {
                        path: dir.to_path_buf(),
                        message: format!("{reason}; and it cannot be set aside: {e}"),
                    })?;
                    tracing::warn!(workspace = %dir.display(), %reason, moved_to = %aside.display(), "workspace damaged; set aside, cloning again");
                    let repo = init(dir).map_err(open_err)?;
                    if let Some(record) = kept {
                        // Which head tagsmith pushed is not the damaged clone's to forget.
                        let _ = record.save(&pushed_record(repo.path()));
                    }
                    Some(repo)
                }
            }
        } else {
            None
        };
        let repo = match existing {
            Some(repo) => repo,
            None => {
                create_private_dir(dir).map_err(io_err)?;
                init(dir).map_err(open_err)?
            }
        };
        // Older tagsmiths created workspaces world-readable; they hold private repositories.
        let mode = std::fs::metadata(dir).map_err(io_err)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(io_err)?;
        }
        match repo.find_remote(REMOTE) {
            Ok(remote) if remote.url().ok() == Some(source.url.as_str()) => {}
            Ok(_) => repo.remote_set_url(REMOTE, &source.url).map_err(open_err)?,
            Err(_) => {
                repo.remote(REMOTE, &source.url).map_err(open_err)?;
            }
        }
        let git_dir = repo.path().to_path_buf();
        drop(repo);
        remove_checkout(dir).map_err(io_err)?;
        let repo = Repository::open_bare(&git_dir).map_err(open_err)?;
        Ok(Self {
            repo,
            dir: dir.to_path_buf(),
            url: redact_url(&source.url),
            creds,
            host_keys,
            signing_key: None,
            shallow: false,
            checkout: source.checkout.clone(),
            push_options: source.push_options.clone(),
            new_pack: std::cell::RefCell::new(None),
        })
    }

    /// A host key refusal from the last connection, which explains a failure better than libgit2.
    pub(super) fn refusal(&self) -> Option<String> {
        self.host_keys.as_ref().and_then(HostKeys::take_refusal)
    }

    pub fn root(&self) -> &Path {
        &self.dir
    }

    /// Fetch with depth 1 from now on where the transport allows it (smart HTTP and SSH;
    /// libgit2's local transport for `file://` cannot, so those fetch in full). Only for
    /// deliveries that never look at history beyond the synced heads.
    pub fn fetch_shallow(&mut self, shallow: bool) {
        self.shallow = shallow;
    }

    /// Fetches `base_branch` (and `push_branch`), then points HEAD at the commit new work
    /// builds on: the push branch when it exists remotely and differs from the base
    /// (so commits accumulate there, as Flux does), else the base branch.
    /// With a checkout ref (a tag, semver range, commit or reference name) that commit takes
    /// the base branch's place, and the push branch is built on when it exists, as Flux's
    /// SwitchBranch does.
    pub fn sync(&self, base_branch: &str, push_branch: &str) -> Result<Synced, GitError> {
        let mut refspecs = match &self.checkout {
            None => vec![format!(
                "+refs/heads/{base_branch}:{}",
                remote_ref(base_branch)
            )],
            Some(c) => super::checkout::refspecs(c, base_branch),
        };
        let switch = push_branch != base_branch || self.checkout.is_some();
        if switch {
            refspecs.push(format!(
                "+refs/heads/{push_branch}:{}",
                remote_ref(push_branch)
            ));
        }
        self.fetch(&refspecs)?;
        let head_of = |branch: &str| self.repo.refname_to_id(&remote_ref(branch)).ok();
        let base_head = match &self.checkout {
            Some(c) => self.checkout_commit(c)?,
            None => head_of(base_branch).ok_or_else(|| GitError::MissingBranch {
                url: self.url.clone(),
                branch: base_branch.to_string(),
            })?,
        };
        let push_head = head_of(push_branch);
        let base = if switch {
            push_head.unwrap_or(base_head)
        } else {
            base_head
        };
        self.reset_to(base)?;
        Ok(Synced { base, push_head })
    }

    /// Fetches `refspecs` (`+SRC:DST`, any references the remote has, not only branches).
    pub fn fetch(&self, refspecs: &[String]) -> Result<(), GitError> {
        let fetch_err = |e: git2::Error| {
            let (message, cause) = failure(&e, self.refusal());
            GitError::Fetch {
                url: self.url.clone(),
                message,
                cause,
            }
        };
        let attempts = Cell::new(0);
        let mut options = FetchOptions::new();
        options
            .remote_callbacks(callbacks(
                self.creds.as_ref(),
                self.host_keys.as_ref(),
                &attempts,
            ))
            .prune(FetchPrune::On)
            .download_tags(git2::AutotagOption::None);
        // Only the first fetch is shallow: a depth on later fetches would cut the history
        // back to the new tip, and holds need tagsmith's own earlier commits in it. A
        // checkout by commit looks for that commit in the branches' history: never shallow.
        let by_commit = matches!(
            self.checkout,
            Some(crate::config::CheckoutRef::Commit { .. })
        );
        if self.shallow && !by_commit && !is_local(&self.url) && self.repo.head().is_err() {
            options.depth(1);
        }
        let mut remote = self.repo.find_remote(REMOTE).map_err(fetch_err)?;
        remote
            .fetch(refspecs, Some(&mut options), None)
            .map_err(fetch_err)?;
        // Refs the remote does not have are simply not fetched; prune drops stale copies of them.
        for spec in refspecs {
            if let Some((src, dst)) = spec.trim_start_matches('+').split_once(':') {
                let advertised = remote
                    .list()
                    .map(|heads| heads.iter().any(|h| h.name() == src))
                    .unwrap_or(true);
                if !advertised && let Ok(mut stale) = self.repo.find_reference(dst) {
                    stale.delete().map_err(fetch_err)?;
                }
            }
        }
        Ok(())
    }

    /// Detached HEAD at `commit`: the commit the tree walk reads and attributes come from.
    pub(super) fn reset_to(&self, commit: Oid) -> Result<(), GitError> {
        self.repo
            .set_head_detached(commit)
            .map_err(|e| GitError::Reset {
                commit: commit.to_string(),
                message: message(&e),
            })
    }

    /// The commit the workspace holds.
    pub fn head(&self) -> Result<Oid, GitError> {
        self.repo
            .head()
            .ok()
            .and_then(|h| h.target())
            .ok_or_else(|| GitError::Commit {
                message: "workspace has no commit checked out".into(),
            })
    }
}

/// libgit2's local transport (plain paths and `file://`), which cannot fetch shallow.
fn is_local(url: &str) -> bool {
    url.starts_with("file://") || url.starts_with('/') || !url.contains(':')
}

/// Removes what an older tagsmith checked out in `dir` (everything but `.git`, and the index
/// in it): the checkout-free pipeline never reads them, and stale files must not be mistaken
/// for the repo's.
fn remove_checkout(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(dir.join(".git/index")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name() == ".git" {
            continue;
        }
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

fn init(dir: &Path) -> Result<Repository, git2::Error> {
    create_private_dir(dir).map_err(|e| git2::Error::from_str(&e.to_string()))?;
    Repository::init(dir)
}

/// Why an opened repository cannot be worked with, if it cannot: the checks are the reads
/// every run makes first (config, the commit HEAD names and its tree, references).
/// Damage deeper in the object store is found only when a run needs those objects.
fn damage(repo: &Repository) -> Option<String> {
    if let Err(e) = repo.config().and_then(|mut c| c.snapshot()) {
        return Some(format!("its config is unreadable: {}", message(&e)));
    }
    match repo.head() {
        Ok(head) => {
            if let Err(e) = head.peel_to_commit().and_then(|c| c.tree().map(drop)) {
                return Some(format!(
                    "the commit HEAD names is unreadable: {}",
                    message(&e)
                ));
            }
        }
        // A workspace created but never synced.
        Err(e) if e.code() == ErrorCode::UnbornBranch => {}
        Err(e) => return Some(format!("its HEAD is unreadable: {}", message(&e))),
    }
    // libgit2's listing skips a loose reference it cannot parse; looking each file up does not.
    let mut names = Vec::new();
    loose_refs(&repo.path().join("refs"), "refs", &mut names);
    let refs = repo.references().map(drop).and_then(|()| {
        // Parsed, not resolved: a symbolic reference to a branch not fetched is no damage.
        names
            .iter()
            .try_for_each(|name| repo.find_reference(name).map(drop))
    });
    if let Err(e) = refs {
        return Some(format!("its references are unreadable: {}", message(&e)));
    }
    match repo.find_remote(REMOTE) {
        Ok(_) => None,
        Err(e) if e.code() == ErrorCode::NotFound => None,
        Err(e) => Some(format!("its remote is unreadable: {}", message(&e))),
    }
}

/// The names of the loose references under `dir` (`refs/...`).
fn loose_refs(dir: &Path, name: &str, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let child = format!("{name}/{}", entry.file_name().to_string_lossy());
        match entry.file_type() {
            Ok(t) if t.is_dir() => loose_refs(&entry.path(), &child, out),
            Ok(_) => out.push(child),
            Err(_) => {}
        }
    }
}

/// Moves a damaged workspace to `<dir>.damaged-<UTC time>` for a person to look at, and
/// deletes the ones set aside before it: one damaged copy per target is kept, not a pile.
fn set_aside(dir: &Path) -> std::io::Result<PathBuf> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let parent = dir.parent().unwrap_or(Path::new("."));
    let prefix = format!("{name}.damaged-");
    for entry in std::fs::read_dir(parent)?.filter_map(Result::ok) {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            std::fs::remove_dir_all(entry.path())?;
        }
    }
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let aside = parent.join(format!("{prefix}{stamp}"));
    std::fs::rename(dir, &aside)?;
    Ok(aside)
}

/// Where the workspace keeps its [`PushedHead`] record: inside `.git`, where no reset reaches.
pub(super) fn pushed_record(git_dir: &Path) -> PathBuf {
    git_dir.join("tagsmith-pushed.json")
}
