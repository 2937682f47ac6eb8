//! Many policies on one image, against the real `docker-registry` behind the counting proxy:
//! the tag list is listed once, equal selections share one digest lookup, and the lookups of
//! one image run side by side within the registry's own limit.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::support::proxy::{Fault, Paging, Proxy};
use crate::support::{Auth, Registry};
use tagsmith::config::{DigestMode, ImagePolicy};
use tagsmith::engine::select_images;
use tagsmith::policy::{Policy, PolicySpec, RuleSpec};
use tagsmith::registry::{Client, Options, RegistrySettings, RetryPolicy};

fn client(host: &str, max_concurrency: usize, attempts: u32) -> Client {
    let options = Options {
        retry: RetryPolicy {
            max_attempts: attempts,
            base: Duration::from_millis(5),
            cap: Duration::from_millis(20),
            max_retry_after: Duration::from_secs(1),
        },
        timeout: Duration::from_secs(5),
        ..Options::default()
    };
    let settings = RegistrySettings {
        host: host.to_string(),
        insecure: Some(true),
        max_concurrency: Some(max_concurrency),
        ..RegistrySettings::default()
    };
    Client::new(vec![settings], options)
}

fn policy(id: &str, image: &str, range: &str, digest: DigestMode) -> ImagePolicy {
    ImagePolicy {
        id: id.parse().unwrap(),
        image: image.parse().unwrap(),
        interval: Duration::from_secs(60),
        policy: Policy::new(&PolicySpec {
            rule: RuleSpec::Semver(range.to_string()),
            filter: None,
            exclude: None,
        })
        .unwrap(),
        digest,
        suspend: false,
        gates: tagsmith::gate::Gates::default(),
    }
}

