//! `examples/kubernetes/` and the `Dockerfile` agree with each other and with tagsmith: the
//! ConfigMap's `tagsmith.yaml` loads, ports, probes, user and secrets line up, and `tagsmith run`
//! started with that config (addresses, registry and Git pointed at local stand-ins) answers
//! the Deployment's probes.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::gitserver::{bare_repo, show};
use crate::support::{Auth, Registry, free_port};

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kubernetes")
}

fn load(name: &str) -> Value {
    let path = example_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `v` at a dotted path (`spec.template.spec`); numbers index sequences. Panics naming the path.
fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    let mut cur = v;
    for key in path.split('.') {
        cur = match key.parse::<usize>() {
            Ok(i) => cur.get(i),
            Err(_) => cur.get(key),
        }
        .unwrap_or_else(|| panic!("missing {path} (at {key})"));
    }
    cur
}

fn str_at<'a>(v: &'a Value, path: &str) -> &'a str {
    at(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string"))
}

fn list<'a>(v: &'a Value, path: &str) -> &'a Vec<Value> {
    at(v, path)
        .as_array()
        .unwrap_or_else(|| panic!("{path} is not a list"))
}

fn port_of(addr: &str) -> u16 {
    addr.parse::<SocketAddr>()
        .unwrap_or_else(|e| panic!("{addr}: {e}"))
        .port()
}

/// Every file in the folder, parsed and checked against each other.
struct Examples {
    configmap: Value,
    deployment: Value,
    service: Value,
    secret: Value,
    kustomization: Value,
}

impl Examples {
    fn load() -> Self {
        Self {
            configmap: load("configmap.yaml"),
            deployment: load("deployment.yaml"),
            service: load("service.yaml"),
            secret: load("secret.yaml"),
            kustomization: load("kustomization.yaml"),
        }
    }

    /// The ConfigMap's only key: the config file the container reads.
    fn config_entry(&self) -> (&str, &str) {
        let data = at(&self.configmap, "data").as_object().unwrap();
        assert_eq!(data.len(), 1, "the ConfigMap holds tagsmith.yaml only");
        let (key, text) = data.iter().next().unwrap();
        (key.as_str(), text.as_str().unwrap())
    }

    fn config_text(&self) -> &str {
        self.config_entry().1
    }

    fn pod(&self) -> &Value {
        at(&self.deployment, "spec.template.spec")
    }

    fn container(&self) -> &Value {
        let containers = list(self.pod(), "containers");
        assert_eq!(containers.len(), 1, "one container");
        &containers[0]
    }

    /// Container port names to numbers.
    fn container_ports(&self) -> BTreeMap<String, u16> {
        list(self.container(), "ports")
            .iter()
            .map(|p| {
                (
                    str_at(p, "name").to_string(),
                    at(p, "containerPort").as_u64().unwrap() as u16,
                )
            })
            .collect()
    }

    /// A probe's or Service's port: a number, or the name of a container port.
    fn resolve_port(&self, port: &Value) -> u16 {
        match port {
            Value::Number(n) => n.as_u64().unwrap() as u16,
            Value::String(name) => *self
                .container_ports()
                .get(name)
                .unwrap_or_else(|| panic!("no container port named {name}")),
            other => panic!("port {other} is neither a number nor a name"),
        }
    }

    /// Env vars set from a Secret: name -> (secret name, key).
    fn secret_env(&self) -> BTreeMap<String, (String, String)> {
        list(self.container(), "env")
            .iter()
            .filter_map(|e| {
                let r = e.get("valueFrom")?.get("secretKeyRef")?;
                Some((
                    str_at(e, "name").to_string(),
                    (str_at(r, "name").to_string(), str_at(r, "key").to_string()),
                ))
            })
            .collect()
    }

    /// The example Secret's keys and (placeholder) values.
    fn secret_values(&self) -> BTreeMap<String, String> {
        let mut values = BTreeMap::new();
        if let Some(data) = self.secret.get("stringData").and_then(Value::as_object) {
            for (k, v) in data {
                values.insert(k.clone(), v.as_str().unwrap().to_string());
            }
        }
        assert!(
            self.secret.get("data").is_none(),
            "keep the example's placeholders readable in stringData"
        );
        values
    }

