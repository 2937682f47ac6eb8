//! Flux objects as configuration: each mapped field of the hand-written fixtures in
//! tests/fixtures/flux, the located diagnostics for what tagsmith cannot do, and
//! `tagsmith check --flux` / `tagsmith convert flux` on them.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use tagsmith::config::flux::{self, Compiled, Diagnostic, Options, Severity};
use tagsmith::config::{Config, DigestMode};
use tagsmith::model::PolicyId;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/flux")
        .join(name)
}

/// Secrets as Kubernetes mounts them: DIR/<namespace>/<name>/<key>.
fn secrets(dir: &Path, entries: &[(&str, &str)]) {
    for (path, value) in entries {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, value).unwrap();
    }
}

fn field_secrets(dir: &Path) {
    secrets(
        dir,
        &[
            ("flux-system/manifests-ssh/identity", "not-a-real-key"),
            (
                "flux-system/manifests-ssh/known_hosts",
                "github.com ssh-ed25519 AAAA",
            ),
            ("team-b/https-creds/username", "git"),
            ("team-b/https-creds/password", "token-value"),
            ("shared/registry-ca/ca.crt", "-----BEGIN CERTIFICATE-----\n"),
            ("shared/registry-creds/.dockerconfigjson", "{\"auths\":{}}"),
            ("team-a/signing/identity", "not-a-real-key"),
            ("flux-system/webhook-token/token", "hook-secret"),
        ],
    );
}

fn compile(paths: &[PathBuf], secrets_dir: Option<&Path>) -> Compiled {
    flux::compile(
        paths,
        &Options {
            secrets_dir: secrets_dir.map(Path::to_path_buf),
        },
    )
    .unwrap()
}

fn find<'a>(diagnostics: &'a [Diagnostic], object: &str, field: &str) -> &'a Diagnostic {
    diagnostics
        .iter()
        .find(|d| d.object == object && d.field == field)
        .unwrap_or_else(|| panic!("no diagnostic for {object} {field}: {diagnostics:#?}"))
}

fn id(s: &str) -> PolicyId {
    s.parse().unwrap()
}

fn fields() -> (tempfile::TempDir, Compiled, Config) {
    let tmp = tempfile::tempdir().unwrap();
    field_secrets(tmp.path());
    let compiled = compile(&[fixture("fields")], Some(tmp.path()));
    let config = compiled.config().unwrap();
    (tmp, compiled, config)
}

#[test]
fn documentation_example_maps_onto_one_image_and_one_target() {
    // image-automation-controller docs/spec/v1/imageupdateautomations.md, "Example".
    let compiled = compile(&[fixture("docs")], None);
    let errors: Vec<_> = compiled
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    // The Receiver in ../outside/ is read because kustomization.yaml lists it; its secret
    // cannot be found without --secrets-dir.
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].object, "Receiver default/podinfo-hub");
    assert_eq!(errors[0].field, "spec.secretRef");
    assert!(errors[0].message.contains("--secrets-dir"), "{}", errors[0]);
    let remote = find(&compiled.diagnostics, "", "resources");
    assert_eq!(remote.severity, Severity::Warning);
    assert_eq!(remote.line, 7);
    assert!(remote.message.contains("remote resource"), "{remote}");
    assert!(
        !compiled
            .files
            .iter()
            .any(|f| f.ends_with("not-listed.yaml")),
        "only listed resources outside the paths are read"
    );

    let tmp = tempfile::tempdir().unwrap();
    secrets(tmp.path(), &[("default/webhook-token/token", "t")]);
    let compiled = compile(&[fixture("docs")], Some(tmp.path()));
    let config = compiled.config().unwrap();
    assert_eq!(config.images.len(), 1);
    let image = &config.images[0];
    assert_eq!(image.id, id("default:podinfo-policy"));
    assert_eq!(image.image.as_str(), "ghcr.io/stefanprodan/podinfo");
    assert_eq!(image.interval, Duration::from_secs(5 * 3600));
    assert_eq!(image.digest, DigestMode::Never);
    let tags = ["5.0.0", "5.0.3", "5.1.0", "6.0.0"];
    assert_eq!(
        image.policy.select(&tags).tag,
        Some("5.0.3"),
        "semver range 5.0.x"
    );
    assert_eq!(config.targets.len(), 1);
    let target = &config.targets[0];
    assert_eq!(target.name, "default-podinfo-update");
    assert_eq!(target.git.url, "https://github.com/fluxcd/example");
    assert_eq!(target.git.branch, "main");
    assert_eq!(target.push_branch(), "main");
    assert_eq!(target.paths, vec![PathBuf::from(".")], "update.path ./");
    assert_eq!(target.interval, Duration::from_secs(1800));
    assert_eq!(target.author.name, "fluxcdbot");
    assert_eq!(target.author.email, "fluxcdbot@users.noreply.github.com");
    // internal/source/source.go defaultMessageTemplate.
    assert_eq!(
        target.message.as_flux().unwrap().render(&[]).unwrap(),
        "Update from image update automation"
    );
    assert!(target.allows_policy(&id("default:podinfo-policy")));
    assert_eq!(config.receivers.len(), 1);
    assert_eq!(config.receivers[0].name, "default-podinfo-hub");
}

