//! `tagsmith.yaml`: raw serde types (`raw`) validated into a `Config` whose regexes are compiled,
//! ranges parsed, durations read and paths checked. Every problem names file:line:column. A
//! first pass (`keys`) reports every unknown key at once; a YAML syntax error or a value of the
//! wrong type stops reading at its place; the validation after that reports all it finds.

pub mod argocd;
pub mod duration;
pub mod flux;
mod keys;
mod notify;
mod pull_request;
pub mod raw;
mod schedule;
pub mod schema;
pub mod suggest;
pub mod template;
mod tenancy;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde_saphyr::Spanned;
use thiserror::Error;

pub use self::notify::{CommitStatus, EventKind, Sink, SinkKind, WebhookFormat};
pub use self::pull_request::{
    AutoMerge, ForgeKind, GitHubAuth, PullRequestSettings, forge_from_url, repository_from,
};
pub use self::schedule::{Schedule, Zone};
pub use self::template::Template;
pub use self::tenancy::Tenancy;
use crate::model::{ImageName, PolicyId};
use crate::policy::{FilterSpec, Order, Policy, PolicySpec, RuleSpec};
/// Kept here as well: settings across the crate name secrets as `config::Secret`.
pub use crate::secret::Secret;

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);
/// How often `tagsmith run` re-reads a target's repository when nothing else triggers it.
pub const DEFAULT_TARGET_INTERVAL: Duration = Duration::from_secs(600);
/// The longest `interval` accepted (images and targets).
pub const MAX_INTERVAL: Duration = Duration::from_secs(365 * 24 * 3600);
pub const DEFAULT_BRANCH: &str = "main";

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}", path = path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}", path = path.display())]
    Parse { path: PathBuf, message: String },
    #[error("{}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid { problems: Vec<Problem> },
}

/// One invalid value, where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.path.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

/// Whether a selection carries the image's digest (Flux's `digestReflectionPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DigestMode {
    #[default]
    Never,
    IfNotPresent,
    Always,
}

/// One image and the policy that picks its tag: a Flux ImageRepository and ImagePolicy in one.
#[derive(Debug, Clone)]
pub struct ImagePolicy {
    pub id: PolicyId,
    pub image: ImageName,
    pub interval: Duration,
    pub policy: Policy,
    pub digest: DigestMode,
    /// `suspend: true` (or a suspended Flux object): not scanned, markers left as they are.
    pub suspend: bool,
    /// Checks a candidate passes after the policy ranks the tags (`minAge`, `platforms`, `verify`).
    pub gates: crate::gate::Gates,
}

impl ImagePolicy {
    /// Whether selecting needs more from the registry than the tag list: gates to pass, or
    /// build times to rank by (newest-build).
    pub fn needs_registry_pass(&self) -> bool {
        !self.gates.is_empty() || self.policy.newest_build().is_some()
    }
}

/// A Git user name: as written, or read from an environment variable when needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Username {
    Literal(String),
    Env(String),
}

/// Credentials for a Git remote: over HTTP a token (sent as password) or username and
/// password; over SSH a private key, checked against a known_hosts file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GitAuth {
    pub username: Option<Username>,
    pub password: Option<Secret>,
    pub ssh: Option<SshAuth>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshAuth {
    pub key_file: PathBuf,
    pub passphrase: Option<Secret>,
    /// Host keys trusted for the remote; an unknown or different key fails the connection.
    pub known_hosts: PathBuf,
}

#[derive(Debug, Clone)]
pub struct GitSource {
    pub url: String,
    /// The branch checked out, or with `checkout` the branch pushed to (for a commit: the
    /// branch it is fetched from).
    pub branch: String,
    pub auth: GitAuth,
    /// Check out this instead of `branch` (Flux's tag, semver, commit or name refs); new
    /// commits go on top of it, or on the push branch when that exists remotely.
    pub checkout: Option<CheckoutRef>,
    /// Git push options (`git push -o`) sent with every push, e.g. GitLab's
    /// `merge_request.create`.
    pub push_options: Vec<String>,
}

/// A fixed point to check out rather than a branch head: Flux's `GitRepositoryRef` without
/// `branch`, with source-controller's precedence (commit, name, tag, semver).
#[derive(Debug, Clone)]
pub enum CheckoutRef {
    Tag(String),
    /// The highest tag in the range, as source-controller picks it.
    Semver(crate::policy::semver::Range),
    /// A full commit id; fetched from `GitSource::branch` when `on_branch`, else from every
    /// branch.
    Commit {
        id: String,
        on_branch: bool,
    },
    /// A full reference name, e.g. `refs/tags/v1.0.0` or `refs/pull/1/head`.
    Name(String),
}

impl fmt::Display for CheckoutRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tag(t) => write!(f, "tag {t}"),
            Self::Semver(r) => write!(f, "semver {}", r.as_str()),
            Self::Commit { id, .. } => write!(f, "commit {id}"),
            Self::Name(n) => write!(f, "ref {n}"),
        }
    }
}

