//! `/detect`'s image sources through the real handler: `image_url` fetched from a server on 127.0.0.1
//! (a listed host), `s3` wired to the S3 client, `images` lists answered item by item, and URL input
//! turned off.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use object_detector::aws::batch::BatchConfig;
use object_detector::aws::image_url::{HostList, ImageUrlConfig};
use object_detector::aws::lambda::Config;
use object_detector::aws::s3::S3Config;
use serde_json::{json, Value};

use crate::common;
use crate::lambda_events::{app, b64, detected, http, labels, run, v2_with};

/// A server on 127.0.0.1 answering `count` requests with `body` (as `image/jpeg`); its port.
fn photo_server(body: Vec<u8>, count: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for _ in 0..count {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let mut head = Vec::new();
            let mut byte = [0u8];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
    });
    port
}

/// URL input on, from 127.0.0.1 only; S3 at a closed local port.
fn config() -> Config {
    Config {
        image_url: Some(ImageUrlConfig {
            hosts: Some(HostList::parse("127.0.0.1").unwrap()),
            ca_file: None,
            max_bytes: 10 << 20,
            timeout: Duration::from_secs(5),
        }),
        batch: BatchConfig {
            s3: S3Config {
                endpoint: Some("http://127.0.0.1:9".into()),
                force_path_style: true,
                retry_pauses: vec![],
                ..S3Config::default()
            },
            ..BatchConfig::default()
        },
        ..Config::default()
    }
}

fn post_json(body: &Value, query: &str) -> Value {
    v2_with(
        Some("application/json"),
        Some(&body.to_string()),
        false,
        query,
    )
}

#[test]
fn an_image_url_is_answered_as_its_bytes_are() {
    let app = app(config());
    let jpeg = common::read("tests/images/chelsea.jpg");
    let want = detected(&app, &jpeg, "");
    let port = photo_server(jpeg.clone(), 3);
    let url = format!("http://127.0.0.1:{port}/photos/chelsea.jpg");
    // A bad option fails before the fetch: the server answers three requests, all needed below.
    let (status, _, body) = http(
        &run(
            &app,
            post_json(&json!({"image_url": url, "classes": ["unicorn"]}), ""),
        )
        .unwrap(),
    );
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("invalid_parameter"))
    );
    // A JSON body, a direct invocation, a form's text field.
    let (status, _, body) = http(&run(&app, post_json(&json!({"image_url": url}), "")).unwrap());
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["detections"], want["detections"]);
    let direct = run(&app, json!({"image_url": url, "box_format": "normalized"})).unwrap();
    assert_eq!(labels(&direct), labels(&want));
    assert!(direct["detections"][0]["box"]["x_max"].as_f64().unwrap() <= 1.0);
    let form = format!(
        "--b\r\nContent-Disposition: form-data; name=\"image_url\"\r\n\r\n{url}\r\n--b--\r\n"
    );
    let e = v2_with(
        Some("multipart/form-data; boundary=b"),
        Some(&form),
        false,
        "",
    );
    let (status, _, body) = http(&run(&app, e).unwrap());
    assert_eq!(
        (status, &body["detections"]),
        (200, &want["detections"]),
        "{body}"
    );
}

#[test]
fn urls_the_guard_refuses_and_servers_that_fail_are_4xx() {
    let app = app(config());
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for (url, status, code) in [
        (
            "https://169.254.169.254/latest/meta-data/",
            400,
            "image_url_refused",
        ),
        ("https://example.com/cat.jpg", 400, "image_url_refused"),
        ("file:///etc/passwd", 400, "image_url_refused"),
        (
            &*format!("http://127.0.0.1:{closed}/cat.jpg"),
            422,
            "image_url_unreachable",
        ),
    ] {
        let (got, _, body) = http(&run(&app, post_json(&json!({"image_url": url}), "")).unwrap());
        assert_eq!(
            (got, body["error"]["code"].as_str().unwrap()),
            (status, code),
            "{url}: {body}"
        );
    }
    // Not an image: the image's own code, as for bytes.
    let port = photo_server(b"<html>not a photo</html>".to_vec(), 1);
    let url = format!("http://127.0.0.1:{port}/");
    let (status, _, body) = http(&run(&app, post_json(&json!({"image_url": url}), "")).unwrap());
    assert_eq!(
        (status, &body["error"]["code"]),
        (422, &json!("not_an_image")),
        "{body}"
    );
    // URL input off: refused, with a direct invocation's function error of that code.
    let off = crate::lambda_events::app(Config::default());
    let (status, _, body) = http(
        &run(
            &off,
            post_json(&json!({"image_url": "https://example.com/a.jpg"}), ""),
        )
        .unwrap(),
    );
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("image_url_refused")),
        "{body}"
    );
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("IMAGE_URL=off"));
    let e = run(&off, json!({"image_url": "https://example.com/a.jpg"})).unwrap_err();
    assert_eq!(e.code(), "image_url_refused");
}

