//! Identities across frames: which detection of this frame is which object of the last.
//!
//! Two methods share one track life cycle. [`Method::ByteTrack`] (Zhang et al., 2022)
//! predicts every track with a Kalman filter and associates in two stages: confident
//! detections first, against every track (lost ones included, so an object that was
//! occluded for a while gets its identity back), then the low-confidence detections
//! against the tracks still unmatched — a person half hidden behind a car scores low but
//! should keep their track alive rather than end it. [`Method::Iou`] is the simple
//! baseline: last box, confident detections only, greedy by overlap.
//!
//! Life cycle: a confident detection nobody claims starts a *tentative* track; after
//! `min_hits` consecutive matches it is *confirmed* and only then gets its id (ids are
//! dense: 1, 2, 3 … as users see them); a tentative track that misses a frame is dropped
//! silently (a one-frame false positive never becomes an object). A confirmed track that
//! is not matched is *lost*, keeps being predicted, and ends after `lost_frames` frames
//! without a match. Association never mixes classes.

use super::assign::assign;
use super::kalman::KalmanBox;
use super::temperature::TrackTemperature;
use crate::detect::Detection;

/// How tracks and detections are associated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    /// Kalman prediction, two-stage (high then low confidence) optimal assignment.
    #[default]
    ByteTrack,
    /// Last box, confident detections only, greedy by IoU.
    Iou,
}

/// The tracker's settings (the defaults are the `thermaltrack` element's).
#[derive(Debug, Clone, PartialEq)]
pub struct TrackerConfig {
    pub method: Method,
    /// Detections at or above this confidence are associated first and may start tracks.
    pub high_threshold: f32,
    /// Detections below this are ignored; between the two they only keep tracks alive.
    pub low_threshold: f32,
    /// Least IoU between a track's predicted box and a detection to match them.
    pub match_iou: f32,
    /// Frames a confirmed track is kept without a match before it ends.
    pub lost_frames: u32,
    /// Consecutive matches before a track is confirmed (1: at once).
    pub min_hits: u32,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            method: Method::ByteTrack,
            high_threshold: 0.5,
            low_threshold: 0.1,
            match_iou: 0.3,
            lost_frames: 30,
            min_hits: 3,
        }
    }
}

/// ByteTrack's second stage matches low-confidence detections only where they overlap
/// a track well (its `match_thresh=0.5` for that stage): a low score is weak evidence.
const LOW_STAGE_MIN_IOU: f32 = 0.5;

/// Where a track stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackState {
    /// Seen, not yet `min_hits` times in a row; has no id yet.
    Tentative,
    /// Confirmed and matched in the latest frame.
    Tracked,
    /// Confirmed, not matched in the latest frame (predicted only).
    Lost,
}

impl TrackState {
    pub fn name(self) -> &'static str {
        match self {
            TrackState::Tentative => "tentative",
            TrackState::Tracked => "tracked",
            TrackState::Lost => "lost",
        }
    }
}

/// One object followed over time.
#[derive(Debug, Clone)]
pub struct Track {
    /// 0 while tentative, then unique and increasing from 1.
    pub id: u64,
    pub class_id: usize,
    pub label: String,
    /// Confidence of the latest matched detection.
    pub confidence: f32,
    /// The latest matched detection's box (`[x0, y0, x1, y1]`), or the prediction while
    /// lost.
    pub bbox: [f32; 4],
    pub state: TrackState,
    /// Frames since the track started.
    pub age: u32,
    /// Frames in which it was matched.
    pub hits: u32,
    /// Frames since it was last matched (0 when matched in the latest frame).
    pub misses: u32,
    /// With a radiometric camera: the readings of the detections it was matched to.
    pub temperature: Option<TrackTemperature>,
    motion: Option<KalmanBox>,
}

impl Track {
    fn new(d: &Detection, method: Method) -> Self {
        Track {
            id: 0,
            class_id: d.class_id,
            label: d.label.clone(),
            confidence: d.confidence,
            bbox: d.bbox,
            state: TrackState::Tentative,
            age: 1,
            hits: 1,
            misses: 0,
            temperature: d.temperature.map(|r| TrackTemperature::new(1, r)),
            motion: (method == Method::ByteTrack).then(|| KalmanBox::new(d.bbox)),
        }
    }

