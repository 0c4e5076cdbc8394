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
