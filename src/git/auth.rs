//! Credentials for remotes, resolved from env or files when needed, never logged.

use std::cell::Cell;
use std::path::PathBuf;

use git2::{CertificateCheckStatus, Cred, CredentialType, RemoteCallbacks};

use super::GitError;
use super::known_hosts::{HostKeyCheck, KnownHosts, ssh_host};
use crate::config::{GitAuth, Secret, Username};

/// libgit2 asks again after every 401; past this many attempts the credentials are wrong.
const MAX_CREDENTIAL_ATTEMPTS: u32 = 3;

#[derive(Clone)]
pub(super) struct Credentials {
    username: String,
    password: String,
    source: String,
    ssh_key: Option<PathBuf>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// The host keys an SSH remote may present.
#[derive(Debug, Clone)]
pub(super) struct HostKeys {
    host: String,
    port: u16,
    known: KnownHosts,
    file: PathBuf,
    /// libgit2 replaces a refusal's message with its own; the reason is kept here instead.
    refusal: std::cell::RefCell<Option<String>>,
}

impl HostKeys {
    /// For an SSH `url`, the known_hosts file's keys; `None` for other transports.
    pub(super) fn load(url: &str, auth: &GitAuth) -> Result<Option<Self>, GitError> {
        let (Some((host, port)), Some(ssh)) = (ssh_host(url), &auth.ssh) else {
            return Ok(None);
        };
        let text =
            std::fs::read_to_string(&ssh.known_hosts).map_err(|e| GitError::Credentials {
                source_name: format!("known_hosts file {}", ssh.known_hosts.display()),
                reason: e.to_string(),
            })?;
        Ok(Some(Self {
            host,
            port,
            known: KnownHosts::parse(&text),
            file: ssh.known_hosts.clone(),
            refusal: std::cell::RefCell::new(None),
        }))
    }

    /// Why the last connection's host key was refused, if it was.
    pub(super) fn take_refusal(&self) -> Option<String> {
        self.refusal.borrow_mut().take()
    }

    fn verify(&self, key: &[u8]) -> Result<(), String> {
        let verdict = self.judge(key);
        if let Err(reason) = &verdict {
            *self.refusal.borrow_mut() = Some(reason.clone());
        }
        verdict
    }

    fn judge(&self, key: &[u8]) -> Result<(), String> {
        let name = if self.port == 22 {
            self.host.clone()
        } else {
            format!("[{}]:{}", self.host, self.port)
        };
        let file = self.file.display();
        match self.known.check(&self.host, self.port, key) {
            HostKeyCheck::Trusted => Ok(()),
            HostKeyCheck::Mismatch => Err(format!(
                "host key of {name} does not match {file} (listed types: {}); refusing to connect",
                self.known.key_types(&self.host, self.port).join(", ")
            )),
            HostKeyCheck::Revoked => Err(format!("host key of {name} is revoked in {file}")),
            HostKeyCheck::Unknown { hashed_lines } => Err(format!(
                "host key of {name} is not in {file}{}; add it, e.g. with ssh-keyscan{} {}",
                if hashed_lines > 0 {
                    " (some hashed entries are in a form tagsmith cannot read; list the host in plain form)"
                } else {
                    ""
                },
                if self.port == 22 {
                    String::new()
                } else {
                    format!(" -p {}", self.port)
                },
                self.host
            )),
        }
    }
}

fn read_secret(secret: &Secret) -> Result<String, GitError> {
    let err = |reason: String| GitError::Credentials {
        source_name: secret.to_string(),
        reason,
    };
    let value = match secret {
        Secret::Env(name) => std::env::var(name).map_err(|_| err("not set".into()))?,
        Secret::File(path) => std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?,
    };
    let value = value.trim_end_matches(['\r', '\n']).to_string();
    if value.is_empty() {
        return Err(err("empty".into()));
    }
    Ok(value)
}

impl Credentials {
    pub(super) fn resolve(auth: &GitAuth) -> Result<Option<Self>, GitError> {
        if let Some(ssh) = &auth.ssh {
            let source = format!("ssh key {}", ssh.key_file.display());
            if let Err(e) = std::fs::metadata(&ssh.key_file) {
                return Err(GitError::Credentials {
                    source_name: source,
                    reason: e.to_string(),
                });
            }
            let username = match &auth.username {
                Some(Username::Literal(u)) => u.clone(),
                Some(Username::Env(name)) => read_secret(&Secret::Env(name.clone()))?,
                None => String::new(),
            };
            let passphrase = ssh
                .passphrase
                .as_ref()
                .map(read_secret)
                .transpose()?
                .unwrap_or_default();
            return Ok(Some(Self {
                username,
                password: passphrase,
                source,
                ssh_key: Some(ssh.key_file.clone()),
            }));
        }
        let Some(password_source) = &auth.password else {
            return Ok(None);
        };
        let username = match &auth.username {
            Some(Username::Literal(u)) => u.clone(),
            Some(Username::Env(name)) => read_secret(&Secret::Env(name.clone()))?,
            None => "git".to_string(),
        };
        Ok(Some(Self {
            username,
            password: read_secret(password_source)?,
            source: password_source.to_string(),
            ssh_key: None,
        }))
    }

    pub(super) fn source(&self) -> &str {
        &self.source
    }

