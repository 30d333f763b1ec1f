//! Object events: the shapes that name S3 objects to detect instead of carrying an image. Read
//! leniently: only the bucket and the key are required (S3-compatible servers and hand-made events
//! leave out fields that `aws_lambda_events`' S3 types insist on, such as `userIdentity` and
//! `requestParameters`); everything else is taken when present.
//!
//! | shape | how it is told | keys |
//! | --- | --- | --- |
//! | S3 event notification (S3 invokes the function) | `Records[].s3` | URL-encoded |
//! | SQS event (S3 -> SQS -> Lambda) | `Records[].eventSource = "aws:sqs"`; each body an S3 notification, an SNS envelope of one, or an EventBridge event | as inside |
//! | EventBridge `Object Created` | `source = "aws.s3"`, `detail-type` | URL-encoded |
//! | object batch (Step Functions' Distributed Map, or by hand) | `Items` (+ `BatchInput.bucket`), or `bucket` + `keys` | as stored |
//!
//! Notification keys are URL-encoded as a form is (`+` for a space, `%XX` for other bytes); listing
//! keys (Distributed Map's S3 `ItemReader`) and hand-written keys are the keys themselves.

use serde_json::{Map, Value};

pub use crate::aws::batch::ObjectRef;

/// Most objects one invocation may name (an SQS batch is at most 10,000 messages of one record each).
/// A notification or object batch naming more is refused whole, never cut short; SQS messages past
/// the bound are returned to the queue, to come back in a later batch.
pub const MAX_OBJECTS: usize = 10_000;

/// The object-event sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectSource {
    /// S3 invoked the function with an event notification.
    S3,
    /// The Lambda SQS poller, with S3 notifications as message bodies.
    Sqs,
    /// An EventBridge rule on S3's `Object Created` events.
    EventBridge,
    /// A batch of keys: Step Functions' Distributed Map item batch, or `{"bucket", "keys"}`.
    ObjectBatch,
}

impl ObjectSource {
    /// The name the log line gives the source.
    pub fn name(self) -> &'static str {
        match self {
            ObjectSource::S3 => "s3",
            ObjectSource::Sqs => "sqs",
            ObjectSource::EventBridge => "eventbridge",
            ObjectSource::ObjectBatch => "object_batch",
        }
    }
}

/// What one retriable delivery of an event holds: an SQS message, or the whole event for the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Objects(Vec<ObjectRef>),
    /// S3's `s3:TestEvent`, sent when a notification is configured: acknowledged, nothing to do.
    TestEvent,
    /// A record that names no object to detect (a deletion, another event type), with why.
    Ignored(String),
    /// A body that cannot be read as any object event, with why.
    Unreadable(String),
}

/// One delivery of an object event: an SQS message, or the whole event for the other sources; it is
/// retried as one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The SQS message id (what a partial batch response names); `None` for the other sources.
    pub message_id: Option<String>,
    pub content: Content,
}

/// Tells an object event from the payload, or `None`.
pub fn classify(obj: &Map<String, Value>) -> Option<ObjectSource> {
    if let Some(Value::Array(records)) = obj.get("Records") {
        let first = records.first()?.as_object()?;
        if first.get("eventSource").and_then(Value::as_str) == Some("aws:sqs") {
            return Some(ObjectSource::Sqs);
        }
        return first.contains_key("s3").then_some(ObjectSource::S3);
    }
    if obj.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Some(ObjectSource::S3);
    }
    if obj.get("source").and_then(Value::as_str) == Some("aws.s3") && obj.contains_key("detail") {
        return Some(ObjectSource::EventBridge);
    }
    if obj.get("Items").is_some_and(Value::is_array)
        || (obj.contains_key("bucket") && obj.get("keys").is_some_and(Value::is_array))
    {
        return Some(ObjectSource::ObjectBatch);
    }
    None
}

/// Reads an event of a known object source into its deliveries.
pub fn parse(source: ObjectSource, event: Value) -> Vec<Delivery> {
    match source {
        ObjectSource::Sqs => sqs(event),
        ObjectSource::ObjectBatch => vec![Delivery {
            message_id: None,
            content: object_batch(&event),
        }],
        ObjectSource::S3 | ObjectSource::EventBridge => vec![Delivery {
            message_id: None,
            content: notification(&event, 0),
        }],
    }
}

