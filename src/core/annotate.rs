//! Annotated images: the upright photo, scaled down so its longer side is at most `max_side`, with each
//! detection's box in its class's colour and a filled label tab (`cat 0.87`) in anti-aliased text,
//! encoded as JPEG or PNG. The API, the CLI and the batch path share this one module; it draws exactly
//! the detections the JSON reports, in the same (upright) frame.
//!
//! Drawing order keeps crowded pictures readable: every box first, then every label tab, each from the
//! worst detection to the best, so the best detection's box and tab end up on top and no box line
//! crosses a tab. A tab sits above its box, or inside the box's top edge when there is no room above,
//! and is pushed left from the right border: it always lies inside the picture.

use std::io::Write;
use std::sync::OnceLock;

use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};
use fast_image_resize::{FilterType, ResizeAlg};
use image::RgbImage;

use crate::core::error::{Error, Result};
use crate::core::preprocess::resize;
use crate::core::response::{AnnotatedImage, Detection, Encoding};

/// DejaVu Sans Bold cut to printable ASCII (model/font/, reproduced by tools/make_font.sh).
const FONT: &[u8] = include_bytes!("../../model/font/dejavu-sans-bold.ascii.ttf");

fn font() -> &'static FontRef<'static> {
    static PARSED: OnceLock<FontRef<'static>> = OnceLock::new();
    // The font is compiled in and parsed by a unit test: this cannot fail at run time.
    PARSED.get_or_init(|| FontRef::try_from_slice(FONT).expect("the embedded font parses"))
}

/// What to draw and how to encode it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    pub encoding: Encoding,
    /// The picture's longer side at most (the photo is never scaled up).
    pub max_side: u32,
    /// 1..=100, for JPEG.
    pub jpeg_quality: u8,
    /// The largest encoded size allowed; past it the encoder stops and the answer is
    /// `response_too_large` (Lambda's 6 MB response limit, less base64 and the rest of the response).
    pub max_bytes: Option<usize>,
}

/// The picture's size for an upright image of size `image`: scaled down, never up, so its longer side
/// is at most `max_side`; aspect ratio kept, at least one pixel each way.
pub fn canvas_size(image: (u32, u32), max_side: u32) -> (u32, u32) {
    let (w, h) = image;
    let longer = w.max(h);
    if longer <= max_side {
        return (w, h);
    }
    let scale = f64::from(max_side) / f64::from(longer);
    let fit = |v: u32| ((f64::from(v) * scale).round() as u32).clamp(1, max_side);
    (fit(w), fit(h))
}

/// 20 colours, one per class id modulo 20; neighbouring ids differ in hue by about 150 degrees and in
/// lightness, so overlapping boxes of classes 0 and 1 (or 15 and 16) never look alike.
pub const PALETTE: [[u8; 3]; 20] = [
    [255, 56, 56],   // red
    [44, 153, 168],  // teal
    [255, 178, 29],  // amber
    [61, 90, 254],   // blue
    [207, 210, 49],  // lime
    [146, 75, 232],  // violet
    [72, 249, 10],   // green
    [255, 55, 199],  // magenta
    [26, 147, 52],   // dark green
    [255, 112, 31],  // orange
    [0, 194, 255],   // sky
    [132, 56, 255],  // purple
    [146, 204, 23],  // yellow-green
    [200, 30, 90],   // crimson
    [0, 212, 187],   // turquoise
    [255, 157, 151], // salmon
    [52, 69, 147],   // navy
    [255, 230, 80],  // yellow
    [120, 80, 40],   // brown
    [230, 130, 255], // orchid
];

/// The colour of a class's boxes and tabs.
pub fn class_colour(class_id: usize) -> [u8; 3] {
    PALETTE[class_id % PALETTE.len()]
}

/// Black or white, whichever reads better on `background`.
fn text_colour(background: [u8; 3]) -> [u8; 3] {
    let [r, g, b] = background.map(f32::from);
    if 0.299 * r + 0.587 * g + 0.114 * b > 150.0 {
        [0, 0, 0]
    } else {
        [255, 255, 255]
    }
}

/// Line width and text size for a picture: they grow with it so boxes and labels read the same on a
/// thumbnail and on a 4096-pixel picture.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Style {
    pub line: u32,
    pub text_px: f32,
    pub pad: u32,
}

