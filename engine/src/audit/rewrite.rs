//! Finding the audit views a query names and its SQL:2011 temporal clauses
//! (`view FOR SYSTEM_TIME AS OF r | BETWEEN a AND b | ALL`).
//!
//! This is not a security boundary: read-only access is enforced by the
//! database (see `backend::Backend::query_readonly`). The scanner only skips
//! string literals, quoted identifiers and comments correctly, so that a
//! clause or a view name inside them is left alone.

use crate::error::{Error, Result};

/// A temporal clause after a view name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Clause {
    /// `FOR SYSTEM_TIME AS OF REF`.
    AsOf(String),
    /// `FOR SYSTEM_TIME BETWEEN REF AND REF`.
    Between(String, String),
    /// `FOR SYSTEM_TIME ALL`.
    All,
}

/// One view reference that carries a temporal clause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemporalRef {
    /// The view, lower case.
    pub view: String,
    /// The clause.
    pub clause: Clause,
}

/// A query split into what the engine must provide and the text to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scan {
    /// Views named without a clause (lower case, each once, in order).
    pub plain: Vec<String>,
    /// Views named with a clause; the rewritten text refers to the i-th as
    /// `temporal_name(i)`.
    pub temporal: Vec<TemporalRef>,
    /// The query with each clause replaced by a reference to its CTE.
    pub text: String,
    /// Where the query's own `WITH` list starts (after `WITH` and an
    /// optional `RECURSIVE`), if it has one: the engine's CTEs go there.
    pub with_at: Option<usize>,
    /// True when the query's own `WITH` is `WITH RECURSIVE`.
    pub recursive: bool,
}

/// The CTE name standing for the i-th temporal reference.
pub fn temporal_name(i: usize) -> String {
    format!("dbos_temporal_{i}")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    Word,
    Str,
    Other,
}

/// Tokens with their byte spans; whitespace and comments dropped.
fn tokens(sql: &str) -> Result<Vec<(Tok, usize, usize)>> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let end = sql[i + 2..]
                .find("*/")
                .ok_or_else(|| bad("a /* comment is not closed"))?;
            i += 2 + end + 2;
        } else if c == b'\'' || c == b'"' || c == b'`' {
            let start = i;
            i += 1;
            loop {
                match b.get(i) {
                    None => {
                        return Err(bad(&format!(
                            "a {} quote opened at byte {start} is not closed",
                            c as char
                        )))
                    }
                    Some(&q) if q == c => {
                        if b.get(i + 1) == Some(&c) {
                            i += 2;
                        } else {
                            i += 1;
                            break;
                        }
                    }
                    Some(_) => i += 1,
                }
            }
            let kind = if c == b'\'' { Tok::Str } else { Tok::Other };
            out.push((kind, start, i));
        } else if c == b'[' {
            // SQLite's [quoted identifier].
            let start = i;
            let end = sql[i..]
                .find(']')
                .ok_or_else(|| bad("a [ identifier is not closed"))?;
            i += end + 1;
            out.push((Tok::Other, start, i));
        } else if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            let start = i;
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$' || b[i] >= 0x80)
            {
                i += 1;
            }
            out.push((Tok::Word, start, i));
        } else {
            let start = i;
            i += sql[i..].chars().next().map(char::len_utf8).unwrap_or(1);
            out.push((Tok::Other, start, i));
        }
    }
    Ok(out)
}

fn bad(reason: &str) -> Error {
    Error::Sql(format!("cannot read the query: {reason}"))
}

/// Words that can follow a table reference and are not an alias.
const NOT_ALIAS: &[&str] = &[
    "where",
    "join",
    "inner",
    "left",
    "right",
    "full",
    "cross",
    "natural",
    "on",
    "using",
    "group",
    "order",
    "limit",
    "union",
    "except",
    "intersect",
    "having",
    "window",
    "offset",
    "fetch",
    "for",
    "returning",
    "outer",
    "lateral",
    "tablesample",
    "indexed",
    "not",
];

