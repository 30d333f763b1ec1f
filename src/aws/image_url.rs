//! Images named by URL (`image_url`): fetched by the function within a strict budget, behind a guard
//! against server-side request forgery.
//!
//! The guard: only `https`, and never an address that is not public (loopback, private, link-local with
//! the instance metadata service at 169.254.169.254 and fd00:ec2::254, shared, multicast, reserved,
//! unspecified; IPv4 inside IPv6 is judged as IPv4). Each address is checked as resolved and the
//! connection goes to that very address, so a name cannot resolve to a public address for the check and
//! a private one for the connection (DNS rebinding). Every redirect is a new hop, checked the same way.
//! `IMAGE_URL_HOSTS` narrows fetching to a list of hosts; a host listed by its exact name or address
//! may also be plain `http` or a private address (a photo server inside a VPC, a test's server on
//! 127.0.0.1), while a `*.example.com` entry only narrows.
//!
//! The budget: a connect timeout per address, one deadline for the whole fetch (redirects, headers and
//! body: a server that trickles bytes is cut off), a byte cap checked on `Content-Length` before the
//! body and on the bytes as they arrive, and at most [`MAX_REDIRECTS`] redirects.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};
use url::{Host, Url};

use crate::core::error::{bounded, quote};
use crate::core::error_code::ErrorCode;

/// Connecting to one address.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The whole fetch: name lookups, connections, TLS, redirects, headers and body.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(8);
/// Redirects followed, at most.
pub const MAX_REDIRECTS: usize = 3;
/// The longest URL taken.
pub const MAX_URL_LENGTH: usize = 2048;

/// How URL input is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUrlConfig {
    /// `IMAGE_URL_HOSTS`: `None` fetches from any public host.
    pub hosts: Option<HostList>,
    /// `IMAGE_URL_CA_FILE`: certificates (PEM) trusted beside the Mozilla roots: a private CA, or a
    /// test's own.
    pub ca_file: Option<PathBuf>,
    /// The most bytes read (`MAX_OBJECT_BYTES`, the cap of an S3 object).
    pub max_bytes: u64,
    /// The whole fetch: [`FETCH_TIMEOUT`] unless a test needs it shorter.
    pub timeout: Duration,
}

/// `IMAGE_URL_HOSTS`: host names, `*.`-prefixed domains (any host under them) and addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostList {
    exact: Vec<Host>,
    domains: Vec<String>,
}

/// How a host stands with a [`HostList`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listed {
    /// Named exactly: plain `http` and private addresses allowed.
    Exactly,
    /// Under a listed domain: the guard applies in full.
    Under,
    No,
}

impl HostList {
    /// Comma-separated entries; an error names the entry that is not a host.
    pub fn parse(text: &str) -> Result<HostList, String> {
        let mut list = HostList {
            exact: Vec::new(),
            domains: Vec::new(),
        };
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let lower = entry.to_ascii_lowercase();
            if let Some(domain) = lower.strip_prefix("*.") {
                match Host::parse(domain) {
                    Ok(Host::Domain(d)) if d.contains('.') || !d.is_empty() => {
                        list.domains.push(d.trim_end_matches('.').to_string())
                    }
                    _ => return Err(format!("{} is not a domain", quote(entry))),
                }
                continue;
            }
            let host = Host::parse(&lower)
                .ok()
                .filter(|_| !lower.contains(['/', ':']) || lower.starts_with('['))
                .ok_or_else(|| {
                    format!(
                        "{} is not a host name or address (no scheme, port or path)",
                        quote(entry)
                    )
                })?;
            list.exact.push(normal(host));
        }
        if list.exact.is_empty() && list.domains.is_empty() {
            return Err("lists no host".into());
        }
        Ok(list)
    }

    fn lookup(&self, host: &Host) -> Listed {
        let host = normal(host.clone());
        if self.exact.contains(&host) {
            return Listed::Exactly;
        }
        match &host {
            Host::Domain(name) if self.domains.iter().any(|d| is_under(name, d)) => Listed::Under,
            _ => Listed::No,
        }
    }
}

/// A host as compared: lower case, no trailing dot, IPv4 inside IPv6 as IPv4.
fn normal(host: Host) -> Host {
    match host {
        Host::Domain(d) => Host::Domain(d.to_ascii_lowercase().trim_end_matches('.').to_string()),
        Host::Ipv6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Host::Ipv4(v4),
            None => Host::Ipv6(v6),
        },
        other => other,
    }
}

