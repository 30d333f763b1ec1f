//! Image bytes to an upright 8-bit RGB raster, with limits enforced from the header before any pixel is
//! decoded.
//!
//! Owns format sniffing (the bytes decide, never a file name or content type), the pixel budget and
//! decode-memory cap, EXIF orientation, and flattening of alpha, 16-bit and greyscale sources. What a
//! file's structure asks of a decoder beyond its pixels is read before any decoder runs, one file per
//! format: `jpeg` (coding variant, scans), `gif` (the first frame), `png` (ICC profiles the decoder
//! never sees), `webp` and `vp8l` (an animation's buffers, lossless prefix-code tables).

use std::io::{BufRead, Cursor, Seek};

use image::metadata::Orientation;
use image::{
    ColorType, DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, RgbImage,
};

use crate::core::error::{Error, Result};

mod gif;
mod jpeg;
mod png;
mod vp8l;
mod webp;

/// Decoding limits. Both are checked from the image header, so an oversized image costs no decode time
/// and no memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted `width * height` of the stored image.
    pub max_pixels: u64,
    /// Largest buffer the decoder may allocate, in bytes (a 16-bit RGBA image needs 8 bytes per pixel).
    pub max_alloc_bytes: u64,
}

impl Default for DecodeLimits {
    /// 40 MP covers every current phone camera (a 48 MP sensor stores 12 MP by default); 512 MiB lets
    /// such an image decode at 16 bits per channel with alpha.
    fn default() -> Self {
        DecodeLimits {
            max_pixels: 40_000_000,
            max_alloc_bytes: 512 * 1024 * 1024,
        }
    }
}

impl DecodeLimits {
    /// Memory the function needs besides decoding, in MiB: the model's plan and runtime (55 to 66 MiB
    /// resident, measured) and a 6 MB event with its decoded body.
    pub const RESERVED_MIB: u64 = 80;
    /// Peak memory per pixel of the costliest accepted image, a 16-bit RGBA PNG: 8 bytes decoded,
    /// 3 more converted to RGB, plus the allocator's slack (12.0 measured: peak RSS of `detect` on such
    /// PNGs of 4 and 16 MP, 97.9 and 238.6 MiB; 13 kept).
    pub const WORST_BYTES_PER_PIXEL: u64 = 13;

    /// The limits under which every accepted image decodes within a Lambda function's memory size
    /// (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, in MiB): what is left after [`Self::RESERVED_MIB`] holds
    /// the buffer, and that many [`Self::WORST_BYTES_PER_PIXEL`]; never more than the defaults.
    /// 128 MiB: 3.9 MP; 256 MiB: 14.2 MP; 512 MiB: 34.8 MP; 592 MiB and up: the defaults.
    pub fn for_memory(memory_mib: u64) -> DecodeLimits {
        let defaults = DecodeLimits::default();
        let left = memory_mib.saturating_sub(Self::RESERVED_MIB).max(1) << 20;
        DecodeLimits {
            max_pixels: (left / Self::WORST_BYTES_PER_PIXEL).min(defaults.max_pixels),
            max_alloc_bytes: left.min(defaults.max_alloc_bytes),
        }
    }
}

/// The formats this service decodes, by the names clients know them by.
pub const SUPPORTED_FORMATS: &[&str] = &["JPEG", "PNG", "WebP", "GIF", "BMP"];

/// A decoded image in the upright frame a viewer shows.
#[derive(Debug)]
pub struct Decoded {
    /// The pixels; smaller than the image when a large JPEG was decoded at a reduced scale.
    pub rgb: RgbImage,
    pub format: &'static str,
    /// Size of the whole upright image: the frame detections are reported in.
    pub width: u32,
    pub height: u32,
}

