//! Documents held in memory: encrypted and uploaded in resumable unary
//! pieces, downloaded and checked whole. This is the path a browser takes
//! (grpc-web cannot stream a request, and a page has no file paths); it
//! works on every build. Native apps with files on disk use
//! `upload_file`/`download_file`, which stream in constant memory.

use alcove_protocol::attachment::{AttachmentDecryptor, AttachmentEncryptor, AttachmentKey};
use futures::StreamExt;

use crate::error::{Error, Result};
use crate::{AttachmentPointer, Client};

/// Attempts per piece before an upload gives up (a retryable failure, such
/// as a dropped connection, is tried again).
const PIECE_ATTEMPTS: u32 = 3;

impl Client {
    /// Encrypts `data` and uploads it in pieces, calling `progress(done,
    /// total)` (encrypted bytes) after each piece. A piece that fails on a
    /// dropped connection is sent again; the relay keeps an unfinished
    /// upload for an hour. Returns the pointer to send in a message (it
    /// holds the key, so it travels only inside the seal).
    pub async fn upload_bytes(
        &self,
        data: &[u8],
        media_type: &str,
        file_name: &str,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<AttachmentPointer> {
        let (mut encryptor, key) = AttachmentEncryptor::new(&mut rand::rngs::OsRng);
        let mut sealed_bytes = encryptor
            .update(data)
            .map_err(|e| Error::LimitExceeded(e.to_string()))?;
        let (tail, sealed) = encryptor
            .finish()
            .map_err(|e| Error::LimitExceeded(e.to_string()))?;
        sealed_bytes.extend_from_slice(&tail);
        let total = sealed_bytes.len() as u64;

        let started = self.relay.start_upload(total).await?;
        let piece_size = usize::try_from(started.piece_size)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| Error::Offline("the relay named no upload piece size".into()))?;
        let id = started.upload_id;
        let pieces: Vec<&[u8]> = sealed_bytes.chunks(piece_size).collect();
        let send = |index: usize| {
            let (id, piece) = (&id, pieces[index]);
            async move {
                let mut attempt = 1;
                loop {
                    match self.relay.upload_piece(id, index as u32, piece).await {
                        Err(e) if e.is_retryable() && attempt < PIECE_ATTEMPTS => attempt += 1,
                        done => return done,
                    }
                }
            }
        };
        let mut done = 0u64;
        for (index, piece) in pieces.iter().enumerate() {
            send(index).await?;
            done += piece.len() as u64;
            progress(done, total);
        }
        // A relay that restarted meanwhile may have lost pieces it took:
        // ask which, and send them again.
        for index in self.relay.missing_pieces(&id).await? {
            let index = index as usize;
            if index >= pieces.len() {
                return Err(Error::VerificationFailed(format!(
                    "the relay asked for piece {index} of an upload of {}",
                    pieces.len()
                )));
            }
            send(index).await?;
        }
        let finished = self.relay.finish_upload(&id).await?;
        Ok(AttachmentPointer {
            blob_id: finished.blob_id,
            key: key.as_bytes().to_vec(),
            digest: sealed.digest.to_vec(),
            size: sealed.size,
            media_type: media_type.to_string(),
            file_name: file_name.to_string(),
        })
    }

    /// The download stream of `pointer`'s blob and the decryptor that
    /// checks it (shared by `download_bytes` and the native
    /// `download_file`).
    pub(crate) async fn open_download(
        &self,
        pointer: &AttachmentPointer,
    ) -> Result<(
        tonic::Streaming<alcove_api::v1::DownloadResponse>,
        AttachmentDecryptor,
    )> {
        let key = AttachmentKey::from_bytes(&pointer.key)
            .ok_or_else(|| Error::InvalidInput("attachment key".into()))?;
        let digest: [u8; 32] = pointer
            .digest
            .as_slice()
            .try_into()
            .map_err(|_| Error::InvalidInput("attachment digest".into()))?;
        let stream = self.relay.download(&pointer.blob_id).await?;
        Ok((stream, AttachmentDecryptor::new(&key, digest)))
    }

    /// Downloads an attachment, checks it against the pointer's digest and
    /// returns the plaintext. Nothing is returned unless every byte checked
    /// out.
    pub async fn download_bytes(&self, pointer: &AttachmentPointer) -> Result<Vec<u8>> {
        let (mut stream, mut decryptor) = self.open_download(pointer).await?;
        let mut out = Vec::new();
        let failed = |e: alcove_protocol::error::AttachmentError| {
            Error::VerificationFailed(format!("attachment: {e}"))
        };
        while let Some(piece) = stream.next().await {
            out.extend(decryptor.update(&piece?.data).map_err(failed)?);
        }
        out.extend(decryptor.finish().map_err(failed)?);
        Ok(out)
    }
}
