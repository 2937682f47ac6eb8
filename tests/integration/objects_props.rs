//! The checkout-free pipeline against the file pipeline it replaced: on random trees (CRLF,
//! BOM, `.gitattributes` with `text`/`eol`, symlinks, nested folders) a checkout, the rewrite
//! of its files and `git add` (libgit2's filters) store exactly the blobs that rewriting the
//! objects stores, and both report the same changes and problems.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use tagsmith::config::{Author, GitAuth, GitSource};
use tagsmith::git::Workspace;
use tagsmith::model::{ImageRef, PolicyId};
use tagsmith::rewrite::ScanCache;
use tagsmith::rewrite::walk::{Core, Mode, TreeReport, rewrite_tree};

use crate::gitserver::{bare_repo, commit_elsewhere, show};

const MARKED: &str = "image: reg.example/app:1.0 # {\"$imagepolicy\": \"ns:app\"}";
const TAG_ONLY: &str = "  tag: \"1.0\" # {\"$imagepolicy\": \"ns:app:tag\"}";

#[derive(Debug, Clone)]
enum Entry {
    File {
        lines: Vec<String>,
        eol: Eol,
        bom: bool,
    },
    Link(String),
}

#[derive(Debug, Clone, Copy)]
enum Eol {
    Lf,
    Crlf,
    Mixed,
}

fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(MARKED.to_string()),
        Just(TAG_ONLY.to_string()),
        Just("kind: Deployment".to_string()),
        Just("# a comment".to_string()),
        Just(String::new()),
        Just("x: y\r".to_string()),
        "[a-z]{1,6}: [a-z0-9]{0,6}",
    ]
}

fn entry() -> impl Strategy<Value = Entry> {
    prop_oneof![
        6 => (
            prop::collection::vec(line(), 0..6),
            prop_oneof![Just(Eol::Lf), Just(Eol::Crlf), Just(Eol::Mixed)],
            any::<bool>()
        )
            .prop_map(|(lines, eol, bom)| Entry::File { lines, eol, bom }),
        1 => prop::sample::select(vec!["a.yaml", "../a.yaml", "/etc/passwd"])
            .prop_map(|t| Entry::Link(t.to_string())),
    ]
}

fn path() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["", "sub/", "sub/deep/", "other/"]),
        prop::sample::select(vec!["a", "b", "c"]),
        prop::sample::select(vec![".yaml", ".yml", ".cue.txt", ""]),
    )
        .prop_map(|(dir, name, ext)| {
            let name = if ext.is_empty() {
                "Kustomization"
            } else {
                name
            };
            format!("{dir}{name}{ext}")
        })
}

fn attributes() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop::sample::select(vec![
            "* text",
            "* text=auto",
            "*.yaml text eol=crlf",
            "*.yaml eol=lf",
            "*.yml -text",
            "sub/** text eol=crlf",
            "* -text",
            "*.yml crlf",
        ])
        .prop_map(str::to_string),
        0..3,
    )
}

fn bytes_of(entry: &Entry) -> Vec<u8> {
    match entry {
        Entry::Link(target) => target.as_bytes().to_vec(),
        Entry::File { lines, eol, bom } => {
            let mut out = Vec::new();
            if *bom {
                out.extend_from_slice("\u{feff}".as_bytes());
            }
            for (i, l) in lines.iter().enumerate() {
                out.extend_from_slice(l.as_bytes());
                let crlf = match eol {
                    Eol::Lf => false,
                    Eol::Crlf => true,
                    Eol::Mixed => i % 2 == 0,
                };
                out.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
            }
            out
        }
    }
}

