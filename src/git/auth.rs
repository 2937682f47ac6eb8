//! Credentials for remotes, resolved from env or files when needed, never logged.

use std::cell::Cell;

use git2::{Cred, CredentialType, RemoteCallbacks};

use super::GitError;
use crate::config::{GitAuth, Secret, Username};

/// libgit2 asks again after every 401; past this many attempts the credentials are wrong.
const MAX_CREDENTIAL_ATTEMPTS: u32 = 3;

#[derive(Clone)]
pub(super) struct Credentials {
    username: String,
    password: String,
    source: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("source", &self.source)
            .finish_non_exhaustive()
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
        }))
    }

    pub(super) fn source(&self) -> &str {
        &self.source
    }
}

/// Callbacks that answer credential requests a bounded number of times.
pub(super) fn callbacks<'a>(
    creds: Option<&'a Credentials>,
    attempts: &'a Cell<u32>,
) -> RemoteCallbacks<'a> {
    let mut callbacks = RemoteCallbacks::new();
    callbacks.credentials(move |_url, username_from_url, allowed| {
        attempts.set(attempts.get() + 1);
        if attempts.get() > MAX_CREDENTIAL_ATTEMPTS {
            let source = creds.map_or("no credentials configured", |c| c.source());
            return Err(git2::Error::from_str(&format!(
                "authentication failed (credentials from {source})"
            )));
        }
        match creds {
            Some(c) if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) => {
                Cred::userpass_plaintext(&c.username, &c.password)
            }
            _ if allowed.contains(CredentialType::DEFAULT) => Cred::default(),
            _ if allowed.contains(CredentialType::USERNAME) => {
                Cred::username(username_from_url.unwrap_or("git"))
            }
            _ => Err(git2::Error::from_str(
                "authentication required but no credentials are configured for this remote",
            )),
        }
    });
    callbacks
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

#[cfg(test)]
mod tests {
    use super::*;

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
        };
        let e = Credentials::resolve(&missing).unwrap_err().to_string();
        assert_eq!(
            e,
            "cannot read git credentials from env TAGSMITH_TEST_SURELY_UNSET: not set"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
