#![allow(clippy::unwrap_used)]

//! Loading `tagsmith.yaml`: valid files become a `Config`; invalid ones say file:line:column.

use std::path::Path;
use std::time::Duration;

use tagsmith::config::{Config, DigestMode, Secret, Username};

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(text, Path::new("/etc/tagsmith/tagsmith.yaml")).map_err(|e| e.to_string())
}

const FULL: &str = r#"
images:
  - policy: team-a:app
    image: ghcr.io/org/app
    interval: 1m30s
    semver: ">=1.0.0 <2.0.0"
    digest: IfNotPresent
  - policy: team-a:worker
    image: 127.0.0.1:5000/org/worker
    numerical: asc
    filterTags: { pattern: '^main-[0-9a-f]+-(?P<ts>[0-9]+)$', extract: '$ts' }
    exclude: ['^.*\.sig$', '^dev-']
targets:
  - name: prod
    git: { url: "https://example.invalid/org/manifests.git", branch: main, auth: { tokenEnv: GITHUB_TOKEN } }
    paths: [clusters/prod, ./apps]
    tenancy: { "apps/team-a/**": [team-a], "apps/shared/**": ["*"] }
    push: { branch: tagsmith/prod }
    commit:
      author: { name: bot, email: bot@example.invalid }
      message: "chore: {{count}} image updates\n\n{{changes}}"
state: { dir: state }
"#;

#[test]
fn a_full_config_loads() {
    let c = parse(FULL).unwrap();
    assert_eq!(c.images.len(), 2);
    let app = &c.images[0];
    assert_eq!(app.id.to_string(), "team-a:app");
    assert_eq!(app.interval, Duration::from_secs(90));
    assert_eq!(app.digest, DigestMode::IfNotPresent);
    assert_eq!(
        app.policy.select(&["1.0.0", "1.9.0", "2.0.0"]).tag,
        Some("1.9.0")
    );
    let worker = &c.images[1];
    assert_eq!(
        worker.interval,
        Duration::from_secs(300),
        "default interval"
    );
    assert_eq!(
        worker
            .policy
            .select(&["main-a-1", "main-b-3", "dev-main-c-9"])
            .tag,
        Some("main-b-3")
    );

    let t = &c.targets[0];
    assert_eq!(t.push_branch(), "tagsmith/prod");
    assert_eq!(t.git.branch, "main");
    assert_eq!(
        t.git.auth.password,
        Some(Secret::Env("GITHUB_TOKEN".into()))
    );
    assert_eq!(
        t.git.auth.username,
        Some(Username::Literal("x-access-token".into()))
    );
    assert_eq!(t.paths, [Path::new("clusters/prod"), Path::new("apps")]);
    assert!(t.tenancy.allows("apps/team-a/x.yaml", "team-a"));
    assert!(!t.tenancy.allows("apps/team-a/x.yaml", "team-b"));
    assert_eq!(t.author.name, "bot");
    assert_eq!(
        c.state_dir.as_deref(),
        Some(Path::new("/etc/tagsmith/state"))
    );
}

#[test]
fn unknown_keys_are_errors_with_a_location() {
    let e = parse("images:\n  - policy: a:b\n    image: x\n    semver: '*'\n    semvar: '1.x'\n")
        .unwrap_err();
    assert!(e.contains("semvar"), "{e}");
    eprintln!("{e}");
    assert!(e.contains("5:5") || e.contains("line 5"), "{e}");
}