/// The SQS records, one delivery per message; a body is read as any notification shape.
fn sqs(event: Value) -> Vec<Delivery> {
    let records = match event {
        Value::Object(mut obj) => match obj.remove("Records") {
            Some(Value::Array(records)) => records,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    let mut named = 0;
    records
        .into_iter()
        .map(|record| {
            let message_id = record
                .get("messageId")
                .and_then(Value::as_str)
                .map(str::to_string);
            let content = match record.get("body").and_then(Value::as_str) {
                None => Content::Unreadable("an SQS record without a `body`".into()),
                Some(body) => match serde_json::from_str::<Value>(body) {
                    Ok(v) => notification(&v, 0),
                    Err(e) => Content::Unreadable(format!("the message body is not JSON: {e}")),
                },
            };
            let content = match content {
                Content::Objects(list) if named + list.len() > MAX_OBJECTS => {
                    Content::Unreadable(format!(
                        "the batch's earlier messages name {named} objects; at most {MAX_OBJECTS} \
                         in one invocation, so this one is retried"
                    ))
                }
                Content::Objects(list) => {
                    named += list.len();
                    Content::Objects(list)
                }
                other => other,
            };
            Delivery {
                message_id,
                content,
            }
        })
        .collect()
}

/// An S3 notification, an EventBridge S3 event, or an SNS envelope around either (S3 -> SNS -> SQS).
fn notification(v: &Value, depth: u8) -> Content {
    let Some(obj) = v.as_object() else {
        return Content::Unreadable("the notification is not a JSON object".into());
    };
    if obj.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Content::TestEvent;
    }
    if let (Some("Notification"), Some(message), true) = (
        obj.get("Type").and_then(Value::as_str),
        obj.get("Message").and_then(Value::as_str),
        depth == 0,
    ) {
        return match serde_json::from_str::<Value>(message) {
            Ok(inner) => notification(&inner, depth + 1),
            Err(e) => Content::Unreadable(format!("the SNS message is not JSON: {e}")),
        };
    }
    if obj.get("source").and_then(Value::as_str) == Some("aws.s3") {
        return eventbridge(obj);
    }
    match obj.get("Records") {
        Some(Value::Array(records)) => s3_records(records),
        _ => Content::Unreadable(
            "not an S3 event notification (no `Records`), an EventBridge S3 event or an SNS \
             envelope of one"
                .into(),
        ),
    }
}

fn s3_records(records: &[Value]) -> Content {
    if records.len() > MAX_OBJECTS {
        return too_many(records.len(), "records");
    }
    let mut objects = Vec::new();
    let mut ignored = Vec::new();
    for record in records {
        let event_name = record.get("eventName").and_then(Value::as_str);
        if let Some(name) = event_name.filter(|n| !is_creation(n)) {
            ignored.push(name.to_string());
            continue;
        }
        let s3 = record.get("s3");
        let bucket = s3.and_then(|s| text(s, &["bucket", "name"]));
        let key = s3.and_then(|s| text(s, &["object", "key"]));
        let (Some(bucket), Some(key)) = (bucket, key) else {
            return Content::Unreadable(
                "an S3 record without `s3.bucket.name` and `s3.object.key`".into(),
            );
        };
        match notified(
            bucket,
            key,
            s3.and_then(|s| s.get("object")),
            ["versionId", "eTag"],
        ) {
            Ok(object) => objects.push(object),
            Err(unreadable) => return unreadable,
        }
    }
    if objects.is_empty() && !ignored.is_empty() {
        return Content::Ignored(format!("not an object creation: {}", ignored.join(", ")));
    }
    Content::Objects(objects)
}

/// S3 event names of new objects: `ObjectCreated:Put` (notifications, with or without the `s3:`
/// prefix) and EventBridge's `Object Created`.
fn is_creation(name: &str) -> bool {
    let name = name.strip_prefix("s3:").unwrap_or(name);
    name.starts_with("ObjectCreated") || name == "Object Created"
}

fn eventbridge(obj: &Map<String, Value>) -> Content {
    let detail_type = obj.get("detail-type").and_then(Value::as_str).unwrap_or("");
    if !is_creation(detail_type) {
        return Content::Ignored(format!(
            "not an object creation: {}",
            crate::core::error::quote(detail_type)
        ));
    }
    let Some(detail) = obj.get("detail") else {
        return Content::Unreadable("an EventBridge S3 event without `detail`".into());
    };
    let (Some(bucket), Some(key)) = (
        text(detail, &["bucket", "name"]),
        text(detail, &["object", "key"]),
    ) else {
        return Content::Unreadable(
            "an EventBridge S3 event without `detail.bucket.name` and `detail.object.key`".into(),
        );
    };
    match notified(bucket, key, detail.get("object"), ["version-id", "etag"]) {
        Ok(object) => Content::Objects(vec![object]),
        Err(unreadable) => unreadable,
    }
}

/// The object a notification names, its key decoded; `fields` name its version id and ETag (S3's
/// notifications and EventBridge's events spell them differently).
fn notified(
    bucket: &str,
    encoded_key: &str,
    object: Option<&Value>,
    fields: [&str; 2],
) -> Result<ObjectRef, Content> {
    let key = decode_key(encoded_key).ok_or_else(|| {
        Content::Unreadable(format!(
            "the key {} does not decode to UTF-8 text",
            crate::core::error::quote(encoded_key)
        ))
    })?;
    let field = |name: &str| object.and_then(|o| text(o, &[name])).map(str::to_string);
    Ok(ObjectRef {
        bucket: bucket.to_string(),
        key,
        version_id: field(fields[0]),
        etag: field(fields[1]),
        size: object.and_then(|o| size(o.get("size"))),
    })
}

fn too_many(count: usize, what: &str) -> Content {
    Content::Unreadable(format!(
        "{count} {what}; at most {MAX_OBJECTS} in one invocation"
    ))
}

/// `{"Items": [{"Key", "Size", "Etag"}...], "BatchInput": {"bucket"}}` (Distributed Map with an S3
/// `ItemReader` and an `ItemBatcher`), or `{"bucket", "keys": ["a.jpg", ...]}`. An item may name its
/// own `Bucket`. Keys are taken as they are.
fn object_batch(event: &Value) -> Content {
    let batch_bucket = event
        .get("BatchInput")
        .and_then(|b| b.get("bucket").or_else(|| b.get("Bucket")))
        .or_else(|| event.get("bucket"))
        .and_then(Value::as_str);
    let items = event
        .get("Items")
        .or_else(|| event.get("keys"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if items.len() > MAX_OBJECTS {
        return too_many(items.len(), "items");
    }
    let mut objects = Vec::with_capacity(items.len());
    for item in items {
        let (key, own_bucket) = match item {
            Value::String(key) => (Some(key.as_str()), None),
            Value::Object(o) => (
                o.get("Key")
                    .or_else(|| o.get("key"))
                    .and_then(Value::as_str),
                o.get("Bucket")
                    .or_else(|| o.get("bucket"))
                    .and_then(Value::as_str),
            ),
            _ => (None, None),
        };
        let Some(key) = key.filter(|k| !k.is_empty()) else {
            return Content::Unreadable(
                "an item that is neither a key nor an object with `Key`".into(),
            );
        };
        let Some(bucket) = own_bucket.or(batch_bucket) else {
            return Content::Unreadable(
                "no bucket: give `BatchInput.bucket` (Distributed Map's ItemBatcher), `bucket`, or \
                 `Bucket` on each item"
                    .into(),
            );
        };
        let field = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| item.get(*n).and_then(Value::as_str))
                .map(str::to_string)
        };
        objects.push(ObjectRef {
            bucket: bucket.to_string(),
            key: key.to_string(),
            version_id: field(&["VersionId", "versionId"]),
            etag: field(&["Etag", "ETag", "etag"]),
            size: size(item.get("Size").or_else(|| item.get("size"))),
        });
    }
    Content::Objects(objects)
}

/// The text at a path of object fields.
fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(v, |v, name| v.get(*name))?
        .as_str()
        .filter(|s| !s.is_empty())
}

