//! Opening one node: TCP, then TLS through our own rustls configuration (unless plaintext is
//! explicitly allowed), then AUTH, all within the connect deadline, with each way a server can
//! be the wrong one turned into a `Failure::Rejected` that says what to fix. Sentinel, Cluster
//! and surveys all reach nodes through here, so every node gets the same checks and the same
//! error text.

use super::failure::{describe, is_auth_failure, is_connection_level, refused, Failure};
use super::Inner;
use crate::connection::coalesce::Coalesced;
use crate::connection::handle::NodeAddress;
use crate::connection::tls;
use crate::error::{Error, ErrorCode};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, PushInfo, RedisConnectionInfo};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::timeout;

/// What the TLS handshake of the current connection negotiated, for security reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSession {
    pub protocol: String,
    pub cipher_suite: String,
    pub server_subject: Option<String>,
    /// Unix time at which the server's certificate expires.
    pub server_not_after: Option<i64>,
}

impl TlsSession {
    fn from_connection(session: &rustls::ClientConnection) -> TlsSession {
        let leaf = session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|der| x509_parser::parse_x509_certificate(der.as_ref()).ok())
            .map(|(_, cert)| {
                (
                    cert.subject().to_string(),
                    cert.validity().not_after.timestamp(),
                )
            });
        TlsSession {
            protocol: session
                .protocol_version()
                .map(|v| match v {
                    rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
                    rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default(),
            cipher_suite: session
                .negotiated_cipher_suite()
                .map(|s| format!("{:?}", s.suite()))
                .unwrap_or_default(),
            server_subject: leaf.as_ref().map(|(subject, _)| subject.clone()),
            server_not_after: leaf.map(|(_, not_after)| not_after),
        }
    }
}

/// One node a connect reached: a primary, a cluster primary or a sentinel.
#[derive(Debug, Clone)]
pub struct NodeReport {
    pub address: String,
    pub role: &'static str,
    pub tls: Option<TlsSession>,
    /// Why the node could not be reached or refused us (only in surveys of every node).
    pub error: Option<Failure>,
}

/// A freshly opened node connection: the handle, the task that drives it (running already,
/// so the connection answers commands before it is installed; it ends when the connection
/// closes or every handle is dropped), and the handshake.
pub(super) struct NodeLink {
    pub(super) conn: MultiplexedConnection,
    pub(super) driver: tokio::task::JoinHandle<()>,
    pub(super) tls: Option<TlsSession>,
    /// The socket's local address, `ip:port` (for fencing; see `fence`).
    pub(super) local_addr: Option<String>,
}

impl NodeLink {
    fn with_local_addr(self, local_addr: Option<String>) -> NodeLink {
        NodeLink { local_addr, ..self }
    }
}

impl Inner {
    pub(super) fn node_display(&self, node: &NodeAddress) -> String {
        format!(
            "{}://{node}/{}",
            if self.tls.is_some() {
                "rediss"
            } else {
                "redis"
            },
            self.target.db
        )
    }

    /// A discovery command (`SENTINEL ...`, `CLUSTER SLOTS`) on a connection to `shown`, within
    /// what is left of the connect `deadline`: running out of time is an outage; the reply, or
    /// the server's error for the caller to classify, otherwise.
    pub(super) async fn discovery_query<T: redis::FromRedisValue>(
        &self,
        conn: &mut MultiplexedConnection,
        cmd: &redis::Cmd,
        deadline: Instant,
        shown: &str,
    ) -> Result<redis::RedisResult<T>, Failure> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        timeout(remaining, cmd.query_async::<T>(conn))
            .await
            .map_err(|_| {
                Failure::Unavailable(format!(
                    "{shown} did not answer within {:?}",
                    self.connection_timeout
                ))
            })
    }

    /// TCP, then TLS with our rustls configuration (unless plaintext is allowed), then AUTH.
    pub(super) async fn open_node(
        &self,
        host: &str,
        port: u16,
        info: &RedisConnectionInfo,
        deadline: Instant,
        shown: &str,
    ) -> Result<NodeLink, Failure> {
        self.open_node_with(host, port, info, deadline, shown, None)
            .await
    }

