//! A proxy in front of the registry that adds what registry 2.8 lacks and what real
//! registries do: tag list paging (spec style, Link-only, or broken) and faults.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// How tag lists are paged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paging {
    /// Whatever the registry does (2.8: every tag, one response).
    PassThrough,
    /// `n`/`last` honoured over the sorted list, `Link` to the next page; `default_n` when
    /// the client sends no `n`.
    Spec { default_n: usize },
    /// Quay style: fixed pages, `n` and `last` ignored, an opaque cursor in the `Link`.
    LinkOnly { page: usize },
    /// Honours `n`, ignores `last`, never sends a `Link`: a naive `last` loop never ends.
    IgnoreLast { default_n: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Status {
        code: u16,
        retry_after: Option<u64>,
    },
    /// Wait this long before answering normally.
    Slow(Duration),
    /// Close the connection without an answer.
    Drop,
    /// Answer normally (a place holder in the queue, so a later request gets the fault).
    Pass,
    /// `307` to this location (absolute, or a path on the proxy itself).
    Redirect(&'static str),
}

#[derive(Debug, Clone)]
pub struct Logged {
    pub at: Instant,
    pub method: String,
    pub uri: String,
    pub fault: Option<Fault>,
    /// Whether the request carried an `Authorization` header.
    pub authorized: bool,
}

#[derive(Debug)]
struct State {
    upstream: String,
    paging: Mutex<Paging>,
    faults: Mutex<VecDeque<Fault>>,
    /// Delay every answer by this much (to observe concurrency).
    delay: Mutex<Duration>,
    strip_digest: Mutex<bool>,
    log: Mutex<Vec<Logged>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    http: reqwest::Client,
}

#[derive(Debug)]
pub struct Proxy {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    /// Starts on a free loopback port in front of `upstream` (`127.0.0.1:<port>`).
    pub async fn start(upstream: &str, paging: Paging) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            upstream: format!("http://{upstream}"),
            paging: Mutex::new(paging),
            faults: Mutex::new(VecDeque::new()),
            delay: Mutex::new(Duration::ZERO),
            strip_digest: Mutex::new(false),
            log: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            http: reqwest::Client::new(),
        });
        let serving = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = Arc::clone(&serving);
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let state = Arc::clone(&state);
                        async move { handle(state, request).await }
                    });
                    // Errors here are the faults we inject (dropped connections).
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Proxy { addr, state, task }
    }

    /// `127.0.0.1:<port>`, to use as the registry host in image names.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn set_paging(&self, paging: Paging) {
        *self.state.paging.lock().unwrap() = paging;
    }

    /// Faults for the next requests, one each, in order.
    pub fn push_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        self.state.faults.lock().unwrap().extend(faults);
    }

    pub fn set_delay(&self, delay: Duration) {
        *self.state.delay.lock().unwrap() = delay;
    }

    /// Drop `Docker-Content-Digest` from answers, as some registries do on HEAD or GET.
    pub fn strip_digest_header(&self, strip: bool) {
        *self.state.strip_digest.lock().unwrap() = strip;
    }

    pub fn log(&self) -> Vec<Logged> {
        self.state.log.lock().unwrap().clone()
    }

    pub fn clear_log(&self) {
        self.state.log.lock().unwrap().clear();
        self.state.max_in_flight.store(0, Ordering::SeqCst);
    }

    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }
}

type Answer = Response<Full<Bytes>>;

async fn handle(state: Arc<State>, request: Request<Incoming>) -> Result<Answer, std::io::Error> {
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let result = answer(&state, request).await;
    state.in_flight.fetch_sub(1, Ordering::SeqCst);
    result
}

