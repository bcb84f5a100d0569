//! Anti-aliased 2-D rasterisation of the three shapes everything is drawn from, and the
//! sprite an object is drawn into before it is composited into the frame.
//!
//! Why anti-aliased: distant people and bicycle tubes are thinner than a pixel; with
//! point sampling they would flicker in and out of existence. Coverage is exact across
//! a row and 4× supersampled down a column for polygons, analytic for round shapes.

use super::material::Mat;

/// A shape in pixel coordinates (x right, y down, pixel centres at +0.5).
#[derive(Debug, Clone)]
pub enum Shape {
    /// A simple polygon (either winding; even-odd fill).
    Polygon(Vec<(f32, f32)>),
    /// All points within `r` of the segment `a`–`b`.
    Capsule {
        a: (f32, f32),
        b: (f32, f32),
        r: f32,
    },
    Disk {
        c: (f32, f32),
        r: f32,
    },
}

impl Shape {
    /// Bounding box `(x_min, y_min, x_max, y_max)`.
    pub fn bounds(&self) -> (f32, f32, f32, f32) {
        match self {
            Shape::Polygon(pts) => pts.iter().fold(
                (
                    f32::INFINITY,
                    f32::INFINITY,
                    f32::NEG_INFINITY,
                    f32::NEG_INFINITY,
                ),
                |(x0, y0, x1, y1), &(x, y)| (x0.min(x), y0.min(y), x1.max(x), y1.max(y)),
            ),
            Shape::Capsule { a, b, r } => (
                a.0.min(b.0) - r,
                a.1.min(b.1) - r,
                a.0.max(b.0) + r,
                a.1.max(b.1) + r,
            ),
            Shape::Disk { c, r } => (c.0 - r, c.1 - r, c.0 + r, c.1 + r),
        }
    }
}

/// A rectangle of pixels `[x0, x0 + w) × [y0, y0 + h)` in frame coordinates.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub x0: i32,
    pub y0: i32,
    pub w: usize,
    pub h: usize,
}

/// Calls `f(x, y, coverage)` with window-local coordinates for every pixel of `win` that
/// `shape` covers, coverage in (0, 1].
pub fn rasterize(shape: &Shape, win: Window, mut f: impl FnMut(usize, usize, f32)) {
    let finite = match shape {
        Shape::Polygon(pts) => pts.iter().all(|p| p.0.is_finite() && p.1.is_finite()),
        Shape::Capsule { a, b, r } => [a.0, a.1, b.0, b.1, *r].iter().all(|v| v.is_finite()),
        Shape::Disk { c, r } => [c.0, c.1, *r].iter().all(|v| v.is_finite()),
    };
    if !finite {
        return;
    }
    let (bx0, by0, bx1, by1) = shape.bounds();
    // Pixel range touched, in window coordinates.
    let lx0 = ((bx0.floor() as i64 - 1) - win.x0 as i64).max(0);
    let ly0 = ((by0.floor() as i64 - 1) - win.y0 as i64).max(0);
    let lx1 = ((bx1.ceil() as i64 + 1) - win.x0 as i64).min(win.w as i64);
    let ly1 = ((by1.ceil() as i64 + 1) - win.y0 as i64).min(win.h as i64);
    if lx0 >= lx1 || ly0 >= ly1 {
        return;
    }
    let (lx0, ly0, lx1, ly1) = (lx0 as usize, ly0 as usize, lx1 as usize, ly1 as usize);
    match shape {
        Shape::Polygon(pts) => polygon(pts, win, (lx0, ly0, lx1, ly1), &mut f),
        Shape::Capsule { a, b, r } => round(win, (lx0, ly0, lx1, ly1), *r, &mut f, |x, y| {
            segment_distance((x, y), *a, *b)
        }),
        Shape::Disk { c, r } => round(win, (lx0, ly0, lx1, ly1), *r, &mut f, |x, y| {
            ((x - c.0).powi(2) + (y - c.1).powi(2)).sqrt()
        }),
    }
}

