//! The accept loop and the life of each connection: a cap on connections, a timeout for a
//! request head and one for a connection with no request in progress, and a shutdown that
//! closes every connection not serving a request at once.
//!
//! Why not `axum::serve`: it keeps a connection open for as long as the client keeps it,
//! accepts until the process runs out of file descriptors (then `/healthz` cannot be accepted
//! either), and its graceful shutdown waits for a client that trickles a request head.
//!
//! Past the cap, connections are still accepted, into a small *lane*: one request each, with
//! short timeouts, where only the router given for it answers (`/healthz` and `/readyz` for
//! the webhook port; 503 otherwise). When the lane is full its oldest connection is closed to
//! make room, so a probe always gets in. The cap is set below the open-files limit so the lane,
//! the admin port and the rest of the process (registries, Git, the state store) keep
//! descriptors to work with.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Connections in the lane past the cap.
pub const LANE: usize = 32;
/// A lane connection serves one request that should come at once (a probe).
const LANE_TIMEOUT: Duration = Duration::from_secs(2);
/// Connections served when the open-files limit cannot be read.
const FALLBACK_CAP: usize = 512;
/// No webhook endpoint needs more; beyond it memory, not descriptors, would be the limit.
const MAX_CAP: usize = 4096;
/// How often the same warning (cap reached, accept failing) is logged at most.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// How one listener treats its connections.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served in full; `None`: from the open-files limit (see [`default_cap`]).
    pub max_connections: Option<usize>,
    /// A request head must be complete this long after its first byte.
    pub header_timeout: Duration,
    /// A connection with no request in progress (before its first, between two) is closed after this.
    pub idle_timeout: Duration,
    /// On shutdown, requests in flight get this long before their connections are dropped.
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: None,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            drain: Duration::from_secs(30),
        }
    }
}

/// The cap for a soft open-files limit of `limit`: a quarter (at least 128) is kept for the
/// lane, the admin port and everything else the process opens. 1,024 gives 768.
pub fn cap_for(limit: u64) -> usize {
    let reserve = (limit / 4).max(128);
    let cap = limit.saturating_sub(reserve);
    usize::try_from(cap).unwrap_or(MAX_CAP).clamp(16, MAX_CAP)
}

/// The cap from this process's soft open-files limit (`ulimit -n`), read from
/// `/proc/self/limits`; 512 where that cannot be read.
pub fn default_cap() -> usize {
    open_files_limit().map_or(FALLBACK_CAP, cap_for)
}

fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    match line["Max open files".len()..].split_whitespace().next()? {
        "unlimited" => Some(u64::MAX),
        soft => soft.parse().ok(),
    }
}

/// Serves `full` on up to the cap's connections and `lane` past it, until `shutdown`; then
/// closes what is not serving a request and waits up to `limits.drain` for the rest.
pub async fn serve(
    listener: TcpListener,
    full: Router,
    lane: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (stop, stopped) = watch::channel(false);
    let mut admit = Admission::new(full, lane, &limits, stopped);
    let mut tasks = JoinSet::new();
    let mut warned = Every::default();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            // Reaps ended connections, so the set holds only open ones.
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = joined {
                    tracing::error!(error = %e, "a connection's task failed");
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tasks.spawn(admit.connection(stream));
                }
                Err(e) => accept_failed(e, &mut warned).await,
            },
        }
    }
    drop(listener);
    let _ = stop.send(true);
    let drained = tokio::time::timeout(limits.drain, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = tasks.len(),
            "shutdown: dropping connections whose requests did not finish in time"
        );
        tasks.shutdown().await;
    }
}

/// Decides where each accepted connection goes: a place under the cap, or the lane.
struct Admission {
    full: Router,
    lane: Router,
    slots: Arc<Semaphore>,
    cap: usize,
    full_timeouts: Timeouts,
    lane_timeouts: Timeouts,
    lane_queue: VecDeque<oneshot::Sender<()>>,
    stopped: watch::Receiver<bool>,
    warned: Every,
}

