//! Upright RGB image to the model's input tensor: resize (letterbox or stretch), channel order,
//! normalisation and layout, plus the geometry that maps boxes back to image pixels.

use fast_image_resize::images::{Image as FirImage, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;
use tract_onnx::prelude::{tract_ndarray, Tensor};

use crate::core::error::{Cause, Error, Result};
use crate::core::manifest::{ColorOrder, Filter, InputSpec, Layout, ResizeMode};

/// Where the image sits inside the model input: `x_in = x_img * scale_x + offset_x`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    pub image_width: u32,
    pub image_height: u32,
    /// Size of the resized image inside the input.
    pub resized_width: u32,
    pub resized_height: u32,
    /// Top-left corner of the resized image inside the input, in input pixels.
    pub offset_x: u32,
    pub offset_y: u32,
    /// Exact per-axis scale of the resize that was performed (`resized / image`).
    pub scale_x: f32,
    pub scale_y: f32,
}

impl Geometry {
    pub fn new(mode: ResizeMode, image: (u32, u32), input: (u32, u32)) -> Self {
        let (w, h) = image;
        let (iw, ih) = input;
        let (rw, rh) = match mode {
            ResizeMode::Stretch => (iw, ih),
            ResizeMode::LetterboxCenter | ResizeMode::LetterboxTopLeft => {
                let scale = (f64::from(iw) / f64::from(w)).min(f64::from(ih) / f64::from(h));
                // Ties to even, as Python's round(): the reference pipeline picks the same size.
                let fit = |v: u32, max: u32| {
                    ((f64::from(v) * scale).round_ties_even() as u32).clamp(1, max)
                };
                (fit(w, iw), fit(h, ih))
            }
        };
        let (ox, oy) = match mode {
            ResizeMode::LetterboxCenter => ((iw - rw) / 2, (ih - rh) / 2),
            ResizeMode::LetterboxTopLeft | ResizeMode::Stretch => (0, 0),
        };
        Geometry {
            image_width: w,
            image_height: h,
            resized_width: rw,
            resized_height: rh,
            offset_x: ox,
            offset_y: oy,
            scale_x: rw as f32 / w as f32,
            scale_y: rh as f32 / h as f32,
        }
    }

    /// Input pixels to image pixels, clipped to the image.
    pub fn to_image(&self, x_in: f32, y_in: f32) -> (f32, f32) {
        let x = (x_in - self.offset_x as f32) / self.scale_x;
        let y = (y_in - self.offset_y as f32) / self.scale_y;
        (
            x.clamp(0.0, self.image_width as f32),
            y.clamp(0.0, self.image_height as f32),
        )
    }

    /// Image pixels to input pixels.
    pub fn to_input(&self, x: f32, y: f32) -> (f32, f32) {
        (
            x * self.scale_x + self.offset_x as f32,
            y * self.scale_y + self.offset_y as f32,
        )
    }
}

/// `rgb` resized to `width x height` with `algorithm` (convolution filters are area-aware when they
/// shrink).
pub fn resize(rgb: &RgbImage, width: u32, height: u32, algorithm: ResizeAlg) -> Result<RgbImage> {
    let (w, h) = rgb.dimensions();
    let fail = |e: Cause| Error::internal("resize").caused_by(e);
    let src = ImageRef::new(w, h, rgb.as_raw(), PixelType::U8x3).map_err(|e| fail(e.into()))?;
    let mut dst = FirImage::new(width, height, PixelType::U8x3);
    Resizer::new()
        .resize(&src, &mut dst, &ResizeOptions::new().resize_alg(algorithm))
        .map_err(|e| fail(e.into()))?;
    RgbImage::from_raw(width, height, dst.into_vec())
        .ok_or_else(|| Error::internal("resize: buffer size"))
}

/// Turns images into input tensors for one model; built once per model.
#[derive(Debug, Clone)]
pub struct Preprocessor {
    mode: ResizeMode,
    layout: Layout,
    width: u32,
    height: u32,
    /// Source RGB channel feeding each model channel.
    source_channel: [usize; 3],
    /// `lut[c][v]`: the normalised value of 8-bit value `v` in model channel `c`.
    lut: Box<[[f32; 256]; 3]>,
    pad: [f32; 3],
    algorithm: ResizeAlg,
}

impl Preprocessor {
    pub fn new(spec: &InputSpec) -> Self {
        let source_channel = match spec.color {
            ColorOrder::Rgb => [0, 1, 2],
            ColorOrder::Bgr => [2, 1, 0],
        };
        let mut lut = Box::new([[0f32; 256]; 3]);
        for (c, table) in lut.iter_mut().enumerate() {
            for (v, out) in table.iter_mut().enumerate() {
                *out = (v as f32 * spec.scale - spec.mean[c]) / spec.std[c];
            }
        }
        let pad = [0, 1, 2].map(|c| lut[c][usize::from(spec.pad_value)]);
        let algorithm = match spec.filter {
            Filter::Nearest => ResizeAlg::Nearest,
            Filter::Bilinear => ResizeAlg::Convolution(FilterType::Bilinear),
            Filter::Bicubic => ResizeAlg::Convolution(FilterType::CatmullRom),
        };
        Preprocessor {
            mode: spec.resize,
            layout: spec.layout,
            width: spec.width,
            height: spec.height,
            source_channel,
            lut,
            pad,
            algorithm,
        }
    }

