//! Zones (polygons) and lines drawn on the camera's frame, as `thermaltrack`'s `zones`
//! file gives them:
//!
//! ```json
//! {"zones": [{"name": "gate", "polygon": [[x, y], ...], "labels": ["person"]}],
//!  "lines": [{"name": "entry", "points": [[x0, y0], [x1, y1]], "labels": ["car"]}]}
//! ```
//!
//! Coordinates are frame pixels; `labels` is optional (absent: every label counts).
//! A track's position is its box's bottom centre, where a person's feet or a car's
//! wheels touch the ground: the point a zone painted on the ground means.

use std::path::Path;

use serde::Deserialize;

/// A polygon of the frame; tracks whose reference point is inside are "in" it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Zone {
    pub name: String,
    pub polygon: Vec<[f32; 2]>,
    #[serde(default)]
    pub labels: Option<Vec<String>>,
}

/// A tripwire from `points[0]` to `points[1]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Line {
    pub name: String,
    pub points: [[f32; 2]; 2],
    #[serde(default)]
    pub labels: Option<Vec<String>>,
}

/// Everything one camera watches for.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zones {
    #[serde(default)]
    pub zones: Vec<Zone>,
    #[serde(default)]
    pub lines: Vec<Line>,
}

/// The side of a line a point is on, seen on screen from `points[0]` towards
/// `points[1]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Left,
    Right,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Left => "left",
            Side::Right => "right",
        }
    }
}

fn counts(labels: &Option<Vec<String>>, label: &str) -> bool {
    labels.as_ref().is_none_or(|l| l.iter().any(|x| x == label))
}

impl Zone {
    /// Whether tracks of `label` count in this zone.
    pub fn applies_to(&self, label: &str) -> bool {
        counts(&self.labels, label)
    }

    /// Even-odd rule: a point on the boundary may fall either way.
    pub fn contains(&self, p: [f32; 2]) -> bool {
        let n = self.polygon.len();
        let mut inside = false;
        for i in 0..n {
            let (a, b) = (self.polygon[i], self.polygon[(i + n - 1) % n]);
            if (a[1] > p[1]) != (b[1] > p[1]) {
                let x = a[0] + (p[1] - a[1]) * (b[0] - a[0]) / (b[1] - a[1]);
                if p[0] < x {
                    inside = !inside;
                }
            }
        }
        inside
    }
}

/// Twice the signed area of (a, b, p): positive when p is to the right of a→b on
/// screen (image y grows downwards).
fn cross(a: [f32; 2], b: [f32; 2], p: [f32; 2]) -> f32 {
    (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
}

impl Line {
    /// Whether tracks of `label` count on this line.
    pub fn applies_to(&self, label: &str) -> bool {
        counts(&self.labels, label)
    }

    /// The side `p` is on; `None` exactly on the line's extension.
    pub fn side(&self, p: [f32; 2]) -> Option<Side> {
        let c = cross(self.points[0], self.points[1], p);
        (c != 0.0).then_some(if c > 0.0 { Side::Right } else { Side::Left })
    }

    /// Whether a move from `from` to `to` crosses the segment, and to which side. A
    /// move that only touches the line does not cross it.
    pub fn crossing(&self, from: [f32; 2], to: [f32; 2]) -> Option<Side> {
        let [a, b] = self.points;
        let (s_from, s_to) = (self.side(from)?, self.side(to)?);
        if s_from == s_to {
            return None;
        }
        // The move's endpoints are on both sides of the line; the line's endpoints must
        // be on both sides of the move (or on it) for the segments to meet.
        let (ca, cb) = (cross(from, to, a), cross(from, to, b));
        (ca * cb <= 0.0).then_some(s_to)
    }
}

/// Why a zones file cannot be used.
#[derive(Debug)]
pub enum ZonesError {
    Read(std::io::Error),
    Parse(serde_json::Error),
    /// A zone with fewer than three corners, a line of zero length, a repeated name.
    Invalid(String),
}

impl std::fmt::Display for ZonesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ZonesError::Read(e) => write!(f, "cannot read the zones file: {e}"),
            ZonesError::Parse(e) => write!(
                f,
                "the zones file is not valid ({e}); expected {{\"zones\":[{{\"name\":..,\
                 \"polygon\":[[x,y],..]}}],\"lines\":[{{\"name\":..,\"points\":[[x0,y0],[x1,y1]]}}]}}"
            ),
            ZonesError::Invalid(why) => write!(f, "the zones file is not valid: {why}"),
        }
    }
}