    /// The process environment the Deployment gives the container.
    fn container_env(&self) -> Vec<(String, String)> {
        let secrets = self.secret_values();
        list(self.container(), "env")
            .iter()
            .map(|e| {
                let name = str_at(e, "name").to_string();
                let value = match e.get("value") {
                    Some(v) => v.as_str().unwrap().to_string(),
                    None => {
                        let key = str_at(e, "valueFrom.secretKeyRef.key");
                        secrets
                            .get(key)
                            .unwrap_or_else(|| panic!("{name}: secret.yaml has no key {key}"))
                            .clone()
                    }
                };
                (name, value)
            })
            .collect()
    }

    fn args(&self) -> Vec<String> {
        list(self.container(), "args")
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect()
    }
}

/// Every value of a key ending in `Env` (`tokenEnv`, `passwordEnv`, `secretEnv`, ...): the env
/// vars a config reads. Unknown keys are config errors, so these are all keys tagsmith reads.
fn env_names(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::String(s) if k.ends_with("Env") => {
                        out.insert(s.clone());
                    }
                    _ => env_names(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| env_names(i, out)),
        _ => {}
    }
}

fn config_value(text: &str) -> Value {
    serde_saphyr::from_str(text).unwrap()
}

#[test]
fn the_configmap_holds_a_valid_config_for_run() {
    let ex = Examples::load();
    let (key, text) = ex.config_entry();
    assert_eq!(key, "tagsmith.yaml");
    let config = tagsmith::config::Config::parse(text, Path::new("/etc/tagsmith/tagsmith.yaml"))
        .unwrap_or_else(|e| panic!("the ConfigMap's tagsmith.yaml: {e}"));
    assert!(config.images.len() >= 2, "a couple of image policies");
    assert_eq!(config.targets.len(), 1, "one target");
    assert!(!config.receivers.is_empty(), "a webhook receiver");
    assert_eq!(config.server.listen, "0.0.0.0:9292".parse().unwrap());
    assert_eq!(config.server.metrics, Some("0.0.0.0:9090".parse().unwrap()));

    // The state dir is a writable volume: the root filesystem is read-only.
    let state_dir = config.state_dir.expect("state.dir is set");
    assert_eq!(state_dir, Path::new("/var/lib/tagsmith"));
    let mounts = list(ex.container(), "volumeMounts");
    let state_mount = mounts
        .iter()
        .find(|m| Path::new(str_at(m, "mountPath")) == state_dir)
        .expect("state.dir is a volume mount");
    assert_ne!(state_mount.get("readOnly"), Some(&json!(true)));
    assert!(mounts.iter().any(|m| str_at(m, "mountPath") == "/tmp"));
    assert_eq!(
        at(ex.container(), "securityContext.readOnlyRootFilesystem"),
        &json!(true)
    );

    // `-c` names the ConfigMap's key where the ConfigMap is mounted.
    let args = ex.args();
    assert_eq!(args[0], "run");
    let c = args
        .iter()
        .position(|a| a == "-c" || a == "--config")
        .unwrap();
    let config_path = Path::new(&args[c + 1]);
    let config_mount = mounts
        .iter()
        .find(|m| str_at(m, "name") == "config")
        .unwrap();
    assert_eq!(
        config_path,
        Path::new(str_at(config_mount, "mountPath")).join(key)
    );
    let volume = list(ex.pod(), "volumes")
        .iter()
        .find(|v| str_at(v, "name") == "config")
        .unwrap();
    assert_eq!(
        str_at(volume, "configMap.name"),
        str_at(&ex.configmap, "metadata.name")
    );
}

