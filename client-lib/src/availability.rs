//! Office hours, the out-of-hours notice and the crisis text
//! (docs/therapy.md).
//!
//! A clinician sets an [`Availability`]; the SDK sends it sealed to every
//! contact, and to each new one. A client's SDK keeps the newest it
//! received. When the client writes outside the hours, its SDK puts an
//! [`EventKind::OutOfHours`] notice in the inbox at once, computed on the
//! device from what it holds: no server is asked and none learns that the
//! notice was shown. A clinician may also set an auto-reply, which its SDK
//! sends as an ordinary sealed text to a message that arrives outside the
//! hours, at most once per contact until the hours open again.

use alcove_protocol::availability::{is_open_at, next_opening_ms};
use alcove_protocol::content::{self, Availability, Body, Text};

use crate::error::{Error, Result};
use crate::records;
use crate::{Client, Core, DeviceAddress, EventKind};

/// What the SDK shows when its user writes to a clinician outside office
/// hours ([`EventKind::OutOfHours`], [`Client::out_of_hours_notice`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutOfHoursNotice {
    /// The clinician's crisis text (for example local emergency numbers);
    /// may be empty.
    pub crisis_text: String,
    /// How long a reply usually takes within office hours, in hours (0:
    /// not said).
    pub reply_within_hours: u32,
    /// When office hours next begin (ms since the Unix epoch); `None` when
    /// the clinician set no hours.
    pub next_opening_ms: Option<i64>,
}

impl std::fmt::Display for OutOfHoursNotice {
    /// A plain-language notice, for apps that show the SDK's wording.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Your message was sent outside office hours.")?;
        if let Some(at) = self.next_opening_ms {
            let secs = u64::try_from(at / 1000).unwrap_or(0);
            write!(
                f,
                " Office hours resume {} UTC.",
                crate::clock::format_utc(secs)
            )?;
        }
        if self.reply_within_hours > 0 {
            write!(
                f,
                " Replies usually come within {} hours during office hours.",
                self.reply_within_hours
            )?;
        }
        f.write_str(" This service is not monitored for emergencies.")?;
        if !self.crisis_text.is_empty() {
            write!(f, " {}", self.crisis_text)?;
        }
        Ok(())
    }
}