/// Detects the format from the bytes, or explains why it is not one this service decodes.
pub fn sniff(bytes: &[u8]) -> Result<(ImageFormat, &'static str)> {
    if bytes.is_empty() {
        return Err(Error::EmptyImage);
    }
    if let Some(name) = iso_bmff_image_brand(bytes) {
        // HEIC/AVIF come from phones and browsers; say which so the caller can convert.
        return Err(Error::UnsupportedFormat {
            format: name.to_string(),
        });
    }
    match image::guess_format(bytes) {
        Ok(ImageFormat::Jpeg) => Ok((ImageFormat::Jpeg, "JPEG")),
        Ok(ImageFormat::Png) => Ok((ImageFormat::Png, "PNG")),
        Ok(ImageFormat::WebP) => Ok((ImageFormat::WebP, "WebP")),
        Ok(ImageFormat::Gif) => Ok((ImageFormat::Gif, "GIF")),
        Ok(ImageFormat::Bmp) => Ok((ImageFormat::Bmp, "BMP")),
        Ok(other) => Err(Error::UnsupportedFormat {
            format: format!("{other:?}").to_uppercase(),
        }),
        Err(_) => Err(Error::NotAnImage),
    }
}

/// HEIF-family files are ISO-BMFF boxes: `....ftyp` followed by a brand.
fn iso_bmff_image_brand(bytes: &[u8]) -> Option<&'static str> {
    if bytes.len() < 12 || &bytes[4..8] != b"ftyp" {
        return None;
    }
    match &bytes[8..12] {
        b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" => Some("HEIC"),
        b"mif1" | b"msf1" => Some("HEIF"),
        b"avif" | b"avis" => Some("AVIF"),
        _ => None,
    }
}

/// Decodes `bytes` into an upright RGB image within `limits`, at full size.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Decoded> {
    decode_at_least(bytes, limits, |w, h| (w, h))
}

/// Like [`decode`], but a JPEG at least twice as large as `needed(width, height)` (upright sizes) on both
/// axes is decoded at 1/2, 1/4 or 1/8 scale in the DCT domain, never below what `needed` asks for. A 12 MP
/// photo (4000x3000) bound for PicoDet's 416x416 input decodes at 1/4 (1/8 would leave 375 rows): a
/// fraction of the time and memory.
/// `needed` is called once, for every format, as soon as the header has given the size (and it is
/// within `limits`), before the pixels are allocated.
///
/// Before any decoder runs, the file's structure is read for what it would cost: a JPEG's coding
/// variant and the work its scans ask for (`jpeg::walk`), a GIF's or an animated WebP's first frame
/// (the buffers it takes besides the image's), a lossless WebP's prefix-code groups, and a PNG's ICC
/// profiles, which the decoder never sees.
pub fn decode_at_least(
    bytes: &[u8],
    limits: &DecodeLimits,
    needed: impl Fn(u32, u32) -> (u32, u32),
) -> Result<Decoded> {
    decode_at_least_noting(bytes, limits, needed, |_| {})
}

/// [`decode_at_least`], telling `note` the bytes of the pixel buffers the chosen decode allocates (the
/// reduced scale's, or the full size's), before it does: a caller that returns large buffers to the
/// system after a decode knows when there were some, a failed decode included.
pub fn decode_at_least_noting(
    bytes: &[u8],
    limits: &DecodeLimits,
    needed: impl Fn(u32, u32) -> (u32, u32),
    note: impl Fn(u64),
) -> Result<Decoded> {
    let (format, name) = sniff(bytes)?;
    if format == ImageFormat::Jpeg {
        let walk = jpeg::walk(bytes)?;
        if !walk.complete {
            // The JPEG decoder fills a cut-off scan with grey and reports success; a half-grey photo
            // would give plausible-looking but wrong detections, so refuse it.
            return Err(Error::InvalidImage {
                format: name,
                detail: "the data ends before the image does (truncated file or upload?)".into(),
            });
        }
        walk.check_work()?;
    }
    let source = Source {
        bytes,
        format,
        name,
    };
    match format {
        ImageFormat::Png => match png::without_icc_profiles(bytes) {
            Some(stripped) => source.decode(stripped, limits, needed, note),
            None => source.decode(Cursor::new(bytes), limits, needed, note),
        },
        _ => source.decode(Cursor::new(bytes), limits, needed, note),
    }
}

/// The bytes being decoded and the format they were sniffed as.
struct Source<'a> {
    bytes: &'a [u8],
    format: ImageFormat,
    name: &'static str,
}

