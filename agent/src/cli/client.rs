//! The client side of the REST API, shared by every command that asks a node
//! (`status`, `overview`, `group`, `dataflow` (`validate` with `--remote`
//! only), `worker`, `enrollment-token`, `events`, `tap`): the flags that name the node, the token, the output
//! format and the revision a write is based on, their defaults from the
//! local configuration, the one function that sends a request and reads the
//! answer, how answers are printed, and the exit code of each failure.

use std::{net::SocketAddr, ops::ControlFlow, process::ExitCode, time::Duration};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use datascale_dataflow::ValidationError;
use datascale_http::auth;
use datascale_protocol::Mode;
use reqwest::{Method, StatusCode, Url, header::IF_MATCH};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{EXIT_CONFIG, GlobalArgs, emit};
use crate::config::{Config, ConfigError, TOKEN_ENV, URL_ENV};

/// The exit codes of the commands that ask a node, for their help.
pub const EXIT_CODES: &str = "\
Exit codes: 0 success; 1 the server refused or failed the request, or a local
file is wrong; 2 wrong usage; 3 cannot reach the server; 4 not found; 5
conflict (exists already, still in use, or changed meanwhile); 78 invalid
local configuration.";

const EXIT_UNREACHABLE: u8 = 3;
const EXIT_NOT_FOUND: u8 = 4;
const EXIT_CONFLICT: u8 = 5;

/// How long a request may take. A write waits up to 10 s on the node for
/// its local worker to apply it before it answers.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Which node to ask, and with which token.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub struct NodeArgs {
    /// API URL of the node [default: service.address of the local
    /// configuration]
    #[arg(long, env = URL_ENV, value_name = "URL", value_parser = parse_base)]
    url: Option<Url>,
    /// Token to present [default: the local configuration's, or the one
    /// stored in data_dir]
    #[arg(long, env = TOKEN_ENV, value_name = "TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// Which node to ask, with which token, and how to print its answers.
#[derive(Debug, Args)]
pub struct ClientArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

/// The revision a write is based on.
#[derive(Debug, Args)]
pub struct IfMatchArg {
    /// Change it only if it is still at this revision (as `list`, `get` and
    /// `-o json` show); exits 5 when it changed meanwhile.
    #[arg(long = "if-match", id = "if_match", value_name = "REVISION")]
    pub revision: Option<u64>,
}

/// How a command prints its answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Lines and aligned columns for people.
    Table,
    /// The API's JSON, for scripts.
    Json,
}

/// A connection to one node's API.
pub struct Client {
    base: Url,
    token: String,
    output: Output,
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

/// A request that got no answer, or an answer that refuses it.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answered at the URL in time.
    #[error("cannot reach the DataScale API at {base}: {reason}; is `datascale start` running?")]
    Unreachable {
        /// The node's URL.
        base: String,
        /// Why, from the connection.
        reason: String,
    },
    /// The node answered with an error.
    #[error("{}", .0.message)]
    Refused(Refusal),
}

/// The error a node answered: its status and the API's error object.
#[derive(Debug, Serialize, Deserialize)]
pub struct Refusal {
    /// The HTTP status.
    #[serde(skip)]
    status: u16,
    /// The API's error code, such as `not_found`.
    code: String,
    /// What went wrong, for people.
    message: String,
    /// For an invalid dataflow, every problem with its path.
    #[serde(default)]
    details: Vec<ValidationError>,
}

/// The body of an error answer.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: Refusal,
}

impl Refusal {
    fn new(status: StatusCode, code: &str, message: String) -> Self {
        Self {
            status: status.as_u16(),
            code: code.to_owned(),
            message,
            details: Vec::new(),
        }
    }
}

impl ClientArgs {
    /// Runs `command` with a client of the node these flags name, prints
    /// its failure if any, and returns the exit code.
    pub fn run(
        self,
        global: &GlobalArgs,
        command: impl FnOnce(&Client) -> anyhow::Result<()>,
    ) -> ExitCode {
        self.node.run(global, self.output, command)
    }
}

