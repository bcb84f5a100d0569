//! Where and when a report ran: date (UTC), CPU, cores, ONNX Runtime, thermalzsq commit.
//! Numbers without their machine are not comparable; the report carries them.

use std::time::{SystemTime, UNIX_EPOCH};

/// The run's context, as printed in the report header.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    pub date: String,
    pub cpu: String,
    pub cores: usize,
    pub onnxruntime: String,
    pub commit: String,
}

impl Machine {
    pub fn detect() -> Self {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_string())
            })
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
        Machine {
            date: utc_date(secs),
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            onnxruntime: onnxruntime_version(),
            commit: git_commit(),
        }
    }
}

/// `YYYY-MM-DD HH:MM UTC` from Unix seconds (civil-from-days, H. Hinnant).
pub fn utc_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// ONNX Runtime's version: from the library's file name (`libonnxruntime.so.1.31.1`,
/// as `make ortlib` installs it), else from the build string it reports.
fn onnxruntime_version() -> String {
    let from_path = std::env::var("ORT_DYLIB_PATH").ok().and_then(|p| {
        let name = std::path::Path::new(&p)
            .file_name()?
            .to_string_lossy()
            .into_owned();
        let v = name.split(".so.").nth(1)?.to_string();
        v.chars().next()?.is_ascii_digit().then_some(v)
    });
    if let Some(v) = from_path {
        return v;
    }
    if thermalzsq::runtime::environment().is_err() {
        return "unknown".into();
    }
    let info = ort::info();
    info.split([',', ' '])
        .find_map(|p| p.strip_prefix("git-branch=rel-"))
        .unwrap_or(info)
        .to_string()
}

/// The checked-out commit, `-dirty` when the work tree has changes (the report's own
/// output excluded, so a rerun reports the commit it ran).
fn git_commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(commit) = git(&["rev-parse", "--short=12", "HEAD"]) else {
        return "unknown (not a git checkout)".into();
    };
    let dirty = git(&[
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        ".",
        ":!docs/results.md",
        ":!docs/results",
    ])
    .is_some_and(|s| !s.is_empty());
    if dirty {
        format!("{commit}-dirty")
    } else {
        commit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_date(1_798_000_000 + 3_661), "2026-12-23 05:27 UTC");
    }
}