/// A bare remote whose blobs hold exactly these bytes (no filter between), one commit on main.
fn remote(
    dir: &Path,
    files: &BTreeMap<String, Entry>,
    root_attrs: &[String],
    sub_attrs: &[String],
) -> PathBuf {
    let bare = dir.join("remote.git");
    let repo = git2::Repository::init_bare(&bare).unwrap();
    let mut index = git2::Index::new().unwrap();
    let mut add = |path: &str, bytes: &[u8], mode: u32| {
        let id = repo.blob(bytes).unwrap();
        let entry = git2::IndexEntry {
            ctime: git2::IndexTime::new(0, 0),
            mtime: git2::IndexTime::new(0, 0),
            dev: 0,
            ino: 0,
            mode,
            uid: 0,
            gid: 0,
            file_size: bytes.len() as u32,
            id,
            flags: 0,
            flags_extended: 0,
            path: path.as_bytes().to_vec(),
        };
        index.add(&entry).unwrap();
    };
    for (path, entry) in files {
        let mode = match entry {
            Entry::Link(_) => 0o120000,
            Entry::File { .. } => 0o100644,
        };
        add(path, &bytes_of(entry), mode);
    }
    if !root_attrs.is_empty() {
        add(
            ".gitattributes",
            (root_attrs.join("\n") + "\n").as_bytes(),
            0o100644,
        );
    }
    if !sub_attrs.is_empty() {
        add(
            "sub/.gitattributes",
            (sub_attrs.join("\n") + "\n").as_bytes(),
            0o100644,
        );
    }
    let tree_id = index.write_tree_to(&repo).unwrap();
    let tree = repo.find_tree(tree_id).unwrap();
    let sig = git2::Signature::now("someone", "someone@example.invalid").unwrap();
    repo.commit(Some("refs/heads/main"), &sig, &sig, "init", &tree, &[])
        .unwrap();
    bare
}

fn source(bare: &Path) -> GitSource {
    GitSource {
        url: format!("file://{}", bare.display()),
        branch: "main".into(),
        auth: GitAuth::default(),
        checkout: None,
        push_options: Vec::new(),
    }
}

fn author() -> Author {
    Author {
        name: "tagsmith".into(),
        email: "tagsmith@example.invalid".into(),
    }
}

fn selections() -> BTreeMap<PolicyId, ImageRef> {
    BTreeMap::from([(
        "ns:app".parse().unwrap(),
        "reg.example/app:2.0".parse().unwrap(),
    )])
}

/// What a pipeline stored (every committed path with its mode and bytes, `None` when nothing
/// changed) and reported.
type Stored = Vec<(String, i32, String)>;
type Result = (Option<Stored>, Vec<String>, Vec<String>);

fn summary(tree: &TreeReport) -> (Vec<String>, Vec<String>) {
    (
        tree.changes
            .iter()
            .map(|c| format!("{}:{} {} -> {}", c.file.display(), c.line, c.old, c.new))
            .collect(),
        tree.problems.iter().map(ToString::to_string).collect(),
    )
}

fn committed_tree(repo: &git2::Repository, commit: git2::Oid) -> Stored {
    let tree = repo.find_commit(commit).unwrap().tree().unwrap();
    let mut out = Vec::new();
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, e| {
        if let Ok(blob) = repo.find_blob(e.id()) {
            let bytes = format!("{:?}", String::from_utf8_lossy(blob.content()));
            out.push((format!("{dir}{}", e.name().unwrap()), e.filemode(), bytes));
        }
        git2::TreeWalkResult::Ok
    })
    .unwrap();
    out
}

/// The file pipeline the object one replaced, as libgit2 alone does it: a checkout (its
/// filters), the rewrite of its files and `git add` (its filters again) and a commit.
fn through_files(dir: &Path, bare: &Path, paths: &[PathBuf]) -> Result {
    let checkout = dir.join("files");
    let repo = git2::build::RepoBuilder::new()
        .branch("main")
        .clone(&source(bare).url, &checkout)
        .unwrap();
    let tree = rewrite_tree(&checkout, paths, &selections(), Mode::Write, None).unwrap();
    let (changes, problems) = summary(&tree);
    if tree.changed.is_empty() {
        return (None, changes, problems);
    }
    let mut index = repo.index().unwrap();
    for file in &tree.changed {
        index.add_path(&file.path).unwrap();
    }
    let tree_id = index.write_tree().unwrap();
    let parent = repo.head().unwrap().peel_to_commit().unwrap();
    let sig = git2::Signature::now(&author().name, &author().email).unwrap();
    let new_tree = repo.find_tree(tree_id).unwrap();
    let commit = repo
        .commit(None, &sig, &sig, "update", &new_tree, &[&parent])
        .unwrap();
    (Some(committed_tree(&repo, commit)), changes, problems)
}

