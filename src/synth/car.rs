//! Cars: a side profile extruded across the width (body, glass, lights) on four
//! cylindrical wheels; running cars carry a hot engine, tyres, brakes and exhaust.

use super::camera::P3;
use super::climate::Climate;
use super::material::Mat;
use super::model3d::Builder;
use super::radiometry::emissivity;
use super::rng::Rng;

/// Which band of the profile an edge belongs to (decides its material).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Band {
    Under,
    Front,
    Hood,
    Windshield,
    Roof,
    RearWindow,
    Trunk,
    Rear,
}

/// Shape and thermal/visual look of one car.
#[derive(Debug, Clone)]
pub struct CarModel {
    pub length: f32,
    pub width: f32,
    /// Closed side profile (z forward, y up), counter-clockwise, with the band of the
    /// edge leaving each vertex.
    profile: Vec<((f32, f32), Band)>,
    /// Side windows (z, y).
    windows: Vec<Vec<(f32, f32)>>,
    wheel_r: f32,
    wheelbase: f32,
    clearance: f32,
    belt: f32,
    body: Mat,
    hood: Mat,
    grille: Mat,
    glass: Mat,
    tyre: Mat,
    rim: Mat,
    head_light: Mat,
    tail_light: Mat,
    exhaust: Option<Mat>,
    /// Temperature change of the ground under the car (shadow or warm patch).
    pub shadow_dk: f32,
}

const PAINT: [[f32; 3]; 10] = [
    [0.92, 0.92, 0.92],
    [0.08, 0.08, 0.09],
    [0.65, 0.66, 0.68],
    [0.4, 0.4, 0.42],
    [0.7, 0.08, 0.08],
    [0.1, 0.2, 0.55],
    [0.05, 0.1, 0.25],
    [0.15, 0.35, 0.2],
    [0.78, 0.72, 0.58],
    [0.9, 0.75, 0.1],
];

