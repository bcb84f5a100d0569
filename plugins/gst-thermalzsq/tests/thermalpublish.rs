//! `thermalpublish` against a real `mosquitto` (Debian's, `make deps` installs it) that
//! each test starts on 127.0.0.1 with a free port and a config file of its own, and
//! stops and restarts when it needs an outage. Events come from the real
//! `thermaltrack` fed with synthetic region-of-interest metas (as in
//! tests/thermaltrack.rs); a rumqttc subscriber in the test reads what arrives.
//!
//! What a frame's events should produce is read back from the frames themselves
//! (`trackmeta::read` on what came out), so the tests check delivery, not tracking.
//! Waits have generous deadlines that only turn a hang into a failure.

mod common;

use std::cell::RefCell;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_check::Harness;
use gstthermalzsq::trackmeta;
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::Value;

use common::{init, plugin_dir};

/// How long anything may take before the test calls it a hang.
const DEADLINE: Duration = Duration::from_secs(60);

/// A fresh directory for one test's files.
fn tmp_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tzsq-pub-{}-{name}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A mosquitto process with its config; persistence on, so that a subscriber's
/// session and its queued messages survive a restart (the subscriber must not miss
/// what the element delivers while it reconnects).
struct Broker {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Broker {
    /// A broker whose config is `listener {port}` plus `extra`.
    fn start_with(name: &str, extra: &str) -> Broker {
        let dir = tmp_dir(name);
        let port = free_port();
        let config = format!(
            "listener {port} 127.0.0.1\n\
             persistence true\n\
             persistence_location {dir}/\n\
             log_dest file {dir}/mosquitto.log\n\
             user root\n\
             {extra}\n",
            dir = dir.display()
        );
        std::fs::write(dir.join("mosquitto.conf"), config).unwrap();
        let mut broker = Broker {
            dir,
            port,
            child: None,
        };
        broker.restart();
        broker
    }

