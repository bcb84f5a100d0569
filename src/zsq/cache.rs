//! Content-addressed cache of quantized models.
//!
//! Layout: `<dir>/<key>.onnx` (the int8 model) and `<dir>/<key>.json` (its report, with
//! the sha256 of the `.onnx` file and the key's canonical settings), plus
//! `<dir>/<key>.lock` (an empty file that writers lock).
//!
//! The key is the sha256 of a canonical text naming everything that changes the
//! result: the sha256 of the model bytes, every setting (see
//! [`super::pipeline::QuantizeSettings::canonical`]: the execution provider and the
//! loaded ONNX Runtime included), the thermalzsq version and this build's identity
//! ([`super::build_id`]: a hash of the code that makes models). Equal key, equal model.
//!
//! Writes are atomic: both files go to temporary files in the same directory and are
//! synced before either is renamed into place, the report last, so an entry exists only
//! once both files are complete, and a full disk leaves nothing behind. Two processes
//! calibrating the same model serialise on an exclusive lock of `<key>.lock` (`flock`);
//! the second finds the first's entry when it gets the lock and does not recompute it;
//! a writer that crashes releases its lock with its process, and [`Cache::open`]
//! removes temporary files older than a day.
//!
//! Reading never deletes: [`Cache::lookup`] checks an entry (the model decodes as ONNX,
//! its sha256 matches the report's) and answers a miss when it cannot prove the entry
//! sound. Only a holder of the key's lock removes an entry, and only a proven-corrupt
//! one (bytes that do not match the report, a report that is not JSON, a model that is
//! not ONNX): without the lock a mismatch may be another process's store half done,
//! and an I/O error says nothing about the entry, which another pipeline may be using.
//!
//! [`Cache::get_or_create`] is the one policy every caller uses: look up, else wait
//! for the lock (giving up when the caller cancels), check again, else create and
//! store. [`Cache::replace`] creates and stores under the lock whatever the cache holds
//! (a forced recalibration). Their [`CacheOutcome`] says which happened; a model made
//! but not stored is handed back with the store error, so a caller can warn and keep it
//! in memory instead of losing minutes of calibration to a full disk.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::ZsqError;
use super::build_id::build_id;
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
    /// [`super::pipeline::QuantizeSettings::canonical`]). The crate version and this
    /// build's identity are part of the key: other code may quantize differently, and
    /// the version alone does not change when the code does.
    pub fn new(model_bytes: &[u8], settings: &str) -> CacheKey {
        let canonical = format!(
            "thermalzsq={}\nbuild={}\nmodel_sha256={}\n{}",
            env!("CARGO_PKG_VERSION"),
            build_id(),
            sha256_hex(model_bytes),
            settings.trim_end()
        );
        CacheKey {
            hex: sha256_hex(canonical.as_bytes()),
            canonical,
        }
    }
}

/// A complete, verified cache entry (made only by [`Cache::lookup`] and
/// [`Cache::store`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CacheEntry {
    pub model: PathBuf,
    pub report: PathBuf,
    /// The report as stored (it includes `output_sha256` and `cache_key`).
    pub report_json: serde_json::Value,
    output_sha256: String,
}

impl CacheEntry {
    /// The sha256 of the model file, in hexadecimal: what its report records, checked
    /// against the bytes when the entry was looked up or stored.
    pub fn output_sha256(&self) -> &str {
        &self.output_sha256
    }
}

/// What [`Cache::get_or_create`] or [`Cache::replace`] found or did.
#[derive(Debug)]
pub enum CacheOutcome {
    /// The entry was in the cache, also when another process stored it while this one
    /// waited for the lock.
    Hit(CacheEntry),
    /// `create` made the entry and it was stored.
    Made(CacheEntry),
    /// `create` made the model but storing it failed: its bytes and report come back
    /// with the store error.
    MadeNotStored {
        bytes: Vec<u8>,
        report: serde_json::Value,
        error: ZsqError,
    },
}

/// Why an entry is not used.
#[derive(Debug)]
enum Fault {
    /// No report: no entry (or a store not finished).
    Missing,
    /// A file could not be read (an I/O error): nothing is known about the entry.
    Unreadable(String),
    /// The files were read and are wrong: under the key's lock, proof of corruption.
    Corrupt(String),
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Missing => f.write_str("no entry"),
            Fault::Unreadable(why) | Fault::Corrupt(why) => f.write_str(why),
        }
    }
}

