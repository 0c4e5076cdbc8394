//! Transform parameters: query string → [`VariantRequest`] → negotiated [`Variant`].
//!
//! Only [`PARAMS`] are read — `w`, `h`, `fit`, `fmt`, `q`, `dpr`, `g`,
//! `fx`, `fy`, `anim`, `t` (a video's frame) and `p` (a preset by name);
//! `fmt=json` asks for the media information instead ([`Ask::Info`]).
//! Every other query parameter is ignored and never reaches the cache key. The canonical form
//! ([`Variant::canonical`]) is computed *after* `dpr` is applied and the
//! format negotiated, so `w=300&dpr=2` and `w=600` share one cache entry, and
//! the `Accept` header enters the key only as the format it resolved to.

use std::borrow::Cow;
use std::fmt::Write as _;

/// A bad transform parameter. The message names the parameter (answers 400).
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
#[error("invalid parameter {param}: {reason}")]
pub struct VariantError {
    pub param: &'static str,
    pub reason: String,
}

impl VariantError {
    fn new(param: &'static str, reason: impl Into<String>) -> Self {
        Self {
            param,
            reason: reason.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fit {
    /// Fill the box, centre crop.
    Cover,
    /// Fit within the box, keep the aspect ratio.
    Inside,
    /// Stretch to the box.
    Fill,
}

impl Fit {
    fn as_str(self) -> &'static str {
        match self {
            Fit::Cover => "cover",
            Fit::Inside => "inside",
            Fit::Fill => "fill",
        }
    }
}

/// The `fmt` parameter as asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatParam {
    Auto,
    Webp,
    Avif,
    Jpeg,
    Png,
}

impl FormatParam {
    /// The format named, as `transform.allowed_formats` lists it (`None`: auto).
    fn explicit_name(self) -> Option<&'static str> {
        match self {
            FormatParam::Auto => None,
            FormatParam::Webp => Some("webp"),
            FormatParam::Avif => Some("avif"),
            FormatParam::Jpeg => Some("jpeg"),
            FormatParam::Png => Some("png"),
        }
    }
}

/// The output format after negotiation; this is what the cache key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    Webp,
    Avif,
    Jpeg,
    Png,
    /// `fmt=auto` for a client that does not accept WebP: JPEG, or PNG when
    /// the source has alpha that must survive. Decided once the source is known.
    JpegOrPng,
}

impl OutputFormat {
    fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Webp => "webp",
            OutputFormat::Avif => "avif",
            OutputFormat::Jpeg => "jpeg",
            OutputFormat::Png => "png",
            OutputFormat::JpegOrPng => "jpeg-or-png",
        }
    }

    /// Whether the quality setting affects the output bytes.
    fn uses_quality(self) -> bool {
        !matches!(self, OutputFormat::Png)
    }
}

/// Where a `cover` crop is taken, in the upright image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gravity {
    /// An edge, a corner or the centre: the crop's offset on each axis as
    /// thousandths of the room the crop leaves (0 left/top, 1000 right/bottom).
    Edge(Edge),
    /// Content-aware: centred on the most salient point (`transform::saliency`).
    Auto,
    /// Centred on a focal point, thousandths of the upright width / height.
    Focus { x: u16, y: u16 },
}

/// `g`'s named anchors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Edge {
    Center,
    N,
    S,
    E,
    W,
    Ne,
    Nw,
    Se,
    Sw,
}

const EDGES: [(&str, Edge); 9] = [
    ("center", Edge::Center),
    ("n", Edge::N),
    ("s", Edge::S),
    ("e", Edge::E),
    ("w", Edge::W),
    ("ne", Edge::Ne),
    ("nw", Edge::Nw),
    ("se", Edge::Se),
    ("sw", Edge::Sw),
];

impl Edge {
    fn as_str(self) -> &'static str {
        EDGES
            .iter()
            .find(|(_, e)| *e == self)
            .map_or("center", |(n, _)| n)
    }

    /// The crop's offset as a fraction of the room it leaves, (x, y).
    pub fn alignment(self) -> (f64, f64) {
        match self {
            Edge::Center => (0.5, 0.5),
            Edge::N => (0.5, 0.0),
            Edge::S => (0.5, 1.0),
            Edge::E => (1.0, 0.5),
            Edge::W => (0.0, 0.5),
            Edge::Ne => (1.0, 0.0),
            Edge::Nw => (0.0, 0.0),
            Edge::Se => (1.0, 1.0),
            Edge::Sw => (0.0, 1.0),
        }
    }
}

impl Gravity {
    pub const CENTER: Gravity = Gravity::Edge(Edge::Center);
}

/// Transform parameters as parsed from the query, before negotiation.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantRequest {
    w: Option<u32>,
    h: Option<u32>,
    fit: Option<Fit>,
    fmt: FormatParam,
    q: Option<u8>,
    dpr: f64,
    gravity: Option<Gravity>,
    anim: Option<bool>,
    /// `t`, in milliseconds.
    t: Option<u64>,
}

/// A fully resolved variant: effective box, fit, output format, quality.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Variant {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fit: Fit,
    pub format: OutputFormat,
    pub quality: u8,
    /// The format came from the `Accept` header (`Vary: Accept` is due).
    pub negotiated: bool,
    /// Where a `cover` crop is taken.
    pub gravity: Gravity,
    /// An animated source stays animated (where the format can animate).
    pub anim: bool,
    /// A video's frame to show, in milliseconds (0 for an image).
    pub at_ms: u64,
}