#[test]
fn ports_probes_and_annotations_match_the_config() {
    let ex = Examples::load();
    let config = config_value(ex.config_text());
    let listen = port_of(str_at(&config, "server.listen"));
    let metrics = port_of(str_at(&config, "server.metrics"));

    let ports = ex.container_ports();
    assert_eq!(
        ports,
        BTreeMap::from([("metrics".into(), metrics), ("webhooks".into(), listen)])
    );

    let container = ex.container();
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(str_at(container, &format!("{probe}.httpGet.path")), path);
        let port = ex.resolve_port(at(container, &format!("{probe}.httpGet.port")));
        assert_eq!(port, listen, "{probe} is on server.listen");
    }

    let annotations = at(&ex.deployment, "spec.template.metadata.annotations");
    assert_eq!(annotations["prometheus.io/scrape"], json!("true"));
    assert_eq!(
        annotations["prometheus.io/port"],
        json!(metrics.to_string())
    );
    assert_eq!(annotations["prometheus.io/path"], json!("/metrics"));

    let mut service_ports = BTreeMap::new();
    for p in list(&ex.service, "spec.ports") {
        let target = ex.resolve_port(p.get("targetPort").unwrap_or(at(p, "port")));
        assert_eq!(at(p, "port").as_u64(), Some(u64::from(target)));
        service_ports.insert(str_at(p, "name").to_string(), target);
    }
    assert_eq!(service_ports, ports, "the Service exposes both ports");
    let labels = at(&ex.deployment, "spec.template.metadata.labels");
    for (k, v) in at(&ex.service, "spec.selector").as_object().unwrap() {
        assert_eq!(&labels[k], v, "the Service selects the pod");
    }
    assert_eq!(
        at(&ex.deployment, "spec.selector.matchLabels"),
        at(&ex.service, "spec.selector")
    );
}

#[test]
fn one_writer_deployment() {
    let ex = Examples::load();
    assert_eq!(at(&ex.deployment, "spec.replicas"), &json!(1));
    assert_eq!(
        str_at(&ex.deployment, "spec.strategy.type"),
        "Recreate",
        "an old and a new pod never push side by side"
    );
    let pod_security = at(ex.pod(), "securityContext");
    assert_eq!(pod_security["runAsNonRoot"], json!(true));
    // Graceful stop: runs in flight get --shutdown-deadline (30s by default) after SIGTERM.
    assert!(
        at(ex.pod(), "terminationGracePeriodSeconds")
            .as_u64()
            .unwrap()
            > 30
    );
    let resources = at(ex.container(), "resources");
    assert!(resources["requests"]["memory"].is_string());
    assert!(resources["limits"]["memory"].is_string());
}

#[test]
fn secrets_are_exactly_the_env_vars_the_config_reads() {
    let ex = Examples::load();
    let mut wanted = BTreeSet::new();
    env_names(&config_value(ex.config_text()), &mut wanted);
    assert!(!wanted.is_empty());

    let from_secret = ex.secret_env();
    let set: BTreeSet<String> = from_secret.keys().cloned().collect();
    assert_eq!(
        set, wanted,
        "the Deployment sets from the Secret exactly the env vars the config names"
    );
    let secret_name = str_at(&ex.secret, "metadata.name");
    let keys = ex.secret_values();
    for (var, (name, key)) in &from_secret {
        assert_eq!(name, secret_name, "{var}: the Secret in secret.yaml");
        assert!(
            keys.contains_key(key),
            "{var}: secret.yaml has no key {key}"
        );
    }
    for (key, value) in &keys {
        assert!(
            value.starts_with("REPLACE-ME"),
            "{key}: the example Secret holds placeholders only"
        );
        assert!(
            from_secret.values().any(|(_, k)| k == key),
            "{key}: unused by the Deployment"
        );
    }
}

#[test]
fn kustomization_lists_every_manifest() {
    let ex = Examples::load();
    let listed: BTreeSet<String> = list(&ex.kustomization, "resources")
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    let files: BTreeSet<String> = std::fs::read_dir(example_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    assert_eq!(listed, files);
    let image = str_at(ex.container(), "image");
    assert!(
        list(&ex.kustomization, "images")
            .iter()
            .any(|i| str_at(i, "name") == image),
        "kustomization.yaml sets the image {image}"
    );
}

/// The Dockerfile's instructions, continuation lines joined, comments dropped.
fn dockerfile() -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile")).unwrap();
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(trimmed);
        let (op, rest) = pending.split_once(' ').unwrap_or((&pending, ""));
        out.push((op.to_uppercase(), rest.trim().to_string()));
        pending.clear();
    }
    out
}

