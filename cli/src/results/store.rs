//! The report's cache under `out/report/cache/`: one JSON record per measurement, plus
//! the distilled images the W4A8 step and the figure reuse. Keys are the full text of
//! what was measured (report version, model sha256, data sets, settings), hashed for
//! the file name and stored in the record, so a changed setting is a miss and a hash
//! collision is detected.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ndarray::Array4;

use super::ReportError;
use thermalzsq::zsq::cache::{sha256_hex, write_atomically};

/// One measurement: accuracy per evaluated domain and what it cost.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub key: String,
    /// (mAP50-95, mAP50) per evaluation set (`thermal`, `rgb`).
    pub evals: BTreeMap<String, (f64, f64)>,
    /// Time to the calibration images: distillation for zero-shot, reading the images
    /// for real ones; 0 for fp32.
    pub seconds: f64,
    /// The whole quantization (images, calibration, quantizer; W4A8: reconstruction).
    pub quantize_seconds: f64,
    /// Agreement with the fp32 model on held-out images: RMSE of the class scores
    /// and of the box coordinates (input pixels), for the W4A8 table.
    #[serde(default)]
    pub agreement: Option<(f64, f64)>,
}

impl Record {
    pub fn new(key: &str) -> Self {
        Record {
            key: key.to_string(),
            evals: BTreeMap::new(),
            seconds: 0.0,
            quantize_seconds: 0.0,
            agreement: None,
        }
    }
}

/// Content-addressed files of one report directory.
pub struct Store {
    dir: PathBuf,
    /// Ignore what is stored (still write): `zsq report --fresh`.
    fresh: bool,
    pub hits: usize,
    pub misses: usize,
}

impl Store {
    pub fn open(dir: &Path, fresh: bool) -> Result<Self, ReportError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| ReportError(format!("cannot create {}: {e}", dir.display())))?;
        Ok(Store {
            dir: dir.to_path_buf(),
            fresh,
            hits: 0,
            misses: 0,
        })
    }

    fn path(&self, key: &str, ext: &str) -> PathBuf {
        self.dir
            .join(format!("{}.{ext}", &sha256_hex(key.as_bytes())[..24]))
    }

    /// The stored record for `key` (none with `fresh`).
    pub fn cached(&mut self, key: &str) -> Option<Record> {
        let stored = (!self.fresh)
            .then(|| std::fs::read(self.path(key, "json")).ok())
            .flatten()
            .and_then(|b| serde_json::from_slice::<Record>(&b).ok())
            .filter(|r| r.key == key);
        if stored.is_some() {
            self.hits += 1;
        }
        stored
    }

    /// Stores a record (replacing what was stored for its key).
    pub fn put(&mut self, record: &Record) -> Result<(), ReportError> {
        self.misses += 1;
        let json = serde_json::to_vec_pretty(record).expect("records serialise");
        write_atomically(&self.path(&record.key, "json"), &json)?;
        Ok(())
    }

    /// Stored images for `key` (N×C×H×W float32, little-endian, after a header of the
    /// four dimensions as u64).
    pub fn images(&self, key: &str) -> Option<Array4<f32>> {
        let bytes = std::fs::read(self.path(key, "f32")).ok()?;
        let dims: Vec<usize> = bytes
            .get(..32)?
            .chunks(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")) as usize)
            .collect();
        let values: Vec<f32> = bytes[32..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        Array4::from_shape_vec((dims[0], dims[1], dims[2], dims[3]), values).ok()
    }

    pub fn put_images(&self, key: &str, images: &Array4<f32>) -> Result<(), ReportError> {
        let mut bytes: Vec<u8> = images
            .shape()
            .iter()
            .flat_map(|&d| (d as u64).to_le_bytes())
            .collect();
        bytes.extend(images.iter().flat_map(|v| v.to_le_bytes()));
        write_atomically(&self.path(key, "f32"), &bytes)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_images_round_trip_and_fresh_recomputes() {
        let dir = std::env::temp_dir().join(format!("tzsq-store-{}", std::process::id()));
        let mut store = Store::open(&dir, false).unwrap();
        assert!(store.cached("k").is_none());
        let mut r = Record::new("k");
        r.evals.insert("thermal".into(), (0.5, 0.75));
        store.put(&r).unwrap();
        assert_eq!(store.cached("k"), Some(r.clone()));
        assert_eq!((store.hits, store.misses), (1, 1));
        assert!(store.cached("k2").is_none(), "another key misses");
        let mut fresh = Store::open(&dir, true).unwrap();
        assert!(fresh.cached("k").is_none(), "--fresh recomputes");

        let images =
            Array4::from_shape_fn((2, 1, 3, 4), |(n, _, y, x)| (n * 12 + y * 4 + x) as f32);
        store.put_images("img", &images).unwrap();
        assert_eq!(store.images("img").unwrap(), images);
        assert!(store.images("other").is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
