//! The detection core: bytes and options in, a [`Response`] or a typed [`Error`] out. No AWS types.
//!
//! A [`Detector`] owns the optimized tract plan; build it once per process and share it by reference.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use image::RgbImage;
use tract_onnx::prelude::{TValue, Tensor};

use crate::core::annotate;
use crate::core::embedded;
use crate::core::engine::{Engine, RunConfig};
use crate::core::error::{Error, Result};
use crate::core::heads::{Candidate, Head, ModelFacts, Params};
use crate::core::image_decode::{decode_at_least_noting, DecodeLimits};
use crate::core::manifest::Manifest;
use crate::core::memory::TrimAfterLarge;
use crate::core::nms::{best_first, nms};
use crate::core::options::{BoxFormat, DetectOptions, Resolved};
use crate::core::preprocess::{Geometry, Preprocessor};
use crate::core::response::{
    millis, BoundingBox, Detection, ImageSize, ModelRef, Response, Timings,
};

/// A planned model with the decode limits it applies. Cheap to clone: clones share the plan, so
/// [`Detector::sharing_plan`] gives other limits without building the plan again.
#[derive(Debug, Clone)]
pub struct Detector {
    model: Arc<PlannedModel>,
    limits: DecodeLimits,
}

/// The model, its plan and what decodes its outputs: built once, read by every detection.
#[derive(Debug)]
struct PlannedModel {
    manifest: Manifest,
    engine: Engine,
    preprocessor: Preprocessor,
    head: Box<dyn Head>,
    plan_build: Duration,
}

/// Where the model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// The model compiled into the binary.
    Embedded,
    /// A model and its manifest from files (`MODEL_PATH` and `MODEL_MANIFEST`: a Lambda layer, EFS,
    /// a user's export).
    Files { model: PathBuf, manifest: PathBuf },
}

impl Detector {
    /// The model embedded at build time, with tract on one thread.
    pub fn embedded() -> Result<Detector> {
        Detector::load(&ModelSource::Embedded, RunConfig::default())
    }

    /// A model and manifest from files, with tract on one thread.
    pub fn from_files(model: &Path, manifest: &Path) -> Result<Detector> {
        let source = ModelSource::Files {
            model: model.to_path_buf(),
            manifest: manifest.to_path_buf(),
        };
        Detector::load(&source, RunConfig::default())
    }

    /// The model `source` names, on the backend and thread count of `config`.
    pub fn load(source: &ModelSource, config: RunConfig) -> Result<Detector> {
        match source {
            ModelSource::Embedded => Detector::with_config(
                config,
                embedded::MODEL,
                Manifest::from_toml(embedded::MANIFEST)?,
            ),
            ModelSource::Files { model, manifest } => {
                let (onnx, manifest) = Detector::read_files(model, manifest)?;
                Detector::with_config(config, &onnx, manifest)
            }
        }
    }