/// A `WxH` entry of `transform.allowed_sizes`; `150x` or `x150` leave one
/// side free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeSpec {
    pub width: Option<u32>,
    pub height: Option<u32>,
}

impl SizeSpec {
    /// `WxH` with sides from 1 to `max`.
    pub fn parse(s: &str, max: u32) -> Result<Self, String> {
        let (w, h) = s.split_once('x').ok_or("expected WxH, e.g. 150x150")?;
        let side = |v: &str| -> Result<Option<u32>, String> {
            if v.is_empty() {
                return Ok(None);
            }
            match v.parse::<u32>() {
                Ok(n) if (1..=max).contains(&n) => Ok(Some(n)),
                _ => Err(format!("sides must be integers from 1 to {max}")),
            }
        };
        let size = SizeSpec {
            width: side(w)?,
            height: side(h)?,
        };
        if size.width.is_none() && size.height.is_none() {
            return Err("expected WxH, e.g. 150x150".into());
        }
        Ok(size)
    }
}

/// What a request may ask for: the `[transform]` keys that bound the
/// variant space. Owned here (config fills it in), so parsing a query needs
/// nothing from the config module.
#[derive(Debug, Clone)]
pub struct VariantLimits {
    pub max_dimension: u32,
    pub default_quality: u8,
    /// Boxes a request may ask for, after `dpr` (empty: any).
    pub allowed_sizes: Vec<SizeSpec>,
    /// Output formats `fmt` may name, as `webp`, `avif`, `jpeg`, `png` (empty: any).
    pub allowed_formats: Vec<&'static str>,
    /// Values `q` may take (empty: 1..=100).
    pub allowed_qualities: Vec<u8>,
    /// `[[preset]]`s by name, as `?p=<name>` asks for them.
    pub presets: std::sync::Arc<[Preset]>,
    /// `transform.presets_only`: every transform but `?p=` answers 400.
    pub presets_only: bool,
}

/// A `[[preset]]` as `?p=` finds it: its parameters as if written out.
#[derive(Debug, Clone, PartialEq)]
pub struct Preset {
    pub name: String,
    pub request: VariantRequest,
}

/// For unit tests (the server's defaults are `[transform]`'s, in config).
#[cfg(test)]
impl Default for VariantLimits {
    fn default() -> Self {
        Self {
            max_dimension: 4096,
            default_quality: 80,
            allowed_sizes: Vec::new(),
            allowed_formats: Vec::new(),
            allowed_qualities: Vec::new(),
            presets: std::sync::Arc::new([]),
            presets_only: false,
        }
    }
}

/// The transform parameters, in the order signed URLs sign them (SPEC's table order).
pub const PARAMS: [&str; PARAM_COUNT] = [
    "w", "h", "fit", "fmt", "q", "dpr", "g", "fx", "fy", "anim", "t", "p",
];
pub const PARAM_COUNT: usize = 12;
/// Indexes of `fmt`, `t` and `p` in [`PARAMS`].
const FMT: usize = 3;
const T: usize = 10;
pub const P: usize = 11;

/// Each transform parameter's raw value, in [`PARAMS`] order.
pub type RawParams<'a> = [Option<Cow<'a, str>>; PARAM_COUNT];

/// The longest `t` is 86400 s (a day): no video frame lies beyond that.
pub const MAX_T_SECS: u64 = 86_400;

/// The raw (percent-decoded) value of each transform parameter, in [`PARAMS`]
/// order. A parameter given twice is refused: which one counts would be a guess.
pub fn raw_params(query: Option<&str>) -> Result<RawParams<'_>, VariantError> {
    crate::query::named_params(query, &PARAMS)
        .map_err(|i| VariantError::new(PARAMS[i], "given more than once"))
}

impl VariantRequest {
    /// Parses the raw query string. `Ok(None)` when no transform parameter is
    /// present (the original is served).
    pub fn parse(query: Option<&str>, cfg: &VariantLimits) -> Result<Option<Self>, VariantError> {
        Self::from_raw(raw_params(query)?, cfg)
    }

    fn from_raw(
        mut seen: RawParams<'_>,
        cfg: &VariantLimits,
    ) -> Result<Option<Self>, VariantError> {
        if seen.iter().all(Option::is_none) {
            return Ok(None);
        }
        if let Some(name) = seen[P].take() {
            return Self::preset(&name, &seen, cfg).map(Some);
        }
        if cfg.presets_only {
            return Err(VariantError::new(
                "p",
                "only ?p=<preset> transforms are served here (transform.presets_only)",
            ));
        }
        let [w, h, fit, fmt, q, dpr, g, fx, fy, anim, t, _] = seen;
        let max = cfg.max_dimension;
        let req = Self {
            w: w.map(|v| parse_int("w", &v, 1, max)).transpose()?,
            h: h.map(|v| parse_int("h", &v, 1, max)).transpose()?,
            fit: fit.map(|v| parse_fit(&v)).transpose()?,
            fmt: fmt
                .map(|v| parse_format(&v))
                .transpose()?
                .unwrap_or(FormatParam::Auto),
            q: q.map(|v| parse_int("q", &v, 1, 100).map(|q| q as u8))
                .transpose()?,
            dpr: dpr.map(|v| parse_dpr(&v)).transpose()?.unwrap_or(1.0),
            gravity: parse_gravity(g.as_deref(), fx.as_deref(), fy.as_deref())?,
            anim: anim.map(|v| parse_bool("anim", &v)).transpose()?,
            t: t.map(|v| parse_time(&v)).transpose()?,
        };
        req.check_allowed(cfg)?;
        Ok(Some(req))
    }

