//! Detections as a Pascal VOC annotation file: the image's file name and size, one `object` per
//! detection with its label, its box in pixels (`bndbox`) and its score.

use std::fmt::Write as _;

use crate::core::response::Response;

/// The annotation XML of one image's detections (pixel boxes); `file_name` is the image's.
pub fn annotation(response: &Response, file_name: &str) -> String {
    let mut xml = String::from("<annotation>\n");
    let _ = writeln!(xml, "  <filename>{}</filename>", escape(file_name));
    let _ = writeln!(
        xml,
        "  <size>\n    <width>{}</width>\n    <height>{}</height>\n    <depth>3</depth>\n  </size>",
        response.image.width, response.image.height
    );
    for d in &response.detections {
        let b = &d.bbox;
        // Whole pixels, as VOC's tools read them; the exclusive right and bottom edges round to the
        // last pixel's far side.
        let _ = writeln!(
            xml,
            "  <object>\n    <name>{}</name>\n    <pose>Unspecified</pose>\n    <truncated>0</truncated>\n    \
             <difficult>0</difficult>\n    <score>{}</score>\n    <bndbox>\n      <xmin>{}</xmin>\n      \
             <ymin>{}</ymin>\n      <xmax>{}</xmax>\n      <ymax>{}</ymax>\n    </bndbox>\n  </object>",
            escape(&d.label),
            d.score,
            b.x_min.round(),
            b.y_min.round(),
            b.x_max.round(),
            b.y_max.round()
        );
    }
    xml.push_str("</annotation>\n");
    xml
}

/// Text as XML character data: the five special characters escaped, control characters (which XML
/// 1.0 cannot carry) replaced.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped() {
        assert_eq!(
            escape("a<b>&\"c'\u{1}"),
            "a&lt;b&gt;&amp;&quot;c&apos;\u{FFFD}"
        );
    }
}