    /// Where the track is expected in the next frame.
    fn predict(&mut self) {
        self.age += 1;
        if let Some(k) = &mut self.motion {
            k.predict();
        }
    }

    /// The box association compares detections with.
    fn expected(&self) -> [f32; 4] {
        self.motion.as_ref().map_or(self.bbox, KalmanBox::bbox)
    }

    fn matched(&mut self, d: &Detection) {
        if let Some(k) = &mut self.motion {
            k.update(d.bbox);
        }
        self.bbox = d.bbox;
        self.confidence = d.confidence;
        if let Some(reading) = d.temperature {
            match &mut self.temperature {
                Some(t) => t.record(self.age, reading),
                None => self.temperature = Some(TrackTemperature::new(self.age, reading)),
            }
        }
        self.hits += 1;
        self.misses = 0;
        if self.state == TrackState::Lost {
            self.state = TrackState::Tracked;
        }
    }

    pub fn is_confirmed(&self) -> bool {
        self.state != TrackState::Tentative
    }
}

/// What one frame changed.
#[derive(Debug, Clone, Default)]
pub struct FrameUpdate {
    /// Per input detection (same order): the confirmed track it belongs to.
    pub assigned: Vec<Option<u64>>,
    /// Tracks confirmed in this frame.
    pub started: Vec<u64>,
    /// Tracks that ended in this frame (lost for more than `lost_frames`).
    pub ended: Vec<Track>,
}

/// A multi-object tracker over one video stream.
#[derive(Debug, Clone)]
pub struct Tracker {
    config: TrackerConfig,
    tracks: Vec<Track>,
    next_id: u64,
}

/// Intersection over union of two `[x0, y0, x1, y1]` boxes (0 for empty ones).
pub fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

impl Tracker {
    pub fn new(config: TrackerConfig) -> Self {
        Tracker {
            config,
            tracks: Vec::new(),
            next_id: 1,
        }
    }

    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// Every live track (tentative ones included), oldest first.
    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// The track of `id`, if it is live.
    pub fn track(&self, id: u64) -> Option<&Track> {
        self.tracks.iter().find(|t| t.id == id && id != 0)
    }

    /// Forgets every track (a seek or a discontinuity: identities do not carry over);
    /// ids keep increasing so that none is ever reused within a stream's life.
    pub fn reset(&mut self) {
        self.tracks.clear();
    }

    /// Takes the next frame's detections.
    pub fn update(&mut self, detections: &[Detection]) -> FrameUpdate {
        for t in &mut self.tracks {
            t.predict();
        }
        let matches = match self.config.method {
            Method::ByteTrack => self.associate_bytetrack(detections),
            Method::Iou => self.associate_greedy(detections),
        };
        let mut matched_track = vec![false; self.tracks.len()];
        let mut assigned_det: Vec<Option<usize>> = vec![None; detections.len()];
        for &(t, d) in &matches {
            self.tracks[t].matched(&detections[d]);
            matched_track[t] = true;
            assigned_det[d] = Some(t);
        }
        let mut update = FrameUpdate::default();
        self.confirm_and_lose(&matched_track, &mut update);
        let assigned = assigned_det
            .iter()
            .map(|t| t.map(|t| self.tracks[t].id).filter(|&id| id != 0))
            .collect();
        self.drop_dead(&matched_track, &mut update);
        update.assigned = assigned;
        self.start_tracks(detections, &assigned_det, &mut update);
        update
    }

    /// Tentative tracks with enough hits get their id; confirmed ones not matched are lost.
    fn confirm_and_lose(&mut self, matched: &[bool], update: &mut FrameUpdate) {
        for (t, &m) in self.tracks.iter_mut().zip(matched) {
            if !m {
                t.misses += 1;
                if t.state == TrackState::Tracked {
                    t.state = TrackState::Lost;
                }
                if let Some(k) = &t.motion {
                    t.bbox = k.bbox();
                }
            } else if t.state == TrackState::Tentative && t.hits >= self.config.min_hits {
                t.state = TrackState::Tracked;
                t.id = self.next_id;
                self.next_id += 1;
                update.started.push(t.id);
            }
        }
    }

