//! Secrets in the configuration: values redacted in Debug, and the server key (from the
//! environment, or generated into the data directory on first start).

#[allow(unused_imports)]
use super::*;

/// A string that never shows in Debug output or logs.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The 32-byte server key that encrypts secrets at rest (TOTP secrets, signing keys).
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub(super) fn decode(text: &str) -> Option<Self> {
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text))
            .ok()?;
        Some(Self(bytes.try_into().ok()?))
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey([redacted])")
    }
}

const KEY_HELP: &str =
    "32 random bytes in base64, for example the output of `openssl rand -base64 32`";

/// The key comes from `PORTCULLIS_SECRET_KEY`, else from a key file (`secret_key_file`, or
/// `secret.key` in the data directory), which is generated on first start — but not on a
/// shared database (`shared`: Postgres), where every node needs the same key and a generated
/// one would be this node's alone.
pub(super) fn load_secret_key(raw: &RawConfig, shared: bool) -> Result<SecretKey, ConfigError> {
    if let Some(text) = raw.secret_key.as_deref() {
        return SecretKey::decode(text).ok_or_else(|| {
            ConfigError(format!(
                "PORTCULLIS_SECRET_KEY (secret_key) must be {KEY_HELP}"
            ))
        });
    }
    let path = raw
        .secret_key_file
        .clone()
        .unwrap_or_else(|| raw.data_dir.join("secret.key"));
    match std::fs::read_to_string(&path) {
        Ok(text) => SecretKey::decode(&text).ok_or_else(|| {
            ConfigError(format!(
                "the key file {} must hold {KEY_HELP}",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if raw.secret_key_file.is_some() {
                return Err(ConfigError(format!(
                    "PORTCULLIS_SECRET_KEY_FILE points to {}, which does not exist",
                    path.display()
                )));
            }
            if shared {
                return Err(ConfigError(format!(
                    "on Postgres every node must be given the same secret key: set \
                     PORTCULLIS_SECRET_KEY (or PORTCULLIS_SECRET_KEY_FILE) to {KEY_HELP}"
                )));
            }
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            write_private_file(&path, STANDARD.encode(bytes).as_bytes()).map_err(|e| {
                ConfigError(format!(
                    "cannot write a new secret key to {} ({e}); make the data directory writable \
                     or set PORTCULLIS_SECRET_KEY",
                    path.display()
                ))
            })?;
            tracing::warn!(
                path = %path.display(),
                "generated a new secret key; back it up with the database, it encrypts secrets at rest"
            );
            Ok(SecretKey(bytes))
        }
        Err(e) => Err(ConfigError(format!(
            "cannot read the key file {} ({e})",
            path.display()
        ))),
    }
}

/// Creates a file readable only by its owner, failing if it already exists.
pub(super) fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Hides the password in a URL (`postgres://user:***@host/db`).
pub fn redact_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "[unparseable URL]".into(),
    }
}
