//! `thermaldetect`'s region-of-interest metas in, `tracking` params out.
//!
//! A meta counts as a detection when it has the `detection` param structure
//! `thermaldetect` writes ({label, class-id, confidence}, and with a radiometric camera
//! temperature-max, temperature-median, temperature-p90 in °C); other metas (faces from
//! another element, say) are left alone.

use gst_video::VideoRegionOfInterestMeta;
use thermalzsq::detect::Detection;
use thermalzsq::imaging::radiometry::BoxTemperature;
use thermalzsq::track::{FrameUpdate, Tracker};

/// The box temperature of a `detection` structure: all three fields, or none.
fn temperature_of(p: &gst::StructureRef) -> Option<BoxTemperature> {
    let celsius = |field| p.get::<f64>(field).ok().map(|c| c as f32);
    Some(BoxTemperature {
        max: celsius("temperature-max")?,
        median: celsius("temperature-median")?,
        p90: celsius("temperature-p90")?,
    })
}

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
        temperature: temperature_of(p),
    })
}

/// The buffer's detections, in meta order.
pub fn detections(buf: &gst::BufferRef) -> Vec<Detection> {
    buf.iter_meta::<VideoRegionOfInterestMeta>()
        .filter_map(|m| detection_of(&m))
        .collect()
}

/// Gives each detection meta of a confirmed track its `tracking` param {id, age, hits,
/// state, and with temperatures temperature-hottest: the hottest box maximum of the
/// track's life, °C}; `update.assigned` is in the order [`detections`] returned.
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
                .field_if_some(
                    "temperature-hottest",
                    track.temperature.as_ref().map(|t| t.hottest() as f64),
                )
                .build(),
        );
    }
}
