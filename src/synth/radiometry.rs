//! How surface temperatures become what an 8-14 µm camera reads.
//!
//! Why: a thermal camera does not see temperature but band radiance. A surface of
//! emissivity ε at kinetic temperature T shows `ε·L(T) + (1−ε)·L(T_reflected)`, and the
//! air between it and the lens swaps part of that for the air's own radiance. Mixing
//! temperatures linearly instead (what [`RadiometryModel::Legacy`] does) is close for small
//! differences but wrong by kelvins once a cold sky (40 K below the air) is reflected.
//! This file holds those laws as small functions of documented constants; `climate`
//! applies them, the materials only say what they are made of.
//!
//! The constants and where they come from are listed in docs/synth-eval.md ("LWIR
//! radiometry").

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use super::SynthError;

/// Which radiometry `zsq synth` renders.
///
/// `Legacy` is the generator the bundled detectors were trained on and stays the
/// default (its bytes are pinned); `Lwir` grounds the same scenes in physics: band
/// radiance mixing of emissivity and reflected sky, atmospheric attenuation with
/// distance, clothing from a heat balance, optics blurring radiance. Both draw the same
/// random numbers, so scene `i` of a seed has the same layout, objects and labels in
/// both; only temperatures differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RadiometryModel {
    #[default]
    Legacy,
    Lwir,
}

impl FromStr for RadiometryModel {
    type Err = SynthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "legacy" => Ok(RadiometryModel::Legacy),
            "lwir" => Ok(RadiometryModel::Lwir),
            _ => Err(SynthError(format!(
                "unknown radiometry `{s}` (expected legacy or lwir)"
            ))),
        }
    }
}

impl fmt::Display for RadiometryModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RadiometryModel::Legacy => "legacy",
            RadiometryModel::Lwir => "lwir",
        })
    }
}

/// The band of an uncooled microbolometer (FLIR Boson, Lepton), µm.
const BAND: (f64, f64) = (8.0, 14.0);
/// The radiance table: 100 K to 700 K in 0.25 K steps.
const T0: f32 = 100.0;
const DT: f32 = 0.25;
const STEPS: usize = 2400;

/// Band radiance of a black body at `t` kelvin, in W·m⁻²·sr⁻¹, from Planck's law
/// integrated over [`BAND`] (Simpson's rule, 240 intervals: exact to ~1e-9).
fn planck_band(t: f64) -> f64 {
    const C1: f64 = 1.191_042_97e8; // 2hc², W·µm⁴·m⁻²·sr⁻¹
    const C2: f64 = 14_387.769; // hc/k, µm·K
    const N: usize = 240;
    let h = (BAND.1 - BAND.0) / N as f64;
    let f = |l: f64| C1 / (l.powi(5) * ((C2 / (l * t)).exp() - 1.0));
    let inner: f64 = (1..N)
        .map(|i| f(BAND.0 + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 })
        .sum();
    (f(BAND.0) + f(BAND.1) + inner) * h / 3.0
}

fn table() -> &'static [f32] {
    static TABLE: OnceLock<Vec<f32>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=STEPS)
            .map(|i| planck_band((T0 + i as f32 * DT) as f64) as f32)
            .collect()
    })
}

/// 8-14 µm band radiance of a black body at `t` K (interpolated from a table; clamped
/// to 100-700 K).
pub fn radiance(t: f32) -> f32 {
    let tab = table();
    let x = ((t - T0) / DT).clamp(0.0, STEPS as f32);
    let i = (x as usize).min(STEPS - 1);
    tab[i] + (tab[i + 1] - tab[i]) * (x - i as f32)
}

/// The black-body temperature whose band radiance is `l`: the inverse of [`radiance`].
pub fn temperature(l: f32) -> f32 {
    let tab = table();
    let i = tab.partition_point(|&v| v <= l).clamp(1, STEPS) - 1;
    let frac = ((l - tab[i]) / (tab[i + 1] - tab[i])).clamp(0.0, 1.0);
    T0 + (i as f32 + frac) * DT
}

/// What the camera reads from a surface at `t` K of emissivity `emissivity` that
/// reflects surroundings at `reflected` K: `ε·L(T) + (1−ε)·L(T_refl)` back to kelvin.
pub fn apparent(t: f32, emissivity: f32, reflected: f32) -> f32 {
    temperature(emissivity * radiance(t) + (1.0 - emissivity) * radiance(reflected))
}

/// Emissivity seen at an angle: a dielectric reflects more towards grazing incidence.
/// Schlick's approximation of the Fresnel reflectance, `R = R₀ + (1−R₀)(1−cos θ)⁵`,
/// scaled by `gloss` (1: smooth water or glass, towards 0: rough surfaces whose
/// roughness keeps them emissive at grazing angles), with `R₀ = 1 − ε_normal`.
pub fn directional_emissivity(normal: f32, gloss: f32, cos_incidence: f32) -> f32 {
    let r0 = 1.0 - normal;
    let grazing = (1.0 - cos_incidence.clamp(0.0, 1.0)).powi(5);
    1.0 - (r0 + (1.0 - r0) * gloss * grazing)
}

