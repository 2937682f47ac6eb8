//! What a Git tree holds that a rewrite needs, kept by tree id beside the blob ids of the
//! [`super::ScanCache`]. A tree's id names its whole content, folders below included, so a
//! folder whose id a run has met before is answered from here without reading it: a walk
//! reads only the trees whose id is new, the ones on the paths a commit changed.
//!
//! Plain blobs are not listed by name (most files of a monorepo hold no marker): a summary
//! counts them and keeps their ids only so that the blob cache still knows them when a file
//! next to them changes and their folder is read again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Lang;

/// A Git object id (SHA-1).
pub type ObjectId = [u8; 20];

/// A blob in a tree that a rewrite must look at: it holds the marker (or is wide text that
/// may, which is reported).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkedBlob {
    pub name: String,
    pub lang: Lang,
    pub id: ObjectId,
}

/// What one tree holds, with everything below it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeSummary {
    /// Files with a rewritable name here and in every folder below.
    pub files: u32,
    /// Whether a [`MarkedBlob`] is here or below; if not, nothing below needs a look.
    pub marked: bool,
    /// The marked blobs directly in this tree.
    pub blobs: Vec<MarkedBlob>,
    /// The plain blobs (rewritable name, no marker) directly in this tree.
    pub plain: Vec<(Lang, ObjectId)>,
    /// Every folder directly in this tree, by name. Their summaries are kept while this one
    /// is.
    pub trees: Vec<(String, ObjectId)>,
}

/// What a target's root path names in a tree (`a/b` in the commit's root tree).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Resolved {
    Missing,
    Tree(ObjectId),
    /// A regular or executable file.
    File(ObjectId),
    /// A link or a submodule.
    Other,
}

#[derive(Debug)]
struct Node {
    summary: Arc<TreeSummary>,
    used: bool,
}

#[derive(Debug)]
struct PathNode {
    resolved: Resolved,
    used: bool,
}

/// A path's key: the tree it is resolved in and its bytes.
type PathKey = (ObjectId, Vec<u8>);

/// Tree summaries by tree id, and root paths resolved in trees.
#[derive(Debug, Default)]
pub struct TreeMemo {
    trees: HashMap<ObjectId, Node>,
    paths: HashMap<PathKey, PathNode>,
    /// Trees read from the object store by walks (summarized or on a root path).
    reads: u64,
    /// Summaries or paths added or dropped since loading or the last save.
    changed: bool,
}

/// A summary as stored in a cache file.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct TreeRecord {
    id: ObjectId,
    summary: TreeSummary,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct PathRecord {
    tree: ObjectId,
    path: Vec<u8>,
    resolved: Resolved,
}

impl TreeMemo {
    /// The summary of the tree `id`, if known; it counts as used by this run.
    pub fn get(&mut self, id: &ObjectId) -> Option<Arc<TreeSummary>> {
        let node = self.trees.get_mut(id)?;
        node.used = true;
        Some(Arc::clone(&node.summary))
    }

    /// Keeps the summary of the tree `id`, just read.
    pub fn insert(&mut self, id: ObjectId, summary: TreeSummary) -> Arc<TreeSummary> {
        let summary = Arc::new(summary);
        self.insert_shared(id, Arc::clone(&summary));
        summary
    }

    /// Keeps the summary of the tree `id`, made from another's (see [`Self::take`]).
    pub fn insert_shared(&mut self, id: ObjectId, summary: Arc<TreeSummary>) {
        self.trees.insert(
            id,
            Node {
                summary,
                used: true,
            },
        );
        self.changed = true;
    }

    /// Takes the summary of the tree `id` out, for the tree replacing it: the two are not
    /// held together (a run over the new commit never asks for the old one; should the same
    /// tree still be elsewhere, it is read again there).
    pub fn take(&mut self, id: &ObjectId) -> Option<Arc<TreeSummary>> {
        let node = self.trees.remove(id)?;
        self.changed = true;
        Some(node.summary)
    }

    /// Whether the summary of the tree `id` is kept; it counts as used by this run.
    pub fn contains(&mut self, id: &ObjectId) -> bool {
        self.get(id).is_some()
    }

    /// What `path` names in the tree `tree`, if known.
    pub fn resolved(&mut self, tree: &ObjectId, path: &[u8]) -> Option<Resolved> {
        let node = self.paths.get_mut(&(*tree, path.to_vec()))?;
        node.used = true;
        Some(node.resolved)
    }

    pub fn remember_path(&mut self, tree: ObjectId, path: &[u8], resolved: Resolved) {
        self.paths.insert(
            (tree, path.to_vec()),
            PathNode {
                resolved,
                used: true,
            },
        );
        self.changed = true;
    }

    /// Counts `n` trees read from the object store.
    pub fn count_reads(&mut self, n: u64) {
        self.reads += n;
    }

    /// Trees read from the object store since this memo was made.
    pub fn reads(&self) -> u64 {
        self.reads
    }

    pub fn len(&self) -> usize {
        self.trees.len()
    }

    pub fn is_empty(&self) -> bool {
        self.trees.is_empty()
    }

    pub(super) fn is_changed(&self) -> bool {
        self.changed
    }