    fn start(name: &str) -> Broker {
        Broker::start_with(name, "allow_anonymous true")
    }

    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Starts mosquitto (again, on the same port) and waits until it accepts connections.
    fn restart(&mut self) {
        assert!(self.child.is_none());
        let child = Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto runs (apt install mosquitto mosquitto-clients)");
        self.child = Some(child);
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("mosquitto exited ({status}): {}", self.log());
            }
            assert!(start.elapsed() < DEADLINE, "mosquitto did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops mosquitto the way a service manager does (SIGTERM: it saves its sessions).
    fn stop(&mut self) {
        let mut child = self.child.take().unwrap();
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        child.wait().unwrap();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[derive(Debug, Clone)]
struct Received {
    topic: String,
    payload: String,
    retain: bool,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_str(&self.payload)
            .unwrap_or_else(|e| panic!("{}: {e}: {}", self.topic, self.payload))
    }
}

#[derive(Default)]
struct Inbox {
    messages: Vec<Received>,
    subscribed: bool,
}

/// A subscriber to `thermalzsq/#` (QoS 1) that collects everything it receives.
struct Sub {
    inbox: Arc<(Mutex<Inbox>, Condvar)>,
    stop: Arc<AtomicBool>,
    client: Client,
}

impl Sub {
    /// `persistent`: a session the broker keeps (and queues for) while we are away.
    fn connect(broker: &Broker, id: &str, persistent: bool) -> Sub {
        Sub::connect_as(broker, id, persistent, None)
    }

    fn connect_as(broker: &Broker, id: &str, persistent: bool, login: Option<(&str, &str)>) -> Sub {
        let mut options = MqttOptions::new(id, "127.0.0.1", broker.port);
        options.set_clean_session(!persistent);
        if let Some((user, password)) = login {
            options.set_credentials(user, password);
        }
        let (client, mut connection) = Client::new(options, 100);
        client.subscribe("thermalzsq/#", QoS::AtLeastOnce).unwrap();
        let inbox = Arc::new((Mutex::new(Inbox::default()), Condvar::new()));
        let stop = Arc::new(AtomicBool::new(false));
        std::thread::spawn({
            let inbox = inbox.clone();
            let stop = stop.clone();
            move || {
                for event in connection.iter() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let mut got = inbox.0.lock().unwrap();
                    match event {
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            got.messages.push(Received {
                                topic: p.topic.clone(),
                                payload: String::from_utf8_lossy(&p.payload).into_owned(),
                                retain: p.retain,
                            });
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => got.subscribed = true,
                        Ok(_) => continue,
                        Err(_) => {
                            // The broker is down: retry, gently.
                            drop(got);
                            std::thread::sleep(Duration::from_millis(100));
                            continue;
                        }
                    }
                    inbox.1.notify_all();
                }
            }
        });
        let sub = Sub {
            inbox,
            stop,
            client,
        };
        sub.wait("the subscription", |i| i.subscribed);
        sub
    }

    fn wait(&self, what: &str, done: impl Fn(&Inbox) -> bool) {
        let start = Instant::now();
        let mut inbox = self.inbox.0.lock().unwrap();
        while !done(&inbox) {
            assert!(
                start.elapsed() < DEADLINE,
                "no {what}; received {:#?}",
                inbox.messages
            );
            inbox = self
                .inbox
                .1
                .wait_timeout(inbox, Duration::from_millis(200))
                .unwrap()
                .0;
        }
    }

    /// Waits for a message on `topic` that satisfies `is`; returns it.
    fn wait_for(&self, topic: &str, is: impl Fn(&Received) -> bool) -> Received {
        self.wait(&format!("{topic} message"), |i| {
            i.messages.iter().any(|m| m.topic == topic && is(m))
        });
        self.on(topic).into_iter().find(|m| is(m)).unwrap()
    }

    /// Everything received on `topic`, in order.
    fn on(&self, topic: &str) -> Vec<Received> {
        let inbox = self.inbox.0.lock().unwrap();
        inbox
            .messages
            .iter()
            .filter(|m| m.topic == topic)
            .cloned()
            .collect()
    }

    /// Waits until `count` distinct events arrived on `topic`; returns them in order of
    /// first arrival (QoS 1 may deliver a message twice).
    fn events(&self, topic: &str, count: usize) -> Vec<EventKey> {
        let distinct = |inbox: &Inbox| {
            let mut seen = Vec::new();
            for m in inbox.messages.iter().filter(|m| m.topic == topic) {
                let key = EventKey::of(&m.json());
                if !seen.contains(&key) {
                    seen.push(key);
                }
            }
            seen
        };
        self.wait(&format!("{count} events on {topic}"), |i| {
            distinct(i).len() >= count
        });
        distinct(&self.inbox.0.lock().unwrap())
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.client.try_disconnect();
    }
}

/// An event as the tests compare them: type, track id, frame.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EventKey(String, u64, u64);

impl EventKey {
    fn of(v: &Value) -> EventKey {
        EventKey(
            v["type"].as_str().unwrap().to_string(),
            v["track_id"].as_u64().unwrap(),
            v["frame"].as_u64().unwrap(),
        )
    }
}

const W: u32 = 320;
const H: u32 = 240;

/// A frame at `index` / 10 s carrying a person (confidence 0.91) whose feet stand at
/// `x`, 150, as `thermaldetect` would attach it; with a box maximum `max` in °C (a
/// radiometric camera), its `detection` structure has the temperature fields (median 8
/// and p90 2 degrees below).
fn frame(index: u64, feet: Option<u32>, max: Option<f64>) -> gst::Buffer {
    let mut buf = gst::Buffer::from_slice(vec![128u8; (W * H) as usize]);
    let b = buf.get_mut().unwrap();
    b.set_pts(gst::ClockTime::from_mseconds(index * 100));
    if let Some(x) = feet {
        let mut meta =
            gst_video::VideoRegionOfInterestMeta::add(b, "person", (x - 10, 110, 20, 40));
        meta.add_param(
            gst::Structure::builder("detection")
                .field("label", "person")
                .field("class-id", 0i32)
                .field("confidence", 0.91f64)
                .field_if_some("temperature-max", max)
                .field_if_some("temperature-median", max.map(|m| m - 8.0))
                .field_if_some("temperature-p90", max.map(|m| m - 2.0))
                .build(),
        );
    }
    buf
}

/// `thermaltrack` (every detection a track at once) into `thermalpublish name=pub`.
struct Chain {
    h: Harness,
    bus: gst::Bus,
    frames: u64,
    /// The events the frames that came out carried, in order.
    expected: Vec<EventKey>,
    /// Bus messages read so far: type and text.
    seen: RefCell<Vec<(gst::MessageType, String)>>,
}

impl Chain {
    fn new(track_props: &str, publish_props: &str) -> Chain {
        init();
        let bin = gst::parse::bin_from_description(
            &format!(
                "thermaltrack min-hits=1 draw=false post-messages=false {track_props} ! \
                 thermalpublish name=pub {publish_props}"
            ),
            true,
        )
        .unwrap();
        // On the bus before it starts: the client may warn at once.
        let bus = gst::Bus::new();
        bin.set_bus(Some(&bus));
        let mut h = Harness::with_element(&bin, Some("sink"), Some("src"));
        h.set_src_caps(
            gst_video::VideoInfo::builder(gst_video::VideoFormat::Gray8, W, H)
                .fps(gst::Fraction::new(10, 1))
                .build()
                .unwrap()
                .to_caps()
                .unwrap(),
        );
        Chain {
            h,
            bus,
            frames: 0,
            expected: Vec::new(),
            seen: RefCell::default(),
        }
    }

