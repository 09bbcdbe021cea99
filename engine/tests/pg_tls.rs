//! TLS to PostgreSQL with a self-signed CA made by the test: `require`
//! encrypts, `verify-full` checks the chain and the host name, a server that
//! demands TLS refuses `disable`, and a wrong CA is refused with a clear
//! error. Needs the test server (`DBOS_TEST_PG`, `DBOS_TEST_PG_DIR` from
//! tests/pg/start); skipped loudly without it.

use dbos_engine::Engine;
use std::process::Command;

fn openssl(args: &[&str], dir: &std::path::Path) {
    let st = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        st.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&st.stderr)
    );
}

fn make_ca(dir: &std::path::Path, name: &str) {
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-subj",
            &format!("/CN={name}"),
        ],
        dir,
    );
}

#[test]
fn tls_modes_against_a_real_server() {
    let (Ok(server), Ok(cluster)) = (
        std::env::var("DBOS_TEST_PG"),
        std::env::var("DBOS_TEST_PG_DIR"),
    ) else {
        eprintln!("SKIPPED: DBOS_TEST_PG / DBOS_TEST_PG_DIR not set (tests/run starts a server)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    make_ca(d, "ca");
    make_ca(d, "otherca");
    std::fs::write(
        d.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
        d,
    );
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
        d,
    );
    // Install the certificate in the cluster and turn TLS on.
    let data = std::path::Path::new(&cluster).join("data");
    for f in ["server.crt", "server.key"] {
        std::fs::copy(d.join(f), data.join(f)).unwrap();
        let st = Command::new("chown")
            .arg("postgres")
            .arg(data.join(f))
            .status();
        assert!(st.is_ok());
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(data.join(f), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // A role that may only connect over TLS.
    let hba = data.join("pg_hba.conf");
    let old = std::fs::read_to_string(&hba).unwrap();
    if !old.contains("tlsonly") {
        std::fs::write(
            &hba,
            format!("hostssl all tlsonly 127.0.0.1/32 trust\nhostnossl all tlsonly 127.0.0.1/32 reject\n{old}"),
        )
        .unwrap();
    }
    let mut admin = postgres::Client::connect(&server, postgres::NoTls).unwrap();
    admin.execute("ALTER SYSTEM SET ssl = on", &[]).unwrap();
    admin.execute("SELECT pg_reload_conf()", &[]).unwrap();
    let _ = admin.batch_execute("CREATE ROLE tlsonly LOGIN SUPERUSER");
    std::thread::sleep(std::time::Duration::from_millis(500));

    let dbname = format!("dbos_tls_{}", std::process::id());
    admin
        .execute(&format!("DROP DATABASE IF EXISTS {dbname}"), &[])
        .unwrap();
    admin
        .execute(&format!("CREATE DATABASE {dbname}"), &[])
        .unwrap();
    let port = server
        .rsplit_once(':')
        .unwrap()
        .1
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let url = |host: &str, mode: &str, ca: Option<&str>| {
        let ca = ca
            .map(|c| format!("&sslrootcert={}", d.join(c).display()))
            .unwrap_or_default();
        format!("postgres://tlsonly@{host}:{port}/{dbname}?sslmode={mode}{ca}")
    };
    // require: encrypted, certificate not checked.
    let mut e = Engine::open(&url("127.0.0.1", "require", None)).expect("sslmode=require connects");
    assert_eq!(e.head().unwrap(), 1);
    drop(e);
    // verify-full with the right CA and a matching name.
    Engine::open(&url("localhost", "verify-full", Some("ca.pem")))
        .expect("verify-full with the right CA");
    // verify-full with another CA: refused, and the reason is about the certificate.
    let err = Engine::open(&url("localhost", "verify-full", Some("otherca.pem")))
        .err()
        .expect("wrong CA refused");
    let msg = err.to_string();
    assert!(
        msg.contains("localhost") && msg.to_lowercase().contains("certificate"),
        "{msg}"
    );
    // The server demands TLS of this role: disable is refused, clearly.
    let err = Engine::open(&url("127.0.0.1", "disable", None))
        .err()
        .expect("no TLS refused");
    assert!(err.to_string().contains("127.0.0.1"), "{err}");
    // Default (prefer) negotiates TLS.
    Engine::open(&format!("postgres://tlsonly@127.0.0.1:{port}/{dbname}"))
        .expect("prefer negotiates TLS");
}
