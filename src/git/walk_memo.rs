//! The walk of a commit's tree under a target's paths, proportional to what changed: a
//! folder whose tree id the [`TreeMemo`] knows is answered from its summary and not read,
//! so after a commit only the trees on the paths it changed are read, and a run over the
//! same commit reads none. A folder whose summary says nothing below holds the marker is
//! not entered at all. Only the marked blobs come back by path; the others are counted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use git2::{ObjectType, Oid, Repository, Tree};

use super::objects::{is_file, normalize};
use crate::rewrite::tree_memo::{MarkedBlob, ObjectId, Resolved, TreeMemo, TreeSummary};
use crate::rewrite::walk::{Core, TreeReport};
use crate::rewrite::{Lang, Problem, ProblemKind, ScanCache, wide_encoding_with_marker};

/// A blob to rewrite, found under the target's paths.
pub(super) struct Candidate {
    pub path: PathBuf,
    pub lang: Lang,
    pub id: Oid,
    /// Its bytes when the walk read them already (a blob the cache did not know).
    pub bytes: Option<Vec<u8>>,
}

/// What a walk found.
pub(super) struct Walked {
    /// The named files and every marked blob below the folders, sorted by path.
    pub candidates: Vec<Candidate>,
    /// Files with a rewritable name, plain ones included.
    pub files_seen: usize,
    /// Blobs the walk read to tell marked from plain.
    pub blobs_read: usize,
}

/// The blobs under `paths` (relative to the root of the tree `root`; empty means all of
/// it) with a rewritable name that need a look; problems with the paths go to `report`.
/// Symbolic links are not followed (as in a directory) and submodules are not entered.
/// Summaries and resolved paths are taken from and added to `memo`; blobs are known from
/// `cache` (without one, every blob of a tree read is read).
pub(super) fn candidates(
    repo: &Repository,
    root: Oid,
    paths: &[PathBuf],
    report: &mut TreeReport,
    memo: &mut TreeMemo,
    cache: Option<&ScanCache>,
    core: &Core<'_>,
) -> Result<Walked, git2::Error> {
    let mut walk = Walk {
        repo,
        memo,
        cache,
        core,
        root_tree: None,
        read: HashMap::new(),
        blobs_read: 0,
    };
    let roots: Vec<PathBuf> = if paths.is_empty() {
        vec![PathBuf::new()]
    } else {
        paths.to_vec()
    };
    let mut dirs: Vec<(PathBuf, Oid)> = Vec::new();
    let mut files: Vec<Candidate> = Vec::new();
    for root_path in roots {
        let problem = |reason: String| Problem {
            path: root_path.clone(),
            line: 0,
            kind: ProblemKind::Path { reason },
        };
        let Some(rel) = normalize(&root_path) else {
            report
                .problems
                .push(problem("is outside the tree".to_string()));
            continue;
        };
        if rel.as_os_str().is_empty() {
            dirs.push((rel, root));
            continue;
        }
        match walk.resolve(root, &rel)? {
            Resolved::Missing => {
                // Worded as the walk of a directory words it.
                report.problems.push(problem(format!(
                    "cannot open: {}",
                    std::io::Error::from_raw_os_error(2)
                )));
            }
            Resolved::Tree(id) => dirs.push((rel, Oid::from_bytes(&id)?)),
            Resolved::File(id) => {
                if let Some(lang) = Lang::from_path(&rel) {
                    files.push(Candidate {
                        path: rel,
                        lang,
                        id: Oid::from_bytes(&id)?,
                        bytes: None,
                    });
                }
            }
            Resolved::Other => {
                tracing::debug!(path = %rel.display(), "not a file or folder; skipped");
            }
        }
    }
    // Overlapping roots (`a` and `a/b`) would visit files twice.
    dirs.sort_by(|a, b| a.0.cmp(&b.0));
    dirs.dedup_by(|a, b| a.0 == b.0);
    let mut kept: Vec<(PathBuf, Oid)> = Vec::new();
    for dir in dirs {
        if !kept.iter().any(|k| dir.0.starts_with(&k.0)) {
            kept.push(dir);
        }
    }
    files.retain(|f| !kept.iter().any(|k| f.path.starts_with(&k.0)));
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.dedup_by(|a, b| a.path == b.path);
    let mut files_seen = files.len();
    let named = files.len();
    for (dir, id) in &kept {
        files_seen += walk.visit(*id, dir, &mut files)?;
    }
    debug_assert!(
        files[named..].windows(2).all(|w| w[0].path < w[1].path),
        "walked out of the order of paths"
    );
    // Walked in the order of paths already: this merges the named files in.
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Walked {
        candidates: files,
        files_seen,
        blobs_read: walk.blobs_read,
    })
}