async fn answer(state: &State, request: Request<Incoming>) -> Result<Answer, std::io::Error> {
    let fault = state.faults.lock().unwrap().pop_front();
    state.log.lock().unwrap().push(Logged {
        at: Instant::now(),
        method: request.method().to_string(),
        uri: request.uri().to_string(),
        fault,
        authorized: request.headers().contains_key("authorization"),
    });
    let delay = *state.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match fault {
        Some(Fault::Status { code, retry_after }) => {
            let mut response = Response::builder().status(code);
            if let Some(seconds) = retry_after {
                response = response.header("retry-after", seconds.to_string());
            }
            return Ok(response
                .body(Full::new(Bytes::from_static(
                    b"{\"errors\":[{\"code\":\"TOOMANYREQUESTS\"}]}",
                )))
                .unwrap());
        }
        Some(Fault::Drop) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "fault: drop",
            ));
        }
        Some(Fault::Slow(wait)) => tokio::time::sleep(wait).await,
        Some(Fault::Redirect(to)) => {
            let location = to.replace("{uri}", &request.uri().to_string());
            return Ok(Response::builder()
                .status(307)
                .header("location", location)
                .body(Full::new(Bytes::new()))
                .unwrap());
        }
        Some(Fault::Pass) | None => {}
    }
    let paging = *state.paging.lock().unwrap();
    let path = request.uri().path().to_string();
    let query: Vec<(String, String)> = request
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };

    // Forward to the registry (tag lists without their paging parameters).
    let is_tag_list = request.method() == hyper::Method::GET && path.ends_with("/tags/list");
    let upstream_uri = if is_tag_list && paging != Paging::PassThrough {
        format!("{}{path}", state.upstream)
    } else {
        format!("{}{}", state.upstream, request.uri())
    };
    let method = reqwest::Method::from_bytes(request.method().as_str().as_bytes()).unwrap();
    let mut forward = state.http.request(method, upstream_uri);
    for name in ["authorization", "accept", "content-type"] {
        if let Some(value) = request.headers().get(name) {
            forward = forward.header(name, value.to_str().unwrap_or_default());
        }
    }
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let upstream = match forward.body(body).send().await {
        Ok(upstream) => upstream,
        Err(e) => return Err(std::io::Error::other(e.to_string())),
    };
    let status = upstream.status().as_u16();
    let mut response = Response::builder().status(status);
    let strip_digest = *state.strip_digest.lock().unwrap();
    for (name, value) in upstream.headers() {
        let name = name.as_str();
        if matches!(name, "content-length" | "transfer-encoding" | "connection") {
            continue;
        }
        if strip_digest && name == "docker-content-digest" {
            continue;
        }
        response = response.header(name, value.as_bytes());
    }
    let body = upstream.bytes().await.unwrap_or_default();
    if !is_tag_list || status != 200 || paging == Paging::PassThrough {
        return Ok(response.body(Full::new(body)).unwrap());
    }

    #[derive(serde::Deserialize)]
    struct List {
        name: String,
        tags: Option<Vec<String>>,
    }
    let list: List = serde_json::from_slice(&body).unwrap();
    let mut tags = list.tags.unwrap_or_default();
    tags.sort();
    let n_param = param("n").and_then(|n| n.parse::<usize>().ok());
    let (page, link): (Vec<String>, Option<String>) = match paging {
        Paging::PassThrough => unreachable!(),
        Paging::Spec { default_n } => {
            let n = n_param.unwrap_or(default_n);
            let after: Vec<String> = match param("last") {
                Some(last) => tags.into_iter().filter(|t| *t > last).collect(),
                None => tags,
            };
            let page: Vec<String> = after.iter().take(n).cloned().collect();
            let link = (after.len() > n).then(|| {
                format!(
                    "</v2/{}/tags/list?n={n}&last={}>; rel=\"next\"",
                    list.name,
                    page.last().unwrap()
                )
            });
            (page, link)
        }
        Paging::LinkOnly { page: size } => {
            let offset = param("next_page")
                .and_then(|cursor| {
                    cursor
                        .strip_prefix("cur-")
                        .and_then(|o| o.parse::<usize>().ok())
                })
                .unwrap_or(0);
            let page: Vec<String> = tags.iter().skip(offset).take(size).cloned().collect();
            let next = offset + size;
            let link = (next < tags.len()).then(|| {
                format!(
                    "</v2/{}/tags/list?n={size}&next_page=cur-{next}>; rel=\"next\"",
                    list.name
                )
            });
            (page, link)
        }
        Paging::IgnoreLast { default_n } => {
            let n = n_param.unwrap_or(default_n);
            (tags.into_iter().take(n).collect(), None)
        }
    };
    if let Some(link) = link {
        response = response.header("link", link);
    }
    let body = serde_json::json!({ "name": list.name, "tags": page }).to_string();
    Ok(response.body(Full::new(Bytes::from(body))).unwrap())
}

/// A request a [`Scripted`] server saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub uri: String,
    pub authorization: Option<String>,
    /// Every header, names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Seen {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a [`Scripted`] server answers.
#[derive(Debug, Clone)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Sent after `body`, this chunk this many times, without a content length: a large
    /// answer that is never held whole by the server.
    pub repeat: Option<(Bytes, usize)>,
}

impl Canned {
    pub fn status(status: u16) -> Canned {
        Canned {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
            repeat: None,
        }
    }

    pub fn json(status: u16, body: impl Into<String>) -> Canned {
        Canned {
            body: Bytes::from(body.into()),
            ..Canned::status(status)
        }
        .header("content-type", "application/json")
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Canned {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn redirect(status: u16, location: impl Into<String>) -> Canned {
        Canned::status(status).header("location", location)
    }
}

type Script = dyn Fn(&Seen) -> Canned + Send + Sync;

/// A hostile (or just odd) HTTP server on a free loopback port: every request is logged with
/// its `Authorization` header and body, and answered by a script.
pub struct Scripted {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Scripted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scripted")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type ScriptedBody = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

impl Scripted {
    pub async fn start(script: impl Fn(&Seen) -> Canned + Send + Sync + 'static) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let serving = Arc::clone(&log);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let log = Arc::clone(&serving);
                let script = Arc::clone(&script);
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let log = Arc::clone(&log);
                        let script = Arc::clone(&script);
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let seen = Seen {
                                method: parts.method.to_string(),
                                uri: parts.uri.to_string(),
                                authorization: parts
                                    .headers
                                    .get("authorization")
                                    .map(|v| v.to_str().unwrap_or_default().to_string()),
                                headers: parts
                                    .headers
                                    .iter()
                                    .map(|(n, v)| {
                                        (
                                            n.as_str().to_string(),
                                            v.to_str().unwrap_or_default().to_string(),
                                        )
                                    })
                                    .collect(),
                                body: String::from_utf8_lossy(&body).into_owned(),
                            };
                            let canned = script(&seen);
                            log.lock().unwrap().push(seen);
                            Ok::<_, std::convert::Infallible>(respond(canned))
                        }
                    });
                    // The client may hang up on a large answer; that is the point of some tests.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Scripted { addr, log, task }
    }

    /// `127.0.0.1:<port>`
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn log(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }
}

fn respond(canned: Canned) -> Response<ScriptedBody> {
    let mut response = Response::builder().status(canned.status);
    for (name, value) in &canned.headers {
        response = response.header(name.as_str(), value.as_str());
    }
    let body: ScriptedBody = match canned.repeat {
        None => Full::new(canned.body).boxed(),
        Some((chunk, times)) => {
            let first = std::iter::once(canned.body);
            let frames = first
                .chain(std::iter::repeat_n(chunk, times))
                .map(|b| Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(b)));
            http_body_util::StreamBody::new(futures_util::stream::iter(frames)).boxed()
        }
    };
    response.body(body).unwrap()
}
