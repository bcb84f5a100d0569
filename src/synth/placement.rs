//! Placing things in a scene: street furniture and vegetation first, then the labelled
//! people, cars and bicycles where they belong (sidewalks, lanes, crossings, parking),
//! sized by perspective and kept from overlapping on the ground.

use super::bicycle::BikeModel;
use super::camera::Camera;
use super::car::CarModel;
use super::clutter::Clutter;
use super::labels::Class;
use super::person::PersonLook;
use super::rng::Rng;
use super::world::{Actor, Body, Kind, Road, World};

/// Oriented ground rectangle for keeping objects apart.
#[derive(Debug, Clone, Copy)]
struct Footprint {
    x: f32,
    z: f32,
    yaw: f32,
    half: (f32, f32),
}

impl Footprint {
    fn axes(&self) -> [(f32, f32); 2] {
        let (s, c) = self.yaw.sin_cos();
        [(c, -s), (s, c)]
    }

    /// Separating-axis test of two oriented rectangles.
    fn overlaps(&self, o: &Footprint) -> bool {
        let (dx, dz) = (o.x - self.x, o.z - self.z);
        let project = |f: &Footprint, ax: (f32, f32)| {
            let [a0, a1] = f.axes();
            f.half.0 * (a0.0 * ax.0 + a0.1 * ax.1).abs()
                + f.half.1 * (a1.0 * ax.0 + a1.1 * ax.1).abs()
        };
        self.axes().into_iter().chain(o.axes()).all(|ax| {
            let dist = (dx * ax.0 + dz * ax.1).abs();
            dist <= project(self, ax) + project(o, ax)
        })
    }
}

/// Adds street furniture and vegetation, then the labelled objects, to `world`.
pub fn populate(rng: &mut Rng, world: &mut World) {
    let mut placed = Vec::new();
    place_clutter(rng, world, &mut placed);
    place_objects(rng, world, &mut placed);
}

/// Whether an object at `(x, z)`, `height_m` tall, whose footprint reaches `reach`
/// metres closer to the camera, lands in the frame sensibly: in front of the camera,
/// horizontally mostly inside, its nearest ground point not far below the bottom.
fn in_view(cam: &Camera, x: f32, z: f32, height_m: f32, half_w: f32, reach: f32) -> bool {
    if z - reach < 2.0 {
        return false;
    }
    let k = cam.focal / z;
    let (u, feet) = (
        cam.cx + x * k,
        cam.horizon + cam.mount * cam.focal / (z - reach),
    );
    let (w, h) = (cam.width as f32, cam.height as f32);
    let margin = half_w * k * 0.6;
    u > -margin && u < w + margin && feet < h + 0.1 * height_m * k && feet - height_m * k < h
}

fn free(placed: &[Footprint], f: &Footprint) -> bool {
    placed.iter().all(|p| !p.overlaps(f))
}

