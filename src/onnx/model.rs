//! [`Model`]: a ModelProto with the file operations and lookups most callers need,
//! including tensors whose data lives in external files.

use std::borrow::Cow;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use ndarray::ArrayD;

use super::array::Element;
use super::error::{OnnxError, Result};
use super::proto::{GraphProto, ModelProto, StringStringEntryProto, TensorProto};

/// An ONNX model and where it was loaded from (external tensor data is looked up
/// relative to that directory, and only when a tensor's data is asked for).
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub proto: ModelProto,
    base_dir: Option<PathBuf>,
}

impl Model {
    /// Reads and decodes an `.onnx` file. External data files are not read here.
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| OnnxError::io(path, "read model", e))?;
        let mut model = Model::from_bytes(&bytes).map_err(|e| OnnxError::InvalidModel {
            path: path.to_path_buf(),
            source: Box::new(e),
        })?;
        model.base_dir = Some(path.parent().unwrap_or(Path::new("")).to_path_buf());
        Ok(model)
    }

    /// Decodes a model held in memory. It has no directory, so tensors in external
    /// files cannot be read until [`Model::set_base_dir`] says where they are.
    pub fn from_bytes(bytes: &[u8]) -> Result<Model> {
        let proto = ModelProto::decode(bytes)?;
        if proto.graph.is_none() {
            return Err(OnnxError::Graph(
                "not an ONNX model: the ModelProto has no graph".into(),
            ));
        }
        Ok(Model::from_proto(proto))
    }

    pub fn from_proto(proto: ModelProto) -> Model {
        Model {
            proto,
            base_dir: None,
        }
    }

    /// Encodes the model; for a model decoded from bytes and not changed since, these
    /// are the same bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.proto.encode_to_vec()
    }

    /// Writes the model atomically: to a temporary file in the same directory, synced,
    /// then renamed over `path`, so a reader never sees half a model. External data
    /// files are neither written nor copied: saving elsewhere than the model's own
    /// directory needs [`Model::inline_external_data`] first.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_atomically(path.as_ref(), &self.to_bytes())
    }

    /// The directory external data is resolved against.
    pub fn base_dir(&self) -> Option<&Path> {
        self.base_dir.as_deref()
    }

    pub fn set_base_dir(&mut self, dir: impl Into<PathBuf>) {
        self.base_dir = Some(dir.into());
    }

    /// The main graph (a model read by [`Model::load`] or [`Model::from_bytes`] always
    /// has one; a hand-made ModelProto without one shows an empty graph).
    pub fn graph(&self) -> &GraphProto {
        static EMPTY: OnceLock<GraphProto> = OnceLock::new();
        self.proto
            .graph
            .as_ref()
            .unwrap_or_else(|| EMPTY.get_or_init(GraphProto::default))
    }

    pub fn graph_mut(&mut self) -> &mut GraphProto {
        self.proto.graph.get_or_insert_with(GraphProto::default)
    }

    /// The opset version imported for `domain` (`""` or `"ai.onnx"`: the default domain).
    pub fn opset_version(&self, domain: &str) -> Option<i64> {
        self.proto.opset_version(domain)
    }

    /// A `metadata_props` value, e.g. `names` of a YOLO detector.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.proto
            .metadata_props
            .iter()
            .find(|e| e.key() == key)
            .map(|e| e.value())
    }

    /// Sets a `metadata_props` entry, replacing the value of an existing key in place.
    pub fn set_metadata(&mut self, key: &str, value: &str) {
        match self
            .proto
            .metadata_props
            .iter_mut()
            .find(|e| e.key() == key)
        {
            Some(entry) => entry.value = Some(value.to_string()),
            None => self
                .proto
                .metadata_props
                .push(StringStringEntryProto::new(key, value)),
        }
    }

    /// The tensor with its data in memory: itself, or for an external tensor a copy
    /// holding the bytes read from its file.
    pub fn tensor_data<'t>(&self, tensor: &'t TensorProto) -> Result<Cow<'t, TensorProto>> {
        if !tensor.is_external() {
            return Ok(Cow::Borrowed(tensor));
        }
        let mut inline = tensor.clone();
        inline.raw_data = Some(self.read_external(tensor)?);
        inline.external_data.clear();
        inline.data_location = None;
        Ok(Cow::Owned(inline))
    }

    /// A tensor's values as an array, reading external data if need be.
    pub fn tensor_array<T: Element>(&self, tensor: &TensorProto) -> Result<ArrayD<T>> {
        self.tensor_data(tensor)?.to_array()
    }

    /// The values of the initializer called `name`.
    pub fn initializer_array<T: Element>(&self, name: &str) -> Result<ArrayD<T>> {
        let tensor = self
            .graph()
            .initializer
            .iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| {
                OnnxError::Graph(format!("the model has no initializer named '{name}'"))
            })?;
        self.tensor_array(tensor)
    }

    /// Reads every external tensor (initializers and attribute tensors, subgraphs
    /// included) into memory, so the model stands alone: to save it elsewhere or hand
    /// it to ONNX Runtime as bytes.
    pub fn inline_external_data(&mut self) -> Result<()> {
        let base_dir = self.base_dir.clone();
        visit_tensors_mut(self.graph_mut(), &mut |t| {
            if t.is_external() {
                t.raw_data = Some(read_external(base_dir.as_deref(), t)?);
                t.external_data.clear();
                t.data_location = None;
            }
            Ok(())
        })
    }

    fn read_external(&self, tensor: &TensorProto) -> Result<Vec<u8>> {
        read_external(self.base_dir.as_deref(), tensor)
    }
}

