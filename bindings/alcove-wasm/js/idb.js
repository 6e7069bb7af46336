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

export function idbOpen(name) {
  const open = indexedDB.open(name, 1);
  open.onupgradeneeded = () => open.result.createObjectStore(STORE);
  return request(open);
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
}

export function idbDelete(name) {
  return request(indexedDB.deleteDatabase(name));
}
