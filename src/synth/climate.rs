//! Weather and time of day: the ambient temperature every surface temperature derives
//! from, the sky's radiance, and the light of the RGB twin.

use super::camera::P3;
use super::radiometry::{self, Atmosphere, RadiometryModel, emissivity};
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
    /// Which laws turn surface temperatures into what the camera reads.
    pub radiometry: RadiometryModel,
    /// Relative humidity 0..1 (cloudy and night air is moister), for the air's
    /// absorption and the dew point of the sky's emissivity ([`RadiometryModel::Lwir`]).
    pub humidity: f32,
    /// Effective temperature of the whole sky hemisphere, K (Berdahl & Martin; see
    /// [`radiometry::sky_hemisphere`]): what diffuse surfaces reflect and radiate to.
    pub sky_hemisphere: f32,
}

fn lerp(a: f32, b: f32, t: f32) -> f32 {
    a + (b - a) * t
}

impl Climate {
    /// Samples the weather. Both radiometries draw the same numbers from `rng`.
    pub fn sample(rng: &mut Rng, radiometry: RadiometryModel) -> Climate {
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
        // Derived, not drawn, so that the legacy stream stays as it was.
        let humidity = (0.5 + 0.4 * overcast + if night { 0.1 } else { 0.0 }).min(0.98);
        Climate {
            night,
            ambient,
            sun,
            overcast,
            sky_horizon,
            sky_zenith,
            light,
            sun_dir: P3::new(sx / n, sy / n, sz / n),
            radiometry,
            humidity,
            sky_hemisphere: radiometry::sky_hemisphere(ambient, humidity, overcast),
        }
    }

    pub fn atmosphere(&self) -> Atmosphere {
        Atmosphere {
            air: self.ambient,
            humidity: self.humidity,
        }
    }

    /// What reaches the camera from something that shows `kelvin` at `distance` metres:
    /// unchanged in the legacy radiometry, pulled towards the air's temperature in LWIR.
    pub fn path(&self, kelvin: f32, distance: f32) -> f32 {
        match self.radiometry {
            RadiometryModel::Legacy => kelvin,
            RadiometryModel::Lwir => self.atmosphere().through(kelvin, distance),
        }
    }

    /// How far below the air a passive surface that sees `sky_view` (0..1) of the sky
    /// cools at night, K (0 by day, where the sun dominates, and in the legacy
    /// radiometry). Its energy balance: net radiation to the sky `h_r·F·(T − T_sky)`
    /// against convection from the air `h_c·(T_a − T)`, with the linearised
    /// `h_r = 4.7` W/m²K and `h_c = 6` W/m²K (a light breeze), gives
    /// `ΔT = F·h_r/(h_r + h_c)·(T_a − T_sky)`: ~9 K for open grass under a clear sky at
    /// 10 °C, the classic ground-frost case.
    pub fn sky_cooling(&self, sky_view: f32) -> f32 {
        const H_R: f32 = 4.7;
        const H_C: f32 = 6.0;
        match self.radiometry {
            RadiometryModel::Lwir if self.night => {
                sky_view * H_R / (H_R + H_C) * (self.ambient - self.sky_hemisphere)
            }
            _ => 0.0,
        }
    }

    /// What a vertical surface reflects: half sky hemisphere, half ground near the air's
    /// temperature.
    pub fn surroundings(&self) -> f32 {
        self.mean_radiant(0.5)
    }

    /// Mean radiant temperature of something that sees `sky_view` of the sky and the
    /// rest near the air's temperature (streets, walls, ground), K.
    pub fn mean_radiant(&self, sky_view: f32) -> f32 {
        self.ambient - sky_view * (self.ambient - self.sky_hemisphere)
    }

    /// How a diffuse vertical surface at `kelvin` of emissivity `e` looks (LWIR); the
    /// legacy radiometry's temperatures are already apparent ones.
    pub fn emitting(&self, kelvin: f32, e: f32) -> f32 {
        match self.radiometry {
            RadiometryModel::Legacy => kelvin,
            RadiometryModel::Lwir => radiometry::apparent(kelvin, e, self.surroundings()),
        }
    }

    /// Glass (car and building windows) whose legacy sky reflectance was `reflectance`.
    /// In LWIR, glass is opaque with emissivity ~0.88 at normal incidence; seen obliquely
    /// it mirrors ~15-30 % of the sky (Fresnel), and under a clear night sky it cools a
    /// few kelvin below the air by radiation (the reason windscreens frost).
    pub fn glass(&self, reflectance: f32) -> f32 {
        match self.radiometry {
            RadiometryModel::Legacy => self.reflective(reflectance),
            RadiometryModel::Lwir => {
                let clear = 1.0 - self.overcast;
                let kinetic =
                    self.ambient - clear * if self.night { 3.0 } else { 1.0 } + self.sun * 2.0;
                let r = (1.0 - emissivity::GLASS).max(0.35 * reflectance);
                radiometry::apparent(kinetic, 1.0 - r, self.sky_mirror())
            }
        }
    }

    /// The sky a tilted glossy surface mirrors (between horizon and zenith).
    fn sky_mirror(&self) -> f32 {
        self.sky_horizon - 0.3 * (self.sky_horizon - self.sky_zenith)
    }

    /// A passive surface: ambient plus `offset`, plus `absorb` kelvin at full sun.
    pub fn surface(&self, offset: f32, absorb: f32) -> f32 {
        self.ambient + offset + self.sun * absorb
    }

    /// What a glossy surface (glass, polished metal) shows: mostly the sky it reflects.
    pub fn reflective(&self, reflectance: f32) -> f32 {
        match self.radiometry {
            RadiometryModel::Legacy => lerp(self.ambient, self.sky_mirror(), reflectance),
            RadiometryModel::Lwir => {
                radiometry::apparent(self.ambient, 1.0 - reflectance, self.sky_mirror())
            }
        }
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
