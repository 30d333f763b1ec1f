//! `detect`: the offline batch front end. One warm plan for every image; one JSON object per image per
//! line (the API response plus `"file"`), in input order, on stdout or in `--output FILE`; a bad image
//! gets an error line and the rest still run.
//!
//! Folders are walked for image files (`inputs.rs`); `--jobs N` images are detected at once on the one
//! plan; `--resume` skips what an earlier run's `--output` already answers (`resume.rs`). A progress bar
//! with rate and ETA goes to stderr when stderr is a terminal.
//!
//! With `--annotate DIR`, each image's annotated picture is written as `DIR/<stem>.annotated.jpg` (or
//! `.png`); inputs of the same stem from different folders get `<stem>-2`, `<stem>-3`... so none
//! overwrites another, and the line names the file written (`"annotated"`).
//!
//! With `--metrics`, each image's CloudWatch metric records (EMF, as the Lambda function writes them) go
//! to stderr, one JSON document per line, so a batch is measured the way the function is.
//!
//! `detect eval` scores the model on COCO-format ground truth instead (`eval.rs`).
//!
//! Exit status: 0 all images detected, 1 at least one image failed, 2 bad usage or unusable model.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

mod eval;
mod export;
mod inputs;
mod names;
mod resume;
mod workers;

use clap::Parser;
use export::CocoIds;
use indicatif::{ProgressBar, ProgressStyle};
use inputs::Input;
use names::FileNames;
use object_detector::aws::metrics::{DetectionStats, Metrics, Observation};
use object_detector::core::error::{chain, Failure};
use object_detector::core::export::Export;
use object_detector::core::response::millis;
use object_detector::core::response::Encoding;
use object_detector::{DetectOptions, Detector, ErrorCode, Response, Settings};
use serde::Serialize;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Detect objects in images and folders of images; one JSON object per image (JSON Lines).",
    after_help = "Accuracy: `detect eval --annotations instances.json IMAGES_DIR` scores the model on \
                  COCO-format ground truth (`detect eval --help`)."
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
    /// Boxes in pixels of the upright image, or as fractions of its width and height.
    #[arg(long, value_name = "UNIT", value_parser = ["pixels", "normalized"])]
    box_format: Option<String>,
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
    /// Images at once (default: the machine's cores). Lines stay in input order.
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    jobs: Option<u16>,
    /// What is written: `jsonl` (one JSON object per image), `coco` (one JSON array of COCO results),
    /// or `yolo` / `voc` (a label file per image in the --output folder).
    #[arg(long, value_name = "FORMAT", value_parser = ["jsonl", "coco", "yolo", "voc"], default_value = "jsonl")]
    format: String,
    /// With --format coco: the COCO annotation file whose image ids (by file name) and categories the
    /// results use; without it, ids are the file names' numbers and categories the manifest's.
    #[arg(long, value_name = "FILE")]
    annotations: Option<PathBuf>,
    /// Write the JSON Lines (or the COCO array) to FILE instead of standard output; with --format yolo
    /// or voc, the folder the files go in.
    #[arg(short, long, value_name = "PATH")]
    output: Option<PathBuf>,
    /// With --output: keep what an earlier run wrote and skip the images it already answers (an
    /// interrupted run goes on).
    #[arg(long, requires = "output")]
    resume: bool,
    /// Image files or folders (walked for image files); `-` reads one image from standard input.
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
    /// The YOLO or VOC file written for this image.
    #[serde(skip_serializing_if = "Option::is_none")]
    exported: Option<&'a Path>,
}

#[derive(Serialize)]
struct ErrorLine<'a> {
    file: &'a str,
    error: &'a Failure,
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
        ("box_format", &args.box_format),
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
    object_detector::core::memory::reuse_freed_memory();
    if std::env::args_os()
        .nth(1)
        .is_some_and(|first| first == "eval")
    {
        return eval::main(std::env::args_os().skip(1));
    }
    match run(&Args::parse()) {
        Ok(code) => code,
        Err(message) => usage_error(&message),
    }
}

