//! `--output FILE --resume`: what an earlier, interrupted run already answered.
//!
//! A file is done when its line holds detections, or an error about the image itself (not an image,
//! corrupt, too large...): running it again would say the same. A line whose error is the machine's
//! (a file that could not be read or a picture that could not be written, a 5xx code) is tried again. A
//! last line cut short by the interruption is dropped from the file, and its image tried again.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;

use object_detector::ErrorCode;
use serde::Deserialize;

/// What an existing output file says.
#[derive(Debug, Default)]
pub struct Earlier {
    /// `"file"` of every line that needs no second run.
    pub done: HashSet<String>,
    /// Bytes up to the end of the last whole line: what to keep before appending.
    pub whole_lines_len: u64,
}

#[derive(Deserialize)]
struct Line {
    file: String,
    error: Option<LineError>,
}

#[derive(Deserialize)]
struct LineError {
    code: String,
}

/// Reads `path`; a missing file is an empty earlier run.
pub fn read(path: &Path) -> std::io::Result<Earlier> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Earlier::default()),
        Err(e) => return Err(e),
    };
    let mut done = HashSet::new();
    let mut whole_lines_len = 0;
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.last() != Some(&b'\n') {
            // Cut short: dropped, its image tried again.
            break;
        }
        whole_lines_len += line.len() as u64;
        let Ok(line) = serde_json::from_slice::<Line>(&line) else {
            continue;
        };
        let retry = line.error.is_some_and(|e| {
            ErrorCode::ALL
                .iter()
                .find(|c| c.as_str() == e.code)
                .is_none_or(|c| is_the_machines(*c))
        });
        if !retry {
            done.insert(line.file);
        }
    }
    Ok(Earlier {
        done,
        whole_lines_len,
    })
}

/// An error of the run, not of the image: worth another try.
fn is_the_machines(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::FileNotReadable | ErrorCode::FileNotWritable
    ) || !code.is_client_error()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_lines_are_results_and_image_errors_and_a_cut_line_is_retried() {
        let path = std::env::temp_dir().join(format!("detect-resume-{}.jsonl", std::process::id()));
        std::fs::write(
            &path,
            concat!(
                r#"{"file":"a.jpg","model":{},"detections":[]}"#,
                "\n",
                r#"{"file":"b.txt","error":{"code":"not_an_image","message":"x"}}"#,
                "\n",
                r#"{"file":"c.jpg","error":{"code":"file_not_readable","message":"x"}}"#,
                "\n",
                r#"{"file":"d.jpg","error":{"code":"internal_error","message":"x"}}"#,
                "\n",
                r#"{"file":"e.jpg","error":{"code":"some_future_code","message":"x"}}"#,
                "\n",
                r#"{"file":"f.jpg","detec"#
            ),
        )
        .unwrap();
        let earlier = read(&path).unwrap();
        let mut done: Vec<&str> = earlier.done.iter().map(String::as_str).collect();
        done.sort();
        assert_eq!(done, ["a.jpg", "b.txt"]);
        let whole = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            earlier.whole_lines_len as usize,
            whole.rfind('\n').unwrap() + 1
        );
        std::fs::write(&path, "").unwrap();
        let empty = read(&path).unwrap();
        assert!(empty.done.is_empty() && empty.whole_lines_len == 0);
        std::fs::remove_file(&path).unwrap();
        assert!(read(&path).unwrap().done.is_empty());
    }
}
