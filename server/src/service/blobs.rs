//! `alcove.v1.Blobs`: encrypted attachments, streamed in and out, or
//! uploaded in resumable unary pieces (for browsers, which cannot stream a
//! request over grpc-web).

use std::sync::atomic::Ordering;
use std::time::Duration;

use alcove_api::v1::blobs_server::Blobs;
use alcove_api::v1::upload_request::Part;
use alcove_api::v1::{
    DownloadRequest, DownloadResponse, FinishUploadRequest, StartUploadRequest,
    StartUploadResponse, UploadPieceRequest, UploadPieceResponse, UploadRequest, UploadResponse,
    UploadStatusRequest, UploadStatusResponse,
};
use alcove_store::{BlobId, BlobInfo};
use rand::RngCore;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::Services;
use crate::auth::now_ms;
use crate::errors::store_status;
use crate::limits::{DOWNLOAD_PIECE, MAX_UPLOAD_PIECE, UNARY_UPLOAD_PIECE};

/// An upload that does not finish within this time is swept.
const UNFINISHED_TTL: Duration = Duration::from_secs(3600);

/// The next upload message, or DEADLINE_EXCEEDED after `idle` without one
/// (a client must not hold an upload stream open without sending).
async fn next_piece(
    stream: &mut Streaming<UploadRequest>,
    idle: Duration,
) -> Result<Option<UploadRequest>, Status> {
    match tokio::time::timeout(idle, stream.message()).await {
        Ok(r) => r,
        Err(_) => Err(Status::deadline_exceeded(format!(
            "no upload data for {} s; start the upload again",
            idle.as_secs()
        ))),
    }
}

/// Pieces of a unary upload of `size` bytes.
fn piece_count(size: u64) -> u32 {
    u32::try_from(size.div_ceil(UNARY_UPLOAD_PIECE as u64)).unwrap_or(u32::MAX)
}

/// The exact length piece `index` of a `size`-byte upload must have.
fn piece_len(size: u64, index: u32) -> u64 {
    let start = u64::from(index) * UNARY_UPLOAD_PIECE as u64;
    size.saturating_sub(start).min(UNARY_UPLOAD_PIECE as u64)
}

fn upload_id(bytes: &[u8]) -> Result<BlobId, Status> {
    bytes
        .try_into()
        .map_err(|_| Status::invalid_argument("upload_id must be 16 bytes"))
}

impl Services {
    /// A fresh blob id, reserved in the store for an upload of `size`
    /// bytes until `UNFINISHED_TTL` from now.
    async fn reserve_blob(&self, size: u64) -> Result<(BlobId, i64), Status> {
        let relay = &self.relay;
        if size > relay.limits.max_blob_bytes {
            return Err(Status::resource_exhausted(format!(
                "blob of {size} bytes exceeds the limit of {} bytes",
                relay.limits.max_blob_bytes
            )));
        }
        let mut id = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut id);
        let pending_until =
            now_ms() + i64::try_from(UNFINISHED_TTL.as_millis()).unwrap_or(i64::MAX);
        relay
            .store
            .begin_blob(&id, size, pending_until)
            .await
            .map_err(store_status)?;
        Ok((id, pending_until))
    }

    /// An upload that can still take pieces: started, not expired, not
    /// finished.
    async fn open_upload(&self, id: &BlobId) -> Result<BlobInfo, Status> {
        let info = self
            .relay
            .store
            .blob(id)
            .await
            .map_err(store_status)?
            .filter(|i| i.expires_at_ms > now_ms())
            .ok_or_else(|| {
                Status::not_found(
                    "no such upload (never started, or not finished within an hour); start again",
                )
            })?;
        if info.finished {
            return Err(Status::failed_precondition(
                "this upload is finished; its pieces cannot change",
            ));
        }
        Ok(info)
    }

    /// The open upload named by `upload_id` (its id and description) and
    /// the pieces the store does not hold yet, ascending.
    async fn upload_progress(
        &self,
        upload_id: &[u8],
    ) -> Result<(BlobId, BlobInfo, Vec<u32>), Status> {
        let id = self::upload_id(upload_id)?;
        let info = self.open_upload(&id).await?;
        let held = self
            .relay
            .store
            .blob_chunk_indices(&id)
            .await
            .map_err(store_status)?;
        let held: std::collections::BTreeSet<u32> = held.into_iter().collect();
        let missing = (0..piece_count(info.size))
            .filter(|i| !held.contains(i))
            .collect();
        Ok((id, info, missing))
    }
}

