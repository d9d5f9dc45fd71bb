//! Calendar arithmetic for listings and MDTM/MFMT, without a date crate.
//!
//! UTC conversion uses Howard Hinnant's days-from-civil algorithms, exact for any `i64` second
//! count; local time goes through `localtime_r` (wrapped in `io::fsys`).

use crate::io::fsys;

/// A broken-down time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parts {
    pub year: i64,
    /// 1–12.
    pub month: u32,
    /// 1–31.
    pub day: u32,
    pub hour: u32,
    pub min: u32,
    pub sec: u32,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (`month` 1–12).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of `days` since 1970-01-01: (year, month 1–12, day 1–31).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // Both ranges are tiny (1..=31, 1..=12), so the casts cannot truncate.
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// UTC calendar fields of `secs` since the epoch.
pub fn utc_parts(secs: i64) -> Parts {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    Parts { year, month, day, hour: rem / 3600, min: rem / 60 % 60, sec: rem % 60 }
}

/// Local calendar fields of `secs` (the process's `TZ`); UTC if the C library cannot say.
pub fn local_parts(secs: i64) -> Parts {
    let Ok(tm) = fsys::localtime(secs) else {
        return utc_parts(secs);
    };
    let field = |v: libc::c_int, max: u32| u32::try_from(v).unwrap_or(0).min(max);
    Parts {
        year: i64::from(tm.tm_year) + 1900,
        month: field(tm.tm_mon, 11) + 1,
        day: field(tm.tm_mday, 31).max(1),
        hour: field(tm.tm_hour, 23),
        min: field(tm.tm_min, 59),
        sec: field(tm.tm_sec, 60),
    }
}

/// Appends `YYYYMMDDHHMMSS`; years outside 0–9999 are clamped to the first or last second
/// representable, so the field always has exactly 14 digits.
pub fn push_mdtm(out: &mut Vec<u8>, p: &Parts) {
    let p = if p.year < 0 {
        Parts { year: 0, month: 1, day: 1, hour: 0, min: 0, sec: 0 }
    } else if p.year > 9999 {
        Parts { year: 9999, month: 12, day: 31, hour: 23, min: 59, sec: 59 }
    } else {
        *p
    };
    push_num(out, p.year as u64, 4);
    for v in [p.month, p.day, p.hour, p.min, p.sec] {
        push_num(out, u64::from(v), 2);
    }
}

/// Appends `v` in decimal, zero-padded to at least `width` digits.
pub(crate) fn push_num(out: &mut Vec<u8>, v: u64, width: usize) {
    let mut digits = [0u8; 20];
    let mut n = v;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let len = digits.len() - i;
    out.extend(std::iter::repeat_n(b'0', width.saturating_sub(len)));
    out.extend_from_slice(&digits[i..]);
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(year) => 29,
        _ => 28,
    }
}

/// Parses `YYYYMMDDHHMMSS[.sss]` (UTC, fraction ignored) into seconds since the epoch.
/// Anything else, or an impossible date, is `None`.
pub fn parse_mdtm(s: &[u8]) -> Option<i64> {
    let (digits, frac) = match memchr::memchr(b'.', s) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    if digits.len() != 14 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if let Some(f) = frac
        && (f.is_empty() || !f.iter().all(u8::is_ascii_digit))
    {
        return None;
    }
    let num = |a: usize, b: usize| digits[a..b].iter().fold(0u32, |acc, &d| acc * 10 + u32::from(d - b'0'));
    let (year, month, day) = (i64::from(num(0, 4)), num(4, 6), num(6, 8));
    let (hour, min, sec) = (num(8, 10), num(10, 12), num(12, 14));
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || min > 59 || sec > 59 {
        return None;
    }
    let secs = i64::from(hour * 3600 + min * 60 + sec);
    Some(days_from_civil(year, month, day) * 86_400 + secs)
}

/// English month abbreviations, as `ls` prints them.
pub const MONTHS: [&[u8; 3]; 12] =
    [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];
/// An `ls` date shows `HH:MM` if the time is younger than this (about six months)...
pub const RECENT_SECS: i64 = 15_552_000;
/// ...and not further in the future than this; otherwise it shows the year.
pub const FUTURE_SLACK_SECS: i64 = 3600;

/// Appends the `ls -l` date of `mtime`: `Mon DD HH:MM` when recent relative to `now`,
/// `Mon DD  YYYY` otherwise (day space-padded to two columns; years before 0 print as 0).
pub fn push_ls_date(out: &mut Vec<u8>, mtime: i64, now: i64, local_time: bool) {
    let p = if local_time { local_parts(mtime) } else { utc_parts(mtime) };
    let month = usize::try_from(p.month).map_or(0, |m| m.clamp(1, 12) - 1);
    out.extend_from_slice(MONTHS[month]);
    out.push(b' ');
    push_right(out, u64::from(p.day), 2);
    out.push(b' ');
    let recent = mtime > now.saturating_sub(RECENT_SECS) && mtime <= now.saturating_add(FUTURE_SLACK_SECS);
    if recent {
        push_num(out, u64::from(p.hour), 2);
        out.push(b':');
        push_num(out, u64::from(p.min), 2);
    } else {
        out.push(b' ');
        push_right(out, u64::try_from(p.year).unwrap_or(0), 4);
    }
}

