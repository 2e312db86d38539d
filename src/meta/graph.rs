//! The real Meta client: the Graph API over reqwest (rustls), bearer token per call.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder};
use serde_json::{json, Value};

use super::usage::{APP_USAGE_HEADER, BUSINESS_USE_CASE_HEADER};
use super::{
    MetaApi, MetaError, MetaPhoneNumber, MetaUsage, PhoneNumberPage, SentMessage, TokenInfo,
};
use crate::domain::{MetaMode, MetaPhoneNumberId, WabaId};

/// The most read of one answer from Meta. A page of 100 numbers with every field is some 60 KiB;
/// anything near this is not Meta's answer, and is not read into memory whole.
pub const MAX_ANSWER_BYTES: usize = 2 * 1024 * 1024;

/// Our Meta app, for the calls made as the app (code exchange, token inspection).
#[derive(Clone)]
pub struct AppCredentials {
    pub app_id: String,
    pub app_secret: String,
}

/// Talks to `{META_GRAPH_URL}/{META_GRAPH_VERSION}`.
pub struct GraphClient {
    http: reqwest::Client,
    base: String,
    version: String,
    app: AppCredentials,
    /// The last usage Meta reported per object called (the path's first segment: a WABA, a number),
    /// until the service takes it ([`MetaApi::take_usage`]).
    usage: std::sync::Mutex<std::collections::HashMap<String, MetaUsage>>,
}

/// Reports kept for objects nobody asked about (a number's node, say) are dropped past this many.
const MAX_USAGE_REPORTS: usize = 1024;

impl GraphClient {
    /// `base_url` without the version, e.g. `https://graph.facebook.com`.
    pub fn new(
        base_url: &str,
        version: &str,
        app: AppCredentials,
        timeout: Duration,
    ) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5).min(timeout))
            .timeout(timeout)
            .user_agent(concat!("whatsapp-numbers/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(GraphClient {
            http,
            base: format!(
                "{}/{}",
                base_url.trim_end_matches('/'),
                version.trim_matches('/')
            ),
            version: version.to_owned(),
            app,
            usage: Default::default(),
        })
    }

    fn request(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.http
            .request(
                method,
                format!("{}/{}", self.base, path.trim_start_matches('/')),
            )
            .bearer_auth(token)
    }

    /// The object a Graph URL addresses: the first path segment after the version.
    fn object_of(&self, url: &reqwest::Url) -> Option<String> {
        let mut segments = url.path_segments()?.skip_while(|s| *s != self.version);
        segments.next()?;
        segments.next().filter(|s| !s.is_empty()).map(str::to_owned)
    }

    fn app_token(&self) -> String {
        format!("{}|{}", self.app.app_id, self.app.app_secret)
    }

    /// Sends the request and reads at most [`MAX_ANSWER_BYTES`] of the answer.
    async fn send(
        &self,
        request: RequestBuilder,
    ) -> Result<(reqwest::StatusCode, Option<u64>, Vec<u8>), MetaError> {
        let mut response = request
            .send()
            .await
            .map_err(|e| MetaError::Transport(describe(e)))?;
        let status = response.status();
        let usage = usage_of(response.headers());
        if let (Some(usage), Some(object)) = (usage, self.object_of(response.url())) {
            let mut reports = self.usage.lock().unwrap_or_else(|e| e.into_inner());
            if reports.len() >= MAX_USAGE_REPORTS {
                reports.clear();
            }
            reports.insert(object, usage);
        }
        let retry_after = retry_after(response.headers(), usage);
        let too_large = || {
            MetaError::Unexpected(format!(
                "HTTP {} with an answer larger than {MAX_ANSWER_BYTES} bytes",
                status.as_u16()
            ))
        };
        if response
            .content_length()
            .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| MetaError::Transport(describe(e)))?
        {
            if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok((status, retry_after, bytes))
    }

    /// A call whose answer is Meta's JSON: an error envelope is the error; a success that is not
    /// JSON (a proxy's page, say) is an error too, never a success.
    async fn call(&self, request: RequestBuilder) -> Result<Value, MetaError> {
        let (status, retry_after, bytes) = self.send(request).await?;
        let body: Value = match serde_json::from_slice(&bytes) {
            Ok(body) => body,
            Err(_) if status.is_success() => {
                return Err(MetaError::Unexpected(format!(
                    "HTTP {} with an answer that is not JSON",
                    status.as_u16()
                )))
            }
            Err(_) => {
                return Err(MetaError::Transport(format!(
                    "HTTP {} with a body that is not Meta's JSON",
                    status.as_u16()
                )))
            }
        };
        if let Some(err) = MetaError::from_envelope(status.as_u16(), &body, retry_after) {
            return Err(err);
        }
        if !status.is_success() {
            return Err(MetaError::Transport(format!(
                "HTTP {} without Meta's error envelope",
                status.as_u16()
            )));
        }
        Ok(body)
    }

    /// A call Meta answers with `{"success": true}`: anything else is not a success.
    async fn expect_success(&self, request: RequestBuilder) -> Result<(), MetaError> {
        let body = self.call(request).await?;
        match body.get("success").and_then(Value::as_bool) {
            Some(true) => Ok(()),
            Some(false) => Err(MetaError::Unexpected("Meta answered success: false".into())),
            None => Err(MetaError::Unexpected(
                "Meta's answer lacks the `success: true` it promises".into(),
            )),
        }
    }
}

