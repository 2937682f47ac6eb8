//! The operator's side of `tagsmith run`, on its own address (`server.metrics`) so it is not
//! exposed with the webhooks: `/metrics` (Prometheus text), `/status` (JSON), `POST /scan`
//! (a manual trigger: rescan now, as a webhook would) and `POST /run?target=NAME` (run a target
//! now, whatever its selections) and `POST /release?policy=NS:NAME[&target=NAME][&file=PATH]`
//! (lift the holds a person's rollback put on that policy's markers, then run the targets).

use std::future::Future;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use super::connections::{self, Limits};
use super::{ScanRequest, ServerError};
use crate::metrics::metrics;
use crate::model::ImageName;

#[derive(Debug, Clone)]
struct Admin {
    /// The latest `/status` document, published by the service.
    status: watch::Receiver<String>,
    /// The webhook queue, to report its depth at scrape time and to take manual triggers.
    queue: mpsc::Sender<ScanRequest>,
    /// Every configured image: what `POST /scan` without `image` rescans.
    images: Vec<ImageName>,
    /// Manual runs, by target name, for the scheduler.
    runs: mpsc::Sender<String>,
    targets: Vec<String>,
    releases: Option<Releases>,
}

/// What `POST /release` needs: where the holds are, and which policies exist.
#[derive(Debug, Clone)]
pub struct Releases {
    pub state_dir: std::path::PathBuf,
    /// Every configured policy id.
    pub policies: Vec<String>,
}

/// The admin router's handles on the service.
#[derive(Debug, Clone)]
pub struct Handles {
    /// The latest `/status` document, published by the service.
    pub status: watch::Receiver<String>,
    /// The webhook queue (`POST /scan` puts its requests there).
    pub queue: mpsc::Sender<ScanRequest>,
    /// Every configured image.
    pub images: Vec<ImageName>,
    /// Where `POST /run` sends target names.
    pub runs: mpsc::Sender<String>,
    /// Every configured target.
    pub targets: Vec<String>,
    /// `POST /release` answers 404 without them.
    pub releases: Option<Releases>,
}

/// `/metrics`, `/status` (the JSON text `status` holds), `POST /scan` (onto `queue`, for
/// `images` or the one named) and `POST /run?target=NAME` (onto `runs`).
pub fn router(handles: Handles) -> Router {
    let Handles {
        status,
        queue,
        images,
        runs,
        targets,
        releases,
    } = handles;
    Router::new()
        .route("/", get(dashboard))
        .route("/metrics", get(metrics_text))
        .route("/status", get(status_json))
        .route("/scan", post(scan))
        .route("/run", post(run))
        .route("/release", post(release))
        .with_state(Admin {
            status,
            queue,
            images,
            runs,
            targets,
            releases,
        })
}

/// Connections served on the admin port: scrapers and operators need few, and what it keeps
/// stays out of the webhook port's reserve of file descriptors.
pub const MAX_CONNECTIONS: usize = 32;

/// Serves the admin router on `listener` until `shutdown` resolves, with the webhook port's
/// timeouts and [`MAX_CONNECTIONS`]; connections past it get 503.
pub async fn serve(
    router: Router,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /metrics and /status");
    }
    let limits = Limits {
        max_connections: Some(MAX_CONNECTIONS),
        ..Limits::default()
    };
    let lane = Router::new().fallback(|| async {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many open connections, retry later\n",
        )
    });
    connections::serve(listener, router, lane, limits, shutdown).await;
    Ok(())
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

/// `GET /`: the status as a page (see `dashboard`), from the same document `/status` serves.
async fn dashboard(
    State(admin): State<Admin>,
    Query(query): Query<super::dashboard::PageQuery>,
) -> impl IntoResponse {
    let view: crate::status::StatusView =
        serde_json::from_str(&admin.status.borrow()).unwrap_or_default();
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // The page carries no script from elsewhere and is never framed.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; \
                 form-action 'self'; frame-ancestors 'none'",
            ),
        ],
        super::dashboard::render(&view, &query),
    )
}

#[derive(Debug, Deserialize)]
struct ScanQuery {
    image: Option<String>,
    /// Set by the dashboard's buttons: answer with a redirect back to the page.
    #[serde(default)]
    back: Option<String>,
}

