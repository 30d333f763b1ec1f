//! The AWS adapters around the core: the Lambda handler and its event shapes, the S3 client, the
//! fetcher of images named by URL, the batch path over S3 objects, and CloudWatch's metric records. They call `crate::core`; the core
//! never calls them.

pub mod batch;
pub mod image_url;
pub mod lambda;
pub mod metrics;
pub mod s3;
