//! The cache as processes and disks really behave: the key names everything that makes
//! the model (every setting, the provider, this build, the loaded ONNX Runtime); two
//! processes on one cache with one killed by SIGKILL mid-store; a full filesystem.
//!
//! The filesystem tests mount a tmpfs, which needs root (or CAP_SYS_ADMIN); elsewhere
//! they print why and return without checking anything.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use ndarray::Array4;
use thermalzsq::onnx::{InputSize, Model};
use thermalzsq::runtime::{Provider, ProviderOptions};
use thermalzsq::zsq::autodiff::Statistics;
use thermalzsq::zsq::cache::{Cache, CacheKey, CacheOutcome};
use thermalzsq::zsq::calibrate::Observer;
use thermalzsq::zsq::images::test_pattern;
use thermalzsq::zsq::pipeline::{
    CalibrationSource, DistillLoss, DistillSettings, QuantizeSettings, cache_key, image_input,
    quantize_cached,
};
use thermalzsq::zsq::qparams::Precision;
use thermalzsq::zsq::scenes::{SceneSize, SynthScenes};

#[path = "support/data.rs"]
#[allow(dead_code)] // synth_dataset is the quantize tests'
mod data;
#[path = "support/tmpfs.rs"]
mod tmpfs;
use data::temp_dir;
use tmpfs::Mount;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/onnx")
        .join(name)
}

fn model() -> Model {
    Model::load(fixture("resnet_tiny.onnx")).unwrap()
}

/// Quick settings (real-image source: no distillation), the same in every process.
fn settings(model: &Model) -> QuantizeSettings {
    let (_, input, _) = image_input(model).unwrap();
    QuantizeSettings {
        source: CalibrationSource::Tensor(Arc::new(test_pattern(
            4,
            input.channels,
            input.height,
            input.width,
            1,
        ))),
        provider: ProviderOptions {
            threads: 1,
            ..ProviderOptions::default()
        },
        check_images: 1,
        reduce_range: false,
        ..QuantizeSettings::default()
    }
}

