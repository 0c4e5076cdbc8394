//! The `ffmpeg` program as the reference for video: the frame it extracts
//! at a time, an AV1 file made from the corpus (the corpus has none), and
//! `ffprobe`'s view of a file.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The frame `ffmpeg -ss T -i FILE -frames:v 1` shows (display matrix
/// applied, as the program does by default), scaled to `w` wide.
pub fn ffmpeg_frame(file: &Path, t: f64, w: u32) -> image::DynamicImage {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &t.to_string(), "-i"])
        .arg(file)
        .args([
            "-frames:v",
            "1",
            "-vf",
            &format!("scale={w}:-2"),
            "-f",
            "image2pipe",
            "-c:v",
            "png",
            "-",
        ])
        .output()
        .expect("ffmpeg is installed (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    image::load_from_memory(&out.stdout).expect("ffmpeg wrote a PNG")
}

/// A 2 s, 640x360 AV1 MP4 made from the corpus H.264 clip (libaom, fast),
/// in `dir`.
pub fn av1_mp4(dir: &Path) -> PathBuf {
    let out = dir.join("av1.mp4");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(super::corpus("video_1280x720_5s.mp4"))
        .args([
            "-t",
            "2",
            "-vf",
            "scale=640:360",
            "-c:v",
            "libaom-av1",
            "-cpu-used",
            "8",
            "-crf",
            "40",
            "-b:v",
            "0",
            "-an",
        ])
        .arg(&out)
        .status()
        .expect("ffmpeg is installed");
    assert!(status.success(), "ffmpeg could not make an AV1 file");
    out
}

/// `ffprobe -show_streams -show_format` as JSON.
pub fn ffprobe(file: &Path) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_streams",
            "-show_format",
        ])
        .arg(file)
        .output()
        .expect("ffprobe is installed");
    assert!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `ffmpeg -f framemd5` of every stream's packets (`-map 0 -c copy`): equal
/// for two files exactly when their streams are.
pub fn framemd5(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v");
    std::fs::write(&path, bytes).unwrap();
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&path)
        .args(["-map", "0", "-c", "copy", "-f", "framemd5", "-"])
        .output()
        .expect("ffmpeg is installed");
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines().filter(|l| !l.starts_with('#')).count() > 10,
        "{text}"
    );
    text
}

/// The types of the top-level boxes of an MP4/QuickTime file, in order.
pub fn top_level_boxes(bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        out.push(String::from_utf8_lossy(&bytes[pos + 4..pos + 8]).into_owned());
        let size = match size {
            0 => bytes.len() - pos,
            1 => u64::from_be_bytes(bytes[pos + 8..pos + 16].try_into().unwrap()) as usize,
            n => n,
        };
        pos += size.max(8);
    }
    out
}