    fn publisher(&self) -> gst::Element {
        self.h
            .element()
            .unwrap()
            .downcast::<gst::Bin>()
            .unwrap()
            .by_name("pub")
            .unwrap()
    }

    /// Pushes one frame and checks it came out (the stream never stalls).
    fn push(&mut self, feet: Option<u32>) -> gst::Buffer {
        self.push_read(feet, None)
    }

    /// [`Chain::push`] of a radiometric camera's frame (see [`frame`]).
    fn push_read(&mut self, feet: Option<u32>, max: Option<f64>) -> gst::Buffer {
        let out = self
            .h
            .push_and_pull(frame(self.frames, feet, max))
            .expect("the frame passes");
        assert_eq!(
            out.pts(),
            Some(gst::ClockTime::from_mseconds(self.frames * 100))
        );
        self.frames += 1;
        if let Some(events) = trackmeta::read(&out) {
            self.expected.extend(
                events
                    .events
                    .iter()
                    .map(|e| EventKey(e.kind.name().into(), e.track_id, events.frame)),
            );
        }
        out
    }

    /// `n` frames in which someone new shows up every frame, far from where the last
    /// one stood, so that each frame has events (`new`, and `end` of the one before).
    fn push_busy(&mut self, n: usize) {
        for _ in 0..n {
            let x = if self.frames.is_multiple_of(2) {
                60
            } else {
                260
            };
            self.push(Some(x));
        }
    }

    /// Moves what the bus holds into `seen`, waiting up to `wait` for the first.
    fn drain(&self, wait: Duration) {
        let mut seen = self.seen.borrow_mut();
        let first = self
            .bus
            .timed_pop(gst::ClockTime::from_mseconds(wait.as_millis() as u64));
        for msg in first
            .into_iter()
            .chain(std::iter::from_fn(|| self.bus.pop()))
        {
            seen.push((msg.type_(), message_text(&msg)));
        }
    }

    /// Waits for a message of `kind` on the bus whose text contains `text`.
    fn wait_message(&self, kind: gst::MessageType, text: &str) -> String {
        let start = Instant::now();
        loop {
            self.drain(Duration::from_millis(200));
            if let Some((_, said)) = self
                .seen
                .borrow()
                .iter()
                .find(|(t, said)| *t == kind && said.contains(text))
            {
                return said.clone();
            }
            assert!(
                start.elapsed() < DEADLINE,
                "no {kind:?} saying '{text}': {:#?}",
                self.seen.borrow()
            );
        }
    }

