//! Request options from arbitrary names and values (as the query, JSON bodies and forms give them), then
//! resolved against the model: accepted, or an `invalid_parameter` error, never a panic.
#![no_main]

#[path = "common.rs"]
mod common;

use object_detector::{DetectOptions, ErrorCode};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut options = DetectOptions::default();
    // `name=value` pairs separated by newlines; names mostly the real ones, thanks to the dictionary.
    for pair in text.split('\n') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if let Err(e) = options.set(name, value) {
            assert_eq!(e.code(), ErrorCode::InvalidParameter, "{e}");
        }
    }
    if let Err(e) = options.resolve(common::detector().manifest()) {
        assert_eq!(e.code(), ErrorCode::InvalidParameter, "{e}");
    }
});
