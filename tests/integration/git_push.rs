#![allow(clippy::unwrap_used)]

//! Pushing only what is new, without libgit2's packbuilder: the objects a push sends over
//! smart HTTP (`git http-backend`) and file://, the server's compare-and-swap as the lease,
//! hook refusals, push options and redirects, against real git.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::gitserver::{GitHttpServer, bare_repo, commit_elsewhere, git, rev, show};
use crate::support::proxy::{Canned, Scripted};
use crate::support::workspace::{author, commit_file, file_source, source};
use tagsmith::config::{GitAuth, Secret, Username};
use tagsmith::git::{GitError, Workspace};
use tagsmith::rewrite::walk::ChangedFile;

/// The pack indexes in a repository's `objects/pack`.
fn packs(git_dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(git_dir.join("objects/pack"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".idx"))
        .collect()
}

/// The one pack index in `after` that is not in `before`.
fn new_pack(before: &BTreeSet<String>, after: &BTreeSet<String>) -> String {
    let new: Vec<_> = after.difference(before).collect();
    assert_eq!(new.len(), 1, "{new:?}");
    new[0].clone()
}

/// How many objects the pack with index `idx` in `bare` holds.
fn objects_in(bare: &Path, idx: &str) -> usize {
    ids_in(bare, idx).len()
}

/// The ids of the objects the pack with index `idx` in `git_dir` holds.
fn ids_in(git_dir: &Path, idx: &str) -> BTreeSet<String> {
    let path = git_dir.join("objects/pack").join(idx);
    git(git_dir, &["verify-pack", "-v", path.to_str().unwrap()])
        .lines()
        .filter(|l| l.len() > 40 && l.as_bytes()[..40].iter().all(u8::is_ascii_hexdigit))
        .map(|l| l[..40].to_string())
        .collect()
}

fn changed(ws: &Workspace, path: &str, content: &str) -> ChangedFile {
    ChangedFile {
        path: path.into(),
        before: tagsmith::rewrite::walk::Before::Bytes(ws.head_file(Path::new(path)).unwrap()),
        after: content.as_bytes().to_vec(),
    }
}

fn hook(bare: &Path, name: &str, script: &str) {
    let path = bare.join("hooks").join(name);
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// A bare repository of `dirs` folders of 100 files each under `apps/`.
fn large_repo(root: &Path, dirs: usize) -> PathBuf {
    let files: Vec<(String, String)> = (0..dirs)
        .flat_map(|d| {
            (0..100).map(move |f| {
                (
                    format!("apps/d{d:02}/f{f:03}.yaml"),
                    format!("image: r/app{d}-{f}:1\n"),
                )
            })
        })
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    bare_repo(root, "large", &refs)
}

#[test]
fn an_http_push_of_a_2000_file_tree_sends_only_the_new_objects() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = large_repo(tmp.path(), 20);
    // Keep what arrives as the pack it came in, so it can be counted.
    git(&bare, &["config", "receive.unpackLimit", "1"]);
    let server = GitHttpServer::start(tmp.path(), None, None);
    let dir = tmp.path().join("ws");
    let ws =
        Workspace::open_objects(&dir, &source(&format!("{}/large.git", server.base_url))).unwrap();
    ws.sync("main", "main").unwrap();
    let files = [
        changed(&ws, "apps/d00/f000.yaml", "image: r/app0-0:2\n"),
        changed(&ws, "apps/d07/f042.yaml", "image: r/app7-42:2\n"),
        changed(&ws, "apps/d19/f099.yaml", "image: r/app19-99:2\n"),
    ];
    let before = packs(&bare);
    let ours_before = packs(&dir.join(".git"));
    let commit = ws
        .commit_changes(&files, &author(), "Update three apps\n", None)
        .unwrap();
    let ours = new_pack(&ours_before, &packs(&dir.join(".git")));
    ws.push(commit.id, "main").unwrap();

    assert_eq!(rev(&bare, "main"), commit.id.to_string());
    assert_eq!(
        show(&bare, "main", "apps/d07/f042.yaml"),
        "image: r/app7-42:2\n"
    );
    let theirs = new_pack(&before, &packs(&bare));
    // Three blobs, the trees on their paths (the root, apps, d00, d07, d19) and the commit,
    // of the 2,000 files' 2,023 objects.
    assert_eq!(objects_in(&bare, &theirs), 9);
    // A pack is named by its checksum: the server kept the very pack the commit was stored in.
    assert_eq!(theirs, ours);
    git(&bare, &["fsck", "--no-progress"]);
}

