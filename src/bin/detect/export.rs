//! `--format coco|yolo|voc`: the detections in the formats other tools read (`core::export`).
//!
//! - `coco`: one JSON array of COCO results (pycocotools' `loadRes` reads it), written when the run ends,
//!   to `--output FILE` or stdout. As the run goes, its lines (the `jsonl` format) go to `FILE.jsonl`,
//!   which `--resume` reads like any `--output` of lines, so an interrupted run goes on and a finished
//!   one is not run again. Image ids come from `--annotations` (a COCO annotation file, by file name)
//!   or else from the file name's number; category ids from the annotation file or the manifest.
//! - `yolo` and `voc`: one file per image in `--output DIR`, named after the image (`cat.txt`,
//!   `cat-2.txt` for a namesake from another folder), written whole or not at all; `--resume` skips an
//!   image whose file is there. The JSON lines still go to stdout, naming the file (`"exported"`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use object_detector::core::coco::{CategoryMap, Dataset, ScoredBox};
use object_detector::core::error::Failure;
use object_detector::core::export::{self, Export};
use object_detector::{ErrorCode, Manifest, Response};

use crate::inputs::Input;
use crate::names::FileNames;

/// The file `--format coco --output FILE` keeps its lines in as it goes: `FILE.jsonl`.
pub fn journal_path(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_owned();
    name.push(".jsonl");
    PathBuf::from(name)
}

/// The file each input's export goes to in `dir`, named before any input is left out by `--resume`,
/// so a namesake keeps its name from one run to the next.
pub fn file_paths(dir: &Path, export: Export, inputs: &[Input]) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("--output {}: {e}", dir.display()))?;
    let mut names = FileNames {
        dir: dir.to_path_buf(),
        used: Default::default(),
    };
    Ok(inputs
        .iter()
        .map(|input| names.next(&input.name(), export.extension()))
        .collect())
}

/// One image's YOLO or VOC file, written whole (to a temporary name, then renamed) or not at all.
pub fn write_file(
    export: Export,
    path: &Path,
    file: &str,
    response: &Response,
) -> Result<(), Failure> {
    let contents = match export {
        Export::Yolo => export::yolo::label_file(response),
        Export::Voc => {
            let name = Path::new(file)
                .file_name()
                .map_or_else(|| file.to_string(), |n| n.to_string_lossy().into_owned());
            export::voc::annotation(response, &name)
        }
        Export::Coco => unreachable!("COCO results are one file for the run"),
    };
    write_whole(path, contents.as_bytes()).map_err(|e| {
        Failure::new(
            ErrorCode::FileNotWritable,
            format!("{}: {e}", path.display()),
        )
    })
}

/// `bytes` written to `path` whole: to a temporary name beside it, then renamed, so a file that is
/// there is complete (what `--resume` relies on).
pub fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    std::fs::write(&partial, bytes)?;
    std::fs::rename(&partial, path)
}

/// Image and category ids for COCO results.
pub struct CocoIds {
    /// `--annotations`: image id by file name.
    by_name: Option<HashMap<String, u64>>,
    categories: CategoryMap,
}

impl CocoIds {
    /// From `--annotations` when given, else the manifest's `category_ids` and the file names.
    pub fn new(annotations: Option<&Path>, manifest: &Manifest) -> Result<CocoIds, String> {
        let Some(path) = annotations else {
            let categories = CategoryMap::of_manifest(manifest).ok_or_else(|| {
                format!(
                    "--format coco: the model {} has no COCO category ids in its manifest; name the \
                     annotation file whose categories its labels are (--annotations)",
                    manifest.name
                )
            })?;
            return Ok(CocoIds {
                by_name: None,
                categories,
            });
        };
        let bytes =
            std::fs::read(path).map_err(|e| format!("--annotations {}: {e}", path.display()))?;
        let dataset = Dataset::from_json(&bytes)
            .map_err(|e| format!("--annotations {}: {e}", path.display()))?;
        let categories = CategoryMap::between(manifest, &dataset)
            .map_err(|e| format!("--annotations {}: {e}", path.display()))?;
        let by_name = dataset
            .images
            .iter()
            .map(|image| (base_name(&image.file_name), image.id))
            .collect();
        Ok(CocoIds {
            by_name: Some(by_name),
            categories,
        })
    }

    /// The COCO results of every line of `lines` (the `jsonl` format; a file's last line counts), in
    /// the order files first appear; and the files left out, with why (an error line, a file the
    /// annotation file does not list, an image id two files share).
    pub fn results(&self, lines: &str) -> (Vec<ScoredBox>, Vec<String>) {
        let mut last: HashMap<String, serde_json::Value> = HashMap::new();
        let mut order = Vec::new();
        for line in lines.lines().filter(|l| !l.trim().is_empty()) {
            let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let Some(file) = value
                .get("file")
                .and_then(|f| f.as_str())
                .map(str::to_string)
            else {
                continue;
            };
            if !last.contains_key(&file) {
                order.push(file.clone());
            }
            last.insert(file, value);
        }
        let mut results = Vec::new();
        let mut left_out = Vec::new();
        let mut owner: HashMap<u64, String> = HashMap::new();
        for file in order {
            let value = last.remove(&file).unwrap_or_default();
            if let Some(error) = value.get("error") {
                left_out.push(format!(
                    "{file}: {}",
                    error["code"].as_str().unwrap_or("error")
                ));
                continue;
            }
            let Ok(response) = serde_json::from_value::<Response>(value) else {
                left_out.push(format!("{file}: not a detection line"));
                continue;
            };
            let id = match &self.by_name {
                None => export::coco::image_id(&file),
                Some(by_name) => match by_name.get(&base_name(&file)) {
                    Some(&id) => id,
                    None => {
                        left_out.push(format!("{file}: not an image of the annotation file"));
                        continue;
                    }
                },
            };
            if let Some(first) = owner.get(&id) {
                left_out.push(format!("{file}: image id {id} is {first}'s too"));
                continue;
            }
            owner.insert(id, file.clone());
            results.extend(export::coco::results(id, &response, &self.categories));
        }
        (results, left_out)
    }
}

fn base_name(file: &str) -> String {
    file.rsplit(['/', '\\']).next().unwrap_or(file).to_string()
}