/// A bare token: one word of the characters Meta's tokens are made of, nothing like a page.
fn looks_like_a_token(text: &str) -> bool {
    (16..=4096).contains(&text.len())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '|' | '_' | '-' | '.'))
}

fn describe(err: reqwest::Error) -> String {
    if err.is_timeout() {
        "timed out".into()
    } else if err.is_connect() {
        super::error::CONNECTION_FAILED.into()
    } else {
        // Without the URL: it may carry query parameters.
        err.without_url().to_string()
    }
}

/// What Meta's usage headers say, if anything.
fn usage_of(headers: &HeaderMap) -> Option<MetaUsage> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    MetaUsage::from_headers(text(BUSINESS_USE_CASE_HEADER), text(APP_USAGE_HEADER))
}

/// Seconds to wait, from `Retry-After` or the usage headers' `estimated_time_to_regain_access`.
fn retry_after(headers: &HeaderMap, usage: Option<MetaUsage>) -> Option<u64> {
    if let Some(secs) = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.trim().parse().ok())
    {
        return Some(secs);
    }
    usage?
        .regain_after_minutes
        .map(|minutes| minutes.unsigned_abs() * 60)
}

/// The `after` cursor of a page, when `paging.next` says another page follows.
fn next_cursor(body: &Value) -> Option<String> {
    let paging = body.get("paging")?;
    let next = paging
        .get("next")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())?;
    if let Some(after) = paging
        .get("cursors")
        .and_then(|c| c.get("after"))
        .and_then(Value::as_str)
    {
        return Some(after.to_owned());
    }
    // No cursors object: take `after` from the next URL itself.
    let url = url::Url::parse(next).ok()?;
    let after = url
        .query_pairs()
        .find(|(k, _)| k == "after")
        .map(|(_, v)| v.into_owned());
    after
}

#[async_trait::async_trait]
impl MetaApi for GraphClient {
    fn take_usage(&self, object: &str) -> Option<MetaUsage> {
        self.usage
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(object)
    }

    fn mode(&self) -> MetaMode {
        MetaMode::Graph
    }

