//! The command line: `serve` (default), `migrate`, `openapi`, `token`, `health`.

use crate::domain::Role;

/// What the binary was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Serve,
    Migrate,
    OpenApi,
    Token(TokenArgs),
    /// Asks the server at `BIND_ADDR` whether it is up (the container's HEALTHCHECK).
    Health,
    Help,
}

/// `token` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenArgs {
    pub workspace: String,
    pub subject: String,
    pub role: Role,
    pub ttl_hours: i64,
}

pub const USAGE: &str = "\
whatsapp-numbers: WhatsApp Business phone numbers API

USAGE:
    whatsapp-numbers [serve]     run the HTTP server (default)
    whatsapp-numbers migrate     apply pending database migrations and exit
    whatsapp-numbers openapi     print the OpenAPI document
    whatsapp-numbers token [--workspace ID] [--sub NAME] [--role editor|viewer] [--ttl-hours N]
                                 print a bearer token signed with AUTH_JWT_SECRET
                                 (defaults: workspace demo, sub demo-admin, role editor, 720 hours)
    whatsapp-numbers health      exit 0 if the server at BIND_ADDR answers GET /healthz with 200

Configuration comes from the environment; see README.md.";

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, String> {
    let Some(first) = args.first() else {
        return Ok(Command::Serve);
    };
    let rest = &args[1..];
    let no_options = |cmd: Command| {
        if rest.is_empty() {
            Ok(cmd)
        } else {
            Err(format!("unexpected argument `{}`", rest[0]))
        }
    };
    match first.as_str() {
        "serve" => no_options(Command::Serve),
        "migrate" => no_options(Command::Migrate),
        "openapi" => no_options(Command::OpenApi),
        "health" => no_options(Command::Health),
        "-h" | "--help" | "help" => Ok(Command::Help),
        "token" => parse_token(rest).map(Command::Token),
        other => Err(format!("unknown command `{other}`")),
    }
}

fn parse_token(args: &[String]) -> Result<TokenArgs, String> {
    let mut token = TokenArgs {
        workspace: "demo".into(),
        subject: "demo-admin".into(),
        role: Role::Editor,
        ttl_hours: 720,
    };
    let mut iter = args.iter();
    while let Some(flag) = iter.next() {
        let value = iter
            .next()
            .ok_or_else(|| format!("`{flag}` needs a value"))?;
        match flag.as_str() {
            "--workspace" => token.workspace = value.clone(),
            "--sub" => token.subject = value.clone(),
            "--role" => {
                token.role = match value.as_str() {
                    "editor" => Role::Editor,
                    "viewer" => Role::Viewer,
                    _ => return Err("`--role` is editor or viewer".into()),
                }
            }
            "--ttl-hours" => {
                token.ttl_hours = value
                    .parse()
                    .ok()
                    .filter(|h| *h > 0)
                    .ok_or("`--ttl-hours` is a positive number")?
            }
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn serve_is_the_default() {
        assert_eq!(parse(&[]).unwrap(), Command::Serve);
        assert_eq!(parse(&args(&["openapi"])).unwrap(), Command::OpenApi);
        assert_eq!(parse(&args(&["health"])).unwrap(), Command::Health);
        assert!(parse(&args(&["health", "--x"])).is_err());
        assert!(parse(&args(&["bogus"])).is_err());
    }

    #[test]
    fn token_takes_its_options() {
        let Command::Token(t) =
            parse(&args(&["token", "--workspace", "acme", "--role", "viewer"])).unwrap()
        else {
            panic!("not a token command")
        };
        assert_eq!(
            (t.workspace.as_str(), t.role, t.ttl_hours),
            ("acme", Role::Viewer, 720)
        );
        assert!(parse(&args(&["token", "--role", "owner"])).is_err());
        assert!(parse(&args(&["token", "--workspace"])).is_err());
    }
}
