use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = tagsmith::cli::Cli::parse();
    // libgit2's start-up runs beside reading the configuration, not before it.
    if tagsmith::cli::starts_git_early(&cli) {
        std::thread::spawn(tagsmith::git::ready);
    }
    if let Err(err) = tagsmith::cli::init_logging(&cli.global) {
        eprintln!("tagsmith: {err:#}");
        return ExitCode::from(2);
    }
    match tagsmith::cli::run(cli) {
        Ok(status) => status.into(),
        Err(err) => {
            eprintln!("tagsmith: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
