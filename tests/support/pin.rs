//! Behaviour pins: sha256 digests of outputs that a refactor must not change, kept in
//! `tests/fixtures/pin/golden.json` per instruction set.
//!
//! Why per instruction set: ONNX Runtime's MLAS picks its kernels by CPU features, so a
//! distilled image (and every range, scale and detection after it) differs in the last
//! bits between an AVX2 and an AVX-512 machine. Where the file knows this CPU's features
//! the digests must match exactly; on a CPU it does not know, the caller checks that the
//! output is at least reproducible (two runs, one digest) and says how to record it:
//! `PIN_RECORD=1 cargo test --workspace pin` writes the digests this machine produced.
//! Record only when a change of output is intended, and say why in the commit.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

type Golden = BTreeMap<String, BTreeMap<String, String>>;

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|d| d.join("tests/fixtures/pin").is_dir())
        .expect("the repository root above this crate")
        .join("tests/fixtures/pin/golden.json")
}

/// The CPU vendor and the features that select ONNX Runtime's x86 kernels (empty
/// elsewhere), e.g. "x86_64 AuthenticAMD avx2 fma". Read with CPUID, as MLAS reads them.
/// The vendor is part of it because approximate instructions (`rcpps`, `rsqrtps`) round
/// differently on AMD and Intel; an emulator (`qemu-x86_64 -cpu Haswell`) differs from
/// both and must not be recorded.
pub fn isa() -> String {
    #[cfg(target_arch = "x86_64")]
    let vendor = {
        let id = std::arch::x86_64::__cpuid(0);
        let bytes: Vec<u8> = [id.ebx, id.edx, id.ecx]
            .iter()
            .flat_map(|r| r.to_le_bytes())
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    #[cfg(not(target_arch = "x86_64"))]
    let vendor = String::new();
    #[cfg(target_arch = "x86_64")]
    let have: Vec<&str> = [
        // CPUID leaf 7, EDX bit 25 (the detection macro of this is not stable yet).
        (
            "amx_int8",
            std::arch::x86_64::__cpuid_count(7, 0).edx & (1 << 25) != 0,
        ),
        ("avx2", std::arch::is_x86_feature_detected!("avx2")),
        (
            "avx512_vnni",
            std::arch::is_x86_feature_detected!("avx512vnni"),
        ),
        ("avx512bw", std::arch::is_x86_feature_detected!("avx512bw")),
        ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
        ("avx512vl", std::arch::is_x86_feature_detected!("avx512vl")),
        ("avx_vnni", std::arch::is_x86_feature_detected!("avxvnni")),
        ("fma", std::arch::is_x86_feature_detected!("fma")),
    ]
    .into_iter()
    .filter_map(|(name, present)| present.then_some(name))
    .collect();
    #[cfg(not(target_arch = "x86_64"))]
    let have: Vec<&str> = Vec::new();
    format!("{} {vendor} {}", std::env::consts::ARCH, have.join(" "))
}

/// Checks `digest` (what `name` produced on this run) against the golden file.
/// `again` produces it a second time; it is run only where the golden file does not know
/// this CPU, to check reproducibility instead.
pub fn check(name: &str, digest: &str, again: impl FnOnce() -> String) {
    // Tests of one binary run on several threads; PIN_RECORD rewrites one file.
    static FILE: Mutex<()> = Mutex::new(());
    let _file = FILE.lock().unwrap_or_else(|e| e.into_inner());
    let path = golden_path();
    let mut golden: Golden = std::fs::read_to_string(&path)
        .ok()
        .map(|t| serde_json::from_str(&t).expect("golden.json is valid JSON"))
        .unwrap_or_default();
    let isa = isa();
    if std::env::var_os("PIN_RECORD").is_some() {
        assert_eq!(again(), digest, "{name}: two runs differ; nothing to pin");
        golden
            .entry(isa)
            .or_default()
            .insert(name.to_string(), digest.to_string());
        let text = serde_json::to_string_pretty(&golden).unwrap() + "\n";
        std::fs::write(&path, text).unwrap();
        return;
    }
    match golden.get(&isa).and_then(|pins| pins.get(name)) {
        Some(expected) => assert_eq!(
            digest, expected,
            "{name}: the output changed on this CPU ({isa}); a refactor must keep it \
             (if the change is intended, record it: PIN_RECORD=1, see tests/support/pin.rs)"
        ),
        None => {
            eprintln!(
                "pin {name}: no golden digest for this CPU ({isa}); checked reproducibility \
                 only (record with PIN_RECORD=1)"
            );
            assert_eq!(again(), digest, "{name}: two runs differ");
        }
    }
}