    /// User name, password and where they came from, for HTTP basic auth; `None` for an SSH
    /// key, whose passphrase is no password.
    pub(super) fn basic(&self) -> Option<(&str, &str, &str)> {
        self.ssh_key.is_none().then_some((
            self.username.as_str(),
            self.password.as_str(),
            self.source.as_str(),
        ))
    }
}

/// Callbacks that answer credential requests a bounded number of times and, for SSH, accept
/// only host keys listed in known_hosts.
pub(super) fn callbacks<'a>(
    creds: Option<&'a Credentials>,
    host_keys: Option<&'a HostKeys>,
    attempts: &'a Cell<u32>,
) -> RemoteCallbacks<'a> {
    let mut callbacks = RemoteCallbacks::new();
    callbacks.certificate_check(move |cert, _host| match (cert.as_hostkey(), host_keys) {
        (Some(hostkey), Some(keys)) => {
            let key = hostkey.hostkey().unwrap_or_default();
            keys.verify(key)
                .map(|()| CertificateCheckStatus::CertificateOk)
                .map_err(|m| rejected(git2::ErrorCode::Certificate, &m))
        }
        (Some(_), None) => Err(rejected(
            git2::ErrorCode::Certificate,
            "ssh remote without known_hosts: configure auth.sshKeyFile and knownHostsFile",
        )),
        // TLS certificates: libgit2's own verification against the system store.
        (None, _) => Ok(CertificateCheckStatus::CertificatePassthrough),
    });
    callbacks.credentials(move |_url, username_from_url, allowed| {
        attempts.set(attempts.get() + 1);
        if attempts.get() > MAX_CREDENTIAL_ATTEMPTS {
            let source = creds.map_or("no credentials configured", |c| c.source());
            return Err(rejected(
                git2::ErrorCode::Auth,
                &format!("authentication failed (credentials from {source})"),
            ));
        }
        let ssh_user = |c: &Credentials| {
            if c.username.is_empty() {
                username_from_url.unwrap_or("git").to_string()
            } else {
                c.username.clone()
            }
        };
        if let Some(c) = creds
            && let Some(key) = &c.ssh_key
        {
            if allowed.contains(CredentialType::USERNAME) {
                return Cred::username(&ssh_user(c));
            }
            if allowed.contains(CredentialType::SSH_KEY) {
                let passphrase = (!c.password.is_empty()).then_some(c.password.as_str());
                return Cred::ssh_key(&ssh_user(c), None, key, passphrase);
            }
        }
        match creds {
            Some(c)
                if c.ssh_key.is_none() && allowed.contains(CredentialType::USER_PASS_PLAINTEXT) =>
            {
                Cred::userpass_plaintext(&c.username, &c.password)
            }
            _ if allowed.contains(CredentialType::DEFAULT) => Cred::default(),
            _ if allowed.contains(CredentialType::USERNAME) => {
                Cred::username(username_from_url.unwrap_or("git"))
            }
            _ => Err(rejected(
                git2::ErrorCode::Auth,
                "authentication required but no credentials are configured for this remote",
            )),
        }
    });
    callbacks
}

/// A refusal with the code libgit2 passes on, so the failure can be classified by it.
fn rejected(code: git2::ErrorCode, message: &str) -> git2::Error {
    git2::Error::new(code, git2::ErrorClass::Callback, message)
}

/// Replaces `user:password@` in any URL inside `text` with `***@`, so messages never carry secrets.
pub fn redact_url(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(scheme) = rest.find("://") {
        let (head, tail) = rest.split_at(scheme + 3);
        out.push_str(head);
        let authority_end = tail.find(['/', ' ', '\'', '"']).unwrap_or(tail.len());
        match tail[..authority_end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(&tail[at..authority_end]);
            }
            None => out.push_str(&tail[..authority_end]),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

/// What secret `url` carries in its user info, if any: a password (`user:secret@`), or over
/// HTTP(S) a user name alone, which forges also take a token in (`TOKEN@host`). An SSH user
/// name (`ssh://git@host`, `git@host:org/repo`) is no secret.
pub fn credentials_in_url(url: &str) -> Option<&'static str> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let (userinfo, _host) = authority.rsplit_once('@')?;
    if userinfo.contains(':') {
        Some("a password or token")
    } else if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") {
        Some("a user name, which forges also read as a token")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_found_and_ssh_users_are_not() {
        for url in [
            "https://x:ghp_secret@github.com/org/r.git",
            "https://ghp_secret@github.com/org/r.git",
            "HTTP://user:pw@127.0.0.1:8080/r.git",
            "ssh://git:pw@host/r.git",
        ] {
            assert!(credentials_in_url(url).is_some(), "{url}");
        }
        for url in [
            "https://github.com/org/r.git",
            "https://github.com/org/r@v1.git",
            "ssh://git@github.com/org/r.git",
            "git@github.com:org/r.git",
            "file:///tmp/r.git",
        ] {
            assert_eq!(credentials_in_url(url), None, "{url}");
        }
    }

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(
            redact_url("failed: https://bot:s3cret@git.example/org/r.git: 401"),
            "failed: https://***@git.example/org/r.git: 401"
        );
        assert_eq!(redact_url("file:///tmp/x.git"), "file:///tmp/x.git");
        assert_eq!(redact_url("no url"), "no url");
    }

    #[test]
    fn secrets_come_from_env_and_files_and_are_named_by_source() {
        let dir = std::env::temp_dir().join(format!("tagsmith-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "tok\n").unwrap();
        let auth = GitAuth {
            username: Some(Username::Literal("u".into())),
            password: Some(Secret::File(file.clone())),
            ssh: None,
        };
        let c = Credentials::resolve(&auth).unwrap().unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "tok"));
        assert!(
            !format!("{c:?}").contains("tok\""),
            "debug output hides the password"
        );

        let missing = GitAuth {
            username: None,
            password: Some(Secret::Env("TAGSMITH_TEST_SURELY_UNSET".into())),
            ssh: None,
        };
        let e = Credentials::resolve(&missing).unwrap_err().to_string();
        assert_eq!(
            e,
            "cannot read git credentials from env TAGSMITH_TEST_SURELY_UNSET: not set"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
