//! One `registries:` entry of `tagsmith.yaml`: as written (`RawRegistrySettings`, with source
//! locations) and validated (`RegistrySettings`, what the client uses).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::auth::normalise_host;

/// How tagsmith talks to one registry host.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RegistrySettings {
    /// Host as written in image names (`ghcr.io`, `127.0.0.1:5000`, `docker.io`).
    pub host: String,
    /// Where images on `host` are read from instead (a pull-through mirror, another API
    /// endpoint): tags and digests come from there, with the mirror's own entry's settings and
    /// credentials, while image names, selections and written references keep `host`.
    pub mirror: Option<String>,
    /// Plain http (`true`) or https (`false`); unset: http for loopback hosts, https for the
    /// rest, the same rule as for a registry with no entry at all.
    pub insecure: Option<bool>,
    /// PEM bundle of extra CA certificates trusted for this host.
    pub ca: Option<PathBuf>,
    pub auth: Option<AuthSettings>,
    /// Requests in flight to this host at once.
    pub max_concurrency: Option<usize>,
    /// Requests per second to this host (token bucket, `burst` saved up).
    pub requests_per_second: Option<f64>,
    pub burst: Option<u32>,
    /// `n` sent with tag listings; unset lets the registry pick its page size.
    pub page_size: Option<u32>,
    /// Time limit for one request, body included (`30s`, `2m`).
    pub timeout: Option<Duration>,
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
    /// A variable holding `user:password` (Argo CD Image Updater's `env:` pull secret);
    /// instead of the other keys.
    #[serde(default)]
    pub credentials_env: Option<String>,
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
    /// What the command prints: `json` (the default; only the password when `username` is
    /// set) or `userPassword`, one line `user:password` (Argo CD Image Updater's `ext:`).
    #[serde(default)]
    pub output: ExecOutput,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ExecOutput {
    #[default]
    Json,
    UserPassword,
}

fn opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text: Option<String> = Option::deserialize(d)?;
    text.map(|t| crate::config::duration::parse(&t).map_err(serde::de::Error::custom))
        .transpose()
}

/// A `registries:` entry as written, each checked value with its place in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRegistrySettings {
    pub host: Spanned<String>,
    #[serde(default)]
    pub mirror: Option<Spanned<String>>,
    #[serde(default)]
    pub insecure: Option<bool>,
    #[serde(default)]
    pub ca: Option<PathBuf>,
    #[serde(default)]
    pub auth: Option<Spanned<AuthSettings>>,
    #[serde(default)]
    pub max_concurrency: Option<Spanned<usize>>,
    #[serde(default)]
    pub requests_per_second: Option<Spanned<f64>>,
    #[serde(default)]
    pub burst: Option<Spanned<u32>>,
    #[serde(default)]
    pub page_size: Option<Spanned<u32>>,
    #[serde(default)]
    pub timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub connect_timeout: Option<Spanned<String>>,
}

/// The slowest rate `requestsPerSecond` may ask for: one request every 100 s. Slower would
/// stall a scan for hours on a registry's first page; the limiter itself copes with any value.
pub const MIN_REQUESTS_PER_SECOND: f64 = 0.01;
/// The longest `timeout` / `connectTimeout`: a request that may take longer than this is
/// indistinguishable from a hung one.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// One invalid value in a `registries:` entry, where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsProblem {
    pub line: u64,
    pub column: u64,
    pub message: String,
}

fn problem<T>(at: &Spanned<T>, message: String) -> SettingsProblem {
    SettingsProblem {
        line: at.referenced.line(),
        column: at.referenced.column(),
        message,
    }
}

