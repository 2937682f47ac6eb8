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