impl CarModel {
    pub fn sample(rng: &mut Rng, climate: &Climate, running: bool) -> CarModel {
        let kind = rng.weighted(&[0.4, 0.25, 0.25, 0.1]);
        let (length, width, height, clearance) = match kind {
            0 => (
                rng.range(4.3, 4.9),
                rng.range(1.72, 1.85),
                rng.range(1.38, 1.48),
                rng.range(0.26, 0.32),
            ),
            1 => (
                rng.range(3.7, 4.3),
                rng.range(1.66, 1.8),
                rng.range(1.42, 1.55),
                rng.range(0.27, 0.33),
            ),
            2 => (
                rng.range(4.3, 4.9),
                rng.range(1.82, 1.95),
                rng.range(1.62, 1.8),
                rng.range(0.33, 0.42),
            ),
            _ => (
                rng.range(4.7, 5.2),
                rng.range(1.88, 2.0),
                rng.range(1.85, 2.1),
                rng.range(0.3, 0.36),
            ),
        };
        let h = length / 2.0;
        let belt = clearance + (height - clearance) * rng.range(0.52, 0.6);
        let c = clearance;
        let points: Vec<((f32, f32), Band)> = match kind {
            // Sedan: three boxes.
            0 => vec![
                ((-h + 0.12, c), Band::Under),
                ((h - 0.12, c), Band::Front),
                ((h, c + 0.1), Band::Front),
                ((h - 0.04, belt - 0.12), Band::Hood),
                ((h - 0.27 * length, belt + 0.03), Band::Windshield),
                ((h - 0.43 * length, height), Band::Roof),
                ((-h + 0.38 * length, height), Band::RearWindow),
                ((-h + 0.2 * length, belt + 0.02), Band::Trunk),
                ((-h + 0.03, belt - 0.04), Band::Rear),
                ((-h, c + 0.1), Band::Rear),
            ],
            // Hatchback and SUV: two boxes, steep tailgate.
            1 | 2 => vec![
                ((-h + 0.12, c), Band::Under),
                ((h - 0.12, c), Band::Front),
                ((h, c + 0.1), Band::Front),
                ((h - 0.05, belt - 0.1), Band::Hood),
                ((h - 0.25 * length, belt + 0.04), Band::Windshield),
                ((h - 0.42 * length, height), Band::Roof),
                ((-h + 0.1 * length, height), Band::RearWindow),
                ((-h + 0.02, belt + 0.06), Band::Rear),
                ((-h, c + 0.1), Band::Rear),
            ],
            // Van: long roof, short hood.
            _ => vec![
                ((-h + 0.1, c), Band::Under),
                ((h - 0.1, c), Band::Front),
                ((h, c + 0.1), Band::Front),
                ((h - 0.08, belt), Band::Hood),
                ((h - 0.17 * length, belt + 0.15), Band::Windshield),
                ((h - 0.3 * length, height), Band::Roof),
                ((-h + 0.03, height - 0.02), Band::RearWindow),
                ((-h, belt + 0.1), Band::Rear),
                ((-h, c + 0.1), Band::Rear),
            ],
        };
        // Side glass: inside the greenhouse, split by a B pillar.
        let top = height - 0.07;
        let front_base = points
            .iter()
            .find(|(_, b)| *b == Band::Windshield)
            .map_or(h - 0.3 * length, |p| p.0.0);
        let front_top = points
            .iter()
            .find(|(_, b)| *b == Band::Roof)
            .map_or(h - 0.45 * length, |p| p.0.0);
        let rear_top = points
            .iter()
            .find(|(_, b)| *b == Band::RearWindow)
            .map_or(-h + 0.3 * length, |p| p.0.0);
        let rear_base = if kind == 0 {
            -h + 0.22 * length
        } else {
            -h + 0.06 * length
        };
        let (z0, z1, z2, z3) = (
            rear_base + 0.1,
            rear_top + 0.05,
            front_top - 0.05,
            front_base - 0.12,
        );
        let base = belt + 0.06;
        let mid = 0.5 * (z1 + z2) + rng.range(-0.1, 0.1);
        let windows = vec![
            vec![(z0, base), (mid - 0.05, base), (mid - 0.05, top), (z1, top)],
            vec![(mid + 0.05, base), (z3, base), (z2, top), (mid + 0.05, top)],
        ];

        let rgb = *rng.pick(&PAINT);
        let dark = 1.0 - (rgb[0] + rgb[1] + rgb[2]) / 3.0;
        let body = Mat::new(
            climate.emitting(
                climate.surface(rng.range(-0.5, 1.0), 2.0 + 8.0 * dark),
                emissivity::CAR_PAINT,
            ),
            rgb,
        );
        let a = climate.ambient;
        let (hood, grille, tyre, rim, head_light, tail_light, exhaust) = if running {
            (
                body.warmer(rng.range(6.0, 25.0)),
                Mat::new(a + rng.range(12.0, 35.0), [0.1, 0.1, 0.1]),
                Mat::new(
                    climate.emitting(a + rng.range(6.0, 16.0), emissivity::RUBBER),
                    [0.06, 0.06, 0.06],
                ),
                Mat::new(a + rng.range(10.0, 30.0), [0.55, 0.55, 0.57]),
                Mat::new(a + rng.range(5.0, 20.0), [1.0, 0.98, 0.85]),
                Mat::new(a + rng.range(3.0, 12.0), [0.9, 0.1, 0.1]),
                Some(Mat::new(rng.range(320.0, 370.0), [0.2, 0.2, 0.2])),
            )
        } else {
            // Parked: everything near ambient; a recently parked one keeps a warm hood.
            let residual = if rng.chance(0.3) {
                rng.range(2.0, 10.0)
            } else {
                0.0
            };
            (
                body.warmer(residual),
                Mat::new(climate.surface(residual * 0.7, 3.0), [0.1, 0.1, 0.1]),
                Mat::new(climate.surface(residual * 0.3, 3.0), [0.06, 0.06, 0.06]),
                Mat::new(climate.surface(residual * 0.3, 2.0), [0.55, 0.55, 0.57]),
                Mat::new(climate.reflective(0.5), [0.85, 0.85, 0.8]),
                Mat::new(climate.reflective(0.4), [0.6, 0.1, 0.1]),
                None,
            )
        };
        let glass = Mat::new(climate.glass(rng.range(0.5, 0.85)), [0.12, 0.16, 0.2]);
        let shadow_dk = if climate.sun > 0.2 {
            -climate.sun * rng.range(4.0, 12.0)
        } else if running {
            rng.range(1.0, 4.0)
        } else {
            rng.range(0.3, 2.0)
        };
        CarModel {
            length,
            width,
            profile: points,
            windows,
            wheel_r: rng.range(0.3, 0.36) * if kind >= 2 { 1.08 } else { 1.0 },
            wheelbase: length * rng.range(0.58, 0.64),
            clearance,
            belt,
            body,
            hood,
            grille,
            glass,
            tyre,
            rim,
            head_light,
            tail_light,
            exhaust,
            shadow_dk,
        }
    }

