//! The dashboard (`GET /` on the admin address) as a person sees it: `tagsmith run` against a
//! real registry and a bare repository, the page opened in headless Chromium, and assertions on
//! the DOM Chromium built (after its scripts ran). A registry error and a file path that carry
//! `<script>` must render as text. A screenshot is kept as a test artifact.

#![allow(clippy::unwrap_used)]

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::gitserver::bare_repo;
use crate::support::service::Service;
use crate::support::{Auth, Registry, free_port};

const XSS: &str = "<script>alert(1)</script>";

/// A registry whose tag list holds a string where the list of tags belongs, and that string is
/// `<script>`: tagsmith refuses the listing and its error quotes what it found.
fn hostile_registry() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]);
            let response = if request.starts_with("GET /v2/evil/app/tags/list") {
                let body = format!(r#"{{"name":"evil/app","tags":"{XSS}"}}"#);
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_owned()
            };
            let _ = stream.write_all(response.as_bytes());
        }
    });
    host
}

/// Polls `/status` until `check` holds of it (up to 60 s).
fn wait_for_status(service: &Service, what: &str, check: impl Fn(&serde_json::Value) -> bool) {
    service.wait_until(what, Duration::from_secs(60), || {
        let (code, body) = service.get(service.metrics_port, "/status");
        code == 200 && serde_json::from_str(&body).is_ok_and(|json| check(&json))
    });
}

fn chromium() -> &'static str {
    let path = "/usr/bin/chromium";
    assert!(
        Path::new(path).exists(),
        "{path} is missing: install it with apt (chromium), or run scripts/setup as root"
    );
    path
}

/// Chromium's DOM of `url` after its scripts ran.
fn dump_dom(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            &format!("--user-data-dir={}", profile.path().display()),
            "--dump-dom",
            url,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium --dump-dom failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn screenshot(url: &str, file: &Path) {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1800,820",
            &format!("--user-data-dir={}", profile.path().display()),
            &format!("--screenshot={}", file.display()),
            url,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success() && file.exists(),
        "chromium --screenshot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The text of the `<tr>` whose opening tag contains `marker`, up to its `</tr>`.
fn row<'a>(dom: &'a str, marker: &str) -> &'a str {
    let start = dom
        .find(marker)
        .unwrap_or_else(|| panic!("no row with {marker} in:\n{dom}"));
    let start = dom[..start].rfind("<tr").unwrap();
    let end = dom[start..].find("</tr>").unwrap() + start;
    &dom[start..end]
}