    /// `?p=<name>`: the preset's parameters, as if written out; nothing
    /// else may stand beside it (which would win is a guess).
    fn preset(name: &str, rest: &RawParams<'_>, cfg: &VariantLimits) -> Result<Self, VariantError> {
        if let Some(other) = PARAMS
            .iter()
            .zip(rest)
            .find_map(|(n, v)| v.as_ref().map(|_| n))
        {
            return Err(VariantError::new(
                "p",
                format!("{other} cannot be given with p (the preset sets the transform)"),
            ));
        }
        cfg.presets
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.request.clone())
            .ok_or_else(|| VariantError::new("p", "no such preset (see [[preset]] in the config)"))
    }

    /// The operator's allow-lists: with them set, the variants of one image
    /// are a fixed, small set (sizes × fits × formats × qualities), not one
    /// per `dpr` decimal or `q` value a client cares to send.
    fn check_allowed(&self, cfg: &VariantLimits) -> Result<(), VariantError> {
        if !cfg.allowed_sizes.is_empty() && (self.w.is_some() || self.h.is_some()) {
            // The box that will be made, after dpr: `dpr` only passes where
            // it lands on a listed size.
            let (w, h) = scale_box(self.w, self.h, self.dpr, cfg.max_dimension);
            if !cfg
                .allowed_sizes
                .iter()
                .any(|s| s.width == w && s.height == h)
            {
                let dim = |d: Option<u32>| d.map(|v| v.to_string()).unwrap_or_default();
                let param = match (self.w, self.h) {
                    _ if self.dpr != 1.0 => "dpr",
                    (Some(_), None) => "w",
                    (None, Some(_)) => "h",
                    _ => "w, h",
                };
                let after = if self.dpr != 1.0 { " (after dpr)" } else { "" };
                return Err(VariantError::new(
                    param,
                    format!(
                        "size {}x{}{after} is not in transform.allowed_sizes",
                        dim(w),
                        dim(h)
                    ),
                ));
            }
        }
        if let Some(name) = self.fmt.explicit_name()
            && !cfg.allowed_formats.is_empty()
            && !cfg.allowed_formats.contains(&name)
        {
            return Err(VariantError::new(
                "fmt",
                format!("{name} is not in transform.allowed_formats"),
            ));
        }
        if let Some(q) = self.q
            && !cfg.allowed_qualities.is_empty()
            && !cfg.allowed_qualities.contains(&q)
        {
            return Err(VariantError::new(
                "q",
                format!("{q} is not in transform.allowed_qualities"),
            ));
        }
        Ok(())
    }

    /// Applies `dpr`, the defaults and content negotiation.
    pub fn resolve(&self, accept: Option<&str>, cfg: &VariantLimits) -> Variant {
        let (width, height) = scale_box(self.w, self.h, self.dpr, cfg.max_dimension);
        let webp_allowed = cfg.allowed_formats.is_empty() || cfg.allowed_formats.contains(&"webp");
        let (format, negotiated) = match self.fmt {
            FormatParam::Auto if webp_allowed && accepts_webp(accept) => (OutputFormat::Webp, true),
            FormatParam::Auto => (OutputFormat::JpegOrPng, true),
            FormatParam::Webp => (OutputFormat::Webp, false),
            FormatParam::Avif => (OutputFormat::Avif, false),
            FormatParam::Jpeg => (OutputFormat::Jpeg, false),
            FormatParam::Png => (OutputFormat::Png, false),
        };
        Variant {
            width,
            height,
            fit: self.fit.unwrap_or(Fit::Cover),
            format,
            quality: self.q.unwrap_or(cfg.default_quality),
            negotiated,
            gravity: self.gravity.unwrap_or(Gravity::CENTER),
            anim: self.anim.unwrap_or(true),
            at_ms: self.t.unwrap_or(0),
        }
    }
}

impl Variant {
    /// The canonical parameter string: identical for every request that must
    /// produce the same bytes, different for any that must not.
    pub fn canonical(&self) -> String {
        let mut s = String::with_capacity(48);
        if let Some(w) = self.width {
            let _ = write!(s, "w={w}&");
        }
        if let Some(h) = self.height {
            let _ = write!(s, "h={h}&");
        }
        if self.width.is_some() && self.height.is_some() {
            let _ = write!(s, "fit={}&", self.fit.as_str());
        }
        let _ = write!(s, "fmt={}", self.format.as_str());
        if self.format.uses_quality() {
            let _ = write!(s, "&q={}", self.quality);
        }
        // Where the crop is taken matters only where there is a crop.
        if self.crops() {
            match self.gravity {
                Gravity::Edge(Edge::Center) => {}
                Gravity::Edge(e) => {
                    let _ = write!(s, "&g={}", e.as_str());
                }
                Gravity::Auto => s.push_str("&g=auto"),
                Gravity::Focus { x, y } => {
                    let _ = write!(s, "&fx={}&fy={}", thousandths(x), thousandths(y));
                }
            }
        }
        // Only WebP animates.
        if !self.anim && self.format == OutputFormat::Webp {
            s.push_str("&anim=false");
        }
        push_time(&mut s, self.at_ms);
        s
    }

