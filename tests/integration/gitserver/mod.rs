//! Test harness: real Git remotes. Bare repositories seeded with the git CLI, and a smart HTTP
//! server (`git http-backend` as CGI behind a small HTTP/1.1 server on 127.0.0.1) with optional
//! basic auth and a hook that runs just before the first push is received.

#![allow(dead_code, clippy::unwrap_used)]

pub mod ssh;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// Runs git with a fixed identity and no user or system config, failing loudly.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test Person")
        .env("GIT_AUTHOR_EMAIL", "person@example.invalid")
        .env("GIT_COMMITTER_NAME", "Test Person")
        .env("GIT_COMMITTER_EMAIL", "person@example.invalid")
        .output()
        .unwrap_or_else(|e| panic!("cannot run git ({e}): install it with apt (git)"));
    assert!(
        out.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A bare repository `name.git` under `root` whose `main` holds `files`.
pub fn bare_repo(root: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let bare = root.join(format!("{name}.git"));
    std::fs::create_dir_all(&bare).unwrap();
    git(&bare, &["init", "--bare", "--initial-branch=main", "-q"]);
    let seed = root.join(format!("{name}-seed"));
    std::fs::create_dir_all(&seed).unwrap();
    git(&seed, &["init", "--initial-branch=main", "-q"]);
    for (path, content) in files {
        let full = seed.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
    }
    git(&seed, &["add", "-A"]);
    git(&seed, &["commit", "-qm", "seed"]);
    git(&seed, &["push", "-q", bare.to_str().unwrap(), "main"]);
    std::fs::remove_dir_all(&seed).unwrap();
    bare
}

/// Commits `path` = `content` to `branch` of `bare` from a throwaway clone (another writer).
pub fn commit_elsewhere(bare: &Path, branch: &str, path: &str, content: &str) {
    let dir = bare.with_extension(format!("other-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    git(
        bare.parent().unwrap(),
        &[
            "clone",
            "-q",
            "-b",
            branch,
            bare.to_str().unwrap(),
            dir.to_str().unwrap(),
        ],
    );
    let full = dir.join(path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(full, content).unwrap();
    git(&dir, &["add", "-A"]);
    git(
        &dir,
        &["commit", "-qm", &format!("other writer changes {path}")],
    );
    git(&dir, &["push", "-q", "origin", branch]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `git show BRANCH:PATH` in a bare repository.
pub fn show(bare: &Path, branch: &str, path: &str) -> String {
    git(bare, &["show", &format!("{branch}:{path}")])
}

pub fn rev(bare: &Path, rev: &str) -> String {
    git(bare, &["rev-parse", rev]).trim().to_string()
}

pub fn count_commits(bare: &Path, branch: &str) -> usize {
    git(bare, &["rev-list", "--count", branch])
        .trim()
        .parse()
        .unwrap()
}

type Hook = Box<dyn Fn() + Send + Sync>;

pub struct GitHttpServer {
    pub base_url: String,
    pub unauthorized: Arc<AtomicUsize>,
    pub requests: Arc<Mutex<Vec<String>>>,
    /// `METHOD user-agent` of each request that named one.
    pub agents: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

struct Shared {
    root: PathBuf,
    expected_auth: Option<String>,
    before_first_push: Mutex<Option<Hook>>,
    unauthorized: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
    agents: Arc<Mutex<Vec<String>>>,
}

impl GitHttpServer {
    /// Serves the bare repositories under `root` at `http://127.0.0.1:PORT/NAME.git`.
    pub fn start(
        root: &Path,
        basic_auth: Option<(&str, &str)>,
        before_first_push: Option<Hook>,
    ) -> Self {
        Self::serve_on(root, basic_auth, before_first_push, None)
    }

    /// [`Self::start`] over TLS with the server certificate `cert_pem` and its PKCS#8
    /// `key_pem` (`crate::support::pki`): `https://127.0.0.1:PORT/NAME.git`.
    pub fn start_tls(root: &Path, cert_pem: &str, key_pem: &str) -> Self {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        Self::serve_on(root, None, None, Some(Arc::new(config)))
    }

    fn serve_on(
        root: &Path,
        basic_auth: Option<(&str, &str)>,
        before_first_push: Option<Hook>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let unauthorized = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let agents = Arc::new(Mutex::new(Vec::new()));
        let scheme = if tls.is_some() { "https" } else { "http" };
        let shared = Arc::new(Shared {
            root: root.to_path_buf(),
            expected_auth: basic_auth.map(|(u, p)| {
                use base64::Engine as _;
                let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
                format!("Basic {encoded}")
            }),
            before_first_push: Mutex::new(before_first_push),
            unauthorized: unauthorized.clone(),
            requests: requests.clone(),
            agents: agents.clone(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        let handle = thread::spawn(move || {
            while !stop_flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let shared = shared.clone();
                        let tls = tls.clone();
                        thread::spawn(move || {
                            if stream.set_nonblocking(false).is_err() {
                                return;
                            }
                            let mut stream = stream;
                            match tls {
                                Some(config) => {
                                    let Ok(conn) = rustls::ServerConnection::new(config) else {
                                        return;
                                    };
                                    let mut tls = rustls::StreamOwned::new(conn, stream);
                                    if serve(&mut tls, &shared).is_ok() {
                                        tls.conn.send_close_notify();
                                        let _ = tls.flush();
                                    }
                                }
                                None => {
                                    let _ = serve(&mut stream, &shared);
                                }
                            }
                        });
                    }
                    Err(_) => thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        Self {
            base_url: format!("{scheme}://127.0.0.1:{port}"),
            unauthorized,
            requests,
            agents,
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn serve<S: Read + Write>(stream: &mut S, shared: &Shared) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        body
    } else {
        let len: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        body
    };
    shared
        .requests
        .lock()
        .unwrap()
        .push(format!("{method} {target}"));
    if let Some(agent) = header("user-agent") {
        shared
            .agents
            .lock()
            .unwrap()
            .push(format!("{method} {agent}"));
    }
    // The request is read whole; the response goes to the same stream.
    let writer = reader.get_mut();

    if let Some(expected) = &shared.expected_auth
        && header("authorization").as_ref() != Some(expected)
    {
        shared.unauthorized.fetch_add(1, Ordering::SeqCst);
        writer.write_all(
            b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return Ok(());
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    if method == "POST" && path.ends_with("/git-receive-pack") {
        let hook = shared.before_first_push.lock().unwrap().take();
        if let Some(hook) = hook {
            hook();
        }
    }
    let mut child = Command::new("git")
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", &shared.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", &method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("CONTENT_TYPE", header("content-type").unwrap_or_default())
        .env("CONTENT_LENGTH", body.len().to_string())
        .env(
            "HTTP_CONTENT_ENCODING",
            header("content-encoding").unwrap_or_default(),
        )
        .env("GIT_PROTOCOL", header("git-protocol").unwrap_or_default())
        .env("REMOTE_USER", "tester")
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut stdin = child.stdin.take().unwrap();
    let writer_thread = thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let mut output = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut output)?;
    child.wait()?;
    let _ = writer_thread.join();

    let split = output
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| output.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)))
        .unwrap_or((output.len(), 0));
    let head = String::from_utf8_lossy(&output[..split.0]).to_string();
    let content = &output[(split.0 + split.1).min(output.len())..];
    let mut status = "200 OK".to_string();
    let mut response = Vec::new();
    for line in head.lines() {
        if let Some(s) = line.strip_prefix("Status:") {
            status = s.trim().to_string();
        } else if !line.is_empty() {
            response.push(line.to_string());
        }
    }
    write!(writer, "HTTP/1.1 {status}\r\n")?;
    for line in response {
        write!(writer, "{line}\r\n")?;
    }
    write!(
        writer,
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        content.len()
    )?;
    writer.write_all(content)?;
    writer.flush()
}
