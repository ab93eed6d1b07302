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
    assert_eq!(config.broker.queue, "from-file");
    config
        .apply_env(env(&[("MIDNIT_QUEUE", "from-env"), ("PATH", "/bin")]))
        .unwrap();
    config.set("concurrency", "7").unwrap();
    assert_eq!(config.broker.queue, "from-env");
    assert_eq!(config.worker.concurrency, 7);
    assert_eq!(config.limits.max_inputs, 5);
}

#[test]
fn a_key_may_sit_in_its_section_or_at_the_top_level() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("worker.toml");
    std::fs::write(
        &file,
        "[broker]\nqueue = \"q\"\n[wipe]\nidle_wipe_secs = 9\n",
    )
    .unwrap();
    let config = Config::from_file(&file).unwrap();
    assert_eq!(
        (config.broker.queue.as_str(), config.wipe.idle_wipe_secs),
        ("q", 9)
    );
}

#[test]
fn a_key_under_another_section_or_an_unknown_section_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("worker.toml");
    std::fs::write(&file, "[worker]\nqueue = \"q\"\n").unwrap();
    let err = Config::from_file(&file).unwrap_err().to_string();
    assert!(err.contains("`queue` belongs in `[broker]`"), "{err}");
    std::fs::write(&file, "[brokr]\nqueue = \"q\"\n").unwrap();
    let err = Config::from_file(&file).unwrap_err().to_string();
    assert!(err.contains("unknown section `[brokr]`"), "{err}");
}

#[test]
fn the_example_file_loads_and_differs_from_the_defaults_only_where_it_says() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/worker.example.toml");
    let config = Config::from_file(&path).unwrap();
    config.validate().unwrap();
    assert_eq!(config.broker, BrokerSettings::default());
    assert_eq!(config.limits, Limits::default());
    assert_eq!(config.wipe.spill_dir, Path::new("/run/midnit-worker/spill"));
    assert_eq!(config.worker.concurrency, 2);
    assert_eq!(config.keys.sealed, crate::keys::SealedMode::Required);
    let presets: Vec<&str> = config.presets.names().collect();
    assert_eq!(presets, ["avatar", "showcase"]);
}

#[test]
fn a_bad_preset_in_the_file_fails_validation_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("w.toml");
    let bad = "[presets.card]\noutputs = [{ name = \"c\", format = \"jpeg\", quality = 900 }]\n";
    std::fs::write(&file, bad).unwrap();
    let err = Config::from_file(&file)
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(err.contains("presets.card: outputs[0].quality"), "{err}");
    std::fs::write(&file, "[presets.card]\nrecipe_file = \"x.json\"\n").unwrap();
    let err = Config::from_file(&file).unwrap_err().to_string();
    assert!(err.contains("presets.card: missing `outputs`"), "{err}");
    let unknown = "[presets.card]\noutputs = []\ncolour = 1\n";
    std::fs::write(&file, unknown).unwrap();
    let err = Config::from_file(&file).unwrap_err().to_string();
    assert!(err.contains("unknown key `colour`"), "{err}");
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
    for key in Config::keys().map(|k| k.name) {
        let value = match key {
            "amqp_url" => "amqp://u:p@h:1/%2f",
            "queue" | "dead_letter_exchange" | "dead_letter_queue" | "spill_dir" => "x",
            "renderer_binary" | "receipt_key_file" | "tls_ca_file" | "tls_cert_file"
            | "tls_key_file" => "/bin/x",
            "wipe_memory" | "presets_only" | "accept_heic" | "accept_avif" | "accept_jxl" => {
                "false"
            }
            "http_addr" => "127.0.0.1:0",
            "executor" => "in_process",
            "otlp_endpoint" => "http://127.0.0.1:4318/v1/traces",
            "otlp_protocol" => "http/json",
            "otlp_service_name" => "w",
            "spill_require_tmpfs" => "true",
            "topology" => "durable",
            "sealed" => "required",
            "key_state_file" => "/x",
            "ephemeral_epoch_secs" => "3600",
            _ => "5",
        };
        Config::default().set(key, value).unwrap();
    }
}