/// Normal emissivities in 8-14 µm (Vollmer & Möllmann, Infrared Thermal Imaging, 2nd
/// ed. 2017, table of emissivities; skin from Steketee 1973).
pub mod emissivity {
    pub const SKIN: f32 = 0.98;
    pub const TEXTILE: f32 = 0.95;
    pub const HAIR: f32 = 0.95;
    pub const ASPHALT: f32 = 0.95;
    pub const CONCRETE: f32 = 0.94;
    pub const ROAD_PAINT: f32 = 0.92;
    pub const GRASS: f32 = 0.97;
    pub const WATER: f32 = 0.96;
    pub const BRICK: f32 = 0.93;
    pub const CAR_PAINT: f32 = 0.93;
    pub const RUBBER: f32 = 0.95;
    pub const GLASS: f32 = 0.88;
}

/// The air between a surface and the camera.
#[derive(Debug, Clone, Copy)]
pub struct Atmosphere {
    /// Air temperature, K.
    pub air: f32,
    /// Relative humidity, 0..1.
    pub humidity: f32,
}

impl Atmosphere {
    /// Water vapour, g/m³, from the humidity and air temperature (the polynomial FLIR's
    /// radiometric cameras use; Minkina & Dudzik, Infrared Thermography: Errors and
    /// Uncertainties, Wiley 2009).
    pub fn water(&self) -> f32 {
        let c = self.air - 273.15;
        self.humidity
            * (1.5587 + 0.06939 * c - 0.000_278_16 * c * c + 0.000_000_684_55 * c * c * c).exp()
    }

    /// 8-14 µm transmittance over `distance` metres: FLIR's two-exponential model
    /// `τ = X·exp(−√d·(α₁+β₁√H)) + (1−X)·exp(−√d·(α₂+β₂√H))` with X = 1.9,
    /// α₁ = 0.006569, α₂ = 0.01262, β₁ = −0.002276, β₂ = −0.00667 (same source). About
    /// 0.98 at 10 m and 0.93 at 100 m in air at 20 °C, 50 % humidity.
    pub fn transmittance(&self, distance: f32) -> f32 {
        const X: f32 = 1.9;
        let (a1, a2, b1, b2) = (0.006_569, 0.012_62, -0.002_276, -0.006_67);
        let (rd, rh) = (distance.max(0.0).sqrt(), self.water().sqrt());
        (X * (-rd * (a1 + b1 * rh)).exp() + (1.0 - X) * (-rd * (a2 + b2 * rh)).exp())
            .clamp(0.0, 1.0)
    }

    /// What reaches the camera from a surface that shows `t` K at `distance` metres:
    /// `τ·L(T) + (1−τ)·L(T_air)` (the air emits what it absorbs).
    pub fn through(&self, t: f32, distance: f32) -> f32 {
        let tau = self.transmittance(distance);
        temperature(tau * radiance(t) + (1.0 - tau) * radiance(self.air))
    }
}

/// Effective sky temperature over the whole upper hemisphere, K: Berdahl & Martin's
/// clear-sky emissivity `ε = 0.711 + 0.56·(T_dp/100) + 0.73·(T_dp/100)²` (dew point in
/// °C; Solar Energy 32, 1984), raised for cloud by Clark & Allen's factor
/// `1 + 0.0224·n − 0.0035·n² + 0.00028·n³` (n: cloud cover in tenths), and
/// `T_sky = ε^¼·T_air`. What a diffusely reflecting upward surface mirrors, and the
/// radiant sink of people and roads at night.
pub fn sky_hemisphere(air: f32, humidity: f32, overcast: f32) -> f32 {
    // Dew point by the Magnus formula (b = 17.62, c = 243.12 °C).
    let c = air - 273.15;
    let g = humidity.clamp(0.01, 1.0).ln() + 17.62 * c / (243.12 + c);
    let dew = 243.12 * g / (17.62 - g) / 100.0;
    let clear = 0.711 + 0.56 * dew + 0.73 * dew * dew;
    let n = 10.0 * overcast.clamp(0.0, 1.0);
    let e = (clear * (1.0 + 0.0224 * n - 0.0035 * n * n + 0.000_28 * n * n * n)).min(1.0);
    e.powf(0.25) * air
}

