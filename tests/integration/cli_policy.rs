#![allow(clippy::unwrap_used)]

//! `tagsmith policy eval` through the real binary: stdin in, stdout/exit code out.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn eval(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tagsmith"))
        .args(["policy", "eval"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that fails on its arguments exits before reading stdin: a broken pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[test]
fn prints_the_selected_tag_and_exits_zero() {
    let o = eval(
        &["--semver", ">=1.0.0 <2.0.0"],
        "0.9.0\r\n1.4.2\r\n2.0.0\r\n\r\n  1.10.0  \n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "1.10.0\n");
}

#[test]
fn nothing_selected_exits_one_with_a_reason() {
    let o = eval(&["--semver", "^3"], "1.0.0\nlatest\n");
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "");
    let err = stderr(&o);
    assert!(
        err.contains("no tag selected from 2 tags") && err.contains("1 not semver"),
        "{err}"
    );
}

#[test]
fn empty_input_exits_one() {
    let o = eval(&["--alphabetical", "asc"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("from 0 tags"));
}

#[test]
fn invalid_policies_exit_two_naming_the_bad_part() {
    let o = eval(&["--semver", ">= bar"], "1.0.0\n");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(r#"invalid semver range ">= bar": unexpected "bar" at column 4"#),
        "{}",
        stderr(&o)
    );

    let o = eval(
        &["--alphabetical", "asc", "--filter", "^test-(.*"],
        "test-1\n",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("invalid filter pattern"),
        "{}",
        stderr(&o)
    );

    let o = eval(&["--numerical", "sideways"], "1\n");
    assert_eq!(o.status.code(), Some(2));

    let o = eval(&["--semver", "*", "--numerical", "asc"], "1\n");
    assert_eq!(o.status.code(), Some(2), "two rules at once are refused");
}

#[test]
fn explain_says_why_for_every_tag() {
    let o = eval(
        &["--semver", "1.0.x", "--explain"],
        "v1.0.0\n1.0.1\n1.2.0\n1.0.2-rc.1\nlatest\n1.0.1.sig\n",
    );
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 7, "{out}");
    assert!(
        lines[0].starts_with("kept") && lines[0].contains("lost to 1.0.1"),
        "{out}"
    );
    assert!(lines[1].starts_with("selected") && lines[1].contains("1.0.1"));
    assert!(lines[2].contains("outside the range"));
    assert!(lines[3].contains("prerelease"));
    assert!(lines[4].contains("not semver"));
    assert!(lines[5].contains(r#"excluded by "^.*\\.sig$""#), "{out}");
    assert_eq!(lines[6], "1.0.1");
}

#[test]
fn json_output_with_extracted_keys() {
    let o = eval(
        &[
            "--numerical",
            "asc",
            "--filter",
            r"^main-[0-9a-f]+-(?P<ts>\d+)$",
            "--extract",
            "$ts",
            "--explain",
            "--output",
            "json",
        ],
        "main-abc-100\nmain-def-200\nfeature-x\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["selected"], "main-def-200");
    assert_eq!(v["stats"]["filteredOut"], 1);
    assert_eq!(v["tags"][0]["key"], "100");
    assert_eq!(v["tags"][1]["verdict"], "selected");
    assert_eq!(v["tags"][2]["reason"], "filtered out");
}

#[test]
fn issue_14_examples_select_what_flux_selects() {
    // Each expected tag is Flux's answer, from the code cited in tests/conformance/policy.yaml.
    for (args, stdin, want) in [
        // fluxcd/pkg version.ParseVersion + Masterminds coerceNewVersion.
        (
            &["--semver", ">=16.0.0-0"][..],
            "16.1-alpine3.19\n16.0.0\n",
            "16.1-alpine3.19\n",
        ),
        // Tags stored descending; semver keeps the first of equal versions.
        (&["--semver", "*"][..], "1.2.3\nv1.2.3\n", "v1.2.3\n"),
        (&["--semver", "*"][..], "v1.2.3\n1.2.3\n", "v1.2.3\n"),
        // filter.go's map keeps the last of an identical key: the byte-wise smallest.
        (
            &[
                "--alphabetical",
                "asc",
                "--filter",
                "^(a|b)-(.*)$",
                "--extract",
                "$2",
            ][..],
            "b-x\na-x\n",
            "a-x\n",
        ),
        // numerical.go keeps the last of equal numbers.
        (&["--numerical", "asc"][..], "01\n1.00\n1.0\n", "01\n"),
        (&["--numerical", "asc"][..], "1.0\n01\n1.00\n", "01\n"),
        // strconv.ParseFloat accepts underscores between digits.
        (
            &["--numerical", "asc"][..],
            "20240101_1200\n999\n",
            "20240101_1200\n",
        ),
        // GetExclusionList: no list given means the default one.
        (&["--alphabetical", "asc"][..], "a\nz.sig\n", "a\n"),
    ] {
        let o = eval(args, stdin);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert_eq!(stdout(&o), want, "{args:?} on {stdin:?}");
    }
}

#[test]
fn patterns_and_templates_go_reads_differently_are_refused_naming_why() {
    let o = eval(&["--alphabetical", "asc", "--exclude", r"(?x) ^a"], "a\n");
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("invalid exclude pattern") && err.contains("the flag `x` is not in Go's"),
        "{err}"
    );

    // `$01` names a group called 01, which the pattern lacks: it expands to nothing, as Go's
    // Regexp.Expand does, so every tag gets the key "" and the tie rule picks the byte-wise
    // smallest (Flux: image-reflector-controller internal/policy/filter.go).
    let o = eval(
        &[
            "--alphabetical",
            "asc",
            "--filter",
            r"^b(\d+)$",
            "--extract",
            "$01",
        ],
        "b2\nb1\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "b1");
}
