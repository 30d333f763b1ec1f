//! WebP: what the RIFF chunks say a decode will cost, read before the decoder runs: the first frame of
//! an animation (the decoder keeps a canvas of its own besides the output and decodes the first frame
//! into a third buffer: three image-sized buffers where a still image has one), and the prefix-code
//! tables of the lossless bitstreams it decodes (the image's, or its alpha's; see [`super::vp8l`]).

use super::vp8l::{self, Tables};

/// Width and height of an animated WebP's first frame (its ANMF chunk); `None` for a still image or
/// when the chunks break off before one (the decoder then says why).
pub fn animated_first_frame(b: &[u8]) -> Option<(u32, u32)> {
    let (kind, vp8x) = chunks(b, 12).next()?;
    if kind != b"VP8X" || vp8x.first()? & 0x02 == 0 {
        return None;
    }
    let (_, anmf) = chunks(b, 12).find(|(kind, _)| *kind == b"ANMF")?;
    frame_size(anmf)
}

/// The prefix-code tables of the lossless streams the decoder reads for the image (or an animation's
/// first frame): a VP8L chunk, and an ALPH chunk compressed losslessly. Streams that break off or are
/// malformed count nothing: the decoder refuses them.
pub fn lossless_tables(b: &[u8]) -> Tables {
    let mut total = Tables::default();
    let mut add = |t: Option<Tables>| {
        if let Some(t) = t {
            total.groups = total.groups.saturating_add(t.groups);
            total.bytes = total.bytes.saturating_add(t.bytes);
        }
    };
    let mut size = (0, 0);
    for (kind, data) in chunks(b, 12) {
        match kind {
            b"VP8X" => size = canvas(data).unwrap_or(size),
            b"VP8L" => add(vp8l::tables(data)),
            b"ALPH" => add(lossless_alpha(data, size)),
            b"ANMF" => {
                // The first frame only: its size, then its own chunks.
                let Some(frame) = frame_size(data) else { break };
                for (kind, data) in chunks(data, 16) {
                    match kind {
                        b"VP8L" => add(vp8l::tables(data)),
                        b"ALPH" => add(lossless_alpha(data, frame)),
                        _ => {}
                    }
                }
                break;
            }
            _ => {}
        }
    }
    total
}

/// An ALPH chunk's lossless stream (compression method 1 in its first byte).
fn lossless_alpha(data: &[u8], (width, height): (u32, u32)) -> Option<Tables> {
    let (&flags, stream) = data.split_first()?;
    (flags & 3 == 1).then(|| vp8l::alpha_tables(stream, width, height))?
}

/// A VP8X chunk's canvas size.
fn canvas(vp8x: &[u8]) -> Option<(u32, u32)> {
    Some((size_field(vp8x, 4)?, size_field(vp8x, 7)?))
}

/// An ANMF chunk's frame size.
fn frame_size(anmf: &[u8]) -> Option<(u32, u32)> {
    Some((size_field(anmf, 6)?, size_field(anmf, 9)?))
}

/// A size as WebP stores one: 24 bits, little-endian, minus one.
fn size_field(d: &[u8], at: usize) -> Option<u32> {
    let b = d.get(at..at + 3)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], 0]) + 1)
}

