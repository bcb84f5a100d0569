//! One ONNX Runtime session per model and settings in the process, shared by every
//! user that asks for the same one.
//!
//! A box with many cameras runs one detector per stream, usually the same model with
//! the same settings. A session per stream holds the model's weights, ONNX Runtime's
//! optimised graph and a thread pool each: N streams cost N times the memory and
//! N × threads threads that fight for the same cores. [`shared_session`] hands every
//! caller with the same model bytes, provider options and session config the same
//! [`SharedSession`]; the registry keeps only `Weak` references, so the session goes
//! away with its last user and a model swapped out leaves no session behind.
//!
//! ONNX Runtime's `Run` is not safe to call concurrently on one session for every
//! execution provider (the `ort` crate's `Session::run` takes `&mut self` for that
//! reason), so the session sits behind a mutex: the runs of different streams take
//! turns, each with all the session's intra-op threads. That is also the thread
//! budget: N streams on one session use one pool of `threads` (0: one per core), never
//! N pools. Where runs must overlap (a GPU with room for several at once, or a stream
//! that must not wait for another), a caller asks for a private session instead
//! ([`SharedSession::private`]).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError, Weak};

use ort::session::Session;
use sha2::{Digest, Sha256};

use super::{LoadedSession, ModelInfo, Provider, ProviderOptions, RuntimeError};

/// A session that several users may run, one run at a time, and what was learned
/// opening it.
pub struct SharedSession {
    session: Mutex<Session>,
    provider: Provider,
    fallbacks: Vec<String>,
    info: ModelInfo,
}

impl SharedSession {
    /// A session of its own, in no registry: nobody else runs on it.
    pub fn private(loaded: LoadedSession) -> Arc<SharedSession> {
        let LoadedSession {
            session,
            provider,
            fallbacks,
            info,
        } = loaded;
        Arc::new(SharedSession {
            session: Mutex::new(session),
            provider,
            fallbacks,
            info,
        })
    }

    /// The session, for one run: other users wait until the guard is dropped. (A run
    /// that panicked leaves no half state ONNX Runtime would care about, so a poisoned
    /// lock is taken over.)
    pub fn lock(&self) -> MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The provider the session really runs on.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// Why `auto` passed over better providers (empty if it did not).
    pub fn fallbacks(&self) -> &[String] {
        &self.fallbacks
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }
}

/// What makes two sessions the same: the sha256 of the model bytes, the provider
/// options and the session config entries.
type Key = [u8; 32];

/// The session of a key, if alive. `loading` is held while the key's session is made,
/// so that two users asking for a key at the same time load it once (the second waits
/// for the first's load, while users of other keys go on); `session` is only ever
/// held for a moment.
#[derive(Default)]
struct Slot {
    loading: Mutex<()>,
    session: Mutex<Weak<SharedSession>>,
}

impl Slot {
    fn alive(&self) -> bool {
        lock(&self.session).strong_count() > 0
    }
}

static REGISTRY: LazyLock<Mutex<HashMap<Key, Arc<Slot>>>> = LazyLock::new(Default::default);

/// The session of `model` (ONNX bytes, already in the form it will run: input size
/// fixed, external data inlined) on `options` with `config` entries (see
/// [`super::load_session_with_config`]): the one another user holds if there is one,
/// else a new one that later callers get while anyone holds it.
pub fn shared_session(
    model: &[u8],
    options: &ProviderOptions,
    config: &[(&str, &str)],
) -> Result<Arc<SharedSession>, RuntimeError> {
    let slot = {
        let mut registry = lock(&REGISTRY);
        // Keys whose session died and that nobody is loading.
        registry.retain(|_, slot| Arc::strong_count(slot) > 1 || slot.alive());
        registry
            .entry(key(model, options, config))
            .or_default()
            .clone()
    };
    let _loading = lock(&slot.loading);
    if let Some(session) = lock(&slot.session).upgrade() {
        return Ok(session);
    }
    let session = SharedSession::private(super::load_session_with_config(model, options, config)?);
    *lock(&slot.session) = Arc::downgrade(&session);
    Ok(session)
}

/// How many shared sessions are alive in the process (private ones not counted).
pub fn shared_sessions() -> usize {
    lock(&REGISTRY).values().filter(|slot| slot.alive()).count()
}

fn key(model: &[u8], options: &ProviderOptions, config: &[(&str, &str)]) -> Key {
    // Every field by name, so a new option cannot be forgotten here: it fails to compile.
    let ProviderOptions {
        provider,
        device_id,
        threads,
        trt_cache_dir,
        trt_fp16,
    } = options;
    let mut hash = Sha256::new();
    hash.update(Sha256::digest(model));
    let mut field = |name: &str, value: &str| {
        // Length-prefixed, so no two lists of fields hash alike.
        for part in [name, value] {
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part.as_bytes());
        }
    };
    field("provider", provider.as_str());
    field("device_id", &device_id.to_string());
    field("threads", &threads.to_string());
    field(
        "trt_cache_dir",
        &trt_cache_dir
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
    );
    field("trt_fp16", &trt_fp16.to_string());
    for (name, value) in config {
        field(&format!("config.{name}"), value);
    }
    hash.finalize().into()
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_option_and_config_entry_changes_the_key() {
        let model = b"model";
        let base = ProviderOptions::default();
        let k = key(model, &base, &[]);
        assert_eq!(k, key(model, &base.clone(), &[]));
        assert_ne!(k, key(b"other", &base, &[]));
        let variants = [
            ProviderOptions {
                provider: Provider::Cpu,
                ..base.clone()
            },
            ProviderOptions {
                device_id: 1,
                ..base.clone()
            },
            ProviderOptions {
                threads: 2,
                ..base.clone()
            },
            ProviderOptions {
                trt_cache_dir: Some("/tmp/trt".into()),
                ..base.clone()
            },
            ProviderOptions {
                trt_fp16: true,
                ..base.clone()
            },
        ];
        for v in &variants {
            assert_ne!(k, key(model, v, &[]), "{v:?}");
        }
        assert_ne!(k, key(model, &base, &[("a", "1")]));
        assert_ne!(
            key(model, &base, &[("a", "1")]),
            key(model, &base, &[("a", "2")])
        );
        assert_ne!(
            key(model, &base, &[("ab", "")]),
            key(model, &base, &[("a", "b")])
        );
    }
}
