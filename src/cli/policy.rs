//! `tagsmith policy eval`: run a policy over tags read from stdin, or a configured policy over
//! its image's tags in the live registry (as `argocd-image-updater test` does).

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{ArgGroup, Args, Subcommand};
use serde::Serialize;

use super::{OutputFormat, Status};
use crate::config::{Config, DigestMode, ImagePolicy};
use crate::gate::Stop;
use crate::model::{Digest, Tag};
use crate::policy::{Drop, FilterSpec, Order, Policy, PolicySpec, RuleSpec};
use crate::registry::{Client, Options};

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Select a tag from the tags on stdin (one a line), as an image policy would; or, with
    /// --policy, run a configured policy over its image's tags in the registry.
    ///
    /// Prints the selected tag (with its digest when the policy pins digests) and exits 0;
    /// exits 1 when no tag is selected, 2 when the policy is invalid or unknown, or the
    /// registry cannot be read.
    Eval(EvalArgs),
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("rule").required(true).args(["semver", "alphabetical", "numerical", "policy"])))]
pub struct EvalArgs {
    /// A configured policy (`namespace:name`), evaluated against its image's tags in the
    /// registry with the config's credentials, as `tagsmith once` scans; stdin is not read.
    #[arg(long, value_name = "NS:NAME", conflicts_with_all = ["filter", "extract", "exclude"])]
    pub policy: Option<String>,
    /// The configuration file --policy is read from (default: tagsmith.yaml).
    #[arg(short, long, value_name = "FILE", requires = "policy")]
    pub config: Option<PathBuf>,
    /// Semver range, Flux/Masterminds syntax (e.g. ">=1.0.0 <2.0.0", "1.2.x", "^1.4", "1.2 - 1.4.5").
    #[arg(long, value_name = "RANGE")]
    pub semver: Option<String>,
    /// Byte-wise order, `asc` or `desc`: asc picks the largest, desc the smallest.
    #[arg(long, value_name = "ORDER")]
    pub alphabetical: Option<Order>,
    /// Numeric order, `asc` or `desc`: asc picks the largest, desc the smallest; non-numeric
    /// tags are skipped.
    #[arg(long, value_name = "ORDER")]
    pub numerical: Option<Order>,
    /// Keep only tags matching this regex (unanchored).
    #[arg(long, value_name = "REGEX")]
    pub filter: Option<String>,
    /// Order by this expansion of the filter's groups ($1, $name, ${name}) instead of the tag.
    #[arg(long, value_name = "TEMPLATE", requires = "filter")]
    pub extract: Option<String>,
    /// Drop tags matching this regex; repeatable. Replaces the default '^.*\.sig$'.
    #[arg(long, value_name = "REGEX")]
    pub exclude: Vec<String>,
    /// Say for every tag whether it was kept or dropped, and why.
    #[arg(long)]
    pub explain: bool,
    /// Results as text for people or one JSON document for scripts.
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

pub fn run(cmd: PolicyCommand) -> anyhow::Result<Status> {
    match cmd {
        PolicyCommand::Eval(args) => eval(args),
    }
}

fn spec(args: &EvalArgs) -> PolicySpec {
    let rule = match (&args.semver, args.alphabetical, args.numerical) {
        (Some(range), _, _) => RuleSpec::Semver(range.clone()),
        (_, Some(order), _) => RuleSpec::Alphabetical(order),
        (_, _, Some(order)) => RuleSpec::Numerical(order),
        // clap's required group guarantees one of the three.
        (None, None, None) => RuleSpec::Alphabetical(Order::Asc),
    };
    PolicySpec {
        rule,
        filter: args.filter.as_ref().map(|pattern| FilterSpec {
            pattern: pattern.clone(),
            extract: args.extract.clone(),
        }),
        exclude: (!args.exclude.is_empty()).then(|| args.exclude.clone()),
    }
}

/// Tags from stdin: one a line, surrounding whitespace (and CR of CRLF) trimmed, blank lines skipped.
fn read_tags(input: impl BufRead) -> anyhow::Result<Vec<String>> {
    let mut tags = Vec::new();
    for line in input.lines() {
        let line = line.context("cannot read tags from stdin")?;
        let tag = line.trim();
        if !tag.is_empty() {
            tags.push(tag.to_string());
        }
    }
    Ok(tags)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonResult<'a> {
    /// The configured policy and its image, with --policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<&'a str>,
    selected: Option<&'a str>,
    /// The selected tag's digest, when the configured policy pins digests.
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<&'a str>,
    stats: &'a crate::policy::Stats,
    /// Better-ranked tags a gate stopped, best first.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    stopped: &'a [Stop],
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<Vec<JsonVerdict<'a>>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonVerdict<'a> {
    tag: &'a str,
    verdict: &'static str,
    reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
}

fn eval(args: EvalArgs) -> anyhow::Result<Status> {
    match &args.policy {
        Some(id) => eval_live(&args, id),
        None => {
            let policy = Policy::new(&spec(&args))?;
            let tags = read_tags(std::io::stdin().lock())?;
            report(&args, &policy, &tags, None)
        }
    }
}

/// The configured policy `id`, or an error naming the nearest configured id.
fn find<'c>(config: &'c Config, id: &str) -> anyhow::Result<&'c ImagePolicy> {
    if let Some(image) = config.images.iter().find(|i| i.id.to_string() == id) {
        return Ok(image);
    }
    let ids: Vec<String> = config.images.iter().map(|i| i.id.to_string()).collect();
    anyhow::bail!(
        "unknown policy `{id}` in {}{}",
        config.path.display(),
        crate::config::suggest::did_you_mean(id, ids.iter().map(String::as_str))
    )
}

