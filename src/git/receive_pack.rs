//! The client side of git's smart HTTP `git-receive-pack` (gitprotocol-http, gitprotocol-pack,
//! gitprotocol-common): read the ref advertisement, send one update command and a pack, read
//! the server's `report-status`. Only what a push of one branch needs: protocol v0, no thin
//! packs, no atomic or signed pushes.
//!
//! Credentials go to the configured URL's host only: redirects are never followed to another
//! host, and the configured credentials are sent with the first request (they are for this
//! host anyway, and it saves the 401 round trip libgit2 makes).

use std::sync::OnceLock;
use std::time::Duration;

use git2::Oid;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, LOCATION};
use thiserror::Error;

const ADVERTISEMENT: &str = "application/x-git-receive-pack-advertisement";
const REQUEST: &str = "application/x-git-receive-pack-request";
const RESULT: &str = "application/x-git-receive-pack-result";
const AGENT: &str = concat!("agent=tagsmith/", env!("CARGO_PKG_VERSION"));
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A server's receive hooks may run checks of their own before answering.
const READ_TIMEOUT: Duration = Duration::from_secs(600);
/// A look at the heads alone ([`HttpRemote::listed_refs`]) gives up after this long.
const LISTING_TIMEOUT: Duration = Duration::from_secs(20);
/// Redirects within the configured host followed for the advertisement, as git does for the
/// initial request.
const MAX_REDIRECTS: usize = 5;
/// What of the hooks' output a refusal quotes.
const MAX_MESSAGE: usize = 2_000;

#[derive(Debug, Error)]
pub enum ReceivePackError {
    #[error("cannot send the request to {url}: {source}")]
    Send {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("cannot set up the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("cannot start the HTTP client's runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("{url} answered {status}")]
    Status { url: String, status: u16 },
    #[error(
        "{url} redirected to {location}; not followed: the remote's credentials go only to its own host"
    )]
    Redirect { url: String, location: String },
    #[error("authentication required but no credentials are configured for this remote")]
    NoCredentials,
    #[error("authentication failed (credentials from {source_name})")]
    AuthFailed { source_name: String },
    #[error("{url} does not speak git's smart HTTP protocol: {reason}")]
    Protocol { url: String, reason: String },
    #[error("push-options not supported by remote")]
    NoPushOptions,
    #[error("unpacking the sent packfile failed on the remote: {0}")]
    Unpack(String),
    #[error("the remote reported an error: {0}")]
    Remote(String),
}

impl ReceivePackError {
    /// The credentials were refused or are missing: the same settings fail again.
    pub fn is_rejection(&self) -> bool {
        matches!(self, Self::NoCredentials | Self::AuthFailed { .. })
    }
}

/// A remote reached over smart HTTP(S), with the credentials configured for it.
#[derive(Debug)]
pub struct HttpRemote<'a> {
    /// The repository's URL, without user info.
    pub url: reqwest::Url,
    /// `(user, password)` for basic auth, and where they came from.
    pub basic: Option<(&'a str, &'a str, &'a str)>,
}

/// What `info/refs` advertised.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Advertisement {
    pub refs: Vec<(String, Oid)>,
    pub capabilities: Vec<String>,
    /// Where `git-receive-pack` is, after redirects within the host.
    pub service_url: String,
}

impl Advertisement {
    pub fn get(&self, name: &str) -> Option<Oid> {
        self.refs.iter().find(|(n, _)| n == name).map(|(_, id)| *id)
    }

    pub fn has(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }

    /// Whether some advertised reference points at `commit`.
    pub fn points_at(&self, commit: Oid) -> bool {
        self.refs.iter().any(|(_, id)| *id == commit)
    }
}

/// The server's answer to one reference update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// `ng <ref> <reason>`, and what the hooks printed (side band 2).
    Refused {
        reason: String,
        messages: String,
    },
}

impl Status {
    /// The refusal as a person reads it: the reason, then what the hooks said.
    pub fn describe(reason: &str, messages: &str) -> String {
        let messages = messages.trim();
        if messages.is_empty() {
            return reason.to_string();
        }
        let mut text = format!("{reason}: {messages}");
        if text.len() > MAX_MESSAGE {
            let mut end = MAX_MESSAGE;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push('…');
        }
        text
    }
}

