//! The embedded store of `tagsmith run`: last tag lists with their scan time, the last
//! selection per policy, the last outcome per target. It lets a restart keep its selections
//! (even while a registry is down) and skip scans that are not yet due.
//!
//! redb: one file, written only through crash-safe transactions (copy-on-write pages, so a
//! torn write leaves the previous commit), pure Rust (nothing to install), and a small API.
//! The store is a cache of what registries and Git say: a file that cannot be read is moved
//! aside and rebuilt by the next scans, never a reason to stop.
//!
//! Beside the store: [`lock`], the one-process-per-state-dir lock every command takes, and
//! [`PushedHead`], the head tagsmith last pushed to a branch it owns (a small file in the
//! workspace, since `tagsmith once` runs without the store).

pub mod lock;

use std::collections::BTreeMap;
use std::hash::{Hash as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use self::lock::{LockError, StateDirLock, create_private_dir};

/// Bumped when a record's shape changes; an older file is rebuilt.
const SCHEMA: u64 = 1;
const FILE: &str = "state.redb";
/// Unreadable store files kept for a person to look at; older ones are deleted.
const KEEP_CORRUPT: usize = 5;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Policy id -> [`ImageRecord`] as JSON.
const IMAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("images");
/// Canonical image name -> [`TagMeta`] as JSON; read at start.
const TAG_META: TableDefinition<&str, &[u8]> = TableDefinition::new("tag_meta");
/// Canonical image name -> tag list as JSON; written when it changes, never read at start.
const TAG_LISTS: TableDefinition<&str, &[u8]> = TableDefinition::new("tag_lists");
/// `<canonical image>\t<tag>` -> when tagsmith first looked at that tag (Unix ms), for the
/// minAge gate when an image has no `created`. Only tags a gate examined are kept.
const FIRST_SEEN: TableDefinition<&str, u64> = TableDefinition::new("first_seen");
/// `<canonical image>\t<digest>\t<wanted platforms>` -> the digest's build time for
/// newest-build (Unix ms; `i64::MIN`: it has none). A digest never changes, so neither does
/// this: a later process does not fetch it again.
const BUILD_TIMES: TableDefinition<&str, i64> = TableDefinition::new("build_times");
/// Target name -> [`TargetRecord`] as JSON.
const TARGETS: TableDefinition<&str, &[u8]> = TableDefinition::new("targets");

#[derive(Debug, Error)]
pub enum StateError {
    #[error("cannot create the state directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state store {path}: {reason}", path = path.display())]
    Store { path: PathBuf, reason: String },
    #[error("cannot write {path}: {source}", path = path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is unreadable: {reason}", path = path.display())]
    Record { path: PathBuf, reason: String },
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The last scan of one policy's image and what it selected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub image: String,
    /// A fingerprint of the policy that selected; another policy's selection is not reused.
    #[serde(default)]
    pub policy: String,
    /// When the last scan finished, successful or not.
    pub scanned_at: u64,
    /// When the last successful scan finished.
    pub succeeded_at: Option<u64>,
    /// Tags listed by the last successful scan.
    pub tags: Option<usize>,
    /// The last good selection (a failed scan never clears it).
    pub selected: Option<String>,
    /// When the selection last changed (absent in stores written before it was kept).
    #[serde(default)]
    pub changed_at: Option<u64>,
    /// Why the last scan selected nothing.
    pub error: Option<String>,
    /// The listing `selected` was made from (`engine::select::listing_id`), when it was made
    /// without gates: the same listing selects it again without ranking the tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listing: Option<String>,
}

impl ImageRecord {
    /// Notes a scan finished at `at`: a failed one keeps the last good tag count.
    pub fn scanned(&mut self, at: u64, failed: bool, error: Option<&str>, tags: Option<usize>) {
        self.scanned_at = at;
        self.error = error.map(str::to_string);
        if !failed {
            self.succeeded_at = Some(at);
            self.tags = tags;
        }
    }

    /// Notes the selection a scan made at `at` from `listing` (none when it is not known or
    /// gates took part); true when it differs from the last one.
    pub fn select(&mut self, selected: &str, listing: Option<&str>, at: u64) -> bool {
        self.listing = listing.map(str::to_string);
        if self.selected.as_deref() == Some(selected) {
            return false;
        }
        self.selected = Some(selected.to_string());
        self.changed_at = Some(at);
        true
    }
}

/// When an image's tag list was last listed, and a fingerprint to skip unchanged writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagMeta {
    pub scanned_at: u64,
    pub count: usize,
    pub fingerprint: u64,
}

