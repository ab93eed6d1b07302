//! `REQUEST.json`: the v1 envelope written as JSON for humans and shell scripts, each input
//! given as a file path relative to the JSON file. `submit` and `render` read it; replies are
//! written back as files.

use crate::protocol::{OutputSpec, Reply, Request};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A request file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RequestFileError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The JSON does not describe a v1 request.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestFile {
    v: u32,
    inputs: BTreeMap<String, PathBuf>,
    #[serde(default)]
    recipe: Option<serde_json::Value>,
    outputs: Vec<OutputSpec>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RequestFileError + '_ {
    move |source| RequestFileError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads a request file and the inputs it names.
pub fn load(path: &Path) -> Result<Request, RequestFileError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    let invalid = |message: String| RequestFileError::Invalid {
        path: path.to_owned(),
        message,
    };
    let file: RequestFile = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut inputs = BTreeMap::new();
    for (name, rel) in file.inputs {
        let input_path = base.join(&rel);
        if !input_path.exists() && crate::tools::gallery::is_sample_photo(Path::new(&rel)) {
            // The recipe examples' photos are synthetic and never committed: drawn on first use.
            crate::tools::gallery::ensure_photos(base).map_err(io_err(&input_path))?;
        }
        let bytes = std::fs::read(&input_path).map_err(io_err(&input_path))?;
        inputs.insert(name, serde_bytes::ByteBuf::from(bytes));
    }
    let recipe = file
        .recipe
        .map(|r| ciborium::Value::serialized(&r).map_err(|e| invalid(e.to_string())))
        .transpose()?;
    Ok(Request {
        preset: None,
        v: file.v,
        inputs,
        recipe,
        outputs: file.outputs,
    })
}

/// Writes each output of `reply` to `dir/<name>.<format>`; returns the paths written.
pub fn write_outputs(reply: &Reply, dir: &Path) -> Result<Vec<PathBuf>, RequestFileError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let mut written = Vec::new();
    for out in &reply.outputs {
        let ext = if out.format == "jpeg" {
            "jpg"
        } else {
            &out.format
        };
        let file = dir.join(format!("{}.{ext}", out.name));
        std::fs::write(&file, &out.data).map_err(io_err(&file))?;
        written.push(file);
    }
    Ok(written)
}
