//! `thermalpublish`: sends what `thermaltrack` attached to the frames to an MQTT broker,
//! the fleet's message bus that a video-management system, a dashboard or an alarm
//! panel already reads.
//!
//! The element passes every buffer on untouched. On the streaming thread it only turns
//! a frame's events (the `trackmeta` custom meta), zone counts and, if asked, tracks
//! into JSON messages and queues them; the network lives on the client thread
//! (`client.rs`), so a slow or absent broker never holds a frame. Topics and payloads
//! are in `payload.rs` and docs/publish.md.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use rumqttc::QoS;

use super::broker::{self, BrokerUrl, Login, MAX_PACKET};
use super::client::{Message, Notice, Publisher};
use super::payload::{self, Stamp, Topics};
use crate::props::{filter_pad_templates, path_from, path_value};
use crate::sync::lock;
use crate::trackmeta;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "thermalpublish",
        gst::DebugColorFlags::empty(),
        Some("Thermal tracking events to MQTT"),
    )
});

#[derive(Debug, Clone)]
struct Settings {
    broker: String,
    ca_file: Option<PathBuf>,
    camera: Option<String>,
    topic_prefix: String,
    qos: u32,
    username: Option<String>,
    password_file: Option<PathBuf>,
    client_id: Option<String>,
    max_queued: u32,
    detections: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            broker: "mqtt://localhost:1883".into(),
            ca_file: None,
            camera: None,
            topic_prefix: "thermalzsq".into(),
            qos: 1,
            username: None,
            password_file: None,
            client_id: None,
            max_queued: 1000,
            detections: 0,
        }
    }
}

struct State {
    publisher: Publisher,
    topics: Topics,
    /// Buffers seen since start: the frame index of `tracks` messages.
    frames: u64,
}

#[derive(Default)]
pub struct ThermalPublish {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    /// Messages the queue gave up since start (the `dropped` property); outlives the
    /// state so that it can be read after stop.
    dropped: Arc<AtomicU64>,
}

#[glib::object_subclass]
impl ObjectSubclass for ThermalPublish {
    const NAME: &'static str = "GstThermalPublish";
    type Type = super::ThermalPublish;
    type ParentType = gst_base::BaseTransform;
}

fn string_from(value: &glib::Value) -> Option<String> {
    value
        .get::<Option<String>>()
        .expect("type checked upstream")
        .filter(|s| !s.is_empty())
}

impl ObjectImpl for ThermalPublish {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let d = Settings::default();
            vec![
                glib::ParamSpecString::builder("broker")
                    .nick("Broker")
                    .blurb("MQTT broker as mqtt://HOST[:PORT] (port 1883) or mqtts://HOST[:PORT] (TLS, port 8883)")
                    .default_value(Some(d.broker.as_str()))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("ca-file")
                    .nick("CA file")
                    .blurb("PEM certificate(s) of the authority that signed the broker's certificate, for mqtts:// (unset: the system's trusted authorities)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("camera")
                    .nick("Camera")
                    .blurb("The camera's name in topics: {topic-prefix}/{camera}/... (unset: the element's name)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("topic-prefix")
                    .nick("Topic prefix")
                    .blurb("First level(s) of every topic")
                    .default_value(Some(d.topic_prefix.as_str()))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("qos")
                    .nick("QoS")
                    .blurb("MQTT quality of service: 0 at most once (lost if the connection breaks), 1 at least once (kept until the broker acknowledges; a message may come twice)")
                    .maximum(1)
                    .default_value(d.qos)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("username")
                    .nick("User name")
                    .blurb("User name to log in to the broker with")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("password-file")
                    .nick("Password file")
                    .blurb("File whose first line is the password (kept out of the command line and of pipeline dumps); needs username")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("client-id")
                    .nick("Client id")
                    .blurb("MQTT client id, unique per broker (unset: thermalzsq-{camera}-{process id})")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-queued")
                    .nick("Maximum queued")
                    .blurb("Messages kept waiting for the broker (unreachable, or slower than the stream); beyond it the oldest are dropped (and counted in `dropped`)")
                    .minimum(1)
                    .default_value(d.max_queued)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("detections")
                    .nick("Detections")
                    .blurb("Publish the confirmed tracks of every N-th frame to {topic-prefix}/{camera}/tracks (0: off)")
                    .default_value(d.detections)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt64::builder("dropped")
                    .nick("Dropped")
                    .blurb("Messages dropped since start because the queue was full (max-queued)")
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = lock(&self.settings);
        match pspec.name() {
            "broker" => s.broker = string_from(value).unwrap_or_default(),
            "ca-file" => s.ca_file = path_from(value),
            "camera" => s.camera = string_from(value),
            "topic-prefix" => s.topic_prefix = string_from(value).unwrap_or_default(),
            "qos" => s.qos = value.get().expect("type checked upstream"),
            "username" => s.username = string_from(value),
            "password-file" => s.password_file = path_from(value),
            "client-id" => s.client_id = string_from(value),
            "max-queued" => s.max_queued = value.get().expect("type checked upstream"),
            "detections" => s.detections = value.get().expect("type checked upstream"),
            other => unreachable!("no writable property {other}"),
        }
        gst::debug!(CAT, imp = self, "{} set", pspec.name());
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = lock(&self.settings);
        match pspec.name() {
            "broker" => s.broker.to_value(),
            "ca-file" => path_value(&s.ca_file).to_value(),
            "camera" => s.camera.to_value(),
            "topic-prefix" => s.topic_prefix.to_value(),
            "qos" => s.qos.to_value(),
            "username" => s.username.to_value(),
            "password-file" => path_value(&s.password_file).to_value(),
            "client-id" => s.client_id.to_value(),
            "max-queued" => s.max_queued.to_value(),
            "detections" => s.detections.to_value(),
            "dropped" => self.dropped.load(Ordering::Relaxed).to_value(),
            other => unreachable!("no property {other}"),
        }
    }
}

impl GstObjectImpl for ThermalPublish {}

impl ElementImpl for ThermalPublish {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Thermal tracking events to MQTT",
                "Filter/Metadata/Network",
                "Publishes thermaltrack's events, zone occupancy and (optionally) tracks to an \
                 MQTT broker as JSON; passes the stream through untouched and never waits on \
                 the network",
                "thermalzsq developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> =
            LazyLock::new(|| filter_pad_templates(&gst::Caps::new_any()));
        PAD_TEMPLATES.as_ref()
    }
}

impl ThermalPublish {
    /// Turns the client thread's notices into bus messages a user can act on.
    fn notifier(&self, url: String, max_queued: u32) -> Arc<dyn Fn(Notice) + Send + Sync> {
        let element = self.obj().downgrade();
        Arc::new(move |notice| {
            let Some(element) = element.upgrade() else {
                return;
            };
            gst::debug!(CAT, obj = element, "{notice:?}");
            match notice {
                Notice::Unreachable(e) => gst::element_warning!(
                    element,
                    gst::ResourceError::OpenWrite,
                    ("Cannot reach the MQTT broker {}: {}", url, e),
                    [
                        "Keeping the newest {} messages (max-queued) and retrying with back-off",
                        max_queued
                    ]
                ),
                Notice::Reconnected { queued, dropped } => gst::element_info!(
                    element,
                    gst::ResourceError::OpenWrite,
                    (
                        "Connected to the MQTT broker {} again: delivering {} queued messages; {} dropped so far",
                        url,
                        queued,
                        dropped
                    )
                ),
                Notice::Overflow => gst::element_warning!(
                    element,
                    gst::ResourceError::NoSpaceLeft,
                    (
                        "MQTT queue full (max-queued={}): dropping the oldest messages (the broker {} is unreachable or slower than the stream)",
                        max_queued,
                        url
                    ),
                    ["The `dropped` property counts them"]
                ),
                Notice::Refused(code) => gst::element_error!(
                    element,
                    gst::ResourceError::NotAuthorized,
                    ("The MQTT broker {} refused the login ({})", url, code),
                    ["Check the username and password-file properties"]
                ),
                Notice::Failed(e) => {
                    gst::element_error!(element, gst::ResourceError::Failed, ("{}", e))
                }
            }
        })
    }

