//! The monitoring files in `deploy/` work with the real tools: `promtool` checks the alerting
//! rules, runs their unit tests and checks the example configuration; the real `prometheus`
//! scrapes the real worker binary after a job, stores its series (the build info among them)
//! and evaluates every rule without an error; the Grafana dashboard names only series the worker
//! exports, uses its data source variable everywhere, and each of its queries runs in Prometheus.
//! `prometheus` and `promtool` come from Debian's `prometheus` package (installed by `.ci/run`).

use crate::harness::*;
use midnit_worker::client::Client;
use midnit_worker::protocol::Status;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The job name the alerting rules expect the workers under.
const JOB: &str = "midnit-worker";

/// The worker's histograms: stored as `_bucket`, `_sum` and `_count` series.
const HISTOGRAMS: &[&str] = &[
    "midnit_job_duration_seconds",
    "midnit_job_stage_duration_seconds",
    "midnit_renderer_peak_rss_bytes",
];

/// The worker's other series, as Prometheus stores them.
const SERIES: &[&str] = &[
    "midnit_build_info",
    "midnit_jobs_total",
    "midnit_jobs_in_flight",
    "midnit_concurrency",
    "midnit_utilisation_ratio",
    "midnit_renderer_pool_size",
    "midnit_renderer_pool_target",
    "midnit_broker_connected",
    "midnit_broker_reconnects_total",
    "midnit_idle_wipes_total",
    "midnit_dead_lettered_total",
    "midnit_replies_returned_total",
    "midnit_replies_unconfirmed_total",
    "midnit_crash_requeues_total",
    "midnit_wiped_bytes_total",
    "midnit_key_epoch",
    "midnit_key_previous_held",
    "midnit_key_erasures_total",
];

/// Grafana's variables, as the dashboard's queries would see them for the test's worker.
const VARIABLES: &[(&str, &str)] = &[
    ("$__rate_interval", "1m"),
    ("$instance", ".*"),
    ("$job", JOB),
    ("$queue", "midnit.render"),
];

fn path(relative: &str) -> PathBuf {
    Path::new(ROOT).join(relative)
}

/// Runs `tool` with `args` in the repository; panics with its output unless it succeeds.
fn run_in_repo(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .current_dir(ROOT)
        .output()
        .unwrap_or_else(|e| {
            panic!("{tool}: {e} (Debian's `prometheus` package has it; .ci/run installs it)")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{tool} {args:?} failed:\n{text}");
    text
}

/// The metric names a PromQL expression reads: what is left once strings, label matchers,
/// ranges, label lists (`by (…)`, `on (…)`, …), functions, aggregations, keywords and numbers
/// are taken out.
fn series_names(expr: &str) -> Vec<String> {
    // Strings, `{…}` and `[…]` out (a string may hold a brace or a bracket).
    let mut bare = String::new();
    let mut chars = expr.chars();
    let (mut braces, mut brackets) = (0usize, 0usize);
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                while let Some(d) = chars.next() {
                    if d == '\\' && c != '`' {
                        chars.next();
                    } else if d == c {
                        break;
                    }
                }
                bare.push(' ');
            }
            '{' => braces += 1,
            '}' => braces = braces.saturating_sub(1),
            '[' => brackets += 1,
            ']' => brackets = brackets.saturating_sub(1),
            _ if braces == 0 && brackets == 0 => bare.push(c),
            _ => {}
        }
        if matches!(c, '}' | ']') {
            bare.push(' ');
        }
    }
    const LABEL_LISTS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    const KEYWORDS: &[&str] = &[
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "inf",
        "nan",
        "sum",
        "avg",
        "min",
        "max",
        "count",
        "group",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
    ];
    let bytes = bare.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut names = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !ident(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && ident(bytes[i]) {
            i += 1;
        }
        let word = &bare[start..i];
        let mut next = i;
        while next < bytes.len() && bytes[next].is_ascii_whitespace() {
            next += 1;
        }
        let called = bytes.get(next) == Some(&b'(');
        if LABEL_LISTS.contains(&word) {
            if called {
                // Skip the label list.
                i = bare[next..]
                    .find(')')
                    .map_or(bytes.len(), |end| next + end + 1);
            }
        } else if !called
            && !bytes[start].is_ascii_digit()
            && !KEYWORDS.contains(&word.to_ascii_lowercase().as_str())
        {
            names.push(word.to_owned());
        }
    }
    names
}