impl NodeArgs {
    /// Runs `command` with a client of the node these flags name that
    /// prints as `output`, prints its failure if any, and returns the exit
    /// code.
    pub fn run(
        self,
        global: &GlobalArgs,
        output: Output,
        command: impl FnOnce(&Client) -> anyhow::Result<()>,
    ) -> ExitCode {
        match self
            .connect(global, output)
            .and_then(|client| command(&client))
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => failure(&err, output),
        }
    }

    /// The client; the local configuration is read only for what the flags
    /// and the environment leave out.
    fn connect(self, global: &GlobalArgs, output: Output) -> anyhow::Result<Client> {
        let (base, token) = match (self.url, self.token) {
            (Some(url), Some(token)) => (url, token),
            (url, token) => {
                let config = global.load_config(Vec::new())?.config;
                let base = url.unwrap_or_else(|| local_url(config.service.address));
                let token = match token {
                    Some(token) => token,
                    None => local_token(&config)?,
                };
                (base, token)
            }
        };
        let http = reqwest::Client::builder().timeout(TIMEOUT).build()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("the async runtime starts");
        Ok(Client {
            base,
            token,
            output,
            http,
            runtime,
        })
    }
}

impl Client {
    /// The URL of `/api/v1/` and `segments`, each escaped.
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("--url was checked to take a path")
            .pop_if_empty()
            .extend(["api", "v1"])
            .extend(segments);
        url
    }

    /// Reads `url`: [`Client::send`] of a GET.
    pub fn get(&self, url: Url) -> anyhow::Result<Value> {
        self.send(Method::GET, url, None, None)
    }

    /// Sends one request, with `body` as JSON and, for a write based on a
    /// revision, `If-Match: "<if_match>"`, and returns the answer's JSON
    /// (`Null` when empty); an error answer becomes [`ClientError::Refused`]
    /// and no answer [`ClientError::Unreachable`].
    pub fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        if_match: Option<u64>,
    ) -> anyhow::Result<Value> {
        let shown = url.to_string();
        let mut request = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(revision) = if_match {
            request = request.header(IF_MATCH, format!("\"{revision}\""));
        }
        self.answer(&shown, request)
    }

    /// POSTs `bytes` as `application/gzip` to `url`, and returns the
    /// answer as [`Client::send`] does.
    pub fn upload(&self, url: Url, bytes: Vec<u8>) -> anyhow::Result<Value> {
        let shown = url.to_string();
        let request = self
            .http
            .post(url)
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/gzip")
            .body(bytes);
        self.answer(&shown, request)
    }

    /// Sends `request` and reads its answer's JSON.
    fn answer(&self, shown: &str, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let (status, bytes) = self
            .runtime
            .block_on(async {
                let response = request.send().await?;
                let status = response.status();
                Ok((status, response.bytes().await?))
            })
            .map_err(|err| self.unreachable(&err))?;
        if status.is_success() {
            if bytes.is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&bytes).with_context(|| {
                format!("{shown} answered {status} with something else than JSON")
            });
        }
        Err(self.refusal(shown, status, &bytes).into())
    }

    /// Reads the server-sent events at `url`, giving the data of each to
    /// `each`, until it says to stop or the stream ends. Only the answer's
    /// start is bound by the usual timeout: the stream may go on for hours.
    pub fn follow_events(
        &self,
        url: Url,
        mut each: impl FnMut(&str) -> ControlFlow<()>,
    ) -> anyhow::Result<()> {
        let shown = url.to_string();
        let http = reqwest::Client::builder()
            .connect_timeout(TIMEOUT)
            .build()?;
        self.runtime.block_on(async {
            let request = http.get(url).bearer_auth(&self.token).send();
            let mut response = tokio::time::timeout(TIMEOUT, request)
                .await
                .map_err(|_| ClientError::Unreachable {
                    base: self.shown_base().to_owned(),
                    reason: format!("no answer within {} s", TIMEOUT.as_secs()),
                })?
                .map_err(|err| self.unreachable(&err))?;
            let status = response.status();
            if !status.is_success() {
                let bytes = response.bytes().await.unwrap_or_default();
                return Err(self.refusal(&shown, status, &bytes).into());
            }
            let mut pending = Vec::new();
            let mut data = String::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|err| self.unreachable(&err))?
            {
                pending.extend_from_slice(&chunk);
                while let Some(end) = pending.iter().position(|&byte| byte == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    let line = String::from_utf8_lossy(&line);
                    let line = line.trim_end_matches(['\r', '\n']);
                    if let Some(more) = line.strip_prefix("data:") {
                        data.push_str(more.strip_prefix(' ').unwrap_or(more));
                    } else if line.is_empty() && !data.is_empty() {
                        if each(&data).is_break() {
                            return Ok(());
                        }
                        data.clear();
                    }
                }
            }
            Ok(())
        })
    }

    /// The refusal in an error answer.
    fn refusal(&self, shown: &str, status: StatusCode, bytes: &[u8]) -> ClientError {
        let refusal = match serde_json::from_slice::<ErrorBody>(bytes) {
            _ if status == StatusCode::UNAUTHORIZED => Refusal::new(
                status,
                "unauthorized",
                format!(
                    "{} refused the token; pass the node's token with --token or {TOKEN_ENV}",
                    self.shown_base()
                ),
            ),
            Ok(body) => Refusal {
                status: status.as_u16(),
                ..body.error
            },
            Err(_) => Refusal::new(status, "", format!("{shown} answered {status}")),
        };
        ClientError::Refused(refusal)
    }

    /// Prints an answer: as the API sent it with `-o json`, else as `human`
    /// words it.
    pub fn show(
        &self,
        answer: &Value,
        human: impl FnOnce(&Value) -> anyhow::Result<String>,
    ) -> anyhow::Result<()> {
        let text = match self.output {
            Output::Json => pretty(answer),
            Output::Table => human(answer)?,
        };
        emit(&text);
        Ok(())
    }

    /// Reads the list at `/api/v1/` and `segments`, and prints it: as the
    /// API sent it with `-o json`, else as a table of `headers` with the
    /// `row` of each item.
    pub fn list<const N: usize>(
        &self,
        segments: &[&str],
        headers: [&str; N],
        row: impl Fn(&Value) -> [String; N],
    ) -> anyhow::Result<()> {
        let items = self.get(self.url(segments))?;
        self.show(&items, |items| {
            Ok(table(
                headers,
                items.as_array().into_iter().flatten().map(row),
            ))
        })
    }

    fn shown_base(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    fn unreachable(&self, err: &reqwest::Error) -> ClientError {
        let reason = if err.is_timeout() {
            format!("no answer within {} s", TIMEOUT.as_secs())
        } else {
            // The innermost cause says it best: "Connection refused".
            let mut cause: &dyn std::error::Error = err;
            while let Some(inner) = cause.source() {
                cause = inner;
            }
            cause.to_string()
        };
        ClientError::Unreachable {
            base: self.shown_base().to_owned(),
            reason,
        }
    }
}

