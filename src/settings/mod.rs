//! Every setting the binaries take from the environment, in one place: [`VARIABLES`] lists them with
//! their defaults and meaning (the configuration table in docs/operating.md is checked against it, so a new variable
//! cannot go undocumented), and [`Settings::from_env`] reads each of them once, at start-up, into one
//! typed value, validated here. A bad value is one message: an init error in Lambda, exit 2 in the CLI.
//! The library below takes the plain values; nothing else in `src/` reads the environment.

mod variables;

use std::ffi::OsString;
use std::path::PathBuf;

use crate::aws::batch::{BatchConfig, Output, DEFAULT_MAX_OBJECT_BYTES};
use crate::aws::image_url::{HostList, ImageUrlConfig, FETCH_TIMEOUT};
use crate::aws::lambda::{self, AllowedOrigins};
use crate::aws::metrics::{FunctionId, MetricsConfig, DEFAULT_NAMESPACE};
use crate::aws::s3::{AccessKeys, S3Config};

use crate::core::detector::{Detector, ModelSource};
use crate::core::engine::{Backend, RunConfig};
use crate::core::error::{Error, Result};
use crate::core::export::Export;
use crate::core::image_decode::DecodeLimits;
use crate::core::options::{parse_switch, DetectOptions};
use crate::core::response::Encoding;
pub use variables::{Variable, VARIABLES};

/// Everything the environment configures.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub model: ModelSource,
    pub run: RunConfig,
    pub limits: DecodeLimits,
    /// The origins browsers may read answers from; no CORS headers when `None`.
    pub cors_allow_origin: Option<AllowedOrigins>,
    /// Whether the Lambda function writes metric records (`METRICS`).
    pub metrics_enabled: bool,
    /// How metric records are written, when they are (by the function, or by `detect --metrics`).
    pub metrics: MetricsConfig,
    /// Whether a Lambda runtime API is there to poll (`AWS_LAMBDA_RUNTIME_API`, set by Lambda and by
    /// its emulators; not a setting of this product).
    pub in_lambda: bool,
    /// The function's name and version (`AWS_LAMBDA_FUNCTION_NAME`, `AWS_LAMBDA_FUNCTION_VERSION`,
    /// set by Lambda; not settings of this product).
    pub function: Option<FunctionId>,
    /// The batch path: where results go, what is read, the S3 endpoint and credentials.
    pub batch: BatchConfig,
    /// `image_url` input; `None` when it is off (`IMAGE_URL=off`).
    pub image_url: Option<ImageUrlConfig>,
    /// `DEMO_PAGE`: whether `GET /` and `GET /demo` serve the page to try the function.
    pub demo_page: bool,
}

impl Settings {
    /// The detector the settings name: the model, its backend and threads, the decode limits.
    pub fn detector(&self) -> Result<Detector> {
        Ok(Detector::load(&self.model, self.run.clone())?.with_limits(self.limits))
    }

