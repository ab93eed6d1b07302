//! Configuration: defaults → TOML file → environment (`MIDNIT_*`) → command-line flags.
//!
//! Every setting has one key. The same key names a TOML field (`concurrency = 4`, limits under
//! `[limits]`), an environment variable (`MIDNIT_CONCURRENCY`, `MIDNIT_MAX_INPUT_BYTES`) and a
//! `--set key=value` flag. [`KEYS`] lists them all with their meaning; the README's table is
//! checked against it by a test.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A configuration error: which key, and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong (unknown key, wrong type …).
        message: String,
    },
    /// A key is not known.
    #[error("unknown setting `{0}` (see the configuration table in the README)")]
    UnknownKey(String),
    /// A value does not parse or is out of range.
    #[error("setting `{key}`: {message}")]
    Invalid {
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// A credential-bearing string that never prints its secret part.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The real URL, for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".into();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

/// Where jobs are rendered.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ExecutorKind {
    /// A single-use child process per job, under kernel limits (the default).
    Isolated,
    /// The worker's own blocking threads (for `render`, benchmarks and debugging).
    InProcess,
}

impl std::str::FromStr for ExecutorKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "isolated" => Ok(Self::Isolated),
            "in_process" => Ok(Self::InProcess),
            _ => Err(format!("`{s}` is not isolated or in_process")),
        }
    }
}

/// How jobs are kept on the broker.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Topology {
    /// A classic queue and non-persistent messages: nothing of a photo is written to the
    /// broker's disk; queued jobs are lost if the broker restarts (the device retries).
    Transient,
    /// A quorum queue and persistent messages, with a delivery limit: nothing is lost across a
    /// broker restart, and photos are on the broker's disk until their job is acked.
    Durable,
}

impl std::str::FromStr for Topology {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "transient" => Ok(Self::Transient),
            "durable" => Ok(Self::Durable),
            _ => Err(format!("`{s}` is not transient or durable")),
        }
    }
}

/// Limits every job is held to. Each breach is a typed error reply, never a crash.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Most named inputs in one request.
    pub max_inputs: usize,
    /// Largest single input, in bytes.
    pub max_input_bytes: usize,
    /// Most pixels (width × height) of one input, read from its header before decoding.
    pub max_input_pixels: u64,
    /// Largest input width or height.
    pub max_input_dimension: u32,
    /// Most frames an animated input may declare (only the first is rendered).
    pub max_frames: u32,
    /// Most outputs one request may ask for.
    pub max_outputs: usize,
    /// Largest output width or height.
    pub max_output_dimension: u32,
    /// Most pixels of one output.
    pub max_output_pixels: u64,
    /// Wall-clock limit of one job's rendering, in seconds.
    pub max_job_seconds: u64,
    /// Most address space one renderer process may use, in bytes (isolated executor; each job
    /// gets less when its inputs are small).
    pub max_job_memory_bytes: u64,
    /// Largest ICC profile an input may carry (decompressed), in bytes.
    pub max_icc_bytes: u64,
    /// Most entropy-coded scans a JPEG input may have (progressive JPEGs have about ten).
    pub max_jpeg_scans: u32,
    /// Largest reply, in bytes: outputs, receipt and envelope together. Must stay under the
    /// broker's `max_message_size` (RabbitMQ: 128 MiB by default).
    pub max_reply_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 << 20,
            max_inputs: 16,
            max_input_bytes: 32 << 20,
            max_input_pixels: 50_000_000,
            max_input_dimension: 20_000,
            max_frames: 1_000,
            max_outputs: 8,
            max_output_dimension: 8_192,
            max_output_pixels: 40_000_000,
            max_job_seconds: 60,
            max_job_memory_bytes: 4 << 30,
            max_icc_bytes: 1 << 20,
            max_jpeg_scans: 100,
            max_reply_bytes: 64 << 20,
        }
    }
}

impl Limits {
    /// The wall-clock limit as a duration.
    pub fn job_timeout(&self) -> Duration {
        Duration::from_secs(self.max_job_seconds)
    }
}