/// A held exclusive lock on one key; released when dropped.
#[derive(Debug)]
struct CacheLock {
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

    /// The entry of `key` if it is complete and intact; else a miss. Never deletes (see
    /// the module documentation): a damaged entry is replaced or removed by the next
    /// [`Cache::get_or_create`], under the key's lock.
    pub fn lookup(&self, key: &CacheKey) -> Option<CacheEntry> {
        self.verified(key).ok()
    }

    /// Why the entry of `key` would not be used (`Ok` if it is sound); for diagnostics.
    pub fn check(&self, key: &CacheKey) -> Result<(), String> {
        self.verified(key).map(|_| ()).map_err(|f| f.to_string())
    }

    fn verified(&self, key: &CacheKey) -> Result<CacheEntry, Fault> {
        let (model, report) = self.paths(key);
        let (report_json, output_sha256) = verify(&model, &report, key)?;
        Ok(CacheEntry {
            model,
            report,
            report_json,
            output_sha256,
        })
    }

    /// Stores a model and its report (a JSON object; `output_sha256` and `cache_key`
    /// are added), atomically: both files written and synced first, then renamed into
    /// place, the report last. A failure leaves no temporary file. Callers that share
    /// the directory with other writers hold the key's lock ([`Cache::get_or_create`]
    /// and [`Cache::replace`] do).
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
        let output_sha256 = sha256_hex(model_bytes);
        report.insert("output_sha256".into(), output_sha256.clone().into());
        report.insert("cache_key".into(), key.hex.clone().into());
        report.insert("cache_canonical".into(), key.canonical.clone().into());
        let report = serde_json::Value::Object(report);
        let text = serde_json::to_vec_pretty(&report).expect("JSON values serialise");
        let model_temp = Temporary::write(&model_path, model_bytes)?;
        let report_temp = Temporary::write(&report_path, &text)?;
        model_temp.rename()?;
        pause_if_a_test_asks();
        report_temp.rename()?;
        sync_dir(&report_path);
        Ok(CacheEntry {
            model: model_path,
            report: report_path,
            report_json: report,
            output_sha256,
        })
    }

    /// The entry of `key`, made by `create` (model bytes and report) if there is none.
    /// Concurrent callers with the same key (threads or processes) run `create` once:
    /// the others wait for the lock and find the entry. While another holds the lock,
    /// raising `cancel` gives up with [`ZsqError::Cancelled`] (within 50 ms): a
    /// pipeline going to NULL must not wait for another pipeline's calibration.
    ///
    /// Under the lock, a proven-corrupt entry is removed before it is made again; an
    /// entry that cannot be read is made again (and stored over, if it can be).
    ///
    /// An error of `create`, or of the lock, is the error; an error storing what
    /// `create` made is [`CacheOutcome::MadeNotStored`].
    pub fn get_or_create(
        &self,
        key: &CacheKey,
        cancel: Option<&AtomicBool>,
        create: impl FnOnce() -> Result<(Vec<u8>, serde_json::Value), ZsqError>,
    ) -> Result<CacheOutcome, ZsqError> {
        if let Some(entry) = self.lookup(key) {
            return Ok(CacheOutcome::Hit(entry));
        }
        let _lock = self.lock(key, cancel)?;
        match self.verified(key) {
            Ok(entry) => return Ok(CacheOutcome::Hit(entry)),
            Err(Fault::Corrupt(_)) => self.remove(key),
            Err(Fault::Missing | Fault::Unreadable(_)) => {}
        }
        self.create_and_store(key, create)
    }

    /// Makes the entry of `key` with `create` and stores it in place of whatever the
    /// cache holds (a forced recalibration), under the key's lock: a concurrent
    /// [`Cache::get_or_create`] waits, then finds the new entry. Cancelling and errors
    /// as there.
    pub fn replace(
        &self,
        key: &CacheKey,
        cancel: Option<&AtomicBool>,
        create: impl FnOnce() -> Result<(Vec<u8>, serde_json::Value), ZsqError>,
    ) -> Result<CacheOutcome, ZsqError> {
        let _lock = self.lock(key, cancel)?;
        self.create_and_store(key, create)
    }

    /// `create`, then [`Cache::store`]; the caller holds the key's lock.
    fn create_and_store(
        &self,
        key: &CacheKey,
        create: impl FnOnce() -> Result<(Vec<u8>, serde_json::Value), ZsqError>,
    ) -> Result<CacheOutcome, ZsqError> {
        let (bytes, report) = create()?;
        Ok(match self.store(key, &bytes, report.clone()) {
            Ok(entry) => CacheOutcome::Made(entry),
            Err(error) => CacheOutcome::MadeNotStored {
                bytes,
                report,
                error,
            },
        })
    }

    /// Removes the entry of `key` (report first: a model without its report is no
    /// entry); the caller holds the key's lock and has proven the entry corrupt.
    fn remove(&self, key: &CacheKey) {
        let (model, report) = self.paths(key);
        let _ = std::fs::remove_file(report);
        let _ = std::fs::remove_file(model);
    }

    /// Waits for, then holds, the exclusive lock of `key`; with `cancel`, polls every
    /// 50 ms and gives up with `Cancelled` once it is raised.
    fn lock(&self, key: &CacheKey, cancel: Option<&AtomicBool>) -> Result<CacheLock, ZsqError> {
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
            if cancel.load(Ordering::Relaxed) {
                return Err(ZsqError::Cancelled);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Test hook: when this variable names a file, [`Cache::store`] creates that file
/// between renaming the model and the report into place, then sleeps two minutes, so a
/// test (tests/cache.rs) can kill a writer with SIGKILL mid-store deterministically.
/// Read only there; nothing else sets or reads it.
pub const TEST_PAUSE_IN_STORE: &str = "THERMALZSQ_TEST_PAUSE_IN_STORE";

fn pause_if_a_test_asks() {
    if let Some(marker) = std::env::var_os(TEST_PAUSE_IN_STORE) {
        let _ = std::fs::write(marker, b"paused");
        std::thread::sleep(Duration::from_secs(120));
    }
}

/// The report of a sound entry and the model sha256 it records; else why not. Only an
/// I/O error reading a file is `Unreadable`; what was read and is wrong is `Corrupt`.
fn verify(
    model: &Path,
    report: &Path,
    key: &CacheKey,
) -> Result<(serde_json::Value, String), Fault> {
    let read = |path: &Path, what: &str| {
        std::fs::read(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound if what == "report" => Fault::Missing,
            std::io::ErrorKind::NotFound => Fault::Corrupt(format!("{what} missing")),
            _ => Fault::Unreadable(format!("{what}: {e}")),
        })
    };
    let corrupt = |why: String| Fault::Corrupt(why);
    let text = read(report, "report")?;
    let json: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| corrupt(format!("report is not JSON: {e}")))?;
    let recorded = json
        .get("output_sha256")
        .and_then(|v| v.as_str())
        .ok_or_else(|| corrupt("report has no output_sha256".into()))?
        .to_string();
    if json.get("cache_key").and_then(|v| v.as_str()) != Some(key.hex.as_str()) {
        return Err(corrupt("report belongs to another key".into()));
    }
    let bytes = read(model, "model")?;
    if sha256_hex(&bytes) != recorded {
        return Err(corrupt(
            "model bytes do not match the report's sha256".into(),
        ));
    }
    Model::from_bytes(&bytes).map_err(|e| corrupt(format!("model is not ONNX: {e}")))?;
    Ok((json, recorded))
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

/// A complete, synced temporary file beside its destination; removed when dropped
/// unless renamed into place.
struct Temporary {
    temp: PathBuf,
    path: PathBuf,
    renamed: bool,
}

impl Temporary {
    /// Writes `bytes` to a temporary file in `path`'s directory and syncs it.
    fn write(path: &Path, bytes: &[u8]) -> Result<Temporary, ZsqError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = Temporary {
            temp: path.with_file_name(format!(".{name}.{}.{}.tmp", std::process::id(), unique())),
            path: path.to_path_buf(),
            renamed: false,
        };
        File::create(&temp.temp)
            .and_then(|mut f| {
                f.write_all(bytes)?;
                f.sync_all()
            })
            .map_err(|e| temp.error(e))?;
        Ok(temp)
    }

    fn rename(mut self) -> Result<(), ZsqError> {
        std::fs::rename(&self.temp, &self.path).map_err(|e| self.error(e))?;
        self.renamed = true;
        Ok(())
    }

    fn error(&self, source: std::io::Error) -> ZsqError {
        ZsqError::Io {
            path: self.path.clone(),
            action: "write",
            source,
        }
    }
}

