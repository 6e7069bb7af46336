//! The SDK's transport in the browser: grpc-web over `fetch`, to the
//! relay's one port (it serves grpc-web beside gRPC). Every request first
//! waits for the profile store's commits to be durable (see
//! [`crate::store`]).
//!
//! The browser's futures and bodies are not `Send`; the SDK's transport
//! seam asks for `Send`. A wasm32 page has one thread, so they are wrapped
//! in `SendWrapper`, which checks at run time that they stay on it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use alcove_client::{BoxError, Transport};
use bytes::Bytes;
use send_wrapper::SendWrapper;
use tower_service::Service;

use crate::store::Durability;

/// grpc-web to `base_url` (the relay's URL, `https://relay.example.org`).
pub fn grpc_web(base_url: &str, durability: Durability) -> Transport {
    Transport::new(GrpcWeb {
        client: SendWrapper::new(tonic_web_wasm_client::Client::new(
            base_url.trim_end_matches('/').to_owned(),
        )),
        durability,
    })
}

#[derive(Clone)]
struct GrpcWeb {
    client: SendWrapper<tonic_web_wasm_client::Client>,
    durability: Durability,
}

type Reply = http::Response<tonic::body::Body>;

impl Service<http::Request<tonic::body::Body>> for GrpcWeb {
    type Response = Reply;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Reply, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let mut client = (*self.client).clone();
        let durability = self.durability.clone();
        Box::pin(SendWrapper::new(async move {
            durability.settled().await.map_err(BoxError::from)?;
            let response = client
                .call(request)
                .await
                .map_err(|e| Box::new(e) as BoxError)?;
            Ok(response
                .map(|body| tonic::body::Body::new(PageBody(SendWrapper::new(Box::pin(body))))))
        }))
    }
}

/// A response body read from `fetch`, held on the page's thread.
struct PageBody(SendWrapper<Pin<Box<tonic_web_wasm_client::ResponseBody>>>);

impl http_body::Body for PageBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        self.get_mut()
            .0
            .as_mut()
            .poll_frame(cx)
            .map(|frame| frame.map(|r| r.map_err(|e| Box::new(e) as BoxError)))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }
}
