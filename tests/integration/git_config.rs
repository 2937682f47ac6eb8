#![allow(clippy::unwrap_used)]

//! A target's `git:` settings in `tagsmith.yaml`: credentials never ride in the URL, and each
//! impossible `auth` combination is reported at the line and column of the key that makes it so.

use std::path::Path;

use tagsmith::config::Config;

const FILE: &str = "/etc/tagsmith/tagsmith.yaml";

fn problems(text: &str) -> String {
    Config::parse(text, Path::new(FILE))
        .map(|_| String::new())
        .unwrap_or_else(|e| e.to_string())
}

fn target(git: &str) -> String {
    format!("targets:\n  - name: prod\n    git:\n{git}")
}

#[test]
fn a_token_in_the_url_is_refused_at_its_line_and_never_repeated() {
    for url in [
        "https://x-access-token:ghp_SECRETSECRET@github.com/org/m.git",
        "https://ghp_SECRETSECRET@github.com/org/m.git",
        "ssh://git:SECRETSECRET@github.com/org/m.git",
    ] {
        let text = target(&format!("      url: '{url}'\n"));
        let e = problems(&text);
        assert!(
            e.contains(&format!("{FILE}:4:12: target prod: git.url carries")),
            "{url}: {e}"
        );
        assert!(e.contains("auth.tokenEnv or auth.tokenFile"), "{url}: {e}");
        assert!(!e.contains("SECRETSECRET"), "the secret is not echoed: {e}");
    }
    // A user name for SSH is no secret; neither is an @ in a path.
    for url in [
        "ssh://git@github.com/org/m.git",
        "https://example.invalid/org/m@v1.git",
    ] {
        let text = target(&format!(
            "      url: '{url}'\n      auth:\n        sshKeyFile: /k\n"
        ));
        let e = problems(&text);
        assert!(!e.contains("carries"), "{url}: {e}");
    }
}

#[test]
fn impossible_auth_combinations_name_line_and_column() {
    let cases = [
        (
            "        tokenEnv: T\n        passwordEnv: P\n        username: u\n",
            "7:22: target prod: give a token or a password, not both",
        ),
        (
            "        tokenEnv: T\n        tokenFile: /t\n",
            "7:20: target prod: give tokenEnv or tokenFile, not both",
        ),
        (
            "        username: bot\n",
            "6:19: target prod: a username needs a password",
        ),
        (
            "        passwordEnv: P\n",
            "6:22: target prod: a password needs a username",
        ),
        (
            "        knownHostsFile: /etc/ssh/known_hosts\n",
            "6:25: target prod: sshKeyPassphraseEnv and knownHostsFile go with sshKeyFile",
        ),
    ];
    for (auth, wanted) in cases {
        let text = target(&format!(
            "      url: https://example.invalid/org/m.git\n      auth:\n{auth}"
        ));
        let e = problems(&text);
        assert!(e.contains(&format!("{FILE}:{wanted}")), "{auth}\n{e}");
    }
}
