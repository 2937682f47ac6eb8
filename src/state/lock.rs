//! One tagsmith per state directory. Two processes sharing workspaces reset, rewrite and commit
//! each other's files (commits whose files disagree with their message), so every command that
//! uses a state directory holds an exclusive OS lock on `<dir>/lock` for as long as it runs.
//! A second process refuses at once and names the holder: waiting would only turn an
//! overlapping CronJob into a queue, and beside `tagsmith run` it would wait forever.
//!
//! The lock is `flock(2)` through `std::fs::File::try_lock`: the kernel drops it when the
//! process exits, however it exits, so a crash never leaves a stale lock behind.

use std::fs::{DirBuilder, File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use thiserror::Error;

const FILE: &str = "lock";

#[derive(Debug, Error)]
pub enum LockError {
    #[error("cannot create the state directory {path}: {source}", path = path.display())]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot lock {path}: {source}", path = path.display())]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "state directory {dir} is in use by another tagsmith ({holder}); wait for it to finish, or give each process its own --state-dir",
        dir = dir.display()
    )]
    Held { dir: PathBuf, holder: String },
}

/// Held for the life of a command; dropping it (or exiting) releases the directory.
#[derive(Debug)]
pub struct StateDirLock {
    _file: File,
    dir: PathBuf,
}

impl StateDirLock {
    /// Creates `dir` owner-only (0700) if missing, then takes its lock or says who holds it.
    /// `command` names this process to a second one (`once`, `run`).
    pub fn acquire(dir: &Path, command: &str) -> Result<Self, LockError> {
        create_private_dir(dir).map_err(|source| LockError::Dir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(FILE);
        let lock_err = |source| LockError::Lock {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(lock_err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(LockError::Held {
                    dir: dir.to_path_buf(),
                    holder: if holder.is_empty() {
                        "it has not said who it is yet".into()
                    } else {
                        holder.to_string()
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(lock_err(e)),
        }
        // Who holds it, for the message of the next one; the lock itself is what counts.
        let started = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let who = format!(
            "tagsmith {command}, pid {}, since {started}\n",
            std::process::id()
        );
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(who.as_bytes()))
            .map_err(lock_err)?;
        Ok(Self {
            _file: file,
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// `create_dir_all` with mode 0700 for every folder it creates; existing ones are left as
/// they are (a mounted volume's root may be shared on purpose).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_name_until_it_lets_go() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        let first = StateDirLock::acquire(&dir, "run").unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let err = StateDirLock::acquire(&dir, "once").unwrap_err().to_string();
        assert!(err.contains("in use by another tagsmith"), "{err}");
        assert!(
            err.contains(&format!("tagsmith run, pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        StateDirLock::acquire(&dir, "once").unwrap();
    }
}
