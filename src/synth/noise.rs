//! Smooth value noise for textures (road wear, grass patches, clouds, puddles) that must
//! be cheap per pixel and reproducible from a seed.

use super::rng::Rng;

const N: usize = 64;

/// A 64×64 periodic lattice of random values in [-1, 1], interpolated with smoothstep.
#[derive(Debug, Clone)]
pub struct ValueNoise {
    grid: Vec<f32>,
}

impl ValueNoise {
    pub fn new(rng: &mut Rng) -> Self {
        ValueNoise {
            grid: (0..N * N).map(|_| rng.range(-1.0, 1.0)).collect(),
        }
    }

    /// Noise at (x, y) in lattice units.
    pub fn at(&self, x: f32, y: f32) -> f32 {
        let (fx, fy) = (x.floor(), y.floor());
        let (tx, ty) = (x - fx, y - fy);
        let (sx, sy) = (tx * tx * (3.0 - 2.0 * tx), ty * ty * (3.0 - 2.0 * ty));
        let ix = (fx as i64).rem_euclid(N as i64) as usize;
        let iy = (fy as i64).rem_euclid(N as i64) as usize;
        let (jx, jy) = ((ix + 1) % N, (iy + 1) % N);
        let g = |x: usize, y: usize| self.grid[y * N + x];
        let top = g(ix, iy) + (g(jx, iy) - g(ix, iy)) * sx;
        let bottom = g(ix, jy) + (g(jx, jy) - g(ix, jy)) * sx;
        top + (bottom - top) * sy
    }

    /// Two octaves, roughly in [-1, 1].
    pub fn fractal(&self, x: f32, y: f32) -> f32 {
        0.67 * self.at(x, y) + 0.33 * self.at(x * 2.7 + 17.0, y * 2.7 + 5.0)
    }
}
