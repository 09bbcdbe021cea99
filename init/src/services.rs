//! Services declared by config rows, and the order they start in.
//!
//! ```text
//! service.NAME.exec    = command line, split like a POSIX shell would
//! service.NAME.restart = always | on-failure (default) | never
//! service.NAME.after   = OTHER[,OTHER...]
//! service.NAME.user    = user to run as (optional)
//! service.NAME.cwd     = working directory (optional, default /)
//! ```
//!
//! Pure: config rows in, specs and problems out.

use std::collections::{BTreeMap, BTreeSet};

/// When a service that exited is started again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    /// Whatever the exit status.
    Always,
    /// Unless it exited with status 0.
    OnFailure,
    /// Never.
    Never,
}

impl Restart {
    /// Parse a `service.NAME.restart` value.
    pub fn parse(s: &str) -> Option<Restart> {
        match s.trim() {
            "always" => Some(Restart::Always),
            "on-failure" => Some(Restart::OnFailure),
            "never" | "no" => Some(Restart::Never),
            _ => None,
        }
    }

    /// Whether an exit (`success`: status 0) calls for a restart.
    pub fn wants_restart(self, success: bool) -> bool {
        match self {
            Restart::Always => true,
            Restart::OnFailure => !success,
            Restart::Never => false,
        }
    }
}

/// One service, as its config rows declare it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSpec {
    /// NAME in `service.NAME.*`.
    pub name: String,
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Restart policy.
    pub restart: Restart,
    /// Services started before this one.
    pub after: Vec<String>,
    /// User to run as.
    pub user: Option<String>,
    /// Working directory.
    pub cwd: Option<String>,
}

/// Services in start order, and what kept others from starting.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Startable services, each after everything it names in `after`.
    pub order: Vec<ServiceSpec>,
    /// One line per service not started (or setting ignored), and why.
    pub problems: Vec<String>,
}

