//! Logs: `tracing` to stderr, one span per job carrying its id; never payload bytes.
//!
//! The panic hook prints where a panic happened but not its message: a message may be built
//! from data (a decoder formatting what it choked on), and crash output must never carry a
//! user's photo.

use crate::app::config::{OtlpProtocol, TelemetrySettings};
use std::io::IsTerminal;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Keeps the span exporter alive; dropping it flushes the spans not yet sent.
#[must_use = "dropping the guard flushes and stops the span exporter"]
pub struct Telemetry {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown() {
                eprintln!("span export did not flush: {e}");
            }
        }
    }
}

/// Installs the log subscriber (`MIDNIT_LOG`, then `RUST_LOG`, default `info`) and the panic
/// hook. `json` selects one JSON object per line; text logs are coloured only on a terminal
/// (and never with `NO_COLOR` set). With an `otlp_endpoint`, job spans are also exported over
/// OTLP/HTTP. Call it outside any async runtime: the exporter's HTTP client keeps its own.
pub fn init(json: bool, settings: &TelemetrySettings) -> Result<Telemetry, String> {
    let filter = std::env::var("MIDNIT_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let logs = if json {
        fmt.json().boxed()
    } else {
        fmt.boxed()
    };
    let provider = exporter(settings)?;
    let spans = provider.as_ref().map(|p| {
        use opentelemetry::trace::TracerProvider;
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("midnit-worker"))
            .with_filter(tracing_subscriber::filter::filter_fn(|m| {
                m.is_span() && m.name() == "job"
            }))
    });
    let _ = tracing_subscriber::registry()
        .with(logs.with_filter(filter_with_guards(&filter)))
        .with(spans)
        .try_init();
    install_panic_hook();
    Ok(Telemetry { provider })
}

/// The OTLP span exporter the settings ask for, if any.
fn exporter(
    settings: &TelemetrySettings,
) -> Result<Option<opentelemetry_sdk::trace::SdkTracerProvider>, String> {
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    if settings.otlp_endpoint.is_empty() {
        return Ok(None);
    }
    let protocol = match settings.otlp_protocol {
        OtlpProtocol::Protobuf => Protocol::HttpBinary,
        OtlpProtocol::Json => Protocol::HttpJson,
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(settings.otlp_endpoint.clone())
        .with_protocol(protocol)
        .with_timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| format!("otlp_endpoint: cannot build the span exporter: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(settings.otlp_service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    Ok(Some(
        opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build(),
    ))
}

/// The operator's filter, with the AMQP library silenced: lapin logs a returned message with
/// its whole body at WARN and frames at DEBUG/TRACE, and repeats an ERROR line for every failed
/// connection attempt. The worker logs each broker transition itself, once, with its cause.
/// These targets can never be turned up.
pub fn filter_with_guards(filter: &str) -> EnvFilter {
    let mut f = EnvFilter::new(filter);
    for guard in [
        "lapin=off",
        "amq_protocol=off",
        "lapin::returned_messages=off",
    ] {
        f = f.add_directive(guard.parse().expect("static directive"));
    }
    f
}

/// Replaces the default panic hook with one that logs the location only.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_else(|| "unknown".into());
        tracing::error!(%location, "panic (message withheld: it may carry job data)");
    }));
}

/// No core files, and no ptrace or core dump by unprivileged processes: a crash must never
/// write a job's pixels to disk. Called first thing by the binary, whatever the command.
pub fn disable_core_dumps() {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit with a valid pointer; prctl with integer arguments only.
    let ok = unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &zero) == 0
            && libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
    };
    if !ok {
        // Logging is not set up yet: this runs before anything else.
        eprintln!("warning: could not disable core dumps");
    }
}
