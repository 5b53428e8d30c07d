//! The connection table: tracked connections keyed by (protocol, client address:port, virtual
//! address:port), their states, and their expiry.
//!
//! **Layout.** Entries are packed 60-byte records (addresses stored as 16 bytes, IPv4 mapped)
//! in fixed chunks of [`CHUNK`] entries, found through a hash index of 8-byte buckets keyed
//! by a seeded 64-bit hash of the key. Per tracked connection that is 60 bytes + 9–18 bytes of
//! index (+ at most one partly used chunk), IPv4 and IPv6 alike; see [`ConnTable::memory_bytes`].
//!
//! **Expiry.** A hashed timer wheel of [`WHEEL`] one-second slots; each entry sits on the
//! doubly linked list of one slot. A packet that pushes the deadline later only rewrites the
//! deadline (the entry is moved when its slot comes round); one that brings it earlier (e.g.
//! ESTABLISHED → CLOSE) relinks it at once. [`ConnTable::expire`] visits only the slots of the
//! seconds that passed. Deadlines are kept in whole seconds, rounded up: an entry is reported
//! expired up to one second late, never early.
//!
//! **Accounting.** Every call that changes whether a connection is active reports it (real,
//! service, before/after), so the caller can feed `ServiceRuntime::conn_changed` /
//! `conn_closed`.

use super::entry::*;
use super::index::HashIndex;
use super::state::{ConnState, ConnTimeouts, PacketEvent};
use super::tcp::Direction;
use crate::model::Protocol;
use crate::runtime::RealId;
use crate::time::Timestamp;
use std::net::SocketAddr;

/// Entries per allocation chunk.
pub const CHUNK: usize = 4096;
/// Slots of the timer wheel (one second each).
pub const WHEEL: usize = 1024;
/// Most entries a table holds (entry numbers are 31-bit).
pub const MAX_ENTRIES: usize = (1 << 31) - 1;

/// What identifies a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnKey {
    pub protocol: Protocol,
    /// Client address and port.
    pub client: SocketAddr,
    /// Virtual address and port the client connected to.
    pub vaddr: SocketAddr,
}

/// What the caller decided for a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NewConn {
    /// The caller's number for the service (e.g. an index into its services).
    pub service: u32,
    /// The real it goes to.
    pub real: RealId,
    /// Opened through a persistence template.
    pub persistent: bool,
}

/// A tracked connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnView {
    pub key: ConnKey,
    pub service: u32,
    pub real: RealId,
    pub persistent: bool,
    pub state: ConnState,
    /// When it expires unless more traffic comes (whole seconds, rounded up).
    pub expires: Timestamp,
}

/// A connection that changed between active and inactive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivityChange {
    pub service: u32,
    pub real: RealId,
    pub was_active: bool,
    pub is_active: bool,
}

/// A connection that left the table (expired or removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed {
    pub key: ConnKey,
    pub service: u32,
    pub real: RealId,
    pub persistent: bool,
    /// It was active when it went.
    pub was_active: bool,
}

/// Why an insert was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnError {
    #[error("connection {0:?} is already tracked")]
    Exists(ConnKey),
    #[error("connection table full ({MAX_ENTRIES} entries)")]
    Full,
}

fn secs_up(t: Timestamp) -> u32 {
    t.as_millis().div_ceil(1000).min(u64::from(u32::MAX)) as u32
}

fn secs_down(t: Timestamp) -> u32 {
    (t.as_millis() / 1000).min(u64::from(u32::MAX)) as u32
}

/// The connection table (see the module docs).
#[derive(Debug, Clone)]
pub struct ConnTable {
    seed: u64,
    timeouts: ConnTimeouts,
    index: HashIndex,
    chunks: Vec<Vec<Entry>>,
    /// Free entry numbers, linked through `next`.
    free: u32,
    wheel: Vec<u32>,
    /// Last second [`ConnTable::expire`] processed.
    last_tick: Option<u32>,
}

impl ConnTable {
    /// An empty table. `seed` keys the hash (pick it at random per process so clients cannot
    /// aim collisions at it).
    pub fn new(timeouts: ConnTimeouts, seed: u64) -> Self {
        Self::with_capacity(timeouts, seed, 0)
    }

    /// An empty table whose index holds `cap` entries without growing.
    pub fn with_capacity(timeouts: ConnTimeouts, seed: u64, cap: usize) -> Self {
        ConnTable {
            seed,
            timeouts,
            index: HashIndex::with_capacity(cap.min(MAX_ENTRIES)),
            chunks: Vec::new(),
            free: NIL,
            wheel: vec![NIL; WHEEL],
            last_tick: None,
        }
    }