    /// Unmatched tentative tracks vanish; lost ones past `lost_frames` end.
    fn drop_dead(&mut self, matched: &[bool], update: &mut FrameUpdate) {
        let lost_frames = self.config.lost_frames;
        let mut i = 0;
        self.tracks.retain(|t| {
            let keep = match t.state {
                TrackState::Tentative => matched[i],
                TrackState::Lost => t.misses <= lost_frames,
                TrackState::Tracked => true,
            };
            i += 1;
            if !keep && t.is_confirmed() {
                update.ended.push(t.clone());
            }
            keep
        });
    }

    /// Confident detections nobody claimed start tentative tracks (confirmed at once when
    /// `min_hits` is 1).
    fn start_tracks(
        &mut self,
        detections: &[Detection],
        assigned: &[Option<usize>],
        update: &mut FrameUpdate,
    ) {
        for (i, (d, a)) in detections.iter().zip(assigned).enumerate() {
            if a.is_none() && d.confidence >= self.config.high_threshold {
                let mut t = Track::new(d, self.config.method);
                if self.config.min_hits <= 1 {
                    t.state = TrackState::Tracked;
                    t.id = self.next_id;
                    self.next_id += 1;
                    update.started.push(t.id);
                    update.assigned[i] = Some(t.id);
                }
                self.tracks.push(t);
            }
        }
    }

    /// ByteTrack's association; returns (track, detection) pairs.
    fn associate_bytetrack(&self, detections: &[Detection]) -> Vec<(usize, usize)> {
        let c = &self.config;
        let high: Vec<usize> = (0..detections.len())
            .filter(|&d| detections[d].confidence >= c.high_threshold)
            .collect();
        let low: Vec<usize> = (0..detections.len())
            .filter(|&d| {
                let s = detections[d].confidence;
                s >= c.low_threshold && s < c.high_threshold
            })
            .collect();
        let confirmed: Vec<usize> = (0..self.tracks.len())
            .filter(|&t| self.tracks[t].is_confirmed())
            .collect();
        let tentative: Vec<usize> = (0..self.tracks.len())
            .filter(|&t| !self.tracks[t].is_confirmed())
            .collect();

        // 1. Confident detections against every confirmed track, lost ones included.
        let mut matches = self.optimal(&confirmed, &high, detections, c.match_iou);
        let taken = |m: &[(usize, usize)], d: usize| m.iter().any(|&(_, md)| md == d);
        let free = |m: &[(usize, usize)], t: usize| !m.iter().any(|&(mt, _)| mt == t);
        // 2. Low-confidence detections keep tracked (not lost) tracks alive.
        let still_tracked: Vec<usize> = confirmed
            .iter()
            .copied()
            .filter(|&t| free(&matches, t) && self.tracks[t].state == TrackState::Tracked)
            .collect();
        let second = self.optimal(
            &still_tracked,
            &low,
            detections,
            c.match_iou.max(LOW_STAGE_MIN_IOU),
        );
        matches.extend(second);
        // 3. The confident detections left continue tentative tracks.
        let high_left: Vec<usize> = high
            .iter()
            .copied()
            .filter(|&d| !taken(&matches, d))
            .collect();
        matches.extend(self.optimal(&tentative, &high_left, detections, c.match_iou));
        matches
    }

    /// The minimum-total-(1 − IoU) matching of `tracks` and `dets` with IoU ≥ `min_iou`,
    /// same class only.
    fn optimal(
        &self,
        tracks: &[usize],
        dets: &[usize],
        detections: &[Detection],
        min_iou: f32,
    ) -> Vec<(usize, usize)> {
        if tracks.is_empty() || dets.is_empty() {
            return Vec::new();
        }
        let cost: Vec<Vec<f64>> = tracks
            .iter()
            .map(|&t| {
                dets.iter()
                    .map(|&d| self.distance(t, &detections[d]))
                    .collect()
            })
            .collect();
        assign(&cost, 1.0 - min_iou as f64)
            .into_iter()
            .map(|(r, c)| (tracks[r], dets[c]))
            .collect()
    }

