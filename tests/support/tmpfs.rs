//! A tmpfs mounted for one test (a full or read-only disk on demand), shared by the
//! engine's tests/cache.rs and the plugin's tests/zsqcalibrate.rs (included with
//! `#[path]`, as tests/support/pin.rs is). Mounting needs root; elsewhere the tests
//! print SKIPPED and check nothing.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted tmpfs, unmounted when dropped.
pub struct Mount(pub PathBuf);

impl Mount {
    /// Mounts a tmpfs with `options` on `dir`; `None` where this process may not mount
    /// (not root, no CAP_SYS_ADMIN), after printing why: the test then checks nothing.
    pub fn tmpfs(dir: &Path, options: &str) -> Option<Mount> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Mount(dir.to_path_buf())),
            Ok(out) => {
                eprintln!(
                    "SKIPPED: cannot mount a tmpfs here (needs root): {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount: {e}");
                None
            }
        }
    }

    /// Fills the filesystem with a file named `filler` until one page (4 KiB) is left.
    pub fn fill_leaving_one_page(&self) {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let page = [0u8; 4096];
        while file.write_all(&page).is_ok() {}
        let len = std::fs::metadata(&path).unwrap().len();
        file.set_len(len.saturating_sub(4096) / 4096 * 4096)
            .unwrap();
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
