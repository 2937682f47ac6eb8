//! `tagsmith completions` and `tagsmith man`: shell completions and man pages generated from the
//! same clap definitions that parse the command line, so they never drift from it.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, CommandFactory as _, ValueEnum};

use super::{Cli, Status};

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write completions for, on stdout
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Folder to write the pages into (`tagsmith.1`, `tagsmith-once.1`, ...); created if missing
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

pub fn completions(args: CompletionsArgs) -> anyhow::Result<Status> {
    use clap_complete::Shell as S;
    let shell = match args.shell {
        Shell::Bash => S::Bash,
        Shell::Zsh => S::Zsh,
        Shell::Fish => S::Fish,
    };
    let mut cmd = Cli::command();
    // Into a buffer first: clap_complete panics on a write error (a closed pipe), we report it.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "tagsmith", &mut script);
    std::io::stdout()
        .lock()
        .write_all(&script)
        .context("cannot write the completions to stdout")?;
    Ok(Status::Ok)
}

pub fn man(args: ManArgs) -> anyhow::Result<Status> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let written = write_man_pages(&args.out)?;
    let mut out = std::io::stdout().lock();
    for path in written {
        writeln!(out, "{}", path.display()).context("cannot write to stdout")?;
    }
    Ok(Status::Ok)
}

/// One page per command and subcommand, named as `man` looks them up (`tagsmith-policy-eval.1`).
fn write_man_pages(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let cmd = Cli::command();
    clap_mangen::generate_to(cmd, dir)
        .with_context(|| format!("cannot write man pages into {}", dir.display()))?;
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "1"))
        .collect();
    pages.sort();
    Ok(pages)
}