/// Calls `f` on every dense tensor of a graph: initializers, attribute tensors, and
/// those of subgraphs.
fn visit_tensors_mut(
    graph: &mut GraphProto,
    f: &mut impl FnMut(&mut TensorProto) -> Result<()>,
) -> Result<()> {
    graph.initializer.iter_mut().try_for_each(&mut *f)?;
    for node in &mut graph.node {
        for attr in &mut node.attribute {
            attr.t
                .as_deref_mut()
                .into_iter()
                .chain(attr.tensors.iter_mut())
                .try_for_each(&mut *f)?;
            for g in attr
                .g
                .as_deref_mut()
                .into_iter()
                .chain(attr.graphs.iter_mut())
            {
                visit_tensors_mut(g, f)?;
            }
        }
    }
    Ok(())
}

/// The bytes of an external tensor: `location` relative to `base_dir`, from `offset`,
/// `length` bytes (or to the end of the file).
///
/// Every entry comes from the model file, so none is trusted: the location must be a
/// regular file inside the model's directory once every symlink is resolved (a model
/// cannot read `/etc/passwd` through a link, nor hang its reader on a FIFO), and the
/// range must lie inside the file and hold exactly what the tensor's dims need (a
/// small model cannot make us allocate a large file's worth of memory).
fn read_external(base_dir: Option<&Path>, tensor: &TensorProto) -> Result<Vec<u8>> {
    let name = tensor.name();
    let location = tensor.external_entry("location").ok_or_else(|| {
        OnnxError::tensor(name, "it is marked external but has no `location` entry")
    })?;
    let relative = Path::new(location);
    if relative.is_absolute()
        || relative
            .components()
            .any(|c| matches!(c, Component::ParentDir))
    {
        return Err(OnnxError::tensor(
            name,
            format!("external data location '{location}' is outside the model's directory"),
        ));
    }
    let Some(base) = base_dir else {
        return Err(OnnxError::tensor(
            name,
            format!(
                "its data is in external file '{location}', but the model was read from memory; \
                 load it with Model::load or give its directory with Model::set_base_dir"
            ),
        ));
    };
    let number = |key: &str| -> Result<Option<u64>> {
        tensor
            .external_entry(key)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    OnnxError::tensor(name, format!("external data {key} '{v}' is not a number"))
                })
            })
            .transpose()
    };
    let offset = number("offset")?.unwrap_or(0);
    let path = base.join(relative);
    let mut file = open_inside(base, &path, location).map_err(|e| e.about(name))?;
    let unreadable = |e: std::io::Error| {
        OnnxError::tensor(
            name,
            format!(
                "its data is in external file {}, which cannot be read: {e}",
                path.display()
            ),
        )
    };
    let file_len = file.metadata().map_err(unreadable)?.len();
    let length = match number("length")? {
        Some(length) => length,
        None => file_len.saturating_sub(offset),
    };
    if offset.checked_add(length).is_none_or(|end| end > file_len) {
        return Err(OnnxError::tensor(
            name,
            format!(
                "external file {} has {file_len} bytes, but the tensor's data is said to be at \
                 bytes {offset}..{}",
                path.display(),
                offset.saturating_add(length)
            ),
        ));
    }
    if let Some(needed) = tensor.fixed_data_len()?
        && needed as u64 != length
    {
        return Err(OnnxError::tensor(
            name,
            format!(
                "its dims {:?} need {needed} bytes, but its external data in {} is {length} bytes",
                tensor.dims,
                path.display()
            ),
        ));
    }
    let length = usize::try_from(length).map_err(|_| {
        OnnxError::tensor(
            name,
            format!("external data of {length} bytes does not fit in memory"),
        )
    })?;
    let mut data = vec![0; length];
    file.seek(SeekFrom::Start(offset)).map_err(unreadable)?;
    file.read_exact(&mut data).map_err(unreadable)?;
    Ok(data)
}

