//! A slot vector with a free list: insert returns an index, removal by that index is O(1), no
//! per-entry map node. Used by the per-worker connection tables ([`crate::track`]) and the
//! per-real stop registries ([`crate::stop`]), each behind its own mutex ([`Locked`]).

use std::sync::{Mutex, MutexGuard};

/// [`Slots`] behind a mutex; a panic while it was held does not make it unusable.
#[derive(Debug)]
pub struct Locked<T>(Mutex<Slots<T>>);

impl<T> Default for Locked<T> {
    fn default() -> Self {
        Locked(Mutex::new(Slots::default()))
    }
}

impl<T> Locked<T> {
    pub fn lock(&self) -> MutexGuard<'_, Slots<T>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Entries by slot index; freed slots are reused.
#[derive(Debug)]
pub struct Slots<T> {
    entries: Vec<Option<T>>,
    free: Vec<usize>,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots {
            entries: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slots<T> {
    /// Stores `v` in a free slot (or a new one) and returns its index.
    pub fn insert(&mut self, v: T) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.entries[i] = Some(v);
                i
            }
            None => {
                self.entries.push(Some(v));
                self.entries.len() - 1
            }
        }
    }

    /// Empties `slot` (an index [`insert`](Self::insert) returned) for reuse.
    pub fn remove(&mut self, slot: usize) {
        if let Some(e) = self.entries.get_mut(slot)
            && e.take().is_some()
        {
            self.free.push(slot);
        }
    }

    /// The stored entries.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.entries.iter().flatten()
    }

    /// Number of stored entries.
    pub fn len(&self) -> usize {
        self.entries.len() - self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_slots_are_reused_and_a_double_remove_frees_once() {
        let mut s = Slots::default();
        let (a, b) = (s.insert('a'), s.insert('b'));
        s.remove(a);
        s.remove(a);
        assert_eq!(s.len(), 1);
        assert_eq!(s.insert('c'), a);
        assert_eq!(s.insert('d'), 2, "only one free slot");
        let mut got: Vec<char> = s.iter().copied().collect();
        got.sort();
        assert_eq!(got, vec!['b', 'c', 'd']);
        s.remove(b);
        assert_eq!(s.len(), 2);
    }
}