fn through_objects(dir: &Path, bare: &Path, paths: &[PathBuf]) -> Result {
    let ws = Workspace::open_objects(&dir.join("objects"), &source(bare)).unwrap();
    ws.sync("main", "main").unwrap();
    let selections = selections();
    let allow = |_: &Path, _: &PolicyId| true;
    let core = Core::new(&selections, &allow, None);
    let tree = ws.rewrite_head(paths, &core, None).unwrap();
    let (changes, problems) = summary(&tree);
    if tree.changed.is_empty() {
        return (None, changes, problems);
    }
    let commit = ws
        .commit_changes(&tree.changed, &author(), "update", None)
        .unwrap();
    let repo = git2::Repository::open(ws.root().join(".git")).unwrap();
    (Some(committed_tree(&repo, commit.id)), changes, problems)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn objects_and_files_store_the_same_bytes(
        files in prop::collection::btree_map(path(), entry(), 1..8),
        root_attrs in attributes(),
        sub_attrs in attributes(),
        scoped in any::<bool>(),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let bare = remote(tmp.path(), &files, &root_attrs, &sub_attrs);
        let paths = if scoped { vec![PathBuf::from("sub")] } else { Vec::new() };
        let by_files = through_files(tmp.path(), &bare, &paths);
        let by_objects = through_objects(tmp.path(), &bare, &paths);
        prop_assert_eq!(by_objects, by_files);
    }
}

