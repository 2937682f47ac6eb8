//! The checkout-free pipeline: a target's update is computed on Git objects. The synced
//! commit's tree is walked under the target's paths, blobs are read only when the scan cache
//! does not know their id, the same pure per-file step as `tagsmith apply` rewrites their
//! bytes, and the new blobs and the trees on their paths are written next to the old ones.
//! Nothing is checked out, no index is kept, no file is written.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use git2::{AttrCheckFlags, AttrValue, FileMode, ObjectType, Oid, Repository, Signature, Tree};
use rayon::prelude::*;

use super::pack::{Builder, PackError};
use super::walk_memo;
use super::workspace::NewPack;
use super::{CommitInfo, GitError, Workspace, message, redact_url};
use crate::config::Author;
use crate::rewrite::tree_memo::{ObjectId, TreeMemo, TreeSummary};
use crate::rewrite::walk::{Before, ChangedFile, Core, FileOutcome, TreeReport};
use crate::rewrite::{BlobScan, Lang, ScanCache, wide_encoding_with_marker};

/// libgit2's `GIT_ATTR_CHECK_INCLUDE_HEAD`, which git2 does not name: attributes from the
/// `.gitattributes` files of the commit HEAD names, as a checkout of it would have them.
const ATTR_INCLUDE_HEAD: u32 = 1 << 3;

/// A marked blob read in the walk, to be scanned in parallel.
struct Unscanned {
    path: PathBuf,
    lang: Lang,
    id: Oid,
    bytes: Vec<u8>,
}

/// `outcome` of rewriting the blob `id`, keeping the blob's id instead of its old bytes.
fn by_blob_id(mut outcome: FileOutcome, id: Oid) -> FileOutcome {
    if let (Some(file), Some(key)) = (outcome.changed.as_mut(), blob_key(id)) {
        file.forget_before(key);
    }
    outcome
}

impl Workspace {
    /// Rewrites the marked values in the tree of the commit HEAD holds, under `paths`
    /// (relative to the root; empty means all of it), as [`crate::rewrite::rewrite_tree`]
    /// does in a directory: same files, same problems, same bytes. Only blobs whose id the
    /// cache does not know are read, and only trees whose id it does not know (the ones on
    /// the paths changed since the last run).
    pub fn rewrite_head(
        &self,
        paths: &[PathBuf],
        core: &Core<'_>,
        cache: Option<&ScanCache>,
    ) -> Result<TreeReport, GitError> {
        let started = std::time::Instant::now();
        let cache_before = cache.map(ScanCache::stats).unwrap_or_default();
        let err = |e: git2::Error| GitError::Read {
            message: message(&e),
        };
        let head = self.head()?;
        let root = self.repo.find_commit(head).map_err(err)?.tree_id();
        let mut report = TreeReport::default();
        let (walked, trees_read) = {
            // Without a cache, a memo of this run only: every tree is read once.
            let mut own = TreeMemo::default();
            let mut shared = cache.map(ScanCache::tree_memo);
            let memo = shared.as_deref_mut().unwrap_or(&mut own);
            let before = memo.reads();
            let walked =
                walk_memo::candidates(&self.repo, root, paths, &mut report, memo, cache, core)
                    .map_err(err)?;
            (walked, memo.reads() - before)
        };
        let walk_elapsed = started.elapsed();
        report.files_seen = walked.files_seen;
        let mut unscanned = Vec::new();
        let mut read = walked.blobs_read;
        for c in walked.candidates {
            if let Some(bytes) = c.bytes {
                // Read by the walk, which remembered it in the cache already.
                if core.has_marker(&bytes) {
                    unscanned.push(Unscanned {
                        path: c.path,
                        lang: c.lang,
                        id: c.id,
                        bytes,
                    });
                } else {
                    report.add(core.rewrite(&c.path, c.lang, bytes));
                }
                continue;
            }
            let key = blob_key(c.id);
            let known = cache
                .zip(key)
                .and_then(|(cache, key)| cache.blob(c.lang, key));
            match known {
                Some(BlobScan::Plain) => {}
                Some(BlobScan::Scanned(scanned)) => {
                    let load = || {
                        read += 1;
                        self.repo
                            .find_blob(c.id)
                            .map(|b| b.content().to_vec())
                            .map_err(|e| format!("cannot read blob {}: {}", c.id, message(&e)))
                    };
                    let outcome = core.rewrite_scanned(&c.path, c.lang, scanned, load);
                    report.add(by_blob_id(outcome, c.id));
                }
                None => {
                    read += 1;
                    let blob = self.repo.find_blob(c.id).map_err(err)?;
                    let bytes = blob.content();
                    let marked = core.has_marker(bytes);
                    if let (Some(cache), Some(key)) = (cache, key) {
                        if marked {
                            cache.remember_blob(c.lang, key, Some(bytes));
                        } else if wide_encoding_with_marker(bytes).is_none() {
                            cache.remember_blob(c.lang, key, None);
                        }
                    }
                    if marked {
                        unscanned.push(Unscanned {
                            path: c.path,
                            lang: c.lang,
                            id: c.id,
                            bytes: bytes.to_vec(),
                        });
                    } else {
                        report.add(core.rewrite(&c.path, c.lang, bytes.to_vec()));
                    }
                }
            }
        }
        if let Some(cache) = cache {
            // Each is scanned as read and as rewritten: the table is made at its size once,
            // not grown (both sizes held while it moves) in the middle of the rewrite.
            cache.reserve_scans(2 * unscanned.len());
        }
        // Each outcome goes into the report as it is made, not all of them held first: a
        // file's outcome has room for more changes and policies than it holds, and 15,000
        // of them were the rewrite's largest part of memory. The order is the sort's below.
        let shared = std::sync::Mutex::new(report);
        unscanned.into_par_iter().for_each(|u| {
            let outcome = by_blob_id(core.rewrite(&u.path, u.lang, u.bytes), u.id);
            shared
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .add(outcome);
        });
        let mut report = shared
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        report.blobs_read = read;
        report.sort();
        let cache_after = cache.map(ScanCache::stats).unwrap_or_default();
        tracing::info!(
            elapsed = ?started.elapsed(),
            walk = ?walk_elapsed,
            files = report.files_seen,
            blobs_read = read,
            parsed = report.files_parsed,
            cache_hits = cache_after.hits - cache_before.hits,
            cache_misses = cache_after.misses - cache_before.misses,
            trees_read,
            changed = report.changed.len(),
            problems = report.problems.len(),
            "rewrite done"
        );
        Ok(report)
    }

