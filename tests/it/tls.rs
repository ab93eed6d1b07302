//! `amqps://` against a real RabbitMQ TLS listener that this test starts on the running broker
//! (`rabbitmqctl eval`), with certificates it generates (`openssl`): a CA, a server certificate
//! for localhost, and a client certificate the listener requires (mutual TLS).

use crate::harness::*;
use midnit_worker::app::config::{BrokerSettings, SecretUrl};
use midnit_worker::protocol::Status;
use midnit_worker::tools::samples;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and certificates signed by it for the server (localhost) and a client.
fn make_certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=midnit test CA",
        ],
    );
    for (name, usage) in [("server", "serverAuth"), ("client", "clientAuth")] {
        let ext = format!(
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             extendedKeyUsage={usage}\n"
        );
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                "/CN=localhost",
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
    }
    // The broker runs as its own user and must read the server's files.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
}

fn rabbit_eval(expr: &str) {
    let out = Command::new("rabbitmqctl")
        .args(["eval", expr])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.trim() == "ok",
        "{expr}: {text}"
    );
}

/// A TLS listener on the running broker that requires a client certificate; stopped on drop.
struct TlsListener(u16);

impl TlsListener {
    fn start(dir: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let file = |f: &str| dir.join(f).display().to_string();
        rabbit_eval(&format!(
            "rabbit_networking:start_ssl_listener({port}, [{{cacertfile,\"{}\"}}, \
             {{certfile,\"{}\"}}, {{keyfile,\"{}\"}}, {{verify,verify_peer}}, \
             {{fail_if_no_peer_cert,true}}], 1, 1).",
            file("ca.pem"),
            file("server.pem"),
            file("server.key"),
        ));
        Self(port)
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args([
                "eval",
                &format!("rabbit_networking:stop_tcp_listener({}).", self.0),
            ])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_serves_over_amqps_with_a_ca_file_and_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    let listener = TlsListener::start(dir.path());
    let url = format!("amqps://guest:guest@localhost:{}/%2f", listener.0);
    let file = |f: &str| dir.path().join(f).display().to_string();
    let queue = unique_queue("tls");
    let (ca, cert, key) = (file("ca.pem"), file("client.pem"), file("client.key"));
    let worker = spawn_binary_env(
        &queue,
        1,
        &[
            ("MIDNIT_AMQP_URL", &url),
            ("MIDNIT_TLS_CA_FILE", &ca),
            ("MIDNIT_TLS_CERT_FILE", &cert),
            ("MIDNIT_TLS_KEY_FILE", &key),
        ],
    );
    let config = BrokerSettings {
        amqp_url: SecretUrl::new(&url),
        queue: queue.clone(),
        tls_ca_file: Some(ca.clone().into()),
        tls_cert_file: Some(cert.clone().into()),
        tls_key_file: Some(key.clone().into()),
        ..BrokerSettings::default()
    };
    let client = midnit_worker::client::for_worker(&config)
        .await
        .expect("TLS client");
    let job = request(
        samples::jpeg(&samples::figure_photo(320, 240, 5), 90),
        vec![output("t", "png", Some(64), None)],
    );
    assert_eq!(render(&client, &job).await.status, Status::Ok);
    client.close().await;

    // Without the client certificate the listener refuses the connection; without the CA file
    // the worker refuses the broker's certificate. Either way: alive, not ready, retrying.
    for (what, env) in [
        (
            "no client certificate",
            vec![("MIDNIT_TLS_CA_FILE", ca.as_str())],
        ),
        (
            "unknown CA",
            vec![
                ("MIDNIT_TLS_CERT_FILE", cert.as_str()),
                ("MIDNIT_TLS_KEY_FILE", key.as_str()),
            ],
        ),
    ] {
        let mut env = env;
        env.push(("MIDNIT_AMQP_URL", &url));
        let refused = spawn_binary_started(&unique_queue("tls-refused"), 1, &env);
        refused.wait_for_log("broker unreachable", 1);
        assert_eq!(refused.get("/readyz").0, 503, "{what}");
    }
    drop(worker);
    delete_queue(&queue).await;
}
