//! Test harness: the real `docker-registry` on a free loopback port with a temp storage dir,
//! image pushes through the registry API, and a proxy that adds paging and faults.

#![allow(dead_code, clippy::unwrap_used)]

pub mod cosign;
pub mod pki;
pub mod proxy;
pub mod service;
pub mod token;
pub mod workspace;

use std::sync::Arc;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// How the registry checks clients.
#[derive(Debug, Clone)]
pub enum Auth {
    None,
    /// `auth: htpasswd` with one user (bcrypt, as the registry requires).
    Htpasswd {
        user: String,
        password: String,
    },
    /// `auth: token`: the registry verifies JWTs signed by `keys` (chained to `ca_pem`).
    Token {
        realm: String,
        keys: Arc<pki::TokenKeys>,
        ca_pem: String,
    },
}

/// Serve https with this certificate.
#[derive(Debug, Clone)]
pub struct Tls {
    pub cert_pem: String,
    pub key_pem: String,
    pub ca_pem: String,
}

/// A running `docker-registry serve`, stopped and its storage removed on drop.
#[derive(Debug)]
pub struct Registry {
    child: Child,
    pub dir: tempfile::TempDir,
    /// `127.0.0.1:<port>`
    pub host: String,
    pub auth: Auth,
    pub tls: Option<Tls>,
}

pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn require_registry_binary() {
    assert!(
        Path::new(REGISTRY_BIN).exists(),
        "{REGISTRY_BIN} is missing: install Debian's registry with `apt-get install docker-registry` \
         (or run scripts/setup as root)"
    );
}