    pub(super) fn mark_saved(&mut self) {
        self.changed = false;
    }

    /// Drops what the last run did not reach: the summaries it used and every one below them
    /// (an unchanged folder is answered without its subfolders, which must stay for when it
    /// changes), and the paths it resolved. Returns the plain blobs of the summaries kept,
    /// which the blob cache must keep too. A run that used nothing (it failed first) keeps
    /// everything.
    pub(super) fn retain_used(&mut self) -> Vec<(Lang, ObjectId)> {
        let any_used = self.trees.values().any(|n| n.used) || self.paths.values().any(|n| n.used);
        let mut reached: HashSet<ObjectId> = HashSet::new();
        let mut queue: Vec<ObjectId> = if any_used {
            self.trees
                .iter()
                .filter(|(_, n)| n.used)
                .map(|(id, _)| *id)
                .collect()
        } else {
            self.trees.keys().copied().collect()
        };
        let mut plain = Vec::new();
        while let Some(id) = queue.pop() {
            if !reached.insert(id) {
                continue;
            }
            if let Some(node) = self.trees.get(&id) {
                plain.extend_from_slice(&node.summary.plain);
                queue.extend(node.summary.trees.iter().map(|(_, child)| *child));
            }
        }
        let before = (self.trees.len(), self.paths.len());
        self.trees.retain(|id, node| {
            node.used = false;
            reached.contains(id)
        });
        self.paths
            .retain(|_, node| std::mem::take(&mut node.used) || !any_used);
        if (self.trees.len(), self.paths.len()) != before {
            self.changed = true;
        }
        plain
    }

    /// The records of a cache file, sorted so that equal memos give equal files.
    pub(super) fn records(&self) -> (Vec<TreeRecord>, Vec<PathRecord>) {
        let mut trees: Vec<TreeRecord> = self
            .trees
            .iter()
            .map(|(id, node)| TreeRecord {
                id: *id,
                summary: TreeSummary::clone(&node.summary),
            })
            .collect();
        trees.sort_unstable_by_key(|r| r.id);
        let mut paths: Vec<PathRecord> = self
            .paths
            .iter()
            .map(|((tree, path), node)| PathRecord {
                tree: *tree,
                path: path.clone(),
                resolved: node.resolved,
            })
            .collect();
        paths.sort_unstable_by(|a, b| (a.tree, &a.path).cmp(&(b.tree, &b.path)));
        (trees, paths)
    }

    /// A memo of loaded records; nothing in it counts as used yet.
    pub(super) fn from_records(trees: Vec<TreeRecord>, paths: Vec<PathRecord>) -> Self {
        Self {
            trees: trees
                .into_iter()
                .map(|r| {
                    let node = Node {
                        summary: Arc::new(r.summary),
                        used: false,
                    };
                    (r.id, node)
                })
                .collect(),
            paths: paths
                .into_iter()
                .map(|r| {
                    let node = PathNode {
                        resolved: r.resolved,
                        used: false,
                    };
                    ((r.tree, r.path), node)
                })
                .collect(),
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(trees: &[(&str, u8)], plain: &[u8]) -> TreeSummary {
        TreeSummary {
            files: plain.len() as u32,
            plain: plain.iter().map(|&b| (Lang::Yaml, [b; 20])).collect(),
            trees: trees
                .iter()
                .map(|&(n, b)| (n.to_string(), [b; 20]))
                .collect(),
            ..TreeSummary::default()
        }
    }

    #[test]
    fn retain_keeps_what_is_below_a_used_summary() {
        let mut memo = TreeMemo::default();
        memo.insert([3; 20], folder(&[], &[30]));
        memo.insert([2; 20], folder(&[("c", 3)], &[20]));
        memo.insert([1; 20], folder(&[("b", 2)], &[]));
        memo.insert([9; 20], folder(&[], &[90]));
        memo.remember_path([1; 20], b"b", Resolved::Tree([2; 20]));
        memo.retain_used();
        assert_eq!(memo.len(), 4);
        // The next run meets only the root, unchanged: what is below it stays, 9 goes.
        memo.get(&[1; 20]);
        let mut plain = memo.retain_used();
        plain.sort();
        assert_eq!(plain, [(Lang::Yaml, [20; 20]), (Lang::Yaml, [30; 20])]);
        assert_eq!(memo.len(), 3);
        // A run that used nothing keeps everything.
        memo.retain_used();
        assert_eq!(memo.len(), 3);
        assert!(memo.get(&[3; 20]).is_some());
        assert!(memo.get(&[9; 20]).is_none());
        assert_eq!(memo.resolved(&[1; 20], b"b"), None, "not used, dropped");
    }

    #[test]
    fn records_round_trip_unused() {
        let mut memo = TreeMemo::default();
        memo.insert([1; 20], folder(&[], &[7]));
        memo.remember_path([1; 20], b"x", Resolved::Missing);
        let (trees, paths) = memo.records();
        let mut loaded = TreeMemo::from_records(trees, paths);
        assert!(!loaded.is_changed());
        assert_eq!(loaded.resolved(&[1; 20], b"x"), Some(Resolved::Missing));
        assert_eq!(loaded.get(&[1; 20]).as_deref(), Some(&folder(&[], &[7])));
    }
}
