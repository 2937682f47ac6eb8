//! Command-line glue: one file per subcommand. `anyhow` lives here and in `main.rs` only.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};

pub mod apply;
pub mod check;
mod completions;
mod config;
pub mod convert;
pub mod inputs;
pub mod once;
mod policy;
mod release;
pub mod run;
pub mod status;
pub mod tags;

/// `tagsmith --version`: the crate version and the commit it was built from (see build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("TAGSMITH_REVISION"),
    ")"
);

/// Keeps container image references in Git up to date.
#[derive(Debug, Parser)]
// Help is wrapped at 100 columns at most, so it reads the same as the README's command reference.
#[command(name = "tagsmith", version = VERSION, about, long_about = None, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, value_name = "FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter, `RUST_LOG` syntax (e.g. `info,tagsmith=debug`); overrides `RUST_LOG`.
    #[arg(long, global = true, value_name = "FILTER")]
    pub log: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Results on stdout: human text or one JSON document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Image policies: evaluate one against tags read from stdin.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Rewrite marked image references in a tree offline (no registry, no git).
    Apply(apply::ApplyArgs),
    /// Validate the config and, given a checkout, every marker in it.
    Check(check::CheckArgs),
    /// Write the tagsmith.yaml that configuration from another tool amounts to.
    #[command(subcommand)]
    Convert(convert::ConvertCommand),
    /// The configuration file's JSON Schema.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Run one full cycle over every target (scan, select, rewrite, commit, push), then exit.
    Once(once::OnceArgs),
    /// Run as a service: scan on intervals and on registry webhooks, keep every target current.
    Run(run::RunArgs),
    /// Lift the hold on markers a person rolled back, so tagsmith writes the selection again.
    Release(release::ReleaseArgs),
    /// Show what a running service reports on /status: its images and targets, as tables.
    Status(status::StatusArgs),
    /// List an image's tags with the configured credentials.
    Tags(tags::TagsArgs),
    /// Print shell completions for bash, zsh or fish.
    Completions(completions::CompletionsArgs),
    /// Write man pages for tagsmith and every subcommand.
    Man(completions::ManArgs),
}

/// How a command ended when it did not fail: 0, or 1 for "nothing selected" / "changes pending".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Pending,
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> Self {
        match status {
            Status::Ok => ExitCode::SUCCESS,
            Status::Pending => ExitCode::from(1),
        }
    }
}

/// Whether the command opens a Git repository before it knows which: `main` then starts
/// libgit2 at once, beside reading the configuration. `once` decides for itself, since a
/// cycle with nothing new may need no repository at all.
pub fn starts_git_early(cli: &Cli) -> bool {
    !matches!(cli.command, Command::Once(_))
}

pub fn run(cli: Cli) -> anyhow::Result<Status> {
    match cli.command {
        Command::Policy(cmd) => policy::run(cmd),
        Command::Apply(args) => apply::run(args),
        Command::Check(args) => check::run(args),
        Command::Convert(cmd) => convert::run(cmd),
        Command::Config(cmd) => config::run(cmd),
        Command::Once(args) => once::run(args),
        Command::Run(args) => run::run(args),
        Command::Release(args) => release::run(args),
        Command::Status(args) => status::run(args),
        Command::Tags(args) => tags::run(args),
        Command::Completions(args) => completions::completions(args),
        Command::Man(args) => completions::man(args),
    }
}

/// Logs go to stderr so stdout stays for results.
pub fn init_logging(args: &GlobalArgs) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;

    let filter = match &args.log {
        Some(spec) => {
            EnvFilter::try_new(spec).with_context(|| format!("invalid --log filter {spec:?}"))?
        }
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour(
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
            std::env::var_os("NO_COLOR"),
        ))
        .with_writer(std::io::stderr);
    let result = match args.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}

/// Colour only for a person at a terminal, and not when they set `NO_COLOR` (no-color.org: any
/// non-empty value).
fn colour(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::colour;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(!colour(false, None));
        assert!(!colour(true, Some("1".into())));
        assert!(colour(true, Some("".into())));
    }
}
