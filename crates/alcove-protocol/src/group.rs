//! Groups: a membership roster signed by the group's admins, and messages
//! under sender keys that travel to each member sealed like a one-to-one
//! message.
//!
//! Two pieces, both free of I/O (`docs/groups.md` has the reasoning):
//!
//! - [`Roster`]: who is in the group, at which epoch, signed by one of the
//!   admins fixed at creation. The group id is a hash of a random nonce and
//!   the admins' addresses, so no one can present a roster for the same id
//!   with other admins. Rosters travel inside pairwise sessions
//!   ([`GroupUpdate`]); of two valid rosters the one that
//!   [`Roster::supersedes`] the other wins, which is a total order, so
//!   every member converges on the same membership whatever order the
//!   updates arrive in.
//! - [`SenderKey`] and [`ReceivedSenderKey`]: each member's sending chain.
//!   The chain key and its position are handed to the other members over
//!   the pairwise sessions ([`GroupSenderKey`]); a group message is then
//!   encrypted once with the next message key and sealed to each member
//!   separately. The chain only moves forward and each message key is
//!   deleted once used: forward secrecy within the group. A new chain (with
//!   a fresh random key) is made at every membership change and on a key
//!   update.
//!
//! ```text
//! group message = 0x24 || chain_id (16) || iteration (u32 BE) || nonce (24)
//!                 || XChaCha20-Poly1305(mk, nonce, ad, content)
//! ad            = header (45 bytes) || sender address (32) || group id (32)
//! ```
//!
//! The sender is not signed inside the group message: the sealed-sender
//! envelope around each copy authenticates it to the recipient, who opens
//! the message only with a chain that sender distributed. A member holding
//! another member's chain key can decrypt that member's messages (that is
//! the point) but cannot make one that another member accepts as theirs.
//!
//! ```
//! use alcove_protocol::group::{Member, ReceivedSenderKey, Roster, SenderKey};
//! use alcove_protocol::IdentityKeyPair;
//! let mut rng = rand_core::OsRng;
//! let therapist = IdentityKeyPair::generate(&mut rng);
//! let client = IdentityKeyPair::generate(&mut rng);
//! let roster = Roster::create(&mut rng, &therapist, "Tuesday CBT group",
//!     vec![Member::new(client.public().clone(), "Sam")], 1_700_000_000_000).unwrap();
//! // The client checks the roster it was sent (inside a pairwise session).
//! let seen = Roster::verify(&roster.to_update()).unwrap();
//! assert!(seen.is_member(&client.public().address()));
//!
//! // The therapist's chain, handed to the client over their session.
//! let mut sending = SenderKey::generate(&mut rng, seen.id(), seen.epoch());
//! let mut receiving = ReceivedSenderKey::from_distribution(
//!     &therapist.public().address(), &sending.distribution()).unwrap();
//! let wire = sending.encrypt(&mut rng, &therapist.public().address(), b"Welcome, everyone").unwrap();
//! assert_eq!(receiving.decrypt(&therapist.public().address(), &wire).unwrap(), b"Welcome, everyone");
//! ```

use std::collections::VecDeque;
use std::fmt;

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use prost::Message;
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::content::{GroupMember, GroupRoster, GroupSenderKey, GroupUpdate};
use crate::error::{DecodeError, GroupError, SessionError};
use crate::identity::{IdentityKeyPair, PublicIdentity};
use crate::keys::DeviceAddress;
use crate::ratchet::{ChainKey, MessageKey};

/// Length of a group id.
pub const GROUP_ID_LEN: usize = 32;
/// Length of a sender chain's id.
pub const CHAIN_ID_LEN: usize = 16;
/// First byte of a group message (version 2, kind 4).
pub const KIND_GROUP: u8 = 0x24;
const NONCE_LEN: usize = 24;
/// Length of a group message's header.
pub const GROUP_HEADER_LEN: usize = 1 + CHAIN_ID_LEN + 4 + NONCE_LEN;
const TAG_LEN: usize = 16;
/// The largest encoded roster accepted.
pub const MAX_ROSTER_LEN: usize = 256 << 10;
/// The most members a group may have.
pub const MAX_GROUP_MEMBERS: usize = 1_000;
/// The most admins a group may have.
pub const MAX_GROUP_ADMINS: usize = 8;
/// The longest title and member name, bytes.
pub const MAX_GROUP_TEXT: usize = 200;
/// How far ahead of the next expected message a group message may be.
pub const MAX_GROUP_SKIP: u32 = 2_000;
/// The most skipped message keys kept per received chain.
pub const MAX_SKIPPED_GROUP_KEYS: usize = 2_000;
const ROSTER_LABEL: &[u8] = b"Alcove/v1/group-roster";
const GROUP_ID_LABEL: &[u8] = b"Alcove/v1/group-id";

