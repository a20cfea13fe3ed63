//! Issuing tokens: a person's (code exchange, API sign-in, refresh rotation) and a client's own.

use super::claims::{self, AccessClaims, Holder, IdClaims};
use super::keys::SigningKey;
use super::{Internal, TokenService, TokenSet, jwt};
use crate::audit::RequestMeta;
use crate::clients::{Client, GRANT_REFRESH_TOKEN};
use crate::crypto;
use crate::store::{RefreshTokenRow, User};

/// A person's grant, as a code or a refresh token carries it.
pub struct PersonGrant<'a> {
    pub client: &'a Client,
    pub user: &'a User,
    /// What the person granted; a refresh token keeps exactly this (RFC 6749 §6).
    pub scope: &'a [String],
    /// This access token's scope: the grant's, or a narrower one asked for at refresh.
    pub access_scope: &'a [String],
    /// RFC 8707 resources granted at authorization (kept by the refresh token).
    pub resources: &'a [String],
    /// This access token's audience.
    pub audience: Vec<String>,
    pub nonce: Option<&'a str>,
    pub auth_time: i64,
    /// Methods recorded at sign-in (`pwd`, `totp`, …).
    pub methods: &'a [String],
}

/// Where a grant's refresh token comes from.
pub enum Lineage<'a> {
    /// A code exchange starts a new family.
    Code { code_hash: &'a str },
    /// A first-party API sign-in starts a new family.
    SignIn,
    /// A refresh continues the family of the token it rotates.
    Rotation {
        family_id: &'a str,
        family_created_at: i64,
        old_hash: &'a str,
    },
}

/// What issuing a person's tokens came to.
pub enum Issued {
    Tokens(TokenSet),
    /// The rotated token was used already: a reuse, or the loser of two racing refreshes.
    AlreadyRotated,
    /// The code was redeemed a second time while its tokens were made: they are stored (so
    /// the replay can end them, RFC 6749 §4.1.2) and must not be handed out.
    CodeReplayed,
}

fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

impl TokenService {
    /// The audience of a token for `client`: the requested resources, else the granted ones,
    /// else the default (the issuer; the API's audience for the first-party API).
    pub(super) fn audience(&self, client: &Client, resources: &[String]) -> Vec<String> {
        if client.is_first_party() {
            vec![self.api_audience()]
        } else if resources.is_empty() {
            vec![self.issuer.to_string()]
        } else {
            resources.to_vec()
        }
    }

    /// The key that signs new tokens now.
    fn signing_key(&self) -> Result<std::sync::Arc<SigningKey>, Internal> {
        Ok(self
            .keys
            .snapshot()
            .active(self.alg, self.clock.now())
            .ok_or_else(|| anyhow::anyhow!("no active signing key"))?)
    }