/// One reference update.
#[derive(Debug)]
pub struct Command<'a> {
    pub old: Option<Oid>,
    pub new: Oid,
    pub refname: &'a str,
    pub push_options: &'a [String],
}

impl HttpRemote<'_> {
    /// `GET info/refs?service=git-receive-pack`.
    pub fn advertisement(&self) -> Result<Advertisement, ReceivePackError> {
        let listed = block_on(self.advertise(None))??;
        listed
            .into_advertisement()
            .map_err(|reason| self.protocol(reason))
    }

    /// The advertised references, each id as the server spelled it (40 hex digits): read
    /// without libgit2, which a `once` with nothing new then never starts. Bounded by
    /// [`LISTING_TIMEOUT`]: a caller that gets no answer goes on the way it would without.
    pub fn listed_refs(&self) -> Result<Vec<(String, String)>, ReceivePackError> {
        Ok(block_on(self.advertise(Some(LISTING_TIMEOUT)))??.refs)
    }

    /// Sends `command` with `pack` (a whole pack file, trailer included) to the service the
    /// advertisement named.
    pub fn push(
        &self,
        adv: &Advertisement,
        command: &Command<'_>,
        pack: Vec<u8>,
    ) -> Result<Status, ReceivePackError> {
        block_on(self.post(adv, command, pack))?
    }

    async fn advertise(&self, timeout: Option<Duration>) -> Result<Listed, ReceivePackError> {
        let client = client(self.url.scheme() == "https")?;
        let mut base = self.url.as_str().trim_end_matches('/').to_string();
        for _ in 0..=MAX_REDIRECTS {
            let url = format!("{base}/info/refs?service=git-receive-pack");
            let mut request = client.get(&url);
            if let Some(timeout) = timeout {
                request = request.timeout(timeout);
            }
            let response = self
                .authorize(request)
                .send()
                .await
                .map_err(|source| self.send_err(source))?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .unwrap_or_default();
                let next = reqwest::Url::parse(&url)
                    .and_then(|u| u.join(location))
                    .map_err(|_| ReceivePackError::Protocol {
                        url: self.url.to_string(),
                        reason: format!("redirect to an unreadable location {location:?}"),
                    })?;
                if !same_origin(&next, &self.url) {
                    return Err(ReceivePackError::Redirect {
                        url: self.url.to_string(),
                        location: super::redact_url(next.as_str()),
                    });
                }
                let path = next.as_str();
                base = path
                    .split_once("/info/refs")
                    .map_or(path, |(b, _)| b)
                    .to_string();
                continue;
            }
            self.check_status(status)?;
            let is_smart = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with(ADVERTISEMENT));
            if !is_smart {
                return Err(self.protocol("no receive-pack advertisement (a dumb server?)"));
            }
            let body = response
                .bytes()
                .await
                .map_err(|source| self.send_err(source))?;
            let mut listed = parse_advertisement(&body).map_err(|reason| self.protocol(reason))?;
            listed.service_url = format!("{base}/git-receive-pack");
            return Ok(listed);
        }
        Err(self.protocol("too many redirects"))
    }

    async fn post(
        &self,
        adv: &Advertisement,
        command: &Command<'_>,
        pack: Vec<u8>,
    ) -> Result<Status, ReceivePackError> {
        if !command.push_options.is_empty() && !adv.has("push-options") {
            return Err(ReceivePackError::NoPushOptions);
        }
        let side_band = adv.has("side-band-64k");
        let body = request_body(command, side_band, pack);
        let client = client(self.url.scheme() == "https")?;
        let response = self
            .authorize(client.post(&adv.service_url))
            .header(CONTENT_TYPE, REQUEST)
            .header(ACCEPT, RESULT)
            .body(body)
            .send()
            .await
            .map_err(|source| self.send_err(source))?;
        let status = response.status();
        if status.is_redirection() {
            return Err(ReceivePackError::Redirect {
                url: self.url.to_string(),
                location: super::redact_url(
                    response
                        .headers()
                        .get(LOCATION)
                        .and_then(|l| l.to_str().ok())
                        .unwrap_or_default(),
                ),
            });
        }
        self.check_status(status)?;
        let body = response
            .bytes()
            .await
            .map_err(|source| self.send_err(source))?;
        parse_result(&body, side_band, command.refname).map_err(|e| match e {
            ResultError::Protocol(reason) => self.protocol(reason),
            ResultError::Unpack(reason) => ReceivePackError::Unpack(reason),
            ResultError::Remote(reason) => ReceivePackError::Remote(super::redact_url(&reason)),
        })
    }

    fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.basic {
            Some((user, password, _)) => {
                use base64::Engine as _;
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                match HeaderValue::from_str(&format!("Basic {token}")) {
                    Ok(mut value) => {
                        // Keeps it out of reqwest's and hyper's debug output.
                        value.set_sensitive(true);
                        request.header(AUTHORIZATION, value)
                    }
                    Err(_) => request,
                }
            }
            None => request,
        }
    }

    fn check_status(&self, status: reqwest::StatusCode) -> Result<(), ReceivePackError> {
        match (status.as_u16(), self.basic) {
            (200, _) => Ok(()),
            (401, None) => Err(ReceivePackError::NoCredentials),
            (401 | 403, Some((_, _, source))) => Err(ReceivePackError::AuthFailed {
                source_name: source.to_string(),
            }),
            (code, _) => Err(ReceivePackError::Status {
                url: self.url.to_string(),
                status: code,
            }),
        }
    }

    fn send_err(&self, source: reqwest::Error) -> ReceivePackError {
        ReceivePackError::Send {
            url: self.url.to_string(),
            source: source.without_url(),
        }
    }

    fn protocol(&self, reason: impl Into<String>) -> ReceivePackError {
        ReceivePackError::Protocol {
            url: self.url.to_string(),
            reason: reason.into(),
        }
    }
}