#[test]
fn dockerfile_matches_the_deployment() {
    let ex = Examples::load();
    let instructions = dockerfile();
    let all = |op: &str| -> Vec<String> {
        instructions
            .iter()
            .filter(|(o, _)| o == op)
            .map(|(_, rest)| rest.clone())
            .collect()
    };
    assert!(all("FROM").len() >= 2, "a build stage and a runtime stage");

    let user = all("USER").pop().expect("a USER");
    let (uid, gid) = user.split_once(':').unwrap_or((&user, ""));
    assert!(
        uid != "0" && uid != "root",
        "the image runs as a non-root user"
    );
    let uid: u64 = uid
        .parse()
        .expect("a numeric UID, so runAsNonRoot can check it");
    let pod_security = at(ex.pod(), "securityContext");
    assert_eq!(pod_security["runAsUser"].as_u64(), Some(uid));
    if !gid.is_empty() {
        assert_eq!(pod_security["runAsGroup"].as_u64(), gid.parse().ok());
    }

    let exposed: BTreeSet<u16> = all("EXPOSE")
        .iter()
        .flat_map(|e| {
            e.split_whitespace()
                .map(|p| p.trim_end_matches("/tcp").parse().unwrap())
        })
        .collect();
    let ports: BTreeSet<u16> = ex.container_ports().into_values().collect();
    assert_eq!(exposed, ports);

    let entrypoint: Vec<String> = serde_json::from_str(&all("ENTRYPOINT").pop().unwrap()).unwrap();
    assert_eq!(entrypoint, ["tagsmith"]);
    let cmd: Vec<String> = serde_json::from_str(&all("CMD").pop().unwrap()).unwrap();
    assert_eq!(cmd, ["run", "-c", "/etc/tagsmith/tagsmith.yaml"]);
    assert_eq!(
        ex.args()[..3],
        cmd[..],
        "the Deployment runs the image's command, with log settings added"
    );
}

/// `tagsmith run` with the ConfigMap's config, made local: free loopback ports, a temp state
/// dir, images on a local registry, the target on a local bare repository (pushed to directly
/// instead of through a GitHub pull request). Env as the Deployment sets it.
struct Service {
    child: Child,
    listen: u16,
    metrics: u16,
    bare: PathBuf,
    tmp: tempfile::TempDir,
    _registry: Registry,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    fn start() -> Self {
        let ex = Examples::load();
        let mut config = config_value(ex.config_text());
        let registry = Registry::start(Auth::None);
        let reg = registry.host.clone();
        let tmp = tempfile::tempdir().unwrap();

        // One tag newer than the file's: a commit shows the config drives real work.
        let first = &mut config["images"][0];
        let image = str_at(first, "image").to_string();
        let (_, repo) = image.split_once('/').unwrap();
        first["image"] = json!(format!("{reg}/{repo}"));
        let versions = ["1.0.0".to_string(), "1.1.0".to_string()];
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(registry.pusher().push_tags(repo, &versions));
        for image in config["images"].as_array_mut().unwrap().iter_mut().skip(1) {
            let (_, repo) = image["image"].as_str().unwrap().split_once('/').unwrap();
            image["image"] = json!(format!("{reg}/{repo}"));
        }
        config["registries"] = json!([{ "host": reg, "insecure": true }]);

        let target = &mut config["targets"][0];
        let path = list(target, "paths")[0].as_str().unwrap().to_string();
        let policy = str_at(&config["images"][0], "policy").to_string();
        let file = format!("image: {reg}/{repo}:1.0.0 # {{\"$imagepolicy\": \"{policy}\"}}\n");
        let bare = bare_repo(tmp.path(), "fleet", &[(&format!("{path}/app.yaml"), &file)]);
        let target = &mut config["targets"][0];
        target["git"]["url"] = json!(format!("file://{}", bare.display()));
        target.as_object_mut().unwrap().remove("push");

        let (listen, metrics) = (free_port(), free_port());
        config["server"] = json!({
            "listen": format!("127.0.0.1:{listen}"),
            "metrics": format!("127.0.0.1:{metrics}"),
        });
        config["state"] = json!({ "dir": tmp.path().join("state") });

        // JSON is YAML: the rewritten config goes to the file as JSON.
        let path = tmp.path().join("tagsmith.yaml");
        std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
        let args: Vec<String> = ex
            .args()
            .into_iter()
            .map(|a| {
                if a == "/etc/tagsmith/tagsmith.yaml" {
                    path.display().to_string()
                } else {
                    a
                }
            })
            .collect();
        let log = std::fs::File::create(tmp.path().join("run.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_tagsmith"))
            .args(&args)
            .envs(ex.container_env())
            .env("HOME", "/nonexistent")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Service {
            child,
            listen,
            metrics,
            bare,
            tmp,
            _registry: registry,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.tmp.path().join("run.log")).unwrap_or_default()
    }

