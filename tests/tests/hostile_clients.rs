//! Hostile clients against the real relay, through real gRPC: malformed
//! protobuf bytes, a client holding an upload stream open without sending,
//! and more concurrent streams than a connection may open. Each gets a
//! clear status, and the relay keeps serving everyone else. (Oversized
//! messages, prekey draining, unauthenticated and cross-device access,
//! expired and replayed tokens and challenges, and the subscription limit
//! are in `relay.rs`.)

mod common;

use std::time::{Duration, Instant};

use alcove_api::v1::blobs_client::BlobsClient;
use alcove_api::v1::upload_request::Part;
use alcove_api::v1::*;
use bytes::{Buf, BufMut};
use common::{Backend, Device, TestRelay};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::Code;

on_every_backend!(
    malformed_protobuf_gets_invalid_argument_and_changes_nothing,
    a_client_holding_an_upload_open_is_cut_off_and_others_are_served,
);

/// Sends and receives raw bytes as the gRPC message body.
#[derive(Default, Clone)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

async fn raw_call(
    channel: Channel,
    path: &'static str,
    body: Vec<u8>,
    token: Option<&str>,
) -> Result<Vec<u8>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let mut req = tonic::Request::new(body);
    if let Some(t) = token {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    grpc.unary(
        req,
        tonic::codegen::http::uri::PathAndQuery::from_static(path),
        Raw,
    )
    .await
    .map(|r| r.into_inner())
}

async fn healthy(relay: &TestRelay) {
    let mut h = tonic_health::pb::health_client::HealthClient::new(relay.channel().await);
    let r = h
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.status, 1, "SERVING");
}

async fn malformed_protobuf_gets_invalid_argument_and_changes_nothing(backend: Backend) {
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let alice = Device::registered(&relay, 0).await;
    let bob = Device::registered(&relay, 0).await;
    let garbage: [&[u8]; 5] = [
        &[0xff; 20],                           // invalid wire type
        &[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f], // length past the end
        &[0x1a, 0x05, 1, 2],                   // truncated field
        &[
            0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
        ], // varint too long
        &[0x0a, 0x02, 0xc3, 0x28],             // bytes field, fine; other fields missing
    ];
    for (i, body) in garbage.iter().enumerate() {
        let r = raw_call(
            alice.channel.clone(),
            "/alcove.v1.Mailbox/Send",
            body.to_vec(),
            Some(&alice.token),
        )
        .await;
        let e = r.expect_err("refused");
        assert_eq!(e.code(), Code::InvalidArgument, "body {i}: {e:?}");
        assert!(!e.message().is_empty());
        // Before login, too.
        let e = raw_call(
            alice.channel.clone(),
            "/alcove.v1.Auth/Register",
            body.to_vec(),
            None,
        )
        .await
        .expect_err("refused");
        assert_eq!(e.code(), Code::InvalidArgument, "register body {i}: {e:?}");
    }
    // Nothing was stored for anyone, and the relay still serves.
    let page = bob
        .mailbox()
        .fetch(bob.req(FetchRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(page.envelopes.is_empty());
    healthy(&relay).await;
    bob.send_envelope(&alice.address(), common::id16(1), vec![1; 449])
        .await;
}

async fn a_client_holding_an_upload_open_is_cut_off_and_others_are_served(backend: Backend) {
    let relay = TestRelay::start_on(backend, |c| {
        c.limits.upload_idle_secs = 1;
        c.limits.max_streams_per_connection = 2;
    })
    .await;
    let slow = Device::registered(&relay, 0).await;
    let other = Device::registered(&relay, 0).await;

    // Two uploads on one connection: a header, then silence.
    let stalled = |d: &Device| {
        let mut c = BlobsClient::new(d.channel.clone());
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let req = d.req(tokio_stream::wrappers::ReceiverStream::new(rx));
        tokio::spawn(async move {
            tx.send(UploadRequest {
                part: Some(Part::Header(UploadHeader { size: 10 })),
            })
            .await
            .unwrap();
            let r = c.upload(req).await;
            drop(tx);
            r
        })
    };
    let started = Instant::now();
    let a = stalled(&slow);
    let b = stalled(&slow);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A third call on the same connection waits for a stream slot; another
    // connection is served at once.
    let third = {
        let slow_mailbox = slow.mailbox();
        let req = slow.req(FetchRequest::default());
        tokio::spawn(async move {
            let mut m = slow_mailbox;
            let r = m.fetch(req).await;
            (r, Instant::now())
        })
    };
    healthy(&relay).await;
    other
        .mailbox()
        .fetch(other.req(FetchRequest::default()))
        .await
        .unwrap();
    let served_other = started.elapsed();

    // The stalled uploads end with DEADLINE_EXCEEDED after the idle time.
    for h in [a, b] {
        let e = h.await.unwrap().expect_err("cut off");
        assert_eq!(e.code(), Code::DeadlineExceeded, "{e:?}");
        assert!(e.message().contains("no upload data"), "{e:?}");
    }
    let (r, done) = third.await.unwrap();
    r.unwrap();
    assert!(
        served_other < done.duration_since(started),
        "the other connection was served while this one's streams were full"
    );
    healthy(&relay).await;
}

/// A frame larger than anything the relay accepts, on a unary call and on
/// an upload, gets RESOURCE_EXHAUSTED with the relay's own message naming
/// the limit (not the gRPC library's OUT_OF_RANGE), and changes nothing.
#[tokio::test]
async fn an_oversized_frame_gets_resource_exhausted_with_the_limit() {
    let relay = TestRelay::start().await;
    let sender = Device::registered(&relay, 0).await;
    let recipient = Device::registered(&relay, 0).await;
    // 5 MB: above the envelope limit and above the decoder's bound.
    let huge = alcove_api::v1::SendRequest {
        recipient: recipient.address().to_vec(),
        client_message_id: vec![1; 16],
        envelope: vec![1; 5_000_000],
        ..Default::default()
    };
    let e = sender.mailbox().send(sender.req(huge)).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("bytes"), "{e:?}");
    assert!(e.message().contains("limit"), "{e:?}");
    let e = raw_call(
        relay.channel().await,
        "/alcove.v1.Auth/Challenge",
        // Auth and Keys decode up to a full stock of hybrid one-time
        // prekeys (about 320 KB by default); this is well over it.
        vec![0; 1_000_000],
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    // An upload piece of 3 MiB (pieces are at most 1 MiB).
    use alcove_api::v1::{upload_request::Part, UploadHeader, UploadRequest};
    let parts = vec![
        UploadRequest {
            part: Some(Part::Header(UploadHeader { size: 3 << 20 })),
        },
        UploadRequest {
            part: Some(Part::Data(vec![7; 3 << 20])),
        },
    ];
    let e = sender
        .blobs()
        .upload(sender.req(futures::stream::iter(parts)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("limit"), "{e:?}");
    let waiting = recipient
        .mailbox()
        .fetch(recipient.req(alcove_api::v1::FetchRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .envelopes;
    assert!(waiting.is_empty());
    healthy(&relay).await;
}