/// A group's id: what members know the group by. The relay never sees it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupId(pub [u8; GROUP_ID_LEN]);

impl GroupId {
    /// The id from its bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, DecodeError> {
        <[u8; GROUP_ID_LEN]>::try_from(bytes)
            .map(Self)
            .map_err(|_| DecodeError::Malformed {
                what: "group id",
                reason: "must be 32 bytes",
            })
    }

    /// Lower-case hex, as the CLI prints it.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses [`GroupId::to_hex`].
    pub fn from_hex(text: &str) -> Result<Self, DecodeError> {
        let bytes = hex::decode(text.trim()).map_err(|_| DecodeError::Malformed {
            what: "group id",
            reason: "not hex",
        })?;
        Self::from_slice(&bytes)
    }

    /// The id a group with these admins and this nonce has.
    pub fn derive(nonce: &[u8], admins: &[DeviceAddress]) -> Self {
        let mut h = Sha256::new();
        h.update(GROUP_ID_LABEL);
        h.update(nonce);
        for a in admins {
            h.update(a.as_bytes());
        }
        Self(h.finalize().into())
    }
}

impl fmt::Debug for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GroupId({})", &self.to_hex()[..16])
    }
}

/// A member as the roster names them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Their public identity (their address is its hash).
    pub identity: PublicIdentity,
    /// How the group shows them.
    pub name: String,
    /// Their delivery key, so fellow members may write to them.
    pub delivery_key: Option<[u8; 16]>,
}

impl Member {
    /// A member without a delivery key.
    pub fn new(identity: PublicIdentity, name: &str) -> Self {
        Self {
            identity,
            name: name.to_string(),
            delivery_key: None,
        }
    }

    /// Their address.
    pub fn address(&self) -> DeviceAddress {
        self.identity.address()
    }
}

/// A verified, signed membership list (see the module docs).
#[derive(Clone)]
pub struct Roster {
    bytes: Vec<u8>,
    signature: [u8; 64],
    id: GroupId,
    epoch: u64,
    title: String,
    admins: Vec<DeviceAddress>,
    members: Vec<Member>,
    signer: DeviceAddress,
    issued_at_ms: i64,
}

impl fmt::Debug for Roster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Roster")
            .field("id", &self.id)
            .field("epoch", &self.epoch)
            .field("members", &self.members.len())
            .finish()
    }
}

impl Roster {
    /// A new group with `admin` as its only admin and `members` (the admin
    /// is added if missing), signed at epoch 1.
    pub fn create<R: RngCore + CryptoRng>(
        rng: &mut R,
        admin: &IdentityKeyPair,
        title: &str,
        members: Vec<Member>,
        now_ms: i64,
    ) -> Result<Self, GroupError> {
        Self::create_with_co_admins(rng, admin, &[], title, members, now_ms)
    }

    /// [`Roster::create`] with more admins (a co-therapist, say), each of
    /// whom must be in `members`. The admins are fixed for the group's
    /// life: the group id is derived from them.
    pub fn create_with_co_admins<R: RngCore + CryptoRng>(
        rng: &mut R,
        admin: &IdentityKeyPair,
        co_admins: &[DeviceAddress],
        title: &str,
        members: Vec<Member>,
        now_ms: i64,
    ) -> Result<Self, GroupError> {
        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        let mut admins = vec![admin.public().address()];
        admins.extend(
            co_admins
                .iter()
                .filter(|a| !admins.contains(a))
                .copied()
                .collect::<Vec<_>>(),
        );
        let id = GroupId::derive(&nonce, &admins);
        let mut all = vec![Member::new(admin.public().clone(), "")];
        all.extend(
            members
                .into_iter()
                .filter(|m| m.address() != admin.public().address()),
        );
        let pb = GroupRoster {
            group_id: id.0.to_vec(),
            nonce: nonce.to_vec(),
            epoch: 1,
            title: title.to_string(),
            admins: admins.iter().map(|a| a.as_bytes().to_vec()).collect(),
            members: Vec::new(),
            signer: Vec::new(),
            issued_at_ms: now_ms,
        };
        Self::sign(pb, admin, all)
    }