/// Nothing is checked out: the workspace holds its repository and no file of the tree.
#[test]
fn the_object_pipeline_writes_no_file() {
    let tmp = tempfile::tempdir().unwrap();
    let files = BTreeMap::from([(
        "sub/a.yaml".to_string(),
        Entry::File {
            lines: vec![MARKED.to_string()],
            eol: Eol::Lf,
            bom: false,
        },
    )]);
    let bare = remote(tmp.path(), &files, &[], &[]);
    let (tree, changes, _) = through_objects(tmp.path(), &bare, &[]);
    assert!(tree.is_some());
    assert_eq!(
        changes,
        ["sub/a.yaml:1 reg.example/app:1.0 -> reg.example/app:2.0"]
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path().join("objects"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, [".git"]);
}

/// The scan cache knows blobs by id, the ones a run committed included: after a small
/// upstream change a run reads only the blob that changed.
#[test]
fn a_run_after_a_small_upstream_change_reads_only_the_changed_blob() {
    let tmp = tempfile::tempdir().unwrap();
    let marked = format!("{MARKED}\n");
    let bare = bare_repo(
        tmp.path(),
        "m",
        &[
            ("a.yaml", &marked),
            ("b.yaml", "x: 1\n"),
            ("c/d.yaml", &marked),
        ],
    );
    let ws = Workspace::open_objects(&tmp.path().join("ws"), &source(&bare)).unwrap();
    let cache = ScanCache::new();
    let selections = selections();
    let allow = |_: &Path, _: &PolicyId| true;
    let core = Core::new(&selections, &allow, Some(&cache));

    ws.sync("main", "main").unwrap();
    let first = ws.rewrite_head(&[], &core, Some(&cache)).unwrap();
    assert_eq!(
        (first.files_seen, first.blobs_read, first.changed.len()),
        (3, 3, 2)
    );
    let commit = ws
        .commit_changes(&first.changed, &author(), "update", Some(&cache))
        .unwrap();
    ws.push(commit.id, "main").unwrap();
    assert_eq!(
        show(&bare, "main", "c/d.yaml"),
        marked.replace("app:1.0", "app:2.0")
    );

    commit_elsewhere(&bare, "main", "b.yaml", "x: 2\n");
    ws.sync("main", "main").unwrap();
    let second = ws.rewrite_head(&[], &core, Some(&cache)).unwrap();
    assert_eq!(
        (second.files_seen, second.blobs_read, second.changed.len()),
        (3, 1, 0)
    );
    assert_eq!(
        second.policies.len(),
        1,
        "the known blobs' markers still count"
    );
}

/// The trees a commit of tagsmith's writes are summarized as it writes them: the walk of that
/// commit reads none (nor any blob), over the whole tree and under a target's paths, and finds
/// what a walk without the cache finds.
#[test]
fn the_walk_of_tagsmiths_own_commit_reads_no_tree_it_wrote() {
    let marked = format!("{MARKED}\n");
    let files = [
        ("a.yaml", marked.as_str()),
        ("plain.yaml", "x: 1\n"),
        ("svc/one/base/deploy.yaml", marked.as_str()),
        ("svc/one/base/plain.yaml", "x: 2\n"),
        ("svc/two/base/deploy.yaml", marked.as_str()),
        ("docs/notes.yaml", "x: 4\n"),
    ];
    for (paths, reads_after) in [(Vec::new(), 0), (vec![PathBuf::from("svc")], 1)] {
        let tmp = tempfile::tempdir().unwrap();
        let bare = bare_repo(tmp.path(), "m", &files);
        let ws = Workspace::open_objects(&tmp.path().join("ws"), &source(&bare)).unwrap();
        let cache = ScanCache::new();
        let selections = selections();
        let allow = |_: &Path, _: &PolicyId| true;
        let core = Core::new(&selections, &allow, Some(&cache));
        ws.sync("main", "main").unwrap();
        let first = ws.rewrite_head(&paths, &core, Some(&cache)).unwrap();
        assert!(!first.changed.is_empty(), "{paths:?}");
        ws.commit_changes(&first.changed, &author(), "update", Some(&cache))
            .unwrap();
        cache.retain_used();
        // The summaries of the trees the commit replaced are not kept besides: the cache
        // holds what a walk of the new commit alone keeps.
        let own = ScanCache::new();
        let own_core = Core::new(&selections, &allow, Some(&own));
        ws.rewrite_head(&paths, &own_core, Some(&own)).unwrap();
        assert_eq!(cache.tree_memo().len(), own.tree_memo().len(), "{paths:?}");
        let before = trees_read(&cache);
        let again = ws.rewrite_head(&paths, &core, Some(&cache)).unwrap();
        // Under `svc` only the new root tree is read, to find `svc` in it.
        assert_eq!(trees_read(&cache) - before, reads_after, "{paths:?}");
        assert_eq!(again.blobs_read, 0, "{paths:?}");
        assert!(again.changed.is_empty(), "{paths:?}: {again:?}");
        let fresh = ws
            .rewrite_head(&paths, &Core::new(&selections, &allow, None), None)
            .unwrap();
        assert_eq!(outcome(again), outcome(fresh), "{paths:?}");
    }
}

/// Loose objects under `git_dir` (files in the two-hex-digit folders).
fn loose_objects(git_dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(git_dir.join("objects")).unwrap() {
        let dir = dir.unwrap();
        let name = dir.file_name().into_string().unwrap();
        if name.len() == 2 && name.chars().all(|c| c.is_ascii_hexdigit()) {
            for file in std::fs::read_dir(dir.path()).unwrap() {
                out.push(format!("{name}/{}", file.unwrap().file_name().display()));
            }
        }
    }
    out
}

/// A commit's new blobs, trees and commit go into one pack, not a loose object each; the
/// repository stays sound for git itself, the same handle reads them back for a second commit
/// (a push retried after the remote moved), and both pushes deliver the bytes.
#[test]
fn a_commit_is_stored_as_one_pack_and_the_workspace_keeps_working() {
    let tmp = tempfile::tempdir().unwrap();
    let marked = format!("{MARKED}\n");
    let tagged = format!("image:\n{TAG_ONLY}\n");
    let bare = bare_repo(
        tmp.path(),
        "m",
        &[
            ("a.yaml", &marked),
            ("plain.yaml", "x: 1\n"),
            ("svc/one/base/deploy.yaml", &marked),
            ("svc/one/helm/values.yaml", &tagged),
            ("svc/two/base/deploy.yaml", &marked),
        ],
    );
    let ws = Workspace::open_objects(&tmp.path().join("ws"), &source(&bare)).unwrap();
    let git_dir = tmp.path().join("ws/.git");
    let selections = selections();
    let allow = |_: &Path, _: &PolicyId| true;
    let core = Core::new(&selections, &allow, None);

    ws.sync("main", "main").unwrap();
    let loose_before = loose_objects(&git_dir);
    let tree = ws.rewrite_head(&[], &core, None).unwrap();
    assert_eq!(tree.changed.len(), 4);
    let commit = ws
        .commit_changes(&tree.changed, &author(), "update\n", None)
        .unwrap();
    assert_eq!(
        loose_objects(&git_dir),
        loose_before,
        "no loose object written"
    );
    crate::gitserver::git(&git_dir, &["fsck", "--strict", "--no-dangling"]);
    ws.push(commit.id, "main").unwrap();
    assert_eq!(
        show(&bare, "main", "svc/one/helm/values.yaml"),
        tagged.replace("\"1.0\"", "\"2.0\"")
    );
    assert_eq!(show(&bare, "main", "plain.yaml"), "x: 1\n");

    // The remote moves; the same workspace handle syncs, rewrites and commits again.
    commit_elsewhere(&bare, "main", "svc/two/base/deploy.yaml", &marked);
    ws.sync("main", "main").unwrap();
    let again = ws.rewrite_head(&[], &core, None).unwrap();
    assert_eq!(again.changed.len(), 1);
    let second = ws
        .commit_changes(&again.changed, &author(), "update\n", None)
        .unwrap();
    assert_eq!(
        second.parent.to_string(),
        crate::gitserver::rev(&bare, "main")
    );
    ws.push(second.id, "main").unwrap();
    assert_eq!(
        show(&bare, "main", "svc/two/base/deploy.yaml"),
        marked.replace("app:1.0", "app:2.0")
    );
    crate::gitserver::git(&bare, &["fsck", "--strict", "--no-dangling"]);
}

// The tree walk remembers each tree it read by id (beside the blob ids in the scan cache):
// a folder whose id did not change is not read again.

fn trees_read(cache: &ScanCache) -> u64 {
    cache.stats().trees_read
}

/// What the markers already read: nothing changes, so no blob is read to be rewritten and
/// `blobs_read` counts what the walk read.
fn current() -> BTreeMap<PolicyId, ImageRef> {
    BTreeMap::from([(
        "ns:app".parse().unwrap(),
        "reg.example/app:1.0".parse().unwrap(),
    )])
}

/// `report` without what differs between a warm and a cold run (how many blobs were read).
fn outcome(mut report: TreeReport) -> TreeReport {
    report.blobs_read = 0;
    report
}

#[test]
fn a_second_run_over_the_same_commit_reads_no_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let marked = format!("{MARKED}\n");
    let bare = bare_repo(
        tmp.path(),
        "m",
        &[
            ("a.yaml", &marked),
            ("plain.yaml", "x: 1\n"),
            ("svc/one/base/deploy.yaml", &marked),
            ("svc/one/base/plain.yaml", "x: 2\n"),
            ("svc/two/base/deploy.yaml", "x: 3\n"),
            ("docs/deep/er/notes.yaml", "x: 4\n"),
        ],
    );
    let ws = Workspace::open_objects(&tmp.path().join("ws"), &source(&bare)).unwrap();
    ws.sync("main", "main").unwrap();
    let selections = current();
    let allow = |_: &Path, _: &PolicyId| true;
    let scoped: Vec<PathBuf> = ["svc", "svc/one", "a.yaml", "missing", "../out", "docs/deep"]
        .iter()
        .map(PathBuf::from)
        .collect();
    for paths in [Vec::new(), scoped] {
        let cache = ScanCache::new();
        let core = Core::new(&selections, &allow, Some(&cache));
        let first = ws.rewrite_head(&paths, &core, Some(&cache)).unwrap();
        assert!(trees_read(&cache) > 0);
        cache.retain_used();
        let before = trees_read(&cache);
        let second = ws.rewrite_head(&paths, &core, Some(&cache)).unwrap();
        assert_eq!(trees_read(&cache), before, "{paths:?}: no tree read");
        assert_eq!(second.blobs_read, 0, "{paths:?}");
        assert_eq!(outcome(second), outcome(first.clone()), "{paths:?}");

        // As `tagsmith once` keeps it: saved, loaded by the next process.
        cache.retain_used();
        let loaded = ScanCache::from_bytes(&cache.to_bytes().unwrap()).unwrap();
        let core = Core::new(&selections, &allow, Some(&loaded));
        let third = ws.rewrite_head(&paths, &core, Some(&loaded)).unwrap();
        assert_eq!(
            trees_read(&loaded),
            0,
            "{paths:?}: no tree read after loading"
        );
        assert_eq!(outcome(third), outcome(first.clone()), "{paths:?}");
        let fresh = ws
            .rewrite_head(&paths, &Core::new(&selections, &allow, None), None)
            .unwrap();
        assert_eq!(outcome(fresh), outcome(first), "{paths:?}");
    }
}