    /// Commits `changed` (paths relative to the root, bytes as rewritten) on top of HEAD and
    /// moves HEAD to it. Each new blob is what a checkout, the rewrite and `git add` would
    /// have stored: the attributes' end-of-line conversion applies to it as it would there.
    /// With a `cache`, new blobs holding the rewritten bytes are remembered by id (their
    /// scan is cached already), so the next run need not read them.
    ///
    /// The new blobs, the trees on their paths and the commit are hashed and deflated once
    /// each, as they are made, into one pack that is written with its index: no object goes
    /// through libgit2's object database on the way (each write there looks the id up in
    /// every pack first, and rescans the pack folder when it is not found), and the pack is
    /// not read again to index it.
    pub fn commit_changes(
        &self,
        changed: &[ChangedFile],
        author: &Author,
        text: impl Into<String>,
        cache: Option<&ScanCache>,
    ) -> Result<CommitInfo, GitError> {
        let started = std::time::Instant::now();
        let err = |e: git2::Error| GitError::Commit {
            message: message(&e),
        };
        let parent_id = self.head()?;
        let base_tree = self
            .repo
            .find_commit(parent_id)
            .and_then(|c| c.tree())
            .map_err(err)?;
        let eol = EolConfig::of(&self.repo);
        let outside = attributes_outside_tree(&self.repo);
        let keys: Vec<(String, &ChangedFile)> = edit_keys(changed);
        let edits: Vec<(&str, &ChangedFile)> = keys.iter().map(|(k, f)| (k.as_str(), *f)).collect();
        if let Some(cache) = cache {
            // Grown now, not in the middle of the commit, the run's peak of memory.
            cache.reserve_blobs(changed.len());
        }
        let mut pack = Builder::new(&self.repo.path().join("objects")).map_err(pack_error)?;
        let mut blob = |file: &ChangedFile, attributes_on_path: bool, pack: &mut Builder| {
            let attrs = if outside || attributes_on_path {
                Attrs::of(&self.repo, &file.path).map_err(err)?
            } else {
                Attrs::Undefined
            };
            let bytes = attrs.to_odb(eol, file.before.has_cr(), &file.after);
            let id = pack.add(ObjectType::Blob, &bytes).map_err(pack_error)?;
            if let (Some(cache), Some(lang), Some(key)) =
                (cache, Lang::from_path(&file.path), blob_key(id))
                && *bytes == *file.after
            {
                cache.remember_blob(lang, key, Some(&bytes));
            }
            Ok(id)
        };
        let mut memo = cache.map(ScanCache::tree_memo);
        let mut summaries = Summaries {
            memo: memo.as_deref_mut(),
            made: Vec::new(),
            trees: 0,
        };
        let (tree_id, root, _) = rebuild(
            &self.repo,
            Some(&base_tree),
            &edits,
            false,
            &mut blob,
            &mut pack,
            &mut summaries,
        )?;
        let (trees, summarized) = (summaries.trees, summaries.made.len());
        summaries.keep();
        drop(memo);
        tracing::debug!(trees, summarized, "summaries of the commit's trees");
        // Not needed for the commit, which is the run's peak of memory.
        drop(edits);
        drop(keys);
        if tree_id == base_tree.id() {
            return Err(GitError::Commit {
                message: "nothing to commit: the files equal the base commit".into(),
            });
        }
        let id = self.commit_tree(parent_id, tree_id, &root, author, text.into(), &mut pack)?;
        let stored = pack.store().map_err(pack_error)?;
        drop(base_tree);
        // This handle found its packs before the new one was written.
        self.repo.odb().and_then(|odb| odb.refresh()).map_err(err)?;
        self.repo.set_head_detached(id).map_err(err)?;
        tracing::debug!(elapsed = ?started.elapsed(), files = changed.len(), objects = stored.objects, "commit stored as one pack");
        self.new_pack.replace(Some(NewPack {
            commit: id,
            parent: parent_id,
            path: stored.path,
        }));
        Ok(CommitInfo {
            id,
            parent: parent_id,
        })
    }

