//! How to reach the NATS server: its address, credentials, TLS and the
//! subject prefix, shared by nodes and clients.

use std::{fmt, path::PathBuf, time::Duration};

use knitting::{Error, ErrorKind};

use crate::protocol;

/// Where the NATS server is and how to log in: used by
/// [`Node::serve`](crate::Node::serve) and
/// [`RemotePool::connect`](crate::RemotePool::connect).
///
/// ```
/// let nats = knitting_nats::Nats::new("nats://127.0.0.1:4222")
///     .prefix("billing")
///     .user_and_password("billing", "secret");
/// assert_eq!(nats.subject_prefix(), "billing");
/// ```
#[derive(Clone)]
pub struct Nats {
    url: String,
    prefix: String,
    auth: Auth,
    require_tls: bool,
    root_certificates: Vec<PathBuf>,
    client_certificate: Option<(PathBuf, PathBuf)>,
    connection_timeout: Duration,
}

#[derive(Clone)]
enum Auth {
    None,
    UserAndPassword(String, String),
    Token(String),
    Nkey(String),
}

impl Nats {
    /// The server at `url` (`nats://host:port`, `tls://host:port`, or
    /// several separated by commas), with no credentials and the subject
    /// prefix `knitting`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "knitting".into(),
            auth: Auth::None,
            require_tls: false,
            root_certificates: Vec::new(),
            client_certificate: None,
            connection_timeout: Duration::from_secs(5),
        }
    }

    /// The first token(s) of every subject this side uses (default
    /// `knitting`): two applications on one NATS server with different
    /// prefixes share no subject, so a client of one never reaches a node
    /// of the other. It must be NATS subject tokens without wildcards
    /// (`billing`, `billing.prod`); connecting fails otherwise.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The subject prefix (see [`prefix`](Self::prefix)).
    pub fn subject_prefix(&self) -> &str {
        &self.prefix
    }

    /// Logs in with a user name and password.
    pub fn user_and_password(
        mut self,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.auth = Auth::UserAndPassword(user.into(), password.into());
        self
    }

    /// Logs in with a token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.auth = Auth::Token(token.into());
        self
    }

    /// Logs in with an nkey seed (`SU...`).
    pub fn nkey(mut self, seed: impl Into<String>) -> Self {
        self.auth = Auth::Nkey(seed.into());
        self
    }

    /// Refuses a connection that is not TLS.
    pub fn require_tls(mut self, required: bool) -> Self {
        self.require_tls = required;
        self
    }

    /// Trusts the CA certificates in this PEM file (for a server whose
    /// certificate the system does not trust).
    pub fn root_certificates(mut self, pem: impl Into<PathBuf>) -> Self {
        self.root_certificates.push(pem.into());
        self
    }

    /// Presents this client certificate and key (PEM files) to a server
    /// that verifies clients.
    pub fn client_certificate(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client_certificate = Some((cert.into(), key.into()));
        self
    }

    /// How long connecting may take (default 5 s).
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// Connects, naming the connection `name` on the server. Fails with a
    /// [`Build`](ErrorKind::Build) error that names the server and the
    /// reason (refused, wrong credentials, no TLS where it is required).
    pub(crate) async fn connect(
        &self,
        name: &str,
        events: impl Fn(async_nats::Event) + Send + Sync + 'static,
    ) -> Result<async_nats::Client, Error> {
        if !protocol::valid_prefix(&self.prefix) {
            return Err(Error::new(
                ErrorKind::Build,
                format!(
                    "the subject prefix {:?} is not NATS subject tokens without wildcards \
                     (for example `billing` or `billing.prod`)",
                    self.prefix
                ),
            ));
        }
        let mut options = match &self.auth {
            Auth::None => async_nats::ConnectOptions::new(),
            Auth::UserAndPassword(user, password) => {
                async_nats::ConnectOptions::with_user_and_password(user.clone(), password.clone())
            }
            Auth::Token(token) => async_nats::ConnectOptions::with_token(token.clone()),
            Auth::Nkey(seed) => async_nats::ConnectOptions::with_nkey(seed.clone()),
        };
        options = options
            .name(name)
            .require_tls(self.require_tls)
            .connection_timeout(self.connection_timeout)
            .event_callback(move |event| {
                events(event);
                async {}
            });
        for pem in &self.root_certificates {
            options = options.add_root_certificates(pem.clone());
        }
        if let Some((cert, key)) = &self.client_certificate {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        options.connect(self.url.as_str()).await.map_err(|e| {
            Error::new(
                ErrorKind::Build,
                format!("could not connect to the NATS server at {}: {e}", self.url),
            )
        })
    }
}

impl fmt::Debug for Nats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match self.auth {
            Auth::None => "none",
            Auth::UserAndPassword(..) => "user and password",
            Auth::Token(_) => "token",
            Auth::Nkey(_) => "nkey",
        };
        // Never the secrets themselves.
        f.debug_struct("Nats")
            .field("url", &self.url)
            .field("prefix", &self.prefix)
            .field("auth", &auth)
            .field("require_tls", &self.require_tls)
            .finish_non_exhaustive()
    }
}

/// A small tokio runtime of our own, so that callers need none: one worker
/// thread named `name`.
pub(crate) fn runtime(name: &str) -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(|e| {
            Error::new(
                ErrorKind::Build,
                format!("could not start the {name} runtime: {e}"),
            )
        })
}
