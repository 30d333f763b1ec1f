//! A small S3 client: `GetObject` with a size cap and `PutObject`, what the batch path needs and no more.
//!
//! Requests are signed with SigV4 by `rusty-s3` (query-string signing of each request, valid for a
//! minute) and sent by the same hyper client stack the Lambda runtime already links, over rustls
//! with the Mozilla roots. Chosen over `aws-sdk-s3` + `aws-config` for cost: a clean release build of
//! a GET+PUT program took 48 s against 214 s, and its stripped x86_64 binary was 2.1 MB against 7.4
//! MB (see BENCHMARKS.md, "S3 client"); the SDK alone would take the arm64 package past 10 MB.
//!
//! Credentials are the environment's (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`): how Lambda hands a function its role's credentials, and the first link of
//! the SDKs' standard chain. Every failure is classified here, once: [`S3Error::is_transient`].

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use crate::core::error_code::ErrorCode;

/// How long a signed request stays valid.
const SIGNATURE_VALIDITY: Duration = Duration::from_secs(60);
/// Connecting to the endpoint.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One request, headers and body (a 50 MB object at Lambda's usual S3 throughput is a second or two).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The pauses before each retry of a request that failed transiently (`S3Config::retry_pauses`).
pub const RETRY_PAUSES: [Duration; 2] = [Duration::from_millis(100), Duration::from_millis(400)];

/// Where and as whom the client talks to S3.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    /// `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`; `None` is AWS's regional endpoint.
    pub endpoint: Option<String>,
    /// `AWS_REGION` (set by Lambda), else `AWS_DEFAULT_REGION`, else `us-east-1`.
    pub region: String,
    /// Path-style URLs (`S3_FORCE_PATH_STYLE=true`), which most S3-compatible servers need.
    pub force_path_style: bool,
    /// `None` sends unsigned requests.
    pub credentials: Option<AccessKeys>,
    /// The pause before each retry of a transient failure; [`RETRY_PAUSES`] unless a test needs
    /// the retries without the wait.
    pub retry_pauses: Vec<Duration>,
}

/// The keys requests are signed with (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`).
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKeys {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Temporary credentials' token (a Lambda role's always has one).
    pub session_token: Option<String>,
}

impl std::fmt::Debug for AccessKeys {
    /// The key id only: the secret and the token stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKeys")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("force_path_style", &self.force_path_style)
            .field("credentials", &self.credentials)
            .field("retry_pauses", &self.retry_pauses)
            .finish()
    }
}

impl S3Config {
    /// The URL requests go to: the endpoint set, or AWS's regional one. Settings call it at start-up,
    /// so a mistyped endpoint stops the function there instead of failing every object later.
    pub fn endpoint_url(&self) -> Result<url::Url, S3Error> {
        let endpoint = self
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", self.region));
        let url: url::Url = endpoint.parse().map_err(|e| {
            S3Error::Endpoint(format!("the S3 endpoint {endpoint:?} is not a URL: {e}"))
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(S3Error::Endpoint(format!(
                "the S3 endpoint {url} is not an http(s) URL with a host"
            )));
        }
        Ok(url)
    }
}

impl Default for S3Config {
    fn default() -> S3Config {
        S3Config {
            endpoint: None,
            region: "us-east-1".into(),
            force_path_style: false,
            credentials: None,
            retry_pauses: RETRY_PAUSES.to_vec(),
        }
    }
}

/// Why an S3 request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum S3Error {
    /// The object (or its version, or the bucket) does not exist: deleted since the notification.
    #[error("no such object: S3 answered {code}")]
    NotFound { code: String },
    /// The object is larger than the cap; nothing of it was read.
    #[error("the object is {size} bytes; at most {limit} are read")]
    TooLarge { size: u64, limit: u64 },
    /// A key that cannot be addressed by a URL (empty, or with `.` or `..` segments).
    #[error("the key cannot be addressed in a request URL (empty, or a `.` or `..` segment)")]
    UnaddressableKey,
    /// S3 refused the request (access denied, a bad request): a fault of configuration or of the
    /// object (an archived storage class), not of the moment.
    #[error("S3 refused the request: HTTP {status} {code}: {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// The endpoint is not an http(s) URL with a host (start-up refuses it; see `S3Config::endpoint_url`).
    #[error("{0}")]
    Endpoint(String),
    /// S3 failed, throttled, timed out or could not be reached: worth retrying.
    #[error("S3 unavailable: {0}")]
    Unavailable(String),
}

