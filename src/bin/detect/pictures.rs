//! File names for the annotated pictures `detect --annotate DIR` writes.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// File names for the annotated pictures of one run: `<stem>.annotated.<ext>`, with `-2`, `-3`...
/// after the stem when an earlier input of this run had the same stem.
pub struct PictureNames {
    pub dir: PathBuf,
    pub used: HashSet<PathBuf>,
}

impl PictureNames {
    pub fn next(&mut self, file: &str, extension: &str) -> PathBuf {
        let stem = match file {
            "-" => "stdin".to_string(),
            _ => Path::new(file)
                .file_stem()
                .map_or("image".into(), |s| s.to_string_lossy().into_owned()),
        };
        let mut n = 1;
        loop {
            let name = match n {
                1 => format!("{stem}.annotated.{extension}"),
                _ => format!("{stem}-{n}.annotated.{extension}"),
            };
            let path = self.dir.join(name);
            if self.used.insert(path.clone()) {
                return path;
            }
            n += 1;
        }
    }
}