impl Source<'_> {
    fn invalid(&self, e: ImageError) -> Error {
        match e {
            ImageError::Limits(l) => Error::ImageTooLarge {
                detail: format!(
                    "the {} image needs more memory to decode than allowed ({l})",
                    self.name
                ),
            },
            other => Error::InvalidImage {
                format: self.name,
                detail: other.to_string(),
            },
        }
    }

    /// Decodes what `reader` gives (the bytes, or a PNG without its ICC profiles).
    fn decode<R: BufRead + Seek>(
        &self,
        reader: R,
        limits: &DecodeLimits,
        needed: impl Fn(u32, u32) -> (u32, u32),
        note: impl Fn(u64),
    ) -> Result<Decoded> {
        let name = self.name;
        let mut reader = ImageReader::with_format(reader, self.format);
        let mut image_limits = image::Limits::default();
        image_limits.max_alloc = Some(limits.max_alloc_bytes);
        reader.limits(image_limits);
        let mut decoder = reader.into_decoder().map_err(|e| self.invalid(e))?;

        let (width, height) = decoder.dimensions();
        let full_buffers = self.check_buffers(&decoder, limits)?;
        // A missing or unreadable EXIF block means "as stored", which is what viewers do too.
        let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
        let swaps = matches!(
            orientation,
            Orientation::Rotate90
                | Orientation::Rotate270
                | Orientation::Rotate90FlipH
                | Orientation::Rotate270FlipH
        );
        let (up_w, up_h) = if swaps {
            (height, width)
        } else {
            (width, height)
        };
        let (need_w, need_h) = needed(up_w, up_h);
        if self.format == ImageFormat::Jpeg {
            let (need_w, need_h) = if swaps {
                (need_h, need_w)
            } else {
                (need_w, need_h)
            };
            if let Some((w, h)) = jpeg::scale_for(width, height, need_w, need_h) {
                note(3 * u64::from(w) * u64::from(h));
                if let Some(mut image) = jpeg::scaled(self.bytes, (w, h)) {
                    image.apply_orientation(orientation);
                    return Ok(Decoded {
                        rgb: into_rgb8(image),
                        format: name,
                        width: up_w,
                        height: up_h,
                    });
                }
            }
        }
        note(full_buffers);
        let mut image = DynamicImage::from_decoder(decoder).map_err(|e| self.invalid(e))?;
        image.apply_orientation(orientation);
        Ok(Decoded {
            rgb: into_rgb8(image),
            format: name,
            width: up_w,
            height: up_h,
        })
    }

    /// Refuses an image that is empty, over the pixel budget, or whose buffers (the decoder's output,
    /// the frame buffers of a GIF or an animation, prefix-code tables, the 8-bit copy) would be over the
    /// decode-memory cap together, and returns their bytes. Codecs differ in how they apply
    /// `max_alloc`; every buffer's size is known from the headers, so the sum is checked here.
    fn check_buffers(&self, decoder: &impl ImageDecoder, limits: &DecodeLimits) -> Result<u64> {
        let (name, (width, height)) = (self.name, decoder.dimensions());
        if width == 0 || height == 0 {
            return Err(Error::InvalidImage {
                format: name,
                detail: format!("it is {width}x{height} pixels"),
            });
        }
        within_budget(width, height, "image", limits)?;
        let side = self.side_buffer_bytes(width, height, limits)?;
        let pixels = u64::from(width) * u64::from(height);
        let copy = if decoder.color_type() == ColorType::Rgb8 {
            0
        } else {
            4 * pixels
        };
        let needs = decoder.total_bytes() + side + copy;
        if needs > limits.max_alloc_bytes {
            return Err(Error::ImageTooLarge {
                detail: format!(
                    "decoding the {width}x{height} {name} image needs {} MB; the limit is {} MB",
                    needs.div_ceil(1 << 20),
                    limits.max_alloc_bytes >> 20
                ),
            });
        }
        Ok(needs)
    }

    /// Bytes the decoder allocates besides its output for a `width` x `height` image: a GIF's first
    /// frame when it does not fill the screen's rows (checked against the pixel budget like the
    /// screen), an animated WebP's canvas and first frame, a lossless WebP's prefix-code tables (whose
    /// number is bounded: each costs time too).
    fn side_buffer_bytes(&self, width: u32, height: u32, limits: &DecodeLimits) -> Result<u64> {
        match self.format {
            ImageFormat::Gif => match gif::first_frame(self.bytes) {
                Some(frame) if !frame.fills_screen_rows(width, height) => {
                    within_budget(frame.width, frame.height, "GIF's first frame", limits)?;
                    Ok(4 * frame.pixels())
                }
                _ => Ok(0),
            },
            ImageFormat::WebP => {
                let tables = webp::lossless_tables(self.bytes);
                if tables.groups > vp8l::MAX_GROUPS {
                    return Err(Error::ImageTooComplex {
                        detail: format!(
                            "the WebP image's lossless data uses {} groups of prefix codes; the limit is {}",
                            tables.groups,
                            vp8l::MAX_GROUPS
                        ),
                    });
                }
                let animation = webp::animated_first_frame(self.bytes).map_or(0, |(w, h)| {
                    4 * (u64::from(width) * u64::from(height)) + 4 * u64::from(w) * u64::from(h)
                });
                Ok(animation + tables.bytes)
            }
            _ => Ok(0),
        }
    }
}

