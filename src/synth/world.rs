//! What a street scene is: camera, weather, road layout, buildings, vegetation and the
//! labelled objects, all in metres so perspective decides their pixel size.
//!
//! Plain data. Drawing a world from a random stream is the job of `layout` (where),
//! `placement` (who) and `scene` (in which order).

use super::bicycle::BikeModel;
use super::camera::Camera;
use super::car::CarModel;
use super::climate::Climate;
use super::clutter::Clutter;
use super::labels::Class;
use super::material::Mat;
use super::noise::ValueNoise;
use super::person::PersonLook;

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
    /// Cached `yaw.cos()`, `yaw.sin()` (used per ground pixel).
    pub cos: f32,
    pub sin: f32,
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

    /// Which pass along its loop the actor is on at time `t` (0 for one standing still):
    /// wrapping from the loop's end to its start is a jump, so the ground truth counts the
    /// passes as different objects. Computed from the same remainder as [`Self::position`],
    /// so a pass changes on exactly the frame the jump happens.
    pub fn pass(&self, t: f32) -> u32 {
        if self.speed == 0.0 {
            return 0;
        }
        let span = 2.0 * self.path;
        let along = self.speed * t + self.path;
        ((along - along.rem_euclid(span)) / span).round() as u32
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::rng::Rng;

    #[test]
    fn moving_actors_wrap_around_their_path() {
        let mut rng = Rng::new(1);
        let c = Climate::sample(&mut rng, crate::synth::RadiometryModel::Legacy);
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
        // The jump from z = 15 back to z = 5 happens at t = 5: the second pass.
        assert_eq!(
            (a.pass(0.0), a.pass(4.9), a.pass(5.1), a.pass(15.1)),
            (0, 0, 1, 2)
        );
    }
}