fn segment_distance(p: (f32, f32), a: (f32, f32), b: (f32, f32)) -> f32 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (qx, qy) = (a.0 + t * dx - p.0, a.1 + t * dy - p.1);
    (qx * qx + qy * qy).sqrt()
}

/// Round shapes: coverage from the distance of the pixel centre to the shape's core.
fn round(
    win: Window,
    (lx0, ly0, lx1, ly1): (usize, usize, usize, usize),
    r: f32,
    f: &mut impl FnMut(usize, usize, f32),
    distance: impl Fn(f32, f32) -> f32,
) {
    let peak = (2.0 * r).min(1.0);
    for ly in ly0..ly1 {
        let y = (win.y0 + ly as i32) as f32 + 0.5;
        for lx in lx0..lx1 {
            let x = (win.x0 + lx as i32) as f32 + 0.5;
            // A shape thinner than a pixel never covers one fully: cap by its width.
            let cov = (r + 0.5 - distance(x, y)).min(peak);
            if cov > 0.0 {
                f(lx, ly, cov);
            }
        }
    }
}

const SUBROWS: usize = 4;

fn polygon(
    pts: &[(f32, f32)],
    win: Window,
    (lx0, ly0, lx1, ly1): (usize, usize, usize, usize),
    f: &mut impl FnMut(usize, usize, f32),
) {
    if pts.len() < 3 {
        return;
    }
    let mut row = vec![0.0f32; lx1 - lx0 + 1];
    let mut xs: Vec<f32> = Vec::with_capacity(8);
    let weight = 1.0 / SUBROWS as f32;
    for ly in ly0..ly1 {
        row.iter_mut().for_each(|c| *c = 0.0);
        let mut touched = false;
        for s in 0..SUBROWS {
            let y = (win.y0 + ly as i32) as f32 + (s as f32 + 0.5) / SUBROWS as f32;
            xs.clear();
            for (i, &a) in pts.iter().enumerate() {
                let b = pts[(i + 1) % pts.len()];
                if (a.1 <= y) != (b.1 <= y) {
                    xs.push(a.0 + (y - a.1) / (b.1 - a.1) * (b.0 - a.0));
                }
            }
            xs.sort_by(f32::total_cmp);
            for pair in xs.chunks_exact(2) {
                // Span in row-buffer coordinates, clipped to the touched range.
                let origin = (win.x0 + lx0 as i32) as f32;
                let xa = (pair[0] - origin).max(0.0);
                let xb = (pair[1] - origin).min((lx1 - lx0) as f32);
                if xb <= xa {
                    continue;
                }
                touched = true;
                let (ia, ib) = (xa as usize, xb as usize);
                if ia == ib {
                    row[ia] += (xb - xa) * weight;
                } else {
                    row[ia] += (ia as f32 + 1.0 - xa) * weight;
                    for c in &mut row[ia + 1..ib] {
                        *c += weight;
                    }
                    row[ib] += (xb - ib as f32) * weight;
                }
            }
        }
        if touched {
            for (i, &c) in row[..lx1 - lx0].iter().enumerate() {
                if c > 1e-4 {
                    f(lx0 + i, ly, c.min(1.0));
                }
            }
        }
    }
}

/// One shape with its material; `part` 0 is unlabelled (occluder, shadow), `k > 0`
/// is the object's k-th labelled part (e.g. 1 = bicycle, 2 = its rider).
#[derive(Debug, Clone)]
pub struct Paint {
    pub shape: Shape,
    pub mat: Mat,
    pub part: u8,
}

/// An object drawn on its own: premultiplied radiance and colour with coverage, and which
/// part owns each pixel. Drawing objects alone first gives their unoccluded area (the
/// denominator of "visible fraction"), including parts outside the frame.
pub struct Sprite {
    pub win: Window,
    pub alpha: Vec<f32>,
    pub kelvin: Vec<f32>,
    pub rgb: Vec<[f32; 3]>,
    pub part: Vec<u8>,
}

