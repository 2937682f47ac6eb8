//! A content-addressed memo of [`scan`]: `scan(bytes, lang)` is a pure function of its
//! inputs, so its result can be kept under a hash of the bytes and reused by any later run
//! that meets the same bytes, whatever their path. Parsing is nearly all of a run's cost
//! when a tree has not changed, and a rewritten file is met again (as the old bytes of the
//! next edit, or unchanged) on the next run.
//!
//! The in-memory [`ScanCache`] is pure and shared by the walk's workers. [`ScanCache::load`]
//! and [`ScanCache::save`] are its IO edge: one file, replaced atomically, trusted only when
//! written by a build whose scanning code, grammars and dependencies are the same (see
//! `build.rs`) and whose checksum matches. Anything else is ignored with a warning and
//! rebuilt: a cache can cost a parse, never an error or a wrong result.

use std::collections::HashMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::tree_memo::{PathRecord, TreeMemo, TreeRecord};
use super::{Edit, Lang, ScanResult, rescan, scan};

/// Bumped whenever the file layout below changes. 3: tree summaries and resolved paths.
const FORMAT: u32 = 3;
const MAGIC: &[u8; 16] = b"tagsmith scans\n\0";

/// The code a scan's result depends on (and this file's format), hashed into the build id, so
/// that a changed scanner never trusts an old cache even at the same version, as in
/// development. A test checks that every file of `rewrite` is listed.
const SCAN_SOURCES: &[(&str, &str)] = &[
    ("cache.rs", include_str!("cache.rs")),
    ("cue.rs", include_str!("cue.rs")),
    ("cue_literal.rs", include_str!("cue_literal.rs")),
    ("edit.rs", include_str!("edit.rs")),
    ("frame.rs", include_str!("frame.rs")),
    ("marker.rs", include_str!("marker.rs")),
    ("mod.rs", include_str!("mod.rs")),
    ("tree_memo.rs", include_str!("tree_memo.rs")),
    ("verify.rs", include_str!("verify.rs")),
    ("walk.rs", include_str!("walk.rs")),
    ("yaml.rs", include_str!("yaml.rs")),
    ("yaml_large.rs", include_str!("yaml_large.rs")),
    ("yaml_literal.rs", include_str!("yaml_literal.rs")),
    ("../model.rs", include_str!("../model.rs")),
    ("../grammars.rs", include_str!("../grammars.rs")),
];

/// What a cache file must have been written by: tagsmith's version, the build script's
/// fingerprint of the grammars and locked dependencies, and a hash of [`SCAN_SOURCES`].
fn build_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let mut sources = blake3::Hasher::new();
        for (name, text) in SCAN_SOURCES {
            sources.update(name.as_bytes());
            sources.update(&(text.len() as u64).to_le_bytes());
            sources.update(text.as_bytes());
        }
        format!(
            "{}+{}+{}",
            env!("CARGO_PKG_VERSION"),
            env!("TAGSMITH_SCAN_FINGERPRINT"),
            &sources.finalize().to_hex()[..16]
        )
    })
}

#[derive(Debug, Error)]
pub enum CacheError {
    #[error("cannot write the scan cache {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode the scan cache: {0}")]
    Encode(#[from] postcard::Error),
}

/// Why a cache file's bytes were not used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("not a tagsmith scan cache")]
    Magic,
    #[error("unreadable header: {0}")]
    Header(postcard::Error),
    #[error("format {found}, this build reads {FORMAT}")]
    Format { found: u32 },
    #[error("written by build {found}, this is {expected}")]
    Build { found: String, expected: String },
    #[error("truncated or damaged (checksum mismatch)")]
    Checksum,
    #[error("unreadable entries: {0}")]
    Body(postcard::Error),
}

type Key = (Lang, [u8; 32]);

/// A Git blob id (SHA-1), with the language its path gives it.
type BlobKey = (Lang, [u8; 20]);

/// What a tree walk learnt of a blob by its id, so that it need not read it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobScan {
    /// No marker and nothing to report: nothing to do.
    Plain,
    /// Holds the marker; this is its scan.
    Scanned(ScanResult),
}

/// The blob ids met, plain ones apart from marked ones: most blobs of a monorepo are plain,
/// and an entry without room for a hash is less than half the size (65,000 blobs at 50,000
/// files, a table rebuilt while the commit adds the new ones).
#[derive(Debug, Default)]
struct Blobs {
    /// [`BlobScan::Plain`] ones, and whether they were used.
    plain: Table<BlobKey, AtomicBool>,
    marked: Table<BlobKey, MarkedEntry>,
}

/// A map kept as a sorted list of what was loaded from a file and a hash table of what was
/// added since: a loaded entry costs its own size, where a hash table's slots cost up to
/// twice that (30,000 scans loaded at 50,000 files took a table of 65,536 slots). A key is
/// in one of the two only.
#[derive(Debug)]
struct Table<K, V> {
    loaded: Vec<(K, V)>,
    /// Where each rank's keys start in `loaded` (as Git's pack indexes fan out by the first
    /// byte of an id): a lookup searches a few hundred entries near each other, not all of
    /// them. Empty while `loaded` is.
    starts: Vec<u32>,
    added: HashMap<K, V>,
}

