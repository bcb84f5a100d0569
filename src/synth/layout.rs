//! Sampling where a scene takes place: the kind of place, camera, road layout, ground
//! materials, buildings, far skyline and the sensor's imperfections.

use super::camera::Camera;
use super::climate::Climate;
use super::material::Mat;
use super::radiometry::{RadiometryModel, emissivity};
use super::rng::Rng;
use super::world::{Building, Ground, Kind, Road, Sensor, Skyline};

pub fn pick_kind(rng: &mut Rng) -> Kind {
    [Kind::Urban, Kind::Suburban, Kind::Rural, Kind::Plaza][rng.weighted(&[0.38, 0.25, 0.17, 0.2])]
}

pub fn sample_camera(rng: &mut Rng, kind: Kind, width: u32, height: u32) -> Camera {
    let (w, h) = (width as f32, height as f32);
    // Horizontal field of view 30-75 degrees, focal length scaled to the frame width.
    let hfov = rng.range(30.0f32, 75.0).to_radians();
    let focal = (w / 2.0) / (hfov / 2.0).tan();
    let (mount, horizon) = match kind {
        Kind::Plaza => (rng.range(4.0, 10.0), rng.range(0.04, 0.25) * h),
        _ if rng.chance(0.6) => (rng.range(1.1, 2.2), rng.range(0.33, 0.5) * h),
        _ => (rng.range(2.5, 6.0), rng.range(0.18, 0.38) * h),
    };
    Camera {
        width,
        height,
        focal,
        cx: w / 2.0 + rng.range(-0.05, 0.05) * w,
        horizon,
        mount,
    }
}

pub fn sample_road(rng: &mut Rng, kind: Kind) -> Road {
    let yaw = rng.range(-0.35, 0.35);
    let lanes = match kind {
        Kind::Rural => 1,
        _ => 1 + rng.below(2) as u32,
    };
    let lane_w = rng.range(3.0, 3.6);
    let parking = if kind == Kind::Urban && rng.chance(0.7) {
        2.3
    } else {
        0.0
    };
    let two_way = kind == Kind::Rural || rng.chance(0.75);
    let half = lanes as f32 * lane_w * if two_way { 1.0 } else { 0.5 } + parking;
    let sidewalk = match kind {
        Kind::Urban => rng.range(2.5, 5.0),
        Kind::Suburban => rng.range(1.5, 2.5),
        Kind::Rural => rng.range(0.5, 2.0),
        Kind::Plaza => 0.0,
    };
    // The camera stands somewhere across the road (a car in a lane, a pole on the curb).
    let x_c = rng.range(-1.0, 1.0) * (half + 1.0);
    let cross = (kind != Kind::Rural && rng.chance(0.4)).then(|| {
        let s0 = rng.range(15.0, 60.0);
        (s0, s0 + rng.range(8.0, 14.0))
    });
    let (sin, cos) = yaw.sin_cos();
    Road {
        yaw,
        cos,
        sin,
        x_c,
        lanes,
        lane_w,
        parking,
        half,
        curb: 0.2,
        sidewalk,
        two_way,
        cross,
    }
}

pub fn sample_ground(rng: &mut Rng, climate: &Climate, kind: Kind) -> Ground {
    let asphalt = |rng: &mut Rng| {
        // Asphalt stores the day's heat and stays 1-6 K warmer than the air after sunset
        // (in LWIR a kinetic temperature: the sky it reflects cools what is seen).
        let k = if climate.night {
            climate.ambient + rng.range(1.0, 6.0)
        } else {
            climate.surface(rng.range(1.0, 3.0), 7.0)
        };
        let g = rng.range(0.28, 0.42);
        Mat::new(k, [g, g, g * 1.03])
    };
    // Concrete stores less heat than asphalt: half the sky's night cooling shows.
    let concrete = |rng: &mut Rng| {
        let k = if climate.night {
            climate.ambient + rng.range(0.0, 3.0) - 0.5 * climate.sky_cooling(1.0)
        } else {
            climate.surface(rng.range(0.0, 1.5), 4.0)
        };
        let g = rng.range(0.55, 0.7);
        Mat::new(k, [g, g * 0.98, g * 0.95])
    };
    let road = asphalt(rng);
    let verge = match kind {
        Kind::Urban if rng.chance(0.5) => concrete(rng),
        _ => {
            // Grass and soil: the ground that cools most under a clear night sky.
            let k = if climate.night {
                climate.ambient - rng.range(0.0, 4.0) - climate.sky_cooling(1.0)
            } else {
                climate.surface(rng.range(-1.5, 1.0), 4.0)
            };
            if rng.chance(0.75) {
                Mat::new(k, [0.3, 0.45, 0.18])
            } else {
                Mat::new(k + climate.sun * 4.0, [0.45, 0.38, 0.28])
            }
        }
    };
    let sidewalk = if kind == Kind::Rural {
        Mat::new(road.kelvin - rng.range(0.0, 3.0), [0.5, 0.46, 0.4])
    } else {
        concrete(rng)
    };
    let paving = if rng.chance(0.5) {
        asphalt(rng)
    } else {
        concrete(rng)
    };
    let wet = if climate.overcast > 0.6 && rng.chance(0.5) {
        rng.range(0.05, 0.3)
    } else {
        0.0
    };
    Ground {
        marking: Mat::new(
            road.kelvin - rng.range(0.5, 3.0) - climate.sun * 3.0,
            [0.9, 0.9, 0.85],
        ),
        curb: concrete(rng),
        // LWIR: water near the air's temperature; the ground's emissivity law mirrors the sky.
        puddle: Mat::new(
            match climate.radiometry {
                RadiometryModel::Legacy => climate.reflective(0.6),
                RadiometryModel::Lwir => climate.ambient - 0.5,
            },
            [0.25, 0.3, 0.38],
        ),
        road,
        sidewalk,
        verge,
        paving,
        wet,
        parking_lot: kind == Kind::Plaza && rng.chance(0.6),
    }
}

