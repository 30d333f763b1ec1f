//! Where a `/detect` request's images come from: bytes in the request (`image`, base64), a URL the
//! function fetches (`image_url`), an S3 object it reads with its role (`s3`); one image, or a list of
//! them (`images`) answered in order, each item its own answer or error.

use serde_json::{Map, Value};

use super::base64_text::decode_base64;
use crate::aws::batch::ObjectRef;
use crate::core::error::{quote, Failure};
use crate::core::error_code::ErrorCode;
use crate::core::options::MAX_IMAGES_PER_REQUEST;

/// One image of a request, before it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    Bytes(Vec<u8>),
    Url(String),
    S3(ObjectRef),
}

/// What a request asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Images {
    One(ImageSource),
    /// `images`: each item its source, or why it has none (answered in its place).
    List(Vec<Result<ImageSource, Failure>>),
}

/// The fields of a JSON request that name its images; one of them per request.
pub const FIELDS: [&str; 4] = ["image", "image_url", "s3", "images"];

/// Takes the image field out of a JSON request object, leaving its options.
pub fn take(map: &mut Map<String, Value>) -> Result<Images, Failure> {
    let given: Vec<&str> = FIELDS
        .iter()
        .copied()
        .filter(|f| map.contains_key(*f))
        .collect();
    let field =
        match given.as_slice() {
            [] => return Err(Failure::new(
                ErrorCode::MissingImage,
                "the JSON body has no `image` field (base64), nor `image_url`, `s3` or `images`",
            )),
            [one] => *one,
            several => {
                return Err(Failure::new(
                    ErrorCode::InvalidParameter,
                    format!(
                    "{} name the image twice; send one of `image`, `image_url`, `s3` or `images`",
                    several.join(" and ")
                ),
                ))
            }
        };
    let value = map.remove(field).unwrap_or(Value::Null);
    if field == "images" {
        return list(value).map(Images::List);
    }
    source(field, value).map(Images::One)
}

/// `field`'s value as the source it names.
fn source(field: &str, value: Value) -> Result<ImageSource, Failure> {
    match (field, value) {
        ("image", Value::String(text)) => decode_base64(&text).map(ImageSource::Bytes),
        ("image", _) => Err(Failure::new(
            ErrorCode::InvalidBase64,
            "`image` must be a base64 string",
        )),
        ("image_url", Value::String(url)) => Ok(ImageSource::Url(url)),
        ("image_url", _) => Err(Failure::new(
            ErrorCode::InvalidParameter,
            "`image_url` must be a URL string",
        )),
        (_, value) => s3_object(value).map(ImageSource::S3),
    }
}

/// `images`: 1 to [`MAX_IMAGES_PER_REQUEST`] items, each a base64 string or an object with one of
/// `image`, `image_url` and `s3`.
fn list(value: Value) -> Result<Vec<Result<ImageSource, Failure>>, Failure> {
    let Value::Array(items) = value else {
        return Err(Failure::new(
            ErrorCode::InvalidParameter,
            "`images` must be a list of images",
        ));
    };
    if items.is_empty() {
        return Err(Failure::new(ErrorCode::MissingImage, "`images` is empty"));
    }
    if items.len() > MAX_IMAGES_PER_REQUEST {
        return Err(Failure::new(
            ErrorCode::InvalidParameter,
            format!(
                "`images` has {} items; at most {MAX_IMAGES_PER_REQUEST} per request",
                items.len()
            ),
        ));
    }
    Ok(items.into_iter().map(item).collect())
}

fn item(value: Value) -> Result<ImageSource, Failure> {
    match value {
        Value::String(text) => decode_base64(&text).map(ImageSource::Bytes),
        Value::Object(mut map) => {
            let fields: Vec<String> = map.keys().cloned().collect();
            match fields.as_slice() {
                [one] if FIELDS[..3].contains(&one.as_str()) => {
                    let value = map.remove(one).unwrap_or(Value::Null);
                    source(one, value)
                }
                _ => Err(Failure::new(
                    ErrorCode::InvalidParameter,
                    format!(
                        "an item of `images` has one field of `image`, `image_url` and `s3`; it has {}",
                        if fields.is_empty() {
                            "none".to_string()
                        } else {
                            fields.iter().take(8).map(|f| quote(f)).collect::<Vec<_>>().join(", ")
                        }
                    ),
                )),
            }
        }
        _ => Err(Failure::new(
            ErrorCode::InvalidParameter,
            "an item of `images` is a base64 string or an object with `image`, `image_url` or `s3`",
        )),
    }
}

