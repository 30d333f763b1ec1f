//! CloudWatch metrics as Embedded Metric Format (EMF) records: JSON log lines that CloudWatch Logs turns
//! into metrics by itself (no API call, no added latency). [`METRICS`] is the one list of what is
//! published (the metrics table of docs/operating.md is checked against it, and the template's
//! dashboard and alarms against that table); [`Metrics::records`] writes the records of one request.
//!
//! Dimension sets are few on purpose: every combination of dimension values is a billed metric.
//! - `Model` (`name@version` of the active model): every metric, so a new model has its own lines.
//! - `Model` + `ErrorCode`: `Errors`, on failed requests only.
//! - `FunctionName` + `FunctionVersion` (in Lambda only): `ServerErrors`, `NoDetections` and
//!   `TopScore`, what the template's rollback and drift alarms watch on the version being deployed.
//! - `Model` + `Label`: `Detections` per class, opt-in (`METRICS_PER_CLASS`), one record per label
//!   found in the image.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::core::error_code::ErrorCode;
use crate::core::response::{decimal, ModelRef, Response, Timings};

/// The CloudWatch units these metrics use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Unit {
    Milliseconds,
    Count,
    None,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Milliseconds => "Milliseconds",
            Unit::Count => "Count",
            Unit::None => "None",
        }
    }
}

/// One published metric, as the metrics table (docs/operating.md) shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    pub name: &'static str,
    pub unit: Unit,
    /// The dimension sets it is published under, in the table's words.
    pub dimensions: &'static str,
    pub meaning: &'static str,
}

macro_rules! metrics {
    ($( $id:ident = $name:literal, $unit:ident, $dims:literal, $meaning:literal; )*) => {
        $( pub const $id: Metric = Metric {
            name: $name,
            unit: Unit::$unit,
            dimensions: $dims,
            meaning: $meaning,
        }; )*
        /// Every metric, in the table's order.
        pub const METRICS: &[Metric] = &[$($id,)*];
    };
}

metrics! {
    LATENCY = "Latency", Milliseconds, "Model",
        "whole detection request, from event in to answer out (failed ones too); not for `/health` or `/model`";
    DECODE_LATENCY = "DecodeLatency", Milliseconds, "Model", "image decoding (`timings_ms.decode`)";
    PREPROCESS_LATENCY = "PreprocessLatency", Milliseconds, "Model", "resize and tensor (`timings_ms.preprocess`)";
    INFERENCE_LATENCY = "InferenceLatency", Milliseconds, "Model", "the model run (`timings_ms.inference`)";
    POSTPROCESS_LATENCY = "PostprocessLatency", Milliseconds, "Model", "boxes, scores, NMS (`timings_ms.postprocess`)";
    ANNOTATE_LATENCY = "AnnotateLatency", Milliseconds, "Model", "drawing and encoding the annotated picture, when one was asked for";
    DETECTIONS = "Detections", Count, "Model; Model, Label (opt-in)",
        "detections reported for the image; per class with `METRICS_PER_CLASS=true`";
    TOP_SCORE = "TopScore", None, "Model; FunctionName, FunctionVersion",
        "the best score in the image; absent when nothing was found";
    NO_DETECTIONS = "NoDetections", Count, "Model; FunctionName, FunctionVersion",
        "1 when the image had no detection, else 0: its average is the no-detection rate";
    IMAGE_PIXELS = "ImagePixels", Count, "Model", "width x height of the decoded image";
    COLD_START = "ColdStart", Count, "Model", "1 on the first request of an execution environment, else 0";
    MODEL_LOAD_LATENCY = "ModelLoadLatency", Milliseconds, "Model",
        "building the model's plan at start-up; on the cold-start record only";
    SERVER_ERRORS = "ServerErrors", Count, "Model; FunctionName, FunctionVersion",
        "1 when the answer was a 5xx (or a function error), else 0: its average is the server-error rate";
    ERRORS = "Errors", Count, "Model, ErrorCode", "1 per failed request (4xx and 5xx), by its error code";
}

/// Where the function runs, when it runs in Lambda (`AWS_LAMBDA_FUNCTION_NAME`, `..._VERSION`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionId {
    pub name: String,
    pub version: String,
}

