//! Whole-map reads and bulk deletes of the balancer's hash maps with `BPF_MAP_LOOKUP_BATCH` and
//! `BPF_MAP_DELETE_BATCH` (Linux ≥ 5.6 for hash and LRU hash maps): one bpf() call per
//! [`CHUNK`] entries where aya's `HashMap::iter` makes two per entry (get_next_key, lookup) and
//! `HashMap::remove` one per entry. aya 0.14 has no batch API, so this module calls bpf()
//! itself; it is the crate's only such code.
//!
//! A kernel without the batch commands (EINVAL) or a map without them (ENOTSUPP) answers
//! `Ok(None)`: the caller ([`crate::balancer`]) falls back to aya's per-entry calls; the first
//! refusal is logged once per process. Other failures are the bpf() errno as an aya
//! [`MapError::SyscallError`].

use aya::Pod;
use aya::maps::{MapData, MapError, MapType};
use aya::sys::SyscallError;
use std::mem::{offset_of, size_of};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// `enum bpf_cmd` values (include/uapi/linux/bpf.h).
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_MAP_DELETE_BATCH: libc::c_long = 27;
/// The kernel-internal ENOTSUPP that bpf() returns for a map type without batch operations.
const ENOTSUPP: i32 = 524;
/// Entries asked for per lookup call (and keys per delete call). Small, and the reading
/// thread yields its CPU after each lookup call ([`read_slice`]): the kernel copies a lookup
/// batch without a rescheduling point, so on a kernel without preemption
/// (`CONFIG_PREEMPT_NONE`, common on servers) a sweep of 4,096-entry calls ran 2–6 ms at a
/// stretch and every other task on that CPU waited (see docs/xdp.md, "The sweep works in
/// slices").
pub(crate) const CHUNK: usize = 512;
/// Largest lookup buffer (entries) tried when one hash bucket does not fit (ENOSPC).
const MAX_CHUNK: usize = 1 << 20;

/// The `batch` member of `union bpf_attr` (include/uapi/linux/bpf.h), fields in the kernel's
/// order and sizes. The kernel zero-fills the rest of the union (we pass this struct's size).
#[repr(C)]
#[derive(Debug, Default)]
struct BatchAttr {
    /// Where the kernel resumes (opaque token; 0 = NULL = from the start).
    in_batch: u64,
    /// Where the kernel writes the token to resume from.
    out_batch: u64,
    keys: u64,
    values: u64,
    /// In: room in `keys`/`values` (entries). Out: entries read or deleted.
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

const _: () = {
    assert!(size_of::<BatchAttr>() == 56);
    assert!(offset_of!(BatchAttr, count) == 32);
    assert!(offset_of!(BatchAttr, map_fd) == 36);
    assert!(offset_of!(BatchAttr, elem_flags) == 40);
    assert!(offset_of!(BatchAttr, flags) == 48);
};

/// Whether a refusal was logged already.
static REFUSAL_LOGGED: AtomicBool = AtomicBool::new(false);

/// Resume token: the hash map's is a u32 bucket index; 8 bytes leave room.
pub(crate) type Token = u64;

/// One batch command; the errno on failure.
fn bpf(cmd: libc::c_long, attr: &mut BatchAttr) -> Result<(), i32> {
    // SAFETY: `attr` is a fully initialised `bpf_attr.batch` of the size passed. The buffers it
    // points at belong to the caller, are alive for the call, and hold `count` keys (and
    // values) of the map's key and value sizes (checked by `check_layout` before any call).
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr),
            size_of::<BatchAttr>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(())
    }
}

/// The kernel or map has no batch commands.
fn refused(errno: i32) -> bool {
    matches!(errno, libc::EINVAL | libc::EOPNOTSUPP | ENOTSUPP)
}

fn note_refusal(call: &str, errno: i32) {
    if !REFUSAL_LOGGED.swap(true, Ordering::Relaxed) {
        log::info!(
            "xdp: the kernel refuses {call} ({}); reading and deleting map entries one by one",
            std::io::Error::from_raw_os_error(errno)
        );
    }
}

fn syscall_error(call: &'static str, errno: i32) -> MapError {
    MapError::SyscallError(SyscallError {
        call,
        io_error: std::io::Error::from_raw_os_error(errno),
    })
}

