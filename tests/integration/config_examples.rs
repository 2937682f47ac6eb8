#![allow(clippy::unwrap_used)]

//! The example configs in `config/` load, and `docs/config.md` describes every key of the real
//! configuration types (read from the types themselves through serde).

use std::path::Path;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use tagsmith::config::Config;
use tagsmith::config::raw;
use tagsmith::registry::settings::RawRegistrySettings;
use tagsmith::registry::{AuthSettings, BasicAuth, ExecAuth};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_example_config_loads() {
    let mut seen = 0;
    for entry in std::fs::read_dir(root().join("config")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
            seen += 1;
        }
    }
    assert!(seen >= 3, "expected the example configs, found {seen}");
    let full = Config::load(&root().join("config/tagsmith.yaml")).unwrap();
    assert_eq!(full.images.len(), 4);
    assert!(full.images[3].policy.newest_build().is_some());
    assert_eq!(full.targets[0].push_branch(), "staging");
    assert!(full.targets[0].git.auth.ssh.is_some());
    assert_eq!(full.targets[1].push_branch(), "tagsmith/prod");
    assert_eq!(
        full.targets[1].signing_key.as_ref().map(|k| k.path()),
        Some(root().join("config/keys/signing").as_path())
    );
    assert_eq!(full.registries.len(), 6);
    assert!(matches!(
        full.registries[5].auth,
        Some(AuthSettings::Anonymous)
    ));
    assert_eq!(
        full.registries[5].ca.as_deref(),
        Some(root().join("config/certs/corp-ca.pem").as_path())
    );
    let service = Config::load(&root().join("config/webhooks.yaml")).unwrap();
    assert_eq!(service.receivers.len(), 2);
    assert!(service.targets[0].schedule.is_none());
    assert_eq!(
        service.targets[1]
            .schedule
            .as_ref()
            .map(ToString::to_string),
        Some("*/15 8-17 * * Mon-Fri".to_string())
    );
    assert_eq!(
        service.targets[1].interval,
        std::time::Duration::from_secs(1800)
    );
    assert!(service.server.metrics.is_some());
    // One example per forge.
    let forge = |file: &str| {
        let c = Config::load(&root().join("config").join(file)).unwrap();
        let pr = c.targets[0].pull_request.clone().unwrap();
        (pr.forge, pr.owner, pr.api_url)
    };
    use tagsmith::config::ForgeKind;
    assert_eq!(
        forge("gitlab.yaml"),
        (
            ForgeKind::GitLab,
            "platform/deploy".to_string(),
            "https://gitlab.com/api/v4".to_string()
        )
    );
    assert_eq!(
        forge("gitea.yaml"),
        (
            ForgeKind::Gitea,
            "org".to_string(),
            "https://git.example.com/api/v1".to_string()
        )
    );
    assert_eq!(forge("pull-request.yaml").0, ForgeKind::GitHub);
    let notify = Config::load(&root().join("config/notify.yaml")).unwrap();
    let kinds: Vec<&str> = notify.notify.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(kinds, ["slack", "teams", "webhook", "webhook"]);
    assert!(notify.notify[1].wants(tagsmith::config::EventKind::Failed, "prod"));
    assert!(!notify.notify[1].wants(tagsmith::config::EventKind::Failed, "staging"));
    assert!(!notify.notify[1].wants(tagsmith::config::EventKind::Delivered, "prod"));
    assert!(matches!(
        &notify.notify[2].kind,
        tagsmith::config::SinkKind::Webhook {
            signing_key: Some(_),
            format: tagsmith::config::WebhookFormat::Json
        }
    ));
    assert!(matches!(
        &notify.notify[3].kind,
        tagsmith::config::SinkKind::Webhook {
            signing_key: None,
            format: tagsmith::config::WebhookFormat::CloudEvents
        }
    ));
    let status = notify.targets[0].status.as_ref().unwrap();
    assert_eq!(
        (status.owner.as_str(), status.repo.as_str()),
        ("org", "manifests")
    );
    assert_eq!(status.api_url, "https://api.github.com");
    assert!(notify.targets[1].status.is_none());
}

/// Records the field (or variant) names serde's derive hands to the deserializer.
#[derive(Default)]
struct Recorder {
    names: Vec<&'static str>,
}

#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("recorded")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Stop
    }
}

impl<'de> Deserializer<'de> for &mut Recorder {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        self.names.extend_from_slice(fields);
        Err(Stop)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        self.names.extend_from_slice(variants);
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map identifier ignored_any
    }
}

fn names<T: for<'de> Deserialize<'de>>() -> Vec<&'static str> {
    let mut recorder = Recorder::default();
    let _ = T::deserialize(&mut recorder);
    assert!(
        !recorder.names.is_empty(),
        "no names recorded for {}",
        std::any::type_name::<T>()
    );
    recorder.names
}

#[test]
fn the_reference_documents_every_key() {
    let doc = std::fs::read_to_string(root().join("docs/config.md")).unwrap();
    let mut keys = Vec::new();
    keys.extend(names::<raw::RawConfig>());
    keys.extend(names::<raw::RawImage>());
    keys.extend(names::<raw::RawFilter>());
    keys.extend(names::<raw::RawTarget>());
    keys.extend(names::<raw::RawGit>());
    keys.extend(names::<raw::RawGitAuth>());
    keys.extend(names::<raw::RawPush>());
    keys.extend(names::<raw::RawPullRequest>());
    keys.extend(names::<raw::RawGitHubAuth>());
    keys.extend(names::<raw::RawGitHubApp>());
    keys.extend(names::<raw::RawCommit>());
    keys.extend(names::<raw::RawAuthor>());
    keys.extend(names::<raw::RawState>());
    keys.extend(names::<raw::RawServer>());
    keys.extend(names::<raw::RawReceiver>());
    keys.extend(names::<raw::RawSink>());
    keys.extend(names::<RawRegistrySettings>());
    keys.extend(names::<AuthSettings>());
    keys.extend(names::<BasicAuth>());
    keys.extend(names::<ExecAuth>());
    let missing: Vec<_> = keys
        .iter()
        .filter(|k| !doc.contains(&format!("`{k}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/config.md does not describe {missing:?}"
    );
    assert!(
        keys.contains(&"filterTags") && keys.contains(&"dockerConfig"),
        "{keys:?}"
    );
}
