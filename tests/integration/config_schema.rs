#![allow(clippy::unwrap_used)]

//! The JSON Schema of `tagsmith.yaml` (`tagsmith config schema`): committed as
//! `config/tagsmith.schema.json` for editors, it accepts every example in `config/` and rejects
//! unknown keys as tagsmith does.
//!
//! After changing the config types, `TAGSMITH_BLESS=1 cargo test --test config_schema` rewrites
//! the committed file from the binary; review its diff before committing.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const COMMENT: &str = "# yaml-language-server: $schema=./tagsmith.schema.json\n";

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
}

fn schema_text() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tagsmith"))
        .args(["config", "schema"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(&schema_text()).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

fn examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(config_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    files
}

fn errors(validator: &jsonschema::Validator, yaml: &str) -> Vec<String> {
    let instance: Value = serde_saphyr::from_str(yaml).unwrap();
    validator
        .iter_errors(&instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn the_committed_schema_is_what_the_command_prints() {
    let path = config_dir().join("tagsmith.schema.json");
    let expected = schema_text();
    if std::env::var_os("TAGSMITH_BLESS").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "config/tagsmith.schema.json differs from `tagsmith config schema`; regenerate it with \
         `TAGSMITH_BLESS=1 cargo test --test config_schema` and review the diff"
    );
}

#[test]
fn every_example_names_the_schema_and_is_valid_under_it() {
    let validator = validator();
    for file in examples() {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.starts_with(COMMENT),
            "{} lacks its first line {COMMENT:?}",
            file.display()
        );
        let found = errors(&validator, &text);
        assert!(found.is_empty(), "{}: {found:#?}", file.display());
    }
}

#[test]
fn unknown_keys_and_wrong_values_are_rejected() {
    let validator = validator();
    let text = std::fs::read_to_string(config_dir().join("tagsmith.yaml")).unwrap();
    assert!(errors(&validator, &text).is_empty());
    for (what, bad) in [
        (
            "a mistyped image key",
            text.replacen("    semver: ", "    semvar: ", 1),
        ),
        ("an unknown top-level key", format!("{text}\nfoo: 1\n")),
        (
            "a mistyped git key",
            text.replacen("      branch: ", "      brnch: ", 1),
        ),
        (
            "a registry auth of no known kind",
            text.replacen("dockerConfig:", "dockerConfg:", 1),
        ),
        (
            "a list where a string belongs",
            text.replacen(
                "    image: ghcr.io/org/app",
                "    image: [ghcr.io/org/app]",
                1,
            ),
        ),
    ] {
        assert_ne!(
            bad, text,
            "{what}: the example changed and the edit no longer applies"
        );
        assert!(!errors(&validator, &bad).is_empty(), "{what} is accepted");
    }
    // A policy needs its image: `required` as in the types.
    let found = errors(&validator, "images:\n  - policy: a:b\n    semver: '*'\n");
    assert!(found.iter().any(|e| e.contains("image")), "{found:?}");
}
