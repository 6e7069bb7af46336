//! Group conversations (group therapy, couples therapy): membership the
//! relay never learns, messages encrypted once under the sender's chain and
//! sealed to each member like a one-to-one message. `docs/groups.md` has
//! the design; [`alcove_protocol::group`] the cryptography.
//!
//! What travels where:
//! - rosters, sender keys, key updates and leave requests go over the
//!   pairwise sessions, as content kept for resending like any message;
//! - a group message is one sender-key ciphertext, sealed separately to
//!   every other member and queued in the outbox per member, in order
//!   behind that member's earlier messages (so a member's chain always
//!   arrives before the messages on it).
//!
//! The fan-out takes a list of device addresses, so a later "one person,
//! several devices" feature reuses it by expanding a person to devices.
//!
//! Keys change at these points: every roster change (each member makes a
//! new chain before its next message, so a removed member holds nothing
//! that opens later messages and a new member nothing that opens earlier
//! ones); every [`GROUP_CHAIN_MESSAGES`] messages; and on
//! [`Client::update_group_keys`], the two-step update that locks out
//! whoever stole a member's state.

use std::collections::HashSet;

use alcove_protocol::content::{self, Body, Content, MessageId};
use alcove_protocol::group::{self, GroupId, Member, ReceivedSenderKey, Roster, SenderKey};
use alcove_protocol::{sealed_sender, PublicIdentity, SessionError};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::contacts::ContactRecord;
use crate::error::{Error, Result};
use crate::inbound::attachments_of;
use crate::records;
use crate::{AttachmentPointer, Client, Core, DeviceAddress, Event, EventId, EventKind};
use crate::{Feedback, HomeworkAssignment, HomeworkSubmission, ReadReceipt, Text};

/// How many messages one sending chain encrypts before the next group
/// message starts a new one.
pub const GROUP_CHAIN_MESSAGES: u32 = 1_000;
/// Chains kept per fellow member (older ones go: messages on them that
/// are still in flight when three newer chains arrived are lost to this
/// device, and reported).
const MAX_CHAINS_PER_SENDER: usize = 3;
/// Group messages whose chain has not arrived yet, kept at most (past
/// it, each is reported as [`EventKind::Undecryptable`]).
const MAX_HELD: usize = 1_000;
/// The most such messages kept from one sender, so one member (or anyone
/// who can write to this device) cannot take the room kept for others.
pub const MAX_HELD_PER_SENDER: usize = 200;
/// How long such a message waits for its chain.
const HELD_FOR_MS: i64 = 7 * 24 * 3600 * 1000;
/// Verified rosters kept in memory (the current one of each group).
const MAX_CACHED_ROSTERS: usize = 64;
const GROUP: &str = "group";
const HELD: &[u8] = b"group-held/";
const ASSIGNMENT: &[u8] = b"group-assignment/";
const PHASE_REQUEST: u32 = 1;
const PHASE_ACK: u32 = 2;

/// A group as this device knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// The group's id (never shown to the relay).
    pub id: GroupId,
    /// Its title.
    pub title: String,
    /// The roster epoch: 1 at creation, one more per change.
    pub epoch: u64,
    /// Who may change the membership.
    pub admins: Vec<DeviceAddress>,
    /// Everyone in it, admins included.
    pub members: Vec<GroupMemberInfo>,
    /// Whether this device is an admin.
    pub is_admin: bool,
    /// This device was removed or left: nothing more is sent or received.
    pub removed: bool,
}

/// A member as the roster names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMemberInfo {
    /// Their device address.
    pub address: DeviceAddress,
    /// The name the admin gave them.
    pub name: String,
}

/// What an [`EventKind::GroupChanged`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupChange {
    /// The group.
    pub group: GroupId,
    /// Its title now.
    pub title: String,
    /// The new roster epoch.
    pub epoch: u64,
    /// Members who joined (everyone, when this device was just added).
    pub added: Vec<DeviceAddress>,
    /// Members who left or were removed.
    pub removed: Vec<DeviceAddress>,
    /// This device was removed.
    pub removed_me: bool,
}

/// A group's state in the profile.
#[derive(Serialize, Deserialize)]
struct GroupRecord {
    /// The current roster, as signed.
    roster: Vec<u8>,
    signature: Vec<u8>,
    /// This device's sending chain.
    own: Option<SenderKey>,
    /// Fellow members' chains.
    received: Vec<ReceivedSenderKey>,
    /// Make a new chain before the next message (asked by a key update).
    rotate: bool,
    /// Removed or left.
    removed: bool,
    /// This device's key update in progress.
    update: Option<KeyUpdate>,
    /// An admin's change not yet in the roster (lost a race with another
    /// admin's change at the same epoch): applied again on top.
    intent: Option<Intent>,
}

#[derive(Serialize, Deserialize)]
struct KeyUpdate {
    rotated: bool,
    acked: Vec<[u8; 32]>,
}

#[derive(Serialize, Deserialize, Clone, Default)]
struct Intent {
    /// (identity, name, delivery key) of members to add.
    add: Vec<(Vec<u8>, String, Option<[u8; 16]>)>,
    remove: Vec<[u8; 32]>,
}

/// A group message whose chain has not arrived.
#[derive(Serialize, Deserialize)]
struct Held {
    from: [u8; 32],
    chain_id: [u8; group::CHAIN_ID_LEN],
    iteration: u32,
    wire: Vec<u8>,
    at_ms: i64,
}

/// A group assignment this device received: where its submissions go.
#[derive(Serialize, Deserialize)]
struct AssignmentRecord {
    group: GroupId,
    assigner: [u8; 32],
    share: bool,
}

