//! RTSP in and out against real servers on 127.0.0.1: a gst-rtsp-server in this process
//! plays a generated 8-bit AGC recording the way a fixed thermal camera streams it, and
//! `pipelines/live.sh rtsp URL` detects on it; `pipelines/serve.sh` re-streams the
//! annotated chain and an `rtspsrc` client built here plays it.
//!
//! Both codecs a camera commonly sends and Debian encodes without extra licences: MJPEG
//! (jpegenc, plugins-good) and H.264 (openh264enc, plugins-bad). Every wait has a bound.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use common::{plugin_dir, target_dir};
use gst::glib;
use gst::prelude::*;
use gst_rtsp_server::prelude::*;

const FRAMES: usize = 30;
const SIZE: (usize, usize) = (640, 512);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn workdir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("tzsq-rtsp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// `zsq synth --recording`: 30 frames of people, cars and bicycles moving through a
/// street, stored as the 8-bit AGC view (what an RTSP camera encodes).
fn recording() -> &'static Path {
    static REC: OnceLock<PathBuf> = OnceLock::new();
    REC.get_or_init(|| {
        let zsq = target_dir().join("zsq");
        assert!(
            zsq.exists(),
            "{} missing: run `cargo test --workspace`",
            zsq.display()
        );
        let out = workdir().join("recording");
        let status = Command::new(zsq)
            .args([
                "synth", "--scenes", "0", "--seed", "11", "--size", "640x512",
            ])
            .args(["--recording", &FRAMES.to_string()])
            .args(["--recording-format", "gray8", "--out"])
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success(), "zsq synth failed");
        out.join("recording.gray8")
    })
}

/// The encoder and payloader for a codec, as a camera would stream it.
fn payloader(codec: &str) -> &'static str {
    match codec {
        "mjpeg" => "jpegenc quality=85 ! rtpjpegpay name=pay0 pt=26",
        "h264" => {
            "openh264enc gop-size=30 bitrate=2000000 ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1"
        }
        other => panic!("no payloader for {other}"),
    }
}

/// A gst-rtsp-server on 127.0.0.1 (a free port) serving the recording in `codec`, run
/// by its own main loop on a thread; dropping it stops the loop.
struct Camera {
    url: String,
    main_loop: glib::MainLoop,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Camera {
    fn start(codec: &str) -> Camera {
        common::init();
        let launch = format!(
            "( filesrc location=\"{}\" ! rawvideoparse format=gray8 width={} height={} framerate=30/1 \
             ! videoconvert ! video/x-raw,format=I420 ! {} )",
            recording().display(),
            SIZE.0,
            SIZE.1,
            payloader(codec)
        );
        let context = glib::MainContext::new();
        let main_loop = glib::MainLoop::new(Some(&context), false);
        let (tx, rx) = mpsc::channel();
        let thread = {
            let main_loop = main_loop.clone();
            std::thread::spawn(move || {
                let server = gst_rtsp_server::RTSPServer::new();
                server.set_address("127.0.0.1");
                server.set_service("0");
                let factory = gst_rtsp_server::RTSPMediaFactory::new();
                factory.set_launch(&launch);
                factory.set_shared(true);
                server
                    .mount_points()
                    .unwrap()
                    .add_factory("/camera", factory);
                let _source = server.attach(Some(&context)).unwrap();
                tx.send(server.bound_port()).unwrap();
                main_loop.run();
            })
        };
        let port = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        Camera {
            url: format!("rtsp://127.0.0.1:{port}/camera"),
            main_loop,
            thread: Some(thread),
        }
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        self.main_loop.quit();
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

/// A pipeline script with the binaries this `cargo test` built, bounded by `timeout`.
fn script(name: &str) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.arg("300").arg(repo().join("pipelines").join(name));
    with_test_env(&mut cmd);
    cmd
}

fn with_test_env(cmd: &mut Command) {
    cmd.env("ZSQ", target_dir().join("zsq"))
        .env("SERVE", serve_example())
        .env("GST_PLUGIN_PATH", plugin_dir())
        .env("GST_REGISTRY", workdir().join("registry.bin"))
        .env("XDG_CACHE_HOME", workdir());
}

/// The RTSP server example, which a plain `cargo test` builds next to the tests.
fn serve_example() -> PathBuf {
    let path = target_dir().join("examples/serve");
    assert!(
        path.exists(),
        "{} missing: run `cargo test` without --test filters",
        path.display()
    );
    path
}

/// The JSON lines of a run, parsed.
fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn live_sh_detects_on(codec: &str) {
    let camera = Camera::start(codec);
    let json = workdir().join(format!("live-{codec}.jsonl"));
    let out = script("live.sh")
        .args(["--selftest", "--fp32", "--tcp", "--codec", codec, "--json"])
        .arg(&json)
        .args(["rtsp", &camera.url])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "live.sh rtsp {codec} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("selftest live rtsp ({codec}, tcp): ok")),
        "{stdout}"
    );
    // Live: frames the detector cannot keep up with are dropped, the rest detected on.
    let lines = json_lines(&json);
    assert!(
        !lines.is_empty() && lines.len() <= FRAMES,
        "{}",
        lines.len()
    );
    let persons = lines
        .iter()
        .flat_map(|l| l["detections"].as_array().unwrap())
        .filter(|d| d["label"] == "person")
        .count();
    assert!(persons > 0, "no person detected over RTSP ({codec})");
}

#[test]
fn live_sh_detects_on_an_mjpeg_rtsp_camera() {
    live_sh_detects_on("mjpeg");
}

#[test]
fn live_sh_detects_on_an_h264_rtsp_camera() {
    live_sh_detects_on("h264");
}

/// `serve.sh` in the background: the server prints its URL as the first stdout line.
struct Served {
    child: Child,
    url: String,
}

impl Served {
    fn start(codec: &str, json: &Path) -> Served {
        // Not under `timeout`, which would outlive a kill: serve.sh execs into the
        // server, so killing the child stops the server.
        let mut cmd = Command::new(repo().join("pipelines/serve.sh"));
        cmd.args(["--fp32", "--address", "127.0.0.1", "--port", "0"])
            .args(["--codec", codec, "--json"])
            .arg(json)
            .arg(recording());
        Served::spawn(cmd)
    }

