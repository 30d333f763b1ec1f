//! File names for what `detect` writes per image into a folder: annotated pictures (`--annotate DIR`),
//! YOLO and VOC files (`--format yolo|voc --output DIR`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// File names for one run's files in one folder: `<stem>.<suffix>` (`cat.annotated.jpg`, `cat.txt`),
/// with `-2`, `-3`... after the stem when an earlier input of this run had the same stem.
pub struct FileNames {
    pub dir: PathBuf,
    pub used: HashSet<PathBuf>,
}

impl FileNames {
    pub fn next(&mut self, file: &str, suffix: &str) -> PathBuf {
        let stem = match file {
            "-" => "stdin".to_string(),
            _ => Path::new(file)
                .file_stem()
                .map_or("image".into(), |s| s.to_string_lossy().into_owned()),
        };
        let mut n = 1;
        loop {
            let name = match n {
                1 => format!("{stem}.{suffix}"),
                _ => format!("{stem}-{n}.{suffix}"),
            };
            let path = self.dir.join(name);
            if self.used.insert(path.clone()) {
                return path;
            }
            n += 1;
        }
    }
}
