//! File discovery and writing on real temp trees: symlinks, `.git`, permissions, atomic
//! replacement, untouched files and sub-paths.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use tagsmith::model::{ImageRef, PolicyId};
use tagsmith::rewrite::ProblemKind;
use tagsmith::rewrite::walk::{Mode, rewrite_tree};

const OLD: &str = "image: ghcr.io/org/app:1.0.0 # {\"$imagepolicy\": \"apps:app\"}\n";
const NEW: &str = "image: ghcr.io/org/app:2.0.0 # {\"$imagepolicy\": \"apps:app\"}\n";

fn selections() -> BTreeMap<PolicyId, ImageRef> {
    BTreeMap::from([(
        "apps:app".parse().unwrap(),
        "ghcr.io/org/app:2.0.0".parse().unwrap(),
    )])
}

fn write(root: &Path, rel: &str, text: &str) -> PathBuf {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, text).unwrap();
    path
}

#[test]
fn symlinks_are_never_followed_out_of_the_tree() {
    let outside = tempfile::tempdir().unwrap();
    let outside_file = write(outside.path(), "secret.yaml", OLD);
    write(outside.path(), "dir/inner.yaml", OLD);
    let tree = tempfile::tempdir().unwrap();
    symlink(&outside_file, tree.path().join("link.yaml")).unwrap();
    symlink(outside.path().join("dir"), tree.path().join("linkdir")).unwrap();
    let real = write(tree.path(), "real/app.yaml", OLD);
    symlink(&real, tree.path().join("alias.yaml")).unwrap();

    let report = rewrite_tree(tree.path(), &[], &selections(), Mode::Write, None).unwrap();

    assert_eq!(fs::read_to_string(&outside_file).unwrap(), OLD);
    assert_eq!(
        fs::read_to_string(outside.path().join("dir/inner.yaml")).unwrap(),
        OLD
    );
    assert_eq!(fs::read_to_string(&real).unwrap(), NEW);
    assert!(
        fs::symlink_metadata(tree.path().join("alias.yaml"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let files: Vec<_> = report.changes.iter().map(|c| c.file.clone()).collect();
    assert_eq!(files, vec![PathBuf::from("real/app.yaml")]);
}

#[test]
fn git_directories_are_skipped_at_any_depth() {
    let tree = tempfile::tempdir().unwrap();
    let top = write(tree.path(), ".git/x.yaml", OLD);
    let nested = write(tree.path(), "vendor/sub/.git/y.yaml", OLD);
    let dotted = write(tree.path(), ".github/z.yaml", OLD);
    let report = rewrite_tree(tree.path(), &[], &selections(), Mode::Write, None).unwrap();
    assert_eq!(fs::read_to_string(top).unwrap(), OLD);
    assert_eq!(fs::read_to_string(nested).unwrap(), OLD);
    assert_eq!(
        fs::read_to_string(dotted).unwrap(),
        NEW,
        "only .git itself is skipped"
    );
    assert_eq!(report.files_seen, 1);
}

#[test]
fn writes_are_atomic_keep_permissions_and_skip_unchanged_files() {
    let tree = tempfile::tempdir().unwrap();
    let changed = write(tree.path(), "a.yaml", OLD);
    fs::set_permissions(&changed, fs::Permissions::from_mode(0o640)).unwrap();
    let current = write(tree.path(), "b.yaml", NEW);
    let unmarked = write(tree.path(), "c.yaml", "image: x\n");
    let inode = |p: &Path| fs::metadata(p).unwrap().ino();
    let (changed_ino, current_ino, unmarked_ino) =
        (inode(&changed), inode(&current), inode(&unmarked));

    let report = rewrite_tree(tree.path(), &[], &selections(), Mode::Write, None).unwrap();

    assert_eq!(fs::read_to_string(&changed).unwrap(), NEW);
    // A rename puts a new inode in place; files with nothing to change keep theirs.
    assert_ne!(inode(&changed), changed_ino);
    assert_eq!(inode(&current), current_ino);
    assert_eq!(inode(&unmarked), unmarked_ino);
    assert_eq!(
        fs::metadata(&changed).unwrap().permissions().mode() & 0o777,
        0o640
    );
    let names: Vec<_> = fs::read_dir(tree.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 3, "temp files left behind: {names:?}");
    assert_eq!(
        (report.files_seen, report.files_parsed, report.changed.len()),
        (3, 2, 1)
    );
}

#[test]
fn sub_paths_limit_the_walk_and_may_not_leave_the_tree() {
    let tree = tempfile::tempdir().unwrap();
    let inside = write(tree.path(), "clusters/prod/app.yaml", OLD);
    let other = write(tree.path(), "clusters/dev/app.yaml", OLD);
    let paths = vec![PathBuf::from("clusters/prod"), PathBuf::from("../")];
    let report = rewrite_tree(tree.path(), &paths, &selections(), Mode::Write, None).unwrap();
    assert_eq!(fs::read_to_string(inside).unwrap(), NEW);
    assert_eq!(fs::read_to_string(other).unwrap(), OLD);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(matches!(report.problems[0].kind, ProblemKind::Path { .. }));
    assert_eq!(report.problems[0].path, PathBuf::from("../"));
}

#[test]
fn a_missing_tree_is_an_error() {
    let tree = tempfile::tempdir().unwrap();
    let err = rewrite_tree(
        &tree.path().join("nope"),
        &[],
        &selections(),
        Mode::Write,
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn one_bad_file_does_not_stop_the_others() {
    let tree = tempfile::tempdir().unwrap();
    let broken = "a: [b\n".to_string() + OLD;
    let bad = write(tree.path(), "bad.yaml", &broken);
    let good: Vec<_> = (0..20)
        .map(|i| write(tree.path(), &format!("d{i}/ok.yaml"), OLD))
        .collect();
    let report = rewrite_tree(tree.path(), &[], &selections(), Mode::Write, None).unwrap();
    assert_eq!(fs::read_to_string(bad).unwrap(), broken);
    for path in good {
        assert_eq!(fs::read_to_string(path).unwrap(), NEW);
    }
    assert_eq!(report.changes.len(), 20);
    assert!(report.has_errors());
    assert_eq!(report.problems[0].path, PathBuf::from("bad.yaml"));
    assert_eq!(report.problems[0].kind, ProblemKind::Syntax);
}

#[test]
fn tenancy_refuses_policies_per_file() {
    use tagsmith::rewrite::walk::rewrite_tree_allowed;

    let tree = tempfile::tempdir().unwrap();
    let own = write(tree.path(), "apps/apps/deploy.yaml", OLD);
    let foreign = write(tree.path(), "apps/other/deploy.yaml", OLD);
    let allowed =
        |file: &Path, policy: &PolicyId| file.starts_with(format!("apps/{}", policy.namespace()));
    let report =
        rewrite_tree_allowed(tree.path(), &[], &selections(), Mode::Write, &allowed, None).unwrap();
    assert_eq!(fs::read_to_string(own).unwrap(), NEW);
    assert_eq!(fs::read_to_string(foreign).unwrap(), OLD);
    assert_eq!(report.problems.len(), 1);
    let problem = &report.problems[0];
    assert_eq!(
        (problem.path.as_path(), problem.line),
        (Path::new("apps/other/deploy.yaml"), 1)
    );
    assert!(
        matches!(&problem.kind, ProblemKind::NotAllowed { policy } if policy.to_string() == "apps:app")
    );
    assert!(!report.has_errors());
}

#[test]
fn overlapping_sub_paths_visit_each_file_once() {
    let tree = tempfile::tempdir().unwrap();
    write(tree.path(), "clusters/prod/app.yaml", OLD);
    write(tree.path(), "clusters/dev/app.yaml", OLD);
    let paths: Vec<PathBuf> = [
        "clusters",
        "clusters/prod",
        "clusters/prod/app.yaml",
        "clusters/",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    let report = rewrite_tree(tree.path(), &paths, &selections(), Mode::DryRun, None).unwrap();
    assert_eq!(report.files_seen, 2);
    let files: Vec<_> = report.changes.iter().map(|c| c.file.clone()).collect();
    assert_eq!(
        files,
        vec![
            PathBuf::from("clusters/dev/app.yaml"),
            PathBuf::from("clusters/prod/app.yaml")
        ]
    );
}

/// Issue 13 item 4: someone saves a file while tagsmith rewrites it. The hook runs at the
/// last moment before the rename, so the race is the same on every run.
#[test]
fn an_edit_made_meanwhile_is_kept_and_reported() {
    use tagsmith::rewrite::walk::{Hooks, rewrite_tree_with};

    let tree = tempfile::tempdir().unwrap();
    let raced = write(tree.path(), "raced.yaml", OLD);
    let calm = write(tree.path(), "calm.yaml", OLD);
    let theirs = "# edited by a person\n".to_string() + OLD;
    let edit = |path: &Path| {
        if path.ends_with("raced.yaml") {
            fs::write(path, &theirs).unwrap();
        }
    };
    let hooks = Hooks {
        before_replace: Some(&edit),
        ..Hooks::default()
    };
    let report = rewrite_tree_with(
        tree.path(),
        &[],
        &selections(),
        Mode::Write,
        &|_, _| true,
        None,
        &hooks,
    )
    .unwrap();

    assert_eq!(fs::read_to_string(&raced).unwrap(), theirs);
    assert_eq!(fs::read_to_string(&calm).unwrap(), NEW);
    assert!(report.has_errors());
    let shown: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        vec![
            "raced.yaml: changed on disk while tagsmith was rewriting it; kept as it is now, not written (run again)"
                .to_string()
        ]
    );
    let changed: Vec<_> = report.changed.iter().map(|c| c.path.clone()).collect();
    assert_eq!(changed, vec![PathBuf::from("calm.yaml")]);
    let files: Vec<_> = report.changes.iter().map(|c| c.file.clone()).collect();
    assert_eq!(files, vec![PathBuf::from("calm.yaml")]);
    let mut names: Vec<_> = fs::read_dir(tree.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["calm.yaml", "raced.yaml"], "temp files left");
}
