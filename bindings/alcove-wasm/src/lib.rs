//! # alcove-wasm
//!
//! The Alcove SDK ([`alcove_client`]) in the browser. Keys are made and
//! kept in the page; content is sealed in the page; the relay, reached over
//! grpc-web, sees only ciphertext, as with the native SDK. The SDK's three
//! seams are filled with the browser's parts:
//!
//! - the profile store is IndexedDB ([`store`]), holding the same sealed
//!   records as the native sled store, under a storage key the app hands in;
//! - the transport is grpc-web over `fetch` ([`transport`]);
//! - the clock is `Date.now()`, randomness `crypto.getRandomValues`.
//!
//! From JavaScript (the package `scripts/build-wasm.sh` builds):
//!
//! ```js
//! import init, { AlcoveClient } from "./pkg/alcove_wasm.js";
//! await init();
//! const key = crypto.getRandomValues(new Uint8Array(32)); // keep it safe: docs/bindings.md
//! const me = await AlcoveClient.create("alcove-therapist", key, "https://relay.example.org", "Dr. Rivera");
//! const link = await me.createInvite(7 * 24 * 3600, 1);
//! const stop = me.subscribe((event) => console.log(event.body), (error) => console.error(error));
//! ```
//!
//! Every call that can fail rejects with an `AlcoveError` (an `Error` with
//! `code` and `retryable`).
#![forbid(unsafe_code)]

pub mod store;
pub mod transport;
mod views;

use std::rc::Rc;
use std::time::Duration;

use alcove_client as sdk;
use futures::future::{AbortHandle, Abortable};
use futures::StreamExt;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::store::IdbStore;
use crate::views::{Attachment, Contact, Event, HistoryItem};

/// The page's clock.
struct PageClock;

impl sdk::Clock for PageClock {
    fn now_ms(&self) -> i64 {
        js_sys::Date::now() as i64
    }
}

/// An `AlcoveError`: a JavaScript `Error` with `code` and `retryable`.
fn js_error(code: &str, message: &str, retryable: bool) -> JsValue {
    let error = js_sys::Error::new(message);
    error.set_name("AlcoveError");
    let _ = js_sys::Reflect::set(&error, &"code".into(), &code.into());
    let _ = js_sys::Reflect::set(&error, &"retryable".into(), &retryable.into());
    error.into()
}

fn sdk_error(e: sdk::Error) -> JsValue {
    use sdk::Error as E;
    let code = match &e {
        E::Offline(_) | E::Busy(_) | E::NotAccepted(_) => "offline",
        E::NotAuthorized(_) | E::WrongRelay { .. } => "notAuthorized",
        E::StorageLocked => "storageLocked",
        E::ProfileCorrupt(_) | E::Storage(_) => "storage",
        E::ContactKeyChanged => "contactKeyChanged",
        E::VerificationFailed(_)
        | E::KeyTransparency(_)
        | E::StaleSignedPreKey { .. }
        | E::Credential(_) => "verificationFailed",
        E::LimitExceeded(_) | E::SessionExhausted => "limitExceeded",
        _ => "invalidInput",
    };
    js_error(code, &e.to_string(), e.is_retryable())
}

fn invalid(message: impl AsRef<str>) -> JsValue {
    js_error("invalidInput", message.as_ref(), false)
}

type JsResult<T> = Result<T, JsValue>;

fn to_js<T: Serialize>(value: &T) -> JsResult<JsValue> {
    value
        .serialize(
            &serde_wasm_bindgen::Serializer::new().serialize_large_number_types_as_bigints(false),
        )
        .map_err(|e| invalid(e.to_string()))
}

fn address(text: &str) -> JsResult<sdk::DeviceAddress> {
    text.parse()
        .map_err(|e| invalid(format!("not a device address {text:?}: {e}")))
}

fn message_id(text: &str) -> JsResult<sdk::MessageId> {
    hex::decode(text)
        .ok()
        .and_then(|b| sdk::MessageId::from_slice(&b))
        .ok_or_else(|| invalid(format!("not a message id (32 hex digits): {text:?}")))
}

fn key32(bytes: &[u8]) -> JsResult<[u8; 32]> {
    bytes.try_into().map_err(|_| {
        invalid(format!(
            "the storage key must be 32 bytes, got {}",
            bytes.len()
        ))
    })
}