    pub fn input_shape(&self) -> [usize; 4] {
        let (w, h) = (self.width as usize, self.height as usize);
        match self.layout {
            Layout::Nchw => [1, 3, h, w],
            Layout::Nhwc => [1, h, w, 3],
        }
    }

    pub fn geometry(&self, image: (u32, u32)) -> Geometry {
        Geometry::new(self.mode, image, (self.width, self.height))
    }

    /// Resizes `rgb` and writes the normalised input tensor.
    pub fn run(&self, rgb: &RgbImage) -> Result<(Tensor, Geometry)> {
        self.run_scaled(rgb, rgb.dimensions())
    }

    /// As [`Preprocessor::run`], for pixels that stand for an image of size `image` (a reduced-scale
    /// decode): the geometry, and so every box, refers to `image`.
    pub fn run_scaled(&self, rgb: &RgbImage, image: (u32, u32)) -> Result<(Tensor, Geometry)> {
        let geometry = self.geometry(image);
        let resized;
        let pixels: &RgbImage =
            if (geometry.resized_width, geometry.resized_height) == rgb.dimensions() {
                rgb
            } else {
                resized = self.resize(rgb, &geometry)?;
                &resized
            };
        let data = self.normalise(pixels, &geometry);
        let tensor = tract_ndarray::Array4::from_shape_vec(self.input_shape(), data)
            .map_err(|e| Error::internal("input tensor").caused_by(e))?
            .into();
        Ok((tensor, geometry))
    }

    fn resize(&self, rgb: &RgbImage, g: &Geometry) -> Result<RgbImage> {
        resize(rgb, g.resized_width, g.resized_height, self.algorithm)
    }

