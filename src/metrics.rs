//! The service's metrics, through `prometheus-client` (OpenMetrics text at `/metrics`):
//!
//! - HTTP requests by method, route template and status, with latency histograms by route;
//! - SQL statements run;
//! - webhook deliveries: accepted, refused (signature), jobs new and duplicate (redeliveries);
//! - the job queue by state, and the age of the oldest queued job (read at scrape time);
//! - inbound-to-reply latency by responder kind, and where it went (waiting, the agent, Meta);
//! - calls to Meta by operation, outcome and Meta's error code, with latency by operation;
//! - registration attempts by outcome;
//! - open live-stream clients;
//! - read at scrape time, for the ten numbers with the most jobs waiting: their jobs and the age
//!   of the oldest ("why are replies late on this number?"); and for the ten WABAs that called
//!   Meta's management endpoints most in the last hour: calls, the service's budget, and Meta's
//!   own last report.
//!
//! Labels are bounded: route templates (never raw paths), Meta's operations and codes, a few
//! outcome words, and at most ten numbers (Meta's phone-number id) and ten WABAs, replaced at each
//! scrape. Nothing is labelled per customer.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use serde_json::Value;

use crate::meta::{MetaApi, MetaError, MetaPhoneNumber, PhoneNumberPage, SentMessage, TokenInfo};
use crate::service::budget::BudgetUse;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MetaCallLabels {
    operation: &'static str,
    outcome: &'static str,
    /// Meta's error code; empty when Meta gave none (success, network).
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NumberLabels {
    phone_number_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WabaLabels {
    waba_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn seconds_histogram() -> Histogram {
    // 1 ms to about 65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// The process's metrics.
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_seconds: Histograms<RouteLabels>,
    db_statements: Counter,
    webhook_deliveries: Counter,
    webhook_rejected: Counter,
    webhook_jobs: Counter,
    webhook_duplicates: Counter,
    jobs: Family<StateLabels, Gauge>,
    oldest_queued_seconds: Gauge,
    reply_seconds: Histograms<KindLabels>,
    reply_stage_seconds: Histograms<StageLabels>,
    number_jobs: Family<NumberLabels, Gauge>,
    number_oldest_seconds: Family<NumberLabels, Gauge>,
    budget_used: Family<WabaLabels, Gauge>,
    budget_limit: Family<WabaLabels, Gauge>,
    meta_reported_percent: Family<WabaLabels, Gauge>,
    /// One scrape at a time: the per-number and per-WABA families are cleared and refilled.
    scraping: std::sync::Mutex<()>,
    meta_calls: Family<MetaCallLabels, Counter>,
    meta_seconds: Histograms<OperationLabels>,
    registration_attempts: Family<OutcomeLabels, Counter>,
    stream_clients: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("whatsapp_numbers");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route template and status",
            http_requests.clone(),
        );
        let http_seconds: Histograms<RouteLabels> = Family::new_with_constructor(seconds_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer, by method and route template",
            http_seconds.clone(),
        );
        let db_statements = Counter::default();
        registry.register(
            "db_statements",
            "SQL statements run by pooled connections",
            db_statements.clone(),
        );
        let webhook_deliveries = Counter::default();
        registry.register(
            "webhook_deliveries",
            "Meta's webhook deliveries accepted (signed, stored)",
            webhook_deliveries.clone(),
        );
        let webhook_rejected = Counter::default();
        registry.register(
            "webhook_rejected",
            "Deliveries refused for a missing or wrong signature",
            webhook_rejected.clone(),
        );
        let webhook_jobs = Counter::default();
        registry.register(
            "webhook_jobs",
            "Jobs taken from accepted deliveries (messages, statuses, changes), redeliveries included",
            webhook_jobs.clone(),
        );
        let webhook_duplicates = Counter::default();
        registry.register(
            "webhook_duplicate_jobs",
            "Jobs already stored when they came again (Meta's redeliveries)",
            webhook_duplicates.clone(),
        );
        let jobs = Family::<StateLabels, Gauge>::default();
        registry.register(
            "queue_jobs",
            "Jobs in the queue by state (done ones are cleared after 8 days)",
            jobs.clone(),
        );
        let oldest_queued_seconds = Gauge::default();
        registry.register(
            "queue_oldest_queued_age_seconds",
            "How long the oldest job still queued has waited since it came in (0 when none)",
            oldest_queued_seconds.clone(),
        );
        let reply_seconds: Histograms<KindLabels> = Family::new_with_constructor(seconds_histogram);
        registry.register(
            "reply_latency_seconds",
            "From a customer's message reaching the service to the agent's answer accepted by Meta, by responder kind",
            reply_seconds.clone(),
        );
        let reply_stage_seconds: Histograms<StageLabels> =
            Family::new_with_constructor(seconds_histogram);
        registry.register(
            "reply_stage_duration_seconds",
            "Where answered messages' time went: `waited` (from reaching the service to the attempt that answered: the queue, the customer's earlier messages, earlier attempts), `agent` (producing the answer), `meta` (Meta taking it)",
            reply_stage_seconds.clone(),
        );
        let number_jobs = Family::<NumberLabels, Gauge>::default();
        registry.register(
            "queue_number_jobs",
            "Jobs queued or running about a number (Meta's phone-number id), for the ten numbers with the most",
            number_jobs.clone(),
        );
        let number_oldest_seconds = Family::<NumberLabels, Gauge>::default();
        registry.register(
            "queue_number_oldest_age_seconds",
            "How long the oldest of those jobs has waited since it came in, for the same ten numbers",
            number_oldest_seconds.clone(),
        );
        let budget_used = Family::<WabaLabels, Gauge>::default();
        registry.register(
            "meta_budget_used_calls",
            "Calls to a WABA's management endpoints in the last hour by every instance, for the ten WABAs with the most",
            budget_used.clone(),
        );
        let budget_limit = Family::<WabaLabels, Gauge>::default();
        registry.register(
            "meta_budget_calls_per_hour",
            "The service's own hourly budget of those calls for the same WABAs (below Meta's limit); past it, work that needs Meta waits",
            budget_limit.clone(),
        );
        let meta_reported_percent = Family::<WabaLabels, Gauge>::default();
        registry.register(
            "meta_reported_usage_percent",
            "Meta's own count of the WABA's calls in percent of its limit, as last reported within the hour, for the same WABAs",
            meta_reported_percent.clone(),
        );
        let meta_calls = Family::<MetaCallLabels, Counter>::default();
        registry.register(
            "meta_calls",
            "Calls to Meta by operation, outcome and Meta's error code",
            meta_calls.clone(),
        );
        let meta_seconds: Histograms<OperationLabels> =
            Family::new_with_constructor(seconds_histogram);
        registry.register(
            "meta_call_duration_seconds",
            "Time Meta took to answer, by operation",
            meta_seconds.clone(),
        );
        let registration_attempts = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "registration_attempts",
            "Register calls to Meta by outcome",
            registration_attempts.clone(),
        );
        let stream_clients = Gauge::default();
        registry.register(
            "event_stream_clients",
            "Open live-stream connections on this instance",
            stream_clients.clone(),
        );
        Metrics {
            registry,
            http_requests,
            http_seconds,
            db_statements,
            webhook_deliveries,
            webhook_rejected,
            webhook_jobs,
            webhook_duplicates,
            jobs,
            oldest_queued_seconds,
            reply_seconds,
            reply_stage_seconds,
            number_jobs,
            number_oldest_seconds,
            budget_used,
            budget_limit,
            meta_reported_percent,
            scraping: std::sync::Mutex::new(()),
            meta_calls,
            meta_seconds,
            registration_attempts,
            stream_clients,
        }
    }
}

