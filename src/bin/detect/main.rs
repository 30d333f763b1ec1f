//! `detect`: the offline batch front end. One warm plan for every image; one JSON object per image per
//! line on stdout (the API response plus `"file"`); a bad image gets an error line and the rest still run.
//!
//! With `--annotate DIR`, each image's annotated picture is written as `DIR/<stem>.annotated.jpg` (or
//! `.png`); inputs of the same stem from different folders get `<stem>-2`, `<stem>-3`... so none
//! overwrites another, and the line names the file written (`"annotated"`).
//!
//! With `--metrics`, each image's CloudWatch metric records (EMF, as the Lambda function writes them) go
//! to stderr, one JSON document per line, so a batch is measured the way the function is.
//!
//! Exit status: 0 all images detected, 1 at least one image failed, 2 bad usage or unusable model.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

mod pictures;

use pictures::PictureNames;

use clap::Parser;
use object_detector::metrics::{Detected, Metrics, Observation};
use object_detector::response::millis;
use object_detector::{DetectOptions, Detector, ErrorCode, Response, Settings};
use serde::Serialize;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Detect objects in images; prints one JSON object per image (JSON Lines)."
)]
struct Args {
    /// Minimum score of a reported detection (0..=1; model default when omitted).
    #[arg(long, value_name = "F")]
    score_threshold: Option<String>,
    /// IoU above which a lower-scored box of the same class is suppressed (0..=1).
    #[arg(long, value_name = "F")]
    iou_threshold: Option<String>,
    /// Most detections reported per image.
    #[arg(long, value_name = "N")]
    max_detections: Option<String>,
    /// Only report these labels, comma-separated (e.g. "person,dog").
    #[arg(long, value_name = "LABELS")]
    classes: Option<String>,
    /// Write each image's annotated picture (boxes and labels drawn) into this folder.
    #[arg(long, value_name = "DIR")]
    annotate: Option<PathBuf>,
    /// Encoding of the annotated pictures.
    #[arg(long, value_name = "FORMAT", requires = "annotate", value_parser = ["jpeg", "png"], default_value = "jpeg")]
    annotate_format: String,
    /// Longer side of the annotated pictures at most (64..=4096; default 1280).
    #[arg(long, value_name = "N", requires = "annotate")]
    annotate_max_side: Option<String>,
    /// JPEG quality of the annotated pictures (1..=100; default 85).
    #[arg(long, value_name = "Q", requires = "annotate")]
    jpeg_quality: Option<String>,
    /// Write each image's CloudWatch metric records (EMF) to stderr, as the Lambda function writes them
    /// (namespace and per-class records from METRICS_NAMESPACE and METRICS_PER_CLASS).
    #[arg(long)]
    metrics: bool,
    /// Print the model's load time to stderr.
    #[arg(short, long)]
    verbose: bool,
    /// Image files; `-` reads one image from standard input.
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

#[derive(Serialize)]
struct Line<'a> {
    file: &'a str,
    #[serde(flatten)]
    response: &'a Response,
    /// The annotated picture written for this image.
    #[serde(skip_serializing_if = "Option::is_none")]
    annotated: Option<&'a Path>,
}

#[derive(Serialize)]
struct ErrorLine<'a> {
    file: &'a str,
    error: ErrorBody,
}

#[derive(Serialize)]
struct ErrorBody {
    code: ErrorCode,
    message: String,
}

