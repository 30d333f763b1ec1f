//! Request bodies and query strings: raw image bytes, JSON with a base64 `image`, multipart forms.

use bytes::Bytes;
use serde_json::Value;

use super::base64_text::decode_base64;
use super::events::Request;
use super::image_source::{self, ImageSource, Images};
use crate::core::error::{bounded, quote, Failure};
use crate::core::error_code::ErrorCode;
use crate::core::options::DetectOptions;

/// Most query parameters a request may carry (each option once, `classes` repeated, with room to spare).
const MAX_QUERY_PARAMETERS: usize = 64;
/// Most fields a form may carry: the image and each option once, with room to spare.
const MAX_FORM_FIELDS: usize = 32;

/// Media types accepted by `POST /detect`, for 415 messages.
pub const ACCEPTED_MEDIA_TYPES: &str = "image/jpeg, image/png, image/webp, image/gif, image/bmp, \
     application/octet-stream, application/json, multipart/form-data";

/// A JSON request: its images (`{"image": "<base64>"}`, or `image_url`, `s3`, `images`: see
/// [`image_source`]) and its options (`"score_threshold": ..., "classes": [...]`).
pub fn from_json_value(v: Value) -> Result<(Images, DetectOptions), Failure> {
    let Value::Object(mut map) = v else {
        return Err(Failure::new(
            ErrorCode::InvalidJson,
            "the JSON body must be an object with an `image` field",
        ));
    };
    let images = image_source::take(&mut map)?;
    let mut options = DetectOptions::default();
    for (key, value) in map {
        if !DetectOptions::NAMES.contains(&key.as_str()) {
            return Err(Failure::from(&DetectOptions::unknown(
                "field",
                &key,
                &image_source::FIELDS,
            )));
        }
        options
            .set_json(&key, value)
            .map_err(|e| Failure::from(&e))?;
    }
    Ok((images, options))
}

/// `raw` parsed as JSON; `invalid_json` naming `what` (the body, an inference request) when it is not.
pub fn json_value(raw: &[u8], what: &str) -> Result<Value, Failure> {
    serde_json::from_slice(raw).map_err(|e| {
        Failure::new(
            ErrorCode::InvalidJson,
            format!("{what} is not valid JSON: {e}"),
        )
    })
}

fn from_json_bytes(raw: &[u8]) -> Result<(Images, DetectOptions), Failure> {
    from_json_value(json_value(raw, "the body")?)
}

fn looks_like_json(raw: &[u8]) -> bool {
    raw.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// The body's bytes as the client sent them: decoded from base64 when the front door encoded it.
pub fn raw_bytes(request: &Request) -> Result<Vec<u8>, Failure> {
    Ok(match &request.body {
        None => Vec::new(),
        Some(b) if request.is_base64 => decode_base64(b)?,
        Some(b) => b.as_bytes().to_vec(),
    })
}

/// The images and options of an HTTP request, by its content type.
pub async fn from_http(request: &Request) -> Result<(Images, DetectOptions), Failure> {
    let raw = raw_bytes(request)?;
    if raw.is_empty() {
        return Err(Failure::new(
            ErrorCode::EmptyBody,
            "the request has no body: send the image bytes, JSON {\"image\": \"<base64>\"} or a multipart form",
        ));
    }
    let media = request.media_type();
    match media.as_deref() {
        Some("multipart/form-data") => {
            multipart(request.header("content-type").unwrap_or(""), raw).await
        }
        Some(m) if m == "application/json" || m.ends_with("+json") => from_json_bytes(&raw),
        // curl -d sends form-urlencoded by default; a JSON object is still meant as JSON.
        None
        | Some("application/octet-stream" | "text/plain" | "application/x-www-form-urlencoded")
            if looks_like_json(&raw) =>
        {
            from_json_bytes(&raw)
        }
        None | Some("application/octet-stream") => Ok(bytes(raw)),
        Some(m) if m.starts_with("image/") => Ok(bytes(raw)),
        // The bytes decide: `curl --data-binary @photo.jpg` without -H labels a JPEG as a form.
        Some(_) if crate::core::image_decode::sniff(&raw).is_ok() => Ok(bytes(raw)),
        Some(m) => Err(Failure::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "Content-Type {} is not accepted; send one of: {ACCEPTED_MEDIA_TYPES}",
                quote(m)
            ),
        )),
    }
}

