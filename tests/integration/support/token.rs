//! A small token issuer for `auth: token` registries: checks basic credentials, grants pull
//! anonymously on public repositories, signs JWTs with the test key.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use http_body_util::Full;
use hyper::Response;
use hyper::http::request::Parts;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::pki::TokenKeys;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// `None` for anonymous requests.
    pub user: Option<String>,
    /// `Some("refresh_token")` for the OAuth2 POST flow.
    pub grant: Option<String>,
    pub service: Option<String>,
    pub scope: Option<String>,
}

#[derive(Debug)]
struct State {
    keys: Arc<TokenKeys>,
    users: Vec<(String, String)>,
    /// Refresh tokens (Docker identity tokens) and the user each stands for.
    refresh_tokens: Vec<(String, String)>,
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
        refresh_tokens: Vec<(String, String)>,
        public: Vec<String>,
        expires_in: u64,
    ) -> TokenIssuer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            keys,
            users,
            refresh_tokens,
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
                    let service =
                        service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                            let state = Arc::clone(&state);
                            async move {
                                let (parts, body) = request.into_parts();
                                let body = body
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                Ok::<_, std::convert::Infallible>(issue(&state, &parts, &body))
                            }
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

fn issue(state: &State, request: &Parts, body: &[u8]) -> Response<Full<Bytes>> {
    // GET sends its parameters in the query, the OAuth2 POST in a form body.
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let query: Vec<(String, String)> = request
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let query = if request.method == hyper::Method::POST {
        form
    } else {
        query
    };
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let basic = request
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            pair.split_once(':')
                .map(|(u, p)| (u.to_string(), p.to_string()))
        });
    let refreshed_user = match (param("grant_type").as_deref(), param("refresh_token")) {
        (Some("refresh_token"), Some(token)) => {
            match state.refresh_tokens.iter().find(|(t, _)| *t == token) {
                Some((_, user)) => Some(user.clone()),
                None => return reply(401, r#"{"error":"invalid_grant"}"#.into()),
            }
        }
        _ => None,
    };
    state.log.lock().unwrap().push(TokenRequest {
        grant: param("grant_type"),
        user: refreshed_user
            .clone()
            .or_else(|| basic.as_ref().map(|(u, _)| u.clone())),
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
        _ if refreshed_user.is_some() => true,
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
    let subject = refreshed_user.or(basic.map(|(u, _)| u)).unwrap_or_default();
    let token = state.keys.mint(&subject, &access, state.expires_in);
    reply(
        200,
        serde_json::json!({ "token": token, "access_token": token, "expires_in": state.expires_in }).to_string(),
    )
}

/// A token registry in one scripted server: `/token` answers `{"token":"t0k","expires_in":
/// <expires_in>}` (written as given, so it may be any JSON number), every other request with
/// `Bearer t0k` gets the tag list `["1.0"]`, anything else a challenge naming `/token`.
pub async fn scripted_registry(expires_in: &'static str) -> super::proxy::Scripted {
    use super::proxy::{Canned, Scripted};
    use std::sync::atomic::{AtomicU16, Ordering};
    let port = Arc::new(AtomicU16::new(0));
    let seen_port = Arc::clone(&port);
    let server = Scripted::start(move |seen| {
        if seen.uri.starts_with("/token") {
            return Canned::json(
                200,
                format!(r#"{{"token":"t0k","expires_in":{expires_in}}}"#),
            );
        }
        match seen.authorization.as_deref() {
            Some("Bearer t0k") => Canned::json(200, r#"{"name":"team/app","tags":["1.0"]}"#),
            _ => Canned::json(401, "{}").header(
                "www-authenticate",
                format!(
                    r#"Bearer realm="http://127.0.0.1:{}/token",service="reg""#,
                    seen_port.load(Ordering::SeqCst)
                ),
            ),
        }
    })
    .await;
    port.store(server.addr.port(), Ordering::SeqCst);
    server
}