fn place_clutter(rng: &mut Rng, world: &mut World, placed: &mut Vec<Footprint>) {
    let road = world.road.clone();
    let cam = world.camera.clone();
    let mut items: Vec<(Clutter, f32, f32)> = Vec::new();
    match world.kind {
        Kind::Urban | Kind::Suburban => {
            let street = world.kind == Kind::Urban;
            for side in [-1.0f32, 1.0] {
                let mut s = rng.range(-5.0, 10.0);
                let spacing = rng.range(8.0, 20.0);
                let trees = rng.chance(0.75);
                while s < 150.0 {
                    if trees && rng.chance(0.8) {
                        let d = if street {
                            road.walk_edge() - 0.7
                        } else {
                            road.walk_edge() + rng.range(1.0, 4.0)
                        };
                        items.push((
                            Clutter::tree(rng, &world.climate, if street { 0.8 } else { 1.1 }),
                            side * d,
                            s,
                        ));
                    }
                    s += spacing * rng.range(0.8, 1.2);
                }
                let mut s = rng.range(0.0, 20.0);
                while s < 150.0 {
                    let lamp = Clutter::sample(rng, &world.climate);
                    if matches!(lamp, Clutter::Lamp { .. }) {
                        items.push((lamp, side * (road.half + road.curb + 0.4), s));
                    }
                    s += rng.range(20.0, 40.0);
                }
            }
            for _ in 0..rng.below(6) {
                let side = if rng.chance(0.5) { -1.0 } else { 1.0 };
                let d = side * rng.range(road.half + road.curb + 0.3, road.walk_edge() - 0.3);
                items.push((
                    Clutter::sample(rng, &world.climate),
                    d,
                    rng.range(4.0, 60.0),
                ));
            }
        }
        Kind::Rural => {
            for _ in 0..rng.below(10) {
                let side = if rng.chance(0.5) { -1.0 } else { 1.0 };
                let d = side * (road.walk_edge() + rng.range(1.0, 25.0));
                let c = if rng.chance(0.6) {
                    Clutter::tree(rng, &world.climate, 1.2)
                } else {
                    Clutter::sample(rng, &world.climate)
                };
                items.push((c, d, rng.range(5.0, 200.0)));
            }
        }
        Kind::Plaza => {
            for _ in 0..rng.below(9) {
                let c = if rng.chance(0.35) {
                    Clutter::tree(rng, &world.climate, 0.9)
                } else {
                    Clutter::sample(rng, &world.climate)
                };
                items.push((c, rng.range(-40.0, 40.0), rng.range(5.0, 80.0)));
            }
        }
    }
    for (c, d, s) in items {
        // Nothing stands in the cross street.
        if road
            .cross
            .is_some_and(|(c0, c1)| s > c0 - 1.5 && s < c1 + 1.5)
        {
            continue;
        }
        let (x, z) = road.to_camera(d, s);
        // Nothing right in front of the lens: it would fill the frame.
        if z < 4.0 || (x / z).abs() * cam.focal > cam.width as f32 {
            continue;
        }
        let f = Footprint {
            x,
            z,
            yaw: road.yaw,
            half: c.footprint(),
        };
        if free(placed, &f) {
            placed.push(f);
            world.actors.push(Actor {
                body: Body::Clutter(c),
                x,
                z,
                yaw: road.yaw,
                speed: 0.0,
                path: 1.0,
                phase: 0.0,
            });
        }
    }
}

/// How many labelled objects a scene gets: a few empty scenes, mostly 2-8, up to 12.
fn object_count(rng: &mut Rng) -> usize {
    let weights = [
        0.04, 0.07, 0.1, 0.11, 0.11, 0.1, 0.1, 0.09, 0.08, 0.06, 0.05, 0.05, 0.04,
    ];
    rng.weighted(&weights)
}

fn place_objects(rng: &mut Rng, world: &mut World, placed: &mut Vec<Footprint>) {
    let n = object_count(rng);
    let class_weights = match world.kind {
        Kind::Rural => [0.3, 0.5, 0.2],
        Kind::Plaza => [0.5, 0.33, 0.17],
        _ => [0.44, 0.38, 0.18],
    };
    for _ in 0..n {
        let class = Class::ALL[rng.weighted(&class_weights)];
        for _ in 0..30 {
            if let Some(actor) = propose(rng, world, class) {
                let (half_x, half_z) = actor.footprint();
                let f = Footprint {
                    x: actor.x,
                    z: actor.z,
                    yaw: actor.yaw,
                    half: (half_x, half_z),
                };
                if free(placed, &f) {
                    placed.push(f);
                    world.actors.push(actor);
                    break;
                }
            }
        }
    }
}

/// Where on the road an object goes and which way it heads.
struct Spot {
    d: f32,
    yaw: f32,
    moving: bool,
}

fn along(rng: &mut Rng, road: &Road, d: f32, jitter: f32) -> f32 {
    // Right-hand traffic: the right side heads away from the camera.
    let away = if road.two_way { d >= 0.0 } else { true };
    road.yaw + if away { 0.0 } else { std::f32::consts::PI } + rng.range(-jitter, jitter)
}

fn across(rng: &mut Rng, road: &Road, jitter: f32) -> f32 {
    road.yaw
        + std::f32::consts::FRAC_PI_2 * if rng.chance(0.5) { 1.0 } else { -1.0 }
        + rng.range(-jitter, jitter)
}

fn side(rng: &mut Rng) -> f32 {
    if rng.chance(0.5) { -1.0 } else { 1.0 }
}