/// A size written as a number or as text.
fn size(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A notification's key as stored: `+` is a space, `%XX` a byte; `None` unless the bytes are UTF-8.
pub fn decode_key(encoded: &str) -> Option<String> {
    let spaced = encoded.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|k| k.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s3_event(key: &str) -> Value {
        json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "photos"}, "object": {"key": key, "size": 1234, "eTag": "abc"}}}]})
    }

    fn objects(deliveries: Vec<Delivery>) -> Vec<ObjectRef> {
        match deliveries.into_iter().next().unwrap().content {
            Content::Objects(o) => o,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn keys_decode_as_s3_encodes_them() {
        assert_eq!(decode_key("red+flower.jpg").unwrap(), "red flower.jpg");
        assert_eq!(decode_key("a%2Bb.jpg").unwrap(), "a+b.jpg");
        assert_eq!(
            decode_key("caf%C3%A9/%E5%86%99%E7%9C%9F.jpg").unwrap(),
            "café/写真.jpg"
        );
        assert_eq!(
            decode_key("100%.jpg").unwrap(),
            "100%.jpg",
            "a stray % stays"
        );
        assert_eq!(decode_key("%FF.jpg"), None, "not UTF-8");
    }

    #[test]
    fn an_s3_notification_without_the_optional_fields_still_names_its_object() {
        // What S3-compatible servers send: no userIdentity, requestParameters or responseElements.
        let event = json!({"Records": [{"eventName": "s3:ObjectCreated:Put",
            "s3": {"bucket": {"name": "photos"}, "object": {"key": "my+cat%21.jpg"}}}]});
        let obj = event.as_object().unwrap();
        assert_eq!(classify(obj), Some(ObjectSource::S3));
        assert_eq!(
            objects(parse(ObjectSource::S3, event)),
            vec![ObjectRef {
                bucket: "photos".into(),
                key: "my cat!.jpg".into(),
                version_id: None,
                etag: None,
                size: None,
            }]
        );
        let full = objects(parse(ObjectSource::S3, s3_event("a.jpg")));
        assert_eq!(full[0].size, Some(1234));
        assert_eq!(full[0].etag.as_deref(), Some("abc"));
    }

    #[test]
    fn sqs_bodies_are_notifications_test_events_sns_envelopes_or_unreadable() {
        let sns = json!({"Type": "Notification", "Message": s3_event("via+sns.jpg").to_string()});
        let eventbridge = json!({"source": "aws.s3", "detail-type": "Object Created",
            "detail": {"bucket": {"name": "photos"}, "object": {"key": "eb.jpg", "size": 5}}});
        let event = json!({"Records": [
            {"messageId": "m1", "eventSource": "aws:sqs", "body": s3_event("a+b.jpg").to_string()},
            {"messageId": "m2", "eventSource": "aws:sqs", "body": json!({"Service": "Amazon S3",
                "Event": "s3:TestEvent", "Bucket": "photos"}).to_string()},
            {"messageId": "m3", "eventSource": "aws:sqs", "body": "not json"},
            {"messageId": "m4", "eventSource": "aws:sqs", "body": sns.to_string()},
            {"messageId": "m5", "eventSource": "aws:sqs", "body": eventbridge.to_string()},
            {"messageId": "m6", "eventSource": "aws:sqs", "body": json!({"Records": [
                {"eventName": "ObjectRemoved:Delete", "s3": {"bucket": {"name": "p"},
                 "object": {"key": "gone.jpg"}}}]}).to_string()},
        ]});
        assert_eq!(
            classify(event.as_object().unwrap()),
            Some(ObjectSource::Sqs)
        );
        let deliveries = parse(ObjectSource::Sqs, event);
        let ids: Vec<_> = deliveries
            .iter()
            .map(|u| u.message_id.clone().unwrap())
            .collect();
        assert_eq!(ids, ["m1", "m2", "m3", "m4", "m5", "m6"]);
        let key = |i: usize| match &deliveries[i].content {
            Content::Objects(o) => o[0].key.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(key(0), "a b.jpg");
        assert_eq!(deliveries[1].content, Content::TestEvent);
        assert!(
            matches!(&deliveries[2].content, Content::Unreadable(why) if why.contains("not JSON"))
        );
        assert_eq!(key(3), "via sns.jpg");
        assert_eq!(key(4), "eb.jpg");
        assert!(
            matches!(&deliveries[5].content, Content::Ignored(why) if why.contains("ObjectRemoved"))
        );
    }

    #[test]
    fn eventbridge_object_created() {
        let event = json!({"version": "0", "source": "aws.s3", "detail-type": "Object Created",
            "detail": {"bucket": {"name": "photos"},
                       "object": {"key": "dir/x+y.jpg", "size": 10, "etag": "e", "version-id": "v1"}}});
        assert_eq!(
            classify(event.as_object().unwrap()),
            Some(ObjectSource::EventBridge)
        );
        let o = objects(parse(ObjectSource::EventBridge, event));
        assert_eq!(o[0].key, "dir/x y.jpg");
        assert_eq!(o[0].version_id.as_deref(), Some("v1"));
        let deleted = json!({"source": "aws.s3", "detail-type": "Object Deleted",
            "detail": {"bucket": {"name": "photos"}, "object": {"key": "a.jpg"}}});
        assert!(matches!(
            &parse(ObjectSource::EventBridge, deleted)[0].content,
            Content::Ignored(_)
        ));
    }

    #[test]
    fn more_objects_than_an_invocation_may_name_are_refused_whole_or_left_in_the_queue() {
        let record = |i: usize| {
            json!({"eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": "photos"}, "object": {"key": format!("{i}.jpg")}}})
        };
        let unreadable = |deliveries: &[Delivery]| match &deliveries[0].content {
            Content::Unreadable(why) => why.clone(),
            other => panic!("{other:?}"),
        };
        let records: Vec<Value> = (0..=MAX_OBJECTS).map(record).collect();
        let over = parse(ObjectSource::S3, json!({"Records": records}));
        assert_eq!(
            unreadable(&over),
            "10001 records; at most 10000 in one invocation"
        );
        let at = parse(
            ObjectSource::S3,
            json!({"Records": (0..MAX_OBJECTS).map(record).collect::<Vec<_>>()}),
        );
        assert_eq!(objects(at).len(), MAX_OBJECTS);
        let keys: Vec<String> = (0..=MAX_OBJECTS).map(|i| i.to_string()).collect();
        let batch = parse(
            ObjectSource::ObjectBatch,
            json!({"bucket": "b", "keys": keys}),
        );
        assert_eq!(
            unreadable(&batch),
            "10001 items; at most 10000 in one invocation"
        );
        // SQS: messages past the bound go back to the queue, the ones before it are processed.
        let message = |id: &str, n: usize| {
            let records: Vec<Value> = (0..n).map(record).collect();
            json!({"messageId": id, "body": json!({"Records": records}).to_string()})
        };
        let deliveries = parse(
            ObjectSource::Sqs,
            json!({"Records": [message("m1", 6000), message("m2", 5000), message("m3", 4000)]}),
        );
        assert!(matches!(&deliveries[0].content, Content::Objects(o) if o.len() == 6000));
        assert!(
            matches!(&deliveries[1].content, Content::Unreadable(why) if why.contains("name 6000 objects"))
        );
        assert!(matches!(&deliveries[2].content, Content::Objects(o) if o.len() == 4000));
    }

    #[test]
    fn object_batches_from_distributed_map_or_by_hand_keep_keys_as_they_are() {
        let map = json!({"BatchInput": {"bucket": "photos"},
            "Items": [{"Key": "a+b.jpg", "Size": 3, "Etag": "\"e\""}, {"Key": "c d.png"}]});
        assert_eq!(
            classify(map.as_object().unwrap()),
            Some(ObjectSource::ObjectBatch)
        );
        let o = objects(parse(ObjectSource::ObjectBatch, map));
        assert_eq!(
            o.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
            ["a+b.jpg", "c d.png"]
        );
        assert_eq!(o[0].size, Some(3));
        let by_hand = json!({"bucket": "photos", "keys": ["x.jpg", "y.jpg"]});
        assert_eq!(objects(parse(ObjectSource::ObjectBatch, by_hand)).len(), 2);
        let no_bucket = json!({"Items": [{"Key": "x.jpg"}]});
        assert!(matches!(
            &parse(ObjectSource::ObjectBatch, no_bucket)[0].content,
            Content::Unreadable(why) if why.contains("no bucket")
        ));
    }

    #[test]
    fn other_payloads_are_not_object_events() {
        for v in [
            json!({"image": "abc"}),
            json!({"Records": []}),
            json!({"Records": [{"eventSource": "aws:sns"}]}),
            json!({"source": "aws.ec2", "detail": {}}),
            json!({"bucket": "b"}),
        ] {
            assert_eq!(classify(v.as_object().unwrap()), None, "{v}");
        }
    }
}
