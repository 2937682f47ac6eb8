//! `secretRef`s outside a cluster: Secrets mounted the way Kubernetes mounts them, one folder
//! per Secret and one file per key, `DIR/<namespace>/<name>/<key>`. Only paths are handed on;
//! values are read where they are used, never copied into the config.

use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct Secrets {
    dir: Option<PathBuf>,
}

impl Secrets {
    pub fn new(dir: Option<&Path>) -> Self {
        Self {
            dir: dir.map(|d| std::path::absolute(d).unwrap_or_else(|_| d.to_path_buf())),
        }
    }

    /// The Secret's folder, or why there is none.
    pub fn folder(&self, namespace: &str, name: &str) -> Result<PathBuf, String> {
        let Some(dir) = &self.dir else {
            return Err(format!(
                "secret {namespace}/{name} cannot be read: give --secrets-dir DIR with the secret at DIR/{namespace}/{name}/"
            ));
        };
        let folder = dir.join(namespace).join(name);
        if folder.is_dir() {
            Ok(folder)
        } else {
            Err(format!(
                "secret {namespace}/{name} not found: no folder {}",
                folder.display()
            ))
        }
    }

    pub fn has(&self, namespace: &str, name: &str, key: &str) -> bool {
        self.folder(namespace, name)
            .is_ok_and(|f| f.join(key).is_file())
    }

    /// The file holding `key`, which must exist.
    pub fn key(&self, namespace: &str, name: &str, key: &str) -> Result<PathBuf, String> {
        let file = self.folder(namespace, name)?.join(key);
        if file.is_file() {
            Ok(file)
        } else {
            Err(format!(
                "secret {namespace}/{name} has no key {key:?} (no file {})",
                file.display()
            ))
        }
    }
}