#[test]
fn the_dashboard_shows_images_targets_failures_and_problems_as_text() {
    let registry = Registry::start(Auth::None);
    tokio::runtime::Runtime::new().unwrap().block_on(
        registry
            .pusher()
            .push_tags("org/app", &["1.0.0".to_owned(), "1.1.0".to_owned()]),
    );
    let evil = hostile_registry();
    let tmp = tempfile::tempdir().unwrap();
    let reg = &registry.host;
    let bad_path = format!("apps/{XSS}.yaml");
    let bare = bare_repo(
        tmp.path(),
        "manifests",
        &[
            (
                "apps/app.yaml",
                &format!("image: {reg}/org/app:1.0.0 # {{\"$imagepolicy\": \"team-a:app\"}}\n"),
            ),
            (
                &bad_path,
                "image: x/y:1.0.0 # {\"$imagepolicy\": \"team-z:unknown\"}\n",
            ),
        ],
    );
    // Its own repository, so prod's push does not make its change moot.
    let staging_bare = bare_repo(
        tmp.path(),
        "staging",
        &[(
            "apps/app.yaml",
            &format!("image: {reg}/org/app:1.0.0 # {{\"$imagepolicy\": \"team-a:app\"}}\n"),
        )],
    );
    let (port, metrics_port) = (free_port(), free_port());
    let config = format!(
        "images:\n  - {{ policy: 'team-a:app', image: '{reg}/org/app', semver: '^1' }}\n  \
         - {{ policy: 'team-b:evil', image: '{evil}/evil/app', semver: '^1' }}\n\
         targets:\n  - {{ name: prod, git: {{ url: 'file://{0}', branch: main }} }}\n  \
         - {{ name: staging, git: {{ url: 'file://{2}', branch: main }}, paths: [apps/app.yaml], schedule: '0 0 1 1 *' }}\n\
         registries:\n  - {{ host: '{reg}', insecure: true }}\n  - {{ host: '{evil}', insecure: true }}\n\
         server: {{ listen: '127.0.0.1:{1}', metrics: '127.0.0.1:{metrics_port}' }}\n\
         state: {{ dir: state }}\n",
        bare.display(),
        port,
        staging_bare.display(),
    );
    let service = Service::spawn(tmp.path(), &config, port, metrics_port, &[]);
    wait_for_status(&service, "both scans and a run of prod", |s| {
        let images = s["images"].as_array().map(Vec::len) == Some(2);
        let evil_failed = s["images"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|i| i["policy"] == "team-b:evil" && !i["error"].is_null());
        let targets = s["targets"].as_array().cloned().unwrap_or_default();
        let prod_ran = targets.iter().any(|t| {
            t["name"] == "prod" && t["problems"].as_array().is_some_and(|p| !p.is_empty())
        });
        let staging_waits = targets.iter().any(|t| {
            t["name"] == "staging"
                && t["pending"] == true
                && t["pendingChanges"]
                    .as_array()
                    .is_some_and(|c| !c.is_empty())
        });
        images && evil_failed && prod_ran && staging_waits
    });

    let url = format!("http://127.0.0.1:{metrics_port}/");
    let dom = dump_dom(&url);
    // Chromium parsed the page: had any value reached it unescaped, a <script> element
    // would stand where the text is.
    assert_eq!(
        dom.matches("<script>").count(),
        1,
        "only the page's own script runs:\n{dom}"
    );
    let app = row(&dom, "data-filter=\"team-a:app");
    assert!(
        app.contains("1.1.0") && app.contains("class=\"ok\""),
        "{app}"
    );
    let evil_row = row(&dom, "data-filter=\"team-b:evil");
    assert!(evil_row.contains("class=\"failing\""), "{evil_row}");
    assert!(
        evil_row.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the registry's error is shown as text: {evil_row}"
    );
    let prod = row(&dom, "id=\"target-prod\"");
    assert!(
        prod.contains("apps/&lt;script&gt;alert(1)&lt;/script&gt;.yaml:1"),
        "the marker problem names its file:line as text: {prod}"
    );
    assert!(
        prod.contains(&format!("file://{}", bare.display())) && prod.contains("<code>main</code>"),
        "the repository and the branch it reads: {prod}"
    );
    let staging = row(&dom, "id=\"target-staging\"");
    assert!(
        staging.contains("yes ("),
        "a pending change and why: {staging}"
    );
    assert!(
        staging.contains("0 0 1 1 *"),
        "the schedule it waits for: {staging}"
    );
    assert!(
        staging.contains(&format!(
            "<code>{reg}/org/app:1.0.0</code> -&gt; <code>{reg}/org/app:1.1.0</code> \
             <span class=\"file\">apps/app.yaml:1</span>"
        )),
        "the change its schedule holds, old -> new and where: {staging}"
    );
    assert!(
        app.contains("<td class=\"changed\"><time datetime=\"20"),
        "when the selection changed: {app}"
    );

    // Deep link and server-side filter, as a person would bookmark them.
    let only_prod = dump_dom(&format!("{url}?target=prod"));
    assert!(only_prod.contains("id=\"target-prod\""));
    assert!(!only_prod.contains("id=\"target-staging\""), "{only_prod}");
    let team_b = dump_dom(&format!("{url}?filter=team-b"));
    assert!(team_b.contains("data-filter=\"team-b:evil"));
    assert!(!team_b.contains("data-filter=\"team-a:app"), "{team_b}");

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let shot = dir.join("dashboard.png");
    screenshot(&url, &shot);
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    eprintln!("screenshot: {}", shot.display());
}
