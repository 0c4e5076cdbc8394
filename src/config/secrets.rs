//! Secrets: never from the config file, only from `MEDIAEDGE_*` environment
//! variables or the files those name (`NAME_FILE`).

use super::ConfigError;

/// Secrets from the environment (`NAME`) or a file (`NAME_FILE`).
#[derive(Clone, Default)]
pub struct Secrets {
    pub admin_key: Option<String>,
    pub signing_secret: Option<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |s: &Option<String>| if s.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("Secrets")
            .field("admin_key", &shown(&self.admin_key))
            .field("signing_secret", &shown(&self.signing_secret))
            .finish()
    }
}

pub(super) fn read_secrets(env: &dyn Fn(&str) -> Option<String>) -> Result<Secrets, ConfigError> {
    Ok(Secrets {
        admin_key: read_secret("MEDIAEDGE_ADMIN_KEY", env)?,
        signing_secret: read_secret("MEDIAEDGE_SIGNING_SECRET", env)?,
    })
}

/// `NAME` or `NAME_FILE` (the file's content, trailing newline trimmed).
pub fn read_secret(
    name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, ConfigError> {
    let file_var = format!("{name}_FILE");
    let value = match (env(name), env(&file_var)) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::key(
                name,
                format!("set either {name} or {file_var}, not both"),
            ));
        }
        (Some(v), None) => v,
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map_err(|e| ConfigError::key(&file_var, format!("cannot read {path}: {e}")))?
            .trim_end_matches(['\n', '\r'])
            .to_owned(),
        (None, None) => return Ok(None),
    };
    if value.len() < 16 {
        return Err(ConfigError::key(name, "must be at least 16 bytes"));
    }
    Ok(Some(value))
}
