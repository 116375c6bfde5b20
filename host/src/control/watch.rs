//! Keeping policy files and live versions in step: a changed file becomes a reload of that
//! policy, and a version an automatic rollback put live is written back to its file.
//!
//! The folders holding policy files are watched (not the files: editors and deploy tools replace
//! a file by renaming a new one over it). Only changes count: a file being opened, read or closed
//! unwritten is not one, or the proxy's own read of a file would set off the next read, for as
//! long as it runs ([`ChangeWatcher`]). Events are debounced per path, so a file being written
//! is read once it has been quiet for [`DEBOUNCE`]; a file still half-written after that fails
//! validation like any broken component and never goes live. Each changed policy is handed to
//! [`App::policy_file_changed`]. The watched set follows the config: it is re-read whenever a new
//! snapshot goes live. A rollback wakes the same task, which has [`App::save_rolled_back`] write
//! the restored versions. This module touches the file system only through `notify`.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify_debouncer_mini::notify::event::{AccessKind, AccessMode};
use notify_debouncer_mini::notify::{
    self, Event, EventHandler, EventKind, RecommendedWatcher, RecursiveMode, Watcher, WatcherKind,
};
use notify_debouncer_mini::{Config, DebounceEventResult, Debouncer, new_debouncer_opt};

use super::App;

/// How long a policy file must be quiet before it is read.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// The watched folders and which policy each watched file belongs to.
struct Watched {
    debouncer: Debouncer<ChangeWatcher>,
    dirs: BTreeSet<PathBuf>,
    files: HashMap<PathBuf, String>,
}

/// Start watching the policy files of `app`'s live config, for as long as the runtime runs.
pub fn spawn(app: Arc<App>) -> Result<(), notify::Error> {
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let debouncer = new_debouncer_opt(
        Config::default().with_timeout(DEBOUNCE),
        move |result: DebounceEventResult| {
            let _ = tx.send(result);
        },
    )?;
    let mut watched = Watched {
        debouncer,
        dirs: BTreeSet::new(),
        files: HashMap::new(),
    };
    watched.follow(&app);
    let mut generations = app.generations();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                Some(result) = events.recv() => {
                    let changed: BTreeSet<String> = match result {
                        Ok(events) => events
                            .iter()
                            .filter_map(|event| watched.files.get(&event.path).cloned())
                            .collect(),
                        Err(e) => {
                            tracing::warn!("watching policy files: {e}");
                            continue;
                        }
                    };
                    for name in changed {
                        app.policy_file_changed(&name).await;
                    }
                }
                Ok(()) = generations.changed() => watched.follow(&app),
                () = app.unsaved() => app.save_rolled_back().await,
                else => break,
            }
        }
    });
    Ok(())
}

impl Watched {
    /// Watch exactly the folders of the live config's policy files.
    fn follow(&mut self, app: &App) {
        let snapshot = app.snapshot();
        self.files.clear();
        for (name, slot) in &snapshot.policies {
            let path = slot.config().path;
            match canonical(&path) {
                Some(file) => {
                    self.files.insert(file, name.clone());
                }
                None => {
                    tracing::warn!(policy = %name, path = %path.display(), "cannot watch the policy file: its folder cannot be resolved")
                }
            }
        }
        let wanted: BTreeSet<PathBuf> = self
            .files
            .keys()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .collect();
        for dir in self.dirs.difference(&wanted) {
            let _ = self.debouncer.watcher().unwatch(dir);
        }
        for dir in wanted.difference(&self.dirs) {
            if let Err(e) = self
                .debouncer
                .watcher()
                .watch(dir, RecursiveMode::NonRecursive)
            {
                tracing::warn!(dir = %dir.display(), "cannot watch policy files: {e}");
            }
        }
        self.dirs = wanted;
    }
}

/// The platform's watcher, passing on changes only. notify reports a file being opened, read and
/// closed unwritten (`EventKind::Access`), and a reload reads the file: each read would be
/// answered by another one, a debounce later, for as long as the proxy runs.
struct ChangeWatcher(RecommendedWatcher);

impl Watcher for ChangeWatcher {
    fn new<F: EventHandler>(mut handler: F, config: notify::Config) -> notify::Result<Self> {
        let changes = move |event: notify::Result<Event>| {
            if !event.as_ref().is_ok_and(is_read) {
                handler.handle_event(event);
            }
        };
        RecommendedWatcher::new(changes, config).map(Self)
    }

    fn watch(&mut self, path: &Path, mode: RecursiveMode) -> notify::Result<()> {
        self.0.watch(path, mode)
    }

    fn unwatch(&mut self, path: &Path) -> notify::Result<()> {
        self.0.unwatch(path)
    }

    fn kind() -> WatcherKind {
        RecommendedWatcher::kind()
    }
}

/// A file opened, read or closed without being written.
fn is_read(event: &Event) -> bool {
    matches!(event.kind, EventKind::Access(kind) if kind != AccessKind::Close(AccessMode::Write))
}

/// `path` with its folder resolved, as events name it.
fn canonical(path: &Path) -> Option<PathBuf> {
    let dir = path.parent()?.canonicalize().ok()?;
    Some(dir.join(path.file_name()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, ModifyKind};

    #[test]
    fn reads_are_not_changes_and_writes_are() {
        let kinds = [
            (EventKind::Access(AccessKind::Open(AccessMode::Any)), true),
            (EventKind::Access(AccessKind::Read), true),
            (EventKind::Access(AccessKind::Close(AccessMode::Read)), true),
            (
                EventKind::Access(AccessKind::Close(AccessMode::Write)),
                false,
            ),
            (EventKind::Modify(ModifyKind::Data(DataChange::Any)), false),
            (EventKind::Create(CreateKind::File), false),
        ];
        for (kind, read) in kinds {
            assert_eq!(is_read(&Event::new(kind)), read, "{kind:?}");
        }
    }
}