/// Whether `name` is a series the worker exports (or `up`, or RabbitMQ's own exporter's).
fn known_series(name: &str) -> bool {
    name == "up"
        || name.starts_with("rabbitmq_")
        || SERIES.contains(&name)
        || HISTOGRAMS.iter().any(|h| {
            name.strip_prefix(h)
                .is_some_and(|rest| ["_bucket", "_sum", "_count"].contains(&rest))
        })
}

/// GitHub's anchor for a Markdown heading.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// Whether `runbook` (`docs/FILE.md` or `docs/FILE.md#anchor`) names a document and a heading
/// in it.
fn runbook_exists(runbook: &str) -> bool {
    let (file, fragment) = runbook.split_once('#').unwrap_or((runbook, ""));
    let Ok(text) = std::fs::read_to_string(path(file)) else {
        return false;
    };
    fragment.is_empty()
        || text
            .lines()
            .filter_map(|l| l.strip_prefix('#'))
            .any(|h| anchor(h.trim_start_matches('#')) == fragment)
}

fn dashboard() -> Value {
    let file = path("deploy/grafana/midnit-worker.json");
    serde_json::from_str(&std::fs::read_to_string(&file).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// Every panel of the dashboard, the panels nested in a collapsed row too.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().expect("a panels array") {
        all.push(panel);
        if let Some(inner) = panel["panels"].as_array() {
            all.extend(inner);
        }
    }
    all
}

/// Every query of the dashboard's panels: (panel title, PromQL).
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for panel in panels(dashboard) {
        let title = panel["title"].as_str().unwrap_or_default();
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap_or_default();
            queries.push((title.to_owned(), expr.to_owned()));
        }
    }
    queries
}

#[test]
fn promtool_checks_the_rules_runs_their_unit_tests_and_checks_the_example_configuration() {
    let checked = run_in_repo(
        "promtool",
        &["check", "rules", "deploy/prometheus/alerts.yaml"],
    );
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = run_in_repo(
        "promtool",
        &["test", "rules", "deploy/prometheus/alerts.test.yaml"],
    );
    assert!(tested.contains("SUCCESS"), "{tested}");

    // The example configuration, beside the rules it loads. Debian's promtool is built without
    // Kubernetes discovery, so the Kubernetes job is checked by reading and left out of the copy.
    let example =
        std::fs::read_to_string(path("deploy/prometheus/prometheus.example.yaml")).unwrap();
    let mut kept = String::new();
    let mut kubernetes = String::new();
    let mut in_kubernetes = false;
    for line in example.lines() {
        if let Some(job) = line.strip_prefix("  - job_name: ") {
            in_kubernetes = job.trim() == "midnit-worker-kubernetes";
        }
        let into = if in_kubernetes {
            &mut kubernetes
        } else {
            &mut kept
        };
        into.push_str(line);
        into.push('\n');
    }
    assert!(
        kept.contains(&format!("  - job_name: {JOB}\n")),
        "the fixed-address job is named {JOB}:\n{example}"
    );
    assert!(
        kubernetes.contains("kubernetes_sd_configs:")
            && kubernetes.contains("- target_label: job\n        replacement: midnit-worker\n"),
        "the Kubernetes job relabels its targets to job={JOB}:\n{kubernetes}"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        path("deploy/prometheus/alerts.yaml"),
        dir.path().join("alerts.yaml"),
    )
    .unwrap();
    let config = dir.path().join("prometheus.yaml");
    std::fs::write(&config, kept).unwrap();
    let checked = run_in_repo("promtool", &["check", "config", config.to_str().unwrap()]);
    assert!(checked.contains("SUCCESS"), "{checked}");
}

