//! metrics: the machine samples dbos-init stores as `metric` rows.

use super::{parse, Ctx, Spec};
use crate::output;
use crate::session::CmdResult;
use crate::spec;
use clap::Parser;
use dbos_engine::{Entry, KeyRange, Space};
use serde_json::Value;

pub fn specs() -> Vec<Spec> {
    vec![spec!(Metrics, metrics)]
}

/// Output format of `metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Default)]
enum MetricsFormat {
    /// One line per sample (with sparklines on a terminal).
    #[default]
    Table,
    /// One JSON array.
    Json,
}

/// Show machine samples (load, memory, processes, transactions per second, database size).
#[derive(Parser)]
#[command(
    name = "metrics",
    about = "Show the machine samples recorded by dbos-init",
    disable_version_flag = true
)]
struct Metrics {
    /// Only samples taken at or after the time of this moment.
    #[arg(long, value_name = "REF")]
    since: Option<String>,
    /// At most this many samples, the newest (default 20 without --since).
    #[arg(short = 'n', long, value_name = "N")]
    limit: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: MetricsFormat,
}

/// Eight-level bars for `values`, scaled between their minimum and maximum.
fn sparkline(values: &[f64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    values
        .iter()
        .map(|v| {
            if hi > lo {
                BARS[(((v - lo) / (hi - lo)) * 7.0).round().clamp(0.0, 7.0) as usize]
            } else {
                BARS[0]
            }
        })
        .collect()
}

fn num(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(0.0)
}

fn metrics(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Metrics>(ctx, argv)? else {
        return Ok(0);
    };
    let since_us = match &a.since {
        Some(r) => {
            let m = ctx.sess.moment(r)?;
            Some(ctx.sess.engine.tx_info(m.tx)?.time_us)
        }
        None => None,
    };
    // Keys are 20-digit sample times: read from --since on, or the newest
    // N, never the whole space.
    let limit = a.limit.or(since_us.is_none().then_some(20));
    let range = KeyRange {
        from: since_us.map(|t| format!("{:020}", t.max(0))),
        limit,
        descending: limit.is_some(),
    };
    let rows = ctx
        .sess
        .read(None, |tx| Ok(tx.list_space_range(Space::Metric, &range)?))?;
    let mut samples: Vec<Value> = rows
        .into_iter()
        .filter_map(|(_, e)| match e {
            Entry::Value(v) => serde_json::from_str(&v).ok(),
            _ => None,
        })
        .collect();
    if range.descending {
        samples.reverse();
    }
    if a.format == MetricsFormat::Json {
        ctx.print(&output::json(&Value::Array(samples)));
        return Ok(0);
    }
    if samples.is_empty() {
        ctx.println("no samples (dbos-init records them every init.metrics.interval seconds)");
        return Ok(0);
    }
    ctx.println("TIME                     LOAD1  LOAD5 LOAD15   MEM USED   MEM TOTAL  PROCS    TX/S    DB SIZE");
    let mut loads = Vec::new();
    let mut used = Vec::new();
    for s in &samples {
        let total = num(s, "mem_total_kb");
        let u = total - num(s, "mem_available_kb");
        loads.push(s["load"][0].as_f64().unwrap_or(0.0));
        used.push(u);
        let tps = s["tps"]
            .as_f64()
            .map(|t| format!("{t:.1}"))
            .unwrap_or_else(|| "-".into());
        let db = s["db_bytes"]
            .as_u64()
            .map(|b| format!("{:.1} MiB", b as f64 / 1048576.0))
            .unwrap_or_else(|| "-".into());
        ctx.println(&format!(
            "{}  {:>5.2}  {:>5.2}  {:>5.2}  {:>7.0} MiB {:>7.0} MiB  {:>5}  {:>6}  {:>9}",
            output::time(s["time_us"].as_i64().unwrap_or(0)),
            s["load"][0].as_f64().unwrap_or(0.0),
            s["load"][1].as_f64().unwrap_or(0.0),
            s["load"][2].as_f64().unwrap_or(0.0),
            u / 1024.0,
            total / 1024.0,
            s["processes"].as_u64().unwrap_or(0),
            tps,
            db
        ));
    }
    if ctx.out_is_tty && samples.len() > 1 {
        ctx.println(&format!("load   {}", sparkline(&loads)));
        ctx.println(&format!("memory {}", sparkline(&used)));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::sparkline;

    #[test]
    fn sparkline_scales() {
        assert_eq!(sparkline(&[0.0, 1.0, 2.0, 7.0]), "▁▂▃█");
        assert_eq!(sparkline(&[3.0, 3.0]), "▁▁");
        assert_eq!(sparkline(&[]), "");
    }
}
