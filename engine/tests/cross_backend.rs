//! Both backends give the same answers for the same random history: the
//! same transactions (ids, branches, commands, changes) and the same state
//! as of every transaction on every branch. Needs the test server
//! (`DBOS_TEST_PG`); skipped loudly without it.

use dbos_engine::{Actor, Engine, Entry, Space, VPath};

fn pg_database(server: &str, name: &str) -> String {
    let mut c = postgres::Client::connect(server, postgres::NoTls).expect("connect");
    c.execute(&format!("DROP DATABASE IF EXISTS {name}"), &[])
        .expect("drop");
    c.execute(&format!("CREATE DATABASE {name}"), &[])
        .expect("create");
    let base = server.rsplit_once('/').map(|(b, _)| b).unwrap_or(server);
    format!("{base}/{name}")
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Apply one random step to an engine; the same seed gives the same step.
fn step(e: &mut Engine, rng: &mut Lcg, branches: &mut Vec<String>) -> String {
    let names = ["a", "b", "c"];
    let dir = names[rng.next(3) as usize];
    let file = names[rng.next(3) as usize];
    let branch = branches[rng.next(branches.len() as u64) as usize].clone();
    let a = Actor::default();
    let choice = rng.next(10);
    let p = |s: String| VPath::parse(&s).expect("path");
    let body = format!("line {}\n", rng.next(1000)).repeat(1 + rng.next(40) as usize);
    let r = match choice {
        0..=4 => e
            .autocommit(&branch, &a, "write", |tx| {
                tx.mkdir(&p(format!("/{dir}")), true, 0o755)?;
                tx.write_bytes(&p(format!("/{dir}/{file}")), body.as_bytes())
            })
            .map(|_| ()),
        5 => e
            .autocommit(&branch, &a, "rm", |tx| {
                tx.remove(&p(format!("/{dir}")), true)
            })
            .map(|_| ()),
        6 => e
            .autocommit(&branch, &a, "config", |tx| {
                tx.config_set(&format!("k.{file}"), &body[..8])
            })
            .map(|_| ()),
        7 => e
            .autocommit(&branch, &a, "chmod", |tx| {
                tx.chmod(&p(format!("/{dir}/{file}")), 0o600)
            })
            .map(|_| ()),
        8 if branches.len() < 4 => {
            let name = format!("b{}", branches.len());
            let head = e.head().expect("head");
            let r = e.create_branch(&name, &branch, head).map(|_| ());
            if r.is_ok() {
                branches.push(name);
            }
            r
        }
        _ => e
            .autocommit(&branch, &a, "multi", |tx| {
                for n in names {
                    tx.mkdir(&p(format!("/{n}")), true, 0o755)?;
                    tx.write_bytes(&p(format!("/{n}/m")), body.as_bytes())?;
                }
                Ok(())
            })
            .map(|_| ()),
    };
    match r {
        Ok(()) => "ok".to_string(),
        Err(err) => format!("err {err}"),
    }
}

fn state(e: &mut Engine, branch: &str, tx: u64) -> Vec<String> {
    let mut out = Vec::new();
    let mut v = e.view_at(branch, tx).expect("view");
    for (path, entry) in v.walk(&VPath::root()).expect("walk") {
        let detail = match &entry {
            Entry::File { meta, content } => {
                format!("file {:o} {}", meta.mode, dbos_engine::hex(&content.digest))
            }
            Entry::Dir { meta } => format!("dir {:o}", meta.mode),
            Entry::Symlink { target, .. } => format!("link {target}"),
            Entry::Value(x) => format!("value {x}"),
        };
        out.push(format!("{path} {detail}"));
    }
    for (k, val) in v.config_list().expect("config") {
        out.push(format!("config {k}={val}"));
    }
    out
}

#[test]
fn sqlite_and_postgres_agree_on_random_histories() {
    let Ok(server) = std::env::var("DBOS_TEST_PG") else {
        eprintln!("SKIPPED: DBOS_TEST_PG not set (tests/run starts a server)");
        return;
    };
    for seed in [1u64, 7, 42] {
        let dir = tempfile::tempdir().unwrap();
        let mut lite = Engine::open(dir.path().join("s.db").to_str().unwrap()).unwrap();
        let mut pg = Engine::open(&pg_database(
            &server,
            &format!("dbos_cross_{seed}_{}", std::process::id()),
        ))
        .unwrap();
        let (mut rl, mut rp) = (Lcg(seed), Lcg(seed));
        let (mut bl, mut bp) = (vec!["main".to_string()], vec!["main".to_string()]);
        for i in 0..60 {
            let a = step(&mut lite, &mut rl, &mut bl);
            let b = step(&mut pg, &mut rp, &mut bp);
            assert_eq!(a, b, "seed {seed} step {i}: outcomes differ");
        }
        assert_eq!(bl, bp);
        let head = lite.head().unwrap();
        assert_eq!(head, pg.head().unwrap(), "seed {seed}: heads differ");
        for t in 1..=head {
            let (x, y) = (lite.tx_info(t).unwrap(), pg.tx_info(t).unwrap());
            assert_eq!(
                (x.branch_id, &x.command, &x.author),
                (y.branch_id, &y.command, &y.author),
                "T{t}"
            );
            let (cx, cy) = (lite.changes(t).unwrap(), pg.changes(t).unwrap());
            let key = |c: &dbos_engine::Change| {
                (
                    c.space,
                    c.path.clone(),
                    c.before.is_some(),
                    c.after.is_some(),
                )
            };
            assert_eq!(
                cx.iter().map(key).collect::<Vec<_>>(),
                cy.iter().map(key).collect::<Vec<_>>(),
                "changes of T{t}"
            );
        }
        for b in &bl {
            for t in 1..=head {
                assert_eq!(
                    state(&mut lite, b, t),
                    state(&mut pg, b, t),
                    "seed {seed}: {b}@T{t}"
                );
            }
            let h1 = lite.history(b, None, Space::File, "/a/a").unwrap();
            let h2 = pg.history(b, None, Space::File, "/a/a").unwrap();
            assert_eq!(
                h1.iter()
                    .map(|(t, e)| (t.id, e.is_some()))
                    .collect::<Vec<_>>(),
                h2.iter()
                    .map(|(t, e)| (t.id, e.is_some()))
                    .collect::<Vec<_>>()
            );
        }
    }
}
