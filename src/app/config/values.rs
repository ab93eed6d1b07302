//! The value types of settings that are more than numbers and paths.

use crate::settings::Setting;

/// A credential-bearing string that never prints its secret part.
#[derive(Clone, PartialEq, Eq)]
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

    /// The URL with any password replaced by `***` (each URL of a list).
    pub fn redacted(&self) -> String {
        self.urls().map(redact_url).collect::<Vec<_>>().join(",")
    }

    /// The URLs it holds: one per broker node, comma-separated (a cluster's nodes; the worker
    /// moves to the next when a connection is lost).
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        self.0.split(',').map(str::trim).filter(|u| !u.is_empty())
    }

    /// The `i`-th URL, counting round the list.
    pub fn nth(&self, i: usize) -> SecretUrl {
        match self.count() {
            0 => self.clone(),
            n => SecretUrl::new(self.urls().nth(i % n).unwrap_or_default()),
        }
    }

    /// How many URLs it holds.
    pub fn count(&self) -> usize {
        self.urls().count()
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

impl Setting for SecretUrl {
    fn parse_setting(text: &str) -> Result<Self, String> {
        Ok(Self::new(text.trim()))
    }
}

impl Setting for ExecutorKind {
    fn parse_setting(text: &str) -> Result<Self, String> {
        text.trim().parse()
    }
}

impl Setting for Topology {
    fn parse_setting(text: &str) -> Result<Self, String> {
        text.trim().parse()
    }
}

/// The OTLP/HTTP encoding of exported spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// `http/protobuf` (OTLP's default).
    Protobuf,
    /// `http/json`.
    Json,
}

impl Setting for OtlpProtocol {
    fn parse_setting(text: &str) -> Result<Self, String> {
        match text.trim() {
            "http/protobuf" => Ok(Self::Protobuf),
            "http/json" => Ok(Self::Json),
            _ => Err("must be http/protobuf or http/json".into()),
        }
    }
}
