//! The detection core: bytes and options in, a [`Response`] or a typed [`Error`] out. No AWS types.
//!
//! A [`Detector`] owns the optimized tract plan; build it once per process and share it by reference.

use std::path::Path;
use std::time::{Duration, Instant};

use image::RgbImage;
use tract_onnx::prelude::{TValue, Tensor};

use crate::decode::{decode_at_least, DecodeLimits};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::manifest::{DecoderSpec, Manifest};
use crate::options::{DetectOptions, Resolved};
use crate::postprocess::{decode_gfl, nms, Candidate, DecodeParams, GflLevel};
use crate::preprocess::{Geometry, Preprocessor};
use crate::response::{BoundingBox, Detection, ImageSize, ModelRef, Response, Timings};

/// The model compiled into the binary (see build.rs): its manifest text and ONNX bytes.
pub mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_model.rs"));
}

/// Output decoding, with manifest references resolved to output positions and shapes checked.
#[derive(Debug, Clone)]
enum Decoder {
    Gfl {
        levels: Vec<(u32, usize, usize)>,
        reg_max: usize,
        top_k: usize,
    },
}

#[derive(Debug)]
pub struct Detector {
    manifest: Manifest,
    engine: Engine,
    preprocessor: Preprocessor,
    decoder: Decoder,
    limits: DecodeLimits,
    plan_build: Duration,
}

impl Detector {
    /// The model embedded at build time.
    pub fn embedded() -> Result<Detector> {
        Detector::new(embedded::MODEL, Manifest::from_toml(embedded::MANIFEST)?)
    }