fn person_spot(rng: &mut Rng, world: &World) -> Spot {
    let road = &world.road;
    let walking = rng.chance(0.75);
    let random_yaw = rng.range(-std::f32::consts::PI, std::f32::consts::PI);
    if world.kind == Kind::Plaza {
        return Spot {
            d: rng.range(-30.0, 30.0),
            yaw: random_yaw,
            moving: walking,
        };
    }
    match rng.weighted(&[0.65, 0.2, 0.15]) {
        0 => {
            let d = side(rng)
                * rng
                    .range(road.half + road.curb + 0.3, road.walk_edge() - 0.2)
                    .max(road.half + 0.4);
            let back = if rng.chance(0.5) {
                std::f32::consts::PI
            } else {
                0.0
            };
            let yaw = if walking {
                road.yaw + back + rng.range(-0.15, 0.15)
            } else {
                random_yaw
            };
            Spot {
                d,
                yaw,
                moving: walking,
            }
        }
        1 => Spot {
            d: rng.range(-road.half, road.half),
            yaw: across(rng, road, 0.3),
            moving: true,
        },
        _ => {
            // Beyond the sidewalk, short of the houses (urban facades stand right there).
            let room = match world.kind {
                Kind::Urban => 0.0,
                Kind::Suburban => 3.5,
                _ => 6.0,
            };
            let d = if room > 0.0 {
                side(rng) * (road.walk_edge() + rng.range(0.3, room))
            } else {
                side(rng) * rng.range(road.half + road.curb + 0.3, road.walk_edge() - 0.2)
            };
            Spot {
                d,
                yaw: random_yaw,
                moving: walking,
            }
        }
    }
}

fn car_spot(rng: &mut Rng, world: &World) -> Spot {
    let road = &world.road;
    if world.kind == Kind::Plaza {
        let parked = rng.chance(0.75);
        let yaw = if parked {
            across(rng, road, 0.12)
                + if rng.chance(0.5) {
                    std::f32::consts::PI
                } else {
                    0.0
                }
        } else {
            rng.range(-3.1, 3.1)
        };
        return Spot {
            d: rng.range(-30.0, 30.0),
            yaw,
            moving: !parked,
        };
    }
    let lane_d = |rng: &mut Rng| {
        let lane = rng.below(road.lanes as usize) as f32;
        let dir = if road.two_way { side(rng) } else { 1.0 };
        let offset = if road.two_way {
            (lane + 0.5) * road.lane_w
        } else {
            (lane + 0.5) * road.lane_w - road.half + road.parking
        };
        dir * offset + rng.range(-0.3, 0.3)
    };
    match rng.weighted(&[
        0.5,
        if road.parking > 0.0 { 0.35 } else { 0.0 },
        if road.cross.is_some() { 0.15 } else { 0.0 },
    ]) {
        0 => {
            let d = lane_d(rng);
            Spot {
                d,
                yaw: along(rng, road, d, 0.04),
                moving: rng.chance(0.9),
            }
        }
        1 => {
            let d = side(rng) * (road.half - road.parking / 2.0);
            let yaw = road.yaw
                + if rng.chance(0.7) == (d > 0.0) {
                    0.0
                } else {
                    std::f32::consts::PI
                }
                + rng.range(-0.05, 0.05);
            Spot {
                d,
                yaw,
                moving: false,
            }
        }
        _ => Spot {
            d: rng.range(-road.half - 8.0, road.half + 8.0),
            yaw: across(rng, road, 0.05),
            moving: rng.chance(0.8),
        },
    }
}

fn bicycle_spot(rng: &mut Rng, world: &World) -> Spot {
    let road = &world.road;
    let ridden = rng.chance(0.65);
    if world.kind == Kind::Plaza {
        return Spot {
            d: rng.range(-30.0, 30.0),
            yaw: rng.range(-3.1, 3.1),
            moving: ridden,
        };
    }
    if ridden {
        if rng.chance(0.5) {
            let d = side(rng) * (road.half - 0.8).max(0.5);
            return Spot {
                d,
                yaw: along(rng, road, d, 0.1),
                moving: true,
            };
        }
        return Spot {
            d: rng.range(-road.half, road.half),
            yaw: across(rng, road, 0.3),
            moving: true,
        };
    }
    let outer = if world.kind == Kind::Urban {
        road.walk_edge() - 0.3
    } else {
        road.walk_edge() + 1.0
    };
    let d = side(rng) * rng.range(road.half + road.curb + 0.4, outer);
    Spot {
        d,
        yaw: rng.range(-3.1, 3.1),
        moving: false,
    }
}

