//! Documents: encrypted and uploaded as a stream, downloaded, verified and
//! decrypted as a stream, in constant memory at any size.

use std::path::Path;

use alcove_api::v1::upload_request::Part;
use alcove_api::v1::{UploadHeader, UploadRequest};
use alcove_protocol::attachment::{encrypted_len, AttachmentEncryptor};
use alcove_protocol::limits::ATTACHMENT_CHUNK_SIZE;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::error::{Error, Result};
use crate::{relay, AttachmentPointer, Client};

fn io(e: std::io::Error) -> Error {
    Error::Storage(e.to_string())
}

impl Client {
    fn relay_clients(&self) -> relay::Clients {
        self.relay.clients()
    }

    /// A valid session token (logging in if needed).
    async fn token(&self) -> Result<String> {
        self.relay.token().await
    }

    /// Encrypts the file at `path` and uploads it, calling `progress(done,
    /// total)` (plaintext bytes) as it goes. Returns the pointer to send in
    /// a message; it holds the key, so it travels only inside the seal.
    pub async fn upload_file(
        &self,
        path: &Path,
        media_type: &str,
        mut progress: impl FnMut(u64, u64) + Send,
    ) -> Result<AttachmentPointer> {
        let mut file = tokio::fs::File::open(path).await.map_err(io)?;
        let size = file.metadata().await.map_err(io)?.len();
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (mut encryptor, key) = AttachmentEncryptor::new(&mut rand::rngs::OsRng);
        let (tx, rx) = mpsc::channel::<UploadRequest>(4);
        let header = UploadRequest {
            part: Some(Part::Header(UploadHeader {
                size: encrypted_len(size),
            })),
        };
        tx.send(header)
            .await
            .map_err(|_| Error::Offline("upload stream closed".into()))?;

        let clients = self.relay_clients();
        let token = self.token().await?;
        let upload = tokio::spawn(async move {
            clients
                .blobs()
                .upload(relay::authed(&token, ReceiverStream::new(rx)))
                .await
        });
        let mut buf = vec![0u8; ATTACHMENT_CHUNK_SIZE];
        let mut done = 0u64;
        let feed = async {
            loop {
                let n = file.read(&mut buf).await.map_err(io)?;
                if n == 0 {
                    break;
                }
                done += n as u64;
                let out = encryptor
                    .update(&buf[..n])
                    .map_err(|e| Error::LimitExceeded(e.to_string()))?;
                if !out.is_empty()
                    && tx
                        .send(UploadRequest {
                            part: Some(Part::Data(out)),
                        })
                        .await
                        .is_err()
                {
                    return Ok(None);
                }
                progress(done, size);
            }
            let (tail, sealed) = encryptor
                .finish()
                .map_err(|e| Error::LimitExceeded(e.to_string()))?;
            if tx
                .send(UploadRequest {
                    part: Some(Part::Data(tail)),
                })
                .await
                .is_err()
            {
                return Ok(None);
            }
            Ok::<_, Error>(Some(sealed))
        }
        .await;
        drop(tx);
        let response = upload
            .await
            .map_err(|e| Error::Offline(e.to_string()))??
            .into_inner();
        let sealed = feed?.ok_or_else(|| Error::Offline("upload interrupted".into()))?;
        Ok(AttachmentPointer {
            blob_id: response.blob_id,
            key: key.as_bytes().to_vec(),
            digest: sealed.digest.to_vec(),
            size: sealed.size,
            media_type: media_type.to_string(),
            file_name,
        })
    }

    /// Downloads, verifies and decrypts an attachment into `dest`. The file
    /// appears at `dest` only once every chunk and the digest checked out.
    pub async fn download_file(
        &self,
        pointer: &AttachmentPointer,
        dest: &Path,
        mut progress: impl FnMut(u64, u64) + Send,
    ) -> Result<()> {
        let (mut stream, mut decryptor) = self.open_download(pointer).await?;
        let partial = dest.with_extension("alcove-partial");
        let mut out = tokio::fs::File::create(&partial).await.map_err(io)?;
        let mut done = 0u64;
        let result = async {
            while let Some(piece) = stream.next().await {
                let plain = decryptor
                    .update(&piece?.data)
                    .map_err(|e| Error::VerificationFailed(format!("attachment: {e}")))?;
                done += plain.len() as u64;
                out.write_all(&plain).await.map_err(io)?;
                progress(done, pointer.size);
            }
            let last = decryptor
                .finish()
                .map_err(|e| Error::VerificationFailed(format!("attachment: {e}")))?;
            done += last.len() as u64;
            out.write_all(&last).await.map_err(io)?;
            out.flush().await.map_err(io)?;
            out.sync_all().await.map_err(io)?;
            progress(done, pointer.size);
            Ok::<_, Error>(())
        }
        .await;
        match result {
            Ok(()) => tokio::fs::rename(&partial, dest).await.map_err(io),
            Err(e) => {
                let _ = tokio::fs::remove_file(&partial).await;
                Err(e)
            }
        }
    }
}