/// The policy's image scanned with the config's registry settings, as `tagsmith once` does.
fn eval_live(args: &EvalArgs, id: &str) -> anyhow::Result<Status> {
    let config = super::inputs::load(args.config.as_deref(), &super::inputs::FluxArgs::default())?;
    let image = find(&config, id)?;
    let client = Client::new(config.registries.clone(), Options::default());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let tags: Vec<Tag> = runtime.block_on(client.list_tags(&image.image))?;
    let gated = image
        .needs_registry_pass()
        .then(|| runtime.block_on(crate::engine::gates::choose(image, &tags, &client)))
        .transpose()
        .context("checking the gates")?;
    let index = match &gated {
        Some(g) => g.index,
        None => image.policy.select(&tags).index,
    };
    let selected = index.map(|i| &tags[i]);
    let digest: Option<Digest> = match (selected, image.digest, &gated) {
        (None, _, _) | (_, DigestMode::Never, _) => None,
        (Some(_), _, Some(g)) => g.digest.clone(),
        (Some(tag), DigestMode::IfNotPresent | DigestMode::Always, None) => Some(
            runtime
                .block_on(client.resolve_digest(&image.image, tag))
                .with_context(|| format!("digest of {tag}"))?,
        ),
    };
    let live = Live {
        policy: image.id.to_string(),
        image: image.image.as_str(),
        digest: digest.as_ref().map(Digest::as_str),
        gated: gated.map(|g| (g.index, g.stops)),
    };
    report(args, &image.policy, &tags, Some(&live))
}

/// What --policy adds to the result.
struct Live<'a> {
    policy: String,
    image: &'a str,
    digest: Option<&'a str>,
    /// With gates: the tag that passed them, and the better ones they stopped.
    gated: Option<(Option<usize>, Vec<Stop>)>,
}

