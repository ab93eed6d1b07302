//! Configuration: defaults → TOML file → environment (`MIDNIT_*`) → command-line flags.
//!
//! Every setting is declared once, in its section (`sections.rs`, and [`Limits`] in the job):
//! its type, default, and the text of the README's table, which is generated from it
//! ([`Config::markdown_table`]; a test keeps the README equal to it). The same key names a TOML
//! field (under its section, `[broker] queue = …`, or at the top level), an environment
//! variable (`MIDNIT_QUEUE`) and a `--set key=value` flag; all three go through one setter.

mod sections;
mod values;

use crate::intake::{Preset, Presets};
use crate::job::Limits;
pub use crate::keys::{KeySettings, SealedMode};
pub use sections::{
    BrokerSettings, ExecutorSettings, HttpSettings, TelemetrySettings, WipeSettings, WorkerSettings,
};
pub use values::{ExecutorKind, OtlpProtocol, SecretUrl, Topology};

use crate::settings::{Key, Section};
use std::path::{Path, PathBuf};

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

/// The worker's configuration: one section per concern.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// The broker.
    pub broker: BrokerSettings,
    /// Concurrency and shutdown.
    pub worker: WorkerSettings,
    /// Where jobs are rendered.
    pub executor: ExecutorSettings,
    /// Spill files, wiping, the receipt key.
    pub wipe: WipeSettings,
    /// The health and metrics listener.
    pub http: HttpSettings,
    /// Trace export.
    pub telemetry: TelemetrySettings,
    /// Sealed jobs and their keys.
    pub keys: KeySettings,
    /// The limits every job is held to.
    pub limits: Limits,
    /// Named outputs (and recipes) a request may ask for by name (`[presets.NAME]`, file only).
    pub presets: Presets,
}

/// The sections' names, in the order the README lists them.
pub const SECTIONS: [&str; 8] = [
    "broker",
    "worker",
    "executor",
    "wipe",
    "http",
    "telemetry",
    "keys",
    "limits",
];