#[test]
fn image_repository_fields() {
    let (tmp, _compiled, config) = fields();
    let app = config.image(&id("team-a:app")).unwrap();
    assert_eq!(app.image.as_str(), "registry.example.com/org/app");
    assert_eq!(app.interval, Duration::from_secs(600), "spec.interval");
    // exclusionList replaces the default ^.*\.sig$.
    let tags = ["1.1.0", "debug-1.2.0", "1.0.0.sig"];
    assert_eq!(app.policy.select(&tags).tag, Some("1.1.0"));
    let registry = config
        .registries
        .iter()
        .find(|r| r.host == "registry.example.com")
        .unwrap();
    assert_eq!(registry.insecure, Some(true), "spec.insecure");
    let secrets = std::path::absolute(tmp.path()).unwrap();
    assert_eq!(
        registry.ca.as_deref(),
        Some(secrets.join("shared/registry-ca/ca.crt").as_path()),
        "spec.certSecretRef"
    );
    assert_eq!(
        registry.auth,
        Some(tagsmith::registry::AuthSettings::DockerConfig(
            secrets.join("shared/registry-creds/.dockerconfigjson")
        )),
        "spec.secretRef"
    );
    assert!(
        !config.registries.iter().any(|r| r.host == "ghcr.io"),
        "a registry without settings needs no entry"
    );
    assert!(
        config.image(&id("team-a:frozen")).unwrap().suspend,
        "a suspended ImageRepository suspends its policies"
    );
}

#[test]
fn image_policy_fields() {
    let (_tmp, compiled, config) = fields();
    // imageRepositoryRef across namespaces: team-a and team-b both use shared/app.
    assert_eq!(
        config.image(&id("team-b:app")).unwrap().image.as_str(),
        "registry.example.com/org/app"
    );
    let worker = config.image(&id("team-a:worker")).unwrap();
    assert_eq!(worker.digest, DigestMode::Always, "digestReflectionPolicy");
    assert_eq!(
        worker.interval,
        Duration::from_secs(120),
        "ImagePolicy interval with Always"
    );
    let tags = ["main-abc-100", "main-def-300", "main-012-200", "other"];
    assert_eq!(
        worker.policy.select(&tags).tag,
        Some("main-def-300"),
        "filterTags + numerical asc"
    );
    let docs = config.image(&id("team-a:docs")).unwrap();
    assert_eq!(docs.digest, DigestMode::IfNotPresent);
    let tags = ["b", "a", "c"];
    assert_eq!(
        docs.policy.select(&tags).tag,
        Some("a"),
        "alphabetical desc"
    );
    assert!(
        !compiled
            .diagnostics
            .iter()
            .any(|d| d.object.contains("team-a/frozen") && d.field == "spec.imageRepositoryRef"),
        "a suspended repository's policy is suspended, not left out"
    );
    let paused = find(
        &compiled.diagnostics,
        "ImagePolicy team-b/paused",
        "spec.suspend",
    );
    assert_eq!(paused.line, 124);
    assert!(
        config.image(&id("team-b:paused")).unwrap().suspend,
        "suspended ImagePolicy"
    );
    let suspended = find(
        &compiled.diagnostics,
        "ImageRepository team-a/frozen",
        "spec.suspend",
    );
    assert_eq!(
        (suspended.line, suspended.severity),
        (37, Severity::Warning)
    );
}

