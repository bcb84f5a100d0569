//! The static part of a scene: sky, far skyline, the ground with road, markings,
//! sidewalks and verges (textured in world coordinates, so texture shrinks with
//! distance), and building facades with windows.

use super::camera::{P3, clip_near};
use super::canvas::Canvas;
use super::material::Mat;
use super::radiometry::{self, RadiometryModel, emissivity};
use super::raster::Shape;
use super::world::{Building, Kind, World};

/// Paints sky, skyline, ground and buildings.
pub fn paint(world: &World, canvas: &mut Canvas) {
    sky_and_ground(world, canvas);
    let mut order: Vec<&Building> = world.buildings.iter().collect();
    // Far to near along the road.
    order.sort_by(|a, b| b.s0.total_cmp(&a.s0));
    for b in order {
        building(world, b, canvas);
    }
}

fn mix(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

fn sky_and_ground(world: &World, canvas: &mut Canvas) {
    let cam = &world.camera;
    let c = &world.climate;
    let (w, h) = (canvas.width, canvas.height);
    let (sky_lo, sky_hi) = if c.night {
        ([0.08, 0.09, 0.16], [0.02, 0.03, 0.08])
    } else {
        let grey = [0.75, 0.77, 0.8];
        (
            mix([0.78, 0.86, 0.95], grey, c.overcast),
            mix([0.3, 0.5, 0.88], grey, c.overcast),
        )
    };
    let sky = &world.skyline;
    let cell = w as f32 / sky.heights.len() as f32;
    let sky_scale = cam.focal / sky.distance;
    for y in 0..h {
        let v = y as f32 + 0.5;
        let row = y * w;
        let ground_z = cam.ground_depth(v);
        for x in 0..w {
            let u = x as f32 + 0.5;
            let i = row + x;
            let (k, rgb) = match ground_z {
                Some(z) => ground(world, u, z),
                None => {
                    let tan_elev = (cam.horizon - v) / cam.focal;
                    let skyline_px =
                        sky.heights[((u / cell) as usize).min(sky.heights.len() - 1)] * sky_scale;
                    if cam.horizon - v < skyline_px {
                        let n = world.texture.at(u * 0.15, v * 0.15) * 0.4;
                        (
                            c.path(sky.mat.kelvin + n, sky.distance),
                            sky.mat.rgb.map(|c| c * (1.0 + 0.1 * n)),
                        )
                    } else {
                        let cloud = (world.clouds.fractal(u / 90.0, v / 40.0) + c.overcast - 0.5)
                            .clamp(0.0, 1.0);
                        let t = 1.0 - (-1.5 * tan_elev).exp();
                        let k = c.sky(tan_elev) + cloud * (c.ambient - 4.0 - c.sky(tan_elev)) * 0.6;
                        (
                            k,
                            mix(
                                mix(sky_lo, sky_hi, t),
                                [0.85, 0.86, 0.88],
                                cloud * 0.5 * (1.0 - c.overcast),
                            ),
                        )
                    }
                }
            };
            canvas.kelvin[i] = k;
            canvas.rgb[i] = rgb.map(|v| v * c.light);
        }
    }
}

/// Ground radiance and colour at image column `u` for ground depth `z`.
fn ground(world: &World, u: f32, z: f32) -> (f32, [f32; 3]) {
    let cam = &world.camera;
    let road = &world.road;
    let g = &world.ground;
    let x = cam.ground_x(u, z);
    let (d, s) = road.to_road(x, z);
    let ad = d.abs();
    let on_cross = road.cross.is_some_and(|(s0, s1)| s >= s0 && s <= s1);
    let (mut mat, texture, mut finish) = if world.kind == Kind::Plaza {
        let bay =
            g.parking_lot && z < 70.0 && (d.rem_euclid(2.6) < 0.12) && (s.rem_euclid(14.0) < 5.0);
        if bay {
            (g.marking, 1.0, PAINT)
        } else {
            (g.paving, 1.0, CONCRETE)
        }
    } else if ad < road.half || on_cross {
        let m = road_surface(world, d, s, on_cross);
        (m, 1.0, if m == g.marking { PAINT } else { ASPHALT })
    } else if ad < road.half + road.curb {
        (g.curb, 0.5, CONCRETE)
    } else if ad < road.walk_edge() {
        let joint = road.sidewalk > 1.0 && world.kind != Kind::Rural && s.rem_euclid(1.8) < 0.06;
        (
            if joint {
                g.sidewalk.warmer(-0.4).shade(0.85)
            } else {
                g.sidewalk
            },
            0.7,
            CONCRETE,
        )
    } else {
        (g.verge, 1.6, VEGETATION)
    };
    // Puddles on the road reflect the cold sky.
    if g.wet > 0.0
        && (ad < road.half || world.kind == Kind::Plaza)
        && world.clouds.at(x * 0.35, s * 0.35) > 1.0 - 2.0 * g.wet
    {
        mat = g.puddle;
        finish = WATER;
    }
    let n = world.texture.fractal(x * 0.45, s * 0.45);
    // Seen at a grazing angle the ground reflects more of the sky (emissivity falls off
    // towards the horizon), so far ground looks colder than near ground.
    let range = (cam.mount * cam.mount + x * x + z * z).sqrt();
    let sin_depression = cam.mount / range;
    let surface = mat.kelvin + n * 0.5 * texture;
    let c = &world.climate;
    let k = match c.radiometry {
        RadiometryModel::Legacy => {
            let reflect = 0.04 + 0.5 * (1.0 - sin_depression).powi(6);
            surface + (c.sky(sin_depression) - surface) * reflect
        }
        // LWIR: the material's emissivity at this angle; its glossy part mirrors the sky
        // at the same elevation, its diffuse part the whole sky hemisphere; then the air.
        RadiometryModel::Lwir => {
            let (normal, gloss) = finish;
            let e = radiometry::directional_emissivity(normal, gloss, sin_depression);
            let reflected = gloss * c.sky(sin_depression) + (1.0 - gloss) * c.sky_hemisphere;
            c.path(radiometry::apparent(surface, e, reflected), range)
        }
    };
    let rgb = mat.rgb.map(|c| c * (1.0 + 0.08 * n * texture));
    (k, rgb)
}

/// Ground finishes in LWIR: normal emissivity and how glossy (specular) the surface is.
const ASPHALT: (f32, f32) = (emissivity::ASPHALT, 0.3);
const PAINT: (f32, f32) = (emissivity::ROAD_PAINT, 0.3);
const CONCRETE: (f32, f32) = (emissivity::CONCRETE, 0.2);
const VEGETATION: (f32, f32) = (emissivity::GRASS, 0.1);
const WATER: (f32, f32) = (emissivity::WATER, 1.0);

fn road_surface(world: &World, d: f32, s: f32, on_cross: bool) -> Mat {
    let road = &world.road;
    let g = &world.ground;
    let lane_edge = road.half - road.parking;
    // Zebra crossing in front of the cross street.
    if let Some((s0, _)) = road.cross
        && !on_cross
        && s > s0 - 4.0
        && s < s0 - 1.0
        && d.abs() < road.half
    {
        return if d.rem_euclid(1.0) < 0.5 {
            g.marking
        } else {
            g.road
        };
    }
    if on_cross {
        return g.road;
    }
    let centre = road.two_way && d.abs() < 0.08 && s.rem_euclid(9.0) < 4.0;
    let edge = (d.abs() - (lane_edge - 0.25)).abs() < 0.08;
    let lanes = road.lanes > 1 && {
        let per_side = if road.two_way {
            road.lanes
        } else {
            road.lanes / 2
        };
        (1..per_side).any(|i| (d.abs() - i as f32 * road.lane_w).abs() < 0.07)
            && s.rem_euclid(9.0) < 3.0
    };
    if centre || edge || lanes {
        g.marking
    } else {
        g.road
    }
}

/// A tiny integer hash for per-window variation.
fn hash(a: u64, b: i64, c: i64) -> f32 {
    let mut z = a
        ^ (b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (c as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    z = (z ^ (z >> 31)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 29)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z >> 40) as f32) / (1u64 << 24) as f32
}

fn building(world: &World, b: &Building, canvas: &mut Canvas) {
    let cam = &world.camera;
    let road = &world.road;
    let c = &world.climate;
    let to3 = |d: f32, s: f32, y: f32| {
        let (x, z) = road.to_camera(d, s);
        P3::new(x, y, z)
    };
    let project = |pts: &[P3]| -> Option<Shape> {
        let clipped = clip_near(pts);
        (clipped.len() >= 3)
            .then(|| Shape::Polygon(clipped.iter().map(|p| cam.project(*p)).collect()))
    };
    let d = b.side * b.d;
    // Through the air from the point (d, s, y) of the facade (LWIR; legacy: unchanged).
    let seen = |mat: Mat, d: f32, s: f32, y: f32| {
        let p = to3(d, s, y);
        let range = (p.x * p.x + (p.y - cam.mount).powi(2) + p.z * p.z).sqrt();
        Mat {
            kelvin: c.path(mat.kelvin, range),
            ..mat
        }
    };
    let depth = 12.0;
    // RGB light on the facade and on the end wall from their normals.
    let (sin, cos) = road.yaw.sin_cos();
    let facade_n = P3::new(-b.side * cos, 0.0, b.side * sin);
    let end_n = P3::new(-sin, 0.0, -cos);
    // The end wall facing the camera, when the building starts ahead of it.
    if b.s0 > 0.0
        && let Some(shape) = project(&[
            to3(d, b.s0, 0.0),
            to3(d + b.side * depth, b.s0, 0.0),
            to3(d + b.side * depth, b.s0, b.height),
            to3(d, b.s0, b.height),
        ])
    {
        let wall = b.wall.shade(c.lambert(end_n) * c.light).warmer(-0.3);
        canvas.fill(&shape, seen(wall, d, b.s0, b.height / 2.0));
    }
    let Some(shape) = project(&[
        to3(d, b.s0, 0.0),
        to3(d, b.s1, 0.0),
        to3(d, b.s1, b.height),
        to3(d, b.s0, b.height),
    ]) else {
        return;
    };
    let light = c.lambert(facade_n) * c.light;
    let middle = 0.5 * (b.s0.max(0.0) + b.s1);
    canvas.fill(&shape, seen(b.wall.shade(light), d, middle, b.height / 2.0));
    let Some((floor, col, win_w, win_h)) = b.grid else {
        return;
    };
    // Windows, skipped where they would be under ~1.5 px (the wall colour stands in).
    let floors = ((b.height - 1.0) / floor) as i64;
    let cols = ((b.s1 - b.s0 - 1.0) / col) as i64;
    let inset = -b.side * 0.02;
    for j in 0..cols {
        let s_mid = b.s0 + (j as f32 + 0.75) * col;
        let (_, z) = road.to_camera(d, s_mid);
        if z < 1.0 || win_w.min(win_h) * cam.focal / z * 0.3 < 1.5 {
            continue;
        }
        for i in 0..floors {
            let y0 = 1.0 + i as f32 * floor + (floor - win_h) * 0.5;
            let r = hash(b.salt, i, j);
            // Heat leaking through glass at night, some windows open or lit.
            let leak = if c.night { r * r * 6.0 } else { r * 1.5 };
            let glass = b.glass.warmer(leak).shade(if c.night && r > 0.7 {
                3.0
            } else {
                (0.8 + 0.4 * r) * c.light
            });
            let (sa, sb) = (s_mid - win_w * 0.5, s_mid + win_w * 0.5);
            let quad = [
                to3(d + inset, sa, y0),
                to3(d + inset, sb, y0),
                to3(d + inset, sb, y0 + win_h),
                to3(d + inset, sa, y0 + win_h),
            ];
            if let Some(shape) = project(&quad) {
                canvas.fill(&shape, seen(glass, d, s_mid, y0));
            }
        }
    }
}
