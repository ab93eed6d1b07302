//! Every setting of the worker, declared once, by concern. Each section goes to the code that
//! needs it and nowhere else; [`super::Config`] composes them.

use super::values::{ExecutorKind, OtlpProtocol, SecretUrl, Topology};
use std::path::PathBuf;

crate::settings! {
    /// The broker: where jobs come from and replies go (the `[broker]` section).
    pub struct BrokerSettings in "broker" {
        /// AMQP URL of the broker (credentials never printed); a cluster's nodes as a
        /// comma-separated list, tried in turn whenever a connection is lost.
        amqp_url: SecretUrl = SecretUrl::new("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "`amqp://guest:guest@127.0.0.1:5672/%2f`",
            "the broker; for a cluster, one URL per node, comma-separated (a comma in a password is written `%2C`): a lost connection moves to the next (see [docs/OPERATIONS.md](docs/OPERATIONS.md))";
        /// Queue the worker consumes render jobs from.
        queue: String = "midnit.render".into(), "`midnit.render`", "the jobs queue";
        /// `transient` (classic queue, nothing on the broker's disk) or `durable` (quorum queue,
        /// persistent messages, survives a broker restart).
        topology: Topology = Topology::Transient, "`transient`",
            "`transient`: classic queue, non-persistent messages, nothing of a photo on the broker's disk, queued jobs lost if the broker restarts; `durable`: quorum queue, persistent messages, nothing lost (see [docs/OPERATIONS.md](docs/OPERATIONS.md))";
        /// Deliveries of one job whose renderer crashed before it is answered `internal` and
        /// recorded (durable; the transient topology can only tell a first delivery from a
        /// later one, so it allows at most two). Also the quorum queue's `x-delivery-limit`.
        delivery_limit: u32 = 3, "3",
            "deliveries of a job whose renderer crashes before it is answered `internal` and recorded (durable; transient allows at most 2); also the quorum queue's `x-delivery-limit`";
        /// How long a record is kept in the dead-letter queue, in seconds.
        dead_letter_ttl_secs: u64 = 3600, "3600",
            "the dead-letter queue drops its records after this long";
        /// Exchange the dead-letter records go to (default `<queue>.dlx`).
        dead_letter_exchange: Option<String> = None, "`<queue>.dlx`",
            "where the worker publishes records of jobs it gave up on (never their bodies)";
        /// Queue bound to the dead-letter exchange (default `<queue>.dead`).
        dead_letter_queue: Option<String> = None, "`<queue>.dead`", "queue bound to it";
        /// Seconds to wait for the broker to confirm a reply.
        reply_confirm_timeout_secs: u64 = 10, "10",
            "how long to wait for the broker to confirm a reply";
        /// Largest AMQP frame negotiated with the broker, in bytes. lapin keeps two ring buffers
        /// of 32 frames each for a connection's life; a small frame keeps them small.
        frame_max: u32 = 32 * 1024, "32768",
            "largest AMQP frame (4096–131072); lapin keeps two ring buffers of 32 frames for a connection's life, so this bounds them (1 MiB each by default). A `frame_max` in the URL wins";
        /// Seconds one connection attempt may take (TCP, TLS and the AMQP handshake) before it
        /// counts as failed and the next node is tried.
        connect_timeout_secs: u64 = 10, "10",
            "one connection attempt (TCP, TLS, AMQP handshake) may take this long; then it counts as failed and the next URL is tried (a node whose host is down answers nothing)";
        /// First delay before reconnecting to the broker, in milliseconds (doubled on each
        /// failure, with jitter).
        reconnect_initial_ms: u64 = 250, "250",
            "first delay before reconnecting after the broker is lost; doubles per failure, ±25 % jitter";
        /// Longest delay between reconnect attempts, in milliseconds.
        reconnect_max_ms: u64 = 30_000, "30000", "longest delay between reconnect attempts";
        /// PEM file of the CA certificates that sign the broker's certificate (`amqps://` only;
        /// default: the bundled web PKI roots).
        tls_ca_file: Option<PathBuf> = None, "web PKI roots",
            "PEM CA bundle that signs the broker's certificate (`amqps://`)";
        /// PEM file of the client certificate for mutual TLS (with `tls_key_file`).
        tls_cert_file: Option<PathBuf> = None, "none",
            "PEM client certificate for mutual TLS (with `tls_key_file`)";
        /// PEM file of the client certificate's PKCS#8 private key.
        tls_key_file: Option<PathBuf> = None, "none",
            "PEM private key of the client certificate";
    }
}

impl BrokerSettings {
    /// The dead-letter exchange name.
    pub fn dlx(&self) -> String {
        self.dead_letter_exchange
            .clone()
            .unwrap_or_else(|| format!("{}.dlx", self.queue))
    }

    /// The dead-letter queue name.
    pub fn dlq(&self) -> String {
        self.dead_letter_queue
            .clone()
            .unwrap_or_else(|| format!("{}.dead", self.queue))
    }
}

crate::settings! {
    /// How many jobs a worker takes at once and how it stops (the `[worker]` section).
    pub struct WorkerSettings in "worker" {
        /// Jobs rendered at once; also the AMQP prefetch (default: CPU count).
        concurrency: usize = std::thread::available_parallelism().map_or(2, |n| n.get()),
            "CPU count", "jobs rendered at once; also the AMQP prefetch";
        /// Seconds to finish in-flight jobs after SIGTERM/SIGINT before giving up.
        drain_timeout_secs: u64 = 30, "30", "how long SIGTERM waits for in-flight jobs";
    }
}

crate::settings! {
    /// Where jobs are rendered (the `[executor]` section).
    pub struct ExecutorSettings in "executor" {
        /// `isolated` (a single-use child process per job) or `in_process` (the worker's own
        /// threads).
        executor: ExecutorKind = ExecutorKind::Isolated, "`isolated`",
            "`isolated`: each job rendered by a single-use, confined child process under kernel limits; `in_process`: on the worker's own threads";
        /// The binary run as renderer by the isolated executor (default: this executable).
        renderer_binary: Option<PathBuf> = None, "this executable",
            "the binary run as renderer (`midnit-worker __render-child`)";
    }
}

crate::settings! {
    /// Spill files, wiping and the receipt key (the `[wipe]` section).
    pub struct WipeSettings in "wipe" {
        /// Private directory for spilled inputs (created 0700).
        spill_dir: PathBuf = std::env::temp_dir().join("midnit-worker-spill"),
            "`$TMPDIR/midnit-worker-spill`", "private spill directory (0700; put it on tmpfs)";
        /// Refuse to start unless `spill_dir` is on a memory-backed file system (tmpfs or
        /// ramfs); when `false`, a disk-backed `spill_dir` is only warned about.
        spill_require_tmpfs: bool = false, "false",
            "refuse to start unless `spill_dir` is on tmpfs/ramfs (`false`: warn at start). The container image and the Kubernetes and systemd files set `true`";
        /// Inputs larger than this many bytes are spilled to `spill_dir` before decoding.
        spill_threshold_bytes: usize = 8 << 20, "8388608",
            "inputs larger than this are spilled before decoding";
        /// Seconds without a job in flight after which the worker replaces its broker
        /// connection, so the old connection's buffers are freed (and zeroed). 0 turns it off.
        idle_wipe_secs: u64 = 5, "5",
            "after this long with no job in flight, a connection that carried jobs is replaced so its buffers are freed and zeroed (0: never)";
        /// Zero freed memory and wipe idle connections. Only the wipe proof's negative control
        /// turns this off; a worker running with `false` logs a warning at start.
        wipe_memory: bool = true, "true",
            "zero freed memory and wipe idle connections. Only the wipe proof's negative control sets `false`; the worker warns at start when it is off";
        /// File holding the receipt-signing key's 32-byte seed as 64 hex digits (default: a key
        /// generated at start, its public key logged).
        receipt_key_file: Option<PathBuf> = None, "generated at start",
            "ed25519 receipt-signing key seed (64 hex digits); the public key is logged at start";
    }
}

crate::settings! {
    /// The health and metrics listener (the `[http]` section).
    pub struct HttpSettings in "http" {
        /// Address of the health and metrics listener (`/healthz`, `/readyz`, `/metrics`);
        /// empty turns it off. Port 0 picks a free port (logged).
        http_addr: String = "127.0.0.1:9464".into(), "`127.0.0.1:9464`",
            "health and metrics listener: `/healthz`, `/readyz`, `/metrics` (empty: off; port 0 picks one and logs it)";
    }
}

crate::settings! {
    /// Traces (the `[telemetry]` section): job spans exported over OTLP, continuing the W3C
    /// trace context a request carries.
    pub struct TelemetrySettings in "telemetry" {
        /// OTLP/HTTP traces endpoint (`http://collector:4318/v1/traces`); empty: no export.
        otlp_endpoint: String = String::new(), "empty (off)",
            "OTLP/HTTP endpoint job spans are exported to (`http://collector:4318/v1/traces`); spans carry ids and timings, never request values";
        /// `http/protobuf` or `http/json`.
        otlp_protocol: OtlpProtocol = OtlpProtocol::Protobuf, "`http/protobuf`",
            "`http/protobuf` or `http/json`";
        /// The `service.name` resource attribute of exported spans.
        otlp_service_name: String = "midnit-worker".into(), "`midnit-worker`",
            "`service.name` of exported spans";
    }
}