/// The key a target signs its commits with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigningKey {
    /// An SSH private key (`ssh-keygen -Y sign`, as git's `gpg.format=ssh`).
    Ssh(PathBuf),
    /// An armored OpenPGP secret key (Flux's `git.asc`), optionally passphrase-protected.
    OpenPgp {
        key_file: PathBuf,
        passphrase: Option<Secret>,
    },
}

impl From<PathBuf> for SigningKey {
    fn from(path: PathBuf) -> Self {
        Self::Ssh(path)
    }
}

impl SigningKey {
    /// The key file.
    pub fn path(&self) -> &Path {
        match self {
            Self::Ssh(p) | Self::OpenPgp { key_file: p, .. } => p,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    pub name: String,
    pub email: String,
}

impl Default for Author {
    fn default() -> Self {
        Self {
            name: "tagsmith".into(),
            email: "tagsmith@localhost".into(),
        }
    }
}

/// A Git repository tagsmith keeps current: a Flux ImageUpdateAutomation and its source.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub git: GitSource,
    /// Relative to the repository root, never leaving it.
    pub paths: Vec<PathBuf>,
    pub tenancy: Tenancy,
    /// Branch to push to; `None` pushes to `git.branch`.
    pub push_branch: Option<String>,
    /// Deliver through a GitHub pull request instead of pushing to `push_branch`.
    pub pull_request: Option<PullRequestSettings>,
    /// Set a GitHub commit status on each delivered commit (`push.status`).
    pub status: Option<CommitStatus>,
    pub author: Author,
    pub message: Template,
    /// The key commits are signed with (SSH or OpenPGP); `None`: unsigned.
    pub signing_key: Option<SigningKey>,
    /// `tagsmith run` delivers changes only at the times this cron expression names (crontab
    /// semantics, in `timezone`, default UTC).
    pub schedule: Option<Schedule>,
    /// `tagsmith run` re-reads the repository this often even when no selection changed, to
    /// pick up markers added or edited in Git.
    pub interval: Duration,
    /// When set, only these policies may change the target's files (a Flux policySelector).
    pub policies: Option<BTreeSet<PolicyId>>,
    /// Argo CD Image Updater write-backs (`--argocd`): files edited beside the markers, in
    /// the same commit.
    pub writebacks: Vec<crate::writeback::WriteBack>,
}

impl Target {
    pub fn push_branch(&self) -> &str {
        self.push_branch.as_deref().unwrap_or(&self.git.branch)
    }

    pub fn allows_policy(&self, policy: &PolicyId) -> bool {
        self.policies.as_ref().is_none_or(|p| p.contains(policy))
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub images: Vec<ImagePolicy>,
    pub targets: Vec<Target>,
    pub registries: Vec<crate::registry::RegistrySettings>,
    pub state_dir: Option<PathBuf>,
    pub server: crate::server::ServerSettings,
    pub receivers: Vec<crate::server::webhooks::Receiver>,
    /// `notify:` sinks.
    pub notify: Vec<Sink>,
    /// Flux object files or folders named by the `flux:` key, relative paths resolved.
    pub flux: Vec<PathBuf>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// `path` names the file in messages and anchors relative paths (secret files, state dir).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let options = serde_saphyr::options! { strict_booleans: true, with_snippet: false };
        // The typed pass refuses an unknown key wherever the schema does (`deny_unknown_fields`
        // is what makes the schema say `additionalProperties: false`; a test inserts a key into
        // every mapping of the example configs to hold that), so a file it reads has none. Only
        // a file it refuses is read again, for every unknown key at once with a suggestion.
        let raw: raw::RawConfig = match serde_saphyr::from_str_with_options(text, options) {
            Ok(raw) => raw,
            Err(e) => {
                let unknown = keys::unknown_keys(text, path, &schema::json_schema())
                    .map_err(|p| ConfigError::Invalid { problems: vec![p] })?;
                let problems = if unknown.is_empty() {
                    vec![typed_problem(path, &e)]
                } else {
                    unknown
                };
                return Err(ConfigError::Invalid { problems });
            }
        };
        Validator::new(path).config(raw)
    }

    pub fn image(&self, id: &PolicyId) -> Option<&ImagePolicy> {
        self.images.iter().find(|i| &i.id == id)
    }
}

/// A typed-pass error as `file:line:column: message` (the parser's own text names no file and
/// puts the place at the end).
fn typed_problem(path: &Path, e: &serde_saphyr::Error) -> Problem {
    let text = e.to_string();
    let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
    let suffix = format!(" at line {line}, column {column}");
    let message = text.strip_suffix(&suffix).unwrap_or(&text).to_string();
    Problem {
        path: path.to_path_buf(),
        line,
        column,
        message,
    }
}

struct Validator<'a> {
    path: &'a Path,
    problems: Vec<Problem>,
}