/// `{"bucket": ..., "key": ..., "version_id": ...}` (the version optional), or `"s3://bucket/key"`.
fn s3_object(value: Value) -> Result<ObjectRef, Failure> {
    let invalid =
        |detail: String| Failure::new(ErrorCode::InvalidParameter, format!("`s3`: {detail}"));
    let object = |bucket: String, key: String, version_id: Option<String>| {
        if bucket.is_empty() || key.is_empty() {
            return Err(invalid("names no bucket or no key".into()));
        }
        Ok(ObjectRef {
            bucket,
            key,
            version_id,
            etag: None,
            size: None,
        })
    };
    match value {
        Value::String(uri) => {
            let (bucket, key) = uri
                .strip_prefix("s3://")
                .and_then(|rest| rest.split_once('/'))
                .ok_or_else(|| invalid(format!("{} is not s3://bucket/key", quote(&uri))))?;
            object(bucket.to_string(), key.to_string(), None)
        }
        Value::Object(map) => {
            let (mut bucket, mut key, mut version_id) = (None, None, None);
            for (name, value) in map {
                let text = match value {
                    Value::String(text) => text,
                    Value::Null if name == "version_id" => continue,
                    _ => return Err(invalid(format!("{} must be a string", quote(&name)))),
                };
                match name.as_str() {
                    "bucket" => bucket = Some(text),
                    "key" => key = Some(text),
                    "version_id" => version_id = Some(text),
                    _ => {
                        return Err(invalid(format!(
                            "unknown field {}; accepted: bucket, key, version_id",
                            quote(&name)
                        )))
                    }
                }
            }
            object(
                bucket.unwrap_or_default(),
                key.unwrap_or_default(),
                version_id,
            )
        }
        _ => Err(invalid(
            "expected {\"bucket\": ..., \"key\": ...} or \"s3://bucket/key\"".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn taken(v: Value) -> Result<Images, Failure> {
        let Value::Object(mut map) = v else { panic!() };
        take(&mut map)
    }

    fn s3(bucket: &str, key: &str, version_id: Option<&str>) -> ImageSource {
        ImageSource::S3(ObjectRef {
            bucket: bucket.into(),
            key: key.into(),
            version_id: version_id.map(Into::into),
            etag: None,
            size: None,
        })
    }

    #[test]
    fn one_field_names_the_image() {
        assert_eq!(
            taken(json!({"image": "aGk="})).unwrap(),
            Images::One(ImageSource::Bytes(b"hi".to_vec()))
        );
        assert_eq!(
            taken(json!({"image_url": "https://example.com/a.jpg"})).unwrap(),
            Images::One(ImageSource::Url("https://example.com/a.jpg".into()))
        );
        assert_eq!(
            taken(json!({"s3": {"bucket": "b", "key": "photos/a b.jpg", "version_id": "v1"}}))
                .unwrap(),
            Images::One(s3("b", "photos/a b.jpg", Some("v1")))
        );
        assert_eq!(
            taken(json!({"s3": "s3://b/photos/a.jpg"})).unwrap(),
            Images::One(s3("b", "photos/a.jpg", None))
        );
        for (v, code) in [
            (json!({}), "missing_image"),
            (
                json!({"image": "aGk=", "image_url": "https://x/"}),
                "invalid_parameter",
            ),
            (json!({"image_url": 3}), "invalid_parameter"),
            (json!({"image": 3}), "invalid_base64"),
            (json!({"s3": {"bucket": "b"}}), "invalid_parameter"),
            (
                json!({"s3": {"bucket": "b", "key": "k", "region": "x"}}),
                "invalid_parameter",
            ),
            (
                json!({"s3": {"bucket": "b", "key": 1}}),
                "invalid_parameter",
            ),
            (
                json!({"s3": "https://b.s3.amazonaws.com/k"}),
                "invalid_parameter",
            ),
            (json!({"s3": "s3://b"}), "invalid_parameter"),
            (json!({"images": "aGk="}), "invalid_parameter"),
            (json!({"images": []}), "missing_image"),
            (
                json!({"images": vec!["aGk="; MAX_IMAGES_PER_REQUEST + 1]}),
                "invalid_parameter",
            ),
        ] {
            assert_eq!(taken(v.clone()).unwrap_err().code(), code, "{v}");
        }
    }

    #[test]
    fn a_list_keeps_each_item_its_source_or_its_error() {
        let Images::List(items) = taken(json!({"images": [
            "aGk=",
            {"image_url": "https://example.com/a.jpg"},
            {"s3": {"bucket": "b", "key": "k"}},
            "not base64!",
            {"image": "aGk=", "s3": "s3://b/k"},
            {"score_threshold": 0.5},
            7,
        ]}))
        .unwrap() else {
            panic!("a list")
        };
        assert_eq!(items[0], Ok(ImageSource::Bytes(b"hi".to_vec())));
        assert_eq!(
            items[1],
            Ok(ImageSource::Url("https://example.com/a.jpg".into()))
        );
        assert_eq!(items[2], Ok(s3("b", "k", None)));
        let codes: Vec<&str> = items[3..]
            .iter()
            .map(|i| i.as_ref().unwrap_err().code().as_str())
            .collect();
        assert_eq!(
            codes,
            [
                "invalid_base64",
                "invalid_parameter",
                "invalid_parameter",
                "invalid_parameter"
            ]
        );
    }
}
