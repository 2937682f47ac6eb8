//! One `registries:` entry of `tagsmith.yaml`, as the config loader embeds it.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// How tagsmith talks to one registry host.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RegistrySettings {
    /// Host as written in image names (`ghcr.io`, `127.0.0.1:5000`, `docker.io`).
    pub host: String,
    /// Plain http instead of https.
    #[serde(default)]
    pub insecure: bool,
    /// PEM bundle of extra CA certificates trusted for this host.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    #[serde(default)]
    pub auth: Option<AuthSettings>,
    /// Requests in flight to this host at once.
    #[serde(default)]
    pub max_concurrency: Option<usize>,
    /// Requests per second to this host (token bucket, `burst` saved up).
    #[serde(default)]
    pub requests_per_second: Option<f64>,
    #[serde(default)]
    pub burst: Option<u32>,
    /// `n` sent with tag listings; unset lets the registry pick its page size.
    #[serde(default)]
    pub page_size: Option<u32>,
    /// Time limit for one request, body included (`30s`, `2m`).
    #[serde(default, deserialize_with = "opt_duration")]
    pub timeout: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub connect_timeout: Option<Duration>,
}

/// Where credentials for a registry come from. Secrets are never written in the config itself.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum AuthSettings {
    /// No credentials, even if a Docker config has some.
    Anonymous,
    /// A Docker `config.json` (`auths`, `credsStore`, `credHelpers`).
    DockerConfig(PathBuf),
    /// Basic credentials from env vars or files.
    Basic(BasicAuth),
    /// A Docker credential helper, `docker-credential-<name>`.
    Helper(String),
    /// A command printing credentials (short-lived cloud tokens).
    Exec(ExecAuth),
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BasicAuth {
    /// A literal user name (not a secret).
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub username_env: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExecAuth {
    /// Program and arguments; run without a shell.
    pub command: Vec<String>,
    /// When set, the command prints only the password (e.g. `oauth2accesstoken`, `AWS`);
    /// otherwise it prints JSON, `{"username","password"}` or a credential helper's
    /// `{"Username","Secret"}`.
    #[serde(default)]
    pub username: Option<String>,
    /// How long the printed credentials are reused before the command runs again.
    #[serde(default, deserialize_with = "opt_duration")]
    pub cache_for: Option<Duration>,
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text: Option<String> = Option::deserialize(d)?;
    text.map(|t| crate::config::duration::parse(&t).map_err(serde::de::Error::custom))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_entries_map_onto_settings() {
        let yaml = r#"
- host: 127.0.0.1:5000
  insecure: true
  maxConcurrency: 4
  timeout: 10s
  auth: { basic: { username: bot, passwordEnv: REG_PASSWORD } }
- host: ghcr.io
  auth: { dockerConfig: ~/.docker/config.json }
- host: gcr.io
  auth: { exec: { command: [gcloud, auth, print-access-token], username: oauth2accesstoken, cacheFor: 5m } }
- host: quay.io
  auth: anonymous
- host: example.io
  auth: { helper: pass }
"#;
        let parsed: Vec<RegistrySettings> = serde_saphyr::from_str(yaml).unwrap();
        assert_eq!(parsed.len(), 5);
        assert!(parsed[0].insecure);
        assert_eq!(parsed[0].max_concurrency, Some(4));
        assert_eq!(parsed[0].timeout, Some(Duration::from_secs(10)));
        assert_eq!(
            parsed[0].auth,
            Some(AuthSettings::Basic(BasicAuth {
                username: Some("bot".into()),
                password_env: Some("REG_PASSWORD".into()),
                ..BasicAuth::default()
            }))
        );
        assert_eq!(
            parsed[1].auth,
            Some(AuthSettings::DockerConfig("~/.docker/config.json".into()))
        );
        let Some(AuthSettings::Exec(exec)) = &parsed[2].auth else {
            panic!("{:?}", parsed[2].auth)
        };
        assert_eq!(exec.command, ["gcloud", "auth", "print-access-token"]);
        assert_eq!(exec.cache_for, Some(Duration::from_secs(300)));
        assert_eq!(parsed[3].auth, Some(AuthSettings::Anonymous));
        assert_eq!(parsed[4].auth, Some(AuthSettings::Helper("pass".into())));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err =
            serde_saphyr::from_str::<RegistrySettings>("host: a\ninsecur: true\n").unwrap_err();
        assert!(err.to_string().contains("insecur"), "{err}");
    }
}