/// Read the `service.*` rows into specs, then order them.
pub fn plan(config: &[(String, String)]) -> Plan {
    let mut fields: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut problems = Vec::new();
    for (key, value) in config {
        let Some(rest) = key.strip_prefix("service.") else {
            continue;
        };
        match rest.rsplit_once('.') {
            Some((name, field)) if !name.is_empty() => {
                fields
                    .entry(name.to_string())
                    .or_default()
                    .insert(field.to_string(), value.clone());
            }
            _ => problems.push(format!("config {key}: not service.NAME.FIELD; ignored")),
        }
    }
    let mut specs = Vec::new();
    for (name, f) in fields {
        let mut bad = Vec::new();
        for k in f.keys() {
            if !["exec", "restart", "after", "user", "cwd"].contains(&k.as_str()) {
                problems.push(format!("service {name}: unknown setting {k:?} ignored"));
            }
        }
        let argv = match f.get("exec").map(|e| shlex::split(e)) {
            None => {
                bad.push("no service.NAME.exec".to_string());
                Vec::new()
            }
            Some(None) => {
                bad.push("exec is not a well-formed command line (unbalanced quotes?)".into());
                Vec::new()
            }
            Some(Some(v)) if v.is_empty() => {
                bad.push("exec is empty".into());
                v
            }
            Some(Some(v)) => v,
        };
        let restart = match f.get("restart") {
            None => Restart::OnFailure,
            Some(r) => Restart::parse(r).unwrap_or_else(|| {
                bad.push(format!("restart {r:?} is not always, on-failure or never"));
                Restart::OnFailure
            }),
        };
        let after = f
            .get("after")
            .map(|a| {
                a.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        if !bad.is_empty() {
            problems.push(format!("service {name} not started: {}", bad.join("; ")));
            continue;
        }
        specs.push(ServiceSpec {
            name,
            argv,
            restart,
            after,
            user: f.get("user").filter(|u| !u.is_empty()).cloned(),
            cwd: f.get("cwd").filter(|c| !c.is_empty()).cloned(),
        });
    }
    let mut p = order(specs);
    problems.append(&mut p.problems);
    p.problems = problems;
    p
}

/// Order services so each comes after its `after` list (Kahn's algorithm,
/// ties by name). A service naming a missing one, one in a cycle, or one
/// depending on either is left out and reported.
pub fn order(specs: Vec<ServiceSpec>) -> Plan {
    let mut problems = Vec::new();
    let mut live: BTreeMap<String, ServiceSpec> =
        specs.into_iter().map(|s| (s.name.clone(), s)).collect();
    // Drop services whose dependencies are missing, until none is.
    loop {
        let broken: Vec<(String, String)> = live
            .values()
            .filter_map(|s| {
                s.after
                    .iter()
                    .find(|d| !live.contains_key(*d))
                    .map(|d| (s.name.clone(), d.clone()))
            })
            .collect();
        if broken.is_empty() {
            break;
        }
        for (name, dep) in broken {
            live.remove(&name);
            problems.push(format!(
                "service {name} not started: it is after {dep}, which does not exist or cannot start"
            ));
        }
    }
    let mut waiting: BTreeMap<&str, usize> = live
        .values()
        .map(|s| {
            (
                s.name.as_str(),
                s.after.iter().collect::<BTreeSet<_>>().len(),
            )
        })
        .collect();
    let mut ready: BTreeSet<&str> = waiting
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(k, _)| *k)
        .collect();
    let mut out = Vec::new();
    while let Some(name) = ready.pop_first() {
        waiting.remove(name);
        out.push(name.to_string());
        for s in live.values() {
            if s.after
                .iter()
                .collect::<BTreeSet<_>>()
                .contains(&name.to_string())
            {
                if let Some(n) = waiting.get_mut(s.name.as_str()) {
                    *n -= 1;
                    if *n == 0 {
                        ready.insert(s.name.as_str());
                    }
                }
            }
        }
    }
    for name in waiting.keys() {
        problems.push(format!(
            "service {name} not started: dependency cycle (or after a service in one)"
        ));
    }
    let order = out.iter().filter_map(|n| live.get(n).cloned()).collect();
    Plan { order, problems }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(r: &[(&str, &str)]) -> Vec<(String, String)> {
        r.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn names(p: &Plan) -> Vec<&str> {
        p.order.iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn parses_specs() {
        let p = plan(&rows(&[
            ("service.web.exec", "sh -c 'echo \"hi there\"; sleep 1'"),
            ("service.web.restart", "always"),
            ("service.web.after", "db, cache"),
            ("service.web.user", "www"),
            ("service.web.cwd", "/srv"),
            ("service.db.exec", "db --x"),
            ("service.cache.exec", "cache"),
            ("service.cache.restart", "never"),
            ("system.hostname", "x"),
        ]));
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert_eq!(names(&p), ["cache", "db", "web"]);
        let web = &p.order[2];
        assert_eq!(web.argv, ["sh", "-c", "echo \"hi there\"; sleep 1"]);
        assert_eq!(web.restart, Restart::Always);
        assert_eq!(web.after, ["db", "cache"]);
        assert_eq!(web.user.as_deref(), Some("www"));
        assert_eq!(web.cwd.as_deref(), Some("/srv"));
        assert_eq!(p.order[1].restart, Restart::OnFailure);
    }

    #[test]
    fn bad_specs_are_reported_not_started() {
        let p = plan(&rows(&[
            ("service.a.restart", "always"),
            ("service.b.exec", "x 'unbalanced"),
            ("service.c.exec", "ok"),
            ("service.c.restart", "sometimes"),
            ("service.d.exec", "ok"),
            ("service.d.colour", "blue"),
        ]));
        assert_eq!(names(&p), ["d"]);
        assert_eq!(p.problems.len(), 4, "{:?}", p.problems);
    }

    #[test]
    fn dependency_order_and_chains() {
        let p = plan(&rows(&[
            ("service.z.exec", "z"),
            ("service.y.exec", "y"),
            ("service.y.after", "z"),
            ("service.x.exec", "x"),
            ("service.x.after", "y"),
            ("service.a.exec", "a"),
        ]));
        assert_eq!(names(&p), ["a", "z", "y", "x"]);
    }

    #[test]
    fn cycles_and_missing_dependencies_are_left_out() {
        let p = plan(&rows(&[
            ("service.a.exec", "a"),
            ("service.a.after", "b"),
            ("service.b.exec", "b"),
            ("service.b.after", "a"),
            ("service.c.exec", "c"),
            ("service.c.after", "a"),
            ("service.d.exec", "d"),
            ("service.d.after", "nope"),
            ("service.e.exec", "e"),
            ("service.e.after", "d"),
            ("service.f.exec", "f"),
            ("service.f.after", "f"),
            ("service.g.exec", "g"),
        ]));
        assert_eq!(names(&p), ["g"]);
        let all = p.problems.join("\n");
        for n in ["a", "b", "c", "f"] {
            assert!(
                all.contains(&format!("service {n} not started: dependency cycle")),
                "{all}"
            );
        }
        assert!(all.contains("service d not started: it is after nope"));
        assert!(all.contains("service e not started: it is after d"));
    }

    #[test]
    fn restart_policy() {
        assert!(Restart::Always.wants_restart(true));
        assert!(Restart::OnFailure.wants_restart(false));
        assert!(!Restart::OnFailure.wants_restart(true));
        assert!(!Restart::Never.wants_restart(false));
    }
}
