//! What `thermaltrack ! thermalpublish` costs in a pipeline, and whether it keeps up
//! with a 30 fps camera: the measurement behind "zero frames dropped by tracking or
//! publishing at 30 fps" (issue 11). A `mosquitto` started here on 127.0.0.1 (a free
//! port) receives everything; a subscriber in the bench counts what arrives.
//!
//! 1. Criterion, per frame: a Harness around `thermaltrack` alone (the baseline) and
//!    around `thermaltrack ! thermalpublish detections=1`, 640x512 GRAY8 frames
//!    carrying the region-of-interest metas `thermaldetect` would attach for 10 or 100
//!    objects. The objects walk in rows across a zone and a line and wrap around at the
//!    frame's edge, so every frame has `new`/`end`/`enter`/`exit`/`cross` events and
//!    zone count changes to publish, besides its tracks.
//! 2. Live, not criterion's loop: `videotestsrc is-live=true` at 30/1 (a pad probe adds
//!    the 100 objects' metas) `! thermaltrack ! thermalpublish ! fakesink sync=true
//!    qos=true max-lateness=20ms` (what video sinks do) for `THERMALZSQ_CHAIN_SECONDS`
//!    (20) seconds; then the same with the real `thermaldetect` (model as in
//!    benches/thermaldetect.rs) in front, on a rendered `zsq synth` recording at 640x512
//!    GRAY16_LE. Printed: frames produced vs rendered, frames the sink dropped as late,
//!    QoS messages, MQTT messages the element dropped, messages the subscriber received
//!    vs published, and where each frame's time went.
//!
//! Run: `cargo bench -p gst-plugin-thermalzsq --bench chain` (a few minutes; `--test`
//! runs every part once, the live runs for one second).

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use gst::prelude::*;
use gst_check::Harness;
use gstthermalzsq::trackmeta;
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use thermalzsq::synth::Recording;

const W: u32 = 640;
const H: u32 = 512;
const FPS: u64 = 30;

/// A zone over the middle third of the frame (people only) and a vertical line to its
/// right: every object walking across the frame enters, exits and crosses.
const ZONES: &str = r#"{"zones":[{"name":"gate","polygon":[[200,0],[400,0],[400,512],[200,512]],"labels":["person"]}],
                       "lines":[{"name":"entry","points":[[500,0],[500,512]]}]}"#;

fn model() -> PathBuf {
    std::env::var_os("THERMALZSQ_BENCH_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/det_thermal_ft.onnx")
        })
}

/// Criterion's `--test` mode (`cargo bench -- --test`): every part once, briefly.
fn test_mode() -> bool {
    std::env::args().any(|a| a == "--test")
}

/// A directory of this run's files (zones, broker config).
fn tmp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tzsq-chain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `mosquitto` of our own on 127.0.0.1, stopped when dropped.
struct Broker {
    port: u16,
    child: Child,
}