/// The map is a (non per-CPU) hash or LRU hash map whose key is a `K` and value a `V`, as the
/// kernel created it: the batch buffers are laid out with these sizes.
fn check_layout<K, V>(map: &MapData, value_size: Option<usize>) -> Result<(), MapError> {
    let info = map.info()?;
    let map_type = info.map_type()?;
    if !matches!(map_type, MapType::Hash | MapType::LruHash) {
        return Err(MapError::InvalidMapType {
            map_type: map_type as u32,
        });
    }
    let expected = info.key_size() as usize;
    if size_of::<K>() != expected {
        return Err(MapError::InvalidKeySize {
            size: size_of::<K>(),
            expected,
        });
    }
    let expected = info.value_size() as usize;
    if value_size.is_some_and(|size| size != expected) {
        return Err(MapError::InvalidValueSize {
            size: size_of::<V>(),
            expected,
        });
    }
    Ok(())
}

/// Every entry of `map` (a snapshot as consistent as the kernel's bucket-by-bucket walk), or
/// `None` when the kernel has no `BPF_MAP_LOOKUP_BATCH`.
#[cfg(test)]
fn read_all<K: Pod, V: Pod>(map: &MapData) -> Result<Option<Vec<(K, V)>>, MapError> {
    Ok(read_slice(map, None, usize::MAX, CHUNK)?.map(|s| s.entries))
}

/// Entries of a hash map read in the kernel's bucket order, from a resume token on.
#[derive(Debug)]
pub(crate) struct Slice<K, V> {
    pub entries: Vec<(K, V)>,
    /// Where the next slice starts; `None` when this one reached the map's end.
    pub next: Option<Token>,
}

/// At most `budget` entries of `map` from bucket `from` on (`None` = the map's start), asking
/// for `chunk` entries per call at first; `None` when the kernel has no
/// `BPF_MAP_LOOKUP_BATCH`. The kernel never splits a bucket: a slice ends before a bucket that
/// does not fit in what is left of the budget, so it holds at most `budget` entries — or, when
/// the first bucket alone holds more than `budget`, exactly that bucket.
pub(crate) fn read_slice<K: Pod, V: Pod>(
    map: &MapData,
    from: Option<Token>,
    budget: usize,
    chunk: usize,
) -> Result<Option<Slice<K, V>>, MapError> {
    check_layout::<K, V>(map, Some(size_of::<V>()))?;
    let fd = map.fd().as_fd().as_raw_fd() as u32;
    let mut keys: Vec<K> = Vec::new();
    let mut values: Vec<V> = Vec::new();
    let (mut resume, mut next): (Option<Token>, Token) = (from, 0);
    // Room the next bucket needs at least: grows when the kernel answers ENOSPC.
    let mut need = 1;
    let mut at_end = false;
    loop {
        let got = keys.len();
        let room = budget.max(1).saturating_sub(got);
        let want = room.min(chunk.max(1)).max(need);
        if room == 0 || (want > room && got > 0) {
            break;
        }
        keys.reserve(want);
        values.reserve(want);
        let mut attr = BatchAttr {
            in_batch: resume.as_ref().map_or(0, |t| std::ptr::from_ref(t) as u64),
            out_batch: std::ptr::from_mut(&mut next) as u64,
            keys: keys.spare_capacity_mut().as_mut_ptr() as u64,
            values: values.spare_capacity_mut().as_mut_ptr() as u64,
            count: want.min(u32::MAX as usize) as u32,
            map_fd: fd,
            ..Default::default()
        };
        let result = bpf(BPF_MAP_LOOKUP_BATCH, &mut attr);
        match result {
            // ENOENT: the walk reached the end; the last entries came with it.
            Ok(()) | Err(libc::ENOENT) => {
                let n = attr.count as usize;
                if n > want {
                    return Err(syscall_error("BPF_MAP_LOOKUP_BATCH", libc::EOVERFLOW));
                }
                // SAFETY: the kernel wrote `n` ≤ `want` (≤ spare capacity) keys and values,
                // each of the map's key/value size = size_of::<K>()/size_of::<V>()
                // (check_layout), contiguously from the pointers passed; K and V are Pod, so
                // any bytes are valid values.
                unsafe {
                    keys.set_len(got + n);
                    values.set_len(got + n);
                }
                if result.is_err() {
                    at_end = true;
                    break;
                }
                resume = Some(next);
                need = 1;
                // Let a task woken meanwhile on this CPU run before the next call.
                std::thread::yield_now();
            }
            // The next bucket holds more entries than `want`: retry from the same place with
            // more room (or end the slice there, above, when that is more than the budget).
            Err(libc::ENOSPC) if want < MAX_CHUNK => need = want * 2,
            Err(e) if refused(e) && got == 0 => {
                note_refusal("BPF_MAP_LOOKUP_BATCH", e);
                return Ok(None);
            }
            Err(e) => return Err(syscall_error("BPF_MAP_LOOKUP_BATCH", e)),
        }
    }
    Ok(Some(Slice {
        entries: keys.into_iter().zip(values).collect(),
        next: if at_end { None } else { resume },
    }))
}

