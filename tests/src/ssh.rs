//! Git over SSH: Debian's OpenSSH sshd on a loopback port, with a generated
//! host key and a generated client key pair.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{TestDir, free_port, read_lossy, require_peer, run_ok, stop_group};

const SSHD: &str = "/usr/sbin/sshd";
const SSH_KEYGEN: &str = "/usr/bin/ssh-keygen";

/// A running sshd that accepts the generated client key for the current user.
#[derive(Debug)]
pub struct SshServer {
    dir: TestDir,
    root: PathBuf,
    port: u16,
    user: String,
    sshd: Child,
}

impl SshServer {
    pub fn start(root: &Path) -> SshServer {
        let sshd = require_peer("sshd", Path::new(SSHD));
        require_peer("ssh-keygen", Path::new(SSH_KEYGEN));
        let root = std::fs::canonicalize(root)
            .unwrap_or_else(|e| panic!("git root {}: {e}", root.display()));
        // sshd insists on its privilege separation directory.
        if crate::is_root() {
            std::fs::create_dir_all("/run/sshd").expect("creating /run/sshd");
        }

        let dir = TestDir::new("sshd");
        let d = dir.path().to_path_buf();
        keygen(&d.join("host_ed25519"), "pyexec-test-host");
        keygen(&d.join("client_ed25519"), "pyexec-test-client");
        std::fs::copy(d.join("client_ed25519.pub"), d.join("authorized_keys")).unwrap();

        let port = free_port();
        let conf = format!(
            "Port {port}\n\
             ListenAddress 127.0.0.1\n\
             HostKey {d}/host_ed25519\n\
             PidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\n\
             StrictModes no\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\n\
             UsePAM no\n\
             PrintMotd no\n\
             LogLevel VERBOSE\n",
            d = d.display()
        );
        let conf_path = d.join("sshd_config");
        std::fs::write(&conf_path, conf).unwrap();

        let log_file = File::create(d.join("sshd.log")).unwrap();
        let mut child = Command::new(&sshd)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting sshd: {e}"));
        let log_path = d.join("sshd.log");
        crate::wait_for_port("sshd", &mut child, port, Duration::from_secs(10), || {
            read_lossy(&log_path)
        });

        SshServer {
            dir,
            root,
            port,
            user: crate::current_user(),
            sshd: child,
        }
    }

    /// `ssh://<user>@127.0.0.1:PORT<root>/<name>.git`
    pub fn url(&self, repo_name: &str) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}/{repo_name}.git",
            self.user,
            self.port,
            self.root.display()
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The client's OpenSSH private key (authorized on this server).
    pub fn client_private_key(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("client_ed25519")).unwrap()
    }

    /// Path of the client's private key file (mode 600), for `ssh -i`.
    pub fn client_key_path(&self) -> PathBuf {
        self.dir.path().join("client_ed25519")
    }

    /// A correct known_hosts line: `[127.0.0.1]:PORT ssh-ed25519 AAAA...`
    pub fn known_hosts(&self) -> String {
        self.known_hosts_for(&self.dir.path().join("host_ed25519.pub"))
    }

    /// A known_hosts line for the same host with a different, freshly
    /// generated key: must make host-key verification fail.
    pub fn wrong_known_hosts(&self) -> String {
        let other = tempfile::Builder::new()
            .prefix("wrong-key-")
            .tempdir_in(self.dir.path())
            .unwrap();
        let key = other.path().join("other_ed25519");
        keygen(&key, "pyexec-test-wrong-host");
        self.known_hosts_for(&key.with_extension("pub"))
    }

    /// sshd's log (for diagnostics).
    pub fn log(&self) -> String {
        read_lossy(&self.dir.path().join("sshd.log"))
    }

    fn known_hosts_for(&self, pub_key: &Path) -> String {
        let text = std::fs::read_to_string(pub_key).unwrap();
        let mut fields = text.split_whitespace();
        let (kind, key) = (fields.next().unwrap(), fields.next().unwrap());
        format!("[127.0.0.1]:{} {kind} {key}\n", self.port)
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        stop_group(&mut self.sshd, libc::SIGTERM, Duration::from_secs(2));
    }
}

fn keygen(path: &Path, comment: &str) {
    run_ok(
        Command::new(SSH_KEYGEN)
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(path),
    );
}
