//! `tagsmith.yaml` as written: serde types that mirror the file, before any validation.
//! Unknown keys are errors; values that need checking keep their source location.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub images: Vec<RawImage>,
    #[serde(default)]
    pub targets: Vec<RawTarget>,
    #[serde(default)]
    #[schemars(with = "Vec<super::schema::RegistrySettings>")]
    pub registries: Vec<crate::registry::settings::RawRegistrySettings>,
    #[serde(default)]
    pub state: Option<RawState>,
    #[serde(default)]
    pub server: Option<RawServer>,
    #[serde(default)]
    pub receivers: Vec<RawReceiver>,
    /// Where to send messages about what tagsmith did (Slack, Teams, a webhook).
    #[serde(default)]
    pub notify: Vec<RawSink>,
    /// Files or folders of Flux objects compiled into the config as `--flux` does.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub flux: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawImage {
    #[schemars(with = "String")]
    pub policy: Spanned<String>,
    #[schemars(with = "String")]
    pub image: Spanned<String>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub interval: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub semver: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub alphabetical: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub numerical: Option<Spanned<String>>,
    /// The tag whose image was built last (the image config's `created`), as Argo CD Image
    /// Updater's newest-build strategy: `newestBuild: {}`.
    #[serde(default)]
    pub newest_build: Option<RawNewestBuild>,
    #[serde(default)]
    pub filter_tags: Option<RawFilter>,
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub exclude: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub digest: Option<Spanned<String>>,
    /// Not scanned, and its markers left as they are (Flux's `spec.suspend`).
    #[serde(default)]
    pub suspend: bool,
    /// Gate: a tag is eligible only once its image is this old (`24h`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub min_age: Option<Spanned<String>>,
    /// Gate: a tag is eligible only if it provides every one of these (`linux/arm64`).
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub platforms: Option<Vec<Spanned<String>>>,
    /// Gate: a tag is eligible only if its digest carries a valid signature.
    #[serde(default)]
    pub verify: Option<RawVerify>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawNewestBuild {
    /// Only images for one of these platforms count (any one is enough; for an index, the
    /// newest of its manifests for them). Default: every platform.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub platforms: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawVerify {
    pub cosign: RawCosign,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCosign {
    /// PEM public keys (ECDSA P-256 or Ed25519); a signature from any one is enough.
    pub public_keys: Vec<RawPublicKey>,
}

/// A public key from a file or an environment variable (exactly one).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPublicKey {
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub file: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub env: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFilter {
    #[schemars(with = "String")]
    pub pattern: Spanned<String>,
    #[serde(default)]
    pub extract: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawTarget {
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    pub git: RawGit,
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub paths: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub tenancy: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default)]
    pub push: Option<RawPush>,
    #[serde(default)]
    pub commit: Option<RawCommit>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub schedule: Option<Spanned<String>>,
    /// IANA time zone `schedule` is read in; default UTC.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub timezone: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub interval: Option<Spanned<String>>,
    /// Only these policies may change the target's files (a Flux policySelector).
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub policies: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawGit {
    #[schemars(with = "String")]
    pub url: Spanned<String>,
    #[serde(default)]
    pub branch: Option<String>,
    /// Check out this tag instead of a branch (needs push.branch).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub tag: Option<Spanned<String>>,
    /// Check out the highest tag in this semver range (needs push.branch).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub semver: Option<Spanned<String>>,
    /// Check out this commit (40 hex digits), found on `branch` when given, else on any
    /// branch; pushes go to push.branch, else `branch`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub commit: Option<Spanned<String>>,
    /// Check out this full reference name, e.g. refs/pull/1/head (needs push.branch).
    #[serde(default, rename = "ref")]
    #[schemars(with = "Option<String>")]
    pub reference: Option<Spanned<String>>,
    #[serde(default)]
    pub auth: Option<RawGitAuth>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawGitAuth {
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub token_env: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub token_file: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub username: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub username_env: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub password_env: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub password_file: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub ssh_key_file: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub ssh_key_passphrase_env: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub known_hosts_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPush {
    #[serde(default)]
    pub branch: Option<String>,
    /// Git push options (`git push -o`), sent with every push.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub options: Vec<Spanned<String>>,
    #[serde(default)]
    pub pull_request: Option<RawPullRequest>,
    /// Sets a GitHub commit status on each delivered commit.
    #[serde(default)]
    pub status: bool,
}

/// `push.pullRequest`: deliver through a pull request (GitHub), merge request (GitLab) or
/// pull request (Gitea, Forgejo) instead of a direct push.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPullRequest {
    /// `github`, `gitlab` or `gitea`; default: from `git.url`'s host when it is obvious.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub forge: Option<Spanned<String>>,
    #[serde(default)]
    pub base: Option<String>,
    #[serde(default)]
    pub branch: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default)]
    pub reviewers: Vec<String>,
    /// Usernames; GitLab and Gitea only.
    #[serde(default)]
    pub assignees: Vec<String>,
    #[serde(default)]
    pub draft: bool,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub auto_merge: Option<Spanned<String>>,
    /// `owner/name`; default: read from `git.url`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub repository: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub api_url: Option<Spanned<String>>,
    #[serde(default)]
    pub auth: Option<RawGitHubAuth>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawGitHubAuth {
    #[serde(default)]
    pub token_env: Option<String>,
    #[serde(default)]
    pub token_file: Option<String>,
    #[serde(default)]
    pub app: Option<RawGitHubApp>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawGitHubApp {
    pub app_id: u64,
    pub private_key_file: String,
    /// Default: looked up from the repository.
    #[serde(default)]
    pub installation_id: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCommit {
    #[serde(default)]
    pub author: Option<RawAuthor>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub message: Option<Spanned<String>>,
    /// A Flux messageTemplate (Go text/template), rendered as image-automation-controller
    /// renders it; `tagsmith convert flux` writes it. Not together with `message`.
    #[serde(default)]
    #[schemars(with = "Option<RawGoTemplate>")]
    pub go_template: Option<Spanned<RawGoTemplate>>,
    #[serde(default)]
    pub signing_key: Option<RawSigningKey>,
}

/// `commit.signingKey`: an SSH private key file, or `{ openpgp: FILE, ... }`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawSigningKey {
    /// An SSH private key file.
    Ssh(String),
    OpenPgp(RawOpenPgpKey),
}

/// An armored OpenPGP secret key, signed with as Flux's signingKey (`git.asc`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawOpenPgpKey {
    /// The armored secret key file.
    pub openpgp: String,
    #[serde(default)]
    pub passphrase_file: Option<String>,
    #[serde(default)]
    pub passphrase_env: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGoTemplate {
    /// The template text.
    pub template: String,
    /// `.AutomationObject`: the ImageUpdateAutomation's namespace and name.
    pub namespace: String,
    pub name: String,
    /// `.Values` (messageTemplateValues).
    #[serde(default)]
    pub values: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAuthor {
    pub name: String,
    pub email: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    pub dir: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub listen: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub metrics: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawReceiver {
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    #[serde(rename = "type")]
    #[schemars(with = "String")]
    pub kind: Spanned<String>,
    #[serde(default)]
    pub secret_env: Option<String>,
    #[serde(default)]
    pub secret_file: Option<String>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub registry: Option<Spanned<String>>,
}

/// One `notify:` sink.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSink {
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// `slack`, `teams` or `webhook`.
    #[serde(rename = "type")]
    #[schemars(with = "String")]
    pub kind: Spanned<String>,
    /// The webhook URL is a secret: an environment variable or a file holds it.
    #[serde(default)]
    pub url_env: Option<String>,
    #[serde(default)]
    pub url_file: Option<String>,
    /// `webhook` only: the HMAC-SHA256 key the body is signed with.
    #[serde(default)]
    pub secret_env: Option<String>,
    #[serde(default)]
    pub secret_file: Option<String>,
    /// `webhook` only: `json` (default) or `cloudevents`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub format: Option<Spanned<String>>,
    /// `delivered`, `failed`, `stalled`, `held`; default: all of them.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub events: Option<Vec<Spanned<String>>>,
    /// Only these targets' events; default: every target.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub targets: Option<Vec<Spanned<String>>>,
}
