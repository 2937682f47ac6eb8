#![allow(clippy::unwrap_used)]

//! `push.pullRequest` in `tagsmith.yaml`: defaults, GitHub App settings, and errors with lines.

use std::path::{Path, PathBuf};

use tagsmith::config::{AutoMerge, Config, GitHubAuth, Secret};

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(text, Path::new("/etc/tagsmith/tagsmith.yaml")).map_err(|e| e.to_string())
}

fn with_push(push: &str) -> String {
    format!(
        "targets:\n  - name: prod\n    git: {{ url: 'https://github.com/org/manifests.git', branch: trunk }}\n    push:\n{push}"
    )
}

#[test]
fn defaults_come_from_the_target_and_its_remote() {
    let c = parse(&with_push(
        "      pullRequest: { auth: { tokenEnv: GITHUB_TOKEN } }\n",
    ))
    .unwrap();
    let pr = c.targets[0].pull_request.as_ref().unwrap();
    assert_eq!(pr.base, "trunk");
    assert_eq!(pr.branch, "tagsmith/prod");
    assert_eq!(pr.title, "Update container images (prod)");
    assert_eq!((pr.owner.as_str(), pr.repo.as_str()), ("org", "manifests"));
    assert_eq!(pr.api_url, "https://api.github.com");
    assert_eq!(pr.auto_merge, AutoMerge::Off);
    assert!(!pr.draft);
    assert_eq!(
        pr.auth,
        GitHubAuth::Token(Secret::Env("GITHUB_TOKEN".into()))
    );
}

#[test]
fn github_app_and_enterprise_settings() {
    let c = parse(&with_push(
        "      pullRequest:\n        repository: team/deploy\n        apiUrl: https://ghe.example.com/api/v3/\n        autoMerge: rebase\n        draft: true\n        auth: { app: { appId: 12, privateKeyFile: keys/app.pem } }\n",
    ))
    .unwrap();
    let pr = c.targets[0].pull_request.as_ref().unwrap();
    assert_eq!((pr.owner.as_str(), pr.repo.as_str()), ("team", "deploy"));
    assert_eq!(pr.api_url, "https://ghe.example.com/api/v3");
    assert_eq!(pr.auto_merge, AutoMerge::Rebase);
    assert!(pr.draft);
    assert_eq!(
        pr.auth,
        GitHubAuth::App {
            app_id: 12,
            private_key: PathBuf::from("/etc/tagsmith/keys/app.pem"),
            installation_id: None,
        }
    );
}

#[test]
fn mistakes_are_reported() {
    let e = parse(&with_push(
        "      pullRequest: { autoMerge: always, auth: { tokenEnv: T } }\n",
    ))
    .unwrap_err();
    assert!(
        e.contains("tagsmith.yaml:5:") && e.contains("autoMerge \"always\""),
        "{e}"
    );

    let e = parse(&with_push(
        "      pullRequest: { branch: trunk, auth: {} }\n",
    ))
    .unwrap_err();
    assert!(e.contains("must differ from its base"), "{e}");
    assert!(e.contains("needs tokenEnv, tokenFile or app"), "{e}");

    let e = parse(&with_push(
        "      branch: x\n      pullRequest: { auth: { tokenEnv: T } }\n",
    ))
    .unwrap_err();
    assert!(e.contains("push.branch or push.pullRequest"), "{e}");

    let e = parse(&with_push(
        "      pullRequest: { auth: { tokenEnv: T }, reviewer: [a] }\n",
    ))
    .unwrap_err();
    assert!(e.contains("reviewer"), "{e}");
}