/// Keys whose order begins with a small rank: the language, then an id's first byte.
trait Ranked: Ord + std::hash::Hash + Copy {
    fn rank(&self) -> usize;
}

const LANG_RANKS: usize = 2;
const RANKS: usize = LANG_RANKS * 256;

impl<const N: usize> Ranked for (Lang, [u8; N]) {
    fn rank(&self) -> usize {
        // A later language shares the last rank: the order, not the spread, must hold.
        let lang = (self.0 as usize).min(LANG_RANKS - 1);
        lang * 256 + usize::from(self.1.first().copied().unwrap_or(0))
    }
}

impl<K, V> Default for Table<K, V> {
    fn default() -> Self {
        Self {
            loaded: Vec::new(),
            starts: Vec::new(),
            added: HashMap::new(),
        }
    }
}

impl<K: Ranked, V> Table<K, V> {
    /// A table of loaded entries; of two with one key the later counts, as in a map.
    fn loaded(mut entries: Vec<(K, V)>) -> Self {
        entries.sort_by_key(|e| e.0);
        // Latest first within each key, so that dedup keeps it.
        entries.reverse();
        entries.dedup_by(|a, b| a.0 == b.0);
        entries.reverse();
        entries.shrink_to_fit();
        let mut table = Self {
            loaded: entries,
            starts: Vec::new(),
            added: HashMap::new(),
        };
        table.index();
        table
    }

    /// Rebuilds `starts` after `loaded` changed.
    fn index(&mut self) {
        self.starts.clear();
        if self.loaded.is_empty() {
            return;
        }
        self.starts.reserve_exact(RANKS + 1);
        let mut at = 0;
        for rank in 0..=RANKS {
            while at < self.loaded.len() && self.loaded[at].0.rank() < rank {
                at += 1;
            }
            // A table of more than 4 Gi entries is no cache file this build writes.
            self.starts.push(u32::try_from(at).unwrap_or(u32::MAX));
        }
    }

    fn find(&self, key: &K) -> Result<usize, usize> {
        let rank = key.rank();
        let (Some(&from), Some(&to)) = (self.starts.get(rank), self.starts.get(rank + 1)) else {
            return self.loaded.binary_search_by(|(k, _)| k.cmp(key));
        };
        let (from, to) = (from as usize, to as usize);
        self.loaded[from..to]
            .binary_search_by(|(k, _)| k.cmp(key))
            .map(|i| from + i)
            .map_err(|i| from + i)
    }

    fn get(&self, key: &K) -> Option<&V> {
        match self.find(key) {
            Ok(i) => Some(&self.loaded[i].1),
            Err(_) => self.added.get(key),
        }
    }

    fn contains(&self, key: &K) -> bool {
        self.get(key).is_some()
    }

    fn insert(&mut self, key: K, value: V) {
        match self.find(&key) {
            Ok(i) => self.loaded[i].1 = value,
            Err(_) => {
                self.added.insert(key, value);
            }
        }
    }

    fn remove(&mut self, key: &K) {
        match self.find(key) {
            Ok(i) => {
                self.loaded.remove(i);
                self.index();
            }
            Err(_) => {
                self.added.remove(key);
            }
        }
    }

    fn len(&self) -> usize {
        self.loaded.len() + self.added.len()
    }

    /// Room for `more` added entries.
    fn reserve(&mut self, more: usize) {
        self.added.reserve(more);
    }

    /// Moves what was added into the sorted list: a hash table's slots cost up to twice
    /// its entries (a power of two of them, at most seven eighths full), a list its entries.
    fn settle(&mut self) {
        if self.added.is_empty() {
            return;
        }
        let mut all = std::mem::take(&mut self.loaded);
        all.reserve_exact(self.added.len());
        all.extend(std::mem::take(&mut self.added));
        // A key is in one of the two only, so no two are equal.
        all.sort_unstable_by_key(|e| e.0);
        self.loaded = all;
        self.index();
    }

    fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) {
        let before = self.loaded.len();
        self.loaded.retain(|(_, v)| keep(v));
        if self.loaded.len() != before {
            self.index();
        }
        self.added.retain(|_, v| keep(v));
    }

    fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.loaded
            .iter()
            .map(|(k, v)| (k, v))
            .chain(self.added.iter())
    }
}

#[derive(Debug)]
struct MarkedEntry {
    /// The bytes' hash, the key of their scan.
    hash: [u8; 32],
    used: AtomicBool,
}

impl Blobs {
    fn len(&self) -> usize {
        self.plain.len() + self.marked.len()
    }

