//! The real `switchyard` binary, started on port 0 with a config written for one test.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the proxy may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Builds a test config: providers, models, the policy and its options.
pub struct ConfigBuilder {
    policy: PathBuf,
    deadline_ms: u64,
    policy_options: Vec<String>,
    fallback: Vec<String>,
    top: Vec<String>,
    providers: Vec<String>,
    models: Vec<String>,
}

impl ConfigBuilder {
    /// A config running the policy component at `policy`.
    pub fn new(policy: &Path) -> Self {
        Self {
            policy: policy.to_path_buf(),
            deadline_ms: 1000,
            policy_options: vec![r#"headers = ["x-test-route", "x-test-reject", "x-test-error", "x-test-read", "x-test-dump", "x-test-spin", "x-test-panic", "x-test-timeout-ms"]"#.into()],
            fallback: Vec::new(),
            top: Vec::new(),
            providers: Vec::new(),
            models: Vec::new(),
        }
    }

    /// An `openai` provider at `url`, with its key in `key_env` if given.
    pub fn provider(mut self, name: &str, url: &str, key_env: Option<&str>) -> Self {
        let key = key_env
            .map(|k| format!("api_key_env = {k:?}\n"))
            .unwrap_or_default();
        self.providers.push(format!(
            "[[providers]]\nname = {name:?}\nkind = \"openai\"\nbase_url = {url:?}\n{key}"
        ));
        self
    }

    /// A catalog model.
    pub fn model(
        mut self,
        id: &str,
        provider: &str,
        upstream: &str,
        cost: f64,
        tags: &[&str],
    ) -> Self {
        self.models.push(format!(
            "[[models]]\nid = {id:?}\nprovider = {provider:?}\nupstream_model = {upstream:?}\ninput_cost_per_mtok = {cost}\noutput_cost_per_mtok = {}\ncontext_window = 100000\ntags = {tags:?}\n",
            cost * 4.0
        ));
        self
    }

    /// The policy deadline. Tests default to a generous one, so that a busy machine never turns
    /// a decision into a timeout; tests of the deadline set a short one.
    pub fn deadline_ms(mut self, ms: u64) -> Self {
        self.deadline_ms = ms;
        self
    }

    /// The static fallback route.
    pub fn fallback(mut self, models: &[&str]) -> Self {
        self.fallback = models.iter().map(|m| m.to_string()).collect();
        self
    }

    /// A raw `key = value` line in the `[policy]` table.
    pub fn policy_option(mut self, line: &str) -> Self {
        self.policy_options.push(line.to_string());
        self
    }

    /// A raw `key = value` line at the top level.
    pub fn top(mut self, line: &str) -> Self {
        self.top.push(line.to_string());
        self
    }

    pub fn toml(&self) -> String {
        format!(
            "listen = \"127.0.0.1:0\"\n{}\n[policy]\nname = \"test-policy\"\npath = {:?}\nfallback = {:?}\ndeadline_ms = {}\n{}\n\n{}\n{}",
            self.top.join("\n"),
            self.policy,
            self.fallback,
            self.deadline_ms,
            self.policy_options.join("\n"),
            self.providers.join("\n"),
            self.models.join("\n")
        )
    }
}

/// A running proxy; killed when dropped.
pub struct Proxy {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

/// How a proxy that failed to start ended.
#[derive(Debug)]
pub struct Exit {
    pub code: Option<i32>,
    pub stderr: String,
}

impl Proxy {
    /// Start the proxy with `config` and exactly the environment variables in `env`.
    pub fn start(config: &str, env: &[(&str, &str)]) -> Proxy {
        started(Self::try_start(config, env))
    }

    /// Start the proxy from a config file in the repository (with `--listen 127.0.0.1:0`).
    pub fn start_file(config: &Path) -> Proxy {
        let dir = tempfile::tempdir().expect("tempdir");
        started(Self::spawn(command(config, &[]), dir))
    }

    /// Start the proxy, or say how it exited.
    pub fn try_start(config: &str, env: &[(&str, &str)]) -> Result<Proxy, Exit> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("switchyard.toml");
        std::fs::write(&path, config).expect("write config");
        Self::spawn(command(&path, env), dir)
    }

    fn spawn(mut cmd: Command, dir: tempfile::TempDir) -> Result<Proxy, Exit> {
        let mut child = cmd.spawn().expect("spawn switchyard");
        let stderr = child.stderr.take().expect("stderr piped");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = logs.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("listening on http://") {
                    let addr = line[at + "listening on ".len()..]
                        .split_whitespace()
                        .next()
                        .unwrap_or_default();
                    let _ = tx.send(addr.to_string());
                }
                sink.lock().unwrap().push(line);
            }
        });
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(base) => Ok(Proxy {
                base,
                child,
                logs,
                _dir: dir,
            }),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().expect("wait");
                reader.join().expect("stderr reader");
                let stderr = logs.lock().unwrap().join("\n");
                Err(Exit {
                    code: status.code(),
                    stderr,
                })
            }
        }
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Everything the proxy logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// The first log line containing every one of `needles`, waiting up to 10 s for it.
    pub fn log_line(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self
                .logs
                .lock()
                .unwrap()
                .iter()
                .find(|l| needles.iter().all(|n| l.contains(n)))
                .cloned();
            if let Some(line) = found {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needles:?} in:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn started(result: Result<Proxy, Exit>) -> Proxy {
    result.unwrap_or_else(|exit| panic!("proxy did not start ({:?}):\n{}", exit.code, exit.stderr))
}

fn command(config: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(crate::proxy_binary());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .env_clear()
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}