    fn band_mat(&self, band: Band) -> Mat {
        match band {
            Band::Under => self.grille,
            Band::Front => self.grille,
            Band::Hood => self.hood,
            Band::Windshield | Band::RearWindow => self.glass,
            Band::Roof | Band::Trunk | Band::Rear => self.body,
        }
    }
}

/// A wheel as a 12-sided cylinder; `outer` is the x of its outer face.
fn wheel(b: &mut Builder, car: &CarModel, z: f32, outer: f32, shading: &impl Fn(P3) -> f32) {
    const N: usize = 12;
    let r = car.wheel_r;
    let inner = outer - outer.signum() * 0.22;
    let rim_at = |x: f32, rr: f32| -> Vec<P3> {
        (0..N)
            .map(|i| {
                let a = i as f32 * std::f32::consts::TAU / N as f32;
                P3::new(x, r + rr * a.sin(), z + rr * a.cos())
            })
            .collect()
    };
    let (o, n) = (rim_at(outer, r), rim_at(inner, r));
    for i in 0..N {
        let j = (i + 1) % N;
        let a = (i as f32 + 0.5) * std::f32::consts::TAU / N as f32;
        let normal = P3::new(0.0, a.sin(), a.cos());
        b.face(
            &[o[i], o[j], n[j], n[i]],
            normal,
            car.tyre.shade(shading(normal)),
        );
    }
    let side = P3::new(outer.signum(), 0.0, 0.0);
    if b.face(&o, side, car.tyre) {
        let hub = rim_at(outer + outer.signum() * 0.005, r * 0.6);
        b.poly(&hub, car.rim.shade(shading(side)));
    }
}