    /// Makes the commit of the tree `tree_id` (its bytes: `root`) on `parent` as
    /// [`Self::write_commit`] makes it (identity, signing) and adds it to `pack`. A signed
    /// commit's tree passes through the in-memory backend of a handle of its own, dropped
    /// after; an unsigned one is written here, its message moved into it (see
    /// [`commit_bytes`]).
    fn commit_tree(
        &self,
        parent: Oid,
        tree_id: Oid,
        root: &[u8],
        author: &Author,
        text: String,
        pack: &mut Builder,
    ) -> Result<Oid, GitError> {
        let err = |e: git2::Error| GitError::Commit {
            message: message(&e),
        };
        if self.signing_key.is_none() {
            let signature = Signature::now(&author.name, &author.email).map_err(err)?;
            let bytes = commit_bytes(tree_id, parent, &signature, text)?;
            return pack.add(ObjectType::Commit, &bytes).map_err(pack_error);
        }
        // A handle of its own: the in-memory backend stays attached to its object database
        // for good, and must not catch what this workspace writes later.
        let staging = Repository::open_bare(self.repo.path()).map_err(err)?;
        let odb = staging.odb().map_err(err)?;
        let _memory = odb.add_new_mempack_backend(MEMPACK_PRIORITY).map_err(err)?;
        let tree_id = odb.write(ObjectType::Tree, root).map_err(err)?;
        let tree = staging.find_tree(tree_id).map_err(err)?;
        let parent = staging.find_commit(parent).map_err(err)?;
        let id = self.write_commit(&staging, &parent, &tree, author, &text)?;
        let commit = odb.read(id).map_err(err)?;
        pack.add(ObjectType::Commit, commit.data())
            .map_err(pack_error)
    }
}

/// The bytes of the unsigned commit of `tree` on `parent` by `signature` (author and
/// committer) with the message `text`, as libgit2's `git_commit_create_buffer` writes them
/// (`git_commit__create_buffer_internal` in its commit.c, `git_signature__writebuf` in
/// signature.c). Made here because a commit's message lists every change (megabytes at
/// 15,000 files): libgit2 took a copy of it as a C string and another in its buffer, both
/// alive at the run's peak of memory, where this moves the message's own bytes.
fn commit_bytes(
    tree: Oid,
    parent: Oid,
    signature: &Signature<'_>,
    text: String,
) -> Result<Vec<u8>, GitError> {
    use std::io::Write as _;
    if text.contains('\0') {
        // libgit2 reads the message as a C string: it cannot hold a NUL.
        return Err(GitError::Commit {
            message: "the commit message holds a NUL byte".into(),
        });
    }
    let when = signature.when();
    let sign = if when.offset_minutes() < 0 || when.sign() == '-' {
        '-'
    } else {
        '+'
    };
    let offset = when.offset_minutes().unsigned_abs();
    let mut person = signature.name_bytes().to_vec();
    person.extend_from_slice(b" <");
    person.extend_from_slice(signature.email_bytes());
    // libgit2 prints the time as an unsigned int; writing to a Vec cannot fail.
    let _ = writeln!(
        person,
        "> {} {sign}{:02}{:02}",
        when.seconds() as u32,
        offset / 60,
        offset % 60
    );
    let mut head = Vec::with_capacity(120 + 2 * person.len());
    let _ = write!(head, "tree {tree}\nparent {parent}\nauthor ");
    head.extend_from_slice(&person);
    head.extend_from_slice(b"committer ");
    head.extend_from_slice(&person);
    head.push(b'\n');
    let mut bytes = text.into_bytes();
    bytes.reserve_exact(head.len());
    bytes.splice(0..0, head);
    Ok(bytes)
}

fn pack_error(e: PackError) -> GitError {
    GitError::Commit {
        message: redact_url(&e.to_string()),
    }
}

/// Above libgit2's own backends (packs 2, loose objects 1): new objects go to memory.
const MEMPACK_PRIORITY: i32 = 1000;

impl Workspace {
    /// The bytes `file` held before its rewrite, read again from its blob when only the
    /// blob's id was kept.
    pub fn before_bytes(&self, file: &ChangedFile) -> Result<Vec<u8>, GitError> {
        match &file.before {
            Before::Bytes(bytes) => Ok(bytes.clone()),
            Before::Blob { id, .. } => Oid::from_bytes(id)
                .and_then(|id| self.repo.find_blob(id))
                .map(|blob| blob.content().to_vec())
                .map_err(|e| GitError::Read {
                    message: format!("{}: {}", file.path.display(), message(&e)),
                }),
        }
    }

