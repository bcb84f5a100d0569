//! `pipelined`: each frame is held back until the next one arrives; the next one is
//! pre-processed on a helper thread while the detector runs on the held one.
//!
//! Why: pre-processing a 640×512 frame (AGC histogram, letterbox resampling) takes
//! 0.4–0.5 ms, a tenth of an int8 run on the CPU, and without this it runs on the
//! streaming thread between two runs while the detector's cores wait. With it the
//! element's frame rate is the detector's own; the price is one frame of latency,
//! which the element adds to the latency query.
//!
//! The outputs are those of the element without it, frame for frame: frames are
//! finished in order by the same code (`ThermalDetect::frame`), only their tensor was
//! made earlier, and a tensor made with settings that changed in between is not used
//! (`Detector::detect_prepared`). Serialized events and the drain query first finish
//! and push the held frame, so nothing overtakes a frame it followed; flushing drops
//! it; EOS pushes it before the score and the JSON lines are finished.

use gst::prelude::*;
use gst::subclass::prelude::*;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use gst_base::prelude::*;
use gst_base::subclass::base_transform::GenerateOutputSuccess;
use thermalzsq::imaging::PixelFormat;
use thermalzsq::imaging::preprocess::{PreSettings, Prepared, Preprocess};

use super::InputLayout;
use super::imp::{CAT, Settings, ThermalDetect, Work, read_input};
use crate::sync::lock;

/// The streaming thread's pipelining state (in `Work`).
#[derive(Default)]
pub(super) struct Ahead {
    held: Option<Held>,
    /// Started with the second frame; stopped when the element stops.
    helper: Option<Helper>,
    /// Tensors whose frames are finished, to make the next ones in.
    spare: Vec<Vec<f32>>,
}

/// A frame waiting for the next one, with its tensor when it was made ahead.
struct Held {
    buffer: gst::Buffer,
    info: gst_video::VideoInfo,
    format: PixelFormat,
    prepared: Option<Prepared>,
}

impl Ahead {
    /// Gives back the tensor of a finished frame.
    pub(super) fn recycle(&mut self, prepared: Option<Prepared>) {
        if let Some(p) = prepared {
            self.spare.push(p.input);
        }
    }
}

/// A frame for the helper thread: its buffer (handed back with the tensor, so that
/// the streaming thread writes to it without a copy) and how to make its tensor.
struct Job {
    buffer: gst::Buffer,
    info: gst_video::VideoInfo,
    format: PixelFormat,
    layout: InputLayout,
    settings: PreSettings,
    tensor: Vec<f32>,
}

/// The job's buffer back, and its tensor (`None`: the frame could not be read; the
/// error is posted when the frame itself runs).
type Done = (gst::Buffer, Option<Prepared>);

/// One long-lived thread that makes tensors, one frame at a time (a thread per frame
/// would cost ~40 µs of the streaming thread's time in spawning and joining).
struct Helper {
    jobs: Option<Sender<Job>>,
    done: Receiver<Done>,
    thread: Option<JoinHandle<()>>,
}