/// Draws `car` into `b`; `shading` gives the RGB light of an object-frame normal.
pub fn draw(b: &mut Builder, car: &CarModel, shading: impl Fn(P3) -> f32) {
    let hw = car.width / 2.0;
    let zs = [-car.wheelbase / 2.0, car.wheelbase / 2.0];
    // How squarely each side faces the camera decides whether its wheels are drawn over
    // the body (side views) or tucked under it (front and rear views).
    let eye = |sx: f32| {
        let c = b.world(P3::new(sx * hw, 0.6, 0.0));
        let n = b
            .world(P3::new(sx, 0.0, 0.0))
            .sub(b.world(P3::new(0.0, 0.0, 0.0)));
        let v = P3::new(0.0, 0.0, 0.0).sub(P3::new(c.x, 0.0, c.z));
        n.dot(v) / (v.dot(v).sqrt() + 1e-6)
    };
    let near_side = [-1.0f32, 1.0].into_iter().find(|&sx| eye(sx) > 0.3);
    for sx in [-1.0f32, 1.0] {
        if Some(sx) != near_side {
            for z in zs {
                wheel(b, car, z, sx * (hw - 0.02), &shading);
            }
        }
    }
    // Bands across the width.
    let n = car.profile.len();
    for i in 0..n {
        let ((z0, y0), band) = car.profile[i];
        let ((z1, y1), _) = car.profile[(i + 1) % n];
        let normal = P3::new(0.0, z0 - z1, y1 - y0);
        let quad = [
            P3::new(-hw, y0, z0),
            P3::new(hw, y0, z0),
            P3::new(hw, y1, z1),
            P3::new(-hw, y1, z1),
        ];
        let mat = car.band_mat(band).shade(shading(normal));
        if b.face(&quad, normal, mat) {
            lights(b, car, band, (z0, y0), (z1, y1));
        }
    }
    // Sides with their windows.
    for sx in [-1.0f32, 1.0] {
        let normal = P3::new(sx, 0.0, 0.0);
        let side: Vec<P3> = car
            .profile
            .iter()
            .map(|((z, y), _)| P3::new(sx * hw, *y, *z))
            .collect();
        let light = shading(normal);
        if b.face(&side, normal, car.body.shade(light)) {
            // A darker sill line low on the body.
            let sill_y = car.clearance + 0.12;
            let (zr, zf) = (-car.length / 2.0 + 0.15, car.length / 2.0 - 0.15);
            let sill = [
                P3::new(sx * (hw + 0.005), car.clearance + 0.02, zr),
                P3::new(sx * (hw + 0.005), car.clearance + 0.02, zf),
                P3::new(sx * (hw + 0.005), sill_y, zf),
                P3::new(sx * (hw + 0.005), sill_y, zr),
            ];
            b.poly(&sill, car.body.shade(light * 0.6));
            for w in &car.windows {
                let pts: Vec<P3> = w
                    .iter()
                    .map(|(z, y)| P3::new(sx * (hw + 0.01), *y, *z))
                    .collect();
                b.poly(&pts, car.glass.shade(light));
            }
        }
    }
    if let Some(sx) = near_side {
        for z in zs {
            wheel(b, car, z, sx * (hw - 0.01), &shading);
        }
    }
}

/// Lamps, grille and plate on the front and rear faces.
fn lights(b: &mut Builder, car: &CarModel, band: Band, p0: (f32, f32), p1: (f32, f32)) {
    let hw = car.width / 2.0;
    // Only the tall front and rear faces carry lamps.
    let (ylo, yhi) = (p0.1.min(p1.1), p0.1.max(p1.1));
    if yhi - ylo < 0.2 || !(band == Band::Front || band == Band::Rear) {
        return;
    }
    let front = band == Band::Front;
    let z = if front {
        p0.0.max(p1.0) + 0.01
    } else {
        p0.0.min(p1.0) - 0.01
    };
    let rect = |x0: f32, x1: f32, y0: f32, y1: f32| {
        [
            P3::new(x0, y0, z),
            P3::new(x1, y0, z),
            P3::new(x1, y1, z),
            P3::new(x0, y1, z),
        ]
    };
    let top = (car.belt - 0.06).min(yhi);
    let lamp = if front {
        car.head_light
    } else {
        car.tail_light
    };
    for sx in [-1.0f32, 1.0] {
        b.poly(
            &rect(sx * (hw - 0.08), sx * (hw - 0.4), top - 0.15, top),
            lamp,
        );
    }
    if front {
        b.poly(
            &rect(-0.35, 0.35, car.clearance + 0.15, top - 0.18),
            car.grille,
        );
    } else {
        b.poly(
            &rect(-0.26, 0.26, car.clearance + 0.2, car.clearance + 0.33),
            Mat::new(car.body.kelvin, [0.9, 0.9, 0.85]),
        );
        if let Some(ex) = car.exhaust {
            b.ball(P3::new(hw - 0.4, car.clearance + 0.02, z - 0.02), 0.05, ex);
        }
    }
}
