//! Webhook secrets travel in URLs and headers; none of them may reach the logs. The test runs
//! in a process of its own, because it installs a process-wide log subscriber.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use tagsmith::secret::Secret;
use tagsmith::server::webhooks::{ArmedReceiver, Receiver, ReceiverKind, SecretKey, sign};
use tagsmith::server::{Readiness, Server};
use tokio::sync::mpsc;

const SECRET: &str = "never-log-me-5d1e";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn receiver(name: &str, kind: ReceiverKind) -> ArmedReceiver {
    ArmedReceiver::new(
        Receiver {
            name: name.into(),
            kind,
            secret: Secret::Env("UNUSED".into()),
            registry: None,
        },
        SecretKey::new(SECRET),
    )
}

#[tokio::test]
async fn no_secret_or_token_is_logged_at_trace_level() {
    if !crate::support::in_own_process("webhooks_logs::no_secret_or_token_is_logged_at_trace_level")
    {
        return;
    }
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, mut queue) = mpsc::channel(16);
    let server = Server::from_armed(
        vec![
            receiver("hub", ReceiverKind::DockerHub),
            receiver("ci", ReceiverKind::Generic),
            receiver("signed", ReceiverKind::GenericHmac),
        ],
        tx,
        Readiness::new(),
    )
    .unwrap();
    tokio::spawn(server.serve(listener, std::future::pending()));
    let client = reqwest::Client::new();
    let body = br#"{"images":["ghcr.io/acme/api"]}"#.to_vec();
    let hub = br#"{"repository":{"repo_name":"acme/web"}}"#.to_vec();
    let near_miss = format!("{SECRET}x");
    let requests = [
        (
            client
                .post(format!("{base}/hook/hub/{SECRET}"))
                .body(hub.clone()),
            202,
        ),
        (
            client
                .post(format!("{base}/hook/hub/{near_miss}"))
                .body(hub.clone()),
            401,
        ),
        (
            client.post(format!("{base}/hook/hub/{SECRET}")).body("{"),
            400,
        ),
        (
            client
                .post(format!("{base}/hook/ci"))
                .bearer_auth(SECRET)
                .body(body.clone()),
            202,
        ),
        (
            client
                .post(format!("{base}/hook/ci"))
                .bearer_auth(&near_miss)
                .body(body.clone()),
            401,
        ),
        (
            client
                .post(format!("{base}/hook/signed"))
                .header("x-signature", sign(SECRET.as_bytes(), &body))
                .body(body.clone()),
            202,
        ),
        (
            client
                .post(format!("{base}/hook/nobody/{SECRET}"))
                .body("{}"),
            404,
        ),
        // A sender that forgot the receiver's name puts its token where the name goes.
        (client.post(format!("{base}/hook/{SECRET}")).body("{}"), 404),
    ];
    for (request, want) in requests {
        assert_eq!(request.send().await.unwrap().status().as_u16(), want);
    }
    for _ in 0..3 {
        assert!(queue.recv().await.is_some());
    }
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("receiver=\"hub\"") || logs.contains("receiver=hub"),
        "webhooks were logged at all:\n{logs}"
    );
    assert!(logs.contains("failed authentication"), "{logs}");
    assert!(!logs.contains(SECRET), "a secret reached the logs:\n{logs}");
    assert!(
        !logs.contains("never-log-me"),
        "part of a secret reached the logs:\n{logs}"
    );
}
