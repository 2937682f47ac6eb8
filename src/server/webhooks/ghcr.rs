//! GitHub Packages: `package` and `registry_package` events (`X-GitHub-Event`), published or
//! updated, for container packages. The image is `<registry host>/<owner>/<package name>`;
//! GitHub spells owners with capitals, the registry only in lower case.

use axum::http::HeaderMap;
use serde::Deserialize;

use super::{Event, WebhookError, image_in, json, scan};

const DEFAULT_HOST: &str = "ghcr.io";

#[derive(Deserialize)]
struct Payload {
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    package: Option<Package>,
    #[serde(default)]
    registry_package: Option<Package>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    package_type: Option<String>,
    #[serde(default)]
    ecosystem: Option<String>,
    #[serde(default)]
    owner: Option<Owner>,
    #[serde(default)]
    registry: Option<Registry>,
}

#[derive(Deserialize)]
struct Owner {
    login: String,
}

#[derive(Deserialize)]
struct Registry {
    #[serde(default)]
    url: Option<String>,
}

pub(super) fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Event, WebhookError> {
    let event = headers
        .get("x-github-event")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| WebhookError::malformed("missing X-GitHub-Event header"))?;
    match event {
        "ping" => return Ok(Event::Ignored("ping".into())),
        "package" | "registry_package" => {}
        other => return Ok(Event::Ignored(format!("{other} events do not name images"))),
    }
    let payload: Payload = json(body)?;
    if !matches!(payload.action.as_deref(), Some("published" | "updated")) {
        return Ok(Event::Ignored("not a published package".into()));
    }
    let package = payload
        .package
        .or(payload.registry_package)
        .ok_or_else(|| WebhookError::malformed(format!("{event} event without a package")))?;
    let kind = package
        .package_type
        .as_deref()
        .or(package.ecosystem.as_deref())
        .unwrap_or_default();
    if !kind.eq_ignore_ascii_case("container") && !kind.eq_ignore_ascii_case("docker") {
        return Ok(Event::Ignored(format!("{kind} package, not a container")));
    }
    let owner = package
        .owner
        .map(|o| o.login)
        .or(package.namespace)
        .ok_or_else(|| WebhookError::malformed("package without owner or namespace"))?;
    let host = package
        .registry
        .and_then(|r| r.url)
        .and_then(|url| registry_host(&url))
        .unwrap_or_else(|| DEFAULT_HOST.to_string());
    let image = image_in(
        &host,
        &format!(
            "{}/{}",
            owner.to_ascii_lowercase(),
            package.name.to_ascii_lowercase()
        ),
    )?;
    Ok(scan(vec![image], "no package"))
}

/// `https://ghcr.io/owner` -> `ghcr.io`.
fn registry_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host = rest.split('/').next()?;
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn event(name: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-github-event", HeaderValue::from_static(name));
        h
    }

    #[test]
    fn package_and_registry_package_events() {
        let package = include_str!("../../../tests/fixtures/webhooks/ghcr-package.json");
        assert_eq!(
            parse(&event("package"), package.as_bytes()).unwrap(),
            Event::Scan(vec!["ghcr.io/acme/api".parse().unwrap()])
        );
        let registry = include_str!("../../../tests/fixtures/webhooks/ghcr-registry-package.json");
        assert_eq!(
            parse(&event("registry_package"), registry.as_bytes()).unwrap(),
            Event::Scan(vec!["ghcr.io/acme/worker".parse().unwrap()])
        );
    }

    #[test]
    fn other_events_and_packages_are_ignored() {
        assert_eq!(
            parse(&event("ping"), br#"{"zen":"Keep it logically awesome."}"#).unwrap(),
            Event::Ignored("ping".into())
        );
        assert!(matches!(
            parse(&event("push"), b"{}").unwrap(),
            Event::Ignored(_)
        ));
        let npm = br#"{"action":"published","package":{"name":"lib","package_type":"npm","owner":{"login":"acme"}}}"#;
        assert!(matches!(
            parse(&event("package"), npm).unwrap(),
            Event::Ignored(_)
        ));
        let deleted = br#"{"action":"deleted","package":{"name":"api","package_type":"CONTAINER","owner":{"login":"acme"}}}"#;
        assert!(matches!(
            parse(&event("package"), deleted).unwrap(),
            Event::Ignored(_)
        ));
    }

    #[test]
    fn malformed_events_say_why() {
        let err = parse(&HeaderMap::new(), b"{}").unwrap_err();
        assert!(err.to_string().contains("X-GitHub-Event"), "{err}");
        let err = parse(&event("package"), br#"{"action":"published"}"#).unwrap_err();
        assert!(err.to_string().contains("without a package"), "{err}");
        let err = parse(&event("package"), b"[").unwrap_err();
        assert!(err.to_string().contains("invalid JSON"), "{err}");
    }
}