/// `name` is a host under `domain` (not `domain` itself).
fn is_under(name: &str, domain: &str) -> bool {
    name.len() > domain.len() + 1
        && name.ends_with(domain)
        && name.as_bytes()[name.len() - domain.len() - 1] == b'.'
}

/// Why a URL was not fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// The URL is not one the function fetches: its form, scheme, host or address.
    #[error("{0}")]
    Refused(String),
    /// The server could not be reached or did not answer with the image in time.
    #[error("{0}")]
    Unreachable(String),
    /// The image is over the byte cap.
    #[error("the image is {size} bytes or more; at most {limit} are read")]
    TooLarge { size: u64, limit: u64 },
}

impl UrlError {
    pub fn code(&self) -> ErrorCode {
        match self {
            UrlError::Refused(_) => ErrorCode::ImageUrlRefused,
            UrlError::Unreachable(_) => ErrorCode::ImageUrlUnreachable,
            UrlError::TooLarge { .. } => ErrorCode::ImageUrlTooLarge,
        }
    }
}

/// The fetcher; one per execution environment.
pub struct UrlFetcher {
    hosts: Option<HostList>,
    max_bytes: u64,
    timeout: Duration,
    tls: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for UrlFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlFetcher")
            .field("hosts", &self.hosts)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl UrlFetcher {
    /// Fails on a CA file that cannot be read or holds no certificate.
    pub fn new(config: &ImageUrlConfig) -> Result<UrlFetcher, String> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                added += 1;
            }
            if added == 0 {
                return Err(format!("{}: no PEM certificate", path.display()));
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(UrlFetcher {
            hosts: config.hosts.clone(),
            max_bytes: config.max_bytes,
            timeout: config.timeout,
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
        })
    }

    /// The image at `text`, following redirects, within [`FETCH_TIMEOUT`].
    pub async fn fetch(&self, text: &str) -> Result<Bytes, UrlError> {
        let deadline = Instant::now() + self.timeout;
        let mut url = parse(text)?;
        for _ in 0..=MAX_REDIRECTS {
            match self.hop(&url, deadline).await? {
                Hop::Image(bytes) => return Ok(bytes),
                Hop::Redirect(location) => {
                    url = url.join(&location).map_err(|e| {
                        UrlError::Refused(format!(
                            "{} redirects to {}, which is not a URL: {e}",
                            shown(&url),
                            quote(&location)
                        ))
                    })?;
                    check_form(&url)?;
                }
            }
        }
        Err(UrlError::Unreachable(format!(
            "more than {MAX_REDIRECTS} redirects (the last to {})",
            shown(&url)
        )))
    }

    /// One request: the guard on this URL, its connection and its answer.
    async fn hop(&self, url: &Url, deadline: Instant) -> Result<Hop, UrlError> {
        let host = url
            .host()
            .map(|h| h.to_owned())
            .ok_or_else(|| UrlError::Refused(format!("{} has no host", shown(url))))?;
        let listed = match &self.hosts {
            None => Listed::Under,
            Some(list) => list.lookup(&host),
        };
        if listed == Listed::No {
            return Err(UrlError::Refused(format!(
                "{} is not a host IMAGE_URL_HOSTS lists",
                quote(&host.to_string())
            )));
        }
        let trusted = listed == Listed::Exactly;
        let https = url.scheme() == "https";
        if !https && !trusted {
            return Err(UrlError::Refused(format!(
                "{}: only https URLs are fetched",
                shown(url)
            )));
        }
        let port = url.port_or_known_default().unwrap_or(443);
        let addresses = resolve(&host, port, deadline).await?;
        let allowed: Vec<SocketAddr> = addresses
            .iter()
            .copied()
            .filter(|a| trusted || is_public(a.ip()))
            .collect();
        if allowed.is_empty() {
            return Err(UrlError::Refused(format!(
                "{} resolves to {}, not a public address",
                quote(&host.to_string()),
                addresses
                    .first()
                    .map_or_else(|| "nothing".to_string(), |a| a.ip().to_string())
            )));
        }
        let stream = connect(&allowed, deadline).await?;
        let answer = if https {
            let name = match &host {
                Host::Domain(d) => ServerName::try_from(d.clone()),
                Host::Ipv4(v4) => Ok(ServerName::from(IpAddr::V4(*v4))),
                Host::Ipv6(v6) => Ok(ServerName::from(IpAddr::V6(*v6))),
            }
            .map_err(|e| UrlError::Refused(format!("{}: {e}", quote(&host.to_string()))))?;
            let tls = timeout_at(deadline, self.tls.connect(name, stream))
                .await
                .map_err(|_| timed_out())?
                .map_err(|e| UrlError::Unreachable(format!("TLS with {host}: {e}")))?;
            self.get(tls, url, deadline).await
        } else {
            self.get(stream, url, deadline).await
        }?;
        Ok(answer)
    }

