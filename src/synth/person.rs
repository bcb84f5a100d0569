//! People: an articulated body (head, torso, arms, legs) in a walking, standing or
//! cycling pose, dressed in clothes whose temperature sits between skin and air.

use super::camera::P3;
use super::climate::Climate;
use super::material::Mat;
use super::model3d::Builder;
use super::radiometry::{self, RadiometryModel, emissivity};
use super::rng::Rng;

/// How one person looks (size, build, clothes), fixed over a recording.
#[derive(Debug, Clone)]
pub struct PersonLook {
    /// Standing height, m.
    pub height: f32,
    /// Width factor of torso and limbs.
    pub build: f32,
    child: bool,
    skin: Mat,
    hair: Mat,
    top: Mat,
    arms: Mat,
    legs: Mat,
    shins: Mat,
    shoes: Mat,
    coat: bool,
    backpack: Option<Mat>,
    hat: Option<Mat>,
    phone: bool,
}

const SKIN_TONES: [[f32; 3]; 6] = [
    [0.96, 0.80, 0.69],
    [0.90, 0.72, 0.58],
    [0.80, 0.60, 0.45],
    [0.65, 0.45, 0.32],
    [0.45, 0.30, 0.20],
    [0.32, 0.21, 0.15],
];
const HAIR: [[f32; 3]; 5] = [
    [0.1, 0.08, 0.06],
    [0.3, 0.2, 0.1],
    [0.55, 0.4, 0.2],
    [0.8, 0.7, 0.45],
    [0.6, 0.6, 0.6],
];
const CLOTH: [[f32; 3]; 12] = [
    [0.1, 0.1, 0.12],
    [0.2, 0.25, 0.45],
    [0.75, 0.1, 0.1],
    [0.9, 0.9, 0.88],
    [0.35, 0.45, 0.25],
    [0.55, 0.5, 0.45],
    [0.15, 0.2, 0.35],
    [0.85, 0.6, 0.1],
    [0.45, 0.15, 0.45],
    [0.3, 0.3, 0.3],
    [0.1, 0.5, 0.7],
    [0.6, 0.35, 0.2],
];

/// Mean skin temperature under clothing, K: Fanger's comfort value
/// `35.7 − 0.028·(M − W)` °C (ISO 7730) at a walking metabolic rate M ≈ 100 W/m², W = 0.
const SKIN_UNDER_CLOTHES: f32 = 273.15 + 35.7 - 0.028 * 100.0;
/// Convective heat transfer of clothing in a light breeze or at a slow walk, W/m²K:
/// ISO 7730's `12.1·√v` at a relative air speed of 0.5 m/s.
const H_CONVECTION: f32 = 8.6;

/// How much of the sky a standing person's clothes see: at most half (the upper
/// hemisphere of a vertical body) in the open, less between buildings.
const PERSON_SKY_VIEW: f32 = 0.3;

/// Typical insulation of what people wear outdoors at air temperature `ambient`, clo:
/// ~0.5 clo (shirt and trousers) at 25 °C to ~2 clo (winter coat over layers) near
/// 0 °C, the ensembles of ISO 9920's tables.
fn ensemble_clo(ambient: f32) -> f32 {
    (0.5 + 1.5 * (298.0 - ambient) / 25.0).clamp(0.4, 2.2)
}

/// Darkness of a colour: dark clothes absorb more sun.
fn darkness(rgb: [f32; 3]) -> f32 {
    1.0 - (rgb[0] + rgb[1] + rgb[2]) / 3.0
}

