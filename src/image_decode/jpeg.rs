//! JPEG: the walk over a file's markers before any decoder runs, and the DCT-scaled decode of large
//! photos.

use std::io::Cursor;

use image::{DynamicImage, RgbImage};

/// DCT-scaled JPEG decode to the smallest of 1/8, 1/4, 1/2 that covers `need`; `None` (use the full
/// decoder, which reports errors properly) for anything unusual: CMYK, 16-bit, a decoder error.
pub(super) fn scaled(bytes: &[u8], need_w: u32, need_h: u32) -> Option<DynamicImage> {
    let mut d = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    let (w, h) = d
        .scale(u16::try_from(need_w).ok()?, u16::try_from(need_h).ok()?)
        .ok()?;
    let (w, h) = (u32::from(w), u32::from(h));
    if w < need_w || h < need_h {
        return None;
    }
    let format = d.info()?.pixel_format;
    let pixels = d.decode().ok()?;
    match format {
        jpeg_decoder::PixelFormat::RGB24 => {
            RgbImage::from_raw(w, h, pixels).map(DynamicImage::ImageRgb8)
        }
        jpeg_decoder::PixelFormat::L8 => {
            image::GrayImage::from_raw(w, h, pixels).map(DynamicImage::ImageLuma8)
        }
        _ => None,
    }
}

/// Walks a JPEG's segments (skipping each by its length, so embedded thumbnails do not count) and its
/// entropy-coded scans, and reports whether an end-of-image marker follows. Data after the marker (phone
/// "motion photos" append a video) is allowed.
pub(super) fn has_end(b: &[u8]) -> bool {
    let n = b.len();
    let mut i = 2; // after SOI
    while i + 1 < n {
        if b[i] != 0xFF {
            // Stray bytes between segments: decoders skip to the next marker, so do the same.
            i += 1;
            continue;
        }
        match b[i + 1] {
            0xFF => i += 1, // fill byte
            0xD9 => return true,
            0x01 | 0xD0..=0xD7 => i += 2, // markers without a length
            marker => {
                if i + 3 >= n {
                    return false;
                }
                let len = usize::from(u16::from_be_bytes([b[i + 2], b[i + 3]]));
                if len < 2 {
                    return false;
                }
                i += 2 + len;
                if marker == 0xDA {
                    // Entropy-coded data runs to the next marker that is not a stuffed 0xFF00 or a restart.
                    while i + 1 < n
                        && !(b[i] == 0xFF && b[i + 1] != 0x00 && !(0xD0..=0xD7).contains(&b[i + 1]))
                    {
                        i += 1;
                    }
                }
            }
        }
    }
    false
}
