//! Audit with SQL: read-only queries over documented views of the whole
//! history, with SQL:2011 `FOR SYSTEM_TIME` clauses.
//!
//! The views (`views.rs`) are common table expressions put in front of the
//! user's query, reading the base tables through a lineage fixed for that
//! query (the shell's branch at its head or at `--as-of`, or the moment a
//! `FOR SYSTEM_TIME` clause names). They shadow the base tables of the same
//! name (`transactions`, `branches`, `shell_history`) for that one query;
//! `main.transactions` (SQLite) or `public.transactions` (PostgreSQL) still
//! reach the raw rows. The backend runs the statement on a connection or
//! transaction that the database itself keeps read-only.

pub mod rewrite;
pub mod views;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::refs::Moment;
use crate::types::Lineage;
use rewrite::{scan, temporal_name, Clause};
use views::{body, kind, Kind, Window};

pub use views::{Dialect, VIEWS};

/// One value of a result row.
#[derive(Clone, Debug, PartialEq)]
pub enum SqlValue {
    /// SQL NULL.
    Null,
    /// An integer (booleans on PostgreSQL too).
    Integer(i64),
    /// A floating-point number.
    Real(f64),
    /// Text (and, on PostgreSQL, any type without a closer match, in its
    /// text form).
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

/// A query's result: column names and every row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SqlRows {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// Rows, each with one value per column.
    pub rows: Vec<Vec<SqlValue>>,
}

impl Engine {
    /// Run a read-only query over the audit views as seen from `branch`
    /// (at its head, or at the REF `as_of`).
    pub fn sql(&mut self, branch: &str, as_of: Option<&str>, query: &str) -> Result<SqlRows> {
        self.sql_cancellable(branch, as_of, query, None)
    }

    /// `sql`, stopped with an error when `cancel` (polled while the query
    /// runs) returns true.
    pub fn sql_cancellable(
        &mut self,
        branch: &str,
        as_of: Option<&str>,
        query: &str,
        cancel: Option<fn() -> bool>,
    ) -> Result<SqlRows> {
        let text = self.sql_text(branch, as_of, query)?;
        self.backend().query_readonly(&text, cancel)
    }

    /// The statement `sql` runs: the views the query names as common table
    /// expressions, then the query with its temporal clauses replaced.
    pub fn sql_text(&mut self, branch: &str, as_of: Option<&str>, query: &str) -> Result<String> {
        if query.trim().is_empty() {
            return Err(Error::Sql("the query is empty".to_string()));
        }
        let s = scan(query, |v| kind(v).is_some())?;
        let base = match as_of {
            Some(r) => self.sql_moment(branch, r)?,
            None => {
                let b = self.branch(branch)?;
                Moment {
                    branch: b.name.clone(),
                    tx: self.branch_tip(&b)?,
                }
            }
        };
        let base_lineage = self.moment_lineage(&base)?;
        let dialect = match &self.dialect {
            Some(d) => d.clone(),
            None => {
                let d = self.backend().dialect()?;
                self.dialect = Some(d.clone());
                d
            }
        };
        let mut ctes = Vec::new();
        for v in &s.plain {
            let k = kind(v).ok_or_else(|| Error::Sql(format!("no view named {v}")))?;
            let window = match k {
                Kind::Versions { history: false, .. } => Window::State,
                _ => Window::All,
            };
            ctes.push(format!(
                "{v} AS ({})",
                body(&dialect, k, &base_lineage, window)
            ));
        }
        for (i, t) in s.temporal.iter().enumerate() {
            let k = kind(&t.view).ok_or_else(|| Error::Sql(format!("no view named {}", t.view)))?;
            if matches!(k, Kind::Branches | Kind::ShellHistory) {
                return Err(Error::Sql(format!(
                    "FOR SYSTEM_TIME does not apply to {}: use it on {}",
                    t.view,
                    temporal_views()
                )));
            }
            let (lineage, window) = self.clause_window(branch, &base_lineage, &t.clause)?;
            ctes.push(format!(
                "{} AS ({})",
                temporal_name(i),
                body(&dialect, k, &lineage, window)
            ));
        }
        if ctes.is_empty() {
            return Ok(s.text);
        }
        let ours = ctes.join(",\n");
        Ok(match s.with_at {
            Some(at) => format!("{}{ours},\n{}", &s.text[..at], &s.text[at..]),
            None => format!("WITH {ours}\n{}", s.text),
        })
    }

    /// A REF as a query moment: a time before the first transaction is the
    /// empty state before it (SQL:2011: nothing existed then), not an error.
    fn sql_moment(&mut self, branch: &str, r: &str) -> Result<Moment> {
        match self.resolve_ref(branch, r) {
            Err(Error::NoTransactionAtTime(_)) => Ok(Moment {
                branch: branch.to_string(),
                tx: 0,
            }),
            other => other,
        }
    }

    /// The lineage and window a temporal clause reads.
    fn clause_window(
        &mut self,
        branch: &str,
        base: &Lineage,
        clause: &Clause,
    ) -> Result<(Lineage, Window)> {
        Ok(match clause {
            Clause::All => (base.clone(), Window::All),
            Clause::AsOf(r) => {
                let m = self.sql_moment(branch, r)?;
                (self.moment_lineage(&m)?, Window::State)
            }
            Clause::Between(a, b) => {
                let ma = self.sql_moment(branch, a)?;
                let mb = self.sql_moment(branch, b)?;
                if ma.tx > mb.tx {
                    return Err(Error::Sql(format!(
                        "FOR SYSTEM_TIME BETWEEN {a} AND {b}: the first moment (T{}) is after the second (T{})",
                        ma.tx, mb.tx
                    )));
                }
                (self.moment_lineage(&mb)?, Window::Between(ma.tx, mb.tx))
            }
        })
    }
}

/// The views a temporal clause applies to, for messages.
fn temporal_views() -> String {
    VIEWS
        .iter()
        .filter(|(_, k)| !matches!(k, Kind::Branches | Kind::ShellHistory))
        .map(|(v, _)| *v)
        .collect::<Vec<_>>()
        .join(", ")
}
