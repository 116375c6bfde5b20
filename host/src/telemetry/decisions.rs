//! The decision log's writer: records (any serializable value; the request path sends the
//! policy's decision records) go through a bounded queue to a thread of their own that turns them
//! into JSON lines and appends them, so neither encoding nor a slow disk holds up a request.
//!
//! A full queue drops the record and counts it (`switchyard_decision_log_dropped_total`); the
//! file (created readable by its owner only) is rotated to `PATH.1` once it reaches its size cap.
//! One writer serves a path for the life of the process: a config reload that keeps the path
//! keeps the writer and only changes what is recorded (and the cap). [`DecisionLog::flush`] waits
//! until everything queued is on disk, which the proxy does before it exits. The writer touches
//! only its file and the rotated one.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::Duration;

use crate::config::DecisionLogConfig;

/// Records waiting to be written before new ones are dropped.
const QUEUE: usize = 4096;

/// A record the writer thread turns into one JSON line.
trait Record: Send {
    fn json(&self) -> serde_json::Result<Vec<u8>>;
}

impl<T: serde::Serialize + Send> Record for T {
    fn json(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(self)
    }
}

/// What the writer thread is sent.
enum Message {
    Record(Box<dyn Record>),
    /// Flush, then say so.
    Flush(mpsc::Sender<()>),
}

/// The file a log writes to and its writer thread.
#[derive(Debug)]
struct LogFile {
    queue: SyncSender<Message>,
    /// The size cap in bytes, which a reload may change.
    cap: Arc<AtomicU64>,
}

/// An open decision log: its file's writer and what to record.
#[derive(Debug)]
pub struct DecisionLog {
    config: DecisionLogConfig,
    file: Arc<LogFile>,
}

fn cap_bytes(config: &DecisionLogConfig) -> u64 {
    u64::from(config.max_file_mib) * 1024 * 1024
}

impl DecisionLog {
    /// Open (or create) the file for appending and start its writer thread; the error names the
    /// file.
    pub fn open(config: &DecisionLogConfig) -> Result<Self, String> {
        let file = append(&config.path)
            .map_err(|e| format!("cannot open {} for appending: {e}", config.path.display()))?;
        let (queue, messages) = mpsc::sync_channel(QUEUE);
        let cap = Arc::new(AtomicU64::new(cap_bytes(config)));
        let writer = Writer {
            written: file.metadata().map_or(0, |m| m.len()),
            file: BufWriter::new(file),
            path: config.path.clone(),
            cap: cap.clone(),
            errors: 0,
        };
        std::thread::Builder::new()
            .name("decision-log".into())
            .spawn(move || writer.run(messages))
            .map_err(|e| format!("cannot start the decision log's writer: {e}"))?;
        Ok(Self {
            config: config.clone(),
            file: Arc::new(LogFile { queue, cap }),
        })
    }

    /// The log for `config` after a reload: this one's writer when the path is the same (with
    /// the new settings), else a new one.
    pub fn reopen(self: &Arc<Self>, config: &DecisionLogConfig) -> Result<Arc<Self>, String> {
        if *config == self.config {
            return Ok(self.clone());
        }
        if config.path != self.config.path {
            return Self::open(config).map(Arc::new);
        }
        self.file.cap.store(cap_bytes(config), Ordering::Relaxed);
        Ok(Arc::new(Self {
            config: config.clone(),
            file: self.file.clone(),
        }))
    }

    /// The settings it records with.
    pub fn config(&self) -> &DecisionLogConfig {
        &self.config
    }

    /// Whether to record the decision for `request_id`, per `sample`: the same request id is
    /// always sampled the same way.
    pub fn sampled(&self, request_id: &str) -> bool {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(request_id);
        self.config.sample >= 1.0 || (hash as f64 / u64::MAX as f64) < self.config.sample
    }

    /// Queue `record` for writing; dropped (and counted) when the queue is full or the writer is
    /// gone.
    pub fn write(&self, record: impl serde::Serialize + Send + 'static) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.file.queue.try_send(Message::Record(Box::new(record)))
        {
            metrics::counter!("switchyard_decision_log_dropped_total").increment(1);
        }
    }

    /// Wait until every record queued so far is written and flushed, for at most `timeout`
    /// once the request is queued (queueing it waits for room, which the writer makes quickly).
    pub fn flush(&self, timeout: Duration) -> bool {
        let (done, flushed) = mpsc::channel();
        self.file.queue.send(Message::Flush(done)).is_ok() && flushed.recv_timeout(timeout).is_ok()
    }
}

