// Keys and state from the committed test vectors, shared by the targets.
use std::sync::OnceLock;

#[allow(dead_code)]
pub struct Vectors {
    pub therapist_secret: Vec<u8>,
    pub therapist_identity: Vec<u8>,
    pub session_state: Vec<u8>,
}

pub fn get() -> &'static Vectors {
    static V: OnceLock<Vectors> = OnceLock::new();
    V.get_or_init(|| {
        let json: serde_json::Value = serde_json::from_str(include_str!(
            "../../alcove-protocol/tests/vectors/conversation-v2.json"
        ))
        .unwrap();
        let hex_of = |v: &serde_json::Value| hex::decode(v.as_str().unwrap()).unwrap();
        Vectors {
            therapist_secret: hex_of(&json["therapist"]["identity_secret"]),
            therapist_identity: hex_of(&json["therapist"]["identity"]),
            session_state: hex_of(&json["therapist_session_state"]),
        }
    })
}
