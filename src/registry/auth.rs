//! Credentials for one registry host: env vars, files, Docker `config.json` (`auths`,
//! `credsStore`, `credHelpers`), credential helpers by their protocol, or a command.
//!
//! Every lookup says where its credentials came from (`source`) so that errors can name the
//! source; the secret itself only ever goes into an `Authorization` header.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use thiserror::Error;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::settings::{AuthSettings, BasicAuth, ExecAuth, ExecOutput};

const HUB_ALIASES: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];
/// The server URL Docker itself uses as the key for Docker Hub credentials.
const HUB_SERVER_URL: &str = "https://index.docker.io/v1/";
const DEFAULT_CACHE_FOR: Duration = Duration::from_secs(300);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Error)]
pub enum AuthError {
    #[error("env var {var} is not set (needed for {source_name})")]
    EnvMissing { var: String, source_name: String },
    #[error("cannot read {path} for {source_name}")]
    ReadFile {
        path: PathBuf,
        source_name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid docker config {path}: {reason}")]
    DockerConfig { path: PathBuf, reason: String },
    #[error("helper docker-credential-{helper} failed: {reason}")]
    Helper { helper: String, reason: String },
    #[error("credential command {command:?} failed: {reason}")]
    Exec { command: String, reason: String },
    #[error("invalid auth settings: {reason}")]
    Settings { reason: String },
}

impl AuthError {
    /// Commands and helpers may fail for a moment (a keychain locked, a cloud CLI offline);
    /// a missing env var or a broken file will not fix itself.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Helper { .. } | Self::Exec { .. })
    }
}

/// A password or token; its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Self {
        Self(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
    /// The secret is an OAuth2 refresh token (Docker's "identity token"): it is exchanged at
    /// the token service, never sent as a password.
    pub identity_token: bool,
}

/// The user name credential helpers report for an identity token.
const IDENTITY_TOKEN_USER: &str = "<token>";

impl Credentials {
    pub fn password(username: String, password: String) -> Self {
        Self {
            username,
            password: Secret::new(password),
            identity_token: false,
        }
    }

    /// Helper replies mark identity tokens with the user name `<token>`.
    fn from_helper(username: String, secret: String) -> Self {
        Self {
            identity_token: username == IDENTITY_TOKEN_USER,
            username,
            password: Secret::new(secret),
        }
    }
}

/// The outcome of one lookup: credentials or none, and where they came from.
#[derive(Debug, Clone)]
pub struct Lookup {
    pub credentials: Option<Credentials>,
    pub source: String,
}

/// Credentials of one host, looked up lazily and reused for a while.
#[derive(Debug)]
pub struct CredentialProvider {
    host: String,
    settings: Option<AuthSettings>,
    cache: Mutex<Option<(Lookup, Instant)>>,
}

impl CredentialProvider {
    /// `host` is the registry as users name it (`docker.io`, `ghcr.io`, `127.0.0.1:5000`).
    pub fn new(host: &str, settings: Option<AuthSettings>) -> Self {
        Self {
            host: host.to_string(),
            settings,
            cache: Mutex::new(None),
        }
    }

    pub async fn get(&self) -> Result<Lookup, AuthError> {
        let mut cache = self.cache.lock().await;
        if let Some((lookup, at)) = cache.as_ref()
            && at.elapsed() < self.cache_for()
        {
            return Ok(lookup.clone());
        }
        let lookup = self.lookup().await?;
        *cache = Some((lookup.clone(), Instant::now()));
        Ok(lookup)
    }

    /// Forget cached credentials, e.g. after the registry refused them: short-lived ones may
    /// have expired and the source may have fresh ones.
    pub async fn invalidate(&self) {
        *self.cache.lock().await = None;
    }

    fn cache_for(&self) -> Duration {
        match &self.settings {
            Some(AuthSettings::Exec(exec)) => exec.cache_for.unwrap_or(DEFAULT_CACHE_FOR),
            _ => DEFAULT_CACHE_FOR,
        }
    }

