//! `tagsmith check -c tagsmith.yaml [DIR]`: validate the config and, given a checkout, every
//! marker in it (unknown policies, near-misses, tenancy violations, values that cannot be set).
//! With `--flux PATH...` it first lists everything the Flux objects say that tagsmith cannot do.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::json;

use super::{OutputFormat, Status, inputs};
use crate::config::flux::Compiled;
use crate::config::{Config, ConfigError, Target};
use crate::model::{Digest, ImageRef, PolicyId};
use crate::rewrite::ProblemKind;
use crate::rewrite::walk::{Mode, rewrite_tree_allowed};

/// One problem as reported: which target's rules found it, and where.
#[derive(Debug, PartialEq, Eq)]
struct Found {
    scope: String,
    severity: &'static str,
    file: String,
    /// 1-based; 0 when it concerns the whole file.
    line: usize,
    message: String,
}

/// The target DIR is a checkout of: the only one, or the one whose `git.url` is DIR's `origin`.
/// Checking against every target would report each problem once per target, and apply rules
/// (paths, tenancy) meant for other repositories.
fn target_of_checkout<'c>(config: &'c Config, dir: &Path) -> anyhow::Result<&'c Target> {
    if let [only] = config.targets.as_slice() {
        return Ok(only);
    }
    crate::git::ready();
    let origin = git2::Repository::discover(dir).ok().and_then(|repo| {
        repo.find_remote("origin")
            .ok()
            .and_then(|r| r.url().ok().map(str::to_string))
    });
    let names = || {
        config
            .targets
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(origin) = origin else {
        bail!(
            "{} has no origin remote to match against the targets of {}; name one with --target ({})",
            dir.display(),
            config.path.display(),
            names()
        );
    };
    let wanted = normalise_url(&origin);
    let matching: Vec<&Target> = config
        .targets
        .iter()
        .filter(|t| normalise_url(&t.git.url) == wanted)
        .collect();
    match matching.as_slice() {
        [one] => Ok(one),
        [] => bail!(
            "no target of {} has git.url {}; name one with --target ({})",
            config.path.display(),
            crate::git::redact_url(&origin),
            names()
        ),
        several => bail!(
            "several targets of {} read {}; name one with --target ({})",
            config.path.display(),
            crate::git::redact_url(&origin),
            several
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A remote URL reduced to host and path, so `https://host/org/r.git`, `ssh://git@host/org/r`
/// and `git@host:org/r.git` compare equal; local paths and `file://` compare as paths.
fn normalise_url(url: &str) -> String {
    let url = url.trim();
    let (rest, scheme) = match url.split_once("://") {
        Some((scheme, rest)) => (rest, Some(scheme.to_ascii_lowercase())),
        None => (url, None),
    };
    if scheme.as_deref() == Some("file")
        || (scheme.is_none() && (rest.starts_with('/') || rest.starts_with('.')))
    {
        let path = Path::new(rest);
        let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let text = path.to_string_lossy();
        return text
            .trim_end_matches('/')
            .trim_end_matches(".git")
            .to_string();
    }
    // Drop any user name; scp-like `host:path` becomes `host/path`.
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let (host, path) = match (scheme, rest.split_once('/')) {
        (None, _) => rest.split_once(':').unwrap_or((rest, "")),
        (Some(_), Some((host, path))) => (host, path),
        (Some(_), None) => (rest, ""),
    };
    // Default ports say nothing about which repository it is.
    let host = host
        .trim_end_matches(":443")
        .trim_end_matches(":22")
        .to_ascii_lowercase();
    let path = path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    format!("{host}/{path}")
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The configuration file (default: tagsmith.yaml, unless --flux is given).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub flux: super::inputs::FluxArgs,
    /// A checkout of a target's repository whose markers to check (put it before --flux, which
    /// takes every path after it).
    pub dir: Option<PathBuf>,
    /// The target whose paths and tenancy apply to DIR (default: the only target, or the one
    /// whose git.url is DIR's origin remote; the whole tree when the config has none).
    #[arg(long, value_name = "NAME")]
    pub target: Option<String>,
    /// Results as text for people or one JSON document for scripts.
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// A stand-in selection per configured policy: planning against it exercises every marker
/// (including `:digest`) and the verification of the edit, without a registry.
fn probe_selections(config: &Config) -> anyhow::Result<BTreeMap<PolicyId, ImageRef>> {
    let digest: Digest = format!("sha256:{}", "0".repeat(64)).parse()?;
    config
        .images
        .iter()
        .map(|i| {
            Ok((
                i.id.clone(),
                ImageRef {
                    name: i.image.clone(),
                    tag: Some("tagsmith-check".parse()?),
                    digest: Some(digest.clone()),
                },
            ))
        })
        .collect()
}

/// Lists the Flux objects' diagnostics as text; as JSON, returns them with the model built
/// from them, for the command's one JSON document.
fn flux_report(compiled: &Compiled, output: OutputFormat) -> serde_json::Value {
    match output {
        OutputFormat::Text => {
            for d in &compiled.diagnostics {
                println!("{d}");
            }
            println!(
                "{} Flux file(s): {} image(s), {} target(s), {} receiver(s), {} diagnostic(s)",
                compiled.files.len(),
                compiled.doc.images.len(),
                compiled.doc.targets.len(),
                compiled.doc.receivers.len(),
                compiled.diagnostics.len()
            );
            serde_json::Value::Null
        }
        OutputFormat::Json => json!({
            "files": compiled.files,
            "valid": !compiled.has_errors(),
            "diagnostics": compiled.diagnostics,
            "model": compiled.doc,
        }),
    }
}

/// The Argo CD Applications' diagnostics and model, as [`flux_report`] does for Flux.
fn argocd_report(
    compiled: &crate::config::argocd::Compiled,
    output: OutputFormat,
) -> serde_json::Value {
    let writebacks: Vec<serde_json::Value> = compiled
        .writebacks
        .iter()
        .flat_map(|(target, list)| {
            list.iter().map(move |wb| {
                json!({
                    "target": target,
                    "application": wb.application,
                    "file": wb.file,
                    "kind": match wb.kind {
                        crate::writeback::Kind::SourceKustomize { .. } => "argocd-source-kustomize",
                        crate::writeback::Kind::SourceHelm => "argocd-source-helm",
                        crate::writeback::Kind::Kustomization { .. } => "kustomization",
                        crate::writeback::Kind::HelmValues => "helmvalues",
                    },
                    "policies": wb.images.iter().map(|i| i.policy.to_string()).collect::<Vec<_>>(),
                })
            })
        })
        .collect();
    match output {
        OutputFormat::Text => {
            for d in &compiled.diagnostics {
                println!("{d}");
            }
            for wb in &writebacks {
                println!(
                    "write-back: {} -> {} ({}) in target {}",
                    wb["application"].as_str().unwrap_or_default(),
                    wb["file"].as_str().unwrap_or_default(),
                    wb["kind"].as_str().unwrap_or_default(),
                    wb["target"].as_str().unwrap_or_default()
                );
            }
            println!(
                "{} Argo CD file(s): {} image(s), {} target(s), {} write-back(s), {} diagnostic(s)",
                compiled.files.len(),
                compiled.doc.images.len(),
                compiled.doc.targets.len(),
                writebacks.len(),
                compiled.diagnostics.len()
            );
            serde_json::Value::Null
        }
        OutputFormat::Json => json!({
            "files": compiled.files,
            "valid": !compiled.has_errors(),
            "diagnostics": compiled.diagnostics,
            "model": compiled.doc,
            "writebacks": writebacks,
        }),
    }
}

/// An input's problem count and report, or the error that stops the check when the input
/// has errors (`key` names its report in the JSON document, `what` the input in the error).
fn input_report(
    has_errors: bool,
    problems: usize,
    report: serde_json::Value,
    (key, what): (&str, &str),
    output: OutputFormat,
) -> anyhow::Result<(usize, serde_json::Value)> {
    if has_errors {
        if output == OutputFormat::Json {
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({ "valid": false, key: report }))?
            );
        }
        bail!("{what} have errors (listed above)");
    }
    Ok((problems, report))
}

pub fn run(args: CheckArgs) -> anyhow::Result<Status> {
    let inputs = match inputs::read(args.config.as_deref(), &args.flux) {
        Ok(inputs) => inputs,
        Err(err) => return Err(invalid_config(err, args.output)?),
    };
    let (flux_problems, flux_json) = match &inputs.flux {
        Some(compiled) => input_report(
            compiled.has_errors(),
            compiled.diagnostics.len(),
            flux_report(compiled, args.output),
            ("flux", "the Flux objects"),
            args.output,
        )?,
        None => (0, serde_json::Value::Null),
    };
    let (argocd_problems, argocd_json) = match &inputs.argocd {
        Some(compiled) => input_report(
            compiled.has_errors(),
            compiled.diagnostics.len(),
            argocd_report(compiled, args.output),
            ("argocd", "the Argo CD Applications"),
            args.output,
        )?,
        None => (0, serde_json::Value::Null),
    };
    let flux_problems = flux_problems + argocd_problems;
    let config = inputs.config()?;
    let config_name = config.path.clone();
    let Some(dir) = &args.dir else {
        match args.output {
            OutputFormat::Text => println!(
                "{}: valid ({} images, {} targets)",
                config_name.display(),
                config.images.len(),
                config.targets.len()
            ),
            OutputFormat::Json => println!(
                "{}",
                json!({ "config": config_name.display().to_string(), "valid": true, "problems": [], "flux": flux_json, "argocd": argocd_json })
            ),
        }
        return Ok(if flux_problems == 0 {
            Status::Ok
        } else {
            Status::Pending
        });
    };
    let targets: Vec<Option<&Target>> = match &args.target {
        Some(name) => match config.targets.iter().find(|t| &t.name == name) {
            Some(t) => vec![Some(t)],
            None => bail!(
                "no target named {name} in {}{}",
                config_name.display(),
                crate::config::suggest::did_you_mean(
                    name,
                    config.targets.iter().map(|t| t.name.as_str())
                )
            ),
        },
        None if config.targets.is_empty() => vec![None],
        None => vec![Some(target_of_checkout(&config, dir)?)],
    };
    let selections = probe_selections(&config)?;
    let ids: Vec<String> = config.images.iter().map(|i| i.id.to_string()).collect();
    let mut problems = Vec::new();
    let mut markers = 0;
    for target in targets {
        let (paths, label) = match target {
            Some(t) => (t.paths.clone(), format!("target {}", t.name)),
            None => (Vec::new(), "tree".to_string()),
        };
        let allow = |path: &std::path::Path, policy: &PolicyId| {
            target.is_none_or(|t| {
                t.allows_policy(policy)
                    && t.tenancy
                        .allows(&path.to_string_lossy(), policy.namespace())
            })
        };
        let report = rewrite_tree_allowed(dir, &paths, &selections, Mode::DryRun, &allow, None)
            .with_context(|| format!("cannot check {}", dir.display()))?;
        markers += report.changes.len();
        for p in report.problems {
            let severity = if p.kind.is_error() {
                "error"
            } else {
                "warning"
            };
            let mut message = p.to_string();
            if let ProblemKind::UnknownPolicy { policy } = &p.kind {
                message.push_str(&crate::config::suggest::did_you_mean(
                    &policy.to_string(),
                    ids.iter().map(String::as_str),
                ));
            }
            problems.push(Found {
                scope: label.clone(),
                severity,
                file: p.path.display().to_string(),
                line: p.line,
                message,
            });
        }
    }
    problems.dedup();
    match args.output {
        OutputFormat::Text => {
            for p in &problems {
                println!("{}: {}: {}", p.severity, p.scope, p.message);
            }
            println!("{markers} marker(s) checked, {} problem(s)", problems.len());
        }
        OutputFormat::Json => {
            let list: Vec<_> = problems
                .iter()
                .map(|p| {
                    // `line` 0 means the whole file: then there is no line to give.
                    let line = (p.line > 0).then_some(p.line);
                    json!({ "scope": p.scope, "severity": p.severity, "file": p.file, "line": line, "message": p.message })
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &json!({ "valid": problems.is_empty(), "markers": markers, "problems": list, "flux": flux_json, "argocd": argocd_json })
                )?
            );
        }
    }
    Ok(if problems.is_empty() && flux_problems == 0 {
        Status::Ok
    } else {
        Status::Pending
    })
}

/// An invalid config with `--output json`: its problems as one JSON document on stdout, with
/// `file`, `line` and `column` as fields; the error still ends the command (exit 2).
fn invalid_config(err: anyhow::Error, output: OutputFormat) -> anyhow::Result<anyhow::Error> {
    if output == OutputFormat::Json
        && let Some(ConfigError::Invalid { problems }) = err.downcast_ref::<ConfigError>()
    {
        let list: Vec<_> = problems
            .iter()
            .map(|p| {
                let (line, column) = if p.line == 0 {
                    (None, None)
                } else {
                    (Some(p.line), Some(p.column))
                };
                json!({ "scope": "config", "severity": "error", "file": p.path.display().to_string(), "line": line, "column": column, "message": p.message })
            })
            .collect();
        let file = problems
            .first()
            .map(|p| p.path.display().to_string())
            .unwrap_or_default();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({ "config": file, "valid": false, "problems": list })
            )?
        );
    }
    Ok(err)
}

#[cfg(test)]
mod tests {
    use super::normalise_url;

    #[test]
    fn remote_urls_of_one_repository_compare_equal() {
        let same = [
            "https://git.example.com/org/repo.git",
            "https://GIT.example.com:443/org/repo/",
            "ssh://git@git.example.com/org/repo.git",
            "ssh://git@git.example.com:22/org/repo",
            "git@git.example.com:org/repo.git",
            "http://user@git.example.com/org/repo",
        ];
        for url in same {
            assert_eq!(normalise_url(url), "git.example.com/org/repo", "{url}");
        }
        assert_ne!(
            normalise_url("https://git.example.com/org/other.git"),
            normalise_url(same[0])
        );
        assert_ne!(
            normalise_url("https://git.example.com:8443/org/repo"),
            normalise_url(same[0])
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap();
        assert_eq!(
            normalise_url(&format!("file://{path}")),
            normalise_url(path)
        );
        assert_eq!(normalise_url(&format!("{path}/")), normalise_url(path));
    }
}