    /// `GET url` on a connection: the image, or where a redirect points.
    async fn get<S>(&self, io: S, url: &Url, deadline: Instant) -> Result<Hop, UrlError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let broken = |e: hyper::Error| UrlError::Unreachable(format!("{}: {e}", shown(url)));
        let (mut sender, connection) = timeout_at(
            deadline,
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(io)),
        )
        .await
        .map_err(|_| timed_out())?
        .map_err(broken)?;
        // The connection is driven beside the request and dropped with this hop.
        let driver = tokio::spawn(connection);
        let _stop = AbortOnDrop(driver);
        let authority = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        let target = &url[url::Position::BeforePath..url::Position::AfterQuery];
        let request = hyper::Request::get(target)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::USER_AGENT, USER_AGENT)
            .header(hyper::header::ACCEPT, "image/*")
            .body(Empty::new())
            .map_err(|e| UrlError::Refused(format!("{}: {e}", shown(url))))?;
        let response = timeout_at(deadline, sender.send_request(request))
            .await
            .map_err(|_| timed_out())?
            .map_err(broken)?;
        let status = response.status();
        if status.is_redirection() {
            if let Some(location) = response
                .headers()
                .get(hyper::header::LOCATION)
                .and_then(|l| l.to_str().ok())
            {
                return Ok(Hop::Redirect(location.to_string()));
            }
        }
        if !status.is_success() {
            return Err(UrlError::Unreachable(format!(
                "{} answered HTTP {status}",
                shown(url)
            )));
        }
        let length = response
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|l| l.to_str().ok()?.parse::<u64>().ok());
        if let Some(size) = length.filter(|&size| size > self.max_bytes) {
            return Err(UrlError::TooLarge {
                size,
                limit: self.max_bytes,
            });
        }
        read_capped(response.into_body(), self.max_bytes, deadline)
            .await
            .map(Hop::Image)
    }
}

/// `User-Agent` of the fetches: the product and its version, so a photo host can tell them apart.
const USER_AGENT: &str = concat!("object-detector/", env!("CARGO_PKG_VERSION"));

