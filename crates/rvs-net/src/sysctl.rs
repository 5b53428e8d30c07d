//! Kernel parameters under /proc/sys (`net.ipv4.conf.all.arp_ignore` style keys).

use crate::error::NetError;
use std::path::PathBuf;

/// `/proc/sys` path of a key; as in sysctl(8), a `/` inside a component stands for a `.`.
fn path(key: &str) -> PathBuf {
    key.split('.').fold(PathBuf::from("/proc/sys"), |p, c| {
        p.join(c.replace('/', "."))
    })
}

/// Read a sysctl (trimmed).
pub fn get(key: &str) -> Result<String, NetError> {
    std::fs::read_to_string(path(key))
        .map(|s| s.trim().to_string())
        .map_err(|source| NetError::Sysctl {
            key: key.to_string(),
            source,
        })
}

/// Write a sysctl.
pub fn set(key: &str, value: &str) -> Result<(), NetError> {
    std::fs::write(path(key), value).map_err(|source| NetError::Sysctl {
        key: key.to_string(),
        source,
    })
}

/// Interface-specific key: `net.ipv4.conf.<iface>.<name>` (dots in the name are escaped as
/// slashes by the kernel's /proc layout, so interface names with dots work too).
pub fn conf4(iface: &str, name: &str) -> String {
    format!("net.ipv4.conf.{}.{name}", iface.replace('.', "/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_proc_paths() {
        assert_eq!(
            path("net.ipv4.conf.all.arp_ignore"),
            PathBuf::from("/proc/sys/net/ipv4/conf/all/arp_ignore")
        );
        assert_eq!(
            path(&conf4("eth0.100", "rp_filter")),
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0.100/rp_filter")
        );
        assert!(get("kernel.ostype").unwrap().contains("Linux"));
        assert!(matches!(get("no.such.key"), Err(NetError::Sysctl { .. })));
    }
}
