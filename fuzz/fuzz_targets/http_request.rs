//! An HTTP API request with arbitrary bytes where a client controls them: content type, query string,
//! origin and body, the body raw text, base64 of the bytes, or bytes claimed to be base64, sent to
//! `/detect` or to TF Serving's predict route for the embedded model. Reaches body extraction (raw,
//! base64 variants, JSON, multipart, TF Serving's rows and columns) and the options of the query, JSON
//! and forms without the fuzzer having to find the event's shape first.
#![no_main]

#[path = "common.rs"]
mod common;

use base64::Engine;
use serde_json::json;

const CONTENT_TYPES: [&str; 7] = [
    "image/jpeg",
    "application/json",
    "multipart/form-data; boundary=X",
    "application/octet-stream",
    "text/plain",
    "application/x-www-form-urlencoded",
    "",
];

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    // Fields separated by 0xFF: query, then a content type (when mode asks for one), then the body.
    let mut parts = rest.splitn(3, |&b| b == 0xFF);
    let query = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let custom = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let body = parts.next().unwrap_or_default();
    let content_type = match usize::from(mode >> 4) {
        i if i < CONTENT_TYPES.len() => CONTENT_TYPES[i].to_string(),
        _ => custom,
    };
    let (body, base64) = match mode & 0x3 {
        0 => (String::from_utf8_lossy(body).into_owned(), false),
        1 => (base64::engine::general_purpose::STANDARD.encode(body), true),
        _ => (String::from_utf8_lossy(body).into_owned(), true),
    };
    let method = if mode & 0x4 == 0 { "POST" } else { "OPTIONS" };
    let path = if mode & 0x8 == 0 {
        "/detect".to_string()
    } else {
        format!("/v1/models/{}:predict", common::detector().manifest().name)
    };
    let event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"content-type": content_type, "origin": "https://a.example"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.example",
            "domainPrefix": "api",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "fuzz"},
            "requestId": "fuzz",
            "routeKey": "$default",
            "stage": "$default",
            "time": "24/Nov/2026:00:00:00 +0000",
            "timeEpoch": 0
        },
        "body": body,
        "isBase64Encoded": base64
    });
    common::handle(event);
});
