//! `thermaldetect`'s region-of-interest metas in, `tracking` params out.
//!
//! A meta counts as a detection when it has the `detection` param structure
//! `thermaldetect` writes ({label, class-id, confidence}); other metas (faces from
//! another element, say) are left alone.

use gst_video::VideoRegionOfInterestMeta;
use thermalzsq::detect::Detection;
use thermalzsq::track::{FrameUpdate, Tracker};

fn detection_of(meta: &VideoRegionOfInterestMeta) -> Option<Detection> {
    let p = meta.param("detection")?;
    let (x, y, w, h) = meta.rect();
    let [x, y, w, h] = [x, y, w, h].map(|v| v as f32);
    Some(Detection {
        class_id: p.get::<i32>("class-id").ok()?.max(0) as usize,
        label: p
            .get::<String>("label")
            .unwrap_or_else(|_| meta.roi_type().to_string()),
        confidence: p.get::<f64>("confidence").ok()? as f32,
        bbox: [x, y, x + w, y + h],
        temperature: None,
    })
}

/// The buffer's detections, in meta order.
pub fn detections(buf: &gst::BufferRef) -> Vec<Detection> {
    buf.iter_meta::<VideoRegionOfInterestMeta>()
        .filter_map(|m| detection_of(&m))
        .collect()
}

/// Gives each detection meta of a confirmed track its `tracking` param {id, age, hits,
/// state}; `update.assigned` is in the order [`detections`] returned.
pub fn tag(buf: &mut gst::BufferRef, tracker: &Tracker, update: &FrameUpdate) {
    let mut assigned = update.assigned.iter();
    for mut meta in buf.iter_meta_mut::<VideoRegionOfInterestMeta>() {
        if detection_of(&meta).is_none() {
            continue;
        }
        let Some(track) = assigned
            .next()
            .copied()
            .flatten()
            .and_then(|id| tracker.track(id))
        else {
            continue;
        };
        meta.add_param(
            gst::Structure::builder("tracking")
                .field("id", track.id)
                .field("age", track.age)
                .field("hits", track.hits)
                .field("state", track.state.name())
                .build(),
        );
    }
}