impl PersonLook {
    pub fn sample(rng: &mut Rng, climate: &Climate) -> PersonLook {
        let child = rng.chance(0.12);
        let height = if child {
            rng.range(1.05, 1.45)
        } else {
            rng.range(1.55, 1.95)
        };
        let warm = climate.ambient > 293.0;
        // Exposed skin: ~305-309 K, a little cooler in the cold.
        let skin_k = (309.0 - 0.1 * (305.0 - climate.ambient).max(0.0) + rng.range(-0.8, 0.6))
            .clamp(303.5, 309.5);
        let skin = Mat::new(
            climate.emitting(skin_k, emissivity::SKIN),
            *rng.pick(&SKIN_TONES),
        );
        let excess = skin_k - climate.ambient;
        // Clothing surface: a few kelvin above the air, more for thin clothes, plus sun.
        // Legacy: a fraction of the skin's excess; LWIR: ISO 7730's heat balance with
        // the insulation of the season's clothes (`spread` varies it ±30 %).
        let cloth = |rng: &mut Rng, insulation: f32| {
            let rgb = *rng.pick(&CLOTH);
            let spread = rng.range(0.12, 0.32);
            let solar = climate.sun * darkness(rgb) * 5.0;
            let k = match climate.radiometry {
                RadiometryModel::Legacy => climate.ambient + excess * spread * insulation + solar,
                RadiometryModel::Lwir => {
                    let clo =
                        ensemble_clo(climate.ambient) * (0.7 + 3.0 * (spread - 0.12)) / insulation;
                    let surface = radiometry::clothing_surface(
                        SKIN_UNDER_CLOTHES,
                        climate.ambient,
                        climate.mean_radiant(PERSON_SKY_VIEW),
                        clo,
                        H_CONVECTION,
                    );
                    climate.emitting(surface + solar, emissivity::TEXTILE)
                }
            };
            Mat::new(k, rgb)
        };
        let top = cloth(rng, if warm { 1.4 } else { 1.0 });
        let legs = cloth(rng, 0.85);
        let short_sleeves = warm && rng.chance(0.6);
        let shorts = warm && rng.chance(0.4);
        let arms = if short_sleeves {
            skin.warmer(-0.8)
        } else {
            top
        };
        let shins = if shorts { skin.warmer(-1.2) } else { legs };
        let shoes = Mat::new(
            climate.emitting(
                climate.ambient + excess * 0.08 + climate.sun * 2.0,
                emissivity::TEXTILE,
            ),
            [0.12, 0.1, 0.1],
        );
        let hair = Mat::new(
            climate.emitting(
                climate.ambient + excess * rng.range(0.45, 0.7),
                emissivity::HAIR,
            ),
            *rng.pick(&HAIR),
        );
        let coat = !warm && !child && rng.chance(0.3);
        let backpack = rng.chance(0.2).then(|| {
            let rgb = *rng.pick(&CLOTH);
            Mat::new(
                climate.emitting(
                    climate.surface(rng.range(0.0, 1.5), 4.0 * darkness(rgb)),
                    emissivity::TEXTILE,
                ),
                rgb,
            )
        });
        let hat = (!warm && rng.chance(0.2)).then(|| {
            let rgb = *rng.pick(&CLOTH);
            Mat::new(
                climate.emitting(climate.ambient + excess * 0.2, emissivity::TEXTILE),
                rgb,
            )
        });
        PersonLook {
            height,
            build: rng.range(0.85, 1.2),
            child,
            skin,
            hair,
            top,
            arms,
            legs,
            shins,
            shoes,
            coat,
            backpack,
            hat,
            phone: rng.chance(0.1),
        }
    }
}

impl PersonLook {
    /// The same person under RGB exposure `light`.
    pub fn lit(&self, light: f32) -> PersonLook {
        let l = |m: Mat| m.shade(light);
        PersonLook {
            skin: l(self.skin),
            hair: l(self.hair),
            top: l(self.top),
            arms: l(self.arms),
            legs: l(self.legs),
            shins: l(self.shins),
            shoes: l(self.shoes),
            backpack: self.backpack.map(l),
            hat: self.hat.map(l),
            ..self.clone()
        }
    }
}

/// Body pose. Angles in radians; the object frame is the person's (z = facing).
#[derive(Debug, Clone, Copy)]
pub enum Pose {
    /// Walking; `phase` advances 2π per stride pair, `amplitude` is the leg swing.
    Walk {
        phase: f32,
        amplitude: f32,
    },
    Stand,
    /// Riding a bicycle: saddle, handlebar grips (centre) and pedal positions (object
    /// frame of the bicycle, which is also the rider's).
    Ride {
        saddle: P3,
        bar: P3,
        pedals: [P3; 2],
        lean: f32,
    },
}

/// Two-link inverse kinematics in the (z, y) plane: the middle joint of a limb from
/// `root` to `target` with segment lengths `l1`, `l2`, bent to the side of `bend` (+1:
/// towards +z from a downward limb, as a knee; -1 the other way).
fn ik(root: (f32, f32), target: (f32, f32), l1: f32, l2: f32, bend: f32) -> (f32, f32) {
    let (dz, dy) = (target.0 - root.0, target.1 - root.1);
    let d = (dz * dz + dy * dy)
        .sqrt()
        .clamp((l1 - l2).abs() + 1e-3, l1 + l2 - 1e-3);
    let cos_a = ((l1 * l1 + d * d - l2 * l2) / (2.0 * l1 * d)).clamp(-1.0, 1.0);
    let ang = dy.atan2(dz) + bend * cos_a.acos();
    (root.0 + l1 * ang.cos(), root.1 + l1 * ang.sin())
}

