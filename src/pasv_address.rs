//! --pasv-address: the IPv4 address PASV announces, given as an address or
//! as a DNS name. A name is resolved on the main thread (at start and on
//! SIGHUP, never on a reactor thread); sessions read the current value from
//! an atomic in `Shared`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::services::Shared;

/// The flag's value: an address, or a name with the address it resolved to
/// at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasvAddress {
    /// The DNS name, when one was given.
    pub name: Option<String>,
    /// The address at start.
    pub ip: Ipv4Addr,
}

impl PasvAddress {
    /// Parses the flag, resolving a name now (blocking: main thread only).
    pub fn from_flag(s: &str) -> Result<PasvAddress, String> {
        match s.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => return Ok(PasvAddress { name: None, ip }),
            Ok(IpAddr::V6(_)) => return Err("--pasv-address must be an IPv4 address (EPSV needs none)".into()),
            Err(_) => {}
        }
        if !is_host_name(s) {
            return Err(format!("--pasv-address {s:?}: neither an IPv4 address nor a DNS name"));
        }
        let ip = resolve_ipv4(s).map_err(|e| format!("--pasv-address {s}: {e}"))?;
        Ok(PasvAddress { name: Some(s.to_string()), ip })
    }
}

/// A DNS name as RFC 1123 allows it: labels of letters, digits and '-'
/// (not at either end), 1-63 bytes each, 253 bytes in all, a final dot
/// allowed.
pub fn is_host_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// The first IPv4 address among resolver results.
pub fn first_ipv4(addrs: impl IntoIterator<Item = SocketAddr>) -> Option<Ipv4Addr> {
    addrs.into_iter().find_map(|a| match a.ip() {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    })
}

/// Resolves `name` (getaddrinfo, blocking) to its first IPv4 address.
pub fn resolve_ipv4(name: &str) -> Result<Ipv4Addr, String> {
    let addrs = (name, 0u16).to_socket_addrs().map_err(|e| format!("cannot resolve: {e}"))?;
    first_ipv4(addrs).ok_or_else(|| "the name has no IPv4 address".to_string())
}

/// The address sessions announce now, readable without a lock.
pub struct Announced(AtomicU32);

impl Announced {
    pub fn new(cfg: Option<&PasvAddress>) -> Announced {
        Announced(AtomicU32::new(cfg.map_or(0, |p| u32::from(p.ip))))
    }
}

impl Shared {
    /// The address PASV announces (None: the control connection's local
    /// address). Cheap: one atomic load.
    pub fn pasv_address(&self) -> Option<Ipv4Addr> {
        self.config.pasv_address.as_ref()?;
        Some(Ipv4Addr::from(self.pasv.0.load(Ordering::Relaxed)))
    }

    /// Resolves a --pasv-address name again (for SIGHUP; blocking, so never
    /// on a reactor thread). On failure the previous address stays. Returns
    /// the address now announced; logs the outcome.
    pub fn refresh_pasv_address(&self) -> Result<Option<Ipv4Addr>, String> {
        let Some(PasvAddress { name: Some(name), .. }) = &self.config.pasv_address else {
            return Ok(self.pasv_address());
        };
        match resolve_ipv4(name) {
            Ok(ip) => {
                let old = Ipv4Addr::from(self.pasv.0.swap(u32::from(ip), Ordering::Relaxed));
                if old != ip {
                    crate::log::info(format_args!("--pasv-address {name}: now {ip} (was {old})"));
                } else {
                    crate::log::info(format_args!("--pasv-address {name}: still {ip}"));
                }
                Ok(Some(ip))
            }
            Err(e) => {
                crate::log::error(format_args!("--pasv-address {name}: {e}; keeping {:?}", self.pasv_address()));
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_names_are_told_apart() {
        assert_eq!(PasvAddress::from_flag("192.0.2.7").unwrap(), PasvAddress { name: None, ip: [192, 0, 2, 7].into() });
        assert!(PasvAddress::from_flag("2001:db8::1").unwrap_err().contains("IPv4"));
        for bad in ["", "bad name", "a..b", "-a.example", "a-.example", "é.example", "1.2.3.4:21", "[::1]"] {
            assert!(!is_host_name(bad), "{bad:?}");
            assert!(PasvAddress::from_flag(bad).is_err(), "{bad:?}");
        }
        for good in ["localhost", "ftp1.mirror.example.org", "ftp1.mirror.example.org.", "a-b.c0"] {
            assert!(is_host_name(good), "{good:?}");
        }
        assert!(!is_host_name(&format!("{}.example", "a".repeat(64))));
    }

    #[test]
    fn the_first_ipv4_result_wins_and_ipv6_only_is_none() {
        let v6: SocketAddr = "[2001:db8::1]:0".parse().unwrap();
        let a: SocketAddr = "192.0.2.1:0".parse().unwrap();
        let b: SocketAddr = "192.0.2.2:0".parse().unwrap();
        assert_eq!(first_ipv4([v6, a, b]), Some([192, 0, 2, 1].into()));
        assert_eq!(first_ipv4([v6]), None);
        assert_eq!(first_ipv4([]), None);
    }

    #[test]
    fn localhost_resolves_to_loopback() {
        let p = PasvAddress::from_flag("localhost").unwrap();
        assert_eq!(p.name.as_deref(), Some("localhost"));
        assert!(p.ip.is_loopback(), "{}", p.ip);
    }
}