/// The body is the image.
fn bytes(raw: Vec<u8>) -> (Images, DetectOptions) {
    (
        Images::One(ImageSource::Bytes(raw)),
        DetectOptions::default(),
    )
}

/// `multipart/form-data` (curl -F, browser forms): an `image` file field (or an `image_url` text
/// field) plus optional option fields.
async fn multipart(content_type: &str, raw: Vec<u8>) -> Result<(Images, DetectOptions), Failure> {
    let invalid = |e: multer::Error| {
        Failure::new(
            ErrorCode::InvalidMultipart,
            format!("malformed multipart body: {}", bounded(&e.to_string(), 200)),
        )
    };
    let boundary = multer::parse_boundary(content_type).map_err(invalid)?;
    let stream = futures_util::stream::once(async move {
        Ok::<Bytes, std::convert::Infallible>(Bytes::from(raw))
    });
    let mut form = multer::Multipart::new(stream, boundary);
    let mut image: Option<ImageSource> = None;
    let mut options = DetectOptions::default();
    let mut seen = Vec::new();
    while let Some(field) = form.next_field().await.map_err(invalid)? {
        if seen.len() == MAX_FORM_FIELDS {
            return Err(Failure::new(
                ErrorCode::InvalidMultipart,
                format!("more than {MAX_FORM_FIELDS} form fields"),
            ));
        }
        let name = field.name().unwrap_or("").to_string();
        seen.push(name.clone());
        if name == "image" || name == "image_url" {
            if image.is_some() {
                return Err(Failure::new(
                    ErrorCode::InvalidMultipart,
                    "one `image` or `image_url` field per request",
                ));
            }
            image = Some(if name == "image" {
                ImageSource::Bytes(field.bytes().await.map_err(invalid)?.to_vec())
            } else {
                ImageSource::Url(field.text().await.map_err(invalid)?)
            });
        } else if DetectOptions::NAMES.contains(&name.as_str()) {
            let text = field.text().await.map_err(invalid)?;
            options.set(&name, &text).map_err(|e| Failure::from(&e))?;
        } else {
            return Err(Failure::from(&DetectOptions::unknown(
                "form field",
                &name,
                &["image", "image_url"],
            )));
        }
    }
    let image = image.ok_or_else(|| {
        Failure::new(
            ErrorCode::MissingImage,
            format!(
                "the form has no `image` file field nor `image_url` (fields: {})",
                seen.iter()
                    .take(12)
                    .map(|f| quote(f))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })?;
    Ok((Images::One(image), options))
}

/// Options from the query string; unknown names are refused so a typo is not silently ignored.
pub fn options_from_query(query: &[(String, String)]) -> Result<DetectOptions, Failure> {
    if query.len() > MAX_QUERY_PARAMETERS {
        return Err(Failure::new(
            ErrorCode::InvalidParameter,
            format!(
                "{} query parameters; at most {MAX_QUERY_PARAMETERS}",
                query.len()
            ),
        ));
    }
    let mut options = DetectOptions::default();
    let mut classes: Vec<String> = Vec::new();
    for (k, v) in query {
        if k == "classes" {
            classes.push(v.clone());
        } else if DetectOptions::NAMES.contains(&k.as_str()) {
            options.set(k, v).map_err(|e| Failure::from(&e))?;
        } else {
            return Err(Failure::from(&DetectOptions::unknown(
                "query parameter",
                k,
                &[],
            )));
        }
    }
    if !classes.is_empty() {
        options
            .set("classes", &classes.join(","))
            .map_err(|e| Failure::from(&e))?;
    }
    Ok(options)
}

/// Binary sent through a text-only integration arrives with U+FFFD replacement characters where bytes
/// were not UTF-8: say how to fix it rather than only "not an image".
/// The new message is made by [`Failure::new`], so it keeps the cap.
pub fn explain_mangled_binary(failure: Failure, bytes: &[u8]) -> Failure {
    let head = &bytes[..bytes.len().min(16)];
    if head.windows(3).any(|w| w == [0xEF, 0xBF, 0xBD]) {
        Failure::new(
            failure.code(),
            format!(
                "{}. The body looks like binary data passed as text: on an API Gateway REST API, add the \
                 image types (or */*) to binaryMediaTypes, or send JSON with a base64 `image`",
                failure.message()
            ),
        )
    } else {
        failure
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_mangled_binary_hint_keeps_the_message_cap() {
        use crate::core::error::MAX_MESSAGE;
        let mangled = b"\xEF\xBF\xBDPNG\r\n";
        let long = Failure::new(ErrorCode::InvalidImage, "x".repeat(MAX_MESSAGE));
        let explained = explain_mangled_binary(long, mangled);
        assert_eq!(
            explained.message().chars().count(),
            MAX_MESSAGE + 1,
            "cut, with its `…`"
        );
    }

    #[test]
    fn json_requests_take_options_as_numbers_strings_or_lists() {
        let (img, o) = from_json_value(json!({"image": "aGk=", "score_threshold": 0.5, "max_detections": "3", "classes": ["cat", "dog"], "iou_threshold": null})).unwrap();
        assert_eq!(img, Images::One(ImageSource::Bytes(b"hi".to_vec())));
        assert_eq!(o.score_threshold, Some(0.5));
        assert_eq!(o.max_detections, Some(3));
        assert_eq!(o.classes, Some(vec!["cat".to_string(), "dog".to_string()]));
        assert_eq!(o.iou_threshold, None);

        let cases = [
            (json!({"score_threshold": 0.5}), "missing_image"),
            (json!({"image": 42}), "invalid_base64"),
            (
                json!({"image": "aGk=", "scor_threshold": 0.5}),
                "invalid_parameter",
            ),
            (
                json!({"image": "aGk=", "max_detections": 2.5}),
                "invalid_parameter",
            ),
            (
                json!({"image": "aGk=", "classes": [1]}),
                "invalid_parameter",
            ),
            (
                json!({"image": "aGk=", "score_threshold": {"a": 1}}),
                "invalid_parameter",
            ),
            (json!(["aGk="]), "invalid_json"),
        ];
        for (v, code) in cases {
            assert_eq!(from_json_value(v.clone()).unwrap_err().code(), code, "{v}");
        }
    }

    #[test]
    fn query_options_accumulate_classes_and_refuse_unknown_names() {
        let q = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let o = options_from_query(&q(&[
            ("classes", "cat"),
            ("classes", "dog,person"),
            ("max_detections", "5"),
        ]))
        .unwrap();
        assert_eq!(o.classes.unwrap(), vec!["cat", "dog", "person"]);
        assert_eq!(o.max_detections, Some(5));
        let e = options_from_query(&q(&[("threshold", "0.5")])).unwrap_err();
        assert_eq!(e.code(), "invalid_parameter");
        assert!(e.message().contains("threshold"));
        assert_eq!(
            options_from_query(&q(&[("score_threshold", "x")]))
                .unwrap_err()
                .code(),
            "invalid_parameter"
        );
    }

    #[test]
    fn mangled_binary_gets_a_hint() {
        let mangled = "\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}JFIF".as_bytes();
        let x = Failure::new(ErrorCode::NotAnImage, "x");
        assert!(explain_mangled_binary(x.clone(), mangled)
            .message()
            .contains("binaryMediaTypes"));
        assert_eq!(explain_mangled_binary(x.clone(), b"plain text"), x);
    }
}
