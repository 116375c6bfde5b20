//! Where configuration reads environment variables from.
//!
//! Secrets such as upstream API keys are named in the config file and read from the environment.
//! Reading goes through [`Env`] so that tests give a map instead of mutating the process
//! environment (which is shared by every thread of a test binary).

use std::collections::HashMap;

/// A source of environment variables.
pub trait Env {
    /// The value of `key`, if set and valid UTF-8.
    fn var(&self, key: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

impl Env for HashMap<String, String> {
    fn var(&self, key: &str) -> Option<String> {
        self.get(key).cloned()
    }
}
