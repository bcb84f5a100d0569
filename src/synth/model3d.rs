//! Building objects from 3-D primitives placed in an object's own frame, then projecting
//! them into paints for a sprite.
//!
//! Object frame: x to the object's right, y up, z forward (its heading), origin on the
//! ground. Projection through the camera gives perspective, foreshortening and every
//! view angle (side, front, three-quarter) from one description.

use super::camera::{Camera, NEAR, P3, clip_near};
use super::material::Mat;
use super::raster::{Paint, Shape};

enum Prim {
    Poly(Vec<P3>),
    Tube(P3, P3, f32),
    Ball(P3, f32),
}

struct Item {
    prim: Prim,
    mat: Mat,
    part: u8,
}

/// Collects an object's primitives in world coordinates.
pub struct Builder<'a> {
    cam: &'a Camera,
    origin: P3,
    cos: f32,
    sin: f32,
    /// Labelled part new primitives belong to (0 = unlabelled).
    pub part: u8,
    items: Vec<Item>,
}

impl<'a> Builder<'a> {
    /// An object standing at ground point `(x, z)` with heading `yaw` (radians, 0 = away
    /// from the camera, π/2 = to the right).
    pub fn new(cam: &'a Camera, x: f32, z: f32, yaw: f32) -> Self {
        Builder {
            cam,
            origin: P3::new(x, 0.0, z),
            cos: yaw.cos(),
            sin: yaw.sin(),
            part: 0,
            items: Vec::new(),
        }
    }

    /// Object frame to world.
    pub fn world(&self, p: P3) -> P3 {
        P3::new(
            self.origin.x + p.x * self.cos + p.z * self.sin,
            p.y,
            self.origin.z - p.x * self.sin + p.z * self.cos,
        )
    }

    /// Direction from a world point to the camera centre.
    fn to_camera(&self, p: P3) -> P3 {
        P3::new(0.0, self.cam.mount, 0.0).sub(p)
    }

    /// Whether a surface with outward normal `normal` (object frame) at `at` faces the
    /// camera.
    pub fn faces_camera(&self, at: P3, normal: P3) -> bool {
        let n = self.world(normal).sub(self.world(P3::new(0.0, 0.0, 0.0)));
        n.dot(self.to_camera(self.world(at))) > 0.0
    }

    /// A one-sided flat face: drawn only when its outward normal faces the camera.
    /// Returns whether it was drawn, so details on it can follow.
    pub fn face(&mut self, pts: &[P3], normal: P3, mat: Mat) -> bool {
        let c = pts
            .iter()
            .fold(P3::new(0.0, 0.0, 0.0), |s, p| s.add(*p))
            .scale(1.0 / pts.len() as f32);
        let visible = self.faces_camera(c, normal);
        if visible {
            self.poly(pts, mat);
        }
        visible
    }

    /// A two-sided flat polygon.
    pub fn poly(&mut self, pts: &[P3], mat: Mat) {
        let w = pts.iter().map(|p| self.world(*p)).collect();
        self.items.push(Item {
            prim: Prim::Poly(w),
            mat,
            part: self.part,
        });
    }

    /// A cylinder with round ends (limbs, tubes).
    pub fn tube(&mut self, a: P3, b: P3, r: f32, mat: Mat) {
        let (a, b) = (self.world(a), self.world(b));
        self.items.push(Item {
            prim: Prim::Tube(a, b, r),
            mat,
            part: self.part,
        });
    }

    pub fn ball(&mut self, c: P3, r: f32, mat: Mat) {
        let c = self.world(c);
        self.items.push(Item {
            prim: Prim::Ball(c, r),
            mat,
            part: self.part,
        });
    }

    /// Number of primitives so far (to sort a later range by depth).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Orders primitives `from..` far to near (stable), so the painter's algorithm draws
    /// limbs behind or in front of the body as seen from the camera.
    pub fn sort_by_depth(&mut self, from: usize) {
        let eye = P3::new(0.0, self.cam.mount, 0.0);
        let depth = |it: &Item| {
            let c = match &it.prim {
                Prim::Poly(p) => p
                    .iter()
                    .fold(P3::new(0.0, 0.0, 0.0), |s, q| s.add(*q))
                    .scale(1.0 / p.len() as f32),
                Prim::Tube(a, b, _) => a.lerp(*b, 0.5),
                Prim::Ball(c, _) => *c,
            };
            let d = c.sub(eye);
            d.dot(d)
        };
        self.items[from..].sort_by(|a, b| depth(b).total_cmp(&depth(a)));
    }

    /// Projects everything into pixel-space paints, in drawing order.
    pub fn paints(&self) -> Vec<Paint> {
        let cam = self.cam;
        self.items
            .iter()
            .filter_map(|it| {
                let shape = match &it.prim {
                    Prim::Poly(p) => {
                        let clipped = clip_near(p);
                        (clipped.len() >= 3).then(|| {
                            Shape::Polygon(clipped.iter().map(|q| cam.project(*q)).collect())
                        })
                    }
                    Prim::Tube(a, b, r) => (a.z >= NEAR && b.z >= NEAR).then(|| Shape::Capsule {
                        a: cam.project(*a),
                        b: cam.project(*b),
                        r: r * cam.scale_at(0.5 * (a.z + b.z)),
                    }),
                    Prim::Ball(c, r) => (c.z >= NEAR).then(|| Shape::Disk {
                        c: cam.project(*c),
                        r: r * cam.scale_at(c.z),
                    }),
                }?;
                Some(Paint {
                    shape,
                    mat: it.mat,
                    part: it.part,
                })
            })
            .collect()
    }
}