    /// Warnings on the bus so far, as text.
    fn warnings(&self) -> Vec<String> {
        self.drain(Duration::ZERO);
        self.seen
            .borrow()
            .iter()
            .filter(|(t, _)| *t == gst::MessageType::Warning)
            .map(|(_, said)| said.clone())
            .collect()
    }
}

fn message_text(msg: &gst::Message) -> String {
    match msg.view() {
        gst::MessageView::Error(e) => format!("{} ({:?})", e.error(), e.debug()),
        gst::MessageView::Warning(w) => format!("{} ({:?})", w.error(), w.debug()),
        gst::MessageView::Info(i) => format!("{} ({:?})", i.error(), i.debug()),
        _ => String::new(),
    }
}

/// A value as it reads after a trip through JSON (f32 printed short, read as f64).
fn as_sent(v: &impl serde::Serialize) -> Value {
    serde_json::from_str(&serde_json::to_string(v).unwrap()).unwrap()
}

const ZONES: &str =
    r#"{"zones":[{"name":"gate","polygon":[[100,0],[200,0],[200,240],[100,240]]}]}"#;

#[test]
fn events_counts_tracks_and_status_arrive_with_the_documented_topics_and_payloads() {
    let broker = Broker::start("payloads");
    let sub = Sub::connect(&broker, "sub-payloads", false);
    let zones = broker.dir.join("zones.json");
    std::fs::write(&zones, ZONES).unwrap();
    let mut chain = Chain::new(
        &format!("zones={}", zones.display()),
        &format!(
            "broker={} camera=gate-cam detections=2 client-id=gate-cam-test",
            broker.url()
        ),
    );
    // Walks right into the gate (x 100..200).
    let mut enter = None;
    for x in [95, 98, 102, 105, 108] {
        let out = chain.push(Some(x));
        if let Some(frame) = trackmeta::read(&out) {
            enter = enter.or(frame.events.into_iter().find(|e| e.zone.is_some()));
        }
    }
    let enter = enter.expect("an enter event");
    let base = "thermalzsq/gate-cam";

    let online = sub.wait_for(&format!("{base}/status"), |m| m.payload == "online");
    assert!(
        !online.retain,
        "live delivery to a subscriber already there"
    );

    let events = sub.events(&format!("{base}/events"), 2);
    assert_eq!(
        events,
        vec![EventKey("new".into(), 1, 0), EventKey("enter".into(), 1, 2)]
    );
    let got = sub.wait_for(&format!("{base}/events"), |m| m.json()["type"] == "enter");
    let mut got = got.json();
    let time = got["time"].as_str().unwrap().to_string();
    assert!(
        time.len() == 27 && time.as_bytes()[10] == b'T' && time.ends_with('Z'),
        "RFC 3339 UTC: {time}"
    );
    got.as_object_mut().unwrap().remove("time");
    assert_eq!(
        got,
        serde_json::json!({"pts": 200_000_000u64, "frame": 2, "type": "enter", "track_id": 1,
            "label": "person", "class_id": 0, "confidence": as_sent(&enter.confidence),
            "box": as_sent(&enter.bbox), "zone": "gate"})
    );

    let count = sub.wait_for(&format!("{base}/zones/gate/person"), |_| true);
    assert_eq!(count.json()["count"], 1);
    assert_eq!(count.json()["frame"], 2);

    // Tracks of frames 0, 2, 4 (detections=2).
    sub.wait(&format!("{base}/tracks x3"), |i| {
        i.messages
            .iter()
            .filter(|m| m.topic.ends_with("/tracks"))
            .count()
            >= 3
    });
    let tracks: Vec<Value> = sub
        .on(&format!("{base}/tracks"))
        .iter()
        .map(Received::json)
        .collect();
    let frames: Vec<u64> = tracks
        .iter()
        .map(|t| t["frame"].as_u64().unwrap())
        .collect();
    assert_eq!(frames, vec![0, 2, 4]);
    assert_eq!(
        tracks[2]["tracks"],
        serde_json::json!([{"id": 1, "label": "person", "class_id": 0, "confidence": 0.91,
            "box": [98, 110, 118, 150], "age": 5}])
    );
    assert_eq!(tracks[2]["pts"], 400_000_000u64);

    // Someone who connects later gets the retained status and counts.
    let late = Sub::connect(&broker, "sub-late", false);
    let status = late.wait_for(&format!("{base}/status"), |_| true);
    assert!(status.retain && status.payload == "online", "{status:?}");
    let count = late.wait_for(&format!("{base}/zones/gate/person"), |_| true);
    assert!(count.retain && count.json()["count"] == 1, "{count:?}");
    assert!(
        broker.log().contains(" as gate-cam-test "),
        "client-id used: {}",
        broker.log()
    );

    // A clean stop says `offline` itself (no will).
    drop(chain);
    let offline = late.wait_for(&format!("{base}/status"), |m| m.payload == "offline");
    assert!(!offline.retain);
    let after = Sub::connect(&broker, "sub-after", false);
    let status = after.wait_for(&format!("{base}/status"), |_| true);
    assert!(status.retain && status.payload == "offline", "{status:?}");
}

#[test]
fn a_hot_event_and_the_tracks_carry_temperatures() {
    let broker = Broker::start("hot");
    let sub = Sub::connect(&broker, "sub-hot", false);
    let mut chain = Chain::new(
        "hot-threshold=person:38",
        &format!("broker={} camera=hot-cam detections=1", broker.url()),
    );
    for max in [36.0, 38.5, 37.0] {
        chain.push_read(Some(100), Some(max));
    }
    let base = "thermalzsq/hot-cam";
    let topic = format!("{base}/events");
    assert_eq!(
        sub.events(&topic, 2),
        vec![EventKey("new".into(), 1, 0), EventKey("hot".into(), 1, 1)]
    );
    let mut hot = sub.wait_for(&topic, |m| m.json()["type"] == "hot").json();
    hot.as_object_mut().unwrap().remove("time");
    assert_eq!(
        hot,
        serde_json::json!({"pts": 100_000_000u64, "frame": 1, "type": "hot", "track_id": 1,
            "label": "person", "class_id": 0, "confidence": as_sent(&0.91f32),
            "box": [90.0, 110.0, 110.0, 150.0], "temperature_c": 38.5})
    );
    let new = sub.wait_for(&topic, |m| m.json()["type"] == "new").json();
    assert_eq!(
        new["temperature_c"], 36.0,
        "every event has the latest reading"
    );

    sub.wait(&format!("{base}/tracks x3"), |i| {
        i.messages
            .iter()
            .filter(|m| m.topic.ends_with("/tracks"))
            .count()
            >= 3
    });
    let tracks = sub.on(&format!("{base}/tracks"))[2].json();
    assert_eq!(
        tracks["tracks"],
        serde_json::json!([{"id": 1, "label": "person", "class_id": 0, "confidence": 0.91,
            "box": [90, 110, 110, 150], "age": 3,
            "temperature_c": {"max": 37.0, "median": 29.0, "p90": 35.0},
            "temperature_max_c": 38.5}])
    );
}

#[test]
fn the_last_will_marks_the_camera_offline_when_its_process_dies() {
    init();
    let broker = Broker::start("will");
    let sub = Sub::connect(&broker, "sub-will", false);
    let dir = tmp_dir("will-launch");
    let mut launch = Command::new("gst-launch-1.0")
        .args(["-q", "videotestsrc", "is-live=true", "!", "thermalpublish"])
        .arg(format!("broker={}", broker.url()))
        .args(["camera=cam-will", "!", "fakesink"])
        .env("GST_PLUGIN_PATH", plugin_dir())
        .env("GST_REGISTRY", dir.join("registry.bin"))
        .stdout(Stdio::null())
        .spawn()
        .expect("gst-launch-1.0 runs (apt install gstreamer1.0-tools)");
    let topic = "thermalzsq/cam-will/status";
    sub.wait_for(topic, |m| m.payload == "online");
    launch.kill().unwrap(); // SIGKILL: no chance to say goodbye
    launch.wait().unwrap();
    sub.wait_for(topic, |m| m.payload == "offline");
    let later = Sub::connect(&broker, "sub-will-later", false);
    let status = later.wait_for(topic, |_| true);
    assert!(status.retain && status.payload == "offline", "{status:?}");
}

#[test]
fn a_broker_restart_mid_stream_neither_stalls_the_stream_nor_loses_or_reorders_events() {
    let mut broker = Broker::start("restart");
    let sub = Sub::connect(&broker, "sub-restart", true);
    let mut chain = Chain::new(
        "lost-frames=0",
        &format!("broker={} camera=restart-cam", broker.url()),
    );
    let topic = "thermalzsq/restart-cam/events";
    chain.push_busy(20);
    sub.events(topic, 10); // flowing before the outage
    broker.stop();
    chain.push_busy(30); // every frame comes out while the broker is away
    broker.restart();
    chain.push_busy(20);
    let expected = chain.expected.clone();
    assert!(expected.len() >= 100, "{} events", expected.len());
    assert_eq!(sub.events(topic, expected.len()), expected);
    assert_eq!(chain.publisher().property::<u64>("dropped"), 0);
    let warned: Vec<String> = chain
        .warnings()
        .into_iter()
        .filter(|w| w.contains("Cannot reach the MQTT broker"))
        .collect();
    assert_eq!(warned.len(), 1, "warned once per outage: {warned:?}");
    let info = chain.wait_message(gst::MessageType::Info, "again: delivering");
    assert!(info.contains("; 0 dropped so far"), "{info}");
}

/// A broker that knows `sub`'s persistent session but is stopped: what is published
/// once it is back reaches `sub` whoever reconnects first.
fn stopped_broker_with_session(name: &str) -> (Broker, Sub) {
    let mut broker = Broker::start(name);
    let sub = Sub::connect(&broker, &format!("sub-{name}"), true);
    broker.stop();
    (broker, sub)
}

#[test]
fn with_no_broker_at_start_the_element_warns_and_delivers_once_it_appears() {
    let (mut broker, sub) = stopped_broker_with_session("absent");
    let mut chain = Chain::new(
        "lost-frames=0",
        &format!("broker={} camera=late-cam", broker.url()),
    );
    chain.push_busy(10);
    let warning = chain.wait_message(gst::MessageType::Warning, "Cannot reach the MQTT broker");
    assert!(warning.contains(&broker.url()), "{warning}");
    broker.restart();
    let expected = chain.expected.clone();
    assert_eq!(
        sub.events("thermalzsq/late-cam/events", expected.len()),
        expected
    );
}

#[test]
fn a_full_queue_drops_the_oldest_messages_and_counts_them() {
    let (mut broker, sub) = stopped_broker_with_session("overflow");
    let mut chain = Chain::new(
        "lost-frames=0",
        &format!("broker={} camera=full-cam max-queued=5", broker.url()),
    );
    chain.push_busy(10);
    let expected = chain.expected.clone();
    assert!(expected.len() > 5);
    assert_eq!(
        chain.publisher().property::<u64>("dropped"),
        expected.len() as u64 - 5
    );
    chain.wait_message(gst::MessageType::Warning, "MQTT queue full (max-queued=5)");
    broker.restart();
    // Delivered in order: had anything older survived, it would come first.
    let got = sub.events("thermalzsq/full-cam/events", 5);
    assert_eq!(got[..5], expected[expected.len() - 5..]);
}

/// Starting `videotestsrc ! thermalpublish ! fakesink` with `props` fails; the error.
fn start_error(props: &[(&str, &str)]) -> String {
    message_text(&common::start_error("thermalpublish", props))
}

#[test]
fn bad_settings_are_errors_at_start_that_say_what_is_expected() {
    for url in ["localhost:1883", "tcp://localhost", "mqtt://localhost:port"] {
        let e = start_error(&[("broker", url)]);
        assert!(
            e.contains("is not mqtt://HOST[:PORT] or mqtts://HOST[:PORT]"),
            "{e}"
        );
    }
    let e = start_error(&[("camera", "gate/1")]);
    assert!(
        e.contains("camera 'gate/1' must be non-empty, without '/'"),
        "{e}"
    );
    let e = start_error(&[("password-file", "/etc/hostname")]);
    assert!(
        e.contains("password-file is set but username is not"),
        "{e}"
    );
    let e = start_error(&[("username", "cam"), ("password-file", "/nonexistent/pw")]);
    assert!(
        e.contains("Cannot read password-file /nonexistent/pw"),
        "{e}"
    );
    let e = start_error(&[
        ("broker", "mqtts://localhost"),
        ("ca-file", "/nonexistent/ca.pem"),
    ]);
    assert!(e.contains("Cannot read ca-file /nonexistent/ca.pem"), "{e}");
}

/// A live `videotestsrc ! thermalpublish ! fakesink` pipeline, playing.
fn live_pipeline(props: &str) -> gst::Pipeline {
    init();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc is-live=true ! thermalpublish {props} ! fakesink"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    pipeline
}

#[test]
fn a_wrong_password_is_a_clear_error_and_the_right_one_logs_in() {
    let dir = tmp_dir("auth-files");
    let passwd = dir.join("passwd");
    let status = Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&passwd)
        .args(["cam", "s3cret"])
        .status()
        .expect("mosquitto_passwd runs");
    assert!(status.success());
    let broker = Broker::start_with(
        "auth",
        &format!("allow_anonymous false\npassword_file {}", passwd.display()),
    );
    let (wrong, right) = (dir.join("wrong"), dir.join("right"));
    std::fs::write(&wrong, "guess\n").unwrap();
    std::fs::write(&right, "s3cret\n").unwrap();