    /// The bytes of the file at `path` (relative to the root) in the synced commit's tree;
    /// `None` when there is none there (or it is a link, a folder or a submodule).
    pub fn head_file(&self, path: &Path) -> Option<Vec<u8>> {
        let head = self.head().ok()?;
        let tree = self.repo.find_commit(head).and_then(|c| c.tree()).ok()?;
        let entry = tree.get_path(&normalize(path)?).ok()?;
        if entry.kind() != Some(ObjectType::Blob) || !is_file(entry.filemode()) {
            return None;
        }
        let blob = self.repo.find_blob(entry.id()).ok()?;
        Some(blob.content().to_vec())
    }

    /// Whether the synced commit's tree holds a file at `path` (relative to the root): a
    /// file deleted or moved upstream takes its holds with it.
    pub fn head_has_file(&self, path: &Path) -> bool {
        self.head_has_files(std::slice::from_ref(&path)).first() == Some(&true)
    }

    /// [`Self::head_has_file`] for many paths, each folder's tree read once however many of
    /// the paths are in it: libgit2 does not cache trees above a few KiB, so a large folder
    /// (`services/` with thousands of entries) would be read and hashed again for every path.
    pub fn head_has_files<P: AsRef<Path>>(&self, paths: &[P]) -> Vec<bool> {
        let tree = self
            .head()
            .ok()
            .and_then(|head| self.repo.find_commit(head).and_then(|c| c.tree()).ok());
        let mut folders = Folders::default();
        paths
            .iter()
            .map(|path| {
                let (Some(tree), Some(rel)) = (&tree, normalize(path.as_ref())) else {
                    return false;
                };
                let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
                    return false;
                };
                folders
                    .get(&self.repo, tree, parent)
                    .and_then(|folder| folder.get_path(Path::new(name)).ok())
                    .is_some_and(|entry| {
                        entry.kind() == Some(ObjectType::Blob) && is_file(entry.filemode())
                    })
            })
            .collect()
    }
}

/// The trees of the folders looked up so far, by path (`None`: no such folder).
#[derive(Default)]
struct Folders<'r> {
    trees: std::collections::HashMap<PathBuf, Option<Tree<'r>>>,
}

impl<'r> Folders<'r> {
    fn get(&mut self, repo: &'r Repository, root: &Tree<'r>, dir: &Path) -> Option<Tree<'r>> {
        let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
            return Some(root.clone());
        };
        if let Some(tree) = self.trees.get(dir) {
            return tree.clone();
        }
        let tree = self.get(repo, root, parent).and_then(|up| {
            let entry = up.get_path(Path::new(name)).ok()?;
            if entry.kind() != Some(ObjectType::Tree) {
                return None;
            }
            repo.find_tree(entry.id()).ok()
        });
        self.trees.insert(dir.to_path_buf(), tree.clone());
        tree
    }
}

fn blob_key(id: Oid) -> Option<[u8; 20]> {
    id.as_bytes().try_into().ok()
}

pub(super) fn is_file(mode: i32) -> bool {
    mode == i32::from(FileMode::Blob) || mode == i32::from(FileMode::BlobExecutable)
}

/// `path` with `.` and `..` resolved, `None` when it leaves the tree.
pub(super) fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Each changed file under its path's names joined by NULs (which no name holds), sorted:
/// the order of the names one by one, which [`rebuild`] reads as it descends; of two files
/// at one path the later counts.
fn edit_keys(changed: &[ChangedFile]) -> Vec<(String, &ChangedFile)> {
    let mut keys: Vec<(String, &ChangedFile)> = changed
        .iter()
        .map(|file| {
            let mut key = String::new();
            for (i, c) in file.path.components().enumerate() {
                if i > 0 {
                    key.push('\0');
                }
                key.push_str(&c.as_os_str().to_string_lossy());
            }
            (key, file)
        })
        .collect();
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    keys.dedup_by(|later, earlier| {
        let same = later.0 == earlier.0;
        if same {
            earlier.1 = later.1;
        }
        same
    });
    keys
}

/// The first name of an edit's key and, when it names a folder, the key below it.
fn split_key(key: &str) -> (&str, Option<&str>) {
    match key.split_once('\0') {
        Some((name, rest)) => (name, Some(rest)),
        None => (key, None),
    }
}