enum Hop {
    Image(Bytes),
    Redirect(String),
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn timed_out() -> UrlError {
    UrlError::Unreachable("the image did not arrive within the time allowed".into())
}

/// The URL as a message shows it: bounded, with any query left out (it may hold a signature).
fn shown(url: &Url) -> String {
    let mut text = url[..url::Position::AfterPath].to_string();
    if url.query().is_some() {
        text.push_str("?…");
    }
    quote(&bounded(&text, 200))
}

/// A URL the function may fetch, by its form alone: absolute `http(s)` with a host and no credentials.
fn parse(text: &str) -> Result<Url, UrlError> {
    let text = text.trim();
    if text.len() > MAX_URL_LENGTH {
        return Err(UrlError::Refused(format!(
            "the URL is {} characters; at most {MAX_URL_LENGTH}",
            text.len()
        )));
    }
    let url = Url::parse(text)
        .map_err(|e| UrlError::Refused(format!("{} is not a URL: {e}", quote(text))))?;
    check_form(&url)?;
    Ok(url)
}

fn check_form(url: &Url) -> Result<(), UrlError> {
    if !matches!(url.scheme(), "https" | "http") {
        return Err(UrlError::Refused(format!(
            "{}: only https URLs are fetched",
            shown(url)
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::Refused(
            "a URL with credentials (user@host) is not fetched".into(),
        ));
    }
    Ok(())
}

/// The host's addresses: itself when it is one, else the name's, resolved by the system.
async fn resolve(host: &Host, port: u16, deadline: Instant) -> Result<Vec<SocketAddr>, UrlError> {
    match host {
        Host::Ipv4(v4) => Ok(vec![SocketAddr::new(IpAddr::V4(*v4), port)]),
        Host::Ipv6(v6) => Ok(vec![SocketAddr::new(IpAddr::V6(*v6), port)]),
        Host::Domain(name) => {
            let found = timeout_at(deadline, tokio::net::lookup_host((name.as_str(), port)))
                .await
                .map_err(|_| timed_out())?
                .map_err(|e| UrlError::Unreachable(format!("{}: {e}", quote(name))))?;
            Ok(found.collect())
        }
    }
}

/// The first of `addresses` that accepts a connection.
async fn connect(addresses: &[SocketAddr], deadline: Instant) -> Result<TcpStream, UrlError> {
    let mut last = String::new();
    for address in addresses {
        let limit = deadline.min(Instant::now() + CONNECT_TIMEOUT);
        match timeout_at(limit, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last = format!("{address}: {e}"),
            Err(_) => last = format!("{address}: no connection within {CONNECT_TIMEOUT:?}"),
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    Err(UrlError::Unreachable(format!("cannot connect: {last}")))
}

/// The body, failing past `max_bytes` (a server that sent no length, or lied) or the deadline.
async fn read_capped(
    mut body: Incoming,
    max_bytes: u64,
    deadline: Instant,
) -> Result<Bytes, UrlError> {
    let mut bytes = Vec::new();
    while let Some(frame) = timeout_at(deadline, body.frame())
        .await
        .map_err(|_| timed_out())?
    {
        let frame = frame.map_err(|e| UrlError::Unreachable(format!("reading the image: {e}")))?;
        if let Some(data) = frame.data_ref() {
            let size = (bytes.len() + data.len()) as u64;
            if size > max_bytes {
                return Err(UrlError::TooLarge {
                    size,
                    limit: max_bytes,
                });
            }
            bytes.extend_from_slice(data);
        }
    }
    Ok(Bytes::from(bytes))
}

/// An address anyone on the internet may reach: none of the special-purpose ranges (RFC 6890 and
/// its updates) but the globally routable ones, with IPv4 inside IPv6 (mapped, compatible, NAT64,
/// 6to4) judged as that IPv4.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0 // "this network", 0.0.0.0
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier NAT)
        || (a == 169 && b == 254) // link-local: the instance metadata service
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // documentation
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168)
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // documentation
        || (a == 203 && b == 0 && c == 113) // documentation
        || a >= 224) // multicast, reserved, broadcast
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    // IPv4-compatible (deprecated) and NAT64's well-known prefix carry an IPv4 address at the end.
    let embedded = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[..6] == [0; 6] || (s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4]) {
        return is_public_v4(embedded);
    }
    // 6to4 carries one in its second and third segments.
    if s[0] == 0x2002 {
        let v4 = Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
        return is_public_v4(v4);
    }
    // Global unicast is 2000::/3; within it, Teredo (2001::/32), ORCHID and benchmarking
    // (2001:2::/48, 2001:10::/28, 2001:20::/28) and documentation (2001:db8::/32) are not public.
    (s[0] & 0xe000) == 0x2000
        && !(s[0] == 0x2001
            && (s[1] == 0
                || s[1] == 0xdb8
                || (s[1] == 2 && s[2] == 0)
                || (0x10..0x30).contains(&s[1])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_globally_routable_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.0.1",
            "198.18.0.1",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "2002:7f00:1::",
            "fd00:ec2::254",
            "fc00::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "2001::1",
            "100::1",
        ] {
            let ip: IpAddr = private.parse().unwrap();
            assert!(!is_public(ip), "{private}");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "52.95.110.1",
            "172.32.0.1",
            "100.128.0.1",
            "169.255.0.1",
            "2a00:1450:4001:82a::200e",
            "2600:1f18::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            let ip: IpAddr = public.parse().unwrap();
            assert!(is_public(ip), "{public}");
        }
    }