/// What a received control message asks this device to do once its
/// effects are stored.
pub(crate) enum FollowUp {
    /// Acknowledge a key update request.
    Ack([u8; 32], GroupId),
    /// Send this device's current chain (marked `rotate`) to a member who
    /// acknowledged its key update.
    Chain([u8; 32], GroupId),
    /// Send a new roster (an admin after a leave, or re-applying a change
    /// that lost a race).
    Roster(GroupId),
}

impl GroupRecord {
    fn set_roster(&mut self, roster: &Roster) {
        let u = roster.to_update();
        self.roster = u.roster;
        self.signature = u.signature;
    }
}

fn members_info(roster: &Roster) -> Vec<GroupMemberInfo> {
    roster
        .members()
        .iter()
        .map(|m| GroupMemberInfo {
            address: m.address(),
            name: m.name.clone(),
        })
        .collect()
}

fn unknown_group(group: &GroupId) -> Error {
    Error::InvalidInput(format!("no group {} on this device", group.to_hex()))
}

fn group_error(e: alcove_protocol::GroupError) -> Error {
    Error::InvalidInput(e.to_string())
}

impl Client {
    fn group_name(&self, group: &GroupId) -> Vec<u8> {
        self.vault.hashed_name(GROUP, &group.0)
    }

    fn load_group(&self, group: &GroupId) -> Result<Option<GroupRecord>> {
        match self.vault.get(&self.group_name(group))? {
            Some(bytes) => Ok(Some(records::decode("group", &bytes)?)),
            None => Ok(None),
        }
    }

    fn group_record(&self, group: &GroupId, rec: &GroupRecord) -> Result<(Vec<u8>, Vec<u8>)> {
        Ok((self.group_name(group), records::encode(rec)?))
    }

    /// The roster a group record holds. It was verified when it was
    /// adopted (and the profile store authenticates every record), so it
    /// is verified again only the first time this process reads these
    /// exact bytes: not on every group message.
    fn roster_of(&self, rec: &GroupRecord) -> Result<Roster> {
        let mut key = rec.roster.clone();
        key.extend_from_slice(&rec.signature);
        let mut cache = self
            .verified_rosters
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(r) = cache.get(&key) {
            return Ok(r.clone());
        }
        let roster = Roster::verify(&content::GroupUpdate {
            roster: rec.roster.clone(),
            signature: rec.signature.clone(),
        })
        .map_err(|_| Error::ProfileCorrupt("a group roster".into()))?;
        if cache.len() >= MAX_CACHED_ROSTERS {
            cache.clear();
        }
        cache.insert(key, roster.clone());
        Ok(roster)
    }

    fn all_groups(&self) -> Result<Vec<GroupRecord>> {
        let mut prefix = GROUP.as_bytes().to_vec();
        prefix.push(b'/');
        self.vault
            .scan(&prefix)?
            .iter()
            .map(|(_, v)| records::decode("group", v))
            .collect()
    }

    fn info(&self, rec: &GroupRecord) -> Result<GroupInfo> {
        let roster = self.roster_of(rec)?;
        Ok(GroupInfo {
            id: *roster.id(),
            title: roster.title().to_string(),
            epoch: roster.epoch(),
            admins: roster.admins().to_vec(),
            members: members_info(&roster),
            is_admin: roster.is_admin(&self.address()),
            removed: rec.removed,
        })
    }

    /// One group.
    pub async fn group(&self, group: &GroupId) -> Result<GroupInfo> {
        let _core = self.core.lock().await;
        let rec = self
            .load_group(group)?
            .ok_or_else(|| unknown_group(group))?;
        self.info(&rec)
    }

    /// Every group this device is or was in, by title.
    pub async fn groups(&self) -> Result<Vec<GroupInfo>> {
        let _core = self.core.lock().await;
        let mut list = self
            .all_groups()?
            .iter()
            .map(|r| self.info(r))
            .collect::<Result<Vec<_>>>()?;
        list.sort_by(|a, b| a.title.cmp(&b.title));
        Ok(list)
    }

    /// The roster entry for a contact: identity, name, delivery key.
    fn member_of(&self, core: &Core, address: &DeviceAddress) -> Result<Member> {
        let contact = core.contact(address.as_bytes())?;
        let identity = PublicIdentity::from_bytes(&contact.identity)
            .map_err(|_| Error::ProfileCorrupt("a contact's identity".into()))?;
        Ok(Member {
            identity,
            name: contact.name.clone(),
            delivery_key: core.access_key(address.as_bytes()),
        })
    }

    /// Creates a group with this device as its admin and `members` (each
    /// a contact) in it, and sends them the roster. Returns its id.
    ///
    /// ```no_run
    /// # async fn f(therapist: alcove_client::Client, a: alcove_client::DeviceAddress, b: alcove_client::DeviceAddress) -> Result<(), alcove_client::Error> {
    /// let group = therapist.create_group("Tuesday CBT group", &[a, b]).await?;
    /// therapist.send_group_text(&group, "Welcome to the group.").await?;
    /// # Ok(()) }
    /// ```
    pub async fn create_group(&self, title: &str, members: &[DeviceAddress]) -> Result<GroupId> {
        self.create_group_with_co_admins(title, members, &[]).await
    }

