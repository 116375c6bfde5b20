//! A real Redis for the fleet tests: Debian's `redis-server` on a free loopback port, in a
//! private folder, with its append-only file on (so a restart keeps what it was told), stopped
//! when dropped. It can be paused (SIGSTOP) and resumed, killed and restarted on the same port
//! and folder, and asked for a key's value.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::poll;

/// A running `redis-server`.
pub struct Redis {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn spawn(port: u16, dir: &Path) -> Child {
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args([
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--daemonize",
            "no",
        ])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is installed (.ci/run installs Debian's package)");
    let ready = || {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .ok()
            .map(drop)
    };
    poll::until_blocking("redis-server accepting", Duration::from_secs(10), ready);
    child
}

impl Redis {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("a folder for redis");
        let port = free_port();
        let child = Some(spawn(port, dir.path()));
        Self { port, dir, child }
    }

    /// The URL a proxy's `[state] redis_url` names.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn signal(&self, signal: i32) {
        let pid = self.child.as_ref().expect("running").id();
        // SAFETY: sending a signal to a child process this harness started.
        unsafe { libc::kill(pid as i32, signal) };
    }

    /// Freeze it: connections stay open and nothing is answered.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// Kill it (SIGKILL): what it was told is in its append-only file.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again on the same port and folder.
    pub fn restart(&mut self) {
        self.kill();
        self.child = Some(spawn(self.port, self.dir.path()));
    }

    /// A connection for reading what the fleet wrote.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("a redis URL")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to redis")
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.resume();
        }
        self.kill();
    }
}