/// Point at distance `len` from `from` (z, y) along an angle measured from straight
/// down towards +z.
fn swing(from: P3, len: f32, angle: f32, dx: f32) -> P3 {
    P3::new(
        from.x + dx,
        from.y - len * angle.cos(),
        from.z + len * angle.sin(),
    )
}

struct Skeleton {
    hips: [P3; 2],
    knees: [P3; 2],
    ankles: [P3; 2],
    toes: [P3; 2],
    shoulders: [P3; 2],
    elbows: [P3; 2],
    hands: [P3; 2],
    neck: P3,
    head: P3,
}

fn skeleton(look: &PersonLook, pose: Pose) -> Skeleton {
    let s = look.height / 1.75;
    let w = look.build;
    let (thigh, shin, ankle_h) = (0.44 * s, 0.41 * s, 0.08 * s);
    let (upper, fore) = (0.30 * s, 0.27 * s);
    let side = [-1.0f32, 1.0];
    match pose {
        Pose::Walk { .. } | Pose::Stand => {
            let (phase, amp) = match pose {
                Pose::Walk { phase, amplitude } => (phase, amplitude),
                _ => (0.0, 0.0),
            };
            let hip_y = thigh + shin + ankle_h;
            let mut hips = side.map(|sx| P3::new(sx * 0.09 * s * w, hip_y, 0.0));
            let leg = |i: usize| {
                let lp = phase + i as f32 * std::f32::consts::PI;
                let a = amp * lp.sin();
                let bend = if amp > 0.0 {
                    0.1 + 0.55 * lp.cos().max(0.0)
                } else {
                    0.03
                };
                let knee = swing(hips[i], thigh, a, 0.0);
                let ankle = swing(knee, shin, a - bend, 0.0);
                (knee, ankle)
            };
            let (mut knees, mut ankles) = ([hips[0]; 2], [hips[0]; 2]);
            for i in 0..2 {
                (knees[i], ankles[i]) = leg(i);
            }
            // Stand on the lower foot.
            let drop = ankles[0].y.min(ankles[1].y) - ankle_h;
            for p in hips
                .iter_mut()
                .chain(knees.iter_mut())
                .chain(ankles.iter_mut())
            {
                p.y -= drop;
            }
            let top = hips[0].y + 0.5 * s;
            let shoulders = side.map(|sx| P3::new(sx * 0.19 * s * w, top, 0.0));
            let mut elbows = shoulders;
            let mut hands = shoulders;
            for i in 0..2 {
                // Arms swing against the leg on the same side.
                let a = -0.7 * amp * (phase + i as f32 * std::f32::consts::PI).sin();
                elbows[i] = swing(shoulders[i], upper, a, side[i] * 0.03 * s);
                let bend = if look.phone && i == 1 {
                    1.6
                } else {
                    0.15 + 0.3 * amp
                };
                hands[i] = swing(elbows[i], fore, a + bend, 0.0);
            }
            let neck = P3::new(0.0, top + 0.05 * s, 0.0);
            let toes = ankles.map(|a| P3::new(a.x, a.y - 0.04 * s, a.z + 0.16 * s));
            Skeleton {
                hips,
                knees,
                ankles,
                toes,
                shoulders,
                elbows,
                hands,
                neck,
                head: neck.add(P3::new(0.0, 0.13 * s, 0.0)),
            }
        }
        Pose::Ride {
            saddle,
            bar,
            pedals,
            lean,
        } => {
            let hip_c = saddle.add(P3::new(0.0, 0.06, -0.03));
            let hips = side.map(|sx| P3::new(sx * 0.09 * s * w, hip_c.y, hip_c.z));
            let mut knees = hips;
            let mut ankles = hips;
            for i in 0..2 {
                let foot = pedals[i];
                let k = ik(
                    (hips[i].z, hips[i].y),
                    (foot.z, foot.y + ankle_h * 0.5),
                    thigh,
                    shin + ankle_h * 0.5,
                    1.0,
                );
                knees[i] = P3::new(hips[i].x * 1.1, k.1, k.0);
                ankles[i] = P3::new(foot.x, foot.y + ankle_h * 0.5, foot.z);
            }
            let torso = 0.5 * s;
            let sh_c = P3::new(
                0.0,
                hip_c.y + torso * lean.cos(),
                hip_c.z + torso * lean.sin(),
            );
            let shoulders = side.map(|sx| P3::new(sx * 0.19 * s * w, sh_c.y, sh_c.z));
            let hands = side.map(|sx| P3::new(sx * 0.22, bar.y, bar.z));
            let mut elbows = shoulders;
            for i in 0..2 {
                let e = ik(
                    (shoulders[i].z, shoulders[i].y),
                    (hands[i].z, hands[i].y),
                    upper,
                    fore,
                    -1.0,
                );
                elbows[i] = P3::new(shoulders[i].x * 1.15, e.1, e.0);
            }
            let neck = sh_c.add(P3::new(0.0, 0.05 * s, 0.03 * s));
            let head = neck.add(P3::new(0.0, 0.12 * s, 0.05 * s));
            let toes = ankles.map(|a| P3::new(a.x, a.y - 0.03 * s, a.z + 0.14 * s));
            Skeleton {
                hips,
                knees,
                ankles,
                toes,
                shoulders,
                elbows,
                hands,
                neck,
                head,
            }
        }
    }
}

