//! The detection core: bytes and options in, a [`Response`] or a typed [`Error`] out. No AWS types.
//!
//! A [`Detector`] owns the optimized tract plan; build it once per process and share it by reference.

use std::borrow::Cow;
use std::path::Path;
use std::time::{Duration, Instant};

use image::RgbImage;
use tract_onnx::prelude::{Datum, TValue, Tensor};

use crate::engine::{Engine, RunConfig};
use crate::error::{Error, Result};
use crate::heads::{
    decode_boxes_scores, decode_gfl, decode_yolov8, decode_yolox, BoxesFormat, Candidate,
    DecodeParams, GflLevel, GridLevel,
};
use crate::image_decode::{decode_at_least, DecodeLimits};
use crate::manifest::{Coordinates, DecoderSpec, Manifest, YoloxBoxes};
use crate::nms::nms;
use crate::options::{DetectOptions, Resolved};
use crate::preprocess::{Geometry, Preprocessor};
use crate::response::{BoundingBox, Detection, ImageSize, ModelRef, Response, Timings};

/// The model compiled into the binary (see build.rs): its manifest text and ONNX bytes.
pub mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_model.rs"));
}

/// Where a GFL head's tensors are: per level `(stride, cls, reg)` outputs, or one combined output.
#[derive(Debug, Clone)]
enum GflOutputs {
    Separate(Vec<(u32, usize, usize)>),
    Combined(usize, Vec<GridLevel>),
}

/// Output decoding, with manifest references resolved to output positions and shapes checked.
#[derive(Debug, Clone)]
enum Decoder {
    Gfl {
        outputs: GflOutputs,
        reg_max: usize,
        cell_offset: f32,
        top_k: usize,
    },
    Yolox {
        output: usize,
        levels: Vec<GridLevel>,
        decoded: bool,
        top_k: usize,
    },
    Yolov8 {
        output: usize,
        anchors: usize,
        channels_first: bool,
        top_k: usize,
    },
    BoxesScores {
        boxes: usize,
        scores: usize,
        classes: usize,
        count: Option<usize>,
        format: BoxesFormat,
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
        let (onnx, manifest) = Detector::read_files(model, manifest)?;
        Detector::new(&onnx, manifest)
    }

