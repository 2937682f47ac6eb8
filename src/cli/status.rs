//! `tagsmith status [-c tagsmith.yaml] [--url http://HOST:PORT] [--output json]`: what a
//! running service reports on `/status` (its admin address, `server.metrics`), as tables.
//!
//! The document is read by field name, not through the service's own types: a status command
//! of one version must still show what it can of a service of another, so a missing field is
//! shown as `-`, never an error.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::Value;

use super::{OutputFormat, Status};
use crate::config::Config;

/// How long the service gets to answer; it serves `/status` from memory.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Longer cells (errors) are cut in the table; `--output json` has them whole.
const MAX_CELL: usize = 72;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The configuration file whose `server.metrics` names the service's admin address.
    #[arg(short, long, value_name = "FILE", default_value = "tagsmith.yaml")]
    pub config: PathBuf,
    /// The admin address to ask instead, e.g. `http://127.0.0.1:9393` (the config is not read).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Results as tables for people or the service's JSON document for scripts.
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

pub fn run(args: StatusArgs) -> anyhow::Result<Status> {
    let base = match &args.url {
        Some(url) => base_url(url),
        None => {
            let config = Config::load(&args.config)?;
            let Some(addr) = config.server.metrics else {
                bail!(
                    "{} sets no server.metrics: /status is served only on that admin address; set it, or pass --url",
                    args.config.display()
                );
            };
            format!("http://{}", reachable(addr))
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let status = runtime.block_on(fetch(&base))?;
    let mut out = std::io::stdout().lock();
    match args.output {
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &status)?;
            writeln!(out)?;
        }
        OutputFormat::Text => out.write_all(render(&base, &status).as_bytes())?,
    }
    Ok(Status::Ok)
}

/// `--url` as given, without a trailing `/status` or `/`.
fn base_url(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    let url = url.strip_suffix("/status").unwrap_or(url);
    if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    }
}

/// A service listening on every address (`0.0.0.0`, `[::]`) is asked on loopback.
pub(super) fn reachable(addr: SocketAddr) -> SocketAddr {
    let ip = match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        SocketAddr::V6(a) if a.ip().is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        other => other.ip(),
    };
    SocketAddr::new(ip, addr.port())
}

async fn fetch(base: &str) -> anyhow::Result<Value> {
    let url = format!("{base}/status");
    let response = client()?.get(&url).send().await.map_err(|e| {
        let why = if e.is_connect() {
            "nothing answers there; is `tagsmith run` running, and is that its server.metrics address?"
        } else if e.is_timeout() {
            "no answer in time"
        } else {
            "the request failed"
        };
        // `{e:#}`-style chains from reqwest repeat the URL; the root cause is enough.
        let mut cause: &dyn std::error::Error = &e;
        while let Some(next) = cause.source() {
            cause = next;
        }
        anyhow::anyhow!("cannot read {url}: {why} ({cause})")
    })?;
    json_answer(response, &url, "a tagsmith /status document").await
}

/// A client for a running service's addresses, which answer at once or not at all.
pub(super) fn client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .context("cannot build the HTTP client")
}

/// The JSON document (`what`) a running service answered at `url`, or why there is none.
pub(super) async fn json_answer(
    response: reqwest::Response,
    url: &str,
    what: &str,
) -> anyhow::Result<Value> {
    let code = response.status();
    let body = response
        .text()
        .await
        .with_context(|| format!("cannot read the answer of {url}"))?;
    if !code.is_success() {
        bail!("{url} answered {code}: {}", body.trim());
    }
    serde_json::from_str(&body).with_context(|| format!("{url} did not answer {what}"))
}

/// The text view: a line naming the service, then the images and the targets.
fn render(base: &str, status: &Value) -> String {
    let mut out = format!("tagsmith at {base}");
    if let Some(started) = status.get("startedAt").and_then(Value::as_str) {
        out.push_str(&format!(", started {started}"));
    }
    out.push_str("\n\nImages\n");
    out.push_str(&table(
        &[
            "POLICY",
            "IMAGE",
            "SELECTED",
            "LAST SCAN",
            "RESULT",
            "FAILURES",
            "LAST ERROR",
        ],
        &list(status, "images")
            .iter()
            .map(image_row)
            .collect::<Vec<_>>(),
    ));
    out.push_str("\nTargets\n");
    out.push_str(&table(
        &[
            "NAME", "LAST RUN", "OUTCOME", "COMMIT", "PENDING", "NEXT RUN", "FAILURES", "PROBLEMS",
        ],
        &list(status, "targets")
            .iter()
            .map(target_row)
            .collect::<Vec<_>>(),
    ));
    let holds: Vec<Vec<String>> = list(status, "targets")
        .iter()
        .flat_map(|t| {
            list(t, "holds").iter().map(move |h| {
                vec![
                    text(t, "name"),
                    text(h, "policy"),
                    format!("{}:{}", text(h, "file"), text(h, "line")),
                    text(h, "to"),
                    text(h, "from"),
                    text(h, "since"),
                ]
            })
        })
        .collect();
    if !holds.is_empty() {
        out.push_str(
            "\nHeld (a person rolled these back; `tagsmith release POLICY` lifts a hold)\n",
        );
        out.push_str(&table(
            &[
                "TARGET",
                "POLICY",
                "FILE",
                "LEFT AT",
                "ROLLED BACK FROM",
                "SINCE",
            ],
            &holds,
        ));
    }
    out
}

