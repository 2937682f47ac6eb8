//! Selecting from 1,000,000 mixed tags with a semver range and a filter with extract.
//!
//! Run through `scripts/bench-policy`, which also times node-semver on the same tags. Prints
//! one `key=value` line per measurement; `--write-tags PATH` also writes the tag list.

use std::hint::black_box;
use std::time::{Duration, Instant};

use tagsmith::policy::{FilterSpec, Policy, PolicySpec, RuleSpec};

pub const RANGE: &str = ">=1.0.0 <5.0.0";
pub const FILTER: &str = r"^app-(?P<version>.+)$";
pub const EXTRACT: &str = "$version";
const TAGS: usize = 1_000_000;
const RUNS: usize = 7;

/// A deterministic mix: filtered semver, prereleases, unfiltered semver, CI junk, partial
/// versions and signatures, in the proportions a busy repository shows.
fn tags(count: usize) -> Vec<String> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    (0..count)
        .map(|_| {
            let (a, b, c) = (next() % 10, next() % 100, next() % 1000);
            match next() % 100 {
                0..40 => format!("app-{a}.{b}.{c}"),
                40..55 => format!("app-{a}.{b}.{c}-rc.{}", next() % 20),
                55..70 => format!("v{a}.{b}.{c}"),
                70..85 => format!(
                    "main-{:08x}-{}",
                    next(),
                    1_700_000_000 + next() % 10_000_000
                ),
                85..95 => format!("app-{a}.{b}"),
                _ => format!("app-{a}.{b}.{c}.sig"),
            }
        })
        .collect()
}

fn best_of(runs: usize, mut f: impl FnMut()) -> Duration {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes --bench; `cargo test --all-targets` does not, and then a small smoke
    // run keeps the benchmark compiling and working without a debug-mode million-tag run.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let full = args.iter().any(|a| a == "--bench");
    let tags = tags(if full { TAGS } else { 10_000 });
    let runs = if full { RUNS } else { 1 };
    if let Some(i) = args.iter().position(|a| a == "--write-tags") {
        let path = args.get(i + 1).ok_or("--write-tags needs a path")?;
        std::fs::write(path, tags.join("\n") + "\n")?;
    }
    let policy = Policy::new(&PolicySpec {
        rule: RuleSpec::Semver(RANGE.into()),
        filter: Some(FilterSpec {
            pattern: FILTER.into(),
            extract: Some(EXTRACT.into()),
        }),
        exclude: None,
    })?;
    let range_only = Policy::new(&PolicySpec {
        rule: RuleSpec::Semver(RANGE.into()),
        filter: None,
        exclude: None,
    })?;

    let selected = policy.select(&tags).tag.unwrap_or("<none>").to_string();
    let with_filter = best_of(runs, || {
        black_box(policy.select(black_box(&tags)));
    });
    let without_filter = best_of(runs, || {
        black_box(range_only.select(black_box(&tags)));
    });
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    println!("tags={}", tags.len());
    println!("threads={threads}");
    println!("selected={selected}");
    println!(
        "range_only_selected={}",
        range_only.select(&tags).tag.unwrap_or("<none>")
    );
    println!(
        "tagsmith_range_filter_ms={:.1}",
        with_filter.as_secs_f64() * 1e3
    );
    println!(
        "tagsmith_range_only_ms={:.1}",
        without_filter.as_secs_f64() * 1e3
    );
    Ok(())
}
