//! The `mediaedge` command: `serve`, and the helpers `keygen`, `token` and
//! `sign` (logic in `mediaedge::cli`; here only arguments and files).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use jsonwebtoken::Algorithm;
use mediaedge::cli::{self, KeyKind, TokenSpec};
use mediaedge::config::{Config, Overrides, RawConfig, read_secret};
use mediaedge::telemetry::{self, LogFormat};
use mediaedge::upload::{self, PresignRequest};
use mediaedge::{metrics, server};

/// jemalloc for small blocks, glibc for large ones (`mediaedge::allocator`
/// says why), unless a feature picks one allocator for everything
/// (`bench/allocators.py` compares them; without default features it is
/// glibc alone, tuned by `mediaedge::allocator::tune_glibc`).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
#[cfg(all(feature = "mimalloc", not(feature = "jemalloc")))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
#[cfg(all(
    feature = "split-allocator",
    not(feature = "jemalloc"),
    not(feature = "mimalloc")
))]
#[global_allocator]
static ALLOCATOR: mediaedge::allocator::SplitAllocator = mediaedge::allocator::SplitAllocator;

/// jemalloc's options for the small blocks, read when it starts (the
/// environment's `_RJEM_MALLOC_CONF` still wins): two arenas instead of
/// four per core, and freed pages returned after a second instead of ten.
/// `bench/soak.py`: RSS +0.1 % after warm-up with them, +11.4 % without
/// (docs/BENCHMARKS.md, issue 15); hits per second the same.
#[cfg(all(
    feature = "split-allocator",
    not(feature = "jemalloc"),
    not(feature = "mimalloc")
))]
#[used]
#[unsafe(export_name = "_rjem_malloc_conf")]
static JEMALLOC_CONF: mediaedge::allocator::Options =
    mediaedge::allocator::Options::new(c"narenas:2,dirty_decay_ms:1000,muzzy_decay_ms:0");