/// Clothing surface temperature from the heat balance of ISO 7730 (Fanger): heat
/// conducted through the clothing equals what its surface loses by convection to the air
/// and radiation to the surroundings,
/// `(t_sk − t_cl)/I_cl = f_cl·(h_c·(t_cl − t_a) + h_r·(t_cl − t_mrt))`, solved for
/// `t_cl`. `clo` is the insulation (ISO 9920; 1 clo = 0.155 m²K/W), `f_cl` the clothing
/// area factor (ISO 7730), `h_c` and `h_r` in W/m²K.
pub fn clothing_surface(skin: f32, air: f32, mean_radiant: f32, clo: f32, h_c: f32) -> f32 {
    const H_R: f32 = 4.7; // linearised radiation coefficient (ASHRAE Fundamentals)
    let i_cl = 0.155 * clo;
    let f_cl = if i_cl <= 0.078 {
        1.0 + 1.29 * i_cl
    } else {
        1.05 + 0.645 * i_cl
    };
    let k = i_cl * f_cl;
    (skin + k * (h_c * air + H_R * mean_radiant)) / (1.0 + k * (h_c + H_R))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_radiance_rises_with_temperature_and_inverts() {
        // A 300 K black body sends ~173 W/m² into a hemisphere in 8-14 µm: 55 W/m²/sr.
        let l300 = radiance(300.0);
        assert!((54.0..56.0).contains(&l300), "{l300}");
        let mut last = 0.0;
        for t in (150..600).step_by(7) {
            let l = radiance(t as f32);
            assert!(l > last);
            last = l;
            assert!((temperature(l) - t as f32).abs() < 0.01, "{t}");
        }
    }

    #[test]
    fn emissivity_mixing_stays_between_the_surface_and_what_it_reflects() {
        for (t, refl) in [(300.0, 240.0), (280.0, 310.0), (350.0, 250.0)] {
            let mut last = refl;
            for e in [0.0, 0.1, 0.5, 0.9, 0.95, 1.0] {
                let a = apparent(t, e, refl);
                let (lo, hi) = if t < refl { (t, refl) } else { (refl, t) };
                assert!(a >= lo - 0.01 && a <= hi + 0.01, "{t} {e} {refl}: {a}");
                // More emissive: closer to the surface's own temperature.
                assert!((a - t).abs() <= (last - t).abs() + 1e-3);
                last = a;
            }
            assert!((apparent(t, 1.0, refl) - t).abs() < 0.01);
            assert!((apparent(t, 0.0, refl) - refl).abs() < 0.01);
        }
        // Radiance, not temperature, mixes: half of a 350 K and half of a 250 K surface
        // reads well above 300 K.
        assert!(apparent(350.0, 0.5, 250.0) > 310.0);
    }

    #[test]
    fn grazing_angles_reflect_more() {
        let normal = directional_emissivity(0.96, 1.0, 1.0);
        assert!((normal - 0.96).abs() < 1e-6);
        let grazing = directional_emissivity(0.96, 1.0, 0.05);
        assert!(grazing < 0.3, "{grazing}");
        assert!(directional_emissivity(0.96, 0.2, 0.05) > grazing);
    }

    #[test]
    fn the_air_pulls_far_things_towards_its_temperature() {
        let air = Atmosphere {
            air: 293.15,
            humidity: 0.5,
        };
        let t10 = air.transmittance(10.0);
        let t100 = air.transmittance(100.0);
        assert!((0.97..0.99).contains(&t10), "{t10}");
        assert!((0.91..0.95).contains(&t100), "{t100}");
        let mut last = (1.0, 310.0);
        for d in [0.0, 5.0, 20.0, 50.0, 100.0, 200.0, 400.0, 1000.0] {
            let tau = air.transmittance(d);
            let seen = air.through(310.0, d);
            assert!(tau <= last.0 && seen <= last.1 + 1e-3, "{d}: {tau} {seen}");
            assert!(seen >= air.air - 1e-3);
            last = (tau, seen);
        }
        // Humid air absorbs more.
        let humid = Atmosphere {
            humidity: 0.95,
            ..air
        };
        assert!(humid.transmittance(100.0) < t100);
    }

    #[test]
    fn the_clear_sky_is_far_colder_than_the_air_and_cloud_warms_it() {
        let clear = sky_hemisphere(283.15, 0.6, 0.0);
        let cloudy = sky_hemisphere(283.15, 0.6, 1.0);
        assert!((255.0..270.0).contains(&clear), "{clear}");
        assert!(cloudy > clear + 5.0 && cloudy <= 283.15, "{cloudy}");
    }

    #[test]
    fn clothing_sits_between_skin_and_air_and_insulation_cools_it() {
        let (skin, air) = (306.0, 278.0);
        let mut last = skin;
        for clo in [0.0, 0.3, 0.6, 1.0, 1.5, 2.5] {
            let t = clothing_surface(skin, air, air, clo, 5.0);
            assert!(t <= last + 1e-4 && t > air, "{clo}: {t}");
            last = t;
        }
        assert!((clothing_surface(skin, air, air, 0.0, 5.0) - skin).abs() < 1e-4);
        // A cold sky (low mean radiant temperature) cools the clothing further.
        assert!(
            clothing_surface(skin, air, air - 15.0, 1.0, 5.0)
                < clothing_surface(skin, air, air, 1.0, 5.0)
        );
    }
}
