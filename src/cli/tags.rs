//! `tagsmith tags IMAGE [-c tagsmith.yaml] [--digests] [--output json]`

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use serde::Serialize;

use super::{OutputFormat, Status};
use crate::model::{ImageName, Tag};
use crate::registry::{Client, Options, RegistrySettings};

#[derive(Debug, Args)]
pub struct TagsArgs {
    /// Image to list, e.g. `ghcr.io/org/app` or `nginx`.
    pub image: ImageName,
    /// Config file whose `registries:` section gives credentials and transport settings.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Also resolve each tag's manifest digest (index digest for multi-arch images).
    #[arg(long)]
    pub digests: bool,
    /// Results as text for people or one JSON document for scripts.
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Listing<'a> {
    image: &'a str,
    tags: Vec<Entry<'a>>,
}

/// A tag as printed; it borrows the listed tag, so printing a large listing copies none.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Entry<'a> {
    tag: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
}

pub fn run(args: TagsArgs) -> anyhow::Result<Status> {
    // The whole config is validated, so its paths resolve the same way `once` resolves them.
    let registries = match &args.config {
        Some(path) => crate::config::Config::load(path)?.registries,
        None => Vec::new(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (tags, digests) = runtime.block_on(list(&args, registries))?;
    let mut digests = digests.into_iter();
    let entries: Vec<Entry<'_>> = tags
        .iter()
        .map(|tag| Entry {
            tag: tag.as_str(),
            digest: digests.next(),
        })
        .collect();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match args.output {
        OutputFormat::Json => {
            let listing = Listing {
                image: args.image.as_str(),
                tags: entries,
            };
            serde_json::to_writer_pretty(&mut out, &listing)?;
            writeln!(out)?;
        }
        OutputFormat::Text => {
            for entry in entries {
                match entry.digest {
                    Some(digest) => writeln!(out, "{}\t{digest}", entry.tag)?,
                    None => writeln!(out, "{}", entry.tag)?,
                }
            }
        }
    }
    out.flush()?;
    Ok(Status::Ok)
}

/// The tags and, with `--digests`, one digest per tag in the same order.
async fn list(
    args: &TagsArgs,
    registries: Vec<RegistrySettings>,
) -> anyhow::Result<(Vec<Tag>, Vec<String>)> {
    let client = Client::new(registries, Options::default());
    let tags = client.list_tags(&args.image).await?;
    if !args.digests {
        return Ok((tags, Vec::new()));
    }
    let mut digests = Vec::with_capacity(tags.len());
    for (_, digest) in client.resolve_digests(&args.image, &tags).await {
        digests.push(digest?.to_string());
    }
    Ok((tags, digests))
}
