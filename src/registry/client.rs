//! The HTTP exchange with one registry: auth (challenge, token cache), limits and retries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::{Duration, SystemTime};

use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, HeaderMap, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode, Url};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::Error;
use super::auth::{CredentialProvider, Lookup, Secret, normalise_host};
use super::backoff::{self, RetryPolicy};
use super::challenge::{self, Challenge};
use super::limit::{Bucket, Limiter};
use super::link::ListingLimits;
use super::settings::RegistrySettings;
use super::token;
use crate::model::ImageName;

/// Defaults for every registry; a `registries:` entry overrides them for its host.
#[derive(Debug, Clone)]
pub struct Options {
    pub retry: RetryPolicy,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Requests in flight per registry host.
    pub max_concurrency: usize,
    /// Repositories scanned at once (the engine's scans, `scan_all`), across all hosts.
    pub scan_concurrency: usize,
    /// Manifest requests at once when resolving many digests.
    pub digest_concurrency: usize,
    /// Bounds on answers and on one repository's tag listing.
    pub limits: ListingLimits,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_concurrency: 8,
            scan_concurrency: 32,
            digest_concurrency: 8,
            limits: ListingLimits::default(),
        }
    }
}

/// Docker Hub limits anonymous users per address; pacing requests keeps a large scan from
/// tripping its abuse limits before `Retry-After` even comes into play.
const HUB_RATE: Bucket = Bucket {
    per_second: 10.0,
    burst: 20.0,
};

/// Talks to every registry; one per process, cheap to share behind an `Arc` or a reference.
#[derive(Debug)]
pub struct Client {
    settings: Vec<RegistrySettings>,
    options: Options,
    hosts: SyncMutex<HashMap<String, Arc<Host>>>,
}

