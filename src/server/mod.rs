//! The HTTP side of `tagsmith run`: webhook receivers, `/healthz` and `/readyz`; `/metrics`
//! and `/status` on a second address (`admin`).
//!
//! The server decides nothing. A valid webhook naming a watched image becomes a [`ScanRequest`]
//! on the bounded queue the server is given, and the answer (202) goes out at once; one naming
//! only images no policy watches is answered 200 `ignored`, so the sender sees it had no effect; the scheduler on the other end
//! rescans, coalesces and delivers. When the queue stays full for [`Options::enqueue_wait`] the
//! sender gets 503 with `Retry-After`, so vendors that retry do, and nothing is lost silently.
//!
//! Connections are capped and timed out ([`connections`]); past the cap only the probes are
//! answered, so a flood of idle connections cannot make `/healthz` fail.

pub mod admin;
pub mod connections;
mod dashboard;
mod health;
pub mod webhooks;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt as _;
use thiserror::Error;
use tokio::sync::mpsc;

pub use self::connections::Limits;
pub use self::health::Readiness;
use self::webhooks::{ArmedReceiver, Event, Proof, Receiver, WebhookError};
use crate::model::{ImageName, Tag};

/// Largest webhook body accepted; vendors send a few KiB.
pub const BODY_LIMIT: usize = 3 * 1024 * 1024;
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9292";

#[derive(Debug, Error)]
pub enum ServerError {
    #[error(transparent)]
    Receiver(#[from] WebhookError),
    #[error("receiver {name} is defined twice")]
    DuplicateReceiver { name: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// `server:` in `tagsmith.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// Webhooks, `/healthz`, `/readyz`.
    pub listen: SocketAddr,
    /// Where `/metrics` is served, apart from webhooks; `None` serves none.
    pub metrics: Option<SocketAddr>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 9292)),
            metrics: None,
        }
    }
}

/// What a webhook asks of the scheduler: rescan these images. It never carries a version: the
/// scan and the image policy decide that. Names are as the vendor spelled them; compare them to
/// configured images with [`ImageName::canonical`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanRequest {
    /// The receiver's configured name.
    pub receiver: String,
    pub images: Vec<ImageName>,
    /// Tags the payload says were pushed (only some vendors name them): the service rescans
    /// an image whose tag list does not show its tag yet.
    pub tags: Vec<(ImageName, Tag)>,
}

/// Limits of the webhook endpoint.
#[derive(Debug, Clone)]
pub struct Options {
    pub body_limit: usize,
    /// How long a request may wait for room on a full queue before it gets 503.
    pub enqueue_wait: Duration,
    /// How long a sender may take to deliver its body (slow senders hold a connection).
    pub read_timeout: Duration,
    /// Seconds sent in `Retry-After` with a 503.
    pub retry_after: u32,
    /// Connection cap and timeouts; `drain` is how long shutdown waits for requests in flight.
    pub connections: Limits,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            body_limit: BODY_LIMIT,
            enqueue_wait: Duration::from_millis(250),
            read_timeout: Duration::from_secs(10),
            retry_after: 5,
            connections: Limits::default(),
        }
    }
}

/// How a webhook request ended; for metrics by receiver and result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// 202: images queued for a rescan.
    Queued,
    /// 200: valid, nothing to rescan.
    Ignored,
    /// 401.
    Unauthorized,
    /// 400.
    Malformed,
    /// 404: no such receiver (or a token where the receiver takes none).
    NotFound,
    /// 413.
    TooLarge,
    /// 408.
    Timeout,
    /// 503: the queue stayed full or is closed.
    Busy,
    /// 503: the connection came past the connection cap, where only probes are answered.
    Overloaded,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Ignored => "ignored",
            Self::Unauthorized => "unauthorized",
            Self::Malformed => "malformed",
            Self::NotFound => "not_found",
            Self::TooLarge => "too_large",
            Self::Timeout => "timeout",
            Self::Busy => "busy",
            Self::Overloaded => "overloaded",
        }
    }

    fn of(status: StatusCode) -> Self {
        match status.as_u16() {
            202 => Self::Queued,
            200 => Self::Ignored,
            401 => Self::Unauthorized,
            404 => Self::NotFound,
            408 => Self::Timeout,
            413 => Self::TooLarge,
            503 => Self::Busy,
            _ => Self::Malformed,
        }
    }
}

