//! Every environment variable the binaries read, with its default and meaning, as the
//! configuration table in docs/operating.md shows them (a test holds the two together).

/// One environment variable, as the configuration table (docs/operating.md) shows it.
#[derive(Debug, Clone, Copy)]
pub struct Variable {
    pub name: &'static str,
    /// The default, in the table's words.
    pub default: &'static str,
    pub meaning: &'static str,
}

/// Every variable, in the table's order. A variable set to empty text counts as unset.
pub const VARIABLES: &[Variable] = &[
    Variable {
        name: "CORS_ALLOW_ORIGIN",
        default: "unset (no CORS headers)",
        meaning: "`*`, or origins separated by commas (`https://app.example.com,http://localhost:3000`): a request whose `Origin` is listed gets it back in `Access-Control-Allow-Origin` (with `Vary: Origin`), any other gets none; also turns on `Allow-Methods/Headers` and preflight answers",
    },
    Variable {
        name: "MAX_IMAGE_PIXELS",
        default: "40000000; on Lambda at most (memory size − 80 MiB) / 13 bytes (128 MB: 3.9 MP, 256 MB: 14.2 MP, 512 MB: 34.8 MP)",
        meaning: "pixel budget (width x height of the stored image); the default on Lambda keeps the costliest accepted image (16-bit RGBA PNG) within the function's memory size (see [Memory sizes](limits.md#memory-sizes))",
    },
    Variable {
        name: "MAX_DECODE_BYTES",
        default: "536870912; on Lambda at most the memory size − 80 MiB",
        meaning: "the buffers one decode takes together: the decoded image (16-bit RGBA needs 8 bytes per pixel), a GIF's or an animated WebP's frame buffers, and the 8-bit copy (see [Hostile images](limits.md#hostile-images))",
    },
    Variable {
        name: "MODEL_PATH",
        default: "unset (embedded model)",
        meaning: "run another ONNX detector, described by `MODEL_MANIFEST` (both or neither)",
    },
    Variable {
        name: "MODEL_MANIFEST",
        default: "unset (embedded model)",
        meaning: "the manifest of the model at `MODEL_PATH` (see [Bring your own model](models.md#bring-your-own-model))",
    },
    Variable {
        name: "DETECTOR_BACKEND",
        default: "`tract`",
        meaning: "`onnxruntime` runs the model with ONNX Runtime; needs a build with `--features onnxruntime` (see [Backends and threads](models.md#backends-and-threads))",
    },
    Variable {
        name: "DETECTOR_THREADS",
        default: "1; on Lambda one per full vCPU of the memory size (1769 MB each: 2 threads from 3538 MB), at most the cores the function sees; 1 for tract in a build without the `multithread` feature (`--no-default-features`)",
        meaning: "threads per inference, 1 to 256; more than 1 needs the `multithread` feature (default) for tract",
    },
    Variable {
        name: "DETECTOR_WINOGRAD",
        default: "`off`",
        meaning: "`on` runs tract's 3x3 stride-1 convolutions by Winograd's F(2x2, 3x3) instead of tract's im2col: 11-12% less inference time, 18-20 ms more plan build (see [Backends and threads](models.md#backends-and-threads)); results agree to float rounding",
    },
    Variable {
        name: "ORT_DYLIB_PATH",
        default: "`libonnxruntime.so` beside the executable, then the loader's search path",
        meaning: "the ONNX Runtime library, for `DETECTOR_BACKEND=onnxruntime`",
    },
    Variable {
        name: "METRICS",
        default: "`on`",
        meaning: "`off` stops the CloudWatch metric records (EMF) on stdout (see [Operating it](#operating-it))",
    },
    Variable {
        name: "METRICS_NAMESPACE",
        default: "`ObjectDetector`",
        meaning: "CloudWatch namespace of the metrics: up to 255 ASCII letters, digits and `.-_/#: `, not starting with `AWS/`",
    },
    Variable {
        name: "METRICS_PER_CLASS",
        default: "`false`",
        meaning: "`true` also publishes `Detections` per label (dimension `Model`, `Label`): up to one billed metric per class",
    },
    Variable {
        name: "IMAGE_URL",
        default: "`on`",
        meaning: "`off` refuses `image_url` input (`image_url_refused`); on, the function fetches it behind the SSRF guard (see [SECURITY.md](../SECURITY.md#images-named-by-url))",
    },
    Variable {
        name: "IMAGE_URL_HOSTS",
        default: "unset (any public https host)",
        meaning: "the hosts `image_url` may name, separated by commas: names (`photos.example.com`), domains (`*.example.com`, any host under it) and addresses (`127.0.0.1`, `[::1]`); a host listed by its exact name or address may also be plain `http` and a private address",
    },
    Variable {
        name: "IMAGE_URL_CA_FILE",
        default: "unset (the Mozilla roots)",
        meaning: "a PEM file of certificates `image_url` fetches also trust: a private CA's, or a test's own",
    },
    Variable {
        name: "DEMO_PAGE",
        default: "`on`",
        meaning: "`off` answers `GET /` and `GET /demo` with 404 instead of the page to try the function in a browser (see [The demo page](api.md#the-demo-page))",
    },
    Variable {
        name: "OUTPUT_BUCKET",
        default: "unset (the object's own bucket)",
        meaning: "batch: the bucket results are written to (see [Batch: photos in S3](batch.md#batch-photos-in-s3))",
    },
    Variable {
        name: "OUTPUT_PREFIX",
        default: "`detections/`",
        meaning: "batch: a result is written at OUTPUT_PREFIX + key + `.json`; objects under it (in the output bucket) are never processed",
    },
    Variable {
        name: "INPUT_PREFIX",
        default: "unset (the whole bucket)",
        meaning: "batch: objects outside it are skipped; start-up refuses an OUTPUT_PREFIX inside it (each result would notify the function again)",
    },
    Variable {
        name: "MAX_OBJECT_BYTES",
        default: "52428800 (50 MiB)",
        meaning: "batch, `s3` and `image_url` input: larger images are refused (`object_too_large`, `image_url_too_large`), from their size before any byte is read when it is given",
    },
    Variable {
        name: "DETECT_OPTIONS",
        default: "unset (the model's defaults)",
        meaning: "batch: a JSON object of the API's options for every object (`{\"score_threshold\": 0.5, \"classes\": [\"person\"]}`), checked at start-up",
    },
    Variable {
        name: "ANNOTATE",
        default: "unset (no pictures)",
        meaning: "batch: `jpeg` or `png` also writes the annotated picture beside each result (key + `.jpg`/`.png`)",
    },
    Variable {
        name: "OUTPUT_FORMAT",
        default: "`json` (the API's answer)",
        meaning: "batch: `coco`, `yolo` or `voc` writes each result in that format instead, at OUTPUT_PREFIX + key + `.coco.json`, `.txt` or `.xml` (see [Batch: the `detect` CLI](batch.md#batch-the-detect-cli) for the formats); an object that fails still gets its JSON error result",
    },
    Variable {
        name: "AWS_ENDPOINT_URL_S3",
        default: "unset (AWS's regional endpoint)",
        meaning: "batch: an S3-compatible endpoint (`http://127.0.0.1:5000`); else `AWS_ENDPOINT_URL`, as the AWS SDKs read them",
    },
    Variable {
        name: "S3_FORCE_PATH_STYLE",
        default: "`false`",
        meaning: "batch: `true` addresses buckets in the path (`host/bucket/key`), as most S3-compatible servers need",
    },
    Variable {
        name: "DETECTOR_MODEL_MANIFEST",
        default: "`model/picodet-s-416-coco.toml`",
        meaning: "build time, read by `build.rs`: the manifest whose model `cargo build` embeds",
    },
];
