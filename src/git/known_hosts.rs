//! SSH host key checking against an OpenSSH `known_hosts` file (pure parsing and matching).
//! tagsmith never trusts a host key on first use: an unknown key is an error.

use base64::Engine as _;
use hmac::{Hmac, Mac as _};

/// One usable `known_hosts` line: host patterns and the key's bytes (the SSH wire format).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    hosts: Hosts,
    key_type: String,
    key: Vec<u8>,
    revoked: bool,
}

/// Which hosts a line is for: a pattern list, or one name hashed as OpenSSH's `HashKnownHosts`
/// writes it (`|1|base64(salt)|base64(HMAC-SHA1(salt, name))`, Debian's default).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Hosts {
    Patterns(Vec<String>),
    Hashed { salt: Vec<u8>, digest: Vec<u8> },
}

impl Hosts {
    fn matches(&self, name: &str) -> bool {
        match self {
            Self::Patterns(patterns) => matches_host(patterns, name),
            Self::Hashed { salt, digest } => {
                let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(salt) else {
                    return false;
                };
                // ssh lowercases the name before hashing it (hostfile.c, host_hash).
                mac.update(name.to_ascii_lowercase().as_bytes());
                mac.verify_slice(digest).is_ok()
            }
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownHosts {
    entries: Vec<Entry>,
    /// Hashed lines in a form this reader does not know (not `|1|`, bad base64); counted for
    /// the error message.
    hashed: usize,
}

/// The verdict on a host key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyCheck {
    Trusted,
    Unknown { hashed_lines: usize },
    Mismatch,
    Revoked,
}

impl KnownHosts {
    pub fn parse(text: &str) -> Self {
        let mut hosts = Self::default();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let (marker, patterns) = match fields.next() {
                Some(m) if m.starts_with('@') => (Some(m), fields.next()),
                first => (None, first),
            };
            let (Some(patterns), Some(key_type), Some(key)) =
                (patterns, fields.next(), fields.next())
            else {
                continue;
            };
            if marker == Some("@cert-authority") {
                continue;
            }
            let host_spec = if patterns.starts_with('|') {
                match parse_hashed(patterns) {
                    Some(spec) => spec,
                    None => {
                        hosts.hashed += 1;
                        continue;
                    }
                }
            } else {
                Hosts::Patterns(patterns.split(',').map(str::to_string).collect())
            };
            let Ok(key) = base64::engine::general_purpose::STANDARD.decode(key) else {
                continue;
            };
            hosts.entries.push(Entry {
                hosts: host_spec,
                key_type: key_type.to_string(),
                key,
                revoked: marker == Some("@revoked"),
            });
        }
        hosts
    }

    /// Checks `key` (wire format) presented by `host` on `port`.
    pub fn check(&self, host: &str, port: u16, key: &[u8]) -> HostKeyCheck {
        let name = if port == 22 {
            host.to_string()
        } else {
            format!("[{host}]:{port}")
        };
        let matching: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| e.hosts.matches(&name))
            .collect();
        if matching.iter().any(|e| e.revoked && e.key == key) {
            return HostKeyCheck::Revoked;
        }
        if matching.iter().any(|e| !e.revoked && e.key == key) {
            return HostKeyCheck::Trusted;
        }
        if matching.iter().any(|e| !e.revoked) {
            HostKeyCheck::Mismatch
        } else {
            HostKeyCheck::Unknown {
                hashed_lines: self.hashed,
            }
        }
    }

    /// Key types listed for `host`, for messages.
    pub fn key_types(&self, host: &str, port: u16) -> Vec<&str> {
        let name = if port == 22 {
            host.to_string()
        } else {
            format!("[{host}]:{port}")
        };
        self.entries
            .iter()
            .filter(|e| e.hosts.matches(&name))
            .map(|e| e.key_type.as_str())
            .collect()
    }
}

/// `|1|salt|digest`, both base64; `None` for any other form.
fn parse_hashed(field: &str) -> Option<Hosts> {
    let rest = field.strip_prefix("|1|")?;
    let (salt, digest) = rest.split_once('|')?;
    let b64 = base64::engine::general_purpose::STANDARD;
    Some(Hosts::Hashed {
        salt: b64.decode(salt).ok()?,
        digest: b64.decode(digest).ok()?,
    })
}

/// OpenSSH pattern lists: `*` and `?` wildcards, `!` negates (a negated match excludes).
fn matches_host(patterns: &[String], name: &str) -> bool {
    let mut matched = false;
    for p in patterns {
        if let Some(negated) = p.strip_prefix('!') {
            if wildcard(negated, name) {
                return false;
            }
        } else if wildcard(p, name) {
            matched = true;
        }
    }
    matched
}