    /// What `key` holds: `Some(hash)` when marked, `None` when plain; `None` (outer) when
    /// unknown. With its flag of use, which the caller sets when it uses the answer.
    fn get(&self, key: &BlobKey) -> Option<(Option<&[u8; 32]>, &AtomicBool)> {
        if let Some(used) = self.plain.get(key) {
            return Some((None, used));
        }
        let marked = self.marked.get(key)?;
        Some((Some(&marked.hash), &marked.used))
    }
}

#[derive(Debug)]
struct Entry {
    result: ScanResult,
    /// Hit or inserted since the last [`ScanCache::retain_used`], which keeps only these.
    used: AtomicBool,
}

/// Counters for logs and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub entries: usize,
    pub hits: u64,
    pub misses: u64,
    /// Tree summaries kept.
    pub trees: usize,
    /// Trees read from the object store by tree walks.
    pub trees_read: u64,
}

/// Scan results by (language, BLAKE3 of the bytes). Cheap to share across threads: lookups
/// take a read lock; only misses, which have just paid for a parse, take the write lock.
#[derive(Debug, Default)]
pub struct ScanCache {
    entries: RwLock<Table<Key, Entry>>,
    /// Blob ids met by a tree walk: an unchanged blob is neither read nor hashed.
    blobs: RwLock<Blobs>,
    /// Tree ids met by a tree walk: an unchanged folder is not read again.
    trees: Mutex<TreeMemo>,
    hits: AtomicU64,
    misses: AtomicU64,
    /// Entries added or dropped since loading or the last save.
    changed: AtomicBool,
}

#[derive(Serialize, Deserialize)]
struct Header {
    format: u32,
    build: String,
    body_len: u64,
    body_hash: [u8; 32],
}

#[derive(Serialize, Deserialize)]
struct Record {
    lang: Lang,
    hash: [u8; 32],
    result: ScanResult,
}

#[derive(Serialize, Deserialize)]
struct BlobRecord {
    lang: Lang,
    id: [u8; 20],
    scanned: Option<[u8; 32]>,
}

#[derive(Serialize, Deserialize)]
struct Body {
    records: Vec<Record>,
    blobs: Vec<BlobRecord>,
    trees: Vec<TreeRecord>,
    paths: Vec<PathRecord>,
}

/// [`Record`] borrowed from the cache, encoded to the same bytes: a save need not copy every
/// scan first.
#[derive(Serialize)]
struct RecordRef<'a> {
    lang: Lang,
    hash: &'a [u8; 32],
    result: &'a ScanResult,
}

/// [`BlobRecord`] borrowed from the cache, encoded to the same bytes.
#[derive(Serialize)]
struct BlobRecordRef<'a> {
    lang: Lang,
    id: &'a [u8; 20],
    scanned: Option<&'a [u8; 32]>,
}

/// [`Body`] borrowed from the cache, encoded to the same bytes.
#[derive(Serialize)]
struct BodyRef<'a> {
    records: Vec<RecordRef<'a>>,
    blobs: Vec<BlobRecordRef<'a>>,
    trees: Vec<TreeRecord>,
    paths: Vec<PathRecord>,
}

