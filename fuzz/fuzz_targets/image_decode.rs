//! Image decoding with limits, every format: arbitrary bytes give an image within the limits or a coded
//! error, never a panic or an allocation past the cap.
#![no_main]

#[path = "common.rs"]
mod common;

use object_detector::image_decode::{decode, decode_at_least};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let limits = common::limits();
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
});
