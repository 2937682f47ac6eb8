#![allow(clippy::unwrap_used)]

//! Git over SSH against a real OpenSSH server: key authentication and known_hosts checking.

use std::path::Path;

use crate::gitserver::ssh::SshServer;
use crate::gitserver::{bare_repo, rev, show};
use crate::support::workspace::{author, commit_file};
use tagsmith::config::{GitAuth, GitSource, SshAuth};
use tagsmith::git::Workspace;

fn source(server: &SshServer, repo: &Path, known_hosts: &Path) -> GitSource {
    GitSource {
        checkout: None,
        push_options: Vec::new(),
        url: server.url(repo),
        branch: "main".into(),
        auth: GitAuth {
            ssh: Some(SshAuth {
                key_file: server.client_key.clone(),
                passphrase: None,
                known_hosts: known_hosts.to_path_buf(),
            }),
            ..GitAuth::default()
        },
    }
}

#[test]
fn clone_commit_and_push_over_ssh() {
    let tmp = tempfile::tempdir().unwrap();
    let server = SshServer::start(tmp.path());
    let bare = bare_repo(tmp.path(), "m", &[("a.yaml", "x: 1\n")]);
    let ws = Workspace::open_objects(
        &tmp.path().join("ws"),
        &source(&server, &bare, &server.known_hosts),
    )
    .unwrap();
    ws.sync("main", "main").unwrap();
    let c = commit_file(&ws, "a.yaml", "x: 2\n", &author(), "over ssh").unwrap();
    ws.push(c.id, "main").unwrap();
    assert_eq!(rev(&bare, "main"), c.id.to_string());
    assert_eq!(show(&bare, "main", "a.yaml"), "x: 2\n");
}

#[test]
fn unknown_and_changed_host_keys_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let server = SshServer::start(tmp.path());
    let bare = bare_repo(tmp.path(), "m", &[("a.yaml", "x: 1\n")]);

    let empty = tmp.path().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let ws =
        Workspace::open_objects(&tmp.path().join("ws1"), &source(&server, &bare, &empty)).unwrap();
    let err = ws.sync("main", "main").unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "host key of [127.0.0.1]:{} is not in",
            server.port
        )),
        "{err}"
    );
    assert!(err.contains("ssh-keyscan -p"), "{err}");

    let other = tmp.path().join("other_known_hosts");
    let wrong_key = "AAAAC3NzaC1lZDI1NTE5AAAAIBl3YQ5sTq0cDLPXmbX4mnLVRl5zZoU12Y0oS8cBXE1x";
    std::fs::write(
        &other,
        format!("[127.0.0.1]:{} ssh-ed25519 {wrong_key}\n", server.port),
    )
    .unwrap();
    let ws =
        Workspace::open_objects(&tmp.path().join("ws2"), &source(&server, &bare, &other)).unwrap();
    let err = ws.sync("main", "main").unwrap_err().to_string();
    assert!(err.contains("does not match"), "{err}");
}

#[test]
fn a_missing_key_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = tmp.path().join("x.git");
    let src = GitSource {
        checkout: None,
        push_options: Vec::new(),
        url: format!("ssh://git@127.0.0.1:1{}", bare.display()),
        branch: "main".into(),
        auth: GitAuth {
            ssh: Some(SshAuth {
                key_file: tmp.path().join("nope"),
                passphrase: None,
                known_hosts: tmp.path().join("kh"),
            }),
            ..GitAuth::default()
        },
    };
    let err = Workspace::open_objects(&tmp.path().join("ws"), &src)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("ssh key {}", tmp.path().join("nope").display())),
        "{err}"
    );
}
