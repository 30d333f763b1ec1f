//! `detect eval`: the active model's accuracy (the embedded one, or `MODEL_PATH`'s) on COCO-format
//! ground truth, scored with the COCO protocol (`object_detector::core::coco`).
//!
//! Every image the annotation file lists is read from IMAGES_DIR by its `file_name` and detected with
//! COCO's submission settings (score threshold 0.001, at most 100 detections); the model's classes meet
//! the file's categories through the manifest's `category_ids` (by name without them). The report is
//! pycocotools' twelve figures, each category's AP, and precision / recall / F1 at IoU 0.50 by score
//! threshold (the best F1's threshold is how a default is chosen), as text or one JSON object.
//!
//! Exit status: 0 scored (and `--min-map` met), 1 mAP below `--min-map` or an image failed (the figures
//! are still printed; a failed image counts as one with nothing found), 2 bad usage, an unusable
//! annotation file, images missing from IMAGES_DIR or an unusable model.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use object_detector::core::coco::{self, CategoryMap, Dataset, OperatingPoint, ScoredBox, Summary};
use object_detector::core::error::{chain, Failure};
use object_detector::core::export;
use object_detector::core::response::{ModelRef, Timings};
use object_detector::{DetectOptions, Detector, Response};
use serde::Serialize;

use super::inputs::Input;
use super::workers;

/// The COCO protocol's detection settings: every box down to 0.001, at most 100 per image.
const SCORE_THRESHOLD: &str = "0.001";
const MAX_DETECTIONS: &str = "100";

#[derive(Parser, Debug)]
#[command(
    name = "detect eval",
    bin_name = "detect eval",
    version,
    about = "Score the model on COCO-format ground truth: mAP, AP50, AP75, AP by object size, AR, AP per class."
)]
struct EvalArgs {
    /// COCO-format annotation file (`instances_*.json`): the images and their objects.
    #[arg(long, value_name = "FILE")]
    annotations: PathBuf,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    json: bool,
    /// Exit 1 when mAP@[.5:.95] is below X (0..=1): a gate in front of a deployment.
    #[arg(long, value_name = "X", value_parser = unit_interval)]
    min_map: Option<f64>,
    /// Also write the detections to FILE as COCO results (what pycocotools' loadRes reads).
    #[arg(long, value_name = "FILE")]
    results: Option<PathBuf>,
    /// Images at once (default: the machine's cores).
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    jobs: Option<u16>,
    /// Print the model's load time to stderr.
    #[arg(short, long)]
    verbose: bool,
    /// The folder holding the annotation file's images (by their `file_name`).
    #[arg(value_name = "IMAGES_DIR")]
    images_dir: PathBuf,
}

fn unit_interval(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!("expected a number within 0..=1, got {text:?}")),
    }
}

/// The JSON report (`--json`).
#[derive(Serialize)]
struct Report<'a> {
    model: &'a ModelRef,
    /// Images scored, and how many of them failed to decode or run (scored as finding nothing).
    images: usize,
    failed: usize,
    detections: usize,
    /// The model's classes that are categories of the annotation file, and how they met.
    classes_matched: usize,
    matched_by: &'static str,
    #[serde(flatten)]
    summary: Summary,
    per_class: Vec<ClassLine<'a>>,
    /// Precision, recall and F1 at IoU 0.50 by score threshold, and the threshold of best F1: how a
    /// default `score_threshold` is chosen.
    operating_points: Vec<OperatingPoint>,
    best_f1: Option<OperatingPoint>,
    /// Mean per image, over the images that ran.
    mean_timings_ms: Timings,
    seconds: f64,
}

#[derive(Serialize)]
struct ClassLine<'a> {
    category_id: u64,
    name: &'a str,
    ap: Option<f64>,
}

/// `detect eval ARGS...` (`args` starts with `eval`, in the binary name's place).
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args = EvalArgs::parse_from(args);
    match run(&args) {
        Ok(code) => code,
        Err(message) => super::usage_error(&message),
    }
}