/// Scheme, host and port are the same: the only place the remote's credentials may go.
fn same_origin(a: &reqwest::Url, b: &reqwest::Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// One client per scheme for the process. Connections are not pooled: each push may run on a
/// runtime of its own, and a pooled connection belongs to the runtime that opened it. TLS
/// trusts the system's certificates as libgit2's OpenSSL does (`SSL_CERT_FILE` and
/// `SSL_CERT_DIR` included), not a bundled list; no proxy, as libgit2 is used without one.
fn client(tls: bool) -> Result<reqwest::Client, ReceivePackError> {
    static PLAIN: OnceLock<reqwest::Client> = OnceLock::new();
    static TLS: OnceLock<reqwest::Client> = OnceLock::new();
    let slot = if tls { &TLS } else { &PLAIN };
    if let Some(client) = slot.get() {
        return Ok(client.clone());
    }
    let client = reqwest::Client::builder()
        .user_agent(concat!(
            "git/2.0 (tagsmith/",
            env!("CARGO_PKG_VERSION"),
            ")"
        ))
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .no_proxy()
        .tls_built_in_webpki_certs(false)
        .tls_built_in_native_certs(tls)
        .build()
        .map_err(ReceivePackError::Client)?;
    Ok(slot.get_or_init(|| client).clone())
}

/// Runs `f` on the caller's runtime when there is one (pushes run on `spawn_blocking`), else
/// on a runtime of its own.
fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, ReceivePackError> {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        return Ok(handle.block_on(f));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ReceivePackError::Runtime)?;
    Ok(runtime.block_on(f))
}

/// A pkt-line: four hex digits of length (their own included), then the payload.
fn pkt_line(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(format!("{:04x}", payload.len() + 4).as_bytes());
    out.extend_from_slice(payload);
}

const FLUSH: &[u8] = b"0000";

fn hex_id(id: Option<Oid>) -> String {
    id.unwrap_or(Oid::ZERO_SHA1).to_string()
}

