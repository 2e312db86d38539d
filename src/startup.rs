//! Builds the application from settings and binds its listener (port 0 gives a free port).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Service;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{web, App, HttpResponse, HttpServer};
use tracing::Instrument;
use utoipa_swagger_ui::SwaggerUi;

use crate::api;
use crate::auth::Principal;
use crate::config::Settings;
use crate::crypto::SecretBox;
use crate::db::Db;
use crate::domain::{Role, Secret, WabaId, WorkspaceId};
use crate::meta::graph::{AppCredentials, GraphClient};
use crate::meta::sandbox::Sandbox;
use crate::meta::MetaApi;
use crate::service::accounts::Credentials;
use crate::state::AppState;

/// A bound, not yet running server.
pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    state: AppState,
}

impl Application {
    /// Opens the database (running migrations), then binds `settings.bind_addr`.
    pub async fn build(settings: Settings) -> Result<Self, String> {
        let settings = Arc::new(settings);
        let url = settings.database_url.clone();
        let pool_size = settings.db_pool_size;
        let db = tokio::task::spawn_blocking(move || Db::connect(&url, pool_size))
            .await
            .map_err(|e| format!("database start-up task failed: {e}"))??;
        let secrets = SecretBox::from_base64(&settings.secrets_key).map_err(|e| e.to_string())?;
        let tokens = settings.token_keys();
        let (meta, sandbox): (Arc<dyn MetaApi>, Option<Arc<Sandbox>>) = match &settings.meta_app {
            Some(app) => {
                let credentials = AppCredentials {
                    app_id: app.app_id.clone(),
                    app_secret: app.app_secret.clone(),
                };
                let timeout = Duration::from_secs(settings.meta_timeout_seconds);
                let graph = GraphClient::new(
                    &settings.meta_graph_url,
                    &settings.meta_graph_version,
                    credentials,
                    timeout,
                )?;
                (Arc::new(graph), None)
            }
            None => {
                let sandbox = Arc::new(if settings.development {
                    Sandbox::persistent(settings.data_dir.join("sandbox.json"))
                } else {
                    Sandbox::new()
                });
                (sandbox.clone(), Some(sandbox))
            }
        };
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let intake =
            crate::service::inbound::Intake::start(settings.database_url.clone(), metrics.clone())?;
        let agent_http = crate::service::responders::AgentHttp::new(
            settings.agent_url_allow_private,
            std::time::Duration::from_secs(settings.agent_timeout_seconds),
        )?;
        let state = AppState::new(
            db,
            secrets,
            tokens,
            settings.clone(),
            meta,
            intake,
            agent_http,
        )
        .with_sandbox(sandbox);

        let listener = TcpListener::bind(&settings.bind_addr)
            .map_err(|e| format!("cannot listen on {}: {e}", settings.bind_addr))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let data = web::Data::new(state.clone());
        let spec = api::openapi::spec_json(settings.url_policy());
        let server = HttpServer::new(move || {
            let metrics = data.metrics.clone();
            App::new()
                .wrap_fn(move |req, srv| {
                    let metrics = metrics.clone();
                    let id = api::request_id::of(req.headers());
                    let span = tracing::info_span!("request", request_id = %id);
                    let (method, path) = (req.method().clone(), req.path().to_owned());
                    let started = std::time::Instant::now();
                    let response = srv.call(req);
                    let echoed = id.clone();
                    let handled = async move {
                        let mut response = response.await?;
                        let status = response.status().as_u16();
                        // The template, never the raw path: bounded labels, no ids in metrics.
                        let route = response
                            .request()
                            .match_pattern()
                            .unwrap_or_else(|| "unmatched".to_owned());
                        let took = started.elapsed();
                        metrics.http_request(method.as_str(), &route, status, took);
                        tracing::info!(
                            %method,
                            route,
                            path,
                            status,
                            latency_ms = took.as_secs_f64() * 1000.0,
                            "request"
                        );
                        if let Ok(value) = HeaderValue::from_str(&echoed) {
                            response
                                .headers_mut()
                                .insert(HeaderName::from_static("x-request-id"), value);
                        }
                        Ok(response)
                    };
                    api::request_id::scope(id, handled).instrument(span)
                })
                .app_data(data.clone())
                // Before the `/api/v1` scope, which would otherwise claim `/api/v1/openapi.json`.
                .service(
                    SwaggerUi::new("/swagger-ui/{_:.*}")
                        .external_url_unchecked("/api/v1/openapi.json", spec.clone()),
                )
                .configure(api::configure)
                .route("/swagger-ui", web::get().to(to_swagger))
                .route("/", web::get().to(to_swagger))
                .default_service(web::to(api::fallback))
        })
        .workers(settings.http_workers)
        // Signals are ours (`run_until_stopped`): streams and workers stop first.
        .disable_signals()
        .shutdown_timeout(SHUTDOWN_GRACE.as_secs())
        .listen(listener)
        .map_err(|e| e.to_string())?
        .run();
        Ok(Application {
            port,
            server,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The shared state, for tests that arrange data below the HTTP surface.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGTERM, SIGINT or `state().shutdown.begin()`; also runs the background sync
    /// (when `SYNC_INTERVAL_SECONDS` > 0), the webhook workers and the live stream's reader. On
    /// stopping: no new connections, open streams end, each worker finishes the job in hand and
    /// hands back the jobs it claimed (leases released), requests in flight get
    /// [`SHUTDOWN_GRACE`] to finish; then the pool closes.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let state = self.state.clone();
        let interval = state.settings.sync_interval_seconds;
        let background = (interval > 0).then(|| {
            tokio::spawn(crate::service::sync::run_periodic(
                state.clone(),
                Duration::from_secs(interval),
            ))
        });
        let workers = state.settings.webhook_workers;
        let inbound = (workers > 0)
            .then(|| tokio::spawn(crate::service::inbound::run_workers(state.clone(), workers)));
        let events = tokio::spawn(state.events.clone().run(state.db.clone()));
        let handle = self.server.handle();
        let stopper = {
            let shutdown = state.shutdown.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = stop_signal() => {}
                    _ = shutdown.wait() => {}
                }
                tracing::info!("stopping: streams end, workers hand back their jobs");
                shutdown.begin();
                handle.stop(true).await;
            })
        };
        let result = self.server.await;
        state.shutdown.begin();
        if let Some(inbound) = inbound {
            if tokio::time::timeout(SHUTDOWN_GRACE, inbound).await.is_err() {
                tracing::warn!("a webhook job outlasted the shutdown grace; its lease will lapse and another worker take it");
            }
        }
        for task in [background, Some(events), Some(stopper)]
            .into_iter()
            .flatten()
        {
            task.abort();
        }
        result
    }

    /// In sandbox mode: connects the demo workspace to the sandbox's demo WABA, so its numbers fill
    /// the table at once. Re-running it re-syncs.
    pub async fn connect_sandbox_demo(&self, workspace: &str) -> Result<(), String> {
        if self.state.meta.mode() != crate::domain::MetaMode::Sandbox {
            return Ok(());
        }
        let caller = Principal {
            subject: "sandbox".into(),
            workspace_id: WorkspaceId::from(workspace),
            role: Role::Editor,
        };
        self.state
            .ensure_workspace(&caller.workspace_id)
            .await
            .map_err(|e| e.to_string())?;
        let credentials = Credentials::SystemUserToken {
            waba_id: WabaId::from(crate::meta::sandbox::DEMO_WABA_ID),
            access_token: Secret::from("sandbox-demo-token"),
        };
        crate::service::accounts::connect(&self.state, &caller, credentials)
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

async fn to_swagger() -> HttpResponse {
    HttpResponse::Found()
        .insert_header(("Location", "/swagger-ui/"))
        .finish()
}

/// Logs to stderr; `RUST_LOG` sets the level (default `info`).
/// How long requests in flight and the job in each worker's hands get to finish when stopping.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// SIGTERM (what orchestrators send) or SIGINT (Ctrl-C).
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`): one JSON object per line when
/// `LOG_FORMAT=json` (with the request's span, so its `request_id`), else readable text.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let json = std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let _ = if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
}