fn attachments(list: JsValue) -> JsResult<Vec<sdk::AttachmentPointer>> {
    if list.is_undefined() || list.is_null() {
        return Ok(Vec::new());
    }
    let list: Vec<Attachment> =
        serde_wasm_bindgen::from_value(list).map_err(|e| invalid(format!("attachments: {e}")))?;
    list.iter()
        .map(|a| a.to_pointer().map_err(invalid))
        .collect()
}

fn profile(store: IdbStore, relay_url: &str, send_url: Option<&str>) -> sdk::Profile {
    let durability = store.durability();
    // The logged-in calls and the anonymous sends each get their own
    // grpc-web client. A browser pools connections per host, so on the
    // same URL the relay could see a send arrive on the connection that
    // logged in; a second host name for the same relay (`sendUrl`) keeps
    // them apart (docs/bindings.md, "The web").
    sdk::Profile::new(store)
        .with_clock(PageClock)
        .with_transports(
            transport::grpc_web(relay_url, durability.clone()),
            transport::grpc_web(send_url.unwrap_or(relay_url), durability),
        )
}

/// A device profile in this browser, connected to a relay.
#[wasm_bindgen]
pub struct AlcoveClient {
    inner: Rc<sdk::Client>,
}

#[wasm_bindgen]
impl AlcoveClient {
    /// Creates a profile in the IndexedDB database `dbName`, protected by
    /// the 32-byte `storageKey`, and registers it with the relay at
    /// `relayUrl` under `name`. All or nothing: if it fails, the database
    /// is deleted and the call can be repeated. `sendUrl`, if given, is
    /// another host name of the same relay for the sends that carry no
    /// login (so that the browser does not send them on the logged-in
    /// connection).
    #[wasm_bindgen(js_name = create)]
    pub async fn create(
        #[wasm_bindgen(js_name = dbName)] db_name: String,
        #[wasm_bindgen(js_name = storageKey)] storage_key: Vec<u8>,
        #[wasm_bindgen(js_name = relayUrl)] relay_url: String,
        name: String,
        #[wasm_bindgen(js_name = sendUrl)] send_url: Option<String>,
    ) -> JsResult<AlcoveClient> {
        let key = key32(&storage_key)?;
        let store = IdbStore::open(&db_name).await.map_err(sdk_error)?;
        let fresh = sdk::ProfileStore::is_empty(&store).unwrap_or(false);
        let created = sdk::Client::create_with(
            profile(store, &relay_url, send_url.as_deref()),
            &key,
            &relay_url,
            &name,
        )
        .await;
        match created {
            Ok(client) => Ok(Self {
                inner: Rc::new(client),
            }),
            Err(e) => {
                if fresh {
                    let _ = IdbStore::delete(&db_name).await;
                }
                Err(sdk_error(e))
            }
        }
    }

    /// Opens the profile in `dbName`. A wrong key is `storageLocked`.
    #[wasm_bindgen(js_name = open)]
    pub async fn open(
        #[wasm_bindgen(js_name = dbName)] db_name: String,
        #[wasm_bindgen(js_name = storageKey)] storage_key: Vec<u8>,
        #[wasm_bindgen(js_name = relayUrl)] relay_url: String,
        #[wasm_bindgen(js_name = sendUrl)] send_url: Option<String>,
    ) -> JsResult<AlcoveClient> {
        let key = key32(&storage_key)?;
        let store = IdbStore::open(&db_name).await.map_err(sdk_error)?;
        let client = sdk::Client::open_with(profile(store, &relay_url, send_url.as_deref()), &key)
            .await
            .map_err(sdk_error)?;
        Ok(Self {
            inner: Rc::new(client),
        })
    }

    /// This device's address (base64url).
    #[wasm_bindgen(getter)]
    pub fn address(&self) -> String {
        self.inner.address().to_string()
    }

    /// An invite link for `uses` people, valid for `validSeconds`.
    #[wasm_bindgen(js_name = createInvite)]
    pub async fn create_invite(
        &self,
        #[wasm_bindgen(js_name = validSeconds)] valid_seconds: u32,
        uses: u32,
    ) -> JsResult<String> {
        self.inner
            .create_invite_for(Duration::from_secs(valid_seconds.into()), uses)
            .await
            .map_err(sdk_error)
    }

    /// Accepts an invite link; the inviter becomes a verified contact.
    #[wasm_bindgen(js_name = acceptInvite, unchecked_return_type = "Contact")]
    pub async fn accept_invite(&self, link: String) -> JsResult<JsValue> {
        let contact = self.inner.accept_invite(&link).await.map_err(sdk_error)?;
        to_js(&Contact::from(contact))
    }

