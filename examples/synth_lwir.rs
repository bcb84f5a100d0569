//! The LWIR radiometry of `zsq synth` beside the legacy one: a before/after figure and
//! person contrast numbers (docs/synth-eval.md, "LWIR radiometry").
//!
//! ```sh
//! cargo run --release --example synth_lwir -- figure docs/synth_before_after.png
//! cargo run --release --example synth_lwir -- contrast 200     # seed 2, scenes 0..200
//! ```

use thermalzsq::imaging::agc::{Agc, agc_view};
use thermalzsq::imaging::font;
use thermalzsq::synth::{Class, RadiometryModel, Scene, write_gray8_png};

const W: u32 = 640;
const H: u32 = 512;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("figure") => figure(args.get(1).map_or("synth_before_after.png", |s| s)),
        Some("contrast") => contrast(args.get(1).map_or(200, |n| n.parse().unwrap())),
        _ => eprintln!("usage: synth_lwir figure OUT.png | contrast N"),
    }
}

/// Person contrast of one labelled person: the mean of the hottest half of the box minus
/// the median of a 6-pixel ring around it, in the frame's own units.
fn person_contrast<T: Copy + Into<f64>>(frame: &[T], b: [f32; 4]) -> f64 {
    let (x0, y0) = (b[0] as i64, b[1] as i64);
    let (x1, y1) = (x0 + b[2] as i64, y0 + b[3] as i64);
    let (mut inside, mut ring) = (Vec::new(), Vec::new());
    let m = 6;
    for y in (y0 - m).max(0)..(y1 + m).min(H as i64) {
        for x in (x0 - m).max(0)..(x1 + m).min(W as i64) {
            let v: f64 = frame[(y * W as i64 + x) as usize].into();
            if x < x0 || x >= x1 || y < y0 || y >= y1 {
                ring.push(v);
            } else {
                inside.push(v);
            }
        }
    }
    inside.sort_by(f64::total_cmp);
    ring.sort_by(f64::total_cmp);
    let hot = &inside[inside.len() / 2..];
    hot.iter().sum::<f64>() / hot.len() as f64 - ring[ring.len() / 2]
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn contrast(scenes: u64) {
    println!(
        "people >= 16 px tall, seed 2, scenes 0..{scenes}: median contrast (mean of the hottest half of the box - median of a 6 px ring)"
    );
    println!(
        "| radiometry | AGC | night K | night levels | day K | day levels | people (night/day) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for model in [RadiometryModel::Legacy, RadiometryModel::Lwir] {
        // [night, day] x [kelvin, percentile levels, equalize levels]
        let mut c: [[Vec<f64>; 3]; 2] = Default::default();
        for i in 0..scenes {
            let s = Scene::generate_with(2, i, W, H, model).unwrap();
            let views = [
                agc_view(&s.thermal, &Agc::default()),
                agc_view(&s.thermal, &Agc::Equalize),
            ];
            let k: Vec<f64> = s.thermal.iter().map(|&v| v as f64 / 100.0).collect();
            for l in s
                .labels
                .iter()
                .filter(|l| l.class == Class::Person && l.bbox[3] >= 16.0)
            {
                let slot = &mut c[usize::from(!s.night)];
                slot[0].push(person_contrast(&k, l.bbox));
                slot[1].push(person_contrast(&views[0], l.bbox));
                slot[2].push(person_contrast(&views[1], l.bbox));
            }
        }
        for (agc, j) in [("percentile", 1), ("equalize", 2)] {
            println!(
                "| {model} | {agc} | {:.1} | {:.0} | {:.1} | {:.0} | {}/{} |",
                median(c[0][0].clone()),
                median(c[0][j].clone()),
                median(c[1][0].clone()),
                median(c[1][j].clone()),
                c[0][0].len(),
                c[1][0].len()
            );
        }
    }
}

/// Draws `text` at (x, y) into an 8-bit image `w` wide, white on a black box.
fn caption(img: &mut [u8], w: usize, x: usize, y: usize, text: &str) {
    let (cw, ch) = (font::WIDTH, font::HEIGHT);
    for yy in y..y + ch + 4 {
        for xx in x..(x + text.len() * cw + 4).min(w) {
            img[yy * w + xx] = 0;
        }
    }
    for (k, c) in text.chars().enumerate() {
        for (row, bits) in font::glyph(c).iter().enumerate() {
            for col in 0..font::WIDTH {
                if bits & (1 << (font::WIDTH - 1 - col)) != 0 {
                    let (px, py) = (x + 2 + k * cw + col, y + 2 + row);
                    if px < w {
                        img[py * w + px] = 255;
                    }
                }
            }
        }
    }
}

/// Three columns (legacy + percentile AGC, LWIR + percentile, LWIR + equalize) of three
/// scenes of seed 2 (two at night, one by day, each with people at least 50 px tall),
/// each frame at half size.
fn figure(out: &str) {
    // Scenes with at least two people 50 px tall or more: two at night, one by day.
    let big_people = |night: bool| {
        (0..).filter(move |&i| {
            let s = Scene::generate(2, i, W, H).unwrap();
            let tall = s
                .labels
                .iter()
                .filter(|l| l.class == Class::Person && l.bbox[3] >= 50.0);
            s.night == night && tall.count() >= 2
        })
    };
    let mut night = big_people(true);
    let rows = vec![
        night.next().unwrap(),
        night.next().unwrap(),
        big_people(false).next().unwrap(),
    ];
    let columns = [
        (
            RadiometryModel::Legacy,
            Agc::default(),
            "before: legacy, percentile",
        ),
        (RadiometryModel::Lwir, Agc::default(), "lwir, percentile"),
        (
            RadiometryModel::Lwir,
            Agc::Equalize,
            "after: lwir, equalize",
        ),
    ];
    let (tw, th) = (W as usize / 2, H as usize / 2);
    let (fw, fh) = (tw * columns.len(), th * rows.len());
    let mut img = vec![0u8; fw * fh];
    for (r, &index) in rows.iter().enumerate() {
        for (c, (model, agc, name)) in columns.iter().enumerate() {
            let s = Scene::generate_with(2, index, W, H, *model).unwrap();
            let view = agc_view(&s.thermal, agc);
            for y in 0..th {
                for x in 0..tw {
                    let at =
                        |dx: usize, dy: usize| view[(2 * y + dy) * W as usize + 2 * x + dx] as u32;
                    img[(r * th + y) * fw + c * tw + x] =
                        ((at(0, 0) + at(1, 0) + at(0, 1) + at(1, 1) + 2) / 4) as u8;
                }
            }
            let when = if s.night { "night" } else { "day" };
            caption(
                &mut img,
                fw,
                c * tw + 2,
                r * th + 2,
                &format!("{name} ({when} {index})"),
            );
        }
    }
    write_gray8_png(std::path::Path::new(out), fw as u32, fh as u32, &img).unwrap();
    println!("{out}: scenes {rows:?} of seed 2");
}