impl<'a> Validator<'a> {
    fn new(path: &'a Path) -> Self {
        Self {
            path,
            problems: Vec::new(),
        }
    }

    fn problem<T>(&mut self, at: &Spanned<T>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: self.path.to_path_buf(),
            line: at.referenced.line(),
            column: at.referenced.column(),
            message: message.into(),
        });
    }

    fn problem_here(&mut self, message: impl Into<String>) {
        self.problems.push(Problem {
            path: self.path.to_path_buf(),
            line: 0,
            column: 0,
            message: message.into(),
        });
    }

    /// Relative paths in the config are relative to the config file's folder.
    fn resolve(&self, p: &str) -> PathBuf {
        let p = expand_home(p);
        if p.is_absolute() {
            p
        } else {
            self.path.parent().unwrap_or(Path::new(".")).join(p)
        }
    }

    fn config(mut self, raw: raw::RawConfig) -> Result<Config, ConfigError> {
        let mut images = Vec::new();
        let mut seen = BTreeSet::new();
        for image in raw.images {
            if let Some(valid) = self.image(image, &mut seen) {
                images.push(valid);
            }
        }
        let mut targets = Vec::new();
        let mut names = BTreeSet::new();
        for target in raw.targets {
            if let Some(valid) = self.target(target, &mut names) {
                targets.push(valid);
            }
        }
        let state_dir = raw.state.map(|s| self.resolve(&s.dir));
        let registries = self.registries(raw.registries);
        let server = self.server(raw.server);
        let mut receivers = Vec::new();
        let mut receiver_names = BTreeSet::new();
        for receiver in raw.receivers {
            if let Some(valid) = self.receiver(receiver, &mut receiver_names) {
                receivers.push(valid);
            }
        }
        let mut notify = Vec::new();
        let mut sink_names = BTreeSet::new();
        for sink in raw.notify {
            if let Some(valid) = self.sink(sink, &mut sink_names, &names) {
                notify.push(valid);
            }
        }
        let flux = raw.flux.iter().map(|p| self.resolve(&p.value)).collect();
        if self.problems.is_empty() {
            Ok(Config {
                path: self.path.to_path_buf(),
                images,
                targets,
                registries,
                state_dir,
                server,
                receivers,
                notify,
                flux,
            })
        } else {
            Err(ConfigError::Invalid {
                problems: self.problems,
            })
        }
    }

    fn server(&mut self, raw: Option<raw::RawServer>) -> crate::server::ServerSettings {
        let mut settings = crate::server::ServerSettings::default();
        let Some(raw) = raw else {
            return settings;
        };
        let mut address = |v: &Spanned<String>| match v.value.parse::<std::net::SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.problem(
                    v,
                    format!(
                        "invalid address {:?}: expected ip:port, e.g. 0.0.0.0:9292",
                        v.value
                    ),
                );
                None
            }
        };
        if let Some(listen) = raw.listen.as_ref().and_then(&mut address) {
            settings.listen = listen;
        }
        settings.metrics = raw.metrics.as_ref().and_then(&mut address);
        settings
    }

    fn receiver(
        &mut self,
        raw: raw::RawReceiver,
        names: &mut BTreeSet<String>,
    ) -> Option<crate::server::webhooks::Receiver> {
        let before = self.problems.len();
        // The name is a URL path segment: keep it to what needs no escaping.
        let name = self.unique_name("receiver", &raw.name, names);
        let kind = raw
            .kind
            .value
            .parse::<crate::server::webhooks::ReceiverKind>()
            .map_err(|e| self.problem(&raw.kind, e.to_string()))
            .ok();
        let secret = match (raw.secret_env, raw.secret_file) {
            (Some(env), None) => Some(Secret::Env(env)),
            (None, Some(file)) => Some(Secret::File(self.resolve(&file))),
            (Some(_), Some(_)) => {
                self.problem(
                    &raw.name,
                    format!("receiver {name}: give secretEnv or secretFile, not both"),
                );
                None
            }
            (None, None) => {
                self.problem(
                    &raw.name,
                    format!("receiver {name}: needs secretEnv or secretFile; every receiver checks a secret"),
                );
                None
            }
        };
        let registry = raw.registry.as_ref().and_then(|r| {
            let host = r.value.trim();
            // It must read as a host when put in front of a path (a '.' or ':', or localhost).
            let ok = !host.contains('/')
                && format!("{host}/x")
                    .parse::<ImageName>()
                    .is_ok_and(|n| n.explicit_registry() == Some(host));
            if ok {
                Some(host.to_string())
            } else {
                self.problem(
                    r,
                    format!("invalid registry host {:?}: expected e.g. registry.example.com or 127.0.0.1:5000", r.value),
                );
                None
            }
        });
        if self.problems.len() > before {
            return None;
        }
        Some(crate::server::webhooks::Receiver {
            name,
            kind: kind?,
            secret: secret?,
            registry,
        })
    }

    fn registries(
        &mut self,
        raw: Vec<crate::registry::settings::RawRegistrySettings>,
    ) -> Vec<crate::registry::RegistrySettings> {
        let (valid, problems) = crate::registry::settings::validate(raw);
        for p in problems {
            self.problems.push(Problem {
                path: self.path.to_path_buf(),
                line: p.line,
                column: p.column,
                message: p.message,
            });
        }
        valid.into_iter().map(|r| self.registry(r)).collect()
    }

    /// Files a registry entry names are relative to the config file, like every other path.
    fn registry(
        &self,
        mut r: crate::registry::RegistrySettings,
    ) -> crate::registry::RegistrySettings {
        use crate::registry::AuthSettings;
        r.ca = r.ca.map(|p| self.resolve(&p.to_string_lossy()));
        match &mut r.auth {
            Some(AuthSettings::DockerConfig(p)) => *p = self.resolve(&p.to_string_lossy()),
            Some(AuthSettings::Basic(b)) => {
                b.password_file = b
                    .password_file
                    .take()
                    .map(|p| self.resolve(&p.to_string_lossy()))
            }
            _ => {}
        }
        r
    }

    fn image(&mut self, raw: raw::RawImage, seen: &mut BTreeSet<PolicyId>) -> Option<ImagePolicy> {
        let before = self.problems.len();
        let id = match raw.policy.value.parse::<PolicyId>() {
            Ok(id) if !seen.insert(id.clone()) => {
                self.problem(&raw.policy, format!("policy {id} is defined twice"));
                None
            }
            Ok(id) => Some(id),
            Err(e) => {
                self.problem(&raw.policy, e.to_string());
                None
            }
        };
        let image = raw
            .image
            .value
            .parse::<ImageName>()
            .map_err(|e| self.problem(&raw.image, e.to_string()))
            .ok();
        let interval = self.interval(raw.interval.as_ref(), DEFAULT_INTERVAL);
        let rule = self.rule(&raw);
        let filter = raw.filter_tags.as_ref().map(|f| FilterSpec {
            pattern: f.pattern.value.clone(),
            extract: f.extract.clone(),
        });
        let exclude = raw
            .exclude
            .as_ref()
            .map(|e| e.iter().map(|s| s.value.clone()).collect());
        let policy = rule.and_then(|rule| {
            let spec = PolicySpec {
                rule,
                filter,
                exclude,
            };
            Policy::new(&spec)
                .map_err(|e| {
                    let at = match &e {
                        crate::policy::PolicyError::Range(_) => raw.semver.as_ref(),
                        crate::policy::PolicyError::FilterPattern { .. } => {
                            raw.filter_tags.as_ref().map(|f| &f.pattern)
                        }
                        _ => raw.exclude.as_ref().and_then(|e| e.first()),
                    };
                    match at {
                        Some(at) => self.problem(at, e.to_string()),
                        None => self.problem(&raw.policy, e.to_string()),
                    }
                })
                .ok()
        });
        let digest = match raw.digest.as_ref() {
            None => Some(DigestMode::Never),
            Some(d) => {
                match d.value.as_str() {
                    "Never" => Some(DigestMode::Never),
                    "IfNotPresent" => Some(DigestMode::IfNotPresent),
                    "Always" => Some(DigestMode::Always),
                    other => {
                        self.problem(d, format!("invalid digest mode {other:?}: expected Never, IfNotPresent or Always"));
                        None
                    }
                }
            }
        };
        let gates = self.gates(&raw);
        if self.problems.len() > before {
            return None;
        }
        Some(ImagePolicy {
            id: id?,
            image: image?,
            interval: interval?,
            policy: policy?,
            digest: digest?,
            suspend: raw.suspend,
            gates,
        })
    }

    /// `minAge`, `platforms` and `verify.cosign.publicKeys`; keys are read here, so a missing
    /// file or variable is reported at load with the line that names it.
    fn gates(&mut self, raw: &raw::RawImage) -> crate::gate::Gates {
        let mut gates = crate::gate::Gates::default();
        if let Some(age) = &raw.min_age {
            match duration::parse(&age.value) {
                Ok(d) if d.is_zero() => {
                    self.problem(
                        age,
                        "minAge must be longer than 0s (leave it out for no minimum)",
                    );
                }
                Ok(d) => gates.min_age = Some(d),
                Err(e) => self.problem(age, format!("minAge: {e}")),
            }
        }
        for p in raw.platforms.iter().flatten() {
            match p.value.parse::<crate::gate::Platform>() {
                Ok(platform) if !gates.platforms.contains(&platform) => {
                    gates.platforms.push(platform)
                }
                Ok(_) => {}
                Err(e) => self.problem(p, e.to_string()),
            }
        }
        if let Some(verify) = &raw.verify {
            if verify.cosign.public_keys.is_empty() {
                self.problem(
                    &raw.policy,
                    "verify.cosign.publicKeys is empty: name at least one key",
                );
            }
            for key in &verify.cosign.public_keys {
                if let Some(k) = self.public_key(key, &raw.policy) {
                    gates.keys.push(k);
                }
            }
        }
        gates
    }

    fn public_key(
        &mut self,
        key: &raw::RawPublicKey,
        policy: &Spanned<String>,
    ) -> Option<crate::gate::cosign::PublicKey> {
        let (name, at, text) = match (&key.file, &key.env) {
            (Some(file), None) => {
                let path = self.resolve(&file.value);
                match std::fs::read_to_string(&path) {
                    Ok(text) => (path.display().to_string(), file, text),
                    Err(e) => {
                        self.problem(
                            file,
                            format!("cannot read public key {}: {e}", path.display()),
                        );
                        return None;
                    }
                }
            }
            (None, Some(env)) => match std::env::var(&env.value) {
                Ok(text) => (format!("${}", env.value), env, text),
                Err(_) => {
                    self.problem(
                        env,
                        format!(
                            "environment variable {} (a public key) is not set",
                            env.value
                        ),
                    );
                    return None;
                }
            },
            (Some(file), Some(_)) => {
                self.problem(file, "a public key is either file or env, not both");
                return None;
            }
            (None, None) => {
                self.problem(policy, "a verify.cosign.publicKeys entry needs file or env");
                return None;
            }
        };
        crate::gate::cosign::PublicKey::from_pem(&name, &text)
            .map_err(|e| self.problem(at, e.to_string()))
            .ok()
    }

    fn rule(&mut self, raw: &raw::RawImage) -> Option<RuleSpec> {
        const KINDS: &str = "semver, alphabetical, numerical or newestBuild";
        // newestBuild is a mapping, so the policy line stands for its place.
        let given: Vec<_> = [
            raw.semver.as_ref().map(|s| ("semver", s)),
            raw.alphabetical.as_ref().map(|s| ("alphabetical", s)),
            raw.numerical.as_ref().map(|s| ("numerical", s)),
            raw.newest_build
                .as_ref()
                .map(|_| ("newestBuild", &raw.policy)),
        ]
        .into_iter()
        .flatten()
        .collect();
        match given.as_slice() {
            [] => {
                self.problem(&raw.policy, format!("policy needs one of {KINDS}"));
                None
            }
            [(kind, value)] => {
                let order = |v: &Spanned<String>| v.value.parse::<Order>();
                match *kind {
                    "semver" => Some(RuleSpec::Semver(value.value.clone())),
                    "alphabetical" => order(value)
                        .map(RuleSpec::Alphabetical)
                        .map_err(|e| self.problem(value, e.to_string()))
                        .ok(),
                    "newestBuild" => self.newest_build(raw.newest_build.as_ref()?),
                    _ => order(value)
                        .map(RuleSpec::Numerical)
                        .map_err(|e| self.problem(value, e.to_string()))
                        .ok(),
                }
            }
            [_, (kind, value), ..] => {
                self.problem(
                    value,
                    format!("{kind} given with another ordering: choose one of {KINDS}"),
                );
                None
            }
        }
    }

    fn newest_build(&mut self, raw: &raw::RawNewestBuild) -> Option<RuleSpec> {
        let mut build = crate::policy::BuildSpec::default();
        let mut ok = true;
        for p in raw.platforms.iter().flatten() {
            match p.value.parse::<crate::gate::Platform>() {
                Ok(platform) if !build.platforms.contains(&platform) => {
                    build.platforms.push(platform)
                }
                Ok(_) => {}
                Err(e) => {
                    self.problem(p, format!("newestBuild.platforms: {e}"));
                    ok = false;
                }
            }
        }
        ok.then_some(RuleSpec::NewestBuild(build))
    }

    /// A name that is lower-case letters, digits and '-' (it names folders and URL paths) and
    /// unique among its kind; problems are recorded, the name is returned either way.
    fn unique_name(
        &mut self,
        kind: &str,
        raw: &Spanned<String>,
        names: &mut BTreeSet<String>,
    ) -> String {
        let name = raw.value.clone();
        let name_ok = !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-');
        if !name_ok {
            self.problem(
                raw,
                format!("invalid {kind} name {name:?}: use lower-case letters, digits and '-'"),
            );
        } else if !names.insert(name.clone()) {
            self.problem(raw, format!("{kind} {name} is defined twice"));
        }
        name
    }

    /// An `interval` key: `default` when absent, `None` (and a problem) when unusable.
    fn interval(&mut self, raw: Option<&Spanned<String>>, default: Duration) -> Option<Duration> {
        let Some(raw) = raw else {
            return Some(default);
        };
        match duration::parse(&raw.value) {
            Ok(d) if d > MAX_INTERVAL => {
                // Waits are computed on clocks that cannot hold arbitrary durations.
                self.problem(raw, "interval must be at most 365d");
                None
            }
            Ok(d) if d >= Duration::from_secs(1) => Some(d),
            Ok(_) => {
                self.problem(raw, "interval must be at least 1s");
                None
            }
            Err(e) => {
                self.problem(raw, e);
                None
            }
        }
    }

    fn target(&mut self, raw: raw::RawTarget, names: &mut BTreeSet<String>) -> Option<Target> {
        let before = self.problems.len();
        let name = self.unique_name("target", &raw.name, names);
        if raw.git.url.value.trim().is_empty() {
            self.problem(&raw.git.url, "git url is empty");
        }
        // Never repeats the URL: it holds the secret.
        if let Some(what) = crate::git::credentials_in_url(&raw.git.url.value) {
            self.problem(
                &raw.git.url,
                format!(
                    "target {name}: git.url carries {what}; remove it from the URL and give the token as auth.tokenEnv or auth.tokenFile (a user name as auth.username)"
                ),
            );
        }
        let checkout = self.checkout(&name, &raw.git);
        let given_push_branch = raw.push.as_ref().and_then(|p| p.branch.clone());
        let branch = match (&checkout, raw.git.branch.clone(), given_push_branch) {
            (None, branch, _) => branch.unwrap_or_else(|| DEFAULT_BRANCH.to_string()),
            (Some(CheckoutRef::Commit { .. }), Some(branch), _) => branch,
            (Some(c), Some(_), _) => {
                self.problem(
                    &raw.git.url,
                    format!("target {name}: git.branch goes with git.commit only; with {c} push.branch names the branch pushed to"),
                );
                DEFAULT_BRANCH.to_string()
            }
            (Some(_), None, Some(push)) => push,
            // As image-automation-controller's configurePush refuses it.
            (Some(c), None, None) => {
                self.problem(
                    &raw.git.url,
                    format!("target {name}: checking out {c} needs push.branch: the push branch cannot be inferred from the checkout ref"),
                );
                DEFAULT_BRANCH.to_string()
            }
        };
        if !valid_branch(&branch) {
            self.problem(
                &raw.name,
                format!("target {name}: invalid git branch {branch:?}"),
            );
        }
        let mut auth = self.git_auth(&name, raw.git.auth.unwrap_or_default());
        let is_ssh = crate::git::ssh_host(&raw.git.url.value).is_some();
        match (&auth.ssh, is_ssh) {
            (None, true) => self.problem(
                &raw.git.url,
                format!("target {name}: an ssh remote needs auth.sshKeyFile"),
            ),
            (Some(_), false) => {
                self.problem(
                    &raw.git.url,
                    format!("target {name}: auth.sshKeyFile is only for ssh remotes"),
                );
                auth.ssh = None;
            }
            _ => {}
        }
        let paths = match raw.paths {
            None => vec![PathBuf::from(".")],
            Some(paths) => paths
                .iter()
                .filter_map(|p| match inside_repository(&p.value) {
                    Ok(path) => Some(path),
                    Err(e) => {
                        self.problem(p, e);
                        None
                    }
                })
                .collect(),
        };
        let tenancy = match &raw.tenancy {
            None => Tenancy::default(),
            Some(rules) => Tenancy::new(rules.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(|e| self.problem(&raw.name, format!("target {name}: {e}")))
                .unwrap_or_default(),
        };
        let (push_branch, raw_pull_request, want_status, push_options) = match raw.push {
            Some(p) => (p.branch, p.pull_request, p.status, p.options),
            None => (None, None, false, Vec::new()),
        };
        if let (Some(c), Some(_)) = (&checkout, &raw_pull_request) {
            self.problem(
                &raw.name,
                format!(
                    "target {name}: a pull request needs a branch to merge into; {c} is not one"
                ),
            );
        }
        let push_options = push_options
            .iter()
            .filter_map(|o| {
                // One pkt-line each; git refuses a newline in a push option.
                if o.value.is_empty() || o.value.contains(['\n', '\r', '\0']) {
                    self.problem(
                        o,
                        format!("target {name}: invalid push option {:?}", o.value),
                    );
                    None
                } else {
                    Some(o.value.clone())
                }
            })
            .collect();
        if push_branch.is_some() && raw_pull_request.is_some() {
            self.problem(
                &raw.name,
                format!("target {name}: give push.branch or push.pullRequest, not both"),
            );
        }
        let pull_request =
            raw_pull_request.and_then(|pr| self.pull_request(&name, &raw.git.url, &branch, pr));
        let status = if want_status {
            self.commit_status(&name, &raw.git.url.value, &auth, pull_request.as_ref())
        } else {
            None
        };
        if let Some(b) = &push_branch
            && !valid_branch(b)
        {
            self.problem(
                &raw.name,
                format!("target {name}: invalid push branch {b:?}"),
            );
        }
        let commit = raw.commit;
        let author = commit
            .as_ref()
            .and_then(|c| c.author.as_ref())
            .map(|a| Author {
                name: a.name.clone(),
                email: a.email.clone(),
            })
            .unwrap_or_default();
        let go_template = commit.as_ref().and_then(|c| c.go_template.as_ref());
        let message = match (
            commit.as_ref().and_then(|c| c.message.as_ref()),
            go_template,
        ) {
            (Some(m), Some(_)) => {
                self.problem(m, "give commit.message or commit.goTemplate, not both");
                Template::default()
            }
            (None, Some(g)) => flux::template::FluxMessage::new(
                &g.value.template,
                &g.value.namespace,
                &g.value.name,
                g.value.values.clone(),
            )
            .map(Template::flux)
            .map_err(|e| self.problem(g, format!("commit.goTemplate: {e}")))
            .unwrap_or_default(),
            (None, None) => Template::default(),
            (Some(m), None) => Template::parse(&m.value)
                .map_err(|e| self.problem(m, e))
                .unwrap_or_default(),
        };
        let signing_key = commit
            .as_ref()
            .and_then(|c| c.signing_key.as_ref())
            .and_then(|k| self.signing_key(&name, k));
        let timezone = raw.timezone.as_ref().and_then(|z| {
            z.value
                .parse::<Zone>()
                .map_err(|e| self.problem(z, format!("target {name}: timezone: {e}")))
                .ok()
        });
        if let (Some(z), None) = (&raw.timezone, &raw.schedule) {
            self.problem(
                z,
                format!("target {name}: timezone is only read with a schedule"),
            );
        }
        let schedule = raw.schedule.as_ref().and_then(|s| {
            Schedule::parse_in(&s.value, timezone.unwrap_or_default())
                .map_err(|e| self.problem(s, format!("target {name}: schedule: {e}")))
                .ok()
        });
        let interval = self
            .interval(raw.interval.as_ref(), DEFAULT_TARGET_INTERVAL)
            .unwrap_or(DEFAULT_TARGET_INTERVAL);
        let policies = raw.policies.as_ref().map(|list| {
            list.iter()
                .filter_map(|p| {
                    p.value
                        .parse::<PolicyId>()
                        .map_err(|e| self.problem(p, format!("target {name}: {e}")))
                        .ok()
                })
                .collect()
        });
        if self.problems.len() > before {
            return None;
        }
        Some(Target {
            name,
            git: GitSource {
                url: raw.git.url.value,
                branch,
                auth,
                checkout,
                push_options,
            },
            paths,
            tenancy,
            push_branch,
            pull_request,
            status,
            author,
            message,
            signing_key,
            schedule,
            interval,
            policies,
            writebacks: Vec::new(),
        })
    }

    /// `git.tag`, `git.semver`, `git.commit` or `git.ref`: at most one of them.
    fn checkout(&mut self, target: &str, git: &raw::RawGit) -> Option<CheckoutRef> {
        let given: Vec<(&str, &Spanned<String>)> = [
            ("tag", git.tag.as_ref()),
            ("semver", git.semver.as_ref()),
            ("commit", git.commit.as_ref()),
            ("ref", git.reference.as_ref()),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
        let (kind, value) = match given.as_slice() {
            [] => return None,
            [one] => *one,
            [_, (kind, value), ..] => {
                self.problem(
                    *value,
                    format!("target {target}: git.{kind} given with another checkout ref: choose one of git.tag, git.semver, git.commit or git.ref"),
                );
                return None;
            }
        };
        let v = value.value.trim();
        let checkout = match kind {
            "tag" if crate::git::refname::is_valid(&format!("refs/tags/{v}")) => {
                Ok(CheckoutRef::Tag(v.to_string()))
            }
            "tag" => Err(format!("invalid tag name {v:?}")),
            "semver" => crate::policy::semver::Range::parse(v)
                .map(CheckoutRef::Semver)
                .map_err(|e| format!("invalid semver range {v:?}: {e}")),
            "commit" if v.len() == 40 && v.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Ok(CheckoutRef::Commit {
                    id: v.to_ascii_lowercase(),
                    on_branch: git.branch.is_some(),
                })
            }
            "commit" => Err(format!(
                "invalid commit {v:?}: give the full commit id (40 hex digits)"
            )),
            _ => {
                let name = v.strip_suffix("^{}").unwrap_or(v);
                if name.starts_with("refs/") && crate::git::refname::is_valid(name) {
                    Ok(CheckoutRef::Name(name.to_string()))
                } else {
                    Err(format!(
                        "invalid ref {v:?}: give a full reference name such as refs/tags/v1.0.0"
                    ))
                }
            }
        };
        checkout
            .map_err(|e| self.problem(value, format!("target {target}: git.{kind}: {e}")))
            .ok()
    }

    fn signing_key(&mut self, target: &str, raw: &raw::RawSigningKey) -> Option<SigningKey> {
        match raw {
            raw::RawSigningKey::Ssh(path) => Some(SigningKey::Ssh(self.resolve(path))),
            raw::RawSigningKey::OpenPgp(k) => {
                let passphrase = match (&k.passphrase_env, &k.passphrase_file) {
                    (Some(_), Some(_)) => {
                        self.problem_here(format!(
                            "target {target}: commit.signingKey: give passphraseEnv or passphraseFile, not both"
                        ));
                        return None;
                    }
                    (Some(env), None) => Some(Secret::Env(env.clone())),
                    (None, Some(file)) => Some(Secret::File(self.resolve(file))),
                    (None, None) => None,
                };
                Some(SigningKey::OpenPgp {
                    key_file: self.resolve(&k.openpgp),
                    passphrase,
                })
            }
        }
    }

    fn git_auth(&mut self, target: &str, raw: raw::RawGitAuth) -> GitAuth {
        let ssh = raw.ssh_key_file.as_ref().map(|key| SshAuth {
            key_file: self.resolve(&key.value),
            passphrase: raw
                .ssh_key_passphrase_env
                .as_ref()
                .map(|e| Secret::Env(e.value.clone())),
            known_hosts: self.resolve(
                raw.known_hosts_file
                    .as_ref()
                    .map_or("~/.ssh/known_hosts", |k| k.value.as_str()),
            ),
        });
        if ssh.is_none()
            && let Some(at) = raw
                .ssh_key_passphrase_env
                .as_ref()
                .or(raw.known_hosts_file.as_ref())
        {
            self.problem(
                at,
                format!(
                    "target {target}: sshKeyPassphraseEnv and knownHostsFile go with sshKeyFile"
                ),
            );
        }
        let mut auth = self.http_auth(target, raw);
        auth.ssh = ssh;
        auth
    }

    /// One secret from an env/file pair; both given is a problem at the second.
    fn secret_pair(
        &mut self,
        target: &str,
        (env_key, env): (&str, Option<Spanned<String>>),
        (file_key, file): (&str, Option<Spanned<String>>),
    ) -> Option<(Secret, Spanned<String>)> {
        match (env, file) {
            (Some(env), None) => Some((Secret::Env(env.value.clone()), env)),
            (None, Some(file)) => Some((Secret::File(self.resolve(&file.value)), file)),
            (Some(_), Some(file)) => {
                self.problem(
                    &file,
                    format!("target {target}: give {env_key} or {file_key}, not both"),
                );
                None
            }
            (None, None) => None,
        }
    }

    fn http_auth(&mut self, target: &str, raw: raw::RawGitAuth) -> GitAuth {
        let ssh = raw.ssh_key_file.is_some();
        let token = self.secret_pair(
            target,
            ("tokenEnv", raw.token_env),
            ("tokenFile", raw.token_file),
        );
        let password = self.secret_pair(
            target,
            ("passwordEnv", raw.password_env),
            ("passwordFile", raw.password_file),
        );
        let username = match (raw.username, raw.username_env) {
            (Some(u), None) => Some((Username::Literal(u.value.clone()), u)),
            (None, Some(env)) => Some((Username::Env(env.value.clone()), env)),
            (Some(_), Some(env)) => {
                self.problem(
                    &env,
                    format!("target {target}: give username or usernameEnv, not both"),
                );
                None
            }
            (None, None) => None,
        };
        match (token, password) {
            (Some(_), Some((_, at))) => {
                self.problem(
                    &at,
                    format!("target {target}: give a token or a password, not both"),
                );
                GitAuth::default()
            }
            (Some((token, _)), None) => GitAuth {
                // Forges accept any user name with a token; GitHub documents this one.
                username: Some(
                    username
                        .map(|(u, _)| u)
                        .unwrap_or(Username::Literal("x-access-token".into())),
                ),
                password: Some(token),
                ssh: None,
            },
            (None, password) => {
                match (&username, &password) {
                    (None, Some((_, at))) => self.problem(
                        at,
                        format!("target {target}: a password needs a username (auth.username or auth.usernameEnv)"),
                    ),
                    // Over SSH a user name stands alone (the key authenticates).
                    (Some((_, at)), None) if !ssh => self.problem(
                        at,
                        format!("target {target}: a username needs a password (auth.passwordEnv or auth.passwordFile), or give a token alone"),
                    ),
                    _ => {}
                }
                GitAuth {
                    username: username.map(|(u, _)| u),
                    password: password.map(|(p, _)| p),
                    ssh: None,
                }
            }
        }
    }
}

fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

fn valid_branch(name: &str) -> bool {
    crate::git::refname::is_valid(&format!("refs/heads/{name}"))
}

/// A path inside the repository: relative, and never climbing out with `..`.
fn inside_repository(p: &str) -> Result<PathBuf, String> {
    let path = Path::new(p);
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(c) => clean.push(c),
            Component::CurDir => {}
            Component::ParentDir => return Err(format!("path {p:?} leaves the repository ('..')")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "path {p:?} must be relative to the repository root"
                ));
            }
        }
    }
    if clean.as_os_str().is_empty() {
        clean.push(".");
    }
    Ok(clean)
}
