//! What tracking costs per frame: ByteTrack vs the greedy IoU baseline with 10 and 100
//! objects in a 640x512 frame, alone and with the zone/line analytics `thermaltrack`
//! runs after it. A 30 fps stream has 33 ms per frame for everything.
//! Run: `cargo bench --bench track`; criterion's throughput is frames per second.
//!
//! The detections are a fixed, seeded script of 300 frames: objects walk straight
//! across the frame in every direction (so they cross), their boxes jitter by a pixel
//! or two, one detection in ten is missed and one in ten scores low (ByteTrack's second
//! stage), and a few false positives appear per frame.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use thermalzsq::detect::Detection;
use thermalzsq::synth::rng::Rng;
use thermalzsq::track::{Analytics, Method, Tracker, TrackerConfig, Zones};

const WIDTH: f32 = 640.0;
const HEIGHT: f32 = 512.0;
const FRAMES: usize = 300;

/// Four zones (frame quarters, one for people only) and four lines (two per axis).
const ZONES: &str = r#"{
  "zones": [
    {"name": "nw", "polygon": [[0,0],[320,0],[320,256],[0,256]]},
    {"name": "ne", "polygon": [[320,0],[640,0],[640,256],[320,256]], "labels": ["person"]},
    {"name": "sw", "polygon": [[0,256],[320,256],[320,512],[0,512]]},
    {"name": "gate", "polygon": [[400,300],[600,280],[620,500],[380,480]]}
  ],
  "lines": [
    {"name": "v1", "points": [[213,0],[213,512]]},
    {"name": "v2", "points": [[426,512],[426,0]]},
    {"name": "h1", "points": [[0,170],[640,170]]},
    {"name": "h2", "points": [[640,340],[0,340]]}
  ]
}"#;

/// One object of the script: a box size, a start and a velocity in pixels per frame.
struct Walker {
    class_id: usize,
    size: [f32; 2],
    start: [f32; 2],
    velocity: [f32; 2],
}

/// The detections of every frame for `objects` objects.
fn script(objects: usize, seed: u64) -> Vec<Vec<Detection>> {
    let mut rng = Rng::new(seed);
    let labels = ["person", "car", "bicycle"];
    let walkers: Vec<Walker> = (0..objects)
        .map(|_| {
            let class_id = rng.below(3);
            let height = rng.range(20.0, 90.0);
            let aspect = [0.4, 2.0, 1.4][class_id];
            let speed = rng.range(0.5, 4.0);
            let heading = rng.range(0.0, std::f32::consts::TAU);
            Walker {
                class_id,
                size: [height * aspect, height],
                start: [rng.range(0.0, WIDTH), rng.range(0.0, HEIGHT)],
                velocity: [speed * heading.cos(), speed * heading.sin()],
            }
        })
        .collect();
    (0..FRAMES)
        .map(|f| {
            let mut dets = Vec::new();
            for w in &walkers {
                if rng.chance(0.1) {
                    continue;
                }
                // Wrap around the frame so every object stays in view.
                let cx = (w.start[0] + w.velocity[0] * f as f32).rem_euclid(WIDTH);
                let cy = (w.start[1] + w.velocity[1] * f as f32).rem_euclid(HEIGHT);
                let jitter = |rng: &mut Rng| rng.gauss() * 1.5;
                let (hw, hh) = (w.size[0] / 2.0, w.size[1] / 2.0);
                dets.push(Detection {
                    class_id: w.class_id,
                    label: labels[w.class_id].into(),
                    confidence: if rng.chance(0.1) {
                        rng.range(0.1, 0.5)
                    } else {
                        rng.range(0.5, 0.95)
                    },
                    bbox: [
                        cx - hw + jitter(&mut rng),
                        cy - hh + jitter(&mut rng),
                        cx + hw + jitter(&mut rng),
                        cy + hh + jitter(&mut rng),
                    ],
                    temperature: None,
                });
            }
            for _ in 0..rng.below(4) {
                let (x, y) = (rng.range(0.0, WIDTH - 30.0), rng.range(0.0, HEIGHT - 60.0));
                dets.push(Detection {
                    class_id: 0,
                    label: "person".into(),
                    confidence: rng.range(0.1, 0.7),
                    bbox: [x, y, x + 25.0, y + 60.0],
                    temperature: None,
                });
            }
            dets
        })
        .collect()
}

/// Runs the whole script through a fresh tracker (and analytics); returns a checksum
/// so the work cannot be optimised away.
fn run(frames: &[Vec<Detection>], method: Method, zones: Option<&Zones>) -> usize {
    let mut tracker = Tracker::new(TrackerConfig {
        method,
        ..TrackerConfig::default()
    });
    let mut analytics = zones.map(|z| Analytics::new(z.clone(), 5.0));
    let mut events = 0;
    for (i, dets) in frames.iter().enumerate() {
        let update = tracker.update(dets);
        if let Some(a) = &mut analytics {
            events += a.update(&tracker, &update, i as f64 / 30.0).events.len();
        }
    }
    tracker.tracks().len() + events
}

fn bench(c: &mut Criterion) {
    let zones = Zones::from_json(ZONES).expect("the bench's zones parse");
    let mut group = c.benchmark_group("track 640x512 (throughput = frames)");
    group.throughput(Throughput::Elements(FRAMES as u64));
    for objects in [10, 100] {
        let frames = script(objects, 7);
        for (name, method, analytics) in [
            ("bytetrack", Method::ByteTrack, false),
            ("iou", Method::Iou, false),
            ("bytetrack+analytics", Method::ByteTrack, true),
            ("iou+analytics", Method::Iou, true),
        ] {
            let zones = analytics.then_some(&zones);
            group.bench_with_input(BenchmarkId::new(name, objects), &frames, |b, frames| {
                b.iter(|| run(frames, method, zones))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