/// Draws a person into `b` (whose current part labels it).
pub fn draw(b: &mut Builder, look: &PersonLook, pose: Pose) {
    let s = look.height / 1.75;
    let w = look.build;
    let k = skeleton(look, pose);
    let start = b.len();
    for i in 0..2 {
        b.tube(k.hips[i], k.knees[i], 0.075 * s * w, look.legs);
        b.tube(k.knees[i], k.ankles[i], 0.058 * s * w, look.shins);
        b.tube(k.ankles[i], k.toes[i], 0.045 * s, look.shoes);
    }
    // Torso: two parallel tubes give a body wide from the front and narrow from the side.
    for i in 0..2 {
        let hip = P3::new(k.hips[i].x * 0.85, k.hips[i].y + 0.02 * s, k.hips[i].z);
        let sh = P3::new(
            k.shoulders[i].x * 0.55,
            k.shoulders[i].y - 0.04 * s,
            k.shoulders[i].z,
        );
        b.tube(hip, sh, 0.125 * s * w, look.top);
        if look.coat {
            let hem = P3::new(k.hips[i].x * 1.2, k.hips[i].y - 0.3 * s, k.hips[i].z - 0.02);
            b.tube(hip, hem, 0.12 * s * w, look.top);
        }
    }
    if let Some(pack) = look.backpack {
        let mid = k.hips[0].lerp(k.shoulders[1], 0.5);
        let back = P3::new(0.0, mid.y + 0.08 * s, mid.z - 0.2 * s);
        b.tube(
            back.add(P3::new(0.0, -0.12 * s, 0.0)),
            back.add(P3::new(0.0, 0.1 * s, 0.0)),
            0.13 * s,
            pack,
        );
    }
    for i in 0..2 {
        b.tube(k.shoulders[i], k.elbows[i], 0.05 * s * w, look.arms);
        b.tube(k.elbows[i], k.hands[i], 0.042 * s * w, look.arms);
        b.ball(k.hands[i], 0.045 * s, look.skin);
    }
    b.tube(
        k.neck.add(P3::new(0.0, -0.06 * s, 0.0)),
        k.head,
        0.05 * s,
        look.skin,
    );
    let head_r = 0.105 * s * if look.child { 1.2 } else { 1.0 };
    // Hair sits behind and above the face: facing away, it covers the face.
    b.ball(
        k.head.add(P3::new(0.0, 0.03 * s, -0.035 * s)),
        head_r * 0.98,
        look.hair,
    );
    b.ball(k.head, head_r, look.skin);
    if let Some(hat) = look.hat {
        b.ball(
            k.head.add(P3::new(0.0, 0.06 * s, -0.01 * s)),
            head_r * 0.92,
            hat,
        );
    }
    b.sort_by_depth(start);
}

#[cfg(test)]
mod tests {
    use super::ik;

    #[test]
    fn ik_reaches_with_the_right_lengths() {
        let j = ik((0.0, 1.0), (0.2, 0.2), 0.45, 0.45, 1.0);
        let d1 = ((j.0 - 0.0f32).powi(2) + (j.1 - 1.0f32).powi(2)).sqrt();
        let d2 = ((j.0 - 0.2f32).powi(2) + (j.1 - 0.2f32).powi(2)).sqrt();
        assert!((d1 - 0.45).abs() < 1e-4 && (d2 - 0.45).abs() < 1e-4);
        assert!(j.0 > 0.1, "knee bends forward: {j:?}");
    }
}