impl Style {
    pub fn for_canvas(width: u32, height: u32) -> Style {
        let longer = width.max(height) as f32;
        Style {
            line: ((longer / 320.0).round() as u32).max(2),
            text_px: (longer / 48.0).clamp(12.0, 64.0),
            pad: ((longer / 400.0).round() as u32).max(2),
        }
    }
}

/// Draws the picture for `pixels` (the upright image, possibly decoded at a reduced size) of an image of
/// size `image`, and encodes it. Takes the pixels: at the picture's size they are drawn on as they are.
pub fn render(
    pixels: RgbImage,
    image: (u32, u32),
    detections: &[Detection],
    spec: &Spec,
) -> Result<AnnotatedImage> {
    let (width, height) = canvas_size(image, spec.max_side);
    let mut canvas = if pixels.dimensions() == (width, height) {
        pixels
    } else {
        resize(
            &pixels,
            width,
            height,
            ResizeAlg::Convolution(FilterType::Bilinear),
        )?
    };
    let scale = (
        width as f32 / image.0 as f32,
        height as f32 / image.1 as f32,
    );
    draw(&mut canvas, detections, scale);
    Ok(AnnotatedImage {
        bytes: encode(&canvas, spec)?,
        encoding: spec.encoding,
        width,
        height,
    })
}

/// A box in canvas pixels, edges inclusive: `x0..=x1`, `y0..=y1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelBox {
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
}

impl PixelBox {
    /// A detection's box (image pixels, exclusive right and bottom edges) on a canvas scaled by
    /// `scale`; `None` when the canvas is empty.
    pub fn of(d: &Detection, scale: (f32, f32), canvas: (u32, u32)) -> Option<PixelBox> {
        let (w, h) = canvas;
        if w == 0 || h == 0 {
            return None;
        }
        let px = |v: f32, s: f32, max: u32| ((v * s).round().max(0.0) as u32).min(max);
        let x0 = px(d.bbox.x_min, scale.0, w - 1);
        let y0 = px(d.bbox.y_min, scale.1, h - 1);
        let x1 = px(d.bbox.x_max, scale.0, w).saturating_sub(1).max(x0);
        let y1 = px(d.bbox.y_max, scale.1, h).saturating_sub(1).max(y0);
        Some(PixelBox { x0, y0, x1, y1 })
    }
}

/// Boxes, then label tabs, worst detection first (see the module header).
pub fn draw(canvas: &mut RgbImage, detections: &[Detection], scale: (f32, f32)) {
    let (w, h) = canvas.dimensions();
    let style = Style::for_canvas(w, h);
    let placed: Vec<(&Detection, PixelBox)> = detections
        .iter()
        .filter_map(|d| Some((d, PixelBox::of(d, scale, (w, h))?)))
        .collect();
    for (d, b) in placed.iter().rev() {
        draw_box(canvas, *b, style.line, class_colour(d.class_id));
    }
    let tabs = place_tabs(&placed, &style, (w, h));
    for ((d, _), tab) in placed.iter().zip(&tabs).rev() {
        draw_tab(canvas, *tab, d, &style);
    }
}

/// Each detection's tab, best first: where [`tab_rect`] puts it, moved down one tab height at a time
/// (inside its box, at most 8 times) while it would cover a better detection's tab, so two boxes in
/// nearly the same place still show both labels.
pub fn place_tabs(
    placed: &[(&Detection, PixelBox)],
    style: &Style,
    canvas: (u32, u32),
) -> Vec<(u32, u32, u32, u32)> {
    let overlaps = |a: &(u32, u32, u32, u32), b: &(u32, u32, u32, u32)| {
        a.0 < b.0 + b.2 && b.0 < a.0 + a.2 && a.1 < b.1 + b.3 && b.1 < a.1 + a.3
    };
    let mut tabs: Vec<(u32, u32, u32, u32)> = Vec::with_capacity(placed.len());
    for (d, b) in placed {
        let mut tab = tab_rect(*b, &tab_text(d), style, canvas);
        for _ in 0..8 {
            if !tabs.iter().any(|t| overlaps(t, &tab)) {
                break;
            }
            let lower = (tab.1 + tab.3).min(canvas.1 - tab.3);
            if lower == tab.1 || lower > b.y1 {
                break;
            }
            tab.1 = lower;
        }
        tabs.push(tab);
    }
    tabs
}

