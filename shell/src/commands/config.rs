//! config: get, set, unset, list and history of configuration rows.

use super::{parse, Ctx, Spec};
use crate::output::{self, Format};
use crate::session::{CmdResult, Failure};
use crate::spec;
use clap::{Parser, Subcommand};
use dbos_engine::{Entry, Space};
use serde_json::json;

pub fn specs() -> Vec<Spec> {
    vec![spec!(Config, config)]
}

/// Read and change configuration rows.
#[derive(Parser)]
#[command(
    name = "config",
    about = "Get, set, unset and list configuration keys, and show their history",
    disable_version_flag = true
)]
struct Config {
    #[command(subcommand)]
    op: Op,
}

#[derive(Subcommand)]
enum Op {
    /// Print a key's value.
    Get {
        /// Read as of a moment.
        #[arg(long = "as-of", value_name = "REF")]
        as_of: Option<String>,
        /// The key.
        key: String,
    },
    /// Set a key.
    Set {
        /// The key (letters, digits and ._-:/@).
        key: String,
        /// The value.
        value: String,
    },
    /// Remove a key.
    Unset {
        /// The key.
        key: String,
    },
    /// List every key and value.
    List {
        /// List as of a moment.
        #[arg(long = "as-of", value_name = "REF")]
        as_of: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Every version of a key, newest first.
    History {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
        /// The key.
        key: String,
    },
}

fn config(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Config>(ctx, argv)? else {
        return Ok(0);
    };
    match a.op {
        Op::Get { as_of, key } => {
            let v = ctx
                .sess
                .read(as_of.as_deref(), |tx| Ok(tx.config_get(&key)?))?;
            match v {
                Some(v) => {
                    ctx.println(&v);
                    Ok(0)
                }
                None => Err(Failure::Failed(format!("{key}: not set"))),
            }
        }
        Op::Set { key, value } => ctx.sess.write(|tx| {
            tx.config_set(&key, &value)?;
            Ok(0)
        }),
        Op::Unset { key } => ctx.sess.write(|tx| {
            tx.config_unset(&key)?;
            Ok(0)
        }),
        Op::List { as_of, format } => {
            let rows = ctx
                .sess
                .read(as_of.as_deref(), |tx| Ok(tx.config_list()?))?;
            if format == Format::Json {
                let m: serde_json::Map<String, serde_json::Value> =
                    rows.into_iter().map(|(k, v)| (k, json!(v))).collect();
                ctx.print(&output::json(&serde_json::Value::Object(m)));
            } else {
                for (k, v) in rows {
                    ctx.println(&format!("{k}={v}"));
                }
            }
            Ok(0)
        }
        Op::History { format, key } => {
            dbos_engine::check_config_key(&key)?;
            let branch = ctx.sess.branch.clone();
            let versions = ctx
                .sess
                .engine
                .history(&branch, None, Space::Config, &key)?;
            if versions.is_empty() {
                return Err(Failure::Failed(format!("{key}: no history")));
            }
            let value = |e: &Option<Entry>| match e {
                Some(Entry::Value(v)) => Some(v.clone()),
                _ => None,
            };
            if format == Format::Json {
                let v: Vec<_> = versions
                    .iter()
                    .map(|(t, e)| json!({"tx": super::history::tx_json(t), "value": value(e)}))
                    .collect();
                ctx.print(&output::json(&json!(v)));
            } else {
                for (t, e) in &versions {
                    let shown = value(e)
                        .map(|v| format!("= {v}"))
                        .unwrap_or_else(|| "(unset)".into());
                    ctx.println(&format!(
                        "T{:<5} {}  {}  {}  {}",
                        t.id,
                        output::time(t.time_us),
                        shown,
                        t.author,
                        t.command
                    ));
                }
            }
            Ok(0)
        }
    }
}
