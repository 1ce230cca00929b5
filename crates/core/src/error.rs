//! Errors that keep their cause. A failure deep down (the database, a
//! cipher, a serializer) is carried as the `#[source]` of the error that
//! reports it, not flattened to text, so the one place that logs it (the
//! surface that answers `500`) can print the whole chain with [`chain`].

use std::error::Error;

/// Any error, as a cause.
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// `error` and each of its sources, outermost first, joined by `: `.
pub fn chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let more = e.to_string();
        // Many errors repeat their source in their own text already.
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] BoxError);

    #[test]
    fn the_chain_names_every_cause_once() {
        let inner: BoxError = "disk full".into();
        assert_eq!(chain(&Outer(inner)), "outer: disk full");
        let repeated: BoxError = "x".into();
        #[derive(Debug, thiserror::Error)]
        #[error("wrapped: x")]
        struct Repeats(#[source] BoxError);
        assert_eq!(chain(&Repeats(repeated)), "wrapped: x");
    }
}