    /// A `cover` box: the source is cropped to its aspect ratio.
    pub fn crops(&self) -> bool {
        self.fit == Fit::Cover && self.width.is_some() && self.height.is_some()
    }
}

/// Thousandths as the shortest decimal: 250 → `0.25`, 1000 → `1`.
fn thousandths(v: u16) -> String {
    if v.is_multiple_of(1000) {
        return (v / 1000).to_string();
    }
    let digits = format!("{:03}", v % 1000);
    format!("{}.{}", v / 1000, digits.trim_end_matches('0'))
}

/// `&t=<seconds>` (shortest decimal form) unless the time is 0, the default.
fn push_time(s: &mut String, at_ms: u64) {
    if at_ms == 0 {
        return;
    }
    let _ = write!(s, "&t={}", at_ms / 1000);
    let frac = at_ms % 1000;
    if frac != 0 {
        let digits = format!("{frac:03}");
        let _ = write!(s, ".{}", digits.trim_end_matches('0'));
    }
}

/// What a request asks for instead of the original: a derivative image, or
/// (`fmt=json`) the object's media information. Both are cached and
/// coalesced alike, under [`Ask::canonical`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Ask {
    Image(Variant),
    /// `fmt=json`; on a video, its placeholders come from the frame at `t`.
    Info(InfoAt),
}

/// The `t` of a `fmt=json` request: only a video's reads it, so a bad
/// value is refused only once the object is known to be a video.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct InfoAt {
    pub at_ms: u64,
    pub bad: Option<VariantError>,
}

/// The canonical form of [`Ask::Info`] at `t=0`: every `fmt=json` request
/// of one image shares it, whatever else its query holds.
pub const INFO: &str = "fmt=json";

impl Ask {
    /// Parses the query and negotiates the format: `Ok(None)` for the
    /// original. `fmt=json` asks for the media information, and then every
    /// other transform parameter is ignored (not even checked).
    pub fn parse(
        query: Option<&str>,
        accept: Option<&str>,
        cfg: &VariantLimits,
    ) -> Result<Option<Self>, VariantError> {
        let seen = raw_params(query)?;
        if seen[FMT]
            .as_deref()
            .is_some_and(|f| f.eq_ignore_ascii_case("json"))
        {
            let t = seen[T].as_deref().map(parse_time);
            return Ok(Some(Ask::Info(match t {
                None => InfoAt::default(),
                Some(Ok(at_ms)) => InfoAt { at_ms, bad: None },
                Some(Err(e)) => InfoAt {
                    at_ms: 0,
                    bad: Some(e),
                },
            })));
        }
        Ok(VariantRequest::from_raw(seen, cfg)?.map(|r| Ask::Image(r.resolve(accept, cfg))))
    }

    /// The ask for an object now known to be a video or not: `t` counts
    /// only on a video (elsewhere it neither splits the cache nor, with
    /// `fmt=json`, is checked).
    pub fn for_video(&self, is_video: bool) -> Result<Ask, VariantError> {
        match self {
            Ask::Image(v) if !is_video && v.at_ms != 0 => Ok(Ask::Image(Variant {
                at_ms: 0,
                ..v.clone()
            })),
            Ask::Info(_) if !is_video => Ok(Ask::Info(InfoAt::default())),
            Ask::Info(InfoAt { bad: Some(e), .. }) => Err(e.clone()),
            other => Ok(other.clone()),
        }
    }

    /// A video's frame to show, in milliseconds.
    pub fn at_ms(&self) -> u64 {
        match self {
            Ask::Image(v) => v.at_ms,
            Ask::Info(at) => at.at_ms,
        }
    }

    pub fn canonical(&self) -> Cow<'static, str> {
        match self {
            Ask::Image(v) => Cow::Owned(v.canonical()),
            Ask::Info(InfoAt { at_ms: 0, .. }) => Cow::Borrowed(INFO),
            Ask::Info(at) => {
                let mut s = INFO.to_owned();
                push_time(&mut s, at.at_ms);
                Cow::Owned(s)
            }
        }
    }

    /// The answer depends on `Accept` (`Vary: Accept` is due).
    pub fn negotiated(&self) -> bool {
        matches!(self, Ask::Image(v) if v.negotiated)
    }
}

/// Multiplies the box by `dpr`, then shrinks it (keeping its aspect ratio) so
/// that no side exceeds `max_dimension`.
fn scale_box(w: Option<u32>, h: Option<u32>, dpr: f64, max: u32) -> (Option<u32>, Option<u32>) {
    let longest = w.unwrap_or(0).max(h.unwrap_or(0)) as f64 * dpr;
    let factor = if longest > max as f64 {
        dpr * max as f64 / longest
    } else {
        dpr
    };
    let apply = |v: u32| ((v as f64 * factor).round() as u32).clamp(1, max);
    (w.map(apply), h.map(apply))
}