    #[test]
    fn host_lists_take_names_domains_and_addresses() {
        let list =
            HostList::parse(" Photos.Example.com., *.cdn.example.net, 127.0.0.1, [::1] ").unwrap();
        let host = |s: &str| {
            Url::parse(&format!("http://{s}/"))
                .unwrap()
                .host()
                .unwrap()
                .to_owned()
        };
        assert_eq!(list.lookup(&host("photos.example.com")), Listed::Exactly);
        assert_eq!(list.lookup(&host("PHOTOS.example.com.")), Listed::Exactly);
        assert_eq!(list.lookup(&host("a.cdn.example.net")), Listed::Under);
        assert_eq!(list.lookup(&host("cdn.example.net")), Listed::No);
        assert_eq!(list.lookup(&host("evilcdn.example.net")), Listed::No);
        assert_eq!(list.lookup(&host("127.0.0.1")), Listed::Exactly);
        // The same address however the URL writes it.
        assert_eq!(list.lookup(&host("2130706433")), Listed::Exactly);
        assert_eq!(list.lookup(&host("[::ffff:127.0.0.1]")), Listed::Exactly);
        assert_eq!(list.lookup(&host("[::1]")), Listed::Exactly);
        assert_eq!(list.lookup(&host("127.0.0.2")), Listed::No);
        assert_eq!(list.lookup(&host("example.com")), Listed::No);
        for bad in [
            "",
            " , ",
            "https://example.com",
            "example.com:8080",
            "example.com/x",
            "*.",
        ] {
            assert!(HostList::parse(bad).is_err(), "{bad:?}");
        }
    }

    fn fetcher(hosts: Option<&str>) -> UrlFetcher {
        UrlFetcher::new(&ImageUrlConfig {
            hosts: hosts.map(|h| HostList::parse(h).unwrap()),
            ca_file: None,
            max_bytes: 1 << 20,
            timeout: Duration::from_millis(1500),
        })
        .unwrap()
    }