#[test]
fn a_change_in_one_folder_reads_only_the_trees_on_its_path() {
    let tmp = tempfile::tempdir().unwrap();
    let marked = format!("{MARKED}\n");
    let bare = bare_repo(
        tmp.path(),
        "m",
        &[
            ("a.yaml", &marked),
            ("plain.yaml", "x: 1\n"),
            ("svc/one/base/deploy.yaml", &marked),
            ("svc/one/helm/values.yaml", "x: 2\n"),
            ("svc/two/base/deploy.yaml", "x: 3\n"),
            ("svc/two/base/plain.yaml", "x: 4\n"),
            ("svc/two/base/more/other.yaml", &marked),
            ("docs/deep/notes.yaml", "x: 5\n"),
        ],
    );
    let ws = Workspace::open_objects(&tmp.path().join("ws"), &source(&bare)).unwrap();
    let cache = ScanCache::new();
    let selections = current();
    let allow = |_: &Path, _: &PolicyId| true;
    let core = Core::new(&selections, &allow, Some(&cache));
    ws.sync("main", "main").unwrap();
    ws.rewrite_head(&[], &core, Some(&cache)).unwrap();
    // 10 trees: the root, svc, svc/one, svc/one/base, svc/one/helm, svc/two, svc/two/base,
    // svc/two/base/more, docs, docs/deep.
    assert_eq!(trees_read(&cache), 10);
    cache.retain_used();
    // A run over the same commit in between, as the service makes them: what it did not
    // look at (the plain blobs of unchanged folders) is still known afterwards.
    ws.rewrite_head(&[], &core, Some(&cache)).unwrap();
    cache.retain_used();
    assert_eq!(trees_read(&cache), 10);

    let edited = format!("{MARKED}\nreplicas: 2\n");
    commit_elsewhere(&bare, "main", "svc/two/base/deploy.yaml", &edited);
    ws.sync("main", "main").unwrap();
    let after = ws.rewrite_head(&[], &core, Some(&cache)).unwrap();
    assert_eq!(
        trees_read(&cache) - 10,
        4,
        "the root, svc, svc/two and svc/two/base"
    );
    assert_eq!(after.blobs_read, 1, "only the changed blob");
    assert_eq!((after.files_seen, after.policies.len()), (8, 1));
    assert_eq!(after.files_parsed, 4);
    let fresh = ws
        .rewrite_head(&[], &Core::new(&selections, &allow, None), None)
        .unwrap();
    assert_eq!(outcome(after), outcome(fresh));
}