    /// Polls until `GET path` answers, then returns status and body.
    fn get(&mut self, port: u16, path: &str) -> (u16, String) {
        let start = Instant::now();
        loop {
            if let Some(answer) = http_get(port, path) {
                return answer;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("tagsmith run exited ({status}):\n{}", self.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "nothing answers on {port}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A plain HTTP/1.0 GET on loopback; `None` while nothing listens.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

#[test]
fn run_with_the_example_config_answers_the_probes_and_stops_on_sigterm() {
    let mut service = Service::start();
    let listen = service.listen;
    assert_eq!(service.get(listen, "/healthz").0, 200, "{}", service.log());
    let start = Instant::now();
    while service.get(listen, "/readyz").0 != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{}",
            service.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The config does real work: the pending update is committed.
    let file = {
        let ex = Examples::load();
        let config = config_value(ex.config_text());
        format!("{}/app.yaml", str_at(&config, "targets.0.paths.0"))
    };
    let start = Instant::now();
    while !show(&service.bare, "main", &file).contains(":1.1.0") {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no commit:\n{}",
            service.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let status = Command::new("kill")
        .args(["-s", "TERM", &service.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    let code = loop {
        if let Some(status) = service.child.try_wait().unwrap() {
            break status.code();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no stop within the pod's grace period:\n{}",
            service.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = service.log();
    assert_eq!(code, Some(0), "{log}");
    for (_, secret) in Examples::load().container_env() {
        assert!(!log.contains(&secret), "a secret reached the log");
    }
}

#[test]
fn run_with_the_example_config_serves_metrics_where_prometheus_scrapes() {
    let mut service = Service::start();
    let metrics = service.metrics;
    let ex = Examples::load();
    let annotations = at(&ex.deployment, "spec.template.metadata.annotations");
    let path = annotations["prometheus.io/path"].as_str().unwrap();
    let (status, body) = service.get(metrics, path);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.lines().any(|l| l.starts_with("tagsmith_")),
        "no tagsmith_ metric:\n{body}"
    );
}

#[test]
fn dockerfile_labels_the_image_and_ships_a_stripped_binary_that_knows_its_commit() {
    let instructions = dockerfile();
    let joined = |op: &str| -> String {
        instructions
            .iter()
            .filter(|(o, _)| o == op)
            .map(|(_, rest)| rest.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let labels = joined("LABEL");
    for key in [
        "org.opencontainers.image.source=",
        "org.opencontainers.image.version=\"${VERSION}\"",
        "org.opencontainers.image.revision=\"${REVISION}\"",
    ] {
        assert!(labels.contains(key), "LABEL lacks {key}: {labels}");
    }
    let env = joined("ENV");
    assert!(
        env.contains("CARGO_PROFILE_RELEASE_STRIP=symbols"),
        "the release binary is not stripped: {env}"
    );
    // build.rs reads TAGSMITH_REVISION; the build stage must set it from the REVISION arg.
    assert!(
        env.contains("TAGSMITH_REVISION=${REVISION}"),
        "--version would not name the commit: {env}"
    );
    let from = joined("FROM");
    assert!(
        from.contains("${BUILD_IMAGE}") && from.contains("${RUNTIME_IMAGE}"),
        "base images must be replaceable by digest-pinned references: {from}"
    );
}