/// `docker-registry serve DIR/config.yml`, logging to `DIR/registry.log`.
fn spawn_registry(dir: &Path) -> Child {
    let log = std::fs::File::create(dir.join("registry.log")).unwrap();
    Command::new(REGISTRY_BIN)
        .arg("serve")
        .arg(dir.join("config.yml"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {REGISTRY_BIN}: {e}"))
}

impl Registry {
    pub fn start(auth: Auth) -> Self {
        Self::start_with(auth, None)
    }

    pub fn start_with(auth: Auth, tls: Option<Tls>) -> Self {
        Self::start_configured(auth, tls, "")
    }

    /// `extra` is appended to the generated registry config (top-level YAML sections, such as
    /// `notifications:`).
    pub fn start_configured(auth: Auth, tls: Option<Tls>, extra: &str) -> Self {
        require_registry_binary();
        // A port picked here may be taken before the registry binds it; try a few.
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let auth_yaml = match &auth {
                Auth::None => String::new(),
                Auth::Htpasswd { user, password } => {
                    let hash = bcrypt::hash(password, 5).unwrap();
                    let path = dir.path().join("htpasswd");
                    std::fs::write(&path, format!("{user}:{hash}\n")).unwrap();
                    format!(
                        "auth:\n  htpasswd:\n    realm: tagsmith-test\n    path: {}\n",
                        path.display()
                    )
                }
                Auth::Token {
                    realm,
                    keys,
                    ca_pem,
                } => {
                    let path = dir.path().join("token-ca.pem");
                    std::fs::write(&path, ca_pem).unwrap();
                    format!(
                        "auth:\n  token:\n    realm: {realm}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                        keys.service,
                        keys.issuer,
                        path.display()
                    )
                }
            };
            let tls_yaml = match &tls {
                None => String::new(),
                Some(tls) => {
                    let cert = dir.path().join("server.pem");
                    let key = dir.path().join("server.key");
                    std::fs::write(&cert, &tls.cert_pem).unwrap();
                    std::fs::write(&key, &tls.key_pem).unwrap();
                    format!(
                        "  tls:\n    certificate: {}\n    key: {}\n",
                        cert.display(),
                        key.display()
                    )
                }
            };
            let host = format!("127.0.0.1:{}", free_port());
            let config = format!(
                "version: 0.1\n\
                 log:\n  level: error\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n\
                 http:\n  addr: {host}\n  secret: tagsmith-test-secret\n{tls_yaml}\
                 {auth_yaml}{extra}",
                data = dir.path().join("data").display(),
            );
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config).unwrap();
            let child = spawn_registry(dir.path());
            let mut registry = Registry {
                child,
                dir,
                host,
                auth: auth.clone(),
                tls: tls.clone(),
            };
            if registry.wait_ready() {
                return registry;
            }
            let log = std::fs::read_to_string(registry.dir.path().join("registry.log"))
                .unwrap_or_default();
            eprintln!("registry did not come up on {}; log:\n{log}", registry.host);
        }
        panic!("docker-registry did not start; see the logs above");
    }

    /// Polls `/v2/` until the registry answers (200, or 401 with auth on).
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(mut stream) = std::net::TcpStream::connect(&self.host) {
                use std::io::{Read, Write};
                let request = format!("GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n", self.host);
                if stream.write_all(request.as_bytes()).is_ok() {
                    let mut buf = [0u8; 32];
                    if let Ok(n) = stream.read(&mut buf) {
                        let head = String::from_utf8_lossy(&buf[..n]);
                        // A TLS registry answers plain http with 400.
                        if head.contains(" 200") || head.contains(" 401") || head.contains(" 400") {
                            return true;
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Stops the registry, keeping its storage and port for [`Registry::restart`].
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the registry again on the same address with the same storage.
    pub fn restart(&mut self) {
        self.child = spawn_registry(self.dir.path());
        assert!(
            self.wait_ready(),
            "the registry did not come back on {}",
            self.host
        );
    }

    pub fn base_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.host)
    }

    pub fn pusher(&self) -> Pusher {
        let credentials = match &self.auth {
            Auth::None => PushAuth::None,
            Auth::Htpasswd { user, password } => PushAuth::Basic(user.clone(), password.clone()),
            Auth::Token { keys, .. } => PushAuth::Token(Arc::clone(keys)),
        };
        let mut http = reqwest::Client::builder();
        if let Some(tls) = &self.tls {
            http = http.add_root_certificate(
                reqwest::Certificate::from_pem(tls.ca_pem.as_bytes()).unwrap(),
            );
        }
        Pusher {
            base: self.base_url(),
            http: http.build().unwrap(),
            credentials,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Pushes blobs and manifests through the distribution API.
#[derive(Debug, Clone)]
pub struct Pusher {
    base: String,
    http: reqwest::Client,
    credentials: PushAuth,
}

#[derive(Debug, Clone)]
enum PushAuth {
    None,
    Basic(String, String),
    /// Tokens minted directly with push rights for the repository.
    Token(Arc<pki::TokenKeys>),
}

impl Pusher {
    fn auth(&self, repo: &str, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.credentials {
            PushAuth::Basic(user, password) => request.basic_auth(user, Some(password)),
            PushAuth::Token(keys) => {
                let access = [(
                    repo.to_string(),
                    vec!["pull".to_string(), "push".to_string()],
                )];
                request.bearer_auth(keys.mint("pusher", &access, 300))
            }
            PushAuth::None => request,
        }
    }

    /// Monolithic upload: POST for a session, PUT the bytes with their digest.
    pub async fn blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256(bytes);
        let start = self
            .auth(
                repo,
                self.http
                    .post(format!("{}/v2/{repo}/blobs/uploads/", self.base)),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(start.status().as_u16(), 202, "start upload for {repo}");
        let location = start.headers()["location"].to_str().unwrap().to_string();
        let location = if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            location
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let put = self
            .auth(
                repo,
                self.http.put(format!("{location}{sep}digest={digest}")),
            )
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(put.status().as_u16(), 201, "finish upload for {repo}");
        digest
    }

    /// PUTs a manifest under a tag or digest; returns the digest the registry reports.
    pub async fn manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> String {
        let response = self
            .auth(
                repo,
                self.http
                    .put(format!("{}/v2/{repo}/manifests/{reference}", self.base)),
            )
            .header("content-type", media_type)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let digest = response
            .headers()
            .get("docker-content-digest")
            .map(|v| v.to_str().unwrap().to_string());
        assert_eq!(
            status.as_u16(),
            201,
            "put manifest {repo}:{reference}: {:?}",
            response.text().await
        );
        digest.unwrap()
    }

    /// Uploads `config` and one `layer` as blobs; returns the manifest bytes naming them.
    async fn manifest_of(&self, repo: &str, config: &str, layer: &str) -> Vec<u8> {
        let config_digest = self.blob(repo, config.as_bytes()).await;
        let layer_digest = self.blob(repo, layer.as_bytes()).await;
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{layer_digest}","size":{}}}]}}"#,
            config.len(),
            layer.len()
        )
        .into_bytes()
    }

    /// One single-platform image: config and layer blobs, and its manifest bytes (not pushed).
    pub async fn image_manifest(&self, repo: &str, arch: &str) -> Vec<u8> {
        let config = format!(
            r#"{{"architecture":"{arch}","os":"linux","config":{{"Labels":{{"repo":"{repo}"}}}},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#
        );
        let layer = format!("layer of {repo} for {arch}");
        self.manifest_of(repo, &config, &layer).await
    }

    /// Pushes one image and tags it with every tag (at most 16 PUTs at once); returns its digest.
    pub async fn push_tags(&self, repo: &str, tags: &[String]) -> String {
        use futures_util::StreamExt as _;
        let manifest = self.image_manifest(repo, "amd64").await;
        let digest = sha256(&manifest);
        let results: Vec<String> = futures_util::stream::iter(tags.iter())
            .map(|tag| {
                let manifest = manifest.clone();
                async move { self.manifest(repo, tag, OCI_MANIFEST, &manifest).await }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        assert!(results.iter().all(|d| *d == digest));
        digest
    }

    /// A multi-arch image: two manifests by digest and an OCI index under `tag`.
    /// Returns (index digest, per-platform digests).
    pub async fn push_index(&self, repo: &str, tag: &str) -> (String, Vec<String>) {
        let mut entries = Vec::new();
        let mut platform_digests = Vec::new();
        for arch in ["amd64", "arm64"] {
            let manifest = self.image_manifest(repo, arch).await;
            let digest = sha256(&manifest);
            let reported = self.manifest(repo, &digest, OCI_MANIFEST, &manifest).await;
            assert_eq!(reported, digest);
            entries.push(format!(
                r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{digest}","size":{},"platform":{{"architecture":"{arch}","os":"linux"}}}}"#,
                manifest.len()
            ));
            platform_digests.push(digest);
        }
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
            entries.join(",")
        );
        let digest = self.manifest(repo, tag, OCI_INDEX, index.as_bytes()).await;
        assert_eq!(digest, sha256(index.as_bytes()));
        (digest, platform_digests)
    }
}

/// Images for the gate tests: chosen `created` times and platforms, indexes, and cosign
/// signature artifacts written as cosign writes them.
impl Pusher {
    /// A single-platform image (`os/arch[/variant]`) whose config has `created` (none when
    /// `None`); `salt` makes its digest its own. Returns the manifest bytes (not pushed).
    pub async fn image_manifest_for(
        &self,
        repo: &str,
        platform: &str,
        created: Option<&str>,
        salt: &str,
    ) -> Vec<u8> {
        let mut parts = platform.split('/');
        let os = parts.next().unwrap();
        let arch = parts.next().unwrap();
        let variant = parts
            .next()
            .map(|v| format!(r#","variant":"{v}""#))
            .unwrap_or_default();
        let created = created
            .map(|c| format!(r#""created":"{c}","#))
            .unwrap_or_default();
        let config = format!(
            r#"{{{created}"architecture":"{arch}","os":"{os}"{variant},"config":{{"Labels":{{"salt":"{salt}"}}}},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#
        );
        let layer = format!("layer of {repo} {salt} {platform}");
        self.manifest_of(repo, &config, &layer).await
    }

    /// Pushes a linux/amd64 image created at `created` under `tag`; returns its digest.
    pub async fn push_image(&self, repo: &str, tag: &str, created: Option<&str>) -> String {
        let manifest = self
            .image_manifest_for(repo, "linux/amd64", created, tag)
            .await;
        self.manifest(repo, tag, OCI_MANIFEST, &manifest).await
    }

    /// Pushes an OCI index under `tag` with one image per platform, each created at
    /// `created`; returns the index digest.
    pub async fn push_platforms(
        &self,
        repo: &str,
        tag: &str,
        platforms: &[&str],
        created: Option<&str>,
    ) -> String {
        let mut entries = Vec::new();
        for platform in platforms {
            let manifest = self.image_manifest_for(repo, platform, created, tag).await;
            let digest = self
                .manifest(repo, &sha256(&manifest), OCI_MANIFEST, &manifest)
                .await;
            let mut parts = platform.split('/');
            let (os, arch) = (parts.next().unwrap(), parts.next().unwrap());
            let variant = parts
                .next()
                .map(|v| format!(r#","variant":"{v}""#))
                .unwrap_or_default();
            entries.push(format!(
                r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{digest}","size":{},"platform":{{"architecture":"{arch}","os":"{os}"{variant}}}}}"#,
                manifest.len()
            ));
        }
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
            entries.join(",")
        );
        self.manifest(repo, tag, OCI_INDEX, index.as_bytes()).await
    }

    /// A cosign signature artifact for `digest`, as `cosign sign` stores it without OCI 1.1:
    /// an image manifest tagged `sha256-<hex>.sig` whose layers are the simple-signing payloads,
    /// each with its base64 signature in the `dev.cosignproject.cosign/signature` annotation.
    pub async fn push_signature(&self, repo: &str, digest: &str, signatures: &[(Vec<u8>, String)]) {
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        for (payload, signature) in signatures {
            let payload_digest = self.blob(repo, payload).await;
            diff_ids.push(format!("\"{payload_digest}\""));
            layers.push(format!(
                r#"{{"mediaType":"{}","size":{},"digest":"{payload_digest}","annotations":{{"{}":"{signature}"}}}}"#,
                cosign::SIMPLE_SIGNING,
                payload.len(),
                cosign::SIGNATURE_ANNOTATION
            ));
        }
        // cosign's config for a signature image: empty platform, zero times, the payloads as diff ids.
        let config = format!(
            r#"{{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{{"created":"0001-01-01T00:00:00Z"}}],"os":"","rootfs":{{"type":"layers","diff_ids":[{}]}},"config":{{}}}}"#,
            diff_ids.join(",")
        );
        let config_digest = self.blob(repo, config.as_bytes()).await;
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":{},"digest":"{config_digest}"}},"layers":[{}]}}"#,
            config.len(),
            layers.join(",")
        );
        let tag = format!("{}.sig", digest.replacen(':', "-", 1));
        self.manifest(repo, &tag, OCI_MANIFEST, manifest.as_bytes())
            .await;
    }
}

/// `prefix-0000` .. with `n` entries, in a shuffled-looking but fixed order.
pub fn tag_names(prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{prefix}{:05}", (i * 7919) % n))
        .collect()
}

pub fn temp_path(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

/// Names the one test a child started by [`in_own_process`] runs.
const OWN_PROCESS: &str = "TAGSMITH_TEST_OWN_PROCESS";

/// For a test that changes something process-wide (the global log subscriber), which it must
/// not do in the process all the other tests share. In the test binary's own run: runs `test`
/// (its path in the binary, `module::name`) again in a child process of its own, asserts that
/// exactly that one test ran there and passed, and returns false: the caller returns. In that
/// child: returns true, and the test goes on.
pub fn in_own_process(test: &str) -> bool {
    if std::env::var_os(OWN_PROCESS).is_some_and(|t| t == test) {
        return true;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--test-threads", "1"])
        .env(OWN_PROCESS, test)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{test} in a process of its own:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    false
}
