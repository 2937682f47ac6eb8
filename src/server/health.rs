//! `/healthz` answers while the process serves at all and none of its essential tasks ended;
//! `/readyz` only once the service said it is ready (config loaded, state open), so Kubernetes
//! sends no traffic before that.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

/// A flag the service raises when it can do work, and one it raises when part of it died;
/// clones share them.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>, Arc<AtomicBool>);

impl Readiness {
    /// Starts not ready.
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire) && !self.is_broken()
    }

    /// An essential task ended: neither ready nor healthy again.
    pub fn set_broken(&self) {
        self.1.store(true, Ordering::Release);
    }

    pub fn is_broken(&self) -> bool {
        self.1.load(Ordering::Acquire)
    }
}

pub(super) async fn healthz(State(readiness): State<Readiness>) -> impl IntoResponse {
    if readiness.is_broken() {
        (StatusCode::SERVICE_UNAVAILABLE, "broken\n")
    } else {
        (StatusCode::OK, "ok\n")
    }
}

pub(super) async fn readyz(State(readiness): State<Readiness>) -> impl IntoResponse {
    if readiness.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}