    /// The next roster: `members` (admins must stay), `title`, signed by
    /// `admin` at this epoch plus one.
    pub fn change(
        &self,
        admin: &IdentityKeyPair,
        title: &str,
        members: Vec<Member>,
        now_ms: i64,
    ) -> Result<Self, GroupError> {
        if !self.is_admin(&admin.public().address()) {
            return Err(GroupError::NotAdmin);
        }
        let pb = GroupRoster {
            group_id: self.id.0.to_vec(),
            nonce: GroupRoster::decode(self.bytes.as_slice())
                .map(|r| r.nonce)
                .unwrap_or_default(),
            epoch: self
                .epoch
                .checked_add(1)
                .ok_or(GroupError::Invalid("the epoch cannot go higher"))?,
            title: title.to_string(),
            admins: self.admins.iter().map(|a| a.as_bytes().to_vec()).collect(),
            members: Vec::new(),
            signer: Vec::new(),
            issued_at_ms: now_ms,
        };
        Self::sign(pb, admin, members)
    }

    fn sign(
        mut pb: GroupRoster,
        admin: &IdentityKeyPair,
        members: Vec<Member>,
    ) -> Result<Self, GroupError> {
        pb.signer = admin.public().address().as_bytes().to_vec();
        pb.members = members
            .iter()
            .map(|m| GroupMember {
                identity: m.identity.to_bytes().to_vec(),
                name: m.name.clone(),
                delivery_key: m.delivery_key.map(|k| k.to_vec()).unwrap_or_default(),
            })
            .collect();
        let bytes = pb.encode_to_vec();
        let signature = admin.sign(&signed_message(&bytes)).to_bytes();
        Self::verify(&GroupUpdate {
            roster: bytes,
            signature: signature.to_vec(),
        })
    }

    /// Checks a roster someone sent: it parses, stays within the limits,
    /// its id matches its nonce and admins, and one of those admins (a
    /// member, so their key is known) signed it.
    pub fn verify(update: &GroupUpdate) -> Result<Self, GroupError> {
        if update.roster.len() > MAX_ROSTER_LEN {
            return Err(GroupError::Invalid("the roster is too large"));
        }
        let signature = <[u8; 64]>::try_from(update.signature.as_slice())
            .map_err(|_| GroupError::Invalid("the signature must be 64 bytes"))?;
        let pb = GroupRoster::decode(update.roster.as_slice()).map_err(|_| {
            GroupError::Decode(DecodeError::Malformed {
                what: "group roster",
                reason: "not a GroupRoster",
            })
        })?;
        let id = GroupId::from_slice(&pb.group_id)?;
        if pb.epoch == 0 {
            return Err(GroupError::Invalid("epochs start at 1"));
        }
        if pb.title.len() > MAX_GROUP_TEXT {
            return Err(GroupError::Invalid("the title is longer than 200 bytes"));
        }
        if pb.admins.is_empty() || pb.admins.len() > MAX_GROUP_ADMINS {
            return Err(GroupError::Invalid("a group has 1 to 8 admins"));
        }
        if pb.members.is_empty() || pb.members.len() > MAX_GROUP_MEMBERS {
            return Err(GroupError::Invalid("a group has 1 to 1000 members"));
        }
        let admins = pb
            .admins
            .iter()
            .map(|a| DeviceAddress::from_bytes(a))
            .collect::<Result<Vec<_>, _>>()?;
        if GroupId::derive(&pb.nonce, &admins) != id {
            return Err(GroupError::Invalid(
                "the group id does not match its admins",
            ));
        }
        let mut members = Vec::with_capacity(pb.members.len());
        let mut seen = std::collections::HashSet::new();
        for m in &pb.members {
            let identity = PublicIdentity::from_bytes(&m.identity)
                .map_err(|_| GroupError::Invalid("a member's identity is not valid"))?;
            if m.name.len() > MAX_GROUP_TEXT {
                return Err(GroupError::Invalid(
                    "a member name is longer than 200 bytes",
                ));
            }
            let delivery_key = match m.delivery_key.len() {
                0 => None,
                16 => Some(m.delivery_key.as_slice().try_into().expect("16 bytes")),
                _ => return Err(GroupError::Invalid("a delivery key is 16 bytes")),
            };
            if !seen.insert(identity.address()) {
                return Err(GroupError::Invalid("a member is listed twice"));
            }
            members.push(Member {
                identity,
                name: m.name.clone(),
                delivery_key,
            });
        }
        if admins.iter().any(|a| !seen.contains(a)) {
            return Err(GroupError::Invalid("every admin must be a member"));
        }
        let signer = DeviceAddress::from_bytes(&pb.signer)?;
        if !admins.contains(&signer) {
            return Err(GroupError::NotAdmin);
        }
        let key = members
            .iter()
            .find(|m| m.address() == signer)
            .map(|m| m.identity.signing_key())
            .ok_or(GroupError::Invalid("every admin must be a member"))?;
        key.verify_strict(
            &signed_message(&update.roster),
            &ed25519_dalek::Signature::from_bytes(&signature),
        )
        .map_err(|_| GroupError::BadSignature)?;
        Ok(Self {
            bytes: update.roster.clone(),
            signature,
            id,
            epoch: pb.epoch,
            title: pb.title,
            admins,
            members,
            signer,
            issued_at_ms: pb.issued_at_ms,
        })
    }