impl Broker {
    fn start(dir: &Path) -> Broker {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.join("mosquitto.conf");
        std::fs::write(
            &config,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\nuser root\nlog_dest none\n"),
        )
        .unwrap();
        let child = Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto runs (apt install mosquitto)");
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "mosquitto did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Broker { port, child }
    }

    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Messages a subscriber to `thermalzsq/#` received for one camera, per kind of topic.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
struct Counts {
    events: u64,
    tracks: u64,
    zones: u64,
}

impl Counts {
    fn total(&self) -> u64 {
        self.events + self.tracks + self.zones
    }
}

/// A QoS 1 subscriber counting what arrives per camera (so that the retained zone
/// counts of the criterion runs' cameras are not counted as the live runs').
struct Subscriber {
    counts: Arc<Mutex<HashMap<String, Counts>>>,
    client: Client,
}

impl Subscriber {
    fn connect(broker: &Broker, id: &str) -> Subscriber {
        let mut options = MqttOptions::new(id, "127.0.0.1", broker.port);
        // A tracks message of 100 objects (~9 kB) comes near rumqttc's 10 kB default.
        options.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut connection) = Client::new(options, 1000);
        client.subscribe("thermalzsq/#", QoS::AtLeastOnce).unwrap();
        let counts = Arc::new(Mutex::new(HashMap::<String, Counts>::new()));
        let (subscribed_tx, subscribed) = std::sync::mpsc::channel();
        std::thread::spawn({
            let counts = counts.clone();
            move || {
                for event in connection.iter() {
                    match event {
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            let camera = p.topic.split('/').nth(1).unwrap_or_default();
                            let mut counts = counts.lock().unwrap();
                            let c = counts.entry(camera.to_string()).or_default();
                            if p.topic.ends_with("/events") {
                                c.events += 1;
                            } else if p.topic.ends_with("/tracks") {
                                c.tracks += 1;
                            } else if p.topic.contains("/zones/") {
                                c.zones += 1;
                            }
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            let _ = subscribed_tx.send(());
                        }
                        Ok(_) => {}
                        // Disconnected (the bench is over): done.
                        Err(_) => break,
                    }
                }
            }
        });
        subscribed
            .recv_timeout(Duration::from_secs(30))
            .expect("the subscription is acknowledged");
        Subscriber { counts, client }
    }

    fn counts(&self, camera: &str) -> Counts {
        self.counts
            .lock()
            .unwrap()
            .get(camera)
            .copied()
            .unwrap_or_default()
    }

    /// Waits until `expected` messages of `camera` arrived or nothing more came for 2 s.
    fn settle(&self, camera: &str, expected: u64) -> Counts {
        let mut last = self.counts(camera);
        let mut quiet = Instant::now();
        while last.total() < expected && quiet.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(50));
            let now = self.counts(camera);
            if now != last {
                last = now;
                quiet = Instant::now();
            }
        }
        last
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.client.try_disconnect();
    }
}

/// The detections of frame `index` for `n` objects, as `thermaldetect` attaches them:
/// rows of up to ten 20x40 boxes, 62 px apart, walking 3 px a frame, even rows to the
/// right and odd ones to the left, wrapping around at the frame's edge (a track ends,
/// a new one starts); every fourth object is a car (not counted in the zone).
fn add_objects(buf: &mut gst::BufferRef, n: u32, index: u64) {
    let rows = n.div_ceil(10);
    let span = W as u64 - 20;
    for k in 0..n {
        let (row, slot) = (k / 10, k % 10);
        let feet_y = 50 + (row * (H - 60)) / rows.max(1);
        let walked = (slot as u64 * 62 + 3 * index) % span;
        let left = if row % 2 == 0 { walked } else { span - walked } as u32;
        let (label, class_id) = if k % 4 == 3 {
            ("car", 2)
        } else {
            ("person", 0)
        };
        let mut meta =
            gst_video::VideoRegionOfInterestMeta::add(buf, label, (left, feet_y - 40, 20, 40));
        meta.add_param(
            gst::Structure::builder("detection")
                .field("label", label)
                .field("class-id", class_id)
                .field("confidence", 0.9f64)
                .build(),
        );
    }
}

fn frame_duration() -> gst::ClockTime {
    gst::ClockTime::SECOND / FPS
}

/// A black 640x512 GRAY8 frame `index` carrying `n` objects.
fn synthetic_frame(n: u32, index: u64) -> gst::Buffer {
    let mut buf = gst::Buffer::from_slice(vec![0u8; (W * H) as usize]);
    {
        let b = buf.get_mut().unwrap();
        b.set_pts(frame_duration() * index);
        b.set_duration(frame_duration());
        add_objects(b, n, index);
    }
    buf
}

fn gray8_caps() -> String {
    format!("video/x-raw,format=GRAY8,width={W},height={H},framerate={FPS}/1")
}

