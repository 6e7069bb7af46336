// IndexedDB for the Alcove SDK's profile store. The SDK hands in records
// that are already sealed (crate::vault): names are opaque and values are
// ciphertext, so nothing here ever sees a key, a contact or a message.
//
// One object store, "records", keyed by the record name as an ArrayBuffer
// (binary keys, ordered bytewise as the SDK expects). Every commit is one
// readwrite transaction with strict durability, created at once so that
// commits reach the disk in the order the SDK made them.

const STORE = "records";

function request(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

function buffer(bytes) {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
}

// One page at a time may hold a profile: two tabs writing the same records
// from two in-memory copies would fork its sessions. A Web Lock named
// after the database is held while the profile is open (released by
// idbClose, or when the tab goes away).
const releases = new Map();

async function lock(name) {
  if (!globalThis.navigator?.locks) {
    return null; // no Web Locks here (not a browser): nothing to share with
  }
  let release;
  const held = new Promise((resolve) => (release = resolve));
  const got = await new Promise((resolve) => {
    navigator.locks.request(`alcove-profile:${name}`, { ifAvailable: true }, (l) => {
      resolve(l !== null);
      return l === null ? undefined : held;
    });
  });
  if (!got) {
    throw new Error("this profile is open in another tab or window; close it there first");
  }
  return release;
}

export async function idbOpen(name) {
  const release = await lock(name);
  try {
    const open = indexedDB.open(name, 1);
    open.onupgradeneeded = () => open.result.createObjectStore(STORE);
    const db = await request(open);
    if (release) releases.set(db, release);
    return db;
  } catch (e) {
    release?.();
    throw e;
  }
}

// Every record, as a flat array [name0, value0, name1, value1, ...].
export async function idbLoadAll(db) {
  const tx = db.transaction(STORE, "readonly");
  const store = tx.objectStore(STORE);
  const [keys, values] = await Promise.all([
    request(store.getAllKeys()),
    request(store.getAll()),
  ]);
  const out = [];
  for (let i = 0; i < keys.length; i++) {
    out.push(new Uint8Array(keys[i]), new Uint8Array(values[i]));
  }
  return out;
}

// puts: [name0, value0, ...]; removes: [name, ...]. Resolves once the
// transaction is durable, rejects if it failed (quota, say).
export function idbCommit(db, puts, removes) {
  const tx = db.transaction(STORE, "readwrite", { durability: "strict" });
  const store = tx.objectStore(STORE);
  for (let i = 0; i + 1 < puts.length; i += 2) {
    store.put(buffer(puts[i + 1]), buffer(puts[i]));
  }
  for (const name of removes) {
    store.delete(buffer(name));
  }
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new Error("IndexedDB transaction aborted"));
  });
}

export function idbClose(db) {
  db.close();
  releases.get(db)?.();
  releases.delete(db);
}

export function idbDelete(name) {
  return request(indexedDB.deleteDatabase(name));
}