/// WebP only when the client names `image/webp` with a non-zero q. Like
/// imgproxy and CloudFront, `*/*` and `image/*` do not count: clients that
/// send only wildcards (curl, old browsers) get JPEG, which every client decodes.
pub fn accepts_webp(accept: Option<&str>) -> bool {
    let Some(accept) = accept else { return false };
    accept.split(',').any(|range| {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim();
        if !media.eq_ignore_ascii_case("image/webp") {
            return false;
        }
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .filter_map(|v| v.trim().parse::<f32>().ok())
            .next()
            .unwrap_or(1.0);
        q > 0.0
    })
}

fn parse_int(param: &'static str, v: &str, min: u32, max: u32) -> Result<u32, VariantError> {
    let err = || VariantError::new(param, format!("must be an integer from {min} to {max}"));
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    match v.parse::<u64>() {
        Ok(n) if (min as u64..=max as u64).contains(&n) => Ok(n as u32),
        _ => Err(err()),
    }
}

/// `g`, overridden by a focal point `fx`/`fy` (one alone: the other is 0.5).
fn parse_gravity(
    g: Option<&str>,
    fx: Option<&str>,
    fy: Option<&str>,
) -> Result<Option<Gravity>, VariantError> {
    let g = g
        .map(|v| {
            let v = v.to_ascii_lowercase();
            if v == "auto" {
                return Ok(Gravity::Auto);
            }
            EDGES
                .iter()
                .find(|(n, _)| *n == v)
                .map(|(_, e)| Gravity::Edge(*e))
                .ok_or_else(|| {
                    VariantError::new(
                        "g",
                        "must be one of center, n, s, e, w, ne, nw, se, sw, auto",
                    )
                })
        })
        .transpose()?;
    let fx = fx.map(|v| parse_fraction("fx", v)).transpose()?;
    let fy = fy.map(|v| parse_fraction("fy", v)).transpose()?;
    if fx.is_none() && fy.is_none() {
        return Ok(g);
    }
    Ok(Some(Gravity::Focus {
        x: fx.unwrap_or(500),
        y: fy.unwrap_or(500),
    }))
}

/// A number from 0 to 1 (digits and one dot), in thousandths, rounded.
fn parse_fraction(param: &'static str, v: &str) -> Result<u16, VariantError> {
    let err = || VariantError::new(param, "must be a number from 0 to 1, e.g. 0.25");
    let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || whole.len() > 1
        || frac.len() > 9
        || !digits(whole)
        || !digits(frac)
        || v.ends_with('.')
    {
        return Err(err());
    }
    let mut millionths = 0u64;
    for (i, b) in frac.bytes().take(6).enumerate() {
        millionths += (b - b'0') as u64 * 10u64.pow(5 - i as u32);
    }
    let value = (whole.as_bytes()[0] - b'0') as u64 * 1000 + (millionths + 500) / 1000;
    match u16::try_from(value) {
        Ok(t) if t <= 1000 && !(whole == "1" && frac.bytes().any(|b| b != b'0')) => Ok(t),
        _ => Err(err()),
    }
}

fn parse_bool(param: &'static str, v: &str) -> Result<bool, VariantError> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(VariantError::new(param, "must be true or false")),
    }
}

fn parse_fit(v: &str) -> Result<Fit, VariantError> {
    match v.to_ascii_lowercase().as_str() {
        "cover" => Ok(Fit::Cover),
        "inside" => Ok(Fit::Inside),
        "fill" => Ok(Fit::Fill),
        _ => Err(VariantError::new(
            "fit",
            "must be one of cover, inside, fill",
        )),
    }
}

fn parse_format(v: &str) -> Result<FormatParam, VariantError> {
    match v.to_ascii_lowercase().as_str() {
        "auto" => Ok(FormatParam::Auto),
        "webp" => Ok(FormatParam::Webp),
        "avif" => Ok(FormatParam::Avif),
        "jpeg" | "jpg" => Ok(FormatParam::Jpeg),
        "png" => Ok(FormatParam::Png),
        _ => Err(VariantError::new(
            "fmt",
            "must be one of auto, webp, avif, jpeg, png (json: the media information)",
        )),
    }
}

/// `t`: seconds, decimals allowed (milliseconds kept, finer digits
/// rounded), 0..=[`MAX_T_SECS`]; digits and one dot only.
fn parse_time(v: &str) -> Result<u64, VariantError> {
    let err = || {
        VariantError::new(
            "t",
            format!("must be a time in seconds from 0 to {MAX_T_SECS}, e.g. 1.5"),
        )
    };
    let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || whole.len() > 5 || frac.len() > 9 || !digits(whole) || !digits(frac) {
        return Err(err());
    }
    if v.ends_with('.') {
        return Err(err());
    }
    let secs: u64 = whole.parse().map_err(|_| err())?;
    // Milliseconds from up to nine decimals, rounded half up.
    let mut nanos = 0u64;
    for (i, b) in frac.bytes().enumerate() {
        nanos += (b - b'0') as u64 * 10u64.pow(8 - i as u32);
    }
    let ms = secs * 1000 + (nanos + 500_000) / 1_000_000;
    if ms > MAX_T_SECS * 1000 {
        return Err(err());
    }
    Ok(ms)
}

