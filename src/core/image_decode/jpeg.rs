//! JPEG: the marker walk that runs before any decoder (coding variant, truncation, the work its scans
//! ask for) and the DCT-scaled decode of large photos.

use std::io::Cursor;

use image::{DynamicImage, RgbImage};

use crate::core::error::{Error, Result};

/// The most scans a JPEG may have: zune-jpeg's own limit, now the DCT-scaled path's too (jpeg-decoder
/// has none). libjpeg writes 10 scans for a progressive colour image, 6 for a grey one.
pub const MAX_SCANS: u32 = 100;

/// How many times, on average, a JPEG's scans may visit each 8x8 block of its frame. Every scan walks
/// every block of the components it codes, even when it says nothing about them (an end-of-band run
/// covers 32,767 blocks in two bytes): a few hundred bytes of scans can make a decoder walk a 40 MP
/// frame thousands of times. libjpeg's progressive files (written by Pillow) visit each block 4.7
/// (colour, 4:4:4), 5.3 (4:2:0) or 6 (grey) times.
pub const MAX_BLOCK_VISITS_PER_BLOCK: u64 = 16;

/// The most Huffman tables a JPEG may define. Each definition is a few dozen bytes that both decoders
/// turn into lookup tables: 150,000 of them in a 6 MB file took 0.4 s of CPU before any pixel. A
/// baseline file defines 2 to 4; a progressive one may redefine them before each of its scans.
pub const MAX_HUFFMAN_TABLES: u32 = 1000;

/// What the marker walk found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Walk {
    /// An end-of-image marker follows the last scan.
    pub complete: bool,
    /// Start-of-scan segments.
    pub scans: u32,
    /// 8x8 blocks of the frame, all components together.
    pub frame_blocks: u64,
    /// 8x8 blocks the scans walk, all scans together.
    pub block_visits: u64,
    /// Huffman table definitions, all DHT segments together.
    pub huffman_tables: u32,
}

/// One component of the frame, as its scans need it.
#[derive(Debug, Clone, Copy)]
struct Component {
    id: u8,
    h: u32,
    v: u32,
    /// Blocks of this component alone (a scan that codes only it walks these).
    blocks: u64,
}

/// The frame header: the components and the interleaved MCU grid.
#[derive(Debug, Default)]
struct Frame {
    components: Vec<Component>,
    mcus: u64,
}