    /// What is sent to members.
    pub fn to_update(&self) -> GroupUpdate {
        GroupUpdate {
            roster: self.bytes.clone(),
            signature: self.signature.to_vec(),
        }
    }

    /// The group's id.
    pub fn id(&self) -> &GroupId {
        &self.id
    }

    /// The epoch: 1 at creation, one more for every change.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The title.
    pub fn title(&self) -> &str {
        &self.title
    }

    /// The admins, fixed at creation.
    pub fn admins(&self) -> &[DeviceAddress] {
        &self.admins
    }

    /// The members, admins included.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The admin who signed this roster.
    pub fn signer(&self) -> &DeviceAddress {
        &self.signer
    }

    /// When the signer made it (their clock), ms.
    pub fn issued_at_ms(&self) -> i64 {
        self.issued_at_ms
    }

    /// Whether `address` is a member.
    pub fn is_member(&self, address: &DeviceAddress) -> bool {
        self.members.iter().any(|m| &m.address() == address)
    }

    /// Whether `address` is an admin.
    pub fn is_admin(&self, address: &DeviceAddress) -> bool {
        self.admins.contains(address)
    }

    /// SHA-256 of the signed roster bytes: what breaks ties.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(&self.bytes).into()
    }

    /// Whether this roster replaces `current`: same group and admins, and
    /// a higher epoch, or the same epoch and a smaller digest. A total
    /// order, so members that saw the same rosters in any order hold the
    /// same one. Only an admin can sign a roster, so only an admin can win.
    pub fn supersedes(&self, current: &Roster) -> bool {
        self.id == current.id
            && self.admins == current.admins
            && (self.epoch > current.epoch
                || (self.epoch == current.epoch && self.digest() < current.digest()))
    }
}

fn signed_message(roster: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(ROSTER_LABEL.len() + roster.len());
    m.extend_from_slice(ROSTER_LABEL);
    m.extend_from_slice(roster);
    m
}

/// This member's sending chain in one group. Zeroized on drop; not
/// `Clone`, like [`crate::Session`], so a chain is not used twice by
/// accident.
#[derive(Serialize, Deserialize)]
pub struct SenderKey {
    group: GroupId,
    epoch: u64,
    chain_id: [u8; CHAIN_ID_LEN],
    iteration: u32,
    chain: ChainKey,
}

impl fmt::Debug for SenderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SenderKey")
            .field("chain_id", &hex::encode(self.chain_id))
            .field("epoch", &self.epoch)
            .field("iteration", &self.iteration)
            .finish()
    }
}