    fn settings_error(message: String) -> gst::ErrorMessage {
        gst::error_msg!(gst::ResourceError::Settings, ("{}", message))
    }
}

impl BaseTransformImpl for ThermalPublish {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = true;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = true;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let s = lock(&self.settings).clone();
        let url: BrokerUrl = s.broker.parse().map_err(Self::settings_error)?;
        let camera = s
            .camera
            .clone()
            .unwrap_or_else(|| self.obj().name().to_string());
        let topics = Topics::new(&s.topic_prefix, &camera).map_err(Self::settings_error)?;
        let qos = if s.qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        };
        let client_id = s
            .client_id
            .clone()
            .unwrap_or_else(|| format!("thermalzsq-{camera}-{}", std::process::id()));
        let status = topics.status();
        let options = broker::options(
            &url,
            &Login {
                client_id: &client_id,
                username: s.username.as_deref(),
                password_file: s.password_file.as_deref(),
                ca_file: s.ca_file.as_deref(),
                status_topic: &status,
                qos,
            },
        )
        .map_err(Self::settings_error)?;
        self.dropped.store(0, Ordering::Relaxed);
        let publisher = Publisher::start(
            options,
            qos,
            status,
            s.max_queued as usize,
            self.dropped.clone(),
            self.notifier(s.broker.clone(), s.max_queued),
        )
        .map_err(|e| {
            gst::error_msg!(
                gst::CoreError::Thread,
                ("Cannot start the MQTT client thread: {}", e)
            )
        })?;
        gst::debug!(
            CAT,
            imp = self,
            "publishing to {} as {client_id} under {}",
            s.broker,
            topics.events()
        );
        *lock(&self.state) = Some(State {
            publisher,
            topics,
            frames: 0,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let state = lock(&self.state).take();
        if let Some(state) = state {
            // After everything queued; the client delivers it if it is connected, for a
            // bounded time, and disconnects (so the will is not sent).
            state.publisher.push(Message {
                topic: state.topics.status(),
                payload: b"offline".to_vec(),
                retain: true,
            });
            drop(state);
        }
        Ok(())
    }

    fn transform_ip_passthrough(
        &self,
        buf: &gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let detections = lock(&self.settings).detections;
        let mut guard = lock(&self.state);
        let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
        let index = state.frames;
        state.frames += 1;

        let mut messages = Vec::new();
        if let Some(frame) = trackmeta::read(buf) {
            let stamp = Stamp::now(frame.pts, frame.frame);
            messages.extend(payload::frame_messages(&state.topics, &stamp, &frame));
        }
        if detections > 0 && index.is_multiple_of(detections as u64) {
            let stamp = Stamp::now(buf.pts(), index);
            messages.push(payload::tracks_message(&state.topics, &stamp, buf));
        }
        for m in messages {
            if m.topic.len() + m.payload.len() + 16 > MAX_PACKET {
                gst::warning!(
                    CAT,
                    imp = self,
                    "{} message of {} bytes not sent (over {MAX_PACKET})",
                    m.topic,
                    m.payload.len()
                );
                continue;
            }
            state.publisher.push(m);
        }
        Ok(gst::FlowSuccess::Ok)
    }
}