/// `tree` (none: an empty one) with the files at `edits` (keys of [`edit_keys`], sorted)
/// replaced by the blobs `blob` adds to `pack` for them; only the trees on those paths are
/// made, each read once, and each is added to `pack`. Returns the new tree's id and bytes. A
/// replaced blob keeps its mode. `blob` is told whether a folder on the file's path holds a
/// `.gitattributes` (`attributes_above`: one above `tree` does).
///
/// The bytes are the ones libgit2's tree builder writes for the same entries: every entry of
/// the old tree as it was (its mode as stored), sorted as Git sorts them (a folder's name as
/// if it ended in `/`).
fn rebuild(
    repo: &Repository,
    tree: Option<&Tree<'_>>,
    edits: &[(&str, &ChangedFile)],
    attributes_above: bool,
    blob: &mut dyn FnMut(&ChangedFile, bool, &mut Builder) -> Result<Oid, GitError>,
    pack: &mut Builder,
    summaries: &mut Summaries<'_>,
) -> Result<(Oid, Vec<u8>, bool), GitError> {
    let mut changed: Vec<Set> = Vec::new();
    let attributes_here =
        attributes_above || tree.is_some_and(|t| t.get_name(".gitattributes").is_some());
    let mut entries: Vec<TreeItem> = tree.map_or_else(Vec::new, |t| {
        t.iter()
            .map(|e| TreeItem {
                name: e.name_bytes().to_vec(),
                mode: e.filemode_raw(),
                id: e.id(),
            })
            .collect()
    });
    let mut at: HashMap<Vec<u8>, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.name.clone(), i))
        .collect();
    let mut set = |entries: &mut Vec<TreeItem>, name: &str, mode: i32, id: Oid| {
        if let Some(&i) = at.get(name.as_bytes()) {
            entries[i].mode = mode;
            entries[i].id = id;
            return;
        }
        at.insert(name.as_bytes().to_vec(), entries.len());
        entries.push(TreeItem {
            name: name.as_bytes().to_vec(),
            mode,
            id,
        });
    };
    let mut i = 0;
    while i < edits.len() {
        let (key, file) = edits[i];
        if key.is_empty() {
            i += 1;
            continue;
        }
        let (name, rest) = split_key(key);
        if !valid_entry_name(name) {
            return Err(GitError::Commit {
                message: format!(
                    "cannot commit {}: {name:?} cannot be a name in a tree",
                    file.path.display()
                ),
            });
        }
        let existing = tree.and_then(|t| t.get_name(name));
        if rest.is_none() {
            let mode = existing.map_or(i32::from(FileMode::Blob), |e| e.filemode());
            let id = blob(file, attributes_here, pack)?;
            set(&mut entries, name, mode, id);
            changed.push(Set {
                name: name.to_string(),
                id,
                tree: None,
            });
            i += 1;
            continue;
        }
        let mut j = i;
        let mut below: Vec<(&str, &ChangedFile)> = Vec::new();
        while j < edits.len() {
            let (next, rest) = split_key(edits[j].0);
            if next != name {
                break;
            }
            // A file at the folder's own path has nothing below; a tree cannot hold both.
            below.push((rest.unwrap_or(""), edits[j].1));
            j += 1;
        }
        let sub = match existing {
            Some(entry) if entry.kind() == Some(ObjectType::Tree) => {
                Some(repo.find_tree(entry.id()).map_err(|e| GitError::Commit {
                    message: message(&e),
                })?)
            }
            _ => None,
        };
        let (sub_id, _, summarized) = rebuild(
            repo,
            sub.as_ref(),
            &below,
            attributes_here,
            blob,
            pack,
            summaries,
        )?;
        set(&mut entries, name, i32::from(FileMode::Tree), sub_id);
        changed.push(Set {
            name: name.to_string(),
            id: sub_id,
            tree: Some(summarized),
        });
        i = j;
    }
    entries.sort_by(git_tree_order);
    let bytes = tree_bytes(&entries);
    let id = pack.add(ObjectType::Tree, &bytes).map_err(pack_error)?;
    summaries.trees += 1;
    let summarized = match tree {
        Some(old) => summaries.summarize(old.id(), id, &changed),
        None => false,
    };
    Ok((id, bytes, summarized))
}

/// An entry a commit set in a tree it made.
struct Set {
    name: String,
    id: Oid,
    /// For a folder: whether the tree made for it is summarized.
    tree: Option<bool>,
}

/// The tree memo a commit summarizes the trees it makes into, as it makes them.
struct Summaries<'m> {
    memo: Option<&'m mut TreeMemo>,
    /// The summaries made, by the new tree's id, kept in the memo once the commit's trees
    /// are all made: the memo's table holds as many trees throughout, where one made as
    /// another left grew to twice its size from the holes the leaving ones left.
    made: Vec<(ObjectId, Arc<TreeSummary>)>,
    /// Trees made.
    trees: usize,
}

