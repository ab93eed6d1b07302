//! The wipe proof: run the real worker binary, send it jobs whose inputs are high-entropy
//! canaries, keep the replies, wait past the idle-wipe time, then read the worker's whole memory
//! (`/proc/PID/maps` + `/proc/PID/mem`), its spill directory and its log, and search them for any
//! 32-byte piece of any input, decoded pixel row or output. Expected: nothing.
//!
//! The negative control runs the same jobs with `wipe_memory = false` (no zeroing of freed
//! memory, no idle wipe) and must find pieces: it shows the scan would catch a leak.
//!
//! Windows are searched when they are high-entropy (at least 20 distinct byte values in 32
//! bytes — nearly every window of a random-pixel image): low-entropy windows such as runs of
//! zeros or a PNG signature also occur in memory that never held a job.

use crate::harness::*;
use midnit_worker::client::Client;
use midnit_worker::protocol::{Reply, Request, Status};
use midnit_worker::tools::samples;
use midnit_worker::wipe::WipeMethod;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

const WINDOW: usize = 32;

/// The canary data is random, so its first eight bytes are already a good hash.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Every high-entropy 32-byte window of the canaries, by what it came from.
#[derive(Default)]
pub(crate) struct Canaries {
    prefixes: HashSet<u64, BuildHasherDefault<Identity>>,
    windows: HashMap<[u8; WINDOW], (&'static str, usize)>,
}

pub(crate) fn high_entropy(w: &[u8]) -> bool {
    let mut seen = [false; 256];
    w.iter().for_each(|&b| seen[b as usize] = true);
    seen.iter().filter(|&&s| s).count() >= 20
}

pub(crate) fn prefix(w: &[u8]) -> u64 {
    u64::from_le_bytes(w[..8].try_into().unwrap())
}

impl Canaries {
    pub(crate) fn add(&mut self, what: &'static str, bytes: &[u8]) {
        for (at, w) in bytes.windows(WINDOW).enumerate() {
            if high_entropy(w) {
                self.prefixes.insert(prefix(w));
                self.windows.insert(w.try_into().unwrap(), (what, at));
            }
        }
    }

    /// Where in `haystack` canary windows lie, as merged `offset..end` spans (for the report).
    /// Each span is reported with the canary and offset its first window came from.
    pub(crate) fn spans(&self, haystack: &[u8]) -> Vec<String> {
        let mut spans: Vec<(std::ops::Range<usize>, &str, usize)> = Vec::new();
        for i in 0..=haystack.len().saturating_sub(WINDOW) {
            let w = &haystack[i..i + WINDOW];
            if !self.prefixes.contains(&prefix(w)) {
                continue;
            }
            if let Some(&(what, at)) = self.windows.get(w) {
                match spans.last_mut() {
                    Some(last) if last.0.end >= i => last.0.end = i + WINDOW,
                    _ => spans.push((i..i + WINDOW, what, at)),
                }
            }
        }
        spans
            .iter()
            .map(|(r, what, at)| format!("{r:?} = {what}[{at}..]"))
            .collect()
    }

    /// Adds `flat`, a concatenation of 32-byte windows.
    fn add_windows(&mut self, what: &'static str, flat: &[u8]) {
        for (i, w) in flat.chunks_exact(WINDOW).enumerate() {
            if high_entropy(w) {
                self.prefixes.insert(prefix(w));
                self.windows.insert(w.try_into().unwrap(), (what, i));
            }
        }
    }

    /// Forgets every window that also occurs in `common` (a file of other data with the same
    /// structure: a header that every such file shares is no job's data).
    pub(crate) fn forget(&mut self, common: &[u8]) {
        for w in common.windows(WINDOW) {
            self.windows.remove(w);
        }
    }

    /// Each canary found in `haystack`, with how many windows of it were found.
    pub(crate) fn find(&self, haystack: &[u8], hits: &mut HashMap<&'static str, usize>) {
        if haystack.len() < WINDOW {
            return;
        }
        for i in 0..=haystack.len() - WINDOW {
            let w = &haystack[i..i + WINDOW];
            if self.prefixes.contains(&prefix(w)) {
                if let Some((what, _)) = self.windows.get(w) {
                    *hits.entry(*what).or_default() += 1;
                }
            }
        }
    }
}

/// A random-pixel PNG stored without compression: its encoded bytes are its pixel rows.
pub(crate) fn uncompressed_png(img: &image::RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, img.width(), img.height());
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::NoCompression);
    let mut writer = enc.write_header().unwrap();
    writer.write_image_data(img.as_raw()).unwrap();
    writer.finish().unwrap();
    out
}