/// `thermaltrack` as the chain runs it: zones, events, no drawing and no bus messages
/// (MQTT carries them; nothing shows the video).
fn track_description(zones: &Path) -> String {
    format!(
        "thermaltrack name=track zones=\"{}\" draw=false post-messages=false",
        zones.display()
    )
}

fn publish_description(broker: &Broker, camera: &str) -> String {
    format!(
        "thermalpublish name=pub broker={} camera={camera} detections=1",
        broker.url()
    )
}

fn per_frame(c: &mut Criterion, broker: &Broker, zones: &Path) {
    let mut group = c.benchmark_group("chain 640x512 GRAY8, zone + line, detections=1");
    group.throughput(Throughput::Elements(1));
    for n in [10u32, 100] {
        for publish in [false, true] {
            let (name, description) = if publish {
                (
                    format!("thermaltrack ! thermalpublish, {n} objects"),
                    format!(
                        "{} ! {}",
                        track_description(zones),
                        publish_description(broker, &format!("bench-{n}"))
                    ),
                )
            } else {
                (
                    format!("thermaltrack, {n} objects"),
                    track_description(zones),
                )
            };
            let bin = gst::parse::bin_from_description(&description, true).unwrap();
            let mut h = Harness::with_element(&bin, Some("sink"), Some("src"));
            h.set_src_caps_str(&gray8_caps());
            let mut index = 0u64;
            let mut events = 0usize;
            group.bench_function(&name, |b| {
                b.iter_batched(
                    || {
                        index += 1;
                        synthetic_frame(n, index)
                    },
                    |buf| {
                        let out = h.push_and_pull(buf).unwrap();
                        events += trackmeta::read(&out).map_or(0, |e| e.events.len());
                        out
                    },
                    BatchSize::SmallInput,
                )
            });
            let dropped = bin
                .by_name("pub")
                .map(|p| p.property::<u64>("dropped"))
                .unwrap_or(0);
            println!(
                "  {name}: {index} frames, {:.2} events per frame{}",
                events as f64 / index.max(1) as f64,
                if publish {
                    format!(
                        ", {dropped} MQTT messages dropped (max-queued 1000; criterion pushes far faster than 30 fps)"
                    )
                } else {
                    String::new()
                }
            );
        }
    }
    group.finish();
}

/// Per-frame times between checkpoints, from the source's probe.
#[derive(Default)]
struct Timing {
    /// When each frame (by pts) left the source.
    started: HashMap<u64, Instant>,
    /// Per checkpoint: sum and maximum of the time since the frame left the source.
    sum: Vec<Duration>,
    max: Vec<Duration>,
}

struct LiveReport {
    produced: u64,
    at_sink: u64,
    rendered: u64,
    sink_dropped: u64,
    /// QoS messages: how many each element posted (a late frame dropped there).
    qos: Vec<(String, u64)>,
    mqtt_dropped: u64,
    published: Counts,
    received: Counts,
    /// Mean and maximum time from the source to each checkpoint.
    stages: Vec<(String, Duration, Duration)>,
    wall: Duration,
}

