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