/// Whether a bicycle heading `yaw` at `(x, z)` is seen enough from the side to show its
/// wheels (head-on, a bicycle is a thin line nobody could label).
fn side_on_enough(x: f32, z: f32, yaw: f32) -> bool {
    let n = (x * x + z * z).sqrt().max(1e-3);
    let (lx, lz) = (x / n, z / n);
    (lx * yaw.cos() - lz * yaw.sin()).abs() >= 0.5
}

fn propose(rng: &mut Rng, world: &World, class: Class) -> Option<Actor> {
    let cam = &world.camera;
    let h = cam.height as f32;
    let climate = &world.climate;
    // Pixel height first (log-uniform), then the distance that gives it.
    let (body, height_m, half_w, spot, speed, path) = match class {
        Class::Person => {
            let look = PersonLook::sample(rng, climate);
            let spot = person_spot(rng, world);
            let speed = if spot.moving {
                rng.range(0.9, 1.7) * (look.height / 1.75)
            } else {
                0.0
            };
            let height = look.height;
            (
                Body::Person {
                    look,
                    walking: spot.moving,
                },
                height,
                0.35,
                spot,
                speed,
                30.0,
            )
        }
        Class::Car => {
            let spot = car_spot(rng, world);
            let idling = rng.chance(0.15);
            let car = CarModel::sample(rng, climate, spot.moving || idling);
            let speed = if spot.moving {
                rng.range(3.0, 14.0)
            } else {
                0.0
            };
            let half = car.length / 2.0;
            (Body::Car(car), 1.5, half, spot, speed, 90.0)
        }
        Class::Bicycle => {
            let spot = bicycle_spot(rng, world);
            let rider = spot.moving.then(|| PersonLook::sample(rng, climate));
            let bike = BikeModel::sample(rng, climate, spot.moving);
            let speed = if spot.moving {
                rng.range(2.5, 7.0)
            } else {
                0.0
            };
            let height = if rider.is_some() { 1.75 } else { 1.0 };
            (
                Body::Bicycle { bike, rider },
                height,
                0.9,
                spot,
                speed,
                50.0,
            )
        }
    };
    let (lo, hi) = match class {
        Class::Person => (12.0, 0.4 * h),
        Class::Car => (10.0, 0.4 * h),
        Class::Bicycle => (20.0, 0.38 * h),
    };
    // Log-uniform, leaning towards larger sizes: placement rejects more near (large)
    // candidates than far ones, and a detector at 320 px input sees 12 px objects as 6.
    let hi = hi.max(lo + 1.0);
    let pixels = lo * (hi / lo).powf(rng.unit().powf(0.7));
    let z = cam.focal * height_m / pixels;
    let (x, z) = world.road.at_depth(spot.d, z);
    let probe = Actor {
        body,
        x,
        z,
        yaw: spot.yaw,
        speed,
        path,
        phase: 0.0,
    };
    let (fx, fz) = probe.footprint();
    let reach = fz * spot.yaw.cos().abs() + fx * spot.yaw.sin().abs();
    if !in_view(cam, x, z, height_m, half_w, reach) {
        return None;
    }
    if class == Class::Bicycle && !side_on_enough(x, z, spot.yaw) {
        return None;
    }
    Some(Actor {
        phase: rng.range(0.0, std::f32::consts::TAU),
        ..probe
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footprints_overlap_only_when_touching() {
        let a = Footprint {
            x: 0.0,
            z: 10.0,
            yaw: 0.3,
            half: (1.0, 2.3),
        };
        let near = Footprint {
            x: 1.5,
            z: 10.5,
            yaw: -0.2,
            half: (0.3, 0.3),
        };
        let far = Footprint {
            x: 5.0,
            z: 10.0,
            yaw: 0.0,
            half: (0.3, 0.3),
        };
        assert!(a.overlaps(&near));
        assert!(!a.overlaps(&far));
    }
}
