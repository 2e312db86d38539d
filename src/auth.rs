//! Bearer tokens: HS256 JWTs with `sub`, `workspace_id`, `role` and `exp`.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::domain::{Role, WorkspaceId};

/// Longest workspace id or subject accepted from a token.
const MAX_ID: usize = 128;

/// The claims this service reads.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub workspace_id: String,
    pub role: Role,
    pub exp: i64,
    /// Minted when an issuer is configured; checked by the validation, not read from here.
    #[serde(default, skip_serializing_if = "Option::is_none", skip_deserializing)]
    pub iss: Option<String>,
    /// Minted when an audience is configured; checked by the validation, not read from here.
    #[serde(default, skip_serializing_if = "Option::is_none", skip_deserializing)]
    pub aud: Option<String>,
}

/// Who is asking: the verified claims of a request's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub workspace_id: WorkspaceId,
    pub role: Role,
}

/// Signs and verifies tokens with `AUTH_JWT_SECRET`. Its `Debug` never shows the secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// `AUTH_JWT_ISSUER`: when set, tokens must carry it as `iss`.
    issuer: Option<String>,
    /// `AUTH_JWT_AUDIENCE`: when set, tokens must carry it in `aud`.
    audience: Option<String>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(..)")
    }
}

impl TokenKeys {
    pub fn new(secret: &str) -> Self {
        TokenKeys {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            issuer: None,
            audience: None,
        }
    }

    /// Requires (and mints) `iss` and `aud` when they are configured.
    pub fn with_issuer_and_audience(
        mut self,
        issuer: Option<String>,
        audience: Option<String>,
    ) -> Self {
        self.issuer = issuer;
        self.audience = audience;
        self
    }

    /// Mints a token valid for `ttl`.
    pub fn mint(
        &self,
        subject: &str,
        workspace_id: &str,
        role: Role,
        ttl: chrono::TimeDelta,
    ) -> String {
        let claims = Claims {
            sub: subject.to_owned(),
            workspace_id: workspace_id.to_owned(),
            role,
            exp: (chrono::Utc::now() + ttl).timestamp(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        };
        // HS256 signing of a small struct cannot fail.
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).unwrap_or_default()
    }

    /// Verifies signature, algorithm and expiry, and that the ids are usable.
    pub fn verify(&self, token: &str) -> Option<Principal> {
        let mut validation = Validation::new(Algorithm::HS256);
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        validation.leeway = 30;
        let claims = decode::<Claims>(token, &self.decoding, &validation)
            .ok()?
            .claims;
        let usable =
            |s: &str| !s.trim().is_empty() && s.len() <= MAX_ID && !s.chars().any(char::is_control);
        if !usable(&claims.sub) || !usable(&claims.workspace_id) {
            return None;
        }
        Some(Principal {
            subject: claims.sub,
            workspace_id: WorkspaceId(claims.workspace_id),
            role: claims.role,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_token_verifies_with_the_same_secret_only() {
        let keys = TokenKeys::new("secret-one-secret-one-secret-one");
        let token = keys.mint("alice", "ws-1", Role::Viewer, chrono::TimeDelta::hours(1));
        let who = keys.verify(&token).unwrap();
        assert_eq!(
            (who.subject.as_str(), who.workspace_id.as_str(), who.role),
            ("alice", "ws-1", Role::Viewer)
        );
        assert!(TokenKeys::new("another-secret-another-secret-xx")
            .verify(&token)
            .is_none());
    }

    #[test]
    fn expired_tokens_and_unknown_roles_are_refused() {
        let keys = TokenKeys::new("secret-one-secret-one-secret-one");
        let expired = keys.mint("alice", "ws-1", Role::Editor, chrono::TimeDelta::hours(-2));
        assert!(keys.verify(&expired).is_none());
        let odd = serde_json::json!({"sub": "a", "workspace_id": "w", "role": "owner", "exp": chrono::Utc::now().timestamp() + 60});
        let token = encode(
            &Header::new(Algorithm::HS256),
            &odd,
            &EncodingKey::from_secret(b"secret-one-secret-one-secret-one"),
        )
        .unwrap();
        assert!(keys.verify(&token).is_none());
    }

    #[test]
    fn a_configured_issuer_and_audience_are_required() {
        let secret = "secret-one-secret-one-secret-one";
        let plain = TokenKeys::new(secret);
        let strict = TokenKeys::new(secret).with_issuer_and_audience(
            Some("https://auth.example".into()),
            Some("dashboard".into()),
        );
        let unmarked = plain.mint("alice", "ws-1", Role::Editor, chrono::TimeDelta::hours(1));
        assert!(strict.verify(&unmarked).is_none(), "no iss/aud");
        let marked = strict.mint("alice", "ws-1", Role::Editor, chrono::TimeDelta::hours(1));
        assert!(strict.verify(&marked).is_some());
        assert!(
            plain.verify(&marked).is_some(),
            "unconfigured claims are not checked"
        );
        let other = TokenKeys::new(secret).with_issuer_and_audience(
            Some("https://auth.example".into()),
            Some("another-app".into()),
        );
        assert!(strict
            .verify(&other.mint("a", "w", Role::Viewer, chrono::TimeDelta::hours(1)))
            .is_none());
        let other = TokenKeys::new(secret).with_issuer_and_audience(
            Some("https://evil.example".into()),
            Some("dashboard".into()),
        );
        assert!(strict
            .verify(&other.mint("a", "w", Role::Viewer, chrono::TimeDelta::hours(1)))
            .is_none());
    }

    #[test]
    fn other_algorithms_are_refused() {
        let keys = TokenKeys::new("secret-one-secret-one-secret-one");
        let claims = serde_json::json!({"sub": "a", "workspace_id": "w", "role": "editor", "exp": chrono::Utc::now().timestamp() + 60});
        let token = encode(
            &Header::new(Algorithm::HS384),
            &claims,
            &EncodingKey::from_secret(b"secret-one-secret-one-secret-one"),
        )
        .unwrap();
        assert!(keys.verify(&token).is_none());
    }
}