/// The worker's configuration.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// AMQP URL of the broker (credentials never printed).
    pub amqp_url: SecretUrl,
    /// Queue the worker consumes render jobs from.
    pub queue: String,
    /// `transient` (classic queue, nothing on the broker's disk) or `durable` (quorum queue,
    /// persistent messages, survives a broker restart).
    pub topology: Topology,
    /// Deliveries of one job whose renderer crashed before it is answered `internal` and
    /// dead-lettered (durable; the transient topology can only tell a first delivery from a
    /// later one, so it allows at most two). Also the quorum queue's `x-delivery-limit`.
    pub delivery_limit: u32,
    /// How long a dead-lettered message is kept in the dead-letter queue, in seconds.
    pub dead_letter_ttl_secs: u64,
    /// Dead-letter exchange for rejected messages (default `<queue>.dlx`).
    pub dead_letter_exchange: Option<String>,
    /// Queue bound to the dead-letter exchange (default `<queue>.dead`).
    pub dead_letter_queue: Option<String>,
    /// Jobs rendered at once; also the AMQP prefetch (default: CPU count).
    pub concurrency: usize,
    /// Private directory for spilled inputs (created 0700).
    pub spill_dir: PathBuf,
    /// Inputs larger than this many bytes are spilled to `spill_dir` before decoding.
    pub spill_threshold_bytes: usize,
    /// Seconds to finish in-flight jobs after SIGTERM/SIGINT before giving up.
    pub drain_timeout_secs: u64,
    /// Seconds to wait for the broker to confirm a reply.
    pub reply_confirm_timeout_secs: u64,
    /// Where jobs are rendered: `isolated` (a single-use child process per job) or
    /// `in_process` (the worker's own threads).
    pub executor: ExecutorKind,
    /// The binary run as renderer by the isolated executor (default: this executable).
    pub renderer_binary: Option<PathBuf>,
    /// File holding the receipt-signing key's 32-byte seed as 64 hex digits (default: a key
    /// generated at start, its public key logged).
    pub receipt_key_file: Option<PathBuf>,
    /// Largest AMQP frame negotiated with the broker, in bytes. lapin keeps two ring buffers of
    /// 32 frames each for a connection's life; a small frame keeps them small.
    pub frame_max: u32,
    /// Seconds without a job in flight after which the worker replaces its broker connection,
    /// so the old connection's buffers are freed (and zeroed). 0 turns the idle wipe off.
    pub idle_wipe_secs: u64,
    /// First delay before reconnecting to the broker, in milliseconds (doubled on each failure,
    /// with jitter).
    pub reconnect_initial_ms: u64,
    /// Longest delay between reconnect attempts, in milliseconds.
    pub reconnect_max_ms: u64,
    /// PEM file of the CA certificates that sign the broker's certificate (`amqps://` only;
    /// default: the bundled web PKI roots).
    pub tls_ca_file: Option<PathBuf>,
    /// PEM file of the client certificate for mutual TLS (with `tls_key_file`).
    pub tls_cert_file: Option<PathBuf>,
    /// PEM file of the client certificate's PKCS#8 private key.
    pub tls_key_file: Option<PathBuf>,
    /// Address of the health and metrics listener (`/healthz`, `/readyz`, `/metrics`); empty
    /// turns it off. Port 0 picks a free port (logged).
    pub http_addr: String,
    /// Zero freed memory and wipe idle connections. Only the wipe proof's negative control turns
    /// this off; a worker running with `false` logs a warning at start.
    pub wipe_memory: bool,
    /// Limits every job is held to.
    pub limits: Limits,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            amqp_url: SecretUrl::new("amqp://guest:guest@127.0.0.1:5672/%2f"),
            queue: "midnit.render".into(),
            topology: Topology::Transient,
            delivery_limit: 3,
            dead_letter_ttl_secs: 3600,
            dead_letter_exchange: None,
            dead_letter_queue: None,
            concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
            spill_dir: std::env::temp_dir().join("midnit-worker-spill"),
            spill_threshold_bytes: 8 << 20,
            drain_timeout_secs: 30,
            reply_confirm_timeout_secs: 10,
            executor: ExecutorKind::Isolated,
            renderer_binary: None,
            receipt_key_file: None,
            frame_max: 32 * 1024,
            idle_wipe_secs: 5,
            reconnect_initial_ms: 250,
            reconnect_max_ms: 30_000,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            http_addr: "127.0.0.1:9464".into(),
            wipe_memory: true,
            limits: Limits::default(),
        }
    }
}