impl S3Error {
    /// The stable code of a batch result or log line; a 5xx code is one worth retrying (an outage,
    /// throttling, or access denied, which a policy fix turns into success), a 4xx one is final.
    pub fn code(&self) -> ErrorCode {
        match self {
            S3Error::NotFound { .. } => ErrorCode::ObjectNotFound,
            S3Error::TooLarge { .. } => ErrorCode::ObjectTooLarge,
            S3Error::Refused { status: 403, .. }
            | S3Error::Unavailable(_)
            | S3Error::Endpoint(_) => ErrorCode::StorageUnavailable,
            S3Error::Refused { .. } | S3Error::UnaddressableKey => ErrorCode::ObjectUnreadable,
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        !self.code().is_client_error()
    }
}

/// An object as fetched.
#[derive(Debug, Clone)]
pub struct Object {
    pub bytes: Bytes,
    pub etag: Option<String>,
    pub version_id: Option<String>,
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The client; cheap to share, one per execution environment.
pub struct S3Client {
    http: HttpsClient,
    endpoint: url::Url,
    /// AWS's own endpoint: virtual-hosted URLs unless a bucket name cannot be a host name.
    aws_endpoint: bool,
    region: String,
    force_path_style: bool,
    credentials: Option<Credentials>,
    retry_pauses: Vec<Duration>,
}

impl S3Client {
    pub fn new(config: &S3Config) -> Result<S3Client, S3Error> {
        let aws_endpoint = config.endpoint.is_none();
        let endpoint = config.endpoint_url()?;
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(S3Client {
            http: Client::builder(TokioExecutor::new()).build(https),
            endpoint,
            aws_endpoint,
            region: config.region.clone(),
            force_path_style: config.force_path_style,
            retry_pauses: config.retry_pauses.clone(),
            credentials: config
                .credentials
                .clone()
                .map(|keys| match keys.session_token {
                    Some(token) => Credentials::new_with_token(
                        keys.access_key_id,
                        keys.secret_access_key,
                        token,
                    ),
                    None => Credentials::new(keys.access_key_id, keys.secret_access_key),
                }),
        })
    }

