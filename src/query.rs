//! Reading named parameters from a query string, shared by transform
//! parameters, signed URLs and presigned uploads: percent-decoded, every
//! other parameter ignored, a repeated one refused.

use std::borrow::Cow;

/// The percent-decoded values of the query parameters `names`, in that
/// order; every other parameter is ignored. `Err(i)` when `names[i]` is
/// given more than once (which one counts would be a guess).
pub fn named_params<'q, const N: usize>(
    query: Option<&'q str>,
    names: &[&str; N],
) -> Result<[Option<Cow<'q, str>>; N], usize> {
    let mut seen: [Option<Cow<'q, str>>; N] = std::array::from_fn(|_| None);
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let Some(i) = names.iter().position(|n| *n == name) else {
            continue;
        };
        if seen[i].replace(value).is_some() {
            return Err(i);
        }
    }
    Ok(seen)
}