impl SenderKey {
    /// A fresh chain for `group` at roster `epoch`.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R, group: &GroupId, epoch: u64) -> Self {
        let mut chain_id = [0u8; CHAIN_ID_LEN];
        rng.fill_bytes(&mut chain_id);
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(key.as_mut());
        Self {
            group: *group,
            epoch,
            chain_id,
            iteration: 0,
            chain: ChainKey::new(*key),
        }
    }

    /// What the other members need to open this chain's messages from
    /// now on (not the earlier ones). Carries the secret chain key: send
    /// it only inside a pairwise session.
    pub fn distribution(&self) -> GroupSenderKey {
        GroupSenderKey {
            group_id: self.group.0.to_vec(),
            epoch: self.epoch,
            chain_id: self.chain_id.to_vec(),
            iteration: self.iteration,
            chain_key: self.chain.as_bytes().to_vec(),
            rotate: false,
        }
    }

    /// Encrypts one group message (an encoded `Content`) as `sender`.
    /// `rng` draws the nonce.
    pub fn encrypt<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
        sender: &DeviceAddress,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, SessionError> {
        if self.iteration == u32::MAX {
            return Err(SessionError::ChainExhausted);
        }
        let key = self.chain.step();
        let mut header = [0u8; GROUP_HEADER_LEN];
        header[0] = KIND_GROUP;
        header[1..1 + CHAIN_ID_LEN].copy_from_slice(&self.chain_id);
        header[1 + CHAIN_ID_LEN..1 + CHAIN_ID_LEN + 4]
            .copy_from_slice(&self.iteration.to_be_bytes());
        rng.fill_bytes(&mut header[GROUP_HEADER_LEN - NONCE_LEN..]);
        self.iteration += 1;
        let ad = associated_data(&header, sender, &self.group);
        let sealed = XChaCha20Poly1305::new((&key.0).into())
            .encrypt(
                XNonce::from_slice(&header[GROUP_HEADER_LEN - NONCE_LEN..]),
                Payload {
                    msg: plaintext,
                    aad: &ad,
                },
            )
            .map_err(|_| SessionError::DecryptionFailed)?;
        let mut out = Vec::with_capacity(GROUP_HEADER_LEN + sealed.len());
        out.extend_from_slice(&header);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The group.
    pub fn group(&self) -> &GroupId {
        &self.group
    }

    /// The roster epoch the chain was made for.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The chain's id.
    pub fn chain_id(&self) -> [u8; CHAIN_ID_LEN] {
        self.chain_id
    }

    /// How many messages the chain has encrypted.
    pub fn iteration(&self) -> u32 {
        self.iteration
    }
}

/// Another member's chain, as received. Decryption is all-or-nothing.
#[derive(Clone, Serialize, Deserialize)]
pub struct ReceivedSenderKey {
    group: GroupId,
    epoch: u64,
    chain_id: [u8; CHAIN_ID_LEN],
    owner: DeviceAddress,
    next: u32,
    chain: ChainKey,
    skipped: VecDeque<(u32, MessageKey)>,
}

impl fmt::Debug for ReceivedSenderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceivedSenderKey")
            .field("chain_id", &hex::encode(self.chain_id))
            .field("owner", &self.owner)
            .field("next", &self.next)
            .finish()
    }
}

impl ReceivedSenderKey {
    /// The chain `owner` distributed (the pairwise session authenticated
    /// the owner).
    pub fn from_distribution(
        owner: &DeviceAddress,
        d: &GroupSenderKey,
    ) -> Result<Self, DecodeError> {
        let chain_id = <[u8; CHAIN_ID_LEN]>::try_from(d.chain_id.as_slice()).map_err(|_| {
            DecodeError::Malformed {
                what: "sender key",
                reason: "the chain id must be 16 bytes",
            }
        })?;
        let key = Zeroizing::new(<[u8; 32]>::try_from(d.chain_key.as_slice()).map_err(|_| {
            DecodeError::Malformed {
                what: "sender key",
                reason: "the chain key must be 32 bytes",
            }
        })?);
        Ok(Self {
            group: GroupId::from_slice(&d.group_id)?,
            epoch: d.epoch,
            chain_id,
            owner: *owner,
            next: d.iteration,
            chain: ChainKey::new(*key),
            skipped: VecDeque::new(),
        })
    }

