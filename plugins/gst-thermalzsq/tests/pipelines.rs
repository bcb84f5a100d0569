//! Every script in pipelines/ runs in CI through its `--selftest` (a generated recording
//! replaces the camera), on the binaries `cargo test` built, with the bundled model and
//! zero-shot calibration into a private cache.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{plugin_dir, target_dir};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// One cache for all scripts: the first calibrates, the others hit.
fn cache_home() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("tzsq-pipelines-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// The RTSP server example (serve.sh, and the local RTSP camera of the rtsp selftests),
/// which a plain `cargo test` builds next to the tests.
fn serve_example() -> PathBuf {
    let path = target_dir().join("examples/serve");
    assert!(
        path.exists(),
        "{} missing: run `cargo test` without --test filters",
        path.display()
    );
    path
}

/// A script of pipelines/ with `args`, on the binaries `cargo test` built; its stdout.
fn run(script: &str, args: &[&str], env: &[(&str, &Path)]) -> String {
    let zsq = target_dir().join("zsq");
    assert!(
        zsq.exists(),
        "{} missing: run `cargo test --workspace`",
        zsq.display()
    );
    let out = Command::new("timeout")
        .arg("900")
        .arg(repo().join("pipelines").join(script))
        .args(args)
        .env("ZSQ", &zsq)
        .env("SERVE", serve_example())
        .env("GST_PLUGIN_PATH", plugin_dir())
        .env("GST_REGISTRY", cache_home().join("registry.bin"))
        .env("XDG_CACHE_HOME", cache_home())
        // The int8 model from the first frame: the selftests exercise it, not fp32.
        .env("ZSQCALIBRATE_PROPS", "block=true")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script} {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn selftest(script: &str, args: &[&str]) -> String {
    let args: Vec<&str> = std::iter::once("--selftest")
        .chain(args.iter().copied())
        .collect();
    run(script, &args, &[])
}

#[test]
fn the_demo_writes_a_browser_video_a_contact_sheet_tracks_and_temperatures() {
    let out_dir = cache_home().join("demo");
    let out = run(
        "demo.sh",
        &[],
        &[
            ("OUT", &out_dir),
            ("FRAMES", Path::new("150")),
            ("REALTIME", Path::new("0")),
        ],
    );
    assert!(out.contains("150 frames"), "{out}");
    assert!(out.contains("thermaltrack events: "), "{out}");
    assert!(out.contains(" new"), "{out}");
    assert!(
        out.contains("people's hottest temperature: median "),
        "{out}"
    );
    // The video plays back: every frame decodes from the WebM (VP8).
    let decoded = Command::new("gst-launch-1.0")
        .arg("-v")
        .arg("filesrc")
        .arg(format!(
            "location={}",
            out_dir.join("annotated.webm").display()
        ))
        .args([
            "!",
            "matroskademux",
            "!",
            "vp8dec",
            "!",
            "fakesink",
            "silent=false",
            "sync=false",
        ])
        .output()
        .unwrap();
    let frames = String::from_utf8_lossy(&decoded.stdout)
        .lines()
        .filter(|l| l.contains("chain   *"))
        .count();
    assert_eq!(frames, 150, "{}", String::from_utf8_lossy(&decoded.stderr));
    // The contact sheet tiles the snapshots (every 5 s: frame 0 of 150) at 320x256.
    let sheet = thermalzsq::imaging::image::read_png(&out_dir.join("contact_sheet.png")).unwrap();
    assert_eq!((sheet.width, sheet.height), (320, 256));
}

#[test]
fn every_pipeline_script_passes_its_selftest() {
    for preset in ["lepton", "boson", "boson-agc", "p2pro"] {
        let out = selftest("live.sh", &[preset]);
        assert!(
            out.contains(&format!("selftest live {preset}: ok")),
            "{out}"
        );
        // The radiometric presets' temperatures were checked (P2 Pro: its 1/64 K law);
        // boson-agc's 8-bit stream has none.
        assert_eq!(
            out.contains("selftest: temperatures in °C"),
            preset != "boson-agc",
            "{preset}: {out}"
        );
    }
    // A local RTSP camera streaming MJPEG, then H.264, each over TCP and UDP.
    let out = selftest("live.sh", &["rtsp"]);
    for stream in ["mjpeg, tcp", "mjpeg", "h264, tcp", "h264"] {
        assert!(
            out.contains(&format!("selftest live rtsp ({stream}): ok")),
            "{out}"
        );
    }
    for source in ["boson", "rtsp"] {
        let out = selftest("camera.sh", &[source]);
        assert!(
            out.contains(&format!("selftest camera {source} (display): ok")),
            "{out}"
        );
        assert_eq!(
            out.contains("selftest: temperatures in °C"),
            source == "boson",
            "{source}: {out}"
        );
    }
    let out = selftest("serve.sh", &["boson"]);
    assert!(out.contains("annotated frames over RTSP (mjpeg)"), "{out}");
    assert!(out.contains("selftest camera boson (serve): ok"), "{out}");
    // The P2 Pro's display half only, as H.264.
    let out = selftest("serve.sh", &["--codec", "h264", "p2pro"]);
    assert!(out.contains("annotated frames over RTSP (h264)"), "{out}");
    let out = selftest("replay.sh", &[]);
    assert!(out.contains("selftest replay: ok"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("mAP50-95=")), "{out}");
    // pycocotools' summary, compared line for line with `zsq eval` by the selftest
    assert!(
        out.lines().any(|l| l.starts_with(
            " Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = "
        )),
        "{out}"
    );
    let out = selftest("record.sh", &[]);
    assert!(out.contains("selftest record: ok"), "{out}");
    let out = selftest("jetson.sh", &[]);
    assert!(out.contains("selftest jetson: ok"), "{out}");
    assert!(
        out.contains("tensorrt fails cleanly") || out.contains("TensorRT is available"),
        "{out}"
    );
}

/// The whole chain into a real broker: camera.sh --broker runs thermalpublish, and a
/// subscriber sees the camera come online, its tracks enter the watched zone and the
/// zone's count.
#[test]
fn the_camera_chain_publishes_its_events_to_mqtt() {
    use std::io::{BufRead, BufReader};
    let dir = cache_home().join("mqtt");
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
    )
    .unwrap();
    let broker = Reaped(
        Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("mosquitto (make deps installs it)"),
    );
    // mosquitto_sub gives up at once on a refused connection: wait for the listener.
    let listening = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(listening, "mosquitto did not listen on {port}");
    let port_arg = port.to_string();
    let mut sub = Reaped(
        Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port_arg])
            .args(["-v", "-t", "thermalzsq/#", "-t", "probe"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(sub.0.stdout.take().unwrap()).lines();
    // The subscriber is ready when it hears a probe (the broker may still be starting).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.by_ref().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut ready = false;
    for _ in 0..100 {
        let _ = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port_arg, "-t", "probe", "-m", "x"])
            .stderr(std::process::Stdio::null())
            .status();
        if rx
            .recv_timeout(std::time::Duration::from_millis(200))
            .is_ok()
        {
            ready = true;
            break;
        }
    }
    assert!(ready, "mosquitto_sub never received the probe");
    let url = format!("mqtt://127.0.0.1:{port}");
    let out = selftest(
        "camera.sh",
        &["--broker", &url, "--camera", "gate", "boson"],
    );
    assert!(out.contains("selftest camera boson (display): ok"), "{out}");
    let mut seen = Vec::new();
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(5)) {
        let done = line == "thermalzsq/gate/status offline";
        seen.push(line);
        if done {
            break;
        }
    }
    drop((sub, broker));
    let text = seen.join("\n");
    assert!(text.contains("thermalzsq/gate/status online"), "{text}");
    assert!(
        seen.iter().any(|l| l.starts_with("thermalzsq/gate/events ")
            && l.contains(r#""type":"enter""#)
            && l.contains(r#""zone":"frame""#)),
        "{text}"
    );
    assert!(
        seen.iter()
            .any(|l| l.starts_with("thermalzsq/gate/zones/frame/") && l.contains(r#""count":"#)),
        "{text}"
    );
    assert_eq!(
        seen.last().map(String::as_str),
        Some("thermalzsq/gate/status offline")
    );
}

/// A child process killed and reaped when the test ends, passed or panicked (a
/// subscriber left behind would outlive `cargo test`).
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn every_script_parses() {
    for entry in std::fs::read_dir(repo().join("pipelines")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "sh") {
            let status = Command::new("bash").arg("-n").arg(&path).status().unwrap();
            assert!(status.success(), "{} does not parse", path.display());
        }
    }
}
