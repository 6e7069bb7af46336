//! The profile store in IndexedDB.
//!
//! The SDK's store seam is synchronous and IndexedDB is not, so the store
//! keeps every record in memory (loaded once when the profile opens; a
//! profile is small) and writes each commit to IndexedDB as one
//! transaction, started at once. IndexedDB runs transactions on one object
//! store in the order they were made, so the disk sees commits in the SDK's
//! order, each whole or not at all.
//!
//! The SDK's rule is that nothing reaches the network before the commit it
//! depends on is durable (a message is acknowledged to the relay only once
//! stored; a ratchet step is stored before its message leaves). Here that
//! rule is kept by [`Durability`]: the grpc-web transport waits for every
//! commit made so far to complete before it sends any request. If one
//! fails (the browser's storage quota, say), every later request fails
//! with that error and nothing more leaves the page: the profile must be
//! reopened.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use alcove_client::{Error, ProfileStore, StoredRecord};
use js_sys::{Array, Promise, Uint8Array};
use send_wrapper::SendWrapper;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen(module = "/js/idb.js")]
extern "C" {
    #[wasm_bindgen(js_name = idbOpen)]
    fn idb_open(name: &str) -> Promise;
    #[wasm_bindgen(js_name = idbLoadAll)]
    fn idb_load_all(db: &JsValue) -> Promise;
    #[wasm_bindgen(js_name = idbCommit, catch)]
    fn idb_commit(db: &JsValue, puts: &Array, removes: &Array) -> Result<Promise, JsValue>;
    #[wasm_bindgen(js_name = idbClose)]
    fn idb_close(db: &JsValue);
    #[wasm_bindgen(js_name = idbDelete)]
    fn idb_delete(name: &str) -> Promise;
}

/// A JavaScript error as text.
pub(crate) fn js_text(e: &JsValue) -> String {
    e.as_string()
        .or_else(|| {
            js_sys::Reflect::get(e, &JsValue::from_str("message"))
                .ok()
                .and_then(|m| m.as_string())
        })
        .unwrap_or_else(|| format!("{e:?}"))
}

/// Commits not yet known to be durable (numbered in the order made), and
/// the first failure.
#[derive(Default)]
struct Writes {
    pending: std::collections::VecDeque<(u64, Promise)>,
    next: u64,
    failed: Option<String>,
}

/// The barrier between the store and the network (see the module docs).
#[derive(Clone)]
pub struct Durability(SendWrapper<Rc<RefCell<Writes>>>);

impl Default for Durability {
    fn default() -> Self {
        Self(SendWrapper::new(Rc::default()))
    }
}

impl Durability {
    fn push(&self, commit: Promise) {
        let mut w = self.0.borrow_mut();
        let n = w.next;
        w.next += 1;
        w.pending.push_back((n, commit));
    }

    fn fail(&self, reason: String) {
        let mut w = self.0.borrow_mut();
        if w.failed.is_none() {
            w.failed = Some(reason);
        }
    }

    /// Waits until every commit made so far is durable; an error if any
    /// failed.
    /// Several callers may wait at once; each waits for all commits made
    /// before it asked, not only for those no one else is waiting on.
    pub async fn settled(&self) -> Result<(), String> {
        let (through, all) = {
            let w = self.0.borrow();
            if let Some(f) = &w.failed {
                return Err(f.clone());
            }
            let Some((last, _)) = w.pending.back() else {
                return Ok(());
            };
            let all: Array = w.pending.iter().map(|(_, p)| JsValue::from(p)).collect();
            (*last, all)
        };
        match JsFuture::from(Promise::all(&all)).await {
            Ok(_) => {
                let mut w = self.0.borrow_mut();
                while w.pending.front().is_some_and(|(n, _)| *n <= through) {
                    w.pending.pop_front();
                }
            }
            Err(e) => self.fail(format!(
                "the browser's storage refused a write ({}); reopen the profile",
                js_text(&e)
            )),
        }
        match &self.0.borrow().failed {
            Some(f) => Err(f.clone()),
            None => Ok(()),
        }
    }
}

/// A profile's records in an IndexedDB database of their own.
pub struct IdbStore {
    inner: SendWrapper<Inner>,
    durability: Durability,
}

struct Inner {
    db: JsValue,
    records: RefCell<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl IdbStore {
    /// Opens (or creates) the database `name` and loads its records.
    pub async fn open(name: &str) -> Result<Self, Error> {
        let storage = |e: JsValue| Error::Storage(format!("IndexedDB {name:?}: {}", js_text(&e)));
        let db = JsFuture::from(idb_open(name)).await.map_err(storage)?;
        let flat = Array::from(&JsFuture::from(idb_load_all(&db)).await.map_err(storage)?);
        let mut records = BTreeMap::new();
        let mut i = 0;
        while i + 1 < flat.length() {
            let name = Uint8Array::new(&flat.get(i)).to_vec();
            let value = Uint8Array::new(&flat.get(i + 1)).to_vec();
            records.insert(name, value);
            i += 2;
        }
        Ok(Self {
            inner: SendWrapper::new(Inner {
                db,
                records: RefCell::new(records),
            }),
            durability: Durability::default(),
        })
    }

    /// The barrier the transport waits on.
    pub fn durability(&self) -> Durability {
        self.durability.clone()
    }

    /// Deletes the database `name` (a profile whose creation failed).
    pub async fn delete(name: &str) -> Result<(), Error> {
        JsFuture::from(idb_delete(name))
            .await
            .map(|_| ())
            .map_err(|e| Error::Storage(js_text(&e)))
    }
}

impl Drop for IdbStore {
    fn drop(&mut self) {
        if self.inner.valid() {
            idb_close(&self.inner.db);
        }
    }
}

impl ProfileStore for IdbStore {
    fn get(&self, name: &[u8]) -> alcove_client::Result<Option<Vec<u8>>> {
        Ok(self.inner.records.borrow().get(name).cloned())
    }

    fn scan_prefix(&self, prefix: &[u8]) -> alcove_client::Result<Vec<StoredRecord>> {
        Ok(self
            .inner
            .records
            .borrow()
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn is_empty(&self) -> alcove_client::Result<bool> {
        Ok(self.inner.records.borrow().is_empty())
    }

    fn commit(&self, puts: &[StoredRecord], removes: &[Vec<u8>]) -> alcove_client::Result<()> {
        let put_list = Array::new();
        for (name, value) in puts {
            put_list.push(&Uint8Array::from(name.as_slice()));
            put_list.push(&Uint8Array::from(value.as_slice()));
        }
        let remove_list = Array::new();
        for name in removes {
            remove_list.push(&Uint8Array::from(name.as_slice()));
        }
        // Started before memory changes: if IndexedDB refuses to start the
        // transaction, nothing changed anywhere.
        let commit = idb_commit(&self.inner.db, &put_list, &remove_list)
            .map_err(|e| Error::Storage(format!("IndexedDB: {}", js_text(&e))))?;
        self.durability.push(commit);
        let mut records = self.inner.records.borrow_mut();
        for (name, value) in puts {
            records.insert(name.clone(), value.clone());
        }
        for name in removes {
            records.remove(name);
        }
        Ok(())
    }
}
