//! The end-of-run summary: a human table on stdout and the same facts as one
//! hand-serialised JSON object, plus the once-a-second progress line.

use std::fmt::Write as _;
use std::time::Duration;

use super::plan::{Plan, Workload};
use super::stats::{Histogram, OpKind, Stats};

const MIB: f64 = 1048576.0;
const QUANTILES: [(&str, f64); 3] = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)];

/// Everything the summary shows.
pub struct Summary<'a> {
    pub plan: &'a Plan,
    pub stats: &'a Stats,
    /// Wall time from the first session start to the end of the last thread.
    pub elapsed: Duration,
    /// CPU time (user + system) of the bench process over the run.
    pub cpu: Duration,
}

impl Summary<'_> {
    fn secs(&self) -> f64 {
        self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn mib_per_s(&self) -> f64 {
        self.stats.bytes as f64 / MIB / self.secs()
    }

    pub fn ops_per_s(&self) -> f64 {
        self.stats.ops as f64 / self.secs()
    }

    pub fn cpu_percent(&self) -> f64 {
        100.0 * self.cpu.as_secs_f64() / self.secs()
    }

    fn workload_name(&self) -> &'static str {
        match self.plan.workload {
            Workload::Retr => "retr",
            Workload::Stor => "stor",
            Workload::List => "list",
            Workload::Login => "login",
            Workload::Idle => "idle",
            Workload::Mix => "mix",
        }
    }

    /// The human summary.
    pub fn text(&self) -> String {
        let (p, s) = (self.plan, self.stats);
        let mut o = String::new();
        let mut flags = vec![p.mode_name()];
        if p.discard {
            flags.push("discard");
        }
        if let Some(t) = p.tls_name() {
            flags.push(t);
        }
        if p.workload == Workload::List {
            flags.push(p.list_verb());
        }
        let _ = writeln!(o, "workload     {} ({}) against {}", self.workload_name(), flags.join(", "), p.server);
        let _ = writeln!(o, "conns        {} on {} thread(s), {} established", p.conns, p.threads, s.established);
        let _ = writeln!(o, "duration     {:.2} s", self.secs());
        let _ = writeln!(o, "bytes        {} ({:.1} MiB)", s.bytes, s.bytes as f64 / MIB);
        let _ = writeln!(o, "throughput   {:.1} MiB/s", self.mib_per_s());
        let _ = writeln!(o, "ops          {} ({:.1}/s)", s.ops, self.ops_per_s());
        let rows: Vec<_> = OpKind::ALL
            .iter()
            .flat_map(|&k| {
                let l = &s.latency[k as usize];
                [(k, "ttfb", &l.ttfb), (k, "total", &l.total)]
            })
            .filter(|r| r.2.count() > 0)
            .collect();
        if !rows.is_empty() {
            let _ = writeln!(o, "latency ms   {:<18} {:>9} {:>9} {:>9} {:>9}", "", "p50", "p90", "p99", "max");
            for (k, what, h) in rows {
                let what = match (k, p.tls) {
                    (OpKind::Login, None) => "connect→230",
                    (OpKind::Login, Some(_)) => "connect→PROT P",
                    _ => what,
                };
                let _ = write!(o, "             {:<18}", format!("{} {what}", k.name()));
                for (_, q) in QUANTILES {
                    let _ = write!(o, " {:>9.3}", ms(h.quantile_us(q)));
                }
                let _ = writeln!(o, " {:>9.3}", ms(h.max_us()));
            }
        }
        let errors = if s.errors.is_empty() {
            "none".to_string()
        } else {
            s.errors.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", ")
        };
        if p.tls.is_some() {
            let t = &s.tls;
            let _ = writeln!(
                o,
                "tls          {} control, {} data handshakes ({} data resumed)",
                t.control, t.data, t.data_resumed
            );
        }
        if p.disconnect_prob > 0.0 {
            let _ = writeln!(o, "drops        {} (--disconnect-prob {})", s.drops, p.disconnect_prob);
        }
        let _ = writeln!(o, "errors       {errors}");
        let _ = writeln!(o, "client cpu   {:.1}% of one core", self.cpu_percent());
        o
    }

    /// The summary as one JSON object (one line).
    pub fn json(&self) -> String {
        let (p, s) = (self.plan, self.stats);
        let mut o = String::from("{");
        let _ = write!(o, "\"workload\":{}", quote(self.workload_name()));
        let _ = write!(o, ",\"mode\":{},\"discard\":{}", quote(p.mode_name()), p.discard);
        let _ = write!(o, ",\"tls\":{}", p.tls.is_some());
        if let Some(name) = p.tls_name() {
            let t = &s.tls;
            let _ = write!(
                o,
                ",\"tls_mode\":{},\"tls_handshakes\":{{\"control\":{},\"data\":{},\"data_resumed\":{}}}",
                quote(name),
                t.control,
                t.data,
                t.data_resumed
            );
        }
        let _ = write!(o, ",\"conns\":{},\"threads\":{}", p.conns, p.threads);
        let _ = write!(o, ",\"duration_secs\":{:.3}", self.secs());
        let _ = write!(o, ",\"bytes\":{},\"mib_per_s\":{:.3}", s.bytes, self.mib_per_s());
        let _ = write!(o, ",\"ops\":{},\"ops_per_s\":{:.3}", s.ops, self.ops_per_s());
        o.push_str(",\"errors\":{");
        for (i, (k, v)) in s.errors.iter().enumerate() {
            let _ = write!(o, "{}{}:{v}", if i > 0 { "," } else { "" }, quote(&k.to_string()));
        }
        o.push_str("},\"latency\":{");
        let mut first = true;
        for k in OpKind::ALL {
            let l = &s.latency[k as usize];
            if l.total.count() == 0 && l.ttfb.count() == 0 {
                continue;
            }
            let _ = write!(o, "{}{}:{{\"count\":{}", if first { "" } else { "," }, quote(k.name()), l.total.count());
            first = false;
            if l.ttfb.count() > 0 {
                let _ = write!(o, ",\"ttfb_ms\":{}", quantiles(&l.ttfb));
            }
            if l.total.count() > 0 {
                let _ = write!(o, ",\"total_ms\":{}", quantiles(&l.total));
            }
            o.push('}');
        }
        o.push('}');
        let _ = write!(o, ",\"client_cpu_percent\":{:.1}", self.cpu_percent());
        let _ = write!(o, ",\"sessions_established\":{}", s.established);
        // Per-session rates (MiB/s) over the whole run: how evenly a rate
        // limit is shared.
        let rates: Vec<f64> = s.session_bytes.iter().map(|b| *b as f64 / MIB / self.secs().max(1e-9)).collect();
        if !rates.is_empty() {
            let min = rates.iter().copied().fold(f64::INFINITY, f64::min);
            let max = rates.iter().copied().fold(0.0, f64::max);
            let _ = write!(o, ",\"session_mib_per_s\":{{\"min\":{min:.3},\"max\":{max:.3},\"count\":{}}}", rates.len());
        }
        let _ = write!(o, ",\"drops\":{}", s.drops);
        o.push('}');
        o
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn quantiles(h: &Histogram) -> String {
    let mut o = String::from("{");
    for (name, q) in QUANTILES {
        let _ = write!(o, "\"{name}\":{:.3},", ms(h.quantile_us(q)));
    }
    let _ = write!(o, "\"max\":{:.3}}}", ms(h.max_us()));
    o
}

/// A JSON string literal.
fn quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// One progress line (without the leading '\r').
pub fn progress(elapsed: Duration, mib_s: f64, ops_s: f64, connected: u64, errors: u64) -> String {
    format!(
        "{:>7.1}s {:>10.1} MiB/s {:>9.1} ops/s {:>7} sessions {:>7} errors",
        elapsed.as_secs_f64(),
        mib_s,
        ops_s,
        connected,
        errors
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::stats::{ErrorKind, TlsCounts};

    #[test]
    fn json_is_well_formed_and_has_the_keys() {
        use clap::{Args, FromArgMatches};
        let cmd = crate::bench::plan::BenchArgs::augment_args(clap::Command::new("b").no_binary_name(true));
        let m = cmd.try_get_matches_from(["retr", "--path", "/x", "--conns", "3"]).unwrap();
        let plan = Plan::from_args(crate::bench::plan::BenchArgs::from_arg_matches(&m).unwrap()).unwrap();
        let mut stats = Stats { bytes: 3 << 20, ops: 3, ..Stats::default() };
        stats.error(ErrorKind::Code(550));
        stats.error(ErrorKind::Timeout);
        stats.op(OpKind::Retr).ttfb.record_us(1500);
        stats.op(OpKind::Retr).total.record_us(2500);
        stats.op(OpKind::Login).total.record_us(300);
        let s =
            Summary { plan: &plan, stats: &stats, elapsed: Duration::from_secs(2), cpu: Duration::from_millis(500) };
        let j = s.json();
        assert!(j.starts_with("{\"workload\":\"retr\""), "{j}");
        for key in [
            "\"conns\":3",
            "\"threads\":1",
            "\"duration_secs\":2.000",
            "\"bytes\":3145728",
            "\"mib_per_s\":1.500",
            "\"ops\":3",
            "\"ops_per_s\":1.500",
            "\"errors\":{\"550\":1,\"timeout\":1}",
            "\"retr\":{\"count\":1,\"ttfb_ms\":{\"p50\":1.500,\"p90\":1.500,\"p99\":1.500,\"max\":1.500}",
            "\"login\":{\"count\":1,\"total_ms\":{",
            "\"client_cpu_percent\":25.0",
            "\"sessions_established\":0",
            "\"tls\":false",
        ] {
            assert!(j.contains(key), "{key} missing from {j}");
        }
        let opens = j.matches('{').count();
        assert_eq!(opens, j.matches('}').count());
        let t = s.text();
        assert!(t.contains("550: 1, timeout: 1"), "{t}");
        assert!(t.contains("25.0% of one core"), "{t}");
        assert_eq!(quote("a\"b\\\n"), "\"a\\\"b\\\\\\u000a\"");
        assert!(!j.contains("tls_handshakes") && !t.contains("handshakes"), "{j}\n{t}");
    }

    #[test]
    fn tls_runs_report_handshakes() {
        use clap::{Args, FromArgMatches};
        let cmd = crate::bench::plan::BenchArgs::augment_args(clap::Command::new("b").no_binary_name(true));
        let m = cmd.try_get_matches_from(["retr", "--path", "/x", "--tls"]).unwrap();
        let plan = Plan::from_args(crate::bench::plan::BenchArgs::from_arg_matches(&m).unwrap()).unwrap();
        let stats = Stats { tls: TlsCounts { control: 2, data: 5, data_resumed: 4 }, ..Stats::default() };
        let s = Summary { plan: &plan, stats: &stats, elapsed: Duration::from_secs(1), cpu: Duration::ZERO };
        let j = s.json();
        let want = "\"tls\":true,\"tls_mode\":\"tls\",\"tls_handshakes\":{\"control\":2,\"data\":5,\"data_resumed\":4}";
        assert!(j.contains(want), "{j}");
        assert_eq!(j.matches('{').count(), j.matches('}').count());
        let t = s.text();
        assert!(t.contains("2 control, 5 data handshakes (4 data resumed)"), "{t}");
        assert!(t.contains("(epsv, tls)"), "{t}");
    }
}