impl Summaries<'_> {
    /// Summarizes the tree `new`, made in place of `old` by setting the entries `changed`,
    /// from the summary of `old`, so the next walk of the commit does not read what
    /// tagsmith itself just wrote; true when it did. Called as each tree is made (its
    /// folders first): a list of every tree made, kept for after the commit, raised the
    /// run's peak of memory by more than the summaries themselves. A summary is keyed by
    /// the tree's id, which names its content, so one made for a commit that then fails is
    /// still right. Only where every entry the commit set is a marked blob or a folder
    /// summarized this way: a rewritten file keeps its marker (only the value moves), so
    /// the summary is the old one with the new ids. Any other edit (a write-back creating a
    /// file) leaves the tree to be read next time. The old summary is taken out and changed
    /// in place, not copied.
    fn summarize(&mut self, old: Oid, new: Oid, changed: &[Set]) -> bool {
        let Some(memo) = self.memo.as_deref_mut() else {
            return false;
        };
        let (Some(old), Some(new)) = (blob_key(old), blob_key(new)) else {
            return false;
        };
        if old == new {
            // Nothing changed below (the commit would be refused): the summary stands.
            return memo.contains(&old);
        }
        let Some(current) = memo.get(&old) else {
            return false;
        };
        let all_known = changed.iter().all(|set| match set.tree {
            Some(summarized) => {
                (summarized || blob_key(set.id).is_some_and(|key| memo.contains(&key)))
                    && current.trees.iter().any(|(n, _)| *n == set.name)
            }
            None => current.blobs.iter().any(|b| b.name == set.name),
        });
        drop(current);
        if !all_known {
            return false;
        }
        let Some(mut summary) = memo.take(&old) else {
            return false;
        };
        let made = Arc::make_mut(&mut summary);
        for set in changed {
            let Some(key) = blob_key(set.id) else {
                continue;
            };
            if set.tree.is_some() {
                if let Some(entry) = made.trees.iter_mut().find(|(n, _)| *n == set.name) {
                    entry.1 = key;
                }
            } else if let Some(marked) = made.blobs.iter_mut().find(|b| b.name == set.name) {
                marked.id = key;
            }
        }
        self.made.push((new, summary));
        true
    }

    /// Keeps the summaries made in the memo.
    fn keep(&mut self) {
        if let Some(memo) = self.memo.as_deref_mut() {
            for (id, summary) in self.made.drain(..) {
                memo.insert_shared(id, summary);
            }
        }
    }
}

/// An entry of a tree being made.
struct TreeItem {
    name: Vec<u8>,
    /// As stored, which in old trees may be a form Git no longer writes (`100664`).
    mode: i32,
    id: Oid,
}

/// A tree object's bytes: `<octal mode> <name>\0<20-byte id>` per entry.
fn tree_bytes(entries: &[TreeItem]) -> Vec<u8> {
    use std::io::Write as _;
    let mut bytes = Vec::with_capacity(entries.iter().map(|e| e.name.len() + 28).sum());
    for e in entries {
        // Writing to a Vec cannot fail.
        let _ = write!(bytes, "{:o} ", e.mode);
        bytes.extend_from_slice(&e.name);
        bytes.push(0);
        bytes.extend_from_slice(e.id.as_bytes());
    }
    bytes
}

/// Git's order of tree entries (`base_name_compare`): by name, a folder's as if it ended in
/// `/`.
fn git_tree_order(a: &TreeItem, b: &TreeItem) -> std::cmp::Ordering {
    fn key(e: &TreeItem) -> impl Iterator<Item = u8> + '_ {
        let folder = e.mode & 0o170000 == 0o040000;
        e.name.iter().copied().chain(folder.then_some(b'/'))
    }
    key(a).cmp(key(b))
}

/// The names libgit2's tree builder refuses: empty, `.`, `..`, `.git` in any case, and any
/// with a `/` or a NUL.
fn valid_entry_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.eq_ignore_ascii_case(".git")
        && !name.contains(['/', '\0'])
}

/// What the repository's configuration says about line endings when no attribute does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EolConfig {
    /// `core.autocrlf` false (the default): no attribute, no conversion.
    Off,
    /// `core.autocrlf` true or input: text is detected and stored with LF.
    Auto,
}

impl EolConfig {
    fn of(repo: &Repository) -> Self {
        let Ok(config) = repo.config() else {
            return Self::Off;
        };
        match config.get_string("core.autocrlf").ok().as_deref() {
            Some(v) if v.eq_ignore_ascii_case("input") => Self::Auto,
            Some(v) if matches!(v.to_ascii_lowercase().as_str(), "true" | "yes" | "on" | "1") => {
                Self::Auto
            }
            _ => Self::Off,
        }
    }
}

/// Whether attributes may come from outside the tree (info/attributes, the user's or the
/// system's file): then libgit2 is asked for every path. Most repositories have no attributes
/// file at all, and libgit2's lookup re-resolves HEAD and every `.gitattributes` on the path
/// for each query, milliseconds a file; a look at the trees on the changed paths and at the
/// few files outside them settles it once.
fn attributes_outside_tree(repo: &Repository) -> bool {
    let configured = repo
        .config()
        .ok()
        .and_then(|c| c.get_path("core.attributesFile").ok());
    let home = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .map(|d| d.join("git/attributes"));
    configured.is_some()
        || repo.path().join("info/attributes").exists()
        || home.is_some_and(|h| h.exists())
        || Path::new("/etc/gitattributes").exists()
}

/// The end-of-line conversion a path's attributes ask for when its bytes go into the object
/// store, decided as libgit2's `crlf` filter decides it (`convert_attrs` in its crlf.c).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attrs {
    /// `-text`, or nothing said: stored as they are.
    Binary,
    /// `text=auto`: converted if the bytes look like text and the old blob had no CR.
    Auto,
    /// `text` or an `eol`: CRLF stored as LF.
    Text,
    /// Nothing said: the configuration decides.
    Undefined,
}

