//! A minimal JSON writer for log lines: string escaping (control characters,
//! quotes, backslash; bytes that are not UTF-8 become U+FFFD) and an object
//! builder that emits one line. No serde: the log needs nothing more.

use std::fmt::Write;

/// Appends `s` to `out` as a JSON string literal, quotes included.
pub fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // U+2028/2029 are valid JSON but break JavaScript line parsers.
            c if (c as u32) < 0x20 || c == '\u{7f}' || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends raw bytes (a path, which need not be UTF-8) as a JSON string;
/// each invalid byte becomes U+FFFD.
pub fn push_bytes(out: &mut String, b: &[u8]) {
    push_str(out, &String::from_utf8_lossy(b));
}

/// Builds one JSON object on one line: `{"k":v,...}`.
pub struct Obj {
    buf: String,
}

impl Default for Obj {
    fn default() -> Self {
        Obj::new()
    }
}

impl Obj {
    pub fn new() -> Obj {
        let mut buf = String::with_capacity(256);
        buf.push('{');
        Obj { buf }
    }

    fn key(&mut self, k: &str) {
        if self.buf.len() > 1 {
            self.buf.push(',');
        }
        push_str(&mut self.buf, k);
        self.buf.push(':');
    }

    pub fn str(&mut self, k: &str, v: &str) -> &mut Obj {
        self.key(k);
        push_str(&mut self.buf, v);
        self
    }

    pub fn bytes(&mut self, k: &str, v: &[u8]) -> &mut Obj {
        self.key(k);
        push_bytes(&mut self.buf, v);
        self
    }

    pub fn u64(&mut self, k: &str, v: u64) -> &mut Obj {
        self.key(k);
        let _ = write!(self.buf, "{v}");
        self
    }

    /// A number with three decimals; NaN and infinities (not JSON) become 0.
    pub fn f64(&mut self, k: &str, v: f64) -> &mut Obj {
        self.key(k);
        let v = if v.is_finite() { v } else { 0.0 };
        let _ = write!(self.buf, "{v:.3}");
        self
    }

    /// The finished object.
    pub fn finish(mut self) -> String {
        self.buf.push('}');
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &str) -> String {
        let mut o = String::new();
        push_str(&mut o, s);
        o
    }

    #[test]
    fn escapes_quotes_backslash_and_controls() {
        assert_eq!(esc("plain"), r#""plain""#);
        assert_eq!(esc(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(esc("l1\nl2\r\t"), r#""l1\nl2\r\t""#);
        assert_eq!(esc("\u{0}\u{1}\u{1b}\u{1f}\u{7f}"), r#""\u0000\u0001\u001b\u001f\u007f""#);
        assert_eq!(esc("\u{2028}"), r#""\u2028""#);
    }

    #[test]
    fn keeps_unicode_and_replaces_invalid_bytes() {
        assert_eq!(esc("é/日本"), "\"é/日本\"");
        let mut o = String::new();
        push_bytes(&mut o, b"/a\xff\xfeb");
        assert_eq!(o, "\"/a\u{fffd}\u{fffd}b\"");
    }

    #[test]
    fn builds_one_line_objects() {
        let mut o = Obj::new();
        o.str("event", "login").u64("session", 7).f64("secs", 1.5).bytes("path", b"/x y").f64("bad", f64::NAN);
        assert_eq!(o.finish(), r#"{"event":"login","session":7,"secs":1.500,"path":"/x y","bad":0.000}"#);
        assert_eq!(Obj::new().finish(), "{}");
    }
}