fn wildcard(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

/// Host and port of an SSH remote: `ssh://[user@]host[:port]/path` or scp-like `user@host:path`.
pub fn ssh_host(url: &str) -> Option<(String, u16)> {
    if let Some(rest) = url
        .strip_prefix("ssh://")
        .or_else(|| url.strip_prefix("git+ssh://"))
    {
        let authority = rest.split('/').next()?;
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        if let Some(bracketed) = host_port.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']')?;
            let port = after
                .strip_prefix(':')
                .map_or(Some(22), |p| p.parse().ok())?;
            return Some((host.to_string(), port));
        }
        return match host_port.split_once(':') {
            Some((host, port)) => Some((host.to_string(), port.parse().ok()?)),
            None => Some((host_port.to_string(), 22)),
        };
    }
    if url.contains("://") {
        return None;
    }
    // scp-like: a ':' before any '/' marks a remote.
    let colon = url.find(':')?;
    if url[..colon].contains('/') {
        return None;
    }
    let host = url[..colon]
        .rsplit_once('@')
        .map_or(&url[..colon], |(_, h)| h);
    Some((host.to_string(), 22))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIDkyZHQ8oPfjJ3lTJ0SbWvSYi8p8gNhOBGqcPqNLFz7W";
    const KEY_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIBl3YQ5sTq0cDLPXmbX4mnLVRl5zZoU12Y0oS8cBXE1x";

    fn key(b64: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap()
    }

    /// Lines written by `ssh-keygen -H` (OpenSSH 9) from `git.example.com` and
    /// `[127.0.0.1]:2222`, both with KEY_A.
    const HASHED: &str = "\
|1|epSoHMqHLxc72pOHXON4nV4Dp/w=|ovVDpZieu9YHE5hHjWt/X7vWj0E= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDkyZHQ8oPfjJ3lTJ0SbWvSYi8p8gNhOBGqcPqNLFz7W
|1|hEiUW8bE7Fl6Ol52WTej6TqD2pQ=|14ESSmCF7GGZoFcPXOArwLpQBpI= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDkyZHQ8oPfjJ3lTJ0SbWvSYi8p8gNhOBGqcPqNLFz7W
";

    #[test]
    fn hashed_entries_match_their_host_only() {
        let hosts = KnownHosts::parse(HASHED);
        let a = key(KEY_A);
        assert_eq!(
            hosts.check("git.example.com", 22, &a),
            HostKeyCheck::Trusted
        );
        assert_eq!(
            hosts.check("Git.Example.com", 22, &a),
            HostKeyCheck::Trusted
        );
        assert_eq!(hosts.check("127.0.0.1", 2222, &a), HostKeyCheck::Trusted);
        assert_eq!(
            hosts.check("git.example.com", 22, &key(KEY_B)),
            HostKeyCheck::Mismatch
        );
        assert_eq!(
            hosts.check("127.0.0.1", 22, &a),
            HostKeyCheck::Unknown { hashed_lines: 0 }
        );
        assert_eq!(
            hosts.check("other.example.com", 22, &a),
            HostKeyCheck::Unknown { hashed_lines: 0 }
        );
        assert_eq!(hosts.key_types("git.example.com", 22), ["ssh-ed25519"]);
    }

    #[test]
    fn keys_are_matched_by_host_and_port() {
        let hosts = KnownHosts::parse(&format!(
            "# comment\ngit.example.com,10.0.0.1 ssh-ed25519 {KEY_A}\n[127.0.0.1]:2222 ssh-ed25519 {KEY_B} test\n|1|abc=|def= ssh-ed25519 {KEY_A}\n@revoked old.example.com ssh-ed25519 {KEY_B}\n*.corp.example,!bad.corp.example ssh-ed25519 {KEY_A}\n"
        ));
        assert_eq!(
            hosts.check("git.example.com", 22, &key(KEY_A)),
            HostKeyCheck::Trusted
        );
        assert_eq!(
            hosts.check("GIT.example.com", 22, &key(KEY_A)),
            HostKeyCheck::Trusted
        );
        assert_eq!(
            hosts.check("git.example.com", 22, &key(KEY_B)),
            HostKeyCheck::Mismatch
        );
        assert_eq!(
            hosts.check("127.0.0.1", 2222, &key(KEY_B)),
            HostKeyCheck::Trusted
        );
        assert_eq!(
            hosts.check("127.0.0.1", 22, &key(KEY_B)),
            HostKeyCheck::Unknown { hashed_lines: 1 }
        );
        assert_eq!(
            hosts.check("old.example.com", 22, &key(KEY_B)),
            HostKeyCheck::Revoked
        );
        assert_eq!(
            hosts.check("git.corp.example", 22, &key(KEY_A)),
            HostKeyCheck::Trusted
        );
        assert!(matches!(
            hosts.check("bad.corp.example", 22, &key(KEY_A)),
            HostKeyCheck::Unknown { .. }
        ));
        assert_eq!(hosts.key_types("127.0.0.1", 2222), ["ssh-ed25519"]);
    }

    #[test]
    fn ssh_urls_give_host_and_port() {
        assert_eq!(
            ssh_host("ssh://git@github.com/org/r.git"),
            Some(("github.com".into(), 22))
        );
        assert_eq!(
            ssh_host("ssh://git@127.0.0.1:2222/srv/r.git"),
            Some(("127.0.0.1".into(), 2222))
        );
        assert_eq!(
            ssh_host("ssh://[::1]:2222/r.git"),
            Some(("::1".into(), 2222))
        );
        assert_eq!(
            ssh_host("git@github.com:org/r.git"),
            Some(("github.com".into(), 22))
        );
        assert_eq!(ssh_host("https://github.com/org/r.git"), None);
        assert_eq!(ssh_host("/srv/git/r.git"), None);
        assert_eq!(ssh_host("./a:b"), None);
    }
}