    /// Access token, ID token (with `openid`, on a code exchange) and refresh token (with
    /// `offline_access`, on every rotation, and always for the first-party API).
    pub(super) async fn person_tokens(
        &self,
        meta: &RequestMeta,
        grant: &PersonGrant<'_>,
        session_epoch: i64,
        lineage: Lineage<'_>,
    ) -> Result<Issued, Internal> {
        let now = self.clock.now();
        let client = grant.client;
        let (family_id, family_created_at) = match lineage {
            Lineage::Rotation {
                family_id,
                family_created_at,
                ..
            } => (family_id.to_string(), family_created_at),
            Lineage::Code { .. } | Lineage::SignIn => (new_id(), now),
        };
        let jti = new_id();
        let scope = grant.access_scope.join(" ");
        let access = claims::access_token(
            &AccessClaims {
                issuer: &self.issuer,
                client_id: &client.id,
                scope: &scope,
                audience: &grant.audience,
                now,
                ttl: client.access_token_ttl,
                jti: &jti,
            },
            &Holder::Person {
                user: grant.user,
                auth_time: grant.auth_time,
                family: &family_id,
            },
        );
        let key = self.signing_key()?;
        let access_token = jwt::sign(&key, "at+jwt", &access)?;
        // OIDC Core §12.2: a refresh response "might not contain an id_token". We leave it out:
        // it would repeat the sign-in facts of the first one and double the signing cost.
        let id_token = match lineage {
            Lineage::Code { .. } if grant.scope.iter().any(|s| s == "openid") => {
                let id = claims::id_token(
                    &IdClaims {
                        issuer: &self.issuer,
                        client_id: &client.id,
                        user: grant.user,
                        scope: grant.scope,
                        nonce: grant.nonce,
                        auth_time: grant.auth_time,
                        methods: grant.methods,
                        now,
                    },
                    key.alg,
                    &access_token,
                );
                Some(jwt::sign(&key, "JWT", &id)?)
            }
            _ => None,
        };
        // A rotation always hands on the grant (RFC 6749 §6), even when this access token's
        // scope is narrower; a new grant gets one with offline_access or for the API.
        let wants_refresh = match lineage {
            Lineage::Rotation { .. } => true,
            Lineage::Code { .. } | Lineage::SignIn => {
                client.is_first_party() || grant.scope.iter().any(|s| s == "offline_access")
            }
        };
        let next = (wants_refresh && client.allows_grant(GRANT_REFRESH_TOKEN)).then(|| {
            let token = crypto::random_token();
            let row = RefreshTokenRow {
                token_hash: crypto::sha256_hex(&token),
                family_id: family_id.clone(),
                client_id: client.id.clone(),
                user_id: grant.user.id.clone(),
                scope: grant.scope.join(" "),
                resources: grant.resources.join(" "),
                auth_time: grant.auth_time,
                amr: grant.methods.join(" "),
                session_epoch,
                code_hash: match lineage {
                    Lineage::Code { code_hash } => Some(code_hash.to_string()),
                    Lineage::SignIn | Lineage::Rotation { .. } => None,
                },
                created_at: now,
                expires_at: now + client.refresh_token_ttl,
                rotated_at: None,
                revoked_at: None,
                ip: meta.ip.clone(),
                user_agent: meta.user_agent.clone(),
                family_created_at: Some(family_created_at),
            };
            (token, row)
        });
        match lineage {
            // The refresh token first, then the access token's id with the code's replay mark
            // read in the same statement: a second redemption marks the code before it looks
            // for the tokens, so either it finds both or this statement sees its mark.
            Lineage::Code { code_hash } => {
                if let Some((_, row)) = &next {
                    self.store.insert_refresh_token(row).await?;
                }
                if self.store.set_code_access_jti(code_hash, &jti).await? {
                    return Ok(Issued::CodeReplayed);
                }
            }
            Lineage::SignIn => {
                if let Some((_, row)) = &next {
                    self.store.insert_refresh_token(row).await?;
                }
            }
            // One transaction: the old token is marked rotated and its successor stored, or
            // neither (a reuse).
            Lineage::Rotation { old_hash, .. } => {
                let row = next.as_ref().map(|(_, row)| row);
                if !self.store.rotate_refresh_token(old_hash, now, row).await? {
                    return Ok(Issued::AlreadyRotated);
                }
            }
        }
        Ok(Issued::Tokens(TokenSet {
            access_token,
            expires_in: client.access_token_ttl,
            scope: (!client.is_first_party()).then_some(scope),
            id_token,
            refresh_token: next.map(|(token, _)| token),
        }))
    }

    /// A first-party API sign-in: a new token family for `user`.
    pub async fn sign_in(
        &self,
        meta: &RequestMeta,
        user: &User,
        methods: &[String],
    ) -> Result<TokenSet, Internal> {
        let client = self.first_party.clone();
        let grant = PersonGrant {
            client: &client,
            user,
            scope: &[],
            access_scope: &[],
            resources: &[],
            audience: self.audience(&client, &[]),
            nonce: None,
            auth_time: self.clock.now(),
            methods,
        };
        match self
            .person_tokens(meta, &grant, user.session_epoch, Lineage::SignIn)
            .await?
        {
            Issued::Tokens(tokens) => {
                self.metrics.token_issued("api_sign_in");
                Ok(tokens)
            }
            Issued::AlreadyRotated | Issued::CodeReplayed => {
                Err(anyhow::anyhow!("a new sign-in has no code or token before it").into())
            }
        }
    }

    /// RFC 6749 §4.4: a client acting for itself; the token's subject is the client. `scope`
    /// and `resources` were checked against the client by the caller.
    pub fn client_token(
        &self,
        client: &Client,
        scope: &str,
        resources: &[String],
    ) -> Result<TokenSet, Internal> {
        let jti = new_id();
        let audience = self.audience(client, resources);
        let claims = claims::access_token(
            &AccessClaims {
                issuer: &self.issuer,
                client_id: &client.id,
                scope,
                audience: &audience,
                now: self.clock.now(),
                ttl: client.access_token_ttl,
                jti: &jti,
            },
            &Holder::Client,
        );
        let access_token = jwt::sign(&*self.signing_key()?, "at+jwt", &claims)?;
        self.metrics.token_issued("client_credentials");
        Ok(TokenSet {
            access_token,
            expires_in: client.access_token_ttl,
            scope: (!scope.is_empty()).then(|| scope.to_string()),
            id_token: None,
            refresh_token: None,
        })
    }
}