    fn read_files(model: &Path, manifest: &Path) -> Result<(Vec<u8>, Manifest)> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| Error::invalid_model(p.display().to_string()).caused_by(e))
        };
        let text = String::from_utf8(read(manifest)?)
            .map_err(|_| Error::invalid_model(format!("{}: not UTF-8 text", manifest.display())))?;
        let manifest = Manifest::from_toml(&text).map_err(|e| e.in_context(manifest.display()))?;
        Ok((read(model)?, manifest))
    }

    /// Loads, validates against the manifest and plans the model with tract on one thread. This is the
    /// cold-start cost.
    pub fn new(onnx: &[u8], manifest: Manifest) -> Result<Detector> {
        Detector::with_config(RunConfig::default(), onnx, manifest)
    }

    /// [`Detector::new`] on the backend and thread count of `config`.
    pub fn with_config(config: RunConfig, onnx: &[u8], manifest: Manifest) -> Result<Detector> {
        let start = Instant::now();
        let preprocessor = Preprocessor::new(&manifest.input);
        let engine = Engine::load_with(
            config,
            onnx,
            manifest.input.name.as_deref(),
            &preprocessor.input_shape(),
        )?;
        let head = manifest.head.resolve(&ModelFacts {
            outputs: engine.outputs(),
            classes: manifest.labels.len(),
            input_width: manifest.input.width,
            input_height: manifest.input.height,
        })?;
        Ok(Detector {
            model: Arc::new(PlannedModel {
                manifest,
                engine,
                preprocessor,
                head,
                plan_build: start.elapsed(),
            }),
            limits: DecodeLimits::default(),
        })
    }

    pub fn with_limits(mut self, limits: DecodeLimits) -> Detector {
        self.limits = limits;
        self
    }

    /// A detector on this one's plan (no second build) that applies `limits`.
    pub fn sharing_plan(&self, limits: DecodeLimits) -> Detector {
        self.clone().with_limits(limits)
    }

    pub fn limits(&self) -> &DecodeLimits {
        &self.limits
    }

    pub fn manifest(&self) -> &Manifest {
        &self.model.manifest
    }

    /// The backend and thread count the model runs with.
    pub fn run_config(&self) -> &RunConfig {
        self.model.engine.config()
    }

    /// Time spent in [`Detector::new`]: parsing, optimizing and planning the model.
    pub fn plan_build_time(&self) -> Duration {
        self.model.plan_build
    }

    pub fn model_ref(&self) -> ModelRef {
        ModelRef {
            name: self.model.manifest.name.clone(),
            version: self.model.manifest.version.clone(),
            input_width: self.model.manifest.input.width,
            input_height: self.model.manifest.input.height,
        }
    }

    /// The whole pipeline on encoded image bytes; with the annotated picture in
    /// [`Response::annotated`] when the options ask for one.
    pub fn detect(&self, bytes: &[u8], options: &DetectOptions) -> Result<Response> {
        self.detect_within(bytes, options, None)
    }

    /// [`Detector::detect`] for a front end whose answers have a size limit: an annotated picture over
    /// `max_picture_bytes` is refused (`response_too_large`) as soon as its encoder passes it.
    pub fn detect_within(
        &self,
        bytes: &[u8],
        options: &DetectOptions,
        max_picture_bytes: Option<usize>,
    ) -> Result<Response> {
        let start = Instant::now();
        // Declared first, dropped last: after a large image, its freed buffers go back to the system.
        let trim = TrimAfterLarge::default();
        // Options first: a bad parameter should not cost a decode.
        let resolved = options.resolve(&self.model.manifest)?;
        let annotation = resolved.annotation.map(|spec| annotate::Spec {
            max_bytes: max_picture_bytes,
            ..spec
        });
        // The letterbox needs only the resized size, and the picture its own: large JPEGs may decode at
        // a reduced scale.
        let needed = |w, h| {
            let g = self.model.preprocessor.geometry((w, h));
            let (mw, mh) = (g.resized_width, g.resized_height);
            match &annotation {
                Some(spec) => {
                    let (cw, ch) = annotate::canvas_size((w, h), spec.max_side);
                    (mw.max(cw), mh.max(ch))
                }
                None => (mw, mh),
            }
        };
        // The buffers the decode allocates: a large JPEG decoded at a reduced scale has small ones.
        let note = |bytes| trim.note(usize::try_from(bytes).unwrap_or(usize::MAX));
        let decoded = decode_at_least_noting(bytes, &self.limits, needed, note)?;
        let decode_ms = millis(start.elapsed());
        let image = (decoded.width, decoded.height);
        let mut response = self.run(&decoded.rgb, image, &resolved)?;
        response.timings_ms.decode = decode_ms;
        if let Some(spec) = &annotation {
            let t = Instant::now();
            let picture = annotate::render(decoded.rgb, image, &response.detections, spec)?;
            response.annotated = Some(picture);
            response.timings_ms.annotate = Some(millis(t.elapsed()));
        }
        // After the picture, which is drawn in pixels.
        if resolved.box_format == BoxFormat::Normalized {
            response.normalize_boxes();
        }
        response.timings_ms.total = millis(start.elapsed());
        Ok(response)
    }

    /// The pipeline on an already decoded, upright image.
    pub fn detect_rgb(&self, rgb: &RgbImage, options: &DetectOptions) -> Result<Response> {
        let resolved = options.resolve(&self.model.manifest)?;
        let mut response = self.run(rgb, rgb.dimensions(), &resolved)?;
        if resolved.box_format == BoxFormat::Normalized {
            response.normalize_boxes();
        }
        Ok(response)
    }

    /// `rgb` holds the pixels of an image of size `image` (smaller after a reduced-scale decode).
    fn run(&self, rgb: &RgbImage, image: (u32, u32), options: &Resolved) -> Result<Response> {
        let t0 = Instant::now();
        let (input, geometry) = self.model.preprocessor.run_scaled(rgb, image)?;
        let t1 = Instant::now();
        let outputs = self.model.engine.run(input)?;
        let t2 = Instant::now();
        let detections = self.postprocess(&outputs, &geometry, options)?;
        let t3 = Instant::now();
        Ok(Response {
            model: self.model_ref(),
            image: ImageSize {
                width: geometry.image_width,
                height: geometry.image_height,
            },
            detections,
            timings_ms: Timings {
                decode: 0.0,
                preprocess: millis(t1 - t0),
                inference: millis(t2 - t1),
                postprocess: millis(t3 - t2),
                annotate: None,
                total: millis(t3 - t0),
            },
            annotated: None,
        })
    }

    /// The manifest's pre-processing, as `detect` runs it.
    pub fn preprocessor(&self) -> &Preprocessor {
        &self.model.preprocessor
    }

    /// The model input for an image, and where the image sits in it.
    pub fn preprocess(&self, rgb: &RgbImage) -> Result<(Tensor, Geometry)> {
        self.model.preprocessor.run(rgb)
    }

    /// Raw model outputs, in model order, for an input tensor (parity checks, debugging).
    pub fn infer(&self, input: Tensor) -> Result<Vec<TValue>> {
        Ok(self.model.engine.run(input)?.into_vec())
    }

    /// Raw outputs (from [`Detector::infer`]) to detections in image pixels: the manifest's decoder, the
    /// threshold and class filter, NMS, and the mapping back through `geometry`.
    pub fn decode_outputs(
        &self,
        outputs: &[TValue],
        geometry: &Geometry,
        options: &DetectOptions,
    ) -> Result<Vec<Detection>> {
        if outputs.len() != self.model.engine.outputs().len() {
            return Err(Error::internal(format!(
                "{} outputs given, the model has {}",
                outputs.len(),
                self.model.engine.outputs().len()
            )));
        }
        self.postprocess(outputs, geometry, &options.resolve(&self.model.manifest)?)
    }

    fn postprocess(
        &self,
        outputs: &[TValue],
        geometry: &Geometry,
        options: &Resolved,
    ) -> Result<Vec<Detection>> {
        let params = Params {
            score_threshold: options.score_threshold,
            class_mask: options.class_mask.as_deref(),
            input_width: self.model.manifest.input.width,
            input_height: self.model.manifest.input.height,
        };
        let candidates = self.model.head.candidates(outputs, &params)?;
        let kept = if self.model.head.predicts_a_set() {
            best_first(candidates, options.max_detections)
        } else {
            nms(candidates, options.iou_threshold, options.max_detections)
        };
        Ok(kept
            .into_iter()
            .map(|c| self.to_detection(c, geometry))
            .collect())
    }

    fn to_detection(&self, c: Candidate, g: &Geometry) -> Detection {
        let (x_min, y_min) = g.to_image(c.bbox[0], c.bbox[1]);
        let (x_max, y_max) = g.to_image(c.bbox[2], c.bbox[3]);
        Detection {
            label: self.model.manifest.labels[c.class_id].clone(),
            class_id: c.class_id,
            score: c.score,
            bbox: BoundingBox {
                x_min: round2(x_min),
                y_min: round2(y_min),
                x_max: round2(x_max),
                y_max: round2(y_max),
            },
        }
    }
}

/// The message of an InvalidModel error without its "invalid model: " prefix, for re-wrapping.
fn round2(v: f32) -> f32 {
    (v * 100.0).round() / 100.0
}
