//! Address blocks (`10.0.0.0/8`, `2001:db8::/32`, or one address) for the
//! trusted-proxy list and the ban list. IPv4-mapped IPv6 addresses match as
//! their IPv4 form, like every address the server compares.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// One address block.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// True when `ip` (canonicalised: `::ffff:a.b.c.d` is `a.b.c.d`) is in
    /// the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = crate::io::net::canonical_ip(ip);
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u32::from(net).into(), 32, self.prefix) == masked(u32::from(ip).into(), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(net), 128, self.prefix) == masked(u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn masked(v: u128, bits: u8, prefix: u8) -> u128 {
    if prefix == 0 { 0 } else { v >> (bits - prefix) }
}

/// True when any block of `list` contains `ip`.
pub fn any_contains(list: &[Cidr], ip: IpAddr) -> bool {
    list.iter().any(|c| c.contains(ip))
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| format!("{s:?}: not an IP address or CIDR block"))?;
        let addr = crate::io::net::canonical_ip(addr);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && !p.starts_with('+') => n,
                _ => return Err(format!("{s:?}: prefix length must be 0-{max}")),
            },
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Reads a list file: one block per line; blank lines and `#` comments are
/// skipped. Errors name the file and line.
pub fn parse_list(text: &str, origin: &str) -> Result<Vec<Cidr>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        out.push(line.parse::<Cidr>().map_err(|e| format!("{origin}:{}: {e}", i + 1))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v4_blocks_match_by_prefix() {
        let c: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(c.contains(ip("10.1.255.3")));
        assert!(!c.contains(ip("10.2.0.1")));
        assert!(c.contains(ip("::ffff:10.1.2.3")), "mapped addresses match their IPv4 form");
        let one: Cidr = "192.0.2.7".parse().unwrap();
        assert!(one.contains(ip("192.0.2.7")));
        assert!(!one.contains(ip("192.0.2.8")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        assert!(!all.contains(ip("2001:db8::1")), "an IPv4 block never holds IPv6");
    }

    #[test]
    fn v6_blocks_match_by_prefix() {
        let c: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(c.contains(ip("2001:db8:ffff::1")));
        assert!(!c.contains(ip("2001:db9::1")));
        let lo: Cidr = "::1".parse().unwrap();
        assert!(lo.contains(ip("::1")));
        assert!(!lo.contains(ip("127.0.0.1")));
    }

    #[test]
    fn bad_blocks_are_refused() {
        for bad in ["", "10.0.0.0/33", "::/129", "10.0.0/8", "10.0.0.0/+8", "10.0.0.0/", "host.example"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn list_files_skip_comments_and_name_bad_lines() {
        let l = parse_list("# banned\n198.51.100.0/24  # abuse\n\n2001:db8::/48\n", "bans").unwrap();
        assert_eq!(l.len(), 2);
        assert!(any_contains(&l, ip("198.51.100.77")));
        let e = parse_list("10.0.0.0/8\nnonsense\n", "bans").unwrap_err();
        assert!(e.starts_with("bans:2:"), "{e}");
    }
}