/// Delete `keys` from `map`; keys already gone are skipped. How many were deleted, or `None`
/// (nothing deleted) when the kernel has no `BPF_MAP_DELETE_BATCH`.
pub(crate) fn delete<K: Pod>(map: &MapData, keys: &[K]) -> Result<Option<usize>, MapError> {
    check_layout::<K, ()>(map, None)?;
    let fd = map.fd().as_fd().as_raw_fd() as u32;
    let (mut pos, mut deleted) = (0, 0);
    while pos < keys.len() {
        let want = (keys.len() - pos).min(CHUNK);
        let mut attr = BatchAttr {
            keys: keys[pos..].as_ptr() as u64,
            count: want as u32,
            map_fd: fd,
            ..Default::default()
        };
        let result = bpf(BPF_MAP_DELETE_BATCH, &mut attr);
        if let Err(e) = result
            && refused(e)
            && deleted == 0
            && pos == 0
        {
            note_refusal("BPF_MAP_DELETE_BATCH", e);
            return Ok(None);
        }
        // The kernel deletes in order and stops at the first failure; `count` = deleted.
        let done = (attr.count as usize).min(want);
        deleted += done;
        pos += done;
        match result {
            Ok(()) if done == want => {}
            Ok(()) => return Err(syscall_error("BPF_MAP_DELETE_BATCH", libc::EIO)),
            // The key at `pos` was gone already (LRU eviction, or the program removed it).
            Err(libc::ENOENT) => pos += 1,
            Err(e) => return Err(syscall_error("BPF_MAP_DELETE_BATCH", e)),
        }
    }
    Ok(Some(deleted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Balancer;
    use crate::abi::{Conn, FlowKey, NatRev};
    use aya::maps::{HashMap, IterableMap};
    use std::collections::HashMap as StdHashMap;

    fn key(i: u32) -> FlowKey {
        FlowKey {
            src: [i.to_be(), 0, 0, 0],
            sport: (i as u16).to_be(),
            family: 4,
            proto: 6,
            ..Default::default()
        }
    }

    fn conn(i: u32) -> Conn {
        Conn {
            real: i,
            last_ns: u64::from(i) * 7,
            ..Default::default()
        }
    }

    /// A balancer whose `rvs_conns` holds flows 0..n.
    fn loaded(n: u32) -> Option<Balancer> {
        if !rvs_testbed::is_root() {
            eprintln!("skipping: loading the balancer needs root");
            return None;
        }
        let mut b = Balancer::load().expect("load");
        for i in 0..n {
            b.insert_conn(&key(i), &conn(i)).expect("insert");
        }
        Some(b)
    }

    fn conns_map(b: &Balancer) -> HashMap<&MapData, FlowKey, Conn> {
        HashMap::try_from(b.ebpf().map("rvs_conns").unwrap()).unwrap()
    }

    #[test]
    fn batch_read_is_the_kernel_path_and_complete() {
        let Some(b) = loaded(5000) else { return };
        let map = conns_map(&b);
        let want: StdHashMap<FlowKey, Conn> = (0..5000).map(|i| (key(i), conn(i))).collect();
        // Some() = the kernel answered the batch command (no silent fallback on this kernel).
        let got = read_all::<FlowKey, Conn>(map.map())
            .unwrap()
            .expect("batch lookup");
        assert_eq!(got.len(), 5000, "no entry twice");
        assert_eq!(got.into_iter().collect::<StdHashMap<_, _>>(), want);
        // One entry per call at first: buckets with two entries answer ENOSPC and the read
        // retries with more room from the same bucket.
        let got = read_slice::<FlowKey, Conn>(map.map(), None, usize::MAX, 1)
            .unwrap()
            .unwrap()
            .entries;
        assert_eq!(got.len(), 5000);
        assert_eq!(got.into_iter().collect::<StdHashMap<_, _>>(), want);
    }

    /// Slices resume where the last one stopped, never exceed the budget (one bucket when the
    /// budget is smaller than a bucket), and together read every entry once.
    #[test]
    fn slices_cover_the_map_once_within_their_budget() {
        let Some(b) = loaded(5000) else { return };
        let map = conns_map(&b);
        for budget in [1, 100, 4999, 5000, 10_000] {
            let (mut all, mut from, mut slices, mut largest) = (StdHashMap::new(), None, 0, 0);
            loop {
                let s = read_slice::<FlowKey, Conn>(map.map(), from, budget, CHUNK)
                    .unwrap()
                    .expect("batch lookup");
                assert!(!s.entries.is_empty() || s.next.is_none(), "budget {budget}");
                // Buckets here hold a few entries at most (5000 entries, 2^18 buckets).
                assert!(s.entries.len() <= budget.max(8), "budget {budget}");
                slices += 1;
                largest = largest.max(s.entries.len());
                for (k, c) in s.entries {
                    assert!(all.insert(k, c).is_none(), "read twice, budget {budget}");
                }
                let Some(next) = s.next else { break };
                from = Some(next);
            }
            assert_eq!(all.len(), 5000, "budget {budget}");
            assert!(
                largest <= budget || budget == 1,
                "budget {budget}: {largest}"
            );
            assert!(
                slices >= 5000usize.div_ceil(largest),
                "budget {budget}: {slices}"
            );
            // The kernel walks empty buckets to the end within the call that filled the budget.
            if budget >= 5000 {
                assert_eq!(slices, 1, "budget {budget}");
            }
        }
    }

    #[test]
    fn batch_delete_skips_missing_keys() {
        let Some(b) = loaded(10) else { return };
        let map = conns_map(&b);
        let keys = [key(1), key(100), key(2), key(101), key(3)];
        assert_eq!(delete(map.map(), &keys).unwrap(), Some(3));
        let left = read_all::<FlowKey, Conn>(map.map()).unwrap().unwrap();
        let mut left: Vec<u32> = left.into_iter().map(|(_, c)| c.real).collect();
        left.sort_unstable();
        assert_eq!(left, [0, 4, 5, 6, 7, 8, 9]);
        assert_eq!(delete::<FlowKey>(map.map(), &[]).unwrap(), Some(0));
    }

    #[test]
    fn layouts_other_than_the_maps_are_refused() {
        let Some(b) = loaded(1) else { return };
        let map = conns_map(&b);
        assert!(matches!(
            read_all::<FlowKey, NatRev>(map.map()),
            Err(MapError::InvalidValueSize { .. })
        ));
        assert!(matches!(
            delete::<u32>(map.map(), &[1]),
            Err(MapError::InvalidKeySize { .. })
        ));
        let reals = b.ebpf().map("rvs_reals").unwrap();
        let reals: aya::maps::Array<&MapData, crate::abi::Real> =
            aya::maps::Array::try_from(reals).unwrap();
        assert!(matches!(
            read_all::<u32, crate::abi::Real>(reals.map()),
            Err(MapError::InvalidMapType { .. })
        ));
    }

    #[test]
    fn refusals_are_the_errnos_of_kernels_without_batch_ops() {
        assert!(refused(libc::EINVAL) && refused(libc::EOPNOTSUPP) && refused(ENOTSUPP));
        assert!(!refused(libc::ENOENT) && !refused(libc::ENOSPC) && !refused(libc::EPERM));
    }
}