#[derive(Parser)]
#[command(
    name = "mediaedge",
    version,
    about = "Private media store, edge cache and image resizer in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve media. Without --config: ./data on 127.0.0.1:8080, memory cache.
    Serve {
        /// TOML config file (see config.example.toml).
        #[arg(long, env = "MEDIAEDGE_CONFIG")]
        config: Option<PathBuf>,
        /// Listen address, overrides server.listen.
        #[arg(long)]
        listen: Option<String>,
        /// Local data directory, overrides storage.path (and sets storage.kind = "local").
        #[arg(long)]
        data: Option<PathBuf>,
        /// Log line format.
        #[arg(long, value_enum, default_value = "text")]
        log_format: LogFormat,
    },
    /// Write a key pair for JWT routes: private.pem (keep it) and public.pem (for [jwt]).
    Keygen {
        /// Key type.
        #[arg(long, value_enum, default_value = "rsa")]
        kind: KeyKind,
        /// Directory to write private.pem and public.pem into.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Print a JWT signed with a private key, for tests and curl.
    Token {
        /// PEM private key (as `mediaedge keygen` or `openssl genpkey` writes it).
        #[arg(long)]
        key: PathBuf,
        /// The `sub` claim (the user).
        #[arg(long)]
        sub: String,
        /// Lifetime, e.g. 3600, 90s, 15m, 1h, 7d.
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        ttl: Duration,
        /// Algorithm; by default RS256, ES256 or EdDSA from the key type.
        #[arg(long, value_parser = parse_algorithm)]
        alg: Option<Algorithm>,
        /// The `iss` claim.
        #[arg(long)]
        iss: Option<String>,
        /// The `aud` claim.
        #[arg(long)]
        aud: Option<String>,
        /// The header's `kid` (for JWKS key sets).
        #[arg(long)]
        kid: Option<String>,
        /// Extra claim `name=value` (value parsed as JSON, else a string); repeatable.
        #[arg(long = "claim")]
        claims: Vec<String>,
    },
    /// Print a presigned upload URL as JSON, offline (secret: MEDIAEDGE_SIGNING_SECRET).
    Presign {
        /// The key to upload to; default: an unguessable one with the type's extension.
        #[arg(long)]
        key: Option<String>,
        /// image/jpeg, video/mp4, image/*... (binds the class: image or video).
        #[arg(long)]
        content_type: Option<String>,
        /// Largest body accepted (at most upload.max_bytes of the config).
        #[arg(long)]
        max_bytes: Option<u64>,
        /// Lifetime, e.g. 900, 15m, 1h.
        #[arg(long, value_parser = parse_duration)]
        expires: Option<Duration>,
        /// Base URL printed before the path.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        base_url: String,
        /// The URL may publish any number of times until it expires (default: once).
        #[arg(long)]
        reusable: bool,
        /// Publish only if the key does not exist yet.
        #[arg(long)]
        if_absent: bool,
        /// Config file, for upload.max_bytes and upload.expiry_secs.
        #[arg(long, env = "MEDIAEDGE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Print a signed URL (scheme v2) for a `signed` route (secret: MEDIAEDGE_SIGNING_SECRET).
    Sign {
        /// The path, e.g. /signed/cat.jpg (transform parameters may follow as ?w=150&h=150).
        path: String,
        /// Seconds (or 15m, 1h, 7d) until the URL expires.
        #[arg(long, default_value = "3600", value_parser = parse_duration)]
        exp: Duration,
        /// Base URL printed before the path.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        base_url: String,
        #[arg(long)]
        w: Option<String>,
        #[arg(long)]
        h: Option<String>,
        #[arg(long)]
        fit: Option<String>,
        #[arg(long)]
        fmt: Option<String>,
        #[arg(long)]
        q: Option<String>,
        #[arg(long)]
        dpr: Option<String>,
        /// Where a cover crop is taken: center, n, s, e, w, ne, nw, se, sw or auto.
        #[arg(long)]
        g: Option<String>,
        /// Focal point, 0..1 from the left edge (a cover crop centres on it).
        #[arg(long)]
        fx: Option<String>,
        /// Focal point, 0..1 from the top edge.
        #[arg(long)]
        fy: Option<String>,
        /// false: the first frame of an animated GIF/WebP only.
        #[arg(long)]
        anim: Option<String>,
        /// On a video: the frame's time in seconds (e.g. 1.5).
        #[arg(long)]
        t: Option<String>,
        /// A preset's name ([[preset]]); no other transform flag beside it.
        #[arg(long)]
        p: Option<String>,
    },
    /// Ask a running server whether it is up (GET /_/health) or, with
    /// --ready, whether its storage answers too (GET /_/ready): exit 0 on a
    /// 200, 1 otherwise — for container and systemd health checks.
    ///
    /// Example: mediaedge health --ready --url http://127.0.0.1:8080
    Health {
        /// Ask /_/ready (storage answers) instead of /_/health (process runs).
        #[arg(long)]
        ready: bool,
        /// The server's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Seconds to wait for the answer.
        #[arg(long, default_value = "5", value_parser = parse_duration)]
        timeout: Duration,
    },
}

fn main() -> ExitCode {
    mediaedge::allocator::tune_glibc();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            config,
            listen,
            data,
            log_format,
        } => serve(config, Overrides { listen, data }, log_format),
        Command::Keygen { kind, out, force } => keygen(kind, &out, force),
        Command::Health {
            ready,
            url,
            timeout,
        } => match cli::health(&url, ready, timeout) {
            Ok(answer) => {
                println!("{answer}");
                ExitCode::SUCCESS
            }
            Err(why) => {
                eprintln!("mediaedge: {why}");
                ExitCode::from(1)
            }
        },
        Command::Token {
            key,
            sub,
            ttl,
            alg,
            iss,
            aud,
            kid,
            claims,
        } => {
            let pem = match std::fs::read(&key) {
                Ok(p) => p,
                Err(e) => return fail(&format!("cannot read {}: {e}", key.display())),
            };
            let spec = TokenSpec {
                private_pem: &pem,
                alg,
                sub: &sub,
                ttl,
                issuer: iss.as_deref(),
                audience: aud.as_deref(),
                kid: kid.as_deref(),
                claims: &claims,
            };
            print_or_fail(cli::mint_token(&spec))
        }
        Command::Presign {
            key,
            content_type,
            max_bytes,
            expires,
            base_url,
            reusable,
            if_absent,
            config,
        } => {
            let raw = match config.as_deref().map(RawConfig::from_file).transpose() {
                Ok(raw) => raw.unwrap_or_default(),
                Err(e) => return fail(&e),
            };
            let env = |n: &str| std::env::var(n).ok();
            let config = match raw.validate(&Overrides::default(), &env) {
                Ok(c) => c,
                Err(e) => return fail(&format!("invalid config: {e}")),
            };
            let Some(secret) = config.secrets.signing_secret.as_deref() else {
                return fail(
                    &"MEDIAEDGE_SIGNING_SECRET (or MEDIAEDGE_SIGNING_SECRET_FILE) is not set",
                );
            };
            let req = PresignRequest {
                key,
                content_type,
                max_bytes,
                expires_in: expires.map(|d| d.as_secs()),
                reusable: Some(reusable),
                if_absent: Some(if_absent),
            };
            let signer = mediaedge::auth::signed::UrlSigner::new(secret);
            let now = mediaedge::auth::unix_now();
            match upload::presign(&signer, &config.upload, req, &base_url, now) {
                Ok(p) => print_or_fail(serde_json::to_string(&p).map_err(|e| e.to_string())),
                Err(e) => fail(&e),
            }
        }
        Command::Sign {
            path,
            exp,
            base_url,
            w,
            h,
            fit,
            fmt,
            q,
            dpr,
            g,
            fx,
            fy,
            anim,
            t,
            p,
        } => {
            let secret = match read_secret("MEDIAEDGE_SIGNING_SECRET", &|n| std::env::var(n).ok()) {
                Ok(Some(s)) => s,
                Ok(None) => {
                    return fail(
                        &"MEDIAEDGE_SIGNING_SECRET (or MEDIAEDGE_SIGNING_SECRET_FILE) is not set",
                    );
                }
                Err(e) => return fail(&e),
            };
            let params = [
                ("w", w),
                ("h", h),
                ("fit", fit),
                ("fmt", fmt),
                ("q", q),
                ("dpr", dpr),
                ("g", g),
                ("fx", fx),
                ("fy", fy),
                ("anim", anim),
                ("t", t),
                ("p", p),
            ];
            print_or_fail(cli::sign_url(&secret, &base_url, &path, &params, exp))
        }
    }
}