impl ClientError {
    /// Every problem of a dataflow document the node refused as invalid.
    pub fn invalid_dataflow(&self) -> Option<&[ValidationError]> {
        match self {
            ClientError::Refused(refusal) if refusal.code == "invalid_dataflow" => {
                Some(&refusal.details)
            }
            _ => None,
        }
    }
}

/// Prints a failure on standard error (and with `-o json` a refusal's
/// error object on standard output) and returns its exit code.
fn failure(err: &anyhow::Error, output: Output) -> ExitCode {
    eprintln!("error: {err:#}");
    let code = match err.downcast_ref::<ClientError>() {
        _ if err.is::<ConfigError>() => EXIT_CONFIG,
        Some(ClientError::Unreachable { .. }) => EXIT_UNREACHABLE,
        Some(ClientError::Refused(refusal)) => {
            for detail in &refusal.details {
                eprintln!("  {detail}");
            }
            if output == Output::Json {
                emit(&pretty(&json!({ "error": refusal })));
            }
            match refusal.status {
                404 => EXIT_NOT_FOUND,
                409 | 412 => EXIT_CONFLICT,
                _ => 1,
            }
        }
        None => 1,
    };
    ExitCode::from(code)
}

/// Checks `--url`: an http(s) URL that a path can follow.
fn parse_base(text: &str) -> Result<Url, String> {
    let url = Url::parse(text)
        .map_err(|err| format!("not a URL ({err}); such as http://master1:7881"))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err("expected an http:// or https:// URL, such as http://master1:7881".to_owned());
    }
    Ok(url)
}

/// The URL at which the local node answers.
fn local_url(address: SocketAddr) -> Url {
    Url::parse(&datascale_http::local_url(address)).expect("a socket address makes a URL")
}