impl std::error::Error for ZonesError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ZonesError::Read(e) => Some(e),
            ZonesError::Parse(e) => Some(e),
            ZonesError::Invalid(_) => None,
        }
    }
}

impl Zones {
    pub fn from_json(text: &str) -> Result<Zones, ZonesError> {
        let zones: Zones = serde_json::from_str(text).map_err(ZonesError::Parse)?;
        zones.validate()?;
        Ok(zones)
    }

    pub fn load(path: &Path) -> Result<Zones, ZonesError> {
        Zones::from_json(&std::fs::read_to_string(path).map_err(ZonesError::Read)?)
    }

    fn validate(&self) -> Result<(), ZonesError> {
        let mut names = std::collections::HashSet::new();
        for z in &self.zones {
            if z.polygon.len() < 3 {
                return Err(ZonesError::Invalid(format!(
                    "zone '{}' has {} corners (at least 3)",
                    z.name,
                    z.polygon.len()
                )));
            }
            if !names.insert(("zone", z.name.as_str())) {
                return Err(ZonesError::Invalid(format!("two zones named '{}'", z.name)));
            }
        }
        for l in &self.lines {
            if l.points[0] == l.points[1] {
                return Err(ZonesError::Invalid(format!(
                    "line '{}' has zero length",
                    l.name
                )));
            }
            if !names.insert(("line", l.name.as_str())) {
                return Err(ZonesError::Invalid(format!("two lines named '{}'", l.name)));
            }
        }
        Ok(())
    }
}

/// A box's reference point: its bottom centre.
pub fn reference_point(bbox: [f32; 4]) -> [f32; 2] {
    [(bbox[0] + bbox[2]) / 2.0, bbox[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square() -> Zone {
        Zone {
            name: "gate".into(),
            polygon: vec![[10.0, 10.0], [20.0, 10.0], [20.0, 20.0], [10.0, 20.0]],
            labels: None,
        }
    }

    #[test]
    fn points_inside_and_outside_a_polygon() {
        let z = square();
        assert!(z.contains([15.0, 15.0]));
        assert!(!z.contains([5.0, 15.0]));
        assert!(!z.contains([25.0, 15.0]));
        assert!(!z.contains([15.0, 25.0]));
        // A concave L shape.
        let l = Zone {
            polygon: vec![
                [0.0, 0.0],
                [10.0, 0.0],
                [10.0, 4.0],
                [4.0, 4.0],
                [4.0, 10.0],
                [0.0, 10.0],
            ],
            ..square()
        };
        assert!(l.contains([2.0, 8.0]));
        assert!(!l.contains([8.0, 8.0]));
    }

    #[test]
    fn crossing_a_line_reports_the_side_reached() {
        // A horizontal line drawn left to right: below it (larger y) is its right.
        let line = Line {
            name: "entry".into(),
            points: [[0.0, 50.0], [100.0, 50.0]],
            labels: None,
        };
        assert_eq!(line.crossing([50.0, 40.0], [50.0, 60.0]), Some(Side::Right));
        assert_eq!(line.crossing([50.0, 60.0], [50.0, 40.0]), Some(Side::Left));
        assert_eq!(
            line.crossing([50.0, 40.0], [50.0, 45.0]),
            None,
            "no crossing"
        );
        assert_eq!(
            line.crossing([150.0, 40.0], [150.0, 60.0]),
            None,
            "past the segment's end"
        );
        assert_eq!(line.crossing([50.0, 40.0], [50.0, 50.0]), None, "touching");
    }

    #[test]
    fn a_zones_file_parses_and_bad_ones_say_why() {
        let z = Zones::from_json(
            r#"{"zones":[{"name":"gate","polygon":[[0,0],[10,0],[10,10]],"labels":["person"]}],
                "lines":[{"name":"entry","points":[[0,5],[10,5]]}]}"#,
        )
        .unwrap();
        assert_eq!(z.zones[0].name, "gate");
        assert!(z.zones[0].applies_to("person") && !z.zones[0].applies_to("car"));
        assert!(z.lines[0].applies_to("car"));
        let err = Zones::from_json(r#"{"zones":[{"name":"a","polygon":[[0,0],[1,1]]}]}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("zone 'a' has 2 corners"), "{err}");
        let err = Zones::from_json(r#"{"zone":[]}"#).unwrap_err().to_string();
        assert!(err.contains("not valid"), "{err}");
    }

    #[test]
    fn the_reference_point_is_the_bottom_centre() {
        assert_eq!(reference_point([10.0, 20.0, 30.0, 60.0]), [20.0, 60.0]);
    }
}
