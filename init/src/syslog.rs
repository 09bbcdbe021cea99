//! Syslog datagrams (RFC 3164 and RFC 5424) parsed into log rows.
//!
//! A datagram is hostile input: parsing never fails and never panics. A line
//! that is neither format (no PRI, PRI above 191, a broken header) is kept
//! whole as a raw message with severity notice and source `syslog`. Bytes
//! that are not UTF-8 are replaced (lossy), never rejected.

use chrono::{DateTime, Datelike, Local, NaiveDate, TimeZone};
use dbos_engine::LogEntry;

/// Severity given to lines that carry none (syslog "notice").
pub const NOTICE: u8 = 5;

/// Which grammar a datagram followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// BSD syslog: `<PRI>Mmm dd hh:mm:ss HOST TAG[PID]: MSG`.
    Rfc3164,
    /// `<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`.
    Rfc5424,
    /// Neither: stored as received.
    Raw,
}

/// The fields of one syslog message. Absent fields (or RFC 5424's `-`) are None.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Grammar recognised.
    pub format: Format,
    /// Facility (0 kern .. 23 local7).
    pub facility: Option<u8>,
    /// Severity (0 emergency .. 7 debug).
    pub severity: u8,
    /// Event time, microseconds since the epoch, when the sender gave one.
    pub time_us: Option<i64>,
    /// Sender's host name.
    pub hostname: Option<String>,
    /// Application name (5424 APP-NAME, 3164 TAG).
    pub app: Option<String>,
    /// Process id as sent (5424 PROCID may be any token).
    pub pid: Option<String>,
    /// RFC 5424 MSGID.
    pub msgid: Option<String>,
    /// RFC 5424 structured data, verbatim (`[id k="v"]...`).
    pub structured: Option<String>,
    /// The free-form message.
    pub text: String,
}

/// Facility names, indexed by number.
const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

/// Name of a facility number (`user`, `local0`, ...).
pub fn facility_name(f: u8) -> &'static str {
    FACILITIES.get(usize::from(f)).copied().unwrap_or("unknown")
}

impl Message {
    /// The log row for this message, received at `now_us`. Source is
    /// `syslog/APP` (or `syslog`); the message is the text followed by the
    /// other fields in brackets when there are any.
    pub fn to_entry(&self, now_us: i64) -> LogEntry {
        let source = match &self.app {
            Some(app) => format!("syslog/{app}"),
            None => "syslog".to_string(),
        };
        let mut meta = Vec::new();
        if let Some(f) = self.facility {
            meta.push(format!("facility={}", facility_name(f)));
        }
        if let Some(h) = &self.hostname {
            meta.push(format!("host={h}"));
        }
        if let Some(p) = &self.pid {
            meta.push(format!("pid={p}"));
        }
        if let Some(m) = &self.msgid {
            meta.push(format!("msgid={m}"));
        }
        if let Some(sd) = &self.structured {
            meta.push(format!("sd={sd}"));
        }
        let message = if meta.is_empty() || self.format == Format::Raw {
            self.text.clone()
        } else {
            format!("{} [{}]", self.text, meta.join(" "))
        };
        LogEntry {
            time_us: self.time_us.unwrap_or(now_us),
            source,
            severity: self.severity,
            message,
            process_id: None,
        }
    }
}

/// Parse one datagram. `now_us` dates RFC 3164 timestamps, which carry no year.
pub fn parse(datagram: &[u8], now_us: i64) -> Message {
    let text = String::from_utf8_lossy(datagram);
    let line = text.trim_end_matches(['\n', '\r', '\0']);
    parse_pri(line)
        .and_then(|(pri, rest)| {
            if let Some(after) = rest.strip_prefix("1 ") {
                parse_5424(pri, after)
            } else {
                Some(parse_3164(pri, rest, now_us))
            }
        })
        .unwrap_or_else(|| raw(line))
}

fn raw(line: &str) -> Message {
    Message {
        format: Format::Raw,
        facility: None,
        severity: NOTICE,
        time_us: None,
        hostname: None,
        app: None,
        pid: None,
        msgid: None,
        structured: None,
        text: line.to_string(),
    }
}