#[test]
fn image_update_automation_and_git_repository_fields() {
    let (tmp, compiled, config) = fields();
    let secrets = std::path::absolute(tmp.path()).unwrap();
    assert_eq!(
        config.targets.len(),
        2,
        "the suspended automation is left out"
    );
    let paused = find(
        &compiled.diagnostics,
        "ImageUpdateAutomation team-b/paused",
        "spec.suspend",
    );
    assert_eq!(paused.severity, Severity::Warning);

    let a = config
        .targets
        .iter()
        .find(|t| t.name == "team-a-apps")
        .unwrap();
    // sourceRef in another namespace, ssh URL with identity and known_hosts.
    assert_eq!(a.git.url, "ssh://git@github.com/org/manifests");
    let ssh = a.git.auth.ssh.as_ref().unwrap();
    assert_eq!(
        ssh.key_file,
        secrets.join("flux-system/manifests-ssh/identity")
    );
    assert_eq!(
        ssh.known_hosts,
        secrets.join("flux-system/manifests-ssh/known_hosts")
    );
    assert_eq!(a.git.branch, "main", "git.checkout.ref.branch");
    assert_eq!(a.push_branch(), "auto-team-a", "git.push.branch");
    assert_eq!(a.paths, vec![PathBuf::from("apps/team-a")], "update.path");
    assert_eq!(a.interval, Duration::from_secs(900));
    assert_eq!(a.author.name, "fluxcdbot");
    assert_eq!(
        a.signing_key.as_ref().map(|k| k.path()),
        Some(secrets.join("team-a/signing/identity").as_path())
    );
    assert_eq!(
        a.message.as_flux().unwrap().render(&[]).unwrap(),
        "Automated image update by team-a/apps for cluster prod"
    );
    // policySelector: tier=web without the legacy label picks team-a:app only, and nothing
    // from another namespace.
    assert!(a.allows_policy(&id("team-a:app")));
    assert!(
        !a.allows_policy(&id("team-a:docs")),
        "matchExpressions DoesNotExist"
    );
    assert!(!a.allows_policy(&id("team-a:worker")), "matchLabels");
    assert!(!a.allows_policy(&id("team-b:app")), "another namespace");

    let b = config
        .targets
        .iter()
        .find(|t| t.name == "team-b-apps")
        .unwrap();
    assert_eq!(b.git.url, "https://git.example.com/org/manifests.git");
    assert_eq!(
        b.git.branch, "master",
        "GitRepository ref defaults to master"
    );
    assert_eq!(b.push_branch(), "master");
    assert_eq!(
        b.git.auth.username,
        Some(tagsmith::config::Username::Literal("git".into()))
    );
    assert_eq!(
        b.git.auth.password,
        Some(tagsmith::config::Secret::File(
            secrets.join("team-b/https-creds/password")
        ))
    );
    assert!(
        b.allows_policy(&id("team-b:app")),
        "no selector: the whole namespace"
    );
    assert!(!b.allows_policy(&id("team-a:app")));

    let receiver = &config.receivers[0];
    assert_eq!(receiver.name, "flux-system-registry");
    assert_eq!(
        receiver.secret,
        tagsmith::config::Secret::File(secrets.join("flux-system/webhook-token/token"))
    );
    let resource = find(
        &compiled.diagnostics,
        "Receiver flux-system/registry",
        "spec.resources[1]",
    );
    assert_eq!(resource.severity, Severity::Warning);
}

#[test]
fn missing_secrets_name_the_object_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    field_secrets(tmp.path());
    std::fs::remove_file(tmp.path().join("team-b/https-creds/password")).unwrap();
    std::fs::remove_dir_all(tmp.path().join("shared/registry-creds")).unwrap();
    let compiled = compile(&[fixture("fields")], Some(tmp.path()));
    assert!(compiled.has_errors());
    let password = find(
        &compiled.diagnostics,
        "GitRepository team-b/manifests-https",
        "spec.secretRef",
    );
    assert_eq!(password.severity, Severity::Error);
    assert!(
        password
            .message
            .contains("secret team-b/https-creds has no key \"password\""),
        "{password}"
    );
    // A mapping is located at its first key.
    assert_eq!(password.line, 23);
    let docker = find(
        &compiled.diagnostics,
        "ImageRepository shared/app",
        "spec.secretRef",
    );
    assert!(
        docker
            .message
            .contains("secret shared/registry-creds not found"),
        "{docker}"
    );
    assert!(
        docker.to_string().contains("fields/images.yaml:17:"),
        "{docker}"
    );
    let err = compiled.config().unwrap_err().to_string();
    assert!(err.contains("has no key \"password\""), "{err}");
    assert!(!err.contains("token-value"), "never a secret's value");
}

