//! Every sample event in events/ through the real handler: status, headers and body, in the response
//! shape of the event's source.

use crate::common;

use std::sync::{Arc, OnceLock};

use object_detector::aws::lambda::{AllowedOrigins, App, Config, Invocation};
use serde_json::{json, Value};
use tokio::runtime::Runtime;

/// The function on the shared warm detector.
pub(crate) fn app(config: Config) -> App {
    App::new(Arc::clone(common::int8_shared()), config)
        .expect("the default batch settings are valid")
}

/// One runtime for every test; a current-thread runtime's `block_on` may be called from several test
/// threads at once.
fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

pub(crate) fn event(name: &str) -> Value {
    serde_json::from_slice(&common::read(&format!("events/{name}"))).unwrap()
}

/// Runs an event; returns the raw response payload (its log line and metric records are checked in
/// metrics.rs). Every HTTP-shaped answer's status is the one its log line records.
fn handle(
    app: &App,
    event: Value,
) -> Result<Box<serde_json::value::RawValue>, object_detector::core::error::Failure> {
    let invocation = Invocation {
        request_id: "test-request",
        trace_id: None,
    };
    let handled = runtime().block_on(app.handle_recorded(event, invocation));
    if let Ok(raw) = &handled.result {
        let answer: Value = serde_json::from_str(raw.get()).unwrap();
        if let Some(status) = answer.get("statusCode") {
            let log: Value = serde_json::from_str(&handled.log_line).unwrap();
            assert_eq!(&log["status"], status, "{}", handled.log_line);
        }
    }
    handled.result
}

/// Runs an event; returns the response object.
pub(crate) fn run(app: &App, event: Value) -> Result<Value, object_detector::core::error::Failure> {
    handle(app, event).map(|raw| serde_json::from_str(raw.get()).unwrap())
}

