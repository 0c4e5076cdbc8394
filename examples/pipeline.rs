//! The transform pipeline in-process, for bench/peers.py: the library call
//! a request makes on a miss, without HTTP, caches or the store.
//!
//!     cargo run --release --example pipeline -- FILE W H FIT FMT Q ITERS [THREADS]
//!
//! One JSON line per iteration with the stage times in ms (one thread), or
//! one line with the throughput (several threads, each doing ITERS).
//! With `BENCH_OUT=path` the output image is written there (bench/quality.py).

use std::time::Instant;

use mediaedge::media_type::MediaType;
use mediaedge::transform::{Job, TransformSpec, process_profiled};
use mediaedge::variant::{Fit, OutputFormat};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 7 {
        eprintln!("usage: pipeline FILE W H FIT FMT Q ITERS [THREADS]");
        std::process::exit(2);
    }
    let src = std::fs::read(&args[0]).expect("read the source image");
    let media = MediaType::sniff(&src);
    let dim = |s: &str| s.parse::<u32>().ok().filter(|v| *v > 0);
    let fit = match args[3].as_str() {
        "inside" => Fit::Inside,
        "fill" => Fit::Fill,
        _ => Fit::Cover,
    };
    let format = match args[4].as_str() {
        "webp" => OutputFormat::Webp,
        "avif" => OutputFormat::Avif,
        "png" => OutputFormat::Png,
        _ => OutputFormat::Jpeg,
    };
    let spec = TransformSpec {
        max_dimension: 16383,
        max_source_pixels: 1 << 40,
        // BENCH_GRAVITY=auto: the content-aware crop (bench/peers.py's g=auto cost).
        gravity: match std::env::var("BENCH_GRAVITY").as_deref() {
            Ok("auto") => mediaedge::variant::Gravity::Auto,
            _ => mediaedge::variant::Gravity::CENTER,
        },
        ..TransformSpec::new(
            dim(&args[1]),
            dim(&args[2]),
            fit,
            format,
            args[5].parse().expect("quality"),
        )
    };
    let iters: usize = args[6].parse().expect("iterations");
    let threads: usize = args.get(7).and_then(|t| t.parse().ok()).unwrap_or(1);
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    if threads == 1 {
        for _ in 0..iters {
            let started = Instant::now();
            let (out, t) =
                process_profiled(&src, media, &spec, &Job::unbounded()).expect("transform");
            if let Some(path) = std::env::var_os("BENCH_OUT") {
                std::fs::write(path, &out.bytes).expect("write BENCH_OUT");
            }
            // BENCH_POLISHED_OUT: also the background re-encode's bytes (the
            // miss's own when no smaller one scores as well), for bench/quality.py.
            if let Some(path) = std::env::var_os("BENCH_POLISHED_OUT") {
                let polished = mediaedge::transform::polish::polish(
                    &src,
                    media,
                    &spec,
                    &out.bytes,
                    &Job::unbounded(),
                )
                .expect("re-encode")
                .map_or(out.bytes.clone(), |p| p.bytes);
                std::fs::write(path, polished).expect("write BENCH_POLISHED_OUT");
            }
            println!(
                "{{\"ms\":{:.3},\"probe\":{:.3},\"decode\":{:.3},\"resize\":{:.3},\"post\":{:.3},\"encode\":{:.3},\"bytes\":{}}}",
                ms(started.elapsed()),
                ms(t.probe),
                ms(t.decode),
                ms(t.resize),
                ms(t.post),
                ms(t.encode),
                out.bytes.len()
            );
        }
        return;
    }
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..iters {
                    process_profiled(&src, media, &spec, &Job::unbounded()).expect("transform");
                }
            });
        }
    });
    let per_s = (threads * iters) as f64 / started.elapsed().as_secs_f64();
    println!("{{\"throughput_per_s\":{per_s:.2}}}");
}