#[test]
fn every_key_of_the_example_file_and_only_those_are_listed() {
    // Each key once, under its own section's header.
    let example = include_str!("../../../deploy/worker.example.toml");
    let mut section = "";
    let mut in_file: Vec<(String, String)> = Vec::new();
    for line in example.lines() {
        let line = line.trim_start_matches('#').trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name;
        } else if section.starts_with("presets.") {
            // Presets are tables of their own, not settings.
        } else if let Some((k, _)) = line.split_once(" = ") {
            in_file.push((section.to_owned(), k.trim().to_owned()));
        }
    }
    in_file.sort_unstable();
    let mut listed: Vec<(String, String)> = Config::keys()
        .map(|k| (k.section.to_owned(), k.name.to_owned()))
        .collect();
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
    let mut config = Config::default();
    config.broker.amqp_url = url;
    assert!(!format!("{config:?}").contains("hunter2"));
}

#[test]
fn kubernetes_service_link_variables_are_tolerated_and_misspelt_settings_are_not() {
    let mut config = Config::default();
    config
        .apply_env(env(&[
            ("MIDNIT_WORKER_SERVICE_HOST", "10.0.0.1"),
            ("MIDNIT_WORKER_SERVICE_PORT", "9464"),
            ("MIDNIT_WORKER_SERVICE_PORT_METRICS", "9464"),
            ("MIDNIT_WORKER_PORT", "tcp://10.0.0.1:9464"),
            ("MIDNIT_WORKER_PORT_9464_TCP", "tcp://10.0.0.1:9464"),
            ("MIDNIT_WORKER_PORT_9464_TCP_PROTO", "tcp"),
            ("MIDNIT_WORKER_PORT_9464_TCP_PORT", "9464"),
            ("MIDNIT_WORKER_PORT_9464_TCP_ADDR", "10.0.0.1"),
        ]))
        .unwrap();
    assert_eq!(config, Config::default());
    for (name, value) in [
        ("MIDNIT_WORKER_PORT", "9464"),
        ("MIDNIT_WORKER_PORT_9464_TCP_EXTRA", "x"),
        ("MIDNIT_CONCURENCY", "2"),
    ] {
        let err = Config::default()
            .apply_env(env(&[(name, value)]))
            .unwrap_err();
        assert!(matches!(err, ConfigError::UnknownKey(_)), "{name}: {err}");
    }
}

#[test]
fn a_list_of_broker_urls_is_one_per_node_and_each_is_checked_without_printing_it() {
    let mut config = Config::default();
    config
        .set(
            "amqp_url",
            "amqp://w:s3cret@a:5672/%2f, amqp://w:s3cret@b:5673/%2f,amqps://w:s3cret@c/%2f",
        )
        .unwrap();
    config.validate().unwrap();
    assert_eq!(config.broker.amqp_url.count(), 3);
    assert_eq!(
        config.broker.amqp_url.nth(4).expose(),
        "amqp://w:s3cret@b:5673/%2f"
    );
    assert!(!config.broker.amqp_url.redacted().contains("s3cret"));
    for (url, says) in [
        ("http://w:s3cret@a/", "must start with amqp:// or amqps://"),
        ("amqp://w:s3cret@a:notaport/%2f", "not a valid AMQP URL"),
        (
            "amqp://w:s3cret@a:5672/%2f,amqp://w:s3cret@b:99999/%2f",
            "URL 2 of 2",
        ),
        ("  ,  ", "is empty"),
    ] {
        config.set("amqp_url", url).unwrap();
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.starts_with("setting `amqp_url`") && err.contains(says),
            "{url}: {err}"
        );
        assert!(!err.contains("s3cret"), "{err}");
    }
}

#[test]
fn a_file_a_setting_names_must_be_readable_at_start() {
    let mut config = Config::default();
    config.set("tls_ca_file", "/nonexistent/ca.pem").unwrap();
    let err = config.validate().unwrap_err().to_string();
    assert!(
        err.contains("tls_ca_file") && err.contains("/nonexistent/ca.pem"),
        "{err}"
    );
    let mut config = Config::default();
    config
        .set("receipt_key_file", "/nonexistent/receipt.key")
        .unwrap();
    assert!(config
        .validate()
        .unwrap_err()
        .to_string()
        .contains("receipt_key_file"));
}

#[test]
fn an_otlp_endpoint_is_an_http_url() {
    let mut config = Config::default();
    config.set("otlp_endpoint", "collector:4318").unwrap();
    assert!(config
        .validate()
        .unwrap_err()
        .to_string()
        .contains("otlp_endpoint"));
    assert!(config.set("otlp_protocol", "grpc").is_err());
}