#[test]
fn an_s3_object_is_read_with_the_batch_paths_client() {
    let app = app(config());
    // The client is wired: a closed endpoint is S3 unavailable (503, worth retrying), not the request's fault.
    let (status, _, body) = http(
        &run(
            &app,
            post_json(&json!({"s3": {"bucket": "photos", "key": "cat.jpg"}}), ""),
        )
        .unwrap(),
    );
    assert_eq!(
        (status, &body["error"]["code"]),
        (503, &json!("storage_unavailable")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("s3://photos/cat.jpg"),
        "{body}"
    );
}

#[test]
fn a_list_is_answered_in_order_each_item_its_answer_or_error() {
    let app = app(config());
    let cat = common::read("tests/images/chelsea.jpg");
    let coffee = common::read("tests/images/coffee.jpg");
    let port = photo_server(cat.clone(), 1);
    let images = json!([
        b64(&cat),
        {"image": b64(&coffee)},
        "not base64!",
        {"image_url": format!("http://127.0.0.1:{port}/cat.jpg")},
        {"image_url": "https://10.0.0.1/cat.jpg"},
        {"image": b64(b"GIF89a")},
    ]);
    let (status, _, body) = http(
        &run(
            &app,
            post_json(
                &json!({"images": images, "annotate": true}),
                "max_detections=3",
            ),
        )
        .unwrap(),
    );
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 6);
    let cat_alone = detected(&app, &cat, "max_detections=3");
    let coffee_alone = detected(&app, &coffee, "max_detections=3");
    assert_eq!(results[0]["detections"], cat_alone["detections"]);
    assert_eq!(results[1]["detections"], coffee_alone["detections"]);
    assert_eq!(results[3]["detections"], cat_alone["detections"]);
    for i in [0, 1, 3] {
        assert!(
            results[i]["annotated_image"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{i}"
        );
        assert!(results[i]["detections"].as_array().unwrap().len() <= 3);
    }
    let codes: Vec<&str> = [2, 4, 5]
        .iter()
        .map(|&i| results[i]["error"]["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        ["invalid_base64", "image_url_refused", "invalid_image"]
    );
    // A direct invocation answers the same list.
    let direct = run(&app, json!({"images": [b64(&coffee), "????"]})).unwrap();
    assert_eq!(
        direct["results"][0]["detections"],
        detected(&app, &coffee, "")["detections"]
    );
    assert_eq!(direct["results"][1]["error"]["code"], "invalid_base64");
    // What is wrong with the whole request fails it: a bad option, a picture format, too many items.
    for (body, query) in [
        (json!({"images": [b64(&cat)], "classes": ["unicorn"]}), ""),
        (json!({"images": [b64(&cat)]}), "format=jpeg"),
        (json!({"images": vec![b64(b"x"); 17]}), ""),
    ] {
        let (status, _, answer) = http(&run(&app, post_json(&body, query)).unwrap());
        assert_eq!(
            (status, &answer["error"]["code"]),
            (400, &json!("invalid_parameter")),
            "{query} {answer}"
        );
    }
}

#[test]
fn the_list_event_samples_find_the_cat_in_each_item() {
    let app = app(Config::default());
    let (status, _, body) =
        http(&run(&app, crate::lambda_events::event("http-api-images.json")).unwrap());
    assert_eq!(status, 200, "{body}");
    let direct = run(&app, crate::lambda_events::event("direct-images.json")).unwrap();
    for results in [&body["results"], &direct["results"]] {
        let results = results.as_array().unwrap();
        assert_eq!(results.len(), 2);
        for result in results {
            assert_eq!(labels(result)[0], "cat", "{result}");
        }
    }
    // box_format=normalized in the HTTP sample; max_detections=2 in the direct one.
    assert!(
        body["results"][0]["detections"][0]["box"]["x_max"]
            .as_f64()
            .unwrap()
            <= 1.0
    );
    assert!(direct["results"][0]["detections"].as_array().unwrap().len() <= 2);
}
