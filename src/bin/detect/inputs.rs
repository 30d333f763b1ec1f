//! What `detect` reads: files as given, `-` for standard input, and directories walked recursively for
//! image files.
//!
//! A walk follows symbolic links (a loop is skipped with a warning, never followed forever), skips hidden
//! entries (names starting with `.`), takes a file when its extension is an image format's or, for any
//! other name, when its first bytes are one, and visits entries sorted by name, depth first: the same
//! tree gives the same order on every run and machine. A file reached twice through links is read once.

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

/// One thing to detect in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// `-`: one image on standard input.
    Stdin,
    /// A file named on the command line or found in a directory.
    File(PathBuf),
    /// Something under a directory that could not be read (permission denied, vanished).
    Unreadable { path: PathBuf, error: String },
}

impl Input {
    /// The name its output line carries in `"file"`.
    pub fn name(&self) -> String {
        match self {
            Input::Stdin => "-".into(),
            Input::File(path) | Input::Unreadable { path, .. } => path.display().to_string(),
        }
    }
}

/// Extensions of the formats `detect` decodes, lower case.
const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "jpe", "jfif", "png", "webp", "gif", "bmp"];

/// The inputs of `args`, in order: each argument in the order given, a directory replaced by its image
/// files. `warn` hears what a walk skipped and why.
pub fn expand(args: &[String], mut warn: impl FnMut(String)) -> Vec<Input> {
    let mut inputs = Vec::new();
    let mut seen = HashSet::new();
    for arg in args {
        let path = Path::new(arg);
        if arg == "-" {
            inputs.push(Input::Stdin);
        } else if path.is_dir() {
            walk(path, &mut seen, &mut inputs, &mut warn);
        } else {
            // Named files are read as asked, image or not, and report their own errors.
            inputs.push(Input::File(path.to_path_buf()));
        }
    }
    inputs
}

fn walk(
    root: &Path,
    seen: &mut HashSet<PathBuf>,
    inputs: &mut Vec<Input>,
    warn: &mut impl FnMut(String),
) {
    let entries = WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !is_hidden(e.file_name()));
    for entry in entries {
        match entry {
            Ok(entry) if entry.file_type().is_file() => {
                let path = entry.into_path();
                // The same file through two links: once.
                let key = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
                if seen.insert(key) && is_image(&path) {
                    inputs.push(Input::File(path));
                }
            }
            Ok(_) => {}
            Err(e) if e.loop_ancestor().is_some() => warn(format!(
                "skipping {}: a symbolic link loop",
                e.path()
                    .map_or_else(String::new, |p| p.display().to_string())
            )),
            Err(e) => {
                let path = e.path().map(Path::to_path_buf).unwrap_or_default();
                let error = e
                    .io_error()
                    .map_or_else(|| e.to_string(), ToString::to_string);
                inputs.push(Input::Unreadable { path, error });
            }
        }
    }
}

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}

/// An image by its extension, or else by its first bytes.
fn is_image(path: &Path) -> bool {
    let by_extension = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
    by_extension || starts_like_an_image(path)
}

fn starts_like_an_image(path: &Path) -> bool {
    let mut head = [0u8; 32];
    let n = match File::open(path).and_then(|mut f| f.read(&mut head)) {
        Ok(n) => n,
        Err(_) => return false,
    };
    matches!(
        image::guess_format(&head[..n]),
        Ok(image::ImageFormat::Jpeg
            | image::ImageFormat::Png
            | image::ImageFormat::WebP
            | image::ImageFormat::Gif
            | image::ImageFormat::Bmp)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(inputs: &[Input]) -> Vec<String> {
        inputs.iter().map(Input::name).collect()
    }

    #[test]
    fn a_walk_takes_images_by_extension_or_content_in_a_stable_order() {
        let dir = std::env::temp_dir().join(format!("detect-inputs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("b/.hidden")).unwrap();
        std::fs::create_dir_all(dir.join("a")).unwrap();
        std::fs::create_dir_all(dir.join(".git")).unwrap();
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        for (rel, bytes) in [
            ("b/2.JPG", &b"anything"[..]),
            ("b/1.png", &b"x"[..]),
            ("a/photo", &png[..]),
            ("a/notes.txt", &b"hello"[..]),
            ("b/.hidden/x.jpg", &b"x"[..]),
            (".git/y.png", &b"x"[..]),
            (".z.png", &b"x"[..]),
            ("top.webp", &b"x"[..]),
        ] {
            std::fs::write(dir.join(rel), bytes).unwrap();
        }
        #[cfg(unix)]
        {
            // A loop and a second way to reach the same file.
            std::os::unix::fs::symlink(&dir, dir.join("b/loop")).unwrap();
            std::os::unix::fs::symlink(dir.join("top.webp"), dir.join("a/again.webp")).unwrap();
        }
        let mut warnings = Vec::new();
        let root = dir.display().to_string();
        let inputs = expand(&[root.clone(), "-".into(), "some/file.txt".into()], |w| {
            warnings.push(w)
        });
        let rel: Vec<String> = names(&inputs)
            .into_iter()
            .map(|n| n.replacen(&root, "", 1))
            .collect();
        let mut want = vec![
            "/a/photo",
            "/b/1.png",
            "/b/2.JPG",
            "/top.webp",
            "-",
            "some/file.txt",
        ];
        if cfg!(unix) {
            // Reached first through the link (a/ sorts before top.webp), then not again.
            want.insert(0, "/a/again.webp");
            want.retain(|n| *n != "/top.webp");
            assert_eq!(warnings.len(), 1, "{warnings:?}");
            assert!(warnings[0].contains("loop"), "{warnings:?}");
        }
        assert_eq!(rel, want);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
