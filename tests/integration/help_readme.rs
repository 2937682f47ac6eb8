//! The README's "Command reference" is the `--help` of every command, verbatim (trailing spaces
//! trimmed), and every command has a complete help text.
//!
//! After changing a command's flags or doc comments, `TAGSMITH_BLESS=1 cargo test --test
//! integration help_readme::` rewrites that README section from the binary; review its diff
//! before committing.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Every command with its own help, top-level first, in the order the reference shows them.
const COMMANDS: &[&[&str]] = &[
    &[],
    &["run"],
    &["status"],
    &["release"],
    &["once"],
    &["check"],
    &["convert"],
    &["convert", "flux"],
    &["convert", "argocd"],
    &["config"],
    &["config", "schema"],
    &["apply"],
    &["tags"],
    &["policy"],
    &["policy", "eval"],
    &["completions"],
    &["man"],
];

const HEADING: &str = "## Command reference\n";

const INTRO: &str = "\
The `--help` of every command, verbatim. `cargo test --test integration help_readme::` keeps this
section in step with the binary; after changing a command,
`TAGSMITH_BLESS=1 cargo test --test integration help_readme::` rewrites it.
";

fn readme_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")
}

/// `tagsmith <command> --help`, as at a 100-column terminal (clap also wraps at 100 at most),
/// with trailing whitespace trimmed from every line.
fn help(command: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tagsmith"))
        .args(command)
        .arg("--help")
        .env("COLUMNS", "100")
        .env_remove("LINES")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tagsmith {command:?} --help: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut trimmed: String = text
        .lines()
        .map(|l| format!("{}\n", l.trim_end()))
        .collect();
    while trimmed.ends_with("\n\n") {
        trimmed.pop();
    }
    trimmed
}

fn title(command: &[&str]) -> String {
    let mut words = vec!["tagsmith"];
    words.extend_from_slice(command);
    words.join(" ")
}

/// The section as it should read: heading, intro, one fenced block per command.
fn reference() -> String {
    let mut section = format!("{HEADING}\n{INTRO}");
    for command in COMMANDS {
        section.push_str(&format!(
            "\n### `{}`\n\n```text\n{}```\n",
            title(command),
            help(command)
        ));
    }
    section
}

/// The byte range of the reference section in the README: from its heading to the next `## `
/// heading or the end.
fn section_range(readme: &str) -> Option<std::ops::Range<usize>> {
    let start = if readme.starts_with(HEADING) {
        0
    } else {
        readme.find(&format!("\n{HEADING}"))? + 1
    };
    let after = start + HEADING.len();
    let end = readme[after..]
        .find("\n## ")
        .map_or(readme.len(), |i| after + i + 1);
    Some(start..end)
}

#[test]
fn readme_command_reference_is_the_verbatim_help_of_every_command() {
    let expected = reference();
    let path = readme_path();
    let mut readme = std::fs::read_to_string(&path).unwrap();
    if std::env::var_os("TAGSMITH_BLESS").is_some() {
        match section_range(&readme) {
            // A following section stays separated by one blank line.
            Some(range) if range.end < readme.len() => {
                readme.replace_range(range, &format!("{expected}\n"))
            }
            Some(range) => readme.replace_range(range, &expected),
            None => {
                readme = format!("{}\n\n{expected}", readme.trim_end());
            }
        }
        std::fs::write(&path, &readme).unwrap();
    }
    let range = section_range(&readme).expect("README.md has a \"## Command reference\" section");
    let actual = readme[range].trim_end_matches('\n').to_string() + "\n";
    assert!(
        actual == expected,
        "README.md's command reference differs from --help; regenerate it with \
         `TAGSMITH_BLESS=1 cargo test --test integration help_readme::` and review the diff.\n\
         --- expected ---\n{expected}"
    );
}

/// Names listed under `Commands:` in a help text, without clap's own `help`.
fn listed_subcommands(help: &str) -> Vec<String> {
    help.split("\nCommands:\n")
        .nth(1)
        .map(|rest| {
            rest.lines()
                .take_while(|l| !l.trim().is_empty())
                // A wrapped description continues on a line indented past the names.
                .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
                .filter_map(|l| l.split_whitespace().next())
                .filter(|name| *name != "help")
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_subcommand_has_its_help_in_the_reference() {
    for command in COMMANDS {
        for sub in listed_subcommands(&help(command)) {
            let mut path = command.to_vec();
            path.push(&sub);
            assert!(
                COMMANDS.contains(&path.as_slice()),
                "`{}` is missing from COMMANDS (and so from the README's reference)",
                title(&path)
            );
        }
    }
}

#[test]
fn readme_prose_names_every_command() {
    let readme = std::fs::read_to_string(readme_path()).unwrap();
    let prose = match section_range(&readme) {
        Some(range) => format!("{}{}", &readme[..range.start], &readme[range.end..]),
        None => readme,
    };
    for command in COMMANDS
        .iter()
        .filter(|c| !c.is_empty() && **c != ["policy"])
    {
        let name = title(command);
        assert!(
            prose.contains(&format!("`{name}")),
            "the README's Commands table does not mention `{name}`"
        );
    }
}

/// Every option and argument line in every help text carries a description: on its own line,
/// after the flag, or on the next, deeper-indented line.
#[test]
fn every_flag_and_argument_is_described() {
    for command in COMMANDS {
        let help = help(command);
        let lines: Vec<&str> = help.lines().collect();
        let mut in_list = false;
        for (i, line) in lines.iter().enumerate() {
            if line.ends_with(':') && !line.starts_with(' ') {
                in_list = matches!(*line, "Options:" | "Arguments:" | "Global options:");
                continue;
            }
            let trimmed = line.trim_start();
            let entry =
                trimmed.starts_with('-') || trimmed.starts_with('[') || trimmed.starts_with('<');
            if !in_list || !entry || line.len() - trimmed.len() > 6 {
                continue;
            }
            let indent = line.len() - trimmed.len();
            let described_inline = trimmed
                .split_once("  ")
                .is_some_and(|(_, text)| !text.trim().is_empty());
            let described_below = lines.get(i + 1).is_some_and(|next| {
                let next_trimmed = next.trim_start();
                !next_trimmed.is_empty() && next.len() - next_trimmed.len() > indent
            });
            assert!(
                described_inline || described_below,
                "`{}`: {trimmed} has no description (add a doc comment)",
                title(command)
            );
        }
    }
}