/// The command list, the push options and the pack (gitprotocol-pack, "Reference Update
/// Request and Packfile Transfer").
fn request_body(command: &Command<'_>, side_band: bool, mut pack: Vec<u8>) -> Vec<u8> {
    let mut caps = vec!["report-status"];
    if side_band {
        caps.push("side-band-64k");
    }
    if !command.push_options.is_empty() {
        caps.push("push-options");
    }
    caps.push(AGENT);
    let mut out = Vec::with_capacity(256);
    let line = format!(
        "{} {} {}\0{}\n",
        hex_id(command.old),
        command.new,
        command.refname,
        caps.join(" ")
    );
    pkt_line(&mut out, line.as_bytes());
    out.extend_from_slice(FLUSH);
    if !command.push_options.is_empty() {
        for option in command.push_options {
            pkt_line(&mut out, format!("{option}\n").as_bytes());
        }
        out.extend_from_slice(FLUSH);
    }
    // The pack (megabytes) moves up in its own buffer rather than being copied beside itself;
    // room made exactly (a splice alone would double the buffer).
    pack.reserve_exact(out.len());
    pack.splice(0..0, out);
    pack
}

/// Splits `data` into pkt-lines; `None` for a flush packet.
fn pkt_lines(mut data: &[u8]) -> Result<Vec<Option<&[u8]>>, String> {
    let mut lines = Vec::new();
    while !data.is_empty() {
        let len = data
            .get(..4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| usize::from_str_radix(h, 16).ok())
            .ok_or_else(|| "a pkt-line without a length".to_string())?;
        match len {
            0 => lines.push(None),
            // delim-pkt and response-end-pkt (protocol v2) carry nothing here.
            1 | 2 => {}
            3 => return Err("a pkt-line of length 3".into()),
            _ => {
                let payload = data
                    .get(4..len)
                    .ok_or_else(|| "a pkt-line cut short".to_string())?;
                lines.push(Some(payload));
            }
        }
        data = &data[len.max(4)..];
    }
    Ok(lines)
}

fn trim_lf(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\n").unwrap_or(line)
}

/// An advertisement as sent: ids in hex, not yet libgit2's.
#[derive(Debug, Default)]
struct Listed {
    refs: Vec<(String, String)>,
    capabilities: Vec<String>,
    service_url: String,
}

impl Listed {
    fn into_advertisement(self) -> Result<Advertisement, String> {
        let refs = self
            .refs
            .into_iter()
            .map(|(name, id)| {
                Oid::from_str(&id)
                    .map(|id| (name, id))
                    .map_err(|_| format!("an unreadable object id {id:?}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Advertisement {
            refs,
            capabilities: self.capabilities,
            service_url: self.service_url,
        })
    }
}

/// `# service=git-receive-pack`, a flush, then `<id> <ref>` lines, the first carrying the
/// capabilities after a NUL (gitprotocol-http, "Smart Clients"; gitprotocol-pack, "Reference
/// Discovery"). An empty repository advertises `capabilities^{}` with the zero id.
fn parse_advertisement(body: &[u8]) -> Result<Listed, String> {
    let lines = pkt_lines(body)?;
    let mut lines = lines.into_iter();
    match lines.next() {
        Some(Some(first)) if trim_lf(first) == b"# service=git-receive-pack" => {}
        _ => return Err("the advertisement does not start with its service line".into()),
    }
    let mut listed = Listed::default();
    for line in lines.skip_while(Option::is_none) {
        let Some(line) = line else { break };
        let line = trim_lf(line);
        let (refpart, caps) = match line.iter().position(|&b| b == 0) {
            Some(nul) => (&line[..nul], Some(&line[nul + 1..])),
            None => (line, None),
        };
        if let Some(caps) = caps {
            listed.capabilities = String::from_utf8_lossy(caps)
                .split(' ')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect();
        }
        let text = String::from_utf8_lossy(refpart);
        let (id, name) = text
            .split_once(' ')
            .ok_or_else(|| format!("an unreadable reference line {text:?}"))?;
        if id.len() != 40 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("an unreadable object id {id:?}"));
        }
        if name != "capabilities^{}" && !name.ends_with("^{}") {
            listed
                .refs
                .push((name.to_string(), id.to_ascii_lowercase()));
        }
    }
    Ok(listed)
}

