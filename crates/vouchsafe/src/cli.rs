//! Command-line flags (clap). Raw flags only; `config.rs` turns them, with
//! the file and the environment, into a validated configuration.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "vouchsafe", version, about = "Self-hosted identity verification server")]
pub struct Cli {
    /// TOML configuration file (also VOUCHSAFE_CONFIG).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// sqlite://PATH or postgres://… (also VOUCHSAFE_DATABASE_URL); default sqlite://vouchsafe.db.
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the schema, the tenant `default` and an admin API key.
    Init(JsonFlag),
    /// Run the HTTP server.
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Manage tenants.
    #[command(subcommand)]
    Tenants(TenantsCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// TOTP tools for automation users.
    #[command(subcommand)]
    Totp(TotpCommand),
    /// Manage users' authenticators.
    #[command(subcommand)]
    Authenticators(AuthenticatorsCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Manage webhook endpoints.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Register an endpoint (as `POST /v1/webhook-endpoints` does) and print
    /// its signing secret, shown only now.
    Create {
        /// Tenant name.
        #[arg(long, default_value = "default")]
        tenant: String,
        /// The receiver's HTTPS URL.
        #[arg(long)]
        url: String,
        /// Comma-separated event types (`caller_verification.completed,…`); every event when left out.
        #[arg(long, value_delimiter = ',')]
        events: Option<Vec<String>>,
        /// What the endpoint is for.
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check a tenant's audit chain with the master key and print its head
    /// hash, to record outside the database. Exits 1 if the chain is broken.
    Verify {
        /// Tenant name.
        #[arg(long, default_value = "default")]
        tenant: String,
        #[command(flatten)]
        json: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuthenticatorsCommand {
    /// Import TOTP and HOTP tokens from another system: one
    /// `USER_ID,otpauth://…` per line (blank lines and `#` comments skipped).
    Import {
        /// Tenant name.
        #[arg(long, default_value = "default")]
        tenant: String,
        /// The file of tokens.
        file: PathBuf,
        /// Replace a user's active token of the same type (without it, the
        /// import refuses and writes nothing).
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
}

#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (also VOUCHSAFE_LISTEN); default 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Base of absolute links (also VOUCHSAFE_PUBLIC_URL); default http:// + the listen address.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Create a tenant (with its default service and settings).
    Create {
        /// Lower-case slug: a-z, 0-9, - and _.
        name: String,
        #[command(flatten)]
        json: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an API key; its secret is printed once.
    Create {
        /// Tenant name.
        #[arg(long)]
        tenant: String,
        /// admin, agent or webhook.
        #[arg(long)]
        role: String,
        /// A label for people.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
pub enum TotpCommand {
    /// Print the current TOTP code (same defaults as Google Authenticator and pyotp).
    Code(TotpCodeArgs),
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["secret", "secret_env", "uri"]))]
pub struct TotpCodeArgs {
    /// Base32 secret (spaces and lower case are fine).
    #[arg(long, value_name = "BASE32")]
    pub secret: Option<String>,
    /// Name of an environment variable holding the base32 secret (keeps it out of `ps`).
    #[arg(long, value_name = "VAR")]
    pub secret_env: Option<String>,
    /// A whole otpauth://totp/… URI; its parameters are used unless flags override them.
    #[arg(long, value_name = "URI")]
    pub uri: Option<String>,
    /// Digits, 6–8.
    #[arg(long)]
    pub digits: Option<u32>,
    /// Seconds per code.
    #[arg(long)]
    pub period: Option<u64>,
    /// SHA1, SHA256 or SHA512.
    #[arg(long)]
    pub algorithm: Option<String>,
    /// Unix time to compute the code for (default: now).
    #[arg(long, value_name = "UNIX")]
    pub time: Option<u64>,
    #[command(flatten)]
    pub json: JsonFlag,
}
