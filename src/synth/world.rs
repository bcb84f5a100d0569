//! Sampling a street scene: camera, weather, road layout, buildings, vegetation and the
//! labelled objects, all placed in metres so perspective decides their pixel size.

use super::bicycle::BikeModel;
use super::camera::Camera;
use super::car::CarModel;
use super::climate::Climate;
use super::clutter::Clutter;
use super::labels::Class;
use super::material::Mat;
use super::noise::ValueNoise;
use super::person::PersonLook;
use super::rng::Rng;

/// The kind of place, which decides layout, camera mount and what appears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Buildings on both sides, sidewalks, parked cars, street trees.
    Urban,
    /// Houses set back behind verges, trees.
    Suburban,
    /// A country road with fields and tree lines.
    Rural,
    /// A square or car park seen from a high security camera.
    Plaza,
}

/// The road the scene is laid out along. Road coordinates: `d` across (metres, + to the
/// right), `s` along (+ away from the camera).
#[derive(Debug, Clone)]
pub struct Road {
    pub yaw: f32,
    cos: f32,
    sin: f32,
    /// Camera-frame x of the centre line at z = 0.
    pub x_c: f32,
    pub lanes: u32,
    pub lane_w: f32,
    /// Width of the parking strip at each edge of the carriageway (0: none).
    pub parking: f32,
    /// Half width of the carriageway (lanes and parking).
    pub half: f32,
    pub curb: f32,
    /// Sidewalk (or gravel shoulder) width beyond the curb.
    pub sidewalk: f32,
    pub two_way: bool,
    /// `s` range of a cross street, if any.
    pub cross: Option<(f32, f32)>,
}

impl Road {
    pub fn to_road(&self, x: f32, z: f32) -> (f32, f32) {
        let dx = x - self.x_c;
        (dx * self.cos - z * self.sin, dx * self.sin + z * self.cos)
    }

    pub fn to_camera(&self, d: f32, s: f32) -> (f32, f32) {
        (
            self.x_c + d * self.cos + s * self.sin,
            -d * self.sin + s * self.cos,
        )
    }

    /// Camera-frame point at road offset `d` and camera depth `z`.
    pub fn at_depth(&self, d: f32, z: f32) -> (f32, f32) {
        let s = (z + d * self.sin) / self.cos;
        self.to_camera(d, s)
    }

    /// Outer edge of the sidewalk.
    pub fn walk_edge(&self) -> f32 {
        self.half + self.curb + self.sidewalk
    }
}

/// A building along one side of the road (its facade faces the road).
#[derive(Debug, Clone)]
pub struct Building {
    /// -1 left, +1 right.
    pub side: f32,
    /// Facade distance from the centre line.
    pub d: f32,
    pub s0: f32,
    pub s1: f32,
    pub height: f32,
    pub wall: Mat,
    pub glass: Mat,
    /// Window grid: floor height, column spacing, window width and height.
    pub grid: Option<(f32, f32, f32, f32)>,
    /// Seed of per-window variation (lit, heat loss).
    pub salt: u64,
}

/// Far background above the horizon (city skyline or tree line).
#[derive(Debug, Clone)]
pub struct Skyline {
    /// Height in metres per 1/64 of the frame width, at `distance`.
    pub heights: Vec<f32>,
    pub distance: f32,
    pub mat: Mat,
}

/// Ground materials of a scene.
#[derive(Debug, Clone)]
pub struct Ground {
    pub road: Mat,
    pub marking: Mat,
    pub curb: Mat,
    pub sidewalk: Mat,
    pub verge: Mat,
    /// Plaza paving (also the car park surface).
    pub paving: Mat,
    pub puddle: Mat,
    /// Fraction of the road covered by puddles.
    pub wet: f32,
    /// Bay lines in a car park.
    pub parking_lot: bool,
}

#[derive(Debug, Clone)]
pub enum Body {
    Person {
        look: PersonLook,
        walking: bool,
    },
    Car(CarModel),
    Bicycle {
        bike: BikeModel,
        rider: Option<PersonLook>,
    },
    Clutter(Clutter),
}

/// Something standing on the ground; moving ones travel along their heading and wrap
/// around after `path` metres, so recordings stay populated.
#[derive(Debug, Clone)]
pub struct Actor {
    pub body: Body,
    pub x: f32,
    pub z: f32,
    pub yaw: f32,
    /// m/s along the heading.
    pub speed: f32,
    /// Half length of the travel loop, m.
    pub path: f32,
    /// Walk-cycle or crank phase at t = 0.
    pub phase: f32,
}

impl Actor {
    /// Class of each labelled part (part k is `labels()[k - 1]`).
    pub fn labels(&self) -> &'static [Class] {
        match &self.body {
            Body::Person { .. } => &[Class::Person],
            Body::Car(_) => &[Class::Car],
            Body::Bicycle { rider: Some(_), .. } => &[Class::Bicycle, Class::Person],
            Body::Bicycle { rider: None, .. } => &[Class::Bicycle],
            Body::Clutter(_) => &[],
        }
    }

    /// Ground position at time `t` seconds.
    pub fn position(&self, t: f32) -> (f32, f32) {
        if self.speed == 0.0 {
            return (self.x, self.z);
        }
        let span = 2.0 * self.path;
        let travel = (self.speed * t + self.path).rem_euclid(span) - self.path;
        (
            self.x + travel * self.yaw.sin(),
            self.z + travel * self.yaw.cos(),
        )
    }

    /// Half extents (across, along its heading) of the ground footprint.
    pub fn footprint(&self) -> (f32, f32) {
        match &self.body {
            Body::Person { .. } => (0.3, 0.3),
            Body::Car(c) => (c.width / 2.0 + 0.2, c.length / 2.0 + 0.2),
            Body::Bicycle { .. } => (0.35, 0.95),
            Body::Clutter(c) => c.footprint(),
        }
    }
}

