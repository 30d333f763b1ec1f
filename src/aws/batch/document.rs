//! The documents written beside each object: the detection result (the API's response body, the
//! picture's key, the source object) and the error result of a final failure.

use bytes::Bytes;
use serde::Serialize;
use serde_json::{json, Value};

use super::ObjectRef;
use crate::aws::s3;
use crate::core::response::Response;

/// The object a result describes, as fetched.
pub(super) struct Source<'a> {
    pub object: &'a ObjectRef,
    etag: Option<&'a str>,
    version_id: Option<&'a str>,
    /// The bytes fetched; the event's figure when the object was not fetched.
    size: Option<u64>,
}

impl<'a> Source<'a> {
    /// As the event names it, for an object that was not fetched.
    pub fn notified(object: &'a ObjectRef) -> Self {
        Source {
            object,
            etag: object.etag.as_deref(),
            version_id: object.version_id.as_deref(),
            size: object.size,
        }
    }

    /// As S3 answered the GET, the event's figures where the answer has none.
    pub fn fetched(object: &'a ObjectRef, fetched: &'a s3::Object) -> Self {
        Source {
            object,
            etag: fetched.etag.as_deref().or(object.etag.as_deref()),
            version_id: fetched
                .version_id
                .as_deref()
                .or(object.version_id.as_deref()),
            size: Some(fetched.bytes.len() as u64),
        }
    }

    pub fn json(&self) -> Value {
        json!({
            "bucket": self.object.bucket,
            "key": self.object.key,
            "version_id": self.version_id,
            "etag": self.etag,
            "size": self.size,
        })
    }

    /// The API's response body, written as the API writes it (f32 scores and boxes in their shortest
    /// form), plus `annotated_key` when a picture was written, and `source`.
    pub fn result(
        &self,
        response: &Response,
        annotated_key: Option<&str>,
    ) -> serde_json::Result<Bytes> {
        #[derive(Serialize)]
        struct Document<'a> {
            #[serde(flatten)]
            response: &'a Response,
            #[serde(skip_serializing_if = "Option::is_none")]
            annotated_key: Option<&'a str>,
            source: Value,
        }
        let document = Document {
            response,
            annotated_key,
            source: self.json(),
        };
        json_bytes(&document)
    }
}

/// `value` as JSON; an error where serde_json refuses it (never an empty document).
fn json_bytes(value: &impl Serialize) -> serde_json::Result<Bytes> {
    serde_json::to_vec(value).map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn a_document_serde_json_refuses_is_an_error_not_an_empty_body() {
        // Map keys that are not strings are one thing serde_json refuses.
        let mut refused = BTreeMap::new();
        refused.insert((1, 2), "a tuple key");
        assert!(json_bytes(&refused).is_err());
        let body = json_bytes(&serde_json::json!({"a": 1})).unwrap();
        assert_eq!(&body[..], br#"{"a":1}"#);
    }
}