#[test]
fn every_setting_the_provider_the_build_and_the_runtime_are_in_the_key() {
    let model = model();
    let base = QuantizeSettings {
        reduce_range: false,
        ..QuantizeSettings::default()
    };
    // A compile-time guard: a new field of the settings stops this test from building
    // until it is added to the list below (or to the ones that must not count).
    let QuantizeSettings {
        precision: _,
        observer: _,
        source: _,
        distill:
            DistillSettings {
                loss: _,
                iterations: _,
                learning_rate: _,
                min_improvement: _,
                batch: _,
                seed: _,
                thermal_prior: _,
                statistics: _,
                total_variation: _,
            },
        provider:
            ProviderOptions {
                provider: _,
                device_id: _,
                threads: _,
                trt_cache_dir: _,
                trt_fp16: _,
            },
        check_images: _,
        cancel: _,
        preview: _,
        reduce_range: _,
        input_size: _,
    } = base.clone();
    let with = |f: &dyn Fn(&mut QuantizeSettings)| {
        let mut s = base.clone();
        f(&mut s);
        s
    };
    let distill =
        |f: &dyn Fn(&mut DistillSettings)| with(&|s: &mut QuantizeSettings| f(&mut s.distill));
    let provider = |p: Provider| with(&move |s: &mut QuantizeSettings| s.provider.provider = p);
    let variants: Vec<(&str, QuantizeSettings)> = vec![
        ("base", base.clone()),
        ("precision", with(&|s| s.precision = Precision::S8S8)),
        (
            "observer",
            with(&|s| s.observer = Observer::Percentile(99.9)),
        ),
        (
            "source",
            with(&|s| {
                s.source = CalibrationSource::Tensor(Arc::new(Array4::zeros((1, 3, 32, 32))))
            }),
        ),
        (
            "source synth",
            with(&|s| s.source = CalibrationSource::Synth(SynthScenes::default())),
        ),
        (
            "synth.count",
            with(&|s| {
                s.source = CalibrationSource::Synth(SynthScenes {
                    count: 7,
                    ..SynthScenes::default()
                })
            }),
        ),
        (
            "synth.seed",
            with(&|s| {
                s.source = CalibrationSource::Synth(SynthScenes {
                    seed: 1,
                    ..SynthScenes::default()
                })
            }),
        ),
        (
            "synth.size",
            with(&|s| {
                s.source = CalibrationSource::Synth(SynthScenes {
                    size: SceneSize::Input,
                    ..SynthScenes::default()
                })
            }),
        ),
        ("distill.loss", distill(&|d| d.loss = DistillLoss::Mean)),
        ("distill.iterations", distill(&|d| d.iterations += 1)),
        (
            "distill.learning_rate",
            distill(&|d| d.learning_rate = 0.05),
        ),
        (
            "distill.min_improvement",
            distill(&|d| d.min_improvement = 0.01),
        ),
        ("distill.batch", distill(&|d| d.batch += 1)),
        ("distill.seed", distill(&|d| d.seed += 1)),
        (
            "distill.thermal_prior on",
            distill(&|d| d.thermal_prior = Some(true)),
        ),
        (
            "distill.statistics",
            distill(&|d| d.statistics = Statistics::Batch),
        ),
        (
            "distill.total_variation",
            distill(&|d| d.total_variation = 0.5),
        ),
        ("provider cpu", provider(Provider::Cpu)),
        ("provider cuda", provider(Provider::Cuda)),
        ("provider tensorrt", provider(Provider::TensorRt)),
        ("provider.trt_fp16", with(&|s| s.provider.trt_fp16 = true)),
        ("check_images", with(&|s| s.check_images += 1)),
        ("reduce_range", with(&|s| s.reduce_range = true)),
        (
            "input_size",
            with(&|s| {
                s.input_size = Some(InputSize {
                    width: 32,
                    height: 32,
                })
            }),
        ),
    ];
    let keys: Vec<(&str, CacheKey)> = variants
        .iter()
        .map(|(name, s)| (*name, cache_key(&model, s).unwrap()))
        .collect();
    for (i, (a, ka)) in keys.iter().enumerate() {
        for (b, kb) in &keys[i + 1..] {
            assert_ne!(
                ka.hex, kb.hex,
                "`{a}` and `{b}` share a key:\n{}\n---\n{}",
                ka.canonical, kb.canonical
            );
        }
    }
    // The thermal prior forced off is its own key too (the base resolves it from the
    // model: equal to one of on/off, which is then rightly the same model).
    let off = cache_key(&model, &distill(&|d| d.thermal_prior = Some(false))).unwrap();
    let on = cache_key(&model, &distill(&|d| d.thermal_prior = Some(true))).unwrap();
    assert_ne!(off, on);

    // What changes neither the model nor its report shares the key.
    let same = [
        with(&|s| s.cancel = Some(Arc::new(AtomicBool::new(true)))),
        with(&|s| s.preview = Some(PathBuf::from("/tmp/preview.png"))),
        // The base's `auto` on a model with BN is distillation: the same model.
        with(&|s| s.source = CalibrationSource::ZeroShot),
        with(&|s| s.provider.threads = 3),
        with(&|s| s.provider.device_id = 1),
        with(&|s| s.provider.trt_cache_dir = Some(PathBuf::from("/tmp/trt"))),
    ];
    let base_key = &keys[0].1;
    for s in &same {
        assert_eq!(&cache_key(&model, s).unwrap(), base_key, "{s:?}");
    }

    // The canonical text names this build and the runtime that makes the model.
    let canonical = &base_key.canonical;
    eprintln!("canonical key text:\n{canonical}");
    let line = |name: &str| {
        canonical
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no `{name}=` line in\n{canonical}"))
            .to_string()
    };
    let build = line("build");
    assert!(
        build.len() >= 16 && build.chars().all(|c| c.is_ascii_hexdigit()),
        "{build}"
    );
    assert!(
        line("onnxruntime").contains("git-commit-id="),
        "{canonical}"
    );
    assert!(line("provider").starts_with("auto"), "{canonical}");
    assert!(
        line("distill.learning_rate").parse::<f32>().is_ok(),
        "{canonical}"
    );
    for setting in ["distill.warmup", "distill.init_mean", "distill.init_std"] {
        line(setting);
    }
}

/// Where a child process runs its quantization: set by the parent only.
const CHILD_CACHE: &str = "TZSQ_TEST_CACHE_CHILD";

/// The child process of the two-process test (run by name, by the parent, with
/// `TZSQ_TEST_CACHE_CHILD` naming the cache): quantizes the fixture into that cache and
/// prints what the cache did. Ignored in a normal run, where it has nothing to do.
#[test]
#[ignore = "a child process of a_writer_killed_mid_store_leaves_the_survivor_a_whole_entry"]
fn child_process_quantizing_into_a_shared_cache() {
    let Some(dir) = std::env::var_os(CHILD_CACHE) else {
        return;
    };
    let model = model();
    let cache = Cache::open(PathBuf::from(dir)).unwrap();
    let outcome = quantize_cached(&cache, &model, &settings(&model), &mut |_| {}).unwrap();
    let what = match outcome {
        CacheOutcome::Hit(_) => "hit",
        CacheOutcome::Made(_) => "made",
        CacheOutcome::MadeNotStored { .. } => "not-stored",
    };
    println!("cache outcome: {what}");
}