/// Why an external data file was not opened.
enum Refused {
    Io(PathBuf, std::io::Error),
    Outside(String, PathBuf),
    NotRegular(String, PathBuf),
}

impl Refused {
    fn about(self, tensor: &str) -> OnnxError {
        let problem = match self {
            Refused::Io(path, e) => format!(
                "its data is in external file {}, which cannot be read: {e}",
                path.display()
            ),
            Refused::Outside(location, resolved) => format!(
                "external data location '{location}' resolves to {}, outside the model's directory",
                resolved.display()
            ),
            Refused::NotRegular(location, path) => format!(
                "external data location '{location}' ({}) is not a regular file",
                path.display()
            ),
        };
        OnnxError::tensor(tensor, problem)
    }
}

/// Opens `path` for reading if, every symlink resolved, it is a regular file inside
/// `base`. The checks are made on the resolved path before opening, and again on
/// the opened file, which is opened without blocking where the platform allows: a path
/// swapped for a FIFO in between is then refused instead of waited on.
fn open_inside(base: &Path, path: &Path, location: &str) -> Result<File, Refused> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| Refused::Io(p, e)
    };
    let root = base.canonicalize().map_err(io(base))?;
    let resolved = path.canonicalize().map_err(io(path))?;
    if !resolved.starts_with(&root) {
        return Err(Refused::Outside(location.to_string(), resolved));
    }
    let not_regular = || Refused::NotRegular(location.to_string(), path.to_path_buf());
    if !std::fs::metadata(&resolved).map_err(io(path))?.is_file() {
        return Err(not_regular());
    }
    let file = open_nonblocking(&resolved).map_err(io(path))?;
    if !file.metadata().map_err(io(path))?.is_file() {
        return Err(not_regular());
    }
    Ok(file)
}

/// Opens a file for reading with `O_NONBLOCK` where its value is known: opening a FIFO
/// then returns at once instead of waiting for a writer. On a regular file the flag
/// changes nothing.
fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(all(
        target_os = "linux",
        any(
            target_arch = "x86_64",
            target_arch = "x86",
            target_arch = "aarch64",
            target_arch = "arm",
            target_arch = "riscv64"
        )
    ))]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK of these architectures (asm-generic/fcntl.h and x86's).
        const O_NONBLOCK: i32 = 0o4000;
        options.custom_flags(O_NONBLOCK);
    }
    options.open(path)
}

/// Writes `bytes` to `path` through a synced temporary file and a rename.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let file_name = path
        .file_name()
        .ok_or_else(|| OnnxError::io(path, "write", std::io::Error::other("not a file path")))?;
    let temp = path.with_file_name(format!(
        ".{}.{}.{}.tmp",
        file_name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = File::create(&temp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    let result = written.and_then(|()| std::fs::rename(&temp, path));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&temp);
        return Err(OnnxError::io(path, "write model", e));
    }
    Ok(())
}
