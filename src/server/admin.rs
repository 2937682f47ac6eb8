//! The operator's side of `tagsmith run`, on its own address (`server.metrics`) so it is not
//! exposed with the webhooks: `/metrics` (Prometheus text) and `/status` (JSON).

use std::future::Future;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::{mpsc, watch};

use super::{ScanRequest, ServerError};
use crate::metrics::metrics;

#[derive(Debug, Clone)]
struct Admin {
    /// The latest `/status` document, published by the service.
    status: watch::Receiver<String>,
    /// The webhook queue, to report its depth at scrape time.
    queue: mpsc::Sender<ScanRequest>,
}

/// `/metrics` and `/status` over `status` (JSON text) and the webhook `queue`.
pub fn router(status: watch::Receiver<String>, queue: mpsc::Sender<ScanRequest>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/status", get(status_json))
        .with_state(Admin { status, queue })
}

/// Serves the admin router on `listener` until `shutdown` resolves.
pub async fn serve(
    router: Router,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /metrics and /status");
    }
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ServerError::Serve)
}

async fn metrics_text(State(admin): State<Admin>) -> impl IntoResponse {
    let depth = admin.queue.max_capacity() - admin.queue.capacity();
    metrics()
        .queue_depth
        .set(i64::try_from(depth).unwrap_or(i64::MAX));
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics().encode(),
    )
}

async fn status_json(State(admin): State<Admin>) -> impl IntoResponse {
    let body = admin.status.borrow().clone();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
}
