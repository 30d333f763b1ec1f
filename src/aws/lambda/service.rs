//! What every route answers from: the warm detector, and one detection on a request's image with what
//! the invocation's record keeps of it.

use super::body;
use super::record::{Detection, Record};
use super::reply;
use crate::aws::batch::Batch;
use crate::aws::metrics::DetectionStats;
use crate::core::detector::Detector;
use crate::core::error::Failure;
use crate::core::error_code::ErrorCode;
use crate::core::options::{DetectOptions, Format};

/// The warm detector, the `GET /model` body (serialized once) and the batch path, whose S3 client
/// fetches the objects a request names.
pub struct Service<'a> {
    pub detector: &'a Detector,
    pub model_info: &'a str,
    pub batch: &'a Batch,
}

/// `failure` of the `i`th image of a request of several, the index in front of its message.
pub fn of_image(i: usize, failure: Failure) -> Failure {
    Failure::new(failure.code(), format!("image {i}: {}", failure.message()))
}

/// The options only `/detect`'s answer has a use for (`format` other than JSON, `annotate`,
/// `box_format`), refused by a protocol whose answer is its own; `answer` says what it carries instead.
pub fn refuse_detect_only(options: &DetectOptions, answer: &str) -> Result<(), Failure> {
    let picture = options.format.is_some_and(|f| f != Format::Json);
    if picture || options.annotate == Some(true) || options.box_format.is_some() {
        return Err(Failure::new(
            ErrorCode::InvalidParameter,
            format!("{answer}: `format`, `annotate` and `box_format` are for /detect"),
        ));
    }
    Ok(())
}

impl Service<'_> {
    /// The images of a request of several, one after another on the warm plan; the first failure fails
    /// the request, naming its image ([`of_image`]).
    pub fn detect_each(
        &self,
        images: &[Vec<u8>],
        options: &DetectOptions,
        record: &mut Record,
    ) -> Result<Vec<crate::Response>, Failure> {
        images
            .iter()
            .enumerate()
            .map(|(i, image)| {
                self.detect(image, options, record)
                    .map_err(|e| of_image(i, e))
            })
            .collect()
    }

    pub fn detect(
        &self,
        bytes: &[u8],
        options: &DetectOptions,
        record: &mut Record,
    ) -> Result<crate::Response, Failure> {
        let response = self
            .detector
            .detect_within(bytes, options, Some(reply::PICTURE_BUDGET))
            .map_err(|e| match e {
                crate::Error::InvalidImage { .. } | crate::Error::NotAnImage => {
                    body::explain_mangled_binary(Failure::from(e), bytes)
                }
                e => Failure::from(e),
            })?;
        record.detection = Some(Detection {
            image: (response.image.width, response.image.height),
            detected: DetectionStats::of(&response),
        });
        Ok(response)
    }
}