/// Called once per webhook request with the receiver's configured name (`"unknown"` for names
/// no receiver has: those come from senders, and a metric label must stay low-cardinality).
#[derive(Clone)]
pub struct Observer(Arc<ObserveFn>);

type ObserveFn = dyn Fn(&str, Outcome) + Send + Sync;

impl Observer {
    pub fn new(f: impl Fn(&str, Outcome) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observer")
    }
}

/// Binds the listening socket, e.g. `server.listen` from the config.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ServerError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

/// The webhook and health server.
#[derive(Debug, Clone)]
pub struct Server {
    receivers: Arc<HashMap<String, ArmedReceiver>>,
    queue: mpsc::Sender<ScanRequest>,
    readiness: Readiness,
    options: Options,
    observer: Option<Observer>,
    /// Canonical names of the images policies watch; `None` queues every image named.
    watched: Option<Arc<HashSet<String>>>,
}

impl Server {
    /// Reads every receiver's secret now, so a missing one stops startup instead of the first
    /// webhook.
    pub fn new(
        receivers: &[Receiver],
        queue: mpsc::Sender<ScanRequest>,
        readiness: Readiness,
    ) -> Result<Self, ServerError> {
        let armed = receivers
            .iter()
            .map(Receiver::arm)
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_armed(armed, queue, readiness)
    }

    pub fn from_armed(
        receivers: Vec<ArmedReceiver>,
        queue: mpsc::Sender<ScanRequest>,
        readiness: Readiness,
    ) -> Result<Self, ServerError> {
        let mut map = HashMap::new();
        for r in receivers {
            let name = r.receiver.name.clone();
            if map.insert(name.clone(), r).is_some() {
                return Err(ServerError::DuplicateReceiver { name });
            }
        }
        Ok(Self {
            receivers: Arc::new(map),
            queue,
            readiness,
            options: Options::default(),
            observer: None,
            watched: None,
        })
    }

    pub fn with_options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// How long shutdown waits for webhook requests in flight (`--shutdown-deadline`).
    pub fn with_shutdown_deadline(mut self, deadline: Duration) -> Self {
        self.options.connections.drain = deadline;
        self
    }

    /// The configured images (`images[].image`): an event naming none of them is answered 200
    /// `ignored` and queues nothing; images of an event that no policy watches are left out.
    pub fn with_watched(mut self, images: impl IntoIterator<Item = ImageName>) -> Self {
        let watched = images.into_iter().map(|i| i.canonical()).collect();
        self.watched = Some(Arc::new(watched));
        self
    }

    /// Splits an event's images into those a policy watches and those none does.
    fn split_watched(&self, images: Vec<ImageName>) -> (Vec<ImageName>, Vec<ImageName>) {
        match &self.watched {
            None => (images, Vec::new()),
            Some(watched) => images
                .into_iter()
                .partition(|i| watched.contains(&i.canonical())),
        }
    }

