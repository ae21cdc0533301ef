//! Authentication and TLS against real redis-server processes: a password
//! (`requirepass`), an ACL user restricted to the store's keys, TLS (`rediss://`)
//! with a CA made for the test, mutual TLS with a client certificate, a Redis Cluster
//! over TLS, and the binary configured with all of it, whose log never shows a
//! password.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::redis_server::RedisServer;
use serde_json::value::RawValue;
use sessions::store::redis::{Credentials, RedisOptions, RedisStore, Secret, TlsPem, Topology};
use sessions::store::{ListQuery, OpenRequest, Store, StoreError};

/// What this suite runs besides the service (see `common::needs`).
const NEEDS: &[common::needs::Need] = &[
    common::needs::Need::RedisServer,
    common::needs::Need::Openssl,
];

const PASSWORD: &str = "pw-3a9e61d0c2";

fn store(url: String, prefix: &str) -> RedisStore {
    store_with(RedisOptions {
        url,
        prefix: prefix.to_owned(),
        ..RedisOptions::default()
    })
}

fn store_with(opts: RedisOptions) -> RedisStore {
    RedisStore::new(RedisOptions {
        timeout: Duration::from_secs(2),
        connections: 1,
        ..opts
    })
    .unwrap()
}

/// A few commands of every kind: scripts, reads, a listing.
async fn exercise(s: &RedisStore) -> Result<(), StoreError> {
    s.ping().await?;
    let opened = s
        .open(OpenRequest {
            user_id: "u1".into(),
            user_name: None,
            address: None,
            client: None,
            user: None,
            data: Some(RawValue::from_string("[1]".into()).unwrap()),
            reuse: true,
            at: common::at(1_795_771_380_000),
            cap: Default::default(),
        })
        .await?;
    let id = opened.session.id;
    assert_eq!(s.get(&id).await?.unwrap().id, id);
    let page = s
        .list(
            &ListQuery {
                take: 10,
                total: true,
                ..ListQuery::default()
            },
            common::at(1_795_771_380_500),
        )
        .await?;
    assert!(page.total.unwrap() >= 1);
    s.close(&id, common::at(1_795_771_381_000)).await?;
    s.counts().await?;
    Ok(())
}

fn unavailable(r: Result<(), StoreError>) {
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
}

#[tokio::test]
async fn a_password_is_required_and_used() {
    let server = RedisServer::start();
    assert_eq!(
        server.command(&format!("CONFIG SET requirepass {PASSWORD}")),
        "+OK"
    );
    let port = server.port;
    let prefix = common::unique_prefix("auth");
    // In the URL...
    let in_url = store(format!("redis://:{PASSWORD}@127.0.0.1:{port}/"), &prefix);
    exercise(&in_url).await.unwrap();
    // ...or in its own setting (REDIS_PASSWORD), which wins over the URL.
    let separate = store_with(RedisOptions {
        url: format!("redis://:wrong@127.0.0.1:{port}/"),
        prefix: prefix.clone(),
        auth: Credentials {
            username: None,
            password: Some(Secret::new(PASSWORD)),
        },
        ..RedisOptions::default()
    });
    exercise(&separate).await.unwrap();
    // Missing or wrong: unavailable, and the error does not echo the password tried.
    unavailable(exercise(&store(format!("redis://127.0.0.1:{port}/"), &prefix)).await);
    let wrong = store(format!("redis://:not-it-5150@127.0.0.1:{port}/"), &prefix);
    let e = exercise(&wrong).await.unwrap_err();
    assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
    assert!(!e.to_string().contains("not-it-5150"), "{e}");
}

#[tokio::test]
async fn an_acl_user_limited_to_the_prefix_is_enough() {
    let server = RedisServer::start();
    let prefix = common::unique_prefix("acl");
    // Only keys under the store's prefix, no dangerous command (but ROLE, which the
    // Sentinel mode asks); the default user off. What docs/high-availability.md advises.
    assert_eq!(
        server.command(&format!(
            "ACL SETUSER sessions-app on >{PASSWORD} resetkeys ~{prefix}:* +@all -@dangerous +role"
        )),
        "+OK"
    );
    assert_eq!(server.command("ACL SETUSER default off"), "+OK");
    let port = server.port;
    let app = store(
        format!("redis://sessions-app:{PASSWORD}@127.0.0.1:{port}/"),
        &prefix,
    );
    exercise(&app).await.unwrap();
    // The user in its own settings (REDIS_USERNAME / _PASSWORD).
    let separate = store_with(RedisOptions {
        url: format!("redis://127.0.0.1:{port}/"),
        prefix: prefix.clone(),
        auth: Credentials {
            username: Some("sessions-app".into()),
            password: Some(Secret::new(PASSWORD)),
        },
        ..RedisOptions::default()
    });
    exercise(&separate).await.unwrap();
    // Another user, or the default one: refused.
    unavailable(
        exercise(&store(
            format!("redis://someone:{PASSWORD}@127.0.0.1:{port}/"),
            &prefix,
        ))
        .await,
    );
    unavailable(exercise(&store(format!("redis://127.0.0.1:{port}/"), &prefix)).await);
}