/// Status, lower-cased headers and parsed body of an HTTP-shaped response.
pub(crate) fn http(response: &Value) -> (i64, serde_json::Map<String, Value>, Value) {
    let status = response["statusCode"].as_i64().expect("statusCode");
    let headers = response["headers"]
        .as_object()
        .map(|h| {
            h.iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let body = match response.get("body").and_then(Value::as_str) {
        Some(text) => serde_json::from_str(text).expect("JSON body"),
        None => Value::Null,
    };
    assert_ne!(response.get("isBase64Encoded"), Some(&json!(true)));
    (status, headers, body)
}

pub(crate) fn labels(body: &Value) -> Vec<&str> {
    body["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["label"].as_str().unwrap())
        .collect()
}

#[test]
fn detection_events_of_every_source_answer_200_with_the_cat() {
    let app = app(Config::default());
    for (name, expect) in [
        ("rest-api-jpeg.json", vec!["cat", "dog"]), // ?score_threshold=0.3
        ("rest-api-json.json", vec!["cat"]),        // classes: ["cat"]
        ("http-api-v1-jpeg.json", vec!["cat", "dog"]),
        ("http-api-jpeg.json", vec!["cat", "dog"]), // ?classes=cat,dog
        ("http-api-png.json", vec!["cat", "dog"]),
        ("http-api-multipart.json", vec!["cat", "dog"]), // score_threshold=0.3 form field
        ("function-url-jpeg.json", vec!["cat", "dog"]),
        ("alb-jpeg.json", vec!["cat", "dog"]), // classes=cat%2Cdog, still encoded
    ] {
        let response = run(&app, event(name)).unwrap();
        let (status, headers, body) = http(&response);
        assert_eq!(status, 200, "{name}: {body}");
        assert_eq!(headers["content-type"], "application/json", "{name}");
        assert!(
            !headers.contains_key("access-control-allow-origin"),
            "{name}: CORS is off by default"
        );
        let got = labels(&body);
        assert_eq!(got[0], "cat", "{name}: {body}");
        for label in &got {
            assert!(expect.contains(label), "{name}: unexpected {label}");
        }
        if name != "http-api-png.json" {
            assert_eq!(
                body["image"],
                json!({"width": 451, "height": 300}),
                "{name}"
            );
        }
        assert_eq!(body["model"]["name"], "picodet-s-416-coco");
    }
}

#[test]
fn responses_take_the_shape_of_their_source() {
    let app = app(Config::default());
    let v2 = run(&app, event("http-api-jpeg.json")).unwrap();
    assert_eq!(
        v2["cookies"],
        json!([]),
        "function URLs and HTTP APIs get a cookies list"
    );
    let url = run(&app, event("function-url-jpeg.json")).unwrap();
    assert!(url["cookies"].is_array());
    let alb = run(&app, event("alb-jpeg.json")).unwrap();
    assert_eq!(alb["statusDescription"], "200 OK");
    assert_eq!(
        alb["multiValueHeaders"]["content-type"],
        json!(["application/json"])
    );
    let rest = run(&app, event("rest-api-jpeg.json")).unwrap();
    assert!(rest.get("cookies").is_none() && rest.get("statusDescription").is_none());
    // A direct invocation gets the body itself, fields in documented order.
    let raw = handle(&app, event("direct-invoke.json")).unwrap();
    assert!(
        raw.get()
            .starts_with(r#"{"model":{"name":"picodet-s-416-coco""#),
        "{}",
        &raw.get()[..80]
    );
    let direct: Value = serde_json::from_str(raw.get()).unwrap();
    assert_eq!(labels(&direct), vec!["cat"]);
}

#[test]
fn model_and_health_routes() {
    let app = app(Config::default());
    let (status, _, body) = http(&run(&app, event("rest-api-model.json")).unwrap());
    assert_eq!(status, 200);
    assert_eq!(body["name"], "picodet-s-416-coco");
    assert_eq!(body["labels"].as_array().unwrap().len(), 80);
    assert_eq!(body["labels"][15], "cat");
    assert_eq!(body["decoder"], "gfl");
    assert_eq!(body["backend"], "tract");
    assert_eq!(
        body["defaults"],
        json!({"score_threshold": 0.4, "iou_threshold": 0.6, "max_detections": 100})
    );
    assert_eq!(body["input"], json!({"width": 416, "height": 416}));
    let (status, _, body) = http(&run(&app, event("http-api-health.json")).unwrap());
    assert_eq!((status, body), (200, json!({"status": "ok"})));
}

#[test]
fn error_events_get_their_status_code_and_allow_header() {
    let app = app(Config::default());
    for (name, status, code) in [
        ("http-api-not-an-image.json", 422, "not_an_image"),
        ("http-api-bad-parameter.json", 400, "invalid_parameter"),
        ("http-api-unknown-route.json", 404, "not_found"),
        ("rest-api-wrong-method.json", 405, "method_not_allowed"),
    ] {
        let (got, headers, body) = http(&run(&app, event(name)).unwrap());
        assert_eq!(got, status, "{name}: {body}");
        assert_eq!(body["error"]["code"], code, "{name}");
        assert!(
            body["error"]["message"].as_str().unwrap().len() > 10,
            "{name}"
        );
        assert_eq!(headers["content-type"], "application/json");
        if status == 405 {
            assert_eq!(headers["allow"], "POST, OPTIONS");
        }
    }
}

/// Builds an HTTP API v2 event around a body, from the committed sample.
pub(crate) fn v2_with(
    content_type: Option<&str>,
    body: Option<&str>,
    base64: bool,
    query: &str,
) -> Value {
    let mut e = event("http-api-jpeg.json");
    match content_type {
        Some(ct) => e["headers"]["content-type"] = json!(ct),
        None => {
            e["headers"].as_object_mut().unwrap().remove("content-type");
        }
    }
    match body {
        Some(b) => e["body"] = json!(b),
        None => {
            e.as_object_mut().unwrap().remove("body");
        }
    }
    e["isBase64Encoded"] = json!(base64);
    e["rawQueryString"] = json!(query);
    e["queryStringParameters"] = Value::Null;
    e
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn error_answers_quote_only_a_short_prefix_of_what_the_client_sent() {
    let app = app(Config::default());
    let jpeg = b64(&common::read("tests/images/chelsea.jpg"));
    let long = "A".repeat(100_000);
    let mut wrong_path = event("http-api-jpeg.json");
    wrong_path["rawPath"] = json!(format!("/{long}"));
    wrong_path["requestContext"]["http"]["path"] = json!(format!("/{long}"));
    let mut wrong_method = event("http-api-jpeg.json");
    wrong_method["requestContext"]["http"]["method"] = json!(long.clone());
    let json_body = |field: &str, value: Value| {
        let mut body = serde_json::Map::new();
        body.insert("image".into(), json!(jpeg));
        body.insert(field.into(), value);
        v2_with(
            Some("application/json"),
            Some(&Value::Object(body).to_string()),
            false,
            "",
        )
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "unknown query parameter",
            v2_with(Some("image/jpeg"), Some(&jpeg), true, &format!("{long}=1")),
            "invalid_parameter",
        ),
        (
            "huge value",
            v2_with(
                Some("image/jpeg"),
                Some(&jpeg),
                true,
                &format!("score_threshold={long}"),
            ),
            "invalid_parameter",
        ),
        (
            "unknown label",
            v2_with(
                Some("image/jpeg"),
                Some(&jpeg),
                true,
                &format!("classes=cat,{long}"),
            ),
            "invalid_parameter",
        ),
        (
            "unknown JSON field",
            json_body(&long, json!(1)),
            "invalid_parameter",
        ),
        (
            "content type",
            v2_with(
                Some(&format!("text/{long}")),
                Some(&b64(b"hello")),
                true,
                "",
            ),
            "unsupported_media_type",
        ),
        ("path", wrong_path, "not_found"),
        ("method", wrong_method, "method_not_allowed"),
    ];
    for (what, e, code) in cases {
        let (status, _, body) = http(&run(&app, e).unwrap());
        assert!((400..500).contains(&status), "{what}: {status}");
        assert_eq!(body["error"]["code"], code, "{what}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.len() < 400,
            "{what}: {} bytes: {message:.200}",
            message.len()
        );
        assert!(
            message.to_ascii_uppercase().contains("AAAA"),
            "{what}: the quote is there, cut: {message}"
        );
    }
    // The keys of an unrecognised event: a few, each cut.
    let mut keys = serde_json::Map::new();
    for i in 0..100 {
        keys.insert(format!("{i}{long}"), json!(1));
    }
    let err = run(&app, Value::Object(keys)).unwrap_err();
    assert_eq!(err.code(), "invalid_event");
    assert!(err.message().len() < 1500, "{} bytes", err.message().len());
}

/// Found by fuzzing (fuzz/fuzz_targets/http_request.rs): a body flagged base64 whose text has a
/// multi-byte character within its first five bytes panicked while looking for a `data:` prefix, and a
/// panic aborts the Lambda process.
#[test]
fn base64_text_with_multibyte_characters_is_invalid_base64_not_a_crash() {
    let app = app(Config::default());
    for text in [
        "ab\u{FFFD}cdefgh",
        "data\u{e9}:x",
        "\u{1F600}\u{1F600}",
        "dat\u{FFFD}",
    ] {
        let (status, _, body) =
            http(&run(&app, v2_with(Some("image/jpeg"), Some(text), true, "")).unwrap());
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_base64")),
            "{text:?}"
        );
        let err = run(&app, json!({ "image": text })).unwrap_err();
        assert_eq!(err.code(), "invalid_base64", "{text:?}");
    }
}

#[test]
fn counts_the_client_controls_are_bounded() {
    let app = app(Config::default());
    let jpeg = common::read("tests/images/chelsea.jpg");
    let many_params = vec!["classes=cat"; 65].join("&");
    let many_classes = format!("classes={}", vec!["cat"; 257].join(","));
    let mut form = Vec::new();
    for i in 0..33 {
        form.extend_from_slice(
            format!("--XyZ\r\nContent-Disposition: form-data; name=\"score_threshold\"\r\n\r\n0.{i}\r\n")
                .as_bytes(),
        );
    }
    form.extend_from_slice(b"--XyZ--\r\n");
    for (what, e, code) in [
        (
            "65 query parameters",
            v2_with(Some("image/jpeg"), Some(&b64(&jpeg)), true, &many_params),
            "invalid_parameter",
        ),
        (
            "257 classes",
            v2_with(Some("image/jpeg"), Some(&b64(&jpeg)), true, &many_classes),
            "invalid_parameter",
        ),
        (
            "33 form fields",
            v2_with(
                Some("multipart/form-data; boundary=XyZ"),
                Some(&b64(&form)),
                true,
                "",
            ),
            "invalid_multipart",
        ),
    ] {
        let (status, _, body) = http(&run(&app, e).unwrap());
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some(code)),
            "{what}: {body}"
        );
    }
    // At the bounds, fine.
    let at_bound = vec!["classes=cat"; 64].join("&");
    let (status, _, _) = http(
        &run(
            &app,
            v2_with(Some("image/jpeg"), Some(&b64(&jpeg)), true, &at_bound),
        )
        .unwrap(),
    );
    assert_eq!(status, 200);
}

#[test]
fn bad_requests_of_every_kind_get_a_clear_4xx() {
    let app = app(Config::default());
    let jpeg = common::read("tests/images/chelsea.jpg");
    let cases: Vec<(&str, Value, i64, &str)> = vec![
        (
            "no body",
            v2_with(Some("image/jpeg"), None, false, ""),
            400,
            "empty_body",
        ),
        (
            "empty body",
            v2_with(Some("image/jpeg"), Some(""), true, ""),
            400,
            "empty_body",
        ),
        (
            "not base64",
            v2_with(Some("image/jpeg"), Some("%%% not base64 %%%"), true, ""),
            400,
            "invalid_base64",
        ),
        (
            "invalid JSON",
            v2_with(Some("application/json"), Some("{\"image\": "), false, ""),
            400,
            "invalid_json",
        ),
        (
            "JSON without image",
            v2_with(
                Some("application/json"),
                Some("{\"classes\": [\"cat\"]}"),
                false,
                "",
            ),
            400,
            "missing_image",
        ),
        (
            "JSON bad base64",
            v2_with(
                Some("application/json"),
                Some("{\"image\": \"@@@\"}"),
                false,
                "",
            ),
            400,
            "invalid_base64",
        ),
        (
            "JSON empty image",
            v2_with(
                Some("application/json"),
                Some("{\"image\": \"\"}"),
                false,
                "",
            ),
            400,
            "empty_image",
        ),
        (
            "JSON not an image",
            v2_with(
                Some("application/json"),
                Some(&format!("{{\"image\": \"{}\"}}", b64(b"just text"))),
                false,
                "",
            ),
            422,
            "not_an_image",
        ),
        (
            "truncated JPEG",
            v2_with(
                Some("image/jpeg"),
                Some(&b64(&jpeg[..jpeg.len() / 2])),
                true,
                "",
            ),
            422,
            "invalid_image",
        ),
        (
            "TIFF",
            v2_with(
                Some("image/tiff"),
                Some(&b64(b"II*\0\x08\0\0\0\0\0")),
                true,
                "",
            ),
            415,
            "unsupported_format",
        ),
        (
            "XML",
            v2_with(Some("application/xml"), Some("<image/>"), false, ""),
            415,
            "unsupported_media_type",
        ),
        (
            "unknown query",
            v2_with(Some("image/jpeg"), Some(&b64(&jpeg)), true, "threshold=0.5"),
            400,
            "invalid_parameter",
        ),
        (
            "bad class",
            v2_with(
                Some("image/jpeg"),
                Some(&b64(&jpeg)),
                true,
                "classes=unicorn",
            ),
            400,
            "invalid_parameter",
        ),
        (
            "multipart without boundary",
            v2_with(
                Some("multipart/form-data"),
                Some(&b64(b"--x\r\n")),
                true,
                "",
            ),
            400,
            "invalid_multipart",
        ),
        (
            "binary mangled as text",
            v2_with(
                Some("image/jpeg"),
                Some(&String::from_utf8_lossy(&jpeg)),
                false,
                "",
            ),
            422,
            "not_an_image",
        ),
    ];
    for (what, event, status, code) in cases {
        let (got, headers, body) = http(&run(&app, event).unwrap());
        assert_eq!(
            (got, body["error"]["code"].as_str().unwrap()),
            (status, code),
            "{what}: {body}"
        );
        assert_eq!(headers["content-type"], "application/json");
        if what == "binary mangled as text" {
            assert!(body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("binaryMediaTypes"));
        }
        if code == "unsupported_media_type" {
            assert!(body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("image/jpeg"));
        }
    }
    // A huge image is refused from its header with 413.
    let mut big = jpeg.clone();
    let sof = big.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    big[sof + 5..sof + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]);
    let (got, _, body) = http(
        &run(
            &app,
            v2_with(Some("image/jpeg"), Some(&b64(&big)), true, ""),
        )
        .unwrap(),
    );
    assert_eq!(
        (got, body["error"]["code"].as_str().unwrap()),
        (413, "image_too_large")
    );
}

