//! Any bytes as a CUE file: scanning, planning and applying never panic, a successful
//! apply changes bytes only inside edit ranges, a file that parsed still parses after its
//! edits, and a second run has nothing to do.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tagsmith::model::{ImageRef, PolicyId};
use tagsmith::rewrite::{Lang, ProblemKind, apply, plan, scan};

const SHA: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn selections(choice: u8) -> BTreeMap<PolicyId, ImageRef> {
    let refs = [
        "ghcr.io/org/app:2.0.0".to_string(),
        "ghcr.io/org/app:1.20".to_string(),
        format!("ghcr.io/org/app:v3@{SHA}"),
        "localhost:5000/x:yes".to_string(),
    ];
    let policies = ["ns:a", "ns:b", "team-x:c"];
    policies
        .iter()
        .enumerate()
        .filter(|(i, _)| choice & (1 << i) != 0)
        .filter_map(|(i, p)| {
            let r = &refs[(usize::from(choice >> 4) + i) % refs.len()];
            Some((p.parse().ok()?, r.parse().ok()?))
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, source)) = data.split_first() else {
        return;
    };
    let selections = selections(choice);
    let path = Path::new("f.cue");
    let scanned = scan(source, Lang::Cue);
    let parsed = !scanned.problems.iter().any(|p| p.kind == ProblemKind::Syntax);
    let planned = plan(path, Lang::Cue, scanned, &selections);
    let output = match apply(source, &planned) {
        Ok(output) => output,
        Err(err) => {
            // The encoder must never turn a valid file into one that fails verification.
            assert!(!parsed || planned.edits.is_empty(), "{err}");
            return;
        }
    };
    let mut old_at = 0;
    let mut new_at = 0;
    for edit in &planned.edits {
        let kept = &source[old_at..edit.range.start];
        assert_eq!(&output[new_at..new_at + kept.len()], kept);
        new_at += kept.len() + edit.text.len();
        old_at = edit.range.end;
    }
    assert_eq!(&output[new_at..], &source[old_at..]);
    let again = plan(path, Lang::Cue, scan(&output, Lang::Cue), &selections);
    assert!(again.edits.is_empty());
});