fn keygen(kind: KeyKind, out: &Path, force: bool) -> ExitCode {
    let pair = match cli::keygen(kind) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let private = out.join("private.pem");
    let public = out.join("public.pem");
    for path in [&private, &public] {
        if path.exists() && !force {
            return fail(&format!(
                "{} exists (use --force to overwrite)",
                path.display()
            ));
        }
    }
    let write = |path: &Path, text: &str, mode: u32| -> std::io::Result<()> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(path)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()
    };
    if let Err(e) = write(&private, &pair.private_pem, 0o600) {
        return fail(&format!("cannot write {}: {e}", private.display()));
    }
    if let Err(e) = write(&public, &pair.public_pem, 0o644) {
        return fail(&format!("cannot write {}: {e}", public.display()));
    }
    println!(
        "wrote {} (keep it secret) and {} (for [jwt] public_key_file)",
        private.display(),
        public.display()
    );
    ExitCode::SUCCESS
}

fn print_or_fail(result: Result<String, String>) -> ExitCode {
    match result {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    match s.parse::<u64>() {
        Ok(secs) => Ok(Duration::from_secs(secs)),
        Err(_) => humantime::parse_duration(s).map_err(|e| e.to_string()),
    }
}

fn parse_algorithm(s: &str) -> Result<Algorithm, String> {
    s.parse().map_err(|_| format!("unknown algorithm {s}"))
}

fn serve(config_file: Option<PathBuf>, overrides: Overrides, log_format: LogFormat) -> ExitCode {
    let raw = match config_file.as_deref().map(RawConfig::from_file).transpose() {
        Ok(raw) => raw.unwrap_or_default(),
        Err(e) => return fail(&e),
    };
    let config: Config = match raw.validate(&overrides, &|name| std::env::var(name).ok()) {
        Ok(c) => c,
        Err(e) => return fail(&format!("invalid config: {e}")),
    };
    telemetry::init(log_format);
    let metrics = match metrics::install() {
        Ok(h) => Some(h),
        Err(e) => return fail(&format!("metrics: {e}")),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("runtime: {e}")),
    };
    let result = runtime.block_on(async move {
        let state = server::build_state(config, metrics).await?;
        server::run(state).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("server: {e}")),
    }
}

fn fail(msg: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("mediaedge: {msg}");
    ExitCode::from(2)
}
