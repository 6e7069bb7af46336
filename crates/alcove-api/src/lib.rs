//! Generated gRPC types and service stubs for the Alcove relay API.
//!
//! The API itself is documented field by field in
//! `proto/alcove/v1/relay.proto`; this crate only compiles it.
#![forbid(unsafe_code)]

/// `alcove.v1`: messages, clients (`*_client`) and servers (`*_server`).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("alcove.v1");
}

/// The encoded file descriptor set of the API, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("relay_descriptor");

/// The `authorization` metadata key and its scheme.
pub const AUTHORIZATION: &str = "authorization";
/// Prefix of the authorization value.
pub const BEARER: &str = "Bearer ";

/// What a device signs to prove possession of its identity key:
/// `"Alcove/v1/relay-auth" || u16 BE len(server_id) || server_id || address || challenge`.
pub fn auth_message(server_id: &str, address: &[u8], challenge: &[u8]) -> Vec<u8> {
    const LABEL: &[u8] = b"Alcove/v1/relay-auth";
    let mut m =
        Vec::with_capacity(LABEL.len() + 2 + server_id.len() + address.len() + challenge.len());
    m.extend_from_slice(LABEL);
    let len = u16::try_from(server_id.len()).unwrap_or(u16::MAX);
    m.extend_from_slice(&len.to_be_bytes());
    m.extend_from_slice(&server_id.as_bytes()[..usize::from(len)]);
    m.extend_from_slice(address);
    m.extend_from_slice(challenge);
    m
}

/// Conversions between the wire messages of the key log and
/// `alcove-keylog`'s types, shared by the relay, the SDK and the auditor.
pub mod keylog {
    use alcove_keylog::{hashes, KeyProof, SignedTreeHead, TransparencyError};

    use crate::v1;

    /// The wire form of a signed head.
    pub fn head_to_wire(head: &SignedTreeHead) -> v1::TreeHead {
        v1::TreeHead {
            size: head.size,
            root: head.root.to_vec(),
            timestamp_ms: head.timestamp_ms,
            signature: head.signature.to_vec(),
        }
    }

    /// Parses a wire head (the signature is checked by the caller).
    pub fn head_from_wire(
        head: Option<&v1::TreeHead>,
    ) -> Result<SignedTreeHead, TransparencyError> {
        let head = head.ok_or(TransparencyError::Malformed("tree head missing"))?;
        Ok(SignedTreeHead {
            size: head.size,
            root: head
                .root
                .as_slice()
                .try_into()
                .map_err(|_| TransparencyError::Malformed("tree head root is not 32 bytes"))?,
            timestamp_ms: head.timestamp_ms,
            signature: head
                .signature
                .as_slice()
                .try_into()
                .map_err(|_| TransparencyError::Malformed("tree head signature is not 64 bytes"))?,
        })
    }

    /// Parses a wire key proof (nothing verified yet).
    pub fn proof_from_wire(proof: Option<&v1::KeyProof>) -> Result<KeyProof, TransparencyError> {
        let proof = proof.ok_or(TransparencyError::Malformed("key proof missing"))?;
        Ok(KeyProof {
            index: proof.index,
            epoch: proof.epoch,
            salt: proof
                .salt
                .as_slice()
                .try_into()
                .map_err(|_| TransparencyError::Malformed("salt is not 32 bytes"))?,
            audit_path: hashes(&proof.audit_path)?,
            head: head_from_wire(proof.head.as_ref())?,
        })
    }

    /// Parses a credential record's proof (the record is checked by the
    /// caller with `alcove_keylog::check_credential`).
    pub fn credential_proof_from_wire(
        proof: &v1::CredentialProof,
    ) -> Result<KeyProof, TransparencyError> {
        proof_from_wire(Some(&v1::KeyProof {
            index: proof.index,
            epoch: proof.epoch,
            salt: proof.salt.clone(),
            audit_path: proof.audit_path.clone(),
            head: proof.head.clone(),
            ..Default::default()
        }))
    }

    /// Encodes hashes for the wire.
    pub fn hashes_to_wire(hashes: &[[u8; 32]]) -> Vec<Vec<u8>> {
        hashes.iter().map(|h| h.to_vec()).collect()
    }
}

/// The protobuf codec of every service and client: prost's, except that a
/// message that does not decode is `INVALID_ARGUMENT` (the caller sent bad
/// bytes) instead of tonic's `INTERNAL` (which would blame the relay).
pub mod codec {
    use prost::Message;
    use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
    use tonic::{Code, Status};
    use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

    /// [`ProstCodec`] with decode failures reported as `INVALID_ARGUMENT`.
    #[derive(Debug, Clone)]
    pub struct StrictCodec<T, U>(ProstCodec<T, U>);

    impl<T, U> Default for StrictCodec<T, U> {
        fn default() -> Self {
            Self(ProstCodec::default())
        }
    }

    impl<T, U> Codec for StrictCodec<T, U>
    where
        T: Message + Send + 'static,
        U: Message + Default + Send + 'static,
    {
        type Encode = T;
        type Decode = U;
        type Encoder = ProstEncoder<T>;
        type Decoder = StrictDecoder<U>;

        fn encoder(&mut self) -> Self::Encoder {
            self.0.encoder()
        }

        fn decoder(&mut self) -> Self::Decoder {
            StrictDecoder(self.0.decoder())
        }
    }

    /// The decoder of [`StrictCodec`].
    #[derive(Debug, Clone)]
    pub struct StrictDecoder<U>(ProstDecoder<U>);

    impl<U: Message + Default> Decoder for StrictDecoder<U> {
        type Item = U;
        type Error = Status;

        fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
            self.0.decode(buf).map_err(|s| {
                if s.code() == Code::Internal {
                    Status::invalid_argument(format!("malformed protobuf: {}", s.message()))
                } else {
                    s
                }
            })
        }

        fn buffer_settings(&self) -> BufferSettings {
            self.0.buffer_settings()
        }
    }
}