/// Walks a JPEG's segments (skipping each by its length, so embedded thumbnails do not count) and its
/// entropy-coded scans: refuses coding variants no decoder here reads, counts the scans and the blocks
/// they visit, and reports whether an end-of-image marker follows. Data after that marker (phone
/// "motion photos" append a video) is allowed. Reads each byte once; allocates only the frame's
/// component list.
pub fn walk(b: &[u8]) -> Result<Walk> {
    let n = b.len();
    let mut found = Walk::default();
    let mut frame: Option<Frame> = None;
    let mut i = 2; // after SOI
    while i + 1 < n {
        if b[i] != 0xFF {
            // Stray bytes between segments: decoders skip to the next marker, so do the same.
            i += 1;
            continue;
        }
        match b[i + 1] {
            0xFF => i += 1, // fill byte
            0xD9 => {
                found.complete = true;
                return Ok(found);
            }
            0x01 | 0xD0..=0xD7 => i += 2, // markers without a length
            marker => {
                if i + 3 >= n {
                    return Ok(found);
                }
                let len = usize::from(u16::from_be_bytes([b[i + 2], b[i + 3]]));
                if len < 2 {
                    return Ok(found);
                }
                let payload = &b[(i + 4).min(n)..(i + 2 + len).min(n)];
                match marker {
                    0xC0..=0xCF if ![0xC4, 0xC8, 0xCC].contains(&marker) => {
                        unsupported_variant(marker, payload)?;
                        if frame.is_none() {
                            frame = parse_frame(payload);
                            found.frame_blocks = frame
                                .as_ref()
                                .map_or(0, |f| f.components.iter().map(|c| c.blocks).sum());
                        }
                    }
                    0xCC => return Err(variant("arithmetic-coded")), // arithmetic conditioning (DAC)
                    0xC4 => found.huffman_tables += huffman_tables(payload),
                    0xDA => {
                        found.scans += 1;
                        if let Some(f) = &frame {
                            found.block_visits += scan_blocks(f, payload);
                        }
                    }
                    _ => {}
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
    Ok(found)
}

impl Walk {
    /// Refuses a JPEG whose tables or scans ask for more work than [`MAX_HUFFMAN_TABLES`],
    /// [`MAX_SCANS`] and [`MAX_BLOCK_VISITS_PER_BLOCK`] allow, before any of them is decoded.
    pub fn check_work(&self) -> Result<()> {
        if self.huffman_tables > MAX_HUFFMAN_TABLES {
            return Err(Error::ImageTooComplex {
                detail: format!(
                    "the JPEG image defines {} Huffman tables; the limit is {MAX_HUFFMAN_TABLES}",
                    self.huffman_tables
                ),
            });
        }
        if self.scans > MAX_SCANS {
            return Err(Error::ImageTooComplex {
                detail: format!(
                    "the JPEG image has {} scans; the limit is {MAX_SCANS}",
                    self.scans
                ),
            });
        }
        if self.block_visits > MAX_BLOCK_VISITS_PER_BLOCK * self.frame_blocks.max(1) {
            return Err(Error::ImageTooComplex {
                detail: format!(
                    "the JPEG image's {} scans walk its {} blocks {:.1} times each; the limit is {}",
                    self.scans,
                    self.frame_blocks,
                    self.block_visits as f64 / self.frame_blocks.max(1) as f64,
                    MAX_BLOCK_VISITS_PER_BLOCK
                ),
            });
        }
        Ok(())
    }
}

fn variant(what: &str) -> Error {
    Error::UnsupportedVariant {
        format: "JPEG",
        variant: what.to_string(),
        supported: "8-bit baseline and progressive JPEG with Huffman coding",
    }
}

/// The start-of-frame markers other than SOF0-SOF2 at 8 bits: no decoder here reads them (zune-jpeg
/// reads none; jpeg-decoder reads some, but only on the scaled path).
fn unsupported_variant(marker: u8, payload: &[u8]) -> Result<()> {
    let kind = match marker {
        0xC3 => Some("lossless (SOF3)"),
        0xC5..=0xC7 => Some("hierarchical (SOF5-7)"),
        0xC9..=0xCB => Some("arithmetic-coded (SOF9-11)"),
        0xCD..=0xCF => Some("hierarchical arithmetic-coded (SOF13-15)"),
        _ => None,
    };
    if let Some(kind) = kind {
        return Err(variant(kind));
    }
    match payload.first() {
        Some(&8) | None => Ok(()),
        Some(&bits) => Err(variant(&format!("{bits}-bit"))),
    }
}

/// Table definitions in a DHT segment: each is a class and id byte, 16 code counts and that many
/// symbols. A definition cut short counts as one (the decoder refuses it).
fn huffman_tables(mut p: &[u8]) -> u32 {
    let mut tables = 0;
    while !p.is_empty() {
        tables += 1;
        let symbols: usize = p
            .get(1..17)
            .map_or(0, |c| c.iter().map(|&n| usize::from(n)).sum());
        p = p.get(17 + symbols..).unwrap_or(&[]);
    }
    tables
}

/// The components and MCU grid of a frame header; `None` when it is malformed (the decoder then says
/// what is wrong with it).
fn parse_frame(p: &[u8]) -> Option<Frame> {
    let height = u64::from(u16::from_be_bytes([*p.get(1)?, *p.get(2)?]));
    let width = u64::from(u16::from_be_bytes([*p.get(3)?, *p.get(4)?]));
    let count = usize::from(*p.get(5)?);
    let specs = p.get(6..6 + 3 * count)?;
    let sampling: Vec<(u8, u32, u32)> = specs
        .chunks_exact(3)
        .map(|c| (c[0], u32::from(c[1] >> 4), u32::from(c[1] & 15)))
        .collect();
    let h_max = u64::from(sampling.iter().map(|s| s.1).max()?.max(1));
    let v_max = u64::from(sampling.iter().map(|s| s.2).max()?.max(1));
    let components = sampling
        .iter()
        .map(|&(id, h, v)| {
            // A component's own size, rounded up (ITU T.81 A.1.1), in blocks rounded up.
            let w = (width * u64::from(h)).div_ceil(h_max);
            let ht = (height * u64::from(v)).div_ceil(v_max);
            Component {
                id,
                h,
                v,
                blocks: w.div_ceil(8) * ht.div_ceil(8),
            }
        })
        .collect();
    let mcus = width.div_ceil(8 * h_max) * height.div_ceil(8 * v_max);
    Some(Frame { components, mcus })
}

/// Blocks one scan walks: a scan of one component walks that component's blocks; an interleaved scan
/// walks whole MCUs, each holding H x V blocks of every component it codes.
fn scan_blocks(frame: &Frame, p: &[u8]) -> u64 {
    let count = usize::from(p.first().copied().unwrap_or(0));
    let coded = p.get(1..1 + 2 * count).unwrap_or(&[]);
    let ids = coded.chunks_exact(2).map(|c| c[0]);
    let components: Vec<&Component> = ids
        .filter_map(|id| frame.components.iter().find(|c| c.id == id))
        .collect();
    match components.as_slice() {
        [one] => one.blocks,
        many => frame.mcus * many.iter().map(|c| u64::from(c.h * c.v)).sum::<u64>(),
    }
}

/// The size a JPEG of `full_w` x `full_h` decodes to at the smallest of the DCT scales 1/8, 1/4 and
/// 1/2 that covers `need_w` x `need_h`; `None` when only the full size does.
pub fn scale_for(full_w: u32, full_h: u32, need_w: u32, need_h: u32) -> Option<(u32, u32)> {
    [1, 2, 4]
        .into_iter()
        .map(|eighths| (scaled_side(full_w, eighths), scaled_side(full_h, eighths)))
        .find(|&(w, h)| w >= need_w && h >= need_h)
}

/// A side of `len` pixels decoded at `eighths`/8 scale, rounded up as jpeg-decoder rounds it.
fn scaled_side(len: u32, eighths: u32) -> u32 {
    (len * eighths).div_ceil(8)
}

/// DCT-scaled JPEG decode to `size`, one of [`scale_for`]'s; `None` (use the full decoder, which
/// reports errors properly) for anything unusual: CMYK, 16-bit, a decoder error.
pub fn scaled(bytes: &[u8], size: (u32, u32)) -> Option<DynamicImage> {
    let mut d = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    // jpeg-decoder picks the smallest scale that covers the width *or* the height asked for (it
    // expects a request of the image's own aspect); asked for the exact size of a scale, it picks that.
    let (w, h) = d
        .scale(u16::try_from(size.0).ok()?, u16::try_from(size.1).ok()?)
        .ok()?;
    if (u32::from(w), u32::from(h)) != size {
        return None;
    }
    let (w, h) = size;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::image_decode::{
        decode, decode_at_least, decode_at_least_noting, DecodeLimits,
    };

    /// A progressive colour JPEG of a gradient, as jpeg-encoder writes one (4:4:4).
    fn progressive(width: u16, height: u16) -> Vec<u8> {
        let rgb: Vec<u8> = (0..u32::from(width) * u32::from(height))
            .flat_map(|i| [(i % 251) as u8, (i / 7 % 256) as u8, 90])
            .collect();
        let mut out = Vec::new();
        let mut encoder = jpeg_encoder::Encoder::new(&mut out, 90);
        encoder.set_progressive(true);
        encoder
            .encode(&rgb, width, height, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        out
    }

    /// Where each start-of-scan segment begins, and where its entropy-coded data ends.
    fn scans(jpeg: &[u8]) -> Vec<(usize, usize)> {
        let mut found = Vec::new();
        let mut i = 2;
        while i + 3 < jpeg.len() && jpeg[i + 1] != 0xD9 {
            let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
            let start = i;
            i += 2 + len;
            if jpeg[start + 1] == 0xDA {
                while !(jpeg[i] == 0xFF
                    && jpeg[i + 1] != 0
                    && !(0xD0..=0xD7).contains(&jpeg[i + 1]))
                {
                    i += 1;
                }
                found.push((start, i));
            }
        }
        found
    }

    /// `jpeg` with its last scan repeated `times` more times.
    fn with_last_scan_repeated(jpeg: &[u8], times: usize) -> Vec<u8> {
        let (start, end) = *scans(jpeg).last().unwrap();
        let mut out = jpeg[..end].to_vec();
        for _ in 0..times {
            out.extend_from_slice(&jpeg[start..end]);
        }
        out.extend_from_slice(&jpeg[end..]);
        out
    }

    /// A baseline colour JPEG of a gradient.
    fn baseline(width: u16, height: u16) -> Vec<u8> {
        let rgb: Vec<u8> = (0..u32::from(width) * u32::from(height))
            .flat_map(|i| [(i % 251) as u8, (i / 7 % 256) as u8, 90])
            .collect();
        let mut out = Vec::new();
        jpeg_encoder::Encoder::new(&mut out, 90)
            .encode(&rgb, width, height, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        out
    }

    #[test]
    fn the_dct_scale_covers_both_sides_asked_for() {
        // A square model input from a 16:10 photo: 1/8 would be 200x125, short of 150 rows.
        assert_eq!(scale_for(1600, 1000, 150, 150), Some((400, 250)));
        assert_eq!(
            scale_for(1600, 1000, 200, 125),
            Some((200, 125)),
            "1/8 exactly"
        );
        assert_eq!(scale_for(1600, 1000, 201, 125), Some((400, 250)));
        assert_eq!(
            scale_for(1600, 1000, 800, 500),
            Some((800, 500)),
            "1/2 exactly"
        );
        assert_eq!(
            scale_for(1600, 1000, 801, 10),
            None,
            "only the full size covers it"
        );
        // Sides that do not divide by 8 round up, as the decoder rounds them.
        assert_eq!(scale_for(1001, 999, 100, 100), Some((126, 125)));

        let wide = baseline(1600, 1000);
        let decoded = |size| scaled(&wide, size).map(|i| (i.width(), i.height()));
        assert_eq!(decoded((400, 250)), Some((400, 250)));
        assert_eq!(decoded((200, 125)), Some((200, 125)));
        assert_eq!(decoded((300, 250)), None, "not the size of a DCT scale");
        let odd = baseline(1001, 999);
        assert_eq!(
            scaled(&odd, (126, 125)).map(|i| (i.width(), i.height())),
            Some((126, 125))
        );
        let through_the_front = decode_at_least(&wide, &DecodeLimits::default(), |_, _| (150, 150));
        assert_eq!(through_the_front.unwrap().rgb.dimensions(), (400, 250));
    }

    #[test]
    fn the_buffers_a_decode_allocates_are_noted_at_the_scale_it_decodes() {
        let wide = baseline(1600, 1000);
        let limits = DecodeLimits::default();
        let noted = std::cell::Cell::new(Vec::new());
        let note = |bytes| {
            let mut all = noted.take();
            all.push(bytes);
            noted.set(all);
        };
        decode_at_least_noting(&wide, &limits, |_, _| (150, 150), note).unwrap();
        assert_eq!(noted.take(), vec![3 * 400 * 250], "the 1/4 scale's RGB");
        decode_at_least_noting(&wide, &limits, |w, h| (w, h), note).unwrap();
        assert_eq!(noted.take(), vec![3 * 1600 * 1000], "the full size's RGB");
    }

    #[test]
    fn an_encoders_progressive_jpeg_is_well_within_the_work_limits() {
        let jpeg = progressive(64, 48);
        let walk = walk(&jpeg).unwrap();
        assert!(walk.complete);
        assert_eq!(walk.scans as usize, scans(&jpeg).len());
        assert!(walk.scans > 4, "{walk:?}");
        // 8x6 blocks of each of the three components.
        assert_eq!(walk.frame_blocks, 3 * 48);
        let passes = walk.block_visits as f64 / walk.frame_blocks as f64;
        assert!((2.0..8.0).contains(&passes), "{walk:?}");
        walk.check_work().unwrap();
        assert!(decode(&jpeg, &DecodeLimits::default()).is_ok());
    }

    #[test]
    fn scans_walking_the_blocks_too_often_are_refused_before_decoding() {
        let limits = DecodeLimits::default();
        // The same scan over and over: a few bytes each, every block walked each time. At 832x624 the
        // detector would decode it on the DCT-scaled path.
        let jpeg = progressive(832, 624);
        let within = with_last_scan_repeated(&jpeg, 2);
        assert!(decode(&within, &limits).is_ok());
        let bomb = with_last_scan_repeated(&jpeg, 60);
        for result in [
            decode(&bomb, &limits),
            decode_at_least(&bomb, &limits, |_, _| (416, 312)),
        ] {
            let err = result.unwrap_err();
            assert_eq!(err.code(), "image_too_complex", "{err}");
            assert!(
                err.to_string().contains("times each; the limit is 16"),
                "{err}"
            );
        }
    }

    #[test]
    fn more_than_a_hundred_scans_are_refused_even_when_each_walks_few_blocks() {
        // Scans of a small chroma component: few blocks each, but each costs a decoder its setup.
        let walk = |scans| Walk {
            complete: true,
            scans,
            frame_blocks: 10_000,
            block_visits: 50 * u64::from(scans),
            huffman_tables: 4,
        };
        walk(100).check_work().unwrap();
        let err = walk(101).check_work().unwrap_err();
        assert_eq!(err.code(), "image_too_complex");
        assert!(
            err.to_string().contains("101 scans; the limit is 100"),
            "{err}"
        );
    }

    #[test]
    fn more_than_a_thousand_huffman_tables_are_refused() {
        let jpeg = progressive(16, 16);
        let dht = jpeg.windows(2).position(|w| w == [0xFF, 0xC4]).unwrap();
        let len = usize::from(u16::from_be_bytes([jpeg[dht + 2], jpeg[dht + 3]]));
        let segment = &jpeg[dht..dht + 2 + len];
        let per_segment = huffman_tables(&segment[4..]);
        assert!(per_segment >= 1);
        let with = |segments: u32| {
            let mut out = jpeg[..dht].to_vec();
            for _ in 0..segments {
                out.extend_from_slice(segment);
            }
            out.extend_from_slice(&jpeg[dht..]);
            out
        };
        // The encoder's own tables, then as many copies of its first table segment as stay within.
        let own = walk(&jpeg).unwrap().huffman_tables;
        let at_limit = with((MAX_HUFFMAN_TABLES - own) / per_segment);
        let tables = walk(&at_limit).unwrap().huffman_tables;
        assert!(tables > MAX_HUFFMAN_TABLES - per_segment && tables <= MAX_HUFFMAN_TABLES);
        assert!(decode(&at_limit, &DecodeLimits::default()).is_ok());
        let err = decode(&with(MAX_HUFFMAN_TABLES), &DecodeLimits::default()).unwrap_err();
        assert_eq!(err.code(), "image_too_complex");
        assert!(
            err.to_string()
                .contains("Huffman tables; the limit is 1000"),
            "{err}"
        );
    }

    #[test]
    fn coding_variants_no_decoder_reads_are_unsupported_and_named() {
        let jpeg = progressive(16, 16);
        let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC2]).unwrap();
        let cases = [
            (0xC9, 8, "arithmetic-coded (SOF9-11)"),
            (0xCA, 8, "arithmetic-coded (SOF9-11)"),
            (0xC3, 8, "lossless (SOF3)"),
            (0xC5, 8, "hierarchical (SOF5-7)"),
            (0xCD, 8, "hierarchical arithmetic-coded (SOF13-15)"),
            (0xC1, 12, "12-bit"),
            (0xC2, 12, "12-bit"),
        ];
        for (marker, precision, named) in cases {
            let mut variant = jpeg.clone();
            variant[sof + 1] = marker;
            variant[sof + 4] = precision;
            let err = decode(&variant, &DecodeLimits::default()).unwrap_err();
            assert_eq!(err.code(), "unsupported_format", "{marker:#x}: {err}");
            assert!(
                err.to_string()
                    .starts_with(&format!("{named} JPEG images are not supported")),
                "{err}"
            );
        }
        // Extended sequential at 8 bits is read like baseline.
        let mut extended = jpeg.clone();
        extended[sof + 1] = 0xC1;
        walk(&extended).unwrap().check_work().unwrap();
    }
}
