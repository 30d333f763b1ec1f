//! Detections in the formats other tools read: COCO results (`coco`), YOLO label files (`yolo`) and
//! Pascal VOC annotations (`voc`), written by the `detect` CLI and the batch path from pixel boxes.

pub mod coco;
pub mod voc;
pub mod yolo;

/// A format detections are written in besides the API's JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Export {
    Coco,
    Yolo,
    Voc,
}

impl Export {
    pub const NAMES: [&'static str; 3] = ["coco", "yolo", "voc"];

    pub fn from_name(name: &str) -> Option<Export> {
        match name.trim().to_ascii_lowercase().as_str() {
            "coco" => Some(Export::Coco),
            "yolo" => Some(Export::Yolo),
            "voc" => Some(Export::Voc),
            _ => None,
        }
    }

    /// The extension of a file of this format.
    pub fn extension(self) -> &'static str {
        match self {
            Export::Coco => "coco.json",
            Export::Yolo => "txt",
            Export::Voc => "xml",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Export::Coco => "application/json",
            Export::Yolo => "text/plain; charset=utf-8",
            Export::Voc => "application/xml",
        }
    }
}