/// Random-pixel JPEG at quality 100: its entropy-coded bytes are the canary.
fn random_jpeg(img: &image::RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 100)
        .encode(
            img.as_raw(),
            img.width() as u16,
            img.height() as u16,
            jpeg_encoder::ColorType::Rgb,
        )
        .unwrap();
    out
}

pub(crate) struct Jobs {
    pub(crate) canaries: Canaries,
    pub(crate) requests: Vec<Request>,
}

/// The sizes of the canary jobs' inputs and outputs.
pub(crate) struct Shape {
    pub(crate) png: (u32, u32),
    pub(crate) jpeg: (u32, u32),
    pub(crate) small: u32,
    pub(crate) card: u32,
}

const SHAPE: Shape = Shape {
    png: (320, 240),
    jpeg: (200, 200),
    small: 200,
    card: 160,
};

/// Two inputs (PNG spilled to disk, JPEG in memory), each rendered to PNG and JPEG.
pub(crate) fn canary_jobs(seed: u64) -> Jobs {
    canary_jobs_shaped(seed, &SHAPE)
}

/// The canary jobs at other sizes (other tests' jobs of the same sizes share their headers).
pub(crate) fn canary_jobs_shaped(seed: u64, shape: &Shape) -> Jobs {
    let png_pixels = samples::noise(shape.png.0, shape.png.1, seed);
    let jpeg_pixels = samples::noise(shape.jpeg.0, shape.jpeg.1, seed + 1);
    let png = uncompressed_png(&png_pixels);
    let jpeg = random_jpeg(&jpeg_pixels);
    let decoded_jpeg = image::load_from_memory(&jpeg).unwrap().to_rgb8();
    let mut canaries = Canaries::default();
    canaries.add("input.png", &png);
    // The JPEG's standard Huffman tables are in every JPEG (and in the worker's encoder): only
    // windows that a JPEG of other pixels does not share are this job's data.
    let other = random_jpeg(&samples::noise(shape.jpeg.0, shape.jpeg.1, seed + 2));
    let boilerplate: HashSet<&[u8]> = other.windows(WINDOW).collect();
    let own: Vec<u8> = jpeg
        .windows(WINDOW)
        .filter(|w| !boilerplate.contains(w))
        .flat_map(|w| w.iter().copied())
        .collect();
    canaries.add_windows("input.jpeg", &own);
    canaries.add("pixels.png", png_pixels.as_raw());
    canaries.add("pixels.jpeg", decoded_jpeg.as_raw());
    let outputs = || {
        vec![
            output("small", "png", Some(shape.small), Some(shape.small)),
            output("card", "jpeg", Some(shape.card), Some(shape.card)),
        ]
    };
    let requests = vec![request(png, outputs()), request(jpeg, outputs())];
    Jobs { canaries, requests }
}

/// Adds the outputs' windows to the canaries, except those that occur in more than one
/// output: an encoder's standard tables (JPEG Huffman tables, say) are the same in every file
/// it writes and are no job's data.
pub(crate) fn add_outputs(canaries: &mut Canaries, outputs: &[Vec<u8>]) {
    let mut owners: HashMap<&[u8], usize> = HashMap::new();
    for (i, o) in outputs.iter().enumerate() {
        for w in o.windows(WINDOW) {
            let owner = owners.entry(w).or_insert(i);
            if *owner != i {
                *owner = usize::MAX;
            }
        }
    }
    for o in outputs {
        for (at, w) in o.windows(WINDOW).enumerate() {
            if owners[w] != usize::MAX && high_entropy(w) {
                canaries.prefixes.insert(prefix(w));
                canaries
                    .windows
                    .insert(w.try_into().unwrap(), ("output", at));
            }
        }
    }
}

/// Keeps the reply's outputs; returns whether the job's input was spilled.
pub(crate) fn keep_outputs(outputs: &mut Vec<Vec<u8>>, reply: &Reply) -> bool {
    assert_eq!(reply.status, Status::Ok, "{:?}", reply.error);
    outputs.extend(reply.outputs.iter().map(|o| o.data.to_vec()));
    reply
        .receipt
        .wiped
        .iter()
        .any(|e| e.method == WipeMethod::OverwriteVerifyUnlink)
}