#[test]
fn the_grafana_dashboard_uses_its_data_source_variable_and_only_the_workers_series() {
    let dashboard = dashboard();
    assert!(dashboard["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(dashboard["uid"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(dashboard["schemaVersion"].as_u64().unwrap_or(0) >= 36);
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(
        variables.iter().any(|v| v["name"] == "datasource"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "a Prometheus data source variable named `datasource`"
    );
    let uses_variable = |ds: &Value| ds["uid"] == "${datasource}" && ds["type"] == "prometheus";
    let mut ids = std::collections::HashSet::new();
    let mut used = std::collections::BTreeSet::new();
    let mut problems = Vec::new();
    for panel in panels(&dashboard) {
        let title = panel["title"].as_str().unwrap_or_default();
        if title.trim().is_empty() {
            problems.push(format!("a panel without a title: {panel}"));
        }
        if !ids.insert(panel["id"].as_u64().expect("every panel has an id")) {
            problems.push(format!("{title}: duplicate id {}", panel["id"]));
        }
        let grid = &panel["gridPos"];
        let (x, w) = (
            grid["x"].as_u64().unwrap_or(99),
            grid["w"].as_u64().unwrap_or(0),
        );
        if w == 0 || x + w > 24 || grid["h"].as_u64().unwrap_or(0) == 0 {
            problems.push(format!("{title}: gridPos {grid} outside the 24 columns"));
        }
        if panel["type"] == "row" {
            continue;
        }
        if !uses_variable(&panel["datasource"]) {
            problems.push(format!("{title}: datasource {}", panel["datasource"]));
        }
        let targets = panel["targets"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        if targets.is_empty() {
            problems.push(format!("{title}: no queries"));
        }
        for target in targets {
            if !target["datasource"].is_null() && !uses_variable(&target["datasource"]) {
                problems.push(format!(
                    "{title}: target datasource {}",
                    target["datasource"]
                ));
            }
            let expr = target["expr"].as_str().unwrap_or_default();
            let names = series_names(expr);
            if names.is_empty() {
                problems.push(format!("{title}: no series in `{expr}`"));
            }
            for name in names {
                if !known_series(&name) {
                    problems.push(format!("{title}: unknown series {name} in `{expr}`"));
                }
                used.insert(name);
            }
        }
    }
    // Every series the worker exports is on the dashboard.
    for family in SERIES.iter().chain(HISTOGRAMS) {
        if !used.iter().any(|u| u.starts_with(family)) {
            problems.push(format!("no panel shows {family}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn series_names_are_read_from_promql() {
    assert_eq!(
        series_names(
            r#"histogram_quantile(0.95, sum by (job, le) (rate(midnit_job_duration_seconds_bucket{outcome="ok", x="}"}[5m])))"#
        ),
        ["midnit_job_duration_seconds_bucket"]
    );
    assert_eq!(
        series_names(
            "sum(rabbitmq_queue_messages_ready{queue=\"q\"}) > 0 unless on () sum(midnit_broker_connected) > 0"
        ),
        ["rabbitmq_queue_messages_ready", "midnit_broker_connected"]
    );
    assert_eq!(
        series_names("midnit_key_epoch > 0 and midnit_key_epoch <= (midnit_key_epoch offset 2h)"),
        ["midnit_key_epoch"; 3]
    );
    assert_eq!(
        series_names("absent(up{job=\"midnit-worker\"} == 1)"),
        ["up"]
    );
    assert!(!known_series("midnit_job_duration_seconds"));
    assert!(!known_series("midnit_jobs"));
    assert!(known_series("midnit_renderer_peak_rss_bytes_count"));
    assert!(runbook_exists(
        "docs/OPERATIONS.md#sealed-jobs-the-fleets-key-state"
    ));
    assert!(!runbook_exists("docs/OPERATIONS.md#no-such-section"));
}

/// `s` percent-encoded for a URL's query string.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real `prometheus`, its storage and log in a directory of its own; killed on drop.
struct Prometheus {
    child: Child,
    addr: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus with `config` (a prometheus.yml) once it is ready to answer queries.
    fn start(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("prometheus.yml");
        std::fs::write(&file, config).unwrap();
        let log = dir.path().join("prometheus.log");
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "the `prometheus` binary does not start: {e}. It comes from Debian's \
                     `prometheus` package, which .ci/run installs"
                )
            });
        let mut prometheus = Self {
            child,
            addr,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = prometheus.child.try_wait().unwrap() {
                panic!("prometheus exited ({status}):\n{}", prometheus.log_text());
            }
            if matches!(try_http_get(&prometheus.addr, "/-/ready"), Ok((200, _))) {
                return prometheus;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready in 60 s:\n{}",
                prometheus.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// `GET path` on the HTTP API: its `data`, or a panic with the answer and the log.
    fn api(&self, path: &str) -> Value {
        let (status, body) = try_http_get(&self.addr, path)
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.log_text()));
        let json: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {path}: {status}, not JSON ({e}): {body}"));
        assert!(
            status == 200 && json["status"] == "success",
            "GET {path}: {status} {body}"
        );
        json["data"].clone()
    }

    /// An instant query's result vector.
    fn query(&self, promql: &str) -> Vec<Value> {
        let data = self.api(&format!("/api/v1/query?query={}", url_encode(promql)));
        data["result"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of one sample of an instant vector.
fn value(sample: &Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_real_worker_and_evaluates_every_rule() {
    // Fail here, not after the worker has started, if the binary is missing.
    let version = Command::new("prometheus").arg("--version").output();
    assert!(
        version.as_ref().is_ok_and(|v| v.status.success()),
        "the `prometheus` binary is missing or broken ({version:?}): it comes from Debian's \
         `prometheus` package, which .ci/run installs"
    );

    let queue = unique_queue("prometheus");
    let worker = spawn_binary(&queue, 1);
    let client = Client::connect(&amqp_url(), &queue).await.unwrap();
    assert_eq!(render(&client, &tiny_job()).await.status, Status::Ok);

    let rules = path("deploy/prometheus/alerts.yaml");
    let prometheus = Prometheus::start(&format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - {rules}\n\
         scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n      - targets: [\"{addr}\"]\n",
        rules = rules.display(),
        addr = worker.http_addr(),
    ));

    // Every series the rules and the dashboard name, as Prometheus stores it: histograms by
    // their `_bucket` series.
    let wanted: Vec<String> = SERIES
        .iter()
        .map(|s| s.to_string())
        .chain(HISTOGRAMS.iter().map(|h| format!("{h}_bucket")))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (build, ok, up) = loop {
        let build = prometheus.query("midnit_build_info");
        let ok = prometheus.query(&format!(
            "sum(midnit_jobs_total{{job=\"{JOB}\",outcome=\"ok\"}})"
        ));
        let up = prometheus.query(&format!("up{{job=\"{JOB}\"}}"));
        let stored: Vec<String> = prometheus
            .query(&format!("count by (__name__) ({{job=\"{JOB}\"}})"))
            .iter()
            .filter_map(|s| s["metric"]["__name__"].as_str().map(str::to_owned))
            .collect();
        let missing: Vec<&String> = wanted.iter().filter(|w| !stored.contains(w)).collect();
        let settled = build
            .iter()
            .any(|s| s["metric"]["version"] == env!("CARGO_PKG_VERSION"))
            && ok.first().map(value).is_some_and(|v| v >= 1.0)
            && up.first().map(value) == Some(1.0)
            && missing.is_empty();
        if settled {
            break (build, ok, up);
        }
        if Instant::now() > deadline {
            let targets = try_http_get(&prometheus.addr, "/api/v1/targets").map(|(_, b)| b);
            panic!(
                "Prometheus never stored the worker's series in 60 s.\n\
                 midnit_build_info: {build:?}\njobs ok: {ok:?}\nup: {up:?}\nmissing: {missing:?}\n\
                 targets: {targets:?}\nworker's /metrics:\n{}\nprometheus log:\n{}",
                worker.get("/metrics").1,
                prometheus.log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(build.len(), 1, "one worker, one build: {build:?}");
    assert_eq!(build[0]["metric"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(build[0]["metric"]["job"], JOB);
    assert_eq!(value(&build[0]), 1.0);
    assert!(value(&ok[0]) >= 1.0, "{ok:?}");
    assert_eq!(value(&up[0]), 1.0, "{up:?}");

    // Every rule loads and evaluates without an error against the live series.
    let deadline = Instant::now() + Duration::from_secs(60);
    let groups = loop {
        let groups = prometheus.api("/api/v1/rules")["groups"].clone();
        let (errors, evaluated) = {
            let rules: Vec<&Value> = groups
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|g| g["rules"].as_array().unwrap())
                .collect();
            let errors: Vec<String> = rules
                .iter()
                .filter(|r| r["health"] == "err")
                .map(|r| format!("{}: {}", r["name"], r["lastError"]))
                .collect();
            let evaluated = !rules.is_empty() && rules.iter().all(|r| r["health"] == "ok");
            (errors, evaluated)
        };
        assert!(errors.is_empty(), "rules fail:\n{}", errors.join("\n"));
        if evaluated {
            break groups;
        }
        assert!(
            Instant::now() < deadline,
            "rules never evaluated: {groups}\n{}",
            prometheus.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let rules: Vec<&Value> = groups
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert!(
        rules.len() >= 20,
        "only {} rules loaded: {groups}",
        rules.len()
    );
    let mut problems = Vec::new();
    for rule in &rules {
        let name = rule["name"].as_str().unwrap_or_default();
        if rule["type"] != "alerting" {
            problems.push(format!("{name}: not an alerting rule"));
        }
        let severity = rule["labels"]["severity"].as_str().unwrap_or_default();
        if !["critical", "warning", "info"].contains(&severity) {
            problems.push(format!("{name}: severity {severity:?}"));
        }
        for annotation in ["summary", "description", "runbook"] {
            if rule["annotations"][annotation]
                .as_str()
                .is_none_or(|a| a.trim().is_empty())
            {
                problems.push(format!("{name}: no {annotation} annotation"));
            }
        }
        let runbook = rule["annotations"]["runbook"].as_str().unwrap_or_default();
        if !runbook_exists(runbook) {
            problems.push(format!(
                "{name}: runbook {runbook:?} names no document section"
            ));
        }
        let query = rule["query"].as_str().unwrap_or_default();
        for series in series_names(query) {
            if !known_series(&series) {
                problems.push(format!("{name}: unknown series {series} in `{query}`"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // A healthy worker after a good job: nothing fires.
    let alerts = prometheus.api("/api/v1/alerts")["alerts"].clone();
    let firing: Vec<&Value> = alerts
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["state"] == "firing")
        .collect();
    assert!(
        firing.is_empty(),
        "alerts firing for a healthy worker: {firing:?}"
    );

    // Every query of the dashboard runs, with Grafana's variables filled in.
    for (title, expr) in dashboard_queries(&dashboard()) {
        let mut promql = expr;
        for (variable, with) in VARIABLES {
            promql = promql.replace(variable, with);
        }
        let data = prometheus.api(&format!("/api/v1/query?query={}", url_encode(&promql)));
        assert!(
            data["resultType"].is_string(),
            "{title}: `{promql}`: {data}"
        );
    }
    // The worker's own panels show it.
    for expr in [
        format!("sum(up{{job=~\"{JOB}\"}})"),
        format!("count by (version) (midnit_build_info{{job=~\"{JOB}\"}})"),
        format!("midnit_jobs_in_flight{{job=~\"{JOB}\"}}"),
    ] {
        assert!(!prometheus.query(&expr).is_empty(), "no result for {expr}");
    }

    drop(prometheus);
    client.close().await;
    drop(worker);
    delete_queue(&queue).await;
}
