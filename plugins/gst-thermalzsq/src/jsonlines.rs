//! The `json-location` files of `thermaldetect` and `thermaltrack`: one JSON line per
//! frame, written in batches.
//!
//! A write per frame is 30 small disk writes a second; on the SD card of an edge box
//! that is wear and latency for nothing. Lines collect in a buffer and go to disk when
//! the oldest of them is a second old (checked as the next line arrives), when the
//! buffer is full, and at EOS, at stop and on drop, so the tail of a stream is never
//! lost. A reader tailing the file sees lines at most about a second late while frames
//! flow.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a line may wait in memory before the next line takes it to disk.
pub const FLUSH_AFTER: Duration = Duration::from_secs(1);

/// A JSON-lines file written in batches (see the module docs).
pub struct JsonLines {
    file: BufWriter<File>,
    flush_after: Duration,
    /// When the oldest line not yet on disk was written; `None` when all are.
    waiting_since: Option<Instant>,
}

impl JsonLines {
    /// Creates (truncates) the file.
    pub fn create(path: &Path) -> io::Result<Self> {
        Self::with_flush_after(path, FLUSH_AFTER)
    }

    fn with_flush_after(path: &Path, flush_after: Duration) -> io::Result<Self> {
        Ok(JsonLines {
            file: BufWriter::new(File::create(path)?),
            flush_after,
            waiting_since: None,
        })
    }

    /// Appends `line` and a newline; takes the lines to disk if the oldest waiting one
    /// is old enough.
    pub fn write_line(&mut self, line: &str) -> io::Result<()> {
        writeln!(self.file, "{line}")?;
        let now = Instant::now();
        let since = *self.waiting_since.get_or_insert(now);
        if now.duration_since(since) >= self.flush_after {
            self.flush()?;
        }
        Ok(())
    }

    /// Takes every line written so far to disk (EOS, stop).
    pub fn flush(&mut self) -> io::Result<()> {
        self.file.flush()?;
        self.waiting_since = None;
        Ok(())
    }
}

// Dropping the `BufWriter` writes what it holds (an error there has nobody to go to;
// `stop` flushes first and reports one).

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("tzsq-jsonlines-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    fn on_disk(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn lines_wait_in_memory_until_flushed_or_dropped() {
        let path = tmp("batched.jsonl");
        let mut lines = JsonLines::with_flush_after(&path, Duration::from_secs(3600)).unwrap();
        lines.write_line("{\"frame\":0}").unwrap();
        lines.write_line("{\"frame\":1}").unwrap();
        assert!(on_disk(&path).is_empty(), "not a disk write per line");
        lines.flush().unwrap();
        assert_eq!(on_disk(&path), ["{\"frame\":0}", "{\"frame\":1}"]);
        lines.write_line("{\"frame\":2}").unwrap();
        drop(lines);
        assert_eq!(on_disk(&path).len(), 3, "drop writes the tail");
    }

    #[test]
    fn a_line_older_than_flush_after_goes_to_disk_with_the_next() {
        let path = tmp("timed.jsonl");
        let mut lines = JsonLines::with_flush_after(&path, Duration::ZERO).unwrap();
        lines.write_line("{\"frame\":0}").unwrap();
        assert_eq!(on_disk(&path), ["{\"frame\":0}"]);
    }
}
