//! Probes for orchestrators: `/healthz` (process up), `/readyz` (database reachable), `/metrics`.

use actix_web::{get, web, HttpResponse};
use diesel::connection::SimpleConnection;
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::{ApiError, Problem};
use crate::domain::MetaMode;
use crate::service::ServiceError;
use crate::state::AppState;

/// Liveness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

/// Readiness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`.
    pub status: &'static str,
    /// `postgres` or `sqlite`.
    pub database: &'static str,
    pub meta: MetaMode,
}

/// The process is up.
#[utoipa::path(tag = "operations", operation_id = "healthz", responses((status = 200, body = Health)))]
#[get("/healthz")]
pub async fn healthz() -> web::Json<Health> {
    web::Json(Health { status: "ok" })
}

/// The database answers; says which database and which Meta (`graph` or `sandbox`).
#[utoipa::path(
    tag = "operations",
    operation_id = "readyz",
    responses(
        (status = 200, body = Readiness),
        (status = 503, description = "`service_unavailable`: the database does not answer", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state
        .db
        .run(|conn| {
            conn.batch_execute("SELECT 1")
                .map_err(|e| ServiceError::Unavailable(format!("database: {e}")))
        })
        .await
        .map_err(ApiError::Service)?;
    Ok(HttpResponse::Ok().json(Readiness {
        status: "ready",
        database: state.db.backend(),
        meta: state.meta.mode(),
    }))
}

/// Metrics (OpenMetrics text): HTTP requests by route template and status with latency
/// histograms, SQL statements, webhook deliveries (accepted, refused, duplicate jobs), the job
/// queue by state and the age of its oldest queued job, inbound-to-reply latency and where it
/// went, calls to Meta by operation, outcome and Meta's code with latency, registration attempts
/// by outcome, open live-stream clients; the ten numbers with the most jobs waiting and the ten
/// WABAs that used most of their hourly call budget.
#[utoipa::path(
    tag = "operations",
    operation_id = "metrics",
    responses((status = 200, description = "OpenMetrics text exposition", body = String, content_type = "application/openmetrics-text"))
)]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let queue = crate::service::inbound::queue_state(&state).await.ok();
    let budgets = crate::service::budget::busiest(&state).await.ok();
    state.metrics.set_stream_clients(state.events.clients());
    let body = state.metrics.render(
        state.db.queries_executed(),
        queue.as_ref(),
        budgets.as_deref(),
    );
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(body)
}
