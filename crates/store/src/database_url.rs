//! Which database to use, parsed from `sqlite://PATH` or `postgres://…`.

use std::path::PathBuf;

/// How SQLite makes commits durable. `Full` (the default) survives power
/// loss in WAL mode; `Normal` may lose the last commits on power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SqliteSync {
    #[default]
    Full,
    Normal,
}

impl SqliteSync {
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "full" => Some(Self::Full),
            "normal" => Some(Self::Normal),
            _ => None,
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite { path: PathBuf, sync: SqliteSync },
    Postgres(String),
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl DatabaseUrl {
    /// Reads `sqlite://PATH` (also `sqlite:PATH`) or `postgres://…`
    /// (also `postgresql://…`).
    pub fn parse(text: &str, sync: SqliteSync) -> Result<Self, String> {
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("sqlite://").or_else(|| text.strip_prefix("sqlite:")) {
            let path = rest.split('?').next().unwrap_or_default();
            if path.is_empty() {
                return Err("sqlite URL needs a file path, e.g. sqlite://vouchsafe.db".into());
            }
            return Ok(Self::Sqlite { path: PathBuf::from(path), sync });
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(Self::Postgres(text.to_owned()));
        }
        Err("database URL must start with sqlite:// or postgres://".into())
    }

    /// The URL with any password replaced, safe to log.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite { path, .. } => format!("sqlite://{}", path.display()),
            Self::Postgres(url) => match (url.find("://"), url.rfind('@')) {
                (Some(scheme_end), Some(at)) if at > scheme_end => {
                    let userinfo = &url[scheme_end + 3..at];
                    let user = userinfo.split(':').next().unwrap_or_default();
                    format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..])
                }
                _ => url.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_engines() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/v.db", SqliteSync::Full).unwrap(),
            DatabaseUrl::Sqlite { path: "data/v.db".into(), sync: SqliteSync::Full }
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:/tmp/v.db?mode=rwc", SqliteSync::Normal).unwrap(),
            DatabaseUrl::Sqlite { path: "/tmp/v.db".into(), sync: SqliteSync::Normal }
        );
        assert!(matches!(DatabaseUrl::parse("postgresql://u@h/db", SqliteSync::Full), Ok(DatabaseUrl::Postgres(_))));
        assert!(DatabaseUrl::parse("mysql://h/db", SqliteSync::Full).is_err());
        assert!(DatabaseUrl::parse("sqlite://", SqliteSync::Full).is_err());
    }

    #[test]
    fn passwords_never_reach_logs() {
        let url = DatabaseUrl::parse("postgres://app:s3cret@db:5432/v", SqliteSync::Full).unwrap();
        assert_eq!(url.redacted(), "postgres://app:***@db:5432/v");
        assert!(!format!("{url:?}").contains("s3cret"));
    }
}
