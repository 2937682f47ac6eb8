//! A target's workspace as the engine uses it: a source for a remote, tagsmith's identity,
//! and a commit of new file contents made the way a run makes one (from the synced objects).

use std::path::Path;

use tagsmith::config::{Author, GitAuth, GitSource};
use tagsmith::git::{CommitInfo, GitError, Workspace};
use tagsmith::rewrite::walk::{Before, ChangedFile};

/// The remote at `url`, branch main, no credentials.
pub fn source(url: &str) -> GitSource {
    GitSource {
        checkout: None,
        push_options: Vec::new(),
        url: url.to_string(),
        branch: "main".into(),
        auth: GitAuth::default(),
    }
}

/// The remote in the bare repository at `bare`, over file://.
pub fn file_source(bare: &Path) -> GitSource {
    source(&format!("file://{}", bare.display()))
}

pub fn author() -> Author {
    Author {
        name: "tagsmith".into(),
        email: "tagsmith@example.invalid".into(),
    }
}

/// Commits `content` at `path` on top of the synced commit, as a run commits its rewrite.
pub fn commit_file(
    ws: &Workspace,
    path: &str,
    content: &str,
    author: &Author,
    text: &str,
) -> Result<CommitInfo, GitError> {
    let changed = ChangedFile {
        path: path.into(),
        before: Before::Bytes(ws.head_file(Path::new(path)).unwrap_or_default()),
        after: content.as_bytes().to_vec(),
    };
    ws.commit_changes(&[changed], author, text, None)
}

/// The synced commit's `path` as text.
pub fn head_text(ws: &Workspace, path: &str) -> String {
    String::from_utf8(ws.head_file(Path::new(path)).unwrap()).unwrap()
}