/// The last run of a target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetRecord {
    pub finished_at: u64,
    /// `unchanged`, `pushed`, `pull_request` or `failed`.
    pub outcome: String,
    pub commit: Option<String>,
    pub error: Option<String>,
    /// Policies named by markers under the target's paths at that run.
    pub policies: Vec<String>,
}

/// Everything read back at start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub images: BTreeMap<String, ImageRecord>,
    pub tags: BTreeMap<String, TagMeta>,
    pub targets: BTreeMap<String, TargetRecord>,
}

/// Writes gathered for one transaction.
#[derive(Debug, Default)]
pub struct Batch {
    images: Vec<(String, ImageRecord)>,
    tags: Vec<(String, TagMeta, Option<Vec<u8>>)>,
    targets: Vec<(String, TargetRecord)>,
    first_seen: Vec<(String, u64)>,
    build_times: Vec<(String, i64)>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
            && self.tags.is_empty()
            && self.targets.is_empty()
            && self.first_seen.is_empty()
            && self.build_times.is_empty()
    }

    /// A digest's build time for newest-build, under its key (see `BUILD_TIMES`).
    pub fn build_time(&mut self, key: String, at: Option<i64>) {
        self.build_times.push((key, at.unwrap_or(i64::MIN)));
    }

    /// When `tag` of `image` (canonical) was first seen; an earlier record is kept.
    pub fn first_seen(&mut self, image: &str, tag: &str, at: u64) {
        self.first_seen.push((format!("{image}\t{tag}"), at));
    }

    pub fn image(&mut self, policy: &str, record: ImageRecord) {
        self.images.push((policy.to_string(), record));
    }

    pub fn target(&mut self, name: &str, record: TargetRecord) {
        self.targets.push((name.to_string(), record));
    }
}

/// Why a store file cannot be used.
#[derive(Debug, Error)]
enum Unusable {
    /// In use by another process, or not ours to open: leave it be.
    #[error("{0}")]
    Held(String),
    /// Damaged or of another schema: set it aside and start again.
    #[error("{0}")]
    Unreadable(String),
}

/// The open store.
#[derive(Debug)]
pub struct Store {
    db: Database,
    path: PathBuf,
    /// Fingerprints of the stored tag lists, so an unchanged list is not written again.
    fingerprints: Mutex<BTreeMap<String, u64>>,
}

/// What opening found.
#[derive(Debug)]
pub struct Opened {
    pub store: Store,
    pub snapshot: Snapshot,
    /// Why the previous file was set aside and the store started empty.
    pub rebuilt: Option<String>,
}

