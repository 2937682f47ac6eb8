//! `tagsmith completions` and `tagsmith man`: generated from the real command definitions, so
//! these check that what a shell or `man` gets covers every command and flag and works.

#![allow(clippy::unwrap_used)]

use std::process::Command;

const SUBCOMMANDS: &[&str] = &[
    "policy",
    "apply",
    "check",
    "once",
    "run",
    "tags",
    "completions",
    "man",
];

fn tagsmith(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tagsmith"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tagsmith {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Asks bash's completion function what it offers after `words`, as bash does on Tab.
fn bash_complete(script: &str, words: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tagsmith.bash");
    std::fs::write(&file, script).unwrap();
    let words_list = words
        .iter()
        .map(|w| format!("'{w}'"))
        .collect::<Vec<_>>()
        .join(" ");
    // Bash calls the function with the command, the word being completed and the one before.
    let cur = words[words.len() - 1];
    let prev = words[words.len() - 2];
    let program = format!(
        "source '{}'; COMP_WORDS=({words_list}); COMP_CWORD={}; COMP_LINE='{}'; \
         COMP_POINT=${{#COMP_LINE}}; _tagsmith tagsmith '{cur}' '{prev}'; \
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        file.display(),
        words.len() - 1,
        words.join(" "),
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program])
        .output()
        .expect("bash runs (install it with apt: bash)");
    assert!(
        out.status.success(),
        "bash: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completes_subcommands_and_their_flags() {
    let script = tagsmith(&["completions", "bash"]);
    let top = bash_complete(&script, &["tagsmith", ""]);
    for sub in SUBCOMMANDS {
        assert!(top.iter().any(|w| w == sub), "{sub} missing from {top:?}");
    }
    assert_eq!(bash_complete(&script, &["tagsmith", "onc"]), ["once"]);
    let once_flags = bash_complete(&script, &["tagsmith", "once", "--"]);
    for flag in ["--config", "--dry-run", "--state-dir", "--output"] {
        assert!(
            once_flags.iter().any(|w| w == flag),
            "{flag} missing from {once_flags:?}"
        );
    }
    let outputs = bash_complete(&script, &["tagsmith", "once", "--output", ""]);
    assert_eq!(outputs, ["text", "json"]);
}

#[test]
fn zsh_and_fish_completions_name_every_subcommand() {
    let zsh = tagsmith(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef tagsmith\n"), "{}", &zsh[..40]);
    let fish = tagsmith(&["completions", "fish"]);
    for sub in SUBCOMMANDS {
        assert!(zsh.contains(&format!("'{sub}:")), "zsh lacks {sub}");
        assert!(fish.contains(&format!("-a \"{sub}\"")), "fish lacks {sub}");
    }
    assert!(fish.contains("-l dry-run"), "fish lacks once's --dry-run");
}

#[test]
fn man_writes_one_page_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    let listed = tagsmith(&["man", "--out", out.to_str().unwrap()]);
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(listed.lines().count(), names.len(), "{listed}");
    for sub in SUBCOMMANDS {
        assert!(
            names.contains(&format!("tagsmith-{sub}.1")),
            "no page for {sub}: {names:?}"
        );
    }
    assert!(names.contains(&"tagsmith.1".to_owned()));
    assert!(names.contains(&"tagsmith-policy-eval.1".to_owned()));
    let once = std::fs::read_to_string(out.join("tagsmith-once.1")).unwrap();
    assert!(once.starts_with(".ie"), "not roff: {}", &once[..40]);
    assert!(once.contains("\\-\\-dry\\-run"), "{once}");
    assert!(once.contains("Run one full cycle over every target"));
}

#[test]
fn version_names_the_commit() {
    let version = tagsmith(&["--version"]);
    let expected = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let head = String::from_utf8(expected.stdout).unwrap();
    let head = head.trim();
    assert!(!head.is_empty(), "the tests run from a git checkout");
    assert_eq!(
        version.trim(),
        format!("tagsmith {} ({head})", env!("CARGO_PKG_VERSION"))
    );
}
