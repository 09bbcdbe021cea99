//! REFs: the ways a user names a moment. `T<id>`, `HEAD`, `HEAD~N`, `now`,
//! ISO 8601 times (`2026-11-20T10:00:00Z`, `2026-11-20 10:00`, UTC unless an
//! offset is given), relative times (`10m ago`, `2 hours ago`), branch names
//! (their head), tags, and `BRANCH@REF` (`main@T40`, `exp@10m ago`).

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::types::TxId;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// A moment resolved: a branch and the last transaction visible there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Moment {
    /// Branch whose lineage is read.
    pub branch: String,
    /// Last visible transaction.
    pub tx: TxId,
}

/// The parsed form of a REF, before it is resolved against a database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefSpec {
    /// The newest state (`HEAD`, `now`).
    Head,
    /// `HEAD~N`: N transactions before the newest on the branch.
    HeadBack(usize),
    /// `T<id>`.
    Tx(TxId),
    /// A point in time, microseconds since the epoch.
    Time(i64),
    /// A branch or tag name.
    Name(String),
    /// `BRANCH@REF`.
    On(String, Box<RefSpec>),
}

fn bad(text: &str, reason: &str) -> Error {
    Error::BadRef {
        text: text.to_string(),
        reason: reason.to_string(),
    }
}

fn parse_relative(text: &str, now_us: i64) -> Option<i64> {
    let body = text.trim().strip_suffix("ago")?.trim_end();
    let split = body
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(body.len());
    let (num, unit) = body.split_at(split);
    let n: i64 = num.parse().ok()?;
    let secs = match unit.trim() {
        "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        "w" | "week" | "weeks" => 604_800,
        _ => return None,
    };
    Some(now_us - n.checked_mul(secs)?.checked_mul(1_000_000)?)
}

fn parse_time(text: &str) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc).timestamp_micros());
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, fmt) {
            return Some(Utc.from_utc_datetime(&t).timestamp_micros());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Some(
            Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0)?)
                .timestamp_micros(),
        );
    }
    None
}

/// Parse a REF's text (`now_us` anchors relative times).
pub fn parse_ref(text: &str, now_us: i64) -> Result<RefSpec> {
    let t = text.trim();
    if t.is_empty() {
        return Err(bad(text, "empty"));
    }
    if t == "HEAD" || t == "now" {
        return Ok(RefSpec::Head);
    }
    if let Some(n) = t.strip_prefix("HEAD~") {
        return n
            .parse()
            .map(RefSpec::HeadBack)
            .map_err(|_| bad(text, "HEAD~ needs a number"));
    }
    if let Some(id) = t
        .strip_prefix('T')
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
    {
        return id
            .parse()
            .map(RefSpec::Tx)
            .map_err(|_| bad(text, "transaction id too large"));
    }
    if t.ends_with("ago") {
        return parse_relative(t, now_us).map(RefSpec::Time).ok_or_else(|| {
            bad(
                text,
                "expected a relative time such as '10m ago' or '2 hours ago'",
            )
        });
    }
    if t.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        return parse_time(t).map(RefSpec::Time).ok_or_else(|| {
            bad(
                text,
                "expected T<id>, a time such as 2026-11-20T10:00:00Z or '2026-11-20 10:00', or '10m ago'",
            )
        });
    }
    if let Some((branch, rest)) = t.split_once('@') {
        if branch.is_empty() {
            return Err(bad(text, "missing branch name before '@'"));
        }
        let inner = parse_ref(rest, now_us)?;
        if matches!(inner, RefSpec::On(..)) {
            return Err(bad(text, "only one '@' is allowed"));
        }
        return Ok(RefSpec::On(branch.to_string(), Box::new(inner)));
    }
    if t.chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
    {
        return Ok(RefSpec::Name(t.to_string()));
    }
    Err(bad(text, "not a transaction, time, branch or tag"))
}

impl Engine {
    /// Resolve a REF's text as seen from `branch`.
    pub fn resolve_ref(&mut self, branch: &str, text: &str) -> Result<Moment> {
        let spec = parse_ref(text, Utc::now().timestamp_micros())?;
        self.resolve_spec(branch, &spec, text)
    }

    /// Resolve a parsed REF as seen from `branch`.
    pub fn resolve_spec(&mut self, branch: &str, spec: &RefSpec, text: &str) -> Result<Moment> {
        let at = |tx| Moment {
            branch: branch.to_string(),
            tx,
        };
        match spec {
            RefSpec::Head => {
                let b = self.branch(branch)?;
                Ok(at(self.branch_tip(&b)?))
            }
            RefSpec::HeadBack(n) => {
                let log = self.log(branch, None, n + 1)?;
                log.get(*n).map(|t| at(t.id)).ok_or_else(|| {
                    bad(
                        text,
                        &format!("branch {branch} has fewer than {} transactions", n + 1),
                    )
                })
            }
            RefSpec::Tx(id) => {
                self.tx_info(*id)?;
                Ok(at(*id))
            }
            RefSpec::Time(us) => Ok(at(self.tx_at_time(*us)?)),
            RefSpec::Name(name) => {
                if let Some(b) = self.backend.branch_by_name(name)? {
                    return Ok(Moment {
                        branch: b.name.clone(),
                        tx: self.branch_tip(&b)?,
                    });
                }
                if let Some((bid, tx)) = self.backend.tag(name)? {
                    let b = self
                        .backend
                        .branch_by_id(bid)?
                        .ok_or_else(|| Error::NoSuchBranch(name.clone()))?;
                    return Ok(Moment { branch: b.name, tx });
                }
                Err(bad(text, "no branch or tag has that name"))
            }
            RefSpec::On(b, inner) => {
                self.branch(b)?;
                self.resolve_spec(b, inner, text)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let now = 1_000_000_000_000_000;
        assert_eq!(parse_ref("T42", now).unwrap(), RefSpec::Tx(42));
        assert_eq!(parse_ref("HEAD", now).unwrap(), RefSpec::Head);
        assert_eq!(parse_ref("HEAD~3", now).unwrap(), RefSpec::HeadBack(3));
        assert_eq!(
            parse_ref("10m ago", now).unwrap(),
            RefSpec::Time(now - 600_000_000)
        );
        assert_eq!(
            parse_ref("2 hours ago", now).unwrap(),
            RefSpec::Time(now - 7_200_000_000)
        );
        assert_eq!(
            parse_ref("2026-11-20T10:00:00Z", now).unwrap(),
            RefSpec::Time(1_795_168_800_000_000)
        );
        assert_eq!(
            parse_ref("2026-11-20 10:00", now).unwrap(),
            RefSpec::Time(1_795_168_800_000_000)
        );
        assert_eq!(
            parse_ref("main@T40", now).unwrap(),
            RefSpec::On("main".into(), Box::new(RefSpec::Tx(40)))
        );
        assert_eq!(
            parse_ref("before-upgrade", now).unwrap(),
            RefSpec::Name("before-upgrade".into())
        );
    }

    #[test]
    fn rejects_malformed() {
        let now = 0;
        for bad in [
            "",
            "HEAD~x",
            "10 parsecs ago",
            "2026-13-45",
            "a@b@T1",
            "@T1",
            "x y",
        ] {
            assert!(parse_ref(bad, now).is_err(), "{bad:?} should be refused");
        }
    }
}
