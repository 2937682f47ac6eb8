//! The webhook server through real sockets on 127.0.0.1: every receiver type with its vendor's
//! payload, proofs of origin, limits, health, a flood, a full queue and shutdown.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use base64::Engine as _;
use tagsmith::model::ImageName;
use tagsmith::server::webhooks::{ArmedReceiver, Receiver, ReceiverKind, SecretKey, sign};
use tagsmith::server::{Observer, Options, Outcome, Readiness, ScanRequest, Server};
use tokio::sync::{mpsc, oneshot};

const SECRET: &str = "hook-secret-7f3a";

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/webhooks/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn armed(name: &str, kind: ReceiverKind, registry: Option<&str>) -> ArmedReceiver {
    ArmedReceiver::new(
        Receiver {
            name: name.into(),
            kind,
            secret: tagsmith::secret::Secret::Env("UNUSED".into()),
            registry: registry.map(str::to_string),
        },
        SecretKey::new(SECRET),
    )
}

fn all_receivers() -> Vec<ArmedReceiver> {
    ReceiverKind::ALL
        .iter()
        .map(|k| armed(k.as_str(), *k, None))
        .collect()
}

/// A server on a free loopback port; stops when `shutdown` is sent or dropped.
struct Running {
    base: String,
    queue: mpsc::Receiver<ScanRequest>,
    readiness: Readiness,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), tagsmith::server::ServerError>>,
}

async fn start(receivers: Vec<ArmedReceiver>, capacity: usize, options: Options) -> Running {
    start_observed(receivers, capacity, options, None).await
}

async fn start_observed(
    receivers: Vec<ArmedReceiver>,
    capacity: usize,
    options: Options,
    observer: Option<Observer>,
) -> Running {
    start_configured(receivers, capacity, |mut server| {
        server = server.with_options(options);
        if let Some(observer) = observer {
            server = server.with_observer(observer);
        }
        server
    })
    .await
}