/// Reads every readable mapping of `pid` that could hold job bytes: anonymous and writable
/// ones (heap, stacks, anonymous mmaps, .data/.bss). Read-only file mappings (code, rodata)
/// are the binary's own pages and are skipped.
pub(crate) fn scan_process(
    pid: i32,
    canaries: &Canaries,
) -> (HashMap<&'static str, usize>, Vec<String>, u64) {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).expect(
        "reading another process's memory needs ptrace rights over it (root or the same user \
         with ptrace_scope 0); the worker is not dumpable, so this test must run as root",
    );
    let mut hits = HashMap::new();
    let mut regions = Vec::new();
    let mut scanned = 0u64;
    for line in maps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (range, perms) = (fields[0], fields[1]);
        let path = fields.get(5).copied().unwrap_or("");
        if !perms.starts_with('r') || matches!(path, "[vvar]" | "[vsyscall]" | "[vvar_vclock]") {
            continue;
        }
        if path.starts_with('/') && !perms.contains('w') {
            continue;
        }
        let (a, b) = range.split_once('-').unwrap();
        let (start, end) = (
            u64::from_str_radix(a, 16).unwrap(),
            u64::from_str_radix(b, 16).unwrap(),
        );
        let mut region = vec![0u8; (end - start) as usize];
        if mem.seek(SeekFrom::Start(start)).is_err() || mem.read_exact(&mut region).is_err() {
            continue;
        }
        scanned += region.len() as u64;
        let mut here = HashMap::new();
        canaries.find(&region, &mut here);
        if !here.is_empty() {
            regions.push(format!(
                "{line} -> {here:?} at {:?}",
                canaries.spans(&region)
            ));
        }
        for (what, n) in here {
            *hits.entry(what).or_default() += n;
        }
    }
    (hits, regions, scanned)
}

/// Raw bytes of a text file plus anything hex- or base64-encoded in it.
fn decoded_forms(text: &[u8]) -> Vec<Vec<u8>> {
    let mut forms = vec![text.to_vec()];
    let s = String::from_utf8_lossy(text);
    for token in s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '/')) {
        if token.len() >= 64 && token.len() % 2 == 0 && token.bytes().all(|b| b.is_ascii_hexdigit())
        {
            let hex: Vec<u8> = (0..token.len())
                .step_by(2)
                .filter_map(|i| u8::from_str_radix(&token[i..i + 2], 16).ok())
                .collect();
            forms.push(hex);
        }
        if token.len() >= 44 {
            forms.push(base64_decode(token));
        }
    }
    forms
}

fn base64_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        let Some(v) = ALPHABET.iter().position(|&a| a == c) else {
            continue;
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

pub(crate) fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries.filter_map(Result::ok).map(|e| e.path()).collect()
}

fn live_children(pid: i32) -> Vec<String> {
    let mut children = Vec::new();
    for task in files_under(Path::new(&format!("/proc/{pid}/task"))) {
        let text = std::fs::read_to_string(task.join("children")).unwrap_or_default();
        children.extend(text.split_whitespace().map(str::to_owned));
    }
    children
}

struct Findings {
    memory: HashMap<&'static str, usize>,
    regions: Vec<String>,
    scanned: u64,
    spill_files: usize,
    spill_hits: HashMap<&'static str, usize>,
    log_hits: HashMap<&'static str, usize>,
    children: Vec<String>,
    in_children: HashMap<&'static str, usize>,
}

/// Runs the canary jobs through a worker binary with `env`, waits until it has replaced its
/// idle connection (or, without the idle wipe, the same time), and scans what it left.
async fn run_and_scan(test: &str, env: &[(&str, &str)], wait_for_idle_wipe: bool) -> Findings {
    let queue = unique_queue(test);
    // Later settings win: the caller's `env` comes after these defaults.
    let mut settings = vec![
        ("MIDNIT_IDLE_WIPE_SECS", "1"),
        // The PNG input spills to disk, the JPEG stays in memory: both paths are covered.
        ("MIDNIT_SPILL_THRESHOLD_BYTES", "200000"),
        ("MIDNIT_LOG", "info,midnit_worker::app::worker=debug"),
    ];
    settings.extend_from_slice(env);
    let worker = spawn_binary_env(&queue, 1, &settings);
    let Jobs {
        mut canaries,
        mut requests,
    } = canary_jobs(0x5eed_0000 + u64::from(wait_for_idle_wipe));
    // A HEIC job too, where the renderer is isolated: its C decoder's heap dies with the
    // renderer; what the worker held of it (the input, the outputs) must be wiped like any.
    let isolated = !env.contains(&("MIDNIT_EXECUTOR", "in_process"));
    if isolated {
        let (heic, pixels) = canary_heic(0x4e1c + u64::from(wait_for_idle_wipe));
        canaries.add("input.heic", &heic);
        canaries.add("pixels.heic", &pixels);
        requests.push(request(
            heic,
            vec![output("heic-small", "png", Some(120), Some(120))],
        ));
    }
    let client = Client::connect(&amqp_url(), &queue).await.unwrap();
    let mut spilled = 0;
    let mut outputs = Vec::new();
    for req in &requests {
        let reply = render(&client, req).await;
        spilled += usize::from(keep_outputs(&mut outputs, &reply));
    }
    add_outputs(&mut canaries, &outputs);
    assert_eq!(spilled, 1, "exactly the PNG input was meant to spill");
    client.close().await;
    if wait_for_idle_wipe {
        worker.wait_for_log("replaced the broker connection", 1);
    } else {
        std::thread::sleep(std::time::Duration::from_secs(3));
    }
    // Freeze the worker while its memory is read.
    worker.signal(libc::SIGSTOP);
    let children = live_children(worker.pid());
    let (memory, regions, scanned) = scan_process(worker.pid(), &canaries);
    // The live children are pre-started renderers waiting for a job: none may hold anything.
    let mut in_children = HashMap::new();
    for child in &children {
        let pid: i32 = child.parse().unwrap();
        let (hits, _, _) = scan_process(pid, &canaries);
        for (what, n) in hits {
            *in_children.entry(what).or_default() += n;
        }
    }
    worker.signal(libc::SIGCONT);

    let mut spill_hits = HashMap::new();
    let spill = files_under(&worker.spill_dir());
    for f in &spill {
        canaries.find(&std::fs::read(f).unwrap_or_default(), &mut spill_hits);
    }
    let mut log_hits = HashMap::new();
    for form in decoded_forms(worker.log_text().as_bytes()) {
        canaries.find(&form, &mut log_hits);
    }
    drop(worker);
    delete_queue(&queue).await;
    Findings {
        memory,
        regions,
        scanned,
        spill_files: spill.len(),
        spill_hits,
        log_hits,
        children,
        in_children,
    }
}

