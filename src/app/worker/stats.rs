//! What the worker did: counters and histograms for logs, the demo, tests and the Prometheus
//! `/metrics` endpoint ([`Stats::encode`]). Names follow Prometheus conventions: `midnit_`
//! prefix, `_total` for counters, `_seconds` and `_bytes` units.

use super::Outcome;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use std::collections::BTreeMap;
use std::time::Duration;

/// A stage of a job, for the duration histograms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// From the requester's publish (when it says) to pickup.
    QueueWait,
    /// Intake and decoding.
    Decode,
    /// Drawing a recipe's canvas.
    Compose,
    /// Geometry, resizing and colour.
    Render,
    /// Encoding the outputs.
    Encode,
    /// Publishing the reply until the broker confirms it.
    Reply,
    /// Wiping the job's buffers after its outputs are sealed.
    Wipe,
}

impl Stage {
    fn label(self) -> &'static str {
        match self {
            Self::QueueWait => "queue_wait",
            Self::Decode => "decode",
            Self::Compose => "compose",
            Self::Render => "render",
            Self::Encode => "encode",
            Self::Reply => "reply",
            Self::Wipe => "wipe",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    outcome: &'static str,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: &'static str,
}

fn job_histogram() -> Histogram {
    // 5 ms … about 80 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

fn stage_histogram() -> Histogram {
    // 0.5 ms … about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Live counters. Cheap to update from any task.
pub struct Stats {
    registry: Registry,
    jobs: Family<JobLabels, Counter>,
    stages: Family<StageLabels, Histogram, fn() -> Histogram>,
    renderer_rss: Histogram,
    job_duration: Family<OutcomeLabels, Histogram, fn() -> Histogram>,
    in_flight: Gauge,
    concurrency: Gauge,
    utilisation: Gauge<f64, std::sync::atomic::AtomicU64>,
    pool_ready: Gauge,
    pool_target: Gauge,
    ready: Gauge,
    dead_lettered: Counter,
    returned: Counter,
    reply_failed: Counter,
    wiped_bytes: Counter,
    reconnects: Counter,
    idle_wipes: Counter,
    crash_requeues: Counter,
    key_epoch: Gauge,
    key_previous_held: Gauge,
    key_erasures: Counter,
}

impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stats")
            .field("snapshot", &self.snapshot())
            .finish()
    }
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Jobs answered `ok`.
    pub ok: u64,
    /// Jobs answered with an error, by code.
    pub errors: BTreeMap<&'static str, u64>,
    /// Messages rejected to the dead-letter queue (no usable `reply_to`, or a poison job).
    pub rejected: u64,
    /// Replies the broker returned (requester gone).
    pub returned: u64,
    /// Replies that were not confirmed (job requeued).
    pub reply_failed: u64,
    /// Bytes wiped by finished jobs (receipts plus reply bodies).
    pub wiped_bytes: u64,
    /// Connected to the broker and consuming.
    pub ready: bool,
    /// Broker connections reopened after a loss.
    pub reconnects: u64,
    /// Idle connections replaced so their buffers are wiped.
    pub idle_wipes: u64,
    /// Jobs requeued after their renderer crashed (not yet at the delivery limit).
    pub crash_requeues: u64,
    /// Jobs being handled now.
    pub in_flight: u64,
}

impl Default for Stats {
    fn default() -> Self {
        let mut stats = Self {
            registry: Registry::with_prefix("midnit"),
            jobs: Family::default(),
            stages: Family::new_with_constructor(stage_histogram),
            // 8 MiB … 8 GiB.
            renderer_rss: Histogram::new(exponential_buckets(8.0 * 1048576.0, 2.0, 11)),
            job_duration: Family::new_with_constructor(job_histogram),
            in_flight: Gauge::default(),
            concurrency: Gauge::default(),
            utilisation: Gauge::default(),
            pool_ready: Gauge::default(),
            pool_target: Gauge::default(),
            ready: Gauge::default(),
            key_epoch: Gauge::default(),
            key_previous_held: Gauge::default(),
            key_erasures: Counter::default(),
            dead_lettered: Counter::default(),
            returned: Counter::default(),
            reply_failed: Counter::default(),
            wiped_bytes: Counter::default(),
            reconnects: Counter::default(),
            idle_wipes: Counter::default(),
            crash_requeues: Counter::default(),
        };
        let r = &mut stats.registry;
        r.register(
            "build",
            "The running worker's version (value 1)",
            prometheus_client::metrics::info::Info::new(vec![(
                "version",
                env!("CARGO_PKG_VERSION"),
            )]),
        );
        r.register_with_unit(
            "job_duration",
            "End to end per answered job, from its delivery to its reply confirmed and its delivery settled, by outcome (ok or error)",
            Unit::Seconds,
            stats.job_duration.clone(),
        );
        r.register(
            "concurrency",
            "Job slots of this worker (jobs rendered at once; the AMQP prefetch)",
            stats.concurrency.clone(),
        );
        r.register(
            "utilisation_ratio",
            "Share of the job slots in use now (jobs_in_flight / concurrency), 0 to 1",
            stats.utilisation.clone(),
        );
        r.register(
            "renderer_pool_size",
            "Pre-started renderer processes waiting for a job now",
            stats.pool_ready.clone(),
        );
        r.register(
            "renderer_pool_target",
            "Pre-started renderer processes the pool keeps ready (0: each renderer starts with its job)",
            stats.pool_target.clone(),
        );
        r.register(
            "jobs",
            "Jobs answered, by outcome (ok or error) and error code",
            stats.jobs.clone(),
        );
        r.register_with_unit(
            "job_stage_duration",
            "Time per job stage: queue_wait, decode, render, encode, reply, wipe",
            Unit::Seconds,
            stats.stages.clone(),
        );
        r.register_with_unit(
            "renderer_peak_rss",
            "Peak resident memory of each job's renderer process",
            Unit::Bytes,
            stats.renderer_rss.clone(),
        );
        r.register(
            "jobs_in_flight",
            "Jobs being handled now",
            stats.in_flight.clone(),
        );
        r.register(
            "broker_connected",
            "1 while connected to the broker and consuming",
            stats.ready.clone(),
        );
        r.register(
            "dead_lettered",
            "Messages rejected to the dead-letter queue (no reply_to, or poison)",
            stats.dead_lettered.clone(),
        );
        r.register(
            "replies_returned",
            "Replies the broker returned because the requester's queue is gone",
            stats.returned.clone(),
        );
        r.register(
            "replies_unconfirmed",
            "Replies the broker did not confirm (the job was requeued)",
            stats.reply_failed.clone(),
        );
        r.register_with_unit(
            "wiped",
            "Bytes of job data wiped",
            Unit::Bytes,
            stats.wiped_bytes.clone(),
        );
        r.register(
            "broker_reconnects",
            "Broker connections reopened after a loss",
            stats.reconnects.clone(),
        );
        r.register(
            "idle_wipes",
            "Idle broker connections replaced so their buffers are freed and zeroed",
            stats.idle_wipes.clone(),
        );
        r.register(
            "crash_requeues",
            "Jobs requeued after their renderer crashed",
            stats.crash_requeues.clone(),
        );
        r.register(
            "key_epoch",
            "The epoch of the key sealed requests are sealed to now (0 with sealing off)",
            stats.key_epoch.clone(),
        );
        r.register(
            "key_previous_held",
            "1 while a past epoch's private key is held for its grace period",
            stats.key_previous_held.clone(),
        );
        r.register(
            "key_erasures",
            "Past epochs' private keys erased after their grace period",
            stats.key_erasures.clone(),
        );
        stats
    }
}

impl Stats {
    pub(super) fn finished(&self, outcome: &Outcome, wiped: u64) {
        let labels = match outcome {
            Outcome::Ok => JobLabels {
                outcome: "ok",
                code: "",
            },
            Outcome::Error(code) => JobLabels {
                outcome: "error",
                code: code.as_str(),
            },
        };
        self.jobs.get_or_create(&labels).inc();
        self.wiped_bytes.inc_by(wiped);
    }