    /// The Lambda adapter's configuration, beside the detector.
    pub fn lambda_config(&self) -> lambda::Config {
        lambda::Config {
            cors_allow_origin: self.cors_allow_origin.clone(),
            metrics: self.metrics_enabled.then(|| self.metrics.clone()),
            function: self.function.clone(),
            batch: self.batch.clone(),
            image_url: self.image_url.clone(),
            demo_page: self.demo_page,
        }
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Settings> {
        Settings::from_lookup(|name| std::env::var_os(name))
    }

    /// Reads the variables through `get` (the process environment, or a table in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<OsString>) -> Result<Settings> {
        let raw = |name: &str| get(name).filter(|v| !v.to_string_lossy().trim().is_empty());
        let text = |name: &'static str| -> Result<Option<String>> {
            raw(name)
                .map(|v| {
                    v.into_string().map_err(|v| Error::Setting {
                        variable: name,
                        detail: format!("{v:?} is not UTF-8 text"),
                    })
                })
                .transpose()
        };
        let model = model_source(&raw)?;
        // The memory size Lambda gives the function: the decode limits and the threads follow it.
        let memory_mib = text("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")?
            .map(|mib| positive("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", Some(mib), 1))
            .transpose()?;
        let run = run_config(&text, &raw, memory_mib)?;
        let limits = decode_limits(&text, memory_mib)?;
        let metrics_enabled = switch("METRICS", text("METRICS")?, true)?;
        let metrics = MetricsConfig {
            namespace: namespace(text("METRICS_NAMESPACE")?)?,
            per_class: switch("METRICS_PER_CLASS", text("METRICS_PER_CLASS")?, false)?,
        };
        let function = match (
            text("AWS_LAMBDA_FUNCTION_NAME")?,
            text("AWS_LAMBDA_FUNCTION_VERSION")?,
        ) {
            (Some(name), Some(version)) => Some(FunctionId { name, version }),
            _ => None,
        };
        let cors_allow_origin = text("CORS_ALLOW_ORIGIN")?
            .map(|v| {
                AllowedOrigins::parse(&v).map_err(|detail| Error::Setting {
                    variable: "CORS_ALLOW_ORIGIN",
                    detail,
                })
            })
            .transpose()?;
        let batch = batch(&text)?;
        let image_url = image_url(&text, &raw, batch.max_object_bytes)?;
        Ok(Settings {
            model,
            run,
            limits,
            cors_allow_origin,
            metrics_enabled,
            metrics,
            in_lambda: raw("AWS_LAMBDA_RUNTIME_API").is_some(),
            function,
            batch,
            image_url,
            demo_page: switch("DEMO_PAGE", text("DEMO_PAGE")?, true)?,
        })
    }
}

/// A variable as text: `None` when unset (or set to empty text), an error when not UTF-8.
type Text<'a> = dyn Fn(&'static str) -> Result<Option<String>> + 'a;
/// A variable as the OS gives it (a path need not be UTF-8).
type Raw<'a> = dyn Fn(&str) -> Option<OsString> + 'a;

/// `MODEL_PATH` and `MODEL_MANIFEST`, both or neither.
fn model_source(raw: &Raw) -> Result<ModelSource> {
    match (raw("MODEL_PATH"), raw("MODEL_MANIFEST")) {
        (None, None) => Ok(ModelSource::Embedded),
        (Some(model), Some(manifest)) => Ok(ModelSource::Files {
            model: model.into(),
            manifest: manifest.into(),
        }),
        (model, _) => Err(Error::Setting {
            variable: if model.is_some() {
                "MODEL_PATH"
            } else {
                "MODEL_MANIFEST"
            },
            detail: "MODEL_PATH and MODEL_MANIFEST must be set together (both or neither)".into(),
        }),
    }
}

/// The backend and its threads (by default from the memory size on Lambda), checked against what
/// this build can run.
fn run_config(text: &Text, raw: &Raw, memory_mib: Option<u64>) -> Result<RunConfig> {
    let backend = match text("DETECTOR_BACKEND")? {
        None => Backend::Tract,
        Some(v) => Backend::from_name(&v).ok_or_else(|| Error::Setting {
            variable: "DETECTOR_BACKEND",
            detail: format!("{v:?} is not a backend; use `tract` or `onnxruntime`"),
        })?,
    };
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let threads = match text("DETECTOR_THREADS")? {
        None => RunConfig::default_threads(backend, memory_mib, cores),
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if (1..=256).contains(&n) => n,
            _ => {
                return Err(Error::Setting {
                    variable: "DETECTOR_THREADS",
                    detail: format!("{v:?} is not a thread count from 1 to 256"),
                })
            }
        },
    };
    let run = RunConfig {
        backend,
        threads,
        onnxruntime_library: raw("ORT_DYLIB_PATH").map(PathBuf::from),
        winograd: switch("DETECTOR_WINOGRAD", text("DETECTOR_WINOGRAD")?, false)?,
        plan_threads: cores,
    };
    run.check()?;
    Ok(run)
}

/// On Lambda the memory size bounds what an image may take; elsewhere the fixed defaults.
fn decode_limits(text: &Text, memory_mib: Option<u64>) -> Result<DecodeLimits> {
    let defaults = memory_mib.map_or_else(DecodeLimits::default, DecodeLimits::for_memory);
    Ok(DecodeLimits {
        max_pixels: positive(
            "MAX_IMAGE_PIXELS",
            text("MAX_IMAGE_PIXELS")?,
            defaults.max_pixels,
        )?,
        max_alloc_bytes: positive(
            "MAX_DECODE_BYTES",
            text("MAX_DECODE_BYTES")?,
            defaults.max_alloc_bytes,
        )?,
    })
}

