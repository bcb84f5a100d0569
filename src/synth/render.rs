//! Rendering a world at a moment: background, ground decals, objects far to near, then
//! labels from what stayed visible, and the camera's optics and noise.

use super::bicycle::{self, METRES_PER_CRANK_TURN};
use super::camera::{Camera, P3};
use super::canvas::Canvas;
use super::car;
use super::labels::{self, Label, NO_OWNER, Slot};
use super::model3d::Builder;
use super::person::{self, Pose};
use super::radiometry::{self, RadiometryModel};
use super::raster::{Shape, Sprite};
use super::rng::Rng;
use super::world::{Actor, Body, World};

/// What one rendered moment holds before the sensor: the canvas, the thermal image
/// the lens forms of it, and the labels.
pub struct Rendered {
    pub canvas: Canvas,
    /// Kelvin through the optics (blurred): what reaches the sensor, before its noise.
    pub optics: Vec<f32>,
    pub labels: Vec<Label>,
}

/// The static background of a world (reused across the frames of a recording).
pub fn background(world: &World) -> Canvas {
    let mut canvas = Canvas::new(world.camera.width as usize, world.camera.height as usize);
    super::background::paint(world, &mut canvas);
    canvas
}

/// Renders the actors of `world` at time `t` over a copy of `background`.
pub fn render(world: &World, background: &Canvas, t: f32) -> Rendered {
    let mut canvas = background.clone();
    let cam = &world.camera;
    let placed: Vec<(usize, f32, f32)> = world
        .actors
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let (x, z) = a.position(t);
            (i, x, z)
        })
        .filter(|&(_, _, z)| z > 1.0)
        .collect();
    for &(i, x, z) in &placed {
        if let Body::Car(c) = &world.actors[i].body {
            shadow(
                cam,
                &mut canvas,
                x,
                z,
                world.actors[i].yaw,
                (c.width / 2.0 + 0.15, c.length / 2.0),
                c.shadow_dk,
            );
        }
    }
    let mut order = placed;
    order.sort_by(|a, b| (b.1 * b.1 + b.2 * b.2).total_cmp(&(a.1 * a.1 + a.2 * a.2)));
    let mut slots: Vec<Slot> = Vec::new();
    for (i, x, z) in order {
        let actor = &world.actors[i];
        let paints = {
            let mut b = Builder::new(cam, x, z, actor.yaw);
            b.part = 1;
            draw_actor(&mut b, world, actor, t);
            b.paints()
        };
        let Some(mut sprite) = Sprite::draw(&paints, canvas.width, canvas.height) else {
            continue;
        };
        through_the_air(world, &mut sprite, x, z);
        let base = slots.len();
        for (k, class) in actor.labels().iter().enumerate() {
            let part = k as u8 + 1;
            slots.push(Slot {
                class: *class,
                track: i as u32 * 4 + part as u32,
                full_area: sprite.area_of(part),
            });
        }
        let labelled = actor.labels().len() as u8;
        canvas.composite(&sprite, |p| {
            if p >= 1 && p <= labelled {
                (base + p as usize - 1) as u16
            } else {
                NO_OWNER
            }
        });
    }
    // Objects' temperatures are read through the lens: no camera resolves a feature
    // smaller than its blur (a thermometer's spot size), so the truth a reading is
    // judged against is the image the optics form, before the sensor's noise.
    let optics = optics(world, &canvas);
    let labels = labels::extract(&canvas.owner, &optics, canvas.width, &slots);
    Rendered {
        canvas,
        optics,
        labels,
    }
}

/// The air between the camera and an object standing at `(x, z)` (LWIR; nothing in the
/// legacy radiometry). The sprite holds radiance premultiplied by coverage.
fn through_the_air(world: &World, sprite: &mut Sprite, x: f32, z: f32) {
    if world.climate.radiometry == RadiometryModel::Legacy {
        return;
    }
    let above = world.camera.mount - 1.0;
    let range = (x * x + above * above + z * z).sqrt();
    for (k, &a) in sprite.kelvin.iter_mut().zip(&sprite.alpha) {
        if a > 0.0 {
            *k = world.climate.path(*k / a, range) * a;
        }
    }
}

/// The image the lens forms: the canvas blurred. A lens spreads radiance, not
/// temperature, so the LWIR radiometry blurs band radiance (a hot exhaust pipe then
/// brightens its neighbours more than a linear mix of kelvins would).
fn optics(world: &World, canvas: &Canvas) -> Vec<f32> {
    let (w, h, sigma) = (canvas.width, canvas.height, world.sensor.blur);
    match world.climate.radiometry {
        RadiometryModel::Legacy => gaussian_blur(&canvas.kelvin, w, h, sigma),
        RadiometryModel::Lwir => {
            let radiance: Vec<f32> = canvas
                .kelvin
                .iter()
                .map(|&k| radiometry::radiance(k))
                .collect();
            let mut out = gaussian_blur(&radiance, w, h, sigma);
            out.iter_mut()
                .for_each(|l| *l = radiometry::temperature(*l));
            out
        }
    }
}