#[tonic::async_trait]
impl Blobs for Services {
    async fn upload(
        &self,
        request: Request<Streaming<UploadRequest>>,
    ) -> Result<Response<UploadResponse>, Status> {
        let relay = &self.relay;
        let me = relay.track(relay.authorize(&request));
        me?;
        let mut stream = request.into_inner();
        let idle = Duration::from_secs(relay.limits.upload_idle_secs.max(1));
        let first = relay.track(next_piece(&mut stream, idle).await?.ok_or_else(|| {
            Status::invalid_argument("empty upload: the first message must be the header")
        }))?;
        let size = match first.part {
            Some(Part::Header(h)) => h.size,
            _ => {
                return relay.track(Err(Status::invalid_argument(
                    "the first upload message must be the header",
                )))
            }
        };
        let (id, _) = relay.track(self.reserve_blob(size).await)?;

        let received = async {
            let mut total: u64 = 0;
            let mut index: u32 = 0;
            while let Some(msg) = next_piece(&mut stream, idle).await? {
                let data = match msg.part {
                    Some(Part::Data(d)) => d,
                    _ => return Err(Status::invalid_argument("only data may follow the header")),
                };
                if data.len() > MAX_UPLOAD_PIECE {
                    return Err(Status::invalid_argument(format!(
                        "upload pieces are at most {MAX_UPLOAD_PIECE} bytes"
                    )));
                }
                total += data.len() as u64;
                if total > size {
                    return Err(Status::invalid_argument("more data than the header's size"));
                }
                if data.is_empty() {
                    continue;
                }
                relay
                    .store
                    .put_blob_chunk(&id, index, &data)
                    .await
                    .map_err(store_status)?;
                index = index
                    .checked_add(1)
                    .ok_or_else(|| Status::resource_exhausted("too many upload pieces"))?;
            }
            if total != size {
                return Err(Status::invalid_argument(format!(
                    "upload ended after {total} of {size} bytes"
                )));
            }
            Ok(index)
        }
        .await;
        let chunks = match received {
            Ok(chunks) => chunks,
            Err(status) => {
                let _ = relay.store.delete_blob(&id).await;
                return relay.track(Err(status));
            }
        };
        let ttl_ms = relay.limits.blob_ttl_ms();
        let info = BlobInfo {
            finished: true,
            size,
            chunks,
            expires_at_ms: now_ms().saturating_add(ttl_ms),
        };
        relay
            .store
            .finish_blob(&id, &info)
            .await
            .map_err(store_status)?;
        relay.metrics.blobs_uploaded.fetch_add(1, Ordering::Relaxed);
        Ok(Response::new(UploadResponse {
            blob_id: id.to_vec(),
            size,
            expires_at_ms: info.expires_at_ms,
        }))
    }

    type DownloadStream = ReceiverStream<Result<DownloadResponse, Status>>;