fn child(cache: &Path, pause_marker: Option<&Path>) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "child_process_quantizing_into_a_shared_cache",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_CACHE, cache)
    .env_remove(thermalzsq::zsq::cache::TEST_PAUSE_IN_STORE)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    if let Some(marker) = pause_marker {
        cmd.env(thermalzsq::zsq::cache::TEST_PAUSE_IN_STORE, marker);
    }
    cmd.spawn().unwrap()
}

/// The child's output once it exits; killed and failed after `limit` (a watchdog, so a
/// stale lock fails the test instead of hanging it).
fn finish(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "a child was still running after {limit:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn outcome_of(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The harness prints the test's name on the same line, before the output.
    text.lines()
        .find_map(|l| l.split_once("cache outcome: "))
        .map(|(_, what)| what.trim().to_string())
        .unwrap_or_else(|| panic!("no outcome in: {text}"))
}

/// Whether another process holds the key's lock (a non-blocking `flock` fails).
fn lock_is_held(cache: &Path, key: &CacheKey) -> bool {
    let file = std::fs::File::open(cache.join(format!("{}.lock", key.hex))).unwrap();
    match file.try_lock() {
        Ok(()) => {
            file.unlock().unwrap();
            false
        }
        Err(std::fs::TryLockError::WouldBlock) => true,
        Err(std::fs::TryLockError::Error(e)) => panic!("{e}"),
    }
}

#[test]
fn a_writer_killed_mid_store_leaves_the_survivor_a_whole_entry() {
    let dir = temp_dir("cache-two-processes");
    let cache = dir.join("cache");
    let marker = dir.join("writer-paused");
    let model = model();
    let key = cache_key(&model, &settings(&model)).unwrap();
    let limit = Duration::from_secs(180);

    // A stores first and stops mid-store (its test hook): the model renamed into
    // place, the report not, the key's lock held.
    let mut a = child(&cache, Some(&marker));
    let start = Instant::now();
    while !marker.exists() {
        if let Some(status) = a.try_wait().unwrap() {
            let out = a.wait_with_output().unwrap();
            panic!(
                "the writer exited ({status}) before pausing: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            start.elapsed() < limit,
            "the writer never reached the store"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (model_path, report_path) = (
        cache.join(format!("{}.onnx", key.hex)),
        cache.join(format!("{}.json", key.hex)),
    );
    assert!(lock_is_held(&cache, &key), "the writer holds the lock");
    assert!(!report_path.exists(), "mid-store: no report yet");

    // B asks for the same model meanwhile and waits for the lock; A dies.
    let b = child(&cache, None);
    std::thread::sleep(Duration::from_millis(500)); // B usually reaches the lock by now
    a.kill().unwrap(); // SIGKILL
    a.wait().unwrap();
    let b = finish(b, limit);
    assert_eq!(outcome_of(&b), "made", "the survivor makes the entry");

    let entry = Cache::open(&cache)
        .unwrap()
        .lookup(&key)
        .expect("a whole entry");
    assert_eq!(entry.model, model_path);
    Model::load(&entry.model).expect("the survivor's model decodes");
    Cache::open(&cache).unwrap().check(&key).unwrap();

    // The next start hits it, and no stale lock stands in its way.
    assert!(!lock_is_held(&cache, &key));
    let c = finish(child(&cache, None), limit);
    assert_eq!(outcome_of(&c), "hit");
    // Only the killed writer's own temporary may remain (removed after a day).
    let a_pid = a.id().to_string();
    for name in std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
    {
        assert!(name.contains(&a_pid), "{name}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_full_filesystem_leaves_no_partial_entry() {
    let dir = temp_dir("cache-full");
    let Some(mount) = Mount::tmpfs(&dir.join("fs"), "size=64k") else {
        return;
    };
    let cache = Cache::open(&mount.0).unwrap();
    mount.fill_leaving_one_page();
    // The model fits in the last page; its report (with the ranges of every tensor)
    // does not.
    let model = std::fs::read(fixture("all_fields.onnx")).unwrap();
    let key = CacheKey::new(&model, "test=full");
    let report = serde_json::json!({ "ranges": "x".repeat(16 * 1024) });
    let err = cache.store(&key, &model, report).unwrap_err();
    assert!(
        err.to_string().contains("No space left"),
        "the disk is full: {err}"
    );
    let left = names(&mount.0);
    assert!(
        left.iter().all(|n| n == "filler" || n.ends_with(".lock")),
        "no partial entry or temporary file: {left:?}"
    );
    assert!(cache.lookup(&key).is_none());
    drop(mount);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_read_only_cache_directory_is_refused_with_the_reason() {
    let dir = temp_dir("cache-ro");
    let Some(mount) = Mount::tmpfs(&dir.join("fs"), "ro,size=64k") else {
        return;
    };
    let err = Cache::open(&mount.0).unwrap_err();
    assert!(err.to_string().contains("Read-only"), "{err}");
    drop(mount);
    let _ = std::fs::remove_dir_all(&dir);
}