    async fn lookup(&self) -> Result<Lookup, AuthError> {
        match &self.settings {
            Some(AuthSettings::Anonymous) => Ok(Lookup {
                credentials: None,
                source: "anonymous (configured)".into(),
            }),
            Some(AuthSettings::Basic(basic)) => basic_from_env(basic),
            Some(AuthSettings::DockerConfig(path)) => {
                from_docker_config(&expand_home(path), &self.host, true).await
            }
            Some(AuthSettings::Helper(name)) => {
                let credentials = call_helper(name, &helper_server_url(&self.host)).await?;
                Ok(Lookup {
                    credentials,
                    source: format!("helper docker-credential-{name}"),
                })
            }
            Some(AuthSettings::Exec(exec)) => run_exec(exec).await,
            None => match default_docker_config() {
                Some(path) if path.exists() => from_docker_config(&path, &self.host, false).await,
                _ => Ok(Lookup {
                    credentials: None,
                    source: "anonymous".into(),
                }),
            },
        }
    }
}

fn basic_from_env(basic: &BasicAuth) -> Result<Lookup, AuthError> {
    if let Some(var) = &basic.credentials_env {
        return pair_from_env(basic, var);
    }
    let username_desc = match (&basic.username, &basic.username_env) {
        (Some(_), None) => "a literal user name".to_string(),
        (None, Some(var)) => format!("env {var}"),
        _ => {
            return Err(AuthError::Settings {
                reason: "basic auth needs exactly one of username, usernameEnv".into(),
            });
        }
    };
    let password_desc = match (&basic.password_env, &basic.password_file) {
        (Some(var), None) => format!("env {var}"),
        (None, Some(path)) => format!("file {}", path.display()),
        _ => {
            return Err(AuthError::Settings {
                reason: "basic auth needs exactly one of passwordEnv, passwordFile".into(),
            });
        }
    };
    let source = format!("basic auth from {username_desc} and {password_desc}");
    let env = |var: &String| {
        std::env::var(var).map_err(|_| AuthError::EnvMissing {
            var: var.clone(),
            source_name: source.clone(),
        })
    };
    let username = match (&basic.username, &basic.username_env) {
        (Some(name), _) => name.clone(),
        (None, Some(var)) => env(var)?,
        (None, None) => String::new(),
    };
    let password = match (&basic.password_env, &basic.password_file) {
        (Some(var), _) => env(var)?,
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|source_err| AuthError::ReadFile {
                path: path.clone(),
                source_name: source.clone(),
                source: source_err,
            })?
            .trim_end_matches(['\r', '\n'])
            .to_string(),
        (None, None) => String::new(),
    };
    Ok(Lookup {
        credentials: Some(Credentials::password(username, password)),
        source,
    })
}

