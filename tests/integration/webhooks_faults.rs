//! Fault injection against `tagsmith run`'s webhook port, through the binary and real sockets:
//! more idle connections than the process may open files, and a client that trickles a
//! request head while the service is told to stop.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::gitserver::bare_repo;
use crate::support::free_port;

const HOOK_SECRET: &str = "hook-secret-5be1";

struct Service {
    child: Child,
    port: u16,
    /// The configured image: a webhook must name it to be queued.
    image: String,
    log: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    /// `tagsmith run` under `ulimit -n <open_files>`, once `/healthz` answers. Its image's
    /// registry does not answer: scans fail and are retried, which is beside the point here.
    fn start(open_files: u32, shutdown_deadline: u64) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let registry = format!("127.0.0.1:{}", free_port());
        let file =
            format!("image: {registry}/org/app:1.0.0 # {{\"$imagepolicy\": \"team:app\"}}\n");
        let bare = bare_repo(tmp.path(), "manifests", &[("app.yaml", &file)]);
        std::fs::write(tmp.path().join("hook-token"), format!("{HOOK_SECRET}\n")).unwrap();
        let port = free_port();
        let config = tmp.path().join("tagsmith.yaml");
        std::fs::write(
            &config,
            format!(
                "images:\n  - {{ policy: 'team:app', image: '{registry}/org/app', semver: '^1', interval: 1h }}\n\
                 targets:\n  - {{ name: prod, git: {{ url: 'file://{}', branch: main }} }}\n\
                 server: {{ listen: '127.0.0.1:{port}' }}\n\
                 receivers:\n  - {{ name: ci, type: generic, secretFile: hook-token }}\n\
                 state: {{ dir: state }}\n",
                bare.display()
            ),
        )
        .unwrap();
        let log = tmp.path().join("run.log");
        // `ulimit -n` in a wrapper shell, which then becomes tagsmith (same pid).
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -n {open_files} && exec \"$@\""))
            .arg("sh")
            .arg(env!("CARGO_BIN_EXE_tagsmith"))
            .args(["run", "-c", config.to_str().unwrap(), "--log", "info"])
            .args(["--shutdown-deadline", &shutdown_deadline.to_string()])
            .env("HOME", "/nonexistent")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut service = Self {
            child,
            port,
            image: format!("{registry}/org/app"),
            log,
            _tmp: tmp,
        };
        service.wait_until("/healthz answers", Duration::from_secs(30), |s| {
            s.get("/healthz") == Some(200)
        });
        // The limit applies to tagsmith itself: the test is only as faithful as this.
        let limits =
            std::fs::read_to_string(format!("/proc/{}/limits", service.child.id())).unwrap();
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap();
        assert_eq!(
            line.split_whitespace().nth(3),
            Some(open_files.to_string().as_str()),
            "{line}"
        );
        service
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn wait_until(&mut self, what: &str, limit: Duration, mut check: impl FnMut(&Self) -> bool) {
        let start = Instant::now();
        while !check(self) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "tagsmith run exited ({status}) waiting for {what}:\n{}",
                    self.log()
                );
            }
            assert!(
                start.elapsed() < limit,
                "timed out waiting for {what}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One request on a fresh connection as a kubelet probe makes it, with its 2 s budget:
    /// the status, or `None` when it is not answered in time.
    fn request(&self, request: &str) -> Option<u16> {
        let mut stream =
            TcpStream::connect_timeout(&self.addr().parse().unwrap(), Duration::from_secs(2))
                .ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        stream.write_all(request.as_bytes()).ok()?;
        let mut response = vec![0u8; 1024];
        let n = stream.read(&mut response).ok()?;
        let text = String::from_utf8_lossy(&response[..n]).to_string();
        text.split_whitespace().nth(1)?.parse().ok()
    }

    fn get(&self, path: &str) -> Option<u16> {
        self.request(&format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr()
        ))
    }

    fn webhook(&self) -> Option<u16> {
        let body = format!(r#"{{"images":["{}"]}}"#, self.image);
        self.request(&format!(
            "POST /hook/ci HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {HOOK_SECRET}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr(),
            body.len()
        ))
    }

    /// Sends SIGTERM and waits for the exit: its code and how long it took.
    fn terminate(&mut self, limit: Duration) -> (Option<i32>, Duration) {
        let status = Command::new("kill")
            .args(["-s", "TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code(), start.elapsed());
            }
            assert!(
                start.elapsed() < limit,
                "tagsmith run did not exit within {limit:?} of SIGTERM; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn connect(addr: &str) -> TcpStream {
    TcpStream::connect(addr).unwrap()
}

/// The report was 1,100 idle connections under `ulimit -n 1024`; this is the same ratio at half
/// the size, so the test itself stays well under a 1,024 limit of its own.
#[test]
fn more_idle_connections_than_the_open_files_limit_leave_the_probes_answering() {
    let mut service = Service::start(512, 30);
    assert_eq!(service.webhook(), Some(202), "{}", service.log());
    let addr = service.addr();
    // More connections than the process may open files, each left idle.
    let idle: Vec<TcpStream> = (0..600).map(|_| connect(&addr)).collect();

    // Probes get in (past the cap, in the probe lane) and are answered within their budget.
    service.wait_until("a probe answered", Duration::from_secs(20), |s| {
        s.get("/healthz") == Some(200)
    });
    for _ in 0..5 {
        assert_eq!(service.get("/healthz"), Some(200), "{}", service.log());
        assert_eq!(service.get("/readyz"), Some(200), "{}", service.log());
    }
    // A webhook is turned away visibly, to be retried, and the log says why.
    assert_eq!(service.webhook(), Some(503), "{}", service.log());
    assert!(
        service.log().contains("connection cap reached"),
        "{}",
        service.log()
    );
    // Nothing ran out: the service stops in order, with the connections still open.
    let (code, _) = service.terminate(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{}", service.log());
    drop(idle);
}

#[test]
fn sigterm_exits_within_the_deadline_while_a_client_trickles_a_request_head() {
    const DEADLINE: u64 = 3;
    let mut service = Service::start(512, DEADLINE);
    // One byte every 200 ms: the head would take two minutes.
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&sent);
    let mut stream = connect(&service.addr());
    let trickler = std::thread::spawn(move || {
        let head = format!(
            "POST /hook/ci HTTP/1.1\r\nHost: x\r\nX-Slow: {}",
            "a".repeat(600)
        );
        for byte in head.bytes() {
            if stream.write_all(&[byte]).is_err() {
                return;
            }
            counter.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    service.wait_until("the trickle under way", Duration::from_secs(10), |_| {
        sent.load(Ordering::Relaxed) >= 5
    });
    assert_eq!(service.get("/healthz"), Some(200));

    // The generous margin covers start-up of the shutdown and a slow machine, not the trickle.
    let (code, took) = service.terminate(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{}", service.log());
    assert!(
        took < Duration::from_secs(DEADLINE + 5),
        "exit took {took:?} with --shutdown-deadline {DEADLINE}; log:\n{}",
        service.log()
    );
    trickler.join().unwrap();
}
