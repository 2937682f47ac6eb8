use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // libgit2's start-up runs beside reading the configuration, not before it.
    std::thread::spawn(tagsmith::git::ready);
    let cli = tagsmith::cli::Cli::parse();
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