fn list<'a>(status: &'a Value, key: &str) -> &'a [Value] {
    status
        .get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn image_row(image: &Value) -> Vec<String> {
    vec![
        text(image, "policy"),
        text(image, "image"),
        text(image, "selected"),
        text(image, "lastScan"),
        scan_result(image),
        text(image, "failures"),
        text(image, "error"),
    ]
}

/// The service's own word where it gives one (`result`), else what the fields imply.
fn scan_result(image: &Value) -> String {
    if let Some(result) = field(image, "result") {
        return result;
    }
    let failures = image.get("failures").and_then(Value::as_u64).unwrap_or(0);
    if failures > 0 {
        "failed".into()
    } else if image.get("suspended").and_then(Value::as_bool) == Some(true) {
        "suspended".into()
    } else if field(image, "error").is_some() {
        "nothing selected".into()
    } else if field(image, "lastScan").is_some() {
        "ok".into()
    } else {
        "not scanned yet".into()
    }
}

fn target_row(target: &Value) -> Vec<String> {
    let mut outcome = text(target, "outcome");
    if target.get("stalled").and_then(Value::as_bool) == Some(true) {
        outcome.push_str(" (stalled)");
    }
    let commit: String = text(target, "commit").chars().take(12).collect();
    let pending = if target.get("running").and_then(Value::as_bool) == Some(true) {
        "running".to_string()
    } else {
        match target.get("pending").and_then(Value::as_bool) {
            Some(true) => match field(target, "reason") {
                Some(reason) => format!("yes: {reason}"),
                None => "yes".into(),
            },
            Some(false) => "no".into(),
            None => "-".into(),
        }
    };
    let problems = match target.get("problems") {
        Some(Value::Array(items)) => items.len().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "-".into(),
    };
    vec![
        text(target, "name"),
        text(target, "lastRun"),
        outcome,
        commit,
        pending,
        text(target, "nextRun"),
        text(target, "failures"),
        problems,
    ]
}

/// A scalar field as text; `None` when missing, null or empty.
fn field(value: &Value, key: &str) -> Option<String> {
    match value.get(key)? {
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A field as a table cell: on one line, cut to [`MAX_CELL`], `-` when absent.
fn text(value: &Value, key: &str) -> String {
    let Some(s) = field(value, key) else {
        return "-".into();
    };
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > MAX_CELL {
        let cut: String = s.chars().take(MAX_CELL - 1).collect();
        format!("{cut}…")
    } else {
        s
    }
}

/// Left-aligned columns two spaces apart; `(none)` under the header when there are no rows.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut line = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                line.push_str(cell);
            } else {
                let pad = width - cell.chars().count();
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        line.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    if rows.is_empty() {
        out.push_str("(none)\n");
    }
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_addresses() {
        assert_eq!(base_url("http://h:9393/status"), "http://h:9393");
        assert_eq!(base_url("127.0.0.1:9393/"), "http://127.0.0.1:9393");
        let any: SocketAddr = "0.0.0.0:9393".parse().unwrap();
        assert_eq!(reachable(any).to_string(), "127.0.0.1:9393");
        let any6: SocketAddr = "[::]:9393".parse().unwrap();
        assert_eq!(reachable(any6).to_string(), "[::1]:9393");
    }

    #[test]
    fn holds_get_a_table_and_suspended_images_say_so() {
        let status = serde_json::json!({
            "images": [{ "policy": "team-a:app", "image": "ghcr.io/org/app", "suspended": true }],
            "targets": [{ "name": "prod", "holds": [{ "policy": "team-a:app", "file": "apps/app.yaml",
                "line": 3, "from": "app:1.3.0", "to": "app:1.2.0", "since": "2026-01-01T00:00:00.000Z" }] }],
        });
        let text = render("http://h", &status);
        assert!(text.contains("suspended"), "{text}");
        let held = text
            .lines()
            .find(|l| l.contains("apps/app.yaml:3"))
            .unwrap();
        assert!(
            held.contains("app:1.2.0") && held.contains("app:1.3.0"),
            "{text}"
        );
        let none = render(
            "http://h",
            &serde_json::json!({ "targets": [{ "name": "prod" }] }),
        );
        assert!(!none.contains("Held"), "{none}");
    }

    #[test]
    fn missing_fields_are_dashes_and_unknown_ones_ignored() {
        let status = serde_json::json!({
            "images": [{ "image": "ghcr.io/org/app", "failures": 2, "error": "registry down", "extra": {} }],
            "targets": [{ "name": "prod", "pending": true, "reason": "retry", "problems": ["a:1: x"] }],
        });
        let text = render("http://h", &status);
        let image = text
            .lines()
            .find(|l| l.contains("ghcr.io/org/app"))
            .unwrap();
        let cells: Vec<&str> = image.split("  ").filter(|c| !c.is_empty()).collect();
        assert_eq!(
            cells.iter().map(|c| c.trim()).collect::<Vec<_>>(),
            [
                "-",
                "ghcr.io/org/app",
                "-",
                "-",
                "failed",
                "2",
                "registry down"
            ]
        );
        let target = text.lines().find(|l| l.starts_with("prod")).unwrap();
        assert!(target.contains("yes: retry"), "{target}");
        assert!(target.trim_end().ends_with('1'), "{target}");
        assert!(render("http://h", &serde_json::json!({})).contains("(none)"));
    }
}