struct Walk<'a, 'r> {
    repo: &'r Repository,
    memo: &'a mut TreeMemo,
    cache: Option<&'a ScanCache>,
    core: &'a Core<'a>,
    /// The commit's root tree, once a root path needed it.
    root_tree: Option<Tree<'r>>,
    /// The bytes of the marked blobs read while summarizing, handed to their candidates.
    read: HashMap<Oid, Vec<u8>>,
    blobs_read: usize,
}

impl<'r> Walk<'_, 'r> {
    /// What `rel` (not empty) names in the tree `root`.
    fn resolve(&mut self, root: Oid, rel: &Path) -> Result<Resolved, git2::Error> {
        let key = rel.as_os_str().as_encoded_bytes();
        let root_key = object_id(root);
        if let Some(found) = self.memo.resolved(&root_key, key) {
            return Ok(found);
        }
        let tree = match &self.root_tree {
            Some(tree) => tree,
            None => {
                self.memo.count_reads(1);
                self.root_tree.insert(self.repo.find_tree(root)?)
            }
        };
        // Every folder above the last name is read on the way.
        self.memo
            .count_reads(rel.components().count().saturating_sub(1) as u64);
        let found = match tree.get_path(rel) {
            // Not remembered: a store that failed to read may not fail next time.
            Err(e) if e.code() != git2::ErrorCode::NotFound => return Ok(Resolved::Missing),
            Err(_) => Resolved::Missing,
            Ok(entry) => match entry.kind() {
                Some(ObjectType::Tree) => Resolved::Tree(object_id(entry.id())),
                Some(ObjectType::Blob) if is_file(entry.filemode()) => {
                    Resolved::File(object_id(entry.id()))
                }
                _ => Resolved::Other,
            },
        };
        self.memo.remember_path(root_key, key, found);
        Ok(found)
    }

    /// Adds the marked blobs under the tree `id` (at `dir`) to `out`; returns how many files
    /// with a rewritable name it holds.
    fn visit(
        &mut self,
        id: Oid,
        dir: &Path,
        out: &mut Vec<Candidate>,
    ) -> Result<usize, git2::Error> {
        let summary = self.summary(id)?;
        if summary.marked {
            self.marked_below(&summary, dir, out)?;
        }
        Ok(summary.files as usize)
    }

    fn marked_below(
        &mut self,
        summary: &TreeSummary,
        dir: &Path,
        out: &mut Vec<Candidate>,
    ) -> Result<(), git2::Error> {
        // Files and folders by name, so that `out` comes in the order of paths and its sort
        // (of 15,000 paths at 50,000 files) has nothing to do.
        let mut blobs = summary.blobs.iter().peekable();
        let mut trees = summary.trees.iter().peekable();
        loop {
            let blob_first = match (blobs.peek(), trees.peek()) {
                (Some(blob), Some((name, _))) => blob.name < *name,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => return Ok(()),
            };
            if blob_first {
                let Some(blob) = blobs.next() else { continue };
                let id = Oid::from_bytes(&blob.id)?;
                out.push(Candidate {
                    path: dir.join(&blob.name),
                    lang: blob.lang,
                    id,
                    // A second file with the same bytes is answered by the cache (or read).
                    bytes: self.read.remove(&id),
                });
            } else if let Some((name, child)) = trees.next() {
                let sub = self.summary(Oid::from_bytes(child)?)?;
                if sub.marked {
                    self.marked_below(&sub, &dir.join(name), out)?;
                }
            }
        }
    }

    /// The summary of the tree `id`, read (with the new folders below it) when the memo
    /// does not know it.
    fn summary(&mut self, id: Oid) -> Result<Arc<TreeSummary>, git2::Error> {
        let key = object_id(id);
        if let Some(known) = self.memo.get(&key) {
            return Ok(known);
        }
        let tree = self.repo.find_tree(id)?;
        self.memo.count_reads(1);
        let mut summary = TreeSummary::default();
        for entry in tree.iter() {
            match entry.kind() {
                Some(ObjectType::Tree) => {
                    // libgit2's own walk stops with an error inside a folder so named.
                    let Ok(name) = entry.name() else {
                        return Err(git2::Error::from_str(&format!(
                            "folder name is not UTF-8: {}",
                            String::from_utf8_lossy(entry.name_bytes())
                        )));
                    };
                    let sub = self.summary(entry.id())?;
                    summary.files += sub.files;
                    summary.marked |= sub.marked;
                    summary
                        .trees
                        .push((name.to_string(), object_id(entry.id())));
                }
                Some(ObjectType::Blob) if is_file(entry.filemode()) => {
                    let Some((name, lang)) = entry
                        .name()
                        .ok()
                        .and_then(|n| Some((n, Lang::from_path(Path::new(n))?)))
                    else {
                        continue;
                    };
                    summary.files += 1;
                    let blob_id = object_id(entry.id());
                    if self.needs_a_look(lang, entry.id())? {
                        summary.marked = true;
                        summary.blobs.push(MarkedBlob {
                            name: name.to_string(),
                            lang,
                            id: blob_id,
                        });
                    } else {
                        summary.plain.push((lang, blob_id));
                    }
                }
                Some(ObjectType::Blob) => {
                    tracing::debug!(name = %String::from_utf8_lossy(entry.name_bytes()), "symlink not followed");
                }
                _ => {}
            }
        }
        // Git orders a folder as its name with a `/`; paths order by name alone.
        summary.blobs.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        summary.trees.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        // Kept for good (25,000 of them at 50,000 files): without the room the pushes left.
        summary.blobs.shrink_to_fit();
        summary.plain.shrink_to_fit();
        summary.trees.shrink_to_fit();
        Ok(self.memo.insert(key, summary))
    }

    /// Whether the blob holds the marker or must be reported (wide text), as the cache
    /// knows it or its bytes say; bytes read are remembered there as the rewrite would.
    fn needs_a_look(&mut self, lang: Lang, id: Oid) -> Result<bool, git2::Error> {
        let key = object_id(id);
        if let Some(marked) = self.cache.and_then(|c| c.blob_marked(lang, key)) {
            return Ok(marked);
        }
        if self.read.contains_key(&id) {
            return Ok(true);
        }
        let blob = self.repo.find_blob(id)?;
        self.blobs_read += 1;
        let bytes = blob.content();
        let marked = self.core.has_marker(bytes);
        let wide = wide_encoding_with_marker(bytes).is_some();
        if let Some(cache) = self.cache {
            if marked {
                cache.remember_blob(lang, key, Some(bytes));
            } else if !wide {
                cache.remember_blob(lang, key, None);
            }
        }
        if marked || wide {
            self.read.insert(id, bytes.to_vec());
        }
        Ok(marked || wide)
    }
}

fn object_id(id: Oid) -> ObjectId {
    let mut out = [0; 20];
    let bytes = id.as_bytes();
    let n = bytes.len().min(20);
    out[..n].copy_from_slice(&bytes[..n]);
    out
}
