//! Where a secret comes from (an environment variable or a file) and reading it.
//!
//! A leaf module: it imports nothing from the crate, so `config` (which names secrets) and the
//! adapters that read them (`server`, `git`, `forge`) depend on it without depending on each
//! other.

use std::fmt;
use std::path::PathBuf;

use thiserror::Error;

/// A secret's source as configured (`secretEnv`, `secretFile`, `tokenEnv`, ...). It holds no
/// value: `Display` names the source, and the value is read when it is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    Env(String),
    File(PathBuf),
}

impl fmt::Display for Secret {
    /// Names the source, never the value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(name) => write!(f, "env {name}"),
            Self::File(path) => write!(f, "file {}", path.display()),
        }
    }
}

/// Why a secret could not be read; the message never holds the value.
#[derive(Debug, Error)]
pub enum SecretError {
    #[error("not set")]
    NotSet,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("empty")]
    Empty,
}

impl Secret {
    /// Reads the value; a trailing newline (as editors and `echo` leave) is not part of it.
    pub fn read(&self) -> Result<String, SecretError> {
        let mut value = match self {
            Self::Env(name) => std::env::var(name).map_err(|_| SecretError::NotSet)?,
            Self::File(path) => std::fs::read_to_string(path)?,
        };
        let len = value.trim_end_matches(['\r', '\n']).len();
        value.truncate(len);
        if value.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_files_without_the_trailing_newline_and_names_problems_not_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "hunter2\r\n").unwrap();
        assert_eq!(Secret::File(path.clone()).read().unwrap(), "hunter2");
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(Secret::File(path).read(), Err(SecretError::Empty)));
        let unset = Secret::Env("TAGSMITH_TEST_SECRET_SURELY_UNSET".into());
        assert_eq!(unset.read().unwrap_err().to_string(), "not set");
        assert_eq!(unset.to_string(), "env TAGSMITH_TEST_SECRET_SURELY_UNSET");
        let missing = Secret::File(dir.path().join("missing"));
        assert!(matches!(missing.read(), Err(SecretError::Io(_))));
    }
}
