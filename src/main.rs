//! The `midnit-worker` binary: parse the command line, load configuration, start logging, and
//! hand over to the library.

use clap::{Parser, Subcommand};
use midnit_worker::app::{config::Config, serve, telemetry};
use midnit_worker::render::executor;
use midnit_worker::tools::cli;
use midnit_worker::tools::demo;
use midnit_worker::tools::keys;
use midnit_worker::wipe::ZeroingAlloc;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[global_allocator]
static ALLOC: ZeroingAlloc = ZeroingAlloc;

/// Renders images from collectors' photos off a RabbitMQ queue, then wipes every byte.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file (also MIDNIT_CONFIG).
    #[arg(long, global = true, env = "MIDNIT_CONFIG")]
    config: Option<PathBuf>,
    /// Override any setting: --set key=value (keys as in the configuration table).
    #[arg(long = "set", global = true, value_parser = parse_set)]
    sets: Vec<(String, String)>,
    /// Shorthand for --set amqp_url=URL.
    #[arg(long, global = true)]
    amqp_url: Option<String>,
    /// Shorthand for --set queue=NAME.
    #[arg(long, global = true)]
    queue: Option<String>,
    /// Shorthand for --set concurrency=N.
    #[arg(long, global = true)]
    concurrency: Option<usize>,
    /// Log one JSON object per line.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the worker until SIGTERM/SIGINT.
    Serve,
    /// Send REQUEST.json through the broker, wait for the reply, write its outputs.
    Submit {
        /// The request file.
        request: PathBuf,
        /// Where to write the outputs.
        #[arg(long, default_value = "out")]
        out: PathBuf,
        /// Seconds to wait for the reply.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// Seal the request to the fleet's current epoch key (contract v2) and open the sealed
        /// reply; the key directory comes from `--directory` or the worker's `GET /keys`.
        #[arg(long)]
        sealed: bool,
        /// A key directory file (as `keys directory` writes it) instead of `GET /keys`.
        #[arg(long)]
        directory: Option<PathBuf>,
        /// The pinned directory public key (64 hex digits, as `keys init` prints it).
        #[arg(
            long,
            env = "MIDNIT_DIRECTORY_PUBLIC_KEY",
            required_if_eq("sealed", "true")
        )]
        directory_key: Option<String>,
    },
    /// The fleet's key state for sealed jobs: `init`, `rotate`, `directory`.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Run the same pipeline locally, without a broker.
    Render {
        /// The request file.
        request: PathBuf,
        /// Where to write the outputs.
        #[arg(long, default_value = "out")]
        out: PathBuf,
    },
    /// Run a worker and a handful of sample jobs.
    Demo {
        /// Where to write the outputs.
        #[arg(long, default_value = "demo-out")]
        out: PathBuf,
    },
    /// Check the attestation of a reply printed by `submit` against the worker's pinned key,
    /// and every fact it attests against the reply, the request digest and the written files.
    VerifyReceipt {
        /// The JSON printed by `submit`.
        file: PathBuf,
        /// The worker's public key (64 hex digits, as logged at its start). Required: a
        /// signature checked against a key taken from the message itself proves nothing.
        #[arg(long, env = "MIDNIT_RECEIPT_PUBLIC_KEY")]
        public_key: String,
    },
    /// Ask the running worker's health listener (`http_addr`) for a path, exit 0 on HTTP 200:
    /// for container health checks, which have no curl.
    Healthcheck {
        /// `/healthz` (alive) or `/readyz` (connected and consuming).
        #[arg(long, default_value = "/healthz")]
        path: String,
    },
    /// Load generator: start a worker (this configuration, a queue of its own) and drive it
    /// through the broker at each concurrency; print jobs/s, latency percentiles, CPU per job
    /// and peak RSS, and write bench.json and bench.svg.
    Bench {
        /// Jobs in flight from the client, one level after another (comma-separated). The
        /// worker's own concurrency is `--concurrency` / `MIDNIT_CONCURRENCY` as usual.
        #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
        in_flight: Vec<usize>,
        /// Jobs per level.
        #[arg(long, default_value_t = 100)]
        jobs: usize,
        /// Size of the generated photos, WIDTHxHEIGHT.
        #[arg(long, default_value = "4000x3000")]
        photo: String,
        /// Where to write bench.json, bench.svg and the worker's log.
        #[arg(long, default_value = "bench-out")]
        out: PathBuf,
        /// `standard` (thumbnails, a PNG conversion, a showcase card) or `small` (one 190 KB
        /// JPEG to 256 px, for the overhead of the broker and isolation).
        #[arg(long, value_enum, default_value = "standard")]
        mix: midnit_worker::tools::bench::Mix,
    },
    /// Render every recipe example in docs/examples/recipes into its out/ directory (the
    /// README gallery and the golden tests' references), generating the sample photos first.
    Gallery {
        /// The examples directory.
        #[arg(long, default_value = midnit_worker::tools::gallery::DIR)]
        dir: PathBuf,
    },
    /// Print the JSON Schema of the recipe language (docs/recipe.schema.json).
    RecipeSchema,
    /// Print the table of every setting (the README's configuration table).
    Settings,
    /// Write the synthetic sample inputs used by docs/examples.
    Samples {
        /// Where to write them.
        #[arg(long, default_value = "docs/examples")]
        out: PathBuf,
        /// Instead, write this many 12 MP photos (4000x3000 JPEG q90): the benchmark workload.
        #[arg(long, default_value_t = 0)]
        photos: u32,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create the fleet's key state (random chain value and directory key) and print the
    /// directory public key clients pin.
    Init {
        /// The key state file (default: `key_state_file`).
        #[arg(long)]
        state: Option<PathBuf>,
        /// How long an epoch lasts.
        #[arg(long, default_value_t = 3600)]
        epoch_secs: u64,
        /// Replace an existing state (every key it held is retired at once).
        #[arg(long, conflicts_with = "if_missing")]
        force: bool,
        /// Succeed without writing when a state is already there (for init containers).
        #[arg(long)]
        if_missing: bool,
        /// The long-term directory key's seed (64 hex digits), kept apart from the state, so
        /// the key the app pins survives a state made again (default: a new random key).
        #[arg(long)]
        directory_key_file: Option<PathBuf>,
    },
    /// Move the stored state forward to the clock's epoch, overwriting it (run it on a
    /// schedule: the stored copy then never opens a past epoch).
    Rotate {
        /// The key state file (default: `key_state_file`).
        #[arg(long)]
        state: Option<PathBuf>,
        /// Keep running, rotating every this many seconds (for a sidecar without cron).
        #[arg(long)]
        every: Option<u64>,
    },
    /// Write the signed key directory (as `GET /keys` serves it) and print its keys.
    Directory {
        /// The key state file (default: `key_state_file`).
        #[arg(long)]
        state: Option<PathBuf>,
        /// Where to write the directory (CBOR).
        #[arg(long)]
        out: PathBuf,
    },
}