#[test]
fn a_file_push_copies_the_commits_pack_and_a_reopened_workspace_sends_the_tree_difference() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = large_repo(tmp.path(), 3);
    let dir = tmp.path().join("ws");
    let ws = Workspace::open_objects(&dir, &file_source(&bare)).unwrap();
    ws.sync("main", "main").unwrap();
    let before = packs(&bare);
    let ours_before = packs(&dir.join(".git"));
    let c1 = commit_file(&ws, "apps/d01/f005.yaml", "image: x:2\n", &author(), "one").unwrap();
    let ours = new_pack(&ours_before, &packs(&dir.join(".git")));
    ws.push(c1.id, "main").unwrap();
    let after_first = packs(&bare);
    assert_eq!(new_pack(&before, &after_first), ours, "copied as it is");
    assert_eq!(rev(&bare, "main"), c1.id.to_string());

    // A workspace opened anew does not know which pack holds its last commit: the objects
    // are found by comparing the commit's tree with its parent's.
    ws.sync("main", "main").unwrap();
    let ours_before = packs(&dir.join(".git"));
    let c2 = commit_file(&ws, "apps/d02/f006.yaml", "image: y:2\n", &author(), "two").unwrap();
    let ours = new_pack(&ours_before, &packs(&dir.join(".git")));
    drop(ws);
    let ws = Workspace::open_objects(&dir, &file_source(&bare)).unwrap();
    ws.push(c2.id, "main").unwrap();
    let second = new_pack(&after_first, &packs(&bare));
    // Written anew (the reopened workspace has no pack to copy), and it holds exactly the
    // objects the commit stored (in id order, where the commit's own pack has them in the
    // order they were made, so the two files differ).
    assert_eq!(ids_in(&bare, &second), ids_in(&dir.join(".git"), &ours));
    // One blob, three trees (root, apps, d02), the commit.
    assert_eq!(objects_in(&bare, &second), 5);
    assert_eq!(rev(&bare, "main"), c2.id.to_string());
    assert_eq!(show(&bare, "main", "apps/d02/f006.yaml"), "image: y:2\n");
    git(&bare, &["fsck", "--no-progress"]);
}

#[test]
fn a_writer_between_fetch_and_push_is_refused_by_the_servers_compare_and_swap_over_http() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(tmp.path(), "m", &[("a.yaml", "x: 1\n")]);
    let other = bare.clone();
    // The other writer pushes after tagsmith read the advertisement, before its update lands:
    // only the server's check of the command's old value can catch it.
    let server = GitHttpServer::start(
        tmp.path(),
        None,
        Some(Box::new(move || {
            commit_elsewhere(&other, "main", "b.yaml", "theirs\n")
        })),
    );
    let ws = Workspace::open_objects(
        &tmp.path().join("ws"),
        &source(&format!("{}/m.git", server.base_url)),
    )
    .unwrap();
    ws.sync("main", "main").unwrap();
    let c = commit_file(&ws, "a.yaml", "x: 2\n", &author(), "ours").unwrap();
    let err = ws.push(c.id, "main").unwrap_err();
    assert!(matches!(err, GitError::NonFastForward { .. }), "{err}");
    assert_eq!(show(&bare, "main", "b.yaml"), "theirs\n");
    assert_eq!(show(&bare, "main", "a.yaml"), "x: 1\n");
    let posts = server
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.starts_with("POST") && r.ends_with("/git-receive-pack"))
        .count();
    assert_eq!(
        posts, 1,
        "the server, not a check before sending, refused it"
    );
}

#[test]
fn a_writer_between_fetch_and_push_is_refused_over_file_for_plain_and_leased_pushes() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(tmp.path(), "m", &[("a.yaml", "x: 1\n")]);
    let ws = Workspace::open_objects(&tmp.path().join("ws"), &file_source(&bare)).unwrap();

    // A lease on the branch as it was fetched.
    let synced = ws.sync_onto_base("main", "tagsmith/prod").unwrap();
    assert_eq!(synced.push_head, None);
    let c = commit_file(&ws, "a.yaml", "x: 2\n", &author(), "ours").unwrap();
    ws.push_with_lease(c.id, "tagsmith/prod", None).unwrap();
    let synced = ws.sync_onto_base("main", "tagsmith/prod").unwrap();
    let c = commit_file(&ws, "a.yaml", "x: 3\n", &author(), "ours").unwrap();
    commit_elsewhere(&bare, "tagsmith/prod", "b.yaml", "theirs\n");
    let theirs = rev(&bare, "tagsmith/prod");
    let err = ws
        .push_with_lease(c.id, "tagsmith/prod", synced.push_head)
        .unwrap_err();
    assert!(matches!(err, GitError::NonFastForward { .. }), "{err}");
    assert_eq!(rev(&bare, "tagsmith/prod"), theirs);

    // A writer holding the branch's lock (git updates a ref under `<ref>.lock`) while the
    // update is made: refused as a branch that moved, and nothing is overwritten.
    ws.sync("main", "main").unwrap();
    let c = commit_file(&ws, "a.yaml", "x: 4\n", &author(), "ours").unwrap();
    let main = rev(&bare, "main");
    let lock = bare.join("refs/heads/main.lock");
    std::fs::write(&lock, format!("{main}\n")).unwrap();
    let err = ws.push(c.id, "main").unwrap_err();
    assert!(matches!(err, GitError::NonFastForward { .. }), "{err}");
    assert_eq!(rev(&bare, "main"), main);
    std::fs::remove_file(&lock).unwrap();
    ws.push(c.id, "main").unwrap();
    assert_eq!(rev(&bare, "main"), c.id.to_string());
}

