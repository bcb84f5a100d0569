//! Temperatures of tracks: what a radiometric camera adds to an object followed over time.
//!
//! Why: one detection's temperature is a single reading of a box whose edges move from
//! frame to frame; an object's is a series. A track keeps its latest reading, the
//! hottest box maximum of its whole life (what fire watch and overheating machinery
//! ask: "has this object ever been above 90 °C?") and a short history of recent maxima
//! (a trend: is it heating up?). The history is bounded ([`HISTORY_LEN`]) so that a
//! track that lives for days costs the same as one that lives a second.
//!
//! [`HotThresholds`] is the `hot-threshold` setting: per label, the box maximum at which
//! a track is reported `hot` (once per track, see [`super::Analytics`]).

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

use crate::imaging::radiometry::BoxTemperature;

/// Readings kept per track: five seconds at 30 fps (1.2 kB a track). Older readings
/// leave the history; the life maximum keeps what they contributed.
pub const HISTORY_LEN: usize = 150;

/// One reading of a track's box maximum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// The track's age when it was read (1: the frame the track started in).
    pub age: u32,
    /// The hottest inner pixel of the box, °C.
    pub max: f32,
}

/// What is known of a track's temperature; built from the readings of the frames it
/// was matched in (frames in which it was only predicted add nothing).
#[derive(Debug, Clone, PartialEq)]
pub struct TrackTemperature {
    latest: BoxTemperature,
    hottest: f32,
    history: VecDeque<Reading>,
}

impl TrackTemperature {
    /// A track's first reading, at `age`.
    pub fn new(age: u32, reading: BoxTemperature) -> Self {
        let mut t = TrackTemperature {
            latest: reading,
            hottest: reading.max,
            history: VecDeque::with_capacity(HISTORY_LEN),
        };
        t.history.push_back(Reading {
            age,
            max: reading.max,
        });
        t
    }

    /// Adds the reading of the frame the track was matched in at `age`.
    pub fn record(&mut self, age: u32, reading: BoxTemperature) {
        self.latest = reading;
        self.hottest = self.hottest.max(reading.max);
        if self.history.len() == HISTORY_LEN {
            self.history.pop_front();
        }
        self.history.push_back(Reading {
            age,
            max: reading.max,
        });
    }

    /// The latest reading (of the latest matched frame that had one).
    pub fn latest(&self) -> BoxTemperature {
        self.latest
    }

    /// The hottest box maximum over the track's life, °C.
    pub fn hottest(&self) -> f32 {
        self.hottest
    }

    /// The latest [`HISTORY_LEN`] readings, oldest first.
    pub fn history(&self) -> impl ExactSizeIterator<Item = Reading> + '_ {
        self.history.iter().copied()
    }
}

/// `hot-threshold`: per label, the box maximum (°C) at which a track is `hot`; `*`
/// stands for every label not listed. Empty: no `hot` events.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HotThresholds {
    labels: Vec<(String, f32)>,
    any: Option<f32>,
}

/// A `hot-threshold` that does not parse, with what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThresholdError(String);

impl fmt::Display for ThresholdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "hot-threshold: {} (expected LABEL:°C, comma-separated, `*` for any other label, e.g. \"person:38,car:90,*:60\")",
            self.0
        )
    }
}

impl std::error::Error for ThresholdError {}

impl FromStr for HotThresholds {
    type Err = ThresholdError;

    /// `person:38,car:90,*:60`; an empty text is no threshold.
    fn from_str(text: &str) -> Result<Self, ThresholdError> {
        let mut hot = HotThresholds::default();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (label, value) = item
                .rsplit_once(':')
                .map(|(l, v)| (l.trim(), v.trim()))
                .filter(|(l, _)| !l.is_empty())
                .ok_or_else(|| ThresholdError(format!("`{item}` has no LABEL:")))?;
            let celsius = value
                .parse::<f32>()
                .ok()
                .filter(|c| c.is_finite())
                .ok_or_else(|| {
                    ThresholdError(format!("`{value}` in `{item}` is not a temperature"))
                })?;
            let listed =
                (label == "*" && hot.any.is_some()) || hot.labels.iter().any(|(l, _)| l == label);
            if listed {
                return Err(ThresholdError(format!("`{label}` is listed twice")));
            }
            if label == "*" {
                hot.any = Some(celsius);
            } else {
                hot.labels.push((label.to_string(), celsius));
            }
        }
        Ok(hot)
    }
}

impl HotThresholds {
    /// Whether no label has a threshold (no `hot` events).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.any.is_none()
    }

    /// The threshold of `label`: its own, else `*`'s, else none.
    pub fn of(&self, label: &str) -> Option<f32> {
        self.labels
            .iter()
            .find(|(l, _)| l == label)
            .map(|&(_, c)| c)
            .or(self.any)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(max: f32) -> BoxTemperature {
        BoxTemperature {
            max,
            median: max - 6.0,
            p90: max - 1.0,
        }
    }

    #[test]
    fn the_history_keeps_the_latest_readings_and_the_life_maximum_all_of_them() {
        let mut t = TrackTemperature::new(1, reading(80.0));
        for age in 2..=10 * HISTORY_LEN as u32 {
            t.record(age, reading(20.0 + (age % 7) as f32));
        }
        assert_eq!(t.history().len(), HISTORY_LEN, "bounded");
        let ages: Vec<u32> = t.history().map(|r| r.age).collect();
        let last = 10 * HISTORY_LEN as u32;
        assert_eq!(ages.first(), Some(&(last - HISTORY_LEN as u32 + 1)));
        assert_eq!(ages.last(), Some(&last), "oldest first");
        assert!(t.history().all(|r| r.max < 27.0), "80 °C left the history");
        assert_eq!(t.hottest(), 80.0, "but not the life maximum");
        assert_eq!(t.latest(), reading(20.0 + (last % 7) as f32));
    }

    #[test]
    fn thresholds_are_per_label_with_a_star_for_the_rest() {
        let hot: HotThresholds = "person:38, car:90,*:60".parse().unwrap();
        assert_eq!(hot.of("person"), Some(38.0));
        assert_eq!(hot.of("car"), Some(90.0));
        assert_eq!(hot.of("bicycle"), Some(60.0));
        let hot: HotThresholds = "freezer:-5.5".parse().unwrap();
        assert_eq!(hot.of("freezer"), Some(-5.5));
        assert_eq!(hot.of("person"), None, "no `*`: other labels are never hot");
        assert!("".parse::<HotThresholds>().unwrap().is_empty());
        assert!(" , ".parse::<HotThresholds>().unwrap().is_empty());
    }

    #[test]
    fn bad_thresholds_say_what_is_wrong() {
        for (text, says) in [
            ("person", "`person` has no LABEL:"),
            (":38", "`:38` has no LABEL:"),
            (
                "person:warm",
                "`warm` in `person:warm` is not a temperature",
            ),
            ("person:", "`` in `person:` is not a temperature"),
            ("person:inf", "is not a temperature"),
            ("person:38,person:40", "`person` is listed twice"),
            ("*:60,*:70", "`*` is listed twice"),
        ] {
            let e = text.parse::<HotThresholds>().unwrap_err().to_string();
            assert!(e.starts_with("hot-threshold: "), "{e}");
            assert!(e.contains(says), "{text}: {e}");
            assert!(e.contains("expected LABEL:°C"), "{e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }
}