/// `credentialsEnv`: `user:password` in one variable, split at the first `:`, both parts
/// needed (registry-scanner `pkg/image/credentials.go`, `FetchCredentials` for `env:`).
fn pair_from_env(basic: &BasicAuth, var: &str) -> Result<Lookup, AuthError> {
    if basic.username.is_some()
        || basic.username_env.is_some()
        || basic.password_env.is_some()
        || basic.password_file.is_some()
    {
        return Err(AuthError::Settings {
            reason: "basic auth with credentialsEnv takes no other key".into(),
        });
    }
    let source = format!("basic auth from env {var} (user:password)");
    let value = std::env::var(var).map_err(|_| AuthError::EnvMissing {
        var: var.to_string(),
        source_name: source.clone(),
    })?;
    match value.split_once(':') {
        Some((user, password)) if !user.is_empty() && !password.is_empty() => Ok(Lookup {
            credentials: Some(Credentials::password(
                user.to_string(),
                password.to_string(),
            )),
            source,
        }),
        // The value is a secret: never part of the message.
        _ => Err(AuthError::Settings {
            reason: format!("env {var} does not hold user:password"),
        }),
    }
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`, as the Docker CLI looks.
pub fn default_docker_config() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker").join("config.json"))
}

fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => path.to_path_buf(),
    }
}

#[derive(Debug, Default, Deserialize)]
struct DockerConfigFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// Reduces a config key or host to the form both sides share: no scheme, no path, Docker Hub's
/// aliases folded into `docker.io`.
pub fn normalise_host(key: &str) -> String {
    let no_scheme = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = no_scheme
        .split('/')
        .next()
        .unwrap_or(no_scheme)
        .to_ascii_lowercase();
    if HUB_ALIASES.contains(&host.as_str()) {
        "docker.io".to_string()
    } else {
        host
    }
}

fn helper_server_url(host: &str) -> String {
    if normalise_host(host) == "docker.io" {
        HUB_SERVER_URL.to_string()
    } else {
        host.to_string()
    }
}

/// Docker's order: a `credHelpers` entry for the host, else `credsStore`, else `auths`.
/// `explicit` says whether the user named this file (a missing named file is an error; a
/// missing default one just means anonymous).
async fn from_docker_config(path: &Path, host: &str, explicit: bool) -> Result<Lookup, AuthError> {
    let config_desc = format!("docker config {}", path.display());
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Lookup {
                credentials: None,
                source: "anonymous".into(),
            });
        }
        Err(source) => {
            return Err(AuthError::ReadFile {
                path: path.to_path_buf(),
                source_name: config_desc,
                source,
            });
        }
    };
    let config: DockerConfigFile =
        serde_json::from_str(&text).map_err(|e| AuthError::DockerConfig {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let wanted = normalise_host(host);
    let helper = config
        .cred_helpers
        .iter()
        .find(|(key, _)| normalise_host(key) == wanted)
        .map(|(_, helper)| helper.clone())
        .or(config.creds_store.clone());
    if let Some(helper) = helper
        && let Some(credentials) = call_helper(&helper, &helper_server_url(host)).await?
    {
        return Ok(Lookup {
            credentials: Some(credentials),
            source: format!("helper docker-credential-{helper} (from {config_desc})"),
        });
    }
    let entry = config
        .auths
        .iter()
        .find(|(key, _)| normalise_host(key) == wanted)
        .map(|(_, entry)| entry);
    let credentials = match entry {
        Some(entry) => decode_entry(entry).map_err(|reason| AuthError::DockerConfig {
            path: path.to_path_buf(),
            reason: format!("auths entry for {wanted}: {reason}"),
        })?,
        None => None,
    };
    let source = if credentials.is_some() {
        format!("{config_desc} (auths)")
    } else {
        format!("anonymous (no entry for {wanted} in {config_desc})")
    };
    Ok(Lookup {
        credentials,
        source,
    })
}

fn decode_entry(entry: &AuthEntry) -> Result<Option<Credentials>, String> {
    if let Some(token) = entry.identitytoken.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credentials {
            username: entry.username.clone().unwrap_or_default(),
            password: Secret::new(token.to_string()),
            identity_token: true,
        }));
    }
    if let (Some(username), Some(password)) = (&entry.username, &entry.password) {
        return Ok(Some(Credentials::password(
            username.clone(),
            password.clone(),
        )));
    }
    let Some(encoded) = entry.auth.as_deref().filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| "auth is not base64".to_string())?;
    let decoded = String::from_utf8(decoded).map_err(|_| "auth is not utf-8".to_string())?;
    let (username, password) = decoded
        .split_once(':')
        .ok_or_else(|| "auth is not user:password".to_string())?;
    Ok(Some(Credentials::password(
        username.to_string(),
        password.to_string(),
    )))
}

#[derive(Debug, Deserialize)]
struct HelperReply {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// The credential helper protocol: `docker-credential-<name> get`, server URL on stdin, JSON
/// `{"ServerURL","Username","Secret"}` on stdout; "credentials not found" means none.
async fn call_helper(name: &str, server_url: &str) -> Result<Option<Credentials>, AuthError> {
    let program = format!("docker-credential-{name}");
    let fail = |reason: String| AuthError::Helper {
        helper: name.to_string(),
        reason,
    };
    let output = run_with_input(&program, &["get".to_string()], server_url.as_bytes())
        .await
        .map_err(&fail)?;
    if !output.status.success() {
        let said = format!(
            "{} {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if said.to_ascii_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        return Err(fail(format!(
            "{}: {}",
            output.status,
            first_line(&output.stderr)
        )));
    }
    let reply: HelperReply = serde_json::from_slice(&output.stdout)
        .map_err(|e| fail(format!("unreadable reply: {}", describe_json_error(&e))))?;
    Ok(Some(Credentials::from_helper(reply.username, reply.secret)))
}

#[derive(Debug, Deserialize)]
struct ExecReply {
    #[serde(alias = "Username")]
    username: String,
    #[serde(alias = "Secret", alias = "token")]
    password: String,
}

async fn run_exec(exec: &ExecAuth) -> Result<Lookup, AuthError> {
    let Some((program, args)) = exec.command.split_first() else {
        return Err(AuthError::Settings {
            reason: "exec command is empty".into(),
        });
    };
    let command = exec.command.join(" ");
    let fail = |reason: String| AuthError::Exec {
        command: command.clone(),
        reason,
    };
    let output = run_with_input(program, args, b"").await.map_err(&fail)?;
    if !output.status.success() {
        return Err(fail(format!(
            "{}: {}",
            output.status,
            first_line(&output.stderr)
        )));
    }
    let credentials = match (&exec.username, exec.output) {
        // One line `user:password`, its line end dropped (`FetchCredentials` for `ext:`).
        (_, ExecOutput::UserPassword) => {
            let text =
                String::from_utf8(output.stdout).map_err(|_| fail("output is not utf-8".into()))?;
            let line = text.trim_end_matches(['\r', '\n']);
            let Some((user, password)) = line.split_once(':') else {
                return Err(fail("output is not one line user:password".into()));
            };
            Credentials::password(user.to_string(), password.to_string())
        }
        (Some(username), ExecOutput::Json) => {
            let password = String::from_utf8(output.stdout)
                .map_err(|_| fail("output is not utf-8".into()))?
                .trim()
                .to_string();
            Credentials::password(username.clone(), password)
        }
        (None, ExecOutput::Json) => {
            let reply: ExecReply = serde_json::from_slice(&output.stdout)
                .map_err(|e| fail(format!("unreadable output: {}", describe_json_error(&e))))?;
            Credentials::password(reply.username, reply.password)
        }
    };
    Ok(Lookup {
        credentials: Some(credentials),
        source: format!("exec command {:?}", program),
    })
}

/// JSON errors from serde quote parts of the input, which here holds a secret: keep only
/// the position and the category.
fn describe_json_error(e: &serde_json::Error) -> String {
    format!(
        "{:?} json error at line {} column {}",
        e.classify(),
        e.line(),
        e.column()
    )
}

fn first_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let line = text.lines().next().unwrap_or("").trim();
    line.chars().take(200).collect()
}

async fn run_with_input(
    program: &str,
    args: &[String],
    input: &[u8],
) -> Result<std::process::Output, String> {
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!("{program} not found on PATH"),
            _ => format!("cannot start {program}: {e}"),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading its input is fine.
        let _ = stdin.write_all(input).await;
    }
    match tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(output)) => Ok(output),
        Ok(Err(e)) => Err(format!("cannot read output of {program}: {e}")),
        Err(_) => Err(format!("{program} did not finish in {COMMAND_TIMEOUT:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_config_keys_meet_in_one_form() {
        assert_eq!(normalise_host("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(normalise_host("registry-1.docker.io"), "docker.io");
        assert_eq!(
            normalise_host("http://127.0.0.1:5000/v2/"),
            "127.0.0.1:5000"
        );
        assert_eq!(normalise_host("GHCR.io"), "ghcr.io");
        assert_eq!(helper_server_url("docker.io"), HUB_SERVER_URL);
        assert_eq!(helper_server_url("ghcr.io"), "ghcr.io");
    }

    #[test]
    fn auths_entries_decode_and_secrets_stay_hidden() {
        let entry = AuthEntry {
            auth: Some(base64::engine::general_purpose::STANDARD.encode("bot:pa:ss")),
            ..AuthEntry::default()
        };
        let creds = decode_entry(&entry).unwrap().unwrap();
        assert_eq!(creds.username, "bot");
        assert_eq!(creds.password.expose(), "pa:ss");
        assert!(!format!("{creds:?}").contains("pa:ss"));
        let identity = AuthEntry {
            auth: Some(base64::engine::general_purpose::STANDARD.encode("bot:")),
            identitytoken: Some("refresh-1".into()),
            ..AuthEntry::default()
        };
        let creds = decode_entry(&identity).unwrap().unwrap();
        assert!(creds.identity_token);
        assert_eq!(creds.password.expose(), "refresh-1");
        assert!(Credentials::from_helper("<token>".into(), "r".into()).identity_token);
        assert!(!Credentials::from_helper("bot".into(), "r".into()).identity_token);
        let bad = AuthEntry {
            auth: Some("!!".into()),
            ..AuthEntry::default()
        };
        assert!(decode_entry(&bad).is_err());
        assert_eq!(decode_entry(&AuthEntry::default()).unwrap(), None);
    }

    #[test]
    fn json_errors_do_not_echo_input() {
        let e = serde_json::from_str::<ExecReply>(r#"{"username":"u","password":hunter2}"#)
            .unwrap_err();
        assert!(!describe_json_error(&e).contains("hunter2"));
    }
}