    /// 1 − IoU of a track's expected box and a detection; infinite across classes.
    fn distance(&self, t: usize, d: &Detection) -> f64 {
        let track = &self.tracks[t];
        if track.class_id != d.class_id {
            return f64::INFINITY;
        }
        1.0 - iou(track.expected(), d.bbox) as f64
    }

    /// The baseline: confident detections, highest IoU pairs first.
    fn associate_greedy(&self, detections: &[Detection]) -> Vec<(usize, usize)> {
        let c = &self.config;
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (t, track) in self.tracks.iter().enumerate() {
            for (d, det) in detections.iter().enumerate() {
                if det.confidence < c.high_threshold || det.class_id != track.class_id {
                    continue;
                }
                let overlap = iou(track.bbox, det.bbox);
                if overlap >= c.match_iou {
                    pairs.push((overlap, t, d));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2))));
        let mut track_used = vec![false; self.tracks.len()];
        let mut det_used = vec![false; detections.len()];
        let mut matches = Vec::new();
        for (_, t, d) in pairs {
            if !track_used[t] && !det_used[d] {
                track_used[t] = true;
                det_used[d] = true;
                matches.push((t, d));
            }
        }
        matches
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(class_id: usize, confidence: f32, bbox: [f32; 4]) -> Detection {
        Detection {
            class_id,
            label: ["person", "car"][class_id].to_string(),
            confidence,
            bbox,
            temperature: None,
        }
    }

    fn person_at(x: f32, confidence: f32) -> Detection {
        det(0, confidence, [x, 100.0, x + 20.0, 160.0])
    }

    fn tracker(method: Method) -> Tracker {
        Tracker::new(TrackerConfig {
            method,
            ..TrackerConfig::default()
        })
    }

    #[test]
    fn a_track_is_confirmed_after_min_hits_and_then_keeps_its_id() {
        for method in [Method::ByteTrack, Method::Iou] {
            let mut t = tracker(method);
            let mut ids = Vec::new();
            for f in 0..10 {
                let u = t.update(&[person_at(10.0 + 3.0 * f as f32, 0.9)]);
                if f < 2 {
                    assert_eq!(u.assigned, vec![None], "{method:?} frame {f}");
                    assert!(u.started.is_empty());
                } else if f == 2 {
                    assert_eq!(u.started, vec![1], "{method:?}");
                }
                ids.extend(u.assigned.into_iter().flatten());
            }
            assert_eq!(ids, vec![1; 8], "{method:?}");
        }
    }

    #[test]
    fn a_one_frame_false_positive_never_becomes_a_track() {
        let mut t = tracker(Method::ByteTrack);
        t.update(&[person_at(10.0, 0.9)]);
        let u = t.update(&[]);
        assert!(u.ended.is_empty() && u.started.is_empty());
        assert!(t.tracks().is_empty());
    }