impl Config {
    /// Every setting, section by section.
    pub fn keys() -> impl Iterator<Item = &'static Key> {
        [
            BrokerSettings::KEYS,
            WorkerSettings::KEYS,
            ExecutorSettings::KEYS,
            WipeSettings::KEYS,
            HttpSettings::KEYS,
            TelemetrySettings::KEYS,
            KeySettings::KEYS,
            Limits::KEYS,
        ]
        .into_iter()
        .flatten()
    }

    /// The README's configuration table, generated from the one definition.
    pub fn markdown_table() -> String {
        let mut out = String::from(
            "| environment | section | key | default | meaning |\n|---|---|---|---|---|\n",
        );
        for k in Self::keys() {
            out.push_str(&format!(
                "| `{}` | `[{}]` | `{}` | {} | {} |\n",
                k.env(),
                k.section,
                k.name,
                k.default,
                k.meaning
            ));
        }
        out
    }

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

    /// Reads a TOML file over the defaults (no environment, no flags). Keys may sit in their
    /// section's table or at the top level.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let parse = |message: String| ConfigError::Parse {
            path: path.into(),
            message,
        };
        let table: toml::Table = toml::from_str(&text).map_err(|e| parse(e.message().into()))?;
        let mut config = Self::default();
        for (name, value) in &table {
            match value {
                toml::Value::Table(inner) if name == "presets" => {
                    config.presets = presets_of(inner, path).map_err(parse)?;
                }
                toml::Value::Table(inner) => {
                    if !SECTIONS.contains(&name.as_str()) {
                        return Err(parse(format!("unknown section `[{name}]`")));
                    }
                    for (key, value) in inner {
                        match Self::keys().find(|k| k.name == key) {
                            Some(k) if k.section != name => {
                                return Err(parse(format!(
                                    "setting `{key}` belongs in `[{}]`, not `[{name}]`",
                                    k.section
                                )))
                            }
                            _ => config
                                .set_toml(key, value)
                                .map_err(|e| parse(e.to_string()))?,
                        }
                    }
                }
                value => config
                    .set_toml(name, value)
                    .map_err(|e| parse(e.to_string()))?,
            }
        }
        Ok(config)
    }

    fn set_toml(&mut self, key: &str, value: &toml::Value) -> Result<(), ConfigError> {
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(f) => f.to_string(),
            _ => {
                return Err(ConfigError::Invalid {
                    key: key.into(),
                    message: "expected a string, a number or a boolean".into(),
                })
            }
        };
        self.set(key, &text)
    }

    /// Applies every `MIDNIT_<KEY>` variable of `vars` (other variables are ignored;
    /// `MIDNIT_CONFIG` names the file, `MIDNIT_LOG` the log filter and
    /// `MIDNIT_RECEIPT_PUBLIC_KEY` and `MIDNIT_DIRECTORY_PUBLIC_KEY` the keys `verify-receipt`
    /// and a sealed `submit` pin, so they are skipped). Variables Kubernetes injects for a
    /// Service whose name starts with `midnit-` (`MIDNIT_WORKER_SERVICE_HOST`,
    /// `MIDNIT_WORKER_PORT_9464_TCP`, …) are skipped too; any other unknown `MIDNIT_`
    /// variable is an error, so a misspelt setting never passes unseen.
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        for (name, value) in vars {
            let Some(key) = name.strip_prefix("MIDNIT_") else {
                continue;
            };
            if matches!(
                key,
                "CONFIG" | "LOG" | "RECEIPT_PUBLIC_KEY" | "DIRECTORY_PUBLIC_KEY"
            ) || is_service_link(key, &value)
            {
                continue;
            }
            self.set(&key.to_ascii_lowercase(), &value)?;
        }
        Ok(())
    }

    /// Sets one key from its text form.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let set = self
            .broker
            .set(key, value)
            .or_else(|| self.worker.set(key, value))
            .or_else(|| self.executor.set(key, value))
            .or_else(|| self.wipe.set(key, value))
            .or_else(|| self.http.set(key, value))
            .or_else(|| self.telemetry.set(key, value))
            .or_else(|| self.keys.set(key, value))
            .or_else(|| self.limits.set(key, value))
            .ok_or_else(|| ConfigError::UnknownKey(key.into()))?;
        set.map_err(|message| ConfigError::Invalid {
            key: key.into(),
            message,
        })
    }

    /// What only `serve` reads at start, checked before it logs anything: the key state file
    /// when sealed requests are taken (`keys init` is what makes it, so no other command needs
    /// it).
    pub fn check_serve_files(&self) -> Result<(), ConfigError> {
        let Some(path) = &self.keys.key_state_file else {
            return Ok(());
        };
        if self.keys.sealed == SealedMode::Off {
            return Ok(());
        }
        std::fs::File::open(path)
            .map(drop)
            .map_err(|e| ConfigError::Invalid {
                key: "key_state_file".into(),
                message: format!("cannot read {}: {e}", path.display()),
            })
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: &str| {
            Err(ConfigError::Invalid {
                key: key.into(),
                message: message.into(),
            })
        };
        let (b, l) = (&self.broker, &self.limits);
        if b.queue.is_empty() {
            return bad("queue", "must not be empty");
        }
        if !(1..=1024).contains(&self.worker.concurrency) {
            return bad("concurrency", "must be between 1 and 1024");
        }
        if l.max_inputs == 0 || l.max_outputs == 0 {
            return bad(
                "max_inputs",
                "max_inputs and max_outputs must be at least 1",
            );
        }
        if l.max_inputs > 256 || l.max_outputs > 64 {
            return bad(
                "max_inputs",
                "max_inputs is at most 256 and max_outputs at most 64",
            );
        }
        if l.max_reply_bytes < 64 << 10 {
            return bad("max_reply_bytes", "must be at least 65536");
        }
        if l.max_job_seconds == 0 {
            return bad("max_job_seconds", "must be at least 1");
        }
        let http = &self.http.http_addr;
        if !http.is_empty() && http.parse::<std::net::SocketAddr>().is_err() {
            return bad(
                "http_addr",
                "must be host:port (an IP address), or empty for off",
            );
        }
        if b.delivery_limit == 0 {
            return bad("delivery_limit", "must be at least 1");
        }
        if !(4096..=131_072).contains(&b.frame_max) {
            return bad("frame_max", "must be between 4096 and 131072");
        }
        if b.connect_timeout_secs == 0 {
            return bad("connect_timeout_secs", "must be at least 1");
        }
        if b.reconnect_initial_ms == 0 || b.reconnect_max_ms < b.reconnect_initial_ms {
            return bad(
                "reconnect_initial_ms",
                "must be at least 1 and at most reconnect_max_ms",
            );
        }
        if b.tls_cert_file.is_some() != b.tls_key_file.is_some() {
            return bad(
                "tls_cert_file",
                "tls_cert_file and tls_key_file go together",
            );
        }
        if self.keys.epoch_grace_secs == 0 || self.keys.key_follow_secs == 0 {
            return bad(
                "epoch_grace_secs",
                "epoch_grace_secs and key_follow_secs must be at least 1",
            );
        }
        if self.keys.ephemeral_epoch_secs <= self.keys.epoch_grace_secs {
            return bad(
                "ephemeral_epoch_secs",
                "must be longer than epoch_grace_secs (at most one past epoch is held)",
            );
        }
        if let Err(message) = self.presets.check(l) {
            return Err(ConfigError::Invalid {
                key: "presets".into(),
                message,
            });
        }
        let endpoint = &self.telemetry.otlp_endpoint;
        if !endpoint.is_empty()
            && !endpoint.starts_with("http://")
            && !endpoint.starts_with("https://")
        {
            return bad(
                "otlp_endpoint",
                "must be an http:// or https:// URL, or empty",
            );
        }
        check_broker_urls(b)?;
        check_files(self)
    }
}