    pub fn with_observer(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    fn observe(&self, receiver: &str, status: StatusCode) {
        self.observe_outcome(receiver, Outcome::of(status));
    }

    fn observe_outcome(&self, receiver: &str, outcome: Outcome) {
        if let Some(observer) = &self.observer {
            (observer.0)(receiver, outcome);
        }
    }

    fn health(&self) -> Router {
        Router::new()
            .route("/healthz", get(health::healthz))
            .route("/readyz", get(health::readyz))
            .with_state(self.readiness.clone())
    }

    /// Webhooks and probes.
    pub fn router(self) -> Router {
        let hooks = Router::new()
            .route("/hook/{receiver}", post(hook))
            .route("/hook/{receiver}/{token}", post(hook_with_token));
        self.health().merge(hooks.with_state(Arc::new(self)))
    }

    /// What connections past the cap get: the probes, and 503 for everything else.
    fn lane_router(self) -> Router {
        self.health().merge(
            Router::new()
                .fallback(overloaded)
                .with_state(Arc::new(self)),
        )
    }

    /// Serves on `listener` until `shutdown` resolves, then closes the connections that are not
    /// serving a request and lets those that are finish, for at most `connections.drain`.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let limits = self.options.connections.clone();
        if let Ok(addr) = listener.local_addr() {
            let max_connections = limits
                .max_connections
                .unwrap_or_else(connections::default_cap);
            tracing::info!(%addr, receivers = self.receivers.len(), max_connections, "serving webhooks");
        }
        let lane = self.clone().lane_router();
        connections::serve(listener, self.router(), lane, limits, shutdown).await;
        Ok(())
    }
}

/// A request on a connection past the cap that is not a probe.
async fn overloaded(State(server): State<Arc<Server>>, uri: Uri) -> Response {
    let receiver = uri
        .path()
        .strip_prefix("/hook/")
        .and_then(|rest| rest.split('/').next())
        .filter(|name| server.receivers.contains_key(*name))
        .unwrap_or("unknown");
    server.observe_outcome(receiver, Outcome::Overloaded);
    let mut response = error(
        StatusCode::SERVICE_UNAVAILABLE,
        "too many open connections, retry later",
    );
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(server.options.retry_after),
    );
    response
}

async fn hook(
    State(server): State<Arc<Server>>,
    Path(receiver): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    server.receive(&receiver, None, &headers, body).await
}