    /// `open_node`, with the server's push messages (RESP3, which `info` must ask for) sent
    /// to `pushes`.
    pub(super) async fn open_node_with(
        &self,
        host: &str,
        port: u16,
        info: &RedisConnectionInfo,
        deadline: Instant,
        shown: &str,
        pushes: Option<UnboundedSender<PushInfo>>,
    ) -> Result<NodeLink, Failure> {
        let remaining = || deadline.saturating_duration_since(Instant::now());
        let tcp = match timeout(remaining(), TcpStream::connect((host, port))).await {
            Err(_) => {
                return Err(Failure::Unavailable(format!(
                    "connecting to {shown} timed out after {:?}",
                    self.connection_timeout
                )))
            }
            Ok(Err(err)) => {
                return Err(Failure::Unavailable(format!(
                    "cannot connect to {shown}: {err}"
                )))
            }
            Ok(Ok(tcp)) => tcp,
        };
        let _ = tcp.set_nodelay(true);
        // Closing a socket with zero linger discards what the kernel still queues and resets
        // the connection: a connection given up after a timeout must not deliver its last
        // writes later (see `fence`). Normal closes lose nothing: nothing is queued then.
        let _ = tcp.set_zero_linger();
        let local_addr = tcp.local_addr().ok().map(|addr| addr.to_string());
        match &self.tls {
            None => {
                tracing::warn!(
                    target: "secure_redis.connection",
                    "INSECURE: connecting to {shown} WITHOUT TLS because REDIS_INSECURE_ALLOW_PLAINTEXT=true. Traffic \
                     (AUTH password included) crosses the network in clear text; this is only acceptable on an \
                     isolated network. Values stay Fernet-encrypted."
                );
                self.setup(tcp, remaining(), None, info, shown, pushes)
                    .await
                    .map(|link| link.with_local_addr(local_addr))
            }
            Some(config) => {
                let name = tls::server_name(host).map_err(Failure::Rejected)?;
                let connector = tokio_rustls::TlsConnector::from(config.clone());
                match timeout(remaining(), connector.connect(name, tcp)).await {
                    Err(_) if speaks_plaintext_redis(host, port).await => Err(Failure::Rejected(
                        Error::configuration(format!(
                            "TLS connection refused: {shown} is a plaintext Redis port (it answered a plaintext PING \
                             and never completed a TLS handshake). Enable TLS on the server (tls-port) and use that \
                             port in the rediss:// URL."
                        ))
                        .with("redis_url", shown.to_owned())
                        .code(ErrorCode::PlaintextServer),
                    )),
                    Err(_) => Err(Failure::Unavailable(format!(
                        "TLS handshake with {shown} timed out after {:?}",
                        self.connection_timeout
                    ))),
                    Ok(Err(err)) => match tls::explain_handshake_failure(&err, shown) {
                        Some(advice) => Err(Failure::Rejected(
                            Error::configuration(format!("TLS connection refused: {advice}"))
                                .with("redis_url", shown.to_owned())
                                .code(ErrorCode::TlsHandshakeFailed),
                        )),
                        None => Err(Failure::Unavailable(format!(
                            "TLS handshake with {shown} failed: {err}"
                        ))),
                    },
                    Ok(Ok(stream)) => {
                        let session = TlsSession::from_connection(stream.get_ref().1);
                        self.setup(stream, remaining(), Some(session), info, shown, pushes)
                            .await
                            .map(|link| link.with_local_addr(local_addr))
                    }
                }
            }
        }
    }

    async fn setup<S>(
        &self,
        stream: S,
        remaining: Duration,
        tls: Option<TlsSession>,
        info: &RedisConnectionInfo,
        shown: &str,
        pushes: Option<UnboundedSender<PushInfo>>,
    ) -> Result<NodeLink, Failure>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut config =
            AsyncConnectionConfig::new().set_response_timeout(Some(self.socket_timeout));
        if let Some(pushes) = pushes {
            config = config.set_push_sender(pushes);
        }
        let refused = |message: String, code: ErrorCode| refused(message, "redis_url", shown, code);
        match timeout(
            remaining,
            MultiplexedConnection::new_with_config(info, Coalesced::new(stream), config),
        )
        .await
        {
            Err(_) => Err(Failure::Unavailable(format!(
                "Redis at {shown} did not answer AUTH within {:?}",
                self.connection_timeout
            ))),
            Ok(Err(err)) if is_auth_failure(&err) => Err(refused(
                format!(
                    "Redis at {shown} rejected the credentials ({}). Set REDIS_PASSWORD (and REDIS_ACL_USERNAME for \
                     an ACL user; REDIS_SENTINEL_PASSWORD for sentinels with a password of their own) to what the \
                     server expects.",
                    err.code().unwrap_or("authentication failed")
                ),
                ErrorCode::AuthenticationFailed,
            )),
            Ok(Err(err)) if is_connection_level(&err) => Err(refused(
                format!(
                    "Redis at {shown} closed the connection during set-up ({}). If it requires TLS client \
                     certificates, set REDIS_TLS_CERT_PATH and REDIS_TLS_KEY_PATH.",
                    describe(&err)
                ),
                ErrorCode::ConnectionSetupFailed,
            )),
            Ok(Err(err)) => Err(refused(
                format!(
                    "Redis at {shown} refused the connection set-up: {}",
                    describe(&err)
                ),
                ErrorCode::ConnectionSetupFailed,
            )),
            Ok(Ok((conn, driver))) => Ok(NodeLink {
                conn,
                driver: tokio::spawn(driver),
                tls,
                local_addr: None,
            }),
        }
    }
}

/// A server that accepts TCP but never completes a TLS handshake is either stuck or a
/// plaintext Redis waiting for a newline. A bare PING (no credentials) tells them apart, so
/// the error can say exactly what to fix.
async fn speaks_plaintext_redis(host: &str, port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let probe = async {
        let mut tcp = TcpStream::connect((host, port)).await?;
        tcp.write_all(b"PING\r\n").await?;
        let mut first = [0u8; 1];
        tcp.read_exact(&mut first).await?;
        Ok::<_, std::io::Error>(matches!(first[0], b'+' | b'-'))
    };
    matches!(
        timeout(Duration::from_millis(500), probe).await,
        Ok(Ok(true))
    )
}
