//! Builds the application from settings and binds its listener (port 0 gives a free port).

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::middleware::Logger;
use actix_web::{web, App, HttpResponse, HttpServer};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::api::{self, openapi::ApiDoc};
use crate::auth::TokenKeys;
use crate::config::Settings;
use crate::crypto::SecretBox;
use crate::db::Db;
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
        let tokens = TokenKeys::new(&settings.auth_jwt_secret);
        let state = AppState::new(db, secrets, tokens, settings.clone());

        let listener = TcpListener::bind(&settings.bind_addr)
            .map_err(|e| format!("cannot listen on {}: {e}", settings.bind_addr))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let data = web::Data::new(state.clone());
        let spec = ApiDoc::openapi();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(Logger::new("%r %s %b %Dms"))
                .app_data(data.clone())
                // Before the `/api/v1` scope, which would otherwise claim `/api/v1/openapi.json`.
                .service(
                    SwaggerUi::new("/swagger-ui/{_:.*}").url("/api/v1/openapi.json", spec.clone()),
                )
                .configure(api::configure)
                .route("/swagger-ui", web::get().to(to_swagger))
                .route("/", web::get().to(to_swagger))
                .default_service(web::to(api::not_found))
        })
        .workers(settings.http_workers)
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

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

async fn to_swagger() -> HttpResponse {
    HttpResponse::Found()
        .insert_header(("Location", "/swagger-ui/"))
        .finish()
}

/// Logs to stderr; `RUST_LOG` sets the level (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