impl Store {
    /// Opens `dir/state.redb`, creating it when missing. A file that cannot be opened or read
    /// is renamed to `state.redb.corrupt-<UTC time>` (the newest [`KEEP_CORRUPT`] are kept)
    /// and replaced by an empty store.
    pub fn open(dir: &Path) -> Result<Opened, StateError> {
        create_private_dir(dir).map_err(|source| StateError::Dir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(FILE);
        let existed = path.exists();
        match Self::open_file(&path) {
            Ok((store, snapshot)) => Ok(Opened {
                store,
                snapshot,
                rebuilt: None,
            }),
            // Moving it aside would take a live store from under its owner, or fail the same.
            Err(Unusable::Held(reason)) => Err(StateError::Store { path, reason }),
            Err(Unusable::Unreadable(reason)) if existed => {
                let aside = set_aside(dir, &path).map_err(|e| StateError::Store {
                    path: path.clone(),
                    reason: format!("{reason}; and it cannot be moved aside: {e}"),
                })?;
                tracing::warn!(path = %path.display(), %reason, moved_to = %aside.display(), "state store unreadable; starting empty, the next scans rebuild it");
                let (store, snapshot) = Self::open_file(&path).map_err(|e| StateError::Store {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                Ok(Opened {
                    store,
                    snapshot,
                    rebuilt: Some(reason),
                })
            }
            Err(Unusable::Unreadable(reason)) => Err(StateError::Store { path, reason }),
        }
    }

    fn open_file(path: &Path) -> Result<(Self, Snapshot), Unusable> {
        let mut builder = Database::builder();
        // The store holds little; a small page cache keeps the service's memory flat.
        builder.set_cache_size(4 * 1024 * 1024);
        let db = builder.create(path).map_err(|e| match &e {
            redb::DatabaseError::DatabaseAlreadyOpen
            | redb::DatabaseError::LockProtocolMismatch => Unusable::Held(format!(
                "{e}: another tagsmith has it open; give each process its own state.dir"
            )),
            redb::DatabaseError::Storage(redb::StorageError::Io(io))
                if io.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                Unusable::Held(e.to_string())
            }
            _ => Unusable::Unreadable(e.to_string()),
        })?;
        let store = Self {
            db,
            path: path.to_path_buf(),
            fingerprints: Mutex::new(BTreeMap::new()),
        };
        store.ensure_schema().map_err(Unusable::Unreadable)?;
        let snapshot = store
            .read()
            .map_err(|e| Unusable::Unreadable(e.to_string()))?;
        *store
            .fingerprints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = snapshot
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), v.fingerprint))
            .collect();
        Ok((store, snapshot))
    }

    fn ensure_schema(&self) -> Result<(), String> {
        // A store this tagsmith wrote before needs no write (and no sync) to be opened.
        if self.has_schema().map_err(|e| e.to_string())? {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(|e| e.to_string())?;
        {
            let mut meta = txn.open_table(META).map_err(|e| e.to_string())?;
            let found = meta
                .get("schema")
                .map_err(|e| e.to_string())?
                .map(|v| v.value());
            match found {
                Some(SCHEMA) => {}
                Some(other) => {
                    return Err(format!("schema {other}, this tagsmith writes {SCHEMA}"));
                }
                None => {
                    meta.insert("schema", SCHEMA).map_err(|e| e.to_string())?;
                }
            }
            // Create every table, so reads of a fresh store find them.
            txn.open_table(IMAGES).map_err(|e| e.to_string())?;
            txn.open_table(TAG_META).map_err(|e| e.to_string())?;
            txn.open_table(TAG_LISTS).map_err(|e| e.to_string())?;
            txn.open_table(TARGETS).map_err(|e| e.to_string())?;
        }
        txn.commit().map_err(|e| e.to_string())
    }

    /// Whether the store holds this schema and every table already.
    fn has_schema(&self) -> Result<bool, redb::Error> {
        let txn = self.db.begin_read()?;
        let meta = match txn.open_table(META) {
            Ok(meta) => meta,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        if meta.get("schema")?.map(|v| v.value()) != Some(SCHEMA) {
            return Ok(false);
        }
        for table in [IMAGES, TAG_META, TAG_LISTS, TARGETS] {
            match txn.open_table(table) {
                Ok(_) => {}
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(true)
    }

    fn read(&self) -> Result<Snapshot, Box<dyn std::error::Error>> {
        let txn = self.db.begin_read()?;
        Ok(Snapshot {
            images: read_table(&txn.open_table(IMAGES)?)?,
            tags: read_table(&txn.open_table(TAG_META)?)?,
            targets: read_table(&txn.open_table(TARGETS)?)?,
        })
    }

    /// Adds a successful tag listing to `batch`; the list itself is written only when it
    /// differs from the stored one.
    pub fn tags(&self, batch: &mut Batch, image: &str, tags: &[impl AsRef<str>], at: u64) {
        let mut hasher = std::hash::DefaultHasher::new();
        for tag in tags {
            tag.as_ref().hash(&mut hasher);
        }
        let fingerprint = hasher.finish();
        let mut known = self
            .fingerprints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let list = (known.get(image) != Some(&fingerprint)).then(|| {
            let tags: Vec<&str> = tags.iter().map(AsRef::as_ref).collect();
            serde_json::to_vec(&tags).unwrap_or_default()
        });
        known.insert(image.to_string(), fingerprint);
        batch.tags.push((
            image.to_string(),
            TagMeta {
                scanned_at: at,
                count: tags.len(),
                fingerprint,
            },
            list,
        ));
    }

    /// Every stored newest-build time: (key, Unix ms or `None` for none). A store written
    /// before the table existed has none.
    pub fn build_times(&self) -> Result<Vec<(String, Option<i64>)>, StateError> {
        let fail = |e: &dyn std::fmt::Display| StateError::Store {
            path: self.path.clone(),
            reason: e.to_string(),
        };
        let txn = self.db.begin_read().map_err(|e| fail(&e))?;
        let table = match txn.open_table(BUILD_TIMES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(fail(&e)),
        };
        let mut out = Vec::new();
        for row in table.iter().map_err(|e| fail(&e))? {
            let (key, at) = row.map_err(|e| fail(&e))?;
            let at = at.value();
            out.push((key.value().to_string(), (at != i64::MIN).then_some(at)));
        }
        Ok(out)
    }

    /// Every stored first-seen time: (canonical image, tag, Unix ms). A store written before
    /// the table existed has none.
    pub fn first_seen(&self) -> Result<Vec<(String, String, u64)>, StateError> {
        let fail = |e: &dyn std::fmt::Display| StateError::Store {
            path: self.path.clone(),
            reason: e.to_string(),
        };
        let txn = self.db.begin_read().map_err(|e| fail(&e))?;
        let table = match txn.open_table(FIRST_SEEN) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(fail(&e)),
        };
        let mut out = Vec::new();
        for row in table.iter().map_err(|e| fail(&e))? {
            let (key, at) = row.map_err(|e| fail(&e))?;
            if let Some((image, tag)) = key.value().split_once('\t') {
                out.push((image.to_string(), tag.to_string(), at.value()));
            }
        }
        Ok(out)
    }

    /// The stored tag list of an image, if any.
    pub fn tag_list(&self, image: &str) -> Result<Option<Vec<String>>, StateError> {
        let fail = |e: &dyn std::fmt::Display| StateError::Store {
            path: self.path.clone(),
            reason: e.to_string(),
        };
        let txn = self.db.begin_read().map_err(|e| fail(&e))?;
        let table = txn.open_table(TAG_LISTS).map_err(|e| fail(&e))?;
        let Some(value) = table.get(image).map_err(|e| fail(&e))? else {
            return Ok(None);
        };
        serde_json::from_slice(value.value())
            .map(Some)
            .map_err(|e| fail(&e))
    }

    /// Writes `batch` in one transaction.
    pub fn write(&self, batch: Batch) -> Result<(), StateError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.write_txn(batch).map_err(|reason| StateError::Store {
            path: self.path.clone(),
            reason,
        })
    }

    fn write_txn(&self, batch: Batch) -> Result<(), String> {
        let txn = self.db.begin_write().map_err(|e| e.to_string())?;
        {
            let mut images = txn.open_table(IMAGES).map_err(|e| e.to_string())?;
            for (key, record) in &batch.images {
                let bytes = serde_json::to_vec(record).map_err(|e| e.to_string())?;
                images
                    .insert(key.as_str(), bytes.as_slice())
                    .map_err(|e| e.to_string())?;
            }
            let mut meta = txn.open_table(TAG_META).map_err(|e| e.to_string())?;
            let mut lists = txn.open_table(TAG_LISTS).map_err(|e| e.to_string())?;
            for (key, tag_meta, list) in &batch.tags {
                let bytes = serde_json::to_vec(tag_meta).map_err(|e| e.to_string())?;
                meta.insert(key.as_str(), bytes.as_slice())
                    .map_err(|e| e.to_string())?;
                if let Some(list) = list {
                    lists
                        .insert(key.as_str(), list.as_slice())
                        .map_err(|e| e.to_string())?;
                }
            }
            let mut seen = txn.open_table(FIRST_SEEN).map_err(|e| e.to_string())?;
            for (key, at) in &batch.first_seen {
                if seen.get(key.as_str()).map_err(|e| e.to_string())?.is_none() {
                    seen.insert(key.as_str(), at).map_err(|e| e.to_string())?;
                }
            }
            let mut built = txn.open_table(BUILD_TIMES).map_err(|e| e.to_string())?;
            for (key, at) in &batch.build_times {
                built.insert(key.as_str(), at).map_err(|e| e.to_string())?;
            }
            let mut targets = txn.open_table(TARGETS).map_err(|e| e.to_string())?;
            for (key, record) in &batch.targets {
                let bytes = serde_json::to_vec(record).map_err(|e| e.to_string())?;
                targets
                    .insert(key.as_str(), bytes.as_slice())
                    .map_err(|e| e.to_string())?;
            }
        }
        txn.commit().map_err(|e| e.to_string())
    }
}

/// Moves an unreadable store to a new `state.redb.corrupt-<UTC time>` (never over an earlier
/// one), then deletes all but the newest [`KEEP_CORRUPT`] of them, so a store that keeps
/// breaking cannot fill the disk.
fn set_aside(dir: &Path, path: &Path) -> std::io::Result<PathBuf> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let mut aside = dir.join(format!("{FILE}.corrupt-{stamp}"));
    let mut n = 1;
    while aside.exists() {
        n += 1;
        aside = dir.join(format!("{FILE}.corrupt-{stamp}-{n}"));
    }
    std::fs::rename(path, &aside)?;
    let prefix = format!("{FILE}.corrupt");
    // The names' UTC stamps sort by time; the older unstamped `state.redb.corrupt` first.
    let mut earlier: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .filter(|p| p != &aside)
        .collect();
    earlier.sort_unstable_by(|a, b| b.cmp(a));
    for old in earlier.iter().skip(KEEP_CORRUPT.saturating_sub(1)) {
        if let Err(e) = std::fs::remove_file(old) {
            tracing::warn!(path = %old.display(), error = %e, "cannot delete an old corrupt state file");
        }
    }
    Ok(aside)
}

