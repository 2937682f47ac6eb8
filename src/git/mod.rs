//! Git delivery with git2: a bare repository per target (fetch, rewrite objects, commit), pushes.
//! Blocking IO: async callers run it on `spawn_blocking`.

mod auth;
mod checkout;
mod commit;
mod direct_push;
mod heads;
mod history;
mod known_hosts;
mod lease;
mod objects;
mod openpgp;
mod pack;
mod push;
mod receive_pack;
pub mod refname;
mod walk_memo;
mod workspace;

use thiserror::Error;

pub use self::auth::{credentials_in_url, redact_url};
pub use self::commit::CommitInfo;
pub use self::heads::{Heads, remote_heads};
pub use self::history::History;
pub use self::known_hosts::{HostKeyCheck, KnownHosts, ssh_host};
pub use self::lease::{ForeignCommit, ForeignReason};
pub use self::push::PushOutcome;
pub use self::workspace::Workspace;

/// libgit2 set up for tagsmith, once. Its own start-up reads the system's CA certificates
/// for OpenSSL (tens of milliseconds of CPU), so `main` starts this on a thread of its own
/// while the configuration is read and the registries are scanned; whatever opens a
/// repository calls it first and waits only for what is left of it.
pub fn ready() {
    std::sync::LazyLock::force(&READY);
}

/// Starts [`ready`] on a thread of its own, once: whatever opens a repository later waits
/// only for what is left of it.
pub fn start() {
    static STARTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !STARTED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        std::thread::spawn(ready);
    }
}

static READY: std::sync::LazyLock<()> = std::sync::LazyLock::new(|| {
    cache_large_trees();
    bound_object_cache();
    bound_pack_maps();
});

/// libgit2 keeps trees in its object cache only up to 4 KiB by default, so a folder of a few
/// hundred entries (a monorepo's `services/`) is inflated and hashed again for every path
/// looked up through it: holds, attributes and write-backs look files up by path, and on a
/// 10,000-file tree that cost most of a run. Trees up to 4 MiB are cached (per repository,
/// freed with it; the total bound of [`bound_object_cache`] applies).
fn cache_large_trees() {
    const TREE_CACHE_LIMIT: usize = 4 << 20;
    // SAFETY: libgit2's options are process globals, and libgit2 reads this one when a
    // repository caches an object. This runs once, inside `READY`, and every repository
    // tagsmith opens is opened after `ready()` returns (workspaces, history, `check`), so no
    // repository exists while it is written; nothing outside `READY` sets options.
    #[allow(unsafe_code)]
    let set =
        unsafe { git2::opts::set_cache_object_limit(git2::ObjectType::Tree, TREE_CACHE_LIMIT) };
    if let Err(err) = set {
        // Only slower: say so once.
        eprintln!("tagsmith: warning: cannot raise libgit2's tree cache limit: {err}");
    }
}

/// The total of libgit2's object caches, counted in the objects' raw bytes. libgit2's default
/// is 256 MiB, and a walk of a commit's tree (every tree read once) leaves all of them
/// cached: a parsed tree costs about seven times its raw size, so a 50,000-file monorepo's
/// 25,000 trees held 20 MB for the rest of the run, though only the folders looked up by
/// path again (a few large ones) gain from the cache. Past the bound libgit2 evicts a few
/// entries at random for each one it adds.
const OBJECT_CACHE_BYTES: isize = 512 << 10;

fn bound_object_cache() {
    // SAFETY: as in `cache_large_trees`: set once, inside `READY`, before any repository
    // exists; libgit2 reads the bound when a repository caches an object.
    #[allow(unsafe_code)]
    let set = unsafe { git2::opts::set_cache_max_size(OBJECT_CACHE_BYTES) };
    if let Err(err) = set {
        eprintln!("tagsmith: warning: cannot bound libgit2's object cache: {err}");
    }
}

