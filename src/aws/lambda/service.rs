//! What every route answers from: the warm detector, and one detection on a request's image with what
//! the invocation's record keeps of it.

use super::body;
use super::demo::DemoPage;
use super::image_source::ImageSource;
use super::record::{Detection, Record};
use super::reply;
use crate::aws::batch::Batch;
use crate::aws::image_url::UrlFetcher;
use crate::aws::metrics::DetectionStats;
use crate::core::detector::Detector;
use crate::core::error::Failure;
use crate::core::error_code::ErrorCode;
use crate::core::options::{DetectOptions, Format};

/// The warm detector, the `GET /model` body (serialized once), the batch path, whose S3 client
/// fetches the objects a request names, and the fetcher of the URLs it names (`None`: URL input off).
pub struct Service<'a> {
    pub detector: &'a Detector,
    pub model_info: &'a str,
    pub batch: &'a Batch,
    pub urls: Option<&'a UrlFetcher>,
    /// The page `GET /` serves; `None` with `DEMO_PAGE=off`.
    pub demo: Option<&'a DemoPage>,
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
    /// The bytes of an image, read from where the request says: the request itself, a URL, an S3
    /// object. Fetch failures are the request's (4xx) except a failing S3.
    pub async fn read(&self, source: ImageSource) -> Result<Vec<u8>, Failure> {
        match source {
            ImageSource::Bytes(bytes) => Ok(bytes),
            ImageSource::Url(url) => {
                let urls = self.urls.ok_or_else(|| {
                    Failure::new(
                        ErrorCode::ImageUrlRefused,
                        "this function does not fetch URLs (IMAGE_URL=off); send the image's bytes",
                    )
                })?;
                urls.fetch(&url)
                    .await
                    .map(Vec::from)
                    .map_err(|e| Failure::new(e.code(), format!("image_url: {e}")))
            }
            ImageSource::S3(object) => self.batch.fetch_object(&object).await.map(Vec::from),
        }
    }

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
        self.detect_within(bytes, options, reply::PICTURE_BUDGET, record)
    }

    /// [`Service::detect`] with a picture of at most `picture_budget` bytes (a share of the answer's,
    /// when it carries several).
    pub fn detect_within(
        &self,
        bytes: &[u8],
        options: &DetectOptions,
        picture_budget: usize,
        record: &mut Record,
    ) -> Result<crate::Response, Failure> {
        let response = self
            .detector
            .detect_within(bytes, options, Some(picture_budget))
            .map_err(|e| match e {
                crate::Error::InvalidImage { .. } | crate::Error::NotAnImage => {
                    body::explain_mangled_binary(Failure::from(e), bytes)
                }
                e => Failure::from(e),
            })?;
        record.detections.push(Detection {
            image: (response.image.width, response.image.height),
            detected: DetectionStats::of(&response),
        });
        Ok(response)
    }
}
