//! A running `tagsmith run`, the way the service tests drive it: started on a config written to
//! a folder, read through its HTTP endpoints like an operator would (`/readyz`, `/status`,
//! `/metrics`), stopped with SIGTERM, and killed on drop if a test failed before stopping it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// A running `tagsmith run`, killed on drop if a test failed before stopping it.
pub struct Service {
    pub child: Child,
    log: PathBuf,
    /// The config file it runs with.
    pub config: PathBuf,
    /// The server's port (webhooks, `/readyz`).
    pub port: u16,
    /// The admin port (`/status`, `/metrics`, `/scan`, the dashboard).
    pub metrics_port: u16,
    pub runtime: tokio::runtime::Runtime,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    /// Writes `config` to `dir/tagsmith.yaml` and starts `tagsmith run` on it with `env` added,
    /// its log in a file of its own under `dir`; `port` and `metrics_port` are the addresses
    /// the config names. Returns at once, before the service is ready.
    pub fn spawn(
        dir: &Path,
        config: &str,
        port: u16,
        metrics_port: u16,
        env: &[(&str, &str)],
    ) -> Self {
        let path = dir.join("tagsmith.yaml");
        std::fs::write(&path, config).unwrap();
        // One log per start: a test may start several services in the same folder.
        let log = dir.join(format!("run-{}.log", free_port()));
        let child = Command::new(env!("CARGO_BIN_EXE_tagsmith"))
            .args(["run", "-c", path.to_str().unwrap(), "--log", "info"])
            .env("HOME", "/nonexistent")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self {
            child,
            log,
            config: path,
            port,
            metrics_port,
            runtime: tokio::runtime::Runtime::new().unwrap(),
        }
    }

    /// [`Service::spawn`], then waits (up to 30 s) until `/readyz` on `port` answers 200.
    pub fn start(
        dir: &Path,
        config: &str,
        port: u16,
        metrics_port: u16,
        env: &[(&str, &str)],
    ) -> Self {
        let service = Self::spawn(dir, config, port, metrics_port, env);
        service.wait_until("/readyz", Duration::from_secs(30), || {
            service.get(port, "/readyz").0 == 200
        });
        service
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `check` every 50 ms; fails the test with the log if it is still false after `limit`.
    pub fn wait_until(&self, what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
        let start = Instant::now();
        while !check() {
            assert!(
                start.elapsed() < limit,
                "timed out waiting for {what}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `GET path` on `port`: the status and body, `(0, "")` if nothing answered.
    pub fn get(&self, port: u16, path: &str) -> (u16, String) {
        self.runtime.block_on(async {
            match reqwest::get(format!("http://127.0.0.1:{port}{path}")).await {
                Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
                Err(_) => (0, String::new()),
            }
        })
    }

    /// `POST path` on `port`: the status, 0 if nothing answered.
    pub fn post(&self, port: u16, path: &str) -> u16 {
        self.runtime.block_on(async {
            reqwest::Client::new()
                .post(format!("http://127.0.0.1:{port}{path}"))
                .send()
                .await
                .map_or(0, |r| r.status().as_u16())
        })
    }

    /// `/status` on the admin port, which must answer 200 with JSON.
    pub fn status(&self) -> serde_json::Value {
        let (code, body) = self.get(self.metrics_port, "/status");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// The sum of every sample of `name` whose labels contain each of `labels`.
    pub fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        let (code, text) = self.get(self.metrics_port, "/metrics");
        assert_eq!(code, 200);
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| {
                l.split([' ', '{']).next() == Some(name) && labels.iter().all(|x| l.contains(x))
            })
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    }

    /// SIGTERM, then the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let status = Command::new("kill")
            .args(["-s", "TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                start.elapsed() < Duration::from_secs(40),
                "tagsmith run did not stop on SIGTERM; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