#[test]
fn request_forms_and_option_precedence() {
    let app = app(Config::default());
    let jpeg = common::read("tests/images/chelsea.jpg");
    // No content type, or curl's default form type: the bytes are sniffed.
    for ct in [
        None,
        Some("application/x-www-form-urlencoded"),
        Some("text/plain"),
    ] {
        let (status, _, body) = http(&run(&app, v2_with(ct, Some(&b64(&jpeg)), true, "")).unwrap());
        assert_eq!((status, labels(&body)[0]), (200, "cat"), "{ct:?}");
    }
    // curl -d with a JSON object and no -H: form-urlencoded, still JSON.
    let json_body = format!("{{\"image\": \"{}\", \"max_detections\": 1}}", b64(&jpeg));
    let e = v2_with(
        Some("application/x-www-form-urlencoded"),
        Some(&json_body),
        false,
        "",
    );
    let (status, _, body) = http(&run(&app, e).unwrap());
    assert_eq!((status, labels(&body).len()), (200, 1));
    // The body's options win over the query's; the query fills the rest (the couch scores 0.29, under
    // the default threshold).
    let json_body = format!("{{\"image\": \"{}\", \"classes\": \"couch\"}}", b64(&jpeg));
    let e = v2_with(
        Some("application/json; charset=utf-8"),
        Some(&json_body),
        false,
        "classes=cat&score_threshold=0.25",
    );
    let (status, _, body) = http(&run(&app, e).unwrap());
    assert_eq!((status, labels(&body)), (200, vec!["couch"]));
    // URL-safe base64 without padding, with line breaks.
    let url_safe = b64(&jpeg)
        .replace('+', "-")
        .replace('/', "_")
        .trim_end_matches('=')
        .to_string();
    let wrapped: String = url_safe
        .as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c) + "\n")
        .collect();
    let e = v2_with(
        Some("application/json"),
        Some(&json!({"image": wrapped}).to_string()),
        false,
        "",
    );
    let (status, _, body) = http(&run(&app, e).unwrap());
    assert_eq!((status, labels(&body)[0]), (200, "cat"));
}