/// Every setting: its key and what it means. Environment variable: `MIDNIT_` + upper-case key.
pub const KEYS: &[(&str, &str)] = &[
    ("amqp_url", "AMQP URL of the broker"),
    ("queue", "queue the worker consumes render jobs from"),
    (
        "topology",
        "transient (classic queue, nothing on disk) or durable (quorum)",
    ),
    (
        "delivery_limit",
        "deliveries of a job that crashes its renderer before it is dead-lettered",
    ),
    (
        "dead_letter_ttl_secs",
        "how long the dead-letter queue keeps a message",
    ),
    (
        "dead_letter_exchange",
        "dead-letter exchange (default <queue>.dlx)",
    ),
    (
        "dead_letter_queue",
        "dead-letter queue (default <queue>.dead)",
    ),
    (
        "concurrency",
        "jobs rendered at once; also the AMQP prefetch",
    ),
    ("spill_dir", "private directory for spilled inputs"),
    (
        "spill_threshold_bytes",
        "inputs larger than this are spilled",
    ),
    (
        "drain_timeout_secs",
        "seconds to finish in-flight jobs on shutdown",
    ),
    (
        "reply_confirm_timeout_secs",
        "seconds to wait for a reply's confirm",
    ),
    ("executor", "isolated (child process per job) or in_process"),
    ("renderer_binary", "binary run as renderer"),
    (
        "receipt_key_file",
        "receipt-signing key seed, 64 hex digits",
    ),
    (
        "frame_max",
        "largest AMQP frame in bytes (bounds lapin's buffers)",
    ),
    (
        "idle_wipe_secs",
        "replace the broker connection after this idle time (0: never)",
    ),
    (
        "reconnect_initial_ms",
        "first reconnect delay, doubled with jitter",
    ),
    ("reconnect_max_ms", "longest reconnect delay"),
    ("tls_ca_file", "PEM CA bundle for amqps://"),
    ("tls_cert_file", "PEM client certificate for amqps://"),
    ("tls_key_file", "PEM PKCS#8 key of the client certificate"),
    (
        "http_addr",
        "health and metrics listener address (empty: off)",
    ),
    (
        "wipe_memory",
        "zero freed memory and wipe idle connections (tests only set false)",
    ),
    ("max_body_bytes", "largest request body"),
    ("max_inputs", "most inputs per request"),
    ("max_input_bytes", "largest input"),
    ("max_input_pixels", "most pixels per input"),
    ("max_input_dimension", "largest input width or height"),
    ("max_frames", "most frames an input may declare"),
    ("max_outputs", "most outputs per request"),
    ("max_output_dimension", "largest output width or height"),
    ("max_output_pixels", "most pixels per output"),
    ("max_job_seconds", "wall-clock limit of one job"),
    (
        "max_job_memory_bytes",
        "most memory of one renderer process",
    ),
    ("max_icc_bytes", "largest ICC profile of an input"),
    ("max_jpeg_scans", "most scans of a JPEG input"),
    (
        "max_reply_bytes",
        "largest reply (outputs, receipt, envelope)",
    ),
];

fn parse<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|e: T::Err| ConfigError::Invalid {
            key: key.into(),
            message: format!("{e}"),
        })
}

impl Config {
    /// Loads defaults, then `file` (if any), then the `MIDNIT_*` environment, then `sets`
    /// (`key=value` pairs from flags), and validates the result.
    pub fn load(file: Option<&Path>, sets: &[(String, String)]) -> Result<Self, ConfigError> {
        let mut config = match file {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        config.apply_env(std::env::vars())?;
        for (key, value) in sets {
            config.set(key, value)?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Reads a TOML file over the defaults (no environment, no flags).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.message().to_owned(),
        })
    }

