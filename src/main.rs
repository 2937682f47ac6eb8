use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    cache_large_trees();
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

/// libgit2 keeps trees in its object cache only up to 4 KiB by default, so a folder of a few
/// hundred entries (a monorepo's `services/`) is inflated and hashed again for every path
/// looked up through it: holds, attributes and write-backs look files up by path, and on a
/// 10,000-file tree that cost most of a run. Trees up to 4 MiB are cached (per repository,
/// freed with it; libgit2's total cache limit still applies).
fn cache_large_trees() {
    const TREE_CACHE_LIMIT: usize = 4 << 20;
    // SAFETY: libgit2's options are process globals; this runs first in `main`, before any
    // other thread exists, and nothing else in tagsmith sets them.
    #[allow(unsafe_code)]
    let set =
        unsafe { git2::opts::set_cache_object_limit(git2::ObjectType::Tree, TREE_CACHE_LIMIT) };
    if let Err(err) = set {
        // Only slower: say so once.
        eprintln!("tagsmith: warning: cannot raise libgit2's tree cache limit: {err}");
    }
}