/// The head tagsmith last pushed to a branch it owns (a pull request's head), and the one it
/// was about to push. Written before the push (`pending`) and after it (`pushed`), so a crash
/// between the two still recognises the pushed commit as ours.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushedHead {
    pub branch: String,
    pub pushed: Option<String>,
    pub pending: Option<String>,
}

impl PushedHead {
    /// The record at `path`; `None` when there is none yet.
    pub fn load(path: &Path) -> Result<Option<Self>, StateError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(StateError::Record {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                });
            }
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StateError::Record {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
    }

    /// Whether `commit` is one this record says tagsmith pushed (or was pushing) to `branch`.
    pub fn names(&self, branch: &str, commit: &str) -> bool {
        self.branch == branch
            && (self.pushed.as_deref() == Some(commit) || self.pending.as_deref() == Some(commit))
    }

    /// Replaces the record atomically (a temporary file renamed over it, owner-only).
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(self).map_err(|e| StateError::Record {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        write_private(path, &bytes)
    }
}

/// Where a target's holds live under the state directory: a small file beside the store, so
/// `tagsmith once` (which runs without the store) keeps them too, and so do restarts.
pub fn holds_file(state_dir: &Path, target: &str) -> PathBuf {
    state_dir.join("holds").join(format!("{target}.json"))
}