    /// [`Client::create_group`] with co-admins (a co-therapist), each one
    /// of `members`. The admins are fixed for the group's life. Changes
    /// two admins make at once converge: every member keeps the same
    /// roster, and the admin whose change lost applies it again on top.
    pub async fn create_group_with_co_admins(
        &self,
        title: &str,
        members: &[DeviceAddress],
        co_admins: &[DeviceAddress],
    ) -> Result<GroupId> {
        if co_admins.iter().any(|a| !members.contains(a)) {
            return Err(Error::InvalidInput(
                "every co-admin must be one of the members".into(),
            ));
        }
        let mut core = self.core.lock().await;
        let me = self.address();
        let mut list = Vec::new();
        for m in members.iter().filter(|m| **m != me) {
            list.push(self.member_of(&core, m)?);
        }
        let mut admin = Member::new(self.identity.public().clone(), &core.state.name);
        admin.delivery_key = core.own_delivery.published.then(|| core.own_delivery.key);
        list.insert(0, admin);
        let roster = Roster::create_with_co_admins(
            &mut rand::rngs::OsRng,
            &self.identity,
            co_admins,
            title,
            list,
            self.now_ms(),
        )
        .map_err(group_error)?;
        let rec = GroupRecord {
            roster: Vec::new(),
            signature: Vec::new(),
            own: None,
            received: Vec::new(),
            rotate: false,
            removed: false,
            update: None,
            intent: None,
        };
        let mut rec = rec;
        rec.set_roster(&roster);
        self.vault
            .commit(vec![self.group_record(roster.id(), &rec)?], &[])?;
        self.send_roster(&mut core, &roster, &[]).await?;
        Ok(*roster.id())
    }

    /// Adds contacts to a group (admins only). They receive the roster and
    /// can read what is sent from now on, nothing earlier.
    pub async fn add_group_members(
        &self,
        group: &GroupId,
        members: &[DeviceAddress],
    ) -> Result<()> {
        let mut core = self.core.lock().await;
        let mut intent = Intent::default();
        for m in members {
            let member = self.member_of(&core, m)?;
            intent.add.push((
                member.identity.to_bytes().to_vec(),
                member.name,
                member.delivery_key,
            ));
        }
        self.change_roster(&mut core, group, intent).await
    }

    /// Removes members from a group (admins only). Every remaining member
    /// makes a new chain before its next message, so nothing sent after
    /// the change opens with anything the removed members hold.
    pub async fn remove_group_members(
        &self,
        group: &GroupId,
        members: &[DeviceAddress],
    ) -> Result<()> {
        let mut core = self.core.lock().await;
        let intent = Intent {
            add: Vec::new(),
            remove: members.iter().map(|m| *m.as_bytes()).collect(),
        };
        self.change_roster(&mut core, group, intent).await
    }

    async fn change_roster(&self, core: &mut Core, group: &GroupId, intent: Intent) -> Result<()> {
        let mut rec = self
            .load_group(group)?
            .ok_or_else(|| unknown_group(group))?;
        let current = self.roster_of(&rec)?;
        if !current.is_admin(&self.address()) {
            return Err(Error::InvalidInput(
                "only the group's admins change its membership".into(),
            ));
        }
        if intent
            .remove
            .iter()
            .any(|r| current.admins().iter().any(|a| a.as_bytes() == r))
        {
            return Err(Error::InvalidInput(
                "an admin cannot be removed: the admins are fixed when the group is made".into(),
            ));
        }
        let next = self.apply_intent(&current, &intent)?;
        rec.set_roster(&next);
        rec.intent = Some(intent);
        self.vault
            .commit(vec![self.group_record(group, &rec)?], &[])?;
        self.send_roster(core, &next, current.members()).await
    }

    /// The roster after `intent`, signed at the next epoch.
    fn apply_intent(&self, current: &Roster, intent: &Intent) -> Result<Roster> {
        let mut members: Vec<Member> = current
            .members()
            .iter()
            .filter(|m| !intent.remove.contains(m.address().as_bytes()))
            .cloned()
            .collect();
        for (identity, name, key) in &intent.add {
            let identity = PublicIdentity::from_bytes(identity)
                .map_err(|_| Error::ProfileCorrupt("a member's identity".into()))?;
            if !members.iter().any(|m| m.identity == identity) {
                members.push(Member {
                    identity,
                    name: name.clone(),
                    delivery_key: *key,
                });
            }
        }
        current
            .change(&self.identity, current.title(), members, self.now_ms())
            .map_err(group_error)
    }

    /// Sends `roster` to its members and to `previous` members no longer
    /// in it (so they learn they were removed).
    async fn send_roster(
        &self,
        core: &mut Core,
        roster: &Roster,
        previous: &[Member],
    ) -> Result<()> {
        let me = self.address();
        let mut to: Vec<Member> = roster.members().to_vec();
        to.extend(
            previous
                .iter()
                .filter(|p| !roster.is_member(&p.address()))
                .cloned(),
        );
        self.ensure_member_contacts(core, &to)?;
        let targets: Vec<[u8; 32]> = to
            .iter()
            .map(|m| *m.address().as_bytes())
            .filter(|a| a != me.as_bytes())
            .collect();
        self.fan_out_control(
            core,
            &targets,
            roster.id(),
            Body::GroupUpdate(roster.to_update()),
        )
        .await
    }

    /// Sends one control body to each of `targets` over the pairwise
    /// sessions. A member who cannot be reached now is queued (the outbox
    /// retries); one who cannot be reached at all is reported as
    /// [`EventKind::DeliveryFailed`], and the others still get it.
    async fn fan_out_control(
        &self,
        core: &mut Core,
        targets: &[[u8; 32]],
        group: &GroupId,
        body: Body,
    ) -> Result<()> {
        for to in targets {
            let sent = self
                .send_body_in(core, to, None, body.clone(), false, Some(group))
                .await;
            self.settle(core, to, None, sent.map(|_| ()))?;
        }
        Ok(())
    }

    /// Turns one member's send result into "queued" or a notice.
    fn settle(
        &self,
        core: &Core,
        to: &[u8; 32],
        id: Option<MessageId>,
        result: Result<()>,
    ) -> Result<()> {
        match result {
            Ok(()) | Err(Error::Offline(_) | Error::Busy(_) | Error::NotAccepted(_)) => Ok(()),
            Err(e @ (Error::Storage(_) | Error::ProfileCorrupt(_))) => Err(e),
            Err(e) => {
                let event = self.notice_locked(
                    core,
                    to,
                    EventKind::DeliveryFailed {
                        id,
                        reason: format!("a group message could not be sent to this member: {e}"),
                    },
                );
                let record = self.inbox_record(&event)?;
                self.vault.commit(vec![record], &[])?;
                self.queue_notice(event);
                Ok(())
            }
        }
    }

