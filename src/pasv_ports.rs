//! Passive data ports: the range listeners come from (--pasv-ports, or by
//! default the ports just outside the kernel's ephemeral range), each
//! worker's slice of it, and the worker's round-robin cursor over its slice.
//!
//! Why the server never asks the kernel for "any port" (bind to port 0) by
//! default: a passive listener's data connection inherits its port, the
//! server closes first, and the closed connection sits in TIME_WAIT on that
//! port for 60 s. At ~17,000 transfers/s that is ~100,000 TIME_WAIT sockets
//! spread over the kernel's ephemeral range (32768-60999). For port 0 the
//! kernel (`inet_csk_find_open_port`) walks that range port by port, taking
//! each port's bind-hash lock and looking at its owners, and in that
//! automatic search *any* owner counts as a conflict — a TIME_WAIT socket
//! too, SO_REUSEADDR notwithstanding (the "relax" rules apply only to an
//! explicit port). Once nearly every port has a TIME_WAIT owner, each bind
//! scans thousands of buckets: ~5 ms of kernel CPU per EPSV, and 4 KiB RETR
//! fell from ~17,000/s to ~1,250/s (issue 11). Binding an explicit port with
//! SO_REUSEADDR only conflicts with a live listener on it, so a cursor over a
//! range the server manages costs one bind per EPSV whatever the TIME_WAIT
//! count.
//!
//! Why the default range lies *outside* the ephemeral range: a port that
//! holds a bound socket or its TIME_WAIT heirs is skipped by the kernel's
//! own `connect()` port choice too, so cycling through the ephemeral range
//! would starve outgoing connections (active-mode PORT data connections,
//! anything else on the machine). Ports named in
//! `net.ipv4.ip_local_reserved_ports` are left alone (reserved for services
//! that bind them explicitly).

use std::fmt;
use std::io;
use std::net::IpAddr;

use crate::config::PortRange;
use crate::io::net;
use crate::limits;

/// Where the kernel keeps its ephemeral range and its reserved ports.
const EPHEMERAL_FILE: &str = "/proc/sys/net/ipv4/ip_local_port_range";
const RESERVED_FILE: &str = "/proc/sys/net/ipv4/ip_local_reserved_ports";

/// The passive port policy of the whole server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PasvPorts {
    /// --pasv-ports: only these ports (the firewall lets them in); with all
    /// of a worker's slice in use, EPSV/PASV get 425.
    Flag(PortRange),
    /// No --pasv-ports: ports outside the kernel's ephemeral range, minus its
    /// reserved ports; with all of a worker's slice in use, a kernel-chosen
    /// port (slow, but never a refusal the old default would not give).
    Default { range: PortRange, ephemeral: PortRange, reserved: Vec<PortRange> },
    /// No --pasv-ports and no room for a default range (the ephemeral range
    /// covers nearly everything, or it could not be read): kernel-chosen.
    Kernel { why: String },
}

impl PasvPorts {
    /// The default from the running kernel's settings.
    pub fn from_kernel() -> PasvPorts {
        let ephemeral = match std::fs::read_to_string(EPHEMERAL_FILE) {
            Ok(text) => match parse_ephemeral(&text) {
                Some(r) => r,
                None => return PasvPorts::Kernel { why: format!("{EPHEMERAL_FILE}: cannot parse {text:?}") },
            },
            Err(e) => return PasvPorts::Kernel { why: format!("{EPHEMERAL_FILE}: {e}") },
        };
        let reserved =
            std::fs::read_to_string(RESERVED_FILE).ok().and_then(|t| parse_port_list(&t)).unwrap_or_default();
        PasvPorts::default_for(ephemeral, reserved)
    }

    /// The default range for a kernel whose ephemeral range is `ephemeral`:
    /// the ports above it (61000-65535 under Linux's 32768-60999) if there
    /// are at least `DEFAULT_PASV_MIN_PORTS`, else up to
    /// `DEFAULT_PASV_BELOW` ports just below it (but not below
    /// `DEFAULT_PASV_FLOOR`), else none.
    pub fn default_for(ephemeral: PortRange, reserved: Vec<PortRange>) -> PasvPorts {
        let enough = |r: &PortRange| r.len() >= limits::DEFAULT_PASV_MIN_PORTS;
        let above = (ephemeral.high < u16::MAX).then(|| PortRange { low: ephemeral.high + 1, high: u16::MAX });
        let below = (ephemeral.low > limits::DEFAULT_PASV_FLOOR).then(|| PortRange {
            low: ephemeral.low.saturating_sub(limits::DEFAULT_PASV_BELOW).max(limits::DEFAULT_PASV_FLOOR),
            high: ephemeral.low - 1,
        });
        match above.filter(enough).or(below.filter(enough)) {
            Some(range) => PasvPorts::Default { range, ephemeral, reserved },
            None => PasvPorts::Kernel {
                why: format!(
                    "the kernel's ephemeral range {}-{} leaves fewer than {} ports outside it",
                    ephemeral.low,
                    ephemeral.high,
                    limits::DEFAULT_PASV_MIN_PORTS
                ),
            },
        }
    }