fn fill(canvas: &mut RgbImage, x0: u32, y0: u32, x1: u32, y1: u32, colour: [u8; 3]) {
    let (w, h) = canvas.dimensions();
    for y in y0..=y1.min(h.saturating_sub(1)) {
        for x in x0..=x1.min(w.saturating_sub(1)) {
            canvas.put_pixel(x, y, image::Rgb(colour));
        }
    }
}

/// A hollow rectangle `line` pixels thick, drawn inward from the box's edges.
fn draw_box(canvas: &mut RgbImage, b: PixelBox, line: u32, colour: [u8; 3]) {
    let t = line.saturating_sub(1);
    fill(canvas, b.x0, b.y0, b.x1, (b.y0 + t).min(b.y1), colour); // top
    fill(
        canvas,
        b.x0,
        b.y1.saturating_sub(t).max(b.y0),
        b.x1,
        b.y1,
        colour,
    ); // bottom
    fill(canvas, b.x0, b.y0, (b.x0 + t).min(b.x1), b.y1, colour); // left
    fill(
        canvas,
        b.x1.saturating_sub(t).max(b.x0),
        b.y0,
        b.x1,
        b.y1,
        colour,
    ); // right
}

/// The text of a detection's tab.
pub fn tab_text(d: &Detection) -> String {
    format!("{} {:.2}", d.label, d.score)
}

/// Where a detection's tab goes: `(x, y, width, height)` in canvas pixels, inside the canvas.
pub fn tab_rect(
    b: PixelBox,
    text: &str,
    style: &Style,
    canvas: (u32, u32),
) -> (u32, u32, u32, u32) {
    let scaled = font().as_scaled(PxScale::from(style.text_px));
    let text_w: f32 = text
        .chars()
        .map(|c| scaled.h_advance(scaled.glyph_id(c)))
        .sum();
    let tab_w = (text_w.ceil() as u32 + 2 * style.pad).min(canvas.0);
    let tab_h = ((scaled.ascent() - scaled.descent()).ceil() as u32 + 2 * style.pad).min(canvas.1);
    let x = b.x0.min(canvas.0 - tab_w);
    // Above the box when it fits, else just inside its top edge, never past the bottom.
    let y = if b.y0 >= tab_h { b.y0 - tab_h } else { b.y0 };
    let y = y.min(canvas.1 - tab_h);
    (x, y, tab_w, tab_h)
}

fn draw_tab(canvas: &mut RgbImage, tab: (u32, u32, u32, u32), d: &Detection, style: &Style) {
    let text = tab_text(d);
    let (x, y, tab_w, tab_h) = tab;
    if tab_w == 0 || tab_h == 0 {
        return;
    }
    let background = class_colour(d.class_id);
    fill(canvas, x, y, x + tab_w - 1, y + tab_h - 1, background);
    let ink = text_colour(background).map(f32::from);
    let font = font();
    let scaled = font.as_scaled(PxScale::from(style.text_px));
    let baseline = y as f32 + style.pad as f32 + scaled.ascent();
    let mut cursor = (x + style.pad) as f32;
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        let glyph = id.with_scale_and_position(style.text_px, point(cursor, baseline));
        cursor += scaled.h_advance(id);
        let Some(outline) = font.outline_glyph(glyph) else {
            continue; // a space
        };
        let bounds = outline.px_bounds();
        outline.draw(|gx, gy, coverage| {
            let px = bounds.min.x as i64 + i64::from(gx);
            let py = bounds.min.y as i64 + i64::from(gy);
            // Clipped to the tab, so long labels never spill over the picture or its border.
            let inside = px >= i64::from(x)
                && py >= i64::from(y)
                && px < i64::from(x + tab_w)
                && py < i64::from(y + tab_h);
            if inside {
                let p = canvas.get_pixel_mut(px as u32, py as u32);
                for (c, ink) in p.0.iter_mut().zip(ink) {
                    let c0 = f32::from(*c);
                    *c = (c0 + (ink - c0) * coverage.clamp(0.0, 1.0)).round() as u8;
                }
            }
        });
    }
}

/// A `Write` that refuses to grow past a cap, so an encoder stops as soon as its output is too large.
struct Capped {
    bytes: Vec<u8>,
    cap: usize,
    over: bool,
}