/// Checks every entry and the set of them (one entry per host); returns the valid entries and
/// every problem found.
pub fn validate(raw: Vec<RawRegistrySettings>) -> (Vec<RegistrySettings>, Vec<SettingsProblem>) {
    let mut problems = Vec::new();
    let mut valid = Vec::new();
    let mut seen: Vec<(String, u64)> = Vec::new();
    // Hosts that are read through a mirror, with the line of their entry.
    let aliased: Vec<(String, u64)> = raw
        .iter()
        .filter(|e| e.mirror.is_some())
        .map(|e| {
            (
                normalise_host(e.host.value.trim()),
                e.host.referenced.line(),
            )
        })
        .collect();
    for entry in raw {
        if let Some(mirror) = &entry.mirror {
            mirror_problems(&entry, mirror, &aliased, &mut problems);
        }
        let key = normalise_host(entry.host.value.trim());
        if let Some((_, line)) = seen.iter().find(|(k, _)| *k == key) {
            problems.push(problem(
                &entry.host,
                format!(
                    "registry {:?} is configured twice (first at line {line}); give each host one entry",
                    entry.host.value
                ),
            ));
        } else {
            seen.push((key, entry.host.referenced.line()));
        }
        let before = problems.len();
        let settings = validate_one(entry, &mut problems);
        if problems.len() == before {
            valid.push(settings);
        }
    }
    (valid, problems)
}

/// A mirror is a host of its own (with its own entry for transport and credentials), never the
/// aliased host itself nor another aliased host: one hop, so what is read where stays obvious.
fn mirror_problems(
    entry: &RawRegistrySettings,
    mirror: &Spanned<String>,
    aliased: &[(String, u64)],
    problems: &mut Vec<SettingsProblem>,
) {
    let name = mirror.value.trim();
    if let Some(reason) = host_problem(name) {
        problems.push(problem(mirror, format!("mirror: {reason}")));
        return;
    }
    let key = normalise_host(name);
    if key == normalise_host(entry.host.value.trim()) {
        problems.push(problem(
            mirror,
            format!(
                "mirror {name:?} is the host itself; name the host images are read from instead"
            ),
        ));
    } else if let Some((_, line)) = aliased.iter().find(|(k, _)| *k == key) {
        problems.push(problem(
            mirror,
            format!(
                "mirror {name:?} is itself read through a mirror (line {line}); point this entry at the last host directly"
            ),
        ));
    }
    // The entry only redirects: transport and credentials belong to the mirror's own entry,
    // so the public host's credentials can never be sent to the mirror.
    let others = [
        ("insecure", entry.insecure.is_some()),
        ("ca", entry.ca.is_some()),
        ("auth", entry.auth.is_some()),
        ("maxConcurrency", entry.max_concurrency.is_some()),
        ("requestsPerSecond", entry.requests_per_second.is_some()),
        ("burst", entry.burst.is_some()),
        ("pageSize", entry.page_size.is_some()),
        ("timeout", entry.timeout.is_some()),
        ("connectTimeout", entry.connect_timeout.is_some()),
    ];
    let set: Vec<&str> = others.iter().filter(|(_, s)| *s).map(|(k, _)| *k).collect();
    if !set.is_empty() {
        problems.push(problem(
            mirror,
            format!(
                "an entry with a mirror takes no other settings ({}): images on {:?} are read from {name:?} with the settings of {name:?}'s own entry",
                set.join(", "),
                entry.host.value.trim()
            ),
        ));
    }
}

