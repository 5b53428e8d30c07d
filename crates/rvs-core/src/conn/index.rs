//! A compact open-addressing index from a 64-bit key hash to a `u32` entry number.
//!
//! Each bucket is one `u64`: the high 32 bits of the key's hash (the *tag*) and the entry
//! number. The home bucket of a key is `tag & mask`, so the index can be resized and entries
//! moved without rehashing the keys; comparing tags first means a probe touches the entry
//! itself (a likely cache miss) only when the tags match. Linear probing, at most 7/8 full,
//! deletion by backward shift (no tombstones). 8 bytes per bucket: 9.1–18.3 bytes per entry.

/// Empty bucket marker (no entry has number `u32::MAX`).
const EMPTY: u64 = u64::MAX;

/// The index (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct HashIndex {
    buckets: Vec<u64>,
    len: usize,
}

fn tag_of(hash: u64) -> u32 {
    (hash >> 32) as u32
}

impl HashIndex {
    /// An index able to hold `cap` entries without growing.
    pub(crate) fn with_capacity(cap: usize) -> Self {
        let buckets = (cap.saturating_mul(8) / 7 + 1).next_power_of_two().max(16);
        HashIndex {
            buckets: vec![EMPTY; buckets],
            len: 0,
        }
    }

    fn mask(&self) -> usize {
        self.buckets.len() - 1
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes allocated.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<u64>()
    }

    /// The bucket position and entry number of the entry with `hash` for which `is_key`
    /// holds.
    pub(crate) fn find(
        &self,
        hash: u64,
        mut is_key: impl FnMut(u32) -> bool,
    ) -> Option<(usize, u32)> {
        let tag = tag_of(hash);
        let mask = self.mask();
        let mut pos = tag as usize & mask;
        loop {
            let b = self.buckets[pos];
            if b == EMPTY {
                return None;
            }
            if tag_of(b) == tag && is_key(b as u32) {
                return Some((pos, b as u32));
            }
            pos = (pos + 1) & mask;
        }
    }

    /// Add entry `idx` with `hash` (the caller has checked the key is not present).
    pub(crate) fn insert(&mut self, hash: u64, idx: u32) {
        if (self.len + 1) * 8 > self.buckets.len() * 7 {
            self.grow();
        }
        self.place(u64::from(tag_of(hash)) << 32 | u64::from(idx));
        self.len += 1;
    }

    fn place(&mut self, bucket: u64) {
        let mask = self.mask();
        let mut pos = (bucket >> 32) as usize & mask;
        while self.buckets[pos] != EMPTY {
            pos = (pos + 1) & mask;
        }
        self.buckets[pos] = bucket;
    }

    fn grow(&mut self) {
        let doubled = vec![EMPTY; self.buckets.len() * 2];
        let old = std::mem::replace(&mut self.buckets, doubled);
        for b in old.into_iter().filter(|&b| b != EMPTY) {
            self.place(b);
        }
    }

    /// Remove the entry at bucket `pos` (as returned by [`HashIndex::find`]).
    pub(crate) fn remove_at(&mut self, mut pos: usize) {
        let mask = self.mask();
        let mut next = (pos + 1) & mask;
        // Backward shift: pull later entries of the probe run into the hole when their home
        // bucket is not between the hole and their current position.
        while self.buckets[next] != EMPTY {
            let home = (self.buckets[next] >> 32) as usize & mask;
            if (next.wrapping_sub(home) & mask) >= (next.wrapping_sub(pos) & mask) {
                self.buckets[pos] = self.buckets[next];
                pos = next;
            }
            next = (next + 1) & mask;
        }
        self.buckets[pos] = EMPTY;
        self.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A deliberately clustering hash: many keys share a home bucket.
    fn h(k: u32) -> u64 {
        (u64::from(k % 7) << 40) | u64::from(k)
    }

    #[test]
    fn insert_find_remove_against_a_model() {
        let mut ix = HashIndex::with_capacity(4);
        let mut model: HashMap<u32, u32> = HashMap::new(); // key → entry number
        let mut x = 12345u32;
        for step in 0..20_000u32 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let key = (x >> 8) % 500;
            // Entries are numbered by key here, so `is_key` compares numbers.
            match ix.find(h(key), |e| e == key) {
                Some((pos, e)) => {
                    assert_eq!(model.get(&key), Some(&e));
                    if step % 3 != 0 {
                        ix.remove_at(pos);
                        model.remove(&key);
                    }
                }
                None => {
                    assert!(!model.contains_key(&key), "lost key {key}");
                    ix.insert(h(key), key);
                    model.insert(key, key);
                }
            }
            assert_eq!(ix.len(), model.len());
        }
        for k in 0..500 {
            assert_eq!(ix.find(h(k), |e| e == k).is_some(), model.contains_key(&k));
        }
    }

    #[test]
    fn grows_and_reports_memory() {
        let mut ix = HashIndex::with_capacity(0);
        assert_eq!(ix.memory_bytes(), 16 * 8);
        for k in 0..1000 {
            ix.insert(u64::from(k).wrapping_mul(0x9e37_79b9_7f4a_7c15), k);
        }
        assert_eq!(ix.len(), 1000);
        assert_eq!(ix.memory_bytes(), 2048 * 8);
        for k in 0..1000 {
            assert!(
                ix.find(u64::from(k).wrapping_mul(0x9e37_79b9_7f4a_7c15), |e| e == k)
                    .is_some()
            );
        }
    }
}