impl Attrs {
    fn of(repo: &Repository, path: &Path) -> Result<Self, git2::Error> {
        let flags =
            AttrCheckFlags::INDEX_ONLY | AttrCheckFlags::from_bits_retain(ATTR_INCLUDE_HEAD);
        // Classified at once: libgit2 tells set from unset by the value's address.
        let get = |name: &str| -> Result<Value, git2::Error> {
            Ok(
                match AttrValue::from_bytes(repo.get_attr_bytes(path, name, flags)?) {
                    AttrValue::True => Value::Set,
                    AttrValue::False => Value::Unset,
                    AttrValue::Unspecified => Value::Unspecified,
                    AttrValue::String(s) => Value::Is(s.as_bytes().to_vec()),
                    AttrValue::Bytes(b) => Value::Is(b.to_vec()),
                },
            )
        };
        let action = |value: &Value| match value {
            Value::Set => Some(Self::Text),
            Value::Unset => Some(Self::Binary),
            Value::Is(v) if v == b"input" => Some(Self::Text),
            Value::Is(v) if v == b"auto" => Some(Self::Auto),
            _ => None,
        };
        let mut found = action(&get("text")?).or(action(&get("crlf")?));
        if found != Some(Self::Binary) {
            let eol_set = matches!(get("eol")?, Value::Is(v) if v == b"lf" || v == b"crlf");
            if eol_set && found != Some(Self::Auto) {
                found = Some(Self::Text);
            }
        }
        Ok(found.unwrap_or(Self::Undefined))
    }

    /// The bytes to store for `after`, the rewrite of a blob that held a CR or not.
    fn to_odb<'a>(self, config: EolConfig, before_cr: bool, after: &'a [u8]) -> Cow<'a, [u8]> {
        let action = match (self, config) {
            (Self::Undefined, EolConfig::Off) => Self::Binary,
            (Self::Undefined, EolConfig::Auto) => Self::Auto,
            (a, _) => a,
        };
        if action == Self::Binary || after.is_empty() {
            return Cow::Borrowed(after);
        }
        let stats = TextStats::of(after);
        if action == Self::Auto && (stats.is_binary() || before_cr) {
            return Cow::Borrowed(after);
        }
        if stats.crlf == 0 {
            return Cow::Borrowed(after);
        }
        Cow::Owned(crlf_to_lf(after))
    }
}

/// An attribute's state for a path.
enum Value {
    Set,
    Unset,
    Unspecified,
    Is(Vec<u8>),
}

/// libgit2's `git_str_gather_text_stats`.
#[derive(Debug, Default)]
struct TextStats {
    nul: usize,
    cr: usize,
    crlf: usize,
    printable: usize,
    nonprintable: usize,
}

impl TextStats {
    fn of(bytes: &[u8]) -> Self {
        let mut s = Self::default();
        // A trailing end-of-file character is not counted.
        let bytes = bytes.strip_suffix(b"\x1a").unwrap_or(bytes);
        for (i, &c) in bytes.iter().enumerate() {
            match c {
                c if c > 0x1f && c != 0x7f => s.printable += 1,
                0 => {
                    s.nul += 1;
                    s.nonprintable += 1;
                }
                b'\n' => {}
                b'\r' => {
                    s.cr += 1;
                    if bytes.get(i + 1) == Some(&b'\n') {
                        s.crlf += 1;
                    }
                }
                b'\t' | 0x0c | 0x0b | 0x08 | 0x1b => s.printable += 1,
                _ => s.nonprintable += 1,
            }
        }
        s
    }

    fn is_binary(&self) -> bool {
        self.cr != self.crlf || self.nul > 0 || (self.printable >> 7) < self.nonprintable
    }
}