    fn fetch(fetcher: &UrlFetcher, url: &str) -> Result<Bytes, UrlError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(fetcher.fetch(url))
    }

    fn refused(fetcher: &UrlFetcher, url: &str) -> String {
        match fetch(fetcher, url) {
            Err(UrlError::Refused(message)) => message,
            other => panic!("{url}: {other:?}"),
        }
    }

    /// A server on 127.0.0.1 answering one connection per answer, in order: each reads the request's
    /// head and hands the stream to its answer. Returns the port and the request heads it read.
    fn serve(
        answers: Vec<Box<dyn FnOnce(std::net::TcpStream) + Send>>,
    ) -> (u16, std::sync::mpsc::Receiver<String>) {
        use std::io::Read;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (heads, received) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for answer in answers {
                let Ok((mut stream, _)) = listener.accept() else {
                    return;
                };
                let mut head = Vec::new();
                let mut byte = [0u8];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let _ = heads.send(String::from_utf8_lossy(&head).into_owned());
                answer(stream);
            }
        });
        (port, received)
    }

    fn answer(text: String) -> Box<dyn FnOnce(std::net::TcpStream) + Send> {
        Box::new(move |mut stream| {
            use std::io::Write;
            let _ = stream.write_all(text.as_bytes());
        })
    }

    #[test]
    fn listed_hosts_are_fetched_and_each_redirect_is_checked_again() {
        let local = fetcher(Some("127.0.0.1"));
        let (port, heads) = serve(vec![
            answer(
                "HTTP/1.1 302 Found\r\nLocation: /photo.jpg\r\nContent-Length: 0\r\n\r\n".into(),
            ),
            answer("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nimage".into()),
        ]);
        let bytes = fetch(&local, &format!("http://127.0.0.1:{port}/start?size=large")).unwrap();
        assert_eq!(&bytes[..], b"image");
        let first = heads.recv().unwrap();
        assert!(
            first.starts_with("GET /start?size=large HTTP/1.1\r\n"),
            "{first}"
        );
        assert!(
            first
                .to_ascii_lowercase()
                .contains(&format!("host: 127.0.0.1:{port}")),
            "{first}"
        );
        assert!(heads.recv().unwrap().starts_with("GET /photo.jpg "));
        // A redirect to the metadata service (however written) or to an unlisted host is refused on
        // its hop.
        for location in [
            "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
            "https://example.com/cat.jpg",
            "http://[::ffff:169.254.169.254]/",
        ] {
            let (port, _) = serve(vec![answer(format!(
                "HTTP/1.1 301 Moved\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n"
            ))]);
            let message = refused(&local, &format!("http://127.0.0.1:{port}/"));
            assert!(message.contains("IMAGE_URL_HOSTS"), "{location}: {message}");
        }
        // Redirects without end.
        let (port, _) = serve(
            (0..=MAX_REDIRECTS)
                .map(|_| {
                    answer(
                        "HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n"
                            .into(),
                    )
                })
                .collect(),
        );
        let e = fetch(&local, &format!("http://127.0.0.1:{port}/")).unwrap_err();
        assert!(
            matches!(&e, UrlError::Unreachable(m) if m.contains("redirects")),
            "{e:?}"
        );
    }

    #[test]
    fn errors_sizes_and_slow_servers_end_the_fetch() {
        let local = fetcher(Some("127.0.0.1"));
        let url = |port: u16| format!("http://127.0.0.1:{port}/cat.jpg");
        let (port, _) = serve(vec![answer(
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".into(),
        )]);
        let e = fetch(&local, &url(port)).unwrap_err();
        assert!(
            matches!(&e, UrlError::Unreachable(m) if m.contains("404")),
            "{e:?}"
        );
        // Too large by its length, before the body; and by its bytes, without a length.
        let (port, _) = serve(vec![answer(format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            (1u64 << 20) + 1
        ))]);
        assert_eq!(
            fetch(&local, &url(port)).unwrap_err(),
            UrlError::TooLarge {
                size: (1 << 20) + 1,
                limit: 1 << 20
            }
        );
        let (port, _) = serve(vec![Box::new(|mut stream: std::net::TcpStream| {
            use std::io::Write;
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
            for _ in 0..300 {
                if stream.write_all(&[0u8; 4096]).is_err() {
                    return;
                }
            }
        })]);
        let e = fetch(&local, &url(port)).unwrap_err();
        assert!(
            matches!(e, UrlError::TooLarge { limit, .. } if limit == 1 << 20),
            "{e:?}"
        );
        // A server that trickles its body is cut off at the deadline.
        let (port, _) = serve(vec![Box::new(|mut stream: std::net::TcpStream| {
            use std::io::Write;
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
            for _ in 0..1000 {
                if stream.write_all(b"x").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })]);
        let start = std::time::Instant::now();
        let e = fetch(&local, &url(port)).unwrap_err();
        assert!(
            matches!(&e, UrlError::Unreachable(m) if m.contains("time allowed")),
            "{e:?}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        // Nothing listening.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = fetch(&local, &url(port)).unwrap_err();
        assert!(
            matches!(&e, UrlError::Unreachable(m) if m.contains("connect")),
            "{e:?}"
        );
    }

    #[test]
    fn the_guard_refuses_before_any_connection() {
        let open = fetcher(None);
        for (url, needle) in [
            ("http://example.com/cat.jpg", "only https"),
            ("ftp://example.com/cat.jpg", "only https"),
            ("file:///etc/passwd", "only https"),
            ("cat.jpg", "not a URL"),
            ("https://user:pw@example.com/cat.jpg", "credentials"),
            ("https://127.0.0.1/cat.jpg", "not a public address"),
            (
                "https://169.254.169.254/latest/meta-data/",
                "not a public address",
            ),
            ("https://[::ffff:a9fe:a9fe]/", "not a public address"),
            ("https://[fd00:ec2::254]/", "not a public address"),
            ("https://2130706433/", "not a public address"),
            ("https://0x7f.1/", "not a public address"),
            ("https://localhost:1/cat.jpg", "not a public address"),
            ("https://10.0.0.1/cat.jpg", "not a public address"),
        ] {
            let message = refused(&open, url);
            assert!(message.contains(needle), "{url}: {message}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LENGTH));
        assert!(refused(&open, &long).contains("at most"));
        // A list narrows: other hosts are refused by name, before any lookup; listed by a domain, a
        // host gets the full guard.
        let listed = fetcher(Some("*.localhost, 127.0.0.1"));
        assert!(refused(&listed, "https://example.com/").contains("IMAGE_URL_HOSTS"));
        assert!(refused(&listed, "https://127.0.0.2/").contains("IMAGE_URL_HOSTS"));
        assert!(refused(&listed, "http://a.localhost/").contains("only https"));
    }

    #[test]
    fn messages_leave_out_the_query() {
        let url = Url::parse("https://example.com/a.jpg?X-Amz-Signature=secret").unwrap();
        assert_eq!(shown(&url), "\"https://example.com/a.jpg?…\"");
    }
}
