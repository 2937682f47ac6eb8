//! Hostile registries on 127.0.0.1: redirects that try to collect credentials, token replies
//! and answers built to overflow or exhaust, endless paging. Each case is a promise the client
//! keeps whatever a server sends.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::proxy::{Canned, Scripted, Seen};
use bytes::Bytes;
use tagsmith::model::ImageName;
use tagsmith::registry::{
    AuthSettings, BasicAuth, Client, Error, ListingLimits, Options, RegistrySettings, RetryPolicy,
};

fn options() -> Options {
    Options {
        retry: RetryPolicy {
            max_attempts: 3,
            base: Duration::from_millis(10),
            cap: Duration::from_millis(50),
            max_retry_after: Duration::from_secs(5),
        },
        timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(2),
        ..Options::default()
    }
}

fn image(host: &str) -> ImageName {
    format!("{host}/team/app").parse().unwrap()
}

/// Basic credentials `bot` / `s3cret-pw` from a file for `host`.
fn with_basic(host: &str, dir: &tempfile::TempDir) -> RegistrySettings {
    let password = dir.path().join("pw");
    std::fs::write(&password, "s3cret-pw").unwrap();
    RegistrySettings {
        host: host.to_string(),
        auth: Some(AuthSettings::Basic(BasicAuth {
            username: Some("bot".into()),
            password_file: Some(password),
            ..BasicAuth::default()
        })),
        ..RegistrySettings::default()
    }
}