/// The boxes of `normalized` are those of `pixels` over the image's width and height, in 0..=1.
fn assert_normalized(pixels: &Value, normalized: &Value) {
    let (w, h) = (
        pixels["image"]["width"].as_f64().unwrap(),
        pixels["image"]["height"].as_f64().unwrap(),
    );
    let (p, n) = (
        pixels["detections"].as_array().unwrap(),
        normalized["detections"].as_array().unwrap(),
    );
    assert!(!p.is_empty());
    assert_eq!(p.len(), n.len());
    for (p, n) in p.iter().zip(n) {
        assert_eq!(p["label"], n["label"]);
        for (edge, size) in [("x_min", w), ("y_min", h), ("x_max", w), ("y_max", h)] {
            let (pv, nv) = (
                p["box"][edge].as_f64().unwrap(),
                n["box"][edge].as_f64().unwrap(),
            );
            assert!((0.0..=1.0).contains(&nv), "{edge} {nv}");
            assert!(
                (pv / size - nv).abs() < 1e-6,
                "{edge}: {pv} / {size} vs {nv}"
            );
        }
    }
}

#[test]
fn normalized_boxes_are_fractions_of_the_image_from_every_place_options_go() {
    use base64::Engine;
    let app = app(Config::default());
    let jpeg = common::read("tests/images/chelsea.jpg");
    let pixels = detected(&app, &jpeg, "");
    // The query, a JSON body, a direct invocation; the picture is still drawn in pixels.
    assert_normalized(&pixels, &detected(&app, &jpeg, "box_format=normalized"));
    let body = json!({"image": b64(&jpeg), "box_format": "normalized", "annotate": true});
    let e = v2_with(Some("application/json"), Some(&body.to_string()), false, "");
    let (status, _, answer) = http(&run(&app, e).unwrap());
    assert_eq!(status, 200, "{answer}");
    assert_normalized(&pixels, &answer);
    let drawn = answer["annotated_image"].as_str().unwrap();
    let drawn = image::load_from_memory(
        &base64::engine::general_purpose::STANDARD
            .decode(drawn)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        drawn.width(),
        pixels["image"]["width"].as_u64().unwrap() as u32
    );
    let direct = run(
        &app,
        json!({"image": b64(&jpeg), "box_format": "NORMALIZED"}),
    )
    .unwrap();
    assert_normalized(&pixels, &direct);
    // `pixels` is the default, and anything else is a bad parameter.
    assert_eq!(
        detected(&app, &jpeg, "box_format=pixels")["detections"],
        pixels["detections"]
    );
    let (status, _, body) = http(
        &run(
            &app,
            v2_with(
                Some("image/jpeg"),
                Some(&b64(&jpeg)),
                true,
                "box_format=percent",
            ),
        )
        .unwrap(),
    );
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("invalid_parameter")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("pixels, normalized"),
        "{body}"
    );
}

#[test]
fn cors_answers_only_the_configured_origins_and_never_reflects_another() {
    let app = app(Config {
        cors_allow_origin: Some(
            AllowedOrigins::parse("https://example.com, http://localhost:3000").unwrap(),
        ),
        ..Config::default()
    });
    let from = |origin: Option<&str>, method: &str, name: &str| {
        let mut e = event(name);
        if let Some(o) = origin {
            e["headers"]["origin"] = json!(o);
        }
        e["requestContext"]["http"]["method"] = json!(method);
        http(&run(&app, e).unwrap())
    };
    let (status, headers, _) = from(Some("https://example.com"), "POST", "http-api-jpeg.json");
    assert_eq!(status, 200);
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://example.com"
    );
    assert_eq!(headers["vary"], "Origin");
    let (_, headers, _) = from(Some("http://localhost:3000"), "POST", "http-api-jpeg.json");
    assert_eq!(
        headers["access-control-allow-origin"],
        "http://localhost:3000"
    );
    // Another origin, or none: no CORS grant at all, whatever it sent; still `Vary` for caches.
    for origin in [
        Some("https://evil.example"),
        Some("https://example.com.evil.example"),
        None,
    ] {
        let (status, headers, _) = from(origin, "POST", "http-api-jpeg.json");
        assert_eq!(status, 200);
        assert!(
            !headers.keys().any(|k| k.starts_with("access-control-")),
            "{origin:?}: {headers:?}"
        );
        assert_eq!(headers["vary"], "Origin");
    }
    // Preflight: granted for a listed origin only.
    let preflight = |origin| {
        let mut e = event("http-api-health.json");
        e["headers"]["origin"] = json!(origin);
        e["requestContext"]["http"]["method"] = json!("OPTIONS");
        e["rawPath"] = json!("/detect");
        http(&run(&app, e).unwrap())
    };
    let (status, headers, body) = preflight("https://example.com");
    assert_eq!((status, body), (204, Value::Null));
    assert!(headers["access-control-allow-methods"]
        .as_str()
        .unwrap()
        .contains("POST"));
    let (status, headers, _) = preflight("https://evil.example");
    assert_eq!(status, 204);
    assert!(headers.get("access-control-allow-origin").is_none());

    // `*`: every origin, no `Vary`.
    let any = self::app(Config {
        cors_allow_origin: Some(AllowedOrigins::Any),
        ..Config::default()
    });
    let mut e = event("http-api-jpeg.json");
    e["headers"]["origin"] = json!("https://whoever.example");
    let (_, headers, _) = http(&run(&any, e).unwrap());
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert!(headers.get("vary").is_none());
}