/// Runs `videotestsrc is-live=true num-buffers=frames ! caps ! {chain} ! fakesink` with
/// `fill` making each frame (index, buffer) and timing at the src pads of `checkpoints`;
/// `chain` publishes as `camera`.
fn live(
    caps: &str,
    chain: &str,
    camera: &str,
    frames: u64,
    checkpoints: &[&str],
    sub: &Subscriber,
    fill: impl Fn(u64, &mut gst::Buffer) + Send + Sync + 'static,
) -> LiveReport {
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc name=src is-live=true pattern=black num-buffers={frames} ! {caps} ! {chain} \
         ! fakesink name=sink sync=true qos=true max-lateness=20000000"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let timing = Arc::new(Mutex::new(Timing {
        sum: vec![Duration::ZERO; checkpoints.len() + 1],
        max: vec![Duration::ZERO; checkpoints.len() + 1],
        ..Default::default()
    }));
    let produced = Arc::new(AtomicU64::new(0));
    let src = pipeline.by_name("src").unwrap();
    src.static_pad("src")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, {
            let timing = timing.clone();
            let produced = produced.clone();
            move |_, info| {
                if let Some(gst::PadProbeData::Buffer(buffer)) = &mut info.data {
                    let index = produced.fetch_add(1, Ordering::Relaxed);
                    fill(index, buffer);
                    let pts = buffer.pts().map_or(0, |t| t.nseconds());
                    timing.lock().unwrap().started.insert(pts, Instant::now());
                }
                gst::PadProbeReturn::Ok
            }
        });
    let published = Arc::new(Mutex::new(Counts::default()));
    let sink = pipeline.by_name("sink").unwrap();
    let pads = checkpoints
        .iter()
        .map(|name| pipeline.by_name(name).unwrap().static_pad("src").unwrap())
        .chain([sink.static_pad("sink").unwrap()]);
    for (i, pad) in pads.enumerate() {
        let last = i == checkpoints.len();
        let timing = timing.clone();
        let published = published.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(gst::PadProbeData::Buffer(buffer)) = &info.data {
                let pts = buffer.pts().map_or(0, |t| t.nseconds());
                let mut t = timing.lock().unwrap();
                let started = if last {
                    t.started.remove(&pts)
                } else {
                    t.started.get(&pts).copied()
                };
                if let Some(started) = started {
                    let took = started.elapsed();
                    t.sum[i] += took;
                    t.max[i] = t.max[i].max(took);
                }
                if last {
                    let mut p = published.lock().unwrap();
                    p.tracks += 1;
                    if let Some(frame) = trackmeta::read(buffer) {
                        p.events += frame.events.len() as u64;
                        p.zones += frame.occupancy.len() as u64;
                    }
                }
            }
            gst::PadProbeReturn::Ok
        });
    }

    let started = Instant::now();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let deadline = Duration::from_secs(frames / FPS + 120);
    let mut qos: Vec<(String, u64)> = Vec::new();
    loop {
        if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(500)) {
            match msg.view() {
                gst::MessageView::Eos(_) => break,
                gst::MessageView::Error(e) => panic!("{} ({:?})", e.error(), e.debug()),
                gst::MessageView::Qos(q) => {
                    let source = q.src().map_or("?".into(), |s| s.name().to_string());
                    match qos.iter_mut().find(|(name, _)| *name == source) {
                        Some((_, count)) => *count += 1,
                        None => qos.push((source, 1)),
                    }
                }
                _ => {}
            }
        }
        assert!(started.elapsed() < deadline, "the live run did not finish");
    }
    let wall = started.elapsed();
    let stats = sink.property::<gst::Structure>("stats");
    let mqtt_dropped = pipeline.by_name("pub").unwrap().property::<u64>("dropped");
    pipeline.set_state(gst::State::Null).unwrap();

    let published = *published.lock().unwrap();
    let at_sink = published.tracks;
    let received = sub.settle(camera, published.total());
    let t = timing.lock().unwrap();
    let mut names: Vec<String> = checkpoints.iter().map(|s| s.to_string()).collect();
    names.push("sink".into());
    LiveReport {
        produced: produced.load(Ordering::Relaxed),
        at_sink,
        rendered: stats.get("rendered").unwrap_or(0),
        sink_dropped: stats.get("dropped").unwrap_or(0),
        qos,
        mqtt_dropped,
        published,
        received,
        stages: names
            .into_iter()
            .enumerate()
            .map(|(i, name)| (name, t.sum[i] / at_sink.max(1) as u32, t.max[i]))
            .collect(),
        wall,
    }
}

