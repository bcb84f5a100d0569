//! What a surface looks like to both cameras: apparent temperature for the thermal
//! frame, colour for the RGB twin.

/// Apparent (radiometric) temperature in kelvin and linear-ish sRGB colour in 0..1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mat {
    pub kelvin: f32,
    pub rgb: [f32; 3],
}

impl Mat {
    pub const fn new(kelvin: f32, rgb: [f32; 3]) -> Self {
        Mat { kelvin, rgb }
    }

    /// The same surface lit differently in visible light (temperature unchanged).
    pub fn shade(self, k: f32) -> Mat {
        Mat {
            kelvin: self.kelvin,
            rgb: self.rgb.map(|c| (c * k).clamp(0.0, 1.0)),
        }
    }

    /// The same colour, `dk` kelvin warmer.
    pub fn warmer(self, dk: f32) -> Mat {
        Mat {
            kelvin: self.kelvin + dk,
            rgb: self.rgb,
        }
    }
}
