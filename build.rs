//! Compiles tagsmith's own tree-sitter grammars (generated C, committed) into the crate, so that
//! building tagsmith never needs the tree-sitter CLI or node.

use std::path::Path;

fn main() {
    let src = Path::new("grammars/cue/src");
    let files = [src.join("parser.c"), src.join("scanner.c")];
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    for header in ["parser.h", "alloc.h", "array.h"] {
        println!(
            "cargo:rerun-if-changed={}",
            src.join("tree_sitter").join(header).display()
        );
    }
    scan_fingerprint();
    revision();
    cc::Build::new()
        .std("c11")
        .include(src)
        .files(&files)
        // Generated parsers trip these warnings by design; they say nothing about our code.
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-Wno-unused-but-set-variable")
        .flag_if_supported("-Wno-trigraphs")
        .compile("tree-sitter-cue");
}

/// A fingerprint of what a scan's result depends on that the crate's Rust sources do not
/// show: the CUE grammar and the locked dependency versions (tree-sitter, tree-sitter-yaml,
/// serde_json for markers). `rewrite::cache` adds a hash of the scanning code itself; the
/// scan cache trusts only entries written by a build with the same of both. Rust sources are
/// left out here on purpose: a build script that reruns on them would recompile the grammar on
/// every edit.
fn scan_fingerprint() {
    println!("cargo:rerun-if-changed=Cargo.lock");
    let inputs = [
        "Cargo.lock",
        "grammars/cue/src/parser.c",
        "grammars/cue/src/scanner.c",
    ];
    // FNV-1a: dependency-free and stable; this guards against staleness, not adversaries.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for path in inputs {
        feed(path.as_bytes());
        // A missing input (Cargo.lock when built as a dependency) still counts, as absent.
        feed(&std::fs::read(path).unwrap_or_default());
        feed(&[0xff]);
    }
    println!("cargo:rustc-env=TAGSMITH_SCAN_FINGERPRINT={hash:016x}");
}

/// The commit tagsmith was built from, for `tagsmith --version`: `TAGSMITH_REVISION` when set
/// (the container build passes it, having no `.git`), else what git says about the checkout,
/// else "unknown" (a build from a source archive).
fn revision() {
    println!("cargo:rerun-if-env-changed=TAGSMITH_REVISION");
    let from_env = std::env::var("TAGSMITH_REVISION")
        .ok()
        .filter(|r| !r.trim().is_empty());
    let revision = from_env.or_else(|| {
        // Rebuild when HEAD moves: HEAD itself for a detached head, the branch's ref file
        // otherwise. A path that does not exist is not named, or cargo would rerun every time.
        for path in ["HEAD", "packed-refs"] {
            watch_git_path(path);
        }
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watch_git_path(&branch);
        }
        git(&["rev-parse", "--short=12", "HEAD"])
    });
    println!(
        "cargo:rustc-env=TAGSMITH_REVISION={}",
        revision.as_deref().unwrap_or("unknown").trim()
    );
}

fn watch_git_path(name: &str) {
    if let Some(path) = git(&["rev-parse", "--git-path", name])
        && Path::new(&path).exists()
    {
        println!("cargo:rerun-if-changed={path}");
    }
}

/// One line of git's output, or `None` when git is missing, fails or this is no checkout.
fn git(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let line = text.trim();
    (out.status.success() && !line.is_empty()).then(|| line.to_owned())
}
