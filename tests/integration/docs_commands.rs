//! Every shell block the docs mark as runnable (a fenced block tagged `sh` in README.md or
//! docs/*.md) runs here as written, so a documented command cannot rot.
//!
//! Each block runs with `bash -e -o pipefail` in a fresh sandbox that looks like the docs'
//! world: a `tagsmith` on PATH, a local registry standing in for `127.0.0.1:5000` with the
//! quickstart's sample images, the quickstart's `clusters/` tree, a `tagsmith.yaml` for them
//! and a bare Git repository as its target. Two annotations say what the block must do:
//! `# prints TEXT` at the end of a line (stdout has a line `TEXT`), and `# exits N` on a
//! line of its own (the block's exit status; 0 otherwise).
//!
//! Blocks that build or test the whole project (`scripts/quickstart`, `scripts/test`, the
//! benchmarks, `cargo install`) are tagged `shell` instead: they are run by CI itself or by
//! hand, not from inside a test.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::gitserver::git;
use crate::support::{Auth, Registry};

/// The registry address the docs and the quickstart example are written against.
const DOCS_HOST: &str = "127.0.0.1:5000";

#[derive(Debug)]
struct Block {
    file: String,
    line: usize,
    script: String,
}

impl Block {
    fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }

    fn expected_status(&self) -> i32 {
        self.script
            .lines()
            .filter_map(|l| l.trim().strip_prefix("# exits "))
            .map(|n| n.trim().parse().unwrap())
            .next_back()
            .unwrap_or(0)
    }

    fn expected_lines(&self) -> Vec<String> {
        self.script
            .lines()
            .filter_map(|l| l.split_once("# prints ").map(|(_, t)| t.trim().to_owned()))
            .collect()
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every ```sh block of README.md and docs/*.md, in file order.
fn blocks() -> Vec<Block> {
    let mut files = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut out = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.strip_prefix(root()).unwrap().display().to_string();
        let mut open: Option<(usize, String)> = None;
        for (i, line) in text.lines().enumerate() {
            match &mut open {
                None if line.trim_end() == "```sh" => open = Some((i + 1, String::new())),
                None => {}
                Some((start, script)) => {
                    if line.trim_end() == "```" {
                        out.push(Block {
                            file: name.clone(),
                            line: *start,
                            script: std::mem::take(script),
                        });
                        open = None;
                    } else {
                        script.push_str(line);
                        script.push('\n');
                    }
                }
            }
        }
        assert!(open.is_none(), "{name}: a ```sh block is never closed");
    }
    out
}

/// The world a block runs in; one per block, so blocks cannot depend on each other.
struct Sandbox {
    dir: tempfile::TempDir,
    host: String,
}

impl Sandbox {
    fn new(registry: &Registry) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let host = registry.host.clone();
        copy_tree(
            &root().join("examples/quickstart/clusters"),
            &dir.path().join("clusters"),
            &host,
        );
        let seed = dir.path().join("seed");
        copy_tree(
            &root().join("examples/quickstart/clusters"),
            &seed.join("clusters"),
            &host,
        );
        git(&seed, &["init", "-q", "--initial-branch=main"]);
        git(&seed, &["add", "-A"]);
        git(&seed, &["commit", "-qm", "Initial manifests"]);
        let bare = dir.path().join("manifests.git");
        git(
            dir.path(),
            &["clone", "-q", "--bare", "seed", bare.to_str().unwrap()],
        );
        let config = format!(
            "images:\n  - policy: demo:app\n    image: {host}/demo/app\n    semver: \"^1.0\"\n  \
             - policy: demo:worker\n    image: {host}/demo/worker\n    semver: \"~2.1\"\n\
             targets:\n  - name: demo\n    git: {{ url: \"file://{}\", branch: main }}\n    \
             paths: [clusters]\n    commit: {{ author: {{ name: tagsmith, email: tagsmith@example.invalid }} }}\n\
             registries:\n  - host: \"{host}\"\n    insecure: true\n\
             state: {{ dir: \"{}\" }}\n",
            bare.display(),
            dir.path().join("state").display(),
        );
        std::fs::write(dir.path().join("tagsmith.yaml"), config).unwrap();
        Self { dir, host }
    }

    fn run(&self, block: &Block) -> std::process::Output {
        let bin = Path::new(env!("CARGO_BIN_EXE_tagsmith"));
        let path = format!(
            "{}:{}",
            bin.parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let script = block.script.replace(DOCS_HOST, &self.host);
        Command::new("bash")
            .args([
                "--norc",
                "--noprofile",
                "-e",
                "-o",
                "pipefail",
                "-c",
                &script,
            ])
            .current_dir(self.dir.path())
            .env("PATH", path)
            .env("HOME", self.dir.path())
            .env("XDG_CACHE_HOME", self.dir.path().join("cache"))
            .env("XDG_STATE_HOME", self.dir.path().join("xdg-state"))
            .env_remove("RUST_LOG")
            .env_remove("DOCKER_CONFIG")
            .output()
            .unwrap()
    }
}

fn copy_tree(from: &Path, to: &Path, host: &str) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target, host);
        } else {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            std::fs::write(target, text.replace(DOCS_HOST, host)).unwrap();
        }
    }
}

#[test]
fn every_runnable_block_in_the_docs_runs_as_written() {
    let blocks = blocks();
    assert!(
        blocks.len() >= 4,
        "expected the docs' runnable examples, found {blocks:?}"
    );
    let registry = Registry::start(Auth::None);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let pusher = registry.pusher();
        let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        pusher
            .push_tags(
                "demo/app",
                &tags(&["1.0.0", "1.1.0", "1.2.0", "2.0.0-rc.1", "latest"]),
            )
            .await;
        pusher
            .push_tags("demo/worker", &tags(&["2.1.0", "2.1.3", "2.2.0"]))
            .await;
    });
    let mut failures = Vec::new();
    for block in &blocks {
        let out = Sandbox::new(&registry).run(block);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let status = out.status.code().unwrap_or(-1);
        let mut problems = Vec::new();
        if status != block.expected_status() {
            problems.push(format!(
                "exited {status}, expected {}",
                block.expected_status()
            ));
        }
        for want in block.expected_lines() {
            if !stdout.lines().any(|l| l.trim_end() == want) {
                problems.push(format!("stdout has no line {want:?}"));
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {}\n--- block ---\n{}--- stdout ---\n{stdout}--- stderr ---\n{stderr}",
                block.location(),
                problems.join("; "),
                block.script
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn annotations_are_read_from_the_block() {
    let block = Block {
        file: "x.md".into(),
        line: 1,
        script: "echo hi   # prints hi\nfalse\n# exits 1\n".into(),
    };
    assert_eq!(block.expected_status(), 1);
    assert_eq!(block.expected_lines(), ["hi"]);
}
