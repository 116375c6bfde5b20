//! The on-disk cache of compiled policies, so that a restart does not recompile them.
//!
//! Entries live in `DIR/<engine>/<sha256>.cwasm`, keyed by the component's SHA-256 and a digest
//! of the engine's compatibility hash (Wasmtime version, compiler settings, fuel metering:
//! anything that changes the machine code). Loading compiled code is `unsafe` in Wasmtime: it is
//! executed as is. So the cache reads only files the host wrote itself: the folder must belong to
//! this user and be closed to others (it is created with mode 0700), an entry must be a regular
//! file owned by this user with mode 0600, and its content must match the SHA-256 written at its
//! head when it was stored. Anything else is a miss: the entry is removed and the component is
//! compiled afresh. This module touches only that folder.

use std::fs::{self, File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::config::hex;

/// Length of the digest written before each compiled artifact.
const DIGEST_LEN: usize = 32;

/// A folder of compiled components for one engine configuration.
#[derive(Debug)]
pub struct CompileCache {
    dir: PathBuf,
}

/// Feeds `Hash` input into SHA-256, for a digest of the engine's compatibility hash that is
/// stable across runs.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        unreachable!("only the SHA-256 digest is read")
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl CompileCache {
    /// Use `root` (created if missing) for components compiled by `engine`; an error says why the
    /// folder cannot be trusted or created.
    pub fn open(root: &Path, engine: &Engine) -> Result<Self, String> {
        let mut hasher = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let key = hex(&hasher.0.finalize()[..16]);
        for dir in [root.to_path_buf(), root.join(&key)] {
            match fs::DirBuilder::new()
                .mode(0o700)
                .recursive(true)
                .create(&dir)
            {
                Ok(()) => private_dir(&dir)?,
                Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
            }
        }
        Ok(Self {
            dir: root.join(key),
        })
    }

    fn entry(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}.cwasm"))
    }

    /// The compiled component for `sha256`, if this host stored it and it is intact.
    pub fn load(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.entry(sha256);
        let bytes = match read_own_file(&path) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return None,
            Err(reason) => {
                tracing::warn!(path = %path.display(), "ignoring a compiled policy in the cache: {reason}");
                let _ = fs::remove_file(&path);
                return None;
            }
        };
        // SAFETY: the bytes are a file this user wrote with mode 0600 in a folder closed to
        // others, and they match the digest stored with them, so they are what `store` wrote:
        // the output of `Component::serialize` by an engine with the same compatibility hash.
        match unsafe { Component::deserialize(engine, &bytes[DIGEST_LEN..]) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring a compiled policy in the cache: {e:#}");
                let _ = fs::remove_file(&path);
                None
            }
        }
    }

    /// Store `component` as the compiled form of `sha256`; failures are logged and otherwise
    /// ignored (the next start compiles again).
    pub fn store(&self, sha256: &str, component: &Component) {
        let result = component
            .serialize()
            .map_err(|e| format!("{e:#}"))
            .and_then(|artifact| self.write(sha256, &artifact).map_err(|e| e.to_string()));
        if let Err(e) = result {
            tracing::warn!(dir = %self.dir.display(), "cannot cache a compiled policy: {e}");
        }
    }

    fn write(&self, sha256: &str, artifact: &[u8]) -> std::io::Result<()> {
        let path = self.entry(sha256);
        let temp = self
            .dir
            .join(format!(".{sha256}.{}.tmp", std::process::id()));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        let written = file
            .write_all(&Sha256::digest(artifact))
            .and_then(|()| file.write_all(artifact))
            .and_then(|()| file.sync_all())
            .and_then(|()| fs::rename(&temp, &path));
        if written.is_err() {
            let _ = fs::remove_file(&temp);
        }
        written
    }
}

/// Refuse a folder that another user owns or may write to.
fn private_dir(dir: &Path) -> Result<(), String> {
    let meta = fs::metadata(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    if meta.uid() != current_uid() {
        return Err(format!("{} belongs to another user", dir.display()));
    }
    if meta.permissions().mode() & 0o022 != 0 {
        return Err(format!(
            "{} may be written by other users (mode {:o})",
            dir.display(),
            meta.permissions().mode() & 0o777
        ));
    }
    Ok(())
}

/// The entry's bytes if it exists and this host wrote it; `Err` says why it is not trusted.
fn read_own_file(path: &Path) -> Result<Option<Vec<u8>>, String> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() || meta.uid() != current_uid() || meta.mode() & 0o077 != 0 {
        return Err("not a private file of this user".into());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    (&file).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    if bytes.len() <= DIGEST_LEN || Sha256::digest(&bytes[DIGEST_LEN..])[..] != bytes[..DIGEST_LEN]
    {
        return Err("its content does not match the digest stored with it".into());
    }
    Ok(Some(bytes))
}

fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest component: the preamble alone.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

    fn engine() -> Engine {
        Engine::default()
    }

    #[test]
    fn a_stored_component_is_loaded_back() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let cache = CompileCache::open(dir.path(), &engine).unwrap();
        let component = Component::new(&engine, EMPTY_COMPONENT).unwrap();
        assert!(cache.load(&engine, "abc").is_none());
        cache.store("abc", &component);
        assert!(cache.load(&engine, "abc").is_some());
    }

    #[test]
    fn tampered_or_foreign_entries_are_refused_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let cache = CompileCache::open(dir.path(), &engine).unwrap();
        let component = Component::new(&engine, EMPTY_COMPONENT).unwrap();
        cache.store("abc", &component);
        let path = cache.entry("abc");

        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert!(
            cache.load(&engine, "abc").is_none(),
            "a changed byte is caught"
        );
        assert!(!path.exists(), "the bad entry is removed");

        cache.store("abc", &component);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            cache.load(&engine, "abc").is_none(),
            "a file others may read was not written by the cache"
        );
    }

    #[test]
    fn a_folder_others_may_write_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let e = CompileCache::open(dir.path(), &engine()).unwrap_err();
        assert!(e.contains("may be written by other users"), "{e}");
    }
}