/// What the environment configures for metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// The CloudWatch namespace (`METRICS_NAMESPACE`).
    pub namespace: String,
    /// Per-class `Detections` (`METRICS_PER_CLASS`).
    pub per_class: bool,
}

impl Default for MetricsConfig {
    fn default() -> MetricsConfig {
        MetricsConfig {
            namespace: DEFAULT_NAMESPACE.into(),
            per_class: false,
        }
    }
}

pub const DEFAULT_NAMESPACE: &str = "ObjectDetector";

/// What the metrics need of a detection, taken from the response before it is sent away.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectionStats {
    pub timings: Timings,
    pub pixels: u64,
    pub detections: usize,
    pub top_score: Option<f32>,
    /// Detections per label, for per-class metrics, in label order.
    pub per_label: Vec<LabelCount>,
}

/// How many detections one label had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelCount {
    pub label: String,
    pub count: usize,
}

impl DetectionStats {
    pub fn of(response: &Response) -> DetectionStats {
        let mut per_label: BTreeMap<&str, usize> = BTreeMap::new();
        for d in &response.detections {
            *per_label.entry(d.label.as_str()).or_default() += 1;
        }
        DetectionStats {
            timings: response.timings_ms,
            pixels: u64::from(response.image.width) * u64::from(response.image.height),
            detections: response.detections.len(),
            top_score: response.detections.iter().map(|d| d.score).reduce(f32::max),
            per_label: per_label
                .into_iter()
                .map(|(label, count)| LabelCount {
                    label: label.to_string(),
                    count,
                })
                .collect(),
        }
    }
}

/// One request, as the metrics see it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    /// The whole request in milliseconds, for detection requests.
    pub latency_ms: Option<f64>,
    /// The first request of this process.
    pub cold_start: bool,
    /// What was found, when detection ran.
    pub detected: Option<DetectionStats>,
    /// The error answered, if any.
    pub error: Option<ErrorCode>,
    /// The request id, written beside the metrics so a record leads to its log line.
    pub request_id: Option<String>,
}

/// Writes the EMF records of a model's requests.
#[derive(Debug, Clone)]
pub struct Metrics {
    config: MetricsConfig,
    /// The `Model` dimension value.
    model: String,
    function: Option<FunctionId>,
    model_load_ms: f64,
}

/// CloudWatch dimension values are at most 1024 characters; a manifest's name and version are not
/// bounded, so the `Model` value is cut well below.
const MAX_DIMENSION_VALUE: usize = 250;

impl Metrics {
    /// The records of the active model (`Detector::model_ref`) whose plan took `model_load_ms` to build.
    pub fn new(
        config: MetricsConfig,
        model: &ModelRef,
        model_load_ms: f64,
        function: Option<FunctionId>,
    ) -> Metrics {
        let model: String = format!("{}@{}", model.name, model.version)
            .chars()
            .take(MAX_DIMENSION_VALUE)
            .collect();
        Metrics {
            config,
            model,
            function,
            model_load_ms,
        }
    }

    /// The `Model` dimension value.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The records of one request: the request's record, then (with per-class metrics) one record per
    /// label found. Each is one line of JSON.
    pub fn records(&self, observation: &Observation) -> Vec<String> {
        self.records_at(observation, SystemTime::now())
    }