/// Every read-modify-write of a holds file in this process goes through here, so a release
/// (from `POST /release`) and a target run finishing at the same time do not lose each other's
/// changes. Other processes are kept out by the state directory's lock.
static HOLDS: Mutex<()> = Mutex::new(());

/// The holds file at `path`; none yet is an empty book. An unreadable file is an error (not an
/// empty book): treating it as empty would write over the rollbacks it protects.
pub fn load_holds(path: &Path) -> Result<crate::hold::HoldBook, StateError> {
    let _guard = HOLDS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    read_holds(path)
}

/// A holds file as one run read it: the book, and which version of the file it came from.
#[derive(Debug, Clone)]
pub struct LoadedHolds {
    pub book: crate::hold::HoldBook,
    stamp: Option<FileStamp>,
}

/// Tells one version of a file from another without reading it: every write replaces the
/// file (a new inode), and its size and modification time come along.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    inode: u64,
    len: u64,
    modified: Option<std::time::SystemTime>,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        inode: meta.ino(),
        len: meta.len(),
        modified: meta.modified().ok(),
    })
}

/// [`load_holds`], remembering the file's version for [`update_loaded_holds`].
pub fn load_holds_stamped(path: &Path) -> Result<LoadedHolds, StateError> {
    let _guard = HOLDS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let stamp = stamp(path);
    let book = read_holds(path)?;
    Ok(LoadedHolds { book, stamp })
}

