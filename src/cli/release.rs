//! `tagsmith release NS:NAME [--target NAME] [--file PATH]`: lift the holds a person's
//! rollback put on a policy's markers, so tagsmith writes the selection again.
//!
//! When a `tagsmith run` holds the state directory, the release goes to its admin address
//! (`POST /release`), which also runs the targets at once; otherwise the holds files are
//! edited here, under the state directory's lock, and the next `once` or `run` writes.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::Value;

use super::{OutputFormat, Status};
use crate::model::PolicyId;
use crate::state::{LockError, StateDirLock, release_holds};

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// The policy whose markers to release, `namespace:name`.
    #[arg(value_name = "NS:NAME")]
    pub policy: String,
    /// Only in this target.
    #[arg(long, value_name = "NAME")]
    pub target: Option<String>,
    /// Only in this file (relative to the repository's root, as `/status` names it).
    #[arg(long, value_name = "PATH")]
    pub file: Option<String>,
    /// The configuration file (default: tagsmith.yaml, unless --flux is given).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub flux: super::inputs::FluxArgs,
    /// Where holds are kept (default: the config's `state.dir`, else $XDG_STATE_HOME/tagsmith).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Ask the running service at this admin address instead, e.g. `http://127.0.0.1:9393`.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Results as text for people or one JSON document for scripts.
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

pub fn run(args: ReleaseArgs) -> anyhow::Result<Status> {
    args.policy
        .parse::<PolicyId>()
        .with_context(|| format!("{:?} is not a policy id", args.policy))?;
    let released = match &args.url {
        Some(url) => post(&base_url(url), &args)?,
        None => {
            let config = super::inputs::load(args.config.as_deref(), &args.flux)?;
            if !config
                .images
                .iter()
                .any(|i| i.id.to_string() == args.policy)
            {
                bail!("no policy {} is configured", args.policy);
            }
            let targets: Vec<String> = config.targets.iter().map(|t| t.name.clone()).collect();
            if let Some(target) = &args.target
                && !targets.contains(target)
            {
                bail!("no target {target} is configured");
            }
            let state_dir = super::once::state_dir(args.state_dir.clone(), &config)?;
            match StateDirLock::acquire(&state_dir, "release") {
                Ok(_lock) => {
                    let released = release_holds(
                        &state_dir,
                        &targets,
                        &args.policy,
                        args.target.as_deref(),
                        args.file.as_deref(),
                    )?;
                    released
                        .into_iter()
                        .map(|(target, hold)| {
                            serde_json::json!({
                                "target": target,
                                "policy": hold.policy(),
                                "marker": hold.key.marker,
                                "file": hold.key.file,
                                "line": hold.key.line,
                                "from": hold.from,
                                "to": hold.to,
                            })
                        })
                        .collect()
                }
                // A running service owns the holds: ask it.
                Err(held @ LockError::Held { .. }) => match config.server.metrics {
                    Some(addr) => {
                        post(&format!("http://{}", super::status::reachable(addr)), &args)?
                    }
                    None => bail!(
                        "{held}; that service sets no server.metrics to send the release to: set it, or pass --url"
                    ),
                },
                Err(e) => return Err(e.into()),
            }
        }
    };
    match args.output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "released": released }))?
        ),
        OutputFormat::Text if released.is_empty() => {
            println!("nothing was held for {}", args.policy);
        }
        OutputFormat::Text => {
            for hold in &released {
                let field = |k: &str| hold.get(k).map_or_else(String::new, text);
                println!(
                    "released {}:{} ({}) in target {}: was left at {}, tagsmith writes the selection again",
                    field("file"),
                    field("line"),
                    field("marker"),
                    field("target"),
                    field("to")
                );
            }
        }
    }
    Ok(Status::Ok)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `--url` as given, without a trailing `/release` or `/`.
fn base_url(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    let url = url.strip_suffix("/release").unwrap_or(url);
    if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    }
}

fn post(base: &str, args: &ReleaseArgs) -> anyhow::Result<Vec<Value>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let url = format!("{base}/release");
        let mut query = vec![("policy", args.policy.as_str())];
        if let Some(t) = &args.target {
            query.push(("target", t));
        }
        if let Some(f) = &args.file {
            query.push(("file", f));
        }
        let response = super::status::client()?
            .post(&url)
            .query(&query)
            .send()
            .await
            .with_context(|| {
                format!("cannot reach {url}: is `tagsmith run` serving its admin address there?")
            })?;
        let doc = super::status::json_answer(response, &url, "a release document").await?;
        Ok(doc
            .get("released")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    })
}