#[test]
fn invalid_values_name_file_line_and_column() {
    let text = "images:\n  - policy: team-a:app\n    image: ghcr.io/org/app\n    semver: '>= bar'\n  - policy: Team:x\n    image: ghcr.io/org/x:1.0\n    alphabetical: up\n";
    let e = parse(text).unwrap_err();
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines.len(), 4, "{e}");
    assert!(
        lines[0].starts_with("/etc/tagsmith/tagsmith.yaml:4:13: invalid semver range"),
        "{e}"
    );
    assert!(lines[0].contains(r#"unexpected "bar" at column 4"#), "{e}");
    assert!(
        lines[1].starts_with("/etc/tagsmith/tagsmith.yaml:5:13: invalid policy id"),
        "{e}"
    );
    assert!(
        lines[2].contains(":6:12:") && lines[2].contains("has a tag"),
        "{e}"
    );
    assert!(lines[3].contains(":7:19: invalid order \"up\""), "{e}");
}

#[test]
fn paths_must_stay_inside_the_repository() {
    let base = "targets:\n  - name: t\n    git: { url: file:///tmp/x }\n";
    for bad in ["../up", "/etc", "a/../../b"] {
        let e = parse(&format!("{base}    paths: ['{bad}']\n")).unwrap_err();
        assert!(
            e.contains(":4:") && (e.contains("leaves the repository") || e.contains("relative")),
            "{bad}: {e}"
        );
    }
    let ok = parse(&format!("{base}    paths: ['a/./b']\n")).unwrap();
    assert_eq!(ok.targets[0].paths, [Path::new("a/b")]);
    assert_eq!(ok.targets[0].push_branch(), "main");
}

#[test]
fn other_mistakes_are_reported_together() {
    let text = r#"
images:
  - policy: a:one
    image: org/one
    semver: "*"
    alphabetical: asc
  - policy: a:one
    image: org/one
    semver: "*"
    interval: 5
    digest: Sometimes
targets:
  - name: Prod
    git: { url: "x", branch: "bad..branch", auth: { tokenEnv: A, passwordEnv: B } }
    commit: { message: "{{tagz}}" }
"#;
    let e = parse(text).unwrap_err();
    for needle in [
        "alphabetical given with another ordering",
        "policy a:one is defined twice",
        "a unit (ms, s, m, h) must follow 5",
        "invalid digest mode \"Sometimes\"",
        "invalid target name \"Prod\"",
        "invalid git branch \"bad..branch\"",
        "give a token or a password, not both",
        "unknown placeholder {{tagz}}",
    ] {
        assert!(e.contains(needle), "missing {needle:?} in:\n{e}");
    }
}

#[test]
fn booleans_are_strict_and_yaml_errors_are_located() {
    let e = parse("images: [\n").unwrap_err();
    assert!(
        e.starts_with("/etc/tagsmith/tagsmith.yaml:1:9: YAML syntax error"),
        "{e}"
    );
    let e = parse("images:\n  - policy: a:b\n    image: x\n    semver: '*'\n    digest: yes\n")
        .unwrap_err();
    assert!(e.contains("invalid digest mode \"yes\""), "{e}");
}

#[test]
fn ssh_remotes_need_a_key_and_keys_need_ssh_remotes() {
    let base = "targets:\n  - name: t\n    git: { url: 'URL', auth: AUTH }\n";
    let cfg = |url: &str, auth: &str| parse(&base.replace("URL", url).replace("AUTH", auth));
    let ok = cfg(
        "git@git.example.com:org/r.git",
        "{ sshKeyFile: keys/id, knownHostsFile: kh }",
    )
    .unwrap();
    let ssh = ok.targets[0].git.auth.ssh.clone().unwrap();
    assert_eq!(ssh.key_file, Path::new("/etc/tagsmith/keys/id"));
    assert_eq!(ssh.known_hosts, Path::new("/etc/tagsmith/kh"));
    let e = cfg("ssh://git@git.example.com/org/r.git", "{}").unwrap_err();
    assert!(e.contains("an ssh remote needs auth.sshKeyFile"), "{e}");
    let e = cfg("https://git.example.com/org/r.git", "{ sshKeyFile: id }").unwrap_err();
    assert!(e.contains("only for ssh remotes"), "{e}");
}

/// `tagsmith check -c FILE` on `text`: exit code and stderr, with FILE's path.
fn check_file(text: &str) -> (Option<i32>, String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("tagsmith.yaml");
    std::fs::write(&file, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tagsmith"))
        .args(["check", "-c", file.to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        file.display().to_string(),
    )
}

#[test]
fn every_unknown_key_is_reported_at_once_with_its_place_and_the_nearest_key() {
    let text = "images:\n  - policy: a:b\n    image: x\n    semvar: '*'\n    filtertags: { pattern: x }\ntargets:\n  - name: t\n    git: { url: 'file:///x', brnch: main }\n    pushh: {}\nstate: { dri: x }\nfoo: 1\n";
    let (code, err, file) = check_file(text);
    assert_eq!(code, Some(2), "{err}");
    assert!(!err.contains("<input>"), "{err}");
    for expected in [
        "4:5: unknown key `semvar` in images[0]; did you mean `semver`?",
        "5:5: unknown key `filtertags` in images[0]; did you mean `filterTags`?",
        "8:30: unknown key `brnch` in targets[0].git; did you mean `branch`?",
        "9:5: unknown key `pushh` in targets[0]; did you mean `push`?",
        "10:10: unknown key `dri` in state; did you mean `dir`?",
        "11:1: unknown key `foo` at the top level (known keys: flux, images, notify, receivers, registries, server, state, targets)",
    ] {
        assert!(
            err.contains(&format!("{file}:{expected}")),
            "missing {expected:?} in:\n{err}"
        );
    }
    assert_eq!(err.matches("unknown key").count(), 6, "{err}");
}

#[test]
fn syntax_and_type_errors_name_the_file_line_and_column() {
    let (code, err, file) = check_file("images:\n  - policy: a:b\n    image: [x\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(!err.contains("<input>"), "{err}");
    assert!(
        err.contains(&format!("{file}:3:12: YAML syntax error: unclosed bracket")),
        "{err}"
    );

    let (code, err, file) =
        check_file("images:\n  - policy: a:b\n    image: [x]\n    semver: '*'\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(!err.contains("<input>"), "{err}");
    assert!(err.contains(&format!("{file}:3:12: ")), "{err}");
}