#[test]
fn unknown_events_and_bad_direct_invocations_are_function_errors() {
    let app = app(Config::default());
    for (event, code) in [
        (json!({"Records": [{"foo": {}}]}), "invalid_event"),
        (json!("just a string"), "invalid_event"),
        (json!({"requestContext": {"foo": 1}}), "invalid_event"),
        (json!({"image": "@@@"}), "invalid_base64"),
        (json!({"image": "aGVsbG8="}), "not_an_image"),
        (
            json!({"image": "aGVsbG8=", "score_threshold": 5}),
            "invalid_parameter",
        ),
    ] {
        let err = run(&app, event.clone()).unwrap_err();
        assert_eq!(err.code(), code, "{event}");
        if code == "invalid_event" {
            assert!(
                err.message().contains("API Gateway")
                    && err.message().contains("direct invocation")
                    && err.message().contains("S3 objects"),
                "{}",
                err.message()
            );
        }
    }
    // A malformed event of a known shape is answered in that shape, not as a crash.
    let mut broken = event("rest-api-jpeg.json");
    broken["httpMethod"] = json!(42);
    let (status, _, body) = http(&run(&app, broken).unwrap());
    assert_eq!(
        (status, body["error"]["code"].as_str().unwrap()),
        (400, "invalid_event")
    );
}

/// The picture, decoded from a binary HTTP response (base64 body, `isBase64Encoded: true`).
fn picture(response: &Value, content_type: &str) -> image::RgbImage {
    assert_eq!(response["isBase64Encoded"], json!(true), "{response:.300}");
    let headers = response["headers"].as_object().unwrap();
    assert_eq!(headers["content-type"], content_type);
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(response["body"].as_str().unwrap())
        .unwrap();
    image::load_from_memory(&bytes).unwrap().to_rgb8()
}

#[test]
fn pictures_are_answered_as_binary_by_every_http_front_door() {
    let app = app(Config::default());
    let plain = http(&run(&app, event("http-api-jpeg.json")).unwrap()).2;
    let count = plain["detections"].as_array().unwrap().len();

    // ?format=png on an HTTP API v2 event: a PNG of the photo's size, the count and labels in headers.
    let mut e = event("http-api-jpeg.json");
    e["rawQueryString"] = json!("classes=cat,dog&format=png");
    let response = run(&app, e).unwrap();
    assert_eq!(response["statusCode"], 200);
    assert_eq!(picture(&response, "image/png").dimensions(), (451, 300));
    let headers = &response["headers"];
    assert_eq!(headers["x-detection-count"], count.to_string());
    assert!(headers["x-detection-labels"]
        .as_str()
        .unwrap()
        .starts_with("cat"));
    assert!(headers["x-model"]
        .as_str()
        .unwrap()
        .starts_with("picodet-s-416-coco "));

    // Accept: image/jpeg, no format: a JPEG, for a REST v1 event, a function URL and an ALB.
    for name in [
        "rest-api-jpeg.json",
        "function-url-jpeg.json",
        "alb-jpeg.json",
    ] {
        let mut e = event(name);
        e["headers"]["accept"] = json!("image/jpeg");
        if e.get("multiValueHeaders").is_some_and(Value::is_object) {
            e["multiValueHeaders"]["accept"] = json!(["image/jpeg"]);
        }
        let response = run(&app, e).unwrap();
        assert_eq!(response["statusCode"], 200, "{name}");
        assert_eq!(
            picture(&response, "image/jpeg").dimensions(),
            (451, 300),
            "{name}"
        );
    }
    // curl's and browsers' Accept: */* keeps JSON.
    let mut e = event("http-api-jpeg.json");
    e["headers"]["accept"] = json!("*/*");
    let (status, headers, body) = http(&run(&app, e).unwrap());
    assert_eq!(
        (status, &headers["content-type"]),
        (200, &json!("application/json"))
    );
    assert!(body.get("annotated_image").is_none());
}

#[test]
fn json_clients_get_the_picture_beside_the_detections() {
    let app = app(Config::default());
    let jpeg = common::read("tests/images/chelsea.jpg");
    let e = v2_with(
        Some("application/json"),
        Some(&json!({"image": b64(&jpeg), "annotate": true, "annotate_max_side": 200}).to_string()),
        false,
        "",
    );
    let (status, _, body) = http(&run(&app, e).unwrap());
    assert_eq!(status, 200, "{body:.300}");
    assert_eq!(labels(&body)[0], "cat");
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body["annotated_image"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        image::guess_format(&bytes).unwrap(),
        image::ImageFormat::Jpeg
    );
    let picture = image::load_from_memory(&bytes).unwrap();
    assert_eq!((picture.width(), picture.height()), (200, 133));
    assert!(body["timings_ms"]["annotate"].as_f64().unwrap() > 0.0);

    // Direct invocations: the JSON form only.
    let mut direct = event("direct-invoke.json");
    direct["annotate"] = json!(true);
    let raw = handle(&app, direct).unwrap();
    let v: Value = serde_json::from_str(raw.get()).unwrap();
    assert!(v["annotated_image"].as_str().unwrap().len() > 1000);
    let mut direct = event("direct-invoke.json");
    direct["format"] = json!("png");
    let err = handle(&app, direct).unwrap_err();
    assert_eq!(err.code(), "invalid_parameter");
    assert!(err.message().contains("annotate"), "{}", err.message());

    // Bad values are a 400 like any option.
    for query in [
        "format=gif",
        "annotate_max_side=10",
        "jpeg_quality=0",
        "annotate=perhaps",
    ] {
        let e = v2_with(Some("image/jpeg"), Some(&b64(&jpeg)), true, query);
        let (status, _, body) = http(&run(&app, e).unwrap());
        assert_eq!(
            (status, body["error"]["code"].as_str().unwrap()),
            (400, "invalid_parameter"),
            "{query}"
        );
    }
}