/// Appends `v` right-aligned in `width` columns (wider numbers are printed whole).
pub(crate) fn push_right(out: &mut Vec<u8>, v: u64, width: usize) {
    let digits = v.checked_ilog10().map_or(1, |l| l as usize + 1);
    out.extend(std::iter::repeat_n(b' ', width.saturating_sub(digits)));
    push_num(out, v, 0);
}

/// Seconds since the epoch now (negative if the clock is before 1970).
pub fn now_secs() -> i64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mdtm(secs: i64) -> String {
        let mut v = Vec::new();
        push_mdtm(&mut v, &utc_parts(secs));
        String::from_utf8(v).expect("ascii")
    }

    #[test]
    fn known_dates() {
        assert_eq!(mdtm(0), "19700101000000");
        assert_eq!(mdtm(978_397_200), "20010102010000");
        assert_eq!(mdtm(951_782_400), "20000229000000");
        assert_eq!(mdtm(1_700_000_000), "20231114221320");
        assert_eq!(mdtm(-1), "19691231235959");
        assert_eq!(mdtm(-86_400 * 365), "19690101000000");
        assert_eq!(mdtm(253_402_300_799), "99991231235959");
    }

    #[test]
    fn negative_and_far_future() {
        let p = utc_parts(-62_135_596_800); // 0001-01-01T00:00:00Z
        assert_eq!((p.year, p.month, p.day), (1, 1, 1));
        let p = utc_parts(32_503_680_000); // 3000-01-01
        assert_eq!((p.year, p.month, p.day, p.hour), (3000, 1, 1, 0));
        // Extremes do not panic and clamp when printed.
        let hi = utc_parts(i64::MAX);
        assert!(hi.year > 9999);
        assert_eq!(mdtm(i64::MAX), "99991231235959");
        assert_eq!(mdtm(i64::MIN), "00000101000000");
    }

    #[test]
    fn round_trip_every_day_for_a_few_centuries() {
        let mut t = -4_000_000_000i64;
        while t < 8_000_000_000 {
            let mut v = Vec::new();
            push_mdtm(&mut v, &utc_parts(t));
            assert_eq!(parse_mdtm(&v), Some(t), "{}", String::from_utf8_lossy(&v));
            t += 86_400 + 3_607;
        }
    }

    #[test]
    fn parse_rejects_garbage() {
        assert_eq!(parse_mdtm(b"20010102010000.123"), Some(978_397_200));
        assert_eq!(parse_mdtm(b"20010102010000.5"), Some(978_397_200));
        for bad in [
            &b""[..],
            b"2001010201000",
            b"200101020100000",
            b"20010102010000.",
            b"20010102010000.x",
            b"2001010201000a",
            b"20011302010000",
            b"20010002010000",
            b"20010230010000",
            b"19000229000000",
            b"20010102240000",
            b"20010102016000",
            b"20010102010060",
            b"+0010102010000",
            b"\xff\xfe",
        ] {
            assert_eq!(parse_mdtm(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse_mdtm(b"20000229000000"), Some(951_782_400));
    }

    #[test]
    fn local_parts_are_sane() {
        let now = now_secs();
        assert!(now > 1_600_000_000);
        let l = local_parts(now);
        let u = utc_parts(now);
        assert!((l.year - u.year).abs() <= 1);
        assert!((1..=12).contains(&l.month));
        assert!((1..=31).contains(&l.day));
    }

    #[test]
    fn ls_dates_recent_old_future() {
        const OLD: i64 = 978_397_200; // 2001-01-02 01:00:00 UTC
        let date = |mtime: i64, now: i64| {
            let mut out = Vec::new();
            push_ls_date(&mut out, mtime, now, false);
            String::from_utf8(out).expect("ascii")
        };
        assert_eq!(date(OLD, OLD), "Jan  2 01:00");
        assert_eq!(date(OLD, OLD + RECENT_SECS - 1), "Jan  2 01:00");
        assert_eq!(date(OLD, OLD + RECENT_SECS), "Jan  2  2001");
        assert_eq!(date(OLD + 3600, OLD), "Jan  2 02:00");
        assert_eq!(date(OLD + 3601, OLD), "Jan  2  2001");
        assert_eq!(date(1_700_000_000, 1_700_000_000), "Nov 14 22:13");
        assert_eq!(date(-86_400 * 400, OLD), "Nov 27  1968");
        assert!(date(i64::MAX, OLD).ends_with("  292277026596")); // far future: whole year
        assert_eq!(date(i64::MIN, 0).len(), 12);
        assert_eq!(date(OLD, OLD + 60).len(), date(OLD, i64::MAX).len());
        let mut out = Vec::new();
        push_ls_date(&mut out, OLD, OLD, true);
        assert_eq!(out.len(), 12);
    }

    #[test]
    fn push_num_pads() {
        let mut v = Vec::new();
        push_num(&mut v, 7, 2);
        push_num(&mut v, 12345, 2);
        push_num(&mut v, u64::MAX, 0);
        assert_eq!(v, b"0712345".iter().copied().chain(u64::MAX.to_string().bytes()).collect::<Vec<_>>());
    }
}
