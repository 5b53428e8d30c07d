//! Whole-map reads and bulk deletes of the balancer's hash maps: the kernel's batch commands
//! ([`crate::map_batch`]) when it has them (and the caller allows them), aya's per-entry calls
//! otherwise (kernels before 5.6). Used by [`crate::Balancer`] and by the sweep's own handles
//! of the connection tables ([`crate::sweep::ConnTables`]), which reads them in slices
//! ([`read_slice`]); without the batch commands a slice is the whole map.

use crate::error::{XdpError, map_err};
use crate::map_batch::{self, Slice, Token};
use aya::Pod;
use aya::maps::{HashMap, IterableMap, Map, MapData, MapError};

/// Every entry of hash map `map` (named `name` in errors).
pub(crate) fn read<K: Pod, V: Pod>(
    map: &Map,
    name: &'static str,
    batch_ops: bool,
) -> Result<Vec<(K, V)>, XdpError> {
    Ok(read_slice(map, name, batch_ops, None, usize::MAX)?.entries)
}

/// At most `budget` entries of hash map `map` from resume token `from` on (`None` = the
/// start; see [`map_batch::read_slice`]). Without the batch commands: every entry, as one
/// slice that reaches the end (aya's per-entry walk cannot resume from a bucket; kernels
/// before 5.6 only, below the crate's minimum).
pub(crate) fn read_slice<K: Pod, V: Pod>(
    map: &Map,
    name: &'static str,
    batch_ops: bool,
    from: Option<Token>,
    budget: usize,
) -> Result<Slice<K, V>, XdpError> {
    let h: HashMap<&MapData, K, V> = HashMap::try_from(map).map_err(map_err(name))?;
    if batch_ops
        && let Some(slice) =
            map_batch::read_slice(h.map(), from, budget, map_batch::CHUNK).map_err(map_err(name))?
    {
        return Ok(slice);
    }
    Ok(Slice {
        entries: h.iter().filter_map(Result::ok).collect(),
        next: None,
    })
}

/// Delete `keys` from hash map `map` (keys already gone are skipped); how many went.
pub(crate) fn delete<K: Pod, V: Pod>(
    map: &mut Map,
    name: &'static str,
    batch_ops: bool,
    keys: &[K],
) -> Result<usize, XdpError> {
    let mut h: HashMap<&mut MapData, K, V> = HashMap::try_from(map).map_err(map_err(name))?;
    // One key: a plain delete (the batch path costs a map-info call on top).
    if batch_ops
        && keys.len() > 1
        && let Some(n) = map_batch::delete(h.map(), keys).map_err(map_err(name))?
    {
        return Ok(n);
    }
    let mut n = 0;
    for k in keys {
        match h.remove(k) {
            Ok(()) => n += 1,
            Err(MapError::KeyNotFound) => {}
            Err(MapError::SyscallError(e)) if e.io_error.kind() == std::io::ErrorKind::NotFound => {
            }
            Err(e) => return Err(map_err(name)(e)),
        }
    }
    Ok(n)
}
