//! Tag listing, paging, faults, digests and auth against the real `docker-registry`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::proxy::{Fault, Paging, Proxy};
use crate::support::{Auth, Registry, tag_names};
use tagsmith::model::{ImageName, Tag};
use tagsmith::registry::{
    AuthSettings, BasicAuth, Client, Error, ExecAuth, Options, RegistrySettings, RetryPolicy,
};

fn fast_options() -> Options {
    Options {
        retry: RetryPolicy {
            max_attempts: 6,
            base: Duration::from_millis(10),
            cap: Duration::from_millis(100),
            max_retry_after: Duration::from_secs(5),
        },
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        ..Options::default()
    }
}

fn settings(host: &str) -> RegistrySettings {
    RegistrySettings {
        host: host.to_string(),
        insecure: Some(true),
        ..RegistrySettings::default()
    }
}

fn image(host: &str, repo: &str) -> ImageName {
    format!("{host}/{repo}").parse().unwrap()
}

fn names(tags: &[Tag]) -> Vec<String> {
    tags.iter().map(|t| t.to_string()).collect()
}

fn set(tags: &[String]) -> BTreeSet<String> {
    tags.iter().cloned().collect()
}

/// A registry with one repository of 1,234 tags and a few small ones.
async fn seeded() -> (Registry, Vec<String>) {
    let registry = Registry::start(Auth::None);
    let pusher = registry.pusher();
    let big = tag_names("1.0.", 1234);
    pusher.push_tags("big/app", &big).await;
    for i in 0..5 {
        let tags = tag_names(&format!("v{i}."), 3 + i * 4);
        pusher.push_tags(&format!("small/app{i}"), &tags).await;
    }
    (registry, big)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_every_tag_of_many_repositories() {
    let (registry, big) = seeded().await;
    let client = Client::new(vec![settings(&registry.host)], fast_options());

    let tags = names(
        &client
            .list_tags(&image(&registry.host, "big/app"))
            .await
            .unwrap(),
    );
    assert_eq!(tags.len(), big.len(), "no duplicates, none missing");
    assert_eq!(set(&tags), set(&big));

    let mut images = vec![image(&registry.host, "big/app")];
    images.extend((0..5).map(|i| image(&registry.host, &format!("small/app{i}"))));
    let results = client.scan_all(&images).await;
    assert_eq!(results.len(), 6);
    for (i, (name, result)) in results.into_iter().enumerate() {
        assert_eq!(name, images[i], "results keep input order");
        let tags = names(&result.unwrap());
        let expected = if i == 0 {
            big.clone()
        } else {
            tag_names(&format!("v{}.", i - 1), 3 + (i - 1) * 4)
        };
        assert_eq!(set(&tags), set(&expected), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_spec_style_paging_in_registry_order() {
    let (registry, big) = seeded().await;
    let proxy = Proxy::start(&registry.host, Paging::Spec { default_n: 100 }).await;
    let client = Client::new(vec![settings(&proxy.host())], fast_options());

    let tags = names(
        &client
            .list_tags(&image(&proxy.host(), "big/app"))
            .await
            .unwrap(),
    );
    let mut sorted = big.clone();
    sorted.sort();
    assert_eq!(
        tags, sorted,
        "every tag once, in the order the pages gave them"
    );
    assert_eq!(proxy.log().len(), big.len().div_ceil(100));

    // With a page size the client asks for it.
    proxy.clear_log();
    let sized = RegistrySettings {
        page_size: Some(500),
        ..settings(&proxy.host())
    };
    let client = Client::new(vec![sized], fast_options());
    let tags = names(
        &client
            .list_tags(&image(&proxy.host(), "big/app"))
            .await
            .unwrap(),
    );
    assert_eq!(tags, sorted);
    let log = proxy.log();
    assert_eq!(log.len(), 3);
    assert!(log[0].uri.ends_with("tags/list?n=500"), "{}", log[0].uri);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_link_only_paging_that_ignores_last() {
    let (registry, big) = seeded().await;
    let proxy = Proxy::start(&registry.host, Paging::LinkOnly { page: 77 }).await;
    let client = Client::new(vec![settings(&proxy.host())], fast_options());
    let tags = names(
        &client
            .list_tags(&image(&proxy.host(), "big/app"))
            .await
            .unwrap(),
    );
    assert_eq!(tags.len(), big.len());
    assert_eq!(set(&tags), set(&big));
    assert_eq!(proxy.log().len(), big.len().div_ceil(77));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ends_on_registries_that_ignore_n_and_last() {
    let (registry, big) = seeded().await;
    // Registry 2.8 itself: every tag in one answer whatever `n` says; one `last` probe shows
    // nothing new and the listing ends.
    let proxy = Proxy::start(&registry.host, Paging::PassThrough).await;
    let sized = RegistrySettings {
        page_size: Some(100),
        ..settings(&proxy.host())
    };
    let client = Client::new(vec![sized.clone()], fast_options());
    let tags = names(
        &client
            .list_tags(&image(&proxy.host(), "big/app"))
            .await
            .unwrap(),
    );
    assert_eq!(set(&tags), set(&big));
    assert_eq!(tags.len(), big.len());
    assert_eq!(proxy.log().len(), 2);

    // `n` honoured, `last` ignored, no links: a naive loop would spin forever.
    proxy.clear_log();
    proxy.set_paging(Paging::IgnoreLast { default_n: 100 });
    let tags = names(
        &client
            .list_tags(&image(&proxy.host(), "big/app"))
            .await
            .unwrap(),
    );
    assert_eq!(tags.len(), 100);
    assert_eq!(proxy.log().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_through_429_500_slow_answers_and_dropped_connections() {
    // A small repository keeps every normal answer far below the request timeout.
    let registry = Registry::start(Auth::None);
    let big = tag_names("5.", 250);
    registry.pusher().push_tags("big/app", &big).await;
    let proxy = Proxy::start(&registry.host, Paging::Spec { default_n: 100 }).await;
    // Slow means slower than the request timeout, by a margin that machine load cannot close.
    let options = Options {
        timeout: Duration::from_millis(1500),
        ..fast_options()
    };
    let client = Client::new(vec![settings(&proxy.host())], options);
    proxy.push_faults([
        Fault::Status {
            code: 429,
            retry_after: Some(1),
        },
        Fault::Status {
            code: 500,
            retry_after: None,
        },
        Fault::Drop,
        Fault::Slow(Duration::from_secs(4)),
        Fault::Status {
            code: 503,
            retry_after: None,
        },
    ]);
    let tags = names(
        &client
            .list_tags(&image(&proxy.host(), "big/app"))
            .await
            .unwrap(),
    );
    let mut sorted = big.clone();
    sorted.sort();
    assert_eq!(tags, sorted);
    let log = proxy.log();
    assert_eq!(
        log.len(),
        5 + big.len().div_ceil(100),
        "each fault cost one retry"
    );
    let gap = log[1].at.duration_since(log[0].at);
    assert!(
        gap >= Duration::from_millis(950),
        "retry-after honoured, waited {gap:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_scan_is_an_error_never_an_empty_list() {
    let registry = Registry::start(Auth::None);
    registry
        .pusher()
        .push_tags("big/app", &tag_names("6.", 20))
        .await;
    let proxy = Proxy::start(&registry.host, Paging::PassThrough).await;
    let client = Client::new(vec![settings(&proxy.host())], fast_options());
    let name = image(&proxy.host(), "big/app");
    proxy.push_faults(std::iter::repeat_n(
        Fault::Status {
            code: 500,
            retry_after: None,
        },
        6,
    ));
    let err = client.list_tags(&name).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("big/app"), "{err}");
    assert_eq!(proxy.log().len(), 6, "max_attempts requests");

    // A Retry-After longer than allowed fails at once rather than stalling.
    proxy.clear_log();
    proxy.push_faults([Fault::Status {
        code: 429,
        retry_after: Some(3600),
    }]);
    let err = client.list_tags(&name).await.unwrap_err();
    assert!(
        err.is_transient() && err.to_string().contains("retry after"),
        "{err}"
    );
    assert_eq!(proxy.log().len(), 1);

    // A missing repository is not retried and says so.
    proxy.clear_log();
    let err = client
        .list_tags(&image(&proxy.host(), "no/such"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(!err.is_transient());
    let text = err.to_string();
    assert!(
        text.contains("no/such") && text.contains("anonymous"),
        "{text}"
    );
    assert_eq!(proxy.log().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_many_images_within_the_per_registry_limit() {
    let registry = Registry::start(Auth::None);
    let pusher = registry.pusher();
    let mut images = Vec::new();
    for i in 0..12 {
        pusher
            .push_tags(&format!("many/r{i}"), &tag_names("t", 5))
            .await;
    }
    let proxy = Proxy::start(&registry.host, Paging::PassThrough).await;
    for i in 0..12 {
        images.push(image(&proxy.host(), &format!("many/r{i}")));
    }
    proxy.set_delay(Duration::from_millis(100));
    let limited = RegistrySettings {
        max_concurrency: Some(3),
        ..settings(&proxy.host())
    };
    let client = Client::new(vec![limited], fast_options());
    let results = client.scan_all(&images).await;
    assert!(
        results
            .iter()
            .all(|(_, r)| r.as_ref().is_ok_and(|t| t.len() == 5))
    );
    let max = proxy.max_in_flight();
    assert!((2..=3).contains(&max), "in flight at once: {max}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolves_manifest_and_index_digests() {
    let registry = Registry::start(Auth::None);
    let pusher = registry.pusher();
    let single = pusher.push_tags("dig/app", &["1.0.0".to_string()]).await;
    let (index, platforms) = pusher.push_index("dig/app", "multi").await;
    let proxy = Proxy::start(&registry.host, Paging::PassThrough).await;
    let client = Client::new(vec![settings(&proxy.host())], fast_options());
    let name = image(&proxy.host(), "dig/app");

    let got = client
        .resolve_digest(&name, &"1.0.0".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(got.as_str(), single);
    let got = client
        .resolve_digest(&name, &"multi".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(got.as_str(), index, "the index digest, not {platforms:?}");
    assert!(
        proxy.log().iter().all(|l| l.method == "HEAD"),
        "HEAD suffices"
    );

    // Without a digest header the body is fetched and hashed.
    proxy.clear_log();
    proxy.strip_digest_header(true);
    let got = client
        .resolve_digest(&name, &"multi".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(got.as_str(), index);
    let methods: Vec<String> = proxy.log().iter().map(|l| l.method.clone()).collect();
    assert_eq!(methods, ["HEAD", "GET"]);

    let err = client
        .resolve_digest(&name, &"nope".parse().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_from_files_docker_config_and_commands() {
    let registry = Registry::start(Auth::Htpasswd {
        user: "bot".into(),
        password: "s3cret-pw".into(),
    });
    let tags = tag_names("2.0.", 40);
    registry.pusher().push_tags("private/app", &tags).await;
    let dir = tempfile::tempdir().unwrap();
    let name = image(&registry.host, "private/app");
    let with_auth = |auth: Option<AuthSettings>| {
        Client::new(
            vec![RegistrySettings {
                auth,
                ..settings(&registry.host)
            }],
            fast_options(),
        )
    };

    // Password from a file.
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, "s3cret-pw\n").unwrap();
    let client = with_auth(Some(AuthSettings::Basic(BasicAuth {
        username: Some("bot".into()),
        password_file: Some(password_file.clone()),
        ..BasicAuth::default()
    })));
    assert_eq!(
        set(&names(&client.list_tags(&name).await.unwrap())),
        set(&tags)
    );

    // A Docker config `auths` entry.
    let config = dir.path().join("config.json");
    let encoded = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode("bot:s3cret-pw")
    };
    std::fs::write(
        &config,
        format!(
            r#"{{"auths":{{"http://{}/v2/":{{"auth":"{encoded}"}}}}}}"#,
            registry.host
        ),
    )
    .unwrap();
    let client = with_auth(Some(AuthSettings::DockerConfig(config.clone())));
    assert_eq!(client.list_tags(&name).await.unwrap().len(), tags.len());

    // A command printing credentials as JSON.
    let script = dir.path().join("print-creds");
    std::fs::write(
        &script,
        "#!/bin/sh\necho '{\"username\":\"bot\",\"password\":\"s3cret-pw\"}'\n",
    )
    .unwrap();
    make_executable(&script);
    let client = with_auth(Some(AuthSettings::Exec(ExecAuth {
        command: vec![script.display().to_string()],
        ..ExecAuth::default()
    })));
    assert_eq!(client.list_tags(&name).await.unwrap().len(), tags.len());

    // Wrong password: not retried, the error names the source and never the secret.
    std::fs::write(&password_file, "wrong-pw").unwrap();
    let client = with_auth(Some(AuthSettings::Basic(BasicAuth {
        username: Some("bot".into()),
        password_file: Some(password_file.clone()),
        ..BasicAuth::default()
    })));
    let err = client.list_tags(&name).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(matches!(err, Error::Unauthorized { .. }), "{text}");
    assert!(
        text.contains(&password_file.display().to_string()),
        "{text}"
    );
    assert!(
        !text.contains("wrong-pw") && !text.contains("s3cret"),
        "{text}"
    );

    // No credentials at all.
    let client = with_auth(Some(AuthSettings::Anonymous));
    let err = client.list_tags(&name).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("anonymous"), "{err}");
}

fn make_executable(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_without_tags_lists_empty_not_failed() {
    let registry = Registry::start(Auth::None);
    let digest = registry
        .pusher()
        .push_tags("gone/app", &["1.0.0".to_string()])
        .await;
    let deleted = reqwest::Client::new()
        .delete(format!(
            "{}/v2/gone/app/manifests/{digest}",
            registry.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 202);
    let client = Client::new(vec![settings(&registry.host)], fast_options());
    let tags = client
        .list_tags(&image(&registry.host, "gone/app"))
        .await
        .unwrap();
    assert!(tags.is_empty(), "{tags:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_keep_credentials_within_the_registry_and_drop_them_outside() {
    let registry = Registry::start(Auth::Htpasswd {
        user: "bot".into(),
        password: "s3cret-pw".into(),
    });
    let tags = tag_names("8.", 30);
    registry.pusher().push_tags("moved/app", &tags).await;
    let proxy = Proxy::start(&registry.host, Paging::PassThrough).await;
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("pw");
    std::fs::write(&password, "s3cret-pw").unwrap();
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
        fast_options(),
    );
    let name = image(&proxy.host(), "moved/app");

    // The challenge passes, the request with credentials is redirected within the registry
    // (same origin) and followed with them.
    proxy.push_faults([Fault::Pass, Fault::Redirect("{uri}")]);
    assert_eq!(
        set(&names(&client.list_tags(&name).await.unwrap())),
        set(&tags)
    );
    let log = proxy.log();
    assert_eq!(log.len(), 3, "{log:?}");
    assert!(!log[0].authorized && log[1].authorized && log[2].authorized);

    // Redirected to another origin (the registry's own port), the credentials stay behind and
    // its 401 is an error that says why.
    proxy.clear_log();
    let away: &'static str = Box::leak(format!("http://{}{{uri}}", registry.host).into_boxed_str());
    proxy.push_faults([Fault::Redirect(away)]);
    let err = client.list_tags(&name).await.unwrap_err();
    assert!(matches!(err, Error::Redirected { .. }), "{err}");
    assert!(err.to_string().contains(&registry.host), "{err}");
    assert_eq!(proxy.log().len(), 1);
}

// A listing whose answer is byte for byte the one an id was made from comes back unchanged,
// unread; a new tag, another salt, or a registry that pages gives the tags and a new id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_the_caller_has_seen_comes_back_unchanged_without_being_read() {
    use tagsmith::registry::Listing;
    let registry = Registry::start(Auth::None);
    let tags = tag_names("3.", 20);
    registry.pusher().push_tags("seen/app", &tags).await;
    let client = Client::new(vec![settings(&registry.host)], fast_options());
    let name = image(&registry.host, "seen/app");

    let Listing::Tags { tags: first, id } = client
        .list_tags_since(&name, b"build 1", None)
        .await
        .unwrap()
    else {
        panic!("nothing was seen, so the tags come back");
    };
    assert_eq!(set(&names(&first)), set(&tags));
    assert_eq!(
        client
            .list_tags_since(&name, b"build 1", Some(&id))
            .await
            .unwrap(),
        Listing::Unchanged
    );
    let Listing::Tags { id: other_salt, .. } = client
        .list_tags_since(&name, b"build 2", Some(&id))
        .await
        .unwrap()
    else {
        panic!("another build's id is another id");
    };
    assert_ne!(other_salt, id);

    registry
        .pusher()
        .push_tags("seen/app", &["3.99.0".to_string()])
        .await;
    let Listing::Tags {
        tags: now,
        id: moved,
    } = client
        .list_tags_since(&name, b"build 1", Some(&id))
        .await
        .unwrap()
    else {
        panic!("a new tag is a new answer");
    };
    assert_eq!(now.len(), tags.len() + 1);
    assert_ne!(moved, id);

    // Asked page by page, the answer is read and its id covers every page.
    let paged = Client::new(
        vec![RegistrySettings {
            page_size: Some(7),
            ..settings(&registry.host)
        }],
        fast_options(),
    );
    let Listing::Tags {
        tags: pages,
        id: paged_id,
    } = paged
        .list_tags_since(&name, b"build 1", None)
        .await
        .unwrap()
    else {
        panic!("nothing was seen");
    };
    assert_eq!(pages.len(), tags.len() + 1);
    let again = paged
        .list_tags_since(&name, b"build 1", Some(&paged_id))
        .await
        .unwrap();
    assert!(matches!(again, Listing::Tags { .. }), "{again:?}");
}
