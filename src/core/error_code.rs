//! Every stable error code the product answers with, in one table: its string (part of the public
//! contract: clients branch on it, so it never changes once released), the HTTP status the HTTP front
//! doors answer it with, and when it happens. The error table of docs/api.md is checked against this one.
//!
//! The core's [`crate::Error`] and [`crate::core::error::Failure`] (what every front door reports)
//! carry an [`ErrorCode`]; the CLI prints it. A code that is not in this table cannot be written.

use serde::{Serialize, Serializer};

macro_rules! error_codes {
    ($( $variant:ident = $code:literal, $status:literal, $when:literal; )*) => {
        /// A stable error code; see the module table.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( #[doc = $when] $variant, )*
        }

        impl ErrorCode {
            /// Every code, in table order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as clients see it.
            pub const fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            /// The status an HTTP response with this code has.
            pub const fn http_status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status,)* }
            }

            /// When it happens, in a few words.
            pub const fn when(self) -> &'static str {
                match self { $(ErrorCode::$variant => $when,)* }
            }
        }
    };
}

error_codes! {
    EmptyBody = "empty_body", 400, "no body";
    EmptyImage = "empty_image", 400, "the image is 0 bytes";
    InvalidBase64 = "invalid_base64", 400, "the body or `image` field is not base64";
    InvalidJson = "invalid_json", 400, "the JSON body does not parse, or is not an object";
    MissingImage = "missing_image", 400, "JSON or form without an `image` field";
    InvalidMultipart = "invalid_multipart", 400, "malformed multipart body, or more than 32 fields";
    InvalidParameter = "invalid_parameter", 400, "an option out of range, of the wrong type, unknown, or a label the model lacks; more than 64 query parameters or 256 `classes`";
    InvalidEvent = "invalid_event", 400, "an event of a known shape that does not parse, or of no known shape";
    FileNotReadable = "file_not_readable", 400, "the `detect` CLI cannot read a file it was given";
    NotFound = "not_found", 404, "unknown route";
    MethodNotAllowed = "method_not_allowed", 405, "wrong method for the route";
    ImageTooLarge = "image_too_large", 413, "over the pixel budget or decode-memory cap";
    UnsupportedMediaType = "unsupported_media_type", 415, "a content type that is not accepted, and bytes that are not an image";
    UnsupportedFormat = "unsupported_format", 415, "a recognised image format this service does not decode";
    NotAnImage = "not_an_image", 422, "the bytes are not an image";
    InvalidImage = "invalid_image", 422, "a supported format whose data is corrupt or truncated";
    ImageTooComplex = "image_too_complex", 422, "an image whose structure asks for more decoding work than allowed: a JPEG with over 100 scans, scans that walk its blocks over 16 times each, or over 1,000 Huffman tables; a lossless WebP with over 4,096 prefix-code groups";
    ResponseTooLarge = "response_too_large", 422, "the annotated image would not fit in Lambda's 6 MB response";
    ImageUrlRefused = "image_url_refused", 400, "`image_url` is not fetched: not an https URL, a host `IMAGE_URL_HOSTS` does not list, an address that is not public (also after a redirect), or URL input is off";
    ImageUrlUnreachable = "image_url_unreachable", 422, "`image_url` could not be fetched: no such host, no connection, a TLS failure, an HTTP error status, too many redirects, or not within the time allowed";
    ImageUrlTooLarge = "image_url_too_large", 413, "`image_url`'s image is over `MAX_OBJECT_BYTES`";
    ObjectNotFound = "object_not_found", 404, "batch: the S3 object (or its version) is gone, deleted since the notification";
    ObjectTooLarge = "object_too_large", 413, "batch: the S3 object is over `MAX_OBJECT_BYTES`";
    ObjectUnreadable = "object_unreadable", 422, "batch: S3 will not serve the object (an archived storage class, a bad request), or its key cannot be addressed (`.` or `..` segments)";
    InferenceFailed = "inference_failed", 500, "the model failed to run on a valid input: a bug";
    InternalError = "internal_error", 500, "any other fault of the service: a bug";
    StorageUnavailable = "storage_unavailable", 503, "batch: S3 failed, throttled, timed out, denied access or could not be reached; the message is retried";
    FileNotWritable = "file_not_writable", 500, "the `detect` CLI cannot write an annotated picture";
    InvalidModel = "invalid_model", 500, "start-up: the model or its manifest is unusable";
    BackendUnavailable = "backend_unavailable", 500, "start-up: the configured backend or thread count cannot run in this build";
    InvalidSetting = "invalid_setting", 500, "start-up: an environment variable has a value it cannot take";
}

impl ErrorCode {
    /// A fault of the caller's input (4xx), not of the service.
    pub const fn is_client_error(self) -> bool {
        self.http_status() < 500
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Codes compare with their string, as clients see them.
impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    #[test]
    fn codes_are_unique_snake_case_with_a_real_status() {
        let mut seen = BTreeSet::new();
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(
                s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{s}"
            );
            assert!(
                [400, 404, 405, 413, 415, 422, 500, 503].contains(&code.http_status()),
                "{s}"
            );
        }
    }

    /// docs/api.md's "Errors" table: `| status | `code`, `code` | when |` rows.
    fn readme_error_table() -> BTreeMap<String, u16> {
        let readme = include_str!("../../docs/api.md");
        let section = readme
            .split("\n### Errors\n")
            .nth(1)
            .expect("docs/api.md has an Errors section");
        let mut codes = BTreeMap::new();
        for line in section.lines().skip_while(|l| !l.starts_with('|')) {
            let Some(row) = line.strip_prefix('|') else {
                break;
            };
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let Ok(status) = cells[0].parse::<u16>() else {
                continue; // the header and the separator
            };
            for code in cells[1].split(',') {
                codes.insert(code.trim().trim_matches('`').to_string(), status);
            }
        }
        codes
    }

    #[test]
    fn readme_lists_every_code_with_its_status() {
        let table: BTreeMap<String, u16> = ErrorCode::ALL
            .iter()
            .map(|c| (c.as_str().to_string(), c.http_status()))
            .collect();
        assert_eq!(
            readme_error_table(),
            table,
            "docs/api.md's Errors table and src/core/error_code.rs differ"
        );
    }
}