    #[test]
    fn a_lost_track_is_found_again_within_lost_frames_and_ends_after() {
        let mut t = tracker(Method::ByteTrack);
        for f in 0..5 {
            t.update(&[person_at(10.0 + 2.0 * f as f32, 0.9)]);
        }
        // Occluded for 10 frames while walking on: the Kalman prediction follows.
        for _ in 5..15 {
            assert!(t.update(&[]).ended.is_empty());
        }
        assert_eq!(t.tracks()[0].state, TrackState::Lost);
        let u = t.update(&[person_at(10.0 + 2.0 * 15.0, 0.9)]);
        assert_eq!(u.assigned, vec![Some(1)], "re-found with the same id");
        let mut ended = Vec::new();
        for _ in 0..=30 {
            ended.extend(t.update(&[]).ended);
        }
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].id, 1);
        assert!(t.tracks().is_empty());
    }

    #[test]
    fn low_confidence_detections_keep_a_bytetrack_track_alive_but_not_the_baseline() {
        for (method, expected) in [(Method::ByteTrack, Some(1)), (Method::Iou, None)] {
            let mut t = tracker(method);
            for f in 0..5 {
                t.update(&[person_at(10.0 + f as f32, 0.9)]);
            }
            let u = t.update(&[person_at(15.0, 0.2)]);
            assert_eq!(u.assigned, vec![expected], "{method:?}");
        }
    }

    #[test]
    fn low_confidence_detections_never_start_tracks() {
        let mut t = tracker(Method::ByteTrack);
        for _ in 0..10 {
            t.update(&[person_at(10.0, 0.3)]);
        }
        assert!(t.tracks().is_empty());
    }

    #[test]
    fn classes_are_never_mixed() {
        let mut t = tracker(Method::ByteTrack);
        for _ in 0..4 {
            t.update(&[person_at(10.0, 0.9)]);
        }
        let u = t.update(&[det(1, 0.9, [10.0, 100.0, 30.0, 160.0])]);
        assert_eq!(u.assigned, vec![None]);
    }

    #[test]
    fn two_people_crossing_keep_their_ids_with_bytetrack() {
        // Two people walk towards each other on one line and pass (boxes overlap for a
        // few frames); the Kalman velocities carry each identity through the crossing.
        let mut t = tracker(Method::ByteTrack);
        let mut left_ids = Vec::new();
        for f in 0..40 {
            let x = f as f32 * 5.0;
            let u = t.update(&[person_at(x, 0.9), person_at(195.0 - x, 0.9)]);
            if let Some(id) = u.assigned[0] {
                left_ids.push(id);
            }
        }
        assert!(left_ids.len() >= 37);
        assert!(
            left_ids.iter().all(|&id| id == left_ids[0]),
            "the person walking right kept one id: {left_ids:?}"
        );
    }

    #[test]
    fn reset_forgets_tracks_but_never_reuses_ids() {
        let mut t = tracker(Method::ByteTrack);
        for _ in 0..3 {
            t.update(&[person_at(10.0, 0.9)]);
        }
        t.reset();
        assert!(t.tracks().is_empty());
        let mut started = Vec::new();
        for _ in 0..3 {
            started.extend(t.update(&[person_at(10.0, 0.9)]).started);
        }
        assert_eq!(started, vec![2]);
    }

    #[test]
    fn a_track_keeps_the_readings_of_its_matched_frames_only() {
        use crate::imaging::radiometry::BoxTemperature;
        let warm = |max: f32| {
            let mut d = person_at(10.0, 0.9);
            d.temperature = Some(BoxTemperature {
                max,
                median: 30.0,
                p90: 33.0,
            });
            d
        };
        let mut t = tracker(Method::ByteTrack);
        for max in [35.0, 37.5, 36.0] {
            t.update(&[warm(max)]);
        }
        // Occluded for two frames, then seen without a reading (a box off the counts).
        t.update(&[]);
        t.update(&[]);
        t.update(&[person_at(10.0, 0.9)]);
        let track = &t.tracks()[0];
        let temp = track.temperature.as_ref().expect("read while matched");
        let history: Vec<(u32, f32)> = temp.history().map(|r| (r.age, r.max)).collect();
        assert_eq!(history, vec![(1, 35.0), (2, 37.5), (3, 36.0)]);
        assert_eq!(temp.hottest(), 37.5);
        assert_eq!(temp.latest().max, 36.0);

        let mut cold = tracker(Method::ByteTrack);
        cold.update(&[person_at(10.0, 0.9)]);
        assert!(
            cold.tracks()[0].temperature.is_none(),
            "no radiometry, no temperature"
        );
    }

    #[test]
    fn iou_of_boxes() {
        assert_eq!(iou([0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]), 1.0);
        assert_eq!(iou([0.0, 0.0, 10.0, 10.0], [10.0, 0.0, 20.0, 10.0]), 0.0);
        assert!((iou([0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0]) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(iou([0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]), 0.0);
    }
}
