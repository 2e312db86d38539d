//! The request id: taken from `X-Request-Id` when the caller sent a usable one, made otherwise;
//! carried by the request's log span, echoed in the response's `X-Request-Id` and in problem
//! documents, so that a user's report, a response and the log lines of one request meet.

use std::future::Future;
use std::sync::Arc;

use actix_web::http::header::HeaderMap;

/// The header.
pub const HEADER: &str = "X-Request-Id";
/// Longest id taken from a caller.
const MAX_LEN: usize = 128;

tokio::task_local! {
    static CURRENT: Arc<str>;
}

/// The caller's id when it is 1 to 128 visible ASCII characters (nothing that could break a log
/// line), else a new one.
pub fn of(headers: &HeaderMap) -> Arc<str> {
    headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| (1..=MAX_LEN).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(Arc::from)
        .unwrap_or_else(|| Arc::from(uuid::Uuid::new_v4().simple().to_string()))
}

/// Runs `work` (the request's handling) with `id` as the current request id.
pub async fn scope<F: Future>(id: Arc<str>, work: F) -> F::Output {
    CURRENT.scope(id, work).await
}

/// The id of the request being handled, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(|id| id.to_string()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static("x-request-id"),
            HeaderValue::from_str(value).unwrap(),
        );
        headers
    }

    #[test]
    fn a_usable_id_is_kept_and_anything_else_replaced() {
        assert_eq!(&*of(&with("req-42:abc")), "req-42:abc");
        for unusable in ["has space", &"x".repeat(129), ""] {
            let made = of(&with(unusable));
            assert_eq!(made.len(), 32, "{unusable:?} gave {made}");
        }
        assert_eq!(of(&HeaderMap::new()).len(), 32);
    }
}