    /// All contacts.
    #[wasm_bindgen(unchecked_return_type = "Contact[]")]
    pub async fn contacts(&self) -> JsResult<JsValue> {
        let list: Vec<Contact> = self
            .inner
            .contacts()
            .await
            .into_iter()
            .map(Contact::from)
            .collect();
        to_js(&list)
    }

    /// One contact.
    #[wasm_bindgen(unchecked_return_type = "Contact")]
    pub async fn contact(&self, address: String) -> JsResult<JsValue> {
        let contact = self
            .inner
            .contact(&self::address(&address)?)
            .await
            .map_err(sdk_error)?;
        to_js(&Contact::from(contact))
    }

    /// Names a contact on this device (an invite carries no name: the
    /// person accepting it names the inviter).
    #[wasm_bindgen(js_name = renameContact)]
    pub async fn rename_contact(&self, address: String, name: String) -> JsResult<()> {
        self.inner
            .rename_contact(&self::address(&address)?, &name)
            .await
            .map_err(sdk_error)
    }

    /// Records that the two people compared safety numbers and they match.
    #[wasm_bindgen(js_name = markVerified)]
    pub async fn mark_verified(&self, address: String) -> JsResult<()> {
        self.inner
            .mark_verified(&self::address(&address)?)
            .await
            .map_err(sdk_error)
    }

    /// Sends a text; returns its message id (hex).
    #[wasm_bindgen(js_name = sendText)]
    pub async fn send_text(&self, to: String, text: String) -> JsResult<String> {
        let id = self
            .inner
            .send_text(&address(&to)?, &text)
            .await
            .map_err(sdk_error)?;
        Ok(id.to_hex())
    }