async fn hook_with_token(
    State(server): State<Arc<Server>>,
    Path((receiver, token)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    server
        .receive(&receiver, Some(&token), &headers, body)
        .await
}

/// Why a request was turned away, as the sender sees it.
enum Refusal {
    Status(StatusCode, String),
    Busy(String),
}

impl Server {
    async fn receive(
        &self,
        name: &str,
        token: Option<&str>,
        headers: &HeaderMap,
        body: Body,
    ) -> Response {
        let Some(receiver) = self.receivers.get(name) else {
            // The name is not logged: a sender that left out the name put its token there.
            tracing::debug!("webhook for an unknown receiver");
            self.observe("unknown", StatusCode::NOT_FOUND);
            return error(StatusCode::NOT_FOUND, "unknown receiver");
        };
        let kind = receiver.receiver.kind;
        let outcome = self.accept(receiver, token, headers, body).await;
        let (status, result) = match &outcome {
            Ok(response) => (response.status(), "accepted"),
            Err(Refusal::Status(status, _)) => (*status, "refused"),
            Err(Refusal::Busy(_)) => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
        };
        tracing::debug!(receiver = name, %kind, status = status.as_u16(), result, "webhook");
        self.observe(name, status);
        match outcome {
            Ok(response) => response,
            Err(Refusal::Status(status, reason)) => {
                if status != StatusCode::UNAUTHORIZED {
                    tracing::info!(receiver = name, %kind, status = status.as_u16(), %reason, "webhook refused");
                } else {
                    tracing::warn!(receiver = name, %kind, %reason, "webhook failed authentication");
                }
                error(status, &reason)
            }
            Err(Refusal::Busy(reason)) => {
                tracing::warn!(receiver = name, %reason, "webhook turned away");
                let mut response = error(StatusCode::SERVICE_UNAVAILABLE, &reason);
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(self.options.retry_after),
                );
                response
            }
        }
    }

    async fn accept(
        &self,
        receiver: &ArmedReceiver,
        token: Option<&str>,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Response, Refusal> {
        let unauthorized =
            |e: WebhookError| Refusal::Status(StatusCode::UNAUTHORIZED, e.to_string());
        let token_proof = matches!(
            receiver.receiver.kind.proof(),
            Proof::PathToken | Proof::Bearer
        );
        // Tokens are checked before the body is read: strangers do not get to upload 3 MiB.
        if token_proof {
            receiver.verify(token, headers, &[]).map_err(unauthorized)?;
        } else if token.is_some() {
            return Err(Refusal::Status(
                StatusCode::NOT_FOUND,
                "this receiver takes no token in its path".into(),
            ));
        }
        let body = self.read_body(headers, body).await?;
        if !token_proof {
            receiver
                .verify(None, headers, &body)
                .map_err(unauthorized)?;
        }
        let event = receiver
            .parse(headers, &body)
            .map_err(|e| Refusal::Status(StatusCode::BAD_REQUEST, e.to_string()))?;
        let images = match event {
            Event::Ignored(reason) => {
                return Ok(reply(
                    StatusCode::OK,
                    serde_json::json!({ "result": "ignored", "ignored": reason }),
                ));
            }
            Event::Scan(images) => images,
        };
        let (images, unwatched) = self.split_watched(images);
        let unwatched: Vec<String> = unwatched.iter().map(ToString::to_string).collect();
        if images.is_empty() {
            let reason = format!("no policy watches {}", unwatched.join(", "));
            tracing::info!(receiver = %receiver.receiver.name, images = %unwatched.join(", "), "webhook names no watched image: ignored");
            return Ok(reply(
                StatusCode::OK,
                serde_json::json!({ "result": "ignored", "ignored": reason, "unwatched": unwatched }),
            ));
        }
        let names: Vec<String> = images.iter().map(ToString::to_string).collect();
        let tags = receiver
            .announced(&body)
            .into_iter()
            .filter(|(image, _)| images.iter().any(|i| i.canonical() == image.canonical()))
            .collect();
        let request = ScanRequest {
            receiver: receiver.receiver.name.clone(),
            images,
            tags,
        };
        match self
            .queue
            .send_timeout(request, self.options.enqueue_wait)
            .await
        {
            Ok(()) => {
                let mut body = serde_json::json!({ "result": "queued", "queued": names });
                if !unwatched.is_empty() {
                    body["unwatched"] = serde_json::json!(unwatched);
                }
                Ok(reply(StatusCode::ACCEPTED, body))
            }
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                Err(Refusal::Busy("scan queue is full, retry later".into()))
            }
            Err(mpsc::error::SendTimeoutError::Closed(_)) => {
                Err(Refusal::Busy("shutting down".into()))
            }
        }
    }

    /// Reads at most `body_limit` bytes within `read_timeout`.
    async fn read_body(&self, headers: &HeaderMap, body: Body) -> Result<Vec<u8>, Refusal> {
        let limit = self.options.body_limit;
        let too_large = || {
            Refusal::Status(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body larger than {limit} bytes"),
            )
        };
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let read = async {
            let mut stream = body.into_data_stream();
            let mut bytes = Vec::with_capacity(declared.unwrap_or(0).min(limit as u64) as usize);
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| {
                    Refusal::Status(StatusCode::BAD_REQUEST, format!("cannot read body: {e}"))
                })?;
                if bytes.len() + chunk.len() > limit {
                    return Err(too_large());
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(bytes)
        };
        tokio::time::timeout(self.options.read_timeout, read)
            .await
            .unwrap_or_else(|_| {
                Err(Refusal::Status(
                    StatusCode::REQUEST_TIMEOUT,
                    "body not received in time".into(),
                ))
            })
    }
}

fn reply(status: StatusCode, value: serde_json::Value) -> Response {
    let mut body = value.to_string();
    body.push('\n');
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn error(status: StatusCode, reason: &str) -> Response {
    reply(status, serde_json::json!({ "error": reason }))
}
