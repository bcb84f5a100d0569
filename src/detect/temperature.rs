//! Detections with temperatures: each box's reading from the radiometric counts, and a
//! per-class plausibility gate on it.
//!
//! Why a gate: a thermal detector's false positives are shapes that look like people
//! in the 8-bit view (lamp posts, sun-warmed walls, poles) but are not at body
//! temperature. `person:25-42` keeps a person box only when its hottest inner pixel is
//! between 25 and 42 °C, which no detector trained on AGC images can know.

use std::fmt;
use std::str::FromStr;

use super::Detection;
use crate::imaging::frame::FrameRef;
use crate::imaging::radiometry::{Counts, Radiometry};

/// Reads every detection's temperature from a 16-bit frame's counts (the frame the
/// boxes were found in). Other formats carry no counts: the detections stay without.
pub fn measure(frame: &FrameRef, radiometry: Radiometry, detections: &mut [Detection]) {
    let Ok(counts) = Counts::new(frame) else {
        return;
    };
    let mut scratch = Vec::new();
    for d in detections {
        d.temperature = counts.in_box(d.bbox, radiometry, &mut scratch);
    }
}

/// A class's plausible range of a box's hottest temperature, °C.
#[derive(Debug, Clone, PartialEq)]
struct Range {
    label: String,
    low: f32,
    high: f32,
}

/// `temperature-gate`: per class label, the range of hottest temperatures a detection
/// of it may have. Classes not listed and detections without a temperature pass.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TemperatureGate {
    ranges: Vec<Range>,
}

/// A gate that does not parse, with what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateError(String);

impl fmt::Display for GateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "temperature-gate: {} (expected LABEL:LOW-HIGH in °C, comma-separated, e.g. \"person:25-42,car:-40-120\")",
            self.0
        )
    }
}

impl std::error::Error for GateError {}

/// `LOW-HIGH`, either side possibly negative: the separator is the first `-` that
/// follows a digit or a point.
fn parse_range(text: &str) -> Option<(f32, f32)> {
    let bytes = text.as_bytes();
    let cut = (1..bytes.len())
        .find(|&i| bytes[i] == b'-' && (bytes[i - 1].is_ascii_digit() || bytes[i - 1] == b'.'))?;
    let low: f32 = text[..cut].trim().parse().ok()?;
    let high: f32 = text[cut + 1..].trim().parse().ok()?;
    (low.is_finite() && high.is_finite()).then_some((low, high))
}

impl FromStr for TemperatureGate {
    type Err = GateError;

    /// `person:25-42,car:-40-120`; an empty text is no gate.
    fn from_str(text: &str) -> Result<Self, GateError> {
        let mut ranges: Vec<Range> = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (label, range) = item
                .rsplit_once(':')
                .filter(|(label, _)| !label.trim().is_empty())
                .ok_or_else(|| GateError(format!("`{item}` has no LABEL:")))?;
            let (low, high) = parse_range(range)
                .ok_or_else(|| GateError(format!("`{range}` in `{item}` is not LOW-HIGH")))?;
            if low > high {
                return Err(GateError(format!(
                    "`{item}`: the low end {low} is above the high end {high}"
                )));
            }
            let label = label.trim().to_string();
            if ranges.iter().any(|r| r.label == label) {
                return Err(GateError(format!("`{label}` is listed twice")));
            }
            ranges.push(Range { label, low, high });
        }
        Ok(TemperatureGate { ranges })
    }
}

impl TemperatureGate {
    /// Whether the gate lists no class (lets everything pass).
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Whether a detection is plausible: its class is not listed, it has no
    /// temperature, or its hottest inner pixel is inside its class's range.
    pub fn allows(&self, d: &Detection) -> bool {
        let Some(t) = d.temperature else {
            return true;
        };
        self.ranges
            .iter()
            .find(|r| r.label == d.label)
            .is_none_or(|r| (r.low..=r.high).contains(&t.max))
    }

    /// Drops the detections the gate does not allow.
    pub fn retain(&self, detections: &mut Vec<Detection>) {
        if !self.is_empty() {
            detections.retain(|d| self.allows(d));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imaging::radiometry::BoxTemperature;

    fn det(label: &str, max: Option<f32>) -> Detection {
        Detection {
            class_id: 0,
            label: label.into(),
            confidence: 0.9,
            bbox: [0.0, 0.0, 10.0, 10.0],
            temperature: max.map(|max| BoxTemperature {
                max,
                median: max - 5.0,
                p90: max - 1.0,
            }),
        }
    }

    #[test]
    fn a_gate_keeps_plausible_detections_of_the_classes_it_lists() {
        let gate: TemperatureGate = "person:25-42, car:-40-120".parse().unwrap();
        assert!(gate.allows(&det("person", Some(35.9))));
        assert!(gate.allows(&det("person", Some(25.0))));
        assert!(!gate.allows(&det("person", Some(12.3))), "a lamp post");
        assert!(
            !gate.allows(&det("person", Some(55.0))),
            "a sun-heated wall"
        );
        assert!(gate.allows(&det("car", Some(-12.0))));
        assert!(gate.allows(&det("bicycle", Some(-60.0))), "not listed");
        assert!(gate.allows(&det("person", None)), "no radiometry");
        let mut ds = vec![det("person", Some(10.0)), det("person", Some(30.0))];
        gate.retain(&mut ds);
        assert_eq!(ds.len(), 1);
    }

    #[test]
    fn negative_and_fractional_ends_parse() {
        let gate: TemperatureGate = "ice:-40--10.5,person:25.5-42".parse().unwrap();
        assert!(gate.allows(&det("ice", Some(-20.0))));
        assert!(!gate.allows(&det("ice", Some(-10.0))));
        assert!(!gate.allows(&det("person", Some(25.4))));
        assert!("".parse::<TemperatureGate>().unwrap().is_empty());
    }

    #[test]
    fn bad_gates_say_what_is_wrong() {
        for (text, says) in [
            ("person", "`person` has no LABEL:"),
            (":1-2", "has no LABEL:"),
            ("person:25", "`25` in `person:25` is not LOW-HIGH"),
            ("person:hot-42", "is not LOW-HIGH"),
            ("person:42-25", "the low end 42 is above the high end 25"),
            ("person:1-2,person:3-4", "`person` is listed twice"),
        ] {
            let e = text.parse::<TemperatureGate>().unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
            assert!(e.contains("expected LABEL:LOW-HIGH"), "{e}");
        }
    }
}
