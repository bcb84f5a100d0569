//! Content-addressed cache of quantized models.
//!
//! Layout: `<dir>/<key>.onnx` (the int8 model) and `<dir>/<key>.json` (its report, with
//! the sha256 of the `.onnx` file and the key's canonical settings), plus
//! `<dir>/<key>.lock` (an empty file that writers lock).
//!
//! The key is the sha256 of a canonical text naming everything that changes the
//! result: the sha256 of the model bytes, every setting (precision, observer,
//! calibration source and its parameters), and the thermalzsq version. Equal key, equal
//! model.
//!
//! Writes are atomic: each file goes to a temporary file in the same directory, is
//! synced, then renamed; the report is written last, so an entry exists only once both
//! files are complete. Two processes calibrating the same model serialise on an
//! exclusive lock of `<key>.lock` (`flock`); the second finds the first's entry when it
//! gets the lock and does not recompute it; a writer that crashes releases its lock with
//! its process, and [`Cache::open`] removes temporary files older than a day.
//! [`Cache::lookup`] checks an entry (the model decodes as ONNX, its sha256 matches the
//! report's) and removes a corrupt one.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use super::ZsqError;
use crate::onnx::Model;

/// Lower-case hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(2 * bytes.len()), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// sha256 of `bytes`, in hexadecimal.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// A cache key: the sha256 of `canonical`, the text that names what the entry depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    pub hex: String,
    pub canonical: String,
}

impl CacheKey {
    /// The key of `model_bytes` quantized with the settings written in `settings`
    /// (one `name=value` per line, in a fixed order; see
    /// [`super::pipeline::QuantizeSettings::canonical`]). The crate version is part of
    /// the key: another version may quantize differently.
    pub fn new(model_bytes: &[u8], settings: &str) -> CacheKey {
        let canonical = format!(
            "thermalzsq={}\nmodel_sha256={}\n{}",
            env!("CARGO_PKG_VERSION"),
            sha256_hex(model_bytes),
            settings.trim_end()
        );
        CacheKey {
            hex: sha256_hex(canonical.as_bytes()),
            canonical,
        }
    }
}

/// A complete, verified cache entry.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheEntry {
    pub model: PathBuf,
    pub report: PathBuf,
    /// The report as stored (it includes `output_sha256` and `cache_key`).
    pub report_json: serde_json::Value,
}

/// A held exclusive lock on one key; released when dropped.
#[derive(Debug)]
pub struct CacheLock {
    file: File,
}