fn options(args: &Args) -> object_detector::Result<DetectOptions> {
    let mut options = DetectOptions::default();
    for (name, value) in [
        ("score_threshold", &args.score_threshold),
        ("iou_threshold", &args.iou_threshold),
        ("max_detections", &args.max_detections),
        ("classes", &args.classes),
        ("annotate_max_side", &args.annotate_max_side),
        ("jpeg_quality", &args.jpeg_quality),
    ] {
        if let Some(v) = value {
            options.set(name, v)?;
        }
    }
    if args.annotate.is_some() {
        options.set("format", &args.annotate_format)?;
    }
    Ok(options)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let options = match options(&args) {
        Ok(o) => o,
        Err(e) => return usage_error(&e.to_string()),
    };
    let (settings, detector) =
        match Settings::from_env().and_then(|s| Ok((Detector::from_settings(&s)?, s))) {
            Ok((d, s)) => (s, d),
            Err(e) => return usage_error(&e.to_string()),
        };
    // `--metrics` asks for the records whatever `METRICS` says; the namespace and per-class choice
    // still come from the environment.
    let metrics = args.metrics.then(|| {
        let m = detector.manifest();
        Metrics::new(
            settings.metrics.clone(),
            &m.name,
            &m.version,
            millis(detector.plan_build_time()),
            None,
        )
    });
    // Validate options against the model's labels before touching any file.
    if let Err(e) = options.resolve(detector.manifest()) {
        return usage_error(&e.to_string());
    }
    if args.verbose {
        eprintln!(
            "detect: model {} {} ready in {:.1} ms ({}, {} thread{})",
            detector.manifest().name,
            detector.manifest().version,
            detector.plan_build_time().as_secs_f64() * 1e3,
            detector.run_config().backend.name(),
            detector.run_config().threads,
            if detector.run_config().threads == 1 {
                ""
            } else {
                "s"
            }
        );
    }

    let mut names = match &args.annotate {
        Some(dir) => match std::fs::create_dir_all(dir) {
            Ok(()) => Some(PictureNames {
                dir: dir.clone(),
                used: HashSet::new(),
            }),
            Err(e) => return usage_error(&format!("--annotate {}: {e}", dir.display())),
        },
        None => None,
    };

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut failed = 0usize;
    for (i, file) in args.images.iter().enumerate() {
        let start = Instant::now();
        let result = read(file)
            .map_err(|e| (ErrorCode::FileNotReadable, e.to_string()))
            .and_then(|bytes| {
                detector
                    .detect(&bytes, &options)
                    .map_err(|e| (e.code(), e.to_string()))
            })
            .and_then(|response| {
                let written = match (&mut names, &response.annotated) {
                    (Some(names), Some(picture)) => {
                        let path = names.next(file, picture.encoding.extension());
                        std::fs::write(&path, &picture.bytes).map_err(|e| {
                            (
                                ErrorCode::FileNotWritable,
                                format!("{}: {e}", path.display()),
                            )
                        })?;
                        Some(path)
                    }
                    _ => None,
                };
                Ok((response, written))
            });
        let line = match &result {
            Ok((response, written)) => serde_json::to_string(&Line {
                file,
                response,
                annotated: written.as_deref(),
            }),
            Err((code, message)) => {
                failed += 1;
                serde_json::to_string(&ErrorLine {
                    file,
                    error: ErrorBody {
                        code: *code,
                        message: message.clone(),
                    },
                })
            }
        };
        let line = line.expect("response types always serialize");
        if let Some(metrics) = &metrics {
            let observation = Observation {
                latency_ms: Some(millis(start.elapsed())),
                cold_start: i == 0,
                detected: result.as_ref().ok().map(|(r, _)| Detected::of(r)),
                error: result.as_ref().err().map(|(code, _)| *code),
                request_id: None,
            };
            let mut err = std::io::stderr().lock();
            for record in metrics.records(&observation) {
                let _ = writeln!(err, "{record}");
            }
        }
        // A closed pipe (`detect *.jpg | head`) ends the run quietly.
        if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
            return ExitCode::from(1);
        }
    }
    if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn read(file: &str) -> std::io::Result<Vec<u8>> {
    if file == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        Ok(buf)
    } else {
        std::fs::read(file).map_err(|e| std::io::Error::new(e.kind(), format!("{file}: {e}")))
    }
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("detect: {message}");
    ExitCode::from(2)
}