/// Ground under a car: cooler shade by day, a warm patch at night.
fn shadow(cam: &Camera, canvas: &mut Canvas, x: f32, z: f32, yaw: f32, half: (f32, f32), dk: f32) {
    let b = Builder::new(cam, x, z, yaw);
    let (hx, hz) = (half.0, half.1);
    let pts: Vec<(f32, f32)> = [(-hx, -hz), (hx, -hz), (hx, hz), (-hx, hz)]
        .iter()
        .map(|&(px, pz)| b.world(P3::new(px, 0.0, pz)))
        .filter(|p| p.z > 0.5)
        .map(|p| cam.project(p))
        .collect();
    if pts.len() == 4 {
        canvas.tint(&Shape::Polygon(pts), dk, 0.45);
    }
}

fn draw_actor(b: &mut Builder, world: &World, actor: &Actor, t: f32) {
    let climate = &world.climate;
    let (sin, cos) = actor.yaw.sin_cos();
    // RGB light of an object-frame normal.
    let shading =
        |n: P3| climate.lambert(P3::new(n.x * cos + n.z * sin, n.y, -n.x * sin + n.z * cos));
    let travelled = actor.speed * t;
    match &actor.body {
        Body::Person { look, walking } => {
            let pose = if *walking {
                let stride = 1.45 * look.height / 1.75;
                Pose::Walk {
                    phase: actor.phase + travelled / stride * std::f32::consts::TAU,
                    amplitude: 0.38,
                }
            } else {
                Pose::Stand
            };
            person::draw(b, &look.lit(climate.light), pose);
        }
        Body::Car(c) => car::draw(b, c, |n| shading(n) * climate.light),
        Body::Bicycle { bike, rider } => {
            let crank = actor.phase + travelled / METRES_PER_CRANK_TURN * std::f32::consts::TAU;
            let rider = rider.as_ref().map(|l| l.lit(climate.light));
            bicycle::draw(
                b,
                &bike.lit(climate.light),
                crank,
                rider.as_ref().map(|l| (l, 2)),
            );
        }
        Body::Clutter(c) => {
            b.part = 0;
            c.draw(b, &|n| shading(n) * climate.light);
        }
    }
}

/// Thermal sensor on the image the optics formed ([`Rendered::optics`]): vignetting,
/// column/row fixed-pattern noise, temporal noise, then centikelvin counts.
pub fn thermal_counts(world: &World, rendered: &Rendered, noise: &mut Rng) -> Vec<u16> {
    let (w, h) = (rendered.canvas.width, rendered.canvas.height);
    let s = &world.sensor;
    let blurred = &rendered.optics;
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let norm = 1.0 / (cx * cx + cy * cy);
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        let dy = y as f32 + 0.5 - cy;
        for x in 0..w {
            let dx = x as f32 + 0.5 - cx;
            let k = blurred[y * w + x]
                + s.vignette * (dx * dx + dy * dy) * norm
                + s.columns[x]
                + s.rows[y]
                + s.netd * noise.gauss();
            out.push((k * 100.0).round().clamp(0.0, 65535.0) as u16);
        }
    }
    out
}

/// RGB camera: light noise, 8 bits per channel.
pub fn rgb_bytes(world: &World, canvas: &Canvas, noise: &mut Rng) -> Vec<u8> {
    let sigma = world.sensor.rgb_noise;
    let mut out = Vec::with_capacity(canvas.rgb.len() * 3);
    for px in &canvas.rgb {
        let n = noise.gauss() * sigma;
        for c in px {
            out.push(((c + n).clamp(0.0, 1.0) * 255.0).round() as u8);
        }
    }
    out
}

/// Separable Gaussian blur with clamped edges.
fn gaussian_blur(src: &[f32], w: usize, h: usize, sigma: f32) -> Vec<f32> {
    let r = (sigma * 2.5).ceil() as isize;
    let kernel: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let sum: f32 = kernel.iter().sum();
    let kernel: Vec<f32> = kernel.iter().map(|k| k / sum).collect();
    let mut tmp = vec![0.0f32; w * h];
    for y in 0..h {
        let row = &src[y * w..(y + 1) * w];
        for x in 0..w {
            let mut acc = 0.0;
            for (j, k) in kernel.iter().enumerate() {
                let xi = (x as isize + j as isize - r).clamp(0, w as isize - 1) as usize;
                acc += row[xi] * k;
            }
            tmp[y * w + x] = acc;
        }
    }
    let mut out = vec![0.0f32; w * h];
    for y in 0..h {
        for (j, k) in kernel.iter().enumerate() {
            let yi = (y as isize + j as isize - r).clamp(0, h as isize - 1) as usize;
            let (src_row, dst_row) = (&tmp[yi * w..(yi + 1) * w], &mut out[y * w..(y + 1) * w]);
            for (d, s) in dst_row.iter_mut().zip(src_row) {
                *d += s * k;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::gaussian_blur;

    #[test]
    fn blur_preserves_flat_fields_and_mass() {
        let flat = vec![300.0f32; 20 * 10];
        assert!(
            gaussian_blur(&flat, 20, 10, 1.0)
                .iter()
                .all(|v| (v - 300.0).abs() < 1e-3)
        );
        let mut spot = vec![0.0f32; 21 * 21];
        spot[10 * 21 + 10] = 1.0;
        let out = gaussian_blur(&spot, 21, 21, 1.2);
        assert!((out.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        assert!(out[10 * 21 + 10] < 0.5);
    }
}