/// The batch path's variables, with the standard AWS ones its S3 client reads (region, endpoint,
/// credentials: what Lambda sets and the AWS SDKs read).
fn batch(text: &Text) -> Result<BatchConfig> {
    let defaults = BatchConfig::default();
    let options = match text("DETECT_OPTIONS")? {
        None => DetectOptions::default(),
        Some(v) => detect_options(&v).map_err(|detail| Error::Setting {
            variable: "DETECT_OPTIONS",
            detail,
        })?,
    };
    let annotate = match text("ANNOTATE")? {
        None => None,
        Some(v) => Some(Encoding::from_name(&v).ok_or_else(|| Error::Setting {
            variable: "ANNOTATE",
            detail: format!("expected `jpeg` or `png`, got {v:?}"),
        })?),
    };
    let s3_endpoint = text("AWS_ENDPOINT_URL_S3")?;
    let endpoint_variable = match (&s3_endpoint, text("AWS_REGION")?) {
        (Some(_), _) => "AWS_ENDPOINT_URL_S3",
        (None, _) if text("AWS_ENDPOINT_URL")?.is_some() => "AWS_ENDPOINT_URL",
        (None, Some(_)) => "AWS_REGION",
        (None, None) => "AWS_DEFAULT_REGION",
    };
    let credentials = match (text("AWS_ACCESS_KEY_ID")?, text("AWS_SECRET_ACCESS_KEY")?) {
        (Some(access_key_id), Some(secret_access_key)) => Some(AccessKeys {
            access_key_id,
            secret_access_key,
            session_token: text("AWS_SESSION_TOKEN")?,
        }),
        _ => None,
    };
    let config = BatchConfig {
        output: Output {
            bucket: text("OUTPUT_BUCKET")?,
            prefix: text("OUTPUT_PREFIX")?.unwrap_or(defaults.output.prefix),
        },
        input_prefix: text("INPUT_PREFIX")?,
        max_object_bytes: positive(
            "MAX_OBJECT_BYTES",
            text("MAX_OBJECT_BYTES")?,
            DEFAULT_MAX_OBJECT_BYTES,
        )?,
        options,
        annotate,
        output_format: match text("OUTPUT_FORMAT")? {
            None => None,
            Some(v) if v.trim().eq_ignore_ascii_case("json") => None,
            Some(v) => Some(Export::from_name(&v).ok_or_else(|| Error::Setting {
                variable: "OUTPUT_FORMAT",
                detail: format!("expected `json`, `coco`, `yolo` or `voc`, got {v:?}"),
            })?),
        },
        s3: S3Config {
            endpoint: match s3_endpoint {
                Some(url) => Some(url),
                None => text("AWS_ENDPOINT_URL")?,
            },
            region: match text("AWS_REGION")? {
                Some(region) => region,
                None => text("AWS_DEFAULT_REGION")?.unwrap_or(defaults.s3.region),
            },
            force_path_style: switch("S3_FORCE_PATH_STYLE", text("S3_FORCE_PATH_STYLE")?, false)?,
            credentials,
            retry_pauses: defaults.s3.retry_pauses,
        },
    };
    config.s3.endpoint_url().map_err(|e| Error::Setting {
        variable: endpoint_variable,
        detail: e.to_string(),
    })?;
    Ok(config)
}

/// `image_url` input: on unless `IMAGE_URL=off`, narrowed by `IMAGE_URL_HOSTS`, with the roots of
/// `IMAGE_URL_CA_FILE` (read when the function starts), and the batch path's byte cap.
fn image_url(text: &Text, raw: &Raw, max_bytes: u64) -> Result<Option<ImageUrlConfig>> {
    if !switch("IMAGE_URL", text("IMAGE_URL")?, true)? {
        return Ok(None);
    }
    let hosts = text("IMAGE_URL_HOSTS")?
        .map(|v| {
            HostList::parse(&v).map_err(|detail| Error::Setting {
                variable: "IMAGE_URL_HOSTS",
                detail,
            })
        })
        .transpose()?;
    Ok(Some(ImageUrlConfig {
        hosts,
        ca_file: raw("IMAGE_URL_CA_FILE").map(PathBuf::from),
        max_bytes,
        timeout: FETCH_TIMEOUT,
    }))
}