impl Sprite {
    /// Draws `paints` in order (later ones on top). `None` when nothing is drawn. The
    /// sprite is limited to the frame grown by one frame size on each side.
    pub fn draw(paints: &[Paint], frame_w: usize, frame_h: usize) -> Option<Sprite> {
        let (mut x0, mut y0, mut x1, mut y1) = (
            f32::INFINITY,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NEG_INFINITY,
        );
        for p in paints {
            let b = p.shape.bounds();
            (x0, y0, x1, y1) = (x0.min(b.0), y0.min(b.1), x1.max(b.2), y1.max(b.3));
        }
        let (fw, fh) = (frame_w as f32, frame_h as f32);
        let (x0, y0) = ((x0.floor() - 1.0).max(-fw), (y0.floor() - 1.0).max(-fh));
        let (x1, y1) = (
            (x1.ceil() + 1.0).min(2.0 * fw),
            (y1.ceil() + 1.0).min(2.0 * fh),
        );
        if !(x1 > x0 && y1 > y0) {
            return None;
        }
        let win = Window {
            x0: x0 as i32,
            y0: y0 as i32,
            w: (x1 - x0) as usize,
            h: (y1 - y0) as usize,
        };
        let n = win.w * win.h;
        let mut s = Sprite {
            win,
            alpha: vec![0.0; n],
            kelvin: vec![0.0; n],
            rgb: vec![[0.0; 3]; n],
            part: vec![0; n],
        };
        for p in paints {
            rasterize(&p.shape, win, |x, y, c| {
                let i = y * win.w + x;
                let keep = 1.0 - c;
                s.alpha[i] = c + s.alpha[i] * keep;
                s.kelvin[i] = p.mat.kelvin * c + s.kelvin[i] * keep;
                for (k, v) in s.rgb[i].iter_mut().enumerate() {
                    *v = p.mat.rgb[k] * c + *v * keep;
                }
                if c >= 0.5 {
                    s.part[i] = p.part;
                }
            });
        }
        Some(s)
    }

    /// Pixels owned by labelled part `part`, wherever they are.
    pub fn area_of(&self, part: u8) -> usize {
        self.part.iter().filter(|&&p| p == part).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total_coverage(shape: &Shape) -> f32 {
        let win = Window {
            x0: 0,
            y0: 0,
            w: 100,
            h: 100,
        };
        let mut sum = 0.0;
        rasterize(shape, win, |_, _, c| sum += c);
        sum
    }

    #[test]
    fn polygon_coverage_equals_area() {
        let tri = Shape::Polygon(vec![(10.2, 10.0), (60.7, 15.3), (30.1, 70.9)]);
        let area = 0.5 * ((60.7 - 10.2) * (70.9 - 10.0) - (30.1 - 10.2) * (15.3 - 10.0)) as f32;
        assert!((total_coverage(&tri) - area).abs() / area < 0.01);
        let rect = Shape::Polygon(vec![(10.5, 10.0), (20.5, 10.0), (20.5, 30.0), (10.5, 30.0)]);
        assert!((total_coverage(&rect) - 200.0).abs() < 0.01);
    }

    #[test]
    fn round_shapes_cover_their_area() {
        let disk = total_coverage(&Shape::Disk {
            c: (50.0, 50.0),
            r: 10.0,
        });
        assert!((disk - std::f32::consts::PI * 100.0).abs() < 3.0, "{disk}");
        let line = total_coverage(&Shape::Capsule {
            a: (10.0, 20.5),
            b: (90.0, 20.5),
            r: 0.25,
        });
        assert!(
            line > 30.0 && line < 60.0,
            "thin line keeps its ink: {line}"
        );
    }

    #[test]
    fn shapes_outside_the_window_draw_nothing() {
        assert_eq!(
            total_coverage(&Shape::Disk {
                c: (-50.0, 50.0),
                r: 10.0
            }),
            0.0
        );
        assert_eq!(
            total_coverage(&Shape::Polygon(vec![
                (f32::NAN, 0.0),
                (1.0, 1.0),
                (2.0, 0.0)
            ])),
            0.0
        );
    }
}