    /// Encrypts `bytes` in the page and uploads the ciphertext (in
    /// resumable pieces); returns the attachment to send. `onProgress(done,
    /// total)` is called after each piece, if given.
    #[wasm_bindgen(js_name = uploadDocument, unchecked_return_type = "Attachment")]
    pub async fn upload_document(
        &self,
        bytes: Vec<u8>,
        #[wasm_bindgen(js_name = mediaType)] media_type: String,
        #[wasm_bindgen(js_name = fileName)] file_name: String,
        #[wasm_bindgen(
            js_name = onProgress,
            unchecked_param_type = "((done: number, total: number) => void) | undefined"
        )]
        on_progress: Option<js_sys::Function>,
    ) -> JsResult<JsValue> {
        let pointer = self
            .inner
            .upload_bytes(&bytes, &media_type, &file_name, |done, total| {
                if let Some(f) = &on_progress {
                    let _ = f.call2(
                        &JsValue::NULL,
                        &JsValue::from_f64(done as f64),
                        &JsValue::from_f64(total as f64),
                    );
                }
            })
            .await
            .map_err(sdk_error)?;
        to_js(&Attachment::from(&pointer))
    }

    /// Downloads, checks and decrypts a document; nothing is returned
    /// unless every byte matched the attachment's digest.
    #[wasm_bindgen(js_name = downloadDocument)]
    pub async fn download_document(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Attachment")] attachment: JsValue,
    ) -> JsResult<Vec<u8>> {
        let attachment: Attachment = serde_wasm_bindgen::from_value(attachment)
            .map_err(|e| invalid(format!("attachment: {e}")))?;
        let pointer = attachment.to_pointer().map_err(invalid)?;
        self.inner.download_bytes(&pointer).await.map_err(sdk_error)
    }

    /// Sends a document (an attachment from `uploadDocument`).
    #[wasm_bindgen(js_name = sendDocument)]
    pub async fn send_document(
        &self,
        to: String,
        #[wasm_bindgen(unchecked_param_type = "Attachment")] attachment: JsValue,
    ) -> JsResult<String> {
        let mut list = attachments(js_sys::Array::of1(&attachment).into())?;
        let pointer = list.pop().ok_or_else(|| invalid("no attachment"))?;
        let id = self
            .inner
            .send_attachment(&address(&to)?, pointer)
            .await
            .map_err(sdk_error)?;
        Ok(id.to_hex())
    }

    /// Assigns homework, with worksheets from `uploadDocument`; returns its
    /// message id (hex).
    #[wasm_bindgen(js_name = assignHomework)]
    pub async fn assign_homework(
        &self,
        to: String,
        title: String,
        instructions: String,
        #[wasm_bindgen(js_name = dueDate)] due_date: Option<String>,
        #[wasm_bindgen(unchecked_param_type = "Attachment[] | undefined")] worksheets: JsValue,
    ) -> JsResult<String> {
        let id = self
            .inner
            .assign_homework(
                &address(&to)?,
                &title,
                &instructions,
                due_date.as_deref(),
                attachments(worksheets)?,
            )
            .await
            .map_err(sdk_error)?;
        Ok(id.to_hex())
    }

    /// Hands in homework for `assignmentId` (hex).
    #[wasm_bindgen(js_name = submitHomework)]
    pub async fn submit_homework(
        &self,
        to: String,
        #[wasm_bindgen(js_name = assignmentId)] assignment_id: String,
        answer: String,
        #[wasm_bindgen(unchecked_param_type = "Attachment[] | undefined")] files: JsValue,
    ) -> JsResult<String> {
        let id = self
            .inner
            .submit_homework(
                &address(&to)?,
                &message_id(&assignment_id)?,
                &answer,
                attachments(files)?,
            )
            .await
            .map_err(sdk_error)?;
        Ok(id.to_hex())
    }

    /// Sends feedback on the message `refersTo` (hex).
    #[wasm_bindgen(js_name = sendFeedback)]
    pub async fn send_feedback(
        &self,
        to: String,
        #[wasm_bindgen(js_name = refersTo)] refers_to: String,
        text: String,
    ) -> JsResult<String> {
        let id = self
            .inner
            .send_feedback(&address(&to)?, &message_id(&refers_to)?, &text)
            .await
            .map_err(sdk_error)?;
        Ok(id.to_hex())
    }

    /// Tells the contact these messages (hex ids) were read.
    #[wasm_bindgen(js_name = sendReadReceipt)]
    pub async fn send_read_receipt(
        &self,
        to: String,
        #[wasm_bindgen(js_name = messageIds)] message_ids: Vec<String>,
    ) -> JsResult<String> {
        let ids = message_ids
            .iter()
            .map(|i| message_id(i))
            .collect::<JsResult<Vec<_>>>()?;
        let id = self
            .inner
            .send_read_receipt(&address(&to)?, &ids)
            .await
            .map_err(sdk_error)?;
        Ok(id.to_hex())
    }

    /// Fetches, decrypts and stores what waits; returns the new events.
    #[wasm_bindgen(unchecked_return_type = "AlcoveEvent[]")]
    pub async fn sync(&self) -> JsResult<JsValue> {
        let events: Vec<Event> = self
            .inner
            .sync()
            .await
            .map_err(sdk_error)?
            .into_iter()
            .map(Event::from)
            .collect();
        to_js(&events)
    }

    /// Events stored but not yet confirmed (after a reload, say).
    #[wasm_bindgen(js_name = pendingEvents, unchecked_return_type = "AlcoveEvent[]")]
    pub async fn pending_events(&self) -> JsResult<JsValue> {
        let events: Vec<Event> = self
            .inner
            .pending_events()
            .await
            .map_err(sdk_error)?
            .into_iter()
            .map(Event::from)
            .collect();
        to_js(&events)
    }

    /// The app has handled the event `eventId` (hex).
    pub async fn confirm(
        &self,
        #[wasm_bindgen(js_name = eventId)] event_id: String,
    ) -> JsResult<()> {
        let id: [u8; 16] = hex::decode(&event_id)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| invalid(format!("not an event id (32 hex digits): {event_id:?}")))?;
        self.inner
            .confirm_id(&sdk::EventId(id))
            .await
            .map_err(sdk_error)
    }

    /// The conversation with `address`, oldest first.
    #[wasm_bindgen(unchecked_return_type = "HistoryItem[]")]
    pub async fn history(&self, address: String) -> JsResult<JsValue> {
        let items: Vec<HistoryItem> = self
            .inner
            .history(&self::address(&address)?)
            .await
            .map_err(sdk_error)?
            .into_iter()
            .map(HistoryItem::from)
            .collect();
        to_js(&items)
    }

    /// Delivers live events to `onEvent` until the returned subscription is
    /// cancelled, or the stream ends: with an error, or because the relay
    /// closed it (a restart), which `onError` gets as a retryable `offline`
    /// error. Either way, subscribe again (and `sync()` to catch up). Each
    /// event is also stored: confirm it once handled.
    pub fn subscribe(
        &self,
        #[wasm_bindgen(js_name = onEvent, unchecked_param_type = "(event: AlcoveEvent) => void")]
        on_event: js_sys::Function,
        #[wasm_bindgen(js_name = onError, unchecked_param_type = "((error: AlcoveError) => void) | undefined")]
        on_error: Option<js_sys::Function>,
    ) -> Subscription {
        let client = self.inner.clone();
        let (handle, registration) = AbortHandle::new_pair();
        let live = async move {
            let events = client.events();
            let mut events = std::pin::pin!(events);
            let ended = loop {
                match events.next().await {
                    Some(Ok(event)) => {
                        if let Ok(value) = to_js(&Event::from(event)) {
                            let _ = on_event.call1(&JsValue::NULL, &value);
                        }
                    }
                    Some(Err(e)) => break sdk_error(e),
                    None => break js_error(
                        "offline",
                        "the relay closed the live stream (it may be restarting); subscribe again",
                        true,
                    ),
                }
            };
            if let Some(f) = &on_error {
                let _ = f.call1(&JsValue::NULL, &ended);
            }
        };
        wasm_bindgen_futures::spawn_local(async move {
            let _ = Abortable::new(live, registration).await;
        });
        Subscription { handle }
    }
}