/// The whole run; `Err` is a usage or set-up error (exit 2), found before any image runs.
fn run(args: &Args) -> Result<ExitCode, String> {
    let (options, settings, detector) = load(args)?;
    if args.verbose {
        eprintln!("detect: {}", ready_line(&detector));
    }
    // `--metrics` asks for the records whatever `METRICS` says; the namespace and per-class choice
    // still come from the environment.
    let metrics = args.metrics.then(|| {
        Metrics::new(
            settings.metrics.clone(),
            &detector.model_ref(),
            millis(detector.plan_build_time()),
            None,
        )
    });
    let export = Export::from_name(&args.format);
    check_format(args, export)?;
    let coco = match export {
        Some(Export::Coco) => Some(CocoIds::new(
            args.annotations.as_deref(),
            detector.manifest(),
        )?),
        _ => None,
    };
    let mut inputs = inputs::expand(&args.images, |warning| eprintln!("detect: {warning}"));
    // Every file name is chosen before `--resume` leaves inputs out, so namesakes keep their names.
    let mut pictures = picture_paths(args, &inputs)?;
    let mut exports: Vec<Option<PathBuf>> = match (export, &args.output) {
        (Some(e @ (Export::Yolo | Export::Voc)), Some(dir)) => export::file_paths(dir, e, &inputs)?
            .into_iter()
            .map(Some)
            .collect(),
        _ => vec![None; inputs.len()],
    };
    // Where the lines go: stdout, `--output`, or (COCO) its journal or memory.
    let lines_file = match (export, &args.output) {
        (None, Some(path)) => Some(path.clone()),
        (Some(Export::Coco), Some(path)) => Some(export::journal_path(path)),
        _ => None,
    };
    let mut memory = Vec::new();
    let (mut out, done): (Box<dyn Write>, HashSet<String>) = match &lines_file {
        Some(path) => {
            let (file, done) = open_output(path, args.resume)
                .map_err(|e| format!("--output {}: {e}", path.display()))?;
            (Box::new(file), done)
        }
        None if export == Some(Export::Coco) => (Box::new(&mut memory), HashSet::new()),
        None => (Box::new(std::io::stdout().lock()), HashSet::new()),
    };
    let keep: Vec<bool> = inputs
        .iter()
        .zip(&exports)
        .map(|(input, exported)| {
            let written = args.resume && exported.as_ref().is_some_and(|p| p.exists());
            !done.contains(&input.name()) && !written
        })
        .collect();
    retain(&mut inputs, &keep);
    retain(&mut pictures, &keep);
    retain(&mut exports, &keep);
    let job = Job {
        detector: &detector,
        options: &options,
        metrics: metrics.as_ref(),
        export,
    };
    let jobs = args.jobs.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        usize::from,
    );
    let (written, mut failed) = job.run_all(&inputs, &pictures, &exports, jobs, &mut out);
    drop(out);
    if let Some(coco) = &coco {
        let lines = match &lines_file {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("--output {}: {e}", path.display()))?,
            None => String::from_utf8_lossy(&memory).into_owned(),
        };
        let (results, left_out) = coco.results(&lines);
        for why in &left_out {
            eprintln!("detect: left out of the COCO results: {why}");
        }
        failed += left_out.len();
        let array = serde_json::to_string(&results).expect("COCO results serialize");
        match &args.output {
            Some(path) => export::write_whole(path, array.as_bytes())
                .map_err(|e| format!("--output {}: {e}", path.display()))?,
            None => {
                let mut stdout = std::io::stdout().lock();
                let _ = writeln!(stdout, "{array}").and_then(|()| stdout.flush());
            }
        }
    }
    Ok(if !written || failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The options `--format` needs or refuses.
fn check_format(args: &Args, export: Option<Export>) -> Result<(), String> {
    if matches!(export, Some(Export::Yolo | Export::Voc)) && args.output.is_none() {
        return Err(format!(
            "--format {} writes a file per image: name their folder with --output DIR",
            args.format
        ));
    }
    if args.annotations.is_some() && export != Some(Export::Coco) {
        return Err("--annotations is for --format coco".into());
    }
    if export.is_some() && args.box_format.is_some() {
        return Err(format!(
            "--format {} writes boxes as the format defines them; --box-format is for jsonl",
            args.format
        ));
    }
    Ok(())
}

/// Keeps the items whose `keep` is true.
fn retain<T>(items: &mut Vec<T>, keep: &[bool]) {
    let mut i = 0;
    items.retain(|_| {
        i += 1;
        keep[i - 1]
    });
}

/// The options, the settings and the detector they name, the options checked against the model's
/// labels before any file is touched.
fn load(args: &Args) -> Result<(DetectOptions, Settings, Detector), String> {
    let options = options(args).map_err(|e| e.to_string())?;
    let (settings, detector) = load_detector()?;
    options
        .resolve(detector.manifest())
        .map_err(|e| e.to_string())?;
    Ok((options, settings, detector))
}

/// The settings from the environment and the detector they name.
fn load_detector() -> Result<(Settings, Detector), String> {
    let settings = Settings::from_env().map_err(|e| chain(&e))?;
    let detector = settings.detector().map_err(|e| chain(&e))?;
    Ok((settings, detector))
}

/// `--verbose`: the model, its plan build time, backend and threads.
fn ready_line(detector: &Detector) -> String {
    let run = detector.run_config();
    format!(
        "model {} {} ready in {:.1} ms ({}, {} thread{})",
        detector.manifest().name,
        detector.manifest().version,
        detector.plan_build_time().as_secs_f64() * 1e3,
        run.backend.name(),
        run.threads,
        if run.threads == 1 { "" } else { "s" }
    )
}

/// Picture names in input order, before any image runs, so they do not depend on timing; none
/// without `--annotate`.
fn picture_paths(args: &Args, inputs: &[Input]) -> Result<Vec<Option<PathBuf>>, String> {
    let Some(dir) = &args.annotate else {
        return Ok(vec![None; inputs.len()]);
    };
    std::fs::create_dir_all(dir).map_err(|e| format!("--annotate {}: {e}", dir.display()))?;
    let mut names = FileNames {
        dir: dir.clone(),
        used: HashSet::new(),
    };
    // clap admits only the picture formats' names.
    let extension = Encoding::from_name(&args.annotate_format).map_or("jpg", Encoding::extension);
    Ok(inputs
        .iter()
        .map(|input| Some(names.next(&input.name(), &format!("annotated.{extension}"))))
        .collect())
}

/// The progress bar, drawn on stderr only when it is a terminal.
fn progress_bar(len: usize) -> ProgressBar {
    ProgressBar::new(len as u64).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} images, {rate}, ETA {eta}")
            .expect("a valid template")
            .with_key(
                "rate",
                |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.1}/s", state.per_sec());
                },
            ),
    )
}

