//! What an object is, decided from its first bytes (magic numbers via
//! `infer`), never from its name: a `.jpg` that holds HTML is not an image.

/// Bytes read from the start of an object to sniff it.
pub const SNIFF_LEN: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaType {
    Jpeg,
    Png,
    Webp,
    Gif,
    Avif,
    /// HEIF with HEVC-coded images (a phone's `.heic`).
    Heic,
    /// Other HEIF.
    Heif,
    Tiff,
    Bmp,
    Mp4,
    Webm,
    QuickTime,
    /// Anything else: served as `application/octet-stream`.
    Other,
    /// Our own media information (`fmt=json`); never sniffed from a stored object.
    Json,
}

impl MediaType {
    pub const ALL: [MediaType; 14] = [
        Self::Jpeg,
        Self::Png,
        Self::Webp,
        Self::Gif,
        Self::Avif,
        Self::Heic,
        Self::Heif,
        Self::Tiff,
        Self::Bmp,
        Self::Mp4,
        Self::Webm,
        Self::QuickTime,
        Self::Other,
        Self::Json,
    ];

    /// The type whose [`MediaType::mime`] is `mime` (a disk cache entry's).
    pub fn from_mime(mime: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.mime() == mime)
    }

    pub fn sniff(head: &[u8]) -> Self {
        let Some(kind) = infer::get(head) else {
            return Self::Other;
        };
        match kind.mime_type() {
            "image/jpeg" => Self::Jpeg,
            "image/png" => Self::Png,
            "image/webp" => Self::Webp,
            "image/gif" => Self::Gif,
            "image/avif" => Self::Avif,
            "image/heif" if hevc_brand(head) => Self::Heic,
            "image/heif" => Self::Heif,
            "image/tiff" => Self::Tiff,
            "image/bmp" => Self::Bmp,
            "video/mp4" => Self::Mp4,
            "video/webm" => Self::Webm,
            "video/quicktime" => Self::QuickTime,
            _ => Self::Other,
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Webp => "image/webp",
            Self::Gif => "image/gif",
            Self::Avif => "image/avif",
            Self::Heic => "image/heic",
            Self::Heif => "image/heif",
            Self::Tiff => "image/tiff",
            Self::Bmp => "image/bmp",
            Self::Mp4 => "video/mp4",
            Self::Webm => "video/webm",
            Self::QuickTime => "video/quicktime",
            Self::Other => "application/octet-stream",
            Self::Json => "application/json",
        }
    }

    pub fn is_image(self) -> bool {
        matches!(
            self,
            Self::Jpeg
                | Self::Png
                | Self::Webp
                | Self::Gif
                | Self::Avif
                | Self::Heic
                | Self::Heif
                | Self::Tiff
                | Self::Bmp
        )
    }

    pub fn is_video(self) -> bool {
        matches!(self, Self::Mp4 | Self::Webm | Self::QuickTime)
    }

    /// What the transform pipeline can decode: these images, and a
    /// video's frame (a poster).
    pub fn is_transformable(self) -> bool {
        matches!(
            self,
            Self::Jpeg | Self::Png | Self::Webp | Self::Gif | Self::Avif | Self::Heic | Self::Heif
        ) || self.is_video()
    }
}

/// Whether an ISO-BMFF file's major brand names HEVC-coded HEIF
/// (`heic`, `heix`, `heim`, `heis`, `hevc`, `hevx`, `hevm`, `hevs`).
fn hevc_brand(head: &[u8]) -> bool {
    head.get(8..12).is_some_and(|brand| {
        matches!(
            brand,
            b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" | b"hevm" | b"hevs"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_magic_not_names() {
        assert_eq!(
            MediaType::sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F', 0]),
            MediaType::Jpeg
        );
        assert_eq!(
            MediaType::sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            MediaType::Png
        );
        assert_eq!(MediaType::sniff(b"RIFF\0\0\0\0WEBPVP8 "), MediaType::Webp);
        assert_eq!(MediaType::sniff(b"GIF89a\x01\0\x01\0"), MediaType::Gif);
        assert_eq!(
            MediaType::sniff(b"<html><script>alert(1)</script>"),
            MediaType::Other
        );
        assert_eq!(
            MediaType::sniff(b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>"),
            MediaType::Other
        );
        assert_eq!(MediaType::sniff(b""), MediaType::Other);
    }

    #[test]
    fn corpus_files_sniff_as_what_they_are() {
        for (file, want) in [
            ("photo_4032x3024_orient1.jpg", MediaType::Jpeg),
            ("rgba_1200x1200.png", MediaType::Png),
            ("photo_4272x2848.webp", MediaType::Webp),
            ("anim_320x240_8f.gif", MediaType::Gif),
            ("video_1280x720_5s.mp4", MediaType::Mp4),
        ] {
            let bytes = crate::test_support::corpus(file);
            assert_eq!(MediaType::sniff(&bytes[..SNIFF_LEN]), want, "{file}");
        }
    }
}