    /// [`Metrics::records`] at a given time.
    pub fn records_at(&self, o: &Observation, now: SystemTime) -> Vec<String> {
        let timestamp = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut main = Record::new(&self.config.namespace, timestamp);
        main.dimension("Model", &self.model);
        let model = main.directive(&["Model"]);
        if let Some(latency) = o.latency_ms {
            main.put(model, &LATENCY, latency);
        }
        if let Some(d) = &o.detected {
            main.put(model, &DECODE_LATENCY, d.timings.decode);
            main.put(model, &PREPROCESS_LATENCY, d.timings.preprocess);
            main.put(model, &INFERENCE_LATENCY, d.timings.inference);
            main.put(model, &POSTPROCESS_LATENCY, d.timings.postprocess);
            if let Some(annotate) = d.timings.annotate {
                main.put(model, &ANNOTATE_LATENCY, annotate);
            }
            main.put(model, &DETECTIONS, d.detections as f64);
            if let Some(score) = d.top_score {
                main.put(model, &TOP_SCORE, decimal(score));
            }
            main.put(model, &NO_DETECTIONS, f64::from(d.detections == 0));
            main.put(model, &IMAGE_PIXELS, d.pixels as f64);
        }
        main.put(model, &COLD_START, f64::from(o.cold_start));
        if o.cold_start {
            main.put(model, &MODEL_LOAD_LATENCY, self.model_load_ms);
        }
        let server_error = o.error.is_some_and(|c| !c.is_client_error());
        main.put(model, &SERVER_ERRORS, f64::from(server_error));
        if let Some(code) = o.error {
            main.dimension("ErrorCode", code.as_str());
            let errors = main.directive(&["Model", "ErrorCode"]);
            main.put(errors, &ERRORS, 1.0);
        }
        if let Some(f) = &self.function {
            main.dimension("FunctionName", &f.name);
            main.dimension("FunctionVersion", &f.version);
            let version = main.directive(&["FunctionName", "FunctionVersion"]);
            main.reuse(version, &SERVER_ERRORS);
            main.reuse(version, &NO_DETECTIONS);
            main.reuse(version, &TOP_SCORE);
        }
        if let Some(id) = &o.request_id {
            main.property("request_id", id);
        }
        let mut records = vec![main.finish()];
        if self.config.per_class {
            for LabelCount { label, count } in o.detected.iter().flat_map(|d| &d.per_label) {
                let mut r = Record::new(&self.config.namespace, timestamp);
                r.dimension("Model", &self.model);
                r.dimension("Label", label);
                let per_label = r.directive(&["Model", "Label"]);
                r.put(per_label, &DETECTIONS, *count as f64);
                if let Some(id) = &o.request_id {
                    r.property("request_id", id);
                }
                records.push(r.finish());
            }
        }
        records
    }
}

#[derive(Serialize)]
struct Directive<'a> {
    #[serde(rename = "Namespace")]
    namespace: &'a str,
    #[serde(rename = "Dimensions")]
    dimensions: [&'static [&'static str]; 1],
    #[serde(rename = "Metrics")]
    metrics: Vec<Definition>,
}

#[derive(Serialize)]
struct Definition {
    #[serde(rename = "Name")]
    name: &'static str,
    #[serde(rename = "Unit")]
    unit: &'static str,
}

/// One EMF document: the `_aws` metadata, then dimension values, metric values and properties as
/// top-level members.
struct Record<'a> {
    namespace: &'a str,
    timestamp: u64,
    directives: Vec<Directive<'a>>,
    members: Map<String, Value>,
}

impl<'a> Record<'a> {
    fn new(namespace: &'a str, timestamp: u64) -> Record<'a> {
        Record {
            namespace,
            timestamp,
            directives: Vec::new(),
            members: Map::new(),
        }
    }

    fn dimension(&mut self, name: &str, value: &str) {
        self.members.insert(name.into(), Value::from(value));
    }

    fn property(&mut self, name: &str, value: &str) {
        self.members.insert(name.into(), Value::from(value));
    }

    /// A new directive over one dimension set; returns its index.
    fn directive(&mut self, dimensions: &'static [&'static str]) -> usize {
        self.directives.push(Directive {
            namespace: self.namespace,
            dimensions: [dimensions],
            metrics: Vec::new(),
        });
        self.directives.len() - 1
    }

    fn put(&mut self, directive: usize, metric: &Metric, value: f64) {
        // Counts as whole numbers (`"Detections":2`, not `2.0`).
        let value = match metric.unit {
            Unit::Count if value.fract() == 0.0 && value >= 0.0 => Value::from(value as u64),
            _ => Value::from(value),
        };
        self.members.insert(metric.name.into(), value);
        self.reuse(directive, metric);
    }

    /// Publishes a value already put under another directive's dimensions too; nothing when the
    /// record has no such value (an absent `TopScore`).
    fn reuse(&mut self, directive: usize, metric: &Metric) {
        if self.members.contains_key(metric.name) {
            self.directives[directive].metrics.push(Definition {
                name: metric.name,
                unit: metric.unit.as_str(),
            });
        }
    }

