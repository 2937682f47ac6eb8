//! Property tests of the rewriter: for arbitrary, YAML-ish and CUE-ish input it never panics, output
//! differs from input only inside edit ranges, every edited site reads its new value, and a
//! second run has nothing to do.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use tagsmith::model::{ImageRef, PolicyId};
use tagsmith::rewrite::{
    Edit, Lang, ProblemKind, ScanCache, apply, apply_with, plan, rescan, scan,
};

const POLICIES: [&str; 3] = ["ns:a", "ns:b", "team-x:c"];
const SHA: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("ghcr.io/org/app:1.0.0".to_string()),
        Just("1.20".to_string()),
        Just("yes".to_string()),
        Just("'it''s'".to_string()),
        Just("\"q\\\"x\\u00e9\"".to_string()),
        Just("\"1.0\"".to_string()),
        Just("&anc ghcr.io/org/app:1".to_string()),
        Just("*anc".to_string()),
        Just("!!str v1".to_string()),
        Just("[a, ghcr.io/x:1]".to_string()),
        Just("{k: v, image: 'y:2'}".to_string()),
        Just("|".to_string()),
        Just(">-".to_string()),
        Just(String::new()),
        "[a-z0-9:./@-]{1,20}",
        "[ -~]{0,12}",
    ]
}

fn comment() -> impl Strategy<Value = String> {
    let policy = prop::sample::select(POLICIES.to_vec());
    let part = prop::sample::select(vec!["", ":tag", ":name", ":digest"]);
    prop_oneof![
        4 => (policy, part).prop_map(|(p, s)| format!(" # {{\"$imagepolicy\": \"{p}{s}\"}}")),
        1 => Just(" # {$imagepolicy: ns:a}".to_string()),
        1 => Just(" # plain comment".to_string()),
        1 => Just("\t#\t{\"$imagepolicy\":\"ns:b:tag\", \"x\": 1}  ".to_string()),
        2 => Just(String::new()),
    ]
}

fn line() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec!["image: ", "newTag: ", "tag:  ", "k:\t", "\"q k\": "]);
    let nested = prop::sample::select(vec!["\n  - ", "\n  image: ", "\n    - ", "\n- "]);
    prop_oneof![
        6 => (key.clone(), value(), comment()).prop_map(|(k, v, c)| format!("{k}{v}{c}")),
        4 => (key, nested, value(), comment()).prop_map(|(k, n, v, c)| format!("{}{n}{v}{c}", k.trim_end())),
        1 => Just("- ghcr.io/org/app:1 # {\"$imagepolicy\": \"ns:a\"}".to_string()),
        1 => Just("---".to_string()),
        1 => Just("...".to_string()),
        1 => Just(String::new()),
        1 => Just("# {\"$imagepolicy\": \"ns:a\"}".to_string()),
        1 => Just("s: |\n  text # {\"$imagepolicy\": \"ns:a\"}".to_string()),
        1 => "[ -~\t]{0,30}",
    ]
}

fn yamlish() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<bool>(),
        prop::sample::select(vec!["\n", "\r\n"]),
        prop::collection::vec(line(), 0..14),
        any::<bool>(),
    )
        .prop_map(|(bom, eol, lines, final_newline)| {
            let mut text = if bom {
                "\u{feff}".to_string()
            } else {
                String::new()
            };
            text.push_str(&lines.join(eol));
            if final_newline {
                text.push_str(eol);
            }
            text.into_bytes()
        })
}

fn selections() -> impl Strategy<Value = BTreeMap<PolicyId, ImageRef>> {
    let reference = prop::sample::select(vec![
        "ghcr.io/org/app:2.0.0".to_string(),
        "ghcr.io/org/app:1.20".to_string(),
        format!("ghcr.io/org/app:v3@{SHA}"),
        "localhost:5000/x:yes".to_string(),
        "nginx:0777".to_string(),
    ]);
    prop::collection::btree_map(prop::sample::select(POLICIES.to_vec()), reference, 0..3).prop_map(
        |m| {
            m.into_iter()
                .map(|(p, r)| (p.parse().unwrap(), r.parse().unwrap()))
                .collect()
        },
    )
}

