//! The HTTP protocols the function speaks, one file each: its routes, its requests read into the
//! core's, its answers and errors in its own shape. Adding one is a file and an arm in [`Route`].
//!
//! Routing reads the whole path. Each protocol looks for its own anchor among the path's segments,
//! so whatever precedes it (a REST API stage, a custom domain's base path, nothing at a function URL's
//! root) is left alone; a path no protocol claims goes to the function's own routes, which look at
//! its last segment.

pub mod native;

use aws_lambda_events::http::Method;

use crate::aws::lambda::events::Request;
use crate::aws::lambda::record::Record;
use crate::aws::lambda::reply::Reply;
use crate::aws::lambda::service::Service;
use crate::core::error::Failure;

/// Where a request goes: a protocol, and the route within it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The function's own `/detect`, `/model` and `/health`.
    Native(native::Route),
}

impl Route {
    /// The route's name in the log line.
    pub fn name(&self) -> &'static str {
        match self {
            Route::Native(r) => r.name(),
        }
    }

    /// The `Allow` header's methods.
    pub fn allow(&self) -> &'static str {
        match self {
            Route::Native(r) => r.allow(),
        }
    }

    /// Whether `method` is one the route answers (a CORS preflight aside).
    pub fn allows(&self, method: &Method) -> bool {
        self.allow()
            .split(", ")
            .any(|m| m != "OPTIONS" && m == method.as_str())
    }

    /// Whether the route runs a detection: what the request metrics count.
    pub fn is_detection(&self) -> bool {
        match self {
            Route::Native(r) => *r == native::Route::Detect,
        }
    }

    /// `failure` in the protocol's own error shape.
    pub(crate) fn error(&self, failure: Failure) -> Reply {
        match self {
            Route::Native(_) => Reply::from(failure),
        }
    }
}

/// The route of a request, by its whole path; `None` when no protocol claims it.
pub fn route(request: &Request) -> Option<Route> {
    native::route(request).map(Route::Native)
}

/// The answer to a route, once its method is known to be allowed.
pub async fn answer(
    service: &Service<'_>,
    route: &Route,
    request: &Request,
    record: &mut Record,
) -> Reply {
    match route {
        Route::Native(r) => native::answer(service, *r, request, record).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_allows_its_own_methods_only() {
        let detect = Route::Native(native::Route::Detect);
        assert!(detect.allows(&Method::POST));
        assert!(!detect.allows(&Method::GET));
        assert!(!detect.allows(&Method::OPTIONS));
        let model = Route::Native(native::Route::Model);
        assert!(model.allows(&Method::GET) && model.allows(&Method::HEAD));
        assert!(!model.allows(&Method::POST));
    }
}