fn run(args: &EvalArgs) -> Result<ExitCode, String> {
    let start = Instant::now();
    let dataset = read_dataset(&args.annotations)?;
    let paths = image_paths(&dataset, &args.images_dir)?;
    let (_, detector) = super::load_detector()?;
    if args.verbose {
        eprintln!("detect eval: {}", super::ready_line(&detector));
    }
    let categories = CategoryMap::between(detector.manifest(), &dataset)
        .map_err(|e| format!("{}: {}", args.annotations.display(), chain(&e)))?;
    let mut options = DetectOptions::default();
    options
        .set("score_threshold", SCORE_THRESHOLD)
        .and_then(|()| options.set("max_detections", MAX_DETECTIONS))
        .map_err(|e| e.to_string())?;

    let jobs = args.jobs.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        usize::from,
    );
    let ran = run_images(&detector, &options, &paths, jobs);
    let mut results = Vec::new();
    let mut timings = Vec::new();
    let mut failed = 0;
    for ((image, path), outcome) in dataset.images.iter().zip(&paths).zip(&ran) {
        match outcome {
            Ok(response) => {
                results.extend(export::coco::results(image.id, response, &categories));
                timings.push(response.timings_ms);
            }
            Err(failure) => {
                failed += 1;
                eprintln!(
                    "detect eval: {}: {}: {}",
                    path.display(),
                    failure.code().as_str(),
                    failure.message()
                );
            }
        }
    }
    if let Some(path) = &args.results {
        write_results(path, &results)?;
    }

    let evaluation = coco::evaluate(&dataset, &results);
    let summary = evaluation.summary();
    let names: std::collections::HashMap<u64, &str> = dataset
        .categories
        .iter()
        .map(|c| (c.id, c.name.as_str()))
        .collect();
    let report = Report {
        model: &detector.model_ref(),
        images: evaluation.images,
        failed,
        detections: evaluation.detections,
        classes_matched: categories.matched(),
        matched_by: if categories.by_id {
            "category_ids"
        } else {
            "name"
        },
        summary,
        per_class: evaluation
            .per_class()
            .into_iter()
            .map(|c| ClassLine {
                category_id: c.category_id,
                name: names.get(&c.category_id).copied().unwrap_or(""),
                ap: c.ap,
            })
            .collect(),
        operating_points: evaluation.matches.sweep(),
        best_f1: evaluation.matches.best_f1(),
        mean_timings_ms: mean(&timings),
        seconds: start.elapsed().as_secs_f64(),
    };
    let text = if args.json {
        serde_json::to_string(&report).expect("the report serializes")
    } else {
        render(&report)
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");

    let below = args
        .min_map
        .filter(|&min| summary.map.unwrap_or(-1.0) < min);
    if let Some(min) = below {
        eprintln!(
            "detect eval: mAP {:.4} is below --min-map {min}",
            summary.map.unwrap_or(-1.0)
        );
    }
    Ok(if below.is_some() || failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn read_dataset(path: &Path) -> Result<Dataset, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("--annotations {}: {e}", path.display()))?;
    Dataset::from_json(&bytes)
        .map_err(|e| format!("--annotations {}: {}", path.display(), chain(&e)))
}

/// Each listed image's file in `dir`; an error naming the first missing ones when any is.
fn image_paths(dataset: &Dataset, dir: &Path) -> Result<Vec<PathBuf>, String> {
    let paths: Vec<PathBuf> = dataset
        .images
        .iter()
        .map(|i| dir.join(&i.file_name))
        .collect();
    let missing: Vec<&PathBuf> = paths.iter().filter(|p| !p.is_file()).collect();
    if let Some(first) = missing.first() {
        return Err(format!(
            "{} of the annotation file's {} images are not in {} (the first: {}); \
             each is read by its file_name",
            missing.len(),
            paths.len(),
            dir.display(),
            first.display()
        ));
    }
    Ok(paths)
}

/// Runs every image on `jobs` threads, a progress bar on stderr when it is a terminal.
fn run_images(
    detector: &Detector,
    options: &DetectOptions,
    paths: &[PathBuf],
    jobs: usize,
) -> Vec<Result<Response, Failure>> {
    let progress = super::progress_bar(paths.len());
    let mut ran = Vec::with_capacity(paths.len());
    workers::in_order(
        paths,
        jobs,
        |_, path| {
            let bytes = super::read(&Input::File(path.clone()))?;
            detector.detect(&bytes, options).map_err(Failure::from)
        },
        |outcome| {
            progress.inc(1);
            ran.push(outcome);
            true
        },
    );
    progress.finish_and_clear();
    ran
}

fn write_results(path: &Path, results: &[ScoredBox]) -> Result<(), String> {
    let json = serde_json::to_vec(results).expect("results serialize");
    std::fs::write(path, json).map_err(|e| format!("--results {}: {e}", path.display()))
}

/// The mean of each stage's time; zeros when nothing ran.
fn mean(timings: &[Timings]) -> Timings {
    let n = timings.len().max(1) as f64;
    let mean_of = |stage: fn(&Timings) -> f64| {
        let total: f64 = timings.iter().map(stage).sum();
        (total / n * 1e3).round() / 1e3
    };
    Timings {
        decode: mean_of(|t| t.decode),
        preprocess: mean_of(|t| t.preprocess),
        inference: mean_of(|t| t.inference),
        postprocess: mean_of(|t| t.postprocess),
        annotate: None,
        total: mean_of(|t| t.total),
    }
}

/// The text report: what ran, pycocotools' summary lines, each category's AP, the mean timings.
fn render(report: &Report) -> String {
    let mut lines = vec![format!(
        "model {} {}: {} images ({} failed), {} detections, {} classes met the annotation file's \
         categories by {}, {:.1} s",
        report.model.name,
        report.model.version,
        report.images,
        report.failed,
        report.detections,
        report.classes_matched,
        report.matched_by,
        report.seconds
    )];
    lines.extend(report.summary.lines());
    lines.push("AP per category (IoU=0.50:0.95, all areas, maxDets=100):".into());
    for c in &report.per_class {
        let ap = c.ap.map_or_else(|| "-".into(), |ap| format!("{ap:.3}"));
        lines.push(format!("  {:>4}  {:<16} {ap}", c.category_id, c.name));
    }
    lines.push("precision / recall / F1 at IoU=0.50 by score threshold:".into());
    for p in &report.operating_points {
        lines.push(format!(
            "  {:.2}  {:.3}  {:.3}  {:.3}",
            p.score_threshold, p.precision, p.recall, p.f1
        ));
    }
    if let Some(p) = &report.best_f1 {
        lines.push(format!(
            "best F1 at score threshold {:.2} (precision {:.3}, recall {:.3}, F1 {:.3})",
            p.score_threshold, p.precision, p.recall, p.f1
        ));
    }
    let t = &report.mean_timings_ms;
    lines.push(format!(
        "mean per image (ms): decode {}, preprocess {}, inference {}, postprocess {}, total {}",
        t.decode, t.preprocess, t.inference, t.postprocess, t.total
    ));
    lines.join("\n")
}
