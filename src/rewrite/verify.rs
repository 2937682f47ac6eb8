//! Proof that an edit did only what it should: the output parses, every site reads its
//! expected value, and every byte outside the edit ranges is the same.

use thiserror::Error;

use super::{Edit, Lang, ProblemKind, ScanResult, Site, Style, rescan};

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum VerifyError {
    #[error("edits overlap or fall outside the file")]
    Edits,
    #[error("the edited file does not parse (line {line})")]
    Reparse { line: usize },
    #[error("bytes outside the edits differ near offset {offset}")]
    Outside { offset: usize },
    #[error("the edited file has {after} marked sites, the original {before}")]
    SiteCount { before: usize, after: usize },
    #[error("line {line}: expected {expected:?}, the edited file reads {found:?}")]
    Value {
        line: usize,
        expected: String,
        found: String,
    },
    #[error("line {line}: the new plain value does not read as a string")]
    NotString { line: usize },
}

/// Edits must be sorted, disjoint and inside the file.
pub(crate) fn check_edits(len: usize, edits: &[Edit]) -> Result<(), VerifyError> {
    let mut at = 0;
    for edit in edits {
        if edit.range.start < at || edit.range.start > edit.range.end || edit.range.end > len {
            return Err(VerifyError::Edits);
        }
        at = edit.range.end;
    }
    Ok(())
}

pub fn verify(
    lang: Lang,
    old: &[u8],
    new: &[u8],
    sites: &[Site],
    edits: &[Edit],
) -> Result<(), VerifyError> {
    verify_with(old, new, sites, edits, || rescan(lang, old, new, edits))
}

/// [`verify`], where `scan_new` gives the scan of `new` (from a cache, say); it is only
/// called once the cheap byte checks have passed.
pub fn verify_with(
    old: &[u8],
    new: &[u8],
    sites: &[Site],
    edits: &[Edit],
    scan_new: impl FnOnce() -> ScanResult,
) -> Result<(), VerifyError> {
    check_edits(old.len(), edits)?;
    outside_unchanged(old, new, edits)?;

    let rescanned = scan_new();
    if let Some(p) = rescanned
        .problems
        .iter()
        .find(|p| p.kind == ProblemKind::Syntax)
    {
        return Err(VerifyError::Reparse { line: p.line });
    }
    if rescanned.sites.len() != sites.len() {
        return Err(VerifyError::SiteCount {
            before: sites.len(),
            after: rescanned.sites.len(),
        });
    }
    // Sites and edits are both in file order: one pass over the edits, so a file with 100,000
    // markers is not checked in quadratic time.
    let mut shift = Shift::default();
    for (before, after) in sites.iter().zip(&rescanned.sites) {
        let (edit, start) = shift.to(before, edits);
        let expected = edit.map_or(before.value.as_str(), |e| e.value.as_str());
        if after.marker != before.marker || after.value != expected || after.range.start != start {
            return Err(VerifyError::Value {
                line: before.line,
                expected: expected.to_string(),
                found: after.value.clone(),
            });
        }
        if edit.is_some_and(|e| e.style == Style::Plain) && !after.is_string {
            return Err(VerifyError::NotString { line: before.line });
        }
    }
    Ok(())
}

fn outside_unchanged(old: &[u8], new: &[u8], edits: &[Edit]) -> Result<(), VerifyError> {
    let mut old_at = 0;
    let mut new_at = 0;
    for edit in edits {
        let kept = &old[old_at..edit.range.start];
        if new.get(new_at..new_at + kept.len()) != Some(kept) {
            return Err(VerifyError::Outside { offset: old_at });
        }
        new_at += kept.len() + edit.text.len();
        old_at = edit.range.end;
    }
    if new.get(new_at..) != Some(&old[old_at..]) {
        return Err(VerifyError::Outside { offset: old_at });
    }
    Ok(())
}

/// Walks the edits alongside sites in file order: how far each site moves, and its own edit.
#[derive(Default)]
struct Shift {
    /// Edits wholly before the current site.
    passed: usize,
    delta: isize,
    /// Sites out of order (never from a scan) fall back to a search from the start.
    last_start: usize,
}

impl Shift {
    fn to<'e>(&mut self, site: &Site, edits: &'e [Edit]) -> (Option<&'e Edit>, usize) {
        let offset = site.range.start;
        if offset < self.last_start {
            *self = Self::default();
        }
        self.last_start = offset;
        // An edit starting at `offset` is that site's own, even when it is empty (a CUE `""`).
        while let Some(e) = edits.get(self.passed)
            && e.range.end <= offset
            && e.range.start < offset
        {
            self.delta += e.text.len() as isize - e.range.len() as isize;
            self.passed += 1;
        }
        let own = edits[self.passed.min(edits.len())..]
            .iter()
            .take_while(|e| e.range.start == offset)
            .find(|e| e.range == site.range);
        (own, (offset as isize + self.delta).max(0) as usize)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;
    use crate::rewrite::{apply, plan, scan};

    const SRC: &str = "a: ghcr.io/o/app:1 # {\"$imagepolicy\": \"ns:a\"}\nb: x\n";

    fn planned() -> crate::rewrite::FilePlan {
        let selections =
            BTreeMap::from([("ns:a".parse().unwrap(), "ghcr.io/o/app:2".parse().unwrap())]);
        plan(
            Path::new("f.yaml"),
            Lang::Yaml,
            scan(SRC.as_bytes(), Lang::Yaml),
            &selections,
        )
    }

    #[test]
    fn a_good_edit_passes() {
        let plan = planned();
        let out = apply(SRC.as_bytes(), &plan).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            SRC.replace("app:1", "app:2")
        );
    }

    #[test]
    fn an_edit_that_breaks_the_syntax_is_caught() {
        let mut plan = planned();
        plan.edits[0].text = "[unclosed".into();
        assert!(matches!(
            apply(SRC.as_bytes(), &plan),
            Err(VerifyError::Reparse { .. })
        ));
    }

    #[test]
    fn an_edit_that_reads_otherwise_is_caught() {
        let mut plan = planned();
        plan.edits[0].text = "'ghcr.io/o/app:3'".into();
        assert!(matches!(
            apply(SRC.as_bytes(), &plan),
            Err(VerifyError::Value { .. })
        ));
        let mut plan = planned();
        plan.edits[0].value = "1.5".into();
        plan.edits[0].text = "1.5".into();
        assert!(matches!(
            apply(SRC.as_bytes(), &plan),
            Err(VerifyError::NotString { .. })
        ));
    }

    #[test]
    fn changed_bytes_outside_the_edits_are_caught() {
        let plan = planned();
        let mut out = apply(SRC.as_bytes(), &plan).unwrap();
        let last = out.len() - 2;
        out[last] = b'y';
        let err = verify(Lang::Yaml, SRC.as_bytes(), &out, &plan.sites, &plan.edits).unwrap_err();
        assert!(matches!(err, VerifyError::Outside { .. }), "{err}");
    }

    #[test]
    fn overlapping_edits_are_refused() {
        let mut plan = planned();
        let twice = plan.edits[0].clone();
        plan.edits.push(twice);
        assert_eq!(apply(SRC.as_bytes(), &plan), Err(VerifyError::Edits));
    }
}
