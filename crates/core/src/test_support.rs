//! For `cargo test` only: a TLS-only `redis-server` child process with a throwaway CA, so the
//! core's connection and cache are tested against a real server without Python.

use crate::config::{SecurityConfig, SecuritySettings};
use crate::crypto::{generate_encryption_key, Secret};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TlsRedis {
    pub dir: PathBuf,
    pub port: u16,
    pub password: String,
    pub ca: PathBuf,
    child: Child,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn write(path: &Path, contents: &str) {
    std::fs::write(path, contents).expect("write test file");
}

/// How the test server differs from the default (TLS 1.2 and 1.3, a certificate for
/// localhost and 127.0.0.1).
pub struct ServerOptions<'a> {
    pub subject_alt_names: &'a [&'a str],
    pub tls: bool,
    pub tls_protocols: &'a str,
}

impl Default for ServerOptions<'_> {
    fn default() -> Self {
        ServerOptions {
            subject_alt_names: &["localhost", "127.0.0.1"],
            tls: true,
            tls_protocols: "TLSv1.2 TLSv1.3",
        }
    }
}

impl TlsRedis {
    pub fn start(name: &str) -> TlsRedis {
        TlsRedis::start_with(name, ServerOptions::default())
    }

    pub fn start_with(name: &str, options: ServerOptions<'_>) -> TlsRedis {
        let dir = std::env::temp_dir().join(format!(
            "secure-redis-{name}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");

        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
        let issuer = Issuer::new(ca_params, ca_key);
        let server_key = KeyPair::generate().expect("server key");
        let server_params = CertificateParams::new(
            options
                .subject_alt_names
                .iter()
                .map(std::string::ToString::to_string)
                .collect::<Vec<_>>(),
        )
        .expect("server params");
        let server_cert = server_params
            .signed_by(&server_key, &issuer)
            .expect("server cert");

        let ca = dir.join("ca.crt");
        write(&ca, &ca_cert.pem());
        write(&dir.join("server.crt"), &server_cert.pem());
        write(&dir.join("server.key"), &server_key.serialize_pem());

        let password = format!("pw-{}", rand::random::<u64>());
        let port = free_port();
        let listen = if options.tls {
            format!(
                "port 0\ntls-port {port}\ntls-cert-file {d}/server.crt\ntls-key-file {d}/server.key\n\
                 tls-ca-cert-file {d}/ca.crt\ntls-auth-clients no\ntls-protocols \"{protocols}\"\n",
                d = dir.display(),
                protocols = options.tls_protocols
            )
        } else {
            format!("port {port}\n")
        };
        let config = format!(
            "bind 127.0.0.1\n{listen}requirepass {password}\nsave \"\"\nappendonly no\ndir {d}\n\
             logfile {d}/redis.log\n",
            d = dir.display()
        );
        write(&dir.join("redis.conf"), &config);
        let child = spawn_server(&dir, port);
        TlsRedis {
            dir,
            port,
            password,
            ca,
            child,
        }
    }

    /// Starts the killed server again on the same port, empty (it keeps nothing on disk).
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn_server(&self.dir, self.port);
    }

    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}/0", self.port)
    }

    pub fn config_with_password(&self, password: &str) -> SecurityConfig {
        SecurityConfig::new(self.settings_with_password(password), false)
            .expect("valid test config")
    }

    /// Test defaults: this server's CA and password, short timeouts, no retries.
    pub fn settings_with_password(&self, password: &str) -> SecuritySettings {
        SecuritySettings {
            redis_auth: Some(Secret::new(password)),
            encryption_key: Some(Secret::new(generate_encryption_key())),
            tls_ca_path: Some(self.ca.clone()),
            connection_timeout: 2.0,
            socket_timeout: 1.0,
            max_retries: 0,
            retry_delay: 0.05,
            ..SecuritySettings::default()
        }
    }

    pub fn config(&self) -> SecurityConfig {
        self.config_with_password(&self.password.clone())
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `redis-server` with the configuration in `dir`, once it accepts connections on `port`.
fn spawn_server(dir: &Path, port: u16) -> Child {
    let child = Command::new("redis-server")
        .arg(dir.join("redis.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server must be installed for these tests (apt-get install redis-server)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
