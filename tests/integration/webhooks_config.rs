//! `server:` and `receivers:` in `tagsmith.yaml`: what loads, what is refused (with its line),
//! and that the example config and the webhook docs cover every receiver type.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;

use tagsmith::config::Config;
use tagsmith::secret::Secret;
use tagsmith::server::webhooks::ReceiverKind;

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(text, Path::new("/etc/tagsmith/tagsmith.yaml")).map_err(|e| e.to_string())
}

#[test]
fn receivers_and_server_load() {
    let c = parse(
        r#"
server: { listen: 127.0.0.1:8080, metrics: "[::1]:9090" }
receivers:
  - { name: hub, type: dockerhub, secretEnv: HUB_HOOK_TOKEN }
  - name: github
    type: ghcr
    secretFile: secrets/github
  - { name: reg, type: distribution, secretEnv: REG, registry: "registry.internal:5000" }
"#,
    )
    .unwrap();
    assert_eq!(
        c.server.listen,
        "127.0.0.1:8080".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.server.metrics, Some("[::1]:9090".parse().unwrap()));
    assert_eq!(c.receivers.len(), 3);
    assert_eq!(c.receivers[0].kind, ReceiverKind::DockerHub);
    assert_eq!(c.receivers[0].secret, Secret::Env("HUB_HOOK_TOKEN".into()));
    // Secret files are relative to the config file, like every other path.
    assert_eq!(
        c.receivers[1].secret,
        Secret::File("/etc/tagsmith/secrets/github".into())
    );
    assert_eq!(
        c.receivers[2].registry.as_deref(),
        Some("registry.internal:5000")
    );
}

#[test]
fn defaults_without_server_or_receivers() {
    let c = parse("images: []\n").unwrap();
    assert_eq!(
        c.server.listen,
        "0.0.0.0:9292".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.server.metrics, None);
    assert!(c.receivers.is_empty());
}

#[test]
fn invalid_receivers_are_reported_with_their_lines() {
    let err = parse(
        r#"receivers:
  - { name: hub, type: docker-hub, secretEnv: A }
  - { name: Hub, type: quay, secretEnv: A }
  - { name: acr, type: acr }
  - { name: gh, type: ghcr, secretEnv: A, secretFile: b }
  - { name: quay, type: quay, secretEnv: A }
  - { name: quay, type: quay, secretEnv: B }
  - { name: reg, type: distribution, secretEnv: A, registry: "not a host" }
  - { name: reg2, type: distribution, secretEnv: A, registry: registry }
server: { listen: "9292" }
"#,
    )
    .unwrap_err();
    for needle in [
        "tagsmith.yaml:2:24: unknown receiver type \"docker-hub\": expected one of distribution, dockerhub, ghcr, harbor, quay, acr, gcr, generic, generic-hmac",
        "tagsmith.yaml:3:13: invalid receiver name \"Hub\"",
        "receiver acr: needs secretEnv or secretFile",
        "receiver gh: give secretEnv or secretFile, not both",
        "tagsmith.yaml:7:13: receiver quay is defined twice",
        "tagsmith.yaml:8:62: invalid registry host \"not a host\"",
        "invalid registry host \"registry\"",
        "tagsmith.yaml:10:19: invalid address \"9292\"",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}

#[test]
fn unknown_receiver_keys_are_errors() {
    let err =
        parse("receivers:\n  - { name: a, type: quay, secretEnv: A, token: x }\n").unwrap_err();
    assert!(err.contains("token"), "{err}");
    let err = parse("server: { port: 9292 }\n").unwrap_err();
    assert!(err.contains("port"), "{err}");
}

#[test]
fn the_example_and_the_docs_cover_every_receiver_type() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = Config::load(&root.join("config/tagsmith.yaml")).unwrap();
    let docs = std::fs::read_to_string(root.join("docs/webhooks.md")).unwrap();
    for kind in ReceiverKind::ALL {
        assert!(
            example.receivers.iter().any(|r| r.kind == kind),
            "config/tagsmith.yaml has no {kind} receiver"
        );
        assert!(
            docs.contains(&format!("| `{kind}` |")),
            "docs/webhooks.md does not describe {kind}"
        );
    }
    assert!(example.server.metrics.is_some());
}

/// `config` builds the server's settings types, so the server must not import `config` back:
/// the two would form an import cycle. What both need (where a secret comes from) lives in the
/// leaf module `secret`, which imports nothing from the crate.
#[test]
fn the_server_does_not_import_config_and_secret_is_a_leaf() {
    fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut server = Vec::new();
    sources(&src.join("server"), &mut server);
    assert!(server.len() > 5, "{server:?}");
    for path in &server {
        let text = std::fs::read_to_string(path).unwrap();
        assert!(
            !text.contains("crate::config"),
            "{} imports crate::config",
            path.display()
        );
    }
    let secret = std::fs::read_to_string(src.join("secret.rs")).unwrap();
    assert!(
        !secret.contains("crate::"),
        "src/secret.rs imports the crate"
    );
}
