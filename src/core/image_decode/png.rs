//! PNG: the file as the decoder reads it, without the chunks it would inflate for nothing. The
//! decoder inflates an ICC profile (iCCP) before the first pixel, up to the whole decode-memory cap:
//! a few megabytes of them make it fill hundreds of megabytes. This service never uses the profile
//! (detections do not depend on colour management), so the decoder never sees one.

use std::io::{self, BufRead, Read, Seek, SeekFrom};

/// A PNG without its iCCP chunks: the rest of the file as it is, read in place (no copy).
pub struct WithoutIccProfiles<'a> {
    /// The kept runs of bytes, in order, and where each starts in the stream the decoder sees.
    parts: Vec<(u64, &'a [u8])>,
    len: u64,
    pos: u64,
    /// The part that holds `pos`, found again by binary search after a seek.
    part: usize,
}

/// `None` when the PNG has no iCCP chunk (or its chunk list breaks before one: the decoder then says
/// why); the file without them otherwise.
pub fn without_icc_profiles(b: &[u8]) -> Option<WithoutIccProfiles<'_>> {
    const SIGNATURE: usize = 8;
    let mut parts = Vec::new();
    let (mut kept_from, mut out_len) = (0usize, 0u64);
    let mut i = SIGNATURE;
    while let Some(header) = b.get(i..i + 8) {
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        // Length, type, data and CRC; a chunk that runs past the end is the decoder's to report.
        let end = i.checked_add(12)?.checked_add(len)?;
        if &header[4..8] == b"iCCP" {
            let kept = &b[kept_from..i];
            parts.push((out_len, kept));
            out_len += kept.len() as u64;
            kept_from = end.min(b.len());
        }
        if &header[4..8] == b"IDAT" || end >= b.len() {
            break; // chunks after the image data are never read
        }
        i = end;
    }
    if parts.is_empty() {
        return None;
    }
    let rest = &b[kept_from..];
    parts.push((out_len, rest));
    out_len += rest.len() as u64;
    Some(WithoutIccProfiles {
        parts,
        len: out_len,
        pos: 0,
        part: 0,
    })
}

impl BufRead for WithoutIccProfiles<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while let Some(&(start, bytes)) = self.parts.get(self.part) {
            let offset = (self.pos - start) as usize;
            if offset < bytes.len() {
                return Ok(&bytes[offset..]);
            }
            self.part += 1;
        }
        Ok(&[])
    }

    fn consume(&mut self, amount: usize) {
        self.pos += amount as u64;
    }
}

impl Read for WithoutIccProfiles<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl Seek for WithoutIccProfiles<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(at) => Some(at),
            SeekFrom::End(delta) => self.len.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.pos.checked_add_signed(delta),
        };
        let target = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        self.pos = target;
        // The last part starting at or before the target (parts may be empty, so several can start
        // at the same place; fill_buf steps over the empty ones).
        self.part = self
            .parts
            .partition_point(|&(start, _)| start <= target)
            .saturating_sub(1);
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::image_decode::{decode, DecodeLimits};
    use image::{DynamicImage, ImageFormat, RgbImage};
    use std::io::Cursor;

    fn png() -> Vec<u8> {
        let img = RgbImage::from_fn(8, 6, |x, y| image::Rgb([x as u8 * 30, y as u8 * 40, 7]));
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&[0; 4]); // CRC: not read by the walk
        out
    }

    /// `plain` with the chunks inserted after IHDR (8 bytes of signature, 25 of IHDR).
    fn with_after_ihdr(plain: &[u8], chunks: &[Vec<u8>]) -> Vec<u8> {
        [&plain[..33], &chunks.concat(), &plain[33..]].concat()
    }

    fn read_all(mut r: impl Read) -> Vec<u8> {
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn the_decoder_reads_the_file_without_its_icc_profiles() {
        let plain = png();
        assert!(without_icc_profiles(&plain).is_none());
        let profile = chunk(b"iCCP", b"icc\0\0not deflate at all");
        let one = with_after_ihdr(&plain, std::slice::from_ref(&profile));
        assert_eq!(read_all(without_icc_profiles(&one).unwrap()), plain);
        // Two (which the decoder would refuse as a duplicate), with another chunk between them.
        let text = chunk(b"tEXt", b"k\0v");
        let two = with_after_ihdr(&plain, &[profile.clone(), text.clone(), profile]);
        let expected = with_after_ihdr(&plain, &[text]);
        assert_eq!(read_all(without_icc_profiles(&two).unwrap()), expected);
        let decoded = decode(&two, &DecodeLimits::default()).unwrap();
        assert_eq!(
            decoded.rgb,
            decode(&plain, &DecodeLimits::default()).unwrap().rgb
        );
    }

    #[test]
    fn seeking_lands_where_the_stripped_file_has_that_byte() {
        let plain = png();
        let profile = chunk(b"iCCP", &[9; 40]);
        let file = with_after_ihdr(&plain, &[profile.clone(), profile]);
        let mut r = without_icc_profiles(&file).unwrap();
        for at in [0, 1, 32, 33, 34, plain.len() as u64 - 1, 5] {
            assert_eq!(r.seek(SeekFrom::Start(at)).unwrap(), at);
            let mut byte = [0];
            r.read_exact(&mut byte).unwrap();
            assert_eq!(byte[0], plain[at as usize], "at {at}");
        }
        assert_eq!(r.seek(SeekFrom::End(-2)).unwrap(), plain.len() as u64 - 2);
        assert_eq!(read_all(&mut r), plain[plain.len() - 2..]);
        r.seek(SeekFrom::Start(30)).unwrap();
        assert_eq!(r.seek(SeekFrom::Current(4)).unwrap(), 34);
        assert!(r.seek(SeekFrom::Current(-35)).is_err());
        assert_eq!(r.seek(SeekFrom::Start(10_000)).unwrap(), 10_000);
        assert_eq!(read_all(&mut r), Vec::<u8>::new());
    }
}