    fn bucket(&self, name: &str) -> Result<Bucket, S3Error> {
        // A bucket name with dots does not match AWS's wildcard certificate as a host name.
        let style = if self.force_path_style || (self.aws_endpoint && name.contains('.')) {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        Bucket::new(
            self.endpoint.clone(),
            style,
            name.to_string(),
            self.region.clone(),
        )
        .map_err(|e| S3Error::Refused {
            status: 400,
            code: "InvalidBucketName".into(),
            message: format!("{}: {e}", crate::core::error::quote(name)),
        })
    }

    /// Fetches an object (the given version, when there is one), refusing one over `max_bytes` from its
    /// `Content-Length`, before its body is read.
    pub async fn get(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        max_bytes: u64,
    ) -> Result<Object, S3Error> {
        check_key(key)?;
        let bucket = self.bucket(bucket)?;
        self.retrying(|| async {
            let mut action = bucket.get_object(self.credentials.as_ref(), key);
            if let Some(version) = version_id {
                action.query_mut().insert("versionId", version);
            }
            let url = action.sign(SIGNATURE_VALIDITY);
            let request = hyper::Request::get(url.as_str())
                .body(Full::new(Bytes::new()))
                .map_err(|e| S3Error::Unavailable(e.to_string()))?;
            let response = self.send(request).await?;
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let (etag, version) = (header("etag"), header("x-amz-version-id"));
            if let Some(size) = header("content-length").and_then(|v| v.parse::<u64>().ok()) {
                if size > max_bytes {
                    return Err(S3Error::TooLarge {
                        size,
                        limit: max_bytes,
                    });
                }
            }
            let bytes = read_capped(response.into_body(), max_bytes).await?;
            Ok(Object {
                bytes,
                etag,
                version_id: version,
            })
        })
        .await
    }

    /// Writes an object.
    pub async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<(), S3Error> {
        check_key(key)?;
        let bucket = self.bucket(bucket)?;
        self.retrying(|| async {
            let url = bucket
                .put_object(self.credentials.as_ref(), key)
                .sign(SIGNATURE_VALIDITY);
            let request = hyper::Request::put(url.as_str())
                .header("content-type", content_type)
                .body(Full::new(body.clone()))
                .map_err(|e| S3Error::Unavailable(e.to_string()))?;
            let response = self.send(request).await?;
            // Read the (empty) body so the connection goes back to the pool.
            let _ = response.into_body().collect().await;
            Ok(())
        })
        .await
    }

    /// Sends a request within the timeout; an error status becomes its [`S3Error`].
    async fn send(
        &self,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<hyper::Response<Incoming>, S3Error> {
        let response = tokio::time::timeout(REQUEST_TIMEOUT, self.http.request(request))
            .await
            .map_err(|_| S3Error::Unavailable(format!("no answer in {REQUEST_TIMEOUT:?}")))?
            .map_err(|e| S3Error::Unavailable(connect_error(&e)))?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            return Ok(response);
        }
        // The error document is small; a stalled or huge one is cut.
        let body = read_capped(response.into_body(), 64 * 1024)
            .await
            .unwrap_or_default();
        Err(classify(status, &String::from_utf8_lossy(&body)))
    }

    /// Runs `attempt` again after a pause while it fails transiently, up to the retry budget.
    async fn retrying<T, F, Fut>(&self, attempt: F) -> Result<T, S3Error>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, S3Error>>,
    {
        let mut pauses = self.retry_pauses.iter();
        loop {
            match attempt().await {
                Err(S3Error::Unavailable(detail)) => match pauses.next() {
                    Some(pause) => tokio::time::sleep(*pause).await,
                    None => return Err(S3Error::Unavailable(detail)),
                },
                other => return other,
            }
        }
    }
}

/// Keys a request URL cannot carry as they are: URL parsing resolves `.` and `..` segments, which
/// would address another object (or, path-style, another bucket).
fn check_key(key: &str) -> Result<(), S3Error> {
    if key.is_empty()
        || key
            .split('/')
            .any(|segment| segment == "." || segment == "..")
    {
        return Err(S3Error::UnaddressableKey);
    }
    Ok(())
}

/// An S3 error answer, by status and the `<Code>` of its XML document.
pub fn classify(status: u16, body: &str) -> S3Error {
    let element = |name: &str| {
        let open = format!("<{name}>");
        let start = body.find(&open)? + open.len();
        let end = body[start..].find(&format!("</{name}>"))? + start;
        Some(crate::core::error::bounded(&body[start..end], 128))
    };
    let code = element("Code").unwrap_or_else(|| format!("HTTP {status}"));
    let message = element("Message").unwrap_or_default();
    match status {
        404 => S3Error::NotFound { code },
        408 | 429 | 500..=599 => S3Error::Unavailable(format!("HTTP {status} {code} {message}")),
        _ => S3Error::Refused {
            status,
            code,
            message,
        },
    }
}

/// What failed on the way to an answer, with the underlying cause (connection refused, DNS, TLS).
fn connect_error(e: &hyper_util::client::legacy::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Reads a body, failing as [`S3Error::TooLarge`] past `max_bytes` (a server that sent no length).
async fn read_capped(mut body: Incoming, max_bytes: u64) -> Result<Bytes, S3Error> {
    let mut bytes = Vec::new();
    while let Some(frame) = tokio::time::timeout(REQUEST_TIMEOUT, body.frame())
        .await
        .map_err(|_| S3Error::Unavailable("the body stalled".into()))?
    {
        let frame = frame.map_err(|e| S3Error::Unavailable(format!("reading the body: {e}")))?;
        if let Some(data) = frame.data_ref() {
            if (bytes.len() + data.len()) as u64 > max_bytes {
                return Err(S3Error::TooLarge {
                    size: (bytes.len() + data.len()) as u64,
                    limit: max_bytes,
                });
            }
            bytes.extend_from_slice(data);
        }
    }
    Ok(Bytes::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_are_classified_once() {
        let xml = |code: &str| {
            format!("<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>m</Message></Error>")
        };
        assert!(
            matches!(classify(404, &xml("NoSuchKey")), S3Error::NotFound { code } if code == "NoSuchKey")
        );
        for status in [500, 503, 429, 408] {
            let e = classify(status, &xml("SlowDown"));
            assert!(e.is_transient(), "{status}: {e}");
        }
        let denied = classify(403, &xml("AccessDenied"));
        assert!(
            denied.is_transient(),
            "a policy fix makes the retry succeed"
        );
        let bare = classify(403, "");
        assert!(
            matches!(bare, S3Error::Refused { ref code, .. } if code == "HTTP 403"),
            "no document: the status names it"
        );
        let state = classify(400, &xml("InvalidObjectState"));
        assert!(!state.is_transient(), "{state}");
        assert!(!S3Error::TooLarge { size: 2, limit: 1 }.is_transient());
        assert!(!S3Error::NotFound { code: "x".into() }.is_transient());
    }

    #[test]
    fn keys_that_a_url_would_rewrite_are_refused() {
        for key in ["", "a/../b.jpg", "../other/x.jpg", "./x.jpg", "a/."] {
            assert_eq!(check_key(key), Err(S3Error::UnaddressableKey), "{key:?}");
        }
        for key in ["a.jpg", "a/b c.jpg", "..jpg", "a/.hidden", "a//b.jpg"] {
            assert_eq!(check_key(key), Ok(()), "{key:?}");
        }
    }

    #[test]
    fn buckets_are_addressed_as_aws_and_s3_compatible_servers_expect() {
        let url = |config: &S3Config, bucket: &str| {
            let client = S3Client::new(config).unwrap();
            client
                .bucket(bucket)
                .unwrap()
                .object_url("a b/c+d.jpg")
                .to_string()
        };
        let aws = S3Config {
            region: "eu-west-1".into(),
            ..S3Config::default()
        };
        assert_eq!(
            url(&aws, "photos"),
            "https://photos.s3.eu-west-1.amazonaws.com/a%20b/c%2Bd.jpg"
        );
        assert_eq!(
            url(&aws, "my.photos"),
            "https://s3.eu-west-1.amazonaws.com/my.photos/a%20b/c%2Bd.jpg",
            "a dotted name would not match the certificate as a host"
        );
        let local = S3Config {
            endpoint: Some("http://127.0.0.1:5000".into()),
            force_path_style: true,
            ..S3Config::default()
        };
        assert_eq!(
            url(&local, "photos"),
            "http://127.0.0.1:5000/photos/a%20b/c%2Bd.jpg"
        );
        for bad in ["not a url", "ftp://example.com", "unix:/tmp/s"] {
            let config = S3Config {
                endpoint: Some(bad.into()),
                ..S3Config::default()
            };
            assert!(S3Client::new(&config).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_stay_out_of_debug_output() {
        let config = S3Config {
            credentials: Some(AccessKeys {
                access_key_id: "AKIDEXAMPLE".into(),
                secret_access_key: "secret".into(),
                session_token: Some("token".into()),
            }),
            ..S3Config::default()
        };
        let text = format!("{config:?}");
        assert!(text.contains("AKIDEXAMPLE"));
        assert!(
            !text.contains("secret") && !text.contains("token"),
            "{text}"
        );
    }
}
