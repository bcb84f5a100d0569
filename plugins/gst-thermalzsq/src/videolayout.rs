//! Where a buffer's planes lie: its `GstVideoMeta` when it carries one (a camera's or a
//! decoder's own buffer pool), else the layout of the negotiated caps.
//!
//! The elements map the whole buffer and cut the planes out with
//! `thermalzsq::imaging::Frame::in_buffer`, which checks every size. They do not use
//! `VideoFrameRef::plane_data`: it takes the meta's strides on trust and builds a slice
//! of `stride × rows` bytes, so a negative stride (a bottom-up frame) becomes a huge
//! unsigned one that overflows (a panic in debug builds) or wraps (release), and a
//! stride too large for the buffer yields a slice past the mapped memory.

use thermalzsq::imaging::frame::PlaneLayout;

/// Per plane, (offset, stride) in bytes, from the buffer's VideoMeta or the caps; an
/// error a user can act on for a meta that does not fit the caps or has a negative
/// stride.
pub fn plane_layout(
    buf: &gst::BufferRef,
    info: &gst_video::VideoInfo,
) -> Result<Box<PlaneLayout>, String> {
    let meta = buf.meta::<gst_video::VideoMeta>();
    let (offsets, strides) = match &meta {
        Some(meta) => {
            if meta.format() != info.format()
                || meta.width() < info.width()
                || meta.height() < info.height()
                || meta.n_planes() != info.n_planes()
            {
                return Err(format!(
                    "the buffer's VideoMeta describes a {} {}x{} frame of {} planes, the caps a {} {}x{} one of {}",
                    meta.format(),
                    meta.width(),
                    meta.height(),
                    meta.n_planes(),
                    info.format(),
                    info.width(),
                    info.height(),
                    info.n_planes()
                ));
            }
            (meta.offset(), meta.stride())
        }
        None => (info.offset(), info.stride()),
    };
    offsets
        .iter()
        .zip(strides)
        .enumerate()
        .map(|(plane, (offset, stride))| {
            usize::try_from(*stride).map(|s| (*offset, s)).map_err(|_| {
                format!(
                    "plane {plane} has a negative stride ({stride}): bottom-up frames are not supported"
                )
            })
        })
        .collect()
}