impl std::fmt::Display for LiveReport {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "{} frames produced in {:.1} s, {} reached the sink, {} rendered, {} dropped late \
             ({} QoS messages{}); MQTT: {} dropped by the element, {} of {} published received \
             ({} events, {} tracks, {} zone counts); from the source, mean / max:",
            self.produced,
            self.wall.as_secs_f64(),
            self.at_sink,
            self.rendered,
            self.sink_dropped,
            self.qos.iter().map(|(_, n)| n).sum::<u64>(),
            self.qos
                .iter()
                .map(|(name, n)| format!(", {n} from {name}"))
                .collect::<String>(),
            self.mqtt_dropped,
            self.received.total(),
            self.published.total(),
            self.received.events,
            self.received.tracks,
            self.received.zones,
        )?;
        for (name, mean, max) in &self.stages {
            write!(
                f,
                " {name} {:.2} / {:.2} ms",
                mean.as_secs_f64() * 1e3,
                max.as_secs_f64() * 1e3
            )?;
        }
        Ok(())
    }
}

/// Frames of a rendered `zsq synth` recording, played forward and back (no jump).
fn recording(frames: u32) -> Vec<gst::Buffer> {
    let rec = Recording::new(101, W, H).unwrap();
    (0..frames)
        .map(|i| {
            let bytes: Vec<u8> = rec
                .frame(i)
                .thermal
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            gst::Buffer::from_slice(bytes)
        })
        .collect()
}

fn live_runs(broker: &Broker, zones: &Path) {
    let seconds: u64 = if test_mode() {
        1
    } else {
        std::env::var("THERMALZSQ_CHAIN_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20)
    };
    let frames = seconds * FPS;
    let sub = Subscriber::connect(broker, "chain-bench-sub");

    let n = 100;
    let report = live(
        &gray8_caps(),
        &format!(
            "{} ! {}",
            track_description(zones),
            publish_description(broker, "live")
        ),
        "live",
        frames,
        &["track", "pub"],
        &sub,
        move |index, buffer| add_objects(buffer.make_mut(), n, index),
    );
    println!(
        "live 30 fps, thermaltrack ! thermalpublish, {n} synthetic objects, 640x512 GRAY8: {report}"
    );

    let model = model();
    if !model.exists() {
        println!(
            "live 30 fps with thermaldetect: skipped, no model at {}",
            model.display()
        );
        return;
    }
    let looped = if test_mode() { 4 } else { 150 };
    let rendering = Instant::now();
    let recorded = Arc::new(recording(looped));
    println!(
        "  rendered {looped} frames of zsq synth recording 101 in {:.1} s",
        rendering.elapsed().as_secs_f64()
    );
    let report = live(
        &format!("video/x-raw,format=GRAY16_LE,width={W},height={H},framerate={FPS}/1"),
        &format!(
            "thermaldetect name=detect model=\"{}\" conf-threshold=0.1 draw=false post-messages=false ! {} ! {}",
            model.display(),
            track_description(zones),
            publish_description(broker, "live-detect")
        ),
        "live-detect",
        frames,
        &["detect", "track", "pub"],
        &sub,
        move |index, buffer| {
            // Forward and back through the recording, so objects never jump.
            let period = 2 * (looped as u64 - 1);
            let i = (index % period) as usize;
            let i = if i < looped as usize {
                i
            } else {
                period as usize - i
            };
            let mut frame = recorded[i].copy();
            {
                let f = frame.get_mut().unwrap();
                f.set_pts(buffer.pts());
                f.set_duration(buffer.duration());
                f.set_offset(buffer.offset());
            }
            *buffer = frame;
        },
    );
    println!(
        "live 30 fps, thermaldetect {} ! thermaltrack ! thermalpublish, zsq synth recording \
         101, 640x512 GRAY16_LE: {report}",
        model.file_name().unwrap().to_string_lossy()
    );
}

fn bench(c: &mut Criterion) {
    gst::init().unwrap();
    gstthermalzsq::plugin_register_static().unwrap();
    let dir = tmp_dir();
    let zones = dir.join("zones.json");
    std::fs::write(&zones, ZONES).unwrap();
    let broker = Broker::start(&dir);
    per_frame(c, &broker, &zones);
    live_runs(&broker, &zones);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