/// libgit2 reads packs through mapped windows of 1 GiB each on 64-bit systems, up to 8 GiB
/// in all, and unmaps one only past that: a pack read through (the walk reads every tree of
/// a commit, then the marked blobs) stays resident for the rest of the run, several MiB at
/// 50,000 files. Smaller windows and a bound on their total keep what is mapped to the
/// windows in use, at the price of mapping some windows again.
const PACK_WINDOW_BYTES: usize = 256 << 10;
const PACK_MAPPED_BYTES: usize = 1 << 20;

fn bound_pack_maps() {
    // SAFETY: as in `cache_large_trees`: set once, inside `READY`, before any repository
    // exists; libgit2 reads both when it maps a window of a pack.
    #[allow(unsafe_code)]
    let set = unsafe {
        git2::opts::set_mwindow_size(PACK_WINDOW_BYTES)
            .and_then(|()| git2::opts::set_mwindow_mapped_limit(PACK_MAPPED_BYTES))
    };
    if let Err(err) = set {
        eprintln!("tagsmith: warning: cannot bound libgit2's pack windows: {err}");
    }
}

#[derive(Debug, Error)]
pub enum GitError {
    #[error("cannot read git credentials from {source_name}: {reason}")]
    Credentials { source_name: String, reason: String },
    #[error("cannot open workspace {path}: {message}", path = path.display())]
    Open {
        path: std::path::PathBuf,
        message: String,
    },
    #[error("cannot clone {url}: {message}")]
    Clone {
        url: String,
        message: String,
        cause: Cause,
    },
    #[error("cannot fetch {url}: {message}")]
    Fetch {
        url: String,
        message: String,
        cause: Cause,
    },
    #[error("branch {branch} does not exist on {url}")]
    MissingBranch { url: String, branch: String },
    #[error("cannot check out {reference} from {url}: {message}")]
    Checkout {
        url: String,
        reference: String,
        message: String,
    },
    #[error("cannot reset the workspace to {commit}: {message}")]
    Reset { commit: String, message: String },
    #[error("cannot read the synced commit's tree: {message}")]
    Read { message: String },
    #[error("cannot commit: {message}")]
    Commit { message: String },
    #[error("cannot sign the commit with {key}: {message}", key = key.display())]
    Sign {
        key: std::path::PathBuf,
        message: String,
    },
    #[error("push of {branch} to {url} was rejected: the remote branch moved (non-fast-forward)")]
    NonFastForward { url: String, branch: String },
    #[error("push of {branch} to {url} was rejected: {status}")]
    PushRejected {
        url: String,
        branch: String,
        status: String,
    },
    #[error("cannot push {branch} to {url}: {message}")]
    Push {
        url: String,
        branch: String,
        message: String,
        cause: Cause,
    },
}

/// What kind of failure a remote operation met, from git2's error code (messages are for
/// people and differ between transports and libgit2 versions): the part that decides whether
/// trying again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The credentials or the server's identity were rejected (by the server or by our
    /// known_hosts check): the same settings will fail again.
    Rejected,
    /// Anything else: network, server or local trouble, or a repository or branch that may
    /// yet appear. Worth retrying with backoff.
    Other,
}

impl Cause {
    pub fn of(e: &git2::Error) -> Self {
        match e.code() {
            git2::ErrorCode::Auth | git2::ErrorCode::Certificate => Self::Rejected,
            _ => Self::Other,
        }
    }
}

/// A git2 failure as a message and its cause; `refusal` is our own host key refusal, which
/// explains it better than libgit2 does.
fn failure(e: &git2::Error, refusal: Option<String>) -> (String, Cause) {
    match refusal {
        Some(refusal) => (refusal, Cause::Rejected),
        None => (message(e), Cause::of(e)),
    }
}

impl GitError {
    /// Worth retrying after a fresh fetch (the remote moved) or later (network trouble).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::NonFastForward { .. } => true,
            Self::Fetch { cause, .. } | Self::Push { cause, .. } | Self::Clone { cause, .. } => {
                *cause == Cause::Other
            }
            _ => false,
        }
    }
}

/// git2 messages may quote the remote URL, and a URL may carry credentials.
fn message(e: &git2::Error) -> String {
    redact_url(e.message())
}
