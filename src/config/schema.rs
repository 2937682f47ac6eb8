//! The JSON Schema of `tagsmith.yaml` (`tagsmith config schema`), generated from the raw serde
//! types, and the first pass that checks a file's keys against it.

use schemars::JsonSchema;
use serde_json::Value;

/// The schema editors and `yaml-language-server` read; `additionalProperties: false` wherever
/// tagsmith rejects unknown keys.
pub fn json_schema() -> Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(super::raw::RawConfig))
        .unwrap_or_else(|_| Value::Object(Default::default()));
    if let Some(map) = schema.as_object_mut() {
        map.insert("title".into(), "tagsmith.yaml".into());
        map.insert(
            "description".into(),
            "Configuration of tagsmith: images and their policies, target repositories, registries, the service and its webhook receivers.".into(),
        );
    }
    schema
}

// The shape `registries[]` is read in, for the schema only: the settings type lives with the
// registry client, which stays free of schema concerns. A test parses every key below through
// the real type, so the two cannot drift apart unnoticed.

/// How tagsmith talks to one registry host.
#[derive(Debug, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
pub struct RegistrySettings {
    /// Host as written in image names (`ghcr.io`, `127.0.0.1:5000`, `docker.io`).
    host: String,
    /// Read images on `host` from this host instead (a mirror or another API endpoint); image
    /// names and written references keep `host`. The mirror's own entry gives its transport
    /// and credentials; an entry with `mirror` takes no other key.
    #[serde(default)]
    mirror: Option<String>,
    /// Plain http instead of https.
    #[serde(default)]
    insecure: bool,
    /// PEM bundle of extra CA certificates trusted for this host.
    #[serde(default)]
    ca: Option<String>,
    #[serde(default)]
    auth: Option<AuthSettings>,
    /// Requests in flight to this host at once.
    #[serde(default)]
    max_concurrency: Option<u32>,
    /// Requests per second to this host (token bucket, `burst` saved up).
    #[serde(default)]
    requests_per_second: Option<f64>,
    #[serde(default)]
    burst: Option<u32>,
    /// `n` sent with tag listings; unset lets the registry pick its page size.
    #[serde(default)]
    page_size: Option<u32>,
    /// Time limit for one request, body included (`30s`, `2m`).
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    connect_timeout: Option<String>,
}

/// Where credentials for a registry come from. Secrets are never written in the config itself.
#[derive(Debug, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
enum AuthSettings {
    /// No credentials, even if a Docker config has some.
    Anonymous,
    /// A Docker `config.json` (`auths`, `credsStore`, `credHelpers`).
    DockerConfig(String),
    /// Basic credentials from env vars or files.
    Basic(BasicAuth),
    /// A Docker credential helper, `docker-credential-<name>`.
    Helper(String),
    /// A command printing credentials (short-lived cloud tokens).
    Exec(ExecAuth),
}

#[derive(Debug, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct BasicAuth {
    /// A literal user name (not a secret).
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    username_env: Option<String>,
    #[serde(default)]
    password_env: Option<String>,
    #[serde(default)]
    password_file: Option<String>,
    /// A variable holding `user:password`, instead of the other keys.
    #[serde(default)]
    credentials_env: Option<String>,
}

#[derive(Debug, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct ExecAuth {
    /// Program and arguments; run without a shell.
    command: Vec<String>,
    /// When set, the command prints only the password; otherwise it prints JSON.
    #[serde(default)]
    username: Option<String>,
    /// How long the printed credentials are reused before the command runs again.
    #[serde(default)]
    cache_for: Option<String>,
    /// `json` (the default) or `userPassword`: one line `user:password`.
    #[serde(default)]
    output: Option<ExecOutput>,
}

#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
enum ExecOutput {
    Json,
    UserPassword,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key of the mirror above, read by the registry's own settings type.
    #[test]
    fn the_registries_mirror_matches_the_settings_type() {
        let yaml = "- host: h\n  insecure: true\n  ca: ca.pem\n  maxConcurrency: 2\n  requestsPerSecond: 1.5\n  burst: 3\n  pageSize: 10\n  timeout: 5s\n  connectTimeout: 1s\n  auth: { basic: { username: u, usernameEnv: U, passwordEnv: P, passwordFile: f } }\n- host: a\n  auth: anonymous\n- host: b\n  auth: { dockerConfig: c.json }\n- host: c\n  auth: { helper: pass }\n- host: d\n  auth: { exec: { command: [x], username: u, cacheFor: 5m } }\n- host: e\n  mirror: h\n";
        let parsed: Vec<crate::registry::settings::RawRegistrySettings> =
            serde_saphyr::from_str(yaml).unwrap();
        assert_eq!(parsed.len(), 6);
        let schema = json_schema();
        let text = format!(
            "registries:\n{}",
            yaml.lines().map(|l| format!("  {l}\n")).collect::<String>()
        );
        let problems =
            super::super::keys::unknown_keys(&text, std::path::Path::new("t.yaml"), &schema)
                .unwrap();
        assert_eq!(problems, []);
        let bad = text.replace("cacheFor", "cacheFour");
        let problems =
            super::super::keys::unknown_keys(&bad, std::path::Path::new("t.yaml"), &schema)
                .unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].message.contains("did you mean `cacheFor`?"),
            "{problems:?}"
        );
    }
}
