//! `WWW-Authenticate` challenges (RFC 7235) as registries send them on a 401.

use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// The most useful challenge among the header values: Bearer before Basic, since a registry
/// offering both expects token clients to use the token service.
pub fn parse<'a, I>(values: I) -> Option<Challenge>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut basic = false;
    for value in values {
        for (scheme, params) in parse_value(value) {
            if scheme.eq_ignore_ascii_case("bearer") {
                if let Some(realm) = params.get("realm") {
                    return Some(Challenge::Bearer {
                        realm: realm.clone(),
                        service: params.get("service").cloned(),
                        scope: params.get("scope").cloned(),
                    });
                }
            } else if scheme.eq_ignore_ascii_case("basic") {
                basic = true;
            }
        }
    }
    basic.then_some(Challenge::Basic)
}

/// One header value may hold several challenges: `Basic realm="a", Bearer realm="b",scope="c"`.
fn parse_value(value: &str) -> Vec<(String, HashMap<String, String>)> {
    let mut out: Vec<(String, HashMap<String, String>)> = Vec::new();
    let mut rest = value.trim();
    while !rest.is_empty() {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        let token_end = rest
            .find(|c: char| c == '=' || c == ',' || c.is_ascii_whitespace())
            .unwrap_or(rest.len());
        let token = &rest[..token_end];
        let after = rest[token_end..].trim_start_matches([' ', '\t']);
        if token.is_empty() {
            break;
        }
        if let Some(value_part) = after.strip_prefix('=') {
            // An auth-param of the current challenge.
            let (value, remaining) = read_value(value_part.trim_start());
            if let Some((_, params)) = out.last_mut() {
                params.insert(token.to_ascii_lowercase(), value);
            }
            rest = remaining;
        } else {
            out.push((token.to_string(), HashMap::new()));
            rest = after;
        }
    }
    out
}

/// A quoted-string (with `\` escapes) or a token; returns it and what follows.
fn read_value(s: &str) -> (String, &str) {
    if let Some(body) = s.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                '"' => return (value, &body[i + 1..]),
                other => value.push(other),
            }
        }
        (value, "")
    } else {
        let end = s.find([',', ' ', '\t']).unwrap_or(s.len());
        (s[..end].to_string(), &s[end..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_with_all_params() {
        let c = parse([
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:library/nginx:pull""#,
        ]);
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:library/nginx:pull".into()),
            })
        );
    }

    #[test]
    fn scopes_with_commas_and_escapes_and_token_values() {
        let c =
            parse([r#"bearer realm=https://a/t, scope="repository:a:pull,push", service="s\"x""#]);
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://a/t".into(),
                service: Some("s\"x".into()),
                scope: Some("repository:a:pull,push".into()),
            })
        );
    }

    #[test]
    fn bearer_preferred_over_basic_and_basic_alone() {
        assert_eq!(
            parse([r#"Basic realm="Registry Realm""#]),
            Some(Challenge::Basic)
        );
        let c = parse([r#"Basic realm="x", Bearer realm="https://t",service="s""#]).unwrap();
        assert!(matches!(c, Challenge::Bearer { .. }), "{c:?}");
        assert_eq!(parse(["Negotiate"]), None);
        assert_eq!(parse([r#"Bearer service="no realm""#]), None);
    }
}