impl Admission {
    fn new(full: Router, lane: Router, limits: &Limits, stopped: watch::Receiver<bool>) -> Self {
        let cap = limits.max_connections.unwrap_or_else(default_cap);
        Self {
            full,
            lane,
            slots: Arc::new(Semaphore::new(cap)),
            cap,
            full_timeouts: Timeouts {
                header: limits.header_timeout,
                idle: limits.idle_timeout,
            },
            lane_timeouts: Timeouts {
                header: limits.header_timeout.min(LANE_TIMEOUT),
                idle: limits.idle_timeout.min(LANE_TIMEOUT),
            },
            lane_queue: VecDeque::new(),
            stopped,
            warned: Every::default(),
        }
    }

    /// The task that serves `stream`.
    fn connection(&mut self, stream: TcpStream) -> impl Future<Output = ()> + Send + 'static {
        let conn = Conn {
            stream,
            stopped: self.stopped.clone(),
        };
        match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(permit) => conn.serve(
                self.full.clone(),
                self.full_timeouts,
                Slot::Full { _permit: permit },
            ),
            Err(_) => {
                if self.warned.due() {
                    tracing::warn!(
                        cap = self.cap,
                        lane = LANE,
                        "connection cap reached: new connections get /healthz and /readyz only, webhooks 503, until some close"
                    );
                }
                let evicted = make_room(&mut self.lane_queue);
                conn.serve(self.lane.clone(), self.lane_timeouts, Slot::Lane(evicted))
            }
        }
    }
}

/// Queues a new lane connection, closing the oldest open one if the lane is full; returns
/// what tells the new one it was closed in turn.
fn make_room(queue: &mut VecDeque<oneshot::Sender<()>>) -> oneshot::Receiver<()> {
    queue.retain(|close| !close.is_closed());
    if queue.len() >= LANE {
        // Dropping the sender wakes the connection, which then closes.
        queue.pop_front();
    }
    let (close, closed) = oneshot::channel();
    queue.push_back(close);
    closed
}

async fn accept_failed(e: std::io::Error, warned: &mut Every) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionReset, Interrupted};
    // Those concern one connection that is gone already.
    if matches!(e.kind(), ConnectionAborted | ConnectionReset | Interrupted) {
        return;
    }
    // Out of descriptors (EMFILE, ENFILE) or memory: the backlog waits while some close.
    if warned.due() {
        tracing::warn!(error = %e, "cannot accept connections");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// True at most once per [`WARN_EVERY`].
#[derive(Debug, Default)]
struct Every(Option<Instant>);

impl Every {
    fn due(&mut self) -> bool {
        let now = Instant::now();
        if self.0.is_some_and(|last| now < last + WARN_EVERY) {
            return false;
        }
        self.0 = Some(now);
        true
    }
}

#[derive(Debug, Clone, Copy)]
struct Timeouts {
    header: Duration,
    idle: Duration,
}

/// What a connection holds while it lives.
#[derive(Debug)]
enum Slot {
    /// One of the cap's connections; the permit goes back when the connection ends.
    Full { _permit: OwnedSemaphorePermit },
    /// A lane connection; resolves when a newer one needs its place.
    Lane(oneshot::Receiver<()>),
}

impl Slot {
    /// Resolves when the connection must make room; never for a full connection.
    async fn evicted(&mut self) {
        match self {
            Self::Full { .. } => std::future::pending().await,
            Self::Lane(closed) => {
                let _ = closed.await;
            }
        }
    }
}

struct Conn {
    stream: TcpStream,
    stopped: watch::Receiver<bool>,
}

impl Conn {
    async fn serve(mut self, router: Router, timeouts: Timeouts, mut slot: Slot) {
        let lane = matches!(slot, Slot::Lane(_));
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Tracked {
            inner: self.stream,
            activity: Arc::clone(&activity),
        });
        let service = Marked {
            inner: TowerToHyperService::new(router),
            activity: Arc::clone(&activity),
        };
        let conn = http1::Builder::new()
            .keep_alive(!lane)
            .serve_connection(io, service);
        tokio::pin!(conn);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            }
            why = activity.expired(timeouts) => {
                tracing::debug!(why, "closing connection");
            }
            () = slot.evicted() => {
                tracing::debug!("closing the oldest lane connection to make room");
            }
            () = stopping(&mut self.stopped) => {
                conn.as_mut().graceful_shutdown();
                // A request being served finishes (the accept loop bounds the wait); a
                // connection waiting for a request, or for the rest of its head, closes now.
                if activity.busy() {
                    let _ = conn.await;
                }
            }
        }
    }
}