fn parse_set(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or("expected key=value")?;
    Ok((k.trim().to_owned(), v.to_owned()))
}

fn main() -> ExitCode {
    midnit_worker::wipe::prefer_mmap_for_big_blocks();
    if std::env::args().nth(1).as_deref() == Some(executor::renderer::CHILD_COMMAND) {
        // A renderer: no logging, no runtime; panics are caught and answered by the pipeline.
        std::panic::set_hook(Box::new(|_| {}));
        let args: Vec<String> = std::env::args().skip(2).collect();
        std::process::exit(executor::renderer::run_child(&args));
    }
    if std::env::args().nth(1).as_deref() == Some(executor::selftest::SELFTEST_COMMAND) {
        let args: Vec<String> = std::env::args().skip(2).collect();
        std::process::exit(executor::selftest::run_selftest(&args));
    }
    // Before anything reads a password or a key: a crash from here on writes no core file.
    telemetry::disable_core_dumps();
    let cli = Cli::parse();
    let mut sets = cli.sets.clone();
    let shorthand = [
        ("amqp_url", cli.amqp_url.clone()),
        ("queue", cli.queue.clone()),
        ("concurrency", cli.concurrency.map(|n| n.to_string())),
    ];
    sets.extend(
        shorthand
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_owned(), v?))),
    );
    // What only a change of settings or files can mend ends the process at once, with exit
    // code 2 and one line; nothing is retried.
    let serving = matches!(cli.command, Command::Serve);
    let loaded = Config::load(cli.config.as_deref(), &sets).and_then(|c| {
        if serving {
            c.check_serve_files().map(|()| c)
        } else {
            Ok(c)
        }
    });
    let config = match loaded {
        Ok(c) => c,
        Err(e) => return configuration_error(e),
    };
    let _telemetry = match telemetry::init(cli.log_json, &config.telemetry) {
        Ok(t) => t,
        Err(e) => return configuration_error(e),
    };
    // Idle blocking-pool threads (intake, sealing, wipes) end after a second, so a burst of
    // jobs leaves no threads behind at rest.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_keep_alive(Duration::from_secs(1))
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(dispatch(cli.command, config));
    drop(runtime);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<midnit_worker::app::worker::ServeError>() {
            Some(serve) if serve.exit_code() == 2 => configuration_error(serve),
            _ => {
                tracing::error!("{e:#}");
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// What only a change of settings or files can mend: one line, exit code 2.
fn configuration_error(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("configuration error: {e}");
    ExitCode::from(2)
}

fn keys_command(command: KeysCommand, config: &Config) -> anyhow::Result<()> {
    let state_of = |state: Option<PathBuf>| {
        state
            .or_else(|| config.keys.key_state_file.clone())
            .ok_or_else(|| anyhow::anyhow!("--state (or key_state_file) names the key state"))
    };
    match command {
        KeysCommand::Init {
            state,
            epoch_secs,
            force,
            if_missing,
            directory_key_file,
        } => {
            let path = state_of(state)?;
            let (public, wrote) = keys::init(&keys::Init {
                path: &path,
                epoch_secs,
                force,
                if_missing,
                directory_key_file: directory_key_file.as_deref(),
            })?;
            let what = if wrote { "wrote" } else { "kept the existing" };
            println!(
                "{what} {} (mode 0600; never back it up)\ndirectory public key (pin it in the app): {}",
                path.display(),
                midnit_client::hex(&public)
            );
        }
        KeysCommand::Rotate { state, every } => {
            let path = state_of(state)?;
            loop {
                let (was, now) = keys::rotate(&path)?;
                if now > was {
                    println!(
                        "{}: epoch {was} -> {now} (the old chain value is overwritten)",
                        path.display()
                    );
                } else {
                    println!("{}: already at epoch {now}", path.display());
                }
                match every {
                    Some(secs) => std::thread::sleep(Duration::from_secs(secs.max(1))),
                    None => break,
                }
            }
        }
        KeysCommand::Directory { state, out } => {
            let path = state_of(state)?;
            let (bytes, public) = keys::directory(&path)?;
            std::fs::write(&out, &bytes)?;
            let now = midnit_worker::wipe::now_unix_ms();
            let dir = midnit_client::KeyDirectory::verify(&bytes, &public, now)?;
            println!(
                "wrote {} ({} bytes), signed by {}",
                out.display(),
                bytes.len(),
                midnit_client::hex(&public)
            );
            for k in &dir.keys {
                println!(
                    "  epoch {}: {} from {} to {} (ms since the Unix epoch)",
                    k.epoch,
                    midnit_client::hex(&k.public_key),
                    k.not_before_ms,
                    k.not_after_ms
                );
            }
        }
    }
    Ok(())
}

async fn dispatch(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            // The zeroing allocator is this binary's: it follows `wipe_memory` here, once.
            ZeroingAlloc::set_enabled(config.wipe.wipe_memory);
            serve::serve(config).await?
        }
        Command::Submit {
            request,
            out,
            timeout,
            sealed,
            directory,
            directory_key,
        } => {
            let timeout = Duration::from_secs(timeout);
            let directory = match (sealed, directory_key) {
                (true, Some(key)) => Some(keys::fetch_directory(
                    directory.as_deref(),
                    &config.http.http_addr,
                    &key,
                )?),
                _ => None,
            };
            let sent = cli::submit(&config, &request, &out, timeout, directory.as_ref()).await?;
            let submitted = (sent.correlation_id.as_str(), &sent.request_sha256);
            cli::print_reply(&sent.reply, Some(submitted), &out)?;
        }
        Command::Render { request, out } => {
            // One job, then exit: the C codecs (HEIC, AVIF, lossy WebP) may run here.
            midnit_worker::render::codecs::allow_c_codecs();
            let reply = cli::render(&config, &request, &out).await?;
            cli::print_reply(&reply, None, &out)?;
        }
        Command::Demo { out } => demo::run(config, &out).await?,
        Command::Keys { command } => keys_command(command, &config)?,
        Command::Samples { out, photos } => cli::samples(&out, photos)?,
        Command::Gallery { dir } => {
            for path in midnit_worker::tools::gallery::write(&config, &dir).await? {
                println!("wrote {}", path.display());
            }
        }
        Command::Settings => print!("{}", Config::markdown_table()),
        Command::RecipeSchema => {
            let schema = midnit_worker::recipe::schema();
            println!("{}", serde_json::to_string_pretty(&schema)?);
        }
        Command::Bench {
            in_flight: concurrency,
            jobs,
            photo,
            out,
            mix,
        } => {
            let (w, h) = photo
                .split_once('x')
                .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
                .ok_or_else(|| anyhow::anyhow!("--photo must be WIDTHxHEIGHT"))?;
            anyhow::ensure!(
                jobs > 0 && !concurrency.is_empty() && !concurrency.contains(&0),
                "--jobs and every --in-flight level must be at least 1"
            );
            let plan = midnit_worker::tools::bench::Plan {
                concurrency,
                jobs,
                photo: (w, h),
                out: out.clone(),
                mix,
            };
            let report = midnit_worker::tools::bench::run(config, &plan).await?;
            midnit_worker::tools::bench::print(&report);
            println!(
                "wrote {} and {}",
                out.join("bench.json").display(),
                out.join("bench.svg").display()
            );
        }
        Command::Healthcheck { path } => {
            let status = midnit_worker::app::http::get_status(&config.http.http_addr, &path)?;
            anyhow::ensure!(status == 200, "{path}: HTTP {status}");
            println!("{path}: ok");
        }
        Command::VerifyReceipt { file, public_key } => {
            let kid = cli::verify_receipt(&file, &public_key)?;
            println!(
                "valid: attested by the pinned key {} (key id {kid}); status, request digest, \
                 outputs and receipt all match",
                public_key.trim()
            );
        }
    }
    Ok(())
}