/// `POST /scan` rescans every image now, `POST /scan?image=NAME` one of them; the scheduler
/// treats it as a webhook (202), so selections and runs follow as usual.
async fn scan(
    State(admin): State<Admin>,
    Query(query): Query<ScanQuery>,
) -> axum::response::Response {
    let images = match query.image.as_deref() {
        None => admin.images.clone(),
        Some(name) => match name.parse::<ImageName>() {
            Ok(image)
                if admin
                    .images
                    .iter()
                    .any(|i| i.canonical() == image.canonical()) =>
            {
                vec![image]
            }
            Ok(_) => {
                return (
                    StatusCode::NOT_FOUND,
                    format!("no image {name} is configured\n"),
                )
                    .into_response();
            }
            Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
        },
    };
    let count = images.len();
    let request = ScanRequest {
        receiver: "manual".into(),
        images,
        tags: Vec::new(),
    };
    match admin.queue.try_send(request) {
        Ok(()) if query.back.is_some() => {
            (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response()
        }
        Ok(()) => (
            StatusCode::ACCEPTED,
            format!("rescanning {count} image(s)\n"),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the scan queue is full or closed; try again\n".to_string(),
        )
            .into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct RunQuery {
    target: String,
}

/// `POST /run?target=NAME` runs the target now (202), as soon as it is not running already.
async fn run(State(admin): State<Admin>, Query(query): Query<RunQuery>) -> impl IntoResponse {
    if !admin.targets.contains(&query.target) {
        return (
            StatusCode::NOT_FOUND,
            format!("no target {} is configured\n", query.target),
        );
    }
    match admin.runs.try_send(query.target.clone()) {
        Ok(()) => (
            StatusCode::ACCEPTED,
            format!("running target {}\n", query.target),
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the run queue is full or closed; try again\n".to_string(),
        ),
    }
}

#[derive(Debug, Deserialize)]
struct ReleaseQuery {
    policy: String,
    target: Option<String>,
    file: Option<String>,
}

/// `POST /release?policy=NS:NAME[&target=NAME][&file=PATH]` lifts the policy's holds (all, or
/// in one target or file) and runs the targets that had one, so the selection is written
/// now. 200 with the released holds as JSON (an empty list when none was held); 404 for a
/// policy or target that is not configured.
async fn release(
    State(admin): State<Admin>,
    Query(query): Query<ReleaseQuery>,
) -> axum::response::Response {
    let Some(releases) = admin.releases.clone() else {
        return (StatusCode::NOT_FOUND, "this service keeps no holds\n").into_response();
    };
    if let Err(e) = query.policy.parse::<crate::model::PolicyId>() {
        return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response();
    }
    if !releases.policies.contains(&query.policy) {
        return (
            StatusCode::NOT_FOUND,
            format!("no policy {} is configured\n", query.policy),
        )
            .into_response();
    }
    if let Some(target) = &query.target
        && !admin.targets.contains(target)
    {
        return (
            StatusCode::NOT_FOUND,
            format!("no target {target} is configured\n"),
        )
            .into_response();
    }
    let targets = admin.targets.clone();
    let done = tokio::task::spawn_blocking(move || {
        crate::state::release_holds(
            &releases.state_dir,
            &targets,
            &query.policy,
            query.target.as_deref(),
            query.file.as_deref(),
        )
    })
    .await;
    let released = match done {
        Ok(Ok(released)) => released,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "release failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response();
        }
        Err(_) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "release failed\n").into_response();
        }
    };
    let mut ran: Vec<&str> = released.iter().map(|(t, _)| t.as_str()).collect();
    ran.dedup();
    for target in ran {
        // A full queue only delays the write to the target's next run.
        let _ = admin.runs.try_send(target.to_string());
    }
    let list: Vec<serde_json::Value> = released
        .iter()
        .map(|(target, hold)| {
            serde_json::json!({
                "target": target,
                "policy": hold.policy(),
                "marker": hold.key.marker,
                "file": hold.key.file,
                "line": hold.key.line,
                "from": hold.from,
                "to": hold.to,
            })
        })
        .collect();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "released": list }).to_string(),
    )
        .into_response()
}
