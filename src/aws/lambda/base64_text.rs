//! Base64 as clients send it, in bodies and JSON fields.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;

use crate::core::error::Failure;
use crate::core::error_code::ErrorCode;

const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// Base64 as clients send it: an optional `data:...;base64,` prefix, the standard or URL-safe alphabet,
/// with or without padding, with line breaks.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, Failure> {
    let mut s = text.trim();
    // `get`, not `[..5]`: the text may have a multi-byte character there.
    if s.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("data:")) {
        let comma = s
            .find(',')
            .ok_or_else(|| Failure::new(ErrorCode::InvalidBase64, "a data: URL without a comma"))?;
        if !s[..comma].to_ascii_lowercase().ends_with(";base64") {
            return Err(Failure::new(
                ErrorCode::InvalidBase64,
                "a data: URL must be base64-encoded (data:image/jpeg;base64,...)",
            ));
        }
        s = &s[comma + 1..];
    }
    let cleaned: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let engine = if cleaned.iter().any(|&b| b == b'-' || b == b'_') {
        &URL_SAFE
    } else {
        &STANDARD
    };
    engine.decode(&cleaned).map_err(|e| {
        Failure::new(
            ErrorCode::InvalidBase64,
            format!("the image is not valid base64: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_in_every_form_clients_send() {
        let want = b"\xff\xd8\xff\xe0 binary?>".to_vec();
        for text in [
            "/9j/4CBiaW5hcnk/Pg==",
            "/9j/4CBiaW5hcnk/Pg",
            "_9j_4CBiaW5hcnk_Pg==",
            "_9j_4CBiaW5hcnk_Pg",
            "/9j/4CBi\r\naW5hcnk/\nPg==\n",
            "  data:image/jpeg;base64,/9j/4CBiaW5hcnk/Pg==  ",
            "DATA:image/jpeg;BASE64,/9j/4CBiaW5hcnk/Pg==",
        ] {
            assert_eq!(decode_base64(text).unwrap(), want, "{text:?}");
        }
        for bad in [
            "not base64!",
            "data:image/png,rawdata",
            "data:image/png;base64",
            "/9j/4C*",
        ] {
            assert_eq!(
                decode_base64(bad).unwrap_err().code(),
                "invalid_base64",
                "{bad:?}"
            );
        }
    }
}
