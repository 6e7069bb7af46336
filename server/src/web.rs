//! Browsers: grpc-web is served beside native gRPC on the same port
//! (tonic-web translates it), and CORS admits only the origins the operator
//! named with `--allow-origin`.
//!
//! A request that carries an `Origin` header comes from a web page. If that
//! origin is not on the list, the relay refuses the request itself (HTTP
//! 403 for a preflight, `PERMISSION_DENIED` for a call) instead of only
//! leaving out the CORS headers: nothing a page from elsewhere sends is
//! processed. Native clients send no `Origin` and are not affected.
//!
//! CORS does not protect anyone's keys or messages (a page holds its own
//! login token, and the relay sees only ciphertext); it decides which web
//! apps may use this relay at all.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{bail, Context as _};
use http::{header, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The origins whose pages may call the relay, checked and normalised.
#[derive(Debug, Clone, Default)]
pub struct AllowedOrigins(Arc<[HeaderValue]>);

impl AllowedOrigins {
    /// Parses `--allow-origin` values: each `http://host[:port]` or
    /// `https://host[:port]`, with no path, no wildcard and no trailing
    /// slash (browsers send the origin in exactly that form).
    pub fn parse(origins: &[String]) -> anyhow::Result<Self> {
        let mut out = Vec::with_capacity(origins.len());
        for given in origins {
            let origin = given.trim();
            if origin.is_empty() {
                continue;
            }
            out.push(parse_origin(origin).with_context(|| format!("--allow-origin {origin:?}"))?);
        }
        Ok(Self(out.into()))
    }

    /// Whether `origin` (an `Origin` header) is on the list.
    pub fn admits(&self, origin: &HeaderValue) -> bool {
        self.0.iter().any(|o| o == origin)
    }

    /// Whether no origin is allowed (the default).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The CORS answers for the allowed origins: the methods and headers
    /// grpc-web needs, and the gRPC status headers a page must read.
    pub fn cors(&self) -> CorsLayer {
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(self.0.iter().cloned()))
            .allow_methods([Method::POST, Method::OPTIONS])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                HeaderName::from_static("x-grpc-web"),
                HeaderName::from_static("x-user-agent"),
                HeaderName::from_static("grpc-timeout"),
            ])
            .expose_headers([
                HeaderName::from_static("grpc-status"),
                HeaderName::from_static("grpc-message"),
                HeaderName::from_static("grpc-status-details-bin"),
            ])
            .max_age(PREFLIGHT_MAX_AGE)
    }
}

impl fmt::Display for AllowedOrigins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none (browsers refused)");
        }
        let names: Vec<&str> = self.0.iter().filter_map(|o| o.to_str().ok()).collect();
        f.write_str(&names.join(", "))
    }
}

fn parse_origin(origin: &str) -> anyhow::Result<HeaderValue> {
    let (scheme, rest) = origin
        .split_once("://")
        .context("an origin is scheme://host[:port], e.g. https://portal.example.org")?;
    if scheme != "http" && scheme != "https" {
        bail!("the scheme must be http or https");
    }
    if rest.is_empty() {
        bail!("the host is missing");
    }
    if rest.contains(['/', '?', '#', '*', '@', ' ']) {
        bail!("an origin has no path, query, wildcard or user (browsers send scheme://host[:port] only)");
    }
    if rest.chars().any(|c| c.is_ascii_uppercase()) {
        bail!("write the host in lower case, as browsers send it");
    }
    if let Some((_, port)) = rest.rsplit_once(':').filter(|_| !rest.ends_with(']')) {
        port.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .context("the port must be a number from 1 to 65535")?;
    }
    HeaderValue::from_str(origin).context("not a valid header value")
}

/// Refuses requests from web pages of origins that are not allowed.
#[derive(Debug, Clone)]
pub struct OriginGate<S> {
    inner: S,
    allowed: AllowedOrigins,
}

impl<S> OriginGate<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, allowed: AllowedOrigins) -> Self {
        Self { inner, allowed }
    }
}

impl<S, B> tower::Service<Request<B>> for OriginGate<S>
where
    S: tower::Service<Request<B>, Response = Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let refused = request
            .headers()
            .get(header::ORIGIN)
            .filter(|o| !self.allowed.admits(o))
            .map(|o| String::from_utf8_lossy(o.as_bytes()).into_owned());
        if let Some(origin) = refused {
            let preflight = request.method() == Method::OPTIONS;
            tracing::debug!(%origin, preflight, "request from a web origin that is not allowed");
            let mut response = tonic::Status::permission_denied(format!(
                "web origin {origin} is not allowed on this relay (the operator lists origins with --allow-origin)"
            ))
            .into_http();
            if preflight {
                *response.status_mut() = StatusCode::FORBIDDEN;
            }
            return Box::pin(std::future::ready(Ok(response)));
        }
        Box::pin(self.inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    use super::AllowedOrigins;

    fn one(origin: &str) -> anyhow::Result<AllowedOrigins> {
        AllowedOrigins::parse(&[origin.to_owned()])
    }

    #[test]
    fn origins_are_checked() {
        for good in [
            "https://portal.example.org",
            "http://127.0.0.1:8080",
            "http://[::1]:3000",
        ] {
            assert!(one(good).is_ok(), "{good}");
        }
        for bad in [
            "*",
            "portal.example.org",
            "https://portal.example.org/",
            "https://*.example.org",
            "ftp://example.org",
            "https://Portal.example.org",
            "https://example.org:0",
            "https://example.org:99999",
            "https://",
        ] {
            assert!(one(bad).is_err(), "{bad} was accepted");
        }
        assert!(AllowedOrigins::parse(&[]).unwrap().is_empty());
    }
}