/// The token of the local node: on a manager the admin token (configured or
/// stored in data_dir), on a worker its worker token.
fn local_token(config: &Config) -> anyhow::Result<String> {
    let service = &config.service;
    if service.mode == Mode::Worker {
        return Ok(service.worker.token.clone());
    }
    if !service.manager.admin_token.is_empty() {
        return Ok(service.manager.admin_token.clone());
    }
    let path = auth::token_path(&service.data_dir, "admin");
    let Some(token) =
        auth::read_token("admin", &path).context("run as the service's user, or pass --token")?
    else {
        bail!(
            "no admin token in {}; has this node started once? Or pass --token",
            path.display()
        );
    };
    Ok(token)
}

/// A value as pretty JSON on its own lines.
pub fn pretty(value: &Value) -> String {
    format!(
        "{}\n",
        serde_json::to_string_pretty(value).expect("JSON values serialize")
    )
}

/// A value for a table cell: strings as they are, lists comma-separated,
/// nothing as `-`.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(text) if text.is_empty() => "-".to_owned(),
        Value::String(text) => text.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Names and their values, one pair a line, the values aligned.
pub fn fields<'a>(pairs: impl IntoIterator<Item = (&'a str, String)>) -> String {
    let pairs: Vec<_> = pairs.into_iter().collect();
    let width = pairs.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(name, value)| format!("{name:width$}  {value}\n"))
        .collect()
}

/// Rows under their headers, each column as wide as its widest cell, two
/// spaces apart.
pub fn table<const N: usize>(
    headers: [&str; N],
    rows: impl IntoIterator<Item = [String; N]>,
) -> String {
    let lines: Vec<[String; N]> = std::iter::once(headers.map(str::to_owned))
        .chain(rows)
        .collect();
    let mut widths = [0; N];
    for line in &lines {
        for (width, text) in widths.iter_mut().zip(line) {
            *width = (*width).max(text.chars().count());
        }
    }
    let mut out = String::new();
    for line in &lines {
        let mut row = String::new();
        for (column, (text, width)) in line.iter().zip(widths).enumerate() {
            if column > 0 {
                row.push_str("  ");
            }
            row.push_str(text);
            row.extend(std::iter::repeat_n(' ', width - text.chars().count()));
        }
        out.push_str(row.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_addresses_are_reached_on_loopback() {
        let url = |address: &str| local_url(address.parse().unwrap()).to_string();
        assert_eq!(url("0.0.0.0:7881"), "http://127.0.0.1:7881/");
        assert_eq!(url("[::]:7881"), "http://[::1]:7881/");
        assert_eq!(url("10.1.2.3:80"), "http://10.1.2.3/");
    }

    #[test]
    fn tables_align_their_columns() {
        let text = table(
            ["NAME", "DATAFLOWS"],
            [
                ["default".to_owned(), "0".to_owned()],
                ["e".to_owned(), "12".to_owned()],
            ],
        );
        assert_eq!(text, "NAME     DATAFLOWS\ndefault  0\ne        12\n");
    }

    #[test]
    fn fields_align_their_values() {
        let text = fields([("id", "w-1".to_owned()), ("hostname", "a".to_owned())]);
        assert_eq!(text, "id        w-1\nhostname  a\n");
    }

    #[test]
    fn cells_read_well() {
        assert_eq!(cell(&json!(null)), "-");
        assert_eq!(cell(&json!("")), "-");
        assert_eq!(cell(&json!(["a", "b"])), "a,b");
        assert_eq!(cell(&json!(3)), "3");
    }

    #[test]
    fn the_base_url_must_take_a_path() {
        assert!(parse_base("http://master1:7881").is_ok());
        assert!(parse_base("mailto:ops@example.com").is_err());
        assert!(parse_base("master1:7881").is_err());
    }

    #[test]
    fn paths_are_escaped_below_the_base() {
        let client = Client {
            base: parse_base("http://master1:7881/prefix/").unwrap(),
            token: String::new(),
            output: Output::Table,
            http: reqwest::Client::new(),
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
        };
        assert_eq!(
            client.url(&["groups", "a b/c"]).as_str(),
            "http://master1:7881/prefix/api/v1/groups/a%20b%2Fc"
        );
    }
}
