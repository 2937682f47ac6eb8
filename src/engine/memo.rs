//! What a target's last run came to, kept so that a `once` whose inputs did not move does not
//! redo it. A run that ends unchanged or pushed leaves a note: the remote heads it ended on
//! and a hash of everything else the run read (configuration, selections, holds, git's own
//! configuration, the tagsmith build). The next `once` reads the heads itself (without
//! libgit2, see [`crate::git::remote_heads`]) while the registries are scanned; when heads and
//! hash are what the note says, rewriting would find every marker at its selection again, so
//! the target is reported unchanged, with the note's problems, and its workspace is not opened.
//! Anything else (no note, a moved head, a new selection, a transport only libgit2 speaks)
//! runs the target as always. A stale note is never wrong, only useless: its hash names the
//! inputs it holds for.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::report::{Outcome, TargetReport};
use super::run::TargetRun;
use crate::config::Target;
use crate::git::Heads;

/// Changes whenever what a note means changes.
const FORMAT: u32 = 1;

/// Where a target's note lives (beside its scan cache).
pub fn memo_file(state_dir: &Path, target: &str) -> PathBuf {
    state_dir.join("cache").join(format!("{target}.last"))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memo {
    format: u32,
    /// The branches' heads the run ended on, as [`branches`] names them.
    pub heads: Heads,
    /// [`inputs`] of the run.
    pub inputs: String,
    /// The run's warnings, reported again when the note stands in for it.
    pub problems: Vec<String>,
}

/// The branches a push run syncs: the base branch, then the push branch when it differs.
pub fn branches(target: &Target) -> Vec<&str> {
    let mut branches = vec![target.git.branch.as_str()];
    if target.push_branch() != target.git.branch {
        branches.push(target.push_branch());
    }
    branches
}

/// Whether a note can stand for `target` at all: pushes straight to a branch (a pull request
/// run also asks the forge), from a branch head (a checkout ref is resolved from tags).
pub fn applies_to(target: &Target) -> bool {
    target.pull_request.is_none() && target.git.checkout.is_none()
}

/// Reads `path`; a missing, unreadable or older note is no note.
pub fn load(path: &Path) -> Option<Memo> {
    let bytes = std::fs::read(path).ok()?;
    let memo: Memo = serde_json::from_slice(&bytes).ok()?;
    (memo.format == FORMAT).then_some(memo)
}

/// The note `report` leaves, when it can stand for the run: ended unchanged or pushed, with no
/// failure and no hold (holds are decided against the time and the history, not only the
/// inputs hashed). `heads` are the heads the run synced; a push moved its branch to the commit.
pub fn after(
    target: &Target,
    report: &TargetReport,
    mut heads: Heads,
    inputs: String,
) -> Option<Memo> {
    if !applies_to(target) || report.is_failure() || !report.holds.is_empty() {
        return None;
    }
    match &report.outcome {
        Outcome::Unchanged => {}
        Outcome::Pushed { branch, commit } => {
            let head = heads.iter_mut().find(|(b, _)| b == branch)?;
            head.1 = Some(commit.clone());
        }
        _ => return None,
    }
    Some(Memo {
        format: FORMAT,
        heads,
        inputs,
        problems: report.problems.clone(),
    })
}

/// Writes `memo` to `path`; a note that cannot be written costs one full run next time.
pub fn save(path: &Path, memo: &Memo) {
    let result = (|| {
        let bytes = serde_json::to_vec(memo).map_err(std::io::Error::other)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            path.file_name().unwrap_or_default().to_string_lossy(),
            std::process::id()
        ));
        // No fsync, as for the scan cache: a torn or lost note only costs a full run.
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    })();
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "run note not saved; the next once runs the target in full");
    }
}

/// The report a note stands in for: unchanged, with the problems the run had.
pub fn report(target: &Target, memo: &Memo, sync_ms: u64) -> TargetReport {
    let mut report = TargetReport::new(&target.name);
    report.problems.clone_from(&memo.problems);
    report.timings.sync_ms = sync_ms;
    report
}

/// A hash of what a run of `run` reads besides the repository's commits: the tagsmith build,
/// the target's and the images' configuration, the selections and failed scans, the target's
/// holds file, and the user's and system's git configuration.
pub fn inputs(run: &TargetRun<'_>) -> String {
    let mut hash = blake3::Hasher::new();
    let mut part = |label: &str, bytes: &[u8]| {
        hash.update(label.as_bytes());
        hash.update(&(bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    };
    part(
        "build",
        concat!(
            env!("CARGO_PKG_VERSION"),
            " ",
            env!("TAGSMITH_REVISION"),
            " ",
            env!("TAGSMITH_SCAN_FINGERPRINT")
        )
        .as_bytes(),
    );
    part("target", format!("{:?}", run.target).as_bytes());
    part("images", format!("{:?}", run.images).as_bytes());
    for (policy, selected) in &run.selections.selections {
        part("selected", format!("{policy} {selected}").as_bytes());
    }
    for failed in run.selections.reports.iter().filter(|r| r.failed) {
        part("failed", failed.policy.as_bytes());
    }
    part("holds", &read_or_empty(&run.holds_file));
    for var in GIT_ENV {
        part(
            var,
            std::env::var_os(var).unwrap_or_default().as_encoded_bytes(),
        );
    }
    for file in git_config_files() {
        part(&file.to_string_lossy(), &read_or_empty(&file));
    }
    hash.finalize().to_hex().to_string()
}

/// Environment that decides which git configuration files libgit2 reads.
const GIT_ENV: [&str; 5] = [
    "HOME",
    "XDG_CONFIG_HOME",
    "GIT_CONFIG_GLOBAL",
    "GIT_CONFIG_SYSTEM",
    "GIT_CONFIG_NOSYSTEM",
];

/// The user's and the system's git config, as libgit2 looks them up. The workspace's own is
/// tagsmith's (remote and refspecs), and written again when the workspace is made anew.
fn git_config_files() -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from("/etc/gitconfig")];
    if let Some(home) = std::env::var_os("HOME").map(PathBuf::from) {
        files.push(home.join(".gitconfig"));
        files.push(home.join(".config/git/config"));
    }
    if let Some(xdg) = std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from) {
        files.push(xdg.join("git/config"));
    }
    files
}

