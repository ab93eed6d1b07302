//! The load generator's report: the table it prints and the chart it draws (throughput and
//! latency against jobs in flight), as SVG with no dependency.

use super::Report;

/// Prints the report as a table.
pub fn print(report: &Report) {
    let mut mix = report.mix.clone();
    mix.dedup();
    println!("job mix (round robin): {}", mix.join(", "));
    println!(
        "worker: {} executor, concurrency {}",
        report.executor, report.worker_concurrency
    );
    println!(
        "{:>11} {:>8} {:>9} {:>9} {:>9} {:>10} {:>12} {:>14}",
        "in flight",
        "jobs/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "CPU s/job",
        "worker MiB",
        "renderer MiB"
    );
    let rows = report.levels.iter();
    for l in rows {
        println!(
            "{:>11} {:>8.2} {:>9.1} {:>9.1} {:>9.1} {:>10.3} {:>12.1} {:>14.1}",
            l.concurrency,
            l.jobs_per_sec,
            l.p50_ms,
            l.p95_ms,
            l.p99_ms,
            l.cpu_sec_per_job,
            l.worker_peak_rss_mib,
            l.renderer_peak_rss_mib
        );
    }
    if let (Some(kernel), Some(first)) = (report.kernel_p50_ms, report.levels.first()) {
        println!(
            "kernel alone (this process, no broker): p50 {kernel:.2} ms; broker + executor add \
             {:.2} ms at p50 with {} in flight",
            first.p50_ms - kernel,
            first.concurrency
        );
    }
}

/// Two panels side by side: jobs/s, and p50/p95 latency, against concurrency.
pub fn chart(report: &Report) -> String {
    let (w, h, pad) = (360.0, 240.0, 40.0);
    let xs: Vec<f64> = report.levels.iter().map(|l| l.concurrency as f64).collect();
    let max_x = xs.iter().copied().fold(1.0, f64::max);
    let panel = |x0: f64, title: &str, series: &[(&str, &str, Vec<f64>)]| {
        let max_y = series
            .iter()
            .flat_map(|(_, _, v)| v.iter().copied())
            .fold(1e-9, f64::max);
        let px = |x: f64| x0 + pad + (x / max_x) * (w - 2.0 * pad);
        let py = |y: f64| h - pad - (y / max_y) * (h - 2.0 * pad);
        let mut svg = format!(
            "<text x=\"{}\" y=\"20\" font-size=\"13\">{title}</text>\
             <line x1=\"{a}\" y1=\"{b}\" x2=\"{c}\" y2=\"{b}\" stroke=\"#888\"/>\
             <line x1=\"{a}\" y1=\"{d}\" x2=\"{a}\" y2=\"{b}\" stroke=\"#888\"/>\
             <text x=\"{a}\" y=\"{e}\" font-size=\"10\">0</text>\
             <text x=\"{c}\" y=\"{e}\" font-size=\"10\" text-anchor=\"end\">{max_x} in flight</text>\
             <text x=\"{f}\" y=\"{d}\" font-size=\"10\" text-anchor=\"end\">{max_y:.1}</text>",
            x0 + pad,
            a = x0 + pad,
            b = h - pad,
            c = x0 + w - pad,
            d = pad,
            e = h - pad + 14.0,
            f = x0 + pad - 4.0,
        );
        for (i, (name, colour, values)) in series.iter().enumerate() {
            let points: Vec<String> = xs
                .iter()
                .zip(values)
                .map(|(&x, &y)| format!("{:.1},{:.1}", px(x), py(y)))
                .collect();
            svg += &format!(
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>\
                 <text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"{colour}\">{name}</text>",
                points.join(" "),
                x0 + w - pad - 60.0,
                pad + 14.0 * i as f64,
            );
        }
        svg
    };
    let tput: Vec<f64> = report.levels.iter().map(|l| l.jobs_per_sec).collect();
    let p50: Vec<f64> = report.levels.iter().map(|l| l.p50_ms).collect();
    let p95: Vec<f64> = report.levels.iter().map(|l| l.p95_ms).collect();
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{h}\" \
         font-family=\"sans-serif\"><rect width=\"100%\" height=\"100%\" fill=\"white\"/>{}{}</svg>\n",
        2.0 * w,
        panel(0.0, "throughput (jobs/s)", &[("jobs/s", "#1f4e9c", tput)]),
        panel(
            w,
            "latency (ms)",
            &[("p50", "#1f4e9c", p50), ("p95", "#c0504d", p95)]
        ),
    )
}
