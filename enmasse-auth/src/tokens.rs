//! Service-account tokens: a client logs in as `@@serviceaccount@@` with its pod's token as the
//! password, and a reviewer says which service account the token belongs to.
//!
//! In a cluster the reviewer asks Kubernetes (TokenReview); on one machine, a token file maps
//! tokens to service accounts.

use std::{future::Future, path::PathBuf, pin::Pin};

/// Why a token could not be reviewed (not: why it was refused).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to review a service-account token: {0}")]
pub struct ReviewError(pub String);

/// The future of one review: the username of the token's service account
/// (`system:serviceaccount:<namespace>:<name>`), or `None` for a token that is not valid.
pub type Review<'a> = Pin<Box<dyn Future<Output = Result<Option<String>, ReviewError>> + Send + 'a>>;

/// Says whose a token is.
pub trait TokenReviewer: Send + Sync + std::fmt::Debug {
    /// Reviews one token.
    fn review<'a>(&'a self, token: &'a str) -> Review<'a>;
}

/// Tokens listed in a file, one per line: the token, white space, and the service account as
/// `system:serviceaccount:<namespace>:<name>`. Lines starting with `#` are comments. The file is
/// read at every review, so edits apply at once.
#[derive(Debug, Clone)]
pub struct TokenFile {
    path: PathBuf,
}

impl TokenFile {
    /// Reviews tokens against the file at `path`.
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }
}

impl TokenReviewer for TokenFile {
    fn review<'a>(&'a self, token: &'a str) -> Review<'a> {
        Box::pin(async move {
            let text = tokio_free_read(&self.path)
                .map_err(|e| ReviewError(format!("failed to read {}: {e}", self.path.display())))?;
            Ok(lookup(&text, token))
        })
    }
}

/// Reads the (small) token file; a blocking read of a few bytes is cheaper than a thread hop.
fn tokio_free_read(path: &std::path::Path) -> std::io::Result<String> {
    std::fs::read_to_string(path)
}

/// The service account a token file gives `token`.
fn lookup(text: &str, token: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once(char::is_whitespace))
        .find(|(candidate, _)| crate::scram::equal_in_constant_time(candidate.as_bytes(), token.as_bytes()))
        .map(|(_, account)| account.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# token                 service account
abc123 system:serviceaccount:team1:default

def456\tsystem:serviceaccount:team2:worker
";

    #[test]
    fn a_listed_token_names_its_service_account() {
        assert_eq!(
            lookup(FILE, "abc123").as_deref(),
            Some("system:serviceaccount:team1:default")
        );
        assert_eq!(
            lookup(FILE, "def456").as_deref(),
            Some("system:serviceaccount:team2:worker")
        );
    }

    #[test]
    fn an_unlisted_token_names_nobody() {
        assert_eq!(lookup(FILE, "abc12"), None);
        assert_eq!(lookup(FILE, ""), None);
        assert_eq!(lookup(FILE, "#"), None);
    }
}