/// Every CR that a LF follows is dropped; a lone CR stays.
fn crlf_to_lf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for (i, &c) in bytes.iter().enumerate() {
        if c == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unsigned_commit_is_the_bytes_libgit2_writes() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let tree = repo.treebuilder(None).unwrap().write().unwrap();
        let tree = repo.find_tree(tree).unwrap();
        // Offsets east and west of UTC, a half hour, and a name with spaces around it.
        for (offset, name) in [(0, "Bot"), (-330, " Tag Smith "), (570, "ü"), (-60, "a")] {
            let time = git2::Time::new(1_700_000_000, offset);
            let signature = Signature::new(name, "bot@example.com", &time).unwrap();
            let first = repo
                .commit(None, &signature, &signature, "first\n", &tree, &[])
                .unwrap();
            let parent = repo.find_commit(first).unwrap();
            let text = "Update 2 images\n\n- a: 1 -> 2 (x.yaml:3)\nno newline at the end";
            let expected = repo
                .commit_create_buffer(&signature, &signature, text, &tree, &[&parent])
                .unwrap();
            let made = commit_bytes(tree.id(), first, &signature, text.to_string()).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&made),
                String::from_utf8_lossy(&expected)
            );
        }
        let signature = Signature::now("Bot", "bot@example.com").unwrap();
        let nul = commit_bytes(tree.id(), tree.id(), &signature, "a\0b".into());
        assert!(matches!(nul, Err(GitError::Commit { .. })), "{nul:?}");
    }

    #[test]
    fn text_drops_cr_before_lf_only() {
        assert_eq!(
            &*Attrs::Text.to_odb(EolConfig::Off, false, b"a\r\nb\rc\r\n"),
            b"a\nb\rc\n"
        );
        assert_eq!(
            &*Attrs::Binary.to_odb(EolConfig::Off, false, b"a\r\n"),
            b"a\r\n"
        );
        assert_eq!(
            &*Attrs::Undefined.to_odb(EolConfig::Off, false, b"a\r\n"),
            b"a\r\n"
        );
    }

    #[test]
    fn auto_keeps_binary_and_what_had_cr_before() {
        assert_eq!(
            &*Attrs::Auto.to_odb(EolConfig::Off, false, b"a\r\n"),
            b"a\n"
        );
        assert_eq!(
            &*Attrs::Auto.to_odb(EolConfig::Off, true, b"a\r\n"),
            b"a\r\n"
        );
        assert_eq!(
            &*Attrs::Auto.to_odb(EolConfig::Off, false, b"a\0\r\n"),
            b"a\0\r\n"
        );
        assert_eq!(
            &*Attrs::Undefined.to_odb(EolConfig::Auto, false, b"a\r\n"),
            b"a\n"
        );
    }

    #[test]
    fn trees_hold_the_bytes_libgit2_writes_for_the_same_entries() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(tmp.path()).unwrap();
        let blob = repo.blob(b"x\n").unwrap();
        let mut sub = repo.treebuilder(None).unwrap();
        sub.insert("f", blob, 0o100644).unwrap();
        let sub = sub.write().unwrap();
        // An old tree holding a mode Git no longer writes, which stays as stored.
        let mut old = b"100664 a0\0".to_vec();
        old.extend_from_slice(blob.as_bytes());
        let old = repo.odb().unwrap().write(ObjectType::Tree, &old).unwrap();
        let old = repo.find_tree(old).unwrap();
        let mut items = vec![TreeItem {
            name: b"a0".to_vec(),
            mode: 0o100664,
            id: blob,
        }];
        // Folders sort as if their name ended in `/`: `a` (a folder) after `a.b` and `a-b`,
        // before `a0`.
        let entries = [
            ("a", sub, 0o040000),
            ("a.b", blob, 0o100644),
            ("a-b", blob, 0o100755),
            ("ab", sub, 0o040000),
            ("link", blob, 0o120000),
            ("B", blob, 0o100644),
        ];
        let mut builder = repo.treebuilder(Some(&old)).unwrap();
        for (name, id, mode) in entries {
            builder.insert(name, id, mode).unwrap();
            items.push(TreeItem {
                name: name.as_bytes().to_vec(),
                mode,
                id,
            });
        }
        let theirs = builder.write().unwrap();
        items.sort_by(git_tree_order);
        let ours = tree_bytes(&items);
        let odb = repo.odb().unwrap();
        assert_eq!(odb.read(theirs).unwrap().data(), &ours[..]);
    }

    #[test]
    fn edits_are_ordered_name_by_name_and_the_later_of_two_at_a_path_counts() {
        let file = |path: &str, after: &[u8]| ChangedFile {
            path: PathBuf::from(path),
            before: Before::Bytes(Vec::new()),
            after: after.to_vec(),
        };
        // Joined with `/`, `a-b/x` would sort before `a/x`; name by name, `a` comes first.
        let changed = [
            file("a-b/x", b"1"),
            file("a/x", b"2"),
            file("a/b/c", b"3"),
            file("a.b", b"4"),
            file("a/x", b"5"),
            file("b", b"6"),
        ];
        let keys = edit_keys(&changed);
        let got: Vec<(&str, &[u8])> = keys
            .iter()
            .map(|(k, f)| (k.as_str(), f.after.as_slice()))
            .collect();
        assert_eq!(
            got,
            [
                ("a\0b\0c", &b"3"[..]),
                ("a\0x", b"5"),
                ("a-b\0x", b"1"),
                ("a.b", b"4"),
                ("b", b"6"),
            ]
        );
        assert_eq!(split_key("a\0b\0c"), ("a", Some("b\0c")));
        assert_eq!(split_key("b"), ("b", None));
    }

    #[test]
    fn names_libgit2_refuses_in_a_tree_are_refused() {
        for bad in ["", ".", "..", ".git", ".GIT", "a/b", "a\0b"] {
            assert!(!valid_entry_name(bad), "{bad:?}");
        }
        for good in ["a", ".gitattributes", "...", "a b"] {
            assert!(valid_entry_name(good), "{good:?}");
        }
    }

    #[test]
    fn paths_that_leave_the_tree_are_refused() {
        assert_eq!(
            normalize(Path::new("a/./b/../c")),
            Some(PathBuf::from("a/c"))
        );
        assert_eq!(normalize(Path::new("../a")), None);
        assert_eq!(normalize(Path::new("/etc")), None);
    }
}
