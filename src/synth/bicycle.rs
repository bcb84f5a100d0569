//! Bicycles: two tyre rings, a diamond frame, fork, handlebar, saddle and cranks, all
//! thin tubes near ambient temperature (metal shows a little cold sky), optionally with
//! a rider in a pedalling pose.

use super::camera::P3;
use super::climate::Climate;
use super::material::Mat;
use super::model3d::Builder;
use super::person::{self, PersonLook, Pose};
use super::rng::Rng;

#[derive(Debug, Clone, Copy)]
pub struct BikeModel {
    wheel_r: f32,
    wheelbase: f32,
    frame: Mat,
    tyre: Mat,
    saddle: Mat,
    /// Rider lean from vertical, radians.
    lean: f32,
}

const FRAME_COLOURS: [[f32; 3]; 7] = [
    [0.1, 0.1, 0.1],
    [0.8, 0.1, 0.1],
    [0.1, 0.3, 0.7],
    [0.85, 0.85, 0.85],
    [0.2, 0.5, 0.25],
    [0.6, 0.6, 0.62],
    [0.9, 0.6, 0.1],
];

/// Pedal-to-pedal distance over the ground per crank turn (gearing), metres.
pub const METRES_PER_CRANK_TURN: f32 = 4.5;

impl BikeModel {
    pub fn sample(rng: &mut Rng, climate: &Climate, ridden: bool) -> BikeModel {
        let rgb = *rng.pick(&FRAME_COLOURS);
        let metal = climate.reflective(rng.range(0.05, 0.35)) + climate.sun * rng.range(1.0, 5.0);
        let tyre_k = climate.ambient
            + if ridden {
                rng.range(1.0, 4.0)
            } else {
                climate.sun * 3.0
            };
        BikeModel {
            wheel_r: rng.range(0.31, 0.36),
            wheelbase: rng.range(0.98, 1.1),
            frame: Mat::new(metal, rgb),
            tyre: Mat::new(tyre_k, [0.05, 0.05, 0.05]),
            saddle: Mat::new(
                climate.ambient + if ridden { rng.range(2.0, 5.0) } else { 0.5 },
                [0.1, 0.08, 0.07],
            ),
            lean: rng.range(0.25, 0.7),
        }
    }
}

impl BikeModel {
    /// The same bicycle under RGB exposure `light`.
    pub fn lit(&self, light: f32) -> BikeModel {
        BikeModel {
            frame: self.frame.shade(light),
            tyre: self.tyre.shade(light),
            saddle: self.saddle.shade(light),
            ..*self
        }
    }
}

/// Draws a bicycle (current part of `b`) and, if given, its rider as part `rider_part`.
pub fn draw(b: &mut Builder, bike: &BikeModel, crank: f32, rider: Option<(&PersonLook, u8)>) {
    let start = b.len();
    let r = bike.wheel_r;
    let hb = bike.wheelbase / 2.0;
    let s = r / 0.34;
    let rear = P3::new(0.0, r, -hb);
    let front = P3::new(0.0, r, hb);
    let bb = P3::new(0.0, 0.29 * s, -0.07);
    let seat = P3::new(0.0, 0.82 * s, -0.26);
    let saddle = P3::new(0.0, 0.93 * s, -0.3);
    let head_top = P3::new(0.0, 0.88 * s, hb - 0.17);
    let head_bot = P3::new(0.0, 0.7 * s, hb - 0.13);
    let bar = P3::new(0.0, 0.98 * s, hb - 0.22);
    let tube = 0.022;
    let f = bike.frame;
    for (a, c) in [
        (bb, seat),
        (seat, head_top),
        (bb, head_bot),
        (head_bot, head_top),
        (head_top, bar),
    ] {
        b.tube(a, c, tube, f);
    }
    for dx in [-0.04, 0.04] {
        let off = P3::new(dx, 0.0, 0.0);
        b.tube(bb.add(off), rear.add(off), tube * 0.8, f);
        b.tube(seat.add(off), rear.add(off), tube * 0.8, f);
        b.tube(head_bot.add(off), front.add(off), tube * 0.9, f);
    }
    b.tube(seat, saddle, tube, f);
    b.tube(
        P3::new(-0.24, bar.y, bar.z),
        P3::new(0.24, bar.y, bar.z),
        tube,
        f,
    );
    b.tube(
        saddle.add(P3::new(0.0, 0.0, -0.09)),
        saddle.add(P3::new(0.0, 0.01, 0.1)),
        0.035,
        bike.saddle,
    );
    // Tyres: rings of short tubes.
    const SEGMENTS: usize = 20;
    for hub in [rear, front] {
        let ring: Vec<P3> = (0..SEGMENTS)
            .map(|i| {
                let a = i as f32 * std::f32::consts::TAU / SEGMENTS as f32;
                P3::new(0.0, hub.y + r * a.sin(), hub.z + r * a.cos())
            })
            .collect();
        for i in 0..SEGMENTS {
            b.tube(ring[i], ring[(i + 1) % SEGMENTS], 0.032, bike.tyre);
        }
        b.ball(hub, 0.04, f);
    }
    let pedals = [0.0, std::f32::consts::PI].map(|o| {
        let a = crank + o;
        let x = if o == 0.0 { -0.1 } else { 0.1 };
        P3::new(x, bb.y - 0.17 * a.cos(), bb.z + 0.17 * a.sin())
    });
    for p in pedals {
        b.tube(P3::new(p.x * 0.6, bb.y, bb.z), p, 0.015, f);
    }
    if let Some((look, part)) = rider {
        let own = b.part;
        b.part = part;
        let pose = Pose::Ride {
            saddle,
            bar,
            pedals,
            lean: bike.lean,
        };
        person::draw(b, look, pose);
        b.part = own;
    }
    b.sort_by_depth(start);
}
