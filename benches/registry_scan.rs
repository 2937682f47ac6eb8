//! Registry scan benchmark: 100 repositories x 1,000 tags on the local `docker-registry`.
//!
//! Compares tagsmith's `Client::scan_all` with the plain-HTTP lower bound
//! (`benches/plain_http_scan.py`: parallel keep-alive GETs of `/v2/<name>/tags/list`) and with
//! `skopeo list-tags` for every repository, all at the same concurrency. Run it with
//! `scripts/bench-registry` (or `cargo bench --bench registry_scan`); sizes can be changed with
//! `BENCH_REPOS`, `BENCH_TAGS`, `BENCH_CONCURRENCY`, `BENCH_ROUNDS`.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

#[path = "../tests/integration/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::{Auth, Registry, tag_names};
use tagsmith::model::ImageName;
use tagsmith::registry::{Client, Options, RegistrySettings};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // `cargo test --all-targets` runs bench binaries too; the benchmark runs only under
    // `cargo bench`, which passes `--bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("registry_scan: run with `cargo bench --bench registry_scan`");
        return;
    }
    let repos = env_or("BENCH_REPOS", 100);
    let tags_per_repo = env_or("BENCH_TAGS", 1000);
    let concurrency = env_or("BENCH_CONCURRENCY", 16);
    let rounds = env_or("BENCH_ROUNDS", 5);
    let runtime = tokio::runtime::Runtime::new().unwrap();

    let registry = Registry::start(Auth::None);
    let seed_start = Instant::now();
    let tags = tag_names("1.0.", tags_per_repo);
    runtime.block_on(registry.pusher().push_tags("bench/r000", &tags));
    // Every repository holds the same image under the same tags: pushing one through the API
    // and copying its repository directory gives the same storage state as pushing each.
    let root = registry
        .dir
        .path()
        .join("data/docker/registry/v2/repositories/bench");
    for i in 1..repos {
        copy_dir(&root.join("r000"), &root.join(format!("r{i:03}")));
    }
    println!(
        "seeded {repos} repositories x {tags_per_repo} tags in {:.1?}",
        seed_start.elapsed()
    );
    let names: Vec<String> = (0..repos).map(|i| format!("bench/r{i:03}")).collect();
    let images: Vec<ImageName> = names
        .iter()
        .map(|n| format!("{}/{n}", registry.host).parse().unwrap())
        .collect();
    let expected_total = repos * tags_per_repo;

    let tagsmith_scan = || {
        let start = Instant::now();
        let total = runtime.block_on(async {
            let settings = RegistrySettings {
                host: registry.host.clone(),
                insecure: Some(true),
                max_concurrency: Some(concurrency),
                ..RegistrySettings::default()
            };
            let options = Options {
                scan_concurrency: concurrency,
                max_concurrency: concurrency,
                ..Options::default()
            };
            let client = Client::new(vec![settings], options);
            let results = client.scan_all(&images).await;
            results
                .into_iter()
                .map(|(_, r)| r.unwrap().len())
                .sum::<usize>()
        });
        assert_eq!(total, expected_total);
        start.elapsed()
    };

    // The same in Rust: one reqwest client, GETs at the same concurrency, following `Link`,
    // nothing else (no auth, retries, limits or dedup). The floor for any Rust client.
    let raw_scan = || {
        use futures_util::StreamExt as _;
        let start = Instant::now();
        let total = runtime.block_on(async {
            let http = reqwest::Client::new();
            futures_util::stream::iter(names.iter())
                .map(|name| {
                    let http = http.clone();
                    let base = registry.base_url();
                    async move {
                        let mut url = format!("{base}/v2/{name}/tags/list");
                        let mut count = 0;
                        loop {
                            let response = http.get(&url).send().await.unwrap();
                            let link = response
                                .headers()
                                .get("link")
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| v.split_once('<'))
                                .and_then(|(_, rest)| rest.split_once('>'))
                                .map(|(target, _)| format!("{base}{target}"));
                            let bytes = response.bytes().await.unwrap();
                            let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                            count += body["tags"].as_array().map_or(0, Vec::len);
                            match link {
                                Some(next) => url = next,
                                None => break count,
                            }
                        }
                    }
                })
                .buffer_unordered(concurrency)
                .collect::<Vec<usize>>()
                .await
                .into_iter()
                .sum::<usize>()
        });
        assert_eq!(total, expected_total);
        start.elapsed()
    };

    let plain_scan = || {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/plain_http_scan.py");
        let out = Command::new("python3")
            .arg(script)
            .arg(&registry.host)
            .arg(concurrency.to_string())
            .args(&names)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["tags"].as_u64().unwrap() as usize, expected_total);
        Duration::from_secs_f64(report["seconds"].as_f64().unwrap())
    };

    let have_skopeo = Command::new("skopeo").arg("--version").output().is_ok();
    let skopeo_scan = || {
        let next = AtomicUsize::new(0);
        let total = Mutex::new(0usize);
        let start = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..concurrency {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(name) = names.get(i) else { break };
                        let out = Command::new("skopeo")
                            .args(["list-tags", "--tls-verify=false"])
                            .arg(format!("docker://{}/{name}", registry.host))
                            .output()
                            .unwrap();
                        assert!(
                            out.status.success(),
                            "{}",
                            String::from_utf8_lossy(&out.stderr)
                        );
                        let listed: serde_json::Value =
                            serde_json::from_slice(&out.stdout).unwrap();
                        *total.lock().unwrap() += listed["Tags"].as_array().unwrap().len();
                    }
                });
            }
        });
        assert_eq!(*total.lock().unwrap(), expected_total);
        start.elapsed()
    };

    // One warm-up round each, then interleaved rounds so machine noise hits all alike.
    tagsmith_scan();
    raw_scan();
    plain_scan();
    let (mut ours, mut raw, mut plain, mut skopeo) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        ours.push(tagsmith_scan());
        raw.push(raw_scan());
        plain.push(plain_scan());
        if have_skopeo {
            skopeo.push(skopeo_scan());
        }
        println!(
            "round {round}: tagsmith {:.3?}  raw reqwest {:.3?}  plain http {:.3?}  skopeo {:?}",
            ours[round],
            raw[round],
            plain[round],
            skopeo.get(round)
        );
    }
    let (ours, raw, plain) = (median(ours), median(raw), median(plain));
    println!();
    println!(
        "{repos} repositories x {tags_per_repo} tags, concurrency {concurrency}, median of {rounds}:"
    );
    println!("| method | time | vs plain http |");
    println!("|---|---|---|");
    println!(
        "| plain parallel HTTP (python, keep-alive) | {:.3?} | 1.00x |",
        plain
    );
    println!(
        "| raw reqwest GETs, no auth/retries/limits | {:.3?} | {:.2}x |",
        raw,
        raw.as_secs_f64() / plain.as_secs_f64()
    );
    println!(
        "| tagsmith `scan_all` | {:.3?} | {:.2}x ({:.2}x raw reqwest) |",
        ours,
        ours.as_secs_f64() / plain.as_secs_f64(),
        ours.as_secs_f64() / raw.as_secs_f64()
    );
    if have_skopeo {
        let skopeo = median(skopeo);
        println!(
            "| `skopeo list-tags` per repository | {:.3?} | {:.2}x |",
            skopeo,
            skopeo.as_secs_f64() / plain.as_secs_f64()
        );
    } else {
        println!("skopeo not installed (apt-get install skopeo): comparison skipped");
    }
}