#[test]
fn unsupported_values_are_located() {
    let tmp = tempfile::tempdir().unwrap();
    let compiled = compile(&[fixture("unsupported")], Some(tmp.path()));
    let d = &compiled.diagnostics;
    let expect = [
        (
            "ImageRepository x/ecr",
            "spec.provider",
            Severity::Error,
            9,
            "provider \"aws\" is not supported",
        ),
        (
            "ImageRepository x/extras",
            "spec.timeout",
            Severity::Warning,
            19,
            "ignored",
        ),
        (
            "ImageRepository x/extras",
            "spec.serviceAccountName",
            Severity::Warning,
            20,
            "ignored",
        ),
        (
            "ImageRepository x/extras",
            "spec.accessFrom",
            Severity::Warning,
            22,
            "not supported",
        ),
        (
            "ImagePolicy x/bad-range",
            "spec.policy.semver.range",
            Severity::Error,
            36,
            "",
        ),
        (
            "ImagePolicy x/interval-without-always",
            "spec.interval",
            Severity::Error,
            48,
            "only allowed with digestReflectionPolicy: Always",
        ),
        (
            "GitRepository x/repo",
            "spec.provider",
            Severity::Error,
            69,
            "provider \"github\" is not supported",
        ),
        (
            "GitRepository x/repo",
            "spec.verify",
            Severity::Warning,
            71,
            "ignored",
        ),
        (
            "ImageUpdateAutomation x/bad-semver",
            "spec.git.checkout.ref.semver",
            Severity::Error,
            97,
            "semver parse error",
        ),
        (
            "ImageUpdateAutomation x/gerrit",
            "spec.git.push.refspec",
            Severity::Error,
            117,
            "pushing to a second ref",
        ),
        (
            "ImageUpdateAutomation x/gpg",
            "spec.git.commit.signingKey.secretRef",
            Severity::Error,
            135,
            "secret x/pgp-key not found",
        ),
        (
            "ImageUpdateAutomation x/ranges",
            "spec.git.commit.messageTemplate",
            Severity::Error,
            151,
            ".Updated.Images: template uses removed '.Updated' field",
        ),
        (
            "ImageUpdateAutomation x/ranges",
            "spec.update.strategy",
            Severity::Error,
            153,
            "\"Kustomize\" is not supported",
        ),
        (
            "ImageUpdateAutomation x/lost",
            "spec.sourceRef",
            Severity::Error,
            164,
            "no GitRepository x/nope",
        ),
        (
            "Receiver x/github",
            "spec.type",
            Severity::Error,
            175,
            "\"github\" is not supported",
        ),
        (
            "Receiver x/github",
            "spec.events",
            Severity::Warning,
            176,
            "ignored",
        ),
    ];
    for (object, field, severity, line, text) in expect {
        let found = find(d, object, field);
        assert_eq!((found.severity, found.line), (severity, line), "{found}");
        assert!(found.message.contains(text), "{found}");
        assert!(
            found.to_string().starts_with(&format!(
                "{}:{line}:",
                fixture("unsupported/objects.yaml").display()
            )),
            "{found}"
        );
    }
    // Push options are sent (flux_git::push_options_reach_the_server_hook).
    assert!(
        !d.iter().any(|d| d.field == "spec.git.push.options"),
        "{d:#?}"
    );
    let old = d
        .iter()
        .find(|d| d.message.contains("v1beta1 is not supported"))
        .expect("v1beta1 refused");
    assert_eq!(old.severity, Severity::Error);
    assert!(compiled.config().is_err());
}

fn tagsmith(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tagsmith"))
        .args(args)
        .env_remove("DOCKER_CONFIG")
        .env("HOME", "/nonexistent")
        .output()
        .unwrap()
}