/// `DETECT_OPTIONS`: a JSON object of the API's options; `format` is not one (results are JSON, and
/// `ANNOTATE` asks for pictures).
fn detect_options(text: &str) -> std::result::Result<DetectOptions, String> {
    let map = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => map,
        Ok(_) => return Err("expected a JSON object of options".into()),
        Err(e) => return Err(format!("not JSON: {e}")),
    };
    let mut options = DetectOptions::default();
    for (name, value) in map {
        if name == "format" || name == "annotate" {
            return Err(format!(
                "`{name}` is not a batch option; set ANNOTATE=jpeg for pictures"
            ));
        }
        if !DetectOptions::NAMES.contains(&name.as_str()) {
            return Err(DetectOptions::unknown("option", &name, &[]).to_string());
        }
        options.set_json(&name, value).map_err(|e| e.to_string())?;
    }
    Ok(options)
}

/// An on/off setting, read by [`parse_switch`]; `default` when unset.
fn switch(variable: &'static str, value: Option<String>, default: bool) -> Result<bool> {
    let Some(text) = value else {
        return Ok(default);
    };
    parse_switch(&text).ok_or_else(|| Error::Setting {
        variable,
        detail: format!("expected `on` or `off` (or `true`/`false`), got {text:?}"),
    })
}

/// A CloudWatch namespace, as CloudWatch accepts it.
fn namespace(value: Option<String>) -> Result<String> {
    let Some(text) = value else {
        return Ok(DEFAULT_NAMESPACE.into());
    };
    let name = text.trim();
    let allowed = |c: char| c.is_ascii_alphanumeric() || ".-_/#: ".contains(c);
    if name.len() > 255 || !name.chars().all(allowed) || name.starts_with("AWS/") {
        return Err(Error::Setting {
            variable: "METRICS_NAMESPACE",
            detail: format!(
                "{:?} is not a CloudWatch namespace: up to 255 ASCII letters, digits and `.-_/#: `, \
                 not starting with `AWS/`",
                text.chars().take(64).collect::<String>()
            ),
        });
    }
    Ok(name.to_string())
}