    /// Records how long `stage` took for one job.
    pub fn observe(&self, stage: Stage, took: Duration) {
        let labels = StageLabels {
            stage: stage.label(),
        };
        self.stages
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    pub(super) fn renderer_peak(&self, bytes: u64) {
        self.renderer_rss.observe(bytes as f64);
    }

    pub(super) fn started(&self) {
        self.in_flight.inc();
    }

    pub(super) fn ended(&self) {
        self.in_flight.dec();
    }

    /// Records the worker's job slots (utilisation is measured against them).
    pub fn set_concurrency(&self, slots: usize) {
        self.concurrency
            .set(i64::try_from(slots).unwrap_or(i64::MAX));
    }

    /// Sets the utilisation gauge from the two it is the ratio of. Done when the metrics are
    /// read, not as jobs start and end: two jobs ending at once could otherwise leave the
    /// gauge at a value one of them read before the other's decrement.
    fn update_utilisation(&self) {
        let slots = self.concurrency.get();
        let share = if slots > 0 {
            (self.in_flight.get() as f64 / slots as f64).clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.utilisation.set(share);
    }

    /// Records the renderer pool: ready now, and kept ready.
    pub fn set_pool(&self, ready: usize, target: usize) {
        self.pool_ready
            .set(i64::try_from(ready).unwrap_or(i64::MAX));
        self.pool_target
            .set(i64::try_from(target).unwrap_or(i64::MAX));
    }

    /// Records one answered job's time from delivery to settlement.
    pub(super) fn job_took(&self, outcome: &Outcome, took: Duration) {
        let outcome = match outcome {
            Outcome::Ok => "ok",
            Outcome::Error(_) => "error",
        };
        self.job_duration
            .get_or_create(&OutcomeLabels { outcome })
            .observe(took.as_secs_f64());
    }

    pub(super) fn rejected(&self) {
        self.dead_lettered.inc();
    }

    pub(super) fn returned(&self) {
        self.returned.inc();
    }

    /// Marks the worker connected and consuming (or not).
    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// Whether the worker is connected and consuming.
    pub fn is_ready(&self) -> bool {
        self.ready.get() == 1
    }

    /// Counts a reconnect after a lost connection.
    pub fn reconnected(&self) {
        self.reconnects.inc();
    }

    pub(super) fn crash_requeued(&self) {
        self.crash_requeues.inc();
    }

    /// Counts an idle connection replaced.
    pub fn idle_wiped(&self) {
        self.idle_wipes.inc();
    }

    /// Where the keyring stands, and how many past keys were erased since the last call.
    pub(super) fn keys(&self, status: &crate::keys::KeyringStatus, newly_erased: u64) {
        self.key_epoch
            .set(i64::try_from(status.epoch).unwrap_or(i64::MAX));
        self.key_previous_held
            .set(i64::from(status.previous.is_some()));
        self.key_erasures.inc_by(newly_erased);
    }

    pub(super) fn reply_failed(&self) {
        self.reply_failed.inc();
    }

    /// The metrics in the OpenMetrics text format (which Prometheus scrapes).
    pub fn encode(&self) -> String {
        self.update_utilisation();
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let mut snapshot = StatsSnapshot {
            rejected: self.dead_lettered.get(),
            returned: self.returned.get(),
            reply_failed: self.reply_failed.get(),
            wiped_bytes: self.wiped_bytes.get(),
            ready: self.is_ready(),
            reconnects: self.reconnects.get(),
            idle_wipes: self.idle_wipes.get(),
            crash_requeues: self.crash_requeues.get(),
            in_flight: u64::try_from(self.in_flight.get()).unwrap_or(0),
            ..StatsSnapshot::default()
        };
        for code in crate::protocol::ErrorCode::ALL {
            let labels = JobLabels {
                outcome: "error",
                code: code.as_str(),
            };
            let n = self.jobs.get_or_create(&labels).get();
            if n > 0 {
                snapshot.errors.insert(code.as_str(), n);
            }
        }
        snapshot.ok = self
            .jobs
            .get_or_create(&JobLabels {
                outcome: "ok",
                code: "",
            })
            .get();
        snapshot
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ErrorCode;

    #[test]
    fn every_series_has_help_text_and_the_dashboard_gauges_follow_the_jobs() {
        let stats = Stats::default();
        stats.set_concurrency(4);
        stats.started();
        stats.set_pool(1, 2);
        stats.job_took(&Outcome::Ok, Duration::from_millis(40));
        let text = stats.encode();
        let families: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert!(families.len() >= 15, "{text}");
        for family in families {
            let help = format!("# HELP {family} ");
            let line = text.lines().find(|l| l.starts_with(&help));
            assert!(
                line.is_some_and(|l| l.len() > help.len() + 10),
                "{family} has no HELP text"
            );
        }
        for line in [
            "midnit_build_info{version=\"",
            "midnit_concurrency 4",
            "midnit_utilisation_ratio 0.25",
            "midnit_renderer_pool_size 1",
            "midnit_renderer_pool_target 2",
            "midnit_job_duration_seconds_count{outcome=\"ok\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing in:\n{text}");
        }
        stats.ended();
        assert!(stats.encode().contains("midnit_utilisation_ratio 0.0"));
    }

    #[test]
    fn the_metrics_text_follows_prometheus_naming() {
        let stats = Stats::default();
        stats.finished(&Outcome::Ok, 100);
        stats.finished(&Outcome::Error(ErrorCode::LimitsPixels), 5);
        stats.observe(Stage::Decode, Duration::from_millis(3));
        stats.set_ready(true);
        let text = stats.encode();
        for line in [
            "midnit_jobs_total{outcome=\"ok\",code=\"\"} 1",
            "midnit_jobs_total{outcome=\"error\",code=\"limits.pixels\"} 1",
            "midnit_wiped_bytes_total 105",
            "midnit_broker_connected 1",
            "midnit_job_stage_duration_seconds_count{stage=\"decode\"} 1",
            "midnit_jobs_in_flight 0",
        ] {
            assert!(text.contains(line), "{line} missing in:\n{text}");
        }
        let snap = stats.snapshot();
        assert_eq!((snap.ok, snap.errors["limits.pixels"]), (1, 1));
    }
}
