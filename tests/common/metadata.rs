//! What `exiftool` (Debian `libimage-exiftool-perl`, installed by
//! scripts/test.sh) reads in a file: the independent check that location
//! and other personal metadata are gone.

use serde_json::{Map, Value};

/// `exiftool -j -G -n` of `bytes`: tag names with their group, and values.
pub fn exiftool(bytes: &[u8]) -> Map<String, Value> {
    exiftool_with(bytes, &[])
}

/// `exiftool -j -G -n -ee` (embedded metadata too: a video's timed and
/// track-level tags).
pub fn exiftool_ee(bytes: &[u8]) -> Map<String, Value> {
    exiftool_with(bytes, &["-ee"])
}

fn exiftool_with(bytes: &[u8], extra: &[&str]) -> Map<String, Value> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, bytes).unwrap();
    let out = std::process::Command::new("exiftool")
        .args(["-j", "-G", "-n"])
        .args(extra)
        .arg(&path)
        .output()
        .expect("exiftool (Debian libimage-exiftool-perl) is installed by scripts/test.sh");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0].as_object().unwrap().clone()
}

/// The tag names containing `pat` (`"GPS"`, `"EXIF:Make"`...).
pub fn tags_like(tags: &Map<String, Value>, pat: &str) -> Vec<String> {
    tags.keys().filter(|k| k.contains(pat)).cloned().collect()
}