    fn finish(self) -> String {
        let mut root = Map::with_capacity(self.members.len() + 1);
        root.insert(
            "_aws".into(),
            serde_json::json!({
                "Timestamp": self.timestamp,
                "CloudWatchMetrics": self.directives,
            }),
        );
        root.extend(self.members);
        Value::Object(root).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::response::Timings;

    fn model(name: &str, version: &str) -> ModelRef {
        ModelRef {
            name: name.into(),
            version: version.into(),
            input_width: 416,
            input_height: 416,
        }
    }

    fn metrics(per_class: bool, function: bool) -> Metrics {
        Metrics::new(
            MetricsConfig {
                namespace: "Test".into(),
                per_class,
            },
            &model("m", "1"),
            80.5,
            function.then(|| FunctionId {
                name: "fn".into(),
                version: "7".into(),
            }),
        )
    }

    fn detected(labels: &[(&str, f32)]) -> DetectionStats {
        let mut per_label: BTreeMap<String, usize> = BTreeMap::new();
        for (l, _) in labels {
            *per_label.entry(l.to_string()).or_default() += 1;
        }
        DetectionStats {
            timings: Timings {
                decode: 1.0,
                preprocess: 2.0,
                inference: 70.0,
                postprocess: 0.5,
                annotate: None,
                total: 73.5,
            },
            pixels: 550 * 367,
            detections: labels.len(),
            top_score: labels.iter().map(|l| l.1).reduce(f32::max),
            per_label: per_label
                .into_iter()
                .map(|(label, count)| LabelCount { label, count })
                .collect(),
        }
    }

    fn parse(line: &str) -> Value {
        serde_json::from_str(line).unwrap()
    }

    fn names(record: &Value, directive: usize) -> Vec<&str> {
        record["_aws"]["CloudWatchMetrics"][directive]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn a_detection_publishes_every_stage_and_its_predictions() {
        let o = Observation {
            latency_ms: Some(75.0),
            detected: Some(detected(&[("cat", 0.86), ("cat", 0.4), ("dog", 0.5)])),
            request_id: Some("r-1".into()),
            ..Observation::default()
        };
        let records = metrics(false, false).records_at(&o, UNIX_EPOCH);
        assert_eq!(records.len(), 1);
        let r = parse(&records[0]);
        assert_eq!(r["_aws"]["Timestamp"], 0);
        assert_eq!(r["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Test");
        assert_eq!(
            r["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([["Model"]])
        );
        assert_eq!(r["Model"], "m@1");
        assert_eq!(
            names(&r, 0),
            [
                "Latency",
                "DecodeLatency",
                "PreprocessLatency",
                "InferenceLatency",
                "PostprocessLatency",
                "Detections",
                "TopScore",
                "NoDetections",
                "ImagePixels",
                "ColdStart",
                "ServerErrors"
            ]
        );
        assert_eq!(r["Detections"], 3.0);
        assert_eq!(r["TopScore"], 0.86);
        assert_eq!(r["NoDetections"], 0.0);
        assert_eq!(r["ImagePixels"], 201850.0);
        assert_eq!(r["ColdStart"], 0.0);
        assert_eq!(r["ServerErrors"], 0.0);
        assert_eq!(r["request_id"], "r-1");
        // One directive only: no error, not in Lambda.
        assert_eq!(r["_aws"]["CloudWatchMetrics"].as_array().unwrap().len(), 1);
        assert!(r.get("ErrorCode").is_none() && r.get("Errors").is_none());
    }

    #[test]
    fn an_empty_image_has_no_top_score_and_counts_as_no_detection() {
        let o = Observation {
            latency_ms: Some(75.0),
            detected: Some(detected(&[])),
            ..Observation::default()
        };
        let r = parse(&metrics(true, true).records_at(&o, UNIX_EPOCH)[0]);
        assert!(r.get("TopScore").is_none());
        assert!(!names(&r, 0).contains(&"TopScore"));
        assert!(!names(&r, 1).contains(&"TopScore"));
        assert_eq!(r["NoDetections"], 1.0);
        assert_eq!(r["Detections"], 0.0);
    }

    #[test]
    fn errors_are_counted_by_code_and_server_errors_flagged() {
        for (code, server) in [
            (ErrorCode::InvalidBase64, 0.0),
            (ErrorCode::InternalError, 1.0),
        ] {
            let o = Observation {
                latency_ms: Some(1.0),
                error: Some(code),
                ..Observation::default()
            };
            let r = parse(&metrics(false, false).records_at(&o, UNIX_EPOCH)[0]);
            assert_eq!(r["ErrorCode"], code.as_str());
            assert_eq!(r["Errors"], 1.0);
            assert_eq!(r["ServerErrors"], server);
            assert_eq!(
                r["_aws"]["CloudWatchMetrics"][1]["Dimensions"],
                serde_json::json!([["Model", "ErrorCode"]])
            );
            assert_eq!(names(&r, 1), ["Errors"]);
            // No stage metrics when nothing was detected.
            assert!(r.get("InferenceLatency").is_none() && r.get("Detections").is_none());
        }
    }

    #[test]
    fn a_cold_start_carries_the_model_load_time() {
        let o = Observation {
            cold_start: true,
            ..Observation::default()
        };
        let r = parse(&metrics(false, false).records_at(&o, UNIX_EPOCH)[0]);
        assert_eq!(r["ColdStart"], 1.0);
        assert_eq!(r["ModelLoadLatency"], 80.5);
        assert!(r.get("Latency").is_none());
        let warm = parse(&metrics(false, false).records_at(&Observation::default(), UNIX_EPOCH)[0]);
        assert_eq!(warm["ColdStart"], 0.0);
        assert!(warm.get("ModelLoadLatency").is_none());
    }

    #[test]
    fn in_lambda_the_version_dimensions_carry_what_the_alarms_watch() {
        let o = Observation {
            latency_ms: Some(75.0),
            detected: Some(detected(&[("cat", 0.86)])),
            ..Observation::default()
        };
        let r = parse(&metrics(false, true).records_at(&o, UNIX_EPOCH)[0]);
        assert_eq!(
            (r["FunctionName"].as_str(), r["FunctionVersion"].as_str()),
            (Some("fn"), Some("7"))
        );
        assert_eq!(
            r["_aws"]["CloudWatchMetrics"][1]["Dimensions"],
            serde_json::json!([["FunctionName", "FunctionVersion"]])
        );
        assert_eq!(names(&r, 1), ["ServerErrors", "NoDetections", "TopScore"]);
    }

    #[test]
    fn per_class_records_are_opt_in_one_per_label() {
        let o = Observation {
            detected: Some(detected(&[("cat", 0.86), ("dog", 0.5), ("cat", 0.4)])),
            request_id: Some("r".into()),
            ..Observation::default()
        };
        assert_eq!(metrics(false, false).records_at(&o, UNIX_EPOCH).len(), 1);
        let records = metrics(true, false).records_at(&o, UNIX_EPOCH);
        let per: Vec<(String, f64)> = records[1..]
            .iter()
            .map(|l| {
                let r = parse(l);
                assert_eq!(
                    r["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
                    serde_json::json!([["Model", "Label"]])
                );
                assert_eq!(names(&r, 0), ["Detections"]);
                assert_eq!(r["request_id"], "r");
                (
                    r["Label"].as_str().unwrap().into(),
                    r["Detections"].as_f64().unwrap(),
                )
            })
            .collect();
        assert_eq!(per, [("cat".into(), 2.0), ("dog".into(), 1.0)]);
    }

    /// The metrics table of docs/operating.md must be [`METRICS`], row by row.
    #[test]
    fn readme_documents_every_metric() {
        let readme = include_str!("../../docs/operating.md");
        let section = readme
            .split("\n## Operating it\n")
            .nth(1)
            .expect("docs/operating.md has an Operating it section");
        let rows: Vec<&str> = section
            .lines()
            .skip_while(|l| !l.starts_with("| metric |"))
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .collect();
        let want: Vec<String> = METRICS
            .iter()
            .map(|m| {
                format!(
                    "| `{}` | {} | {} | {} |",
                    m.name,
                    m.unit.as_str(),
                    m.dimensions,
                    m.meaning
                )
            })
            .collect();
        assert_eq!(
            rows,
            want,
            "docs/operating.md's metrics table must be these rows (from src/aws/metrics.rs):\n{}",
            want.join("\n")
        );
    }

    #[test]
    fn the_model_dimension_is_bounded() {
        let long = "n".repeat(5000);
        let m = Metrics::new(MetricsConfig::default(), &model(&long, "1"), 0.0, None);
        assert_eq!(m.model().chars().count(), MAX_DIMENSION_VALUE);
    }
}