impl Client {
    /// Sets this device's office hours, usual reply time and crisis text,
    /// and sends them, sealed, to every contact (new contacts get them
    /// when they accept an invite). `updated_at_ms` is set to now.
    ///
    /// ```no_run
    /// # async fn f(therapist: alcove_client::Client) -> Result<(), alcove_client::Error> {
    /// use alcove_client::{Availability, OfficeHours};
    /// let weekdays = (1..=5).map(|d| OfficeHours { weekday: d, start_minute: 9 * 60, end_minute: 17 * 60 });
    /// therapist.set_availability(Availability {
    ///     updated_at_ms: 0,
    ///     utc_offset_minutes: 60,
    ///     hours: weekdays.collect(),
    ///     reply_within_hours: 24,
    ///     crisis_text: "If you are in danger, call 112 or go to the nearest emergency department.".into(),
    /// }).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_availability(&self, mut availability: Availability) -> Result<()> {
        availability.updated_at_ms = self.now_ms();
        alcove_protocol::availability::validate(&availability)?;
        let mut core = self.core.lock().await;
        self.vault.commit(
            vec![(
                records::OWN_AVAILABILITY.to_vec(),
                prost::Message::encode_to_vec(&availability),
            )],
            &[],
        )?;
        let contacts: Vec<[u8; 32]> = core.contacts.keys().copied().collect();
        for to in contacts {
            self.send_own_availability(&mut core, &to).await?;
        }
        Ok(())
    }

    /// This device's own availability, if set.
    pub fn own_availability(&self) -> Result<Option<Availability>> {
        self.vault
            .get(records::OWN_AVAILABILITY)?
            .map(|v| {
                prost::Message::decode(v.as_slice())
                    .map_err(|_| Error::ProfileCorrupt("availability record".into()))
            })
            .transpose()
    }

    /// Sets (or with `None` clears) the text this device sends back to a
    /// message that arrives outside its office hours: an ordinary sealed
    /// message, at most once per contact until the hours open again.
    pub async fn set_auto_reply(&self, text: Option<&str>) -> Result<()> {
        match text {
            Some(t) if !t.trim().is_empty() => self.vault.commit(
                vec![(records::AUTO_REPLY.to_vec(), t.as_bytes().to_vec())],
                &[],
            ),
            _ => self.vault.commit(vec![], &[records::AUTO_REPLY.to_vec()]),
        }
    }

    pub(crate) async fn send_own_availability(&self, core: &mut Core, to: &[u8; 32]) -> Result<()> {
        let Some(availability) = self.own_availability()? else {
            return Ok(());
        };
        match self
            .send_body(core, to, None, Body::Availability(availability), false)
            .await
        {
            Ok(_) | Err(Error::Offline(_)) | Err(Error::Busy(_)) | Err(Error::NotAccepted(_)) => {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// The newest availability a contact sent, if any.
    pub fn contact_availability(&self, contact: &DeviceAddress) -> Result<Option<Availability>> {
        self.vault
            .get(
                &self
                    .vault
                    .hashed_name(records::AVAILABILITY, contact.as_bytes()),
            )?
            .map(|v| {
                prost::Message::decode(v.as_slice())
                    .map_err(|_| Error::ProfileCorrupt("availability record".into()))
            })
            .transpose()
    }

    /// Keeps a contact's availability if it is newer than the one held.
    pub(crate) fn received_availability(
        &self,
        from: &[u8; 32],
        availability: &Availability,
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let address =
            DeviceAddress::from_bytes(from).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let newer = self
            .contact_availability(&address)?
            .is_none_or(|held| availability.updated_at_ms > held.updated_at_ms);
        Ok(newer.then(|| {
            (
                self.vault.hashed_name(records::AVAILABILITY, from),
                prost::Message::encode_to_vec(availability),
            )
        }))
    }

    /// The notice to show if this device wrote to `contact` now: `Some`
    /// outside the contact's office hours (or always, when the contact set
    /// none), `None` within them or when the contact set no availability.
    /// Computed on the device; nothing is sent.
    pub fn out_of_hours_notice(&self, contact: &DeviceAddress) -> Result<Option<OutOfHoursNotice>> {
        let Some(a) = self.contact_availability(contact)? else {
            return Ok(None);
        };
        let now = self.now_ms();
        if is_open_at(&a, now) {
            return Ok(None);
        }
        Ok(Some(OutOfHoursNotice {
            crisis_text: a.crisis_text.clone(),
            reply_within_hours: a.reply_within_hours,
            next_opening_ms: next_opening_ms(&a, now),
        }))
    }

    /// After this device wrote `body` to `to`: the out-of-hours notice, as
    /// an event in the inbox, once per closed period.
    pub(crate) async fn notice_after_send(&self, to: &DeviceAddress, body: &Body) -> Result<()> {
        if !content::is_written(body) {
            return Ok(());
        }
        let Some(notice) = self.out_of_hours_notice(to)? else {
            return Ok(());
        };
        let period = notice.next_opening_ms.unwrap_or(i64::MAX);
        {
            let mut shown = self
                .out_of_hours_shown
                .lock()
                .map_err(|_| Error::Storage("notice state poisoned".into()))?;
            if shown.get(to.as_bytes()) == Some(&period) {
                return Ok(());
            }
            shown.insert(*to.as_bytes(), period);
        }
        let core = self.core.lock().await;
        let event = self.notice_locked(&core, to.as_bytes(), EventKind::OutOfHours(notice));
        self.vault.commit(vec![self.inbox_record(&event)?], &[])?;
        self.queue_notice(event);
        Ok(())
    }

    /// After a message from `from` was stored: the auto-reply, if this
    /// device set one, it is outside its hours, and it has not replied to
    /// this contact since its hours were last open.
    pub(crate) async fn auto_reply_to(&self, from: &[u8; 32], body: &Body) -> Result<()> {
        if !content::is_written(body) {
            return Ok(());
        }
        let (Some(text), Some(own)) = (
            self.vault.get(records::AUTO_REPLY)?,
            self.own_availability()?,
        ) else {
            return Ok(());
        };
        let now = self.now_ms();
        if is_open_at(&own, now) {
            return Ok(());
        }
        let name = self.vault.hashed_name(records::AUTO_REPLIED, from);
        let last = self
            .vault
            .get(&name)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map(i64::from_be_bytes);
        // Replied already in this closed period: the hours have not opened
        // between that reply and now.
        if let Some(last) = last {
            if next_opening_ms(&own, last).is_none_or(|open| open > now) {
                return Ok(());
            }
        }
        let text = String::from_utf8_lossy(&text).into_owned();
        let mut core = self.core.lock().await;
        self.vault
            .commit(vec![(name, now.to_be_bytes().to_vec())], &[])?;
        let reply = Body::Text(Text {
            body: text,
            reply_to: vec![],
        });
        match self.send_body(&mut core, from, None, reply, false).await {
            Ok(_) | Err(Error::Offline(_)) | Err(Error::Busy(_)) | Err(Error::NotAccepted(_)) => {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}