impl Client {
    pub fn new(settings: Vec<RegistrySettings>, options: Options) -> Self {
        Self {
            settings,
            options,
            hosts: SyncMutex::new(HashMap::new()),
        }
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    fn entry(&self, key: &str) -> Option<&RegistrySettings> {
        self.settings
            .iter()
            .find(|s| normalise_host(&s.host) == key)
    }

    /// The host an image's tags and manifests are read from: its registry, or the mirror its
    /// registry's entry names (one hop; validation refuses chains).
    pub(super) fn api_registry<'a>(&'a self, image: &'a ImageName) -> &'a str {
        self.entry(&normalise_host(image.registry()))
            .and_then(|s| s.mirror.as_deref())
            .unwrap_or(image.registry())
    }

    /// The per-host state for the host an image is read from, made on first use. A mirror is
    /// set up from its own entry alone: the aliased host's entry lends it nothing, credentials
    /// least of all.
    pub(super) fn host(&self, image: &ImageName) -> Result<Arc<Host>, Error> {
        let registry = self.api_registry(image);
        let key = normalise_host(registry);
        let mut hosts = self
            .hosts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(host) = hosts.get(&key) {
            return Ok(Arc::clone(host));
        }
        let settings = self.entry(&key).cloned();
        let host = Arc::new(Host::new(registry, settings, &self.options)?);
        hosts.insert(key, Arc::clone(&host));
        Ok(host)
    }
}

/// Redirects followed for one request. Registries redirect manifests and blobs to storage
/// once; a longer chain is a loop or a trap.
const MAX_REDIRECTS: usize = 5;

/// The largest token service answer read: a token is a few KiB.
const MAX_TOKEN_REPLY: u64 = 1024 * 1024;

/// Loopback registries are plain http unless configured otherwise, as Docker treats them.
pub fn is_loopback(host: &str) -> bool {
    let name = host
        .strip_prefix('[')
        .and_then(|h| h.split_once(']').map(|(h, _)| h))
        .unwrap_or_else(|| host.rsplit_once(':').map_or(host, |(h, _)| h));
    name == "localhost"
        || name == "::1"
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[derive(Debug, Default)]
struct AuthState {
    challenge: Option<Challenge>,
    /// Bearer tokens by scope, with the instant they stop being used.
    tokens: HashMap<String, (Secret, Instant)>,
    /// One lock per scope so that requests which miss the cache together fetch one token
    /// between them, not one each.
    fetching: HashMap<String, Arc<Mutex<()>>>,
}

impl AuthState {
    fn valid_token(&self, scope: &str) -> Option<String> {
        self.tokens
            .get(scope)
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(token, _)| format!("Bearer {}", token.expose()))
    }
}

/// One registry host: its http client, limits, credentials and auth state.
#[derive(Debug)]
pub(super) struct Host {
    /// As users name it (`127.0.0.1:5000`, `docker.io`), for messages.
    pub(super) registry: String,
    pub(super) base: Url,
    pub(super) page_size: Option<u32>,
    pub(super) limits: ListingLimits,
    /// The client for `base`'s scheme. For a plain-http host it trusts no certificate: the
    /// system's roots take milliseconds to load, and a plain host never needs them.
    http: reqwest::Client,
    /// The client for https urls, made when a plain-http host first redirects to one (at once
    /// for an https host, where it is `http`).
    tls: std::sync::OnceLock<reqwest::Client>,
    setup: ClientSetup,
    limiter: Limiter,
    credentials: CredentialProvider,
    retry: RetryPolicy,
    auth: Mutex<AuthState>,
}

/// A complete response: status, headers and the whole body (reading the body is part of the
/// attempt, so a connection dropped mid-body is retried like any other).
#[derive(Debug)]
pub(super) struct Reply {
    pub(super) headers: HeaderMap,
    pub(super) body: Vec<u8>,
    /// Where the answer came from after redirects, when that is not where the credentials
    /// may go: its 401 must not be answered with them.
    foreign: Option<Url>,
}

/// Why an exchange brought no answer.
#[derive(Debug)]
enum Failure {
    /// Transport trouble that another attempt may not meet.
    Transient(String),
    /// Retrying cannot help: an untrusted certificate, https against plain http, a refused
    /// redirect.
    Permanent(String),
    /// The answer is larger than the limit.
    TooLarge { limit: u64 },
}

/// What a request carries that only its own origin may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carries {
    /// Nothing secret: redirects anywhere are followed.
    Nothing,
    /// An `Authorization` header for a registry: a redirect to another origin is followed
    /// without it (registries send manifests and blobs to storage hosts).
    RegistryCredentials,
    /// Credentials for a token service (a header or a refresh token in the body): a redirect
    /// to another origin is refused, since the token would be minted by someone else.
    TokenCredentials,
}

/// One request to send, its redirects followed by hand (the `reqwest` client follows none:
/// its own policy keeps a 307's body, refresh token included, for any host).
#[derive(Debug)]
struct Outgoing<'a> {
    method: Method,
    url: &'a Url,
    accept: Option<&'a str>,
    authorization: Option<&'a str>,
    form: Option<&'a [(&'static str, &'a str)]>,
    carries: Carries,
    max_body: u64,
}

/// What a host's clients are made of.
#[derive(Debug)]
struct ClientSetup {
    registry: String,
    connect_timeout: Duration,
    timeout: Duration,
    max_concurrency: usize,
    /// The entry's `ca` and `SSL_CERT_FILE`, trusted besides the system's roots.
    bundles: Vec<std::path::PathBuf>,
}

impl ClientSetup {
    /// A client for http and, with `tls`, https. Only a TLS client reads the CA bundles.
    fn build(&self, tls: bool) -> Result<reqwest::Client, Error> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("tagsmith/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(self.connect_timeout)
            .timeout(self.timeout)
            .pool_max_idle_per_host(self.max_concurrency)
            .redirect(reqwest::redirect::Policy::none());
        if tls {
            for path in &self.bundles {
                let unreadable = |reason: String| Error::CaBundle {
                    host: self.registry.clone(),
                    path: path.clone(),
                    reason,
                };
                let pem = std::fs::read(path).map_err(|e| unreadable(e.to_string()))?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| unreadable(e.to_string()))?;
                for cert in certs {
                    builder = builder.add_root_certificate(cert);
                }
            }
        } else {
            builder = builder
                .tls_built_in_root_certs(false)
                .tls_built_in_native_certs(false);
        }
        builder.build().map_err(|source| Error::ClientSetup {
            host: self.registry.clone(),
            source,
        })
    }
}

