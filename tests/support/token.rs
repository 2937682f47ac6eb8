//! A small token issuer for `auth: token` registries: checks basic credentials, grants pull
//! anonymously on public repositories, signs JWTs with the test key.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::pki::TokenKeys;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// `None` for anonymous requests.
    pub user: Option<String>,
    pub service: Option<String>,
    pub scope: Option<String>,
}

#[derive(Debug)]
struct State {
    keys: Arc<TokenKeys>,
    users: Vec<(String, String)>,
    public: Vec<String>,
    expires_in: u64,
    log: Mutex<Vec<TokenRequest>>,
}

#[derive(Debug)]
pub struct TokenIssuer {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TokenIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TokenIssuer {
    pub async fn start(
        keys: Arc<TokenKeys>,
        users: Vec<(String, String)>,
        public: Vec<String>,
        expires_in: u64,
    ) -> TokenIssuer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            keys,
            users,
            public,
            expires_in,
            log: Mutex::new(Vec::new()),
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
                        async move { Ok::<_, std::convert::Infallible>(issue(&state, request)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        TokenIssuer { addr, state, task }
    }

    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    pub fn log(&self) -> Vec<TokenRequest> {
        self.state.log.lock().unwrap().clone()
    }
}

fn reply(status: u16, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn issue(state: &State, request: Request<Incoming>) -> Response<Full<Bytes>> {
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
    let basic = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            pair.split_once(':')
                .map(|(u, p)| (u.to_string(), p.to_string()))
        });
    state.log.lock().unwrap().push(TokenRequest {
        user: basic.as_ref().map(|(u, _)| u.clone()),
        service: param("service"),
        scope: param("scope"),
    });
    if param("service").as_deref() != Some(state.keys.service.as_str()) {
        return reply(
            400,
            r#"{"errors":[{"code":"UNSUPPORTED","message":"unknown service"}]}"#.into(),
        );
    }
    let authenticated = match &basic {
        Some(pair) if state.users.contains(pair) => true,
        Some(_) => return reply(401, r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#.into()),
        None => false,
    };
    let mut access = Vec::new();
    for scope in query.iter().filter(|(k, _)| k == "scope").map(|(_, v)| v) {
        let mut parts = scope.splitn(3, ':');
        let (Some("repository"), Some(name), Some(actions)) =
            (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let granted: Vec<String> = actions
            .split(',')
            .filter(|a| authenticated || (*a == "pull" && state.public.iter().any(|p| p == name)))
            .map(str::to_string)
            .collect();
        access.push((name.to_string(), granted));
    }
    let subject = basic.map(|(u, _)| u).unwrap_or_default();
    let token = state.keys.mint(&subject, &access, state.expires_in);
    reply(
        200,
        serde_json::json!({ "token": token, "access_token": token, "expires_in": state.expires_in }).to_string(),
    )
}