/// Open `path` for appending, creating it readable and writable by its owner only.
fn append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// The writer thread's state.
struct Writer {
    file: BufWriter<File>,
    path: PathBuf,
    written: u64,
    cap: Arc<AtomicU64>,
    /// Write and rotation failures so far (warned about at powers of two).
    errors: u64,
}

impl Writer {
    /// Write records as they come, flushing whenever the queue is empty or asked to, until every
    /// sender is gone.
    fn run(mut self, messages: Receiver<Message>) {
        while let Ok(message) = messages.recv() {
            let mut acks = Vec::new();
            let mut handle = |message, acks: &mut Vec<mpsc::Sender<()>>| match message {
                Message::Record(record) => self.line(&*record),
                Message::Flush(ack) => acks.push(ack),
            };
            handle(message, &mut acks);
            while let Ok(message) = messages.try_recv() {
                handle(message, &mut acks);
            }
            if let Err(e) = self.file.flush() {
                self.failed(&e);
            }
            for ack in acks {
                let _ = ack.send(());
            }
        }
        let _ = self.file.flush();
    }

    fn line(&mut self, record: &dyn Record) {
        let mut line = match record.json() {
            Ok(line) => line,
            Err(e) => return self.failed(&e.into()),
        };
        line.push(b'\n');
        if self.written > 0 && self.written + line.len() as u64 > self.cap.load(Ordering::Relaxed) {
            self.rotate();
        }
        match self.file.write_all(&line) {
            Ok(()) => self.written += line.len() as u64,
            Err(e) => self.failed(&e),
        }
    }

    /// Move the full file to `PATH.1` and start a new one. On failure the count starts over, so a
    /// broken rotation is retried after another file's worth, not on every record.
    fn rotate(&mut self) {
        let mut old = self.path.clone().into_os_string();
        old.push(".1");
        let rotated = self
            .file
            .flush()
            .and_then(|()| std::fs::rename(&self.path, &old))
            .and_then(|()| append(&self.path));
        self.written = 0;
        match rotated {
            Ok(file) => self.file = BufWriter::new(file),
            Err(e) => self.failed(&e),
        }
    }

    /// Warn about a failure, at the first and then at every power of two, so a full disk does
    /// not flood the log.
    fn failed(&mut self, e: &io::Error) {
        self.errors += 1;
        if self.errors.is_power_of_two() {
            tracing::warn!(
                "decision log {}: {e} ({} failures so far)",
                self.path.display(),
                self.errors
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn record(id: &str) -> serde_json::Value {
        serde_json::json!({"v": 1, "request": {"id": id}, "decision": {"reject": 400}})
    }

    #[test]
    fn a_full_file_is_rotated_and_every_line_is_a_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.jsonl");
        let line_len = serde_json::to_vec(&record("r-0")).unwrap().len() as u64 + 1;
        let (queue, records) = mpsc::sync_channel(16);
        let writer = Writer {
            file: BufWriter::new(append(&path).unwrap()),
            path: path.clone(),
            written: 0,
            cap: Arc::new(AtomicU64::new(3 * line_len)),
            errors: 0,
        };
        for i in 0..5 {
            queue
                .send(Message::Record(Box::new(record(&format!("r-{i}")))))
                .unwrap();
        }
        drop(queue);
        writer.run(records);
        let read = |p: &Path| -> Vec<String> {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(|l| {
                    let record: serde_json::Value = serde_json::from_str(l).unwrap();
                    record["request"]["id"].as_str().unwrap().to_string()
                })
                .collect()
        };
        assert_eq!(
            read(&dir.path().join("decisions.jsonl.1")),
            ["r-0", "r-1", "r-2"]
        );
        assert_eq!(read(&path), ["r-3", "r-4"]);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "records are for the owner's eyes only");
    }

    #[test]
    fn a_reload_keeps_the_writer_of_the_same_path_and_flush_waits_for_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let config = DecisionLogConfig {
            path: dir.path().join("d.jsonl"),
            message_text: false,
            sample: 1.0,
            max_file_mib: 1,
        };
        let log = Arc::new(DecisionLog::open(&config).unwrap());
        let changed = log
            .reopen(&DecisionLogConfig {
                message_text: true,
                ..config.clone()
            })
            .unwrap();
        assert!(Arc::ptr_eq(&log.file, &changed.file));
        assert!(changed.config().message_text);
        let moved = log
            .reopen(&DecisionLogConfig {
                path: dir.path().join("e.jsonl"),
                ..config.clone()
            })
            .unwrap();
        assert!(!Arc::ptr_eq(&log.file, &moved.file));
        log.write(record("a"));
        changed.write(record("b"));
        assert!(changed.flush(Duration::from_secs(5)));
        let text = std::fs::read_to_string(&config.path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
    }
}