impl Host {
    /// `registry` as image names spell it (`docker.io`, `127.0.0.1:5000`).
    fn new(
        registry: &str,
        settings: Option<RegistrySettings>,
        options: &Options,
    ) -> Result<Self, Error> {
        let api_host = match normalise_host(registry).as_str() {
            crate::model::DOCKER_HUB => crate::model::DOCKER_HUB_API_HOST,
            _ => registry,
        };
        let registry = registry.to_string();
        let settings = settings.unwrap_or_else(|| RegistrySettings {
            host: registry.clone(),
            ..RegistrySettings::default()
        });
        // One rule with or without an entry: loopback is plain http unless the entry asks for
        // TLS (`insecure: false`, or a `ca` to trust); every other host is https.
        let insecure = settings
            .insecure
            .unwrap_or_else(|| settings.ca.is_none() && is_loopback(&registry));
        let scheme = if insecure { "http" } else { "https" };
        let base = Url::parse(&format!("{scheme}://{api_host}")).map_err(|e| Error::Settings {
            host: registry.clone(),
            reason: format!("not a valid host: {e}"),
        })?;
        let max_concurrency = settings.max_concurrency.unwrap_or(options.max_concurrency);
        let env_bundle = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
        let setup = ClientSetup {
            registry: registry.clone(),
            connect_timeout: settings.connect_timeout.unwrap_or(options.connect_timeout),
            timeout: settings.timeout.unwrap_or(options.timeout),
            max_concurrency,
            bundles: settings
                .ca
                .iter()
                .chain(env_bundle.iter())
                .cloned()
                .collect(),
        };
        let tls = std::sync::OnceLock::new();
        let http = if insecure {
            setup.build(false)?
        } else {
            let client = setup.build(true)?;
            let _ = tls.set(client.clone());
            client
        };
        let rate = match settings.requests_per_second {
            Some(per_second) => Some(Bucket {
                per_second,
                burst: f64::from(settings.burst.unwrap_or(1)),
            }),
            None if normalise_host(&registry) == "docker.io" => Some(HUB_RATE),
            None => None,
        };
        let credentials = CredentialProvider::new(&registry, settings.auth.clone());
        Ok(Self {
            registry,
            base,
            page_size: settings.page_size,
            limits: options.limits,
            http,
            tls,
            setup,
            limiter: Limiter::new(max_concurrency, rate),
            credentials,
            retry: options.retry,
            auth: Mutex::new(AuthState::default()),
        })
    }

    async fn lookup(&self, image: &ImageName) -> Result<Lookup, Error> {
        self.credentials
            .get()
            .await
            .map_err(|source| Error::Credentials {
                image: image.to_string(),
                source,
            })
    }

    async fn credential_source(&self) -> String {
        match self.credentials.get().await {
            Ok(lookup) => lookup.source,
            Err(_) => "credentials that could not be read".into(),
        }
    }

