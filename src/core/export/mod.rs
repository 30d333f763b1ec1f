//! Detections in the formats other tools read: COCO results (`coco`).

pub mod coco;
