//! The media information of an object, as `fmt=json` answers it and the
//! upload's 201 carries it: what the store knows of the object (key, type,
//! size, ETag) and, for an image we decode, what one small decode tells
//! (`transform::describe`: size, frames, placeholders, colour, focus).

use serde::Serialize;

use crate::key::ObjectKey;
use crate::store::OriginalMeta;
use crate::transform::Described;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MediaInfo {
    pub key: String,
    pub content_type: &'static str,
    pub bytes: u64,
    /// As in the `ETag` header (quoted).
    pub etag: String,
    /// Absent for what is not an image we decode.
    #[serde(flatten)]
    pub image: Option<Described>,
}

impl MediaInfo {
    pub fn new(key: &ObjectKey, meta: &OriginalMeta, image: Option<Described>) -> Self {
        Self {
            key: key.as_str().to_owned(),
            content_type: meta.media.mime(),
            bytes: meta.size,
            etag: meta.etag.clone(),
            image,
        }
    }

    /// The JSON body (our own plain data: serialising it cannot fail).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::Focus;

    #[test]
    fn fields_are_flat_and_absent_ones_left_out() {
        let mut info = MediaInfo {
            key: "a/b.jpg".into(),
            content_type: "image/jpeg",
            bytes: 10,
            etag: "\"e\"".into(),
            image: None,
        };
        let v: serde_json::Value = serde_json::from_slice(&info.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"key": "a/b.jpg", "content_type": "image/jpeg", "bytes": 10, "etag": "\"e\""})
        );
        info.image = Some(Described {
            width: 3,
            height: 2,
            frames: None,
            duration_ms: None,
            video_codec: None,
            audio: None,
            thumbhash: "t".into(),
            blurhash: "b".into(),
            color: "#000000".into(),
            focus: Focus { x: 0.5, y: 0.5 },
        });
        let v: serde_json::Value = serde_json::from_slice(&info.to_json()).unwrap();
        assert_eq!(v["width"], 3);
        assert_eq!(v["focus"]["y"], 0.5);
        assert!(v.get("frames").is_none() && v.get("image").is_none());
    }
}