impl Write for Capped {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + data.len() > self.cap {
            self.over = true;
            return Err(std::io::Error::other("over the response size limit"));
        }
        self.bytes.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Encodes the picture, stopping with `response_too_large` as soon as it passes `spec.max_bytes`.
pub fn encode(canvas: &RgbImage, spec: &Spec) -> Result<Vec<u8>> {
    let (w, h) = canvas.dimensions();
    let cap = spec.max_bytes.unwrap_or(usize::MAX);
    let mut out = Capped {
        bytes: Vec::with_capacity((w as usize * h as usize / 4).min(cap)),
        cap,
        over: false,
    };
    let result: std::result::Result<(), crate::core::error::Cause> = match spec.encoding {
        Encoding::Jpeg => {
            let (ew, eh) = (
                u16::try_from(w)
                    .map_err(|_| Error::internal(format!("{w} px is too wide for JPEG")))?,
                u16::try_from(h)
                    .map_err(|_| Error::internal(format!("{h} px is too tall for JPEG")))?,
            );
            jpeg_encoder::Encoder::new(&mut out, spec.jpeg_quality)
                .encode(canvas.as_raw(), ew, eh, jpeg_encoder::ColorType::Rgb)
                .map_err(Into::into)
        }
        Encoding::Png => {
            use image::codecs::png::{CompressionType, FilterType as PngFilter, PngEncoder};
            use image::ImageEncoder;
            PngEncoder::new_with_quality(&mut out, CompressionType::Fast, PngFilter::Adaptive)
                .write_image(canvas.as_raw(), w, h, image::ExtendedColorType::Rgb8)
                .map_err(Into::into)
        }
    };
    // The flag, not only the result: an encoder may swallow a failed write (png writes its last chunk
    // on drop), and a picture cut short must never be answered.
    if out.over {
        return Err(Error::ResponseTooLarge {
            detail: format!(
                "the annotated {w}x{h} {} is over the {cap} bytes a response can carry; lower \
                 annotate_max_side or jpeg_quality, or ask for JPEG",
                spec.encoding.content_type(),
            ),
        });
    }
    result.map_err(|e| Error::internal("encoding the annotated image").caused_by(e))?;
    Ok(out.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::response::BoundingBox;

    fn det(class_id: usize, score: f32, b: [f32; 4]) -> Detection {
        Detection {
            label: format!("class{class_id}"),
            class_id,
            score,
            bbox: BoundingBox {
                x_min: b[0],
                y_min: b[1],
                x_max: b[2],
                y_max: b[3],
            },
        }
    }

    const GREY: [u8; 3] = [128, 128, 128];

    #[test]
    fn the_embedded_font_has_every_printable_ascii_glyph() {
        let f = FontRef::try_from_slice(FONT).unwrap();
        for c in ' '..='~' {
            assert_ne!(f.glyph_id(c).0, 0, "{c:?}");
        }
    }

    #[test]
    fn canvas_scales_down_only_and_keeps_the_aspect() {
        assert_eq!(canvas_size((4000, 2500), 1280), (1280, 800));
        assert_eq!(canvas_size((2500, 4000), 1280), (800, 1280));
        assert_eq!(canvas_size((451, 300), 1280), (451, 300));
        assert_eq!(canvas_size((10_000, 1), 64), (64, 1));
    }

    #[test]
    fn neighbouring_classes_have_distinct_colours() {
        let dist = |a: [u8; 3], b: [u8; 3]| -> u32 {
            a.iter().zip(b).map(|(x, y)| u32::from(x.abs_diff(y))).sum()
        };
        for c in 0..PALETTE.len() {
            assert!(
                dist(class_colour(c), class_colour(c + 1)) >= 120,
                "{c} and {}",
                c + 1
            );
        }
        assert_eq!(class_colour(3), class_colour(23));
    }

    /// Box edges lie on the box, in the class colour, `line` pixels thick; the inside stays as it was.
    #[test]
    fn box_edges_are_where_the_box_is_in_the_class_colour() {
        let mut canvas = RgbImage::from_pixel(640, 480, image::Rgb(GREY));
        let d = det(2, 0.9, [100.0, 200.0, 300.0, 400.0]);
        draw(&mut canvas, std::slice::from_ref(&d), (1.0, 1.0));
        let style = Style::for_canvas(640, 480);
        let colour = class_colour(2);
        let at = |x, y| canvas.get_pixel(x, y).0;
        for t in 0..style.line {
            assert_eq!(at(100 + t, 300), colour, "left edge");
            assert_eq!(at(299 - t, 300), colour, "right edge");
            assert_eq!(at(200, 399 - t), colour, "bottom edge");
        }
        assert_eq!(at(100 + style.line, 300), GREY, "inside the left edge");
        assert_eq!(at(99, 300), GREY, "outside the left edge");
        assert_eq!(at(300, 300), GREY, "outside the right edge");
        assert_eq!(at(200, 300), GREY, "the middle");
        // The tab sits on top of the box, in the class colour, with text in it.
        let (x, y, tw, th) = tab_rect(
            PixelBox::of(&d, (1.0, 1.0), (640, 480)).unwrap(),
            &tab_text(&d),
            &style,
            (640, 480),
        );
        assert_eq!((x, y + th), (100, 200));
        let tab: Vec<[u8; 3]> = (y..y + th)
            .flat_map(|yy| (x..x + tw).map(move |xx| (xx, yy)))
            .map(|(xx, yy)| at(xx, yy))
            .collect();
        assert!(tab.iter().filter(|p| **p == colour).count() > tab.len() / 2);
        assert!(
            tab.iter().any(|p| *p == text_colour(colour)),
            "no text drawn"
        );
    }

    /// A box at each border and corner: every tab lies inside the picture.
    #[test]
    fn label_tabs_stay_inside_the_picture_at_every_border() {
        let (w, h) = (320u32, 240u32);
        let style = Style::for_canvas(w, h);
        for b in [
            [0.0, 0.0, 50.0, 50.0],
            [270.0, 0.0, 320.0, 40.0],
            [0.0, 200.0, 60.0, 240.0],
            [280.0, 220.0, 320.0, 240.0],
            [0.0, 0.0, 320.0, 240.0],
            [300.0, 100.0, 320.0, 110.0],
        ] {
            let d = Detection {
                label: "a rather long label".into(),
                ..det(0, 0.5, b)
            };
            let pb = PixelBox::of(&d, (1.0, 1.0), (w, h)).unwrap();
            let (x, y, tw, th) = tab_rect(pb, &tab_text(&d), &style, (w, h));
            assert!(
                x + tw <= w && y + th <= h,
                "{b:?}: tab at {x},{y} {tw}x{th}"
            );
            let mut canvas = RgbImage::from_pixel(w, h, image::Rgb(GREY));
            draw(&mut canvas, &[d], (1.0, 1.0)); // and drawing it does not panic
        }
    }

    #[test]
    fn scaled_boxes_follow_the_scale() {
        let d = det(0, 0.5, [100.0, 50.0, 300.0, 250.0]);
        let b = PixelBox::of(&d, (0.5, 0.5), (200, 150)).unwrap();
        assert_eq!((b.x0, b.y0, b.x1, b.y1), (50, 25, 149, 124));
    }

    #[test]
    fn encodings_decode_back_and_a_cap_refuses_rather_than_truncates() {
        let canvas = RgbImage::from_fn(200, 100, |x, y| image::Rgb([x as u8, y as u8, 77]));
        for encoding in [Encoding::Jpeg, Encoding::Png] {
            let spec = Spec {
                encoding,
                max_side: 1280,
                jpeg_quality: 85,
                max_bytes: None,
            };
            let bytes = encode(&canvas, &spec).unwrap();
            let back = image::load_from_memory(&bytes).unwrap();
            assert_eq!((back.width(), back.height()), (200, 100), "{encoding:?}");
            let tight = Spec {
                max_bytes: Some(bytes.len() - 1),
                ..spec
            };
            assert_eq!(
                encode(&canvas, &tight).unwrap_err().code(),
                "response_too_large"
            );
        }
    }

    /// Two detections in nearly the same place (a cat that is also called a dog): both labels show.
    #[test]
    fn tabs_of_coinciding_boxes_do_not_cover_each_other() {
        let (w, h) = (451u32, 300u32);
        let style = Style::for_canvas(w, h);
        let cat = det(15, 0.55, [1.7, 0.3, 440.4, 295.1]);
        let dog = det(16, 0.41, [2.0, 0.5, 441.0, 295.0]);
        let placed: Vec<(&Detection, PixelBox)> = [&cat, &dog]
            .into_iter()
            .map(|d| (d, PixelBox::of(d, (1.0, 1.0), (w, h)).unwrap()))
            .collect();
        let tabs = place_tabs(&placed, &style, (w, h));
        let (a, b) = (tabs[0], tabs[1]);
        assert!(b.1 >= a.1 + a.3, "{a:?} {b:?}");
        assert!(b.1 + b.3 <= h);
    }
}
