//! The connection against real `redis-server` processes (see `test_support`): every way a
//! server can be the wrong one is refused at `connect()` with advice, never retried blindly.

use super::{RedisTarget, SecureConnection};
use crate::config::{SecurityConfig, TlsVersion};
use crate::error::{Error, ErrorKind};
use crate::test_support::{ServerOptions, TlsRedis};

fn connection(url: &str, config: &SecurityConfig) -> SecureConnection {
    SecureConnection::new(RedisTarget::parse(url, false).unwrap(), config).unwrap()
}

async fn refusal(url: &str, config: &SecurityConfig) -> Error {
    let err = connection(url, config).connect().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Configuration, "{err}");
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_by_name_and_by_address_and_reports_the_session() {
    let server = TlsRedis::start("conn-ok");
    for host in ["localhost", "127.0.0.1"] {
        let conn = connection(
            &format!("rediss://{host}:{}/0", server.port),
            &server.config(),
        );
        assert!(conn.connect().await.unwrap());
        let state = conn.state();
        assert!(state.connected && conn.is_tls());
        assert!(state.tls.unwrap().protocol.starts_with("TLSv1."));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_is_refused() {
    let server = TlsRedis::start("conn-ca");
    let stranger = TlsRedis::start("conn-other-ca");
    let mut settings = server.settings_with_password(&server.password);
    settings.tls_ca_path = Some(stranger.ca.clone());
    let err = refusal(
        &server.url(),
        &SecurityConfig::new(settings, false).unwrap(),
    )
    .await;
    assert_eq!(err.context["error_type"], "tls_handshake_failed");
    assert!(err.message.contains("REDIS_TLS_CA_PATH"), "{}", err.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_host_is_refused() {
    let server = TlsRedis::start_with(
        "conn-host",
        ServerOptions {
            subject_alt_names: &["localhost"],
            ..ServerOptions::default()
        },
    );
    let err = refusal(&server.url(), &server.config()).await; // 127.0.0.1 is not in the SAN
    assert!(
        err.message.contains("not valid for the host"),
        "{}",
        err.message
    );
    let by_name = format!("rediss://localhost:{}/0", server.port);
    assert!(connection(&by_name, &server.config())
        .connect()
        .await
        .unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_port_is_named_as_such() {
    let server = TlsRedis::start_with(
        "conn-plain",
        ServerOptions {
            tls: false,
            ..ServerOptions::default()
        },
    );
    let err = refusal(&server.url(), &server.config()).await;
    assert_eq!(err.context["error_type"], "plaintext_server");
    assert!(
        err.message.contains("plaintext Redis port"),
        "{}",
        err.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_below_the_minimum_tls_version_is_refused() {
    let server = TlsRedis::start_with(
        "conn-tls12",
        ServerOptions {
            tls_protocols: "TLSv1.2",
            ..ServerOptions::default()
        },
    );
    let mut settings = server.settings_with_password(&server.password);
    settings.min_tls_version = Some(TlsVersion::V1_3);
    let err = refusal(
        &server.url(),
        &SecurityConfig::new(settings, false).unwrap(),
    )
    .await;
    assert!(err.message.contains("min_tls_version"), "{}", err.message);
    // The same server is fine for a client that accepts TLS 1.2, and it says what it negotiated.
    let conn = connection(&server.url(), &server.config());
    assert!(conn.connect().await.unwrap());
    assert_eq!(conn.state().tls.unwrap().protocol, "TLSv1.2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_an_outage_not_a_refusal() {
    let mut server = TlsRedis::start("conn-gone");
    let url = server.url();
    server.kill();
    let conn = connection(&url, &server.config());
    assert!(!conn.connect().await.unwrap()); // Ok(false): unreachable, callers fall back
    let state = conn.state();
    assert!(!state.connected && !state.rejected && state.last_error.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_future_does_not_carry_the_connect_path() {
    // Every cache call's future holds `run`'s; with the TLS handshake, AUTH and discovery
    // inlined it was 7 KB, copied several times per call (spawn, box, completion).
    let server = TlsRedis::start("conn-future");
    let conn = connection(&server.url(), &server.config());
    let get = conn.run(|mut c| async move {
        redis::cmd("GET")
            .arg("k")
            .query_async::<Option<Vec<u8>>>(&mut c)
            .await
    });
    let bytes = std::mem::size_of_val(&get);
    assert!(bytes < 1024, "a GET's future is {bytes} bytes");
    assert_eq!(get.await.unwrap(), None); // and it still connects on first use
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commands_share_socket_writes() {
    // Callers on their own tasks, as cache calls from Python are: their requests reach the
    // server in far fewer reads than there are commands.
    let server = TlsRedis::start("conn-coalesce");
    let conn = std::sync::Arc::new(connection(&server.url(), &server.config()));
    assert!(conn.connect().await.unwrap());
    let reads = |conn: std::sync::Arc<SecureConnection>| async move {
        let info: String = conn
            .run(|mut c| async move { redis::cmd("INFO").arg("stats").query_async(&mut c).await })
            .await
            .unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("total_reads_processed:"))
            .unwrap()
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    let before = reads(conn.clone()).await;
    let commands = 400;
    let tasks: Vec<_> = (0..commands)
        .map(|n| {
            let conn = conn.clone();
            tokio::spawn(async move {
                conn.run(|mut c| async move {
                    redis::cmd("GET")
                        .arg(format!("k{n}"))
                        .query_async::<Option<Vec<u8>>>(&mut c)
                        .await
                })
                .await
                .unwrap()
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), None);
    }
    let used = reads(conn.clone()).await - before - 1; // the INFO itself
    eprintln!("{commands} commands in {used} server reads");
    assert!(
        used * 4 < commands,
        "{commands} commands took {used} server reads"
    );
}