impl Drop for CacheLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// A cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// `$XDG_CACHE_HOME/thermalzsq` (an absolute `XDG_CACHE_HOME`), else
    /// `$HOME/.cache/thermalzsq`; `None` when neither variable helps.
    pub fn default_dir() -> Option<PathBuf> {
        let xdg = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute());
        let base = xdg.or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .map(|h| h.join(".cache"))
        })?;
        Some(base.join("thermalzsq"))
    }

    /// The cache in [`Cache::default_dir`].
    pub fn open_default() -> Result<Cache, ZsqError> {
        let dir = Self::default_dir().ok_or_else(|| {
            ZsqError::Cache(
                "no cache directory: neither XDG_CACHE_HOME nor HOME is set to an absolute path"
                    .into(),
            )
        })?;
        Self::open(dir)
    }

    /// Opens (creating it if need be) a cache directory and checks that it is
    /// writable; the error says why not, so a caller can go on without a cache.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Cache, ZsqError> {
        let dir = dir.into();
        let unusable = |e: std::io::Error| {
            ZsqError::Cache(format!(
                "cache directory {} is not usable: {e}",
                dir.display()
            ))
        };
        std::fs::create_dir_all(&dir).map_err(unusable)?;
        let probe = dir.join(format!(".probe.{}.{}", std::process::id(), unique()));
        File::create(&probe)
            .and_then(|mut f| f.write_all(b"ok"))
            .map_err(unusable)?;
        let _ = std::fs::remove_file(&probe);
        remove_stale_temporaries(&dir);
        Ok(Cache { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the model and the report of `key` live.
    pub fn paths(&self, key: &CacheKey) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("{}.onnx", key.hex)),
            self.dir.join(format!("{}.json", key.hex)),
        )
    }

    /// The entry of `key` if it is complete and intact. A damaged entry (report
    /// unreadable, model missing, not ONNX, or not the bytes the report names) is
    /// removed and reported as a miss.
    pub fn lookup(&self, key: &CacheKey) -> Option<CacheEntry> {
        let (model, report) = self.paths(key);
        if !report.exists() {
            return None;
        }
        match verify(&model, &report, key) {
            Ok(report_json) => Some(CacheEntry {
                model,
                report,
                report_json,
            }),
            Err(_) => {
                let _ = std::fs::remove_file(&report);
                let _ = std::fs::remove_file(&model);
                None
            }
        }
    }

    /// Why the entry of `key` would not be used (`Ok` if it is sound); for diagnostics.
    pub fn check(&self, key: &CacheKey) -> Result<(), String> {
        let (model, report) = self.paths(key);
        verify(&model, &report, key).map(|_| ())
    }

    /// Stores a model and its report (a JSON object; `output_sha256` and `cache_key`
    /// are added), atomically: model first, report last.
    pub fn store(
        &self,
        key: &CacheKey,
        model_bytes: &[u8],
        report: serde_json::Value,
    ) -> Result<CacheEntry, ZsqError> {
        let (model_path, report_path) = self.paths(key);
        let mut report = match report {
            serde_json::Value::Object(map) => map,
            other => {
                let mut map = serde_json::Map::new();
                map.insert("report".into(), other);
                map
            }
        };
        report.insert("output_sha256".into(), sha256_hex(model_bytes).into());
        report.insert("cache_key".into(), key.hex.clone().into());
        report.insert("cache_canonical".into(), key.canonical.clone().into());
        let report = serde_json::Value::Object(report);
        let text = serde_json::to_vec_pretty(&report).expect("JSON values serialise");
        write_atomically(&model_path, model_bytes)?;
        write_atomically(&report_path, &text)?;
        Ok(CacheEntry {
            model: model_path,
            report: report_path,
            report_json: report,
        })
    }

    /// Waits for, then holds, the exclusive lock of `key`.
    pub fn lock(&self, key: &CacheKey) -> Result<CacheLock, ZsqError> {
        self.lock_unless(key, None)
    }

    /// [`Cache::lock`], giving up with `Cancelled` when `cancel` is raised while another
    /// process holds the lock (polled every 50 ms): a pipeline going to NULL must not
    /// wait for another pipeline's calibration.
    pub fn lock_unless(
        &self,
        key: &CacheKey,
        cancel: Option<&std::sync::atomic::AtomicBool>,
    ) -> Result<CacheLock, ZsqError> {
        let path = self.dir.join(format!("{}.lock", key.hex));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| {
                ZsqError::Cache(format!("cannot open lock file {}: {e}", path.display()))
            })?;
        let failed = |e: &dyn std::fmt::Display| {
            ZsqError::Cache(format!("cannot lock {}: {e}", path.display()))
        };
        let Some(cancel) = cancel else {
            file.lock().map_err(|e| failed(&e))?;
            return Ok(CacheLock { file });
        };
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(CacheLock { file }),
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => return Err(failed(&e)),
            }
            if cancel.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(ZsqError::Cancelled);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// The entry of `key`, made by `create` (model bytes and report) if there is none.
    /// Concurrent callers with the same key (threads or processes) run `create` once:
    /// the others wait for the lock and find the entry. Returns the entry and whether
    /// it was found (`true`) or made (`false`).
    pub fn get_or_create(
        &self,
        key: &CacheKey,
        create: impl FnOnce() -> Result<(Vec<u8>, serde_json::Value), ZsqError>,
    ) -> Result<(CacheEntry, bool), ZsqError> {
        if let Some(entry) = self.lookup(key) {
            return Ok((entry, true));
        }
        let _lock = self.lock(key)?;
        if let Some(entry) = self.lookup(key) {
            return Ok((entry, true));
        }
        let (bytes, report) = create()?;
        Ok((self.store(key, &bytes, report)?, false))
    }
}

fn verify(model: &Path, report: &Path, key: &CacheKey) -> Result<serde_json::Value, String> {
    let text = std::fs::read(report).map_err(|e| format!("report: {e}"))?;
    let json: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| format!("report is not JSON: {e}"))?;
    let recorded = json
        .get("output_sha256")
        .and_then(|v| v.as_str())
        .ok_or("report has no output_sha256")?;
    if json.get("cache_key").and_then(|v| v.as_str()) != Some(key.hex.as_str()) {
        return Err("report belongs to another key".into());
    }
    let bytes = std::fs::read(model).map_err(|e| format!("model: {e}"))?;
    if sha256_hex(&bytes) != recorded {
        return Err("model bytes do not match the report's sha256".into());
    }
    Model::from_bytes(&bytes).map_err(|e| format!("model is not ONNX: {e}"))?;
    Ok(json)
}

/// Temporary files a crashed writer left behind (a live writer's are seconds old).
fn remove_stale_temporaries(dir: &Path) {
    const STALE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE);
        if name.starts_with('.') && name.ends_with(".tmp") && old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A number no other call in this process gets: unique temporary file names.
pub(crate) fn unique() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// Writes through a synced temporary file in the same directory and a rename, then
/// syncs the directory so the rename itself is durable.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ZsqError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.{}.{}.tmp", std::process::id(), unique()));
    let result = File::create(&temp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&temp, path));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&temp);
        return Err(ZsqError::Io {
            path: path.to_path_buf(),
            action: "write",
            source: e,
        });
    }
    if let Some(d) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .and_then(|d| File::open(d).ok())
    {
        let _ = d.sync_all();
    }
    Ok(())
}
