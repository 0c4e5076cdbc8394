//! The status page: one self-contained HTML document (inline CSS and SVG,
//! no scripts, no external assets) that reloads itself. Every figure
//! carries `data-metric`/`data-value` with the raw number it shows, for
//! scripts and for the browser test that compares it with `/_/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{Percentiles, Savings, Snapshot};
use crate::config::PresetConfig;
use crate::metrics::size_label;

/// Seconds between reloads.
pub const REFRESH_SECS: u32 = 10;
/// Sizes listed one by one (by original bytes); the others are summed up.
const SIZE_ROWS: usize = 12;

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f5f6f8;color:#1d2330}
header{background:#1d2330;color:#fff;padding:14px 28px;display:flex;gap:16px;align-items:baseline}
header h1{font-size:20px;margin:0}header span{color:#aab2c3;font-size:13px}
main{padding:20px 28px;max-width:1100px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:14px;margin-bottom:22px}
.card{background:#fff;border-radius:8px;padding:14px 16px;box-shadow:0 1px 2px #0001}
.card h2{font-size:12px;text-transform:uppercase;letter-spacing:.05em;color:#67708a;margin:0 0 6px}
.card .big{font-size:26px;font-weight:600}.card .sub{color:#67708a;font-size:12px}
section{background:#fff;border-radius:8px;padding:14px 16px;box-shadow:0 1px 2px #0001;margin-bottom:18px}
section h2{font-size:15px;margin:0 0 10px}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:5px 10px 5px 0;border-bottom:1px solid #eceef2}
th{font-size:12px;color:#67708a;font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#1a7f37}.bad{color:#c62828}.muted{color:#8a93a6}
";

pub fn render(s: &Snapshot, presets: &[PresetConfig], now: &str) -> String {
    let mut h = String::with_capacity(16 * 1024);
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<link rel=\"icon\" href=\"data:,\"><title>mediaedge status</title><style>{STYLE}</style></head><body>\
<header><h1>mediaedge</h1><span>status as of {}</span><span>reloads every {REFRESH_SECS} s</span></header><main>",
        esc(now)
    );
    cards(&mut h, s);
    savings_table(&mut h, s, presets);
    latency_table(&mut h, s);
    errors_table(&mut h, s);
    store_and_caches(&mut h, s);
    h.push_str("</main></body></html>");
    h
}

fn cards(h: &mut String, s: &Snapshot) {
    h.push_str("<div class=\"cards\">");
    let ratio = s.hit_ratio();
    card(
        h,
        "Cache hit ratio",
        &figure(
            "hit_ratio",
            ratio.unwrap_or(0.0),
            &ratio.map_or("–".into(), pct),
        ),
        &format!(
            "{} hits, {} misses {}",
            figure("hits", s.hits(), &count(s.hits())),
            figure("misses", s.misses, &count(s.misses)),
            bar(ratio.unwrap_or(0.0), "#1a7f37")
        ),
    );
    card(
        h,
        "Requests",
        &figure("requests", s.requests(), &count(s.requests())),
        &format!(
            "{} for media",
            figure("media_requests", s.media_requests, &count(s.media_requests))
        ),
    );
    let t = s.total_savings();
    card(
        h,
        "Derivatives vs originals",
        &figure("saved_ratio", saved(&t), &saved_text(&t)),
        &format!(
            "{} → {} in {} responses",
            figure("original_bytes", t.original, &bytes(t.original)),
            figure("sent_bytes", t.sent, &bytes(t.sent)),
            figure("derivatives_sent", t.responses, &count(t.responses)),
        ),
    );
    let failed: f64 = s
        .transforms
        .iter()
        .filter(|(k, _)| *k != "ok")
        .map(|(_, v)| v)
        .sum();
    card(
        h,
        "Transforms in flight",
        &figure(
            "transforms_in_flight",
            s.transforms_in_flight,
            &count(s.transforms_in_flight),
        ),
        &format!(
            "{} done, {} not",
            figure(
                "transforms_ok",
                s.transforms.get("ok").copied().unwrap_or(0.0),
                &count(s.transforms.get("ok").copied().unwrap_or(0.0)),
            ),
            figure("transforms_failed", failed, &count(failed)),
        ),
    );
    let store_errors = s.store_errors;
    let (class, word) = if store_errors == 0.0 {
        ("ok", "healthy")
    } else {
        ("bad", "errors")
    };
    card(
        h,
        "Store",
        &format!("<span class=\"{class}\">{word}</span>"),
        &format!(
            "{} failed requests, {} answers served stale",
            figure("store_errors", store_errors, &count(store_errors)),
            figure("stale_served", s.stale_served, &count(s.stale_served)),
        ),
    );
    h.push_str("</div>");
}

fn card(h: &mut String, title: &str, big: &str, sub: &str) {
    let _ = write!(
        h,
        "<div class=\"card\"><h2>{title}</h2><div class=\"big\">{big}</div><div class=\"sub\">{sub}</div></div>"
    );
}

fn savings_table(h: &mut String, s: &Snapshot, presets: &[PresetConfig]) {
    let mut names: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for p in presets {
        for v in &p.variants {
            let list = names.entry(size_label(v.width, v.height)).or_default();
            if !list.contains(&p.name.as_str()) {
                list.push(&p.name);
            }
        }
    }
    h.push_str(
        "<section><h2>Bytes sent vs the originals they replace, per requested size</h2><table>\
<tr><th>size</th><th>preset</th><th class=\"n\">responses</th><th class=\"n\">originals</th>\
<th class=\"n\">sent</th><th class=\"n\">saved</th><th></th></tr>",
    );
    if s.savings.is_empty() {
        h.push_str("<tr><td colspan=\"7\" class=\"muted\">no derivative sent yet</td></tr>");
    }
    // The sizes that carry the most bytes; the rest in one line.
    let (shown, rest) = s.savings.split_at(s.savings.len().min(SIZE_ROWS));
    for row in shown {
        let size = esc(&row.size);
        let preset = names
            .get(&row.size)
            .map_or(String::new(), |n| esc(&n.join(", ")));
        let key = |what: &str| format!("{what}:{}", row.size);
        let _ = write!(
            h,
            "<tr><td>{size}</td><td>{preset}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
<td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            figure(&key("responses"), row.responses, &count(row.responses)),
            figure(&key("original"), row.original, &bytes(row.original)),
            figure(&key("sent"), row.sent, &bytes(row.sent)),
            figure(&key("saved"), saved(row), &saved_text(row)),
            bar(
                if row.original > 0.0 {
                    row.sent / row.original
                } else {
                    0.0
                },
                "#3b6fd8"
            ),
        );
    }
    if !rest.is_empty() {
        let responses: f64 = rest.iter().map(|r| r.responses).sum();
        let _ = write!(
            h,
            "<tr><td colspan=\"7\" class=\"muted\">and {} more sizes, {} responses</td></tr>",
            rest.len(),
            count(responses)
        );
    }
    h.push_str("</table></section>");
}

fn latency_table(h: &mut String, s: &Snapshot) {
    h.push_str(
        "<section><h2>Latency (bucket upper bounds)</h2><table>\
<tr><th>requests</th><th class=\"n\">count</th><th class=\"n\">p50</th><th class=\"n\">p90</th><th class=\"n\">p99</th></tr>",
    );
    let mut row = |name: &str, key: &str, p: &Percentiles| {
        let _ = write!(
            h,
            "<tr><td>{name}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            figure(&format!("{key}:count"), p.count, &count(p.count)),
            figure(&format!("{key}:p50"), p.p50, &seconds(p.p50)),
            figure(&format!("{key}:p90"), p.p90, &seconds(p.p90)),
            figure(&format!("{key}:p99"), p.p99, &seconds(p.p99)),
        );
    };
    for (cache, label) in [
        ("HIT", "cache hits"),
        ("MISS", "cache misses"),
        ("STALE", "served stale"),
    ] {
        if let Some(p) = s.latency.get(cache) {
            row(label, &format!("latency:{cache}"), p);
        }
    }
    row(
        "transforms (queue wait included)",
        "latency:transform",
        &s.transform_latency,
    );
    h.push_str("</table></section>");
}

fn errors_table(h: &mut String, s: &Snapshot) {
    count_table(
        h,
        "Errors by kind",
        "kind",
        ("ok", "none"),
        "error",
        &s.errors,
    );
}

fn store_and_caches(h: &mut String, s: &Snapshot) {
    count_table(
        h,
        "Store requests",
        "operation and result",
        ("muted", "none yet"),
        "store",
        &s.store,
    );
    h.push_str("<section><h2>Caches</h2><table><tr><th>tier</th><th class=\"n\">held</th><th class=\"n\">entries</th></tr>");
    for (tier, (b, n)) in &s.cache_sizes {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(tier),
            figure(&format!("cache_bytes:{tier}"), *b, &bytes(*b)),
            figure(&format!("cache_entries:{tier}"), *n, &count(*n)),
        );
    }
    let tiers = s
        .hits_by_tier
        .iter()
        .map(|(tier, n)| {
            format!(
                "{} {}",
                esc(tier),
                figure(&format!("hits:{tier}"), *n, &count(*n))
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let _ = write!(
        h,
        "</table><p class=\"muted\">hits by tier: {}</p>",
        if tiers.is_empty() {
            "none yet".into()
        } else {
            tiers
        }
    );
    h.push_str("</section>");
}

/// A section with one table of counts by name; each figure's metric key is
/// `prefix:name`.
fn count_table(
    h: &mut String,
    title: &str,
    column: &str,
    (empty_class, empty_text): (&str, &str),
    prefix: &str,
    rows: &BTreeMap<String, f64>,
) {
    let _ = write!(
        h,
        "<section><h2>{title}</h2><table><tr><th>{column}</th><th class=\"n\">count</th></tr>"
    );
    if rows.is_empty() {
        let _ = write!(
            h,
            "<tr><td colspan=\"2\" class=\"{empty_class}\">{empty_text}</td></tr>"
        );
    }
    for (name, n) in rows {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td></tr>",
            esc(name),
            figure(&format!("{prefix}:{name}"), *n, &count(*n))
        );
    }
    h.push_str("</table></section>");
}

/// A shown figure with its raw value attached.
fn figure(metric: &str, value: f64, text: &str) -> String {
    let value = value + 0.0; // no "-0"
    format!(
        "<span data-metric=\"{}\" data-value=\"{value}\">{}</span>",
        esc(metric),
        esc(text)
    )
}

/// A 160×8 bar filled to `fraction`.
fn bar(fraction: f64, colour: &str) -> String {
    let w = (fraction.clamp(0.0, 1.0) * 160.0).round();
    format!(
        "<svg width=\"160\" height=\"8\" viewBox=\"0 0 160 8\" role=\"img\" aria-hidden=\"true\">\
<rect width=\"160\" height=\"8\" rx=\"4\" fill=\"#e3e6ec\"/><rect width=\"{w}\" height=\"8\" rx=\"4\" fill=\"{colour}\"/></svg>"
    )
}

fn saved(s: &Savings) -> f64 {
    if s.original > 0.0 {
        1.0 - s.sent / s.original
    } else {
        0.0
    }
}

/// `99 % saved`, rounded down (a 99.6 % saving is not "100 %").
fn saved_text(s: &Savings) -> String {
    if s.original <= 0.0 {
        return "–".into();
    }
    format!("{} % saved", (saved(s) * 100.0).floor())
}

fn pct(f: f64) -> String {
    format!("{:.1} %", f * 100.0)
}

fn count(v: f64) -> String {
    format!("{:.0}", v + 0.0) // an empty f64 sum is -0.0
}

/// Decimal units, as `1.8 MB → 15.8 KB`.
pub fn bytes(v: f64) -> String {
    match v {
        v if v < 1e3 => format!("{v:.0} B"),
        v if v < 1e6 => format!("{:.1} KB", v / 1e3),
        v if v < 1e9 => format!("{:.1} MB", v / 1e6),
        v => format!("{:.2} GB", v / 1e9),
    }
}

/// A bucket bound: `≤ 50 µs`, `≤ 2.5 ms`, `≤ 1 s`; past the last bucket `> 30 s`.
fn seconds(v: f64) -> String {
    match v {
        0.0 => "–".into(),
        v if v.is_infinite() => "> 30 s".into(),
        v if v < 1e-3 => format!("≤ {} µs", trim(v * 1e6)),
        v if v < 1.0 => format!("≤ {} ms", trim(v * 1e3)),
        v => format!("≤ {} s", trim(v)),
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(bytes(1_800_000.0), "1.8 MB");
        assert_eq!(bytes(15_800.0), "15.8 KB");
        assert_eq!(bytes(12.0), "12 B");
        assert_eq!(seconds(0.00005), "≤ 50 µs");
        assert_eq!(seconds(0.0025), "≤ 2.5 ms");
        assert_eq!(seconds(f64::INFINITY), "> 30 s");
        let s = Savings {
            size: "150x150".into(),
            responses: 1.0,
            sent: 15_800.0,
            original: 1_800_000.0,
        };
        assert_eq!(saved_text(&s), "99 % saved");
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn lists_the_biggest_sizes_and_sums_the_rest() {
        let mut s = Snapshot::default();
        for i in 0..20 {
            s.savings.push(Savings {
                size: format!("{}x", 100 + i),
                responses: 2.0,
                sent: 10.0,
                original: 1000.0,
            });
        }
        let html = render(&s, &[], "now");
        assert_eq!(html.matches("data-metric=\"sent:").count(), SIZE_ROWS);
        assert!(html.contains("and 8 more sizes, 16 responses"), "{html}");
    }

    #[test]
    fn renders_the_seed_example() {
        let mut s = Snapshot::default();
        s.savings.push(Savings {
            size: "150x150".into(),
            responses: 1.0,
            sent: 15_800.0,
            original: 1_800_000.0,
        });
        let html = render(&s, &[], "now");
        assert!(html.contains(">1.8 MB</span> → <span"), "{html}");
        assert!(html.contains(">15.8 KB</span>"));
        assert!(html.contains(">99 % saved</span>"));
        assert!(html.contains("http-equiv=\"refresh\""));
        assert!(!html.contains("<script"));
        assert!(!html.contains("http://") && !html.contains("https://"));
    }
}
