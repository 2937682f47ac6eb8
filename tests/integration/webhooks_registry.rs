//! End to end: the real `docker-registry` sends its notifications to tagsmith's webhook server;
//! a manifest push through the registry API arrives on the scan queue naming the image, while
//! blob pushes and pulls do not.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::support::{Auth, OCI_MANIFEST, Registry};
use tagsmith::secret::Secret;
use tagsmith::server::webhooks::{ArmedReceiver, Receiver, ReceiverKind, SecretKey};
use tagsmith::server::{Readiness, ScanRequest, Server};
use tokio::sync::mpsc;

const SECRET: &str = "registry-hook-2b9c";

fn receiver(name: &str) -> ArmedReceiver {
    ArmedReceiver::new(
        Receiver {
            name: name.into(),
            kind: ReceiverKind::Distribution,
            secret: Secret::Env("UNUSED".into()),
            registry: None,
        },
        SecretKey::new(SECRET),
    )
}

async fn next(queue: &mut mpsc::Receiver<ScanRequest>, within: Duration) -> Option<ScanRequest> {
    tokio::time::timeout(within, queue.recv())
        .await
        .ok()
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_notifications_queue_a_rescan_of_the_pushed_image() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}", listener.local_addr().unwrap());
    let (tx, mut queue) = mpsc::channel(64);
    let server = Server::from_armed(
        vec![receiver("registry"), receiver("registry-bearer")],
        tx,
        Readiness::new(),
    )
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(listener, async {
        let _ = stopped.await;
    }));

    // Two endpoints: the secret in the URL, and the secret as a bearer header.
    let notifications = format!(
        "notifications:\n  endpoints:\n\
         \x20   - name: tagsmith-path\n      url: {hook}/hook/registry/{SECRET}\n      timeout: 2s\n      threshold: 3\n      backoff: 200ms\n\
         \x20   - name: tagsmith-bearer\n      url: {hook}/hook/registry-bearer\n      headers:\n        Authorization: [Bearer {SECRET}]\n      timeout: 2s\n      threshold: 3\n      backoff: 200ms\n"
    );
    let registry = Registry::start_configured(Auth::None, None, &notifications);
    let pusher = registry.pusher();
    let digest = pusher.push_tags("demo/app", &["1.0.0".to_string()]).await;
    let want = format!("{}/demo/app", registry.host);

    let mut seen = Vec::new();
    for _ in 0..2 {
        let request = next(&mut queue, Duration::from_secs(20))
            .await
            .unwrap_or_else(|| {
                let log = std::fs::read_to_string(registry.dir.path().join("registry.log"))
                    .unwrap_or_default();
                panic!("no scan request within 20s; received {seen:?}; registry log:\n{log}")
            });
        assert_eq!(request.images.len(), 1, "{request:?}");
        assert_eq!(request.images[0].to_string(), want);
        seen.push(request.receiver);
    }
    seen.sort();
    assert_eq!(seen, ["registry", "registry-bearer"]);

    // A pull (and the blob pushes before) are delivered too, and ignored.
    let pulled = reqwest::Client::new()
        .get(format!(
            "{}/v2/demo/app/manifests/1.0.0",
            registry.base_url()
        ))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(pulled.status().as_u16(), 200);
    assert_eq!(pulled.headers()["docker-content-digest"], digest.as_str());
    let extra = next(&mut queue, Duration::from_secs(2)).await;
    assert!(extra.is_none(), "a pull queued a rescan: {extra:?}");

    // A second manifest push under a new tag is news again.
    pusher.push_tags("demo/app", &["1.1.0".to_string()]).await;
    let again = next(&mut queue, Duration::from_secs(20)).await.unwrap();
    assert_eq!(again.images[0].to_string(), want);

    let _ = stop.send(());
    serving.await.unwrap().unwrap();
}
