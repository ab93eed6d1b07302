//! The recipe examples in `docs/examples/recipes/`: the sample photos they use (generated
//! here, never downloaded or committed) and their rendered outputs, the gallery in the README
//! that the golden tests compare against.

use crate::app::config::Config;
use crate::protocol::{OutputSpec, Reply, Request, Status};
use crate::tools::samples::{collector_photo, figure_cutout, jpeg, png};
use std::path::{Path, PathBuf};

/// Where the recipe examples live, relative to the repository root.
pub const DIR: &str = "docs/examples/recipes";

/// The sample photos: file name and bytes. Nine varied dolls on shelves (1200×1500 JPEGs)
/// and a cut-out sticker with alpha (PNG).
pub fn photos() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = (1..=9)
        .map(|i| {
            let img = collector_photo(1200, 1500, i);
            (format!("figure-{i}.jpg"), jpeg(&img, 88))
        })
        .collect();
    out.push(("sticker.png".into(), png(&figure_cutout(600, 600, 7))));
    out
}

/// Whether `rel` (an input path in a request file) names one of the sample photos:
/// `photos/figure-1.jpg` … `photos/figure-9.jpg`, `photos/sticker.png`.
pub fn is_sample_photo(rel: &Path) -> bool {
    let Ok(name) = rel.strip_prefix("photos") else {
        return false;
    };
    let name = name.to_str().unwrap_or("");
    let figure = name
        .strip_prefix("figure-")
        .and_then(|n| n.strip_suffix(".jpg"))
        .and_then(|n| n.parse::<u8>().ok());
    name == "sticker.png" || matches!(figure, Some(1..=9))
}

/// Writes the sample photos into `dir/photos` unless they are already there. Each file is
/// written under a temporary name and renamed, so concurrent callers never see half a file.
pub fn ensure_photos(dir: &Path) -> std::io::Result<()> {
    let photos_dir = dir.join("photos");
    std::fs::create_dir_all(&photos_dir)?;
    let wanted = ["figure-1.jpg", "figure-9.jpg", "sticker.png"];
    if wanted.iter().all(|f| photos_dir.join(f).exists()) {
        return Ok(());
    }
    for (name, bytes) in photos() {
        let tmp = tempfile::NamedTempFile::new_in(&photos_dir)?;
        std::fs::write(tmp.path(), bytes)?;
        tmp.persist(photos_dir.join(name)).map_err(|e| e.error)?;
    }
    Ok(())
}

/// The example request files, in name order.
pub fn requests(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("json"))
        .collect();
    files.sort();
    Ok(files)
}

/// The gallery file name of one output of one example: `<example>-<output>.<ext>`.
pub fn output_file(request: &Path, name: &str, format: &str) -> String {
    let stem = request
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("example");
    let ext = if format == "jpeg" { "jpg" } else { format };
    format!("{stem}-{name}.{ext}")
}

/// Renders one example in-process; the reply and its outputs.
pub async fn render(config: &Config, request: &Path) -> anyhow::Result<Reply> {
    let loaded = crate::tools::request_file::load(request)?;
    let reply = crate::tools::cli::render_request(config, loaded).await?;
    if reply.status != Status::Ok {
        anyhow::bail!("{}: {:?}", request.display(), reply.error);
    }
    Ok(reply)
}

/// `gallery`: renders every example into `dir/out/`; returns the files written.
pub async fn write(config: &Config, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    ensure_photos(dir)?;
    let out = dir.join("out");
    std::fs::create_dir_all(&out)?;
    let mut written = Vec::new();
    for request in requests(dir)? {
        let reply = render(config, &request).await?;
        for o in &reply.outputs {
            let path = out.join(output_file(&request, &o.name, &o.format));
            std::fs::write(&path, &o.data)?;
            written.push(path);
        }
    }
    Ok(written)
}

/// The documented showcase card recipe around `photo`, rendered at the canvas's full size
/// (1080×1350) as JPEG q85: the demo's, the load generator's and the showcase benchmark's job.
pub fn showcase_request(photo: Vec<u8>) -> Request {
    let example: serde_json::Value = serde_json::from_str(include_str!(
        "../../docs/examples/recipes/showcase-card.json"
    ))
    .expect("the example is JSON");
    Request {
        preset: None,
        v: 1,
        inputs: [("photo".to_string(), serde_bytes::ByteBuf::from(photo))].into(),
        recipe: Some(ciborium::Value::serialized(&example["recipe"]).expect("JSON maps to CBOR")),
        outputs: vec![OutputSpec {
            name: "card".into(),
            format: "jpeg".into(),
            quality: Some(85),
            ..OutputSpec::default()
        }],
    }
}