    /// Applies every `MIDNIT_<KEY>` variable of `vars` (other variables are ignored;
    /// `MIDNIT_CONFIG` names the file and `MIDNIT_LOG` the log filter, so they are skipped).
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        for (name, value) in vars {
            let Some(key) = name.strip_prefix("MIDNIT_") else {
                continue;
            };
            if matches!(key, "CONFIG" | "LOG") {
                continue;
            }
            self.set(&key.to_ascii_lowercase(), &value)?;
        }
        Ok(())
    }

    /// Sets one key from its text form.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let l = &mut self.limits;
        match key {
            "amqp_url" => self.amqp_url = SecretUrl::new(value.trim()),
            "queue" => self.queue = value.trim().into(),
            "topology" => self.topology = parse(key, value)?,
            "delivery_limit" => self.delivery_limit = parse(key, value)?,
            "dead_letter_ttl_secs" => self.dead_letter_ttl_secs = parse(key, value)?,
            "dead_letter_exchange" => self.dead_letter_exchange = Some(value.trim().into()),
            "dead_letter_queue" => self.dead_letter_queue = Some(value.trim().into()),
            "concurrency" => self.concurrency = parse(key, value)?,
            "spill_dir" => self.spill_dir = PathBuf::from(value.trim()),
            "spill_threshold_bytes" => self.spill_threshold_bytes = parse(key, value)?,
            "drain_timeout_secs" => self.drain_timeout_secs = parse(key, value)?,
            "reply_confirm_timeout_secs" => self.reply_confirm_timeout_secs = parse(key, value)?,
            "executor" => self.executor = parse(key, value)?,
            "renderer_binary" => self.renderer_binary = Some(PathBuf::from(value.trim())),
            "receipt_key_file" => self.receipt_key_file = Some(PathBuf::from(value.trim())),
            "frame_max" => self.frame_max = parse(key, value)?,
            "idle_wipe_secs" => self.idle_wipe_secs = parse(key, value)?,
            "reconnect_initial_ms" => self.reconnect_initial_ms = parse(key, value)?,
            "reconnect_max_ms" => self.reconnect_max_ms = parse(key, value)?,
            "tls_ca_file" => self.tls_ca_file = Some(PathBuf::from(value.trim())),
            "tls_cert_file" => self.tls_cert_file = Some(PathBuf::from(value.trim())),
            "tls_key_file" => self.tls_key_file = Some(PathBuf::from(value.trim())),
            "http_addr" => self.http_addr = value.trim().into(),
            "wipe_memory" => self.wipe_memory = parse(key, value)?,
            "max_body_bytes" => l.max_body_bytes = parse(key, value)?,
            "max_inputs" => l.max_inputs = parse(key, value)?,
            "max_input_bytes" => l.max_input_bytes = parse(key, value)?,
            "max_input_pixels" => l.max_input_pixels = parse(key, value)?,
            "max_input_dimension" => l.max_input_dimension = parse(key, value)?,
            "max_frames" => l.max_frames = parse(key, value)?,
            "max_outputs" => l.max_outputs = parse(key, value)?,
            "max_output_dimension" => l.max_output_dimension = parse(key, value)?,
            "max_output_pixels" => l.max_output_pixels = parse(key, value)?,
            "max_job_seconds" => l.max_job_seconds = parse(key, value)?,
            "max_job_memory_bytes" => l.max_job_memory_bytes = parse(key, value)?,
            "max_icc_bytes" => l.max_icc_bytes = parse(key, value)?,
            "max_jpeg_scans" => l.max_jpeg_scans = parse(key, value)?,
            "max_reply_bytes" => l.max_reply_bytes = parse(key, value)?,
            _ => return Err(ConfigError::UnknownKey(key.into())),
        }
        Ok(())
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: &str| {
            Err(ConfigError::Invalid {
                key: key.into(),
                message: message.into(),
            })
        };
        if self.queue.is_empty() {
            return bad("queue", "must not be empty");
        }
        if !(1..=1024).contains(&self.concurrency) {
            return bad("concurrency", "must be between 1 and 1024");
        }
        if self.limits.max_inputs == 0 || self.limits.max_outputs == 0 {
            return bad(
                "max_inputs",
                "max_inputs and max_outputs must be at least 1",
            );
        }
        if self.limits.max_inputs > 256 || self.limits.max_outputs > 64 {
            return bad(
                "max_inputs",
                "max_inputs is at most 256 and max_outputs at most 64",
            );
        }
        if self.limits.max_reply_bytes < 64 << 10 {
            return bad("max_reply_bytes", "must be at least 65536");
        }
        if self.limits.max_job_seconds == 0 {
            return bad("max_job_seconds", "must be at least 1");
        }
        if !self.http_addr.is_empty() && self.http_addr.parse::<std::net::SocketAddr>().is_err() {
            return bad(
                "http_addr",
                "must be host:port (an IP address), or empty for off",
            );
        }
        if self.delivery_limit == 0 {
            return bad("delivery_limit", "must be at least 1");
        }
        if !(4096..=131_072).contains(&self.frame_max) {
            return bad("frame_max", "must be between 4096 and 131072");
        }
        if self.reconnect_initial_ms == 0 || self.reconnect_max_ms < self.reconnect_initial_ms {
            return bad(
                "reconnect_initial_ms",
                "must be at least 1 and at most reconnect_max_ms",
            );
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return bad(
                "tls_cert_file",
                "tls_cert_file and tls_key_file go together",
            );
        }
        let scheme_ok = ["amqp://", "amqps://"]
            .iter()
            .any(|s| self.amqp_url.expose().starts_with(s));
        if !scheme_ok {
            return bad("amqp_url", "must start with amqp:// or amqps://");
        }
        Ok(())
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_environment_overrides_the_file_and_flags_override_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("worker.toml");
        std::fs::write(
            &file,
            "queue = \"from-file\"\nconcurrency = 3\n[limits]\nmax_inputs = 5\n",
        )
        .unwrap();
        let mut config = Config::from_file(&file).unwrap();
        assert_eq!(config.queue, "from-file");
        config
            .apply_env(env(&[("MIDNIT_QUEUE", "from-env"), ("PATH", "/bin")]))
            .unwrap();
        config.set("concurrency", "7").unwrap();
        assert_eq!(config.queue, "from-env");
        assert_eq!(config.concurrency, 7);
        assert_eq!(config.limits.max_inputs, 5);
    }

    #[test]
    fn an_unknown_key_in_the_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("worker.toml");
        std::fs::write(&file, "queeue = \"typo\"\n").unwrap();
        let err = Config::from_file(&file).unwrap_err().to_string();
        assert!(err.contains("queeue"), "{err}");
    }

    #[test]
    fn an_unknown_environment_variable_with_the_prefix_is_an_error() {
        let err = Config::default()
            .apply_env(env(&[("MIDNIT_CONCURENCY", "2")]))
            .unwrap_err();
        assert!(matches!(err, ConfigError::UnknownKey(k) if k == "concurency"));
    }

    #[test]
    fn every_listed_key_can_be_set() {
        for (key, _) in KEYS {
            let value = match *key {
                "amqp_url" => "amqp://u:p@h:1/%2f",
                "queue" | "dead_letter_exchange" | "dead_letter_queue" | "spill_dir" => "x",
                "renderer_binary" | "receipt_key_file" | "tls_ca_file" | "tls_cert_file"
                | "tls_key_file" => "/bin/x",
                "wipe_memory" => "false",
                "http_addr" => "127.0.0.1:0",
                "executor" => "in_process",
                "topology" => "durable",
                _ => "5",
            };
            Config::default().set(key, value).unwrap();
        }
    }

    #[test]
    fn every_key_of_the_example_file_and_only_those_are_listed() {
        let example = include_str!("../deploy/worker.example.toml");
        let mut in_file: Vec<&str> = example
            .lines()
            .map(|l| l.trim_start_matches('#').trim())
            .filter_map(|l| l.split_once(" = ").map(|(k, _)| k.trim()))
            .collect();
        in_file.sort_unstable();
        let mut listed: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
        listed.sort_unstable();
        assert_eq!(in_file, listed);
    }

    #[test]
    fn a_value_that_does_not_parse_names_its_key() {
        let err = Config::default().set("max_inputs", "many").unwrap_err();
        assert!(err.to_string().contains("max_inputs"), "{err}");
    }

    #[test]
    fn the_amqp_password_never_prints() {
        let url = SecretUrl::new("amqp://guest:hunter2@broker:5672/%2f");
        assert_eq!(format!("{url:?}"), "amqp://guest:***@broker:5672/%2f");
        let config = Config {
            amqp_url: url,
            ..Config::default()
        };
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