    fn read_files(model: &Path, manifest: &Path) -> Result<(Vec<u8>, Manifest)> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| Error::InvalidModel(format!("{}: {e}", p.display())))
        };
        let text = String::from_utf8(read(manifest)?)
            .map_err(|_| Error::InvalidModel(format!("{}: not UTF-8 text", manifest.display())))?;
        let manifest = Manifest::from_toml(&text)
            .map_err(|e| Error::InvalidModel(format!("{}: {}", manifest.display(), strip(&e))))?;
        Ok((read(model)?, manifest))
    }

    /// `MODEL_PATH` with `MODEL_MANIFEST` when set (both or neither), else the embedded model; the
    /// backend and thread count from `DETECTOR_BACKEND` and `DETECTOR_THREADS` (see [`RunConfig`]).
    pub fn from_env() -> Result<Detector> {
        let config = RunConfig::from_env()?;
        let path = std::env::var_os("MODEL_PATH").filter(|v| !v.is_empty());
        let manifest = std::env::var_os("MODEL_MANIFEST").filter(|v| !v.is_empty());
        match (path, manifest) {
            (None, None) => Detector::with_config(
                config,
                embedded::MODEL,
                Manifest::from_toml(embedded::MANIFEST)?,
            ),
            (Some(p), Some(m)) => {
                let (onnx, manifest) = Detector::read_files(Path::new(&p), Path::new(&m))?;
                Detector::with_config(config, &onnx, manifest)
            }
            _ => Err(Error::InvalidModel(
                "MODEL_PATH and MODEL_MANIFEST must be set together".into(),
            )),
        }
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

    /// The backend and thread count the model runs with.
    pub fn run_config(&self) -> RunConfig {
        self.engine.config()
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

    /// The manifest's pre-processing, as `detect` runs it.
    pub fn preprocessor(&self) -> &Preprocessor {
        &self.preprocessor
    }

    /// The model input for an image, and where the image sits in it.
    pub fn preprocess(&self, rgb: &RgbImage) -> Result<(Tensor, Geometry)> {
        self.preprocessor.run(rgb)
    }

    /// Raw model outputs, in model order, for an input tensor (parity checks, debugging).
    pub fn infer(&self, input: Tensor) -> Result<Vec<TValue>> {
        Ok(self.engine.run(input)?.into_vec())
    }

    /// Raw outputs (from [`Detector::infer`]) to detections in image pixels: the manifest's decoder, the
    /// threshold and class filter, NMS, and the mapping back through `geometry`.
    pub fn decode_outputs(
        &self,
        outputs: &[TValue],
        geometry: &Geometry,
        options: &DetectOptions,
    ) -> Result<Vec<Detection>> {
        if outputs.len() != self.engine.output_names().len() {
            return Err(Error::Inference(format!(
                "{} outputs given, the model has {}",
                outputs.len(),
                self.engine.output_names().len()
            )));
        }
        self.postprocess(outputs, geometry, &options.resolve(&self.manifest)?)
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
        let slice = |i: usize| -> Result<Cow<'_, [f32]>> {
            f32_values(&outputs[i]).map_err(|e| Error::Inference(format!("output #{i}: {e}")))
        };
        let classes = self.manifest.labels.len();
        let candidates: Vec<Candidate> = match &self.decoder {
            Decoder::Gfl {
                outputs,
                reg_max,
                cell_offset,
                top_k,
            } => {
                let bins = reg_max + 1;
                let decode = |views: &[GflLevel]| {
                    decode_gfl(views, classes, *reg_max, *cell_offset, *top_k, &params)
                };
                match outputs {
                    GflOutputs::Separate(levels) => {
                        let mut data = Vec::with_capacity(levels.len());
                        for &(stride, cls, reg) in levels {
                            data.push((stride, slice(cls)?, slice(reg)?));
                        }
                        let views: Vec<GflLevel> = data
                            .iter()
                            .map(|(stride, cls, reg)| {
                                GflLevel::separate(*stride, classes, bins, cls, reg)
                            })
                            .collect();
                        decode(&views)
                    }
                    GflOutputs::Combined(output, levels) => {
                        let data = slice(*output)?;
                        decode(&GflLevel::combined(&data, levels, classes, bins))
                    }
                }
            }
            Decoder::Yolox {
                output,
                levels,
                decoded,
                top_k,
            } => decode_yolox(&slice(*output)?, classes, levels, *decoded, *top_k, &params),
            Decoder::Yolov8 {
                output,
                anchors,
                channels_first,
                top_k,
            } => decode_yolov8(
                &slice(*output)?,
                classes,
                *anchors,
                *channels_first,
                *top_k,
                &params,
            ),
            Decoder::BoxesScores {
                boxes,
                scores,
                classes,
                count,
                format,
            } => {
                let count = match count {
                    // A count is a small non-negative integer; anything else counts as zero rows.
                    Some(i) => Some(slice(*i)?.first().map_or(0, |&c| {
                        if c.is_finite() && c > 0.0 {
                            c as usize
                        } else {
                            0
                        }
                    })),
                    None => None,
                };
                decode_boxes_scores(
                    &slice(*boxes)?,
                    &slice(*scores)?,
                    &slice(*classes)?,
                    count,
                    format,
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
        let (width, height) = (manifest.input.width, manifest.input.height);
        let outputs = Outputs(engine);
        match &manifest.decoder {
            DecoderSpec::Gfl {
                strides,
                reg_max,
                cls,
                reg,
                output,
                cell_offset,
                top_k_per_level,
            } => {
                let bins = 4 * (*reg_max as usize + 1);
                let outputs = match output {
                    Some(combined) => {
                        let i = engine.resolve(combined)?;
                        outputs.float(i)?;
                        let levels = GridLevel::for_input(strides, width, height);
                        let cells: usize = levels.iter().map(GridLevel::cells).sum();
                        if outputs.fixed(i)? != [1, cells, classes + bins] {
                            return Err(outputs.wrong(i, format!(
                                "strides {strides:?} on a {width}x{height} input need [1, {cells}, {}]: {cells} grid cells x ({classes} classes, one per label, + 4 x (reg_max + 1) bins)",
                                classes + bins
                            )));
                        }
                        GflOutputs::Combined(i, levels)
                    }
                    None => {
                        let mut levels = Vec::new();
                        let grids = GridLevel::for_input(strides, width, height);
                        for ((grid, c), r) in grids.iter().zip(cls).zip(reg) {
                            let (ci, ri) = (engine.resolve(c)?, engine.resolve(r)?);
                            let (stride, cells) = (grid.stride, grid.cells());
                            for (i, want, what) in [
                                (ci, classes, "classes (one per label)"),
                                (ri, bins, "4 x (reg_max + 1) bins"),
                            ] {
                                outputs.float(i)?;
                                if outputs.fixed(i)? != [1, cells, want] {
                                    return Err(outputs.wrong(i, format!(
                                        "stride {stride} on a {width}x{height} input needs [1, {cells}, {want}]: {cells} grid cells x {want} {what}"
                                    )));
                                }
                            }
                            levels.push((stride, ci, ri));
                        }
                        GflOutputs::Separate(levels)
                    }
                };
                Ok(Decoder::Gfl {
                    outputs,
                    reg_max: *reg_max as usize,
                    cell_offset: *cell_offset,
                    top_k: *top_k_per_level,
                })
            }
            DecoderSpec::Yolox {
                output,
                strides,
                boxes,
                top_k,
            } => {
                let i = engine.resolve(output)?;
                outputs.float(i)?;
                let levels = GridLevel::for_input(strides, width, height);
                let rows: usize = levels.iter().map(GridLevel::cells).sum();
                if outputs.fixed(i)? != [1, rows, 5 + classes] {
                    return Err(outputs.wrong(i, format!(
                        "strides {strides:?} on a {width}x{height} input need [1, {rows}, {}]: {rows} grid cells x (4 box + 1 objectness + {classes} classes, one per label)",
                        5 + classes
                    )));
                }
                Ok(Decoder::Yolox {
                    output: i,
                    levels,
                    decoded: *boxes == YoloxBoxes::Decoded,
                    top_k: *top_k,
                })
            }
            DecoderSpec::Yolov8 { output, top_k } => {
                let i = engine.resolve(output)?;
                outputs.float(i)?;
                let channels = 4 + classes;
                let (anchors, channels_first) = match outputs.fixed(i)?.as_slice() {
                    [1, c, n] if *c == channels => (*n, true),
                    [1, n, c] if *c == channels => (*n, false),
                    _ => {
                        return Err(outputs.wrong(i, format!(
                            "YOLOv8 needs [1, {channels}, anchors] (or [1, anchors, {channels}]): 4 box values + {classes} classes, one per label"
                        )))
                    }
                };
                Ok(Decoder::Yolov8 {
                    output: i,
                    anchors,
                    channels_first,
                    top_k: *top_k,
                })
            }
            DecoderSpec::BoxesScores {
                boxes,
                scores,
                classes: class_output,
                count,
                box_order,
                coordinates,
                class_offset,
            } => {
                let b = engine.resolve(boxes)?;
                let s = engine.resolve(scores)?;
                let c = engine.resolve(class_output)?;
                outputs.float(b)?;
                outputs.float(s)?;
                outputs.number(c)?;
                // Rows may depend on the data (NMS in the graph); the batch must be one image.
                let rows = |i: usize, per_row: Option<usize>| -> Result<Option<usize>> {
                    let shape = engine.output_shapes()[i].as_slice();
                    let body = match shape.first() {
                        Some(Some(1)) if shape.len() == 2 + usize::from(per_row.is_some()) => {
                            &shape[1..]
                        }
                        _ if shape.len() == 1 + usize::from(per_row.is_some()) => shape,
                        _ => &[][..],
                    };
                    match (body, per_row) {
                        ([n], None) => Ok(*n),
                        ([n, Some(k)], Some(want)) if *k == want => Ok(*n),
                        _ => Err(outputs.wrong(
                            i,
                            match per_row {
                                Some(k) => format!("boxes must be [1, rows, {k}]"),
                                None => "scores and classes must be [1, rows]".to_string(),
                            },
                        )),
                    }
                };
                let n = [rows(b, Some(4))?, rows(s, None)?, rows(c, None)?];
                let known: Vec<usize> = n.iter().flatten().copied().collect();
                if known.windows(2).any(|w| w[0] != w[1]) {
                    return Err(Error::InvalidModel(format!(
                        "boxes, scores and classes have different row counts: {}, {}, {}",
                        outputs.describe(b),
                        outputs.describe(s),
                        outputs.describe(c)
                    )));
                }
                let count = match count {
                    Some(r) => {
                        let i = engine.resolve(r)?;
                        outputs.number(i)?;
                        if engine.output_shapes()[i].iter().any(|d| *d != Some(1)) {
                            return Err(outputs.wrong(i, "a count must hold one value".into()));
                        }
                        Some(i)
                    }
                    None => None,
                };
                Ok(Decoder::BoxesScores {
                    boxes: b,
                    scores: s,
                    classes: c,
                    count,
                    format: BoxesFormat {
                        order: *box_order,
                        normalized: *coordinates == Coordinates::Normalized,
                        class_offset: *class_offset,
                        num_labels: classes,
                    },
                })
            }
        }
    }
}

/// Output checks with messages that name the output and its actual shape.
struct Outputs<'a>(&'a Engine);

impl Outputs<'_> {
    fn describe(&self, i: usize) -> String {
        let dims: Vec<String> = self.0.output_shapes()[i]
            .iter()
            .map(|d| d.map_or("?".to_string(), |d| d.to_string()))
            .collect();
        format!(
            "`{}` [{}] {:?}",
            self.0.output_names()[i],
            dims.join(", "),
            self.0.output_types()[i]
        )
    }

    fn wrong(&self, i: usize, need: String) -> Error {
        Error::InvalidModel(format!("output {}: {need}", self.describe(i)))
    }

    /// The shape, when the input size fixes every dimension.
    fn fixed(&self, i: usize) -> Result<Vec<usize>> {
        self.0.output_shapes()[i]
            .iter()
            .copied()
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| {
                self.wrong(
                    i,
                    "this decoder needs a shape fixed by the input size".into(),
                )
            })
    }

    fn float(&self, i: usize) -> Result<()> {
        if self.0.output_types()[i] == f32::datum_type() {
            Ok(())
        } else {
            Err(self.wrong(i, "float32 values are expected".into()))
        }
    }

    fn number(&self, i: usize) -> Result<()> {
        if self.0.output_types()[i].is_number() {
            Ok(())
        } else {
            Err(self.wrong(i, "numbers are expected".into()))
        }
    }
}

/// A float tensor's data as a slice.
pub fn f32_slice(t: &Tensor) -> tract_onnx::prelude::TractResult<&[f32]> {
    t.try_as_plain_ram()?.as_slice::<f32>()
}

/// A numeric tensor's values as f32: borrowed when they already are, converted otherwise (int64
/// classes and counts).
fn f32_values(t: &Tensor) -> tract_onnx::prelude::TractResult<Cow<'_, [f32]>> {
    if t.datum_type() == f32::datum_type() {
        return Ok(Cow::Borrowed(f32_slice(t)?));
    }
    let cast = t.cast_to::<f32>()?;
    Ok(Cow::Owned(f32_slice(&cast)?.to_vec()))
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