    /// Fellow members become contacts (unverified, named as the roster
    /// names them) so the pairwise sessions that carry the group's keys
    /// can be made; their delivery keys come from the roster.
    fn ensure_member_contacts(&self, core: &mut Core, members: &[Member]) -> Result<()> {
        let me = self.address();
        let mut puts = Vec::new();
        for m in members.iter().filter(|m| m.address() != me) {
            let address = *m.address().as_bytes();
            let contact = core
                .contacts
                .entry(address)
                .or_insert_with(|| ContactRecord {
                    address,
                    name: String::new(),
                    identity: m.identity.to_bytes().to_vec(),
                    verified: false,
                    pending_identity: None,
                });
            // A name the app gave wins; otherwise the roster's.
            if contact.name.is_empty() {
                contact.name = m.name.chars().take(100).collect();
            }
            if core.access_key(&address).is_none() {
                if let Some(key) = m.delivery_key {
                    if let Some(r) = core.learn_access_key(&address, &key)? {
                        puts.push(r);
                    }
                }
            }
        }
        puts.push(core.contacts_record()?);
        self.vault.commit(puts, &[])
    }

    /// Leaves a group: this device deletes its keys for it at once and
    /// asks the admins to sign the roster without it.
    pub async fn leave_group(&self, group: &GroupId) -> Result<()> {
        let mut core = self.core.lock().await;
        let mut rec = self
            .load_group(group)?
            .ok_or_else(|| unknown_group(group))?;
        let roster = self.roster_of(&rec)?;
        if roster.is_admin(&self.address()) {
            return Err(Error::InvalidInput(
                "an admin cannot leave: the admins are fixed when the group is made".into(),
            ));
        }
        rec.removed = true;
        rec.own = None;
        rec.received.clear();
        rec.update = None;
        self.vault
            .commit(vec![self.group_record(group, &rec)?], &[])?;
        let admins: Vec<[u8; 32]> = roster.admins().iter().map(|a| *a.as_bytes()).collect();
        self.fan_out_control(
            &mut core,
            &admins,
            group,
            Body::GroupLeave(content::GroupLeave {
                group_id: group.0.to_vec(),
            }),
        )
        .await
    }

    /// Sends a text to the group.
    pub async fn send_group_text(&self, group: &GroupId, text: &str) -> Result<MessageId> {
        self.send_group(
            group,
            Body::Text(Text {
                body: text.to_string(),
                reply_to: vec![],
            }),
        )
        .await
    }

    /// Assigns homework in a group: to everyone (`assignee` `None`, sent
    /// to the group) or to one member (sent to them alone).
    /// `share_submissions` says whether submissions go to the whole group
    /// or only to this device.
    #[allow(clippy::too_many_arguments)]
    pub async fn assign_group_homework(
        &self,
        group: &GroupId,
        assignee: Option<&DeviceAddress>,
        title: &str,
        instructions: &str,
        due_date: Option<&str>,
        attachments: Vec<AttachmentPointer>,
        share_submissions: bool,
    ) -> Result<MessageId> {
        let body = Body::HomeworkAssignment(HomeworkAssignment {
            title: title.to_string(),
            instructions: instructions.to_string(),
            due_date: due_date.unwrap_or_default().to_string(),
            attachments,
            assignee: assignee.map(|a| a.as_bytes().to_vec()).unwrap_or_default(),
            share_submissions,
        });
        match assignee {
            None => self.send_group(group, body).await,
            Some(member) => self.send_to_member(group, member, body).await,
        }
    }

    /// Hands in group homework: to the whole group or to the assigning
    /// therapist only, as the assignment says.
    pub async fn submit_group_homework(
        &self,
        group: &GroupId,
        assignment: &MessageId,
        answer: &str,
        attachments: Vec<AttachmentPointer>,
    ) -> Result<MessageId> {
        let record: AssignmentRecord = {
            let _core = self.core.lock().await;
            let bytes = self
                .vault
                .get(&assignment_name(assignment))?
                .ok_or_else(|| {
                    Error::InvalidInput(format!(
                        "no group assignment {} on this device",
                        assignment.to_hex()
                    ))
                })?;
            records::decode("group assignment", &bytes)?
        };
        if record.group != *group {
            return Err(Error::InvalidInput(
                "that assignment belongs to another group".into(),
            ));
        }
        let body = Body::HomeworkSubmission(HomeworkSubmission {
            assignment_id: assignment.0.to_vec(),
            body: answer.to_string(),
            attachments,
        });
        if record.share {
            self.send_group(group, body).await
        } else {
            let assigner = DeviceAddress::from_bytes(&record.assigner)
                .map_err(|_| Error::ProfileCorrupt("a group assignment".into()))?;
            self.send_to_member(group, &assigner, body).await
        }
    }

    /// Sends feedback in a group: to the group, or to one member only.
    pub async fn send_group_feedback(
        &self,
        group: &GroupId,
        to: Option<&DeviceAddress>,
        refers_to: &MessageId,
        text: &str,
    ) -> Result<MessageId> {
        let body = Body::Feedback(Feedback {
            refers_to: refers_to.0.to_vec(),
            body: text.to_string(),
        });
        match to {
            None => self.send_group(group, body).await,
            Some(member) => self.send_to_member(group, member, body).await,
        }
    }

    /// Tells the member who sent them that these group messages were read
    /// (only that member learns it).
    pub async fn send_group_read_receipt(
        &self,
        group: &GroupId,
        to: &DeviceAddress,
        ids: &[MessageId],
    ) -> Result<MessageId> {
        self.send_to_member(
            group,
            to,
            Body::ReadReceipt(ReadReceipt {
                message_ids: ids.iter().map(|i| i.0.to_vec()).collect(),
            }),
        )
        .await
    }