#[derive(Debug, PartialEq, Eq)]
enum ResultError {
    Protocol(String),
    Unpack(String),
    Remote(String),
}

/// The server's `report-status` for `refname`, read from side band 1 when side bands were
/// asked for (band 2 carries the hooks' output, band 3 a fatal error).
fn parse_result(body: &[u8], side_band: bool, refname: &str) -> Result<Status, ResultError> {
    let mut report = Vec::new();
    let mut messages = String::new();
    if side_band {
        for line in pkt_lines(body).map_err(ResultError::Protocol)? {
            let Some(line) = line else { continue };
            match line.split_first() {
                Some((1, data)) => report.extend_from_slice(data),
                Some((2, text)) => messages.push_str(&String::from_utf8_lossy(text)),
                Some((3, text)) => {
                    return Err(ResultError::Remote(
                        String::from_utf8_lossy(text).trim().to_string(),
                    ));
                }
                _ => return Err(ResultError::Protocol("an unknown side band".into())),
            }
        }
    } else {
        report = body.to_vec();
    }
    let mut unpack = None;
    let mut status = None;
    for line in pkt_lines(&report).map_err(ResultError::Protocol)? {
        let Some(line) = line else { break };
        let text = String::from_utf8_lossy(trim_lf(line)).to_string();
        if let Some(result) = text.strip_prefix("unpack ") {
            unpack = Some(result.to_string());
        } else if let Some(name) = text.strip_prefix("ok ") {
            if name == refname {
                status = Some(Status::Ok);
            }
        } else if let Some(rest) = text.strip_prefix("ng ") {
            let (name, reason) = rest.split_once(' ').unwrap_or((rest, "rejected"));
            if name == refname {
                status = Some(Status::Refused {
                    reason: reason.to_string(),
                    messages: hook_messages(&messages),
                });
            }
        }
    }
    match unpack.as_deref() {
        Some("ok") => {}
        Some(reason) => return Err(ResultError::Unpack(reason.to_string())),
        None => {
            return Err(ResultError::Protocol(
                "the report has no unpack status".into(),
            ));
        }
    }
    status.ok_or_else(|| ResultError::Protocol(format!("the report does not name {refname}")))
}