/// `/detect`'s answer for `image` with the options of `query`: what the other protocols are held to.
pub(crate) fn detected(app: &App, image: &[u8], query: &str) -> Value {
    let event = v2_with(Some("image/jpeg"), Some(&b64(image)), true, query);
    let (status, _, body) = http(&run(app, event).unwrap());
    assert_eq!(status, 200, "{body}");
    body
}

/// An HTTP API (v2) request of `method` to `path`, with a JSON `body` when given.
fn v2_request(method: &str, path: &str, body: Option<&Value>) -> Value {
    let mut e = event("http-api-jpeg.json");
    e["rawPath"] = json!(path);
    e["requestContext"]["http"]["path"] = json!(path);
    e["requestContext"]["http"]["method"] = json!(method);
    e["rawQueryString"] = json!("");
    e.as_object_mut().unwrap().remove("queryStringParameters");
    e["headers"]["content-type"] = json!("application/json");
    e["isBase64Encoded"] = json!(false);
    match body {
        Some(b) => e["body"] = json!(b.to_string()),
        None => {
            e.as_object_mut().unwrap().remove("body");
        }
    }
    e
}

#[test]
fn tf_serving_clients_get_the_detections_of_detect_in_their_own_shape() {
    let app = app(Config::default());
    let jpeg = common::read("tests/images/chelsea.jpg");
    let native = detected(&app, &jpeg, "");
    let (w, h) = (
        native["image"]["width"].as_f64().unwrap(),
        native["image"]["height"].as_f64().unwrap(),
    );
    let detections = native["detections"].as_array().unwrap();
    assert!(!detections.is_empty());
    let name = native["model"]["name"].as_str().unwrap().to_string();
    let image = json!({"b64": b64(&jpeg)});

    // Rows, bare and under an input's name, after a stage.
    let rows =
        json!({"signature_name": "serving_default", "instances": [image, {"image_bytes": image}]});
    let predict = format!("/prod/v1/models/{name}:predict");
    let (status, headers, body) =
        http(&run(&app, v2_request("POST", &predict, Some(&rows))).unwrap());
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], "application/json");
    let predictions = body["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), 2);
    assert_eq!(predictions[0], predictions[1]);
    let p = &predictions[0];
    assert_eq!(
        p["num_detections"].as_f64().unwrap() as usize,
        detections.len()
    );
    for (i, d) in detections.iter().enumerate() {
        let b = &d["box"];
        let want = [
            b["y_min"].as_f64().unwrap() / h,
            b["x_min"].as_f64().unwrap() / w,
            b["y_max"].as_f64().unwrap() / h,
            b["x_max"].as_f64().unwrap() / w,
        ];
        for (k, want) in want.iter().enumerate() {
            let got = p["detection_boxes"][i][k].as_f64().unwrap();
            assert!((got - want).abs() < 1e-4, "box {i}[{k}]: {got} vs {want}");
        }
        let score = p["detection_scores"][i].as_f64().unwrap();
        assert!((score - d["score"].as_f64().unwrap()).abs() < 1e-6);
    }
    // COCO's category ids: cat is 17 where the model's class index is 15.
    let cat = detections
        .iter()
        .position(|d| d["label"] == "cat")
        .expect("the cat");
    assert_eq!(p["detection_classes"][cat], json!(17.0));

    // Columnar, with options from the query string as on /detect.
    let columns = json!({"inputs": {"image_bytes": [image]}});
    let mut e = v2_request(
        "POST",
        &format!("/v1/models/{name}/versions/1:predict"),
        Some(&columns),
    );
    e["rawQueryString"] = json!("classes=cat");
    let (status, _, body) = http(&run(&app, e).unwrap());
    assert_eq!(status, 200, "{body}");
    let outputs = &body["outputs"];
    assert_eq!(outputs["num_detections"], json!([1.0]));
    assert_eq!(outputs["detection_classes"], json!([[17.0]]));
    assert_eq!(outputs["detection_boxes"][0][0], p["detection_boxes"][cat]);

    // Status and metadata.
    let (status, _, body) =
        http(&run(&app, v2_request("GET", &format!("/v1/models/{name}"), None)).unwrap());
    assert_eq!(status, 200);
    assert_eq!(body["model_version_status"][0]["state"], "AVAILABLE");
    let path = format!("/v1/models/{name}/labels/stable/metadata");
    let (status, _, body) = http(&run(&app, v2_request("GET", &path, None)).unwrap());
    assert_eq!(status, 200);
    assert_eq!(body["model_spec"]["name"], json!(name));

    // Errors: one string, the code first, the table's status; the method's `Allow`.
    let error = |e: Value| {
        let (status, headers, body) = http(&run(&app, e).unwrap());
        let text = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{body}"))
            .to_string();
        (status, headers.get("allow").cloned(), text)
    };
    let (status, _, text) = error(v2_request("POST", "/v1/models/resnet:predict", Some(&rows)));
    assert_eq!(status, 404);
    assert!(
        text.starts_with("not_found: Servable not found for request: Latest(resnet)"),
        "{text}"
    );
    let (status, allow, text) = error(v2_request("GET", &predict, None));
    assert_eq!((status, allow), (405, Some(json!("POST, OPTIONS"))));
    assert!(text.starts_with("method_not_allowed: "), "{text}");
    let text_image = json!({"instances": [image, {"b64": b64(b"hello")}]});
    let (status, _, text) = error(v2_request("POST", &predict, Some(&text_image)));
    assert_eq!(status, 422);
    assert!(text.starts_with("not_an_image: image 1: "), "{text}");
    let (status, _, text) = error(v2_request(
        "POST",
        &predict,
        Some(&json!({"instances": [[[[1, 2, 3]]]]})),
    ));
    assert_eq!(status, 400);
    assert!(text.starts_with("invalid_parameter: "), "{text}");
    let (status, _, text) = error(v2_request("POST", &predict, None));
    assert_eq!(status, 400);
    assert!(text.starts_with("empty_body: "), "{text}");
    // Its answer is its own: no picture, and boxes always fractions.
    for query in ["format=png", "box_format=normalized"] {
        let mut picture = v2_request("POST", &predict, Some(&rows));
        picture["rawQueryString"] = json!(query);
        let (status, _, text) = error(picture);
        assert_eq!(status, 400, "{text}");
        assert!(text.contains("are for /detect"), "{text}");
    }
}