/// Scan a query for the names `is_view` accepts (given lower case).
pub fn scan(sql: &str, is_view: impl Fn(&str) -> bool) -> Result<Scan> {
    let toks = tokens(sql)?;
    if let Some(semi) = toks
        .iter()
        .position(|t| t.0 == Tok::Other && &sql[t.1..t.2] == ";")
    {
        if semi + 1 < toks.len() {
            return Err(Error::Sql(
                "only one statement at a time: remove what follows the first `;`".to_string(),
            ));
        }
    }
    let word = |k: usize| -> Option<String> {
        toks.get(k)
            .filter(|t| t.0 == Tok::Word)
            .map(|t| sql[t.1..t.2].to_ascii_lowercase())
    };
    let mut plain: Vec<String> = Vec::new();
    let mut temporal = Vec::new();
    let mut text = String::with_capacity(sql.len() + 32);
    let mut copied = 0;
    let mut with_at = None;
    let mut recursive = false;
    if word(0).as_deref() == Some("with") {
        let mut after = 1;
        if word(1).as_deref() == Some("recursive") {
            recursive = true;
            after = 2;
        }
        with_at = Some(toks.get(after).map(|t| t.1).unwrap_or(sql.len()));
    }
    let mut k = 0;
    while k < toks.len() {
        let Some(w) = word(k) else {
            k += 1;
            continue;
        };
        // A qualified name (schema.view, or view.column) is not a view
        // reference with a clause; a bare name still gets its CTE.
        let qualified =
            k > 0 && toks[k - 1].0 == Tok::Other && &sql[toks[k - 1].1..toks[k - 1].2] == ".";
        if qualified || !is_view(&w) {
            k += 1;
            continue;
        }
        if word(k + 1).as_deref() == Some("for") && word(k + 2).as_deref() == Some("system_time") {
            let (clause, next) = clause_at(sql, &toks, k + 3)?;
            let name = temporal_name(temporal.len());
            temporal.push(TemporalRef {
                view: w.clone(),
                clause,
            });
            text.push_str(&sql[copied..toks[k].1]);
            text.push_str(&name);
            let aliased = match word(next) {
                Some(a) => a == "as" || !NOT_ALIAS.contains(&a.as_str()),
                None => toks
                    .get(next)
                    .map(|t| t.0 == Tok::Other && sql[t.1..t.2].starts_with('"'))
                    .unwrap_or(false),
            };
            if !aliased {
                text.push_str(" AS ");
                text.push_str(&sql[toks[k].1..toks[k].2]);
            }
            copied = toks.get(next - 1).map(|t| t.2).unwrap_or(sql.len());
            k = next;
            continue;
        }
        if !plain.contains(&w) {
            plain.push(w);
        }
        k += 1;
    }
    text.push_str(&sql[copied..]);
    // Byte offsets move when clauses before the WITH list are rewritten;
    // a WITH list starts before any of them, so `with_at` stays true.
    Ok(Scan {
        plain,
        temporal,
        text,
        with_at,
        recursive,
    })
}

/// Parse the clause after `FOR SYSTEM_TIME`, starting at token `k`. Gives
/// the clause and the index of the first token after it.
fn clause_at(sql: &str, toks: &[(Tok, usize, usize)], k: usize) -> Result<(Clause, usize)> {
    let word = |k: usize| -> Option<String> {
        toks.get(k)
            .filter(|t| t.0 == Tok::Word)
            .map(|t| sql[t.1..t.2].to_ascii_lowercase())
    };
    match word(k).as_deref() {
        Some("all") => Ok((Clause::All, k + 1)),
        Some("as") if word(k + 1).as_deref() == Some("of") => {
            let (r, next) = ref_at(sql, toks, k + 2)?;
            Ok((Clause::AsOf(r), next))
        }
        Some("between") => {
            let (a, next) = ref_at(sql, toks, k + 1)?;
            if word(next).as_deref() != Some("and") {
                return Err(Error::Sql(
                    "FOR SYSTEM_TIME BETWEEN needs `AND`: FOR SYSTEM_TIME BETWEEN REF AND REF"
                        .to_string(),
                ));
            }
            let (b, next) = ref_at(sql, toks, next + 1)?;
            Ok((Clause::Between(a, b), next))
        }
        _ => Err(Error::Sql(
            "FOR SYSTEM_TIME must be followed by AS OF REF, BETWEEN REF AND REF, or ALL"
                .to_string(),
        )),
    }
}

