//! Which browser origins may read the answers (`CORS_ALLOW_ORIGIN`): any (`*`), or a list. With a list,
//! a request whose `Origin` is on it gets that origin back, any other request gets no
//! `Access-Control-Allow-Origin` at all: the answer never reflects an origin nobody configured. Answers
//! then vary by `Origin`, and say so to caches.

/// The configured origins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// `*`: every origin (no credentials, by the CORS rules).
    Any,
    /// Exactly these, as `scheme://host[:port]`, lower case.
    Only(Vec<String>),
}

impl AllowedOrigins {
    /// `*`, or origins separated by commas (`https://app.example.com, http://localhost:3000`).
    pub fn parse(text: &str) -> Result<AllowedOrigins, String> {
        let text = text.trim();
        if text == "*" {
            return Ok(AllowedOrigins::Any);
        }
        let mut origins = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item == "*" {
                return Err("`*` cannot be combined with a list of origins".into());
            }
            let origin = item.to_ascii_lowercase();
            if !is_origin(&origin) {
                return Err(format!(
                    "{:?} is not an origin: expected scheme://host[:port] (http or https, no path), \
                     or `*`",
                    item.chars().take(100).collect::<String>()
                ));
            }
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        if origins.is_empty() {
            return Err("no origin given".into());
        }
        Ok(AllowedOrigins::Only(origins))
    }

    /// The `Access-Control-Allow-Origin` value for a request from `origin`, if it may read the answer.
    pub fn allow(&self, origin: Option<&str>) -> Option<&str> {
        match self {
            AllowedOrigins::Any => Some("*"),
            AllowedOrigins::Only(list) => {
                let origin = origin?.trim();
                list.iter()
                    .find(|o| o.eq_ignore_ascii_case(origin))
                    .map(String::as_str)
            }
        }
    }

    /// Whether answers depend on the request's `Origin` (and need `Vary: Origin`).
    pub fn varies(&self) -> bool {
        matches!(self, AllowedOrigins::Only(_))
    }
}

/// `scheme://host[:port]` with scheme http or https, a DNS name, IPv4 or bracketed IPv6 host, and
/// nothing after the port.
fn is_origin(text: &str) -> bool {
    let Some(rest) = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
    else {
        return false;
    };
    let (host_ok, port) = match rest.strip_prefix('[') {
        Some(v6) => {
            let Some((address, after)) = v6.split_once(']') else {
                return false;
            };
            let port = match after {
                "" => None,
                after => match after.strip_prefix(':') {
                    Some(port) => Some(port),
                    None => return false,
                },
            };
            let address_ok =
                !address.is_empty() && address.chars().all(|c| c.is_ascii_hexdigit() || c == ':');
            (address_ok, port)
        }
        None => {
            let (host, port) = match rest.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            };
            let host_ok = !host.is_empty()
                && host.len() <= 253
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
            (host_ok, port)
        }
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.chars().all(|c| c.is_ascii_digit()));
    host_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_allows_only_its_origins_and_never_reflects_another() {
        let list =
            AllowedOrigins::parse(" https://App.example.com, http://localhost:3000 ,").unwrap();
        assert_eq!(
            list,
            AllowedOrigins::Only(vec![
                "https://app.example.com".into(),
                "http://localhost:3000".into()
            ])
        );
        assert_eq!(
            list.allow(Some("https://app.example.com")),
            Some("https://app.example.com")
        );
        assert_eq!(
            list.allow(Some("HTTPS://APP.EXAMPLE.COM")),
            Some("https://app.example.com")
        );
        assert_eq!(
            list.allow(Some("http://localhost:3000")),
            Some("http://localhost:3000")
        );
        for other in [
            Some("https://evil.example.com"),
            Some("https://app.example.com.evil.com"),
            Some("http://app.example.com"),
            Some("null"),
            Some(""),
            None,
        ] {
            assert_eq!(list.allow(other), None, "{other:?}");
        }
        assert!(list.varies());
        let any = AllowedOrigins::parse("*").unwrap();
        assert_eq!(any.allow(Some("https://whoever.example")), Some("*"));
        assert_eq!(any.allow(None), Some("*"));
        assert!(!any.varies());
    }

    #[test]
    fn what_is_not_an_origin_is_refused() {
        for bad in [
            "example.com",
            "https://example.com/",
            "https://example.com/app",
            "ftp://example.com",
            "https://",
            "https://exa mple.com",
            "https://example.com:port",
            "https://example.com:123456",
            "*, https://example.com",
            "null",
            ",",
            "https://[::1",
        ] {
            assert!(AllowedOrigins::parse(bad).is_err(), "{bad}");
        }
        for good in [
            "https://[::1]:8443",
            "http://127.0.0.1:8080",
            "https://a-b.example.co.uk",
        ] {
            assert!(AllowedOrigins::parse(good).is_ok(), "{good}");
        }
    }
}
