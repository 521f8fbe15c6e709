//! Access tokens: HS256 JWTs with the algorithm pinned, checked against the injected clock.

use crate::domain::{SessionId, TenantId, UserId};
use crate::error::AppError;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation, decode, encode};

/// Access-token lifetime.
pub const ACCESS_TOKEN_TTL: Duration = Duration::minutes(15);

/// The `iss` claim of every access token (RFC 7519 §4.1.1): this service.
pub const ISSUER: &str = "montecarlo-platform";

/// The `aud` claim of every access token (RFC 7519 §4.1.3): this service's API. A token minted
/// for anything else with the same secret is refused.
pub const AUDIENCE: &str = "montecarlo-api";

/// Access-token claims.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Claims {
    /// Issuer: [`ISSUER`].
    pub iss: String,
    /// Audience: [`AUDIENCE`].
    pub aud: String,
    /// User id (`usr_…`).
    pub sub: String,
    /// Tenant id (`ten_…`).
    pub tid: String,
    /// Session id (`ses_…`): the refresh-token family this token was issued for. The user's
    /// role is not in the token; it is read from the directory on every request.
    pub sid: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
    /// Token id.
    pub jti: String,
}

/// One HS256 codec for one audience: the algorithm pinned, issuer and audience required,
/// expiry and the longest lifetime checked against the caller's clock. The user and admin
/// tokens are two of these over the same secret.
struct Hs256 {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
    /// How errors name the token ("bearer token", "admin token").
    label: &'static str,
    /// The reason given when a token of another audience is presented.
    wrong_audience: &'static str,
}

impl Hs256 {
    fn new(
        secret: &[u8],
        audience: &str,
        ttl: Duration,
        label: &'static str,
        wrong_audience: &'static str,
    ) -> Self {
        let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[audience]);
        // `exp` is checked against the service clock in `verify`, so tests can move time.
        validation.validate_exp = false;
        validation.leeway = 0;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
            label,
            wrong_audience,
        }
    }

    fn encode<C: serde::Serialize>(&self, claims: &C) -> Result<String, AppError> {
        encode(
            &Header::new(jsonwebtoken::Algorithm::HS256),
            claims,
            &self.encoding,
        )
        .map_err(|e| AppError::internal(format!("jwt encode: {e}")))
    }

    /// Decodes `token`, then checks `exp > now` and `exp - iat <= ttl` (`times` reads both).
    fn verify<C: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        now: DateTime<Utc>,
        times: impl Fn(&C) -> (i64, i64),
    ) -> Result<C, AppError> {
        let data = decode::<C>(token, &self.decoding, &self.validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            let why = match e.kind() {
                ErrorKind::InvalidSignature => "signature does not verify",
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    "only HS256 tokens are accepted"
                }
                ErrorKind::MissingRequiredClaim(_) => "a required claim is missing",
                ErrorKind::InvalidIssuer => "it was not issued by this service",
                ErrorKind::InvalidAudience => self.wrong_audience,
                ErrorKind::InvalidToken
                | ErrorKind::Base64(_)
                | ErrorKind::Json(_)
                | ErrorKind::Utf8(_) => "malformed token",
                _ => "token refused",
            };
            AppError::unauthorized(format!("invalid {}: {why}", self.label))
        })?;
        let (iat, exp) = times(&data.claims);
        if exp <= now.timestamp() {
            return Err(AppError::unauthorized(format!(
                "{} has expired; sign in again",
                self.label
            )));
        }
        if exp - iat > self.ttl.num_seconds() {
            return Err(AppError::unauthorized(format!(
                "{} lifetime exceeds {} minutes",
                self.label,
                self.ttl.num_minutes()
            )));
        }
        Ok(data.claims)
    }
}

/// HS256 signing and verification of tenant users' access tokens; the algorithm is pinned.
pub struct JwtKeys(Hs256);

impl JwtKeys {
    /// Keys from the configured secret.
    pub fn new(secret: &[u8]) -> Self {
        Self(Hs256::new(
            secret,
            AUDIENCE,
            ACCESS_TOKEN_TTL,
            "bearer token",
            "it is not meant for this API",
        ))
    }

    /// Issues an access token of session `session` valid for [`ACCESS_TOKEN_TTL`] from `now`.
    ///
    /// # Errors
    /// 500 when signing fails.
    pub fn issue(
        &self,
        user: UserId,
        tenant: TenantId,
        session: SessionId,
        now: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>), AppError> {
        let exp = now + ACCESS_TOKEN_TTL;
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: user.to_string(),
            tid: tenant.to_string(),
            sid: session.to_string(),
            iat: now.timestamp(),
            exp: exp.timestamp(),
            jti: uuid::Uuid::new_v4().to_string(),
        };
        Ok((self.0.encode(&claims)?, exp))
    }

    /// Verifies signature (HS256 only; `alg: none` and every other algorithm are refused),
    /// issuer, audience and expiry against `now`.
    ///
    /// # Errors
    /// 401 with the reason.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, AppError> {
        self.0.verify(token, now, |c: &Claims| (c.iat, c.exp))
    }
}

/// The `aud` claim of platform-admin tokens: the admin API only. A tenant user's token (aud
/// [`AUDIENCE`]) is refused by the admin API and an admin's token by the tenant API.
pub const ADMIN_AUDIENCE: &str = "montecarlo-admin";