fn validate_one(raw: RawRegistrySettings, problems: &mut Vec<SettingsProblem>) -> RegistrySettings {
    let host = raw.host.value.trim().to_string();
    if let Some(reason) = host_problem(&host) {
        problems.push(problem(&raw.host, reason));
    }
    let rate = raw.requests_per_second.as_ref().and_then(|r| {
        let v = r.value;
        if v.is_finite() && v >= MIN_REQUESTS_PER_SECOND {
            Some(v)
        } else {
            problems.push(problem(
                r,
                format!(
                    "requestsPerSecond must be a number of at least {MIN_REQUESTS_PER_SECOND} (one request every 100s), not {v}"
                ),
            ));
            None
        }
    });
    let mut at_least_one = |name: &str, v: Option<&Spanned<u64>>| {
        if let Some(v) = v
            && v.value == 0
        {
            problems.push(problem(v, format!("{name} must be at least 1")));
        }
    };
    let widen = |v: &Option<Spanned<u32>>| {
        v.as_ref()
            .map(|s| Spanned::new(u64::from(s.value), s.referenced, s.defined))
    };
    let concurrency = raw
        .max_concurrency
        .as_ref()
        .map(|s| Spanned::new(s.value as u64, s.referenced, s.defined));
    at_least_one("maxConcurrency", concurrency.as_ref());
    at_least_one("burst", widen(&raw.burst).as_ref());
    at_least_one("pageSize", widen(&raw.page_size).as_ref());
    let mut duration = |name: &str, v: &Option<Spanned<String>>| {
        let v = v.as_ref()?;
        match crate::config::duration::parse(&v.value) {
            Ok(d) if d.is_zero() => {
                problems.push(problem(
                    v,
                    format!("{name} must be longer than 0s: every request would time out"),
                ));
                None
            }
            Ok(d) if d > MAX_TIMEOUT => {
                problems.push(problem(
                    v,
                    format!("{name} {:?} is longer than the limit of 1h", v.value),
                ));
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                problems.push(problem(v, format!("{name}: {e}")));
                None
            }
        }
    };
    let timeout = duration("timeout", &raw.timeout);
    let connect_timeout = duration("connectTimeout", &raw.connect_timeout);
    if let Some(auth) = &raw.auth
        && let Some(reason) = auth_problem(&auth.value)
    {
        problems.push(problem(auth, reason));
    }
    RegistrySettings {
        host,
        mirror: raw.mirror.map(|m| m.value.trim().to_string()),
        insecure: raw.insecure,
        ca: raw.ca,
        auth: raw.auth.map(|a| a.value),
        max_concurrency: raw.max_concurrency.map(|v| v.value),
        requests_per_second: rate,
        burst: raw.burst.map(|v| v.value),
        page_size: raw.page_size.map(|v| v.value),
        timeout,
        connect_timeout,
    }
}

fn host_problem(host: &str) -> Option<String> {
    if let Some((scheme, rest)) = host.split_once("://") {
        let plain = if scheme.eq_ignore_ascii_case("http") {
            " and `insecure: true` for plain http"
        } else {
            ""
        };
        return Some(format!(
            "host {host:?} has a scheme: write the host as image names spell it ({:?}){plain}",
            rest.trim_end_matches('/')
        ));
    }
    let bad_char = host
        .chars()
        .any(|c| c == '/' || c.is_whitespace() || c == '@');
    if host.is_empty() || bad_char {
        return Some(format!(
            "invalid registry host {host:?}: expected e.g. ghcr.io, registry.example.com or 127.0.0.1:5000"
        ));
    }
    None
}