    /// Sends one request until it succeeds, fails for good, or runs out of attempts. `what`
    /// names the request in errors ("tag list", "manifest 1.2.3").
    pub(super) async fn send(
        &self,
        image: &ImageName,
        method: Method,
        url: &Url,
        accept: &str,
        what: &str,
    ) -> Result<Reply, Error> {
        let scope = format!("repository:{}:pull", image.repository());
        let mut failures = 0u32;
        let mut auth_rounds = 0u32;
        loop {
            let authorization = self.authorization(image, &scope).await?;
            let outcome = {
                let _permit = self.limiter.acquire().await;
                self.exchange(Outgoing {
                    method: method.clone(),
                    url,
                    accept: Some(accept),
                    authorization: authorization.as_deref(),
                    form: None,
                    carries: Carries::RegistryCredentials,
                    max_body: self.limits.max_response_bytes,
                })
                .await
            };
            let (reason, retry_after) = match outcome {
                Ok((status, reply)) if status.is_success() => return Ok(reply),
                // Only the registry itself may ask for its credentials: a host it redirected
                // to, and any token service that host names, gets none of them.
                Ok((StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN, reply))
                    if reply.foreign.is_some() =>
                {
                    return Err(Error::Redirected {
                        image: image.to_string(),
                        what: what.to_string(),
                        to: reply
                            .foreign
                            .map(|u| u.origin().ascii_serialization())
                            .unwrap_or_default(),
                        registry: self.registry.clone(),
                    });
                }
                Ok((StatusCode::UNAUTHORIZED, reply)) if auth_rounds < 2 => {
                    auth_rounds += 1;
                    let refused = authorization.as_deref();
                    self.learn_challenge(image, &scope, &reply.headers, refused, auth_rounds, what)
                        .await?;
                    continue;
                }
                Ok((status, reply)) => match status.as_u16() {
                    401 => {
                        return Err(Error::Unauthorized {
                            image: image.to_string(),
                            what: what.to_string(),
                            credential: self.credential_source().await,
                        });
                    }
                    403 => {
                        return Err(Error::Denied {
                            image: image.to_string(),
                            what: what.to_string(),
                            credential: self.credential_source().await,
                        });
                    }
                    404 => {
                        return Err(Error::NotFound {
                            image: image.to_string(),
                            what: what.to_string(),
                            credential: self.credential_source().await,
                        });
                    }
                    429 | 503 => {
                        let after = reply
                            .headers
                            .get(RETRY_AFTER)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| backoff::retry_after(v, SystemTime::now()));
                        (format!("http {status}"), after)
                    }
                    408 | 500..=599 => (format!("http {status}"), None),
                    400 if url.scheme() == "http" && speaks_https(&reply.body) => {
                        return Err(Error::Request {
                            image: image.to_string(),
                            what: what.to_string(),
                            attempts: failures + 1,
                            reason: format!(
                                "http 400: {} answers https, not plain http; set \
                                 `insecure: false` in its registries entry",
                                url.origin().ascii_serialization()
                            ),
                            transient: false,
                        });
                    }
                    code => {
                        return Err(Error::Status {
                            image: image.to_string(),
                            what: what.to_string(),
                            status: code,
                        });
                    }
                },
                Err(Failure::Permanent(reason)) => {
                    return Err(Error::Request {
                        image: image.to_string(),
                        what: what.to_string(),
                        attempts: failures + 1,
                        reason,
                        transient: false,
                    });
                }
                Err(Failure::TooLarge { limit }) => {
                    return Err(Error::TooLarge {
                        image: image.to_string(),
                        what: what.to_string(),
                        registry: self.registry.clone(),
                        limit,
                    });
                }
                Err(Failure::Transient(reason)) => (reason, None),
            };
            failures += 1;
            let give_up = |reason: String| Error::Request {
                image: image.to_string(),
                what: what.to_string(),
                attempts: failures,
                reason,
                transient: true,
            };
            if failures >= self.retry.max_attempts {
                return Err(give_up(reason));
            }
            let delay = match retry_after {
                Some(after) if after > self.retry.max_retry_after => {
                    return Err(give_up(format!(
                        "{reason}, retry after {after:?} is too long"
                    )));
                }
                Some(after) => after,
                None => self.retry.backoff(failures - 1, fastrand::f64()),
            };
            tracing::debug!(%image, what, %reason, ?delay, attempt = failures, "retrying registry request");
            tokio::time::sleep(delay).await;
        }
    }

    /// The client that may send to `url`: a plain-http host's own for http, a TLS one for https.
    fn client(&self, url: &Url) -> Result<&reqwest::Client, Failure> {
        if url.scheme() != "https" {
            return Ok(&self.http);
        }
        if let Some(client) = self.tls.get() {
            return Ok(client);
        }
        let client = self.setup.build(true).map_err(|e| match e {
            Error::ClientSetup { source, .. } => {
                Failure::Permanent(format!("cannot set up https: {}", describe(&source)))
            }
            other => Failure::Permanent(other.to_string()),
        })?;
        Ok(self.tls.get_or_init(|| client))
    }

    /// One request and its whole body, redirects followed by hand: credentials go only to the
    /// origin of the first url (the registry, or the token service it named).
    async fn exchange(&self, out: Outgoing<'_>) -> Result<(StatusCode, Reply), Failure> {
        let origin = out.url.origin();
        let mut url = out.url.clone();
        let mut method = out.method;
        let mut form = out.form;
        for _ in 0..=MAX_REDIRECTS {
            let home = url.origin() == origin;
            let mut request = self.client(&url)?.request(method.clone(), url.clone());
            if let Some(accept) = out.accept {
                request = request.header(ACCEPT, accept);
            }
            if let (Some(value), true) = (out.authorization, home) {
                request = request.header(AUTHORIZATION, value);
            }
            if let Some(form) = form {
                request = request.form(form);
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) => {
                    count_request(None);
                    return Err(self.classify(&url, &e).await);
                }
            };
            let status = response.status();
            count_request(Some(status));
            if status.is_redirection()
                && let Some(location) = response.headers().get(LOCATION)
            {
                let next = location
                    .to_str()
                    .ok()
                    .and_then(|l| url.join(l).ok())
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .ok_or_else(|| {
                        Failure::Permanent(format!("{url} redirected to an invalid location"))
                    })?;
                if next.origin() != origin && out.carries == Carries::TokenCredentials {
                    return Err(Failure::Permanent(format!(
                        "the token service {} redirected to {}; credentials are not sent there",
                        origin.ascii_serialization(),
                        next.origin().ascii_serialization()
                    )));
                }
                // As browsers do: 301/302/303 turn a POST into a GET without its body.
                if status != StatusCode::TEMPORARY_REDIRECT
                    && status != StatusCode::PERMANENT_REDIRECT
                {
                    if method == Method::POST {
                        method = Method::GET;
                    }
                    form = None;
                }
                url = next;
                continue;
            }
            let headers = response.headers().clone();
            let body = read_body(response, out.max_body).await?;
            let foreign = (!home && out.carries != Carries::Nothing).then_some(url);
            return Ok((
                status,
                Reply {
                    headers,
                    body,
                    foreign,
                },
            ));
        }
        Err(Failure::Permanent(format!(
            "more than {MAX_REDIRECTS} redirects from {}",
            out.url
        )))
    }

    /// Sorts a transport error into worth-retrying or not, and says what it means.
    async fn classify(&self, url: &Url, error: &reqwest::Error) -> Failure {
        let reason = describe(error);
        // A certificate the client does not trust stays untrusted; retrying only delays the
        // answer.
        if reason.contains("certificate") {
            return Failure::Permanent(reason);
        }
        if url.scheme() == "https"
            && (reason.contains("InvalidContentType") || reason.contains("corrupt message"))
            && answers_plain_http(url).await
        {
            return Failure::Permanent(format!(
                "{reason}: {} answers plain http, not https; set `insecure: true` in its \
                 registries entry if plain http is intended",
                url.origin().ascii_serialization()
            ));
        }
        Failure::Transient(reason)
    }

    /// Remembers how the registry wants to be authenticated after a 401, and drops what was
    /// refused: the scope's token and, on a second refusal, cached credentials (short-lived
    /// ones may have expired).
    async fn learn_challenge(
        &self,
        image: &ImageName,
        scope: &str,
        headers: &HeaderMap,
        refused: Option<&str>,
        round: u32,
        what: &str,
    ) -> Result<(), Error> {
        let challenge = challenge::parse(
            headers
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok()),
        );
        let Some(challenge) = challenge else {
            return Err(Error::Unauthorized {
                image: image.to_string(),
                what: format!("{what} (no usable challenge)"),
                credential: self.credential_source().await,
            });
        };
        if round > 1 {
            self.credentials.invalidate().await;
        }
        let mut auth = self.auth.lock().await;
        // Drop the token only if it is the one refused: a request that went out before the
        // token existed must not throw away the one a concurrent request just fetched.
        let current = auth
            .tokens
            .get(scope)
            .map(|(token, _)| format!("Bearer {}", token.expose()));
        if current.is_some() && current.as_deref() == refused {
            auth.tokens.remove(scope);
        }
        auth.challenge = Some(challenge.clone());
        drop(auth);
        if challenge == Challenge::Basic && self.lookup(image).await?.credentials.is_none() {
            return Err(Error::Unauthorized {
                image: image.to_string(),
                what: what.to_string(),
                credential: self.credential_source().await,
            });
        }
        Ok(())
    }

    /// The `Authorization` header for a request, once the registry told us how it wants it.
    async fn authorization(&self, image: &ImageName, scope: &str) -> Result<Option<String>, Error> {
        let (challenge, fetching) = {
            let mut auth = self.auth.lock().await;
            match auth.challenge.clone() {
                None => return Ok(None),
                Some(Challenge::Basic) => (Challenge::Basic, None),
                Some(bearer) => {
                    if let Some(header) = auth.valid_token(scope) {
                        return Ok(Some(header));
                    }
                    let lock = Arc::clone(auth.fetching.entry(scope.to_string()).or_default());
                    (bearer, Some(lock))
                }
            }
        };
        let lookup = self.lookup(image).await?;
        match challenge {
            Challenge::Basic => Ok(lookup.credentials.as_ref().map(token::basic_header)),
            Challenge::Bearer { realm, service, .. } => {
                let _fetching = match &fetching {
                    Some(lock) => Some(lock.lock().await),
                    None => None,
                };
                // Whoever held the lock before us may have fetched the token already.
                if let Some(header) = self.auth.lock().await.valid_token(scope) {
                    return Ok(Some(header));
                }
                let (token, until) = self
                    .fetch_token(image, &realm, service.as_deref(), scope, &lookup)
                    .await?;
                let header = format!("Bearer {}", token.expose());
                self.auth
                    .lock()
                    .await
                    .tokens
                    .insert(scope.to_string(), (token, until));
                Ok(Some(header))
            }
        }
    }

    /// The token dance: `GET realm?service=..&scope=..`, with basic credentials when we have
    /// some, anonymous otherwise; an identity token is traded by the OAuth2 `POST` instead.
    async fn fetch_token(
        &self,
        image: &ImageName,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        lookup: &Lookup,
    ) -> Result<(Secret, Instant), Error> {
        let fail = |reason: String, transient: bool| Error::Token {
            image: image.to_string(),
            realm: realm.to_string(),
            credential: lookup.source.clone(),
            reason,
            transient,
        };
        let realm_url = Url::parse(realm).map_err(|_| fail("realm is not a url".into(), false))?;
        let url = token::token_url(realm, service, scope)
            .ok_or_else(|| fail("realm is not a url".into(), false))?;
        let mut failures = 0u32;
        loop {
            let basic;
            let refresh;
            let (method, target, authorization, form, carries) = match &lookup.credentials {
                Some(credentials) if credentials.identity_token => {
                    refresh = token::refresh_form(service, scope, credentials.password.expose());
                    (
                        Method::POST,
                        &realm_url,
                        None,
                        Some(refresh.as_slice()),
                        Carries::TokenCredentials,
                    )
                }
                Some(credentials) => {
                    basic = token::basic_header(credentials);
                    (
                        Method::GET,
                        &url,
                        Some(basic.as_str()),
                        None,
                        Carries::TokenCredentials,
                    )
                }
                None => (Method::GET, &url, None, None, Carries::Nothing),
            };
            let result = self
                .exchange(Outgoing {
                    method,
                    url: target,
                    accept: Some("application/json"),
                    authorization,
                    form,
                    carries,
                    max_body: MAX_TOKEN_REPLY,
                })
                .await
                .map(|(status, reply)| (status, reply.body));
            let reason = match result {
                Ok((status, body)) if status.is_success() => {
                    let (token, lifetime) =
                        token::parse_reply(&body).map_err(|reason| fail(reason.into(), false))?;
                    let now = Instant::now();
                    return Ok((Secret::new(token), now.checked_add(lifetime).unwrap_or(now)));
                }
                Ok((status, _))
                    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS =>
                {
                    format!("http {status}")
                }
                Ok((status, _)) => return Err(fail(format!("http {status}"), false)),
                Err(Failure::Transient(reason)) => reason,
                Err(Failure::Permanent(reason)) => return Err(fail(reason, false)),
                Err(Failure::TooLarge { limit }) => {
                    return Err(fail(format!("answer larger than {limit} bytes"), false));
                }
            };
            failures += 1;
            if failures >= self.retry.max_attempts {
                return Err(fail(reason, true));
            }
            tokio::time::sleep(self.retry.backoff(failures - 1, fastrand::f64())).await;
        }
    }
}