#[test]
fn rekognition_clients_get_the_detections_of_detect_as_labels() {
    let app = app(Config::default());
    let jpeg = common::read("tests/images/coffee.jpg");
    let native = detected(&app, &jpeg, "score_threshold=0.55");
    let detections = native["detections"].as_array().unwrap();
    assert!(detections.len() >= 2, "{native}");
    let (w, h) = (
        native["image"]["width"].as_f64().unwrap(),
        native["image"]["height"].as_f64().unwrap(),
    );
    let request = json!({"Image": {"Bytes": b64(&jpeg)}});
    let check = |answer: &Value| {
        let labels = answer["Labels"].as_array().unwrap();
        let instances: usize = labels
            .iter()
            .map(|l| l["Instances"].as_array().unwrap().len())
            .sum();
        assert_eq!(instances, detections.len(), "{answer}");
        for d in detections {
            let name = d["label"].as_str().unwrap();
            let title: String = name[..1].to_uppercase() + &name[1..];
            let label = labels
                .iter()
                .find(|l| l["Name"].as_str().unwrap().eq_ignore_ascii_case(&title))
                .unwrap_or_else(|| panic!("{name} in {answer}"));
            let b = &d["box"];
            let want = [
                (b["x_max"].as_f64().unwrap() - b["x_min"].as_f64().unwrap()) / w,
                (b["y_max"].as_f64().unwrap() - b["y_min"].as_f64().unwrap()) / h,
                b["x_min"].as_f64().unwrap() / w,
                b["y_min"].as_f64().unwrap() / h,
            ];
            let score = d["score"].as_f64().unwrap() * 100.0;
            let found = label["Instances"].as_array().unwrap().iter().any(|i| {
                let bb = &i["BoundingBox"];
                let got = ["Width", "Height", "Left", "Top"].map(|k| bb[k].as_f64().unwrap());
                (i["Confidence"].as_f64().unwrap() - score).abs() < 1e-3
                    && got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-4)
            });
            assert!(found, "{d} in {label}");
        }
        assert_eq!(
            answer["LabelModelVersion"],
            json!(format!(
                "{} {}",
                native["model"]["name"].as_str().unwrap(),
                native["model"]["version"].as_str().unwrap()
            ))
        );
    };

    // Over HTTP, as an SDK's Rekognition client sends it: POST / with X-Amz-Target.
    let mut e = v2_request("POST", "/", Some(&request));
    e["headers"]["content-type"] = json!("application/x-amz-json-1.1");
    e["headers"]["x-amz-target"] = json!("RekognitionService.DetectLabels");
    let answer = run(&app, e.clone()).unwrap();
    assert_eq!(answer["statusCode"], 200);
    assert_eq!(
        answer["headers"]["content-type"],
        "application/x-amz-json-1.1"
    );
    check(&serde_json::from_str(answer["body"].as_str().unwrap()).unwrap());

    // A direct invocation: the response object itself.
    check(&run(&app, request.clone()).unwrap());

    // Errors: over HTTP in the protocol's shape, directly as function errors named as the exception.
    let mut bad = e.clone();
    bad["body"] = json!(json!({"Image": {"Bytes": b64(b"hello")}}).to_string());
    let answer = run(&app, bad).unwrap();
    assert_eq!(answer["statusCode"], 400);
    let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["__type"], "InvalidImageFormatException", "{body}");
    let mut unknown = e.clone();
    unknown["headers"]["x-amz-target"] = json!("RekognitionService.DetectFaces");
    let answer = run(&app, unknown).unwrap();
    let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        (answer["statusCode"].as_i64(), body["__type"].as_str()),
        (Some(400), Some("UnknownOperationException"))
    );
    let invocation = Invocation {
        request_id: "test-request",
        trace_id: None,
    };
    let handled = runtime()
        .block_on(app.handle_recorded(json!({"Image": {"Bytes": b64(b"hello")}}), invocation));
    assert_eq!(
        handled.result.unwrap_err().code(),
        object_detector::ErrorCode::NotAnImage
    );
    assert_eq!(handled.error_type, Some("InvalidImageFormatException"));
    let handled = runtime().block_on(app.handle_recorded(
        json!({"Image": {"Bytes": b64(&jpeg)}, "MinConfidence": 200}),
        invocation,
    ));
    assert_eq!(handled.error_type, Some("InvalidParameterException"));
}