    async fn list_phone_numbers(
        &self,
        token: &str,
        waba_id: &WabaId,
        after: Option<&str>,
    ) -> Result<PhoneNumberPage, MetaError> {
        let fields = super::phone_number_fields(&self.version);
        let limit = super::PHONE_NUMBERS_PAGE_SIZE.to_string();
        let mut query = vec![("fields", fields.as_str()), ("limit", limit.as_str())];
        if let Some(after) = after {
            query.push(("after", after));
        }
        let body = self
            .call(
                self.request(Method::GET, &format!("{waba_id}/phone_numbers"), token)
                    .query(&query),
            )
            .await?;
        let data = body
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| MetaError::Unexpected("phone_numbers without `data`".into()))?;
        Ok(PhoneNumberPage {
            numbers: data.iter().filter_map(MetaPhoneNumber::from_json).collect(),
            after: next_cursor(&body),
        })
    }

    async fn get_phone_number(
        &self,
        token: &str,
        meta_phone_number_id: &MetaPhoneNumberId,
    ) -> Result<MetaPhoneNumber, MetaError> {
        let fields = super::phone_number_fields(&self.version);
        let body = self
            .call(
                self.request(Method::GET, meta_phone_number_id.as_str(), token)
                    .query(&[("fields", fields)]),
            )
            .await?;
        MetaPhoneNumber::from_json(&body)
            .ok_or_else(|| MetaError::Unexpected("phone number without `id`".into()))
    }

    async fn get_waba_name(
        &self,
        token: &str,
        waba_id: &WabaId,
    ) -> Result<Option<String>, MetaError> {
        let body = self
            .call(
                self.request(Method::GET, waba_id.as_str(), token)
                    .query(&[("fields", "id,name")]),
            )
            .await?;
        Ok(body.get("name").and_then(Value::as_str).map(str::to_owned))
    }

    async fn register(
        &self,
        token: &str,
        meta_phone_number_id: &MetaPhoneNumberId,
        pin: &str,
    ) -> Result<(), MetaError> {
        let body = json!({"messaging_product": "whatsapp", "pin": pin});
        self.expect_success(
            self.request(
                Method::POST,
                &format!("{meta_phone_number_id}/register"),
                token,
            )
            .json(&body),
        )
        .await
    }

    async fn exchange_code(&self, code: &str) -> Result<String, MetaError> {
        let query = [
            ("client_id", self.app.app_id.as_str()),
            ("client_secret", &self.app.app_secret),
            ("code", code),
        ];
        let url = format!("{}/oauth/access_token", self.base);
        let (status, retry_after, bytes) = self.send(self.http.get(url).query(&query)).await?;
        let token = match serde_json::from_slice::<Value>(&bytes) {
            Ok(body) => {
                if let Some(err) = MetaError::from_envelope(status.as_u16(), &body, retry_after) {
                    return Err(err);
                }
                body.get("access_token")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            }
            // Meta's page shows the answer as the bare token; take one only if it looks like one.
            Err(_) if status.is_success() => std::str::from_utf8(&bytes)
                .ok()
                .map(str::trim)
                .filter(|t| looks_like_a_token(t))
                .map(str::to_owned),
            Err(_) => {
                return Err(MetaError::Transport(format!(
                    "HTTP {} with a body that is not Meta's JSON",
                    status.as_u16()
                )))
            }
        };
        if !status.is_success() {
            return Err(MetaError::Transport(format!(
                "HTTP {} without Meta's error envelope",
                status.as_u16()
            )));
        }
        token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| MetaError::Unexpected("no access_token in the code exchange".into()))
    }

    async fn inspect_token(&self, token: &str) -> Result<TokenInfo, MetaError> {
        let request = self
            .request(Method::GET, "debug_token", &self.app_token())
            .query(&[("input_token", token)]);
        let body = self.call(request).await?;
        let data = body.get("data").cloned().unwrap_or(Value::Null);
        let mut waba_ids: Vec<WabaId> = Vec::new();
        for wanted in [
            "whatsapp_business_management",
            "whatsapp_business_messaging",
        ] {
            for scope in data
                .get("granular_scopes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if scope.get("scope").and_then(Value::as_str) != Some(wanted) {
                    continue;
                }
                for id in scope
                    .get("target_ids")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let id = id
                        .as_str()
                        .map(WabaId::from)
                        .or_else(|| id.as_i64().map(|n| WabaId(n.to_string())));
                    if let Some(id) = id.filter(|id| !waba_ids.contains(id)) {
                        waba_ids.push(id);
                    }
                }
            }
        }
        let expires_at = data
            .get("expires_at")
            .and_then(Value::as_i64)
            .filter(|t| *t > 0);
        Ok(TokenInfo {
            waba_ids,
            expires_at,
        })
    }

    async fn subscribe_app(&self, token: &str, waba_id: &WabaId) -> Result<(), MetaError> {
        self.expect_success(self.request(
            Method::POST,
            &format!("{waba_id}/subscribed_apps"),
            token,
        ))
        .await
    }

    async fn unsubscribe_app(&self, token: &str, waba_id: &WabaId) -> Result<(), MetaError> {
        self.expect_success(self.request(
            Method::DELETE,
            &format!("{waba_id}/subscribed_apps"),
            token,
        ))
        .await
    }

    async fn send_message(
        &self,
        token: &str,
        meta_phone_number_id: &MetaPhoneNumberId,
        body: &Value,
    ) -> Result<SentMessage, MetaError> {
        let answer = self
            .call(
                self.request(
                    Method::POST,
                    &format!("{meta_phone_number_id}/messages"),
                    token,
                )
                .json(body),
            )
            .await?;
        answer
            .get("messages")
            .and_then(|m| m.get(0))
            .and_then(|m| m.get("id"))
            .and_then(Value::as_str)
            .map(|id| SentMessage {
                message_id: id.to_owned(),
            })
            .ok_or_else(|| MetaError::Unexpected("no message id in the send answer".into()))
    }

    async fn mark_read(
        &self,
        token: &str,
        meta_phone_number_id: &MetaPhoneNumberId,
        message_id: &str,
    ) -> Result<(), MetaError> {
        let body =
            json!({"messaging_product": "whatsapp", "status": "read", "message_id": message_id});
        self.expect_success(
            self.request(
                Method::POST,
                &format!("{meta_phone_number_id}/messages"),
                token,
            )
            .json(&body),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_after_cursor_comes_from_cursors_or_the_next_url_and_only_when_next_exists() {
        let body = json!({"data": [], "paging": {"cursors": {"after": "QVFI", "before": "QVFH"}, "next": "https://g/x?after=QVFI"}});
        assert_eq!(next_cursor(&body).as_deref(), Some("QVFI"));
        let last = json!({"data": [], "paging": {"cursors": {"after": "QVFI", "before": "QVFH"}}});
        assert_eq!(next_cursor(&last), None);
        let url_only =
            json!({"paging": {"next": "https://g/v25.0/1/phone_numbers?limit=25&after=Q2%3D%3D"}});
        assert_eq!(next_cursor(&url_only).as_deref(), Some("Q2=="));
    }

    #[test]
    fn retry_after_reads_the_business_use_case_header() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-business-use-case-usage",
            r#"{"123":[{"type":"whatsapp","call_count":100,"estimated_time_to_regain_access":3},{"type":"x","estimated_time_to_regain_access":1}]}"#
                .parse()
                .unwrap(),
        );
        assert_eq!(retry_after(&headers, usage_of(&headers)), Some(180));
        headers.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&headers, usage_of(&headers)), Some(7));
    }
}
