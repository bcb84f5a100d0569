//! Weather and time of day: the ambient temperature every surface temperature derives
//! from, the sky's radiance, and the light of the RGB twin.

use super::camera::P3;
use super::rng::Rng;

#[derive(Debug, Clone)]
pub struct Climate {
    pub night: bool,
    /// Air temperature, K.
    pub ambient: f32,
    /// Solar loading 0..1 (0 at night and under thick cloud).
    pub sun: f32,
    /// 0 clear .. 1 overcast.
    pub overcast: f32,
    /// Apparent sky temperature at the horizon and straight up, K. A clear sky is far
    /// colder than the air in the long-wave infrared; clouds bring it close to ambient.
    pub sky_horizon: f32,
    pub sky_zenith: f32,
    /// Exposure of the RGB rendering.
    pub light: f32,
    /// Unit vector towards the sun (RGB shading).
    pub sun_dir: P3,
}

fn lerp(a: f32, b: f32, t: f32) -> f32 {
    a + (b - a) * t
}

impl Climate {
    pub fn sample(rng: &mut Rng) -> Climate {
        let night = rng.chance(0.45);
        let ambient = if night {
            rng.range(266.0, 296.0)
        } else {
            rng.range(271.0, 302.0)
        };
        let overcast = if rng.chance(0.35) {
            rng.range(0.6, 1.0)
        } else {
            rng.range(0.0, 0.3)
        };
        let sun = if night {
            0.0
        } else {
            rng.range(0.15, 1.0) * (1.0 - 0.75 * overcast)
        };
        let sky_horizon = ambient - lerp(8.0, 1.5, overcast) - rng.range(0.0, 3.0);
        let sky_zenith = ambient - lerp(40.0, 6.0, overcast) - rng.range(0.0, 8.0);
        let light = if night {
            rng.range(0.3, 0.5)
        } else {
            rng.range(0.8, 1.1) * (1.0 - 0.2 * overcast)
        };
        let (sx, sz) = (rng.range(-1.0, 1.0), rng.range(-1.0, 1.0));
        let sy = rng.range(0.5, 1.2);
        let n = (sx * sx + sy * sy + sz * sz).sqrt();
        Climate {
            night,
            ambient,
            sun,
            overcast,
            sky_horizon,
            sky_zenith,
            light,
            sun_dir: P3::new(sx / n, sy / n, sz / n),
        }
    }

    /// A passive surface: ambient plus `offset`, plus `absorb` kelvin at full sun.
    pub fn surface(&self, offset: f32, absorb: f32) -> f32 {
        self.ambient + offset + self.sun * absorb
    }

    /// What a glossy surface (glass, polished metal) shows: mostly the sky it reflects.
    pub fn reflective(&self, reflectance: f32) -> f32 {
        lerp(
            self.ambient,
            self.sky_horizon - 0.3 * (self.sky_horizon - self.sky_zenith),
            reflectance,
        )
    }

    /// Sky temperature at elevation `tan_elev` (0 at the horizon).
    pub fn sky(&self, tan_elev: f32) -> f32 {
        let t = 1.0 - (-1.5 * tan_elev.max(0.0)).exp();
        lerp(self.sky_horizon, self.sky_zenith, t)
    }

    /// RGB shading factor of a surface with unit normal `n` (world frame).
    pub fn lambert(&self, n: P3) -> f32 {
        let diffuse = n.dot(self.sun_dir).max(0.0);
        let sky = 0.55 + 0.25 * n.y.max(0.0);
        (sky + 0.45 * diffuse * (1.0 - 0.7 * self.overcast)).min(1.1)
    }
}
