//! Image decoding with limits, every format: arbitrary bytes give an image within the limits or a coded
//! error, never a panic or an allocation past the cap, and never take long: the decoders' work is
//! bounded by the pixel budget and the structure checks (a JPEG's scans, a GIF's or an animation's
//! first frame), so no input of the fuzzer's 64 KB takes a second.
#![no_main]

#[path = "common.rs"]
mod common;

use std::time::{Duration, Instant};

use object_detector::core::image_decode::{decode, decode_at_least};

/// Far above what any input within the target's limits takes (a few milliseconds); what a
/// decompression or scan bomb would take without its bound.
const BOUND: Duration = Duration::from_secs(1);

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let limits = common::limits();
    let start = Instant::now();
    if let Ok(d) = decode(data, &limits) {
        assert!(u64::from(d.width) * u64::from(d.height) <= limits.max_pixels);
        assert_eq!((d.rgb.width(), d.rgb.height()), (d.width, d.height));
    }
    // As detect decodes large JPEGs: at a reduced DCT scale that still covers the model's input.
    if let Ok(d) = decode_at_least(data, &limits, |w, h| {
        (w.div_ceil(8).max(1), h.div_ceil(8).max(1))
    }) {
        assert!(u64::from(d.width) * u64::from(d.height) <= limits.max_pixels);
    }
    let took = start.elapsed();
    assert!(
        took < BOUND,
        "decoding {} bytes took {took:?}",
        data.len()
    );
});