#[test]
fn open_inference_clients_get_the_detections_of_detect_as_tensors() {
    use base64::Engine;
    let app = app(Config::default());
    let jpeg = common::read("tests/images/coffee.jpg");
    let native = detected(&app, &jpeg, "");
    let detections = native["detections"].as_array().unwrap().clone();
    let name = native["model"]["name"].as_str().unwrap().to_string();
    let infer = format!("/v2/models/{name}/infer");

    // JSON: base64 data, JSON outputs, options in parameters.
    let request = json!({
        "id": "r1",
        "parameters": {"max_detections": 1},
        "inputs": [{"name": "image", "shape": [2], "datatype": "BYTES", "data": [b64(&jpeg), b64(&jpeg)]}],
        "outputs": [{"name": "detection_scores"}, {"name": "num_detections"}]
    });
    let (status, _, body) = http(&run(&app, v2_request("POST", &infer, Some(&request))).unwrap());
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], "r1");
    assert_eq!(body["model_name"], json!(name));
    assert_eq!(body["outputs"][0]["shape"], json!([2, 1]));
    let top = detections[0]["score"].as_f64().unwrap();
    let got = body["outputs"][0]["data"][1].as_f64().unwrap();
    assert!((got - top).abs() < 1e-6, "{got} vs {top}");
    assert_eq!(
        body["outputs"][1],
        json!({"name": "num_detections", "datatype": "INT32", "shape": [2], "data": [1, 1]})
    );

    // Binary tensor data both ways, through a base64-encoded body as a function URL delivers it.
    let mut data = (jpeg.len() as u32).to_le_bytes().to_vec();
    data.extend(&jpeg);
    let header = json!({
        "inputs": [{"name": "IMAGE", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": data.len()}}],
        "parameters": {"binary_data_output": true}
    })
    .to_string();
    let mut raw = header.clone().into_bytes();
    raw.extend(&data);
    let mut e = v2_request(
        "POST",
        &format!("/base/v2/models/{name}/versions/1/infer"),
        None,
    );
    e["body"] = json!(b64(&raw));
    e["isBase64Encoded"] = json!(true);
    e["headers"]["content-type"] = json!("application/octet-stream");
    e["headers"]["inference-header-content-length"] = json!(header.len().to_string());
    let answer = run(&app, e).unwrap();
    assert_eq!(answer["statusCode"], 200, "{answer}");
    assert_eq!(answer["isBase64Encoded"], true);
    let length: usize = answer["headers"]["inference-header-content-length"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(answer["body"].as_str().unwrap())
        .unwrap();
    let head: Value = serde_json::from_slice(&bytes[..length]).unwrap();
    let names: Vec<&str> = head["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "detection_boxes",
            "detection_scores",
            "detection_classes",
            "num_detections"
        ]
    );
    let k = detections.len();
    assert_eq!(head["outputs"][0]["shape"], json!([1, k, 4]));
    let sizes: Vec<usize> = head["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["parameters"]["binary_data_size"].as_u64().unwrap() as usize)
        .collect();
    assert_eq!(sizes, [16 * k, 4 * k, 4 * k, 4]);
    let floats = |from: usize, n: usize| -> Vec<f32> {
        bytes[from..from + 4 * n]
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let scores = floats(length + sizes[0], k);
    for (s, d) in scores.iter().zip(&detections) {
        assert!((*s as f64 - d["score"].as_f64().unwrap()).abs() < 1e-6);
    }
    let tail = &bytes[bytes.len() - 4..];
    assert_eq!(i32::from_le_bytes(tail.try_into().unwrap()) as usize, k);

    // Health, metadata, errors in the protocol's shape.
    for path in [
        "/v2/health/live",
        "/v2/health/ready",
        &format!("/v2/models/{name}/ready"),
    ] {
        let answer = run(&app, v2_request("GET", path, None)).unwrap();
        assert_eq!(answer["statusCode"], 200, "{path}");
    }
    let (status, _, body) =
        http(&run(&app, v2_request("GET", &format!("/v2/models/{name}"), None)).unwrap());
    assert_eq!(status, 200);
    assert_eq!(body["inputs"][0]["datatype"], "BYTES");
    assert_eq!(body["outputs"][3]["datatype"], "INT32");
    let (status, _, body) =
        http(&run(&app, v2_request("GET", "/v2/models/resnet/ready", None)).unwrap());
    assert_eq!(status, 404);
    assert!(
        body["error"].as_str().unwrap().starts_with("not_found: "),
        "{body}"
    );
    let bad = json!({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [b64(b"hello")]}]});
    let (status, _, body) = http(&run(&app, v2_request("POST", &infer, Some(&bad))).unwrap());
    assert_eq!(status, 422);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("not_an_image: image 0: "),
        "{body}"
    );
    let range = json!({"parameters": {"score_threshold": 3}, "inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [b64(&jpeg)]}]});
    let (status, _, body) = http(&run(&app, v2_request("POST", &infer, Some(&range))).unwrap());
    assert_eq!(status, 400, "{body}");
}

#[test]
fn the_protocol_event_samples_find_the_cat() {
    let app = app(Config::default());
    let body = |name: &str| {
        let (status, _, body) = http(&run(&app, event(name)).unwrap());
        assert_eq!(status, 200, "{name}: {body}");
        body
    };
    let tf = body("function-url-tf-serving.json");
    assert_eq!(tf["predictions"][0]["detection_classes"][0], json!(17.0));
    let oip = body("function-url-open-inference.json");
    assert_eq!(oip["outputs"][2]["data"][0], json!(17.0));
    let rekognition: Value = {
        let answer = run(&app, event("function-url-rekognition.json")).unwrap();
        serde_json::from_str(answer["body"].as_str().unwrap()).unwrap()
    };
    assert_eq!(rekognition["Labels"][0]["Name"], "Cat");
    let direct = run(&app, event("direct-rekognition.json")).unwrap();
    assert_eq!(direct["Labels"][0]["Name"], "Cat");
}

#[test]
fn a_browsers_get_on_the_root_is_the_demo_page_unless_it_is_off() {
    let on = app(Config {
        demo_page: true,
        ..Config::default()
    });
    for (path, stage) in [("/", None), ("/demo", None), ("/prod", Some("prod"))] {
        let mut e = event("rest-api-model.json");
        e["path"] = json!(path);
        e["requestContext"]["stage"] = json!(stage.unwrap_or("prod"));
        if stage.is_none() {
            e["requestContext"]["stage"] = json!("$default");
        }
        let response = run(&on, e).unwrap();
        assert_eq!(response["statusCode"], 200, "{path}");
        let headers = &response["headers"];
        assert_eq!(
            headers["content-type"], "text/html; charset=utf-8",
            "{path}"
        );
        assert!(headers["content-security-policy"]
            .as_str()
            .unwrap()
            .starts_with("default-src 'none'"));
        assert_eq!(
            response["isBase64Encoded"], false,
            "text, for every front door"
        );
        assert!(response["body"]
            .as_str()
            .unwrap()
            .starts_with("<!doctype html>"));
    }
    // A POST on the root is still /detect.
    let (status, _, body) = http(&run(&on, event("function-url-jpeg.json")).unwrap());
    assert_eq!((status, labels(&body)[0]), (200, "cat"));
    // DEMO_PAGE=off: 404 in the API's error shape.
    let off = app(Config::default());
    let mut e = event("rest-api-model.json");
    e["path"] = json!("/demo");
    let (status, _, body) = http(&run(&off, e).unwrap());
    assert_eq!((status, &body["error"]["code"]), (404, &json!("not_found")));
}
