//! WebP: the first frame of an animation, read from the RIFF chunks before the decoder runs. For an
//! animated file the decoder keeps a canvas of its own besides the output and decodes the first frame
//! into a third buffer: three image-sized buffers where a still image has one.

/// Width and height of an animated WebP's first frame (its ANMF chunk); `None` for a still image or
/// when the chunks break off before one (the decoder then says why).
pub fn animated_first_frame(b: &[u8]) -> Option<(u32, u32)> {
    if b.get(12..16)? != b"VP8X" || b.get(20)? & 0x02 == 0 {
        return None;
    }
    let mut i = 12;
    loop {
        let kind = b.get(i..i + 4)?;
        let len = u32::from_le_bytes(b.get(i + 4..i + 8)?.try_into().ok()?) as usize;
        if kind == b"ANMF" {
            let d = b.get(i + 8..i + 20)?;
            let field = |k: usize| u32::from_le_bytes([d[k], d[k + 1], d[k + 2], 0]) + 1;
            return Some((field(6), field(9)));
        }
        // Chunks are padded to an even length.
        i = i.checked_add(8)?.checked_add(len)?.checked_add(len & 1)?;
    }
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
        [b"RIFF".to_vec(), (body.len() as u32).to_le_bytes().to_vec(), body].concat()
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