/// Refuses `width` x `height` pixels of `what` over the pixel budget.
fn within_budget(width: u32, height: u32, what: &str, limits: &DecodeLimits) -> Result<()> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(Error::ImageTooLarge {
            detail: format!(
                "the {what} is {width}x{height} ({:.1} MP); the limit is {:.1} MP",
                pixels as f64 / 1e6,
                limits.max_pixels as f64 / 1e6
            ),
        });
    }
    Ok(())
}

/// 8-bit RGB, with any alpha composited over white: transparent areas look as a viewer on a white page
/// shows them, instead of whatever colour the encoder left under alpha 0.
fn into_rgb8(image: DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return match image {
            DynamicImage::ImageRgb8(rgb) => rgb,
            other => other.to_rgb8(),
        };
    }
    let rgba = image.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = Vec::with_capacity(w as usize * h as usize * 3);
    for px in rgba.pixels() {
        let [r, g, b, a] = px.0;
        let a = u32::from(a);
        for c in [r, g, b] {
            // Round-to-nearest of c*a/255 + 255*(255-a)/255.
            out.push(((u32::from(c) * a + 255 * (255 - a) + 127) / 255) as u8);
        }
    }
    RgbImage::from_raw(w, h, out).expect("buffer length is w*h*3 by construction")
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgba, RgbaImage};

    fn png(img: &DynamicImage) -> Vec<u8> {
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn empty_and_non_image_bytes_have_their_own_codes() {
        let limits = DecodeLimits::default();
        assert_eq!(decode(b"", &limits).unwrap_err().code(), "empty_image");
        assert_eq!(
            decode(b"{\"hello\": 1}", &limits).unwrap_err().code(),
            "not_an_image"
        );
        assert_eq!(
            decode(&[0u8; 64], &limits).unwrap_err().code(),
            "not_an_image"
        );
    }

    #[test]
    fn known_but_unsupported_formats_are_named() {
        let limits = DecodeLimits::default();
        let tiff = b"II*\0\x08\0\0\0\0\0\0\0";
        let err = decode(tiff, &limits).unwrap_err();
        assert_eq!(err.code(), "unsupported_format");
        assert!(err.to_string().contains("TIFF"), "{err}");
        let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic";
        let err = decode(heic, &limits).unwrap_err();
        assert_eq!(err.code(), "unsupported_format");
        assert!(err.to_string().contains("HEIC"), "{err}");
    }

    #[test]
    fn pixel_budget_is_enforced_from_the_header() {
        // A 20000x20000 PNG header with no pixel data: rejected by size, not by the missing data.
        let img = DynamicImage::new_rgb8(4, 4);
        let mut bytes = png(&img);
        // IHDR: width and height at bytes 16..24, its CRC (over type and data) at 29..33.
        bytes[16..20].copy_from_slice(&20_000u32.to_be_bytes());
        bytes[20..24].copy_from_slice(&20_000u32.to_be_bytes());
        let crc = crc32(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        let err = decode(&bytes, &DecodeLimits::default()).unwrap_err();
        assert_eq!(err.code(), "image_too_large", "{err}");

        let ok = png(&DynamicImage::new_rgb8(100, 100));
        let tight = DecodeLimits {
            max_pixels: 9_999,
            ..DecodeLimits::default()
        };
        let err = decode(&ok, &tight).unwrap_err();
        assert_eq!(err.code(), "image_too_large");
        assert!(err.to_string().contains("100x100"), "{err}");
        let exact = DecodeLimits {
            max_pixels: 10_000,
            ..DecodeLimits::default()
        };
        assert!(decode(&ok, &exact).is_ok());
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn allocation_cap_is_enforced() {
        let bytes = png(&DynamicImage::new_rgba16(200, 200)); // 320 000 bytes decoded
        let tight = DecodeLimits {
            max_alloc_bytes: 100_000,
            ..DecodeLimits::default()
        };
        assert_eq!(
            decode(&bytes, &tight).unwrap_err().code(),
            "image_too_large"
        );
        assert!(decode(&bytes, &DecodeLimits::default()).is_ok());
    }

    #[test]
    fn jpeg_end_marker_walk() {
        let mut img = RgbImage::new(40, 30);
        for (x, y, p) in img.enumerate_pixels_mut() {
            *p = image::Rgb([(x * 6) as u8, (y * 8) as u8, 99]);
        }
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
            .encode_image(&img)
            .unwrap();
        assert!(jpeg::walk(&jpeg).unwrap().complete);
        // Appended data after EOI (motion photos, padding) is fine.
        let mut appended = jpeg.clone();
        appended.extend_from_slice(b"\0\0\0\x18ftypmp42 trailing video");
        assert!(jpeg::walk(&appended).unwrap().complete);
        // Any cut is not, including one that leaves an FF D9 pair inside a segment.
        for cut in [3, 20, jpeg.len() / 2, jpeg.len() - 2, jpeg.len() - 1] {
            assert!(!jpeg::walk(&jpeg[..cut]).unwrap().complete, "cut at {cut}");
            let err = decode(&jpeg[..cut], &DecodeLimits::default()).unwrap_err();
            assert_eq!(err.code(), "invalid_image", "cut at {cut}: {err}");
        }
        // An APP segment holding a complete thumbnail (with its own EOI) does not end the file.
        let mut with_thumb = vec![0xFF, 0xD8, 0xFF, 0xE1];
        let payload = [b"Exif\0\0".as_slice(), &jpeg].concat();
        with_thumb.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        with_thumb.extend_from_slice(&payload);
        with_thumb.extend_from_slice(&jpeg[2..jpeg.len() / 2]);
        assert!(!jpeg::walk(&with_thumb).unwrap().complete);
    }

    #[test]
    fn truncated_images_are_invalid_not_panics() {
        let mut img = RgbaImage::new(64, 48);
        for (x, y, p) in img.enumerate_pixels_mut() {
            *p = Rgba([(x * 4) as u8, (y * 5) as u8, 128, 255]);
        }
        let bytes = png(&DynamicImage::ImageRgba8(img));
        for cut in [8, 30, bytes.len() / 2, bytes.len() - 13] {
            let err = decode(&bytes[..cut], &DecodeLimits::default()).unwrap_err();
            assert_eq!(err.code(), "invalid_image", "cut at {cut}: {err}");
        }
    }

    #[test]
    fn alpha_is_composited_over_white_and_grey_and_16_bit_become_rgb8() {
        let mut img = RgbaImage::new(2, 1);
        img.put_pixel(0, 0, Rgba([0, 0, 0, 0])); // fully transparent black -> white
        img.put_pixel(1, 0, Rgba([200, 100, 0, 255])); // opaque stays as is
        let out = decode(
            &png(&DynamicImage::ImageRgba8(img)),
            &DecodeLimits::default(),
        )
        .unwrap();
        assert_eq!(out.rgb.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(out.rgb.get_pixel(1, 0).0, [200, 100, 0]);

        let grey = DynamicImage::ImageLuma8(image::GrayImage::from_pixel(3, 2, image::Luma([77])));
        let out = decode(&png(&grey), &DecodeLimits::default()).unwrap();
        assert_eq!(out.rgb.dimensions(), (3, 2));
        assert_eq!(out.rgb.get_pixel(2, 1).0, [77, 77, 77]);

        let deep = image::ImageBuffer::<image::Rgb<u16>, _>::from_pixel(
            2,
            2,
            image::Rgb([65535, 0, 32896]),
        );
        let out = decode(
            &png(&DynamicImage::ImageRgb16(deep)),
            &DecodeLimits::default(),
        )
        .unwrap();
        assert_eq!(out.rgb.get_pixel(0, 0).0, [255, 0, 128]);
    }
}

#[cfg(test)]
mod orientation_tests {
    use super::*;
    use image::codecs::jpeg::JpegEncoder;
    use image::Rgb;

    const R: [u8; 3] = [255, 0, 0];
    const G: [u8; 3] = [0, 255, 0];
    const B: [u8; 3] = [0, 0, 255];
    const W: [u8; 3] = [255, 255, 255];

    /// A 32x16 JPEG with one colour per quadrant (TL red, TR green, BL blue, BR white) and an EXIF
    /// orientation tag.
    fn jpeg_with_orientation(orientation: u16) -> Vec<u8> {
        let img = RgbImage::from_fn(32, 16, |x, y| {
            Rgb(match (x < 16, y < 8) {
                (true, true) => R,
                (false, true) => G,
                (true, false) => B,
                (false, false) => W,
            })
        });
        let mut plain = Vec::new();
        JpegEncoder::new_with_quality(&mut plain, 100)
            .encode_image(&img)
            .unwrap();
        let mut tiff = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01".to_vec();
        tiff.extend_from_slice(&orientation.to_be_bytes());
        tiff.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
        out.extend_from_slice(&((tiff.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&tiff);
        out.extend_from_slice(&plain[2..]);
        out
    }

    fn corners(img: &RgbImage) -> [[u8; 3]; 4] {
        let (w, h) = img.dimensions();
        let at = |x, y| {
            let p = img.get_pixel(x, y).0;
            // Snap JPEG noise to the nearest pure colour.
            *[R, G, B, W]
                .iter()
                .min_by_key(|c| {
                    c.iter()
                        .zip(p)
                        .map(|(a, b)| a.abs_diff(b) as u32)
                        .sum::<u32>()
                })
                .unwrap()
        };
        [at(2, 2), at(w - 3, 2), at(2, h - 3), at(w - 3, h - 3)]
    }

    #[test]
    fn all_eight_exif_orientations_give_the_upright_image() {
        // (orientation, upright size, corners TL, TR, BL, BR), from the EXIF definition of each value.
        let cases = [
            (1, (32, 16), [R, G, B, W]),
            (2, (32, 16), [G, R, W, B]),
            (3, (32, 16), [W, B, G, R]),
            (4, (32, 16), [B, W, R, G]),
            (5, (16, 32), [R, B, G, W]),
            (6, (16, 32), [B, R, W, G]),
            (7, (16, 32), [W, G, B, R]),
            (8, (16, 32), [G, W, R, B]),
        ];
        for (orientation, size, expected) in cases {
            let out = decode(
                &jpeg_with_orientation(orientation),
                &DecodeLimits::default(),
            )
            .unwrap();
            assert_eq!(out.rgb.dimensions(), size, "orientation {orientation}");
            assert_eq!(corners(&out.rgb), expected, "orientation {orientation}");
        }
    }

    #[test]
    fn a_broken_exif_block_means_as_stored() {
        let mut bytes = jpeg_with_orientation(6);
        bytes[12] = b'X'; // corrupt the TIFF byte-order mark
        let out = decode(&bytes, &DecodeLimits::default()).unwrap();
        assert_eq!(out.rgb.dimensions(), (32, 16));
    }
}
