//! Temperatures of detections on `zsq synth` recordings, which know each object's true
//! temperature (as the camera's lens resolves it): the bundled thermal detector runs
//! with each radiometric law, and the hottest temperature of every correctly detected
//! person is compared with the truth.

use std::path::Path;

use thermalzsq::detect::{Detection, Detector, DetectorConfig};
use thermalzsq::imaging::radiometry::Radiometry;
use thermalzsq::imaging::{Frame, PixelFormat};
use thermalzsq::synth::{Class, Label, Recording};

const W: u32 = 640;
const H: u32 = 512;
/// Recordings (seeds) and the frames read of each: people near and far, day and night.
const SEEDS: std::ops::RangeInclusive<u64> = 1..=6;
const FRAMES: std::ops::Range<u32> = 0..300;
const STEP: usize = 30;

fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
}

fn corners(l: &Label) -> [f32; 4] {
    let [x, y, w, h] = l.bbox;
    [x, y, x + w, y + h]
}

/// The labelled person a detection found (IoU >= 0.5, the best one).
fn person_found<'a>(d: &Detection, labels: &'a [Label]) -> Option<&'a Label> {
    labels
        .iter()
        .filter(|l| l.class == Class::Person)
        .map(|l| (iou(d.bbox, corners(l)), l))
        .filter(|(v, _)| *v >= 0.5)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, l)| l)
}

fn detector(radiometry: Radiometry) -> Detector {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/det_thermal_ft.onnx");
    let config = DetectorConfig {
        radiometry: Some(radiometry),
        ..Default::default()
    };
    Detector::load(&model, config).unwrap()
}

/// The people a detector finds in a 16-bit frame: (hottest reported, true hottest).
fn people(detector: &mut Detector, counts: &[u16], labels: &[Label]) -> Vec<(f32, f32)> {
    let bytes: Vec<u8> = counts.iter().flat_map(|v| v.to_le_bytes()).collect();
    let frame = Frame::new(
        PixelFormat::Gray16Le,
        W as usize,
        H as usize,
        vec![(&bytes[..], 2 * W as usize)],
    )
    .unwrap();
    detector
        .detect(&frame)
        .unwrap()
        .iter()
        .filter(|d| d.label == "person")
        .filter_map(|d| {
            let truth = person_found(d, labels)?;
            Some((
                d.temperature.expect("radiometric").max,
                truth.temperature.max,
            ))
        })
        .collect()
}

/// The same scene as cameras with other laws count it.
fn recount(centikelvin: &[u16], law: Radiometry) -> Vec<u16> {
    centikelvin
        .iter()
        .map(|&ck| match law {
            Radiometry::Centikelvin => ck,
            Radiometry::P2Pro => ((ck as u32 * 64 + 50) / 100) as u16,
            Radiometry::Linear { gain, offset } => {
                ((ck as f64 / 100.0 - offset) / gain).round() as u16
            }
        })
        .collect()
}

#[test]
fn detected_people_read_within_1_5_c_of_their_true_temperature_in_every_unit() {
    let laws = [
        Radiometry::Centikelvin,
        Radiometry::P2Pro,
        // A camera with its own law: K = 0.02 · count + 150.
        Radiometry::Linear {
            gain: 0.02,
            offset: 150.0,
        },
    ];
    let mut detectors: Vec<Detector> = laws.iter().map(|&law| detector(law)).collect();
    // Per law: people read, and read within 1.5 °C.
    let mut counts = [(0usize, 0usize); 3];
    for seed in SEEDS {
        let recording = Recording::new(seed, W, H).unwrap();
        for index in FRAMES.step_by(STEP) {
            let frame = recording.frame(index);
            for ((law, detector), (read, within)) in
                laws.iter().zip(&mut detectors).zip(&mut counts)
            {
                let found = people(detector, &recount(&frame.thermal, *law), &frame.labels);
                *read += found.len();
                *within += found
                    .iter()
                    .filter(|(got, truth)| (got - truth).abs() <= 1.5)
                    .count();
            }
        }
    }
    for (law, (read, within)) in laws.iter().zip(counts) {
        let share = within as f64 / read as f64;
        eprintln!(
            "{law:?}: {within} of {read} detected people within 1.5 °C ({:.1} %)",
            100.0 * share
        );
        assert!(read >= 40, "{law:?}: only {read} people detected");
        assert!(share >= 0.9, "{law:?}: {within} of {read} within 1.5 °C");
    }
}
