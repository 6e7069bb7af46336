//! Browsers: grpc-web on the relay's one port, CORS for the configured
//! origins only, and the resumable unary upload that browsers use for
//! attachments. The requests are what a browser sends (preflights, grpc-web
//! POSTs over HTTP/1.1 with an `Origin`), made by a real HTTP client
//! against the real relay on loopback.

mod common;

use alcove_api::v1::auth_client::AuthClient;
use alcove_api::v1::blobs_client::BlobsClient;
use alcove_api::v1::{
    ChallengeRequest, ChallengeResponse, DownloadRequest, FinishUploadRequest, StartUploadRequest,
    UploadPieceRequest, UploadStatusRequest,
};
use bytes::{Buf, Bytes};
use common::{code, Backend, Device, TestRelay};
use futures::StreamExt;
use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, CONTENT_TYPE, ORIGIN,
};
use http::{HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prost::Message;
use tonic::Code;

const PORTAL: &str = "http://portal.test:8080";
const ELSEWHERE: &str = "https://elsewhere.test";
const PIECE: usize = 512 << 10;

fn http() -> Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A browser's CORS preflight for a grpc-web call.
async fn preflight(relay: &TestRelay, origin: &str) -> http::Response<Bytes> {
    let request = http::Request::builder()
        .method(Method::OPTIONS)
        .uri(format!("http://{}/alcove.v1.Auth/Challenge", relay.addr()))
        .header(ORIGIN, origin)
        .header(ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(
            ACCESS_CONTROL_REQUEST_HEADERS,
            "content-type,x-grpc-web,x-user-agent,authorization",
        )
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = http().request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    http::Response::from_parts(parts, body.collect().await.unwrap().to_bytes())
}

/// A grpc-web call as a browser makes it: HTTP/1.1 POST, one framed
/// message in, framed message and trailers out.
async fn grpc_web(
    relay: &TestRelay,
    origin: Option<&str>,
    path: &str,
    message: impl Message,
) -> GrpcWebReply {
    let payload = message.encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    framed.extend_from_slice(&payload);
    let mut request = http::Request::builder()
        .method(Method::POST)
        .uri(format!("http://{}{path}", relay.addr()))
        .header(CONTENT_TYPE, "application/grpc-web+proto")
        .header("x-grpc-web", "1");
    if let Some(origin) = origin {
        request = request.header(ORIGIN, origin);
    }
    let response = http()
        .request(request.body(Full::new(Bytes::from(framed))).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let mut body = body.collect().await.unwrap().to_bytes();
    let mut reply = GrpcWebReply {
        http: parts.status,
        headers: parts.headers,
        message: None,
        trailers: String::new(),
    };
    while body.remaining() >= 5 {
        let flag = body.get_u8();
        let len = body.get_u32() as usize;
        let frame = body.split_to(len);
        if flag & 0x80 != 0 {
            reply.trailers = String::from_utf8(frame.to_vec()).unwrap();
        } else {
            reply.message = Some(frame);
        }
    }
    assert!(body.is_empty(), "a partial grpc-web frame");
    reply
}

struct GrpcWebReply {
    http: StatusCode,
    headers: http::HeaderMap,
    message: Option<Bytes>,
    trailers: String,
}

impl GrpcWebReply {
    /// The gRPC status: in the trailers frame, or in the headers of a
    /// trailers-only reply.
    fn grpc_status(&self) -> String {
        self.trailers
            .lines()
            .find_map(|l| l.strip_prefix("grpc-status:"))
            .map(|s| s.trim().to_owned())
            .or_else(|| {
                self.headers
                    .get("grpc-status")
                    .map(|s| s.to_str().unwrap().to_owned())
            })
            .expect("no grpc-status")
    }

    fn allow_origin(&self) -> Option<&HeaderValue> {
        self.headers.get(ACCESS_CONTROL_ALLOW_ORIGIN)
    }
}

fn challenge() -> ChallengeRequest {
    ChallengeRequest {
        address: vec![7; 32],
    }
}

fn header_list(headers: &http::HeaderMap, name: http::HeaderName) -> String {
    headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(",")
}

#[tokio::test]
async fn browsers_get_grpc_web_only_from_allowed_origins() {
    let relay = TestRelay::start_with(|c| c.allow_origins = vec![PORTAL.to_owned()]).await;

    // The preflight from the portal is answered with its origin and the
    // headers grpc-web needs; one from anywhere else is refused.
    let ok = preflight(&relay, PORTAL).await;
    assert!(ok.status().is_success(), "{:?}", ok.status());
    assert_eq!(
        ok.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).unwrap(),
        PORTAL
    );
    let allowed = header_list(ok.headers(), ACCESS_CONTROL_ALLOW_HEADERS);
    for needed in ["content-type", "x-grpc-web", "authorization"] {
        assert!(allowed.contains(needed), "{needed} not in {allowed}");
    }
    let refused = preflight(&relay, ELSEWHERE).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());

    // A grpc-web call from the portal works, and the page may read the
    // gRPC status.
    let reply = grpc_web(
        &relay,
        Some(PORTAL),
        "/alcove.v1.Auth/Challenge",
        challenge(),
    )
    .await;
    assert_eq!(reply.http, StatusCode::OK);
    assert_eq!(reply.grpc_status(), "0", "trailers: {}", reply.trailers);
    assert_eq!(reply.allow_origin().unwrap(), PORTAL);
    assert!(header_list(&reply.headers, ACCESS_CONTROL_EXPOSE_HEADERS).contains("grpc-status"));
    let answer = ChallengeResponse::decode(reply.message.unwrap()).unwrap();
    assert!(!answer.challenge.is_empty() && !answer.server_id.is_empty());

    // The same call from another origin is not processed at all.
    let reply = grpc_web(
        &relay,
        Some(ELSEWHERE),
        "/alcove.v1.Auth/Challenge",
        challenge(),
    )
    .await;
    assert_eq!(
        reply.grpc_status(),
        (Code::PermissionDenied as i32).to_string()
    );
    assert!(reply.allow_origin().is_none());
    assert!(reply.message.is_none());
    let message = reply.headers.get("grpc-message").unwrap().to_str().unwrap();
    assert!(message.contains("allow-origin"), "{message}");

    // A grpc-web client outside a browser (no Origin) is not a web page.
    let reply = grpc_web(&relay, None, "/alcove.v1.Auth/Challenge", challenge()).await;
    assert_eq!(reply.grpc_status(), "0");

    // Native gRPC on the same port is unchanged.
    let device = Device::registered(&relay, 1).await;
    assert!(!device.token.is_empty());
}

#[tokio::test]
async fn with_no_origin_configured_every_browser_is_refused() {
    let relay = TestRelay::start().await;
    assert_eq!(
        preflight(&relay, PORTAL).await.status(),
        StatusCode::FORBIDDEN
    );
    let reply = grpc_web(
        &relay,
        Some(PORTAL),
        "/alcove.v1.Auth/Challenge",
        challenge(),
    )
    .await;
    assert_eq!(
        reply.grpc_status(),
        (Code::PermissionDenied as i32).to_string()
    );
    assert!(relay
        .config
        .check()
        .unwrap()
        .contains("browser origins: none"));

    // An origin a browser could never send is a configuration error, named.
    let dir = tempfile::tempdir().unwrap();
    for bad in ["*", "https://portal.test/", "portal.test"] {
        let mut config = alcove_server::Config::for_dir(dir.path());
        config.allow_origins = vec![bad.to_owned()];
        let error = format!("{:#}", config.check().unwrap_err());
        assert!(error.contains("--allow-origin"), "{error}");
        let started = alcove_server::start(config).await;
        assert!(started.is_err(), "{bad} was accepted");
    }
}

type WebService = tower::util::MapRequest<
    tonic_web::GrpcWebClientService<
        Client<
            hyper_util::client::legacy::connect::HttpConnector,
            tonic_web::GrpcWebCall<tonic::body::Body>,
        >,
    >,
    fn(http::Request<tonic::body::Body>) -> http::Request<tonic::body::Body>,
>;

fn from_portal(mut request: http::Request<tonic::body::Body>) -> http::Request<tonic::body::Body> {
    request
        .headers_mut()
        .insert(ORIGIN, HeaderValue::from_static(PORTAL));
    request
}

/// A client transport that speaks grpc-web over HTTP/1.1 from the portal's
/// origin, as the browser SDK does.
fn web_service() -> WebService {
    let client = Client::builder(TokioExecutor::new()).build_http();
    tower::ServiceBuilder::new()
        .map_request(from_portal as fn(_) -> _)
        .layer(tonic_web::GrpcWebClientLayer::new())
        .service(client)
}

fn web_uri(relay: &TestRelay) -> http::Uri {
    format!("http://{}", relay.addr()).parse().unwrap()
}

fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

async fn download(device: &Device, blob_id: Vec<u8>) -> Vec<u8> {
    let mut stream = device
        .blobs()
        .download(device.req(DownloadRequest { blob_id }))
        .await
        .unwrap()
        .into_inner();
    let mut out = Vec::new();
    while let Some(piece) = stream.next().await {
        out.extend(piece.unwrap().data);
    }
    out
}

async fn a_browser_uploads_in_pieces_and_resumes(backend: Backend) {
    let relay = TestRelay::start_on(backend, |c| c.allow_origins = vec![PORTAL.to_owned()]).await;
    let device = Device::registered(&relay, 1).await;
    let mut web = BlobsClient::with_origin(web_service(), web_uri(&relay));
    let blob = content(2 * PIECE + 1000, 1);

    let started = web
        .start_upload(device.req(StartUploadRequest {
            size: blob.len() as u64,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(started.upload_id.len(), 16);
    assert_eq!(started.piece_size as usize, PIECE);
    assert_eq!(started.pieces, 3);
    let id = started.upload_id.clone();
    let piece = |index: u32, data: &[u8]| UploadPieceRequest {
        upload_id: id.clone(),
        index,
        data: data.to_vec(),
    };
    let slice = |index: usize| &blob[index * PIECE..((index + 1) * PIECE).min(blob.len())];

    // Out of order; the middle piece first arrives wrong and is replaced.
    web.upload_piece(device.req(piece(2, slice(2))))
        .await
        .unwrap();
    web.upload_piece(device.req(piece(1, &content(PIECE, 9))))
        .await
        .unwrap();
    web.upload_piece(device.req(piece(1, slice(1))))
        .await
        .unwrap();
    let status = web
        .upload_status(device.req(UploadStatusRequest {
            upload_id: id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.missing, vec![0]);
    assert_eq!(status.size, blob.len() as u64);

    // Finishing with a piece missing names it and finishes nothing.
    let early = web
        .finish_upload(device.req(FinishUploadRequest {
            upload_id: id.clone(),
        }))
        .await
        .unwrap_err();
    assert_eq!(early.code(), Code::FailedPrecondition);
    assert!(early.message().contains("piece 0"), "{}", early.message());
    let not_yet = device
        .blobs()
        .download(device.req(DownloadRequest {
            blob_id: id.clone(),
        }))
        .await;
    assert_eq!(code(not_yet), Code::NotFound);

    web.upload_piece(device.req(piece(0, slice(0))))
        .await
        .unwrap();
    let finished = web
        .finish_upload(device.req(FinishUploadRequest {
            upload_id: id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(finished.blob_id, id);
    assert_eq!(finished.size, blob.len() as u64);
    assert_eq!(download(&device, id.clone()).await, blob);

    // A finished blob's pieces cannot change.
    let late = web
        .upload_piece(device.req(piece(0, &content(PIECE, 5))))
        .await;
    assert_eq!(code(late), Code::FailedPrecondition);
    assert_eq!(download(&device, id).await, blob);
}

async fn an_upload_resumes_after_the_relay_restarts(backend: Backend) {
    let mut relay = TestRelay::start_on(backend, |_| {}).await;
    let device = Device::registered(&relay, 1).await;
    let blob = content(3 * PIECE - 7, 2);
    let started = device
        .blobs()
        .start_upload(device.req(StartUploadRequest {
            size: blob.len() as u64,
        }))
        .await
        .unwrap()
        .into_inner();
    let id = started.upload_id;
    let piece = |index: usize| UploadPieceRequest {
        upload_id: id.clone(),
        index: index as u32,
        data: blob[index * PIECE..((index + 1) * PIECE).min(blob.len())].to_vec(),
    };
    device
        .blobs()
        .upload_piece(device.req(piece(0)))
        .await
        .unwrap();
    device
        .blobs()
        .upload_piece(device.req(piece(2)))
        .await
        .unwrap();

    relay.restart().await;
    let mut device = device;
    device.channel = relay.channel().await;
    let status = device
        .blobs()
        .upload_status(device.req(UploadStatusRequest {
            upload_id: id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(status.missing.contains(&1), "{:?}", status.missing);
    for index in status.missing {
        device
            .blobs()
            .upload_piece(device.req(piece(index as usize)))
            .await
            .unwrap();
    }
    device
        .blobs()
        .finish_upload(device.req(FinishUploadRequest {
            upload_id: id.clone(),
        }))
        .await
        .unwrap();
    assert_eq!(download(&device, id).await, blob);
}

async fn bad_pieces_are_refused_and_change_nothing(backend: Backend) {
    let relay = TestRelay::start_on(backend, |c| c.limits.max_blob_bytes = 4 * PIECE as u64).await;
    let device = Device::registered(&relay, 1).await;
    let mut blobs = device.blobs();
    let start = |size: u64| device.req(StartUploadRequest { size });

    assert_eq!(
        code(blobs.start_upload(start(4 * PIECE as u64 + 1)).await),
        Code::ResourceExhausted
    );
    assert_eq!(
        code(blobs.start_upload(StartUploadRequest { size: 10 }).await),
        Code::Unauthenticated
    );

    let id = blobs
        .start_upload(start(PIECE as u64 + 10))
        .await
        .unwrap()
        .into_inner()
        .upload_id;
    let piece = |upload_id: Vec<u8>, index: u32, len: usize| {
        device.req(UploadPieceRequest {
            upload_id,
            index,
            data: vec![1; len],
        })
    };
    let refusals = [
        (
            piece(id.clone(), 0, PIECE - 1),
            Code::InvalidArgument,
            "short piece",
        ),
        (
            piece(id.clone(), 1, 11),
            Code::InvalidArgument,
            "long last piece",
        ),
        (
            piece(id.clone(), 2, 10),
            Code::InvalidArgument,
            "index past the end",
        ),
        (
            piece(id[..15].to_vec(), 0, PIECE),
            Code::InvalidArgument,
            "15-byte id",
        ),
        (
            piece(vec![9; 16], 0, PIECE),
            Code::NotFound,
            "unknown upload",
        ),
    ];
    for (request, expected, what) in refusals {
        let status = blobs.upload_piece(request).await.unwrap_err();
        assert_eq!(status.code(), expected, "{what}: {}", status.message());
        assert!(!status.message().is_empty());
    }
    let status = blobs
        .upload_status(device.req(UploadStatusRequest {
            upload_id: id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.missing, vec![0, 1], "a refused piece was kept");

    // An empty blob has no pieces and finishes at once.
    let empty = blobs.start_upload(start(0)).await.unwrap().into_inner();
    assert_eq!(empty.pieces, 0);
    blobs
        .finish_upload(device.req(FinishUploadRequest {
            upload_id: empty.upload_id.clone(),
        }))
        .await
        .unwrap();
    assert!(download(&device, empty.upload_id).await.is_empty());
}

/// The SDK's in-memory documents (the browser's path) go through the
/// unary upload; the other side gets them back byte for byte, as bytes or
/// as a file, and a pointer whose digest does not match yields nothing.
async fn documents_in_memory_round_trip(backend: Backend) {
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let (therapist, client, to_client, _) = common::sdk::pair(&relay, dir.path()).await;
    let worksheet = content(PIECE * 2 + 12_345, 3);
    let mut progress = Vec::new();
    let pointer = therapist
        .upload_bytes(
            &worksheet,
            "application/pdf",
            "worksheet.pdf",
            |done, total| progress.push((done, total)),
        )
        .await
        .unwrap();
    assert_eq!(progress.len(), 3, "one report per piece");
    assert_eq!(progress[2].0, progress[2].1);
    assert_eq!(pointer.size, worksheet.len() as u64);
    assert_eq!(pointer.file_name, "worksheet.pdf");
    therapist
        .assign_homework(
            &to_client.address,
            "Thought record",
            "Fill in the worksheet",
            None,
            vec![pointer],
        )
        .await
        .unwrap();
    let events = client.sync().await.unwrap();
    let Some(alcove_client::Body::HomeworkAssignment(a)) = events[0].body() else {
        panic!("no assignment: {:?}", events[0].kind)
    };
    let received = &a.attachments[0];
    assert_eq!(client.download_bytes(received).await.unwrap(), worksheet);
    let file = dir.path().join("worksheet.pdf");
    client
        .download_file(received, &file, |_, _| {})
        .await
        .unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), worksheet);

    let mut forged = received.clone();
    forged.digest[0] ^= 1;
    assert!(matches!(
        client.download_bytes(&forged).await,
        Err(alcove_client::Error::VerificationFailed(_))
    ));
}

/// A session token that expires between documents: the next upload and
/// download log in again by themselves, as every other SDK call does.
#[tokio::test]
async fn documents_outlive_an_expired_token() {
    let relay = TestRelay::start_with(|c| c.limits.token_ttl_secs = 1).await;
    let dir = tempfile::tempdir().unwrap();
    let (therapist, client, to_client, _) = common::sdk::pair(&relay, dir.path()).await;
    let sheet = content(1000, 4);
    let first = therapist
        .upload_bytes(&sheet, "text/plain", "a.txt", |_, _| {})
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let second = therapist
        .upload_bytes(&sheet, "text/plain", "b.txt", |_, _| {})
        .await
        .expect("an expired token is renewed, not reported");
    therapist
        .send_attachment(&to_client.address, second)
        .await
        .unwrap();
    client.sync().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(client.download_bytes(&first).await.unwrap(), sheet);
}

on_every_backend!(
    documents_in_memory_round_trip,
    a_browser_uploads_in_pieces_and_resumes,
    an_upload_resumes_after_the_relay_restarts,
    bad_pieces_are_refused_and_change_nothing,
);

/// The grpc-web client also reaches the relay's other services (a page
/// logs in over it).
#[tokio::test]
async fn the_auth_service_answers_over_grpc_web_clients() {
    let relay = TestRelay::start_with(|c| c.allow_origins = vec![PORTAL.to_owned()]).await;
    let answer = AuthClient::with_origin(web_service(), web_uri(&relay))
        .challenge(challenge())
        .await
        .unwrap()
        .into_inner();
    assert!(!answer.challenge.is_empty());
}