/// Bytes outside the edit ranges, in order, must be the same in both files.
fn assert_only_edits_differ(old: &[u8], new: &[u8], edits: &[Edit]) {
    let mut old_at = 0;
    let mut new_at = 0;
    for e in edits {
        let kept = &old[old_at..e.range.start];
        assert_eq!(&new[new_at..new_at + kept.len()], kept);
        assert_eq!(
            &new[new_at + kept.len()..new_at + kept.len() + e.text.len()],
            e.text.as_bytes()
        );
        new_at += kept.len() + e.text.len();
        old_at = e.range.end;
    }
    assert_eq!(&new[new_at..], &old[old_at..]);
}

fn check(
    lang: Lang,
    source: &[u8],
    selections: &BTreeMap<PolicyId, ImageRef>,
) -> Result<(), TestCaseError> {
    let path = Path::new(if lang == Lang::Cue { "f.cue" } else { "f.yaml" });
    let scanned = scan(source, lang);
    let parsed = !scanned
        .problems
        .iter()
        .any(|p| p.kind == ProblemKind::Syntax);
    let planned = plan(path, lang, scanned.clone(), selections);
    let applied = apply(source, &planned);

    // The scan cache answers as scan does: on a miss, on a hit after a round trip through
    // its file format, and for the edited bytes it keeps while verifying.
    let cache = ScanCache::new();
    prop_assert_eq!(&cache.scan(source, lang), &scanned);
    let cache = ScanCache::from_bytes(&cache.to_bytes().unwrap()).unwrap();
    prop_assert_eq!(&cache.scan(source, lang), &scanned);
    let cached = apply_with(source, &planned, |out| {
        cache.rescan(lang, source, out, &planned.edits)
    });
    prop_assert_eq!(&cached, &applied);
    if let Ok(output) = &cached {
        let cache = ScanCache::from_bytes(&cache.to_bytes().unwrap()).unwrap();
        prop_assert_eq!(cache.scan(output, lang), scan(output, lang));
        prop_assert_eq!(cache.stats().misses, 0);
    }

    match applied {
        Ok(output) => {
            assert_only_edits_differ(source, &output, &planned.edits);
            prop_assert_eq!(output.is_empty() && !source.is_empty(), false);
            let rescanned = scan(&output, lang);
            // The incremental re-parse used by verification sees what a full parse sees.
            scan(source, lang);
            prop_assert_eq!(&rescan(lang, source, &output, &planned.edits), &rescanned);
            for (edit, change) in planned.edits.iter().zip(&planned.changes) {
                prop_assert!(
                    rescanned
                        .sites
                        .iter()
                        .any(|s| s.value == edit.value && s.line == change.line)
                );
            }
            let again = plan(path, lang, rescanned, selections);
            prop_assert!(again.edits.is_empty(), "second run edits {:?}", again.edits);
        }
        Err(err) => {
            // A file that parsed must stay parseable: the encoder never breaks the syntax.
            prop_assert!(
                !parsed || planned.edits.is_empty(),
                "verification failed: {err}"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn yamlish_input_rewrites_only_inside_edits(source in yamlish(), selections in selections()) {
        check(Lang::Yaml, &source, &selections)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(source in prop::collection::vec(any::<u8>(), 0..400), selections in selections()) {
        let mut source = source;
        // Give the bytes a chance to hold markers at all.
        source.extend_from_slice(b" # {\"$imagepolicy\": \"ns:a\"}");
        check(Lang::Yaml, &source, &selections)?;
    }

    #[test]
    fn cueish_input_rewrites_only_inside_edits(source in cueish(), selections in selections()) {
        check(Lang::Cue, &source, &selections)?;
    }

    #[test]
    fn arbitrary_bytes_as_cue_never_panic(source in prop::collection::vec(any::<u8>(), 0..400), selections in selections()) {
        let mut source = source;
        source.extend_from_slice(b" // {\"$imagepolicy\": \"ns:a\"}");
        check(Lang::Cue, &source, &selections)?;
    }
}

fn cue_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\"ghcr.io/org/app:1.0.0\"".to_string()),
        Just("#\"ghcr.io/org/app:1\"#".to_string()),
        Just("##\"a\"#b\\#c\"##".to_string()),
        Just("\"\"\"\n\tghcr.io/org/app:1\n\t\"\"\"".to_string()),
        Just("#\"\"\"\n    a\\#tb\n  \"\"\"#".to_string()),
        Just("\"\"\"\n\t\"\"\"".to_string()),
        Just("\"\\(x)/app:1\"".to_string()),
        Just("\"q\\\"x\\u00e9\\/\"".to_string()),
        Just("\"\"".to_string()),
        Just("x".to_string()),
        Just("1.20".to_string()),
        Just("*\"a:1\" | string".to_string()),
        Just("string & \"a:1\"".to_string()),
        Just("{image: \"y:2\"}".to_string()),
        Just("[\"a:1\", \"b:2\"]".to_string()),
        Just("'bytes'".to_string()),
        "\"[a-z0-9:./@-]{0,20}\"",
        "[ -~]{0,12}",
    ]
}

fn cue_comment() -> impl Strategy<Value = String> {
    let policy = prop::sample::select(POLICIES.to_vec());
    let part = prop::sample::select(vec!["", ":tag", ":name", ":digest"]);
    prop_oneof![
        4 => (policy, part).prop_map(|(p, s)| format!(" // {{\"$imagepolicy\": \"{p}{s}\"}}")),
        1 => Just(" // {$imagepolicy: ns:a}".to_string()),
        1 => Just(" // plain comment".to_string()),
        1 => Just("\t//{\"$imagepolicy\":\"ns:b:tag\", \"x\": 1}  ".to_string()),
        2 => Just(String::new()),
    ]
}

fn cue_line() -> impl Strategy<Value = String> {
    let label = prop::sample::select(vec![
        "image: ",
        "tag:\t",
        "a: b: ",
        "\"q k\": ",
        "_h: ",
        "#D: ",
    ]);
    prop_oneof![
        8 => (label, cue_value(), cue_comment()).prop_map(|(l, v, c)| format!("{l}{v}{c}")),
        2 => (cue_value(), cue_comment()).prop_map(|(v, c)| format!("l: [\n\t{v},{c}\n]")),
        1 => Just("#Def: {\n\timage: \"ghcr.io/org/app:1\" // {\"$imagepolicy\": \"ns:a\"}\n}".to_string()),
        1 => Just("for k, v in {x: 1} {\n\t\"\\(k)\": image: \"a:1\" // {\"$imagepolicy\": \"ns:b\"}\n}".to_string()),
        1 => Just("t: \"\"\"\n\tx // {\"$imagepolicy\": \"ns:a\"}\n\t\"\"\"".to_string()),
        1 => Just("// {\"$imagepolicy\": \"ns:a\"}".to_string()),
        1 => Just(String::new()),
        1 => "[ -~\t]{0,30}",
    ]
}

fn cueish() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(vec!["\n", "\r\n"]),
        prop::collection::vec(cue_line(), 0..12),
        any::<bool>(),
    )
        .prop_map(|(eol, lines, final_newline)| {
            let mut text = lines.join("\n");
            if final_newline {
                text.push('\n');
            }
            text.replace('\n', eol).into_bytes()
        })
}

/// The generator must reach the interesting paths, or the properties above prove little.
#[test]
fn generator_produces_edits_and_problems() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    for lang in [Lang::Yaml, Lang::Cue] {
        let (mut with_edits, mut with_problems) = (0, 0);
        for _ in 0..300 {
            let source = match lang {
                Lang::Yaml => yamlish().new_tree(&mut runner).unwrap().current(),
                Lang::Cue => cueish().new_tree(&mut runner).unwrap().current(),
            };
            let selections = selections().new_tree(&mut runner).unwrap().current();
            let planned = plan(Path::new("f"), lang, scan(&source, lang), &selections);
            with_edits += usize::from(!planned.edits.is_empty());
            with_problems += usize::from(!planned.problems.is_empty());
        }
        assert!(
            with_edits >= 30,
            "{lang:?}: only {with_edits} of 300 generated files had edits"
        );
        assert!(
            with_problems >= 30,
            "{lang:?}: only {with_problems} of 300 generated files had problems"
        );
    }
}
