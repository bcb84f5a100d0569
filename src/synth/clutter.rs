//! Street furniture and vegetation: unlabelled things that occlude and distract (trees,
//! lamp posts, bins, cabinets, bushes, bollards).

use super::camera::P3;
use super::climate::Climate;
use super::material::Mat;
use super::model3d::Builder;
use super::rng::Rng;

#[derive(Debug, Clone)]
pub enum Clutter {
    Tree {
        trunk_h: f32,
        trunk_r: f32,
        crown: Vec<(P3, f32)>,
        bark: Mat,
        leaves: Mat,
    },
    Lamp {
        height: f32,
        pole: Mat,
        head: Mat,
    },
    Bin {
        radius: f32,
        height: f32,
        mat: Mat,
    },
    Cabinet {
        w: f32,
        h: f32,
        d: f32,
        mat: Mat,
    },
    Bush {
        balls: Vec<(P3, f32)>,
        leaves: Mat,
    },
    Bollard {
        mat: Mat,
    },
}

fn foliage(rng: &mut Rng, climate: &Climate) -> Mat {
    // Leaves transpire: near or below air temperature, a little warmer in sun; at night
    // they cool by radiating to the sky.
    let k = if climate.night {
        climate.ambient - rng.range(0.5, 3.0) - climate.sky_cooling(0.6)
    } else {
        climate.surface(rng.range(-1.5, 0.5), 2.0)
    };
    let g = rng.range(0.25, 0.45);
    Mat::new(k, [g * 0.55, g, g * 0.35])
}

impl Clutter {
    /// A tree; `scale` shrinks it for small street trees.
    pub fn tree(rng: &mut Rng, climate: &Climate, scale: f32) -> Clutter {
        let trunk_h = rng.range(1.8, 3.5) * scale;
        let big = rng.range(1.3, 2.6) * scale;
        let crown = (0..rng.below(3) + 3)
            .map(|_| {
                let c = P3::new(
                    rng.range(-0.6, 0.6) * big,
                    trunk_h + big * rng.range(0.6, 1.3),
                    rng.range(-0.6, 0.6) * big,
                );
                (c, big * rng.range(0.55, 0.9))
            })
            .collect();
        Clutter::Tree {
            trunk_h,
            trunk_r: rng.range(0.1, 0.22) * scale.sqrt(),
            crown,
            bark: Mat::new(
                climate.surface(rng.range(-0.5, 0.5), 3.0),
                [0.3, 0.22, 0.15],
            ),
            leaves: foliage(rng, climate),
        }
    }

    pub fn sample(rng: &mut Rng, climate: &Climate) -> Clutter {
        match rng.weighted(&[0.3, 0.2, 0.15, 0.2, 0.15]) {
            0 => Clutter::Lamp {
                height: rng.range(3.5, 8.0),
                pole: Mat::new(
                    climate.reflective(rng.range(0.1, 0.4)) + climate.sun * 3.0,
                    [0.35, 0.37, 0.38],
                ),
                head: Mat::new(
                    climate.ambient
                        + if climate.night {
                            rng.range(2.0, 12.0)
                        } else {
                            1.0
                        },
                    [0.8, 0.8, 0.7],
                ),
            },
            1 => Clutter::Bin {
                radius: rng.range(0.22, 0.35),
                height: rng.range(0.8, 1.1),
                mat: Mat::new(
                    climate.surface(rng.range(-0.5, 2.0), 5.0),
                    *rng.pick(&[[0.2, 0.3, 0.2], [0.3, 0.3, 0.3], [0.1, 0.2, 0.4]]),
                ),
            },
            2 => Clutter::Cabinet {
                w: rng.range(0.5, 1.2),
                h: rng.range(0.9, 1.6),
                d: rng.range(0.3, 0.5),
                mat: Mat::new(
                    climate.surface(rng.range(1.0, 8.0), 5.0),
                    [0.55, 0.57, 0.55],
                ),
            },
            3 => {
                let n = rng.below(3) + 2;
                let balls = (0..n)
                    .map(|i| {
                        let r = rng.range(0.35, 0.8);
                        (
                            P3::new(0.0, r * 0.8, (i as f32 - n as f32 / 2.0) * r * 1.2),
                            r,
                        )
                    })
                    .collect();
                Clutter::Bush {
                    balls,
                    leaves: foliage(rng, climate),
                }
            }
            _ => Clutter::Bollard {
                mat: Mat::new(climate.surface(0.0, 3.0), [0.25, 0.25, 0.25]),
            },
        }
    }

