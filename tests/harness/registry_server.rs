//! A real OCI registry for the registry tests: Debian's `docker-registry` (the Docker
//! distribution registry) on a free loopback port, plain HTTP, storing in a private folder;
//! stopped when dropped.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::poll;

/// A running `docker-registry`.
pub struct Registry {
    /// `127.0.0.1:PORT`, the start of a reference naming it.
    pub host: String,
    _dir: tempfile::TempDir,
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
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
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
        Self {
            host: format!("127.0.0.1:{port}"),
            _dir: dir,
            child,
        }
    }

    /// Stop it (SIGKILL); it does not come back.
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