/// Opens a file of lines: truncated, or with `--resume` kept (but for a line cut short), with the files
/// it already answers.
fn open_output(path: &Path, resume: bool) -> std::io::Result<(std::fs::File, HashSet<String>)> {
    if !resume {
        return Ok((std::fs::File::create(path)?, HashSet::new()));
    }
    let earlier = resume::read(path)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    // A line cut short by the interruption goes; its image runs again.
    file.set_len(earlier.whole_lines_len)?;
    Ok((file, earlier.done))
}

/// What one image's run produced.
struct ImageResult {
    line: String,
    records: Vec<String>,
    failed: bool,
}

/// What every image's run shares.
struct Job<'a> {
    detector: &'a Detector,
    options: &'a DetectOptions,
    metrics: Option<&'a Metrics>,
    /// `--format` other than `jsonl`.
    export: Option<Export>,
}

impl Job<'_> {
    /// Runs every input on `jobs` threads and writes their lines to `out` in input order (their
    /// metric records to stderr); returns whether every line was written and how many images failed.
    fn run_all(
        &self,
        inputs: &[Input],
        pictures: &[Option<PathBuf>],
        exports: &[Option<PathBuf>],
        jobs: usize,
        out: &mut dyn Write,
    ) -> (bool, usize) {
        let progress = progress_bar(inputs.len());
        let mut failed = 0usize;
        let written = workers::in_order(
            inputs,
            jobs,
            |i, input| self.run(input, pictures[i].as_deref(), exports[i].as_deref(), i == 0),
            |outcome| {
                progress.inc(1);
                failed += usize::from(outcome.failed);
                if !outcome.records.is_empty() {
                    progress.suspend(|| {
                        let mut err = std::io::stderr().lock();
                        for record in &outcome.records {
                            let _ = writeln!(err, "{record}");
                        }
                    });
                }
                // A closed pipe (`detect *.jpg | head`) ends the run quietly.
                writeln!(out, "{}", outcome.line)
                    .and_then(|_| out.flush())
                    .is_ok()
            },
        );
        progress.finish_and_clear();
        (written, failed)
    }

    /// Reads and detects one input, writes its picture and its export file, and returns its line and
    /// metric records.
    fn run(
        &self,
        input: &Input,
        picture: Option<&Path>,
        exported: Option<&Path>,
        cold_start: bool,
    ) -> ImageResult {
        let start = Instant::now();
        let file = input.name();
        let result = read(input)
            .and_then(|bytes| {
                self.detector
                    .detect(&bytes, self.options)
                    .map_err(Failure::from)
            })
            .and_then(|response| {
                let written = match (picture, &response.annotated) {
                    (Some(path), Some(image)) => {
                        std::fs::write(path, &image.bytes).map_err(|e| {
                            Failure::new(
                                ErrorCode::FileNotWritable,
                                format!("{}: {e}", path.display()),
                            )
                        })?;
                        Some(path)
                    }
                    _ => None,
                };
                if let (Some(path), Some(format)) = (exported, self.export) {
                    export::write_file(format, path, &file, &response)?;
                }
                Ok((response, written))
            });
        let line = match &result {
            Ok((response, written)) => serde_json::to_string(&Line {
                file: &file,
                response,
                annotated: *written,
                exported,
            }),
            Err(error) => serde_json::to_string(&ErrorLine { file: &file, error }),
        }
        .expect("response types always serialize");
        let records = match self.metrics {
            None => Vec::new(),
            Some(metrics) => metrics.records(&Observation {
                latency_ms: Some(millis(start.elapsed())),
                cold_start,
                detected: result.as_ref().ok().map(|(r, _)| DetectionStats::of(r)),
                error: result.as_ref().err().map(Failure::code),
                request_id: None,
            }),
        };
        ImageResult {
            line,
            records,
            failed: result.is_err(),
        }
    }
}

fn read(input: &Input) -> Result<Vec<u8>, Failure> {
    let unreadable = |message: String| Failure::new(ErrorCode::FileNotReadable, message);
    match input {
        Input::Stdin => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| unreadable(format!("-: {e}")))?;
            Ok(buf)
        }
        Input::File(path) => {
            std::fs::read(path).map_err(|e| unreadable(format!("{}: {e}", path.display())))
        }
        Input::Unreadable { path, error } => {
            Err(unreadable(format!("{}: {error}", path.display())))
        }
    }
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("detect: {message}");
    ExitCode::from(2)
}
