//! Token parsing on the access check, as a request reaches it: a JWT from
//! `Authorization` or the cookie (on `/private/` and claim-scoped
//! `/users/{sub}/` routes), a signed URL's `v`/`exp`/`sig` (v2, and v1 in
//! its default window, on `/signed/`), and a presigned upload's terms.
//! Nothing panics; nothing without a valid signature is let through (the
//! fuzzer cannot forge RS256 or HMAC-SHA256, so any `Ok` on a protected
//! route is a finding, except the seed tokens' own verified ones, which
//! reach the claim checks).
#![no_main]

#[path = "request.rs"]
mod request;

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use mediaedge::auth::Access;
use mediaedge::auth::signed::UrlSigner;
use mediaedge::config::{Overrides, RawConfig};
use mediaedge::key::ObjectKey;
use mediaedge::upload::Grant;

/// The public half of the key the seed tokens were signed with.
const PUBLIC_KEY: &str = include_str!("token_key.pem");
const SECRET: &str = "fuzzing-secret-0123456789abcdef";

struct World {
    rt: tokio::runtime::Runtime,
    access: Access,
    signer: UrlSigner,
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("mediaedge-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let pem = dir.join("public.pem");
    std::fs::write(&pem, PUBLIC_KEY).expect("write key");
    let toml = format!(
        r#"
[jwt]
public_key_file = "{}"
algorithms = ["RS256", "PS256", "ES256", "EdDSA"]
issuer = "https://idp.example.com/"
audience = "mediaedge"
cookie = "mediaedge_token"

[[route]]
prefix = "/users/{{sub}}/"
access = "jwt"

[[route]]
prefix = "/private/"
access = "jwt"

[[route]]
prefix = "/signed/"
access = "signed"
"#,
        pem.display()
    );
    let env = |name: &str| (name == "MEDIAEDGE_SIGNING_SECRET").then(|| SECRET.to_owned());
    let config = RawConfig::from_toml(&toml)
        .and_then(|raw| raw.validate(&Overrides::default(), &env))
        .expect("fuzz config is valid");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let access = rt.block_on(Access::new(&config)).expect("keys load");
    World {
        rt,
        access,
        signer: UrlSigner::new(SECRET),
    }
});

fuzz_target!(|data: &[u8]| {
    let Some((target, headers)) = request::parse(data) else {
        return;
    };
    let world = &*WORLD;
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let Ok(key) = ObjectKey::from_request_path(path) else {
        return;
    };
    let route = world.access.route(&key);
    let checked = world
        .rt
        .block_on(world.access.check(route, &key, query, &headers));
    if checked.is_ok() && key.as_str().to_lowercase().starts_with("signed/") {
        panic!("a signed route let {target:?} through without a valid signature");
    }
    let _ = Grant::verify(key, query, &world.signer, 1_800_000_000);
});