/// Live events being delivered; `cancel()` stops them.
#[wasm_bindgen]
pub struct Subscription {
    handle: AbortHandle,
}

#[wasm_bindgen]
impl Subscription {
    /// Stops delivering events.
    pub fn cancel(&self) {
        self.handle.abort();
    }
}

/// A 32-byte storage key from a passphrase and a salt (at least 16 random
/// bytes, stored beside the profile): Argon2id, 19 MiB, two passes, as the
/// native SDK derives it (`alcove_client::storage_key_from_passphrase`).
/// For apps that ask for a passphrase instead of keeping a wrapped key;
/// docs/bindings.md, "The web".
#[wasm_bindgen(js_name = storageKeyFromPassphrase)]
pub fn storage_key_from_passphrase(passphrase: String, salt: Vec<u8>) -> JsResult<Vec<u8>> {
    let key = sdk::storage_key_from_passphrase(&passphrase, &salt).map_err(sdk_error)?;
    Ok(key.to_vec())
}

/// An invite link as a QR code: an SVG document (black on white, with a
/// quiet zone), for the other person's phone or laptop camera. The link
/// carries the inviter's keys: show it only to the person invited.
#[wasm_bindgen(js_name = qrSvg)]
pub fn qr_svg(link: String) -> JsResult<String> {
    let code = qrcode::QrCode::with_error_correction_level(link.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| invalid(format!("cannot draw this link as a QR code: {e}")))?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .build())
}

/// The known-answer conversation of `alcove_protocol::vectors`, from a
/// 32-byte seed: `[{ name, hex }]`. The Node test compares it with the
/// native build's `crates/alcove-protocol/tests/vectors/platform.json`.
#[wasm_bindgen(js_name = protocolVectors)]
pub fn protocol_vectors(seed: Vec<u8>) -> JsResult<JsValue> {
    let seed: [u8; 32] = seed
        .try_into()
        .map_err(|_| invalid("the seed must be 32 bytes"))?;
    #[derive(Serialize)]
    struct Named {
        name: &'static str,
        hex: String,
    }
    let vectors = alcove_protocol::vectors::conversation(&mut ChaCha20Rng::from_seed(seed))
        .map_err(invalid)?;
    let named: Vec<Named> = vectors
        .into_iter()
        .map(|(name, bytes)| Named {
            name,
            hex: hex::encode(bytes),
        })
        .collect();
    to_js(&named)
}

/// Encrypts and decrypts `messages` messages of `size` bytes on one
/// sending chain (an established session, no DH step between them) and
/// returns the milliseconds taken: the browser's ratchet rate, for
/// `docs/benchmarks.md`.
#[wasm_bindgen(js_name = benchSameChain)]
pub fn bench_same_chain(messages: u32, size: u32) -> JsResult<f64> {
    let started = js_sys::Date::now();
    alcove_protocol::vectors::same_chain(
        &mut ChaCha20Rng::from_seed([9; 32]),
        messages,
        size as usize,
    )
    .map_err(invalid)?;
    Ok(js_sys::Date::now() - started)
}