/// A path in the random trees of the walk's property test: deeper folders than above.
fn walk_path() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            "",
            "sub/",
            "sub/deep/",
            "sub/deep/er/",
            "other/",
            "other/x/",
        ]),
        prop::sample::select(vec!["a", "b", "c"]),
        prop::sample::select(vec![".yaml", ".yml", ".cue", ".txt", ""]),
    )
        .prop_map(|(dir, name, ext)| {
            let name = if ext.is_empty() {
                "Kustomization"
            } else {
                name
            };
            format!("{dir}{name}{ext}")
        })
}

#[derive(Debug, Clone)]
enum Edit {
    Set(String, Entry),
    Remove(String),
    /// A submodule (a commit in the tree), never entered.
    Submodule(String),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (walk_path(), entry()).prop_map(|(p, e)| Edit::Set(p, e)),
        2 => walk_path().prop_map(Edit::Remove),
        1 => prop::sample::select(vec!["mod", "sub/mod", "other/x/mod"])
            .prop_map(|p| Edit::Submodule(p.to_string())),
    ]
}

/// Commits exactly `files` and `submodules` on top of `main` (if any) of the bare `repo`.
fn commit_state(
    repo: &git2::Repository,
    files: &BTreeMap<String, Entry>,
    submodules: &std::collections::BTreeSet<String>,
) {
    let mut index = git2::Index::new().unwrap();
    let mut add = |path: &str, id: git2::Oid, mode: u32, size: usize| {
        index
            .add(&git2::IndexEntry {
                ctime: git2::IndexTime::new(0, 0),
                mtime: git2::IndexTime::new(0, 0),
                dev: 0,
                ino: 0,
                mode,
                uid: 0,
                gid: 0,
                file_size: size as u32,
                id,
                flags: 0,
                flags_extended: 0,
                path: path.as_bytes().to_vec(),
            })
            .unwrap();
    };
    for (path, entry) in files {
        let bytes = bytes_of(entry);
        let mode = match entry {
            Entry::Link(_) => 0o120000,
            Entry::File { .. } => 0o100644,
        };
        add(path, repo.blob(&bytes).unwrap(), mode, bytes.len());
    }
    let elsewhere = git2::Oid::from_str("1234567890123456789012345678901234567890").unwrap();
    for path in submodules {
        add(path, elsewhere, 0o160000, 0);
    }
    let tree = repo.find_tree(index.write_tree_to(repo).unwrap()).unwrap();
    let parent = repo
        .find_reference("refs/heads/main")
        .ok()
        .and_then(|r| r.peel_to_commit().ok());
    let sig = git2::Signature::now("someone", "someone@example.invalid").unwrap();
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    repo.commit(Some("refs/heads/main"), &sig, &sig, "edit", &tree, &parents)
        .unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Commit after commit of random edits, the walk that keeps its memo (in memory between
    /// runs as the service does, or saved and loaded as `tagsmith once` does) finds exactly
    /// what a walk from nothing finds: the same files, changes, problems and order.
    #[test]
    fn the_remembered_walk_finds_what_a_fresh_walk_finds(
        start in prop::collection::btree_map(walk_path(), entry(), 1..10),
        steps in prop::collection::vec((prop::collection::vec(edit(), 1..4), any::<bool>()), 1..5),
        roots in prop::sample::select(vec![
            vec![],
            vec!["sub"],
            vec!["sub", "sub/deep"],
            vec!["sub/deep", "other", "a.yaml"],
            vec!["other/x", "missing", "../up", "sub/mod"],
            vec!["sub/a.yaml", "sub/a.yaml", "sub/deep/er"],
        ]),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let bare = tmp.path().join("remote.git");
        let repo = git2::Repository::init_bare(&bare).unwrap();
        let mut files = start;
        let mut submodules = std::collections::BTreeSet::new();
        commit_state(&repo, &files, &submodules);
        let ws = Workspace::open_objects(&tmp.path().join("ws"), &source(&bare)).unwrap();
        let roots: Vec<PathBuf> = roots.iter().map(PathBuf::from).collect();
        let selections = selections();
        let allow = |_: &Path, _: &PolicyId| true;
        let mut cache = ScanCache::new();
        for (i, (edits, reload)) in std::iter::once((Vec::new(), false)).chain(steps).enumerate() {
            for edit in edits {
                match edit {
                    Edit::Set(path, entry) => { files.insert(path, entry); }
                    Edit::Remove(path) => { files.remove(&path); }
                    Edit::Submodule(path) => { submodules.insert(path); }
                }
            }
            if i > 0 {
                commit_state(&repo, &files, &submodules);
            }
            ws.sync("main", "main").unwrap();
            if reload {
                cache = ScanCache::from_bytes(&cache.to_bytes().unwrap()).unwrap();
            }
            let remembered = ws
                .rewrite_head(&roots, &Core::new(&selections, &allow, Some(&cache)), Some(&cache))
                .unwrap();
            cache.retain_used();
            let fresh = ws
                .rewrite_head(&roots, &Core::new(&selections, &allow, None), None)
                .unwrap();
            prop_assert_eq!(outcome(remembered), outcome(fresh), "step {}", i);
        }
    }
}

/// The files under `git_dir`'s pack folder whose names end in `ext`.
fn packs(git_dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(git_dir.join("objects/pack"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    out.sort();
    out
}

/// A commit of many files in many folders (names that sort differently as folders and as
/// files, a new file in a new folder) leaves exactly one new pack of whole objects, holding
/// each new blob, tree and the commit once; `git fsck --strict` accepts the repository, and
/// the pack's index is the one `git index-pack` writes for it.
#[test]
fn a_commit_of_many_files_leaves_one_pack_that_git_accepts() {
    let tmp = tempfile::tempdir().unwrap();
    let mut files: Vec<(String, String)> = Vec::new();
    for i in 0..150 {
        files.push((
            format!("svc/s{i:03}/base/deploy.yaml"),
            format!("{MARKED}\nn: {i}\n"),
        ));
        files.push((format!("svc/s{i:03}/plain.yaml"), format!("n: {i}\n")));
    }
    for name in ["a", "a.b", "a-b", "a0"] {
        files.push((
            format!("sort/{name}/deploy.yaml"),
            format!("{MARKED}\n# {name}\n"),
        ));
        files.push((
            format!("sort/{name}.yaml"),
            format!("{MARKED}\n# {name} file\n"),
        ));
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let bare = bare_repo(tmp.path(), "m", &refs);
    let ws = Workspace::open_objects(&tmp.path().join("ws"), &source(&bare)).unwrap();
    let git_dir = tmp.path().join("ws/.git");
    let selections = selections();
    let allow = |_: &Path, _: &PolicyId| true;
    let core = Core::new(&selections, &allow, None);
    ws.sync("main", "main").unwrap();
    let packs_before = packs(&git_dir, "pack");

    let mut tree = ws.rewrite_head(&[], &core, None).unwrap();
    assert_eq!(tree.changed.len(), 158);
    tree.changed.push(tagsmith::rewrite::walk::ChangedFile {
        path: "new/dir/added.yaml".into(),
        before: tagsmith::rewrite::walk::Before::Bytes(Vec::new()),
        after: b"added: true\n".to_vec(),
    });
    let commit = ws
        .commit_changes(&tree.changed, &author(), "update\n", None)
        .unwrap();

    let new: Vec<PathBuf> = packs(&git_dir, "pack")
        .into_iter()
        .filter(|p| !packs_before.contains(p))
        .collect();
    assert_eq!(new.len(), 1, "{new:?}");
    let verified =
        crate::gitserver::git(&git_dir, &["verify-pack", "-v", new[0].to_str().unwrap()]);
    // 159 blobs; trees: the root, svc, 150 service folders and their base folders, sort and
    // its 4 folders, new and new/dir; the commit.
    let objects = 159 + (1 + 1 + 300 + 1 + 4 + 2) + 1;
    assert!(
        verified.contains(&format!("non delta: {objects} objects")),
        "{verified}"
    );
    crate::gitserver::git(&git_dir, &["fsck", "--strict", "--no-dangling"]);
    let copy = tmp.path().join("copy.pack");
    std::fs::copy(&new[0], &copy).unwrap();
    crate::gitserver::git(tmp.path(), &["index-pack", copy.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(tmp.path().join("copy.idx")).unwrap(),
        std::fs::read(new[0].with_extension("idx")).unwrap()
    );

    ws.push(commit.id, "main").unwrap();
    crate::gitserver::git(&bare, &["fsck", "--strict", "--no-dangling"]);
    assert_eq!(
        show(&bare, "main", "svc/s007/base/deploy.yaml"),
        format!("{}\nn: 7\n", MARKED.replace("app:1.0", "app:2.0"))
    );
    assert_eq!(show(&bare, "main", "svc/s007/plain.yaml"), "n: 7\n");
    assert_eq!(
        show(&bare, "main", "sort/a.b/deploy.yaml"),
        format!("{}\n# a.b\n", MARKED.replace("app:1.0", "app:2.0"))
    );
    assert_eq!(show(&bare, "main", "new/dir/added.yaml"), "added: true\n");
}