/// A transport error with its causes ("connection refused", "operation timed out"); reqwest's
/// own message alone only says "error sending request".
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_string()
    } else {
        error.to_string()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The body, chunk by chunk, failing as soon as it passes `limit` (or says it will).
async fn read_body(mut response: reqwest::Response, limit: u64) -> Result<Vec<u8>, Failure> {
    let announced = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|len| len > limit) {
        return Err(Failure::TooLarge { limit });
    }
    // Sized once from the announced length (within the limit), rather than doubled up to it.
    let mut body =
        Vec::with_capacity(usize::try_from(announced.unwrap_or(0).min(limit)).unwrap_or(0));
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| Failure::Transient(describe(&e)))?
    {
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(Failure::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Go's TLS servers answer a plain http request with this 400.
fn speaks_https(body: &[u8]) -> bool {
    String::from_utf8_lossy(body).contains("HTTP request to an HTTPS server")
}

/// Whether the server at `url`'s host and port speaks plain http: a TLS handshake failure
/// there means `insecure: true` is missing, which a bare TLS error does not tell.
async fn answers_plain_http(url: &Url) -> bool {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return false;
    };
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
            .await
            .ok()?;
        let request = format!("GET /v2/ HTTP/1.0\r\nHost: {host}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0u8; 5];
        stream.read_exact(&mut head).await.ok()?;
        Some(&head == b"HTTP/")
    };
    tokio::time::timeout(Duration::from_secs(2), probe)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// Registry requests by status code, `error` when no response came.
fn count_request(status: Option<StatusCode>) {
    let code = status.map_or_else(|| "error".to_string(), |s| s.as_u16().to_string());
    crate::metrics::metrics()
        .registry_requests
        .get_or_create(&crate::metrics::label("status", code))
        .inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_names_go_to_its_api_host_over_https_with_pacing() {
        let client = Client::new(Vec::new(), Options::default());
        let hub = client.host(&"nginx".parse().unwrap()).unwrap();
        assert_eq!(hub.base.as_str(), "https://registry-1.docker.io/");
        let same = client
            .host(&"docker.io/library/redis".parse().unwrap())
            .unwrap();
        assert!(Arc::ptr_eq(&hub, &same), "one state per registry");
        assert!(format!("{:?}", hub.limiter).contains("per_second: 10.0"));
        let local = client.host(&"127.0.0.1:5000/app".parse().unwrap()).unwrap();
        assert_eq!(local.base.as_str(), "http://127.0.0.1:5000/");
        let configured = Client::new(
            vec![RegistrySettings {
                host: "localhost:5000".into(),
                insecure: Some(false),
                ..RegistrySettings::default()
            }],
            Options::default(),
        );
        let host = configured
            .host(&"localhost:5000/app".parse().unwrap())
            .unwrap();
        assert_eq!(host.base.as_str(), "https://localhost:5000/");
        // An entry that only adds credentials keeps the rule for loopback: plain http.
        let with_entry = Client::new(
            vec![RegistrySettings {
                host: "localhost:5000".into(),
                auth: Some(super::super::AuthSettings::Anonymous),
                ..RegistrySettings::default()
            }],
            Options::default(),
        );
        let host = with_entry
            .host(&"localhost:5000/app".parse().unwrap())
            .unwrap();
        assert_eq!(host.base.as_str(), "http://localhost:5000/");
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("localhost"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("ghcr.io"));
        assert!(!is_loopback("10.0.0.1:5000"));
    }
}