    /// Worker `index` of `count`'s slice and cursor.
    pub fn slice(&self, index: usize, count: usize) -> PasvSlice {
        let (range, reserved, fallback) = match self {
            PasvPorts::Flag(r) => (Some(r.slice(index, count)), Vec::new(), false),
            PasvPorts::Default { range, reserved, .. } => {
                let s = range.slice(index, count);
                let mine = reserved.iter().copied().filter(|r| r.low <= s.high && r.high >= s.low).collect();
                (Some(s), mine, true)
            }
            PasvPorts::Kernel { .. } => (None, Vec::new(), true),
        };
        PasvSlice { cursor: range.map_or(0, |r| r.low), range, reserved, fallback, warned: false }
    }
}

impl fmt::Display for PasvPorts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasvPorts::Flag(r) => write!(f, "{}-{} (--pasv-ports)", r.low, r.high),
            PasvPorts::Default { range, ephemeral, reserved } => {
                write!(
                    f,
                    "{}-{} (default: outside the kernel's ephemeral range {}-{}",
                    range.low, range.high, ephemeral.low, ephemeral.high
                )?;
                let skipped: usize = reserved
                    .iter()
                    .map(|r| (r.high.min(range.high) as usize + 1).saturating_sub(r.low.max(range.low) as usize))
                    .sum();
                if skipped > 0 {
                    write!(f, ", {skipped} reserved ports skipped")?;
                }
                f.write_str("; set --pasv-ports for a firewall)")
            }
            PasvPorts::Kernel { why } => write!(f, "kernel-chosen ({why}; set --pasv-ports)"),
        }
    }
}

/// One worker's share of the passive ports and its cursor.
#[derive(Debug)]
pub struct PasvSlice {
    /// None: every listener gets a kernel-chosen port.
    range: Option<PortRange>,
    /// The next port to try.
    cursor: u16,
    /// Ports of `range` never used (ip_local_reserved_ports).
    reserved: Vec<PortRange>,
    /// With the whole slice in use, fall back to a kernel-chosen port.
    fallback: bool,
    /// The fallback was logged (once per worker).
    warned: bool,
}

impl PasvSlice {
    /// The worker's port range (None: kernel-chosen ports).
    pub fn range(&self) -> Option<PortRange> {
        self.range
    }

    /// A new passive listener on `ip`: the first free port of the slice from
    /// the cursor on (the cursor then moves past it), or as described on
    /// `PasvPorts` when every port of the slice is in use.
    pub fn listen(&mut self, ip: IpAddr) -> io::Result<mio::net::TcpListener> {
        let Some(range) = self.range else {
            return net::passive_listener(ip, [0]);
        };
        match net::passive_listener(ip, self.candidates(range)) {
            Ok(l) => {
                let port = l.local_addr()?.port();
                self.cursor = if port >= range.high { range.low } else { port + 1 };
                Ok(l)
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && self.fallback => {
                if !self.warned {
                    self.warned = true;
                    crate::log::warn(format_args!(
                        "passive ports {}-{} all in use: using kernel-chosen ports meanwhile (slow once many \
                         TIME_WAIT sockets exist); set --pasv-ports to a larger range",
                        range.low, range.high
                    ));
                }
                net::passive_listener(ip, [0])
            }
            Err(e) => Err(e),
        }
    }

    /// Every port of `range` once, from the cursor round to just before it,
    /// reserved ports left out.
    fn candidates(&self, range: PortRange) -> impl Iterator<Item = u16> + '_ {
        let len = range.len() as u32;
        let start = u32::from(self.cursor.clamp(range.low, range.high) - range.low);
        (0..len)
            .map(move |i| range.low + ((start + i) % len) as u16)
            .filter(|p| !self.reserved.iter().any(|r| (r.low..=r.high).contains(p)))
    }
}

/// `ip_local_port_range`: "LOW<tab>HIGH".
fn parse_ephemeral(text: &str) -> Option<PortRange> {
    let mut it = text.split_whitespace().map(str::parse::<u16>);
    let (Some(Ok(low)), Some(Ok(high)), None) = (it.next(), it.next(), it.next()) else {
        return None;
    };
    (low <= high).then_some(PortRange { low, high })
}