fn report<S: AsRef<str> + Sync>(
    args: &EvalArgs,
    policy: &Policy,
    tags: &[S],
    live: Option<&Live<'_>>,
) -> anyhow::Result<Status> {
    let selection = policy.select(tags);
    let gated = live.and_then(|l| l.gated.as_ref());
    let index = gated.map_or(selection.index, |(i, _)| *i);
    let selected_tag = index.map(|i| tags[i].as_ref());
    let stops: &[Stop] = gated.map_or(&[], |(_, s)| s.as_slice());
    let verdicts = args.explain.then(|| describe(policy, tags, index, stops));
    let digest = live.and_then(|l| l.digest);

    let mut out = std::io::stdout().lock();
    match args.output {
        OutputFormat::Json => {
            let result = JsonResult {
                policy: live.map(|l| l.policy.clone()),
                image: live.map(|l| l.image),
                selected: selected_tag,
                digest,
                stats: &selection.stats,
                stopped: stops,
                tags: verdicts,
            };
            serde_json::to_writer_pretty(&mut out, &result)?;
            writeln!(out)?;
        }
        OutputFormat::Text => {
            for v in verdicts.iter().flatten() {
                let key = v
                    .key
                    .as_ref()
                    .map(|k| format!(" [key {k}]"))
                    .unwrap_or_default();
                writeln!(out, "{:<9} {}{key}: {}", v.verdict, v.tag, v.reason)?;
            }
            if !args.explain {
                for stop in stops {
                    writeln!(out, "stopped   {stop}")?;
                }
            }
            match (selected_tag, digest) {
                (Some(tag), Some(digest)) => writeln!(out, "{tag}@{digest}")?,
                (Some(tag), None) => writeln!(out, "{tag}")?,
                (None, _) => {}
            }
        }
    }
    if selection.stats.non_numeric > 0 {
        tracing::warn!(
            skipped = selection.stats.non_numeric,
            examples = ?selection.stats.non_numeric_examples,
            "numerical policy skipped non-numeric tags"
        );
    }
    match selected_tag {
        Some(_) => Ok(Status::Ok),
        None => {
            match live {
                Some(l) if !stops.is_empty() => eprintln!(
                    "tagsmith: {} {}: no tag passed the gates ({} stopped)",
                    l.policy,
                    l.image,
                    stops.len()
                ),
                Some(l) => eprintln!(
                    "tagsmith: {} {}: no tag selected from {}",
                    l.policy, l.image, selection.stats
                ),
                None => eprintln!("tagsmith: no tag selected from {}", selection.stats),
            }
            Ok(Status::Pending)
        }
    }
}

/// Each tag's verdict; `selected` is the policy's pick or, with gates, the best tag that
/// passed them, and a tag a gate stopped says which gate and why.
fn describe<'a, S: AsRef<str>>(
    policy: &Policy,
    tags: &'a [S],
    selected: Option<usize>,
    stops: &[Stop],
) -> Vec<JsonVerdict<'a>> {
    let explanation = policy.explain(tags);
    let winner = selected.map(|i| tags[i].as_ref());
    explanation
        .tags
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let stop = stops.iter().find(|s| s.tag == t.tag);
            let (verdict, reason) = match (t.outcome, stop) {
                (Ok(()), Some(stop)) => ("stopped", format!("{}: {}", stop.gate, stop.reason)),
                (Ok(()), None) if selected == Some(i) => {
                    let why = if stops.is_empty() {
                        "the best candidate"
                    } else {
                        "the best candidate that passed the gates"
                    };
                    ("selected", why.to_string())
                }
                (Ok(()), None) => match winner {
                    Some(w) => ("kept", format!("lost to {w}")),
                    None => ("kept", "not reached: a gate stopped the search".to_string()),
                },
                (Err(drop), _) => match drop {
                    Drop::Excluded(p) => (
                        "dropped",
                        format!(
                            "excluded by {:?}",
                            policy.exclude_pattern(p).unwrap_or_default()
                        ),
                    ),
                    drop => ("dropped", drop.to_string()),
                },
            };
            JsonVerdict {
                tag: t.tag,
                verdict,
                reason,
                key: t.key,
            }
        })
        .collect()
}