/// A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate,
/// made with the openssl command-line tool.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        common::needs::check();
        let dir =
            std::env::temp_dir().join(format!("sessions-pki-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("openssl is installed");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=sessions test CA",
        ]);
        for (name, ext) in [
            (
                "server",
                "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n\
                 extendedKeyUsage=serverAuth\n",
            ),
            (
                "client",
                "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
            ),
        ] {
            std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
            openssl(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN=sessions test {name}"),
            ]);
            openssl(&[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{name}.crt"),
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
            ]);
        }
        Pki { dir }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    fn read(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.path(file)).unwrap()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A redis-server that speaks TLS only (`--port 0 --tls-port`), killed when dropped.
struct TlsRedis {
    port: u16,
    dir: PathBuf,
    child: Child,
}

impl TlsRedis {
    fn start(pki: &Pki, client_certs: bool, extra: &[&str]) -> TlsRedis {
        common::needs::check();
        let port = common::free_port();
        let dir =
            std::env::temp_dir().join(format!("sessions-tls-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .arg("--tls-cert-file")
            .arg(pki.path("server.crt"))
            .arg("--tls-key-file")
            .arg(pki.path("server.key"))
            .arg("--tls-ca-cert-file")
            .arg(pki.path("ca.crt"))
            .args([
                "--tls-auth-clients",
                if client_certs { "yes" } else { "no" },
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server with TLS");
        let s = TlsRedis { port, dir, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "TLS redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    fn url(&self, host: &str) -> String {
        format!("rediss://{host}:{}/", self.port)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tls(pki: &Pki, client_cert: bool) -> TlsPem {
    TlsPem {
        ca: Some(pki.read("ca.crt")),
        client_cert: client_cert.then(|| pki.read("client.crt")),
        client_key: client_cert.then(|| pki.read("client.key")),
    }
}

#[tokio::test]
async fn tls_with_a_private_ca() {
    let pki = Pki::new();
    let server = TlsRedis::start(&pki, false, &[]);
    let prefix = common::unique_prefix("tls");
    for host in ["127.0.0.1", "localhost"] {
        let s = store_with(RedisOptions {
            url: server.url(host),
            prefix: prefix.clone(),
            tls: tls(&pki, false),
            ..RedisOptions::default()
        });
        exercise(&s).await.unwrap();
    }
    // Without the CA the server's certificate is not trusted: unavailable.
    unavailable(exercise(&store(server.url("127.0.0.1"), &prefix)).await);
    // Plain text to a TLS port does not work either.
    unavailable(
        exercise(&store(
            format!("redis://127.0.0.1:{}/", server.port),
            &prefix,
        ))
        .await,
    );
}

#[tokio::test]
async fn mutual_tls_needs_the_client_certificate() {
    let pki = Pki::new();
    let server = TlsRedis::start(&pki, true, &[]);
    let prefix = common::unique_prefix("mtls");
    let with_cert = store_with(RedisOptions {
        url: server.url("127.0.0.1"),
        prefix: prefix.clone(),
        tls: tls(&pki, true),
        ..RedisOptions::default()
    });
    exercise(&with_cert).await.unwrap();
    let without = store_with(RedisOptions {
        url: server.url("127.0.0.1"),
        prefix,
        tls: tls(&pki, false),
        ..RedisOptions::default()
    });
    unavailable(exercise(&without).await);
}

#[test]
fn an_unreadable_ca_is_refused_at_construction() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let r = RedisStore::new(RedisOptions {
        url: "rediss://127.0.0.1:1/".into(),
        tls: TlsPem {
            ca: Some(b"not a certificate".to_vec()),
            ..TlsPem::default()
        },
        ..RedisOptions::default()
    });
    assert!(matches!(r, Err(StoreError::Internal(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_over_mutual_tls_with_a_password_never_logs_secrets() {
    let pki = Pki::new();
    let server = TlsRedis::start(&pki, true, &["--requirepass", PASSWORD]);
    let prefix = common::unique_prefix("tls-bin");
    let url = format!("rediss://:{PASSWORD}@127.0.0.1:{}/", server.port);
    let (ca, cert, key) = (
        pki.path("ca.crt"),
        pki.path("client.crt"),
        pki.path("client.key"),
    );
    let log = common::binary::round_trip_then_stop(&[
        ("REDIS_URL", url.as_str()),
        ("SESSIONS_REDIS_CA_FILE", ca.to_str().unwrap()),
        ("SESSIONS_REDIS_CLIENT_CERT_FILE", cert.to_str().unwrap()),
        ("SESSIONS_REDIS_CLIENT_KEY_FILE", key.to_str().unwrap()),
        ("SESSIONS_KEY_PREFIX", prefix.as_str()),
        ("SESSIONS_LOG", "debug"),
    ])
    .await;
    assert!(log.contains("using Redis"), "{log}");
    assert!(!log.contains(PASSWORD), "password in the log:\n{log}");
    let key_body: String = std::fs::read_to_string(&key)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(!log.contains(&key_body[..40]), "client key in the log");
}

/// Three TLS-only cluster primaries (no replicas), their bus over TLS too; the store
/// learns the nodes from one seed, connects to each over TLS with the private CA,
/// and serves every bucket (so every primary).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_over_tls() {
    let pki = Pki::new();
    let client_crt = pki.path("client.crt").to_string_lossy().into_owned();
    let client_key = pki.path("client.key").to_string_lossy().into_owned();
    let nodes: Vec<TlsRedis> = (0..3)
        .map(|_| {
            let bus = common::free_port().to_string();
            TlsRedis::start(
                &pki,
                false,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-port",
                    &bus,
                    "--tls-cluster",
                    "yes",
                    // The bus connects node to node: each presents a client
                    // certificate (the server one is for server use only).
                    "--tls-client-cert-file",
                    client_crt.as_str(),
                    "--tls-client-key-file",
                    client_key.as_str(),
                ],
            )
        })
        .collect();
    let cli = |port: u16, args: &[&str]| {
        Command::new("redis-cli")
            .args(["--tls", "--cacert"])
            .arg(pki.path("ca.crt"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli")
    };
    let mut create = vec!["--cluster".to_owned(), "create".to_owned()];
    create.extend(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)));
    create.extend(["--cluster-replicas", "0", "--cluster-yes"].map(String::from));
    let args: Vec<&str> = create.iter().map(String::as_str).collect();
    let out = cli(nodes[0].port, &args);
    assert!(
        out.status.success(),
        "redis-cli --cluster create: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !nodes.iter().all(|n| {
        String::from_utf8_lossy(&cli(n.port, &["CLUSTER", "INFO"]).stdout)
            .contains("cluster_state:ok")
    }) {
        assert!(Instant::now() < deadline, "the TLS cluster did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }

    let prefix = common::unique_prefix("tls-cluster");
    let s = store_with(RedisOptions {
        url: nodes[0].url("127.0.0.1"),
        prefix: prefix.clone(),
        topology: Topology::Cluster,
        tls: tls(&pki, false),
        ..RedisOptions::default()
    });
    exercise(&s).await.unwrap();
    let users = common::store_load::user_per_bucket("tls-cluster");
    for (i, u) in users.iter().enumerate() {
        s.open(OpenRequest {
            user_id: u.clone(),
            user_name: None,
            address: None,
            client: None,
            user: None,
            data: None,
            reuse: true,
            at: common::at(1_795_771_380_000 + i as i64),
            cap: Default::default(),
        })
        .await
        .unwrap();
    }
    assert_eq!(s.counts().await.unwrap().total, 1 + users.len() as u64);
    for n in &nodes {
        let keys = String::from_utf8_lossy(&cli(n.port, &["DBSIZE"]).stdout).into_owned();
        let keys: u64 = keys.trim().parse().unwrap_or(0);
        assert!(keys > 0, "primary {} holds no key", n.port);
    }
    // Without the CA the nodes are not trusted: unavailable, not an internal error.
    let untrusted = store_with(RedisOptions {
        url: nodes[0].url("127.0.0.1"),
        prefix,
        topology: Topology::Cluster,
        ..RedisOptions::default()
    });
    unavailable(exercise(&untrusted).await);
}