#[cfg(test)]
mod tests;

/// Whether `MIDNIT_<key>` is one of the variables Kubernetes' service links define for a
/// Service named `midnit-…`: `<NAME>_SERVICE_HOST`, `<NAME>_SERVICE_PORT[_<PORT NAME>]`,
/// `<NAME>_PORT` (`tcp://…`) and `<NAME>_PORT_<n>_<PROTO>[_PROTO|_PORT|_ADDR]`. No setting
/// has such a name.
fn is_service_link(key: &str, value: &str) -> bool {
    if Config::keys().any(|k| k.name.eq_ignore_ascii_case(key)) {
        return false;
    }
    // A Service named exactly `midnit` makes `MIDNIT_SERVICE_HOST`, `MIDNIT_PORT`, …
    let key = &format!("_{key}");
    if key.ends_with("_SERVICE_HOST") || key.contains("_SERVICE_PORT") {
        return true;
    }
    if let Some((_, tail)) = key.rsplit_once("_PORT_") {
        let mut parts = tail.split('_');
        let port = parts.next().unwrap_or("");
        let proto = parts.next().unwrap_or("");
        let suffix = parts.next();
        if !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && ["TCP", "UDP", "SCTP"].contains(&proto)
            && matches!(suffix, None | Some("PROTO" | "PORT" | "ADDR"))
            && parts.next().is_none()
        {
            return true;
        }
    }
    key.ends_with("_PORT")
        && ["tcp://", "udp://", "sctp://"]
            .iter()
            .any(|s| value.starts_with(s))
}

/// Checks that each broker URL parses as an AMQP URL (the URL itself is never printed: it may
/// hold a password).
fn check_broker_urls(b: &BrokerSettings) -> Result<(), ConfigError> {
    let bad = |message: String| ConfigError::Invalid {
        key: "amqp_url".into(),
        message,
    };
    let count = b.amqp_url.count();
    if count == 0 {
        return Err(bad("is empty".into()));
    }
    for (i, url) in b.amqp_url.urls().enumerate() {
        let which = if count == 1 {
            "the URL".to_owned()
        } else {
            format!("URL {} of {count}", i + 1)
        };
        if !url.starts_with("amqp://") && !url.starts_with("amqps://") {
            return Err(bad(format!("{which} must start with amqp:// or amqps://")));
        }
        if url.parse::<lapin::uri::AMQPUri>().is_err() {
            return Err(bad(format!(
                "{which} is not a valid AMQP URL (amqp[s]://user:password@host:port/vhost)"
            )));
        }
    }
    Ok(())
}