/// A HEIC of random pixels (lossless, 4:4:4, made by `heif-enc`) and its decoded pixels as
/// `heif-convert` reads them.
fn canary_heic(seed: u64) -> (Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("noise.png");
    let heic = dir.path().join("noise.heic");
    let back = dir.path().join("back.png");
    samples::noise(160, 120, seed).save(&png).unwrap();
    let run = |cmd: &str, args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new(cmd).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(
        "heif-enc",
        &[
            "-L".as_ref(),
            "-p".as_ref(),
            "chroma=444".as_ref(),
            "-o".as_ref(),
            heic.as_os_str(),
            png.as_os_str(),
        ],
    );
    run("heif-convert", &[heic.as_os_str(), back.as_os_str()]);
    let pixels = image::open(&back).unwrap().to_rgb8().into_raw();
    (std::fs::read(&heic).unwrap(), pixels)
}

/// Nothing of the jobs in the worker's memory, spill directory or log.
fn assert_nothing_left(f: &Findings) {
    assert!(
        f.memory.is_empty(),
        "job bytes left in the worker's memory ({} bytes scanned): {:?}\nin mappings:\n{}",
        f.scanned,
        f.memory,
        f.regions.join("\n")
    );
    assert_eq!(f.spill_files, 0, "files left in the spill directory");
    assert!(f.spill_hits.is_empty());
    assert!(
        f.log_hits.is_empty(),
        "job bytes in the log: {:?}",
        f.log_hits
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_idle_wipe_no_piece_of_any_input_pixel_row_or_output_is_left() {
    let f = run_and_scan("memscan", &[], true).await;
    assert!(f.scanned > 1 << 20, "scanned only {} bytes", f.scanned);
    assert_nothing_left(&f);
    // One pre-started renderer (concurrency 1) waits for the next job; it never saw this one.
    assert_eq!(f.children.len(), 1, "live renderers: {:?}", f.children);
    assert!(
        f.in_children.is_empty(),
        "job bytes in a live renderer: {:?}",
        f.in_children
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendering_in_process_leaves_no_pixel_row_either() {
    // Here the worker itself decodes, resizes and encodes: its allocator and stacks see every
    // pixel row.
    let f = run_and_scan("memscan-inproc", &[("MIDNIT_EXECUTOR", "in_process")], true).await;
    assert_nothing_left(&f);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_wiping_off_the_same_scan_finds_job_bytes() {
    let f = run_and_scan("memscan-off", &[("MIDNIT_WIPE_MEMORY", "false")], false).await;
    let found: usize = f.memory.values().sum();
    assert!(
        found > 0,
        "the scan found nothing with wiping off ({} bytes scanned): it could not catch a leak",
        f.scanned
    );
    eprintln!("negative control: {found} windows found: {:?}", f.memory);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_idle_wipe_the_live_connection_buffers_still_hold_job_bytes() {
    // Zeroing on, idle wipe off: what is left is what lapin's ring buffers (32 frames each,
    // for the life of the connection) still hold. This is why the idle wipe exists.
    let f = run_and_scan("memscan-noidle", &[("MIDNIT_IDLE_WIPE_SECS", "0")], false).await;
    let found: usize = f.memory.values().sum();
    assert!(
        found > 0,
        "expected job bytes in the live connection's buffers"
    );
    eprintln!("idle wipe off: {:?}\n{}", f.memory, f.regions.join("\n"));
}
