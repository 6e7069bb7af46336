//! Oversized frames get the relay's own answer.
//!
//! Every service bounds the size of a request message it decodes (the
//! largest legitimate envelope, upload piece or key message, plus a margin).
//! tonic refuses a larger frame before the handler runs, with OUT_OF_RANGE
//! and its own wording. The relay's contract (proto/alcove/v1/relay.proto)
//! is RESOURCE_EXHAUSTED for anything over a limit, so this layer rewrites
//! exactly that refusal on the way out, naming the size and the limit. A
//! handler's own OUT_OF_RANGE (the key log's, for a size beyond the log)
//! is left alone.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response};

/// The layer's service.
#[derive(Debug, Clone)]
pub struct OversizedFrames<S> {
    inner: S,
}

impl<S> OversizedFrames<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

/// tonic's wording for a frame over `max_decoding_message_size`.
const TONIC_TOO_LARGE: &str = "decoded message length too large";

/// The relay's message for what tonic said, if it is that refusal.
fn rewrite(message: &str) -> Option<String> {
    if !message.contains(TONIC_TOO_LARGE) {
        return None;
    }
    let numbers: Vec<u64> = message
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    Some(match numbers.as_slice() {
        [found, limit, ..] => format!(
            "request message of {found} bytes is over this call's limit of {limit} bytes \
             (for envelopes, see RelayLimits.max_envelope_bytes in LoginResponse)"
        ),
        _ => "request message is over this call's size limit".to_owned(),
    })
}

impl<S, B, R> tower::Service<Request<B>> for OversizedFrames<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<R>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let call = self.inner.call(request);
        Box::pin(async move {
            let mut response = call.await?;
            let headers = response.headers_mut();
            // A refused unary or first message is a trailers-only response:
            // the status is in the headers.
            let out_of_range = headers
                .get("grpc-status")
                .is_some_and(|s| s.as_bytes() == b"11");
            if out_of_range {
                let ours = headers
                    .get("grpc-message")
                    .and_then(|m| m.to_str().ok())
                    .and_then(|m| rewrite(&percent_decode(m)));
                if let Some(ours) = ours.and_then(|m| HeaderValue::from_str(&m).ok()) {
                    headers.insert("grpc-status", HeaderValue::from_static("8"));
                    headers.insert("grpc-message", ours);
                }
            }
            Ok(response)
        })
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_decoders_refusal_is_rewritten() {
        let m = rewrite("Error, decoded message length too large: found 5000057 bytes, the limit is: 4260033 bytes")
            .unwrap();
        assert!(m.contains("5000057") && m.contains("4260033"), "{m}");
        assert_eq!(rewrite("size 9 is beyond the log's current size 3"), None);
        assert_eq!(percent_decode("a%20b%zz"), "a b%zz");
    }
}
