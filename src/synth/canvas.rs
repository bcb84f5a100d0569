//! The frame being rendered: radiance (kelvin), colour, and which labelled object owns
//! each pixel.

use super::labels::NO_OWNER;
use super::material::Mat;
use super::raster::{Shape, Sprite, Window, rasterize};

#[derive(Debug, Clone)]
pub struct Canvas {
    pub width: usize,
    pub height: usize,
    pub kelvin: Vec<f32>,
    pub rgb: Vec<[f32; 3]>,
    pub owner: Vec<u16>,
}

impl Canvas {
    pub fn new(width: usize, height: usize) -> Canvas {
        let n = width * height;
        Canvas {
            width,
            height,
            kelvin: vec![0.0; n],
            rgb: vec![[0.0; 3]; n],
            owner: vec![NO_OWNER; n],
        }
    }

    fn window(&self) -> Window {
        Window {
            x0: 0,
            y0: 0,
            w: self.width,
            h: self.height,
        }
    }

    /// Paints an unlabelled shape (background geometry), blending by coverage.
    pub fn fill(&mut self, shape: &Shape, mat: Mat) {
        let w = self.width;
        rasterize(shape, self.window(), |x, y, c| {
            let i = y * w + x;
            self.kelvin[i] += (mat.kelvin - self.kelvin[i]) * c;
            for (k, v) in self.rgb[i].iter_mut().enumerate() {
                *v += (mat.rgb[k] - *v) * c;
            }
        });
    }

    /// Changes what is already there: `dk` kelvin warmer, colour times `light` (ground
    /// shadows and warm patches under cars).
    pub fn tint(&mut self, shape: &Shape, dk: f32, light: f32) {
        let w = self.width;
        rasterize(shape, self.window(), |x, y, c| {
            let i = y * w + x;
            self.kelvin[i] += dk * c;
            let k = 1.0 + (light - 1.0) * c;
            self.rgb[i] = self.rgb[i].map(|v| v * k);
        });
    }

    /// Composites a sprite; pixels it covers at least half become owned by
    /// `owner(part)` (`NO_OWNER` for unlabelled parts).
    pub fn composite(&mut self, s: &Sprite, owner: impl Fn(u8) -> u16) {
        let (fw, fh) = (self.width as i32, self.height as i32);
        let y_lo = s.win.y0.max(0);
        let y_hi = (s.win.y0 + s.win.h as i32).min(fh);
        let x_lo = s.win.x0.max(0);
        let x_hi = (s.win.x0 + s.win.w as i32).min(fw);
        for y in y_lo..y_hi {
            let srow = (y - s.win.y0) as usize * s.win.w;
            let frow = y as usize * self.width;
            for x in x_lo..x_hi {
                let si = srow + (x - s.win.x0) as usize;
                let a = s.alpha[si];
                if a <= 0.0 {
                    continue;
                }
                let fi = frow + x as usize;
                self.kelvin[fi] = self.kelvin[fi] * (1.0 - a) + s.kelvin[si];
                for k in 0..3 {
                    self.rgb[fi][k] = self.rgb[fi][k] * (1.0 - a) + s.rgb[si][k];
                }
                if a >= 0.5 {
                    self.owner[fi] = owner(s.part[si]);
                }
            }
        }
    }
}
