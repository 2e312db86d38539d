//! Prometheus counters: HTTP responses by status class, database statements, and calls to Meta by
//! operation and outcome (a decorator around the Meta client).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::meta::{MetaApi, MetaError, MetaPhoneNumber, PhoneNumberPage, SentMessage, TokenInfo};

/// Counters shared by the whole process.
#[derive(Default)]
pub struct Metrics {
    http: [AtomicU64; 5],
    /// Webhook jobs taken in (messages, statuses, changes), redeliveries included.
    webhook_jobs: AtomicU64,
    /// Deliveries refused for a missing or wrong signature.
    webhook_rejected: AtomicU64,
    meta_calls: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

impl Metrics {
    /// Counts one HTTP response.
    pub fn http_response(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.http[class].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts the jobs of one accepted delivery.
    pub fn webhook_received(&self, jobs: usize) {
        self.webhook_jobs
            .fetch_add(u64::try_from(jobs).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Counts one delivery refused for its signature.
    pub fn webhook_rejected(&self) {
        self.webhook_rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// The webhook queue's jobs by state, as a gauge (every state, 0 where none).
    pub fn render_jobs(counts: &[(crate::domain::JobState, i64)]) -> String {
        let mut out = String::from(
            "# HELP whatsapp_numbers_webhook_jobs Webhook jobs in the queue by state (done ones are cleared after 8 days).\n\
             # TYPE whatsapp_numbers_webhook_jobs gauge\n",
        );
        for state in crate::domain::JobState::ALL {
            let n = counts
                .iter()
                .find(|(s, _)| s == state)
                .map_or(0, |(_, n)| *n);
            let _ = writeln!(
                out,
                "whatsapp_numbers_webhook_jobs{{state=\"{state}\"}} {n}"
            );
        }
        out
    }

    fn meta_call(&self, operation: &'static str, outcome: &'static str) {
        if let Ok(mut calls) = self.meta_calls.lock() {
            *calls.entry((operation, outcome)).or_default() += 1;
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self, db_queries: u64) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP whatsapp_numbers_http_responses_total HTTP responses by status class.\n",
        );
        out.push_str("# TYPE whatsapp_numbers_http_responses_total counter\n");
        for (i, counter) in self.http.iter().enumerate() {
            let _ = writeln!(
                out,
                "whatsapp_numbers_http_responses_total{{class=\"{}xx\"}} {}",
                i + 1,
                counter.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP whatsapp_numbers_db_statements_total SQL statements run by pooled connections.\n");
        out.push_str("# TYPE whatsapp_numbers_db_statements_total counter\n");
        let _ = writeln!(out, "whatsapp_numbers_db_statements_total {db_queries}");
        out.push_str("# HELP whatsapp_numbers_webhook_jobs_total Jobs taken from Meta's webhook deliveries (redeliveries included).\n");
        out.push_str("# TYPE whatsapp_numbers_webhook_jobs_total counter\n");
        let _ = writeln!(
            out,
            "whatsapp_numbers_webhook_jobs_total {}",
            self.webhook_jobs.load(Ordering::Relaxed)
        );
        out.push_str("# HELP whatsapp_numbers_webhook_rejected_total Deliveries refused for a missing or wrong signature.\n");
        out.push_str("# TYPE whatsapp_numbers_webhook_rejected_total counter\n");
        let _ = writeln!(
            out,
            "whatsapp_numbers_webhook_rejected_total {}",
            self.webhook_rejected.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP whatsapp_numbers_meta_calls_total Calls to Meta by operation and outcome.\n",
        );
        out.push_str("# TYPE whatsapp_numbers_meta_calls_total counter\n");
        if let Ok(calls) = self.meta_calls.lock() {
            for ((operation, outcome), count) in calls.iter() {
                let _ = writeln!(
                    out,
                    "whatsapp_numbers_meta_calls_total{{operation=\"{operation}\",outcome=\"{outcome}\"}} {count}"
                );
            }
        }
        out
    }
}

/// A Meta client that counts what its inner client does.
pub struct CountingMeta {
    inner: Arc<dyn MetaApi>,
    metrics: Arc<Metrics>,
}

impl CountingMeta {
    pub fn new(inner: Arc<dyn MetaApi>, metrics: Arc<Metrics>) -> Self {
        CountingMeta { inner, metrics }
    }

    fn count<T>(
        &self,
        operation: &'static str,
        result: Result<T, MetaError>,
    ) -> Result<T, MetaError> {
        let outcome = match &result {
            Ok(_) => "ok",
            Err(err) => match err.class() {
                crate::meta::ErrorClass::Transient => "transient_error",
                crate::meta::ErrorClass::RateLimited => "rate_limited",
                crate::meta::ErrorClass::NeedsUserAction => "needs_user_action",
            },
        };
        self.metrics.meta_call(operation, outcome);
        result
    }
}

#[async_trait::async_trait]
impl MetaApi for CountingMeta {
    fn take_usage(&self, object: &str) -> Option<crate::meta::MetaUsage> {
        self.inner.take_usage(object)
    }

    fn mode(&self) -> crate::domain::MetaMode {
        self.inner.mode()
    }

    async fn list_phone_numbers(
        &self,
        token: &str,
        waba_id: &crate::domain::WabaId,
        after: Option<&str>,
    ) -> Result<PhoneNumberPage, MetaError> {
        self.count(
            "list_phone_numbers",
            self.inner.list_phone_numbers(token, waba_id, after).await,
        )
    }

    async fn get_phone_number(
        &self,
        token: &str,
        meta_phone_number_id: &crate::domain::MetaPhoneNumberId,
    ) -> Result<MetaPhoneNumber, MetaError> {
        self.count(
            "get_phone_number",
            self.inner
                .get_phone_number(token, meta_phone_number_id)
                .await,
        )
    }

    async fn get_waba_name(
        &self,
        token: &str,
        waba_id: &crate::domain::WabaId,
    ) -> Result<Option<String>, MetaError> {
        self.count("get_waba", self.inner.get_waba_name(token, waba_id).await)
    }

    async fn register(
        &self,
        token: &str,
        meta_phone_number_id: &crate::domain::MetaPhoneNumberId,
        pin: &str,
    ) -> Result<(), MetaError> {
        self.count(
            "register",
            self.inner.register(token, meta_phone_number_id, pin).await,
        )
    }

    async fn exchange_code(&self, code: &str) -> Result<String, MetaError> {
        self.count("exchange_code", self.inner.exchange_code(code).await)
    }

    async fn inspect_token(&self, token: &str) -> Result<TokenInfo, MetaError> {
        self.count("inspect_token", self.inner.inspect_token(token).await)
    }

    async fn subscribe_app(
        &self,
        token: &str,
        waba_id: &crate::domain::WabaId,
    ) -> Result<(), MetaError> {
        self.count(
            "subscribe_app",
            self.inner.subscribe_app(token, waba_id).await,
        )
    }

    async fn unsubscribe_app(
        &self,
        token: &str,
        waba_id: &crate::domain::WabaId,
    ) -> Result<(), MetaError> {
        self.count(
            "unsubscribe_app",
            self.inner.unsubscribe_app(token, waba_id).await,
        )
    }

    async fn send_message(
        &self,
        token: &str,
        meta_phone_number_id: &crate::domain::MetaPhoneNumberId,
        body: &Value,
    ) -> Result<SentMessage, MetaError> {
        self.count(
            "send_message",
            self.inner
                .send_message(token, meta_phone_number_id, body)
                .await,
        )
    }

    async fn mark_read(
        &self,
        token: &str,
        meta_phone_number_id: &crate::domain::MetaPhoneNumberId,
        message_id: &str,
    ) -> Result<(), MetaError> {
        self.count(
            "mark_read",
            self.inner
                .mark_read(token, meta_phone_number_id, message_id)
                .await,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_counts_by_class_and_outcome() {
        let metrics = Metrics::default();
        metrics.http_response(200);
        metrics.http_response(204);
        metrics.http_response(404);
        metrics.meta_call("register", "ok");
        metrics.meta_call("register", "ok");
        let text = metrics.render(7);
        assert!(
            text.contains("whatsapp_numbers_http_responses_total{class=\"2xx\"} 2"),
            "{text}"
        );
        assert!(text.contains("whatsapp_numbers_http_responses_total{class=\"4xx\"} 1"));
        assert!(text.contains("whatsapp_numbers_db_statements_total 7"));
        assert!(text.contains(
            "whatsapp_numbers_meta_calls_total{operation=\"register\",outcome=\"ok\"} 2"
        ));
    }
}
