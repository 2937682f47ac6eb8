//! `tagsmith policy eval`: run a policy over tags read from stdin.

use std::io::{BufRead, Write};

use anyhow::Context as _;
use clap::{ArgGroup, Args, Subcommand};
use serde::Serialize;

use super::{OutputFormat, Status};
use crate::policy::{Drop, FilterSpec, Order, Policy, PolicySpec, RuleSpec};

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Select a tag from the tags on stdin (one a line), as an image policy would.
    ///
    /// Prints the selected tag and exits 0; exits 1 when no tag is selected, 2 when the policy
    /// is invalid.
    Eval(EvalArgs),
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("rule").required(true).args(["semver", "alphabetical", "numerical"])))]
pub struct EvalArgs {
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
struct JsonResult<'a> {
    selected: Option<&'a str>,
    stats: &'a crate::policy::Stats,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<Vec<JsonVerdict<'a>>>,
}

#[derive(Debug, Serialize)]
struct JsonVerdict<'a> {
    tag: &'a str,
    verdict: &'static str,
    reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
}

fn eval(args: EvalArgs) -> anyhow::Result<Status> {
    let policy = Policy::new(&spec(&args))?;
    let tags = read_tags(std::io::stdin().lock())?;
    let selection = policy.select(&tags);
    let verdicts = args.explain.then(|| describe(&policy, &tags));

    let mut out = std::io::stdout().lock();
    match args.output {
        OutputFormat::Json => {
            let result = JsonResult {
                selected: selection.tag,
                stats: &selection.stats,
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
            if let Some(tag) = selection.tag {
                writeln!(out, "{tag}")?;
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
    match selection.tag {
        Some(_) => Ok(Status::Ok),
        None => {
            eprintln!("tagsmith: no tag selected from {}", selection.stats);
            Ok(Status::Pending)
        }
    }
}

fn describe<'a>(policy: &Policy, tags: &'a [String]) -> Vec<JsonVerdict<'a>> {
    let explanation = policy.explain(tags);
    let winner = explanation.selected.map(|i| tags[i].as_str());
    explanation
        .tags
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let (verdict, reason) = match t.outcome {
                Ok(()) if explanation.selected == Some(i) => {
                    ("selected", "the best candidate".to_string())
                }
                Ok(()) => ("kept", format!("lost to {}", winner.unwrap_or_default())),
                Err(Drop::Excluded(p)) => (
                    "dropped",
                    format!(
                        "excluded by {:?}",
                        policy.exclude_pattern(p).unwrap_or_default()
                    ),
                ),
                Err(drop) => ("dropped", drop.to_string()),
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
