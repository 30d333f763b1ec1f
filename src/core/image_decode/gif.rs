//! GIF: where the first frame lies, read from the block structure before the decoder runs. The
//! decoder sizes the image by the logical screen but decodes the first frame into a buffer of the
//! frame's own size whenever it does not fill the screen's width, so a 32 KB file with a frame far
//! larger than its screen can allocate gigabytes.

/// The first frame's image descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRect {
    pub left: u32,
    pub top: u32,
    pub width: u32,
    pub height: u32,
}

impl FrameRect {
    /// Whether the decoder writes the frame straight into the screen-sized buffer: it starts at the
    /// left edge, spans the screen's width and ends within its height. Any other frame gets a buffer
    /// of its own.
    pub fn fills_screen_rows(&self, screen_w: u32, screen_h: u32) -> bool {
        self.left == 0
            && self.width == screen_w
            && u64::from(self.top) + u64::from(self.height) <= u64::from(screen_h)
    }

    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

/// The first image descriptor of a GIF, found by skipping the header, the colour table and every
/// extension's sub-blocks; `None` when the file ends or breaks before it (the decoder then says why).
pub fn first_frame(b: &[u8]) -> Option<FrameRect> {
    let flags = *b.get(10)?;
    let mut i = 13;
    if flags & 0x80 != 0 {
        i += 3 << ((flags & 7) + 1);
    }
    loop {
        match *b.get(i)? {
            0x21 => {
                // Extension: a label, then sub-blocks until a zero length.
                i += 2;
                loop {
                    let len = usize::from(*b.get(i)?);
                    i += 1 + len;
                    if len == 0 {
                        break;
                    }
                }
            }
            0x2C => {
                let d = b.get(i + 1..i + 9)?;
                let field = |k: usize| u32::from(u16::from_le_bytes([d[k], d[k + 1]]));
                return Some(FrameRect {
                    left: field(0),
                    top: field(2),
                    width: field(4),
                    height: field(6),
                });
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::image_decode::{decode, DecodeLimits};
    use image::codecs::gif::GifEncoder;
    use image::ExtendedColorType;

    /// One `w` x `h` frame as image's encoder writes it (its screen the frame's size), then the logical
    /// screen set to `screen`.
    fn gif_with_screen(w: u32, h: u32, screen: (u16, u16)) -> Vec<u8> {
        let rgba: Vec<u8> = (0..w * h)
            .flat_map(|i| [(i % 200) as u8, 40, 90, 255])
            .collect();
        let mut out = Vec::new();
        GifEncoder::new(&mut out)
            .encode(&rgba, w, h, ExtendedColorType::Rgba8)
            .unwrap();
        out[6..8].copy_from_slice(&screen.0.to_le_bytes());
        out[8..10].copy_from_slice(&screen.1.to_le_bytes());
        out
    }

    #[test]
    fn the_first_frame_is_found_past_the_colour_table_and_extensions() {
        let gif = gif_with_screen(40, 30, (40, 30));
        let frame = first_frame(&gif).unwrap();
        assert_eq!(
            frame,
            FrameRect {
                left: 0,
                top: 0,
                width: 40,
                height: 30
            }
        );
        assert!(frame.fills_screen_rows(40, 30));
        assert!(frame.fills_screen_rows(40, 31));
        assert!(!frame.fills_screen_rows(41, 30));
        assert!(!frame.fills_screen_rows(40, 29));
        // Cut anywhere before the descriptor ends: nothing found, nothing read past the end.
        let descriptor = [0x2C, 0, 0, 0, 0, 40, 0, 30, 0];
        let at = gif.windows(9).position(|w| w == descriptor).unwrap();
        for cut in [0, 6, 13, at, at + 8] {
            assert_eq!(first_frame(&gif[..cut]), None, "cut at {cut}");
        }
    }

    #[test]
    fn a_first_frame_larger_than_the_screen_counts_against_the_pixel_budget() {
        let gif = gif_with_screen(40, 30, (4, 3));
        let tight = DecodeLimits {
            max_pixels: 1000,
            ..DecodeLimits::default()
        };
        let err = decode(&gif, &tight).unwrap_err();
        assert_eq!(err.code(), "image_too_large", "{err}");
        assert!(
            err.to_string().contains("GIF's first frame is 40x30"),
            "{err}"
        );
        // Within the budget it decodes, as the screen shows it.
        let out = decode(&gif, &DecodeLimits::default()).unwrap();
        assert_eq!(out.rgb.dimensions(), (4, 3));
    }

    #[test]
    fn a_first_frames_own_buffer_counts_against_the_memory_cap() {
        // A screen one column wider than the frame: the decoder gives the frame a buffer of its own.
        // Output 41x30x4 + frame 40x30x4 + the 8-bit copy 41x30x4 = 14,640 bytes.
        let gif = gif_with_screen(40, 30, (41, 30));
        let cap = |bytes| DecodeLimits {
            max_alloc_bytes: bytes,
            ..DecodeLimits::default()
        };
        let err = decode(&gif, &cap(14_639)).unwrap_err();
        assert_eq!(err.code(), "image_too_large", "{err}");
        assert!(decode(&gif, &cap(14_640)).is_ok());
        // The same frame filling the screen has no buffer of its own: 9,600 bytes.
        let fills = gif_with_screen(40, 30, (40, 30));
        assert!(decode(&fills, &cap(9_600)).is_ok());
    }
}