/// A server as `configure` makes it from one with `receivers` and a queue of `capacity`.
async fn start_configured(
    receivers: Vec<ArmedReceiver>,
    capacity: usize,
    configure: impl FnOnce(Server) -> Server,
) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, queue) = mpsc::channel(capacity);
    let readiness = Readiness::new();
    let server = configure(Server::from_armed(receivers, tx, readiness.clone()).unwrap());
    let (shutdown, signal) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(listener, async {
        let _ = signal.await;
    }));
    Running {
        base,
        queue,
        readiness,
        shutdown: Some(shutdown),
        task,
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn body_json(response: reqwest::Response) -> serde_json::Value {
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn image(s: &str) -> ImageName {
    s.parse().unwrap()
}

/// One delivery as each vendor makes it: payload, URL and proof of origin.
struct Delivery {
    kind: ReceiverKind,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
    path_token: bool,
    want: &'static str,
}

fn deliveries() -> Vec<Delivery> {
    let ghcr = fixture("ghcr-package.json");
    let ghcr_sig = sign(SECRET.as_bytes(), &ghcr);
    let generic = fixture("generic.json");
    let generic_sig = sign(SECRET.as_bytes(), &generic);
    vec![
        Delivery {
            kind: ReceiverKind::Distribution,
            body: fixture("distribution-push.json"),
            headers: vec![(
                "content-type",
                "application/vnd.docker.distribution.events.v2+json".into(),
            )],
            path_token: true,
            want: "registry.example.com:5000/team-a/app",
        },
        Delivery {
            kind: ReceiverKind::DockerHub,
            body: fixture("dockerhub-push.json"),
            headers: vec![],
            path_token: true,
            want: "docker.io/acme/web",
        },
        Delivery {
            kind: ReceiverKind::Ghcr,
            body: ghcr,
            headers: vec![
                ("x-github-event", "package".into()),
                (
                    "x-github-delivery",
                    "72d3162e-cc78-11e3-81ab-4c9367dc0958".into(),
                ),
                ("x-hub-signature-256", ghcr_sig),
            ],
            path_token: false,
            want: "ghcr.io/acme/api",
        },
        Delivery {
            kind: ReceiverKind::Harbor,
            body: fixture("harbor-push.json"),
            // Harbor's "auth header" setting sends its value verbatim as Authorization.
            headers: vec![("authorization", format!("Bearer {SECRET}"))],
            path_token: false,
            want: "harbor.example.com/library/app",
        },
        Delivery {
            kind: ReceiverKind::Quay,
            body: fixture("quay-push.json"),
            headers: vec![],
            path_token: true,
            want: "quay.io/acme/api",
        },
        Delivery {
            kind: ReceiverKind::Acr,
            body: fixture("acr-push.json"),
            headers: vec![],
            path_token: true,
            want: "acme.azurecr.io/team-a/api",
        },
        Delivery {
            kind: ReceiverKind::Gcr,
            body: fixture("gcr-push.json"),
            headers: vec![],
            path_token: true,
            want: "us-east1-docker.pkg.dev/acme-prod/apps/api",
        },
        Delivery {
            kind: ReceiverKind::Generic,
            body: generic.clone(),
            headers: vec![("authorization", format!("Bearer {SECRET}"))],
            path_token: false,
            want: "ghcr.io/acme/api",
        },
        Delivery {
            kind: ReceiverKind::GenericHmac,
            body: generic,
            headers: vec![("x-signature", generic_sig)],
            path_token: false,
            want: "ghcr.io/acme/api",
        },
    ]
}

async fn deliver(base: &str, d: &Delivery) -> reqwest::Response {
    let url = if d.path_token {
        format!("{base}/hook/{}/{SECRET}", d.kind)
    } else {
        format!("{base}/hook/{}", d.kind)
    };
    let mut request = http().post(url).body(d.body.clone());
    if !d.headers.iter().any(|(k, _)| *k == "content-type") {
        request = request.header("content-type", "application/json");
    }
    for (k, v) in &d.headers {
        request = request.header(*k, v);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn every_receiver_type_queues_the_image_its_vendor_names() {
    let mut server = start(all_receivers(), 16, Options::default()).await;
    let all = deliveries();
    assert_eq!(all.len(), ReceiverKind::ALL.len());
    for d in &all {
        let response = deliver(&server.base, d).await;
        assert_eq!(response.status().as_u16(), 202, "{}", d.kind);
        let json = body_json(response).await;
        assert_eq!(json["queued"][0], d.want, "{}: {json}", d.kind);
        let request = tokio::time::timeout(Duration::from_secs(5), server.queue.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(request.receiver, d.kind.as_str());
        assert_eq!(
            request.images.first().map(ImageName::canonical),
            Some(image(d.want).canonical()),
            "{}",
            d.kind
        );
    }
    // The generic payload names one image twice (once with a tag): it is queued once.
    assert!(server.queue.try_recv().is_err(), "nothing more was queued");
}

#[tokio::test]
async fn bad_proofs_are_401_and_queue_nothing() {
    let mut server = start(all_receivers(), 16, Options::default()).await;
    let base = &server.base;
    let client = http();
    let ghcr = fixture("ghcr-package.json");
    let generic = fixture("generic.json");
    let wrong_sig = sign(b"another secret", &ghcr);
    let cases: Vec<(&str, reqwest::RequestBuilder)> = vec![
        (
            "ghcr signed with another key",
            client
                .post(format!("{base}/hook/ghcr"))
                .header("x-github-event", "package")
                .header("x-hub-signature-256", wrong_sig)
                .body(ghcr.clone()),
        ),
        (
            "ghcr without signature",
            client
                .post(format!("{base}/hook/ghcr"))
                .header("x-github-event", "package")
                .body(ghcr.clone()),
        ),
        (
            "ghcr with a tampered body",
            client
                .post(format!("{base}/hook/ghcr"))
                .header("x-github-event", "package")
                .header("x-hub-signature-256", sign(SECRET.as_bytes(), &ghcr))
                .body([&ghcr[..], b" "].concat()),
        ),
        (
            "generic-hmac signed with the sha256 of the wrong body",
            client
                .post(format!("{base}/hook/generic-hmac"))
                .header("x-signature", sign(SECRET.as_bytes(), b"{}"))
                .body(generic.clone()),
        ),
        (
            "generic with a wrong bearer",
            client
                .post(format!("{base}/hook/generic"))
                .bearer_auth("hook-secret-7f3b")
                .body(generic.clone()),
        ),
        (
            "generic without a bearer",
            client
                .post(format!("{base}/hook/generic"))
                .body(generic.clone()),
        ),
        (
            "dockerhub with a wrong path token",
            client
                .post(format!("{base}/hook/dockerhub/hook-secret-7f3"))
                .body(fixture("dockerhub-push.json")),
        ),
        (
            "dockerhub without a token",
            client
                .post(format!("{base}/hook/dockerhub"))
                .body(fixture("dockerhub-push.json")),
        ),
        (
            "gcr with the token in a query instead of the path",
            client
                .post(format!("{base}/hook/gcr?token={SECRET}"))
                .body(fixture("gcr-push.json")),
        ),
    ];
    for (what, request) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401, "{what}");
        let json = body_json(response).await;
        let reason = json["error"].as_str().unwrap();
        assert!(reason.starts_with("unauthorized"), "{what}: {reason}");
        assert!(
            !reason.contains(SECRET),
            "{what}: the secret leaked: {reason}"
        );
    }
    assert!(
        server.queue.try_recv().is_err(),
        "a refused request was queued"
    );
}

#[tokio::test]
async fn unknown_receivers_and_paths_are_404() {
    let labels = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = labels.clone();
    let observer = Observer::new(move |receiver: &str, outcome: Outcome| {
        seen.lock()
            .unwrap()
            .push(format!("{receiver} {}", outcome.as_str()));
    });
    let mut server = start_observed(all_receivers(), 4, Options::default(), Some(observer)).await;
    let client = http();
    let base = &server.base;
    for url in [
        format!("{base}/hook/nope"),
        format!("{base}/hook/nope/{SECRET}"),
        // Signed receivers take no token: a token there is a wrong URL, not a second proof.
        format!("{base}/hook/ghcr/{SECRET}"),
        format!("{base}/hooks/dockerhub/{SECRET}"),
    ] {
        let response = client.post(&url).body("{}").send().await.unwrap();
        assert_eq!(response.status().as_u16(), 404, "{url}");
    }
    let get = client
        .get(format!("{base}/hook/dockerhub/{SECRET}"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status().as_u16(), 405);
    assert!(server.queue.try_recv().is_err());
    // Names senders made up never become metric labels.
    assert_eq!(
        *labels.lock().unwrap(),
        ["unknown not_found", "unknown not_found", "ghcr not_found"]
    );
}

#[tokio::test]
async fn bodies_over_three_mib_are_413() {
    let mut server = start(all_receivers(), 4, Options::default()).await;
    let base = &server.base;
    let big = vec![b' '; 3 * 1024 * 1024 + 1];
    // With a Content-Length the request is refused before its body is read.
    let response = http()
        .post(format!("{base}/hook/dockerhub/{SECRET}"))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    let response = http()
        .post(format!("{base}/hook/generic-hmac"))
        .header("x-signature", sign(SECRET.as_bytes(), &big))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    // Chunked, no length given: counted while reading.
    let status = chunked_post(base, &format!("/hook/quay/{SECRET}"), 4 * 1024 * 1024).await;
    assert_eq!(status, 413);
    // Exactly the limit is fine (and then malformed, which shows it was read and parsed).
    let mut at_limit = fixture("quay-push.json");
    at_limit.resize(3 * 1024 * 1024, b' ');
    let response = http()
        .post(format!("{base}/hook/quay/{SECRET}"))
        .body(at_limit)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    assert!(server.queue.recv().await.is_some());
}

/// POSTs `size` bytes with `Transfer-Encoding: chunked` over a raw socket; returns the status.
async fn chunked_post(base: &str, path: &str, size: usize) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0;
    while sent < size {
        let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
        // The server may answer and close before everything is sent.
        if stream.write_all(&frame).await.is_err() {
            break;
        }
        sent += chunk.len();
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"))
}

#[tokio::test]
async fn a_body_that_never_arrives_is_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let options = Options {
        read_timeout: Duration::from_millis(300),
        ..Options::default()
    };
    let mut server = start(all_receivers(), 4, options).await;
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // Promises 100 bytes, sends 2, then waits.
    let head = format!(
        "POST /hook/quay/{SECRET} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 100\r\n\r\n{{\""
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut response = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut response))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&response[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(server.queue.try_recv().is_err());
}

#[tokio::test]
async fn malformed_payloads_are_400_with_the_reason() {
    let mut server = start(all_receivers(), 4, Options::default()).await;
    let base = &server.base;
    let client = http();
    type Case<'a> = (String, Vec<(&'a str, String)>, &'a [u8], &'a str);
    let cases: Vec<Case> = vec![
        (
            format!("{base}/hook/distribution/{SECRET}"),
            vec![],
            b"{\"events\": [",
            "invalid JSON",
        ),
        (
            format!("{base}/hook/dockerhub/{SECRET}"),
            vec![],
            br#"{"push_data":{"tag":"1"}}"#,
            "missing field `repository`",
        ),
        (
            format!("{base}/hook/gcr/{SECRET}"),
            vec![],
            br#"{"message":{"data":"not base64!"}}"#,
            "not base64",
        ),
        (
            format!("{base}/hook/harbor/{SECRET}"),
            vec![],
            br#"{"type":"PUSH_ARTIFACT","event_data":{"resources":[{"resource_url":"Harbor/UPPER:1"}]}}"#,
            "invalid image name",
        ),
        (
            format!("{base}/hook/generic"),
            vec![("authorization", format!("Bearer {SECRET}"))],
            br#"{"imagez":["a"]}"#,
            "unknown field `imagez`",
        ),
        (
            format!("{base}/hook/ghcr"),
            vec![("x-hub-signature-256", sign(SECRET.as_bytes(), b"{}"))],
            b"{}",
            "missing X-GitHub-Event header",
        ),
    ];
    for (url, headers, body, reason) in cases {
        let mut request = client.post(&url).body(body.to_vec());
        for (k, v) in headers {
            request = request.header(k, v);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 400, "{url}");
        let json = body_json(response).await;
        let error = json["error"].as_str().unwrap();
        assert!(error.starts_with("malformed payload: "), "{error}");
        assert!(error.contains(reason), "{url}: {error}");
    }
    assert!(server.queue.try_recv().is_err());
}

#[tokio::test]
async fn valid_events_that_name_nothing_new_are_200_and_queue_nothing() {
    let mut server = start(all_receivers(), 4, Options::default()).await;
    let base = &server.base;
    let client = http();
    let pull = String::from_utf8(fixture("distribution-push.json"))
        .unwrap()
        .replace(r#""action": "push""#, r#""action": "pull""#);
    let ping = br#"{"zen":"Design for failure.","hook_id":1}"#.to_vec();
    let data = base64::engine::general_purpose::STANDARD
        .encode(r#"{"action":"DELETE","tag":"gcr.io/acme/api:1"}"#);
    for (url, headers, body) in [
        (
            format!("{base}/hook/distribution/{SECRET}"),
            vec![],
            pull.into_bytes(),
        ),
        (
            format!("{base}/hook/ghcr"),
            vec![
                ("x-github-event", "ping".to_string()),
                ("x-hub-signature-256", sign(SECRET.as_bytes(), &ping)),
            ],
            ping.clone(),
        ),
        (
            format!("{base}/hook/gcr/{SECRET}"),
            vec![],
            format!(r#"{{"message":{{"data":"{data}"}}}}"#).into_bytes(),
        ),
    ] {
        let mut request = client.post(&url).body(body);
        for (k, v) in headers {
            request = request.header(k, v);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{url}");
        let json = body_json(response).await;
        assert!(json["ignored"].is_string(), "{json}");
        assert_eq!(json["result"], "ignored", "{json}");
    }
    assert!(server.queue.try_recv().is_err());
}

#[tokio::test]
async fn events_for_images_no_policy_watches_are_200_ignored_and_queue_nothing() {
    let outcomes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = outcomes.clone();
    let observer = Observer::new(move |receiver: &str, outcome: Outcome| {
        seen.lock()
            .unwrap()
            .push(format!("{receiver} {}", outcome.as_str()));
    });
    // Users write `acme/web`; events name it however their vendor spells it.
    let watched = [image("acme/web"), image("ghcr.io/acme/api")];
    let mut server = start_configured(all_receivers(), 4, |server| {
        server.with_watched(watched).with_observer(observer)
    })
    .await;
    let client = http();
    let generic = |images: &str| {
        client
            .post(format!("{}/hook/generic", server.base))
            .bearer_auth(SECRET)
            .body(format!(r#"{{"images":{images}}}"#))
    };

    let response = generic(r#"["ghcr.io/acme/other:1.0", "quay.io/acme/api"]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let json = body_json(response).await;
    assert_eq!(json["result"], "ignored", "{json}");
    assert_eq!(
        json["unwatched"],
        serde_json::json!(["ghcr.io/acme/other", "quay.io/acme/api"]),
        "{json}"
    );
    let reason = json["ignored"].as_str().unwrap();
    assert!(
        reason.contains("no policy watches ghcr.io/acme/other"),
        "{reason}"
    );
    assert!(json.get("queued").is_none(), "{json}");
    assert!(
        server.queue.try_recv().is_err(),
        "an unwatched image was queued"
    );

    // A watched image is still queued (202), named as Docker Hub names it; the unwatched one
    // in the same event is left out and said so.
    let hub = deliver(&server.base, &deliveries()[1]).await;
    assert_eq!(hub.status().as_u16(), 202);
    assert_eq!(body_json(hub).await["result"], "queued");
    let request = server.queue.recv().await.unwrap();
    assert_eq!(request.images, [image("docker.io/acme/web")]);
    let response = generic(r#"["ghcr.io/acme/api:2", "ghcr.io/acme/other"]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let json = body_json(response).await;
    assert_eq!(
        json["queued"],
        serde_json::json!(["ghcr.io/acme/api"]),
        "{json}"
    );
    assert_eq!(
        json["unwatched"],
        serde_json::json!(["ghcr.io/acme/other"]),
        "{json}"
    );
    let request = server.queue.recv().await.unwrap();
    assert_eq!(request.images, [image("ghcr.io/acme/api")]);
    assert!(server.queue.try_recv().is_err());

    // What `tagsmith_webhook_requests_total` counts, by receiver and result.
    assert_eq!(
        *outcomes.lock().unwrap(),
        ["generic ignored", "dockerhub queued", "generic queued"]
    );
}

#[tokio::test]
async fn healthz_always_readyz_when_ready() {
    let server = start(vec![], 1, Options::default()).await;
    let client = http();
    let get = |path: &str| client.get(format!("{}{path}", server.base)).send();
    assert_eq!(get("/healthz").await.unwrap().status().as_u16(), 200);
    assert_eq!(get("/readyz").await.unwrap().status().as_u16(), 503);
    server.readiness.set(true);
    let ready = get("/readyz").await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    assert_eq!(ready.text().await.unwrap(), "ready\n");
    server.readiness.set(false);
    assert_eq!(get("/readyz").await.unwrap().status().as_u16(), 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_1000_webhooks_reaches_the_queue_and_health_stays_fast() {
    const HOOKS: usize = 1000;
    let receivers = vec![armed("hub", ReceiverKind::DockerHub, None)];
    let outcomes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = outcomes.clone();
    let observer = Observer::new(move |receiver: &str, outcome: Outcome| {
        seen.lock().unwrap().push((receiver.to_string(), outcome));
    });
    let mut server = start_observed(receivers, 64, Options::default(), Some(observer)).await;
    let base = server.base.clone();
    // The scheduler's stand-in: drains and counts, as fast as it can.
    let mut queue = std::mem::replace(&mut server.queue, mpsc::channel(1).1);
    let consumer = tokio::spawn(async move {
        let mut count = 0usize;
        let mut other = 0usize;
        while let Some(request) = queue.recv().await {
            // Users write `acme/web`; the scheduler matches names by their canonical form.
            let names: Vec<String> = request.images.iter().map(ImageName::canonical).collect();
            if names == [image("acme/web").canonical()] && request.receiver == "hub" {
                count += 1;
            } else {
                other += 1;
            }
            if count + other == HOOKS {
                break;
            }
        }
        (count, other)
    });
    // Health probes all through the flood, as a kubelet would.
    let (stop_probe, mut stopped) = oneshot::channel::<()>();
    let probe_base = base.clone();
    let probe = tokio::spawn(async move {
        let client = http();
        let mut worst = Duration::ZERO;
        let mut probes = 0;
        loop {
            let started = Instant::now();
            let status = client
                .get(format!("{probe_base}/healthz"))
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status.as_u16(), 200);
            worst = worst.max(started.elapsed());
            probes += 1;
            tokio::select! {
                _ = &mut stopped => break,
                _ = tokio::time::sleep(Duration::from_millis(10)) => {}
            }
        }
        (probes, worst)
    });
    let body = fixture("dockerhub-push.json");
    let client = http();
    let started = Instant::now();
    let statuses: Vec<u16> = {
        use futures_util::StreamExt as _;
        futures_util::stream::iter(0..HOOKS)
            .map(|_| {
                let request = client
                    .post(format!("{base}/hook/hub/{SECRET}"))
                    .header("content-type", "application/json")
                    .body(body.clone());
                async move { request.send().await.unwrap().status().as_u16() }
            })
            .buffer_unordered(50)
            .collect()
            .await
    };
    let elapsed = started.elapsed();
    let _ = stop_probe.send(());
    let (probes, worst) = probe.await.unwrap();
    let accepted = statuses.iter().filter(|s| **s == 202).count();
    assert_eq!(
        accepted,
        HOOKS,
        "statuses other than 202: {:?}",
        statuses.iter().filter(|s| **s != 202).collect::<Vec<_>>()
    );
    let (count, other) = tokio::time::timeout(Duration::from_secs(10), consumer)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (count, other),
        (HOOKS, 0),
        "every accepted webhook reached the queue"
    );
    // What a metrics observer saw: one outcome per request, labelled by receiver.
    let outcomes = outcomes.lock().unwrap();
    assert_eq!(outcomes.len(), HOOKS);
    assert!(
        outcomes
            .iter()
            .all(|o| *o == ("hub".to_string(), Outcome::Queued))
    );
    assert!(probes >= 2, "health was probed during the flood ({probes})");
    assert!(
        worst < Duration::from_secs(1),
        "/healthz took {worst:?} during the flood"
    );
    eprintln!("{HOOKS} webhooks in {elapsed:?}; {probes} health probes, slowest {worst:?}");
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after() {
    let receivers = vec![armed("hub", ReceiverKind::DockerHub, None)];
    let options = Options {
        enqueue_wait: Duration::from_millis(50),
        retry_after: 7,
        ..Options::default()
    };
    // Nobody drains this queue of two.
    let mut server = start(receivers, 2, options).await;
    let client = http();
    let url = format!("{}/hook/hub/{SECRET}", server.base);
    let body = fixture("dockerhub-push.json");
    for _ in 0..2 {
        let response = client.post(&url).body(body.clone()).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 202);
    }
    let started = Instant::now();
    let response = client.post(&url).body(body.clone()).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(response.headers()["retry-after"], "7");
    assert!(
        body_json(response).await["error"]
            .as_str()
            .unwrap()
            .contains("queue is full")
    );
    // Once the scheduler catches up, the retry goes through.
    assert!(server.queue.recv().await.is_some());
    let response = client.post(&url).body(body).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 202);
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let mut server = start(all_receivers(), 4, Options::default()).await;
    let client = http();
    let health = format!("{}/healthz", server.base);
    assert_eq!(client.get(&health).send().await.unwrap().status(), 200);
    server.shutdown.take().unwrap().send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), &mut server.task)
        .await
        .expect("server stops after the shutdown signal")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
    let fresh = reqwest::Client::new();
    assert!(fresh.get(&health).send().await.is_err(), "still serving");
}

#[test]
fn servers_refuse_duplicate_receivers_and_missing_secrets() {
    let (tx, _rx) = mpsc::channel(1);
    let twice = vec![
        armed("hub", ReceiverKind::DockerHub, None),
        armed("hub", ReceiverKind::Quay, None),
    ];
    let err = Server::from_armed(twice, tx.clone(), Readiness::new()).unwrap_err();
    assert_eq!(err.to_string(), "receiver hub is defined twice");
    let missing = Receiver {
        name: "hub".into(),
        kind: ReceiverKind::DockerHub,
        secret: tagsmith::secret::Secret::Env("TAGSMITH_TEST_HOOK_SECRET_SURELY_UNSET".into()),
        registry: None,
    };
    let err = Server::new(&[missing], tx, Readiness::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot read the secret of receiver hub from env TAGSMITH_TEST_HOOK_SECRET_SURELY_UNSET: not set"
    );
}

// Connections: timeouts, the cap and its lane, shutdown. Raw sockets, as a slow or hostile
// client would hold them.

fn connection_options(limits: tagsmith::server::Limits) -> Options {
    Options {
        connections: limits,
        ..Options::default()
    }
}

/// Waits until the server closes `stream` (EOF or reset); the time it took.
async fn closed_within(stream: &mut tokio::net::TcpStream, limit: Duration) -> Duration {
    use tokio::io::AsyncReadExt;
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut buf)).await {
            Err(_) => panic!("the server kept the connection open for {limit:?}"),
            Ok(Ok(0) | Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
        }
    }
}

/// One request on a fresh connection, as a kubelet probe makes it: the status, or `None` if
/// the connection was refused, closed or not answered within two seconds.
async fn raw_get(addr: &str, path: &str) -> Option<u16> {
    raw_request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n"),
    )
    .await
}

async fn raw_request(addr: &str, request: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = vec![0u8; 1024];
        let n = stream.read(&mut response).await.ok()?;
        let text = String::from_utf8_lossy(&response[..n]).to_string();
        text.split_whitespace().nth(1)?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .ok()
        .flatten()
}

async fn connect_many(addr: &str, n: usize) -> Vec<tokio::net::TcpStream> {
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        streams.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    streams
}

/// Sends a request head one byte every 100 ms and never finishes it.
fn trickle(mut stream: tokio::net::TcpStream) -> tokio::task::JoinHandle<()> {
    use tokio::io::AsyncWriteExt;
    tokio::spawn(async move {
        let head = format!(
            "POST /hook/generic HTTP/1.1\r\nHost: x\r\nX-Slow: {}",
            "a".repeat(600)
        );
        for byte in head.bytes() {
            if stream.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let limits = tagsmith::server::Limits {
        idle_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let server = start(all_receivers(), 4, connection_options(limits)).await;
    let addr = server.base.trim_start_matches("http://");
    // Never a byte sent.
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let took = closed_within(&mut silent, Duration::from_secs(10)).await;
    assert!(took >= Duration::from_millis(250), "{took:?}");
    // Kept alive after a request: the idle time counts from the response.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut kept = tokio::net::TcpStream::connect(addr).await.unwrap();
    kept.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = vec![0u8; 512];
    let n = kept.read(&mut response).await.unwrap();
    assert!(response[..n].starts_with(b"HTTP/1.1 200"));
    closed_within(&mut kept, Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_trickled_request_head_is_closed_after_the_header_timeout() {
    let limits = tagsmith::server::Limits {
        header_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_secs(60),
        ..Default::default()
    };
    let server = start(all_receivers(), 4, connection_options(limits)).await;
    let addr = server.base.trim_start_matches("http://");
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let watch = stream.into_std().unwrap();
    watch.set_nonblocking(true).unwrap();
    let mut reader = tokio::net::TcpStream::from_std(watch.try_clone().unwrap()).unwrap();
    let writer = trickle(tokio::net::TcpStream::from_std(watch).unwrap());
    // Closed long before the idle timeout and before the 60 s the head would take.
    let took = closed_within(&mut reader, Duration::from_secs(10)).await;
    assert!(took >= Duration::from_millis(450), "{took:?}");
    writer.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_cap_probes_answer_and_webhooks_get_503() {
    let outcomes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = outcomes.clone();
    let observer = Observer::new(move |receiver: &str, outcome: Outcome| {
        seen.lock().unwrap().push((receiver.to_string(), outcome));
    });
    let limits = tagsmith::server::Limits {
        max_connections: Some(4),
        ..Default::default()
    };
    let mut server = start_observed(
        all_receivers(),
        4,
        connection_options(limits),
        Some(observer),
    )
    .await;
    server.readiness.set(true);
    let addr = server.base.trim_start_matches("http://").to_string();
    let body = r#"{"images":["acme/web"]}"#;
    let hook = format!(
        "POST /hook/generic HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {SECRET}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(raw_request(&addr, &hook).await, Some(202));
    assert!(server.queue.try_recv().is_ok());

    // The cap's connections, held idle; then more than the lane holds.
    let held = connect_many(&addr, 4).await;
    let lane = connect_many(&addr, 3 * tagsmith::server::connections::LANE).await;
    assert_eq!(raw_get(&addr, "/healthz").await, Some(200));
    assert_eq!(raw_get(&addr, "/readyz").await, Some(200));
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut refused = tokio::net::TcpStream::connect(&addr).await.unwrap();
    refused.write_all(hook.as_bytes()).await.unwrap();
    let mut response = vec![0u8; 1024];
    let n = refused.read(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response[..n]);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.to_lowercase().contains("retry-after: 5"), "{text}");
    assert!(text.contains("too many open connections"), "{text}");
    assert!(server.queue.try_recv().is_err());
    assert!(
        outcomes
            .lock()
            .unwrap()
            .contains(&("generic".to_string(), Outcome::Overloaded))
    );
    drop(lane);

    // Once the held connections close, webhooks go through again.
    drop(held);
    let started = Instant::now();
    while raw_request(&addr, &hook).await != Some(202) {
        assert!(started.elapsed() < Duration::from_secs(10), "still refused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(server.queue.try_recv().is_ok());
}

#[tokio::test]
async fn shutdown_closes_a_trickling_connection_at_once_and_bounds_requests_in_flight() {
    use tokio::io::AsyncWriteExt;
    let limits = tagsmith::server::Limits {
        drain: Duration::from_millis(500),
        ..Default::default()
    };
    let options = Options {
        read_timeout: Duration::from_secs(60),
        ..connection_options(limits)
    };
    let mut server = start(all_receivers(), 4, options).await;
    let addr = server.base.trim_start_matches("http://").to_string();
    let trickler = trickle(tokio::net::TcpStream::connect(&addr).await.unwrap());
    // A request in flight whose body never comes (it would be read for 60 s).
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(
        format!(
            "POST /hook/quay/{SECRET} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 100\r\n\r\n{{"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    // Both are in: a probe after them is answered (connections are served in order).
    assert_eq!(raw_get(&addr, "/healthz").await, Some(200));
    let started = Instant::now();
    server.shutdown.take().unwrap().send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), &mut server.task)
        .await
        .expect("the server stops within its drain time")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
    // Well under the 10 s header timeout and the 60 s body timeout.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    closed_within(&mut slow, Duration::from_secs(5)).await;
    trickler.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_port_answers_503_past_its_own_connection_cap() {
    use tagsmith::server::admin;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (_status, view) = tokio::sync::watch::channel(String::from("{\"ok\":true}"));
    let (queue, _requests) = mpsc::channel(1);
    let (runs, _run_requests) = mpsc::channel(1);
    let router = admin::router(admin::Handles {
        status: view,
        queue,
        images: vec![image("acme/web")],
        runs,
        targets: vec!["prod".into()],
        releases: None,
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(admin::serve(router, listener, async {
        let _ = stopped.await;
    }));
    assert_eq!(raw_get(&addr, "/status").await, Some(200));
    let held = connect_many(&addr, admin::MAX_CONNECTIONS).await;
    assert_eq!(raw_get(&addr, "/status").await, Some(503));
    drop(held);
    let started = Instant::now();
    while raw_get(&addr, "/status").await != Some(200) {
        assert!(started.elapsed() < Duration::from_secs(10), "still refused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