    /// Writes the padded, normalised input in the model's layout; `pixels` is already resized.
    fn normalise(&self, pixels: &RgbImage, g: &Geometry) -> Vec<f32> {
        let (w, h) = (self.width as usize, self.height as usize);
        let plane = w * h;
        let mut out = vec![0f32; 3 * plane];
        let (rw, rh) = (g.resized_width as usize, g.resized_height as usize);
        let (ox, oy) = (g.offset_x as usize, g.offset_y as usize);
        let src = pixels.as_raw();
        match self.layout {
            Layout::Nchw => {
                for c in 0..3 {
                    let channel = &mut out[c * plane..(c + 1) * plane];
                    channel.fill(self.pad[c]);
                    let (lut, sc) = (&self.lut[c], self.source_channel[c]);
                    for y in 0..rh {
                        let row = &src[y * rw * 3..(y + 1) * rw * 3];
                        let dst = &mut channel[(y + oy) * w + ox..(y + oy) * w + ox + rw];
                        for (d, px) in dst.iter_mut().zip(row.chunks_exact(3)) {
                            *d = lut[usize::from(px[sc])];
                        }
                    }
                }
            }
            Layout::Nhwc => {
                for px in out.chunks_exact_mut(3) {
                    px.copy_from_slice(&self.pad);
                }
                for y in 0..rh {
                    let row = &src[y * rw * 3..(y + 1) * rw * 3];
                    let dst = &mut out[((y + oy) * w + ox) * 3..((y + oy) * w + ox + rw) * 3];
                    for (d, px) in dst.chunks_exact_mut(3).zip(row.chunks_exact(3)) {
                        for c in 0..3 {
                            d[c] = self.lut[c][usize::from(px[self.source_channel[c]])];
                        }
                    }
                }
            }
        }
        debug_assert!(h * w * 3 == out.len());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    fn spec(resize: ResizeMode, layout: Layout, color: ColorOrder) -> InputSpec {
        InputSpec {
            name: None,
            width: 8,
            height: 8,
            layout,
            color,
            scale: 1.0,
            mean: [10.0, 20.0, 30.0],
            std: [2.0, 4.0, 5.0],
            resize,
            pad_value: 0,
            filter: Filter::Bilinear,
        }
    }

    #[test]
    fn centred_letterbox_maps_both_ways() {
        // 640x480 into 416x416: scale 0.65, 416x312, 52 rows of padding above and below.
        let g = Geometry::new(ResizeMode::LetterboxCenter, (640, 480), (416, 416));
        assert_eq!(
            (g.resized_width, g.resized_height, g.offset_x, g.offset_y),
            (416, 312, 0, 52)
        );
        assert_eq!(g.to_input(0.0, 0.0), (0.0, 52.0));
        assert_eq!(g.to_input(640.0, 480.0), (416.0, 364.0));
        let (x, y) = g.to_image(208.0, 208.0);
        assert!(
            (x - 320.0).abs() < 1e-3 && (y - 240.0).abs() < 1e-3,
            "{x},{y}"
        );
        for (x, y) in [(0.0, 0.0), (123.4, 56.7), (640.0, 480.0), (17.0, 479.0)] {
            let (xi, yi) = g.to_input(x, y);
            let (xb, yb) = g.to_image(xi, yi);
            assert!(
                (xb - x).abs() < 1e-3 && (yb - y).abs() < 1e-3,
                "({x},{y}) -> ({xb},{yb})"
            );
        }
        // Points in the padding clip to the image edge.
        assert_eq!(g.to_image(10.0, 0.0).1, 0.0);
        assert_eq!(g.to_image(10.0, 416.0).1, 480.0);

        // Tall image: padding left and right.
        let g = Geometry::new(ResizeMode::LetterboxCenter, (300, 600), (416, 416));
        assert_eq!(
            (g.resized_width, g.resized_height, g.offset_x, g.offset_y),
            (208, 416, 104, 0)
        );
    }

    #[test]
    fn top_left_letterbox_and_stretch() {
        let g = Geometry::new(ResizeMode::LetterboxTopLeft, (640, 480), (416, 416));
        assert_eq!(
            (g.resized_width, g.resized_height, g.offset_x, g.offset_y),
            (416, 312, 0, 0)
        );
        let g = Geometry::new(ResizeMode::Stretch, (640, 480), (416, 416));
        assert_eq!((g.resized_width, g.resized_height), (416, 416));
        let (x, y) = g.to_image(208.0, 104.0);
        assert!((x - 320.0).abs() < 1e-3 && (y - 120.0).abs() < 1e-3);
    }

    #[test]
    fn extreme_aspect_ratios_keep_at_least_one_pixel() {
        let g = Geometry::new(ResizeMode::LetterboxCenter, (40_000, 1), (416, 416));
        assert_eq!((g.resized_width, g.resized_height), (416, 1));
        assert_eq!(g.offset_y, 207);
        let p = Preprocessor::new(&spec(
            ResizeMode::LetterboxCenter,
            Layout::Nchw,
            ColorOrder::Rgb,
        ));
        let (t, _) = p.run(&RgbImage::new(5000, 1)).unwrap();
        assert_eq!(t.shape(), &[1, 3, 8, 8]);
    }

    #[test]
    fn normalises_in_channel_order_and_pads() {
        // A 4x8 image into 8x8 centred: columns 2..6 hold the image, the rest is padding (value 0).
        let img = RgbImage::from_pixel(4, 8, Rgb([30, 60, 90]));
        let p = Preprocessor::new(&spec(
            ResizeMode::LetterboxCenter,
            Layout::Nchw,
            ColorOrder::Bgr,
        ));
        let (t, g) = p.run(&img).unwrap();
        assert_eq!((g.offset_x, g.resized_width), (2, 4));
        let v = crate::core::engine::f32_values(&t).unwrap();
        let at = |c: usize, y: usize, x: usize| v[c * 64 + y * 8 + x];
        // Model channel 0 is blue: (90 - 10) / 2.
        assert_eq!(at(0, 3, 2), 40.0);
        assert_eq!(at(1, 3, 5), (60.0 - 20.0) / 4.0);
        assert_eq!(at(2, 7, 3), (30.0 - 30.0) / 5.0);
        // Padding is pad_value 0 normalised.
        assert_eq!(at(0, 0, 0), -5.0);
        assert_eq!(at(2, 4, 7), -6.0);

        let p = Preprocessor::new(&spec(
            ResizeMode::LetterboxCenter,
            Layout::Nhwc,
            ColorOrder::Rgb,
        ));
        let (t, _) = p.run(&img).unwrap();
        assert_eq!(t.shape(), &[1, 8, 8, 3]);
        let v = crate::core::engine::f32_values(&t).unwrap();
        assert_eq!(
            &v[(3 * 8 + 2) * 3..(3 * 8 + 2) * 3 + 3],
            &[10.0, 10.0, 12.0]
        );
        assert_eq!(&v[0..3], &[-5.0, -5.0, -6.0]);
    }

    #[test]
    fn bilinear_downscale_averages_like_an_area_filter() {
        // A 2x-down of a fine checkerboard must come out flat grey, not aliased black or white.
        let img = RgbImage::from_fn(16, 16, |x, y| {
            if (x + y) % 2 == 0 {
                Rgb([0; 3])
            } else {
                Rgb([254; 3])
            }
        });
        let mut s = spec(ResizeMode::Stretch, Layout::Nchw, ColorOrder::Rgb);
        s.mean = [0.0; 3];
        s.std = [1.0; 3];
        let (t, _) = Preprocessor::new(&s).run(&img).unwrap();
        let v = crate::core::engine::f32_values(&t).unwrap();
        // Interior pixels (the borders see a clipped kernel): a nearest-pixel pick would give 0 or 254.
        for y in 1..7 {
            for x in 1..7 {
                let px = v[y * 8 + x];
                assert!((px - 127.0).abs() <= 3.0, "({x},{y}) = {px}");
            }
        }
    }
}
