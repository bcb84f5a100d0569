//! The pinhole camera: world metres to pixels.
//!
//! World axes: x right, y up, z forward along the optical axis, ground at y = 0, the
//! camera at `(0, height, 0)` looking level. A tilted camera is modelled by moving the
//! horizon row (a shifted sensor), which keeps verticals vertical: good enough for
//! street scenes and it makes "far = small, far = higher in the frame" exact.

/// A 3-D point or vector in metres.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct P3 {
    pub x: f32,
    pub y: f32,
    pub z: f32,
}

impl P3 {
    pub const fn new(x: f32, y: f32, z: f32) -> Self {
        P3 { x, y, z }
    }

    pub fn add(self, o: P3) -> P3 {
        P3::new(self.x + o.x, self.y + o.y, self.z + o.z)
    }

    pub fn sub(self, o: P3) -> P3 {
        P3::new(self.x - o.x, self.y - o.y, self.z - o.z)
    }

    pub fn scale(self, k: f32) -> P3 {
        P3::new(self.x * k, self.y * k, self.z * k)
    }

    pub fn dot(self, o: P3) -> f32 {
        self.x * o.x + self.y * o.y + self.z * o.z
    }

    pub fn lerp(self, o: P3, t: f32) -> P3 {
        self.add(o.sub(self).scale(t))
    }
}

/// Points closer than this (metres along z) are behind the image plane for drawing.
pub const NEAR: f32 = 0.3;

#[derive(Debug, Clone)]
pub struct Camera {
    pub width: u32,
    pub height: u32,
    /// Focal length in pixels.
    pub focal: f32,
    /// Principal point column.
    pub cx: f32,
    /// Row of the horizon (principal point row).
    pub horizon: f32,
    /// Mounting height above the ground, metres.
    pub mount: f32,
}

impl Camera {
    /// Pixel position of a world point with `z >= NEAR`.
    pub fn project(&self, p: P3) -> (f32, f32) {
        let k = self.focal / p.z;
        (self.cx + p.x * k, self.horizon + (self.mount - p.y) * k)
    }

    /// Pixels per metre at depth `z`.
    pub fn scale_at(&self, z: f32) -> f32 {
        self.focal / z
    }

    /// Depth of the ground seen at image row `v` (below the horizon), else `None`.
    pub fn ground_depth(&self, v: f32) -> Option<f32> {
        let dv = v - self.horizon;
        (dv > 0.0).then(|| self.focal * self.mount / dv)
    }

    /// World x of the ground point at column `u` and depth `z`.
    pub fn ground_x(&self, u: f32, z: f32) -> f32 {
        (u - self.cx) * z / self.focal
    }
}

/// Clips a polygon to `z >= NEAR` (Sutherland–Hodgman against one plane).
pub fn clip_near(poly: &[P3]) -> Vec<P3> {
    let mut out = Vec::with_capacity(poly.len() + 2);
    for (i, &a) in poly.iter().enumerate() {
        let b = poly[(i + 1) % poly.len()];
        let (ina, inb) = (a.z >= NEAR, b.z >= NEAR);
        if ina {
            out.push(a);
        }
        if ina != inb {
            let t = (NEAR - a.z) / (b.z - a.z);
            out.push(a.lerp(b, t));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cam() -> Camera {
        Camera {
            width: 640,
            height: 512,
            focal: 500.0,
            cx: 320.0,
            horizon: 200.0,
            mount: 1.5,
        }
    }

    #[test]
    fn ground_round_trip() {
        let c = cam();
        let (u, v) = c.project(P3::new(2.0, 0.0, 10.0));
        assert_eq!((u, v), (420.0, 275.0));
        let z = c.ground_depth(v).unwrap();
        assert!((z - 10.0).abs() < 1e-4);
        assert!((c.ground_x(u, z) - 2.0).abs() < 1e-4);
        assert_eq!(c.ground_depth(150.0), None);
    }

    #[test]
    fn clipping_keeps_the_visible_part() {
        let quad = [
            P3::new(0.0, 0.0, -1.0),
            P3::new(1.0, 0.0, -1.0),
            P3::new(1.0, 0.0, 5.0),
            P3::new(0.0, 0.0, 5.0),
        ];
        let clipped = clip_near(&quad);
        assert_eq!(clipped.len(), 4);
        assert!(clipped.iter().all(|p| p.z >= NEAR - 1e-6));
        assert!(
            clip_near(&[
                P3::new(0.0, 0.0, -1.0),
                P3::new(1.0, 0.0, -2.0),
                P3::new(0.0, 1.0, -1.0)
            ])
            .is_empty()
        );
    }
}
