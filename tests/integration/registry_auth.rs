//! Token auth (the registry verifies JWTs from a test issuer) and TLS with a test CA.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::pki::Pki;
use crate::support::proxy::{Fault, Paging, Proxy};
use crate::support::token::TokenIssuer;
use crate::support::{Auth, Registry, Tls, tag_names};
use tagsmith::model::ImageName;
use tagsmith::registry::{
    AuthSettings, BasicAuth, Client, Error, Options, RegistrySettings, RetryPolicy,
};

fn options() -> Options {
    Options {
        retry: RetryPolicy {
            max_attempts: 3,
            base: Duration::from_millis(10),
            cap: Duration::from_millis(50),
            max_retry_after: Duration::from_secs(5),
        },
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        ..Options::default()
    }
}

fn set(tags: &[tagsmith::model::Tag]) -> BTreeSet<String> {
    tags.iter().map(|t| t.to_string()).collect()
}

fn expected(tags: &[String]) -> BTreeSet<String> {
    tags.iter().cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_anonymous_and_with_credentials_cached_until_expiry() {
    let pki = Pki::new();
    let keys = pki.token_keys("tagsmith-test-issuer", "tagsmith-test-registry");
    let issuer = TokenIssuer::start(
        keys.clone(),
        vec![("bot".into(), "token-pw".into())],
        vec![("refresh-for-bot".into(), "bot".into())],
        vec!["pub/app".into()],
        4,
    )
    .await;
    let registry = Registry::start(Auth::Token {
        realm: issuer.realm(),
        keys,
        ca_pem: pki.ca_pem.clone(),
    });
    let public_tags = tag_names("1.", 30);
    let private_tags = tag_names("2.", 1050);
    let pusher = registry.pusher();
    pusher.push_tags("pub/app", &public_tags).await;
    let digest = pusher.push_tags("priv/app", &private_tags).await;
    let public: ImageName = format!("{}/pub/app", registry.host).parse().unwrap();
    let private: ImageName = format!("{}/priv/app", registry.host).parse().unwrap();
    let host_settings = |auth| RegistrySettings {
        host: registry.host.clone(),
        insecure: Some(true),
        auth: Some(auth),
        ..RegistrySettings::default()
    };

    // Anonymous: the public repository lists, the private one is refused by name.
    let anonymous = Client::new(vec![host_settings(AuthSettings::Anonymous)], options());
    assert_eq!(
        set(&anonymous.list_tags(&public).await.unwrap()),
        expected(&public_tags)
    );
    let err = anonymous.list_tags(&private).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert!(
        err.to_string().contains("priv/app") && err.to_string().contains("anonymous"),
        "{err}"
    );
    let first = issuer.log()[0].clone();
    assert_eq!(first.user, None);
    assert_eq!(first.service.as_deref(), Some("tagsmith-test-registry"));
    assert_eq!(first.scope.as_deref(), Some("repository:pub/app:pull"));

    // With credentials: one token serves several requests until it expires.
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("pw");
    std::fs::write(&password, "token-pw").unwrap();
    let basic = AuthSettings::Basic(BasicAuth {
        username: Some("bot".into()),
        password_file: Some(password.clone()),
        ..BasicAuth::default()
    });
    let client = Client::new(vec![host_settings(basic.clone())], options());
    let before = issuer.log().len();
    assert_eq!(
        set(&client.list_tags(&private).await.unwrap()),
        expected(&private_tags)
    );
    let resolved = client
        .resolve_digest(&private, &private_tags[0].parse().unwrap())
        .await
        .unwrap();
    assert_eq!(resolved.as_str(), digest);
    assert_eq!(
        client.list_tags(&private).await.unwrap().len(),
        private_tags.len()
    );
    let minted: Vec<_> = issuer.log()[before..].to_vec();
    assert_eq!(minted.len(), 1, "{minted:?}");
    assert_eq!(minted[0].user.as_deref(), Some("bot"));
    assert_eq!(minted[0].scope.as_deref(), Some("repository:priv/app:pull"));
    tokio::time::sleep(Duration::from_millis(4100)).await;
    assert_eq!(
        client.list_tags(&private).await.unwrap().len(),
        private_tags.len()
    );
    assert_eq!(
        issuer.log().len(),
        before + 2,
        "an expired token is renewed"
    );

    // Many requests at once that all miss the cache share one token fetch.
    let client = Client::new(vec![host_settings(basic.clone())], options());
    let before = issuer.log().len();
    let some: Vec<tagsmith::model::Tag> = private_tags[..24]
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
    let digests = client.resolve_digests(&private, &some).await;
    assert!(
        digests
            .iter()
            .all(|(_, d)| d.as_ref().is_ok_and(|d| d.as_str() == digest))
    );
    assert_eq!(
        issuer.log().len(),
        before + 1,
        "one token for concurrent requests"
    );

    // Paged through a proxy, every page goes out with the same cached token.
    let proxy = Proxy::start(&registry.host, Paging::Spec { default_n: 100 }).await;
    let paged: ImageName = format!("{}/priv/app", proxy.host()).parse().unwrap();
    let client = Client::new(
        vec![RegistrySettings {
            host: proxy.host(),
            insecure: Some(true),
            auth: Some(basic.clone()),
            ..RegistrySettings::default()
        }],
        options(),
    );
    let before = issuer.log().len();
    assert_eq!(
        set(&client.list_tags(&paged).await.unwrap()),
        expected(&private_tags)
    );
    assert_eq!(issuer.log().len(), before + 1, "one token for all pages");
    let pages = private_tags.len().div_ceil(100);
    assert_eq!(
        proxy.log().len(),
        pages + 1,
        "one challenge, then every page once"
    );

    // A Docker config identity token is traded by the OAuth2 POST, not sent as a password.
    let docker_config = dir.path().join("config.json");
    std::fs::write(
        &docker_config,
        format!(
            r#"{{"auths":{{"{}":{{"auth":"","identitytoken":"refresh-for-bot"}}}}}}"#,
            registry.host
        ),
    )
    .unwrap();
    let client = Client::new(
        vec![host_settings(AuthSettings::DockerConfig(docker_config))],
        options(),
    );
    assert_eq!(
        set(&client.list_tags(&private).await.unwrap()),
        expected(&private_tags)
    );
    let last = issuer.log().last().cloned().unwrap();
    assert_eq!(last.grant.as_deref(), Some("refresh_token"));
    assert_eq!(last.user.as_deref(), Some("bot"));
    assert_eq!(last.scope.as_deref(), Some("repository:priv/app:pull"));

    // Wrong password: the token service refuses; the error names the source, not the secret.
    std::fs::write(&password, "nope-pw").unwrap();
    let client = Client::new(vec![host_settings(basic)], options());
    let err = client.list_tags(&private).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(matches!(err, Error::Token { .. }), "{text}");
    assert!(!err.is_transient());
    assert!(
        text.contains(&password.display().to_string()) && !text.contains("nope-pw"),
        "{text}"
    );
}

/// A registry serving TLS with a certificate of a test CA, `tags` pushed to `repository`, and
/// that CA's PEM written to `ca.pem` in a temp dir (kept alive by the caller).
async fn tls_registry(
    repository: &str,
    tags: &[String],
) -> (Registry, tempfile::TempDir, std::path::PathBuf) {
    let pki = Pki::new();
    let (cert_pem, key_pem) = pki.server_cert();
    let registry = Registry::start_with(
        Auth::None,
        Some(Tls {
            cert_pem,
            key_pem,
            ca_pem: pki.ca_pem.clone(),
        }),
    );
    registry.pusher().push_tags(repository, tags).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    (registry, dir, ca)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_custom_ca() {
    let tags = tag_names("4.", 25);
    let (registry, dir, ca) = tls_registry("tls/app", &tags).await;
    let image: ImageName = format!("{}/tls/app", registry.host).parse().unwrap();

    let trusting = RegistrySettings {
        host: registry.host.clone(),
        ca: Some(ca.clone()),
        ..RegistrySettings::default()
    };
    let client = Client::new(vec![trusting], options());
    assert_eq!(
        set(&client.list_tags(&image).await.unwrap()),
        expected(&tags)
    );

    // Without the CA the certificate is refused, at once and for good.
    let strict = RegistrySettings {
        host: registry.host.clone(),
        insecure: Some(false),
        ..RegistrySettings::default()
    };
    let client = Client::new(vec![strict], options());
    let err = client.list_tags(&image).await.unwrap_err();
    assert!(!err.is_transient(), "{err}");
    assert!(err.to_string().contains("certificate"), "{err}");

    // SSL_CERT_FILE is honoured too (checked through the binary, which gets its own env).
    let config = dir.path().join("tagsmith.yaml");
    std::fs::write(
        &config,
        format!(
            "registries:\n  - host: {}\n    insecure: false\n",
            registry.host
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tagsmith"))
        .args(["tags", image.as_str(), "-c", config.to_str().unwrap()])
        .env("SSL_CERT_FILE", &ca)
        .env("HOME", dir.path())
        .env_remove("DOCKER_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: BTreeSet<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(listed, expected(&tags));

    // Loopback without `insecure: false` or a `ca` is plain http; a TLS registry says so.
    std::fs::write(
        &config,
        format!("registries:\n  - host: {}\n", registry.host),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tagsmith"))
        .args(["tags", image.as_str(), "-c", config.to_str().unwrap()])
        .env("HOME", dir.path())
        .env_remove("DOCKER_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("answers https") && stderr.contains("insecure: false"),
        "{stderr}"
    );
}

// A plain-http host's own client trusts no certificate (loading the system's roots costs
// milliseconds a plain host never needs); a redirect to https still gets a TLS client with the
// entry's `ca`, made when it is first needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_http_registry_redirecting_to_https_is_followed_with_its_ca() {
    let tags = tag_names("6.", 12);
    let (registry, _dir, ca) = tls_registry("moved/app", &tags).await;
    let proxy = Proxy::start(&registry.host, Paging::PassThrough).await;
    let image: ImageName = format!("{}/moved/app", proxy.host()).parse().unwrap();
    let to_tls: &'static str =
        Box::leak(format!("https://{}{{uri}}", registry.host).into_boxed_str());

    let trusting = RegistrySettings {
        host: proxy.host(),
        insecure: Some(true),
        ca: Some(ca),
        ..RegistrySettings::default()
    };
    let client = Client::new(vec![trusting], options());
    proxy.push_faults([Fault::Redirect(to_tls)]);
    assert_eq!(
        set(&client.list_tags(&image).await.unwrap()),
        expected(&tags)
    );
    assert_eq!(
        proxy.log().len(),
        1,
        "the listing went to the https registry"
    );

    // Without a CA for it, the https registry's certificate is refused, for good.
    let plain = RegistrySettings {
        host: proxy.host(),
        insecure: Some(true),
        ..RegistrySettings::default()
    };
    let client = Client::new(vec![plain], options());
    proxy.push_faults([Fault::Redirect(to_tls)]);
    let err = client.list_tags(&image).await.unwrap_err();
    assert!(!err.is_transient(), "{err}");
    assert!(err.to_string().contains("certificate"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_registry_redirecting_within_itself_keeps_the_token() {
    let pki = Pki::new();
    let keys = pki.token_keys("tagsmith-test-issuer", "tagsmith-test-registry");
    let issuer = TokenIssuer::start(
        keys.clone(),
        vec![("bot".into(), "token-pw".into())],
        Vec::new(),
        Vec::new(),
        300,
    )
    .await;
    let registry = Registry::start(Auth::Token {
        realm: issuer.realm(),
        keys,
        ca_pem: pki.ca_pem.clone(),
    });
    let tags = tag_names("9.", 12);
    registry.pusher().push_tags("priv/app", &tags).await;
    let proxy = Proxy::start(&registry.host, Paging::PassThrough).await;
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("pw");
    std::fs::write(&password, "token-pw").unwrap();
    let client = Client::new(
        vec![RegistrySettings {
            host: proxy.host(),
            auth: Some(AuthSettings::Basic(BasicAuth {
                username: Some("bot".into()),
                password_file: Some(password),
                ..BasicAuth::default()
            })),
            ..RegistrySettings::default()
        }],
        options(),
    );
    // The challenge passes; the request with the token is redirected within the registry.
    proxy.push_faults([Fault::Pass, Fault::Redirect("{uri}")]);
    let name: ImageName = format!("{}/priv/app", proxy.host()).parse().unwrap();
    assert_eq!(
        set(&client.list_tags(&name).await.unwrap()),
        expected(&tags)
    );
    let log = proxy.log();
    assert_eq!(log.len(), 3, "{log:?}");
    assert!(!log[0].authorized && log[1].authorized && log[2].authorized);
    let minted = issuer.log();
    assert_eq!(minted.len(), 1, "{minted:?}");
    assert_eq!(minted[0].user.as_deref(), Some("bot"));
}