impl Helper {
    /// `name`: the element's, so that the thread is `NAME-pre` in a debugger or `top`.
    fn start(name: &str) -> std::io::Result<Helper> {
        let (jobs, inbox) = channel::<Job>();
        let (outbox, done) = channel::<Done>();
        let thread = std::thread::Builder::new()
            .name(format!("{name}-pre"))
            .spawn(move || {
                // Kept between frames for its scratch buffers.
                let mut pre: Option<Preprocess> = None;
                for job in inbox {
                    let pre = match pre.take() {
                        Some(p) if p.settings() == job.settings => pre.insert(p),
                        _ => pre.insert(Preprocess::with_settings(job.settings)),
                    };
                    // A panic loses the tensor, never the frame.
                    let prepared = catch_unwind(AssertUnwindSafe(|| {
                        read_input(&job.buffer, &job.info, job.format, job.layout, |input| {
                            pre.prepare(input, job.tensor)
                        })
                        .ok()
                    }))
                    .ok()
                    .flatten();
                    if outbox.send((job.buffer, prepared)).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Helper {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
        })
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        // Closing the queue ends the thread's loop.
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl ThermalDetect {
    /// `generate_output` with `pipelined`: takes the frame BaseTransform queued, holds
    /// it, and finishes the one held before (if any) while the helper makes the new
    /// one's tensor.
    pub(super) fn generate_pipelined(
        &self,
        buffer: gst::Buffer,
    ) -> Result<GenerateOutputSuccess, gst::FlowError> {
        let settings = lock(&self.settings).clone();
        let (info, format, mut work, frames) = self.take_work()?;
        let result = self.step(buffer, info, format, &settings, &mut work, frames);
        self.put_work(work);
        result
    }

    fn step(
        &self,
        buffer: gst::Buffer,
        info: gst_video::VideoInfo,
        format: PixelFormat,
        settings: &Settings,
        work: &mut Work,
        frames: u64,
    ) -> Result<GenerateOutputSuccess, gst::FlowError> {
        let Some(held) = work.ahead.held.take() else {
            // The first frame: nothing to overlap with; it is pre-processed when it runs.
            work.ahead.held = Some(Held {
                buffer,
                info,
                format,
                prepared: None,
            });
            return Ok(GenerateOutputSuccess::NoOutput);
        };
        // The new frame's index is one more than the held one's.
        let job = match self.pre_settings_for(settings, work, frames + 1) {
            Some(pre) => {
                let tensor = work.ahead.spare.pop().unwrap_or_default();
                Ok(Job {
                    buffer,
                    info,
                    format,
                    layout: settings.input_layout,
                    settings: pre,
                    tensor,
                })
            }
            None => Err((buffer, info)),
        };
        let (buffer, info, prepared, finished) = match job {
            Ok(job) => {
                let info = job.info.clone();
                let helper = self.helper(work)?;
                helper
                    .jobs
                    .as_ref()
                    .and_then(|q| q.send(job).ok())
                    .ok_or_else(|| {
                        self.helper_died();
                        gst::FlowError::Error
                    })?;
                let finished = self.finish(held, settings, work);
                let helper = work.ahead.helper.as_ref().ok_or(gst::FlowError::Error)?;
                let (buffer, prepared) = helper.done.recv().map_err(|_| {
                    self.helper_died();
                    gst::FlowError::Error
                })?;
                (buffer, info, prepared, finished)
            }
            Err((buffer, info)) => {
                let finished = self.finish(held, settings, work);
                (buffer, info, None, finished)
            }
        };
        work.ahead.held = Some(Held {
            buffer,
            info,
            format,
            prepared,
        });
        finished.map(GenerateOutputSuccess::Buffer)
    }

    /// The helper thread, started on first use.
    fn helper<'w>(&self, work: &'w mut Work) -> Result<&'w Helper, gst::FlowError> {
        if work.ahead.helper.is_none() {
            let helper = Helper::start(&self.obj().name()).map_err(|e| {
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Thread,
                    ("Cannot start the pre-processing thread: {}", e)
                );
                gst::FlowError::Error
            })?;
            work.ahead.helper = Some(helper);
        }
        work.ahead.helper.as_ref().ok_or(gst::FlowError::Error)
    }

    fn helper_died(&self) {
        gst::element_imp_error!(
            self,
            gst::CoreError::Thread,
            ("The pre-processing thread ended unexpectedly")
        );
    }

    /// How frame `index`'s tensor is to be made: the running detector's settings with
    /// the element's AGC and polarity; `None` when the frame will not be detected on
    /// (no model yet, or between `interval`s).
    fn pre_settings_for(
        &self,
        settings: &Settings,
        work: &Work,
        index: u64,
    ) -> Option<PreSettings> {
        let loaded = work.loaded.as_ref()?;
        if !index.is_multiple_of(u64::from(settings.interval)) {
            return None;
        }
        let mut want = loaded.detector.pre_settings();
        want.agc = settings.agc();
        want.polarity = settings.polarity();
        Some(want)
    }

    /// Runs the held frame through the element and hands its buffer back.
    fn finish(
        &self,
        held: Held,
        settings: &Settings,
        work: &mut Work,
    ) -> Result<gst::Buffer, gst::FlowError> {
        let Held {
            mut buffer,
            info,
            format,
            prepared,
        } = held;
        let result = self.frame(
            buffer.make_mut(),
            &info,
            format,
            settings,
            work,
            prepared.as_ref(),
        );
        work.ahead.recycle(prepared);
        result.map(|_| buffer)
    }

    /// Finishes and pushes the held frame (before a serialized event, the drain query,
    /// EOS). On the streaming thread.
    pub(super) fn drain(&self) {
        let settings = lock(&self.settings).clone();
        if !settings.pipelined {
            return;
        }
        let finished = self
            .with_work(|work| {
                let held = work.ahead.held.take()?;
                Some(self.finish(held, &settings, work))
            })
            .flatten();
        match finished {
            None => {}
            Some(Ok(buffer)) => {
                if let Err(e) = self.obj().src_pad().push(buffer) {
                    gst::debug!(CAT, imp = self, "the held frame was not taken: {e:?}");
                }
            }
            // `frame` posted the error.
            Some(Err(e)) => gst::debug!(CAT, imp = self, "the held frame failed: {e:?}"),
        }
    }

    /// Forgets the held frame (flush).
    pub(super) fn drop_held(&self) {
        self.with_work(|work| {
            let held = work.ahead.held.take();
            work.ahead.recycle(held.and_then(|h| h.prepared));
        });
    }

    /// With `pipelined`, a frame leaves one frame later than it would: adds one frame
    /// duration to the latency upstream reported.
    pub(super) fn add_frame_latency(&self, query: &mut gst::query::Latency) {
        if !lock(&self.settings).pipelined {
            return;
        }
        let fps = lock(&self.state)
            .as_ref()
            .and_then(|s| s.info.as_ref().map(|i| i.fps()));
        let frame = match fps {
            Some(fps) if fps.numer() > 0 && fps.denom() > 0 => {
                gst::ClockTime::SECOND.mul_div_ceil(fps.denom() as u64, fps.numer() as u64)
            }
            _ => None,
        };
        let Some(frame) = frame else {
            gst::debug!(
                CAT,
                imp = self,
                "no frame rate: the held frame's latency is not reported"
            );
            return;
        };
        let (live, min, max) = query.result();
        query.set(live, min + frame, max.map(|m| m + frame));
    }
}