/// A server that logs everything and answers 401 with no challenge: stands for a collector.
async fn collector() -> Scripted {
    Scripted::start(|_| Canned::json(401, r#"{"errors":[]}"#)).await
}

fn leaked(log: &[Seen]) -> bool {
    log.iter().any(|s| {
        s.authorization.is_some() || s.body.contains("s3cret") || s.body.contains("refresh")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_reach_a_realm_named_by_a_host_the_registry_redirected_to() {
    let realm = collector().await;
    let realm_url = format!("{}/token", realm.url());
    // B: the host the registry redirects to, asking for a token from the collector's realm.
    let other = Scripted::start(move |_| {
        Canned::json(401, r#"{"errors":[]}"#).header(
            "www-authenticate",
            format!(r#"Bearer realm="{realm_url}",service="evil""#),
        )
    })
    .await;
    let other_url = other.url();
    // A: the configured registry, redirecting everything to B.
    let registry =
        Scripted::start(move |seen| Canned::redirect(307, format!("{other_url}{}", seen.uri)))
            .await;
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new(vec![with_basic(&registry.host(), &dir)], options());
    let err = client
        .list_tags(&image(&registry.host()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Redirected { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&other.host()) && text.contains(&registry.host()),
        "{text}"
    );
    assert!(
        realm.log().is_empty(),
        "the third host was asked: {:?}",
        realm.log()
    );
    assert!(!leaked(&other.log()), "{:?}", other.log());
    let err = client
        .resolve_digest(&image(&registry.host()), &"1.0".parse().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Redirected { .. }), "{err}");
    assert!(realm.log().is_empty());
    assert!(!leaked(&other.log()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_credentials_are_dropped_on_a_redirect_to_another_host() {
    // The storage host a registry hands answers off to: it gets the request, never the header.
    let storage = Scripted::start(|seen| {
        if seen.uri.contains("/manifests/") {
            Canned::json(200, "{}").header(
                "docker-content-digest",
                format!("sha256:{}", "a".repeat(64)),
            )
        } else {
            Canned::json(200, r#"{"name":"team/app","tags":["1.0","1.1"]}"#)
        }
    })
    .await;
    let storage_url = storage.url();
    let registry = Scripted::start(move |seen| match &seen.authorization {
        None => Canned::json(401, "{}").header("www-authenticate", r#"Basic realm="r""#),
        Some(_) => Canned::redirect(302, format!("{storage_url}{}", seen.uri)),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new(vec![with_basic(&registry.host(), &dir)], options());
    let name = image(&registry.host());
    let tags = client.list_tags(&name).await.unwrap();
    assert_eq!(tags.len(), 2);
    client
        .resolve_digest(&name, &"1.0".parse().unwrap())
        .await
        .unwrap();
    assert!(
        registry.log().iter().any(|s| s.authorization.is_some()),
        "the registry itself gets the credentials"
    );
    assert!(!storage.log().is_empty());
    assert!(!leaked(&storage.log()), "{:?}", storage.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_service_that_redirects_elsewhere_gets_no_credentials_through() {
    let collector = collector().await;
    let collector_url = collector.url();
    // The realm the registry names, redirecting (307 keeps a POST body) to the collector.
    let realm =
        Scripted::start(move |seen| Canned::redirect(307, format!("{collector_url}{}", seen.uri)))
            .await;
    let realm_url = format!("{}/token", realm.url());
    let registry = Scripted::start(move |_| {
        Canned::json(401, "{}").header(
            "www-authenticate",
            format!(r#"Bearer realm="{realm_url}",service="reg""#),
        )
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let name = image(&registry.host());

    // Basic credentials (token GET).
    let client = Client::new(vec![with_basic(&registry.host(), &dir)], options());
    let err = client.list_tags(&name).await.unwrap_err();
    assert!(matches!(err, Error::Token { .. }), "{err}");
    assert!(err.to_string().contains("redirected"), "{err}");
    assert!(!err.is_transient());

    // An identity token (OAuth2 POST with the refresh token in the body).
    let docker_config = dir.path().join("config.json");
    std::fs::write(
        &docker_config,
        format!(
            r#"{{"auths":{{"{}":{{"auth":"","identitytoken":"refresh-s3cret"}}}}}}"#,
            registry.host()
        ),
    )
    .unwrap();
    let client = Client::new(
        vec![RegistrySettings {
            host: registry.host(),
            auth: Some(AuthSettings::DockerConfig(docker_config)),
            ..RegistrySettings::default()
        }],
        options(),
    );
    let err = client.list_tags(&name).await.unwrap_err();
    assert!(matches!(err, Error::Token { .. }), "{err}");
    assert!(
        collector.log().is_empty(),
        "the collector was reached: {:?}",
        collector.log()
    );
    assert!(realm.log().iter().any(|s| s.authorization.is_some()));
    assert!(
        realm
            .log()
            .iter()
            .any(|s| s.body.contains("refresh-s3cret"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_never_expires_and_odd_rates_do_not_panic() {
    let server = crate::support::token::scripted_registry("18446744073709551615").await;
    let client = Client::new(Vec::new(), options());
    let name = image(&server.host());
    assert_eq!(client.list_tags(&name).await.unwrap().len(), 1);
    // The cached token is used again.
    assert_eq!(client.list_tags(&name).await.unwrap().len(), 1);
    let tokens = server
        .log()
        .iter()
        .filter(|s| s.uri.starts_with("/token"))
        .count();
    assert_eq!(tokens, 1);

    // Rates that a config check refuses must still not panic a library caller's limiter.
    let plain =
        Scripted::start(|_| Canned::json(200, r#"{"name":"team/app","tags":["1.0"]}"#)).await;
    for rate in [1e-300, -1.0, f64::NAN, 1e300, f64::INFINITY, 0.0] {
        let client = Client::new(
            vec![RegistrySettings {
                host: plain.host(),
                requests_per_second: Some(rate),
                burst: Some(u32::MAX),
                ..RegistrySettings::default()
            }],
            options(),
        );
        let tags = tokio::time::timeout(
            Duration::from_secs(10),
            client.list_tags(&image(&plain.host())),
        )
        .await
        .unwrap_or_else(|_| panic!("rate {rate}: stalled"));
        assert_eq!(tags.unwrap().len(), 1, "rate {rate}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_lists_larger_than_the_limit_fail_without_being_read_whole() {
    let limit = ListingLimits::default().max_response_bytes;
    // No content length: the client has to count as it reads.
    let chunk = Bytes::from(format!("\"{}\",", "x".repeat(1022)));
    let times = usize::try_from(limit).unwrap() / chunk.len() + 16;
    let chunked = Scripted::start(move |_| Canned {
        body: Bytes::from_static(br#"{"name":"team/app","tags":["#),
        repeat: Some((chunk.clone(), times)),
        ..Canned::json(200, "")
    })
    .await;
    let client = Client::new(Vec::new(), options());
    let started = Instant::now();
    let err = client.list_tags(&image(&chunked.host())).await.unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&chunked.host()) && text.contains(&limit.to_string()),
        "{text}"
    );
    assert!(!err.is_transient());
    assert_eq!(chunked.log().len(), 1, "not retried");
    assert!(started.elapsed() < Duration::from_secs(30));

    // An announced length over the limit is refused before the body is read.
    let announced = Scripted::start(move |_| {
        Canned::json(200, "x".repeat(usize::try_from(limit).unwrap() + 1))
    })
    .await;
    let err = client
        .list_tags(&image(&announced.host()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
}

/// A registry whose every page links to a next one with `per_page` new tags.
async fn endless(per_page: usize, delay: Duration) -> Scripted {
    let page = Arc::new(AtomicUsize::new(0));
    Scripted::start(move |_| {
        let n = page.fetch_add(1, Ordering::SeqCst);
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        let tags: Vec<String> = (0..per_page).map(|i| format!("p{n}-{i}")).collect();
        Canned::json(
            200,
            serde_json::json!({ "name": "team/app", "tags": tags }).to_string(),
        )
        .header(
            "link",
            format!("</v2/team/app/tags/list?page={}>; rel=\"next\"", n + 1),
        )
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_paging_is_bounded_by_tags_pages_bytes_and_time() {
    // Default limits: 1,000 new tags a page reach the tag limit after 500 pages.
    let server = endless(1000, Duration::ZERO).await;
    let client = Client::new(Vec::new(), options());
    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(120),
        client.list_tags(&image(&server.host())),
    )
    .await
    .expect("the listing must end on its own");
    let err = result.unwrap_err();
    let max_tags = ListingLimits::default().max_tags;
    assert!(
        err.to_string()
            .contains(&format!("more than {max_tags} distinct tags")),
        "{err}"
    );
    assert!(err.to_string().contains(&server.host()), "{err}");
    assert_eq!(server.log().len(), max_tags / 1000 + 1);
    eprintln!("tag limit reached in {:?}", started.elapsed());

    let limited = |limits: ListingLimits| {
        Client::new(
            Vec::new(),
            Options {
                limits,
                ..options()
            },
        )
    };
    let server = endless(1, Duration::ZERO).await;
    let err = limited(ListingLimits {
        max_pages: 50,
        ..ListingLimits::default()
    })
    .list_tags(&image(&server.host()))
    .await
    .unwrap_err();
    assert!(err.to_string().contains("more than 50 pages"), "{err}");
    assert_eq!(server.log().len(), 50);

    let server = endless(100, Duration::ZERO).await;
    let err = limited(ListingLimits {
        max_listing_bytes: 20_000,
        ..ListingLimits::default()
    })
    .list_tags(&image(&server.host()))
    .await
    .unwrap_err();
    assert!(err.to_string().contains("more than 20000 bytes"), "{err}");

    let server = endless(1, Duration::from_millis(100)).await;
    let started = Instant::now();
    let err = limited(ListingLimits {
        max_time: Duration::from_secs(1),
        ..ListingLimits::default()
    })
    .list_tags(&image(&server.host()))
    .await
    .unwrap_err();
    assert!(err.to_string().contains("not done after 1s"), "{err}");
    assert!(err.to_string().contains(&server.host()), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}