#[test]
fn check_lists_diagnostics_and_shows_the_model() {
    let tmp = tempfile::tempdir().unwrap();
    field_secrets(tmp.path());
    let fields = fixture("fields");
    let secrets_dir = tmp.path().to_str().unwrap();
    let out = tagsmith(&[
        "check",
        "--secrets-dir",
        secrets_dir,
        "--output",
        "json",
        "--flux",
        fields.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "warnings are pending problems: {stdout}"
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let model = &report["flux"]["model"];
    // Four active, and the two suspended ones (an ImagePolicy, and one of a suspended repository).
    let images = model["images"].as_array().unwrap();
    assert_eq!(images.len(), 6, "{model}");
    assert_eq!(
        images.iter().filter(|i| i["suspend"] == true).count(),
        2,
        "{model}"
    );
    assert_eq!(model["targets"][0]["name"], "team-a-apps");
    assert_eq!(
        model["targets"][0]["policies"],
        serde_json::json!(["team-a:app"])
    );
    let diagnostics = report["flux"]["diagnostics"].as_array().unwrap();
    assert!(
        diagnostics.iter().any(|d| d["field"] == "spec.suspend"
            && d["object"] == "ImageUpdateAutomation team-b/paused")
    );

    let unsupported = fixture("unsupported");
    let out = tagsmith(&["check", "--flux", unsupported.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "errors fail the check");
    assert!(stdout.contains("objects.yaml:9:13: error: ImageRepository x/ecr spec.provider: provider \"aws\" is not supported"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("the Flux objects have errors"));
}

#[test]
fn convert_writes_a_config_that_loads_to_the_same_model() {
    let tmp = tempfile::tempdir().unwrap();
    field_secrets(tmp.path());
    let fields = fixture("fields");
    let out = tagsmith(&[
        "convert",
        "flux",
        fields.to_str().unwrap(),
        "--secrets-dir",
        tmp.path().to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).unwrap();
    assert!(yaml.ends_with('\n'), "a file ends with a newline: {yaml:?}");
    assert!(!yaml.contains("token-value"), "secrets stay in their files");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("warning: ImageUpdateAutomation team-b/paused spec.suspend")
    );
    let path = tmp.path().join("tagsmith.yaml");
    std::fs::write(&path, &yaml).unwrap();
    let converted = Config::load(&path).unwrap();
    let (_tmp, _compiled, direct) = fields_with(tmp.path());
    assert_eq!(
        format!("{:?}", converted.images),
        format!("{:?}", direct.images)
    );
    assert_eq!(
        format!("{:?}", converted.targets),
        format!("{:?}", direct.targets)
    );
    assert_eq!(
        format!("{:?}", converted.registries),
        format!("{:?}", direct.registries)
    );
    assert_eq!(
        format!("{:?}", converted.receivers),
        format!("{:?}", direct.receivers)
    );
}

fn fields_with(secrets_dir: &Path) -> ((), Compiled, Config) {
    let compiled = compile(&[fixture("fields")], Some(secrets_dir));
    let config = compiled.config().unwrap();
    ((), compiled, config)
}

#[test]
fn flux_key_in_tagsmith_yaml_adds_the_objects() {
    let tmp = tempfile::tempdir().unwrap();
    secrets(tmp.path(), &[("default/webhook-token/token", "t")]);
    let config = tmp.path().join("tagsmith.yaml");
    std::fs::write(
        &config,
        format!(
            "flux: ['{}']\nregistries:\n  - host: ghcr.io\n    timeout: 20s\nserver: {{ listen: 127.0.0.1:0 }}\n",
            fixture("docs").display()
        ),
    )
    .unwrap();
    let out = tagsmith(&[
        "check",
        "-c",
        config.to_str().unwrap(),
        "--secrets-dir",
        tmp.path().to_str().unwrap(),
        "--output",
        "json",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        report["flux"]["model"]["images"][0]["policy"], "default:podinfo-policy",
        "{stdout}"
    );
    assert_eq!(report["valid"], true, "{stdout}");
}

#[test]
fn a_file_given_with_flux_objects_fills_in_and_never_redefines() {
    let tmp = tempfile::tempdir().unwrap();
    field_secrets(tmp.path());
    let flux = fields_with(tmp.path()).2;
    let base = Config::parse(
        "registries:\n  - host: registry.example.com\n    timeout: 20s\n    auth: anonymous\nstate: { dir: /var/lib/tagsmith }\n",
        Path::new("tagsmith.yaml"),
    )
    .unwrap();
    let merged = flux::merge(base, flux.clone()).unwrap();
    let registry = merged
        .registries
        .iter()
        .find(|r| r.host == "registry.example.com")
        .unwrap();
    assert_eq!(
        registry.timeout,
        Some(Duration::from_secs(20)),
        "the file's transport settings"
    );
    assert!(
        registry.insecure == Some(true) && registry.ca.is_some(),
        "the objects' TLS settings"
    );
    assert_eq!(
        registry.auth,
        Some(tagsmith::registry::AuthSettings::Anonymous),
        "the file's credentials win"
    );
    assert_eq!(
        merged.state_dir.as_deref(),
        Some(Path::new("/var/lib/tagsmith"))
    );
    assert_eq!(merged.targets.len(), 2);

    let base = Config::parse(
        "targets:\n  - name: team-a-apps\n    git: { url: 'https://example.com/x.git' }\n",
        Path::new("tagsmith.yaml"),
    )
    .unwrap();
    let err = flux::merge(base, flux).unwrap_err().to_string();
    assert_eq!(
        err,
        "target team-a-apps is defined both in tagsmith.yaml and by the Flux objects"
    );
}

#[test]
fn paths_without_flux_objects_are_a_warning_not_silence() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("deploy.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\n",
    )
    .unwrap();
    let compiled = compile(&[tmp.path().to_path_buf()], None);
    assert_eq!(compiled.diagnostics.len(), 1, "{:#?}", compiled.diagnostics);
    assert_eq!(compiled.diagnostics[0].severity, Severity::Warning);
    assert!(
        compiled.diagnostics[0]
            .message
            .contains("no ImageRepository"),
        "{}",
        compiled.diagnostics[0]
    );
    let err = flux::compile(&[tmp.path().join("missing")], &Options::default()).unwrap_err();
    assert!(err.to_string().starts_with("cannot read "), "{err}");
}

#[test]
fn check_applies_the_policy_selector_to_a_checkout() {
    let tmp = tempfile::tempdir().unwrap();
    field_secrets(tmp.path());
    let checkout = tmp.path().join("checkout");
    std::fs::create_dir_all(checkout.join("apps/team-a")).unwrap();
    std::fs::write(
        checkout.join("apps/team-a/deploy.yaml"),
        "a: registry.example.com/org/app:1.0.0 # {\"$imagepolicy\": \"team-a:app\"}\n\
         b: ghcr.io/org/worker:x # {\"$imagepolicy\": \"team-a:docs\"}\n",
    )
    .unwrap();
    let fields = fixture("fields");
    let out = tagsmith(&[
        "check",
        checkout.to_str().unwrap(),
        "--target",
        "team-a-apps",
        "--secrets-dir",
        tmp.path().to_str().unwrap(),
        "--flux",
        fields.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("apps/team-a/deploy.yaml:2: policy team-a:docs may not change this file"),
        "team-a:docs is not selected by team-a/apps: {stdout}"
    );
    assert!(!stdout.contains("team-a:app may not"), "{stdout}");
}

/// A messageTemplate tagsmith cannot evaluate is an error naming the object, the field and the
/// construct; a `.Values` key that is not given is a warning (Flux prints `<no value>`).
#[test]
fn message_templates_are_refused_or_warned_with_object_field_and_construct() {
    let tmp = tempfile::tempdir().unwrap();
    let automation = |name: &str, template: &str| {
        format!(
            "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageUpdateAutomation\nmetadata:\n  name: {name}\n  namespace: apps\nspec:\n  sourceRef: {{ kind: GitRepository, name: repo }}\n  git:\n    commit:\n      author: {{ name: bot, email: bot@example.com }}\n      messageTemplate: '{template}'\n  update: {{ path: ./, strategy: Setters }}\n"
        )
    };
    let text = format!(
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: repo\n  namespace: apps\nspec:\n  url: https://example.com/repo.git\n  ref: {{ branch: main }}\n---\n{}---\n{}",
        automation(
            "quoted",
            "{{ range .Changed.Changes }}{{ .NewValue | quote }}{{ end }}"
        ),
        automation("values", "Update for {{ .Values.cluster }}"),
    );
    let path = tmp.path().join("automations.yaml");
    std::fs::write(&path, text).unwrap();
    let compiled = compile(&[path], None);
    let quoted = find(
        &compiled.diagnostics,
        "ImageUpdateAutomation apps/quoted",
        "spec.git.commit.messageTemplate",
    );
    assert_eq!(quoted.severity, Severity::Error);
    assert_eq!(quoted.line, 20, "{quoted}");
    assert!(
        quoted
            .message
            .contains("{{ .NewValue | quote }}: the function \"quote\" is not supported"),
        "{quoted}"
    );
    let values = find(
        &compiled.diagnostics,
        "ImageUpdateAutomation apps/values",
        "spec.git.commit.messageTemplate",
    );
    assert_eq!(values.severity, Severity::Warning);
    assert!(
        values
            .message
            .contains(".Values.cluster: messageTemplateValues has no key"),
        "{values}"
    );
}