    /// Half extents (across, along) of the ground footprint, for keeping objects apart.
    pub fn footprint(&self) -> (f32, f32) {
        match self {
            Clutter::Tree { trunk_r, .. } => (trunk_r + 0.3, trunk_r + 0.3),
            Clutter::Lamp { .. } | Clutter::Bollard { .. } => (0.2, 0.2),
            Clutter::Bin { radius, .. } => (radius + 0.1, radius + 0.1),
            Clutter::Cabinet { w, d, .. } => (w / 2.0 + 0.1, d / 2.0 + 0.1),
            Clutter::Bush { balls, .. } => {
                let r = balls.iter().map(|b| b.1).fold(0.0, f32::max);
                (r, r * balls.len() as f32 * 0.6 + 0.2)
            }
        }
    }

    pub fn draw(&self, b: &mut Builder, shading: &impl Fn(P3) -> f32) {
        match self {
            Clutter::Tree {
                trunk_h,
                trunk_r,
                crown,
                bark,
                leaves,
            } => {
                b.tube(
                    P3::new(0.0, 0.0, 0.0),
                    P3::new(0.0, trunk_h + crown[0].1 * 0.5, 0.0),
                    *trunk_r,
                    *bark,
                );
                let start = b.len();
                for (i, (c, r)) in crown.iter().enumerate() {
                    let light = 0.75 + 0.1 * (i % 3) as f32;
                    b.ball(*c, *r, leaves.shade(light).warmer(0.3 * (i % 2) as f32));
                }
                b.sort_by_depth(start);
            }
            Clutter::Lamp { height, pole, head } => {
                let top = P3::new(0.0, *height, 0.0);
                b.tube(P3::new(0.0, 0.0, 0.0), top, 0.07, *pole);
                let arm = P3::new(0.0, *height, 0.8);
                b.tube(top, arm, 0.05, *pole);
                b.tube(arm, arm.add(P3::new(0.0, -0.1, 0.25)), 0.12, *head);
            }
            Clutter::Bin {
                radius,
                height,
                mat,
            } => {
                b.tube(
                    P3::new(0.0, radius * 0.5, 0.0),
                    P3::new(0.0, height - radius * 0.5, 0.0),
                    *radius,
                    *mat,
                );
            }
            Clutter::Cabinet { w, h, d, mat } => {
                let (x, z) = (w / 2.0, d / 2.0);
                let corner = |sx: f32, y: f32, sz: f32| P3::new(sx * x, y, sz * z);
                let faces = [
                    (
                        [
                            corner(-1.0, 0.0, 1.0),
                            corner(1.0, 0.0, 1.0),
                            corner(1.0, *h, 1.0),
                            corner(-1.0, *h, 1.0),
                        ],
                        P3::new(0.0, 0.0, 1.0),
                    ),
                    (
                        [
                            corner(-1.0, 0.0, -1.0),
                            corner(1.0, 0.0, -1.0),
                            corner(1.0, *h, -1.0),
                            corner(-1.0, *h, -1.0),
                        ],
                        P3::new(0.0, 0.0, -1.0),
                    ),
                    (
                        [
                            corner(1.0, 0.0, -1.0),
                            corner(1.0, 0.0, 1.0),
                            corner(1.0, *h, 1.0),
                            corner(1.0, *h, -1.0),
                        ],
                        P3::new(1.0, 0.0, 0.0),
                    ),
                    (
                        [
                            corner(-1.0, 0.0, -1.0),
                            corner(-1.0, 0.0, 1.0),
                            corner(-1.0, *h, 1.0),
                            corner(-1.0, *h, -1.0),
                        ],
                        P3::new(-1.0, 0.0, 0.0),
                    ),
                    (
                        [
                            corner(-1.0, *h, -1.0),
                            corner(1.0, *h, -1.0),
                            corner(1.0, *h, 1.0),
                            corner(-1.0, *h, 1.0),
                        ],
                        P3::new(0.0, 1.0, 0.0),
                    ),
                ];
                for (quad, n) in faces {
                    b.face(&quad, n, mat.shade(shading(n)));
                }
            }
            Clutter::Bush { balls, leaves } => {
                let start = b.len();
                for (i, (c, r)) in balls.iter().enumerate() {
                    b.ball(*c, *r, leaves.shade(0.8 + 0.08 * (i % 2) as f32));
                }
                b.sort_by_depth(start);
            }
            Clutter::Bollard { mat } => {
                b.tube(P3::new(0.0, 0.0, 0.0), P3::new(0.0, 0.85, 0.0), 0.1, *mat)
            }
        }
    }
}