/// `<PRI>`: one to three digits, at most 191 (facility 23, severity 7).
fn parse_pri(line: &str) -> Option<(u8, &str)> {
    let rest = line.strip_prefix('<')?;
    let end = rest.find('>')?;
    let digits = &rest[..end];
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let pri: u16 = digits.parse().ok()?;
    if pri > 191 {
        return None;
    }
    Some((pri as u8, &rest[end + 1..]))
}

fn split_word(s: &str) -> Option<(&str, &str)> {
    let (w, rest) = s.split_once(' ').unwrap_or((s, ""));
    if w.is_empty() {
        None
    } else {
        Some((w, rest))
    }
}

fn nil(s: &str) -> Option<String> {
    (s != "-").then(|| s.to_string())
}

fn parse_5424(pri: u8, s: &str) -> Option<Message> {
    let (ts, s) = split_word(s)?;
    let (host, s) = split_word(s)?;
    let (app, s) = split_word(s)?;
    let (procid, s) = split_word(s)?;
    let (msgid, s) = split_word(s)?;
    let time_us = match ts {
        "-" => None,
        t => Some(DateTime::parse_from_rfc3339(t).ok()?.timestamp_micros()),
    };
    let (structured, rest) = parse_sd(s)?;
    let msg = match rest {
        "" => "",
        r => r.strip_prefix(' ')?,
    };
    let msg = msg.strip_prefix('\u{feff}').unwrap_or(msg);
    Some(Message {
        format: Format::Rfc5424,
        facility: Some(pri >> 3),
        severity: pri & 7,
        time_us,
        hostname: nil(host),
        app: nil(app),
        pid: nil(procid),
        msgid: nil(msgid),
        structured,
        text: msg.to_string(),
    })
}