    async fn download(
        &self,
        request: Request<DownloadRequest>,
    ) -> Result<Response<Self::DownloadStream>, Status> {
        let relay = &self.relay;
        let result = async {
            relay.authorize(&request)?;
            let id: [u8; 16] = request
                .get_ref()
                .blob_id
                .as_slice()
                .try_into()
                .map_err(|_| Status::invalid_argument("blob_id must be 16 bytes"))?;
            let info = relay
                .store
                .blob(&id)
                .await
                .map_err(store_status)?
                .filter(|i| i.finished && i.expires_at_ms > now_ms())
                .ok_or_else(|| {
                    Status::not_found("no such blob (never uploaded, unfinished or expired)")
                })?;
            Ok((id, info))
        }
        .await;
        let (id, info) = relay.track(result)?;
        let (tx, rx) = mpsc::channel(4);
        let store = relay.store.clone();
        tokio::spawn(async move {
            for index in 0..info.chunks {
                let chunk = match store.blob_chunk(&id, index).await {
                    Ok(Some(c)) => c,
                    Ok(None) => {
                        let _ = tx.send(Err(Status::data_loss("blob chunk missing"))).await;
                        return;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(store_status(e))).await;
                        return;
                    }
                };
                for piece in chunk.chunks(DOWNLOAD_PIECE) {
                    if tx
                        .send(Ok(DownloadResponse {
                            data: piece.to_vec(),
                        }))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn start_upload(
        &self,
        request: Request<StartUploadRequest>,
    ) -> Result<Response<StartUploadResponse>, Status> {
        let relay = &self.relay;
        relay.track(relay.authorize(&request))?;
        let size = request.get_ref().size;
        let (id, resume_until_ms) = relay.track(self.reserve_blob(size).await)?;
        Ok(Response::new(StartUploadResponse {
            upload_id: id.to_vec(),
            piece_size: UNARY_UPLOAD_PIECE as u32,
            pieces: piece_count(size),
            resume_until_ms,
        }))
    }

    async fn upload_piece(
        &self,
        request: Request<UploadPieceRequest>,
    ) -> Result<Response<UploadPieceResponse>, Status> {
        let relay = &self.relay;
        let result = async {
            relay.authorize(&request)?;
            let piece = request.get_ref();
            let id = upload_id(&piece.upload_id)?;
            let info = self.open_upload(&id).await?;
            let pieces = piece_count(info.size);
            if piece.index >= pieces {
                return Err(Status::invalid_argument(format!(
                    "piece {} is past the last piece of this upload ({pieces} pieces)",
                    piece.index
                )));
            }
            let expected = piece_len(info.size, piece.index);
            if piece.data.len() as u64 != expected {
                return Err(Status::invalid_argument(format!(
                    "piece {} must be {expected} bytes, not {}",
                    piece.index,
                    piece.data.len()
                )));
            }
            relay
                .store
                .put_blob_chunk(&id, piece.index, &piece.data)
                .await
                .map_err(store_status)
        }
        .await;
        relay.track(result)?;
        Ok(Response::new(UploadPieceResponse {}))
    }

    async fn upload_status(
        &self,
        request: Request<UploadStatusRequest>,
    ) -> Result<Response<UploadStatusResponse>, Status> {
        let relay = &self.relay;
        let result = async {
            relay.authorize(&request)?;
            let (_, info, missing) = self.upload_progress(&request.get_ref().upload_id).await?;
            Ok(UploadStatusResponse {
                size: info.size,
                piece_size: UNARY_UPLOAD_PIECE as u32,
                pieces: piece_count(info.size),
                missing,
                resume_until_ms: info.expires_at_ms,
            })
        }
        .await;
        Ok(Response::new(relay.track(result)?))
    }

    async fn finish_upload(
        &self,
        request: Request<FinishUploadRequest>,
    ) -> Result<Response<UploadResponse>, Status> {
        let relay = &self.relay;
        let result = async {
            relay.authorize(&request)?;
            let (id, info, missing) = self.upload_progress(&request.get_ref().upload_id).await?;
            if let Some(first) = missing.first() {
                return Err(Status::failed_precondition(format!(
                    "{} of {} pieces are missing, the first is piece {first}; send them and finish again",
                    missing.len(),
                    piece_count(info.size)
                )));
            }
            let finished = BlobInfo {
                finished: true,
                size: info.size,
                chunks: piece_count(info.size),
                expires_at_ms: now_ms().saturating_add(relay.limits.blob_ttl_ms()),
            };
            relay
                .store
                .finish_blob(&id, &finished)
                .await
                .map_err(store_status)?;
            Ok((id, finished))
        }
        .await;
        let (id, info) = relay.track(result)?;
        relay.metrics.blobs_uploaded.fetch_add(1, Ordering::Relaxed);
        Ok(Response::new(UploadResponse {
            blob_id: id.to_vec(),
            size: info.size,
            expires_at_ms: info.expires_at_ms,
        }))
    }
}
