//! The pure parts of the token dance: the token request URL, the reply, the header values.

use std::time::Duration;

use base64::Engine as _;
use reqwest::Url;
use serde::Deserialize;

use super::auth::Credentials;

/// `realm?service=..&scope=..`, keeping any query the realm already has.
pub fn token_url(realm: &str, service: Option<&str>, scope: &str) -> Option<Url> {
    let mut url = Url::parse(realm).ok()?;
    {
        let mut query = url.query_pairs_mut();
        if let Some(service) = service {
            query.append_pair("service", service);
        }
        query.append_pair("scope", scope);
    }
    Some(url)
}

/// The longest a token is reused, whatever `expires_in` says; past it a new one is fetched.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Deserialize)]
struct TokenReply {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// The token and how long to use it. Registries send `token`, `access_token` or both; tokens
/// without a lifetime live 60 s by the token spec. The lifetime is cut by a tenth so a request
/// never goes out with a token about to lapse.
pub fn parse_reply(body: &[u8]) -> Result<(String, Duration), &'static str> {
    let reply: TokenReply =
        serde_json::from_slice(body).map_err(|_| "token reply is not the expected json")?;
    let token = reply
        .token
        .filter(|t| !t.is_empty())
        .or(reply.access_token.filter(|t| !t.is_empty()))
        .ok_or("token reply holds no token")?;
    // Capped: a registry's u64::MAX would overflow the `Instant` the token is kept until.
    let seconds = reply
        .expires_in
        .unwrap_or(60)
        .clamp(1, MAX_TOKEN_LIFETIME.as_secs());
    Ok((token, Duration::from_secs(seconds).mul_f64(0.9)))
}

/// The OAuth2 form that trades a refresh token (Docker's identity token) for an access token,
/// as the token spec's `POST` flow describes.
pub fn refresh_form<'a>(
    service: Option<&'a str>,
    scope: &'a str,
    refresh_token: &'a str,
) -> Vec<(&'static str, &'a str)> {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("client_id", "tagsmith"),
        ("refresh_token", refresh_token),
        ("scope", scope),
    ];
    if let Some(service) = service {
        form.push(("service", service));
    }
    form
}

pub fn basic_header(credentials: &Credentials) -> String {
    let raw = format!("{}:{}", credentials.username, credentials.password.expose());
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_urls_keep_the_realm_query() {
        let url = token_url(
            "https://auth.example/token?a=1",
            Some("reg"),
            "repository:x/y:pull",
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "https://auth.example/token?a=1&service=reg&scope=repository%3Ax%2Fy%3Apull"
        );
        assert!(token_url("not a url", None, "s").is_none());
    }

    #[test]
    fn replies_give_either_token_and_a_lifetime() {
        let (token, life) = parse_reply(br#"{"token":"t1","expires_in":300}"#).unwrap();
        assert_eq!((token.as_str(), life), ("t1", Duration::from_secs(270)));
        let (token, life) = parse_reply(br#"{"token":"","access_token":"t2"}"#).unwrap();
        assert_eq!((token.as_str(), life), ("t2", Duration::from_secs(54)));
        assert!(parse_reply(br#"{"expires_in":3}"#).is_err());
        let (_, life) = parse_reply(br#"{"token":"t","expires_in":18446744073709551615}"#).unwrap();
        assert_eq!(life, MAX_TOKEN_LIFETIME.mul_f64(0.9));
        assert!(tokio::time::Instant::now().checked_add(life).is_some());
        assert!(parse_reply(b"<html>").is_err());
    }

    #[test]
    fn basic_header_encodes_user_and_password() {
        let header = basic_header(&Credentials::password("bot".into(), "p:w".into()));
        assert_eq!(header, "Basic Ym90OnA6dw==");
    }
}