    /// Runs a server command (serve.sh or the serve example) until it prints its URL.
    fn spawn(mut cmd: Command) -> Served {
        with_test_env(&mut cmd);
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line.trim().to_string());
        });
        let url = rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_default();
        let mut served = Served { child, url };
        if !served.url.starts_with("rtsp://") {
            let status = served.child.try_wait().ok().flatten();
            panic!(
                "the server printed no URL ({:?}); exit: {status:?}",
                served.url
            );
        }
        served
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Plays `url` with rtspsrc until EOS (RTP over TCP, or `protocols`); returns the decoded
/// frames' sizes.
fn play(url: &str) -> Vec<(u32, u32)> {
    play_over(url, "tcp")
}

fn play_over(url: &str, protocols: &str) -> Vec<(u32, u32)> {
    common::init();
    let pipeline = gst::parse::launch(&format!(
        "rtspsrc location={url} protocols={protocols} ! application/x-rtp,media=video ! decodebin \
         ! videoconvert ! video/x-raw,format=GRAY8 ! fakesink name=sink signal-handoffs=true"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let frames = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = frames.clone();
    pipeline
        .by_name("sink")
        .unwrap()
        .connect("handoff", false, move |args| {
            let pad = args[2].get::<gst::Pad>().unwrap();
            let info = gst_video::VideoInfo::from_caps(&pad.current_caps().unwrap()).unwrap();
            seen.lock().unwrap().push((info.width(), info.height()));
            None
        });
    pipeline.set_state(gst::State::Playing).unwrap();
    let msg = pipeline.bus().unwrap().timed_pop_filtered(
        gst::ClockTime::from_seconds(180),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    pipeline.set_state(gst::State::Null).unwrap();
    match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => {}
        Some(gst::MessageView::Error(e)) => {
            panic!("rtspsrc client: {} ({:?})", e.error(), e.debug())
        }
        _ => panic!("the rtspsrc client saw no EOS within 180 s"),
    }
    std::mem::take(&mut *frames.lock().unwrap())
}

fn serve_sh_plays_in_rtspsrc(codec: &str) {
    let json = workdir().join(format!("serve-{codec}.jsonl"));
    let served = Served::start(codec, &json);
    let frames = play(&served.url);
    assert!(!frames.is_empty(), "no frame over RTSP ({codec})");
    assert!(
        frames.iter().all(|&f| f == (SIZE.0 as u32, SIZE.1 as u32)),
        "{frames:?}"
    );
    // A recording is not live: every frame went through the tracker before the client's EOS.
    let lines = json_lines(&json);
    assert_eq!(lines.len(), FRAMES);
    assert!(
        lines
            .iter()
            .any(|l| !l["tracks"].as_array().unwrap().is_empty()),
        "no track in the served chain"
    );
}

#[test]
fn serve_sh_mjpeg_output_plays_in_rtspsrc() {
    serve_sh_plays_in_rtspsrc("mjpeg");
}

#[test]
fn serve_sh_h264_output_plays_in_rtspsrc() {
    serve_sh_plays_in_rtspsrc("h264");
}

/// A served recording plays to its end for one client after another. gst-rtsp-server's EOS
/// shutdown of a media whose source had already ended used to wait forever for an EOS
/// message: from about the 5th client played back to back on, every client was answered
/// 503 Service Unavailable (examples/serve.rs `stop_at_once_after_the_end`).
#[test]
fn a_served_recording_plays_for_one_client_after_another() {
    let mut cmd = Command::new(serve_example());
    cmd.args([
        "--address",
        "127.0.0.1",
        "--port",
        "0",
        "--mount",
        "/recording",
    ])
    .arg(format!(
        "filesrc location=\"{}\" ! rawvideoparse format=gray8 width={} height={} \
             framerate=30/1 ! videoconvert ! video/x-raw,format=I420 ! {}",
        recording().display(),
        SIZE.0,
        SIZE.1,
        payloader("h264")
    ));
    let served = Served::spawn(cmd);
    for client in 1..=10 {
        let frames = play_over(&served.url, if client % 2 == 0 { "udp" } else { "tcp" });
        assert!(!frames.is_empty(), "client {client}: no frame");
    }
}