/// The chunks of `b` from offset `at` on, as (kind, data); a chunk cut short by the end of the file
/// gives what there is of it, and ends the walk.
fn chunks(b: &[u8], mut at: usize) -> impl Iterator<Item = (&[u8; 4], &[u8])> {
    std::iter::from_fn(move || {
        let kind: &[u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        let len = u32::from_le_bytes(b.get(at + 4..at + 8)?.try_into().ok()?) as usize;
        let start = at + 8;
        let end = start.saturating_add(len);
        let data = &b[start..end.min(b.len())];
        at = end.saturating_add(len & 1);
        Some((kind, data))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut out = kind.to_vec();
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(0);
        }
        out
    }

    /// A VP8X file with `flags`, a 300x200 canvas, an odd-length chunk, then an ANMF chunk whose frame
    /// is 120x80 (its pixel data left out: only the headers are read).
    fn extended(flags: u8) -> Vec<u8> {
        let mut vp8x = vec![flags, 0, 0, 0];
        vp8x.extend_from_slice(&299u32.to_le_bytes()[..3]);
        vp8x.extend_from_slice(&199u32.to_le_bytes()[..3]);
        let mut anmf = vec![0; 6];
        anmf.extend_from_slice(&119u32.to_le_bytes()[..3]);
        anmf.extend_from_slice(&79u32.to_le_bytes()[..3]);
        anmf.extend_from_slice(&[100, 0, 0, 0]);
        let body = [
            b"WEBP".to_vec(),
            chunk(b"VP8X", &vp8x),
            chunk(b"EXIF", b"odd"),
            chunk(b"ANMF", &anmf),
        ]
        .concat();
        [
            b"RIFF".to_vec(),
            (body.len() as u32).to_le_bytes().to_vec(),
            body,
        ]
        .concat()
    }

    #[test]
    fn an_animations_first_frame_is_read_from_its_anmf_chunk() {
        assert_eq!(animated_first_frame(&extended(0x02)), Some((120, 80)));
        assert_eq!(animated_first_frame(&extended(0x12)), Some((120, 80)));
        // Not animated, or cut before the frame's size: nothing.
        assert_eq!(animated_first_frame(&extended(0x10)), None);
        let whole = extended(0x02);
        assert_eq!(animated_first_frame(&whole[..whole.len() - 8]), None);
        // A chunk length that runs past the end (or overflows) ends the walk.
        let mut huge = whole.clone();
        huge[34..38].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(animated_first_frame(&huge), None);
    }
}

#[cfg(test)]
mod lossless_tests {
    use super::super::vp8l::{tests::groups_stream, MAX_GROUPS};
    use super::*;
    use crate::core::image_decode::{decode, DecodeLimits};
    use image::{DynamicImage, ImageFormat, RgbaImage};
    use std::io::Cursor;

    fn riff(chunks: &[(&[u8; 4], &[u8])]) -> Vec<u8> {
        let mut body = b"WEBP".to_vec();
        for (kind, data) in chunks {
            body.extend_from_slice(*kind);
            body.extend_from_slice(&(data.len() as u32).to_le_bytes());
            body.extend_from_slice(data);
            if data.len() % 2 == 1 {
                body.push(0);
            }
        }
        [
            b"RIFF".to_vec(),
            (body.len() as u32).to_le_bytes().to_vec(),
            body,
        ]
        .concat()
    }

    #[test]
    fn too_many_prefix_code_groups_are_refused_before_decoding() {
        let limits = DecodeLimits::default();
        let within = riff(&[(b"VP8L", &groups_stream(MAX_GROUPS, true))]);
        assert_eq!(lossless_tables(&within).groups, MAX_GROUPS);
        let out = decode(&within, &limits).unwrap();
        assert_eq!(out.rgb.dimensions(), (4, 4));
        let over = riff(&[(b"VP8L", &groups_stream(MAX_GROUPS + 1, true))]);
        let err = decode(&over, &limits).unwrap_err();
        assert_eq!(err.code(), "image_too_complex", "{err}");
        assert!(err.to_string().contains("4097 groups"), "{err}");
    }

    #[test]
    fn the_tables_count_against_the_memory_cap() {
        // 4x4 RGBA output (64 bytes), the 8-bit copy (64), one 1,024-entry table and its tree (4,360).
        let file = riff(&[(b"VP8L", &groups_stream(3, true))]);
        let cap = |bytes| DecodeLimits {
            max_alloc_bytes: bytes,
            ..DecodeLimits::default()
        };
        assert!(decode(&file, &cap(4_096)).is_err());
        let err = decode(&file, &cap(4_096)).unwrap_err();
        assert_eq!(err.code(), "image_too_large", "{err}");
        assert!(decode(&file, &cap(64 * 1024)).is_ok());
    }

    #[test]
    fn an_encoders_lossless_webp_is_read_to_its_groups() {
        let img = RgbaImage::from_fn(96, 64, |x, y| {
            image::Rgba([
                (x * 3) as u8,
                (y * 4) as u8,
                ((x ^ y) * 5) as u8,
                255 - x as u8,
            ])
        });
        let mut file = Vec::new();
        DynamicImage::ImageRgba8(img)
            .write_to(&mut Cursor::new(&mut file), ImageFormat::WebP)
            .unwrap();
        let t = lossless_tables(&file);
        assert!(t.groups >= 1, "{t:?}");
        assert!(decode(&file, &DecodeLimits::default()).is_ok());
    }
}
