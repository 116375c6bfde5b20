//! The decision log: recording what policies were given and decided, for `switchyard policy
//! replay`.

use std::path::PathBuf;

use serde::Deserialize;

use super::Invalid;

/// Record every policy decision (or a sample) as a JSON line: the request view (message sizes,
/// allow-listed headers, metadata; never keys or credential headers), the catalog with its live
/// health, the team budget, the time-to-first-token figures, the decision, and how the request
/// ended (status, model, tokens, cost; 499 for a request cut short). Message text only with
/// `message_text = true`; but what a policy writes itself (its reasons, rejection and error
/// messages) and the request's `metadata` are recorded as they are, and a policy that reads text
/// may quote it there. The file is created readable by its owner only.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionLogConfig {
    /// The file records are appended to, relative to the config file's folder; its folder must
    /// exist.
    pub path: PathBuf,
    /// Also record each message's text, up to the policy's `max_message_chars`. Off by default:
    /// prompts often hold personal data, and a replay of a policy that reads text is then less
    /// faithful.
    #[serde(default)]
    pub message_text: bool,
    /// Share of decisions recorded, above 0 and at most 1.
    #[serde(default = "all")]
    pub sample: f64,
    /// Once the file reaches this size in MiB it is renamed to `PATH.1` (replacing the previous
    /// one) and a new file is started, so the log never takes more than twice this.
    #[serde(default = "max_file_mib")]
    pub max_file_mib: u32,
}

fn all() -> f64 {
    1.0
}

fn max_file_mib() -> u32 {
    256
}

impl DecisionLogConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if !(self.sample > 0.0 && self.sample <= 1.0) {
            return Err(Invalid::new(
                "decision_log.sample",
                "must be above 0 and at most 1",
            ));
        }
        if self.max_file_mib == 0 {
            return Err(Invalid::new(
                "decision_log.max_file_mib",
                "must be at least 1",
            ));
        }
        if self.path.file_name().is_none() {
            return Err(Invalid::new("decision_log.path", "must name a file"));
        }
        Ok(())
    }
}