    /// Opens a group message from `sender` on this chain. Refuses a sender
    /// other than the chain's owner, a message seen before (its key is
    /// gone), and one more than [`MAX_GROUP_SKIP`] ahead; on any error the
    /// chain is unchanged.
    pub fn decrypt(
        &mut self,
        sender: &DeviceAddress,
        wire: &[u8],
    ) -> Result<Vec<u8>, SessionError> {
        let (chain_id, iteration) = parse_header(wire)?;
        if chain_id != self.chain_id {
            return Err(SessionError::WrongSession);
        }
        if sender != &self.owner {
            return Err(SessionError::SenderMismatch);
        }
        let header = &wire[..GROUP_HEADER_LEN];
        let ad = associated_data(header, sender, &self.group);
        let open = |key: &MessageKey| {
            XChaCha20Poly1305::new((&key.0).into())
                .decrypt(
                    XNonce::from_slice(&header[GROUP_HEADER_LEN - NONCE_LEN..]),
                    Payload {
                        msg: &wire[GROUP_HEADER_LEN..],
                        aad: &ad,
                    },
                )
                .map_err(|_| SessionError::DecryptionFailed)
        };
        // No honest sender reaches the last index (`encrypt` stops one
        // short), and the counter must not overflow past it.
        if iteration == u32::MAX {
            return Err(SessionError::ChainExhausted);
        }
        if iteration < self.next {
            let at = self
                .skipped
                .iter()
                .position(|(i, _)| *i == iteration)
                .ok_or(SessionError::DuplicateMessage)?;
            let plaintext = open(&self.skipped[at].1)?;
            self.skipped.remove(at);
            return Ok(plaintext);
        }
        let ahead = iteration - self.next;
        if ahead > MAX_GROUP_SKIP {
            return Err(SessionError::TooManySkipped {
                requested: u64::from(ahead),
                limit: MAX_GROUP_SKIP,
            });
        }
        let mut chain = self.chain.clone();
        let mut skipped = Vec::with_capacity(ahead as usize);
        for i in self.next..iteration {
            skipped.push((i, chain.step()));
        }
        let key = chain.step();
        let plaintext = open(&key)?;
        self.chain = chain;
        self.next = iteration + 1;
        self.skipped.extend(skipped);
        while self.skipped.len() > MAX_SKIPPED_GROUP_KEYS {
            self.skipped.pop_front();
        }
        Ok(plaintext)
    }

    /// The group.
    pub fn group(&self) -> &GroupId {
        &self.group
    }

    /// The roster epoch the chain was made for.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The chain's id.
    pub fn chain_id(&self) -> [u8; CHAIN_ID_LEN] {
        self.chain_id
    }

    /// The member who sends on it.
    pub fn owner(&self) -> &DeviceAddress {
        &self.owner
    }
}

fn associated_data(header: &[u8], sender: &DeviceAddress, group: &GroupId) -> Vec<u8> {
    let mut ad = Vec::with_capacity(GROUP_HEADER_LEN + 64);
    ad.extend_from_slice(header);
    ad.extend_from_slice(sender.as_bytes());
    ad.extend_from_slice(&group.0);
    ad
}

/// Whether these bytes (the inside of a sealed envelope) are a group
/// message.
pub fn is_group_message(wire: &[u8]) -> bool {
    wire.first() == Some(&KIND_GROUP)
}

/// A group message's chain id and iteration.
pub fn parse_header(wire: &[u8]) -> Result<([u8; CHAIN_ID_LEN], u32), DecodeError> {
    if wire.len() < GROUP_HEADER_LEN + TAG_LEN {
        return Err(DecodeError::Truncated {
            what: "group message",
            needed: GROUP_HEADER_LEN + TAG_LEN,
            got: wire.len(),
        });
    }
    if wire[0] != KIND_GROUP {
        return Err(DecodeError::Malformed {
            what: "group message",
            reason: "unexpected message kind",
        });
    }
    let mut chain_id = [0u8; CHAIN_ID_LEN];
    chain_id.copy_from_slice(&wire[1..1 + CHAIN_ID_LEN]);
    let mut it = [0u8; 4];
    it.copy_from_slice(&wire[1 + CHAIN_ID_LEN..1 + CHAIN_ID_LEN + 4]);
    Ok((chain_id, u32::from_be_bytes(it)))
}