    let pipeline = live_pipeline(&format!(
        "broker={} camera=auth-cam username=cam password-file={}",
        broker.url(),
        wrong.display()
    ));
    let msg = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(DEADLINE.as_secs()),
            &[gst::MessageType::Error],
        )
        .expect("an error, not a hang");
    let e = message_text(&msg);
    assert!(e.contains("refused the login"), "{e}");
    assert!(e.contains("username and password-file"), "{e}");
    pipeline.set_state(gst::State::Null).unwrap();

    let sub = Sub::connect_as(&broker, "sub-auth", false, Some(("cam", "s3cret")));
    let pipeline = live_pipeline(&format!(
        "broker={} camera=auth-cam username=cam password-file={}",
        broker.url(),
        right.display()
    ));
    sub.wait_for("thermalzsq/auth-cam/status", |m| m.payload == "online");
    pipeline.set_state(gst::State::Null).unwrap();
}

#[test]
fn stopping_does_not_wait_for_an_unreachable_broker() {
    // Nothing listens on the port: connecting fails and retries while frames flow.
    let mut chain = Chain::new(
        "lost-frames=0",
        &format!("broker=mqtt://127.0.0.1:{}", free_port()),
    );
    chain.push_busy(5);
    chain.wait_message(gst::MessageType::Warning, "Cannot reach the MQTT broker");
    drop(chain); // returns: the test would hang otherwise
}

