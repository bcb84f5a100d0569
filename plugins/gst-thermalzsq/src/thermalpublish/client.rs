//! The network side of `thermalpublish`: a bounded queue the streaming thread fills
//! without ever waiting, and one client thread that empties it, in order, into the
//! broker.
//!
//! Why our own queue rather than rumqttc's request channel: that channel's capacity
//! makes a sender wait when it is full, and with a clean session rumqttc forgets the
//! QoS 1 publishes the broker had not acknowledged when a connection broke. Here a
//! message leaves the queue only once it is delivered (acknowledged for QoS 1, written
//! for QoS 0); on every (re)connection the client starts again from the oldest one it
//! still holds, so a broker restart loses nothing within `max-queued` and keeps the
//! order (QoS 1 is "at least once": a message whose acknowledgement was lost comes
//! twice). When the queue is full the oldest message goes, and is counted.
//!
//! The client thread runs rumqttc's event loop on a single-threaded tokio runtime with
//! two more futures beside it: the sender, which hands queued messages to rumqttc
//! while the connection is up (at most [`WINDOW`] unacknowledged), and the closer,
//! which on stop delivers what is left for at most [`DRAIN`] and disconnects.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Outgoing,
    Packet, QoS,
};
use tokio::sync::Notify;

use super::broker::INFLIGHT;
use crate::sync::lock;

/// Messages handed to rumqttc and not yet delivered: below the packet-id cycle so that
/// no id is reused while its acknowledgement is outstanding (with in-order acks).
const WINDOW: usize = INFLIGHT as usize - 1;

/// rumqttc's request channel: the window plus the `online` status.
const CHANNEL: usize = WINDOW + 2;

/// Reconnection back-off: doubles from the first to the last.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(5));

/// On stop, how long a connected client may take to deliver what is queued.
const DRAIN: Duration = Duration::from_secs(2);

/// One MQTT message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// What the client tells the element (which turns it into bus messages).
#[derive(Debug)]
pub enum Notice {
    /// The broker cannot be reached (first failure of an outage only).
    Unreachable(String),
    /// Connected again after an outage, `queued` messages to deliver; `dropped` is
    /// the total so far.
    Reconnected { queued: usize, dropped: u64 },
    /// The queue overflowed (first time of an outage only).
    Overflow,
    /// The broker refused our credentials: retrying will not help.
    Refused(String),
    /// The client could not run at all.
    Failed(String),
}

pub type NoticeFn = Arc<dyn Fn(Notice) + Send + Sync>;

struct Queued {
    /// Position in the stream of messages; increases by one per push.
    seq: u64,
    message: Message,
}

struct Queue {
    items: VecDeque<Queued>,
    next_seq: u64,
    capacity: usize,
    /// An overflow was reported during the current outage.
    overflow_reported: bool,
}

impl Queue {
    /// The seq of the oldest message held (the next one pushed when empty).
    fn oldest(&self) -> u64 {
        self.items.front().map_or(self.next_seq, |q| q.seq)
    }

    /// Index of the first message at or after `seq`.
    fn index_from(&self, seq: u64) -> usize {
        self.items.partition_point(|q| q.seq < seq)
    }

    /// Forgets a delivered message (gone already if it overflowed meanwhile).
    fn delivered(&mut self, seq: u64) {
        if let Ok(i) = self.items.binary_search_by_key(&seq, |q| q.seq) {
            self.items.remove(i);
        }
    }
}

struct Shared {
    queue: Mutex<Queue>,
    /// Work for the sender: a message queued, a slot freed, a connection made.
    wake: Notify,
    closing: AtomicBool,
    close: Notify,
    dropped: Arc<AtomicU64>,
    notify: NoticeFn,
}

/// The element's handle on its client thread; dropping it stops the thread (within
/// [`DRAIN`] plus a moment).
pub struct Publisher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Publisher {
    /// Starts the client thread; it connects (and reconnects) on its own.
    /// `dropped` counts the messages the queue gives up.
    pub fn start(
        options: MqttOptions,
        qos: QoS,
        status_topic: String,
        max_queued: usize,
        dropped: Arc<AtomicU64>,
        notify: NoticeFn,
    ) -> std::io::Result<Publisher> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                next_seq: 0,
                capacity: max_queued.max(1),
                overflow_reported: false,
            }),
            wake: Notify::new(),
            closing: AtomicBool::new(false),
            close: Notify::new(),
            dropped,
            notify,
        });
        let thread = std::thread::Builder::new()
            .name("thermalpublish".into())
            .spawn({
                let shared = shared.clone();
                move || run(&shared, options, qos, &status_topic)
            })?;
        Ok(Publisher {
            shared,
            thread: Some(thread),
        })
    }

    /// Queues `message` for the broker; never waits. When the queue is full the oldest
    /// message is dropped (and counted).
    pub fn push(&self, message: Message) {
        let overflowed = {
            let mut q = lock(&self.shared.queue);
            let seq = q.next_seq;
            q.next_seq += 1;
            q.items.push_back(Queued { seq, message });
            let mut overflowed = false;
            while q.items.len() > q.capacity {
                q.items.pop_front();
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                overflowed = !std::mem::replace(&mut q.overflow_reported, true);
            }
            overflowed
        };
        self.shared.wake.notify_one();
        if overflowed {
            (self.shared.notify)(Notice::Overflow);
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        self.shared.close.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The client thread.
fn run(shared: &Shared, options: MqttOptions, qos: QoS, status_topic: &str) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            (shared.notify)(Notice::Failed(format!("Cannot start the MQTT client: {e}")));
            return;
        }
    };
    rt.block_on(async {
        let (client, mut eventloop) = AsyncClient::new(options, CHANNEL);
        let link = RefCell::new(Link::default());
        let session = Session {
            shared,
            client: &client,
            link: &link,
            qos,
            status_topic,
        };
        tokio::select! {
            _ = session.poll(&mut eventloop) => {}
            _ = session.send() => {}
            _ = session.close() => {}
        }
    });
    // A connection attempt still resolving a name must not hold the pipeline's stop.
    rt.shutdown_background();
}

