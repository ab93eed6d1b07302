use super::*;

#[test]
fn percentiles_pick_the_nearest_rank() {
    let v: Vec<f64> = (1..=100).map(f64::from).collect();
    assert_eq!(percentile(&v, 50.0), 51.0);
    assert_eq!(percentile(&v, 99.0), 99.0);
    assert_eq!(percentile(&[], 50.0), 0.0);
}

#[test]
fn the_chart_is_an_svg_with_one_point_per_level() {
    let level = |c, t| Level {
        concurrency: c,
        jobs: 10,
        ok: 10,
        jobs_per_sec: t,
        p50_ms: 10.0,
        p95_ms: 20.0,
        p99_ms: 30.0,
        cpu_sec_per_job: 0.05,
        worker_peak_rss_mib: 20.0,
        renderer_peak_rss_mib: 60.0,
    };
    let report = Report {
        mix: vec!["x".into()],
        worker_concurrency: 2,
        executor: "isolated".into(),
        levels: vec![level(1, 10.0), level(2, 18.0), level(4, 19.0)],
        kernel_p50_ms: None,
    };
    let svg = chart(&report);
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<polyline").count(), 3);
    let first = svg.split("points=\"").nth(1).unwrap();
    assert_eq!(first.split('"').next().unwrap().split(' ').count(), 3);
}