/// Resolves when the server stops (or is gone).
async fn stopping(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// Where a connection is in its request cycle, for its timeouts.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// No request in progress since then.
    Idle(Instant),
    /// A request head started then and is not complete yet.
    Head(Instant),
    /// A request is being served.
    Busy,
}

#[derive(Debug)]
struct Activity {
    phase: Mutex<Phase>,
    changed: Notify,
}

impl Activity {
    fn new() -> Self {
        Self {
            phase: Mutex::new(Phase::Idle(Instant::now())),
            changed: Notify::new(),
        }
    }

    fn phase(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, phase: Phase) {
        *self.phase.lock().unwrap_or_else(PoisonError::into_inner) = phase;
        self.changed.notify_waiters();
    }

    /// Bytes arrived: on an idle connection that starts a request head.
    fn read(&self) {
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        if let Phase::Idle(_) = *phase {
            *phase = Phase::Head(Instant::now());
            drop(phase);
            self.changed.notify_waiters();
        }
    }

    fn busy(&self) -> bool {
        matches!(self.phase(), Phase::Busy)
    }

    /// Resolves when the connection has been idle, or in its request head, for too long.
    async fn expired(&self, timeouts: Timeouts) -> &'static str {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the phase is read, so a change in between is not missed.
            changed.as_mut().enable();
            let (deadline, why) = match self.phase() {
                Phase::Idle(since) => (since + timeouts.idle, "idle timeout"),
                Phase::Head(since) => (since + timeouts.header, "request head timeout"),
                Phase::Busy => {
                    changed.await;
                    continue;
                }
            };
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => return why,
                () = changed => {}
            }
        }
    }
}

/// The socket, telling `activity` when bytes arrive.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The router, marking the connection busy from a complete request head until its response.
#[derive(Clone)]
struct Marked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S, R> hyper::service::Service<R> for Marked<S>
where
    S: hyper::service::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn call(&self, request: R) -> Self::Future {
        self.activity.set(Phase::Busy);
        let response = self.inner.call(request);
        let activity = Arc::clone(&self.activity);
        Box::pin(async move {
            let response = response.await;
            activity.set(Phase::Idle(Instant::now()));
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_keeps_a_reserve_below_the_open_files_limit() {
        assert_eq!(cap_for(1024), 768);
        assert_eq!(cap_for(256), 128);
        assert_eq!(cap_for(4096), 3072);
        assert_eq!(cap_for(1_048_576), MAX_CAP);
        assert_eq!(cap_for(u64::MAX), MAX_CAP);
        assert_eq!(cap_for(64), 16);
        // The reserve holds the lane with room to spare.
        for limit in [256, 512, 1024, 2048] {
            assert!(cap_for(limit) + LANE + 64 < limit as usize, "{limit}");
        }
    }

    #[test]
    fn this_process_has_a_readable_open_files_limit() {
        // Linux, where the tests run: the limit is read, not the fallback.
        assert!(open_files_limit().is_some_and(|n| n > 0));
    }

    #[test]
    fn the_lane_closes_its_oldest_connection_when_full() {
        let mut queue = VecDeque::new();
        let mut closed: Vec<_> = (0..LANE).map(|_| make_room(&mut queue)).collect();
        assert!(closed.iter_mut().all(|c| {
            c.try_recv()
                .is_err_and(|e| e == oneshot::error::TryRecvError::Empty)
        }));
        let _newest = make_room(&mut queue);
        assert_eq!(
            closed[0].try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        );
        assert_eq!(
            closed[1].try_recv(),
            Err(oneshot::error::TryRecvError::Empty)
        );
        // A connection that ended by itself frees its place without closing another.
        drop(closed.remove(1));
        let _another = make_room(&mut queue);
        assert_eq!(
            closed[1].try_recv(),
            Err(oneshot::error::TryRecvError::Empty)
        );
    }
}