/// Side band 2 as lines (progress uses `\r` to redraw), blank ones dropped.
fn hook_messages(text: &str) -> String {
    text.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        pkt_line(&mut out, s.as_bytes());
        out
    }

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";

    #[test]
    fn pkt_lines_carry_their_own_length() {
        // gitprotocol-common, "pkt-line Format": "0006a\n" is "a\n".
        assert_eq!(pkt("a\n"), b"0006a\n");
        assert_eq!(
            pkt_lines(b"0006a\n00000005b").unwrap(),
            vec![Some(&b"a\n"[..]), None, Some(&b"b"[..])]
        );
        assert!(pkt_lines(b"0009ab").is_err());
        assert!(pkt_lines(b"zz").is_err());
    }

    #[test]
    fn advertisements_give_refs_and_capabilities() {
        let mut body = pkt("# service=git-receive-pack\n");
        body.extend_from_slice(FLUSH);
        body.extend(pkt(&format!(
            "{A} refs/heads/main\0report-status side-band-64k push-options agent=git/2.47\n"
        )));
        body.extend(pkt(&format!("{B} refs/tags/v1\n")));
        body.extend(pkt(&format!("{A} refs/tags/v1^{{}}\n")));
        body.extend_from_slice(FLUSH);
        let listed = parse_advertisement(&body).unwrap();
        assert_eq!(
            listed.refs[0],
            ("refs/heads/main".to_string(), A.to_string())
        );
        let adv = listed.into_advertisement().unwrap();
        assert_eq!(adv.get("refs/heads/main"), Some(Oid::from_str(A).unwrap()));
        assert_eq!(adv.get("refs/tags/v1"), Some(Oid::from_str(B).unwrap()));
        assert_eq!(adv.refs.len(), 2);
        assert!(adv.has("push-options") && adv.has("side-band-64k"));
        assert!(!adv.has("atomic"));
    }

    #[test]
    fn an_unreadable_id_fails_the_advertisement() {
        let mut body = pkt("# service=git-receive-pack\n");
        body.extend_from_slice(FLUSH);
        body.extend(pkt("zz11 refs/heads/main\0report-status\n"));
        body.extend_from_slice(FLUSH);
        let err = parse_advertisement(&body).unwrap_err();
        assert!(err.contains("unreadable object id"), "{err}");
    }

    #[test]
    fn an_empty_repository_advertises_capabilities_only() {
        let mut body = pkt("# service=git-receive-pack\n");
        body.extend_from_slice(FLUSH);
        body.extend(pkt(&format!(
            "{} capabilities^{{}}\0report-status\n",
            Oid::ZERO_SHA1
        )));
        body.extend_from_slice(FLUSH);
        let adv = parse_advertisement(&body)
            .unwrap()
            .into_advertisement()
            .unwrap();
        assert!(adv.refs.is_empty());
        assert!(adv.has("report-status"));
    }

    #[test]
    fn requests_name_old_new_and_ref_then_options_then_the_pack() {
        let options = vec!["ci.skip".to_string()];
        let command = Command {
            old: None,
            new: Oid::from_str(B).unwrap(),
            refname: "refs/heads/x",
            push_options: &options,
        };
        let body = request_body(&command, true, b"PACK...".to_vec());
        let text = String::from_utf8_lossy(&body).to_string();
        let zero = Oid::ZERO_SHA1;
        let line =
            format!("{zero} {B} refs/heads/x\0report-status side-band-64k push-options {AGENT}\n");
        assert!(
            text.starts_with(&format!("{:04x}{line}0000", line.len() + 4)),
            "{text:?}"
        );
        assert!(text.ends_with("0000000cci.skip\n0000PACK..."), "{text:?}");
    }

    fn sideband(band: u8, payload: &[u8]) -> Vec<u8> {
        let mut data = vec![band];
        data.extend_from_slice(payload);
        let mut out = Vec::new();
        pkt_line(&mut out, &data);
        out
    }

    #[test]
    fn a_refusal_carries_the_hooks_output() {
        let mut report = pkt("unpack ok\n");
        report.extend(pkt("ng refs/heads/main pre-receive hook declined\n"));
        report.extend_from_slice(FLUSH);
        let mut body = sideband(2, b"protected branch\n");
        body.extend(sideband(1, &report));
        body.extend_from_slice(FLUSH);
        let status = parse_result(&body, true, "refs/heads/main").unwrap();
        assert_eq!(
            status,
            Status::Refused {
                reason: "pre-receive hook declined".into(),
                messages: "protected branch".into()
            }
        );
        assert_eq!(
            Status::describe("pre-receive hook declined", "protected branch"),
            "pre-receive hook declined: protected branch"
        );
    }

    #[test]
    fn results_without_side_band_and_failed_unpacks_are_read() {
        let mut report = pkt("unpack ok\n");
        report.extend(pkt("ok refs/heads/main\n"));
        report.extend_from_slice(FLUSH);
        assert_eq!(
            parse_result(&report, false, "refs/heads/main").unwrap(),
            Status::Ok
        );
        let mut bad = pkt("unpack index-pack abnormal exit\n");
        bad.extend(pkt("ng refs/heads/main unpacker error\n"));
        bad.extend_from_slice(FLUSH);
        assert_eq!(
            parse_result(&bad, false, "refs/heads/main").unwrap_err(),
            ResultError::Unpack("index-pack abnormal exit".into())
        );
        let fatal = sideband(3, b"fatal: out of space\n");
        assert_eq!(
            parse_result(&fatal, true, "refs/heads/main").unwrap_err(),
            ResultError::Remote("fatal: out of space".into())
        );
    }

    #[test]
    fn only_the_configured_origin_is_the_same_origin() {
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        assert!(same_origin(
            &url("http://127.0.0.1:80/a.git"),
            &url("http://127.0.0.1/b")
        ));
        assert!(!same_origin(
            &url("http://localhost:8080/a"),
            &url("http://127.0.0.1:8080/a")
        ));
        assert!(!same_origin(&url("https://h/a"), &url("http://h/a")));
    }
}
