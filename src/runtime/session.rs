//! Opening a model as an ONNX Runtime session on the chosen execution provider, and
//! what the session says about the model (inputs, outputs, metadata). CPU sessions
//! also know thermalzsq's own operator ([`super::SILU_OP`]); other providers do not.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;

use super::{Provider, ProviderOptions, RuntimeError, environment};

/// A tensor the model takes or returns: name and dimensions (-1 where symbolic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub dims: Vec<i64>,
}

/// What a session tells about its model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
    /// `metadata_props` of the ModelProto (e.g. `names` of a detector).
    pub metadata: BTreeMap<String, String>,
}

/// A session, the provider it really runs on, and why providers before it were passed
/// over (empty unless `Auto` fell back).
pub struct LoadedSession {
    pub session: Session,
    pub provider: Provider,
    pub fallbacks: Vec<String>,
    pub info: ModelInfo,
}

/// Opens `model` (an ONNX file) on the provider `options` asks for.
pub fn load_session(
    model: &Path,
    options: &ProviderOptions,
) -> Result<LoadedSession, RuntimeError> {
    let bytes = std::fs::read(model)
        .map_err(|e| RuntimeError(format!("cannot read model {}: {e}", model.display())))?;
    load_session_from_memory(&bytes, options)
        .map_err(|e| RuntimeError(format!("model {}: {e}", model.display())))
}

/// Opens a model held in memory (e.g. an int8 model that could not be cached to disk).
pub fn load_session_from_memory(
    model: &[u8],
    options: &ProviderOptions,
) -> Result<LoadedSession, RuntimeError> {
    load_session_with_config(model, options, &[])
}

/// [`load_session_from_memory`] with ONNX Runtime session config entries (key, value),
/// e.g. `("session.intra_op.allow_spinning", "0")` for a session that shares the
/// cores with others: idle spinning threads would slow them down.
pub fn load_session_with_config(
    model: &[u8],
    options: &ProviderOptions,
    config: &[(&str, &str)],
) -> Result<LoadedSession, RuntimeError> {
    environment()?;
    let candidates: &[Provider] = match options.provider {
        Provider::Auto => &Provider::AUTO_ORDER,
        explicit => &[explicit],
    };
    let mut fallbacks = Vec::new();
    for &provider in candidates {
        if !provider.is_compiled_in()? {
            let why = format!(
                "execution provider {provider} is not available in this ONNX Runtime build \
                 (it was built without {provider} support)"
            );
            if options.provider == Provider::Auto {
                fallbacks.push(why);
                continue;
            }
            return Err(RuntimeError(why));
        }
        match build(model, options, provider, config) {
            Ok(session) => {
                let info = describe(&session)?;
                return Ok(LoadedSession {
                    session,
                    provider,
                    fallbacks,
                    info,
                });
            }
            // The CPU is the last resort: its failure is the model's fault, not the provider's.
            Err(e) if options.provider == Provider::Auto && provider != Provider::Cpu => {
                fallbacks.push(format!("execution provider {provider} failed: {e}"));
            }
            Err(e) => return Err(e),
        }
    }
    unreachable!("Provider::AUTO_ORDER ends with the CPU, which either loads or errors")
}

fn build(
    model: &[u8],
    options: &ProviderOptions,
    provider: Provider,
    config: &[(&str, &str)],
) -> Result<Session, RuntimeError> {
    let mut builder = Session::builder(environment()?)?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(ort::Error::from)?;
    for (key, value) in config {
        builder = builder
            .with_config_entry(*key, *value)
            .map_err(ort::Error::from)?;
    }
    if options.threads > 0 {
        builder = builder
            .with_intra_threads(options.threads)
            .map_err(ort::Error::from)?;
    }
    let with_domain = provider == Provider::Cpu;
    if with_domain {
        builder = builder
            .with_operators(super::silu::operator_domain()?)
            .map_err(ort::Error::from)?;
    }
    let eps = options.dispatch(provider);
    if !eps.is_empty() {
        builder = builder
            .with_no_environment_execution_providers()
            .map_err(ort::Error::from)?
            .with_execution_providers(eps)
            .map_err(ort::Error::from)?;
    }
    if with_domain {
        return commit_with_domain(builder, model);
    }
    Ok(builder.commit_from_memory(model)?)
}

/// Commits a session that registers thermalzsq's operator domain. ONNX Runtime adds a
/// custom domain to its process-wide domain table with a check, then an insert, and no
/// lock: two such sessions made at once, the first time in a process, can fail with
/// "the domain is already exist" (seen in `cargo test`, whose tests make sessions in
/// parallel). So sessions are made one at a time until one with the domain exists;
/// after that the check finds it and nothing waits.
fn commit_with_domain(
    mut builder: ort::session::builder::SessionBuilder,
    model: &[u8],
) -> Result<Session, RuntimeError> {
    static REGISTERED: OnceLock<()> = OnceLock::new();
    static FIRST: Mutex<()> = Mutex::new(());
    if REGISTERED.get().is_some() {
        return Ok(builder.commit_from_memory(model)?);
    }
    let _first = FIRST.lock().unwrap_or_else(|e| e.into_inner());
    let session = builder.commit_from_memory(model)?;
    let _ = REGISTERED.set(());
    Ok(session)
}

fn describe(session: &Session) -> Result<ModelInfo, RuntimeError> {
    let tensor = |o: &ort::value::Outlet| TensorInfo {
        name: o.name().to_string(),
        dims: o
            .dtype()
            .tensor_shape()
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default(),
    };
    let meta = session.metadata()?;
    let metadata = meta
        .custom_keys()?
        .into_iter()
        .filter_map(|k| meta.custom(&k).map(|v| (k, v)))
        .collect();
    Ok(ModelInfo {
        inputs: session.inputs().iter().map(tensor).collect(),
        outputs: session.outputs().iter().map(tensor).collect(),
        metadata,
    })
}