#[test]
fn a_pre_receive_refusal_over_http_is_reported_with_the_hooks_message() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(tmp.path(), "m", &[("a.yaml", "x: 1\n")]);
    hook(
        &bare,
        "pre-receive",
        "#!/bin/sh\ncat >/dev/null\necho 'main is protected: open a pull request' >&2\nexit 1\n",
    );
    let before = rev(&bare, "main");
    let server = GitHttpServer::start(tmp.path(), None, None);
    let ws = Workspace::open_objects(
        &tmp.path().join("ws"),
        &source(&format!("{}/m.git", server.base_url)),
    )
    .unwrap();
    ws.sync("main", "main").unwrap();
    let c = commit_file(&ws, "a.yaml", "x: 2\n", &author(), "blocked").unwrap();
    let err = ws.push(c.id, "main").unwrap_err();
    let GitError::PushRejected { status, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(
        status,
        "pre-receive hook declined: main is protected: open a pull request"
    );
    assert!(!err.is_transient());
    assert_eq!(rev(&bare, "main"), before);
}

#[test]
fn credentials_are_not_sent_where_a_redirect_points() {
    let tmp = tempfile::tempdir().unwrap();
    bare_repo(tmp.path(), "m", &[("a.yaml", "x: 1\n")]);
    let server = GitHttpServer::start(tmp.path(), Some(("bot", "s3cret-token")), None);
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    let auth = GitAuth {
        username: Some(Username::Literal("bot".into())),
        password: Some(Secret::File(token_file)),
        ssh: None,
    };
    let dir = tmp.path().join("ws");
    let mut src = source(&format!("{}/m.git", server.base_url));
    src.auth = auth.clone();
    let ws = Workspace::open_objects(&dir, &src).unwrap();
    ws.sync("main", "main").unwrap();
    let c = commit_file(&ws, "a.yaml", "x: 2\n", &author(), "ours").unwrap();
    drop(ws);

    // The remote now sits behind a server that sends everything to another host.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (redirector, collector) = runtime.block_on(async {
        let collector = Scripted::start(|_| Canned::status(401)).await;
        let target = collector.url();
        let redirector =
            Scripted::start(move |seen| Canned::redirect(302, format!("{target}{}", seen.uri)))
                .await;
        (redirector, collector)
    });
    let mut moved = source(&format!("{}/m.git", redirector.url()));
    moved.auth = auth;
    let ws = Workspace::open_objects(&dir, &moved).unwrap();
    let err = ws.push(c.id, "main").unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, GitError::Push { .. }), "{text}");
    assert!(
        text.contains(&format!("redirected to {}", collector.url()))
            && text.contains("not followed"),
        "{text}"
    );
    assert!(!text.contains("s3cret"), "{text}");
    assert!(collector.log().is_empty(), "{:?}", collector.log());
    assert_eq!(redirector.log().len(), 1);
}

#[test]
fn push_options_reach_a_pre_receive_hook_over_http_and_need_the_servers_consent() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(tmp.path(), "m", &[("a.yaml", "x: 1\n")]);
    let recorded = tmp.path().join("options.txt");
    hook(
        &bare,
        "pre-receive",
        &format!(
            "#!/bin/sh\ncat >/dev/null\nprintf '%s|%s|%s\\n' \"$GIT_PUSH_OPTION_COUNT\" \"$GIT_PUSH_OPTION_0\" \"$GIT_PUSH_OPTION_1\" > '{}'\n",
            recorded.display()
        ),
    );
    let server = GitHttpServer::start(tmp.path(), None, None);
    let mut src = source(&format!("{}/m.git", server.base_url));
    src.push_options = vec![
        "merge_request.create".into(),
        "merge_request.target=main".into(),
    ];
    let ws = Workspace::open_objects(&tmp.path().join("ws"), &src).unwrap();

    // Without receive.advertisePushOptions the server does not take them: nothing is pushed.
    ws.sync("main", "main").unwrap();
    let c = commit_file(&ws, "a.yaml", "x: 2\n", &author(), "ours").unwrap();
    let before = rev(&bare, "main");
    let err = ws.push(c.id, "main").unwrap_err();
    assert!(
        matches!(&err, GitError::Push { message, .. } if message == "push-options not supported by remote"),
        "{err}"
    );
    assert_eq!(rev(&bare, "main"), before);
    assert!(!recorded.exists());

    git(&bare, &["config", "receive.advertisePushOptions", "true"]);
    ws.push(c.id, "main").unwrap();
    assert_eq!(rev(&bare, "main"), c.id.to_string());
    assert_eq!(
        std::fs::read_to_string(&recorded).unwrap(),
        "2|merge_request.create|merge_request.target=main\n"
    );
}