/// Fixed-pattern and temporal noise, optics: what the sensor adds.
#[derive(Debug, Clone)]
pub struct Sensor {
    /// Gaussian optics blur, pixels.
    pub blur: f32,
    /// Temperature offset at the corners relative to the centre, K (negative: darker).
    pub vignette: f32,
    /// Column offsets, K.
    pub columns: Vec<f32>,
    /// Row offsets, K.
    pub rows: Vec<f32>,
    /// Temporal noise (NETD), K.
    pub netd: f32,
    /// RGB noise, 0..1 units.
    pub rgb_noise: f32,
}

/// Everything needed to render the scene at any time.
#[derive(Debug, Clone)]
pub struct World {
    pub kind: Kind,
    pub camera: Camera,
    pub climate: Climate,
    pub road: Road,
    pub ground: Ground,
    pub buildings: Vec<Building>,
    pub skyline: Skyline,
    pub texture: ValueNoise,
    pub clouds: ValueNoise,
    pub actors: Vec<Actor>,
    pub sensor: Sensor,
}

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

fn pick_kind(rng: &mut Rng) -> Kind {
    [Kind::Urban, Kind::Suburban, Kind::Rural, Kind::Plaza][rng.weighted(&[0.38, 0.25, 0.17, 0.2])]
}

fn sample_camera(rng: &mut Rng, kind: Kind, width: u32, height: u32) -> Camera {
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

fn sample_road(rng: &mut Rng, kind: Kind) -> Road {
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

fn sample_ground(rng: &mut Rng, climate: &Climate, kind: Kind) -> Ground {
    let asphalt = |rng: &mut Rng| {
        let k = if climate.night {
            climate.ambient + rng.range(1.0, 6.0)
        } else {
            climate.surface(rng.range(1.0, 3.0), 7.0)
        };
        let g = rng.range(0.28, 0.42);
        Mat::new(k, [g, g, g * 1.03])
    };
    let concrete = |rng: &mut Rng| {
        let k = if climate.night {
            climate.ambient + rng.range(0.0, 3.0)
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
            let k = if climate.night {
                climate.ambient - rng.range(0.0, 4.0)
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
        puddle: Mat::new(climate.reflective(0.6), [0.25, 0.3, 0.38]),
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

fn sample_buildings(rng: &mut Rng, climate: &Climate, kind: Kind, road: &Road) -> Vec<Building> {
    let mut out = Vec::new();
    let (setback, heights, gap) = match kind {
        Kind::Urban => ((0.0, 1.0), (6.0, 28.0), 0.2),
        Kind::Suburban => ((4.0, 14.0), (4.5, 9.0), 0.6),
        _ => return out,
    };
    for side in [-1.0f32, 1.0] {
        let mut s = rng.range(-15.0, 5.0);
        while s < 320.0 {
            let len = rng.range(8.0, 30.0);
            if !rng.chance(gap) {
                let rgb = *rng.pick(&WALLS);
                let heated = if climate.night {
                    rng.range(0.5, 3.0)
                } else {
                    0.0
                };
                let wall = Mat::new(
                    climate.surface(rng.range(-0.5, 1.5) + heated, rng.range(2.0, 6.0)),
                    rgb,
                );
                let glass = Mat::new(climate.reflective(rng.range(0.5, 0.8)), [0.2, 0.25, 0.32]);
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

fn sample_skyline(rng: &mut Rng, climate: &Climate, kind: Kind) -> Skyline {
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
        climate.ambient - rng.range(0.0, 2.5)
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

fn sample_sensor(rng: &mut Rng, width: u32, height: u32) -> Sensor {
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

/// Samples one scene. `rng` is the scene's own stream.
pub fn sample(rng: &mut Rng, width: u32, height: u32) -> World {
    let kind = pick_kind(rng);
    let camera = sample_camera(rng, kind, width, height);
    let climate = Climate::sample(rng);
    let road = sample_road(rng, kind);
    let ground = sample_ground(rng, &climate, kind);
    let buildings = sample_buildings(rng, &climate, kind, &road);
    let skyline = sample_skyline(rng, &climate, kind);
    let texture = ValueNoise::new(rng);
    let clouds = ValueNoise::new(rng);
    let sensor = sample_sensor(rng, width, height);
    let mut world = World {
        kind,
        camera,
        climate,
        road,
        ground,
        buildings,
        skyline,
        texture,
        clouds,
        actors: Vec::new(),
        sensor,
    };
    let mut placed = Vec::new();
    place_clutter(rng, &mut world, &mut placed);
    place_objects(rng, &mut world, &mut placed);
    world
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
            let d = side(rng) * (road.walk_edge() + rng.range(0.3, 6.0));
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
    let d = side(rng) * rng.range(road.half + road.curb + 0.4, road.walk_edge() + 1.0);
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
        Class::Bicycle => (16.0, 0.38 * h),
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

    #[test]
    fn moving_actors_wrap_around_their_path() {
        let mut rng = Rng::new(1);
        let c = Climate::sample(&mut rng);
        let look = PersonLook::sample(&mut rng, &c);
        let a = Actor {
            body: Body::Person {
                look,
                walking: true,
            },
            x: 0.0,
            z: 10.0,
            yaw: 0.0,
            speed: 1.0,
            path: 5.0,
            phase: 0.0,
        };
        assert_eq!(a.position(0.0), (0.0, 10.0));
        assert!((a.position(2.0).1 - 12.0).abs() < 1e-5);
        assert!((a.position(6.0).1 - 6.0).abs() < 1e-5);
    }
}