impl Metrics {
    /// Counts one HTTP request and its time; `route` is the matched template.
    pub fn http_request(&self, method: &str, route: &str, status: u16, took: Duration) {
        self.http_requests
            .get_or_create(&HttpLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.http_seconds
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// Counts one accepted delivery and its jobs.
    pub fn webhook_received(&self, jobs: usize) {
        self.webhook_deliveries.inc();
        self.webhook_jobs
            .inc_by(u64::try_from(jobs).unwrap_or(u64::MAX));
    }

    /// Counts jobs that were stored already (redeliveries).
    pub fn webhook_duplicates(&self, jobs: usize) {
        self.webhook_duplicates
            .inc_by(u64::try_from(jobs).unwrap_or(u64::MAX));
    }

    /// Counts one delivery refused for its signature.
    pub fn webhook_rejected(&self) {
        self.webhook_rejected.inc();
    }

    /// One answer accepted by Meta, `took` after its message came in, of which it `waited` for
    /// the attempt that answered, the `agent` took some and `meta` some.
    pub fn reply(
        &self,
        responder_kind: &'static str,
        took: Duration,
        waited: Duration,
        agent: Duration,
        meta: Duration,
    ) {
        self.reply_seconds
            .get_or_create(&KindLabels {
                kind: responder_kind,
            })
            .observe(took.as_secs_f64());
        for (stage, spent) in [("waited", waited), ("agent", agent), ("meta", meta)] {
            self.reply_stage_seconds
                .get_or_create(&StageLabels { stage })
                .observe(spent.as_secs_f64());
        }
    }

    /// One register call and how it ended (`succeeded`, `failed`).
    pub fn registration_attempt(&self, outcome: &'static str) {
        self.registration_attempts
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Open live-stream connections.
    pub fn set_stream_clients(&self, n: i64) {
        self.stream_clients.set(n);
    }

    fn meta_call(
        &self,
        operation: &'static str,
        outcome: &'static str,
        code: Option<i64>,
        took: Duration,
    ) {
        self.meta_calls
            .get_or_create(&MetaCallLabels {
                operation,
                outcome,
                code: code.map(|c| c.to_string()).unwrap_or_default(),
            })
            .inc();
        self.meta_seconds
            .get_or_create(&OperationLabels { operation })
            .observe(took.as_secs_f64());
    }

    /// The OpenMetrics text, with what is read at scrape time: SQL statements run, and the
    /// queue's jobs by state and its oldest queued job (left as they were when the database
    /// could not say).
    pub fn render(
        &self,
        db_statements: u64,
        queue: Option<&QueueState>,
        budgets: Option<&[BudgetUse]>,
    ) -> String {
        let _one_at_a_time = self
            .scraping
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.db_statements
            .inner()
            .store(db_statements, Ordering::Relaxed);
        if let Some(queue) = queue {
            for state in crate::domain::JobState::ALL {
                let n = queue
                    .counts
                    .iter()
                    .find(|(s, _)| s == state)
                    .map_or(0, |(_, n)| *n);
                self.jobs
                    .get_or_create(&StateLabels {
                        state: state.as_str(),
                    })
                    .set(n);
            }
            self.oldest_queued_seconds.set(queue.oldest_queued_seconds);
            self.number_jobs.clear();
            self.number_oldest_seconds.clear();
            for number in &queue.busiest_numbers {
                let labels = NumberLabels {
                    phone_number_id: number.meta_id.clone(),
                };
                self.number_jobs.get_or_create(&labels).set(number.jobs);
                self.number_oldest_seconds
                    .get_or_create(&labels)
                    .set(number.oldest_seconds);
            }
        }
        if let Some(budgets) = budgets {
            self.budget_used.clear();
            self.budget_limit.clear();
            self.meta_reported_percent.clear();
            for waba in budgets {
                let labels = WabaLabels {
                    waba_id: waba.waba.to_string(),
                };
                self.budget_used.get_or_create(&labels).set(waba.used);
                self.budget_limit.get_or_create(&labels).set(waba.budget);
                if let Some(percent) = waba.meta_percent {
                    self.meta_reported_percent
                        .get_or_create(&labels)
                        .set(percent);
                }
            }
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            tracing::error!("encoding the metrics failed");
        }
        out
    }
}

/// The job queue as read at scrape time.
pub struct QueueState {
    pub counts: Vec<(crate::domain::JobState, i64)>,
    pub oldest_queued_seconds: i64,
    /// The numbers with the most jobs queued or running, most first.
    pub busiest_numbers: Vec<NumberBacklog>,
}

/// One number's waiting jobs.
pub struct NumberBacklog {
    /// Meta's phone-number id.
    pub meta_id: String,
    pub jobs: i64,
    pub oldest_seconds: i64,
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

    /// Runs one call, counting its outcome and Meta's code and timing it.
    async fn count<T>(
        &self,
        operation: &'static str,
        call: impl std::future::Future<Output = Result<T, MetaError>>,
    ) -> Result<T, MetaError> {
        let started = Instant::now();
        let result = call.await;
        let (outcome, code) = match &result {
            Ok(_) => ("ok", None),
            Err(err) => (
                match err.class() {
                    crate::meta::ErrorClass::Transient => "transient_error",
                    crate::meta::ErrorClass::RateLimited => "rate_limited",
                    crate::meta::ErrorClass::NeedsUserAction => "needs_user_action",
                },
                err.code(),
            ),
        };
        self.metrics
            .meta_call(operation, outcome, code, started.elapsed());
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
            self.inner.list_phone_numbers(token, waba_id, after),
        )
        .await
    }

    async fn get_phone_number(
        &self,
        token: &str,
        meta_phone_number_id: &crate::domain::MetaPhoneNumberId,
    ) -> Result<MetaPhoneNumber, MetaError> {
        self.count(
            "get_phone_number",
            self.inner.get_phone_number(token, meta_phone_number_id),
        )
        .await
    }

    async fn get_waba_name(
        &self,
        token: &str,
        waba_id: &crate::domain::WabaId,
    ) -> Result<Option<String>, MetaError> {
        self.count("get_waba", self.inner.get_waba_name(token, waba_id))
            .await
    }

    async fn register(
        &self,
        token: &str,
        meta_phone_number_id: &crate::domain::MetaPhoneNumberId,
        pin: &str,
    ) -> Result<(), MetaError> {
        self.count(
            "register",
            self.inner.register(token, meta_phone_number_id, pin),
        )
        .await
    }

    async fn exchange_code(&self, code: &str) -> Result<String, MetaError> {
        self.count("exchange_code", self.inner.exchange_code(code))
            .await
    }

    async fn inspect_token(&self, token: &str) -> Result<TokenInfo, MetaError> {
        self.count("inspect_token", self.inner.inspect_token(token))
            .await
    }

    async fn subscribe_app(
        &self,
        token: &str,
        waba_id: &crate::domain::WabaId,
    ) -> Result<(), MetaError> {
        self.count("subscribe_app", self.inner.subscribe_app(token, waba_id))
            .await
    }

    async fn unsubscribe_app(
        &self,
        token: &str,
        waba_id: &crate::domain::WabaId,
    ) -> Result<(), MetaError> {
        self.count(
            "unsubscribe_app",
            self.inner.unsubscribe_app(token, waba_id),
        )
        .await
    }

    async fn send_message(
        &self,
        token: &str,
        meta_phone_number_id: &crate::domain::MetaPhoneNumberId,
        body: &Value,
    ) -> Result<SentMessage, MetaError> {
        self.count(
            "send_message",
            self.inner.send_message(token, meta_phone_number_id, body),
        )
        .await
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
                .mark_read(token, meta_phone_number_id, message_id),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_counts_by_route_outcome_and_code() {
        let metrics = Metrics::default();
        let ms = Duration::from_millis(3);
        metrics.http_request("GET", "/api/v1/phone-numbers/{id}", 200, ms);
        metrics.http_request("GET", "/api/v1/phone-numbers/{id}", 200, ms);
        metrics.http_request("GET", "/api/v1/phone-numbers/{id}", 404, ms);
        metrics.meta_call("register", "ok", None, ms);
        metrics.meta_call("register", "ok", None, ms);
        metrics.meta_call("register", "needs_user_action", Some(133006), ms);
        metrics.registration_attempt("succeeded");
        let queue = QueueState {
            counts: vec![(crate::domain::JobState::Queued, 4)],
            oldest_queued_seconds: 12,
            busiest_numbers: Vec::new(),
        };
        let text = metrics.render(7, Some(&queue), None);
        let has = |line: &str| assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        has(
            r#"whatsapp_numbers_http_requests_total{method="GET",route="/api/v1/phone-numbers/{id}",status="200"} 2"#,
        );
        has(
            r#"whatsapp_numbers_http_requests_total{method="GET",route="/api/v1/phone-numbers/{id}",status="404"} 1"#,
        );
        has(
            r#"whatsapp_numbers_http_request_duration_seconds_count{method="GET",route="/api/v1/phone-numbers/{id}"} 3"#,
        );
        has("whatsapp_numbers_db_statements_total 7");
        has(r#"whatsapp_numbers_meta_calls_total{operation="register",outcome="ok",code=""} 2"#);
        has(
            r#"whatsapp_numbers_meta_calls_total{operation="register",outcome="needs_user_action",code="133006"} 1"#,
        );
        has(r#"whatsapp_numbers_meta_call_duration_seconds_count{operation="register"} 3"#);
        has(r#"whatsapp_numbers_registration_attempts_total{outcome="succeeded"} 1"#);
        has(r#"whatsapp_numbers_queue_jobs{state="queued"} 4"#);
        has(r#"whatsapp_numbers_queue_jobs{state="dead"} 0"#);
        has("whatsapp_numbers_queue_oldest_queued_age_seconds 12");
    }
}