fn parse_dpr(v: &str) -> Result<f64, VariantError> {
    let err = || VariantError::new("dpr", "must be a number from 1 to 4");
    // Digits and at most one dot only: no "inf", "NaN", exponents or signs.
    let well_formed = !v.is_empty()
        && v.len() <= 8
        && v.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && v.bytes().filter(|b| *b == b'.').count() <= 1;
    if !well_formed {
        return Err(err());
    }
    match v.parse::<f64>() {
        Ok(d) if (1.0..=4.0).contains(&d) => Ok(d),
        _ => Err(err()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> VariantLimits {
        VariantLimits::default()
    }

    fn parse(q: &str) -> Result<Option<VariantRequest>, VariantError> {
        VariantRequest::parse(Some(q), &cfg())
    }

    fn canon(q: &str, accept: Option<&str>) -> String {
        parse(q)
            .unwrap()
            .unwrap()
            .resolve(accept, &cfg())
            .canonical()
    }

    #[test]
    fn no_transform_params_means_original() {
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("utm_source=x&v=2"), Ok(None));
        assert_eq!(VariantRequest::parse(None, &cfg()), Ok(None));
    }

    #[test]
    fn unknown_params_do_not_split_the_key() {
        assert_eq!(
            canon("w=150&h=150", None),
            canon("h=150&x=1&w=150&cb=9", None)
        );
    }

    #[test]
    fn canonical_form() {
        let webp = Some("image/avif,image/webp,*/*;q=0.8");
        assert_eq!(
            canon("w=150&h=150", webp),
            "w=150&h=150&fit=cover&fmt=webp&q=80"
        );
        assert_eq!(
            canon("w=150&h=150&fmt=webp", None),
            "w=150&h=150&fit=cover&fmt=webp&q=80"
        );
        assert_eq!(
            canon("w=150&h=150", None),
            "w=150&h=150&fit=cover&fmt=jpeg-or-png&q=80"
        );
        assert_eq!(canon("w=150&fit=fill", None), "w=150&fmt=jpeg-or-png&q=80");
        assert_eq!(canon("fmt=png&q=30", None), "fmt=png");
        assert_eq!(canon("w=300&dpr=2", None), canon("w=600", None));
        assert_eq!(
            canon("w=100&h=50&dpr=1.5&fit=inside", None),
            "w=150&h=75&fit=inside&fmt=jpeg-or-png&q=80"
        );
    }

    #[test]
    fn dpr_never_exceeds_max_dimension_and_keeps_aspect() {
        let v = parse("w=4000&h=2000&dpr=4")
            .unwrap()
            .unwrap()
            .resolve(None, &cfg());
        assert_eq!((v.width, v.height), (Some(4096), Some(2048)));
    }

    #[test]
    fn negotiation() {
        assert!(accepts_webp(Some("image/webp")));
        assert!(accepts_webp(Some(
            "image/avif,image/webp,image/apng,*/*;q=0.8"
        )));
        assert!(accepts_webp(Some("IMAGE/WEBP;q=0.5")));
        assert!(!accepts_webp(Some("image/webp;q=0")));
        assert!(!accepts_webp(Some("*/*")));
        assert!(!accepts_webp(Some("image/*")));
        assert!(!accepts_webp(None));
        let v = parse("w=10").unwrap().unwrap();
        assert!(v.resolve(None, &cfg()).negotiated);
        assert!(
            !parse("w=10&fmt=jpeg")
                .unwrap()
                .unwrap()
                .resolve(None, &cfg())
                .negotiated
        );
    }

    #[test]
    fn bad_values_name_the_parameter() {
        for (q, p) in [
            ("w=0", "w"),
            ("w=4097", "w"),
            ("w=abc", "w"),
            ("w=", "w"),
            ("w=-5", "w"),
            ("w=1.5", "w"),
            ("w=99999999999999999999", "w"),
            ("h=0", "h"),
            ("fit=crop", "fit"),
            ("fmt=gif", "fmt"),
            ("q=0", "q"),
            ("q=101", "q"),
            ("dpr=0.5", "dpr"),
            ("dpr=5", "dpr"),
            ("dpr=NaN", "dpr"),
            ("dpr=inf", "dpr"),
            ("dpr=1e0", "dpr"),
            ("w=1&w=2", "w"),
        ] {
            let e = parse(q).unwrap_err();
            assert_eq!(e.param, p, "{q}");
            assert!(
                e.to_string()
                    .starts_with(&format!("invalid parameter {p}:")),
                "{e}"
            );
        }
    }

    #[test]
    fn allowed_sizes() {
        let mut c = cfg();
        c.allowed_sizes = vec![
            SizeSpec {
                width: Some(150),
                height: Some(150),
            },
            SizeSpec {
                width: Some(500),
                height: None,
            },
        ];
        let p = |q: &str| VariantRequest::parse(Some(q), &c);
        assert!(p("w=150&h=150").is_ok());
        assert!(p("w=500").is_ok());
        assert!(p("fmt=webp").is_ok());
        assert_eq!(p("w=151&h=150").unwrap_err().param, "w, h");
        assert_eq!(p("h=150").unwrap_err().param, "h");
        assert_eq!(p("w=150").unwrap_err().param, "w");
        // The size after dpr must be listed: 300x300 is not, so no dpr passes
        // but 1; with 300x300 listed, only dpr=2 (or 2.0) lands on it.
        let e = p("w=150&h=150&dpr=2").unwrap_err();
        assert_eq!(e.param, "dpr");
        assert!(e.reason.contains("300x300 (after dpr)"), "{e}");
        assert_eq!(p("w=150&h=150&dpr=1.01").unwrap_err().param, "dpr");
        assert!(p("w=150&h=150&dpr=1").is_ok());
        // 1.001 × 150 rounds to 150: the same box, the same cache entry.
        assert!(p("w=150&h=150&dpr=1.001").is_ok());
        c.allowed_sizes.push(SizeSpec {
            width: Some(300),
            height: Some(300),
        });
        let p = |q: &str| VariantRequest::parse(Some(q), &c);
        assert!(p("w=150&h=150&dpr=2").is_ok());
        assert!(p("w=150&h=150&dpr=2.0").is_ok());
        assert_eq!(p("w=150&h=150&dpr=2.5").unwrap_err().param, "dpr");
        assert_eq!(p("w=150&h=150&dpr=1.99").unwrap_err().param, "dpr");
    }

    #[test]
    fn allowed_formats_and_qualities() {
        let mut c = cfg();
        c.allowed_formats = vec!["jpeg", "png"];
        c.allowed_qualities = vec![60, 80];
        let p = |q: &str| VariantRequest::parse(Some(q), &c);
        assert!(p("w=10&fmt=jpg").is_ok());
        assert!(p("w=10&fmt=png").is_ok());
        assert_eq!(p("w=10&fmt=avif").unwrap_err().param, "fmt");
        assert_eq!(p("w=10&fmt=webp").unwrap_err().param, "fmt");
        assert!(p("w=10&q=60").is_ok());
        assert_eq!(p("w=10&q=61").unwrap_err().param, "q");
        // auto never negotiates a format that is not allowed.
        let v = p("w=10").unwrap().unwrap().resolve(Some("image/webp"), &c);
        assert_eq!(v.format, OutputFormat::JpegOrPng);
        c.allowed_formats.push("webp");
        let v = VariantRequest::parse(Some("w=10"), &c)
            .unwrap()
            .unwrap()
            .resolve(Some("image/webp"), &c);
        assert_eq!(v.format, OutputFormat::Webp);
    }

    proptest::proptest! {
        /// Any query: no panic; an accepted one resolves to a box within limits
        /// and a canonical form that parses back to the same variant.
        #[test]
        fn any_query_is_refused_or_bounded(
            query in "((w|h|q|dpr|fit|fmt|x)=(-?[0-9]{0,6}(\\.[0-9]{0,3})?|cover|inside|fill|webp|png|auto|%[0-9A-F]{2})&?){0,6}",
            accept in proptest::option::of("(image/webp|\\*/\\*|image/\\*)(;q=[01](\\.[0-9])?)?"),
        ) {
            let c = cfg();
            if let Ok(Some(req)) = VariantRequest::parse(Some(&query), &c) {
                let v = req.resolve(accept.as_deref(), &c);
                for side in [v.width, v.height].into_iter().flatten() {
                    proptest::prop_assert!((1..=c.max_dimension).contains(&side));
                }
                proptest::prop_assert!((1..=100).contains(&v.quality));
                let again = VariantRequest::parse(Some(&v.canonical()), &c);
                if let (Ok(Some(again)), false) = (again, v.format == OutputFormat::JpegOrPng) {
                    proptest::prop_assert_eq!(again.resolve(accept.as_deref(), &c).canonical(), v.canonical());
                }
            }
        }
    }

    #[test]
    fn fmt_json_asks_for_the_information_and_ignores_the_rest() {
        let ask = |q: &str| Ask::parse(Some(q), None, &cfg());
        let info = Ask::Info(InfoAt::default());
        assert_eq!(ask("fmt=json"), Ok(Some(info.clone())));
        assert_eq!(ask("w=100&fmt=JSON&q=abc"), Ok(Some(info.clone())));
        assert_eq!(info.canonical(), "fmt=json");
        assert!(!info.negotiated());
        assert_eq!(ask("v=1"), Ok(None));
        let Ok(Some(Ask::Image(v))) = ask("w=100") else {
            panic!("an image")
        };
        assert_eq!(v.canonical(), "w=100&fmt=jpeg-or-png&q=80");
        assert_eq!(ask("fmt=json&fmt=json").unwrap_err().param, "fmt");
        // Presets and allow-lists name image formats only.
        assert_eq!(parse("fmt=json").unwrap_err().param, "fmt");
    }

    #[test]
    fn t_is_milliseconds_in_the_key_and_counts_only_on_videos() {
        assert_eq!((PARAMS[FMT], PARAMS[T]), ("fmt", "t"));
        for (t, ms) in [
            ("0", 0),
            ("1.5", 1500),
            ("1.50", 1500),
            ("2.0004", 2000),
            ("86400", 86_400_000),
        ] {
            assert_eq!(parse_time(t), Ok(ms), "{t}");
        }
        for bad in [
            "",
            "-1",
            "1.",
            ".5",
            "1e3",
            "NaN",
            "86400.001",
            "123456",
            "1.0000000001",
        ] {
            assert_eq!(parse_time(bad).unwrap_err().param, "t", "{bad}");
        }
        let ask = |q: &str| Ask::parse(Some(q), None, &cfg()).unwrap().unwrap();
        let poster = ask("w=100&t=1.25");
        assert_eq!(poster.canonical(), "w=100&fmt=jpeg-or-png&q=80&t=1.25");
        assert_eq!(ask("w=100&t=0").canonical(), "w=100&fmt=jpeg-or-png&q=80");
        // On an image the time neither splits the cache nor is checked with fmt=json.
        assert_eq!(
            poster.for_video(false).unwrap().canonical(),
            "w=100&fmt=jpeg-or-png&q=80"
        );
        assert_eq!(
            ask("fmt=json&t=2").for_video(true).unwrap().canonical(),
            "fmt=json&t=2"
        );
        assert_eq!(
            ask("fmt=json&t=2").for_video(false).unwrap().canonical(),
            "fmt=json"
        );
        let bad = ask("fmt=json&t=x");
        assert_eq!(bad.for_video(true).unwrap_err().param, "t");
        assert!(bad.for_video(false).is_ok());
        assert_eq!(
            Ask::parse(Some("w=1&t=x"), None, &cfg()).unwrap_err().param,
            "t"
        );
    }

    #[test]
    fn values_are_case_insensitive_and_jpg_is_jpeg() {
        assert_eq!(
            canon("w=10&h=10&fit=INSIDE&fmt=JPG", None),
            "w=10&h=10&fit=inside&fmt=jpeg&q=80"
        );
    }

    #[test]
    fn gravity_and_focal_points_enter_the_key_only_where_there_is_a_crop() {
        assert_eq!(
            canon("w=10&h=10&g=NE", None),
            "w=10&h=10&fit=cover&fmt=jpeg-or-png&q=80&g=ne"
        );
        assert_eq!(canon("w=10&h=10&g=center", None), canon("w=10&h=10", None));
        assert_eq!(
            canon("w=10&h=10&g=auto", None),
            "w=10&h=10&fit=cover&fmt=jpeg-or-png&q=80&g=auto"
        );
        // A focal point overrides g; one coordinate alone centres the other.
        assert_eq!(
            canon("w=10&h=10&g=n&fx=0.25", None),
            "w=10&h=10&fit=cover&fmt=jpeg-or-png&q=80&fx=0.25&fy=0.5"
        );
        assert_eq!(
            canon("w=10&h=10&fx=1.0&fy=0", None),
            canon("w=10&h=10&fx=1&fy=0.0000", None)
        );
        assert_eq!(
            canon("w=10&h=10&fx=0.33333", None),
            canon("w=10&h=10&fx=0.333", None)
        );
        // No crop: where it would be taken does not matter.
        assert_eq!(canon("w=10&g=s", None), canon("w=10", None));
        assert_eq!(
            canon("w=10&h=10&fit=inside&fx=0.2", None),
            canon("w=10&h=10&fit=inside", None)
        );
        for (q, param) in [
            ("g=north", "g"),
            ("g=", "g"),
            ("fx=1.5", "fx"),
            ("fx=-0.1", "fx"),
            ("fx=.5", "fx"),
            ("fy=nan", "fy"),
            ("fy=1.", "fy"),
            ("fy=1.0001", "fy"),
            ("anim=yes", "anim"),
        ] {
            assert_eq!(parse(q).unwrap_err().param, param, "{q}");
        }
    }

    #[test]
    fn anim_false_splits_only_webp() {
        let webp = Some("image/webp");
        assert_eq!(
            canon("w=10&anim=false", webp),
            "w=10&fmt=webp&q=80&anim=false"
        );
        assert_eq!(canon("w=10&anim=true", webp), canon("w=10", webp));
        assert_eq!(
            canon("w=10&anim=0&fmt=png", None),
            canon("w=10&fmt=png", None)
        );
    }

    #[test]
    fn presets_by_name() {
        let thumb = VariantRequest::parse(Some("w=150&h=150&fmt=webp"), &cfg())
            .unwrap()
            .unwrap();
        let with = |only: bool| VariantLimits {
            presets: std::sync::Arc::new([Preset {
                name: "thumb".into(),
                request: thumb.clone(),
            }]),
            presets_only: only,
            ..cfg()
        };
        let ask = |q: &str, c: &VariantLimits| Ask::parse(Some(q), None, c);
        let c = with(false);
        assert_eq!(ask("p=thumb", &c), ask("w=150&h=150&fmt=webp", &c));
        assert_eq!(ask("p=nope", &c).unwrap_err().param, "p");
        for other in ["w=1", "fmt=png", "t=1", "g=n", "anim=false", "q=50"] {
            assert_eq!(
                ask(&format!("p=thumb&{other}"), &c).unwrap_err().param,
                "p",
                "{other}"
            );
        }
        // Only presets: everything else is refused; originals and fmt=json are not transforms.
        let c = with(true);
        assert!(ask("p=thumb", &c).is_ok());
        assert_eq!(ask("w=150&h=150&fmt=webp", &c).unwrap_err().param, "p");
        assert_eq!(ask("utm=1", &c), Ok(None));
        assert!(matches!(ask("fmt=json", &c), Ok(Some(Ask::Info(_)))));
    }
}