/// The client thread's view of the current connection.
#[derive(Default)]
struct Link {
    connected: bool,
    /// An outage is under way (reported once, cleared on connection).
    outage: bool,
    /// The next seq to hand to rumqttc.
    next: u64,
    /// Handed to rumqttc, awaiting its `Outgoing::Publish`, in order; `None` is the
    /// `online` status, which is not queued.
    handed: VecDeque<Option<u64>>,
    /// A publish rumqttc holds back on a packet-id collision (sent when that id is
    /// acknowledged, before any other).
    collided: Option<Option<u64>>,
    /// QoS 1 publishes on the wire: packet id -> seq.
    inflight: HashMap<u16, u64>,
}

impl Link {
    fn outstanding(&self) -> usize {
        self.handed.len() + self.inflight.len() + usize::from(self.collided.is_some())
    }

    /// Whatever was on its way is undelivered; the next connection resends it.
    fn lost(&mut self) {
        self.connected = false;
        self.handed.clear();
        self.inflight.clear();
        self.collided = None;
    }
}

struct Session<'a> {
    shared: &'a Shared,
    client: &'a AsyncClient,
    link: &'a RefCell<Link>,
    qos: QoS,
    status_topic: &'a str,
}

impl Session<'_> {
    /// Drives rumqttc: connects, reconnects with back-off, books deliveries. Returns
    /// once a requested disconnect has gone out.
    async fn poll(&self, eventloop: &mut EventLoop) {
        let mut backoff = BACKOFF.0;
        loop {
            let event = eventloop.poll().await;
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff = BACKOFF.0;
                    self.connected();
                }
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                    let mut link = self.link.borrow_mut();
                    let sent = link.collided.take().or_else(|| link.handed.pop_front());
                    if let Some(Some(seq)) = sent {
                        match self.qos {
                            QoS::AtMostOnce => lock(&self.shared.queue).delivered(seq),
                            _ => {
                                link.inflight.insert(pkid, seq);
                            }
                        }
                    }
                    self.shared.wake.notify_one();
                }
                Ok(Event::Outgoing(Outgoing::AwaitAck(_))) => {
                    let mut link = self.link.borrow_mut();
                    link.collided = link.handed.pop_front();
                }
                Ok(Event::Incoming(Packet::PubAck(ack))) => {
                    if let Some(seq) = self.link.borrow_mut().inflight.remove(&ack.pkid) {
                        lock(&self.shared.queue).delivered(seq);
                    }
                    self.shared.wake.notify_one();
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
                Ok(_) => {}
                Err(e) => {
                    self.link.borrow_mut().lost();
                    if let ConnectionError::ConnectionRefused(
                        code @ (ConnectReturnCode::BadUserNamePassword
                        | ConnectReturnCode::NotAuthorized),
                    ) = &e
                    {
                        (self.shared.notify)(Notice::Refused(format!("{code:?}")));
                        std::future::pending::<()>().await;
                    }
                    if !std::mem::replace(&mut self.link.borrow_mut().outage, true) {
                        (self.shared.notify)(Notice::Unreachable(e.to_string()));
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF.1);
                }
            }
        }
    }

    /// A connection is up: announce `online` (retained) and resend from the oldest
    /// message still queued.
    fn connected(&self) {
        let mut link = self.link.borrow_mut();
        link.lost();
        link.connected = true;
        let queued = {
            let mut q = lock(&self.shared.queue);
            link.next = q.oldest();
            q.overflow_reported = false;
            q.items.len()
        };
        if self
            .client
            .try_publish(self.status_topic, self.qos, true, "online")
            .is_ok()
        {
            link.handed.push_back(None);
        }
        if std::mem::take(&mut link.outage) {
            (self.shared.notify)(Notice::Reconnected {
                queued,
                dropped: self.shared.dropped.load(Ordering::Relaxed),
            });
        }
        self.shared.wake.notify_one();
    }

    /// Hands queued messages to rumqttc, oldest first, while connected and the window
    /// has room. Never waits inside: a full channel waits for the next wake-up.
    async fn send(&self) {
        loop {
            self.shared.wake.notified().await;
            let mut link = self.link.borrow_mut();
            if !link.connected {
                continue;
            }
            let q = lock(&self.shared.queue);
            for item in q.items.range(q.index_from(link.next)..) {
                if link.outstanding() >= WINDOW {
                    break;
                }
                let m = &item.message;
                if self
                    .client
                    .try_publish(m.topic.as_str(), self.qos, m.retain, m.payload.clone())
                    .is_err()
                {
                    break;
                }
                link.handed.push_back(Some(item.seq));
                link.next = item.seq + 1;
            }
        }
    }

    /// Waits for stop; then, if connected, delivers what is left (for at most
    /// [`DRAIN`]) and disconnects cleanly. Not connected: returns at once.
    async fn close(&self) {
        while !self.shared.closing.load(Ordering::SeqCst) {
            self.shared.close.notified().await;
        }
        if !self.link.borrow().connected {
            return;
        }
        let drain = async {
            loop {
                let idle = self.link.borrow().outstanding() == 0
                    && lock(&self.shared.queue).items.is_empty();
                if idle {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            // `poll` returns once the disconnect is out.
            if self.client.try_disconnect().is_ok() {
                std::future::pending::<()>().await;
            }
        };
        let _ = tokio::time::timeout(DRAIN, drain).await;
    }
}