fn read_holds(path: &Path) -> Result<crate::hold::HoldBook, StateError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(crate::hold::HoldBook::default().current());
        }
        Err(e) => {
            return Err(StateError::Record {
                path: path.to_path_buf(),
                reason: e.to_string(),
            });
        }
    };
    serde_json::from_slice::<crate::hold::HoldBook>(&bytes)
        .map(crate::hold::HoldBook::current)
        .map_err(|e| StateError::Record {
            path: path.to_path_buf(),
            reason: format!("{e} (move it aside to start without holds)"),
        })
}

/// Loads the holds file at `path`, lets `change` modify it and writes it back when it changed.
pub fn update_holds<R>(
    path: &Path,
    change: impl FnOnce(&mut crate::hold::HoldBook) -> R,
) -> Result<R, StateError> {
    let _guard = HOLDS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let book = read_holds(path)?;
    change_holds(path, book, change)
}

/// [`update_holds`] starting from `loaded`, which is read again only when the file changed
/// since (a release in between): a large record is not parsed twice in a run.
pub fn update_loaded_holds<R>(
    path: &Path,
    loaded: LoadedHolds,
    change: impl FnOnce(&mut crate::hold::HoldBook) -> R,
) -> Result<R, StateError> {
    let _guard = HOLDS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let book = match (loaded.stamp, stamp(path)) {
        (Some(then), Some(now)) if then == now => loaded.book,
        (None, None) => loaded.book,
        _ => read_holds(path)?,
    };
    change_holds(path, book, change)
}