impl Drop for Temporary {
    fn drop(&mut self) {
        if !self.renamed {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Syncs the directory of `path`, so renames into it are durable.
fn sync_dir(path: &Path) {
    if let Some(d) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .and_then(|d| File::open(d).ok())
    {
        let _ = d.sync_all();
    }
}

/// Writes through a synced temporary file in the same directory and a rename, then
/// syncs the directory so the rename itself is durable.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ZsqError> {
    Temporary::write(path, bytes)?.rename()?;
    sync_dir(path);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Instant;

    use super::*;

    /// A small model that decodes as ONNX, so entries verify.
    const MODEL: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/onnx/all_fields.onnx"
    ));

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tzsq-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn key() -> CacheKey {
        CacheKey::new(MODEL, "precision=u8s8\nobserver=minmax")
    }

    fn made() -> Result<(Vec<u8>, serde_json::Value), ZsqError> {
        Ok((MODEL.to_vec(), serde_json::json!({ "what": "test" })))
    }

    fn temporaries(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn a_missing_entry_is_made_stored_and_then_hit() {
        let dir = temp_dir("made");
        let cache = Cache::open(&dir).unwrap();
        let CacheOutcome::Made(entry) = cache.get_or_create(&key(), None, made).unwrap() else {
            panic!("an empty cache makes the entry");
        };
        assert_eq!(entry.output_sha256(), sha256_hex(MODEL));
        assert_eq!(entry.report_json["output_sha256"], sha256_hex(MODEL));
        assert_eq!(entry.report_json["what"], "test");
        assert_eq!(std::fs::read(&entry.model).unwrap(), MODEL);
        assert_eq!(cache.lookup(&key()), Some(entry.clone()));

        let outcome = cache
            .get_or_create(&key(), None, || panic!("a hit creates nothing"))
            .unwrap();
        let CacheOutcome::Hit(hit) = outcome else {
            panic!("the stored entry is a hit: {outcome:?}");
        };
        assert_eq!(hit, entry);
        assert_eq!(hit.output_sha256(), sha256_hex(MODEL));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failed_store_hands_back_the_model_and_the_error() {
        let dir = temp_dir("not-stored");
        let cache = Cache::open(&dir).unwrap();
        // A directory where the model file goes: the rename fails, even for root (a
        // read-only directory does not stop root).
        std::fs::create_dir(cache.paths(&key()).0).unwrap();
        let outcome = cache.get_or_create(&key(), None, made).unwrap();
        let CacheOutcome::MadeNotStored {
            bytes,
            report,
            error,
        } = outcome
        else {
            panic!("the store fails: {outcome:?}");
        };
        assert_eq!(bytes, MODEL);
        assert_eq!(report, serde_json::json!({ "what": "test" }));
        assert!(matches!(error, ZsqError::Io { .. }), "{error:?}");
        assert!(cache.lookup(&key()).is_none());
        assert!(temporaries(&dir).is_empty(), "{:?}", temporaries(&dir));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_entry_whose_report_cannot_be_read_is_a_miss_and_is_not_deleted() {
        let dir = temp_dir("unreadable");
        let cache = Cache::open(&dir).unwrap();
        let entry = cache.store(&key(), MODEL, serde_json::json!({})).unwrap();
        // Reading the report fails for a reason that says nothing about its content (a
        // transient I/O error): its path is a directory. (Permissions do not stop root.)
        std::fs::remove_file(&entry.report).unwrap();
        std::fs::create_dir(&entry.report).unwrap();
        assert!(cache.lookup(&key()).is_none(), "a miss");
        assert_eq!(std::fs::read(&entry.model).unwrap(), MODEL, "not deleted");
        // Under the lock too: made again (and not stored over the directory), nothing
        // deleted.
        let outcome = cache.get_or_create(&key(), None, made).unwrap();
        assert!(
            matches!(outcome, CacheOutcome::MadeNotStored { .. }),
            "{outcome:?}"
        );
        assert!(entry.report.is_dir());
        assert_eq!(std::fs::read(&entry.model).unwrap(), MODEL);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_corrupt_entry_is_removed_only_under_the_lock() {
        let dir = temp_dir("corrupt");
        let cache = Cache::open(&dir).unwrap();
        let entry = cache.store(&key(), MODEL, serde_json::json!({})).unwrap();
        // The model no longer matches its report: corrupt, or another writer's store
        // half done (it renames the model, then the report, holding the lock).
        std::fs::write(&entry.model, &MODEL[..MODEL.len() / 2]).unwrap();
        let held = cache.lock(&key(), None).unwrap();
        assert!(cache.lookup(&key()).is_none(), "not a hit");
        assert!(
            entry.model.exists() && entry.report.exists(),
            "not removed without the lock"
        );
        let cancel = AtomicBool::new(false);
        let outcome = std::thread::scope(|scope| {
            let waiter = scope.spawn(|| {
                cache.get_or_create(&key(), Some(&cancel), || {
                    assert!(
                        !entry.model.exists() && !entry.report.exists(),
                        "removed under the lock, before the entry is made again"
                    );
                    made()
                })
            });
            // The waiter looks the entry up and waits for the lock meanwhile.
            std::thread::sleep(Duration::from_millis(300));
            assert!(
                entry.model.exists() && entry.report.exists(),
                "not removed while another holds the lock"
            );
            drop(held);
            waiter.join().unwrap()
        });
        assert!(matches!(outcome, Ok(CacheOutcome::Made(_))), "{outcome:?}");
        assert_eq!(std::fs::read(&entry.model).unwrap(), MODEL, "whole again");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn replace_makes_the_entry_again_although_the_cache_holds_it() {
        let dir = temp_dir("replace");
        let cache = Cache::open(&dir).unwrap();
        let first = cache
            .store(&key(), MODEL, serde_json::json!({ "run": 1 }))
            .unwrap();
        let outcome = cache
            .replace(&key(), None, || {
                Ok((MODEL.to_vec(), serde_json::json!({ "run": 2 })))
            })
            .unwrap();
        let CacheOutcome::Made(entry) = outcome else {
            panic!("replace makes the entry: {outcome:?}");
        };
        assert_eq!(entry.model, first.model);
        assert_eq!(entry.report_json["run"], 2);
        assert_eq!(cache.lookup(&key()).unwrap().report_json["run"], 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn waiting_for_another_holder_of_the_lock_gives_up_when_cancelled() {
        let dir = temp_dir("cancel");
        let cache = Cache::open(&dir).unwrap();
        let _held = cache.lock(&key(), None).unwrap();
        let cancel = AtomicBool::new(false);
        let started = Instant::now();
        let result = std::thread::scope(|scope| {
            scope.spawn(|| {
                std::thread::sleep(Duration::from_millis(150));
                cancel.store(true, Ordering::Relaxed);
            });
            cache.get_or_create(&key(), Some(&cancel), || panic!("never got the lock"))
        });
        assert!(matches!(result, Err(ZsqError::Cancelled)), "{result:?}");
        assert!(started.elapsed() >= Duration::from_millis(150));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn two_threads_asking_at_once_create_once() {
        let dir = temp_dir("race");
        let made_count = AtomicUsize::new(0);
        let outcomes: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    scope.spawn(|| {
                        Cache::open(&dir).unwrap().get_or_create(&key(), None, || {
                            made_count.fetch_add(1, Ordering::SeqCst);
                            // Long enough for the other thread to block on the lock.
                            std::thread::sleep(Duration::from_millis(300));
                            made()
                        })
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap().unwrap())
                .collect()
        });
        assert_eq!(made_count.load(Ordering::SeqCst), 1, "created once");
        let hits = outcomes
            .iter()
            .filter(|o| matches!(o, CacheOutcome::Hit(_)))
            .count();
        let made = outcomes
            .iter()
            .filter(|o| matches!(o, CacheOutcome::Made(_)))
            .count();
        assert_eq!((hits, made), (1, 1), "{outcomes:?}");
        let entry = Cache::open(&dir)
            .unwrap()
            .lookup(&key())
            .expect("a valid entry");
        assert_eq!(std::fs::read(&entry.model).unwrap(), MODEL);
        assert_eq!(entry.report_json["what"], "test");
        assert!(temporaries(&dir).is_empty(), "{:?}", temporaries(&dir));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