fn auth_problem(auth: &AuthSettings) -> Option<String> {
    match auth {
        AuthSettings::Anonymous => None,
        AuthSettings::DockerConfig(path) if path.as_os_str().is_empty() => {
            Some("auth.dockerConfig needs the path of a Docker config.json".into())
        }
        AuthSettings::DockerConfig(_) => None,
        AuthSettings::Helper(name) if name.trim().is_empty() => {
            Some("auth.helper needs a helper name (docker-credential-<name>)".into())
        }
        AuthSettings::Helper(_) => None,
        AuthSettings::Basic(basic) if basic.credentials_env.is_some() => {
            let others = basic.username.is_some()
                || basic.username_env.is_some()
                || basic.password_env.is_some()
                || basic.password_file.is_some();
            others.then(|| "auth.basic with credentialsEnv takes no other key".to_string())
        }
        AuthSettings::Basic(basic) => {
            let user = match (&basic.username, &basic.username_env) {
                (Some(_), Some(_)) => Some("give username or usernameEnv, not both"),
                (None, None) => Some("needs username or usernameEnv"),
                _ => None,
            };
            let password = match (&basic.password_env, &basic.password_file) {
                (Some(_), Some(_)) => Some("give passwordEnv or passwordFile, not both"),
                (None, None) => Some("needs passwordEnv or passwordFile"),
                _ => None,
            };
            let reasons: Vec<&str> = user.into_iter().chain(password).collect();
            (!reasons.is_empty()).then(|| format!("auth.basic {}", reasons.join("; ")))
        }
        AuthSettings::Exec(exec) => match exec.command.first() {
            None => Some(
                "auth.exec.command is empty: give the program and its arguments, e.g. [gcloud, auth, print-access-token]"
                    .into(),
            ),
            Some(program) if program.trim().is_empty() => {
                Some("auth.exec.command names no program (its first item is empty)".into())
            }
            Some(_) => None,
        },
    }
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
        let raw: Vec<RawRegistrySettings> = serde_saphyr::from_str(yaml).unwrap();
        let (parsed, problems) = validate(raw);
        assert_eq!(problems, []);
        assert_eq!(parsed.len(), 5);
        assert_eq!(parsed[0].insecure, Some(true));
        assert_eq!(parsed[1].insecure, None);
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
            serde_saphyr::from_str::<RawRegistrySettings>("host: a\ninsecur: true\n").unwrap_err();
        assert!(err.to_string().contains("insecur"), "{err}");
    }

    fn problems_of(yaml: &str) -> Vec<(u64, u64, String)> {
        let raw: Vec<RawRegistrySettings> = serde_saphyr::from_str(yaml).unwrap();
        validate(raw)
            .1
            .into_iter()
            .map(|p| (p.line, p.column, p.message))
            .collect()
    }

    #[test]
    fn invalid_values_are_reported_where_they_are() {
        let yaml = "\
- host: https://ghcr.io
  requestsPerSecond: -1
- host: a.io
  requestsPerSecond: 1e-300
  timeout: 0s
  connectTimeout: 18446744073709551615s
- host: A.io
  auth: { basic: { username: bot } }
- host: b.io
  auth: { exec: { command: [] } }
  maxConcurrency: 0
  pageSize: 0
  burst: 0
- host: c.io
  requestsPerSecond: .nan
";
        let found = problems_of(yaml);
        let at: Vec<(u64, u64)> = found.iter().map(|(l, c, _)| (*l, *c)).collect();
        assert_eq!(
            at,
            [
                (1, 9),
                (2, 22),
                (4, 22),
                (5, 12),
                (6, 19),
                (7, 9),
                (8, 9),
                (11, 19),
                (13, 10),
                (12, 13),
                (10, 9),
                (15, 22)
            ],
            "{found:#?}"
        );
        let text: Vec<&str> = found.iter().map(|(_, _, m)| m.as_str()).collect();
        assert!(
            text[0].contains("scheme") && text[0].contains("\"ghcr.io\""),
            "{}",
            text[0]
        );
        assert!(text[1].contains("at least 0.01"), "{}", text[1]);
        assert!(text[3].contains("longer than 0s"), "{}", text[3]);
        assert!(text[4].contains("1h"), "{}", text[4]);
        assert!(
            text[5].contains("twice") && text[5].contains("line 3"),
            "{}",
            text[5]
        );
        assert!(
            text[6].contains("passwordEnv or passwordFile"),
            "{}",
            text[6]
        );
        assert!(text[10].contains("command is empty"), "{}", text[10]);
    }

    #[test]
    fn a_mirror_is_read_and_its_mistakes_are_reported_where_they_are() {
        let yaml =
            "- host: ghcr.io\n  mirror: 127.0.0.1:5000\n- host: 127.0.0.1:5000\n  insecure: true\n";
        let raw: Vec<RawRegistrySettings> = serde_saphyr::from_str(yaml).unwrap();
        let (parsed, problems) = validate(raw);
        assert_eq!(problems, []);
        assert_eq!(parsed[0].mirror.as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(parsed[1].mirror, None);

        let problems = problems_of(
            "- host: ghcr.io\n  mirror: GHCR.io\n\
             - host: quay.io\n  mirror: mirror.example\n\
             - host: mirror.example\n  mirror: 127.0.0.1:5000\n\
             - host: gcr.io\n  mirror: 127.0.0.1:5001\n  auth: anonymous\n  insecure: true\n\
             - host: docker.io\n  mirror: 'https://m.example'\n",
        );
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert_eq!((problems[0].0, problems[0].1), (2, 11));
        assert!(problems[0].2.contains("is the host itself"), "{problems:?}");
        assert_eq!((problems[1].0, problems[1].1), (4, 11));
        assert!(
            problems[1]
                .2
                .contains("itself read through a mirror (line 5)"),
            "{problems:?}"
        );
        assert_eq!(problems[2].0, 8);
        assert!(
            problems[2]
                .2
                .contains("takes no other settings (insecure, auth)"),
            "{problems:?}"
        );
        assert_eq!(problems[3].0, 12);
        assert!(problems[3].2.contains("has a scheme"), "{problems:?}");
    }
}