/// A positive whole number, or `default` when unset.
fn positive(variable: &'static str, value: Option<String>, default: u64) -> Result<u64> {
    match value {
        None => Ok(default),
        Some(text) => text
            .trim()
            .parse()
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| Error::Setting {
                variable,
                detail: format!("expected a positive whole number, got {text:?}"),
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<Settings> {
        Settings::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        })
    }

    #[test]
    fn the_memory_size_bounds_the_decode_limits_unless_they_are_set() {
        let limits = |vars: &[(&str, &str)]| {
            let l = parse(vars).unwrap().limits;
            (l.max_pixels, l.max_alloc_bytes)
        };
        assert_eq!(
            limits(&[]),
            (40_000_000, 512 << 20),
            "off Lambda: the defaults"
        );
        let mib = |m: u64| m << 20;
        for (memory, pixels, alloc) in [
            ("128", mib(48) / 13, mib(48)),
            ("256", mib(176) / 13, mib(176)),
            ("512", mib(432) / 13, mib(432)),
            ("1769", 40_000_000, mib(512)),
            ("10240", 40_000_000, mib(512)),
            ("64", mib(1) / 13, mib(1)),
        ] {
            let vars = [("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory)];
            assert_eq!(limits(&vars), (pixels, alloc), "{memory} MiB");
        }
        assert_eq!(
            limits(&[("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")]).0,
            3_871_665
        );
        let set = [
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
            ("MAX_IMAGE_PIXELS", "20000000"),
            ("MAX_DECODE_BYTES", "300000000"),
        ];
        assert_eq!(limits(&set), (20_000_000, 300_000_000), "a setting wins");
        let err = parse(&[("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "lots")]).unwrap_err();
        assert!(
            err.to_string().contains("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
            "{err}"
        );
    }

    fn run(backend: Option<&str>, threads: Option<&str>) -> Result<RunConfig> {
        let mut vars = Vec::new();
        vars.extend(backend.map(|b| ("DETECTOR_BACKEND", b)));
        vars.extend(threads.map(|t| ("DETECTOR_THREADS", t)));
        parse(&vars).map(|s| s.run)
    }

    /// The run settings when none is set: `RunConfig`'s defaults, with the plan built on every core the
    /// process sees.
    fn default_run() -> RunConfig {
        RunConfig {
            plan_threads: std::thread::available_parallelism().map_or(1, usize::from),
            ..RunConfig::default()
        }
    }

    #[test]
    fn nothing_set_means_every_default() {
        let s = parse(&[]).unwrap();
        assert_eq!(s.model, ModelSource::Embedded);
        assert_eq!(s.run, default_run());
        assert_eq!(s.limits, DecodeLimits::default());
        assert_eq!(s.cors_allow_origin, None);
        assert!(s.metrics_enabled);
        assert_eq!(s.metrics, MetricsConfig::default());
        assert_eq!(s.metrics.namespace, "ObjectDetector");
        assert!(!s.in_lambda);
        assert_eq!(s.function, None);
        // Empty text counts as unset.
        let blank = parse(&[("CORS_ALLOW_ORIGIN", " "), ("MAX_IMAGE_PIXELS", "")]).unwrap();
        assert_eq!(blank, s);
    }

    #[test]
    fn run_config_defaults_to_tract_on_one_thread() {
        for (b, t) in [
            (None, None),
            (Some(""), Some("  ")),
            (Some("tract"), Some("1")),
        ] {
            assert_eq!(run(b, t).unwrap(), default_run());
        }
        assert_eq!(run(Some(" TRACT "), None).unwrap().backend, Backend::Tract);
    }

    #[test]
    fn on_lambda_the_threads_follow_the_memory_size_unless_set() {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let threads = |vars: &[(&str, &str)]| parse(vars).unwrap().run.threads;
        for memory in ["128", "3538", "10240"] {
            let expected =
                RunConfig::default_threads(Backend::Tract, Some(memory.parse().unwrap()), cores);
            let vars = [("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory)];
            assert_eq!(threads(&vars), expected, "{memory} MB");
        }
        let set = [
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "10240"),
            ("DETECTOR_THREADS", "1"),
        ];
        assert_eq!(threads(&set), 1, "an explicit setting wins");
    }

    #[test]
    fn run_config_refuses_what_it_cannot_do() {
        let err = |b, t| {
            let e = run(b, t).unwrap_err();
            assert_eq!(e.code(), "backend_unavailable", "{e}");
            assert!(!e.is_client_error());
            e.to_string()
        };
        // A value the variable cannot take is a bad setting; a backend this build lacks is not.
        let invalid = |b, t| {
            let e = run(b, t).unwrap_err();
            assert_eq!(e.code(), "invalid_setting", "{e}");
            e.to_string()
        };
        assert!(invalid(Some("cuda"), None).contains("`tract` or `onnxruntime`"));
        for t in ["0", "-1", "two", "257", "1.5"] {
            assert!(invalid(None, Some(t)).contains("DETECTOR_THREADS"), "{t}");
        }
        if cfg!(feature = "onnxruntime") {
            let c = run(Some("ort"), Some("3")).unwrap();
            assert_eq!((c.backend, c.threads), (Backend::OnnxRuntime, 3));
        } else {
            assert!(err(Some("onnxruntime"), None).contains("--features onnxruntime"));
        }
        if cfg!(feature = "multithread") {
            assert_eq!(run(None, Some("2")).unwrap().threads, 2);
        } else {
            assert!(err(None, Some("2")).contains("`multithread` feature"));
        }
    }

    #[test]
    fn values_are_read_and_bad_ones_are_configuration_errors() {
        let s = parse(&[
            ("MODEL_PATH", "/opt/m.onnx"),
            ("MODEL_MANIFEST", "/opt/m.toml"),
            ("MAX_IMAGE_PIXELS", " 1000 "),
            ("MAX_DECODE_BYTES", "2048"),
            (
                "CORS_ALLOW_ORIGIN",
                "https://example.com, https://b.example.com",
            ),
            ("ORT_DYLIB_PATH", "/opt/libonnxruntime.so"),
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
            ("AWS_LAMBDA_FUNCTION_NAME", "detector"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "12"),
            ("METRICS_NAMESPACE", "Team/Vision"),
            ("METRICS_PER_CLASS", "TRUE"),
        ])
        .unwrap();
        assert_eq!(
            s.model,
            ModelSource::Files {
                model: "/opt/m.onnx".into(),
                manifest: "/opt/m.toml".into()
            }
        );
        assert_eq!(
            (s.limits.max_pixels, s.limits.max_alloc_bytes),
            (1000, 2048)
        );
        assert_eq!(
            s.cors_allow_origin,
            Some(AllowedOrigins::Only(vec![
                "https://example.com".into(),
                "https://b.example.com".into()
            ]))
        );
        assert_eq!(
            s.run.onnxruntime_library,
            Some(PathBuf::from("/opt/libonnxruntime.so"))
        );
        assert!(s.in_lambda);
        assert_eq!(
            s.function,
            Some(FunctionId {
                name: "detector".into(),
                version: "12".into()
            })
        );
        assert_eq!(
            s.metrics,
            MetricsConfig {
                namespace: "Team/Vision".into(),
                per_class: true
            }
        );
        for off in ["off", "OFF", "false", "0"] {
            assert!(
                !parse(&[("METRICS", off)]).unwrap().metrics_enabled,
                "{off}"
            );
        }

        for (vars, variable) in [
            (&[("MAX_IMAGE_PIXELS", "0")][..], "MAX_IMAGE_PIXELS"),
            (&[("MAX_IMAGE_PIXELS", "12 MP")][..], "MAX_IMAGE_PIXELS"),
            (&[("MAX_DECODE_BYTES", "-5")][..], "MAX_DECODE_BYTES"),
            (&[("MODEL_PATH", "/opt/m.onnx")][..], "MODEL_PATH"),
            (&[("MODEL_MANIFEST", "/opt/m.toml")][..], "MODEL_MANIFEST"),
            (&[("METRICS", "yes please")][..], "METRICS"),
            (
                &[("CORS_ALLOW_ORIGIN", "example.com")][..],
                "CORS_ALLOW_ORIGIN",
            ),
            (&[("METRICS_PER_CLASS", "maybe")][..], "METRICS_PER_CLASS"),
            (
                &[("METRICS_NAMESPACE", "AWS/Lambda")][..],
                "METRICS_NAMESPACE",
            ),
            (
                &[("METRICS_NAMESPACE", "caf\u{e9}")][..],
                "METRICS_NAMESPACE",
            ),
        ] {
            let e = parse(vars).unwrap_err();
            assert_eq!(e.code(), "invalid_setting", "{vars:?}: {e}");
            assert!(e.to_string().starts_with(variable), "{e}");
        }
    }

    /// The rows of the configuration table (docs/operating.md), as written.
    #[test]
    fn batch_settings_are_read_and_checked() {
        let s = parse(&[
            ("OUTPUT_BUCKET", "results"),
            ("OUTPUT_PREFIX", "out/"),
            ("INPUT_PREFIX", "in/"),
            ("MAX_OBJECT_BYTES", "1000"),
            (
                "DETECT_OPTIONS",
                r#"{"score_threshold": 0.5, "classes": ["person", "dog"]}"#,
            ),
            ("ANNOTATE", "JPG"),
            ("OUTPUT_FORMAT", " YOLO "),
            ("AWS_ENDPOINT_URL", "http://generic:1"),
            ("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:5000"),
            ("S3_FORCE_PATH_STYLE", "true"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "token"),
        ])
        .unwrap()
        .batch;
        assert_eq!(s.output.bucket.as_deref(), Some("results"));
        assert_eq!(s.output.prefix, "out/");
        assert_eq!(s.input_prefix.as_deref(), Some("in/"));
        assert_eq!(s.max_object_bytes, 1000);
        assert_eq!(s.options.score_threshold, Some(0.5));
        assert_eq!(s.options.classes, Some(vec!["person".into(), "dog".into()]));
        assert_eq!(s.annotate, Some(Encoding::Jpeg));
        assert_eq!(s.output_format, Some(Export::Yolo));
        assert_eq!(
            s.s3.endpoint.as_deref(),
            Some("http://127.0.0.1:5000"),
            "the S3 one wins"
        );
        assert!(s.s3.force_path_style);
        assert_eq!(s.s3.region, "eu-west-1");
        assert_eq!(
            s.s3.credentials,
            Some(AccessKeys {
                access_key_id: "AKID".into(),
                secret_access_key: "secret".into(),
                session_token: Some("token".into()),
            })
        );
        let defaults = parse(&[("AWS_ENDPOINT_URL", "http://generic:1")])
            .unwrap()
            .batch;
        assert_eq!(defaults.s3.endpoint.as_deref(), Some("http://generic:1"));
        assert_eq!(defaults.output, Output::default());
        assert_eq!(defaults.max_object_bytes, 50 * 1024 * 1024);
        assert_eq!(defaults.s3.credentials, None);
        assert_eq!(defaults.output_format, None);
        let json = parse(&[("OUTPUT_FORMAT", "json")]).unwrap().batch;
        assert_eq!(json.output_format, None);
        for (variable, value, says) in [
            ("OUTPUT_FORMAT", "xml", "`voc`"),
            ("DETECT_OPTIONS", "[1]", "JSON object"),
            ("DETECT_OPTIONS", "{", "not JSON"),
            (
                "DETECT_OPTIONS",
                r#"{"score_threshold": "high"}"#,
                "score_threshold",
            ),
            ("DETECT_OPTIONS", r#"{"colour": 1}"#, "unknown option"),
            ("DETECT_OPTIONS", r#"{"format": "jpeg"}"#, "ANNOTATE"),
            ("ANNOTATE", "gif", "`jpeg` or `png`"),
            ("ANNOTATE", "json", "`jpeg` or `png`"),
            ("MAX_OBJECT_BYTES", "0", "MAX_OBJECT_BYTES"),
            ("S3_FORCE_PATH_STYLE", "maybe", "on"),
            // An endpoint the client cannot use is refused at start-up, not by every object later.
            (
                "AWS_ENDPOINT_URL_S3",
                "127.0.0.1:5000",
                "AWS_ENDPOINT_URL_S3",
            ),
            (
                "AWS_ENDPOINT_URL_S3",
                "htp//127.0.0.1:5000",
                "AWS_ENDPOINT_URL_S3",
            ),
            ("AWS_ENDPOINT_URL_S3", "ftp://127.0.0.1:5000", "http(s)"),
            ("AWS_ENDPOINT_URL", "localhost", "AWS_ENDPOINT_URL"),
            ("AWS_REGION", "eu west 1", "AWS_REGION"),
        ] {
            let e = parse(&[(variable, value)])
                .err()
                .unwrap_or_else(|| panic!("{variable}={value} accepted"));
            assert_eq!(
                e.code(),
                crate::ErrorCode::InvalidSetting,
                "{variable}={value}"
            );
            assert!(e.to_string().contains(says), "{variable}={value}: {e}");
        }
    }

    fn readme_rows() -> Vec<String> {
        let readme = include_str!("../../docs/operating.md");
        let section = readme
            .split("\n## Configuration\n")
            .nth(1)
            .expect("docs/operating.md has a Configuration section");
        section
            .lines()
            .skip_while(|l| !l.starts_with("| `"))
            .take_while(|l| l.starts_with('|'))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn readme_documents_every_variable() {
        let want: Vec<String> = VARIABLES
            .iter()
            .map(|v| format!("| `{}` | {} | {} |", v.name, v.default, v.meaning))
            .collect();
        assert_eq!(
            readme_rows(),
            want,
            "docs/operating.md's configuration table must be these rows (from src/settings/variables.rs):\n{}",
            want.join("\n")
        );
    }

    /// Settings are read here and nowhere else in the library and binaries.
    #[test]
    fn no_other_source_file_reads_the_environment() {
        fn visit(dir: &std::path::Path, found: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    visit(&path, found);
                } else if path.extension().is_some_and(|e| e == "rs")
                    && !path.ends_with("src/settings/mod.rs")
                {
                    let text = std::fs::read_to_string(&path).unwrap();
                    if text.contains("env::var") {
                        found.push(path.display().to_string());
                    }
                }
            }
        }
        let mut found = Vec::new();
        visit(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut found,
        );
        assert!(
            found.is_empty(),
            "reading the environment outside settings/mod.rs: {found:?}"
        );
    }
}