/// A REF: a quoted string ('10m ago', '2026-11-23 10:00') or a run of
/// characters without spaces (T12, HEAD~2, main@T4, a tag).
fn ref_at(sql: &str, toks: &[(Tok, usize, usize)], k: usize) -> Result<(String, usize)> {
    let Some(&(kind, start, end)) = toks.get(k) else {
        return Err(Error::Sql(
            "FOR SYSTEM_TIME: a REF is missing at the end of the query".into(),
        ));
    };
    if kind == Tok::Str {
        return Ok((sql[start + 1..end - 1].replace("''", "'"), k + 1));
    }
    // Glue adjacent tokens with no space between them: HEAD~2, main@T4.
    let mut j = k;
    let mut stop = end;
    while let Some(&(_, s, e)) = toks.get(j + 1) {
        let piece = &sql[s..e];
        if s != stop || matches!(piece, ")" | "," | ";") {
            break;
        }
        stop = e;
        j += 1;
    }
    let text = &sql[start..stop];
    if matches!(text, ")" | "," | ";") {
        return Err(Error::Sql(format!(
            "FOR SYSTEM_TIME: expected a REF, found {text:?}"
        )));
    }
    Ok((text.to_string(), j + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn views(v: &str) -> bool {
        ["files", "file_history", "transactions"].contains(&v)
    }

    #[test]
    fn plain_views_are_listed_once() {
        let s = scan(
            "SELECT * FROM files JOIN transactions t ON files.x = t.id, files",
            views,
        )
        .unwrap();
        assert_eq!(s.plain, vec!["files", "transactions"]);
        assert!(s.temporal.is_empty());
        assert_eq!(
            s.text,
            "SELECT * FROM files JOIN transactions t ON files.x = t.id, files"
        );
    }

    #[test]
    fn as_of_is_replaced_and_aliased_to_the_view_name() {
        let s = scan(
            "SELECT path FROM files FOR SYSTEM_TIME AS OF T12 WHERE size > 0",
            views,
        )
        .unwrap();
        assert_eq!(
            s.temporal,
            vec![TemporalRef {
                view: "files".into(),
                clause: Clause::AsOf("T12".into())
            }]
        );
        assert_eq!(
            s.text,
            "SELECT path FROM dbos_temporal_0 AS files WHERE size > 0"
        );
        assert!(s.plain.is_empty());
    }

    #[test]
    fn quoted_refs_glued_refs_and_user_aliases() {
        let s = scan(
            "select * from FILE_HISTORY for system_time between '10m ago' and main@T4 h, \
             files FOR SYSTEM_TIME AS OF HEAD~2)",
            views,
        )
        .unwrap();
        assert_eq!(
            s.temporal[0].clause,
            Clause::Between("10m ago".into(), "main@T4".into())
        );
        assert_eq!(s.temporal[1].clause, Clause::AsOf("HEAD~2".into()));
        assert_eq!(
            s.text,
            "select * from dbos_temporal_0 h, \
             dbos_temporal_1 AS files)"
        );
    }

    #[test]
    fn all_and_strings_and_comments_are_left_alone() {
        let s = scan(
            "SELECT 'files FOR SYSTEM_TIME ALL' -- files\n FROM \"files\" /* files */, files FOR SYSTEM_TIME ALL",
            views,
        )
        .unwrap();
        assert_eq!(s.temporal.len(), 1);
        assert_eq!(s.temporal[0].clause, Clause::All);
        assert!(s.text.ends_with("dbos_temporal_0 AS files"));
        assert!(s
            .text
            .starts_with("SELECT 'files FOR SYSTEM_TIME ALL' -- files\n"));
    }

    #[test]
    fn the_users_with_list_is_found() {
        let s = scan(
            "WITH RECURSIVE x(n) AS (SELECT 1) SELECT * FROM x, files",
            views,
        )
        .unwrap();
        assert!(s.recursive);
        assert_eq!(&s.text[s.with_at.unwrap()..s.with_at.unwrap() + 1], "x");
        let s = scan("with y as (select 1) select 2", views).unwrap();
        assert!(!s.recursive);
        assert_eq!(s.with_at, Some(5));
    }

    #[test]
    fn malformed_clauses_are_named() {
        for q in [
            "SELECT * FROM files FOR SYSTEM_TIME",
            "SELECT * FROM files FOR SYSTEM_TIME FROM T1",
            "SELECT * FROM files FOR SYSTEM_TIME BETWEEN T1 T2",
            "SELECT * FROM files FOR SYSTEM_TIME AS OF",
            "SELECT 'unclosed",
            "SELECT 1; DELETE FROM versions",
        ] {
            let e = scan(q, views).unwrap_err().to_string();
            assert!(
                e.contains("FOR SYSTEM_TIME")
                    || e.contains("not closed")
                    || e.contains("one statement"),
                "{q}: {e}"
            );
        }
    }

    #[test]
    fn qualified_names_are_not_views() {
        let s = scan("SELECT * FROM main.transactions", views).unwrap();
        assert!(s.plain.is_empty());
    }
}