/// `ip_local_reserved_ports`: "" or "8080,9000-9100,...".
fn parse_port_list(text: &str) -> Option<Vec<PortRange>> {
    let text = text.trim();
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(',')
        .map(|item| {
            let (a, b) = item.split_once('-').unwrap_or((item, item));
            let (low, high) = (a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?);
            (low <= high).then_some(PortRange { low, high })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(low: u16, high: u16) -> PortRange {
        PortRange { low, high }
    }

    #[test]
    fn default_range_lies_above_linux_ephemeral_range() {
        let p = PasvPorts::default_for(r(32768, 60999), Vec::new());
        assert_eq!(p, PasvPorts::Default { range: r(61000, 65535), ephemeral: r(32768, 60999), reserved: vec![] });
        assert_eq!(p.slice(0, 2).range(), Some(r(61000, 63267)));
        assert_eq!(p.slice(1, 2).range(), Some(r(63268, 65535)));
    }

    #[test]
    fn default_range_goes_below_an_ephemeral_range_that_ends_at_the_top() {
        let p = PasvPorts::default_for(r(49152, 65535), Vec::new());
        assert!(matches!(p, PasvPorts::Default { range, .. } if range == r(45056, 49151)), "{p:?}");
        let p = PasvPorts::default_for(r(3000, 65535), Vec::new());
        assert!(matches!(p, PasvPorts::Default { range, .. } if range == r(1024, 2999)), "{p:?}");
        // No room: the kernel chooses, as before.
        assert!(matches!(PasvPorts::default_for(r(1024, 65535), Vec::new()), PasvPorts::Kernel { .. }));
        assert!(matches!(PasvPorts::default_for(r(1500, 65000), Vec::new()), PasvPorts::Kernel { .. }));
        assert_eq!(PasvPorts::default_for(r(1024, 65535), Vec::new()).slice(0, 2).range(), None);
    }

    #[test]
    fn kernel_files_parse() {
        assert_eq!(parse_ephemeral("32768\t60999\n"), Some(r(32768, 60999)));
        assert_eq!(parse_ephemeral("5 1"), None);
        assert_eq!(parse_ephemeral("1 2 3"), None);
        assert_eq!(parse_port_list("\n"), Some(vec![]));
        assert_eq!(parse_port_list("8080,9000-9100\n"), Some(vec![r(8080, 8080), r(9000, 9100)]));
        assert_eq!(parse_port_list("9-1"), None);
    }

    #[test]
    fn candidates_start_at_the_cursor_wrap_and_skip_reserved_ports() {
        let p = PasvPorts::Default {
            range: r(61000, 61009),
            ephemeral: r(32768, 60999),
            reserved: vec![r(61003, 61004), r(61008, 61009), r(100, 200)],
        };
        assert!(p.to_string().contains("4 reserved ports skipped"), "{p}");
        let mut s = p.slice(0, 2);
        let range = s.range().unwrap();
        assert_eq!(range, r(61000, 61004));
        assert_eq!(s.reserved, vec![r(61003, 61004)], "reserved blocks outside the slice are dropped");
        s.cursor = 61002;
        assert_eq!(s.candidates(range).collect::<Vec<_>>(), [61002, 61000, 61001]);
        let flag = PasvPorts::Flag(r(61000, 61004)).slice(0, 1);
        assert_eq!(flag.candidates(r(61000, 61004)).count(), 5, "--pasv-ports is used as given");
        assert!(!flag.fallback);
    }

    #[test]
    fn a_full_default_slice_falls_back_to_a_kernel_port_and_a_full_flag_slice_refuses() {
        let ip: IpAddr = [127, 0, 0, 1].into();
        let taken = std::net::TcpListener::bind((ip, 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        let mut flag = PasvPorts::Flag(r(port, port)).slice(0, 1);
        assert_eq!(flag.listen(ip).unwrap_err().kind(), io::ErrorKind::AddrInUse);
        let mut def = PasvPorts::Default { range: r(port, port), ephemeral: r(1, 1), reserved: vec![] }.slice(0, 1);
        let l = def.listen(ip).unwrap();
        assert_ne!(l.local_addr().unwrap().port(), port);
        drop(taken);
        // Free again: the slice's own port is used, and the cursor wraps.
        let l2 = flag.listen(ip).unwrap();
        assert_eq!(l2.local_addr().unwrap().port(), port);
        assert_eq!(flag.cursor, port);
    }
}
