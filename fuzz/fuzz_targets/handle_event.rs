//! The whole function from an arbitrary JSON event: classification, every event shape's parsing, bodies,
//! options, decoding, the answer in the event's shape, the log line and metric records.
#![no_main]

#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(event) = serde_json::from_slice::<serde_json::Value>(data) {
        common::handle(event);
    }
});