/// Applies `change` to `book` (read from `path`) and writes it back there when it changed.
fn change_holds<R>(
    path: &Path,
    mut book: crate::hold::HoldBook,
    change: impl FnOnce(&mut crate::hold::HoldBook) -> R,
) -> Result<R, StateError> {
    let before = book.clone();
    let out = change(&mut book);
    if book != before {
        if let Some(dir) = path.parent() {
            create_private_dir(dir).map_err(|source| StateError::Dir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let bytes = serde_json::to_vec_pretty(&book).map_err(|e| StateError::Record {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        write_private(path, &bytes)?;
    }
    Ok(out)
}

/// Lifts the holds of `policy` in every target of `targets` (or only `target`), all of them
/// or those in `file`; returns what was released, by target. One log line per hold released.
pub fn release_holds(
    state_dir: &Path,
    targets: &[String],
    policy: &str,
    target: Option<&str>,
    file: Option<&str>,
) -> Result<Vec<(String, crate::hold::Hold)>, StateError> {
    let mut released = Vec::new();
    for name in targets
        .iter()
        .filter(|t| target.is_none_or(|only| only == t.as_str()))
    {
        let path = holds_file(state_dir, name);
        if !path.exists() {
            continue;
        }
        for hold in update_holds(&path, |book| book.release(policy, file))? {
            tracing::info!(target = %name, policy, file = %hold.key.file, line = hold.key.line, "hold ended: released; the next run writes the selection");
            released.push((name.clone(), hold));
        }
    }
    Ok(released)
}

/// Replaces `path` atomically (a temporary file renamed over it, owner-only).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;

    let write_err = |source| StateError::Write {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(write_err)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(write_err)?;
    std::fs::rename(&tmp, path).map_err(write_err)
}

fn read_table<T: serde::de::DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<BTreeMap<String, T>, Box<dyn std::error::Error>> {
    let mut out = BTreeMap::new();
    for entry in table.iter()? {
        let (key, value) = entry?;
        out.insert(
            key.value().to_string(),
            serde_json::from_slice(value.value())?,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(selected: &str) -> ImageRecord {
        ImageRecord {
            image: "ghcr.io/org/app".into(),
            policy: "0123456789abcdef".into(),
            scanned_at: 5,
            succeeded_at: Some(5),
            tags: Some(2),
            selected: Some(selected.into()),
            changed_at: None,
            error: None,
            listing: None,
        }
    }

    #[test]
    fn what_is_written_is_read_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let opened = Store::open(dir.path()).unwrap();
            assert!(opened.rebuilt.is_none());
            assert_eq!(opened.snapshot, Snapshot::default());
            let mut batch = Batch::default();
            batch.image("team-a:app", record("ghcr.io/org/app:1.1.0"));
            opened
                .store
                .tags(&mut batch, "ghcr.io/org/app", &["1.0.0", "1.1.0"], 7);
            batch.target(
                "prod",
                TargetRecord {
                    finished_at: 9,
                    outcome: "pushed".into(),
                    commit: Some("abc".into()),
                    error: None,
                    policies: vec!["team-a:app".into()],
                },
            );
            opened.store.write(batch).unwrap();
        }
        let opened = Store::open(dir.path()).unwrap();
        let snap = &opened.snapshot;
        assert_eq!(snap.images["team-a:app"], record("ghcr.io/org/app:1.1.0"));
        assert_eq!(snap.tags["ghcr.io/org/app"].count, 2);
        assert_eq!(snap.tags["ghcr.io/org/app"].scanned_at, 7);
        assert_eq!(snap.targets["prod"].commit.as_deref(), Some("abc"));
        assert_eq!(
            opened.store.tag_list("ghcr.io/org/app").unwrap(),
            Some(vec!["1.0.0".to_string(), "1.1.0".to_string()])
        );
    }

    #[test]
    fn a_store_written_before_is_opened_without_a_write() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("fresh.redb")).unwrap();
        let fresh = Store {
            db,
            path: dir.path().join("fresh.redb"),
            fingerprints: Mutex::new(BTreeMap::new()),
        };
        assert!(
            !fresh.has_schema().unwrap(),
            "a fresh file needs its tables made"
        );
        fresh.ensure_schema().unwrap();
        assert!(
            fresh.has_schema().unwrap(),
            "so the next open writes nothing"
        );
    }

    #[test]
    fn an_unchanged_tag_list_is_not_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap().store;
        let mut first = Batch::default();
        store.tags(&mut first, "img", &["1", "2"], 1);
        assert!(first.tags[0].2.is_some());
        store.write(first).unwrap();
        let mut again = Batch::default();
        store.tags(&mut again, "img", &["1", "2"], 2);
        assert!(again.tags[0].2.is_none(), "same list: only its scan time");
        let mut changed = Batch::default();
        store.tags(&mut changed, "img", &["1", "2", "3"], 3);
        assert!(changed.tags[0].2.is_some());
    }

    #[test]
    fn a_store_in_use_by_another_process_is_refused_not_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let first = Store::open(dir.path()).unwrap();
        let err = Store::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("another tagsmith"), "{err}");
        assert!(corrupt_files(dir.path()).is_empty());
        drop(first);
        assert!(Store::open(dir.path()).unwrap().rebuilt.is_none());
    }

    #[test]
    fn a_corrupt_file_is_set_aside_and_the_store_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), b"this is not a redb file at all").unwrap();
        let opened = Store::open(dir.path()).unwrap();
        assert!(opened.rebuilt.is_some());
        assert_eq!(opened.snapshot, Snapshot::default());
        assert_eq!(corrupt_files(dir.path()).len(), 1);
        let mut batch = Batch::default();
        batch.image("team-a:app", record("x:1"));
        opened.store.write(batch).unwrap();
    }

    fn corrupt_files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n.starts_with("state.redb.corrupt"))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn each_corrupt_file_is_kept_apart_and_only_the_newest_few_stay() {
        let dir = tempfile::tempdir().unwrap();
        // One set aside by an older tagsmith, under the name it used.
        std::fs::write(dir.path().join("state.redb.corrupt"), b"oldest").unwrap();
        let mut contents = Vec::new();
        for i in 0..KEEP_CORRUPT + 2 {
            let content = format!("broken store number {i}");
            std::fs::write(dir.path().join(FILE), &content).unwrap();
            let opened = Store::open(dir.path()).unwrap();
            assert!(opened.rebuilt.is_some());
            drop(opened);
            contents.push(content);
            let names = corrupt_files(dir.path());
            assert_eq!(names.len(), (i + 2).min(KEEP_CORRUPT), "{names:?}");
        }
        // The newest KEEP_CORRUPT survive, each with its own bytes: none overwrote another.
        let mut kept: Vec<String> = corrupt_files(dir.path())
            .iter()
            .map(|n| std::fs::read_to_string(dir.path().join(n)).unwrap())
            .collect();
        kept.sort();
        let mut newest = contents[contents.len() - KEEP_CORRUPT..].to_vec();
        newest.sort();
        assert_eq!(kept, newest);
    }

    #[test]
    fn holds_survive_a_reload_and_an_unreadable_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = holds_file(dir.path(), "prod");
        assert_eq!(load_holds(&path).unwrap().holds, Vec::new());
        let hold = crate::hold::Hold {
            key: crate::hold::MarkerKey {
                file: "app.yaml".into(),
                marker: "team-a:app:tag".into(),
                line: 3,
            },
            from: "1.3.0".into(),
            from_tag: Some("1.3.0".into()),
            to: "1.2.0".into(),
            since_ms: 5,
        };
        update_holds(&path, |book| book.holds.push(hold.clone())).unwrap();
        assert_eq!(load_holds(&path).unwrap().holds, vec![hold]);
        std::fs::write(&path, b"{not json").unwrap();
        let err = load_holds(&path).unwrap_err().to_string();
        assert!(err.contains("prod.json"), "{err}");
        assert!(update_holds(&path, |_| ()).is_err());
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"{not json",
            "left as it was"
        );
    }

    #[test]
    fn a_run_starting_from_the_book_it_read_sees_a_release_made_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let path = holds_file(dir.path(), "prod");
        let hold = |file: &str| crate::hold::Hold {
            key: crate::hold::MarkerKey {
                file: file.into(),
                marker: "team-a:app:tag".into(),
                line: 3,
            },
            from: "1.3.0".into(),
            from_tag: Some("1.3.0".into()),
            to: "1.2.0".into(),
            since_ms: 5,
        };
        update_holds(&path, |book| {
            book.holds = vec![hold("a.yaml"), hold("b.yaml")];
        })
        .unwrap();
        let loaded = load_holds_stamped(&path).unwrap();
        // Unchanged since it was read: nothing to change is nothing written.
        let written = std::fs::metadata(&path).unwrap().modified().unwrap();
        let seen = update_loaded_holds(&path, loaded.clone(), |book| book.holds.len()).unwrap();
        assert_eq!(seen, 2);
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            written
        );
        // A release between the run's read and its update is not undone by the update.
        update_holds(&path, |book| book.release("team-a:app", Some("a.yaml"))).unwrap();
        update_loaded_holds(&path, loaded, |book| book.checked = Some("c0ffee".into())).unwrap();
        let book = load_holds(&path).unwrap();
        assert_eq!(book.holds, vec![hold("b.yaml")]);
        assert_eq!(book.checked.as_deref(), Some("c0ffee"));
    }

    #[test]
    fn a_pushed_head_record_survives_a_reload_and_names_only_its_commits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pushed");
        assert_eq!(PushedHead::load(&path).unwrap(), None);
        let record = PushedHead {
            branch: "tagsmith/prod".into(),
            pushed: Some("aaa".into()),
            pending: Some("bbb".into()),
        };
        record.save(&path).unwrap();
        let back = PushedHead::load(&path).unwrap().unwrap();
        assert_eq!(back, record);
        assert!(back.names("tagsmith/prod", "aaa") && back.names("tagsmith/prod", "bbb"));
        assert!(!back.names("tagsmith/prod", "ccc"));
        assert!(!back.names("tagsmith/other", "aaa"));
        std::fs::write(&path, b"{not json").unwrap();
        assert!(PushedHead::load(&path).is_err());
    }
}
