use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    bound_malloc();
    let cli = tagsmith::cli::Cli::parse();
    // libgit2's start-up runs beside reading the configuration, not before it.
    if tagsmith::cli::starts_git_early(&cli) {
        tagsmith::git::start();
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

/// glibc's malloc gives each thread that meets a locked arena a new one (up to 8 per core),
/// each growing in 64 MiB heaps that keep the pages once touched, and raises its threshold
/// for serving a large block with its own mapping to the largest block freed so far (up to
/// 32 MiB), so a freed buffer's pages stay in a heap. A cold run at 50,000 files peaked at
/// 170 MiB resident for about 95 MB of live heap. Two arenas (one saved only another MiB,
/// for every thread's allocations behind one lock) and a fixed 128 KiB threshold (blocks
/// above it mapped and returned to the system when freed) keep the resident size near the
/// live heap: 146 MiB for that run.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn bound_malloc() {
    const ARENAS: libc::c_int = 2;
    const MMAP_THRESHOLD: libc::c_int = 128 << 10;
    // SAFETY: mallopt only sets malloc's parameters; it runs first in `main`, before any
    // thread of ours exists. A parameter it refuses stays at glibc's default (only more
    // memory), so the results are not checked.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn bound_malloc() {}