/// Platform-admin token lifetime (the session row it names lives as long).
pub const ADMIN_TOKEN_TTL: Duration = Duration::minutes(15);

/// Platform-admin token claims.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AdminClaims {
    /// Issuer: [`ISSUER`].
    pub iss: String,
    /// Audience: [`ADMIN_AUDIENCE`].
    pub aud: String,
    /// Administrator id (`adm_…`).
    pub sub: String,
    /// Session id (`platform.admin_sessions.id`); a revoked session refuses the token.
    /// (Defaulted when decoding, so a tenant token is refused for its audience, not its shape.)
    #[serde(default)]
    pub sid: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
}

/// HS256 keys for platform-admin tokens (same secret as access tokens, own audience).
pub struct AdminJwt(Hs256);

impl AdminJwt {
    /// Keys from the configured secret.
    pub fn new(secret: &[u8]) -> Self {
        Self(Hs256::new(
            secret,
            ADMIN_AUDIENCE,
            ADMIN_TOKEN_TTL,
            "admin token",
            "it is not a platform-admin token (sign in with POST /api/v1/admin/auth/login)",
        ))
    }

    /// Issues a token for `admin`'s session `sid`, valid for [`ADMIN_TOKEN_TTL`] from `now`.
    ///
    /// # Errors
    /// 500 when signing fails.
    pub fn issue(
        &self,
        admin: crate::domain::AdminId,
        sid: uuid::Uuid,
        now: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>), AppError> {
        let exp = now + ADMIN_TOKEN_TTL;
        let claims = AdminClaims {
            iss: ISSUER.into(),
            aud: ADMIN_AUDIENCE.into(),
            sub: admin.to_string(),
            sid: sid.to_string(),
            iat: now.timestamp(),
            exp: exp.timestamp(),
        };
        Ok((self.0.encode(&claims)?, exp))
    }

    /// Verifies signature (HS256 only), issuer, audience and expiry against `now`.
    ///
    /// # Errors
    /// 401 with the reason.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<AdminClaims, AppError> {
        self.0.verify(token, now, |c: &AdminClaims| (c.iat, c.exp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_expire() {
        let keys = JwtKeys::new(&[7u8; 32]);
        let now = Utc::now();
        let (token, exp) = keys
            .issue(UserId::new(), TenantId::new(), SessionId::new(), now)
            .unwrap();
        assert_eq!((exp - now).num_minutes(), 15);
        assert!(keys.verify(&token, now).is_ok());
        assert!(keys.verify(&token, now + Duration::minutes(16)).is_err());
        let other = JwtKeys::new(&[8u8; 32]);
        assert!(other.verify(&token, now).is_err());
    }

    #[test]
    fn foreign_issuer_or_audience_is_refused() {
        let secret = [7u8; 32];
        let keys = JwtKeys::new(&secret);
        let now = Utc::now();
        let forge = |iss: &str, aud: &str| {
            let claims = serde_json::json!({"iss": iss, "aud": aud, "sub": UserId::new().to_string(),
                "tid": TenantId::new().to_string(), "sid": SessionId::new().to_string(), "iat": now.timestamp(),
                "exp": now.timestamp() + 60, "jti": "x"});
            encode(
                &Header::new(jsonwebtoken::Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(&secret),
            )
            .unwrap()
        };
        assert!(keys.verify(&forge(ISSUER, AUDIENCE), now).is_ok());
        assert!(keys.verify(&forge("someone-else", AUDIENCE), now).is_err());
        assert!(keys.verify(&forge(ISSUER, "another-api"), now).is_err());
    }

    #[test]
    fn admin_and_user_tokens_are_not_interchangeable() {
        let secret = [7u8; 32];
        let (users, admins) = (JwtKeys::new(&secret), AdminJwt::new(&secret));
        let now = Utc::now();
        let admin = crate::domain::AdminId::new();
        let sid = uuid::Uuid::now_v7();
        let (token, exp) = admins.issue(admin, sid, now).unwrap();
        assert_eq!(exp - now, ADMIN_TOKEN_TTL);
        let claims = admins.verify(&token, now).unwrap();
        assert_eq!(
            (claims.sub, claims.sid),
            (admin.to_string(), sid.to_string())
        );
        assert!(admins.verify(&token, exp).is_err(), "expired at exp");
        assert!(
            users.verify(&token, now).is_err(),
            "an admin token is not a user token"
        );
        let (user_token, _) = users
            .issue(
                UserId::new(),
                TenantId::new(),
                crate::domain::SessionId::new(),
                now,
            )
            .unwrap();
        let e = admins.verify(&user_token, now).unwrap_err();
        assert!(e.to_string().contains("not a platform-admin token"), "{e}");
    }

    #[test]
    fn alg_none_is_refused() {
        use base64::Engine;
        let keys = JwtKeys::new(&[7u8; 32]);
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let now = Utc::now().timestamp();
        let header = b64.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let body = b64.encode(format!(
            r#"{{"sub":"usr_{}","tid":"ten_{}","role":"owner","iat":{now},"exp":{},"jti":"x"}}"#,
            uuid::Uuid::nil(),
            uuid::Uuid::nil(),
            now + 60
        ));
        assert!(
            keys.verify(&format!("{header}.{body}."), Utc::now())
                .is_err()
        );
    }
}