    /// Sends `body` to one member of a group over the pairwise session,
    /// tagged with the group (the event names it).
    pub async fn send_to_member(
        &self,
        group: &GroupId,
        to: &DeviceAddress,
        body: Body,
    ) -> Result<MessageId> {
        refuse_control(&body)?;
        let mut core = self.core.lock().await;
        let rec = self
            .load_group(group)?
            .ok_or_else(|| unknown_group(group))?;
        let roster = self.roster_of(&rec)?;
        if rec.removed || !roster.is_member(to) {
            return Err(Error::InvalidInput(
                "both sides must be members of the group".into(),
            ));
        }
        self.send_body_in(&mut core, to.as_bytes(), None, body, false, Some(group))
            .await
    }

    /// Sends any content to every other member: encrypted once under this
    /// device's chain, sealed to each member separately. Returns once
    /// every copy is with the relay or queued; a member who can never be
    /// reached is reported as [`EventKind::DeliveryFailed`].
    pub async fn send_group(&self, group: &GroupId, body: Body) -> Result<MessageId> {
        refuse_control(&body)?;
        let mut core = self.core.lock().await;
        let mut rec = self
            .load_group(group)?
            .ok_or_else(|| unknown_group(group))?;
        if rec.removed {
            return Err(Error::InvalidInput(
                "this device is no longer in the group".into(),
            ));
        }
        let roster = self.roster_of(&rec)?;
        let me = self.address();
        let others: Vec<Member> = roster
            .members()
            .iter()
            .filter(|m| m.address() != me)
            .cloned()
            .collect();
        // A new chain when the roster changed, a key update asked for one,
        // or this one has carried its share of messages.
        let stale = match &rec.own {
            None => true,
            Some(own) => {
                own.epoch() != roster.epoch()
                    || rec.rotate
                    || own.iteration() >= GROUP_CHAIN_MESSAGES
            }
        };
        if stale {
            let fresh = SenderKey::generate(&mut rand::rngs::OsRng, group, roster.epoch());
            let distribution = fresh.distribution();
            rec.own = Some(fresh);
            rec.rotate = false;
            self.vault
                .commit(vec![self.group_record(group, &rec)?], &[])?;
            self.ensure_member_contacts(&mut core, &others)?;
            let targets: Vec<[u8; 32]> = others.iter().map(|m| *m.address().as_bytes()).collect();
            self.fan_out_control(
                &mut core,
                &targets,
                group,
                Body::GroupSenderKey(distribution),
            )
            .await?;
        }
        let id = MessageId::random(&mut rand::rngs::OsRng);
        let message = Content {
            message_id: id.0.to_vec(),
            sent_at_ms: self.now_ms(),
            delivery_key: Vec::new(),
            author_signature: Vec::new(),
            group_id: group.0.to_vec(),
            body: Some(body),
        };
        content::validate(&message)?;
        let plaintext = Zeroizing::new(content::encode(&message));
        let own = rec
            .own
            .as_mut()
            .ok_or_else(|| Error::ProfileCorrupt("a group chain".into()))?;
        let wire = match own.encrypt(&mut rand::rngs::OsRng, &me, &plaintext) {
            Ok(w) => w,
            Err(SessionError::ChainExhausted) => return Err(Error::SessionExhausted),
            Err(e) => return Err(Error::Undecryptable(e.to_string())),
        };
        // The chain moves on before anything leaves the device.
        self.vault
            .commit(vec![self.group_record(group, &rec)?], &[])?;
        self.fan_out_message(&mut core, &others, &wire, id).await?;
        Ok(id)
    }

    /// Seals one group message to each member and queues each copy.
    async fn fan_out_message(
        &self,
        core: &mut Core,
        to: &[Member],
        wire: &[u8],
        id: MessageId,
    ) -> Result<()> {
        for member in to {
            let envelope = sealed_sender::seal(
                &mut rand::rngs::OsRng,
                &self.identity,
                &member.identity,
                wire,
            )?;
            let address = *member.address().as_bytes();
            let sent = self
                .deliver_envelope(core, &address, envelope, id, Vec::new(), None)
                .await;
            self.settle(core, &address, Some(id), sent)?;
        }
        Ok(())
    }

    /// Starts a key update after a suspected compromise of this device
    /// (or on a schedule the app chooses): every member acknowledges over
    /// its pairwise session, which makes that session take a fresh
    /// Diffie-Hellman step; only then does this device send it a new
    /// chain and ask it to make a new chain of its own. Once every member
    /// has answered and sent a message, nothing a thief copied from this
    /// device opens the group's messages.
    pub async fn update_group_keys(&self, group: &GroupId) -> Result<()> {
        let mut core = self.core.lock().await;
        let mut rec = self
            .load_group(group)?
            .ok_or_else(|| unknown_group(group))?;
        if rec.removed {
            return Err(Error::InvalidInput(
                "this device is no longer in the group".into(),
            ));
        }
        let roster = self.roster_of(&rec)?;
        rec.update = Some(KeyUpdate {
            rotated: false,
            acked: Vec::new(),
        });
        self.vault
            .commit(vec![self.group_record(group, &rec)?], &[])?;
        let me = self.address();
        let targets: Vec<[u8; 32]> = roster
            .members()
            .iter()
            .map(|m| *m.address().as_bytes())
            .filter(|a| a != me.as_bytes())
            .collect();
        self.fan_out_control(
            &mut core,
            &targets,
            group,
            Body::GroupKeyUpdate(content::GroupKeyUpdate {
                group_id: group.0.to_vec(),
                phase: PHASE_REQUEST,
            }),
        )
        .await
    }

