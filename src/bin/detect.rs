//! `detect`: the offline batch front end. One warm plan for every image; one JSON object per image per
//! line on stdout (the API response plus `"file"`); a bad image gets an error line and the rest still run.
//!
//! Exit status: 0 all images detected, 1 at least one image failed, 2 bad usage or unusable model.

use std::io::{Read, Write};
use std::process::ExitCode;

use clap::Parser;
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
    ] {
        if let Some(v) = value {
            options.set(name, v)?;
        }
    }
    Ok(options)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let options = match options(&args) {
        Ok(o) => o,
        Err(e) => return usage_error(&e.to_string()),
    };
    let detector = match Settings::from_env().and_then(|s| Detector::from_settings(&s)) {
        Ok(d) => d,
        Err(e) => return usage_error(&e.to_string()),
    };
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

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut failed = 0usize;
    for file in &args.images {
        let result = read(file)
            .map_err(|e| (ErrorCode::FileNotReadable, e.to_string()))
            .and_then(|bytes| {
                detector
                    .detect(&bytes, &options)
                    .map_err(|e| (e.code(), e.to_string()))
            });
        let line = match &result {
            Ok(response) => serde_json::to_string(&Line { file, response }),
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