fn read_or_empty(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use super::*;
    use crate::config::Config;
    use crate::engine::select::SelectionSet;

    const YAML: &str = "images:\n  - policy: a:app\n    image: r.example/app\n    semver: '^1'\n  - policy: a:web\n    image: r.example/web\n    alphabetical: asc\ntargets:\n  - name: t\n    git: { url: 'file:///srv/r.git', branch: main }\n    paths: [apps]\n";

    fn config(yaml: &str) -> Config {
        Config::parse(yaml, Path::new("t.yaml")).unwrap()
    }

    fn selections(tag: &str) -> SelectionSet {
        SelectionSet {
            selections: BTreeMap::from([(
                "a:app".parse().unwrap(),
                format!("r.example/app:{tag}").parse().unwrap(),
            )]),
            ..SelectionSet::default()
        }
    }

    fn inputs_of(config: &Config, set: &SelectionSet, holds: &Path) -> String {
        inputs(&TargetRun {
            target: &config.targets[0],
            workspace: PathBuf::from("/nonexistent/ws"),
            cache_file: PathBuf::from("/nonexistent/cache"),
            selections: set,
            images: &config.images,
            holds_file: holds.to_path_buf(),
            dry_run: false,
        })
    }

    #[test]
    fn inputs_are_the_same_for_the_same_inputs_and_differ_for_any_other() {
        let dir = tempfile::tempdir().unwrap();
        let holds = dir.path().join("t.json");
        // Two parses of one file (each with its own hash maps, were there any) agree.
        let base = inputs_of(&config(YAML), &selections("1.2.0"), &holds);
        assert_eq!(base, inputs_of(&config(YAML), &selections("1.2.0"), &holds));
        assert_ne!(base, inputs_of(&config(YAML), &selections("1.3.0"), &holds));
        let wider = YAML.replace("paths: [apps]", "paths: [apps, docs]");
        assert_ne!(
            base,
            inputs_of(&config(&wider), &selections("1.2.0"), &holds)
        );
        let other_policy = YAML.replace("alphabetical: asc", "alphabetical: desc");
        assert_ne!(
            base,
            inputs_of(&config(&other_policy), &selections("1.2.0"), &holds)
        );
        std::fs::write(&holds, "{}").unwrap();
        assert_ne!(base, inputs_of(&config(YAML), &selections("1.2.0"), &holds));
    }

    #[test]
    fn only_clean_unchanged_or_pushed_runs_leave_a_note_and_a_push_moves_its_branch() {
        let config = config(YAML);
        let target = &config.targets[0];
        let heads: Heads = vec![("main".into(), Some("a".repeat(40)))];
        let unchanged = TargetReport::new("t");
        let memo = after(target, &unchanged, heads.clone(), "k".into()).unwrap();
        assert_eq!(memo.heads, heads);
        let mut pushed = TargetReport::new("t");
        pushed.outcome = Outcome::Pushed {
            branch: "main".into(),
            commit: "b".repeat(40),
        };
        let memo = after(target, &pushed, heads.clone(), "k".into()).unwrap();
        assert_eq!(memo.heads, vec![("main".to_string(), Some("b".repeat(40)))]);
        let mut failed = TargetReport::new("t");
        failed.file_errors.push("apps/x.yaml:1: bad".into());
        assert_eq!(after(target, &failed, heads.clone(), "k".into()), None);
        let mut would = TargetReport::new("t");
        would.outcome = Outcome::WouldCommit {
            diff: String::new(),
        };
        assert_eq!(after(target, &would, heads.clone(), "k".into()), None);
    }

    #[test]
    fn a_note_is_read_back_as_written_and_a_foreign_one_is_no_note() {
        let dir = tempfile::tempdir().unwrap();
        let file = memo_file(dir.path(), "t");
        let memo = Memo {
            format: FORMAT,
            heads: vec![("main".into(), None)],
            inputs: "k".into(),
            problems: vec!["apps/a.yaml:3: warning".into()],
        };
        save(&file, &memo);
        assert_eq!(load(&file), Some(memo));
        std::fs::write(
            &file,
            r#"{"format":0,"heads":[],"inputs":"k","problems":[]}"#,
        )
        .unwrap();
        assert_eq!(load(&file), None);
        std::fs::write(&file, "not json").unwrap();
        assert_eq!(load(&file), None);
    }
}