/// STRUCTURED-DATA: `-` or one or more `[ID PARAM="VALUE"...]`, where a
/// value escapes `"`, `\` and `]` with a backslash. Returns it verbatim and
/// what follows it.
fn parse_sd(s: &str) -> Option<(Option<String>, &str)> {
    if let Some(rest) = s.strip_prefix('-') {
        return Some((None, rest));
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    if bytes.first() != Some(&b'[') {
        return None;
    }
    while bytes.get(i) == Some(&b'[') {
        i += 1;
        let mut in_quotes = false;
        loop {
            match bytes.get(i)? {
                b'\\' if in_quotes => i += 2,
                b'"' => {
                    in_quotes = !in_quotes;
                    i += 1;
                }
                b']' if !in_quotes => {
                    i += 1;
                    break;
                }
                _ => i += 1,
            }
        }
    }
    // `i` only ever stops after an ASCII byte, so it is a char boundary.
    Some((Some(s.get(..i)?.to_string()), s.get(i..)?))
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `Mmm dd hh:mm:ss` (day space-padded) in local time, in the year that
/// puts it nearest before `now_us`.
fn parse_3164_time(s: &str, now_us: i64) -> Option<i64> {
    let ts = s.get(..15)?;
    let month = MONTHS.iter().position(|m| Some(*m) == ts.get(..3))? as u32 + 1;
    if ts.as_bytes().get(3) != Some(&b' ') || ts.as_bytes().get(6) != Some(&b' ') {
        return None;
    }
    let day: u32 = ts.get(4..6)?.trim_start().parse().ok()?;
    let mut hms = ts.get(7..)?.split(':');
    let h: u32 = hms.next()?.parse().ok()?;
    let m: u32 = hms.next()?.parse().ok()?;
    let sec: u32 = hms.next()?.parse().ok()?;
    let now = DateTime::from_timestamp_micros(now_us)?.with_timezone(&Local);
    let at = |year: i32| -> Option<i64> {
        let naive = NaiveDate::from_ymd_opt(year, month, day)?.and_hms_opt(h, m, sec)?;
        Some(
            Local
                .from_local_datetime(&naive)
                .earliest()?
                .timestamp_micros(),
        )
    };
    let this_year = at(now.year())?;
    // A stamp more than a day ahead was sent last year (around New Year).
    if this_year > now_us + 86_400_000_000 {
        at(now.year() - 1)
    } else {
        Some(this_year)
    }
}

/// A TAG is what precedes `[PID]:` or `:`; tags are short and have no spaces.
fn split_tag(s: &str) -> Option<(String, Option<String>, &str)> {
    let (word, _) = s.split_once(' ').unwrap_or((s, ""));
    if let Some(open) = word.find('[') {
        let close = word[open..].find("]:").map(|c| c + open)?;
        let tag = &word[..open];
        let pid = &word[open + 1..close];
        let rest = &s[close + 2..];
        return Some((
            tag.to_string(),
            Some(pid.to_string()),
            rest.strip_prefix(' ').unwrap_or(rest),
        ));
    }
    let tag = word.strip_suffix(':')?;
    let rest = &s[word.len()..];
    Some((
        tag.to_string(),
        None,
        rest.strip_prefix(' ').unwrap_or(rest),
    ))
}

fn parse_3164(pri: u8, s: &str, now_us: i64) -> Message {
    let mut m = Message {
        format: Format::Rfc3164,
        facility: Some(pri >> 3),
        severity: pri & 7,
        time_us: None,
        hostname: None,
        app: None,
        pid: None,
        msgid: None,
        structured: None,
        text: s.to_string(),
    };
    let mut rest = s;
    if let Some(t) = parse_3164_time(s, now_us) {
        m.time_us = Some(t);
        rest = s.get(16..).unwrap_or("");
        // After the time: HOSTNAME unless the next word is already a tag.
        if split_tag(rest).is_none() {
            if let Some((host, after)) = split_word(rest) {
                if split_tag(after).is_some() {
                    m.hostname = Some(host.to_string());
                    rest = after;
                }
            }
        }
    }
    match split_tag(rest) {
        Some((tag, pid, msg)) if !tag.is_empty() && tag.len() <= 48 => {
            m.app = Some(tag);
            m.pid = pid;
            m.text = msg.to_string();
        }
        _ => m.text = rest.to_string(),
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000_000; // 2023-11-14

    #[test]
    fn rfc3164_with_host_tag_and_pid() {
        let m = parse(
            b"<34>Oct 11 22:14:15 mymachine su[230]: 'su root' failed",
            NOW,
        );
        assert_eq!(m.format, Format::Rfc3164);
        assert_eq!(m.facility, Some(4));
        assert_eq!(m.severity, 2);
        assert_eq!(m.hostname.as_deref(), Some("mymachine"));
        assert_eq!(m.app.as_deref(), Some("su"));
        assert_eq!(m.pid.as_deref(), Some("230"));
        assert_eq!(m.text, "'su root' failed");
        let t = m.time_us.expect("time");
        assert!(t < NOW && t > NOW - 40 * 86_400_000_000);
        let e = m.to_entry(NOW);
        assert_eq!(e.source, "syslog/su");
        assert_eq!(e.severity, 2);
        assert!(e.message.starts_with("'su root' failed ["));
        assert!(e.message.contains("facility=auth"));
    }

    #[test]
    fn rfc3164_without_host_as_logger_sends_locally() {
        let m = parse(b"<13>Nov  4 09:01:02 alice: hello world\n", NOW);
        assert_eq!(m.app.as_deref(), Some("alice"));
        assert_eq!(m.hostname, None);
        assert_eq!(m.pid, None);
        assert_eq!(m.text, "hello world");
        assert_eq!(m.severity, 5);
    }

    #[test]
    fn rfc3164_without_timestamp() {
        let m = parse(b"<14>app[7]: text here", NOW);
        assert_eq!(m.app.as_deref(), Some("app"));
        assert_eq!(m.pid.as_deref(), Some("7"));
        assert_eq!(m.text, "text here");
        assert_eq!(m.time_us, None);
        assert_eq!(m.to_entry(NOW).time_us, NOW);
        let m = parse(b"<14>just words, no tag", NOW);
        assert_eq!(m.app, None);
        assert_eq!(m.text, "just words, no tag");
    }

    #[test]
    fn rfc5424_full() {
        let line = "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 1234 ID47 \
                    [exampleSDID@32473 iut=\"3\" eventSource=\"Application\"] \u{feff}An application event";
        let m = parse(line.as_bytes(), NOW);
        assert_eq!(m.format, Format::Rfc5424);
        assert_eq!(m.facility, Some(20));
        assert_eq!(m.severity, 5);
        assert_eq!(m.time_us, Some(1_065_910_455_003_000));
        assert_eq!(m.hostname.as_deref(), Some("mymachine.example.com"));
        assert_eq!(m.app.as_deref(), Some("evntslog"));
        assert_eq!(m.pid.as_deref(), Some("1234"));
        assert_eq!(m.msgid.as_deref(), Some("ID47"));
        assert_eq!(
            m.structured.as_deref(),
            Some("[exampleSDID@32473 iut=\"3\" eventSource=\"Application\"]")
        );
        assert_eq!(m.text, "An application event", "BOM stripped");
    }

    #[test]
    fn rfc5424_nil_values_and_no_message() {
        let m = parse(b"<14>1 - - - - - -", NOW);
        assert_eq!(m.format, Format::Rfc5424);
        assert_eq!(m.time_us, None);
        assert_eq!(
            (m.hostname, m.app, m.pid, m.msgid, m.structured),
            (None, None, None, None, None)
        );
        assert_eq!(m.text, "");
        let m = parse(b"<14>1 - host app - - - msg", NOW);
        assert_eq!(m.text, "msg");
        assert_eq!(m.to_entry(NOW).message, "msg [facility=user host=host]");
    }

    #[test]
    fn rfc5424_structured_data_with_escapes() {
        let line =
            br#"<13>1 2024-01-01T00:00:00+01:00 h a - - [x@1 k="a\]b\"c" z="\\"][y@2] tail ] text"#;
        let m = parse(line, NOW);
        assert_eq!(m.format, Format::Rfc5424);
        assert_eq!(
            m.structured.as_deref(),
            Some(r#"[x@1 k="a\]b\"c" z="\\"][y@2]"#)
        );
        assert_eq!(m.text, "tail ] text");
        assert_eq!(m.time_us, Some(1_704_063_600_000_000));
    }

    #[test]
    fn malformed_lines_are_kept_raw() {
        for line in [
            &b"no pri at all"[..],
            b"<192>1 - - - - - - too high",
            b"<999>x",
            b"<>empty",
            b"<12",
            b"<1a>x",
            b"",
            b"<13>1 notatime h a - - - x",
            b"<13>1 - h a - - [unterminated",
            b"<13>1 - h",
        ] {
            let m = parse(line, NOW);
            assert_eq!(m.format, Format::Raw, "{:?}", String::from_utf8_lossy(line));
            assert_eq!(m.severity, NOTICE);
            let e = m.to_entry(NOW);
            assert_eq!(e.source, "syslog");
            assert_eq!(e.message, String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn pri_bounds() {
        let m = parse(b"<191>x: y", NOW);
        assert_eq!((m.facility, m.severity), (Some(23), 7));
        let m = parse(b"<0>x: y", NOW);
        assert_eq!((m.facility, m.severity), (Some(0), 0));
    }

    #[test]
    fn non_utf8_is_lossy() {
        let m = parse(b"<13>tag: caf\xe9 \xff\xfe", NOW);
        assert_eq!(m.app.as_deref(), Some("tag"));
        assert!(m.text.starts_with("caf\u{fffd}"));
        let m = parse(b"\xff<13>", NOW);
        assert_eq!(m.format, Format::Raw);
    }

    #[test]
    fn never_panics_on_prefixes_of_valid_lines() {
        let line = "<165>1 2003-10-11T22:14:15.003Z héllo evntslog 1234 ID47 [a@1 k=\"v\\]\"] \u{feff}msg é";
        for i in 0..=line.len() {
            let _ = parse(&line.as_bytes()[..i], NOW);
        }
        let l2 = "<34>Oct 11 22:14:15 mymachine su[230]: 'su root' failé";
        for i in 0..=l2.len() {
            let _ = parse(&l2.as_bytes()[..i], NOW);
        }
    }
}