impl ScanCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// [`scan`], answered from the cache when these bytes were scanned before.
    pub fn scan(&self, source: &[u8], lang: Lang) -> ScanResult {
        self.get_or_insert(lang, source, || scan(source, lang))
    }

    /// [`rescan`]: the scan of `new` (which is `old` with `edits` applied), from the cache
    /// when `new` was seen before, else re-parsed incrementally and kept under `new`'s hash.
    pub fn rescan(&self, lang: Lang, old: &[u8], new: &[u8], edits: &[Edit]) -> ScanResult {
        self.get_or_insert(lang, new, || rescan(lang, old, new, edits))
    }

    /// What is known of the blob `id` read as `lang`: `None` when it must be read (never
    /// met, or its scan is no longer kept).
    pub fn blob(&self, lang: Lang, id: [u8; 20]) -> Option<BlobScan> {
        let blobs = self.blobs.read().unwrap_or_else(PoisonError::into_inner);
        let (scanned, used) = blobs.get(&(lang, id))?;
        let found = match scanned {
            None => BlobScan::Plain,
            Some(hash) => {
                let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
                let entry = entries.get(&(lang, *hash))?;
                entry.used.store(true, Ordering::Relaxed);
                // A scan answered from the cache, as for bytes; a plain blob is no scan.
                self.hits.fetch_add(1, Ordering::Relaxed);
                BlobScan::Scanned(entry.result.clone())
            }
        };
        used.store(true, Ordering::Relaxed);
        Some(found)
    }

    /// Whether the blob `id` read as `lang` was met holding the marker (`Some(true)`) or
    /// needing nothing (`Some(false)`), without its scan: `None` when it was never met.
    pub fn blob_marked(&self, lang: Lang, id: [u8; 20]) -> Option<bool> {
        let blobs = self.blobs.read().unwrap_or_else(PoisonError::into_inner);
        let (scanned, used) = blobs.get(&(lang, id))?;
        used.store(true, Ordering::Relaxed);
        Some(scanned.is_some())
    }

    /// The tree summaries, for a tree walk (which holds them for its duration).
    pub fn tree_memo(&self) -> MutexGuard<'_, TreeMemo> {
        self.trees.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remembers the blob `id`: `Some(bytes)` when they hold the marker (their scan is in
    /// the cache under their hash), `None` when they need nothing.
    pub fn remember_blob(&self, lang: Lang, id: [u8; 20], marked: Option<&[u8]>) {
        let scanned = marked.map(|bytes| *blake3::hash(bytes).as_bytes());
        let key = (lang, id);
        let mut blobs = self.blobs.write().unwrap_or_else(PoisonError::into_inner);
        match scanned {
            None => {
                blobs.marked.remove(&key);
                blobs.plain.insert(key, AtomicBool::new(true));
            }
            Some(hash) => {
                blobs.plain.remove(&key);
                let used = AtomicBool::new(true);
                blobs.marked.insert(key, MarkedEntry { hash, used });
            }
        }
        self.changed.store(true, Ordering::Relaxed);
    }

    /// Room for `more` scans not met before, made before the caller's work in parallel.
    pub fn reserve_scans(&self, more: usize) {
        self.entries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .reserve(more);
    }

    /// Room for `marked` more blobs holding the marker (a commit's rewritten files), made
    /// before the caller's own peak of memory rather than in it.
    pub fn reserve_blobs(&self, marked: usize) {
        let mut blobs = self.blobs.write().unwrap_or_else(PoisonError::into_inner);
        blobs.marked.reserve(marked);
    }

    /// Keeps what this run added as compactly as what was loaded (see [`Table`]), before
    /// the caller's peak of memory: a cold run's scans and blob ids (30,000 and 65,000 at
    /// 50,000 files) took hash tables of twice their size through the commit. Lookups stay
    /// as they are; later additions go to a new table.
    pub fn settle(&self) {
        self.entries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .settle();
        let mut blobs = self.blobs.write().unwrap_or_else(PoisonError::into_inner);
        blobs.plain.settle();
        blobs.marked.settle();
    }

    fn get_or_insert(
        &self,
        lang: Lang,
        bytes: &[u8],
        compute: impl FnOnce() -> ScanResult,
    ) -> ScanResult {
        let key = (lang, *blake3::hash(bytes).as_bytes());
        {
            let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(entry) = entries.get(&key) {
                entry.used.store(true, Ordering::Relaxed);
                self.hits.fetch_add(1, Ordering::Relaxed);
                return entry.result.clone();
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let result = compute();
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        // Another worker may have scanned the same bytes meanwhile; both results are equal.
        if !entries.contains(&key) {
            entries.insert(
                key,
                Entry {
                    result: result.clone(),
                    used: AtomicBool::new(true),
                },
            );
        }
        self.changed.store(true, Ordering::Relaxed);
        result
    }

    pub fn stats(&self) -> CacheStats {
        let entries = self
            .entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        let trees = self.tree_memo();
        CacheStats {
            entries,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            trees: trees.len(),
            trees_read: trees.reads(),
        }
    }

    /// Drops the entries not used since the last call and starts counting afresh: a cache
    /// kept in memory across runs then holds what the latest run needed, no more. When
    /// nothing was used (a run that failed before it scanned), everything is kept.
    pub fn retain_used(&self) {
        // The plain blobs of the folders kept stay known, though an unchanged folder's are
        // not looked up: the run after a change beside them reads only what changed.
        let plain = self.tree_memo().retain_used();
        {
            let blobs = self.blobs.read().unwrap_or_else(PoisonError::into_inner);
            for key in plain {
                if let Some((_, used)) = blobs.get(&key) {
                    used.store(true, Ordering::Relaxed);
                }
            }
        }
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if !entries.iter().any(|(_, e)| e.used.load(Ordering::Relaxed)) {
            return;
        }
        let before = entries.len();
        entries.retain(|e| e.used.swap(false, Ordering::Relaxed));
        if entries.len() != before {
            self.changed.store(true, Ordering::Relaxed);
        }
        let mut blobs = self.blobs.write().unwrap_or_else(PoisonError::into_inner);
        let before = blobs.len();
        blobs
            .plain
            .retain(|used| used.swap(false, Ordering::Relaxed));
        blobs
            .marked
            .retain(|e| e.used.swap(false, Ordering::Relaxed));
        if blobs.len() != before {
            self.changed.store(true, Ordering::Relaxed);
        }
    }

    /// Whether the cache differs from what was loaded or last saved: a run that only hit
    /// need not write the file again.
    pub fn is_changed(&self) -> bool {
        self.changed.load(Ordering::Relaxed) || self.tree_memo().is_changed()
    }

    /// The file's bytes: header (format, build, checksum of the rest), then every entry,
    /// sorted so equal caches give equal files. Call [`Self::retain_used`] first to keep
    /// the file to what the run needed.
    pub fn to_bytes(&self) -> Result<Vec<u8>, postcard::Error> {
        let (head, body) = self.encode()?;
        let mut out = head;
        out.extend(body);
        Ok(out)
    }

    /// The file's bytes as its start (magic and header) and its body, which [`Self::save`]
    /// writes one after the other: the body (megabytes for a large tree) is made once, at
    /// its exact size, from the entries as they are, not from copies of them.
    fn encode(&self) -> Result<(Vec<u8>, Vec<u8>), postcard::Error> {
        // The memo's lock first and alone (a walk takes it before the maps'), then the maps'
        // in the order `retain_used` takes them.
        let (trees, paths) = self.tree_memo().records();
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        let mut records: Vec<RecordRef<'_>> = entries
            .iter()
            .map(|((lang, hash), e)| RecordRef {
                lang: *lang,
                hash,
                result: &e.result,
            })
            .collect();
        records.sort_unstable_by_key(|r| (r.lang, r.hash));
        let blobs = self.blobs.read().unwrap_or_else(PoisonError::into_inner);
        let plain = blobs.plain.iter().map(|((lang, id), _)| BlobRecordRef {
            lang: *lang,
            id,
            scanned: None,
        });
        let marked = blobs.marked.iter().map(|((lang, id), e)| BlobRecordRef {
            lang: *lang,
            id,
            scanned: Some(&e.hash),
        });
        let mut blob_records: Vec<BlobRecordRef<'_>> = plain.chain(marked).collect();
        blob_records.sort_unstable_by_key(|r| (r.lang, r.id));
        let body = BodyRef {
            records,
            blobs: blob_records,
            trees,
            paths,
        };
        let size = postcard::experimental::serialized_size(&body)?;
        let body = postcard::to_extend(&body, Vec::with_capacity(size))?;
        let header = Header {
            format: FORMAT,
            build: build_id().to_string(),
            body_len: body.len() as u64,
            body_hash: *blake3::hash(&body).as_bytes(),
        };
        let mut head = MAGIC.to_vec();
        head.extend(postcard::to_stdvec(&header)?);
        Ok((head, body))
    }

    /// Reads bytes written by [`Self::to_bytes`] of this very build; entries start unused.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        Ok(Self::from_body(Self::decode(bytes)?))
    }

    /// The records of bytes written by [`Self::to_bytes`] of this very build.
    fn decode(bytes: &[u8]) -> Result<Body, DecodeError> {
        let rest = bytes.strip_prefix(MAGIC).ok_or(DecodeError::Magic)?;
        let (header, body): (Header, _) =
            postcard::take_from_bytes(rest).map_err(DecodeError::Header)?;
        if header.format != FORMAT {
            return Err(DecodeError::Format {
                found: header.format,
            });
        }
        if header.build != build_id() {
            return Err(DecodeError::Build {
                found: header.build,
                expected: build_id().to_string(),
            });
        }
        // The checksum stands between a damaged file and a wrong answer: postcard would
        // happily decode flipped bits into a different, well-formed scan.
        if body.len() as u64 != header.body_len
            || *blake3::hash(body).as_bytes() != header.body_hash
        {
            return Err(DecodeError::Checksum);
        }
        postcard::from_bytes(body).map_err(DecodeError::Body)
    }

    /// A cache of decoded records; entries start unused.
    fn from_body(body: Body) -> Self {
        let Body {
            records,
            blobs,
            trees,
            paths,
        } = body;
        let mut plain = Vec::new();
        let mut marked = Vec::new();
        for r in blobs {
            let key = (r.lang, r.id);
            let used = AtomicBool::new(false);
            match r.scanned {
                None => plain.push((key, used)),
                Some(hash) => marked.push((key, MarkedEntry { hash, used })),
            }
        }
        let known = Blobs {
            plain: Table::loaded(plain),
            marked: Table::loaded(marked),
        };
        let entries = Table::loaded(
            records
                .into_iter()
                .map(|r| {
                    let entry = Entry {
                        result: r.result,
                        used: AtomicBool::new(false),
                    };
                    ((r.lang, r.hash), entry)
                })
                .collect(),
        );
        Self {
            entries: RwLock::new(entries),
            blobs: RwLock::new(known),
            trees: Mutex::new(TreeMemo::from_records(trees, paths)),
            ..Self::default()
        }
    }

    /// The cache saved at `path`, or an empty one when there is none or it cannot be used.
    pub fn load(path: &Path) -> Self {
        let started = std::time::Instant::now();
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                tracing::debug!(path = %path.display(), "no scan cache yet");
                return Self::new();
            }
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "cannot read the scan cache; rebuilding it");
                return Self::new();
            }
        };
        let decoded = Self::decode(&bytes);
        // The file's bytes go before the maps are built from its records.
        drop(bytes);
        match decoded.map(Self::from_body) {
            Ok(cache) => {
                tracing::debug!(path = %path.display(), entries = cache.stats().entries, elapsed = ?started.elapsed(), "scan cache loaded");
                cache
            }
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "ignoring the scan cache; rebuilding it");
                Self::new()
            }
        }
    }

    /// Writes every entry to `path`, atomically: a reader, or a concurrent tagsmith, sees
    /// the old file or the new one.
    pub fn save(&self, path: &Path) -> Result<(), CacheError> {
        let started = std::time::Instant::now();
        let (head, body) = self.encode()?;
        let write_err = |source| CacheError::Write {
            path: path.to_path_buf(),
            source,
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(write_err)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        // No fsync: losing the cache to a crash costs one cold run, while a sync would cost
        // every run; the rename alone keeps readers from seeing a torn file.
        let result = (|| {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(&head)?;
            file.write_all(&body)?;
            fs::rename(&tmp, path)
        })();
        if let Err(err) = result {
            let _ = fs::remove_file(&tmp);
            return Err(write_err(err));
        }
        self.changed.store(false, Ordering::Relaxed);
        self.tree_memo().mark_saved();
        tracing::debug!(path = %path.display(), bytes = head.len() + body.len(), elapsed = ?started.elapsed(), "scan cache saved");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &[u8] = b"a: ghcr.io/o/app:1 # {\"$imagepolicy\": \"ns:a\"}\nb: x\n";

    #[test]
    fn borrowed_records_encode_to_the_bytes_of_owned_ones() {
        let cache = ScanCache::new();
        let other: &[u8] = b"x: ghcr.io/o/b:2 # {\"$imagepolicy\": \"ns:b\"}\n";
        cache.scan(YAML, Lang::Yaml);
        cache.scan(other, Lang::Yaml);
        cache.remember_blob(Lang::Yaml, [9; 20], Some(YAML));
        cache.remember_blob(Lang::Yaml, [1; 20], Some(other));
        cache.remember_blob(Lang::Yaml, [5; 20], None);
        let mut records: Vec<Record> = [YAML, other]
            .iter()
            .map(|bytes| Record {
                lang: Lang::Yaml,
                hash: *blake3::hash(bytes).as_bytes(),
                result: scan(bytes, Lang::Yaml),
            })
            .collect();
        records.sort_unstable_by_key(|r| (r.lang, r.hash));
        let blob = |id: [u8; 20], bytes: Option<&[u8]>| BlobRecord {
            lang: Lang::Yaml,
            id,
            scanned: bytes.map(|b| *blake3::hash(b).as_bytes()),
        };
        let owned = Body {
            records,
            blobs: vec![
                blob([1; 20], Some(other)),
                blob([5; 20], None),
                blob([9; 20], Some(YAML)),
            ],
            trees: Vec::new(),
            paths: Vec::new(),
        };
        let (head, body) = cache.encode().unwrap();
        assert_eq!(body, postcard::to_stdvec(&owned).unwrap());
        assert_eq!(body.capacity(), body.len());
        assert_eq!(cache.to_bytes().unwrap(), [head, body].concat());
    }

    #[test]
    fn a_blob_met_again_is_known_once_as_it_was_last_met() {
        let cache = ScanCache::new();
        let id = [3; 20];
        cache.scan(YAML, Lang::Yaml);
        cache.remember_blob(Lang::Yaml, id, None);
        assert_eq!(cache.blob_marked(Lang::Yaml, id), Some(false));
        cache.remember_blob(Lang::Yaml, id, Some(YAML));
        assert_eq!(cache.blob_marked(Lang::Yaml, id), Some(true));
        let loaded = ScanCache::from_bytes(&cache.to_bytes().unwrap()).unwrap();
        assert_eq!(loaded.blobs.read().unwrap().len(), 1);
        assert_eq!(
            loaded.blob(Lang::Yaml, id),
            Some(BlobScan::Scanned(scan(YAML, Lang::Yaml)))
        );
        cache.remember_blob(Lang::Yaml, id, None);
        assert_eq!(cache.blob(Lang::Yaml, id), Some(BlobScan::Plain));
        assert_eq!(cache.blobs.read().unwrap().len(), 1);
    }

    #[test]
    fn a_table_answers_as_a_map_for_loaded_and_added_keys() {
        let key = |lang, first: u8, second: u8| (lang, [first, second]);
        let (one, two, three) = (
            key(Lang::Yaml, 1, 0),
            key(Lang::Yaml, 1, 9),
            key(Lang::Cue, 0, 0),
        );
        let mut table = Table::loaded(vec![(three, 'a'), (one, 'b'), (three, 'c')]);
        assert_eq!(
            (table.get(&three), table.get(&one), table.len()),
            (Some(&'c'), Some(&'b'), 2)
        );
        table.insert(two, 'd');
        table.insert(one, 'e');
        assert_eq!(
            (table.get(&one), table.get(&two), table.len()),
            (Some(&'e'), Some(&'d'), 3)
        );
        assert_eq!((table.loaded.len(), table.added.len()), (2, 1));
        table.remove(&three);
        table.remove(&key(Lang::Cue, 7, 7));
        assert!(!table.contains(&three));
        assert_eq!(table.get(&one), Some(&'e'));
        table.retain(|v| *v != 'd');
        let all: Vec<_> = table.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(all, [(one, 'e')]);
    }

    #[test]
    fn a_loaded_table_finds_each_key_through_its_rank() {
        // Keys spread over every rank of both languages, some ranks left empty.
        let keys: Vec<(Lang, [u8; 20])> = (0u32..3000)
            .map(|i| {
                let lang = if i % 3 == 0 { Lang::Cue } else { Lang::Yaml };
                let mut id = [0; 20];
                id[0] = (i.wrapping_mul(97) % 251) as u8;
                id[1..5].copy_from_slice(&i.to_be_bytes());
                (lang, id)
            })
            .collect();
        let table = Table::loaded(keys.iter().map(|k| (*k, k.1[4])).collect());
        for key in &keys {
            assert_eq!(table.get(key), Some(&key.1[4]), "{key:?}");
        }
        for missing in [
            (Lang::Yaml, [255; 20]),
            (Lang::Cue, [253; 20]),
            (Lang::Yaml, [7; 20]),
        ] {
            assert_eq!(table.get(&missing), None);
        }
    }

    #[test]
    fn a_settled_cache_answers_and_saves_as_before() {
        let cache = ScanCache::new();
        let other: &[u8] = b"x: ghcr.io/o/b:2 # {\"$imagepolicy\": \"ns:b\"}\n";
        let first = cache.scan(YAML, Lang::Yaml);
        cache.remember_blob(Lang::Yaml, [1; 20], Some(YAML));
        cache.remember_blob(Lang::Yaml, [2; 20], None);
        let before = cache.to_bytes().unwrap();
        cache.settle();
        assert_eq!(cache.to_bytes().unwrap(), before, "same entries, same file");
        assert_eq!(cache.scan(YAML, Lang::Yaml), first);
        assert_eq!(cache.blob_marked(Lang::Yaml, [1; 20]), Some(true));
        assert_eq!(cache.blob_marked(Lang::Yaml, [2; 20]), Some(false));
        // What comes after goes beside the settled entries, and may replace them.
        cache.scan(other, Lang::Yaml);
        cache.remember_blob(Lang::Yaml, [1; 20], None);
        cache.remember_blob(Lang::Yaml, [3; 20], Some(other));
        assert_eq!(cache.blob_marked(Lang::Yaml, [1; 20]), Some(false));
        assert!(matches!(
            cache.blob(Lang::Yaml, [3; 20]),
            Some(BlobScan::Scanned(_))
        ));
        let again = ScanCache::from_bytes(&cache.to_bytes().unwrap()).unwrap();
        assert_eq!(again.stats().entries, 2);
        assert_eq!(again.blob_marked(Lang::Yaml, [1; 20]), Some(false));
        assert_eq!(again.blob_marked(Lang::Yaml, [2; 20]), Some(false));
    }

    #[test]
    fn a_hit_returns_what_scan_returns() {
        let cache = ScanCache::new();
        let first = cache.scan(YAML, Lang::Yaml);
        let second = cache.scan(YAML, Lang::Yaml);
        assert_eq!(first, scan(YAML, Lang::Yaml));
        assert_eq!(second, first);
        let stats = cache.stats();
        assert_eq!((stats.entries, stats.hits, stats.misses), (1, 1, 1));
    }

    #[test]
    fn a_blob_id_answers_without_the_bytes_and_survives_a_round_trip() {
        let cache = ScanCache::new();
        let (marked, plain) = ([1; 20], [2; 20]);
        assert_eq!(cache.blob(Lang::Yaml, marked), None);
        cache.scan(YAML, Lang::Yaml);
        cache.remember_blob(Lang::Yaml, marked, Some(YAML));
        cache.remember_blob(Lang::Yaml, plain, None);
        let loaded = ScanCache::from_bytes(&cache.to_bytes().unwrap()).unwrap();
        assert_eq!(
            loaded.blob(Lang::Yaml, marked),
            Some(BlobScan::Scanned(scan(YAML, Lang::Yaml)))
        );
        assert_eq!(loaded.blob(Lang::Yaml, plain), Some(BlobScan::Plain));
        assert_eq!(
            loaded.blob(Lang::Cue, plain),
            None,
            "the language is part of the key"
        );
        // A blob whose scan was dropped must be read again.
        let dropped = ScanCache::from_bytes(&cache.to_bytes().unwrap()).unwrap();
        dropped.blob(Lang::Yaml, plain);
        dropped.scan(b"other: 1\n", Lang::Yaml);
        dropped.retain_used();
        assert_eq!(dropped.blob(Lang::Yaml, marked), None);
        assert_eq!(dropped.blob(Lang::Yaml, plain), Some(BlobScan::Plain));
    }

    #[test]
    fn the_language_is_part_of_the_key() {
        let cache = ScanCache::new();
        let src = b"a: \"x\" // {\"$imagepolicy\": \"ns:a\"}\n";
        assert_eq!(cache.scan(src, Lang::Cue), scan(src, Lang::Cue));
        assert_eq!(cache.scan(src, Lang::Yaml), scan(src, Lang::Yaml));
        assert_eq!(cache.stats().misses, 2);
    }

    #[test]
    fn bytes_round_trip() {
        let cache = ScanCache::new();
        cache.scan(YAML, Lang::Yaml);
        let loaded = ScanCache::from_bytes(&cache.to_bytes().unwrap()).unwrap();
        assert_eq!(loaded.stats().entries, 1);
        assert_eq!(loaded.scan(YAML, Lang::Yaml), scan(YAML, Lang::Yaml));
        assert_eq!((loaded.stats().hits, loaded.stats().misses), (1, 0));
        // Loaded entries count as unused until a run needs them.
        let partly = ScanCache::from_bytes(&cache.to_bytes().unwrap()).unwrap();
        partly.scan(b"other: 1\n", Lang::Yaml);
        partly.retain_used();
        assert_eq!(partly.stats().entries, 1);
        assert_eq!(partly.scan(YAML, Lang::Yaml), scan(YAML, Lang::Yaml));
        assert_eq!(partly.stats().misses, 2);
    }

    #[test]
    fn damaged_bytes_are_refused() {
        let cache = ScanCache::new();
        cache.scan(YAML, Lang::Yaml);
        let good = cache.to_bytes().unwrap();
        for cut in [0, 5, MAGIC.len(), MAGIC.len() + 3, good.len() - 1] {
            assert!(ScanCache::from_bytes(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = good.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 0x01;
        assert_eq!(
            ScanCache::from_bytes(&flipped).unwrap_err(),
            DecodeError::Checksum
        );
        let mut longer = good;
        longer.push(0);
        assert_eq!(
            ScanCache::from_bytes(&longer).unwrap_err(),
            DecodeError::Checksum
        );
    }

    #[test]
    fn another_build_or_format_is_refused() {
        let foreign = |format: u32, build: &str| {
            let body = postcard::to_stdvec(&Body {
                records: Vec::new(),
                blobs: Vec::new(),
                trees: Vec::new(),
                paths: Vec::new(),
            })
            .unwrap();
            let header = Header {
                format,
                build: build.into(),
                body_len: body.len() as u64,
                body_hash: *blake3::hash(&body).as_bytes(),
            };
            let mut out = MAGIC.to_vec();
            out.extend(postcard::to_stdvec(&header).unwrap());
            out.extend(body);
            out
        };
        assert!(ScanCache::from_bytes(&foreign(FORMAT, build_id())).is_ok());
        assert!(matches!(
            ScanCache::from_bytes(&foreign(FORMAT + 1, build_id())),
            Err(DecodeError::Format { .. })
        ));
        assert!(matches!(
            ScanCache::from_bytes(&foreign(FORMAT, "0.0.1+0000000000000000")),
            Err(DecodeError::Build { .. })
        ));
    }

    #[test]
    fn every_rewrite_source_is_part_of_the_build_id() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/rewrite");
        let mut on_disk: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".rs"))
            .collect();
        on_disk.sort();
        let listed: Vec<&str> = SCAN_SOURCES
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| !n.starts_with("../"))
            .collect();
        assert_eq!(on_disk, listed, "update SCAN_SOURCES");
    }

    #[test]
    fn retain_used_forgets_what_the_last_run_did_not_need() {
        let cache = ScanCache::new();
        let other = b"b: ghcr.io/o/b:1 # {\"$imagepolicy\": \"ns:b\"}\n";
        cache.scan(YAML, Lang::Yaml);
        cache.scan(other, Lang::Yaml);
        cache.retain_used();
        assert_eq!(cache.stats().entries, 2);
        cache.scan(YAML, Lang::Yaml);
        cache.retain_used();
        assert_eq!(cache.stats().entries, 1);
        assert_eq!(cache.stats().hits, 1);
        assert!(cache.is_changed());
        // A run that scanned nothing (it failed first) keeps what there was.
        cache.retain_used();
        assert_eq!(cache.stats().entries, 1);
    }

    #[test]
    fn a_syntax_error_is_remembered_as_one() {
        let broken = b"a: [unclosed # {\"$imagepolicy\": \"ns:a\"}\n";
        let cache = ScanCache::new();
        cache.scan(broken, Lang::Yaml);
        let loaded = ScanCache::from_bytes(&cache.to_bytes().unwrap()).unwrap();
        let hit = loaded.scan(broken, Lang::Yaml);
        assert_eq!(loaded.stats().hits, 1);
        assert_eq!(hit, scan(broken, Lang::Yaml));
        assert!(
            hit.problems
                .iter()
                .any(|p| p.kind == super::super::ProblemKind::Syntax)
        );
    }
}