    /// Handles a group control body from `from` (authenticated by the
    /// pairwise session). Returns the records to write with the message,
    /// the events, and what to send once they are written.
    pub(crate) fn group_control(
        &self,
        core: &mut Core,
        from: &[u8; 32],
        body: &Body,
        puts: &mut Vec<(Vec<u8>, Vec<u8>)>,
        removes: &mut Vec<Vec<u8>>,
        events: &mut Vec<Event>,
    ) -> Result<Option<FollowUp>> {
        let from_address =
            DeviceAddress::from_bytes(from).map_err(|e| Error::InvalidInput(e.to_string()))?;
        match body {
            Body::GroupUpdate(update) => {
                let roster = match Roster::verify(update) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(error = %e, "refusing a group roster");
                        return Ok(None);
                    }
                };
                self.receive_roster(core, roster, puts, events)
            }
            Body::GroupSenderKey(d) => {
                let Ok(group) = GroupId::from_slice(&d.group_id) else {
                    return Ok(None);
                };
                let Some(mut rec) = self.load_group(&group)? else {
                    return Ok(None);
                };
                let roster = self.roster_of(&rec)?;
                if rec.removed || !roster.is_member(&from_address) {
                    tracing::warn!("refusing a sender key from a non-member");
                    return Ok(None);
                }
                let Ok(key) = ReceivedSenderKey::from_distribution(&from_address, d) else {
                    return Ok(None);
                };
                rec.received.retain(|k| k.chain_id() != key.chain_id());
                let chain_id = key.chain_id();
                rec.received.push(key);
                let theirs: Vec<usize> = rec
                    .received
                    .iter()
                    .enumerate()
                    .filter(|(_, k)| k.owner() == &from_address)
                    .map(|(i, _)| i)
                    .collect();
                if theirs.len() > MAX_CHAINS_PER_SENDER {
                    rec.received.remove(theirs[0]);
                }
                if d.rotate {
                    rec.rotate = true;
                }
                // Messages that arrived before their chain.
                self.release_held(
                    core, &group, &mut rec, from, &chain_id, puts, removes, events,
                )?;
                puts.push(self.group_record(&group, &rec)?);
                Ok(None)
            }
            Body::GroupKeyUpdate(u) => {
                let Ok(group) = GroupId::from_slice(&u.group_id) else {
                    return Ok(None);
                };
                let Some(mut rec) = self.load_group(&group)? else {
                    return Ok(None);
                };
                if rec.removed || !self.roster_of(&rec)?.is_member(&from_address) {
                    return Ok(None);
                }
                match u.phase {
                    PHASE_REQUEST => Ok(Some(FollowUp::Ack(*from, group))),
                    PHASE_ACK => {
                        let roster = self.roster_of(&rec)?;
                        let Some(update) = rec.update.as_mut() else {
                            return Ok(None);
                        };
                        if !update.rotated {
                            update.rotated = true;
                            rec.own = Some(SenderKey::generate(
                                &mut rand::rngs::OsRng,
                                &group,
                                roster.epoch(),
                            ));
                        }
                        if !update.acked.contains(from) {
                            update.acked.push(*from);
                        }
                        let all = roster
                            .members()
                            .iter()
                            .filter(|m| m.address() != self.address())
                            .all(|m| update.acked.contains(m.address().as_bytes()));
                        if all {
                            rec.update = None;
                        }
                        puts.push(self.group_record(&group, &rec)?);
                        Ok(Some(FollowUp::Chain(*from, group)))
                    }
                    _ => Ok(None),
                }
            }
            Body::GroupLeave(l) => {
                let Ok(group) = GroupId::from_slice(&l.group_id) else {
                    return Ok(None);
                };
                let Some(mut rec) = self.load_group(&group)? else {
                    return Ok(None);
                };
                let roster = self.roster_of(&rec)?;
                if !roster.is_admin(&self.address()) || !roster.is_member(&from_address) {
                    return Ok(None);
                }
                let mut intent = rec.intent.take().unwrap_or_default();
                intent.add.retain(|(id, _, _)| {
                    PublicIdentity::from_bytes(id).map(|i| i.address()) != Ok(from_address)
                });
                intent.remove.push(*from);
                rec.intent = Some(intent);
                puts.push(self.group_record(&group, &rec)?);
                Ok(Some(FollowUp::Roster(group)))
            }
            _ => Ok(None),
        }
    }

    /// Adopts a verified roster if it supersedes the one held.
    fn receive_roster(
        &self,
        core: &mut Core,
        roster: Roster,
        puts: &mut Vec<(Vec<u8>, Vec<u8>)>,
        events: &mut Vec<Event>,
    ) -> Result<Option<FollowUp>> {
        let me = self.address();
        let group = *roster.id();
        let (mut rec, previous) = match self.load_group(&group)? {
            Some(rec) => {
                let current = self.roster_of(&rec)?;
                if !roster.supersedes(&current) {
                    return Ok(None);
                }
                (rec, Some(current))
            }
            None => {
                if !roster.is_member(&me) {
                    return Ok(None);
                }
                (
                    GroupRecord {
                        roster: Vec::new(),
                        signature: Vec::new(),
                        own: None,
                        received: Vec::new(),
                        rotate: false,
                        removed: false,
                        update: None,
                        intent: None,
                    },
                    None,
                )
            }
        };
        rec.set_roster(&roster);
        let before: HashSet<DeviceAddress> = previous
            .as_ref()
            .map(|p| p.members().iter().map(|m| m.address()).collect())
            .unwrap_or_default();
        let now: HashSet<DeviceAddress> = roster.members().iter().map(|m| m.address()).collect();
        let mut added: Vec<DeviceAddress> = now.difference(&before).copied().collect();
        let mut removed: Vec<DeviceAddress> = before.difference(&now).copied().collect();
        added.sort();
        removed.sort();
        let removed_me = !roster.is_member(&me);
        if removed_me {
            // Nothing of the group's keys stays on this device.
            rec.removed = true;
            rec.own = None;
            rec.received.clear();
            rec.update = None;
        } else {
            rec.removed = false;
            rec.received.retain(|k| roster.is_member(k.owner()));
            self.ensure_member_contacts(core, roster.members())?;
        }
        // An admin whose own change lost a race applies it again on top.
        let mut follow = None;
        if let Some(intent) = &rec.intent {
            let pending = intent
                .remove
                .iter()
                .any(|r| DeviceAddress::from_bytes(r).is_ok_and(|a| roster.is_member(&a)))
                || intent.add.iter().any(|(id, _, _)| {
                    PublicIdentity::from_bytes(id).is_ok_and(|i| !roster.is_member(&i.address()))
                });
            if pending && roster.is_admin(&me) {
                follow = Some(FollowUp::Roster(group));
            } else {
                rec.intent = None;
            }
        }
        puts.push(self.group_record(&group, &rec)?);
        let event = Event {
            event_id: EventId(random_id()),
            contact: *roster.signer(),
            contact_name: core.name_of(roster.signer().as_bytes()),
            at_ms: self.now_ms(),
            group: Some(group),
            kind: EventKind::GroupChanged(GroupChange {
                group,
                title: roster.title().to_string(),
                epoch: roster.epoch(),
                added,
                removed,
                removed_me,
            }),
        };
        events.push(event);
        Ok(follow)
    }

    /// Carries out a follow-up after the message that asked for it was
    /// stored.
    pub(crate) async fn follow_up(&self, core: &mut Core, follow: FollowUp) -> Result<()> {
        match follow {
            FollowUp::Ack(to, group) => {
                let sent = self
                    .send_body_in(
                        core,
                        &to,
                        None,
                        Body::GroupKeyUpdate(content::GroupKeyUpdate {
                            group_id: group.0.to_vec(),
                            phase: PHASE_ACK,
                        }),
                        false,
                        Some(&group),
                    )
                    .await;
                self.settle(core, &to, None, sent.map(|_| ()))
            }
            FollowUp::Chain(to, group) => {
                let Some(rec) = self.load_group(&group)? else {
                    return Ok(());
                };
                let Some(own) = &rec.own else {
                    return Ok(());
                };
                let mut d = own.distribution();
                d.rotate = true;
                let sent = self
                    .send_body_in(
                        core,
                        &to,
                        None,
                        Body::GroupSenderKey(d),
                        false,
                        Some(&group),
                    )
                    .await;
                self.settle(core, &to, None, sent.map(|_| ()))
            }
            FollowUp::Roster(group) => {
                let Some(mut rec) = self.load_group(&group)? else {
                    return Ok(());
                };
                let Some(intent) = rec.intent.clone() else {
                    return Ok(());
                };
                let current = self.roster_of(&rec)?;
                let next = self.apply_intent(&current, &intent)?;
                rec.set_roster(&next);
                self.vault
                    .commit(vec![self.group_record(&group, &rec)?], &[])?;
                self.send_roster(core, &next, current.members()).await
            }
        }
    }

    /// Handles a group message (the inside of an envelope from `from`).
    /// Returns the events; a message whose chain has not arrived is kept
    /// until it does.
    pub(crate) fn receive_group(
        &self,
        core: &mut Core,
        from: &[u8; 32],
        wire: &[u8],
    ) -> Result<Vec<Event>> {
        let (chain_id, iteration) = match group::parse_header(wire) {
            Ok(h) => h,
            Err(e) => {
                let event = self.notice_locked(
                    core,
                    from,
                    EventKind::Undecryptable {
                        reason: format!("a malformed group message: {e}"),
                    },
                );
                self.vault.commit(vec![self.inbox_record(&event)?], &[])?;
                return Ok(vec![event]);
            }
        };
        let from_address =
            DeviceAddress::from_bytes(from).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let found = self.all_groups()?.into_iter().find(|r| {
            !r.removed
                && r.received
                    .iter()
                    .any(|k| k.chain_id() == chain_id && k.owner() == &from_address)
        });
        let Some(mut rec) = found else {
            return match self.hold(from, chain_id, iteration, wire)? {
                None => Ok(Vec::new()),
                Some(reason) => {
                    let event = self.notice_locked(core, from, EventKind::Undecryptable { reason });
                    self.vault.commit(vec![self.inbox_record(&event)?], &[])?;
                    Ok(vec![event])
                }
            };
        };
        let group = *self.roster_of(&rec)?.id();
        let mut puts = Vec::new();
        let mut events = Vec::new();
        self.open_group_message(core, &group, &mut rec, from, wire, &mut puts, &mut events)?;
        for event in &events {
            puts.push(self.inbox_record(event)?);
        }
        puts.push(self.group_record(&group, &rec)?);
        self.vault.commit(puts, &[])?;
        Ok(events)
    }

    /// Decrypts one group message on a chain `rec` holds and turns it
    /// into an event (or a notice).
    #[allow(clippy::too_many_arguments)]
    fn open_group_message(
        &self,
        core: &mut Core,
        group: &GroupId,
        rec: &mut GroupRecord,
        from: &[u8; 32],
        wire: &[u8],
        puts: &mut Vec<(Vec<u8>, Vec<u8>)>,
        events: &mut Vec<Event>,
    ) -> Result<()> {
        let from_address =
            DeviceAddress::from_bytes(from).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let Ok((chain_id, _)) = group::parse_header(wire) else {
            return Ok(());
        };
        let Some(key) = rec
            .received
            .iter_mut()
            .find(|k| k.chain_id() == chain_id && k.owner() == &from_address)
        else {
            return Ok(());
        };
        let plaintext = match key.decrypt(&from_address, wire) {
            Ok(p) => Zeroizing::new(p),
            // Delivered again: already stored.
            Err(SessionError::DuplicateMessage) => return Ok(()),
            Err(e) => {
                events.push(self.notice_locked(
                    core,
                    from,
                    EventKind::Undecryptable {
                        reason: format!("a group message did not decrypt: {e}"),
                    },
                ));
                return Ok(());
            }
        };
        let parsed = content::decode(&plaintext).ok().and_then(|m| {
            let id = MessageId::from_slice(&m.message_id)?;
            (m.group_id.as_slice() == group.0).then_some((id, m.sent_at_ms, m.body?))
        });
        let Some((id, sent_at_ms, body)) = parsed else {
            events.push(
                self.notice_locked(
                    core,
                    from,
                    EventKind::Undecryptable {
                        reason: "a group message decrypted but its content is malformed or names \
                             another group"
                            .into(),
                    },
                ),
            );
            return Ok(());
        };
        if !content::is_written(&body) && !matches!(body, Body::ReadReceipt(_)) {
            tracing::warn!("ignoring a control body sent as a group message");
            return Ok(());
        }
        self.note_assignment(group, from, &id, &body, puts)?;
        for pointer in attachments_of(&body) {
            puts.push((
                records::attachment(&pointer.blob_id),
                prost::Message::encode_to_vec(pointer),
            ));
        }
        events.push(Event {
            event_id: EventId(id.0),
            contact: from_address,
            contact_name: core.name_of(from),
            at_ms: sent_at_ms,
            group: Some(*group),
            kind: EventKind::Message { id, body },
        });
        Ok(())
    }

    /// Remembers a group assignment, so a submission goes where it says.
    pub(crate) fn note_assignment(
        &self,
        group: &GroupId,
        from: &[u8; 32],
        id: &MessageId,
        body: &Body,
        puts: &mut Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<()> {
        if let Body::HomeworkAssignment(a) = body {
            let record = AssignmentRecord {
                group: *group,
                assigner: *from,
                share: a.share_submissions,
            };
            puts.push((assignment_name(id), records::encode(&record)?));
        }
        Ok(())
    }

    /// Keeps a group message until its chain arrives. Returns why it was
    /// not kept, when the room for such messages is full.
    fn hold(
        &self,
        from: &[u8; 32],
        chain_id: [u8; 16],
        iteration: u32,
        wire: &[u8],
    ) -> Result<Option<String>> {
        let held = self.vault.scan(HELD)?;
        if held.len() >= MAX_HELD {
            return Ok(Some(format!(
                "a group message could not be kept: {MAX_HELD} group messages already wait \
                 for their senders' keys"
            )));
        }
        let mut from_sender = 0;
        for (_, value) in &held {
            let h: Held = records::decode("held group message", value)?;
            if &h.from == from {
                from_sender += 1;
            }
        }
        if from_sender >= MAX_HELD_PER_SENDER {
            return Ok(Some(format!(
                "a group message could not be kept: {MAX_HELD_PER_SENDER} from this sender \
                 already wait for their keys"
            )));
        }
        let record = Held {
            from: *from,
            chain_id,
            iteration,
            wire: wire.to_vec(),
            at_ms: self.now_ms(),
        };
        let mut name = HELD.to_vec();
        name.extend_from_slice(&content::envelope_digest(wire));
        self.vault
            .commit(vec![(name, records::encode(&record)?)], &[])?;
        Ok(None)
    }

    /// Opens the held messages from `from` on a chain that just arrived,
    /// in chain order.
    #[allow(clippy::too_many_arguments)]
    fn release_held(
        &self,
        core: &mut Core,
        group: &GroupId,
        rec: &mut GroupRecord,
        from: &[u8; 32],
        chain_id: &[u8; 16],
        puts: &mut Vec<(Vec<u8>, Vec<u8>)>,
        removes: &mut Vec<Vec<u8>>,
        events: &mut Vec<Event>,
    ) -> Result<()> {
        let mut waiting: Vec<(Vec<u8>, Held)> = Vec::new();
        for (name, value) in self.vault.scan(HELD)? {
            let held: Held = records::decode("held group message", &value)?;
            if &held.from == from && &held.chain_id == chain_id {
                waiting.push((name, held));
            }
        }
        waiting.sort_by_key(|(_, h)| h.iteration);
        for (name, held) in waiting {
            // The caller stores the events with the message that
            // brought the chain.
            self.open_group_message(core, group, rec, from, &held.wire, puts, events)?;
            removes.push(name);
        }
        Ok(())
    }

    /// Reports and deletes group messages that waited too long for their
    /// chain (from [`Client::sync`]).
    pub(crate) async fn expire_held_group_messages(&self) -> Result<Vec<Event>> {
        let core = self.core.lock().await;
        let now = self.now_ms();
        let mut events = Vec::new();
        for (name, value) in self.vault.scan(HELD)? {
            let held: Held = records::decode("held group message", &value)?;
            if now.saturating_sub(held.at_ms) < HELD_FOR_MS {
                continue;
            }
            let event = self.notice_locked(
                &core,
                &held.from,
                EventKind::Undecryptable {
                    reason: "a group message waited a week for the sender's keys, which never \
                             came"
                        .into(),
                },
            );
            self.vault
                .commit(vec![self.inbox_record(&event)?], &[name])?;
            events.push(event);
        }
        Ok(events)
    }
}

/// What an app may send in a group: what people write, and read receipts.
/// Keys and rosters are the SDK's business.
fn refuse_control(body: &Body) -> Result<()> {
    if content::is_written(body) || matches!(body, Body::ReadReceipt(_)) {
        Ok(())
    } else {
        Err(Error::InvalidInput(
            "only texts, homework, feedback, documents and read receipts are sent to a group"
                .into(),
        ))
    }
}

fn assignment_name(id: &MessageId) -> Vec<u8> {
    let mut name = ASSIGNMENT.to_vec();
    name.extend_from_slice(&id.0);
    name
}

fn random_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
    id
}
