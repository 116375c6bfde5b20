//! The decision log's writer: records go through a bounded queue to a thread of their own that
//! appends them as JSON lines, so a slow disk never holds up a request.
//!
//! A full queue drops the record and counts it (`switchyard_decision_log_dropped_total`); the
//! file is rotated to `PATH.1` once it reaches its size cap. The writer touches only its file and
//! the rotated one, and ends (flushing) once every handle to the log is dropped.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};

use crate::config::DecisionLogConfig;
use crate::policy::json::DecisionRecord;

/// Records waiting to be written before new ones are dropped.
const QUEUE: usize = 4096;

/// An open decision log.
#[derive(Debug)]
pub struct DecisionLog {
    config: DecisionLogConfig,
    queue: SyncSender<DecisionRecord>,
}

impl DecisionLog {
    /// Open (or create) the file for appending and start its writer thread; the error names the
    /// file.
    pub fn open(config: &DecisionLogConfig) -> Result<Self, String> {
        let file = append(&config.path)
            .map_err(|e| format!("cannot open {} for appending: {e}", config.path.display()))?;
        let (queue, records) = mpsc::sync_channel(QUEUE);
        let writer = Writer {
            written: file.metadata().map_or(0, |m| m.len()),
            file: BufWriter::new(file),
            path: config.path.clone(),
            cap: u64::from(config.max_file_mib) * 1024 * 1024,
        };
        std::thread::Builder::new()
            .name("decision-log".into())
            .spawn(move || writer.run(records))
            .map_err(|e| format!("cannot start the decision log's writer: {e}"))?;
        Ok(Self {
            config: config.clone(),
            queue,
        })
    }

    /// The settings it was opened with.
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

    /// Queue `record` for writing; dropped (and counted) when the queue is full.
    pub fn write(&self, record: DecisionRecord) {
        if let Err(TrySendError::Full(_)) = self.queue.try_send(record) {
            metrics::counter!("switchyard_decision_log_dropped_total").increment(1);
        }
    }
}

fn append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// The writer thread's state.
struct Writer {
    file: BufWriter<File>,
    path: PathBuf,
    written: u64,
    cap: u64,
}

impl Writer {
    /// Write records as they come, flushing whenever the queue is empty, until every sender is
    /// gone.
    fn run(mut self, records: Receiver<DecisionRecord>) {
        while let Ok(record) = records.recv() {
            self.line(&record);
            while let Ok(record) = records.try_recv() {
                self.line(&record);
            }
            if let Err(e) = self.file.flush() {
                tracing::warn!("decision log {}: {e}", self.path.display());
            }
        }
    }

    fn line(&mut self, record: &DecisionRecord) {
        let mut line = serde_json::to_vec(record).expect("records serialize");
        line.push(b'\n');
        if self.written > 0 && self.written + line.len() as u64 > self.cap {
            self.rotate();
        }
        match self.file.write_all(&line) {
            Ok(()) => self.written += line.len() as u64,
            Err(e) => tracing::warn!("decision log {}: {e}", self.path.display()),
        }
    }

    /// Move the full file to `PATH.1` and start a new one.
    fn rotate(&mut self) {
        let mut old = self.path.clone().into_os_string();
        old.push(".1");
        let rotated = self
            .file
            .flush()
            .and_then(|()| std::fs::rename(&self.path, &old))
            .and_then(|()| append(&self.path));
        match rotated {
            Ok(file) => {
                self.file = BufWriter::new(file);
                self.written = 0;
            }
            Err(e) => tracing::warn!("decision log {}: cannot rotate: {e}", self.path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::json::{ApiJson, DecisionJson, RequestJson};

    fn record(id: &str) -> DecisionRecord {
        DecisionRecord {
            at_ms: 1,
            team: "t".into(),
            policy: "p@0".into(),
            request: RequestJson {
                id: id.into(),
                api: ApiJson::OpenaiChat,
                requested_model: None,
                team: Some("t".into()),
                messages: vec![],
                estimated_input_tokens: 1,
                max_output_tokens: None,
                stream: false,
                has_tools: false,
                has_images: false,
                temperature: None,
                headers: Default::default(),
                metadata: Default::default(),
            },
            catalog: vec![],
            budget: None,
            first_token_ms: Default::default(),
            messages: None,
            decision: DecisionJson::Reject {
                status: 400,
                message: "no".into(),
            },
            outcome: None,
        }
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
            cap: 3 * line_len,
        };
        for i in 0..5 {
            queue.send(record(&format!("r-{i}"))).unwrap();
        }
        drop(queue);
        writer.run(records);
        let read = |p: &Path| -> Vec<String> {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(|l| {
                    serde_json::from_str::<DecisionRecord>(l)
                        .unwrap()
                        .request
                        .id
                })
                .collect()
        };
        assert_eq!(
            read(&dir.path().join("decisions.jsonl.1")),
            ["r-0", "r-1", "r-2"]
        );
        assert_eq!(read(&path), ["r-3", "r-4"]);
    }
}