    /// Change the timeouts; they apply from each connection's next packet.
    pub fn set_timeouts(&mut self, timeouts: ConnTimeouts) {
        self.timeouts = timeouts;
    }

    /// The timeouts in force.
    pub fn timeouts(&self) -> &ConnTimeouts {
        &self.timeouts
    }

    /// Tracked connections.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// No tracked connections.
    pub fn is_empty(&self) -> bool {
        self.index.len() == 0
    }

    /// Bytes allocated by the table, by capacity: entry chunks, index buckets, wheel heads.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.chunks.capacity() * std::mem::size_of::<Vec<Entry>>()
            + self.chunks.iter().map(|c| c.capacity()).sum::<usize>() * std::mem::size_of::<Entry>()
            + self.index.memory_bytes()
            + self.wheel.capacity() * std::mem::size_of::<u32>()
    }

    /// Size of one packed entry.
    pub const ENTRY_BYTES: usize = std::mem::size_of::<Entry>();

    fn e(&self, i: u32) -> &Entry {
        &self.chunks[i as usize / CHUNK][i as usize % CHUNK]
    }

    fn e_mut(&mut self, i: u32) -> &mut Entry {
        &mut self.chunks[i as usize / CHUNK][i as usize % CHUNK]
    }

    fn find(&self, k: &ConnKey) -> Option<(usize, u32, Packed)> {
        let p = Packed::of(k);
        let hash = p.hash(self.seed);
        self.index
            .find(hash, |i| p.matches(self.e(i)))
            .map(|(pos, i)| (pos, i, p))
    }

    fn view(&self, i: u32) -> ConnView {
        let e = self.e(i);
        let key = ConnKey {
            protocol: proto_from(e.proto),
            client: SocketAddr::new(ip_from(e.client, e.flags & F_CLIENT_V6 != 0), e.cport),
            vaddr: SocketAddr::new(ip_from(e.vaddr, e.flags & F_VADDR_V6 != 0), e.vport),
        };
        ConnView {
            key,
            service: e.service,
            real: RealId(e.real),
            persistent: e.flags & F_PERSISTENT != 0,
            state: self.state_of(e),
            expires: Timestamp::from_secs(u64::from(e.expires)),
        }
    }

    fn state_of(&self, e: &Entry) -> ConnState {
        ConnState::from_code(e.state).unwrap_or(ConnState::initial(proto_from(e.proto)))
    }

    /// Start tracking a connection, in its protocol's initial state (TCP NONE: inactive).
    pub fn insert(
        &mut self,
        key: ConnKey,
        conn: NewConn,
        now: Timestamp,
    ) -> Result<ConnView, ConnError> {
        if self.find(&key).is_some() {
            return Err(ConnError::Exists(key));
        }
        if self.len() >= MAX_ENTRIES {
            return Err(ConnError::Full);
        }
        let p = Packed::of(&key);
        let state = ConnState::initial(key.protocol);
        let entry = Entry {
            client: p.client,
            vaddr: p.vaddr,
            cport: p.cport,
            vport: p.vport,
            service: conn.service,
            real: conn.real.0,
            expires: secs_up(now + self.timeouts.timeout(state)),
            prev: NIL,
            next: NIL,
            proto: p.proto,
            state: state.code(),
            flags: p.v6 | F_LIVE | if conn.persistent { F_PERSISTENT } else { 0 },
        };
        let i = self.alloc(entry);
        self.index.insert(p.hash(self.seed), i);
        self.link(i);
        Ok(self.view(i))
    }

    /// The connection with this key, if tracked.
    pub fn get(&self, key: &ConnKey) -> Option<ConnView> {
        self.find(key).map(|(_, i, _)| self.view(i))
    }

    /// A packet of a tracked connection: advance its state, restart its timeout. Returns the
    /// new view and, if it changed between active and inactive, the change; `None` if the
    /// connection is not tracked.
    pub fn packet(
        &mut self,
        key: &ConnKey,
        dir: Direction,
        ev: PacketEvent,
        now: Timestamp,
    ) -> Option<(ConnView, Option<ActivityChange>)> {
        let (_, i, _) = self.find(key)?;
        let old = self.state_of(self.e(i));
        let new = old.next(dir, ev);
        let expires = secs_up(now + self.timeouts.timeout(new));
        let e = self.e_mut(i);
        e.state = new.code();
        let earlier = expires < e.expires;
        e.expires = expires;
        if earlier {
            self.unlink(i);
            self.link(i);
        }
        let change = (old.is_active() != new.is_active()).then(|| ActivityChange {
            service: self.e(i).service,
            real: RealId(self.e(i).real),
            was_active: old.is_active(),
            is_active: new.is_active(),
        });
        Some((self.view(i), change))
    }

    /// Stop tracking a connection now.
    pub fn remove(&mut self, key: &ConnKey) -> Option<Closed> {
        let (pos, i, _) = self.find(key)?;
        self.index.remove_at(pos);
        Some(self.release(i))
    }

    /// Drop every connection whose deadline is at or before `now`, appending each to `out`.
    /// Visits only the wheel slots of the seconds since the last call (at most [`WHEEL`]).
    pub fn expire(&mut self, now: Timestamp, out: &mut Vec<Closed>) {
        let now_s = secs_down(now);
        let first = match self.last_tick {
            Some(t) if t >= now_s => return,
            Some(t) => t + 1,
            None => now_s.saturating_sub(WHEEL as u32 - 1),
        };
        let ticks = (now_s - first).min(WHEEL as u32 - 1);
        for tick in (now_s - ticks)..=now_s {
            self.sweep_slot(tick as usize % WHEEL, now_s, out);
        }
        self.last_tick = Some(now_s);
    }

    fn sweep_slot(&mut self, slot: usize, now_s: u32, out: &mut Vec<Closed>) {
        let mut i = self.wheel[slot];
        while i != NIL {
            let (next, expires) = (self.e(i).next, self.e(i).expires);
            if expires <= now_s {
                let p = self.packed_of(i);
                let (pos, _) = self
                    .index
                    .find(p.hash(self.seed), |j| j == i)
                    .expect("indexed");
                self.index.remove_at(pos);
                out.push(self.release(i));
            } else if expires as usize % WHEEL != slot {
                self.unlink(i);
                self.link(i);
            }
            i = next;
        }
    }

    fn packed_of(&self, i: u32) -> Packed {
        let e = self.e(i);
        let v6 = e.flags & (F_CLIENT_V6 | F_VADDR_V6);
        Packed {
            client: e.client,
            vaddr: e.vaddr,
            cport: e.cport,
            vport: e.vport,
            proto: e.proto,
            v6,
        }
    }

    /// Every tracked connection (in storage order).
    pub fn iter(&self) -> impl Iterator<Item = ConnView> + '_ {
        let n = (self.chunks.len() * CHUNK) as u32;
        (0..n)
            .filter(|&i| (i as usize % CHUNK) < self.chunks[i as usize / CHUNK].len())
            .filter(|&i| self.e(i).flags & F_LIVE != 0)
            .map(|i| self.view(i))
    }

    fn alloc(&mut self, entry: Entry) -> u32 {
        if self.free != NIL {
            let i = self.free;
            self.free = self.e(i).next;
            *self.e_mut(i) = entry;
            return i;
        }
        if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        let n = self.chunks.len() - 1;
        self.chunks[n].push(entry);
        (n * CHUNK + self.chunks[n].len() - 1) as u32
    }

    /// Unlink from the wheel, report, and put on the free list (already out of the index).
    fn release(&mut self, i: u32) -> Closed {
        self.unlink(i);
        let v = self.view(i);
        let free = self.free;
        *self.e_mut(i) = Entry {
            next: free,
            ..BLANK
        };
        self.free = i;
        Closed {
            key: v.key,
            service: v.service,
            real: v.real,
            persistent: v.persistent,
            was_active: v.state.is_active(),
        }
    }

    /// Put entry `i` on the list of the slot of its deadline (or of the next second to be
    /// swept, if its deadline is already behind the sweep).
    fn link(&mut self, i: u32) {
        let at = match self.last_tick {
            Some(t) => self.e(i).expires.max(t.saturating_add(1)),
            None => self.e(i).expires,
        };
        let slot = at as usize % WHEEL;
        let head = self.wheel[slot];
        if head != NIL {
            self.e_mut(head).prev = i;
        }
        let e = self.e_mut(i);
        e.prev = HEAD | slot as u32;
        e.next = head;
        self.wheel[slot] = i;
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = (self.e(i).prev, self.e(i).next);
        if prev == NIL {
            return;
        }
        if prev & HEAD != 0 {
            self.wheel[(prev & !HEAD) as usize] = next;
        } else {
            self.e_mut(prev).next = next;
        }
        if next != NIL {
            self.e_mut(next).prev = prev;
        }
        let e = self.e_mut(i);
        e.prev = NIL;
        e.next = NIL;
    }
}
