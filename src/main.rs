use std::process::ExitCode;

use whatsapp_numbers::cli::{self, Command};
use whatsapp_numbers::config::Settings;
use whatsapp_numbers::startup::{init_tracing, Application};
use whatsapp_numbers::{api, db};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match cli::parse(&args) {
        Ok(command) => command,
        Err(err) => {
            eprintln!("error: {err}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    match run(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Help => println!("{}", cli::USAGE),
        Command::OpenApi => print!("{}", api::openapi::document()),
        Command::Token(args) => {
            let settings = Settings::from_env()?;
            let keys = settings.token_keys();
            println!(
                "{}",
                keys.mint(
                    &args.subject,
                    &args.workspace,
                    args.role,
                    chrono::TimeDelta::hours(args.ttl_hours)
                )
            );
        }
        Command::Health => {
            // Only the address: no secrets or database are needed to ask.
            let bind_addr = std::env::var("BIND_ADDR")
                .unwrap_or_else(|_| whatsapp_numbers::config::DEFAULT_BIND_ADDR.into());
            health(&bind_addr)?;
        }
        Command::Migrate => {
            init_tracing();
            let settings = Settings::from_env()?;
            db::Db::connect(&settings.database_url, 1)?;
            println!("migrations applied ({})", settings.database_url.backend());
        }
        Command::Serve => {
            init_tracing();
            let settings = Settings::from_env()?;
            let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
            runtime.block_on(serve(settings))?;
        }
    }
    Ok(())
}

async fn serve(settings: Settings) -> Result<(), String> {
    let banner = settings.development.then(|| development_banner(&settings));
    let app = Application::build(settings).await?;
    if banner.is_some() {
        app.connect_sandbox_demo("demo").await?;
    }
    if let Some(banner) = banner {
        eprintln!("{}", banner.replace("{port}", &app.port().to_string()));
    }
    tracing::info!(port = app.port(), "listening");
    app.run_until_stopped().await.map_err(|e| e.to_string())
}

fn development_banner(settings: &Settings) -> String {
    // A token printed while listening beyond this machine would open the server to whoever
    // reads the terminal's output; there, mint one with `whatsapp-numbers token` instead.
    let token = if settings.binds_loopback() {
        settings.token_keys().mint(
            "demo-admin",
            "demo",
            whatsapp_numbers::domain::Role::Editor,
            chrono::TimeDelta::days(30),
        )
    } else {
        format!(
            "(not printed: {} is not a loopback address; run `whatsapp-numbers token --workspace demo --role editor`)",
            settings.bind_addr
        )
    };
    let host = settings
        .bind_addr
        .rsplit_once(':')
        .map_or("127.0.0.1", |(h, _)| h);
    let lines = [
        String::new(),
        "=".repeat(72),
        "  DEVELOPMENT MODE: no Meta app is configured (META_APP_ID is unset).".into(),
        format!(
            "  Secrets were generated once and are kept in {}/dev-secrets.json.",
            settings.data_dir.display()
        ),
        "  Meta calls go to the built-in sandbox (demo WABA connected to workspace `demo`).".into(),
        "  Do not run production like this.".into(),
        String::new(),
        format!("  Swagger UI:  http://{host}:{{port}}/swagger-ui/"),
        "  Editor token for workspace `demo` (30 days; paste into Swagger UI's Authorize):".into(),
        String::new(),
        token,
        "=".repeat(72),
    ];
    lines.join("\n")
}

/// `GET /healthz` on the server at `bind_addr` (a wildcard address is asked on loopback), with a
/// short timeout; Ok when it answers 200.
fn health(bind_addr: &str) -> Result<(), String> {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::time::Duration;
    let mut addr: SocketAddr = bind_addr
        .parse()
        .map_err(|e| format!("BIND_ADDR {bind_addr}: {e}"))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let timeout = Duration::from_secs(3);
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(
            format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .map_err(|e| e.to_string())?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).map_err(|e| e.to_string())?;
    if &head[9..12] == b"200" {
        Ok(())
    } else {
        Err(format!(
            "/healthz answered {}",
            String::from_utf8_lossy(&head[9..12])
        ))
    }
}
