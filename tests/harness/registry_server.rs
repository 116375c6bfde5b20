//! A real OCI registry for the registry tests: Debian's `docker-registry` (the Docker
//! distribution registry) on a free loopback port, plain HTTP, storing in a private folder;
//! stopped when dropped, and restarted on the same port and storage when a test asks.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::poll;

/// A running `docker-registry`.
pub struct Registry {
    /// `127.0.0.1:PORT`, the start of a reference naming it.
    pub host: String,
    port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl Registry {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("a folder for the registry");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let config = dir.path().join("config.yml");
        let storage = dir.path().join("storage");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: switchyard-tests\n",
                storage.display()
            ),
        )
        .expect("write the registry's config");
        let child = serve(&dir, port);
        Self {
            host: format!("127.0.0.1:{port}"),
            port,
            dir,
            child,
        }
    }

    /// Start it again after [`Registry::stop`], with what it stored.
    pub fn start_again(&mut self) {
        self.child = serve(&self.dir, self.port);
    }

    /// Stop it (SIGKILL), until [`Registry::start_again`].
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Run `docker-registry` with the config in `dir`, once it accepts connections on `port`.
fn serve(dir: &tempfile::TempDir, port: u16) -> Child {
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(dir.path().join("config.yml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry is installed (.ci/run installs Debian's package)");
    let ready = || {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .ok()
            .map(drop)
    };
    poll::until_blocking("docker-registry accepting", Duration::from_secs(10), ready);
    child
}