fn requests(proxy: &Proxy, method: &str, path: &str) -> usize {
    proxy
        .log()
        .iter()
        .filter(|l| l.method == method && l.uri.contains(path))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_selections_on_one_image_share_one_listing_and_one_digest_lookup() {
    let registry = Registry::start(Auth::None);
    let tags: Vec<String> = ["1.0.0", "1.0.1", "1.2.0", "2.0.0", "1.2.0.sig"]
        .iter()
        .map(|t| t.to_string())
        .collect();
    let digest = registry.pusher().push_tags("shared/app", &tags).await;
    let proxy = Proxy::start(&registry.host, Paging::PassThrough).await;
    let image = format!("{}/shared/app", proxy.host());
    // 30 policies select 1.2.0 (two spellings of the same range among them), 10 select 1.0.1,
    // 5 select 1.2.0 without a digest.
    let mut policies = Vec::new();
    for i in 0..30 {
        let range = if i % 2 == 0 { "^1" } else { ">=1.0.0 <2.0.0" };
        policies.push(policy(
            &format!("team:caret-{i}"),
            &image,
            range,
            DigestMode::IfNotPresent,
        ));
    }
    for i in 0..10 {
        policies.push(policy(
            &format!("team:tilde-{i}"),
            &image,
            "~1.0",
            DigestMode::Always,
        ));
    }
    for i in 0..5 {
        policies.push(policy(
            &format!("team:plain-{i}"),
            &image,
            "^1",
            DigestMode::Never,
        ));
    }
    let refs: Vec<&ImagePolicy> = policies.iter().collect();
    let set = select_images(
        &refs,
        &client(&proxy.host(), 8, 3),
        &tagsmith::engine::Known::new(),
    )
    .await;

    assert!(!set.has_failures(), "{:?}", set.reports);
    assert_eq!(set.reports.len(), 45);
    for p in &policies {
        let got = set.selections[&p.id].to_string();
        let want = match (p.id.to_string(), p.digest) {
            (id, DigestMode::Always) if id.starts_with("team:tilde") => {
                format!("{image}:1.0.1@{digest}")
            }
            (_, DigestMode::Never) => format!("{image}:1.2.0"),
            _ => format!("{image}:1.2.0@{digest}"),
        };
        assert_eq!(got, want, "{}", p.id);
    }
    assert_eq!(
        requests(&proxy, "GET", "/tags/list"),
        1,
        "{:?}",
        proxy.log()
    );
    // One lookup per selected tag that some policy wants a digest for: 1.2.0 and 1.0.1.
    assert_eq!(
        requests(&proxy, "HEAD", "/manifests/1.2.0"),
        1,
        "{:?}",
        proxy.log()
    );
    assert_eq!(
        requests(&proxy, "HEAD", "/manifests/1.0.1"),
        1,
        "{:?}",
        proxy.log()
    );
    assert_eq!(requests(&proxy, "HEAD", "/manifests/"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_lookups_of_one_image_run_side_by_side_within_the_host_limit() {
    let registry = Registry::start(Auth::None);
    let tags: Vec<String> = (0..8).map(|i| format!("1.{i}.0")).collect();
    let digest = registry.pusher().push_tags("side/app", &tags).await;
    let proxy = Proxy::start(&registry.host, Paging::PassThrough).await;
    let image = format!("{}/side/app", proxy.host());
    // Eight policies, each selecting a different tag, so eight lookups.
    let policies: Vec<ImagePolicy> = (0..8)
        .map(|i| {
            policy(
                &format!("team:p{i}"),
                &image,
                &format!("~1.{i}"),
                DigestMode::Always,
            )
        })
        .collect();
    let refs: Vec<&ImagePolicy> = policies.iter().collect();
    proxy.set_delay(Duration::from_millis(150));
    let started = std::time::Instant::now();
    let set = select_images(
        &refs,
        &client(&proxy.host(), 3, 3),
        &tagsmith::engine::Known::new(),
    )
    .await;
    let took = started.elapsed();

    assert!(!set.has_failures(), "{:?}", set.reports);
    for (i, p) in policies.iter().enumerate() {
        assert_eq!(
            set.selections[&p.id].to_string(),
            format!("{image}:1.{i}.0@{digest}")
        );
    }
    assert_eq!(requests(&proxy, "HEAD", "/manifests/"), 8);
    let max = proxy.max_in_flight();
    assert!((2..=3).contains(&max), "lookups in flight at once: {max}");
    // One after another, the listing and eight lookups would take 9 x 150 ms.
    assert!(took < Duration::from_millis(9 * 150), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_shared_lookup_fails_every_policy_that_wanted_it_and_no_other() {
    let registry = Registry::start(Auth::None);
    let tags = vec!["1.0.0".to_string(), "1.1.0".to_string()];
    registry.pusher().push_tags("fail/app", &tags).await;
    let proxy = Proxy::start(&registry.host, Paging::PassThrough).await;
    let image = format!("{}/fail/app", proxy.host());
    let policies = [
        policy("team:a", &image, "^1", DigestMode::IfNotPresent),
        policy("team:b", &image, "^1", DigestMode::Always),
        policy("team:c", &image, "^1", DigestMode::Never),
    ];
    let refs: Vec<&ImagePolicy> = policies.iter().collect();
    // The listing passes; the HEAD and the GET fallback both get a 500 on every attempt.
    let fault = Fault::Status {
        code: 500,
        retry_after: None,
    };
    proxy.push_faults([Fault::Pass, fault, fault, fault, fault]);
    let set = select_images(
        &refs,
        &client(&proxy.host(), 8, 2),
        &tagsmith::engine::Known::new(),
    )
    .await;

    for id in ["team:a", "team:b"] {
        let report = set.reports.iter().find(|r| r.policy == id).unwrap();
        assert!(report.failed && report.transient, "{report:?}");
        let error = report.error.as_deref().unwrap();
        assert!(error.starts_with("digest of 1.1.0: "), "{error}");
        assert!(!set.selections.contains_key(&id.parse().unwrap()));
    }
    let c = set.reports.iter().find(|r| r.policy == "team:c").unwrap();
    assert!(!c.failed, "{c:?}");
    assert_eq!(
        set.selections[&"team:c".parse().unwrap()].to_string(),
        format!("{image}:1.1.0")
    );
    assert_eq!(
        requests(&proxy, "HEAD", "/manifests/1.1.0"),
        2,
        "{:?}",
        proxy.log()
    );
}

/// `digest: IfNotPresent` keeps the digest of a selection that stays on the same tag of the
/// same image and looks up only otherwise; `Always` looks up every time. The cases of
/// image-reflector-controller's `updateImageRefs` (internal/controller/imagepolicy_controller.go:
/// fetch when there is no latest ref, its name or tag differs, or its digest is empty).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_not_present_keeps_the_digest_of_the_same_tag_and_always_looks_again() {
    use tagsmith::engine::Known;
    use tagsmith::model::ImageRef;

    let registry = Registry::start(Auth::None);
    let tags = vec!["1.0.0".to_string(), "1.1.0".to_string()];
    let digest = registry.pusher().push_tags("keep/app", &tags).await;
    let proxy = Proxy::start(&registry.host, Paging::PassThrough).await;
    let image = format!("{}/keep/app", proxy.host());
    let keep = policy("team:keep", &image, "^1", DigestMode::IfNotPresent);
    let always = policy("team:always", &image, "^1", DigestMode::Always);
    let refs = [&keep, &always];
    let client = client(&proxy.host(), 8, 3);
    let lookups = |proxy: &Proxy| {
        proxy
            .log()
            .iter()
            .filter(|l| l.uri.contains("/manifests/"))
            .count()
    };

    let first = select_images(&refs, &client, &Known::new()).await;
    assert!(!first.has_failures(), "{:?}", first.reports);
    assert_eq!(lookups(&proxy), 1, "one lookup for the tag both selected");
    let selected = format!("{image}:1.1.0@{digest}");
    assert_eq!(first.selections[&keep.id].to_string(), selected);

    // The same tag again: IfNotPresent keeps what it has, even a digest the registry would
    // no longer answer (the tag was pushed again); Always asks.
    let stale = "sha256:".to_string() + &"0".repeat(64);
    let kept: ImageRef = format!("{image}:1.1.0@{stale}").parse().unwrap();
    let known = Known::from([
        (keep.id.clone(), kept.clone()),
        (always.id.clone(), kept.clone()),
    ]);
    let before = lookups(&proxy);
    let second = select_images(&refs, &client, &known).await;
    assert_eq!(lookups(&proxy) - before, 1, "only Always looked up");
    assert_eq!(second.selections[&keep.id], kept);
    assert_eq!(second.selections[&always.id].to_string(), selected);

    // Another tag, another image or no digest recorded: looked up.
    for last in [
        format!("{image}:1.0.0@{stale}"),
        format!("{}/keep/other:1.1.0@{stale}", proxy.host()),
        format!("{image}:1.1.0"),
    ] {
        let known = Known::from([(keep.id.clone(), last.parse::<ImageRef>().unwrap())]);
        let before = lookups(&proxy);
        let set = select_images(&[&keep], &client, &known).await;
        assert_eq!(lookups(&proxy) - before, 1, "looked up after {last}");
        assert_eq!(
            set.selections[&keep.id].to_string(),
            selected,
            "after {last}"
        );
    }
}