/// Whether the PEM header line at the start of `text` ends with `label` (`CERTIFICATE-----`,
/// `PRIVATE KEY-----`, which also matches `RSA PRIVATE KEY-----`).
fn has_label(text: &[u8], label: &str) -> bool {
    let line = text.split(|&b| b == b'\n').next().unwrap_or(&[]);
    line.trim_ascii_end().ends_with(label.as_bytes())
}

/// Checks that every file a setting names can be read now: a worker that cannot read its CA
/// bundle or keys stops at start with one line, instead of retrying something that cannot heal.
fn check_files(config: &Config) -> Result<(), ConfigError> {
    let b = &config.broker;
    // Each file, and the PEM block it must hold (none for the receipt key's hex seed).
    let files = [
        ("tls_ca_file", &b.tls_ca_file, Some("CERTIFICATE-----")),
        ("tls_cert_file", &b.tls_cert_file, Some("CERTIFICATE-----")),
        ("tls_key_file", &b.tls_key_file, Some("PRIVATE KEY-----")),
        ("receipt_key_file", &config.wipe.receipt_key_file, None),
    ];
    for (key, path, pem) in files {
        let Some(path) = path else { continue };
        let bad = |message: String| ConfigError::Invalid {
            key: key.into(),
            message,
        };
        let text =
            std::fs::read(path).map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
        if let Some(block) = pem {
            let begins = memchr::memmem::find_iter(&text, b"-----BEGIN ")
                .any(|at| has_label(&text[at..], block));
            if !begins {
                return Err(bad(format!(
                    "{} holds no PEM `-----BEGIN …{block}` block",
                    path.display()
                )));
            }
        }
    }
    Ok(())
}

/// The `[presets.NAME]` tables: `outputs` (a list of output tables, as in a request) and
/// `recipe` (a recipe table) or `recipe_file` (a recipe JSON file, or a request file whose
/// `recipe` is taken, relative to the config file's folder). Checked against the limits by
/// [`Config::validate`].
fn presets_of(table: &toml::Table, file: &Path) -> Result<Presets, String> {
    let mut presets = Presets::default();
    for (name, value) in table {
        let toml::Value::Table(preset) = value else {
            return Err(format!("presets.{name}: expected a table"));
        };
        if let Some(key) = preset
            .keys()
            .find(|k| !["outputs", "recipe", "recipe_file"].contains(&k.as_str()))
        {
            return Err(format!(
                "presets.{name}: unknown key `{key}`, expected `outputs`, `recipe` or `recipe_file`"
            ));
        }
        let outputs = preset
            .get("outputs")
            .ok_or_else(|| format!("presets.{name}: missing `outputs`"))?;
        let recipe = match (preset.get("recipe"), preset.get("recipe_file")) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "presets.{name}: `recipe` and `recipe_file` exclude each other"
                ))
            }
            (Some(inline), None) => Some(serde_json::to_value(inline).map_err(|e| e.to_string())?),
            (None, Some(toml::Value::String(rel))) => {
                let at = file.parent().unwrap_or(Path::new(".")).join(rel);
                let text = std::fs::read_to_string(&at)
                    .map_err(|e| format!("presets.{name}.recipe_file {}: {e}", at.display()))?;
                let mut json: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| format!("presets.{name}.recipe_file {}: {e}", at.display()))?;
                // A request file (docs/examples/recipes/) lends its `recipe`.
                Some(match json.get_mut("recipe") {
                    Some(recipe) => recipe.take(),
                    None => json,
                })
            }
            (None, Some(_)) => return Err(format!("presets.{name}.recipe_file: expected a path")),
            (None, None) => None,
        };
        let preset =
            Preset::new(outputs, recipe.as_ref()).map_err(|e| format!("presets.{name}: {e}"))?;
        presets.insert(name.clone(), preset);
    }
    Ok(presets)
}
