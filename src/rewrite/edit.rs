//! Planning and splicing: sites plus selections give edits and changes; edits are applied in
//! one pass over the bytes.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::{Change, Finding, Lang, Part, Problem, ProblemKind, ScanResult, Site, Style, encode};
use crate::model::{ImageRef, PolicyId};

/// Replace `range` of the original bytes with `text`, which reads as `value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub range: Range<usize>,
    pub text: String,
    pub value: String,
    pub style: Style,
}

/// What to do to one file: its edits (sorted, disjoint), the changes they make, and the
/// problems found on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePlan {
    pub path: PathBuf,
    pub lang: Lang,
    pub sites: Vec<Site>,
    pub edits: Vec<Edit>,
    pub changes: Vec<Change>,
    pub problems: Vec<Problem>,
}

impl FilePlan {
    pub fn is_noop(&self) -> bool {
        self.edits.is_empty()
    }

    /// Keeps only the changes `keep` accepts, and their edits.
    pub fn retain_changes(&mut self, keep: impl Fn(&Change) -> bool) {
        let dropped: Vec<usize> = self
            .changes
            .iter()
            .filter(|c| !keep(c))
            .map(|c| c.line)
            .collect();
        if dropped.is_empty() {
            return;
        }
        self.changes.retain(|c| !dropped.contains(&c.line));
        // A marker is a line comment on its value's line: the line names the site.
        let ranges: Vec<Range<usize>> = self
            .sites
            .iter()
            .filter(|s| dropped.contains(&s.line))
            .map(|s| s.range.clone())
            .collect();
        self.edits.retain(|e| !ranges.contains(&e.range));
    }
}

/// The text a marker's part takes from a selection, or `None` when the selection lacks it.
pub fn value_for(part: Part, selection: &ImageRef) -> Option<String> {
    match part {
        Part::Full => Some(selection.to_string()),
        Part::Name => Some(selection.name.to_string()),
        Part::Tag => selection.tag.as_ref().map(ToString::to_string),
        Part::Digest => selection.digest.as_ref().map(ToString::to_string),
    }
}

/// Plans the edits for one scanned file. Sites already reading their new value are left
/// alone, so planning twice yields no edits the second time.
pub fn plan(
    path: &Path,
    lang: Lang,
    scanned: ScanResult,
    selections: &BTreeMap<PolicyId, ImageRef>,
) -> FilePlan {
    plan_allowed(path, lang, scanned, selections, |_| true)
}

/// [`plan`], where markers naming a policy that `allowed` refuses for this file (tenancy)
/// are reported and left as they are.
pub fn plan_allowed(
    path: &Path,
    lang: Lang,
    scanned: ScanResult,
    selections: &BTreeMap<PolicyId, ImageRef>,
    allowed: impl Fn(&PolicyId) -> bool,
) -> FilePlan {
    let mut problems: Vec<Problem> = scanned.problems.into_iter().map(|f| f.at(path)).collect();
    let mut edits = Vec::new();
    let mut changes = Vec::new();
    for site in &scanned.sites {
        if !allowed(&site.marker.policy) {
            problems.push(
                Finding {
                    line: site.line,
                    kind: ProblemKind::NotAllowed {
                        policy: site.marker.policy.clone(),
                    },
                }
                .at(path),
            );
            continue;
        }
        let Some(selection) = selections.get(&site.marker.policy) else {
            problems.push(
                Finding {
                    line: site.line,
                    kind: ProblemKind::UnknownPolicy {
                        policy: site.marker.policy.clone(),
                    },
                }
                .at(path),
            );
            continue;
        };
        let Some(new) = value_for(site.marker.part, selection) else {
            problems.push(
                Finding {
                    line: site.line,
                    kind: ProblemKind::MissingPart {
                        marker: site.marker.clone(),
                    },
                }
                .at(path),
            );
            continue;
        };
        // Equal values keep their bytes, so a second run plans nothing (idempotence).
        if new == site.value {
            continue;
        }
        let (style, text) = encode(lang, site.style, &new);
        edits.push(Edit {
            range: site.range.clone(),
            text,
            value: new.clone(),
            style,
        });
        changes.push(Change {
            file: path.to_path_buf(),
            line: site.line,
            policy: site.marker.policy.clone(),
            part: site.marker.part,
            old: site.value.clone(),
            new,
        });
    }
    edits.sort_by_key(|e| e.range.start);
    problems.sort_by_key(|p| p.line);
    FilePlan {
        path: path.to_path_buf(),
        lang,
        sites: scanned.sites,
        edits,
        changes,
        problems,
    }
}

/// Splices sorted, disjoint edits into `source` in one pass.
pub fn splice(source: &[u8], edits: &[Edit]) -> Vec<u8> {
    let grown: usize = edits.iter().map(|e| e.text.len()).sum();
    let mut out = Vec::with_capacity(source.len() + grown);
    let mut at = 0;
    for edit in edits {
        out.extend_from_slice(&source[at..edit.range.start]);
        out.extend_from_slice(edit.text.as_bytes());
        at = edit.range.end;
    }
    out.extend_from_slice(&source[at..]);
    out
}

/// Applies a plan to the bytes it was made from and verifies the result.
pub fn apply(source: &[u8], plan: &FilePlan) -> Result<Vec<u8>, super::VerifyError> {
    apply_with(source, plan, |output| {
        super::rescan(plan.lang, source, output, &plan.edits)
    })
}

/// [`apply`], where `scan_output` gives the scan of the spliced bytes; it must return what
/// [`super::scan`] would (a [`super::ScanCache`] lookup, or [`super::rescan`]).
pub fn apply_with(
    source: &[u8],
    plan: &FilePlan,
    scan_output: impl FnOnce(&[u8]) -> ScanResult,
) -> Result<Vec<u8>, super::VerifyError> {
    super::verify::check_edits(source.len(), &plan.edits)?;
    let output = splice(source, &plan.edits);
    super::verify_with(source, &output, &plan.sites, &plan.edits, || {
        scan_output(&output)
    })?;
    Ok(output)
}