/// A CA and a certificate for localhost / 127.0.0.1 signed by it, made with `openssl`.
fn certificates(dir: &std::path::Path) {
    let openssl = |args: &str| {
        let status = Command::new("openssl")
            .args(args.split_whitespace())
            .current_dir(dir)
            .stderr(Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success(), "openssl {args}");
    };
    std::fs::write(
        dir.join("san.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        "req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca",
    );
    openssl("req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost");
    openssl(
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.cnf",
    );
}

#[test]
fn mqtts_with_a_ca_file_delivers_over_tls_and_an_unknown_certificate_is_refused() {
    let dir = tmp_dir("tls-files");
    certificates(&dir);
    let tls_port = free_port();
    let broker = Broker::start_with(
        "tls",
        &format!(
            "allow_anonymous true\nlistener {tls_port} 127.0.0.1\ncafile {d}/ca.pem\n\
             certfile {d}/server.pem\nkeyfile {d}/server.key",
            d = dir.display()
        ),
    );
    let sub = Sub::connect(&broker, "sub-tls", false);
    let mut chain = Chain::new(
        "lost-frames=0",
        &format!(
            "broker=mqtts://localhost:{tls_port} ca-file={}/ca.pem camera=tls-cam qos=0",
            dir.display()
        ),
    );
    chain.push_busy(4);
    let expected = chain.expected.clone();
    assert_eq!(
        sub.events("thermalzsq/tls-cam/events", expected.len()),
        expected
    );

    // Without the CA the system's authorities do not know the broker's certificate.
    let mut chain = Chain::new(
        "lost-frames=0",
        &format!("broker=mqtts://localhost:{tls_port} camera=tls-cam-2"),
    );
    chain.push_busy(1);
    let warning = chain.wait_message(gst::MessageType::Warning, "Cannot reach the MQTT broker");
    assert!(warning.contains("TLS"), "{warning}");
}

#[test]
fn properties_have_the_documented_defaults() {
    init();
    let e = gst::ElementFactory::make("thermalpublish")
        .name("cam7")
        .build()
        .unwrap();
    assert_eq!(e.property::<String>("broker"), "mqtt://localhost:1883");
    assert_eq!(e.property::<String>("topic-prefix"), "thermalzsq");
    assert_eq!(e.property::<u32>("qos"), 1);
    assert_eq!(e.property::<u32>("max-queued"), 1000);
    assert_eq!(e.property::<u32>("detections"), 0);
    assert_eq!(e.property::<u64>("dropped"), 0);
    for unset in [
        "camera",
        "username",
        "password-file",
        "client-id",
        "ca-file",
    ] {
        assert_eq!(e.property::<Option<String>>(unset), None, "{unset}");
    }
    let pspec = e.find_property("dropped").unwrap();
    assert!(!pspec.flags().contains(gst::glib::ParamFlags::WRITABLE));
}
