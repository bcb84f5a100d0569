//! `zsq synth`: determinism, label sanity, the AGC view, the RGB twin and recordings.

use std::path::{Path, PathBuf};

use thermalzsq::eval::CocoGt;
use thermalzsq::imaging::agc::{Agc, agc_view, percentile_stretch};
use thermalzsq::synth::{
    Class, DatasetSpec, RadiometryModel, Recording, RecordingFormat, Scene, write_dataset,
};

const W: u32 = 640;
const H: u32 = 512;

/// A fresh directory under the system temp dir, unique per test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("thermalzsq-synth-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn read_png(path: &Path) -> (png::OutputInfo, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info, buf)
}

/// Every file of a directory tree with its bytes, sorted by path.
fn tree_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

fn spec(out: PathBuf, seed: u64) -> DatasetSpec {
    DatasetSpec {
        out,
        scenes: 3,
        seed,
        width: 160,
        height: 128,
        recording: 4,
        recording_format: RecordingFormat::Gray16Le,
        radiometry: Default::default(),
        agc: Default::default(),
    }
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let (a, b, c) = (scratch("det-a"), scratch("det-b"), scratch("det-c"));
    write_dataset(&spec(a.clone(), 11)).unwrap();
    write_dataset(&spec(b.clone(), 11)).unwrap();
    write_dataset(&spec(c.clone(), 12)).unwrap();
    let (ta, tb, tc) = (tree_bytes(&a), tree_bytes(&b), tree_bytes(&c));
    let names: Vec<_> = ta
        .iter()
        .map(|(p, _)| p.to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3 * 3 + 4, "{names:?}");
    assert!(names.contains(&"thermal16/000002.png".to_string()));
    assert!(names.contains(&"recording.gray16le".to_string()));
    assert!(names.contains(&"gt.txt".to_string()), "MOT identities");
    assert_eq!(ta, tb, "same seed must give the same bytes");
    for ((name, x), (_, y)) in ta.iter().zip(&tc) {
        if name
            .extension()
            .is_some_and(|e| e == "png" || e == "gray16le")
        {
            assert_ne!(x, y, "{} did not change with the seed", name.display());
        }
    }
    for d in [a, b, c] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn scenes_are_independent_of_generation_order() {
    let later = Scene::generate(3, 5, 200, 160).unwrap();
    let _ = Scene::generate(3, 4, 200, 160).unwrap();
    let again = Scene::generate(3, 5, 200, 160).unwrap();
    assert_eq!(later.thermal, again.thermal);
    assert_eq!(later.labels, again.labels);
    assert_ne!(
        later.thermal,
        Scene::generate(3, 6, 200, 160).unwrap().thermal
    );
}

/// Median of the frame in a ring `margin` pixels wide around a box.
fn ring_median(frame: &[u16], b: [f32; 4], margin: i64) -> f32 {
    let (x0, y0) = (b[0] as i64, b[1] as i64);
    let (x1, y1) = (x0 + b[2] as i64, y0 + b[3] as i64);
    let mut v = Vec::new();
    for y in (y0 - margin).max(0)..(y1 + margin).min(H as i64) {
        for x in (x0 - margin).max(0)..(x1 + margin).min(W as i64) {
            if x < x0 || x >= x1 || y < y0 || y >= y1 {
                v.push(frame[(y * W as i64 + x) as usize]);
            }
        }
    }
    v.sort_unstable();
    v[v.len() / 2] as f32
}

fn box_max(frame: &[u16], b: [f32; 4]) -> f32 {
    let mut m = 0;
    for y in b[1] as usize..(b[1] + b[3]) as usize {
        for x in b[0] as usize..(b[0] + b[2]) as usize {
            m = m.max(frame[y * W as usize + x]);
        }
    }
    m as f32
}

#[test]
fn labels_are_sane_and_people_are_warm() {
    let (mut warm, mut people) = (0, 0);
    let mut per_class = [0usize; 3];
    let (mut smallest, mut largest) = (f32::MAX, 0.0f32);
    let mut counts = Vec::new();
    for i in 0..24 {
        let s = Scene::generate(2024, i, W, H).unwrap();
        assert_eq!(s.thermal.len(), (W * H) as usize);
        assert_eq!(s.rgb.len(), (W * H * 3) as usize);
        counts.push(s.labels.len());
        // Plausible radiometry: centikelvin of a street between -60 °C and +120 °C.
        assert!(
            s.thermal.iter().all(|&v| (21_300..39_300).contains(&v)),
            "scene {i}: implausible temperature"
        );
        for l in &s.labels {
            let [x, y, w, h] = l.bbox;
            assert!(w > 0.0 && h > 0.0, "scene {i}: empty box {l:?}");
            assert!(
                x >= 0.0 && y >= 0.0 && x + w <= W as f32 && y + h <= H as f32,
                "scene {i}: box outside {l:?}"
            );
            assert!(l.visible >= 0.4 && l.visible <= 1.0, "{l:?}");
            per_class[Class::ALL.iter().position(|c| *c == l.class).unwrap()] += 1;
            (smallest, largest) = (smallest.min(h), largest.max(h));
            if l.class == Class::Person && h >= 16.0 {
                people += 1;
                // Skin and clothes are warmer than what the person stands in front of.
                if box_max(&s.thermal, l.bbox) > ring_median(&s.thermal, l.bbox, 6) + 100.0 {
                    warm += 1;
                }
            }
        }
    }
    assert!(
        per_class.iter().all(|&n| n >= 5),
        "every class appears: {per_class:?}"
    );
    assert!(
        people >= 10 && warm as f32 >= 0.85 * people as f32,
        "{warm} of {people} people warmer than their surroundings"
    );
    assert!(
        smallest <= 20.0 && largest >= 100.0,
        "sizes from small to large: {smallest}..{largest}"
    );
    assert!(
        counts.iter().min() != counts.iter().max(),
        "object counts vary: {counts:?}"
    );
    // At most 12 objects, a cyclist being two labels.
    assert!(*counts.iter().max().unwrap() <= 24, "{counts:?}");
}

#[test]
fn written_views_match_the_frame_and_each_other() {
    let dir = scratch("views");
    let spec = DatasetSpec {
        out: dir.clone(),
        scenes: 2,
        seed: 99,
        width: W,
        height: H,
        recording: 0,
        recording_format: RecordingFormat::Gray16Le,
        radiometry: Default::default(),
        agc: Default::default(),
    };
    let summary = write_dataset(&spec).unwrap();
    assert_eq!(summary.scenes, 2);
    for i in 0..2u64 {
        let name = format!("{i:06}.png");
        let (i16, raw16) = read_png(&dir.join("thermal16").join(&name));
        assert_eq!(
            (i16.width, i16.height, i16.bit_depth),
            (W, H, png::BitDepth::Sixteen)
        );
        assert_eq!(i16.color_type, png::ColorType::Grayscale);
        let counts: Vec<u16> = raw16
            .chunks_exact(2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .collect();
        assert_eq!(counts, Scene::generate(99, i, W, H).unwrap().thermal);
        let (i8, raw8) = read_png(&dir.join("thermal8").join(&name));
        assert_eq!(
            (i8.width, i8.height, i8.bit_depth, i8.color_type),
            (W, H, png::BitDepth::Eight, png::ColorType::Grayscale)
        );
        assert_eq!(
            raw8,
            percentile_stretch(&counts, 1.0, 99.0),
            "thermal8 is the AGC of thermal16"
        );
        let (irgb, rgb) = read_png(&dir.join("rgb").join(&name));
        assert_eq!(
            (irgb.width, irgb.height, irgb.color_type),
            (W, H, png::ColorType::Rgb)
        );
        assert_eq!(rgb.len(), (W * H * 3) as usize);
    }
    let coco = CocoGt::from_file(&dir.join("annotations.json")).unwrap();
    assert_eq!(
        coco.images
            .iter()
            .map(|i| (i.id, i.file_name.as_str()))
            .collect::<Vec<_>>(),
        vec![(0, "000000.png"), (1, "000001.png")]
    );
    let cats: Vec<_> = coco
        .categories
        .iter()
        .map(|c| (c.id, c.name.as_str()))
        .collect();
    assert_eq!(cats, vec![(1, "person"), (2, "car"), (3, "bicycle")]);
    for (k, a) in coco.annotations.iter().enumerate() {
        assert_eq!(a.id, k as i64 + 1);
        assert_eq!(a.iscrowd, 0);
        assert_eq!(a.area, Some(a.bbox[2] * a.bbox[3]));
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn recording_only_dataset() {
    let dir = scratch("recording");
    let frames = 6;
    let spec = DatasetSpec {
        out: dir.clone(),
        scenes: 0,
        seed: 4,
        width: 320,
        height: 256,
        recording: frames,
        recording_format: RecordingFormat::Gray16Le,
        radiometry: Default::default(),
        agc: Default::default(),
    };
    write_dataset(&spec).unwrap();
    assert!(!dir.join("thermal16").exists() && !dir.join("annotations.json").exists());
    let raw = std::fs::read(dir.join("recording.gray16le")).unwrap();
    assert_eq!(raw.len(), (frames * 320 * 256 * 2) as usize);
    let coco = CocoGt::from_file(&dir.join("recording.json")).unwrap();
    let images: Vec<_> = coco
        .images
        .iter()
        .map(|i| (i.id, i.file_name.clone()))
        .collect();
    assert_eq!(
        images,
        (0..frames as i64)
            .map(|i| (i, format!("frame_{i:06}")))
            .collect::<Vec<_>>()
    );
    // The raw frames are the recording's frames, little-endian.
    let rec = Recording::new(4, 320, 256).unwrap();
    let last = rec.frame(frames - 1);
    let off = ((frames - 1) * 320 * 256 * 2) as usize;
    let from_file: Vec<u16> = raw[off..]
        .chunks_exact(2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .collect();
    assert_eq!(from_file, last.thermal);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn recorded_objects_move_smoothly() {
    let rec = Recording::new(21, W, H).unwrap();
    let frames: Vec<_> = (0..30).map(|i| rec.frame(i)).collect();
    let centre = |b: [f32; 4]| (b[0] + b[2] / 2.0, b[1] + b[3] / 2.0);
    let mut moved = 0;
    for l in &frames[0].labels {
        // Follow the object while it stays labelled.
        let mut prev = centre(l.bbox);
        let mut total = 0.0f32;
        for f in &frames[1..] {
            let Some(m) = f.labels.iter().find(|m| m.track == l.track) else {
                break;
            };
            let c = centre(m.bbox);
            let step = ((c.0 - prev.0).powi(2) + (c.1 - prev.1).powi(2)).sqrt();
            assert!(
                step < 0.1 * W as f32 + m.bbox[2].max(m.bbox[3]) * 0.5,
                "track {} jumps {step} px",
                l.track
            );
            total += step;
            prev = c;
        }
        if total > 3.0 {
            moved += 1;
        }
    }
    assert!(
        moved >= 2,
        "at least two objects move over one second, {moved} did"
    );
}

#[test]
fn bad_requests_are_errors() {
    assert!(Scene::generate(1, 0, 8, 8).is_err());
    assert!(Recording::new(1, 100_000, 10).is_err());
    let file = scratch("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = write_dataset(&DatasetSpec {
        out: file.join("sub"),
        scenes: 1,
        seed: 1,
        width: 64,
        height: 64,
        recording: 0,
        recording_format: RecordingFormat::Gray16Le,
        radiometry: Default::default(),
        agc: Default::default(),
    });
    assert!(err.is_err());
    let _ = std::fs::remove_file(file);
}

#[test]
fn recordings_in_camera_formats_hold_the_same_frames() {
    let (w, h, frames) = (64u32, 48u32, 3u32);
    let rec = Recording::new(5, w, h).unwrap();
    let write = |format: RecordingFormat| {
        let dir = scratch(&format!("rec-{format:?}"));
        write_dataset(&DatasetSpec {
            out: dir.clone(),
            scenes: 0,
            seed: 5,
            width: w,
            height: h,
            recording: frames,
            recording_format: format,
            radiometry: Default::default(),
            agc: Default::default(),
        })
        .unwrap();
        dir
    };
    let n = (w * h) as usize;

    let dir = write(RecordingFormat::Gray8);
    let raw = std::fs::read(dir.join("recording.gray8")).unwrap();
    assert_eq!(raw.len(), frames as usize * n);
    let agc = percentile_stretch(&rec.frame(2).thermal, 1.0, 99.0);
    assert_eq!(&raw[2 * n..], agc.as_slice(), "the AGC view of frame 2");

    let dir = write(RecordingFormat::Yuy2P2Pro);
    let raw = std::fs::read(dir.join("recording.yuy2")).unwrap();
    assert_eq!(
        raw.len(),
        frames as usize * 2 * n * 2,
        "YUY2, twice the height"
    );
    let frame0 = &raw[..4 * n];
    let f0 = rec.frame(0);
    assert_eq!(frame0[0], percentile_stretch(&f0.thermal, 1.0, 99.0)[0]);
    assert_eq!(frame0[1], 128, "neutral chroma");
    let counts = u16::from_le_bytes([frame0[2 * n], frame0[2 * n + 1]]);
    assert_eq!(
        counts as u32,
        (f0.thermal[0] as u32 * 64 + 50) / 100,
        "1/64 K below"
    );

    let dir = write(RecordingFormat::Png16);
    let coco = CocoGt::from_file(&dir.join("recording.json")).unwrap();
    assert_eq!(coco.images[1].file_name, "frame_000001.png");
    let (info, bytes) = read_png(&dir.join("recording").join("frame_000001.png"));
    assert_eq!((info.width, info.bit_depth), (w, png::BitDepth::Sixteen));
    let px: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .collect();
    assert_eq!(px, rec.frame(1).thermal);
    assert!("jpeg".parse::<RecordingFormat>().is_err());
}

#[test]
fn legacy_radiometry_is_the_default_and_lwir_changes_only_temperatures() {
    for i in 0..3 {
        let default = Scene::generate(8, i, 320, 256).unwrap();
        let legacy = Scene::generate_with(8, i, 320, 256, RadiometryModel::Legacy).unwrap();
        let lwir = Scene::generate_with(8, i, 320, 256, RadiometryModel::Lwir).unwrap();
        assert_eq!(
            default.thermal, legacy.thermal,
            "scene {i}: legacy is the default"
        );
        assert_ne!(legacy.thermal, lwir.thermal, "scene {i}");
        // Same draws: same layout, objects, RGB twin and boxes.
        assert_eq!(legacy.rgb, lwir.rgb);
        assert_eq!(legacy.night, lwir.night);
        let geometry = |s: &Scene| {
            s.labels
                .iter()
                .map(|l| (l.class, l.bbox, l.track))
                .collect::<Vec<_>>()
        };
        assert_eq!(geometry(&legacy), geometry(&lwir));
    }
    assert_eq!(
        "lwir".parse::<RadiometryModel>().unwrap(),
        RadiometryModel::Lwir
    );
    assert!("physical".parse::<RadiometryModel>().is_err());
}

/// Median over people at least 16 px tall of the mean of the hottest half of the box
/// minus the median of a 6-pixel ring around it, for night scenes of seed 2.
fn night_person_contrast(model: RadiometryModel, view: Option<Agc>) -> (f32, usize) {
    let mut contrasts = Vec::new();
    for i in 0..48 {
        let s = Scene::generate_with(2, i, W, H, model).unwrap();
        if !s.night {
            continue;
        }
        let frame: Vec<u16> = match &view {
            Some(agc) => agc_view(&s.thermal, agc)
                .iter()
                .map(|&v| v as u16)
                .collect(),
            None => s.thermal.clone(),
        };
        for l in s
            .labels
            .iter()
            .filter(|l| l.class == Class::Person && l.bbox[3] >= 16.0)
        {
            let [x, y, w, h] = l.bbox.map(|v| v as usize);
            let mut inside: Vec<u16> = (y..y + h)
                .flat_map(|r| frame[r * W as usize + x..r * W as usize + x + w].to_vec())
                .collect();
            inside.sort_unstable();
            let hot = &inside[inside.len() / 2..];
            let mean = hot.iter().map(|&v| v as f32).sum::<f32>() / hot.len() as f32;
            contrasts.push(mean - ring_median(&frame, l.bbox, 6));
        }
    }
    contrasts.sort_by(f32::total_cmp);
    (contrasts[contrasts.len() / 2], contrasts.len())
}

#[test]
fn lwir_people_stand_out_at_night_and_more_so_through_an_equalising_agc() {
    let (kelvin, people) = night_person_contrast(RadiometryModel::Lwir, None);
    assert!(people >= 30, "{people} people at night");
    // Clothing a few kelvin above the air, skin ~20-35 K above it, the ground cooled by
    // the sky: the median person is several kelvin warmer than what surrounds it.
    assert!(
        kelvin >= 400.0,
        "median night contrast {} K",
        kelvin / 100.0
    );
    let (linear, _) = night_person_contrast(RadiometryModel::Lwir, Some(Agc::default()));
    let (equalized, _) = night_person_contrast(RadiometryModel::Lwir, Some(Agc::Equalize));
    assert!(linear >= 40.0, "percentile AGC: {linear} grey levels");
    assert!(
        equalized >= 80.0 && equalized > linear + 30.0,
        "equalize: {equalized} grey levels (percentile {linear})"
    );
}

#[test]
fn written_lwir_views_use_the_asked_agc() {
    let dir = scratch("lwir-views");
    write_dataset(&DatasetSpec {
        out: dir.clone(),
        scenes: 2,
        seed: 31,
        width: 160,
        height: 128,
        recording: 2,
        recording_format: RecordingFormat::Gray8,
        radiometry: RadiometryModel::Lwir,
        agc: Agc::Equalize,
    })
    .unwrap();
    for i in 0..2u64 {
        let name = format!("{i:06}.png");
        let (_, raw16) = read_png(&dir.join("thermal16").join(&name));
        let counts: Vec<u16> = raw16
            .chunks_exact(2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .collect();
        let scene = Scene::generate_with(31, i, 160, 128, RadiometryModel::Lwir).unwrap();
        assert_eq!(counts, scene.thermal);
        let (_, raw8) = read_png(&dir.join("thermal8").join(&name));
        assert_eq!(raw8, agc_view(&counts, &Agc::Equalize));
    }
    let rec = Recording::with_radiometry(31, 160, 128, RadiometryModel::Lwir).unwrap();
    let raw = std::fs::read(dir.join("recording.gray8")).unwrap();
    assert_eq!(
        &raw[160 * 128..],
        agc_view(&rec.frame(1).thermal, &Agc::Equalize)
    );
    let _ = std::fs::remove_dir_all(dir);
}
