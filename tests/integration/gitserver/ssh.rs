//! An OpenSSH server on a free loopback port serving Git over SSH with one authorized key.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SSHD: &str = "/usr/sbin/sshd";

pub struct SshServer {
    child: Child,
    pub port: u16,
    /// The client's private key, authorized for the current user.
    pub client_key: PathBuf,
    /// A known_hosts file listing the server's host key for `[127.0.0.1]:port`.
    pub known_hosts: PathBuf,
    pub user: String,
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "tagsmith-test", "-f"])
        .arg(path)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run ssh-keygen ({e}): install it with apt (openssh-client)")
        });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl SshServer {
    pub fn start(dir: &Path) -> Self {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: install it with apt (openssh-server), or run scripts/setup as root"
        );
        // sshd refuses to start without its privilege separation folder.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let host_key = dir.join("host_key");
        let client_key = dir.join("client_key");
        keygen(&host_key);
        keygen(&client_key);
        let authorized = dir.join("authorized_keys");
        std::fs::copy(client_key.with_extension("pub"), &authorized).unwrap();
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_string();
        let host_pub = std::fs::read_to_string(host_key.with_extension("pub")).unwrap();
        let mut fields = host_pub.split_whitespace();
        let (key_type, key) = (fields.next().unwrap(), fields.next().unwrap());
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let config = dir.join("sshd_config");
            std::fs::write(
                &config,
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\nAuthorizedKeysFile {}\n\
                     StrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                     PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nUsePAM no\n\
                     AllowUsers {user}\nLogLevel ERROR\n",
                    host_key.display(),
                    dir.join("sshd.pid").display(),
                    authorized.display()
                ),
            )
            .unwrap();
            let mut child = Command::new(SSHD)
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    let known_hosts = dir.join("known_hosts");
                    std::fs::write(
                        &known_hosts,
                        format!("[127.0.0.1]:{port} {key_type} {key}\n"),
                    )
                    .unwrap();
                    return Self {
                        child,
                        port,
                        client_key,
                        known_hosts,
                        user,
                    };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("sshd did not start on a loopback port");
    }

    pub fn url(&self, repo: &Path) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            repo.display()
        )
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