const WALLS: [[f32; 3]; 8] = [
    [0.65, 0.35, 0.28],
    [0.82, 0.76, 0.62],
    [0.6, 0.6, 0.62],
    [0.9, 0.9, 0.88],
    [0.45, 0.42, 0.4],
    [0.75, 0.6, 0.45],
    [0.55, 0.62, 0.7],
    [0.35, 0.3, 0.3],
];

pub fn sample_buildings(
    rng: &mut Rng,
    climate: &Climate,
    kind: Kind,
    road: &Road,
) -> Vec<Building> {
    let mut out = Vec::new();
    let (setback, heights, gap) = match kind {
        Kind::Urban => ((0.0, 1.0), (6.0, 28.0), 0.2),
        Kind::Suburban => ((4.0, 14.0), (4.5, 9.0), 0.6),
        _ => return out,
    };
    for side in [-1.0f32, 1.0] {
        let mut s = rng.range(-15.0, 5.0);
        while s < 320.0 {
            let mut len = rng.range(8.0, 30.0);
            // Leave the cross street open.
            if let Some((c0, c1)) = road.cross
                && s < c1 + 2.0
                && s + len > c0 - 2.0
            {
                if s > c0 - 6.0 {
                    s = c1 + 2.0;
                    continue;
                }
                len = c0 - 2.0 - s;
            }
            if !rng.chance(gap) {
                let rgb = *rng.pick(&WALLS);
                // Heat from inside at night; a wall sees about half the sky.
                let heated = if climate.night {
                    rng.range(0.5, 3.0) - climate.sky_cooling(0.5)
                } else {
                    0.0
                };
                let wall = Mat::new(
                    climate.emitting(
                        climate.surface(rng.range(-0.5, 1.5) + heated, rng.range(2.0, 6.0)),
                        emissivity::BRICK,
                    ),
                    rgb,
                );
                let glass = Mat::new(climate.glass(rng.range(0.5, 0.8)), [0.2, 0.25, 0.32]);
                let floor = rng.range(2.9, 3.6);
                let col = rng.range(2.4, 4.0);
                let grid = rng.chance(0.9).then(|| {
                    (
                        floor,
                        col,
                        col * rng.range(0.35, 0.6),
                        floor * rng.range(0.35, 0.55),
                    )
                });
                out.push(Building {
                    side,
                    d: road.walk_edge() + rng.range(setback.0, setback.1),
                    s0: s,
                    s1: s + len,
                    height: rng.range(heights.0, heights.1),
                    wall,
                    glass,
                    grid,
                    salt: rng.next_u64(),
                });
            }
            s += len
                + if rng.chance(gap) {
                    rng.range(3.0, 15.0)
                } else {
                    0.0
                };
        }
    }
    out
}

pub fn sample_skyline(rng: &mut Rng, climate: &Climate, kind: Kind) -> Skyline {
    let city = matches!(kind, Kind::Urban | Kind::Plaza) || rng.chance(0.3);
    let mut heights = Vec::with_capacity(64);
    let mut h = rng.range(5.0, 25.0);
    for _ in 0..64 {
        if city {
            if rng.chance(0.3) {
                h = rng.range(4.0, 40.0);
            }
        } else {
            h = (h + rng.range(-3.0, 3.0)).clamp(4.0, 22.0);
        }
        heights.push(h);
    }
    let k = if city {
        climate.surface(rng.range(-1.0, 2.0), 4.0)
    } else {
        climate.ambient - rng.range(0.0, 2.5) - climate.sky_cooling(0.6)
    };
    let rgb = if city {
        [0.55, 0.56, 0.6]
    } else {
        [0.25, 0.35, 0.22]
    };
    Skyline {
        heights,
        distance: rng.range(150.0, 400.0),
        mat: Mat::new(k, rgb),
    }
}

pub fn sample_sensor(rng: &mut Rng, width: u32, height: u32) -> Sensor {
    // Residual non-uniformity after the camera's flat-field correction: tens of mK.
    let col_sigma = rng.range(0.01, 0.09);
    let row_sigma = rng.range(0.0, 0.03);
    Sensor {
        blur: rng.range(0.55, 1.3),
        vignette: rng.range(-2.0, 0.3),
        columns: (0..width).map(|_| rng.gauss() * col_sigma).collect(),
        rows: (0..height).map(|_| rng.gauss() * row_sigma).collect(),
        netd: rng.range(0.03, 0.08),
        rgb_noise: rng.range(0.005, 0.03),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn road_coordinates_round_trip() {
        let mut rng = Rng::new(3);
        let road = sample_road(&mut rng, Kind::Urban);
        let (x, z) = road.to_camera(2.5, 30.0);
        let (d, s) = road.to_road(x, z);
        assert!((d - 2.5).abs() < 1e-4 && (s - 30.0).abs() < 1e-3);
        let (x2, z2) = road.at_depth(-1.0, 12.0);
        assert!((z2 - 12.0).abs() < 1e-3);
        assert!((road.to_road(x2, z2).0 + 1.0).abs() < 1e-4);
    }
}