    /// A model and manifest from files (a Lambda layer, EFS, a user's export).
    pub fn from_files(model: &Path, manifest: &Path) -> Result<Detector> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| Error::InvalidModel(format!("{}: {e}", p.display())))
        };
        let text = String::from_utf8(read(manifest)?)
            .map_err(|_| Error::InvalidModel(format!("{}: not UTF-8 text", manifest.display())))?;
        let manifest = Manifest::from_toml(&text)
            .map_err(|e| Error::InvalidModel(format!("{}: {}", manifest.display(), strip(&e))))?;
        Detector::new(&read(model)?, manifest)
    }

    /// `MODEL_PATH` with `MODEL_MANIFEST` when set (both or neither), else the embedded model.
    pub fn from_env() -> Result<Detector> {
        let path = std::env::var_os("MODEL_PATH").filter(|v| !v.is_empty());
        let manifest = std::env::var_os("MODEL_MANIFEST").filter(|v| !v.is_empty());
        match (path, manifest) {
            (None, None) => Detector::embedded(),
            (Some(p), Some(m)) => Detector::from_files(Path::new(&p), Path::new(&m)),
            _ => Err(Error::InvalidModel(
                "MODEL_PATH and MODEL_MANIFEST must be set together".into(),
            )),
        }
    }

    /// Loads, validates against the manifest and plans the model. This is the cold-start cost.
    pub fn new(onnx: &[u8], manifest: Manifest) -> Result<Detector> {
        let start = Instant::now();
        let preprocessor = Preprocessor::new(&manifest.input);
        let engine = Engine::load(
            onnx,
            manifest.input.name.as_deref(),
            &preprocessor.input_shape(),
        )?;
        let decoder = Decoder::resolve(&manifest, &engine)?;
        Ok(Detector {
            manifest,
            engine,
            preprocessor,
            decoder,
            limits: DecodeLimits::default(),
            plan_build: start.elapsed(),
        })
    }

    pub fn with_limits(mut self, limits: DecodeLimits) -> Detector {
        self.limits = limits;
        self
    }

    pub fn limits(&self) -> &DecodeLimits {
        &self.limits
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Time spent in [`Detector::new`]: parsing, optimizing and planning the model.
    pub fn plan_build_time(&self) -> Duration {
        self.plan_build
    }

    pub fn model_ref(&self) -> ModelRef {
        ModelRef {
            name: self.manifest.name.clone(),
            version: self.manifest.version.clone(),
            input_width: self.manifest.input.width,
            input_height: self.manifest.input.height,
        }
    }

    /// The whole pipeline on encoded image bytes.
    pub fn detect(&self, bytes: &[u8], options: &DetectOptions) -> Result<Response> {
        let start = Instant::now();
        // Options first: a bad parameter should not cost a decode.
        let resolved = options.resolve(&self.manifest)?;
        // The letterbox needs only the resized size: large JPEGs may decode at a reduced scale.
        let decoded = decode_at_least(bytes, &self.limits, |w, h| {
            let g = self.preprocessor.geometry((w, h));
            (g.resized_width, g.resized_height)
        })?;
        let decode_ms = ms(start.elapsed());
        let mut response = self.run(&decoded.rgb, (decoded.width, decoded.height), &resolved)?;
        response.timings_ms.decode = decode_ms;
        response.timings_ms.total = ms(start.elapsed());
        Ok(response)
    }

    /// The pipeline on an already decoded, upright image.
    pub fn detect_rgb(&self, rgb: &RgbImage, options: &DetectOptions) -> Result<Response> {
        self.run(rgb, rgb.dimensions(), &options.resolve(&self.manifest)?)
    }

    /// `rgb` holds the pixels of an image of size `image` (smaller after a reduced-scale decode).
    fn run(&self, rgb: &RgbImage, image: (u32, u32), options: &Resolved) -> Result<Response> {
        let t0 = Instant::now();
        let (input, geometry) = self.preprocessor.run_scaled(rgb, image)?;
        let t1 = Instant::now();
        let outputs = self.engine.run(input)?;
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
                preprocess: ms(t1 - t0),
                inference: ms(t2 - t1),
                postprocess: ms(t3 - t2),
                total: ms(t3 - t0),
            },
        })
    }

    /// The model input for an image, and where the image sits in it.
    pub fn preprocess(&self, rgb: &RgbImage) -> Result<(Tensor, Geometry)> {
        self.preprocessor.run(rgb)
    }

    /// Raw model outputs, in model order, for an input tensor (parity checks, debugging).
    pub fn infer(&self, input: Tensor) -> Result<Vec<TValue>> {
        Ok(self.engine.run(input)?.into_vec())
    }

    fn postprocess(
        &self,
        outputs: &[TValue],
        geometry: &Geometry,
        options: &Resolved,
    ) -> Result<Vec<Detection>> {
        let params = DecodeParams {
            score_threshold: options.score_threshold,
            class_mask: options.class_mask.as_deref(),
            input_width: self.manifest.input.width,
            input_height: self.manifest.input.height,
        };
        let slice = |i: usize| -> Result<&[f32]> {
            f32_slice(&outputs[i]).map_err(|e| Error::Inference(format!("output #{i}: {e}")))
        };
        let candidates: Vec<Candidate> = match &self.decoder {
            Decoder::Gfl {
                levels,
                reg_max,
                top_k,
            } => {
                let mut views = Vec::with_capacity(levels.len());
                for &(stride, cls, reg) in levels {
                    views.push(GflLevel {
                        stride,
                        cls: slice(cls)?,
                        reg: slice(reg)?,
                    });
                }
                decode_gfl(
                    &views,
                    self.manifest.labels.len(),
                    *reg_max,
                    *top_k,
                    &params,
                )
            }
        };
        let kept = nms(candidates, options.iou_threshold, options.max_detections);
        Ok(kept
            .into_iter()
            .map(|c| self.to_detection(c, geometry))
            .collect())
    }

    fn to_detection(&self, c: Candidate, g: &Geometry) -> Detection {
        let (x_min, y_min) = g.to_image(c.bbox[0], c.bbox[1]);
        let (x_max, y_max) = g.to_image(c.bbox[2], c.bbox[3]);
        Detection {
            label: self.manifest.labels[c.class_id].clone(),
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

impl Decoder {
    /// Resolves output references and checks every shape the decoder relies on, so a wrong model or
    /// manifest fails at start-up instead of on a request.
    fn resolve(manifest: &Manifest, engine: &Engine) -> Result<Decoder> {
        let classes = manifest.labels.len();
        let shapes = engine.output_shapes();
        let names = engine.output_names();
        match &manifest.decoder {
            DecoderSpec::Gfl {
                strides,
                reg_max,
                cls,
                reg,
                top_k_per_level,
            } => {
                let mut levels = Vec::new();
                for ((&stride, c), r) in strides.iter().zip(cls).zip(reg) {
                    let (ci, ri) = (engine.resolve(c)?, engine.resolve(r)?);
                    let cells = (manifest.input.width.div_ceil(stride)
                        * manifest.input.height.div_ceil(stride))
                        as usize;
                    let bins = 4 * (*reg_max as usize + 1);
                    for (i, want, what) in [
                        (ci, classes, "classes (one per label)"),
                        (ri, bins, "4 x (reg_max + 1) bins"),
                    ] {
                        if shapes[i] != [1, cells, want] {
                            return Err(Error::InvalidModel(format!(
                                "output `{}` has shape {:?}; stride {stride} on a {}x{} input needs [1, {cells}, {want}]: {cells} grid cells x {want} {what}",
                                names[i], shapes[i], manifest.input.width, manifest.input.height
                            )));
                        }
                    }
                    levels.push((stride, ci, ri));
                }
                Ok(Decoder::Gfl {
                    levels,
                    reg_max: *reg_max as usize,
                    top_k: *top_k_per_level,
                })
            }
        }
    }
}

/// A float tensor's data as a slice.
pub fn f32_slice(t: &Tensor) -> tract_onnx::prelude::TractResult<&[f32]> {
    t.try_as_plain_ram()?.as_slice::<f32>()
}

/// The message of an InvalidModel error without its "invalid model: " prefix, for re-wrapping.
fn strip(e: &Error) -> String {
    match e {
        Error::InvalidModel(m) => m.clone(),
        other => other.to_string(),
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn round2(v: f32) -> f32 {
    (v * 100.0).round() / 100.0
}
