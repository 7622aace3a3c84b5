//! Which folder the config files come from, so the working directory does not decide it:
//! `--config-dir`, `SWITCHBOARD_CONFIG_DIR`, then `./config`, `config/` next to the executable,
//! `/etc/switchboard`, and in debug builds the source tree's `config/`.

use super::ConfigError;
use std::path::{Path, PathBuf};

/// The folder chosen and why, or the places looked at when none was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigDir {
    Found {
        path: PathBuf,
        /// How it was chosen, e.g. `--config-dir` or `./config`.
        how: String,
    },
    /// No folder anywhere: built-in defaults and the environment only.
    None { looked_in: Vec<PathBuf> },
}

impl ConfigDir {
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::Found { path, .. } => Some(path),
            Self::None { .. } => None,
        }
    }

    /// One line for the start-up log.
    pub fn describe(&self) -> String {
        match self {
            Self::Found { path, how } => format!("config folder {} ({how})", path.display()),
            Self::None { looked_in } => format!(
                "no config folder found (looked in {}); only the built-in defaults and the \
                 environment apply. Point --config-dir or SWITCHBOARD_CONFIG_DIR at the folder \
                 holding default.toml and <APP_ENV>.toml",
                looked_in
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// Resolves the config folder. An explicitly named folder (flag or variable) that does not exist
/// is an error; the defaults are tried in order and the first that exists wins.
pub fn resolve(
    flag: Option<&Path>,
    env_value: Option<&str>,
    cwd: Option<&Path>,
    exe: Option<&Path>,
) -> Result<ConfigDir, ConfigError> {
    let explicit = flag.map(|p| (p.to_path_buf(), "--config-dir")).or_else(|| {
        env_value
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| (PathBuf::from(v), "SWITCHBOARD_CONFIG_DIR"))
    });
    if let Some((path, how)) = explicit {
        if path.is_dir() {
            return Ok(ConfigDir::Found {
                path,
                how: how.to_owned(),
            });
        }
        return Err(ConfigError::Load(format!(
            "{how} names {}, which is not a folder",
            path.display()
        )));
    }
    let mut candidates: Vec<(PathBuf, &str)> = Vec::new();
    if let Some(cwd) = cwd {
        candidates.push((cwd.join("config"), "./config"));
    }
    if let Some(dir) = exe.and_then(Path::parent) {
        candidates.push((dir.join("config"), "next to the executable"));
    }
    candidates.push((PathBuf::from("/etc/switchboard"), "/etc/switchboard"));
    if cfg!(debug_assertions) {
        candidates.push((
            Path::new(env!("CARGO_MANIFEST_DIR")).join("config"),
            "the source tree of this debug build",
        ));
    }
    for (path, how) in &candidates {
        if path.is_dir() {
            return Ok(ConfigDir::Found {
                path: path.clone(),
                how: (*how).to_owned(),
            });
        }
    }
    Ok(ConfigDir::None {
        looked_in: candidates.into_iter().map(|(p, _)| p).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_folder_must_exist() {
        let err = resolve(Some(Path::new("/no/such/folder")), None, None, None).unwrap_err();
        assert!(err.to_string().contains("--config-dir"), "{err}");
        let err = resolve(None, Some("/no/such/folder"), None, None).unwrap_err();
        assert!(err.to_string().contains("SWITCHBOARD_CONFIG_DIR"), "{err}");
    }

    #[test]
    fn the_flag_wins_over_the_variable_and_the_working_directory() {
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        let found = resolve(
            Some(&here.join("src")),
            Some(here.to_str().unwrap()),
            Some(here),
            None,
        )
        .unwrap();
        assert_eq!(found.path(), Some(here.join("src").as_path()));
    }

    #[test]
    fn the_working_directory_comes_before_the_executable() {
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        let found = resolve(None, None, Some(here), Some(&here.join("x/switchboard"))).unwrap();
        assert_eq!(found.path(), Some(here.join("config").as_path()));
        // From src/, the executable's folder (here: the repository root) is found next.
        let found = resolve(
            None,
            Some("  "),
            Some(&here.join("src")),
            Some(&here.join("switchboard")),
        )
        .unwrap();
        assert_eq!(found.path(), Some(here.join("config").as_path()));
    }
}
