//! An RTSP server for one GStreamer pipeline: how `pipelines/serve.sh` re-streams the
//! annotated thermal video to a video-management system (VMS).
//!
//! GStreamer has no RTSP server element that `gst-launch-1.0` could run, so this small
//! program wraps gst-rtsp-server: it mounts one media factory whose launch description
//! ends in a payloader named `pay0`, shares that media between every client (a camera
//! opens once, the model calibrates once), and prints the URL when it listens.
//!
//! ```sh
//! cargo run --release -p gst-plugin-thermalzsq --example serve -- --port 8554 --mount /thermal \
//!     'videotestsrc is-live=true ! jpegenc ! rtpjpegpay name=pay0 pt=26'
//! gst-launch-1.0 rtspsrc location=rtsp://127.0.0.1:8554/thermal ! decodebin ! autovideosink
//! ```
//! `--port 0` takes any free port; the first line on stdout is the URL to give clients.
//! Errors and warnings of the media pipeline go to stderr (the server keeps running, a
//! client's next request starts the media again).

mod cli;

use std::io::Write;
use std::process::ExitCode;

use gst::glib;
use gst::prelude::*;
use gst_rtsp_server::prelude::*;

struct Args {
    address: String,
    port: u16,
    mount: String,
    launch: String,
}

const USAGE: &str = "usage: serve [--address A] [--port P] [--mount /PATH] 'LAUNCH ending in a payloader named pay0'";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        address: "0.0.0.0".into(),
        port: 8554,
        mount: "/thermal".into(),
        launch: String::new(),
    };
    cli::each(|mut a| {
        match a.name.as_str() {
            "--address" => args.address = a.value()?,
            "--port" => args.port = a.parse()?,
            "--mount" => args.mount = a.value()?,
            "-h" | "--help" => return Err(USAGE.into()),
            s if !s.starts_with("--") && args.launch.is_empty() => args.launch = s.into(),
            other => return Err(format!("unknown argument {other}; {USAGE}")),
        }
        Ok(())
    })?;
    if args.launch.is_empty() {
        return Err(USAGE.into());
    }
    if !args.mount.starts_with('/') {
        return Err(format!("--mount {}: a path starting with /", args.mount));
    }
    Ok(args)
}

/// The pipeline gst-rtsp-server made around the media's element.
fn media_pipeline(media: &gst_rtsp_server::RTSPMedia) -> Option<gst::Pipeline> {
    media
        .element()
        .parent()
        .and_then(|p| p.downcast::<gst::Pipeline>().ok())
}

/// Prints the media pipeline's errors and warnings: gst-rtsp-server only logs them at
/// debug level, and a user whose model path is wrong must see why clients get nothing.
fn report_bus_problems(media: &gst_rtsp_server::RTSPMedia) {
    let Some(bus) = media_pipeline(media).and_then(|p| p.bus()) else {
        return;
    };
    bus.enable_sync_message_emission();
    bus.connect_sync_message(None, |_, msg| {
        let (kind, text) = match msg.view() {
            gst::MessageView::Error(e) => ("error", (e.error(), e.debug())),
            gst::MessageView::Warning(w) => ("warning", (w.error(), w.debug())),
            _ => return,
        };
        let source = msg.src().map(|s| s.path_string()).unwrap_or_default();
        eprintln!(
            "serve: {kind} from {source}: {} ({})",
            text.0,
            text.1.unwrap_or_default()
        );
    });
}

/// A served recording ends: stop it without waiting for an EOS. With `eos_shutdown`,
/// gst-rtsp-server stops a media by sending EOS and finishes when the pipeline posts its
/// EOS message, so that a live chain flushes (thermaldetect's JSON lines, the encoder).
/// A media whose source already ended and that the last client paused at its end may
/// never post that message again: it stays "unpreparing", cached, and every later client
/// is answered 503 Service Unavailable (seen: the 5th of 8 clients played back to back,
/// and all after it). Once EOS has passed the payloader everything is flushed, so from
/// then on the media stops at once.
fn stop_at_once_after_the_end(media: &gst_rtsp_server::RTSPMedia) {
    let Some(pay) = media
        .element()
        .downcast::<gst::Bin>()
        .ok()
        .and_then(|bin| bin.by_name("pay0"))
        .and_then(|pay| pay.static_pad("src"))
    else {
        return;
    };
    let weak = media.downgrade();
    pay.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
        if let Some(gst::PadProbeData::Event(ev)) = &info.data
            && ev.type_() == gst::EventType::Eos
            && let Some(media) = weak.upgrade()
        {
            media.set_eos_shutdown(false);
            return gst::PadProbeReturn::Remove;
        }
        gst::PadProbeReturn::Ok
    });
}

fn run(args: &Args) -> Result<(), String> {
    gst::init().map_err(|e| e.to_string())?;
    // Fails here, not at the first client, when an element is missing or misspelt.
    gst::parse::launch(&format!("( {} )", args.launch))
        .map_err(|e| format!("the media description does not parse: {e}"))?;

    let server = gst_rtsp_server::RTSPServer::new();
    server.set_address(&args.address);
    server.set_service(&args.port.to_string());
    let factory = gst_rtsp_server::RTSPMediaFactory::new();
    factory.set_launch(&format!("( {} )", args.launch));
    factory.set_shared(true);
    // Stopping the media sends EOS first, so that JSON lines and queued events are
    // flushed when the last client leaves.
    factory.set_eos_shutdown(true);
    factory.connect_media_configure(|_, media| {
        report_bus_problems(media);
        stop_at_once_after_the_end(media);
    });
    server
        .mount_points()
        .ok_or("the server has no mount points")?
        .add_factory(&args.mount, factory);

    let main_loop = glib::MainLoop::new(None, false);
    server
        .attach(None)
        .map_err(|e| format!("cannot listen on {}:{}: {e}", args.address, args.port))?;
    let host = match args.address.as_str() {
        "0.0.0.0" | "::" => "127.0.0.1",
        a => a,
    };
    println!("rtsp://{host}:{}{}", server.bound_port(), args.mount);
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    main_loop.run();
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => return cli::usage_error(&e),
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("serve: {e}");
            ExitCode::FAILURE
        }
    }
}
