//! A small TCP chat server, monitored with watchpost.
//!
//! The example runs a real chat server inside the process (a `TcpListener`
//! on an ephemeral port of 127.0.0.1, a thread per connection and a line
//! protocol) and a crowd of simulated users: client threads that connect
//! over TCP, join one of the rooms `general`, `random` and `dev`, chat at
//! random intervals and leave, while new users keep arriving for the whole
//! run.
//!
//! It is instrumented the way an application would use watchpost:
//!
//! - `active_users` (gauge): users currently in a room, raised on `JOIN` and
//!   lowered on `LEAVE` or disconnect;
//! - `messages_total{room}` (counter): messages the server accepted; the
//!   engine derives `messages_total:rate`;
//! - `message_latency_seconds` (histogram): time from a client sending `MSG`
//!   until it reads the server's acknowledgement, measured on the client; the
//!   engine derives `:count_rate`, `:p50`, `:p90` and `:p99`;
//! - `chat_message_length{room}` and `room_occupancy{room}`: business figures
//!   sent with `record()`.
//!
//! Built with the integrations, the example also uses them as a service
//! would (each is optional; without its feature the example works as before):
//!
//! - `--features tracing`: each `MSG` is handled in a `handle_message{room}`
//!   span with a `broadcast` span inside, timed by watchpost's
//!   `TracingLayer`; messages slower than 20 ms (those of the latency spike)
//!   land in its slow-operation log, and the summary prints the slowest
//!   ones and the span statistics; the start of each latency spike is a
//!   WARN event, which the page lists with the slow operations;
//! - `--features metrics`: `messages_total{room}` is counted with the
//!   `metrics` crate's `counter!` macro, through watchpost's
//!   `MetricsRecorder` (the same series as before);
//! - `--features http`: the served routes go through `HttpMetricsLayer`
//!   (`http_server_requests_total{method, route, status_class}` and the
//!   other `http_server_*` series); the summary prints the request counts.
//!
//! Alerts: besides watchpost's default host rules, the example watches its
//! own p90 message latency (`slow_messages`: above 20 ms for 500 ms, resolved
//! below 10 ms). The server slows down for a few seconds now and then (once
//! in a run of fixed length, every minute while serving until Ctrl-C), which
//! takes that alert from pending to firing to resolved. Every notification is
//! logged to stderr, and with `--alerts-log PATH` also written to PATH as JSON
//! Lines (one notification per line).
//!
//! Built with `--features http`, the example serves the live dashboard page
//! on 127.0.0.1:9898 (an ephemeral port if that one is taken), prints its
//! URL with the bearer token, and chats until Ctrl-C (or for `--duration`).
//! `--headless`, or a build without `http`, runs a 10-second scripted
//! scenario without a server and exits. Either way the run ends with a short
//! summary on stdout: alerts fired and resolved, anomalies, the busiest
//! series and where the page was. `--json PATH` also writes the final
//! dashboard snapshot as JSON.
//!
//! Ctrl-C (SIGINT) or SIGTERM stops the run cleanly: the users leave, the
//! engine shuts down and delivers every pending notification, and the summary
//! is printed. A second Ctrl-C exits at once.
//!
//! ```text
//! cargo run --release --features http,metrics,tracing --example chat_server
//! cargo run --release --example chat_server -- --headless --duration 30 --users 40
//! cargo run --release --example chat_server -- --headless --alerts-log alerts.jsonl --json dashboard.json
//! ```
//!
//! # Protocol
//!
//! One command per line, from client to server:
//!
//! - `JOIN <room> <user>`, answered with `OK JOIN <room> <members>`;
//! - `MSG <text>`, answered with `ACK <recipients>` once the server has sent
//!   `FROM <user> <text>` to the other members of the room;
//! - `LEAVE`, answered with `BYE`, after which the server closes the
//!   connection.
//!
//! Anything else is answered with `ERR <reason>`.

use std::fmt::{Display, Write as _};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use watchpost::alert::{
    AlertEvent, AlertRule, JsonLinesNotifier, LogNotifier, NotificationKind, Severity,
};
use watchpost::dashboard::Dashboard;
use watchpost::detect::{DetectorSpec, RobustZConfig};
use watchpost::{Counter, Engine, Gauge, Histogram, Monitor, Recorder, Unit};

/// How often the engine samples every instrument.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(250);

/// How long the server waits before each acknowledgement during the latency spike.
const SPIKE_DELAY: Duration = Duration::from_millis(40);

/// How long a run without a server lasts unless `--duration` says otherwise.
const HEADLESS_DURATION: Duration = Duration::from_secs(10);

/// Where the page is served by default (loopback only).
#[cfg(feature = "http")]
const DEFAULT_SERVE: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9898);

/// While serving until Ctrl-C, the server is slow for seconds 20 to 25 of every minute.
const REPEATED_SPIKE: std::ops::Range<u64> = 20..26;

/// The command that shows the page, for runs without it.
const PAGE_COMMAND: &str =
    "cargo run --release --features http,metrics,tracing --example chat_server";

/// A message handled at least this slowly goes to the slow-operation log
/// (feature `tracing`): the threshold of `slow_messages`.
#[cfg(feature = "tracing")]
const SLOW_MESSAGE: Duration = Duration::from_millis(20);

/// At most this many slow operations are listed in the summary, slowest first.
#[cfg(feature = "tracing")]
const SLOWEST_LISTED: usize = 5;

/// The demo's own alert: p90 message latency above 20 ms for 500 ms (two
/// samples after the first), resolved once it is back under 10 ms. Loopback
/// round trips take well under a millisecond; the spike adds 40 ms.
fn slow_messages_rule() -> watchpost::Result<AlertRule> {
    AlertRule::builder("slow_messages", "message_latency_seconds:p90")
        .above(0.020)
        .recover_below(0.010)
        .pending_for(Duration::from_millis(500))
        .severity(Severity::Warning)
        .label("team", "chat")
        .title("Slow chat messages")
        .message("p90 message latency is {{value_with_unit}} (threshold {{threshold_with_unit}})")
        .build()
}

/// Raised by SIGHUP (with `--config`): the configuration file is to be reloaded.
static RELOAD: AtomicBool = AtomicBool::new(false);

/// Reloads the configuration file whenever [`RELOAD`] is raised; the thread
/// ends with the process.
fn reload_on_signal(monitor: watchpost::Monitor, path: PathBuf) -> watchpost::Result<()> {
    eprintln!(
        "chat_server: configuration from {}; `kill -HUP {}` reloads it",
        path.display(),
        std::process::id()
    );
    let watch = move || {
        loop {
            std::thread::sleep(POLL);
            if !RELOAD.swap(false, Relaxed) {
                continue;
            }
            match monitor.reload_config(&path) {
                Ok(r) => eprintln!(
                    "chat_server: reloaded {}: added {:?}, changed {:?}, removed {:?}, unchanged {}{}",
                    path.display(),
                    r.added,
                    r.changed,
                    r.removed,
                    r.unchanged.len(),
                    if r.restart_required.is_empty() {
                        String::new()
                    } else {
                        format!("; needs a restart: {}", r.restart_required.join(", "))
                    }
                ),
                // Every problem, each with file:line:column; nothing changed.
                Err(e) => eprintln!("chat_server: reload refused, nothing changed:\n{e}"),
            }
        }
    };
    spawn("config-reload".into(), watch)
        .map(drop)
        .map_err(|e| io_error("cannot start the reload thread", &e))
}

/// The rooms users can join. A fixed set keeps the `room` label's
/// cardinality bounded, whatever clients send.
const ROOMS: [&str; 3] = ["general", "random", "dev"];

/// Bucket bounds of `message_latency_seconds`, from 50 µs to 2.5 s: loopback
/// round trips take well under a millisecond, a slow server far longer.
const LATENCY_BUCKETS: [f64; 15] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5,
];

/// Series whose last points the dashboard's `recent_metrics` shows. Counters
/// get a derived `<name>:rate`; histograms `<name>:count_rate`, `:p50`,
/// `:p90` and `:p99`.
const RECENT_METRICS: [&str; 10] = [
    "system_cpu_usage",
    "system_memory_usage",
    "app_memory_usage",
    "active_users",
    "room_occupancy",
    "messages_total:rate",
    "message_latency_seconds:count_rate",
    "message_latency_seconds:p50",
    "message_latency_seconds:p90",
    "message_latency_seconds:p99",
];

/// The series the closing summary lists, in this order.
const SUMMARY_SERIES: [&str; 6] = [
    "active_users",
    "messages_total:rate",
    "message_latency_seconds:p50",
    "message_latency_seconds:p90",
    "message_latency_seconds:p99",
    "app_memory_usage",
];

/// How long a blocked read or the accept loop waits before checking for shutdown.
const POLL: Duration = Duration::from_millis(50);
/// How often the non-blocking accept loop looks for a new connection.
const ACCEPT_POLL: Duration = Duration::from_millis(5);
/// How long a client waits for a reply, and anyone for a write to go through.
const REPLY_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest line either side accepts, in bytes.
const MAX_LINE: u64 = 4096;

const USAGE: &str = "\
Usage: chat_server [--headless] [--duration SECONDS] [--users N] [--alerts-log PATH]
                   [--json PATH] [--serve ADDR] [--state-dir DIR]
                   [--config FILE]

Runs a small TCP chat server with simulated users, monitored by watchpost.
Built with --features http it serves the live dashboard page on
http://127.0.0.1:9898/ (an ephemeral port if taken) and chats until Ctrl-C;
otherwise, or with --headless, it runs a 10-second scenario and exits.
Progress and alert notifications go to stderr; a summary ends the run on stdout.

Options:
  --headless          run the scripted scenario without serving the page, then exit
  --duration SECONDS  how long the users chat (default: 10 headless, until Ctrl-C
                      while serving)
  --users N           simulated users connected at a time (default 12, at most 1000)
  --alerts-log PATH   write every alert notification (firing, resolved, ...) to
                      PATH as JSON Lines, one object per line (created or truncated)
  --json PATH         write the final dashboard snapshot to PATH as JSON ('-' for
                      stdout; the summary then goes to stderr)
  --serve ADDR        serve on ADDR instead (for example 127.0.0.1:0); needs the
                      http feature. Every route but /health and / needs the bearer
                      token printed at start (generated, or WATCHPOST_HTTP_TOKEN).
                      Kept for scripts: with --serve the dashboard JSON goes to
                      stdout unless --json says where
  --alertmanager URL  push alerts to the Alertmanager at URL (v2 API, re-sent every
                      minute while firing); repeatable for an HA pair; needs the
                      example built with --features notify
  --webhook URL       post alerts to URL in Alertmanager's webhook format;
                      repeatable; needs --features notify
  --state-dir DIR     keep alert state, silences and history in DIR, so a restart
                      (even after kill -9) goes on where the last run stopped
  --config FILE       take the engine settings, rules and detectors from FILE
                      (TOML, see examples/chat_server.toml and docs/config.md)
                      instead of the built-in ones; on Unix, SIGHUP reloads it
  --remote-write URL  push every sample to a Prometheus remote-write receiver at
                      URL (with anomaly scores and bands), batches sent within 1 s;
                      needs --features remote-write. The final counters go to
                      stderr as a 'remote write totals' JSON line
  --remote-write-capacity N
                      samples the remote-write queue holds (default 10000)
  -h, --help          print this help

Ctrl-C or SIGTERM stops the run cleanly (pending notifications are delivered
and the summary printed); a second Ctrl-C exits at once.";

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------

/// Whether and where the run serves the monitoring endpoints.
#[derive(Debug, Clone, PartialEq)]
enum Serve {
    /// On 127.0.0.1:9898, or an ephemeral port if taken (with feature `http`).
    Default,
    /// Not at all (`--headless`).
    Headless,
    /// On this address (`--serve ADDR`), with no fallback.
    At(SocketAddr),
}

/// Where the final dashboard JSON goes.
#[derive(Debug, Clone, PartialEq)]
enum JsonOut {
    Stdout,
    File(PathBuf),
}

/// What a run does, from the command line.
#[derive(Debug, Clone, PartialEq)]
struct Config {
    /// How long the simulated users chat; `None` for the default (see [`Config::run_for`]).
    duration: Option<Duration>,
    /// Simulated users connected at a time; each one that leaves is soon
    /// replaced by a new one.
    users: usize,
    /// Where to serve the monitoring endpoints while the chat runs.
    serve: Serve,
    /// Where the JSON Lines alert log goes.
    alerts_log: Option<PathBuf>,
    /// Alertmanagers (base URLs) that get every alert.
    alertmanagers: Vec<String>,
    /// Webhooks that get every alert.
    webhooks: Vec<String>,
    /// Where the final dashboard JSON goes, if anywhere (`--json`).
    json: Option<JsonOut>,
    /// The engine's state directory (`--state-dir`).
    state_dir: Option<PathBuf>,
    /// The configuration file (`--config`), reloaded on SIGHUP.
    settings_file: Option<PathBuf>,
    /// A Prometheus remote-write receiver, and its queue's capacity.
    remote_write: Option<(String, usize)>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            duration: None,
            users: 12,
            serve: Serve::Default,
            alerts_log: None,
            alertmanagers: Vec::new(),
            webhooks: Vec::new(),
            json: None,
            state_dir: None,
            settings_file: None,
            remote_write: None,
        }
    }
}

impl Config {
    /// Whether this run serves the page: not headless, and built with `http`.
    fn serves(&self) -> bool {
        cfg!(feature = "http") && self.serve != Serve::Headless
    }

    /// How long the users chat: `--duration`, else 10 s without a server,
    /// else until Ctrl-C (`None`).
    fn run_for(&self) -> Option<Duration> {
        self.duration.or_else(|| (!self.serves()).then_some(HEADLESS_DURATION))
    }

    /// Where the dashboard JSON goes: `--json`, else stdout for `--serve ADDR`
    /// (what scripts written for it read), else nowhere.
    fn json_out(&self) -> Option<JsonOut> {
        self.json.clone().or_else(|| matches!(self.serve, Serve::At(_)).then_some(JsonOut::Stdout))
    }
}

/// What the command line asks for.
enum Command {
    Run(Box<Config>),
    Help,
}

/// Parses the arguments (without the program name); the error is a message for the user.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut config = Config::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        // Both `--flag value` and `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        match flag {
            "-h" | "--help" => return Ok(Command::Help),
            "--headless" => {
                if inline.is_some() {
                    return Err("--headless takes no value".to_owned());
                }
                if matches!(config.serve, Serve::At(_)) {
                    return Err("--headless and --serve exclude each other".to_owned());
                }
                config.serve = Serve::Headless;
            }
            "--duration" => {
                let value = flag_value(flag, inline, &mut args)?;
                config.duration = Some(Duration::from_secs(parse_number(flag, &value, 1, 86_400)?));
            }
            "--users" => {
                let value = flag_value(flag, inline, &mut args)?;
                config.users = parse_number(flag, &value, 1, 1000)?;
            }
            "--alerts-log" => {
                let value = flag_value(flag, inline, &mut args)?;
                if value.is_empty() {
                    return Err("--alerts-log needs a file path".to_owned());
                }
                config.alerts_log = Some(PathBuf::from(value));
            }
            "--remote-write" => {
                let url = flag_value(flag, inline, &mut args)?;
                if !cfg!(feature = "remote-write") {
                    return Err("--remote-write needs the remote-write feature".to_owned());
                }
                let capacity = config.remote_write.take().map_or(10_000, |r| r.1);
                config.remote_write = Some((url, capacity));
            }
            "--remote-write-capacity" => {
                let value = flag_value(flag, inline, &mut args)?;
                let capacity = parse_number(flag, &value, 100, 10_000_000)?;
                let url = config.remote_write.take().map(|r| r.0).unwrap_or_default();
                config.remote_write = Some((url, capacity));
            }
            "--json" => {
                let value = flag_value(flag, inline, &mut args)?;
                config.json = Some(match value.as_str() {
                    "" => return Err("--json needs a file path, or '-' for stdout".to_owned()),
                    "-" => JsonOut::Stdout,
                    _ => JsonOut::File(PathBuf::from(value)),
                });
            }
            "--serve" => {
                let value = flag_value(flag, inline, &mut args)?;
                if !cfg!(feature = "http") {
                    return Err(format!("--serve needs the http feature: {PAGE_COMMAND}"));
                }
                if config.serve == Serve::Headless {
                    return Err("--headless and --serve exclude each other".to_owned());
                }
                config.serve = Serve::At(value.parse().map_err(|_| {
                    format!("invalid value '{value}' for --serve: expected an address like 127.0.0.1:9898")
                })?);
            }
            "--state-dir" => {
                let value = flag_value(flag, inline, &mut args)?;
                if value.is_empty() {
                    return Err("--state-dir needs a directory".to_owned());
                }
                config.state_dir = Some(PathBuf::from(value));
            }
            "--config" => {
                let value = flag_value(flag, inline, &mut args)?;
                if value.is_empty() {
                    return Err("--config needs a file path".to_owned());
                }
                config.settings_file = Some(PathBuf::from(value));
            }
            "--alertmanager" | "--webhook" => {
                let value = flag_value(flag, inline, &mut args)?;
                if !cfg!(feature = "notify") {
                    return Err(format!(
                        "{flag} needs the notify feature: \
                         cargo run --features notify --example chat_server -- {flag} URL"
                    ));
                }
                if flag == "--alertmanager" {
                    config.alertmanagers.push(value);
                } else {
                    config.webhooks.push(value);
                }
            }
            _ => return Err(format!("unknown argument '{arg}'")),
        }
    }
    Ok(Command::Run(Box::new(config)))
}

fn flag_value(
    flag: &str,
    inline: Option<String>,
    rest: &mut impl Iterator<Item = String>,
) -> Result<String, String> {
    inline.or_else(|| rest.next()).ok_or_else(|| format!("{flag} needs a value"))
}

fn parse_number<T>(flag: &str, value: &str, min: T, max: T) -> Result<T, String>
where
    T: FromStr + PartialOrd + Display + Copy,
{
    match value.parse::<T>() {
        Ok(n) if n >= min && n <= max => Ok(n),
        _ => Err(format!(
            "invalid value '{value}' for {flag}: expected a whole number from {min} to {max}"
        )),
    }
}

fn main() -> ExitCode {
    let config = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Run(config)) => config,
        Ok(Command::Help) => {
            let _ = writeln!(io::stdout(), "{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("chat_server: {message}");
            eprintln!("Try 'chat_server --help' for more information.");
            return ExitCode::from(2);
        }
    };
    // Ctrl-C and SIGTERM ask the run to stop; it then shuts down cleanly. A
    // second one, while that takes long, exits at once. With --config,
    // SIGHUP reloads the file.
    let stop = Arc::new(AtomicBool::new(false));
    let signals = watch_signals(&stop, config.settings_file.is_some());
    let outcome = run(&config, &stop);
    if let Some(signals) = signals {
        signals.close();
    }
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat_server: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The thread that reads signals in the order they arrive (signal-hook's
/// iterator): SIGINT and SIGTERM raise `stop`, and a second one exits at
/// once; SIGHUP raises [`RELOAD`] when `reloads` (with `--config`), and
/// stops like the others otherwise (a closed terminal). Each signal is told
/// apart by its number, so a reload is never taken for a stop.
#[cfg(unix)]
struct SignalWatch {
    handle: signal_hook::iterator::Handle,
    thread: JoinHandle<()>,
}

#[cfg(unix)]
impl SignalWatch {
    /// Stops reading signals and joins the thread.
    fn close(self) {
        self.handle.close();
        join_logged(self.thread);
    }
}

/// Starts the [`SignalWatch`]; `None` (with a note on stderr) if signals
/// cannot be handled: Ctrl-C then ends the run abruptly.
#[cfg(unix)]
fn watch_signals(stop: &Arc<AtomicBool>, reloads: bool) -> Option<SignalWatch> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = match signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("chat_server: cannot handle signals ({e}); Ctrl-C will end the run abruptly");
            return None;
        }
    };
    let handle = signals.handle();
    let stop = Arc::clone(stop);
    let read = move || {
        for signal in signals.forever() {
            if signal == SIGHUP && reloads {
                RELOAD.store(true, Relaxed);
            } else if stop.swap(true, Relaxed) {
                std::process::exit(130);
            }
        }
    };
    match spawn("signals".into(), read) {
        Ok(thread) => Some(SignalWatch { handle, thread }),
        Err(e) => {
            eprintln!(
                "chat_server: cannot start the signal thread ({e}); Ctrl-C will end the run abruptly"
            );
            None
        }
    }
}

/// Elsewhere Ctrl-C raises `stop` through signal-hook's flag (a second one
/// raises it again); there is no SIGHUP.
#[cfg(not(unix))]
struct SignalWatch;

#[cfg(not(unix))]
impl SignalWatch {
    fn close(self) {}
}

#[cfg(not(unix))]
fn watch_signals(stop: &Arc<AtomicBool>, _reloads: bool) -> Option<SignalWatch> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    for signal in [SIGINT, SIGTERM] {
        if let Err(e) = signal_hook::flag::register(signal, Arc::clone(stop)) {
            eprintln!(
                "chat_server: cannot handle signal {signal} ({e}); it will end the run abruptly"
            );
        }
    }
    Some(SignalWatch)
}

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

/// Starts the engine, the server and the users; logs progress until the
/// run's duration has passed or `stop` is raised; stops and joins every
/// thread; shuts the engine down (delivering pending notifications); writes
/// the dashboard JSON if asked and prints the summary.
/// The engine of the demo: its rules (from the code or `--config`), the
/// notifiers, the state directory and remote write the flags ask for.
fn engine(config: &Config) -> watchpost::Result<Engine> {
    // Four samples a second, so a short run has enough points for the
    // detectors. The default ensemble watches every gauge and rate; p90
    // latency gets a robust z-score (16 points of warm-up), so the spike of
    // a short run is flagged before the ensemble has finished learning.
    let mut builder = Engine::builder()
        .sample_interval(SAMPLE_INTERVAL)
        .dashboard_recent_metrics(RECENT_METRICS)
        .notifier("log", LogNotifier::stderr());
    builder = match &config.settings_file {
        // examples/chat_server.toml holds the same settings, rule and detector.
        Some(path) => builder.config_file(path),
        None => builder
            .anomaly_detector_for(
                "message_latency_seconds:p90",
                Some(DetectorSpec::RobustZ(RobustZConfig::default())),
            )
            .alert_rule(slow_messages_rule()?),
    };
    if let Some(path) = &config.alerts_log {
        let file = std::fs::File::create(path)
            .map_err(|e| io_error(&format!("cannot create {}", path.display()), &e))?;
        builder = builder.notifier("alerts-log", JsonLinesNotifier::new(io::BufWriter::new(file)));
        eprintln!("chat_server: alert notifications go to {} (JSON Lines)", path.display());
    }
    if let Some(dir) = &config.state_dir {
        builder = builder.state_dir(dir);
        eprintln!("chat_server: alert state and history are kept in {}", dir.display());
    }
    #[cfg(feature = "notify")]
    {
        use watchpost::notify::{AlertmanagerReceiver, ReceiverNotifier, WebhookReceiver};
        if !config.alertmanagers.is_empty() {
            let am = AlertmanagerReceiver::builder(&config.alertmanagers).build()?;
            builder = builder.notifier("alertmanager", ReceiverNotifier(am));
        }
        for (i, url) in config.webhooks.iter().enumerate() {
            let hook = WebhookReceiver::new(format!("webhook-{i}"), url)?;
            builder = builder.notifier(format!("webhook-{i}"), ReceiverNotifier(hook));
        }
    }
    #[cfg(feature = "remote-write")]
    if let Some((url, capacity)) = &config.remote_write {
        builder = builder.remote_write(remote_write(url, *capacity)?);
    }
    builder.build()
}

fn run(config: &Config, stop: &AtomicBool) -> watchpost::Result<()> {
    let engine = engine(config)?;
    if let Some(path) = &config.settings_file {
        reload_on_signal(engine.monitor(), path.clone())?;
    }
    let integrations = Integrations::install(&engine)?;
    let metrics = Arc::new(ChatMetrics::register(&engine.monitor())?);
    let (http, page) = match serve(config, &engine)? {
        Some((guard, url)) => (Some(guard), Some(url)),
        None => (None, None),
    };

    let listener = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| io_error("cannot listen on 127.0.0.1", &e))?;
    let addr =
        listener.local_addr().map_err(|e| io_error("cannot read the listening address", &e))?;
    let run_for = config.run_for();
    eprintln!(
        "chat_server: listening on {addr} (port {}); {} users chatting {}",
        addr.port(),
        config.users,
        run_for.map_or_else(|| "until Ctrl-C".to_owned(), |d| format!("for {} s", d.as_secs())),
    );

    let server = Arc::new(ChatServer::new(Arc::clone(&metrics)));
    let server_thread = {
        let server = Arc::clone(&server);
        spawn("chat-server".into(), move || server.accept_loop(&listener))
            .map_err(|e| io_error("cannot start the server thread", &e))?
    };

    let simulation = Arc::new(Simulation::new(addr, Arc::clone(&metrics)));
    let mut users = Vec::with_capacity(config.users);
    for slot in 0..config.users {
        let simulation = Arc::clone(&simulation);
        match spawn(format!("chat-user-{slot}"), move || simulation.user_slot(slot)) {
            Ok(handle) => users.push(handle),
            Err(e) => eprintln!("chat_server: cannot start simulated user {slot}: {e}"),
        }
    }

    let started = Instant::now();
    let interrupted = log_progress(&metrics, &server, started, run_for, stop);
    if interrupted {
        eprintln!("chat_server: stopping: the users leave, then the engine shuts down");
    }

    // Users first, so they leave cleanly while the server still answers; then the server.
    simulation.stop.store(true, Relaxed);
    users.into_iter().for_each(join_logged);
    server.stop.store(true, Relaxed);
    join_logged(server_thread);

    #[cfg_attr(not(feature = "http"), allow(clippy::drop_non_drop))]
    drop(http); // stops the monitoring endpoints and joins their thread
    engine.flush()?; // the last messages and requests included
    let elapsed = started.elapsed();
    let dashboard = engine.dashboard();
    let history = engine.alert_history(elapsed + Duration::from_mins(1));
    let json_out = config.json_out();
    match &json_out {
        Some(JsonOut::File(path)) => {
            let json = serde_json::to_string_pretty(&dashboard)?;
            std::fs::write(path, json + "\n")
                .map_err(|e| io_error(&format!("cannot write {}", path.display()), &e))?;
        }
        Some(JsonOut::Stdout) => {
            let json = serde_json::to_string_pretty(&dashboard)?;
            writeln!(io::stdout().lock(), "{json}")
                .map_err(|e| io_error("cannot write the dashboard to stdout", &e))?;
        }
        None => {}
    }
    // Delivers every pending notification (resolve notices included) and
    // joins the engine's threads before the summary is printed.
    let monitor = engine.monitor();
    engine.shutdown()?;
    log_remote_write_totals(&monitor)?;

    let report = Report {
        elapsed,
        interrupted,
        users: config.users,
        sessions: simulation.sessions.load(Relaxed),
        delivered: simulation.received.load(Relaxed),
        metrics: &metrics,
        dashboard: &dashboard,
        history: &history,
        page: page.as_deref(),
        headless: config.serve == Serve::Headless,
        json: json_out.as_ref(),
        expect_spike: run_for.is_some_and(|d| spike_window(d).is_some()) && !interrupted,
        integrations: &integrations,
    };
    let summary = report.render();
    let written = if json_out == Some(JsonOut::Stdout) {
        io::stderr().lock().write_all(summary.as_bytes())
    } else {
        io::stdout().lock().write_all(summary.as_bytes())
    };
    written.map_err(|e| io_error("cannot write the summary", &e))
}

/// The remote-write counters once the engine is shut down (nothing pending).
fn log_remote_write_totals(monitor: &watchpost::Monitor) -> watchpost::Result<()> {
    if let Some(totals) = monitor.dashboard().remote_write {
        eprintln!("chat_server: remote write totals {}", serde_json::to_string(&totals)?);
    }
    Ok(())
}

/// Remote write for `--remote-write`: scores and bands too, batches within 1 s.
#[cfg(feature = "remote-write")]
fn remote_write(
    url: &str,
    capacity: usize,
) -> watchpost::Result<watchpost::remote_write::RemoteWriteConfig> {
    Ok(watchpost::remote_write::RemoteWriteConfig::new(url)?
        .anomaly_series(true)
        .batch_send_deadline(Duration::from_secs(1))
        .max_samples_per_send((capacity / 2).min(2_000))
        .queue_capacity(capacity))
}

/// Starts the monitoring endpoints unless the run is headless; they stop
/// when the returned guard is dropped. Returns the guard and the page's URL.
#[cfg(feature = "http")]
fn serve(
    config: &Config,
    engine: &Engine,
) -> watchpost::Result<Option<(watchpost::http::HttpServerGuard, String)>> {
    let (addr, fallback) = match config.serve {
        Serve::Headless => return Ok(None),
        Serve::Default => (DEFAULT_SERVE, true),
        Serve::At(addr) => (addr, false),
    };
    // Closed by default: silences and acknowledgements need a token, so the
    // demo has one, shown once here and never logged again.
    let token = match std::env::var("WATCHPOST_HTTP_TOKEN") {
        Ok(token) if !token.is_empty() => token,
        _ => watchpost::http::random_token()?,
    };
    let start = |addr: SocketAddr| {
        watchpost::http::HttpServer::builder()
            .addr(addr)
            .bearer_token(token.clone())
            .record_requests(true) // http_server_requests_total etc., by route
            .start(engine.monitor())
    };
    let server = match start(addr) {
        Ok(server) => server,
        Err(e) if fallback => {
            eprintln!("chat_server: cannot serve on {addr} ({e}); taking an ephemeral port");
            start(SocketAddr::new(addr.ip(), 0))?
        }
        Err(e) => return Err(e),
    };
    let url = server.url();
    eprintln!(
        "chat_server: monitoring on {url} (dashboard page: {url}#token={token}; /metrics for \
         Prometheus, with that token as 'Authorization: Bearer')"
    );
    eprintln!("\n    Open the live dashboard: {url}#token={token}\n    Press Ctrl-C to stop.\n");
    Ok(Some((server, url)))
}

/// Stands in for the server guard when the example is built without feature `http`.
#[cfg(not(feature = "http"))]
struct NoServer;

/// Without feature `http` there is nothing to serve (`--serve` is refused
/// when parsing); the run is headless and says how to get the page.
#[cfg(not(feature = "http"))]
#[allow(clippy::unnecessary_wraps, reason = "the signature of the http build")]
fn serve(config: &Config, _engine: &Engine) -> watchpost::Result<Option<(NoServer, String)>> {
    if config.serve != Serve::Headless {
        eprintln!("chat_server: running headless; for the live dashboard page: {PAGE_COMMAND}");
    }
    Ok(None)
}

/// The seconds of a run of fixed length during which the server is slow:
/// from 55 % of the run, for 15 % of it (at least 2 s), if the run lasts 4 s
/// or more.
fn spike_window(duration: Duration) -> Option<(u64, u64)> {
    let secs = duration.as_secs();
    (secs >= 4).then(|| {
        let start = secs * 55 / 100;
        (start, (start + (secs * 15 / 100).max(2)).min(secs - 1))
    })
}

/// Whether the server is slow during second `second` of the run: once in a
/// run of fixed length, every minute in a run until Ctrl-C.
fn spiking(second: u64, run_for: Option<Duration>) -> bool {
    match run_for {
        Some(d) => spike_window(d).is_some_and(|(from, to)| (from..to).contains(&second)),
        None => REPEATED_SPIKE.contains(&(second % 60)),
    }
}

/// Logs active users and message counts (once a second in a run of fixed
/// length, every 5 s otherwise) until `run_for` has passed or `stop` is
/// raised, and slows the server down during the spikes. Returns whether
/// `stop` ended the run.
fn log_progress(
    metrics: &ChatMetrics,
    server: &ChatServer,
    started: Instant,
    run_for: Option<Duration>,
    stop: &AtomicBool,
) -> bool {
    let end = run_for.map(|d| started + d);
    let every = if run_for.is_some() { 1 } else { 5 };
    let mut second = 1;
    let mut last_total = 0;
    let mut slow = false;
    loop {
        let mut next = started + Duration::from_secs(second);
        if let Some(end) = end {
            next = next.min(end);
        }
        // Sleep in short steps, so a signal is answered at once.
        loop {
            if stop.load(Relaxed) {
                server.ack_delay_us.store(0, Relaxed);
                return true;
            }
            let left = next.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            thread::sleep(left.min(POLL));
        }
        if end.is_some_and(|end| next >= end) {
            server.ack_delay_us.store(0, Relaxed);
            return false;
        }
        let spike = spiking(second, run_for);
        if spike != slow {
            slow = spike;
            if spike {
                eprintln!(
                    "chat_server: [{second:>3} s] latency spike: the server now waits {SPIKE_DELAY:?} before each ack"
                );
                // With the `tracing` layer the page lists it among the warnings.
                #[cfg(feature = "tracing")]
                tracing::warn!(
                    delay_ms = SPIKE_DELAY.as_millis(),
                    "latency spike: acknowledgements delayed"
                );
                let delay = u64::try_from(SPIKE_DELAY.as_micros()).unwrap_or(u64::MAX);
                server.ack_delay_us.store(delay, Relaxed);
            } else {
                eprintln!("chat_server: [{second:>3} s] latency spike over");
                server.ack_delay_us.store(0, Relaxed);
            }
        }
        if second % every == 0 {
            let total = metrics.messages_total();
            let latency = metrics.latency.snapshot();
            eprintln!(
                "chat_server: [{second:>3} s] active_users {:.0}, messages {total} (+{}; {}), \
                 latency p50 {} p99 {}",
                metrics.active_users.get(),
                total - last_total,
                metrics.messages_by_room(),
                seconds(latency.quantile(0.5)),
                seconds(latency.quantile(0.99)),
            );
            last_total = total;
        }
        second += 1;
    }
}

/// A latency for the log, with the shared number formatter.
fn seconds(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |s| Unit::Seconds.format(s))
}

// ---------------------------------------------------------------------------
// The closing summary
// ---------------------------------------------------------------------------

/// What the closing summary is made of.
struct Report<'a> {
    elapsed: Duration,
    interrupted: bool,
    users: usize,
    sessions: u64,
    delivered: u64,
    metrics: &'a ChatMetrics,
    dashboard: &'a Dashboard,
    history: &'a [AlertEvent],
    /// The page's URL, if it was served.
    page: Option<&'a str>,
    headless: bool,
    json: Option<&'a JsonOut>,
    /// Whether the run was long enough for the scripted spike.
    expect_spike: bool,
    integrations: &'a Integrations,
}

/// At most this many notifications and anomalies are listed one by one.
const LISTED: usize = 8;

impl Report<'_> {
    /// The summary, a few aligned lines a person reads at the end of the run.
    fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\nwatchpost chat demo: {} of chat{}, {} users at a time, {} sessions",
            Unit::Seconds.format(self.elapsed.as_secs_f64()),
            if self.interrupted { " (stopped by a signal)" } else { "" },
            self.users,
            self.sessions,
        );
        let latency = self.metrics.latency.snapshot();
        let _ = writeln!(
            out,
            "  messages   {} accepted ({}), {} delivered to other members",
            self.metrics.messages_total(),
            self.metrics.messages_by_room(),
            self.delivered,
        );
        let _ = writeln!(
            out,
            "  latency    p50 {}, p99 {}",
            seconds(latency.quantile(0.5)),
            seconds(latency.quantile(0.99)),
        );
        self.alerts(&mut out);
        self.anomalies(&mut out);
        self.series(&mut out);
        self.integrations.render(self.dashboard, &mut out);
        let _ = match self.page {
            Some(url) => writeln!(out, "  page       was at {url} (stopped with the demo)"),
            None if !cfg!(feature = "http") => {
                writeln!(out, "  page       not built in; to watch it live: {PAGE_COMMAND}")
            }
            None if self.headless => {
                writeln!(out, "  page       not served (--headless); run without it to watch live")
            }
            None => writeln!(out, "  page       not served"),
        };
        let _ = match self.json {
            Some(JsonOut::File(path)) => {
                writeln!(out, "  dashboard  JSON written to {}", path.display())
            }
            Some(JsonOut::Stdout) => writeln!(out, "  dashboard  JSON written to stdout"),
            None => writeln!(out, "  dashboard  --json PATH saves the final snapshot as JSON"),
        };
        out
    }

    fn alerts(&self, out: &mut String) {
        let sent: Vec<&AlertEvent> = self.history.iter().filter(|e| e.notified.is_some()).collect();
        let count = |kind| sent.iter().filter(|e| e.notified == Some(kind)).count();
        let _ = writeln!(
            out,
            "  alerts     {} fired, {} resolved{}",
            count(NotificationKind::Firing),
            count(NotificationKind::Resolved),
            if sent.is_empty() { "" } else { ":" },
        );
        for e in sent.iter().take(LISTED) {
            let _ = writeln!(
                out,
                "             {} {:<8} {}: {}",
                time_of(e.at_ms),
                e.notified.map_or_else(String::new, |k| k.to_string()),
                e.rule,
                e.message,
            );
        }
        if sent.len() > LISTED {
            let _ = writeln!(out, "             … and {} more", sent.len() - LISTED);
        }
        let notified =
            |kind| sent.iter().any(|e| e.rule == "slow_messages" && e.notified == Some(kind));
        if self.expect_spike
            && !(notified(NotificationKind::Firing) && notified(NotificationKind::Resolved))
        {
            let _ = writeln!(
                out,
                "             note: the latency spike did not take slow_messages through firing \
                 and resolved this run"
            );
        }
    }

    /// One line per series with anomalous points: how many, when, the most
    /// extreme value and the band expected before the first one.
    fn anomalies(&self, out: &mut String) {
        let found = &self.dashboard.anomalies;
        let mut series: Vec<&str> = found.iter().map(|a| a.series.as_str()).collect();
        series.dedup();
        series.sort_unstable();
        series.dedup();
        let _ = writeln!(
            out,
            "  anomalies  {} point{} in {} series{}",
            found.len(),
            if found.len() == 1 { "" } else { "s" },
            series.len(),
            if found.is_empty() { "" } else { ":" },
        );
        for name in series.iter().take(LISTED) {
            let points: Vec<_> = found.iter().filter(|a| a.series == *name).collect();
            let (Some(first), Some(last)) = (points.first(), points.last()) else { continue };
            let unit = Unit::of_metric(&first.name);
            // Latencies, sizes and rates are never negative, whatever the band says.
            let floor = |v: f64| if unit == Unit::None { v } else { v.max(0.0) };
            let peak = points.iter().map(|a| a.value).fold(f64::NEG_INFINITY, f64::max);
            let expected = match (first.expected_lower, first.expected_upper) {
                (Some(l), Some(u)) => {
                    format!(" (expected {} to {})", unit.format(floor(l)), unit.format(u))
                }
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "             {name}: {} from {} to {}, up to {}{expected}",
                points.len(),
                time_of(first.timestamp.timestamp_millis()),
                time_of(last.timestamp.timestamp_millis()),
                unit.format(peak),
            );
        }
        if series.len() > LISTED {
            let _ = writeln!(out, "             … and {} more series", series.len() - LISTED);
        }
    }

    fn series(&self, out: &mut String) {
        let mut first = true;
        for name in SUMMARY_SERIES {
            let unit = Unit::of_metric(name);
            for s in self.dashboard.statistics.iter().filter(|s| s.name == name) {
                let _ = writeln!(
                    out,
                    "  {:<10} {:<36} mean {}, max {}",
                    if first { "series" } else { "" },
                    s.series,
                    unit.format(s.stats.mean),
                    unit.format(s.stats.max),
                );
                first = false;
            }
        }
    }
}

/// The wall-clock time of `ms` (ms since the Unix epoch), to the millisecond.
fn time_of(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(String::new, |t| t.format("%H:%M:%S%.3f").to_string())
}

/// An I/O failure of the example's own setup, as a watchpost error.
fn io_error(what: &str, e: &io::Error) -> watchpost::Error {
    watchpost::Error::Source {
        source_name: "chat_server".to_owned(),
        reason: format!("{what}: {e}"),
    }
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> io::Result<JoinHandle<()>> {
    thread::Builder::new().name(name).spawn(f)
}

fn join_logged(handle: JoinHandle<()>) {
    let name = handle.thread().name().unwrap_or("unnamed").to_owned();
    if handle.join().is_err() {
        eprintln!("chat_server: thread {name} panicked");
    }
}

/// Locks `mutex`, also when another thread panicked while holding it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------
// Integrations: tracing, the metrics facade, the HTTP middleware
// ---------------------------------------------------------------------------

/// The integrations the example was built with (features `tracing` and
/// `metrics`; the HTTP middleware is set up in [`serve`]).
struct Integrations {
    /// Times the message spans; keeps the slow-operation log.
    #[cfg(feature = "tracing")]
    tracing: watchpost::integrations::TracingLayer,
    /// The `metrics` facade's recorder, installed for the process.
    #[cfg(feature = "metrics")]
    metrics: watchpost::integrations::MetricsRecorder,
}

impl Integrations {
    /// Installs the tracing subscriber and the `metrics` recorder for the
    /// whole process (the connection threads use them).
    #[cfg_attr(
        not(any(feature = "tracing", feature = "metrics")),
        allow(clippy::unnecessary_wraps, reason = "the signature of the builds with integrations")
    )]
    fn install(engine: &Engine) -> watchpost::Result<Self> {
        #[cfg(feature = "tracing")]
        let tracing = {
            use tracing_subscriber::layer::SubscriberExt as _;
            let layer = tracing_layer(engine)?;
            tracing::subscriber::set_global_default(
                tracing_subscriber::registry().with(layer.clone()),
            )
            .map_err(|e| watchpost::Error::Source {
                source_name: "chat_server".to_owned(),
                reason: format!("cannot install the tracing subscriber: {e}"),
            })?;
            layer
        };
        #[cfg(feature = "metrics")]
        let metrics = {
            let recorder = watchpost::integrations::MetricsRecorder::new(engine);
            recorder.install()?;
            recorder
        };
        #[cfg(not(any(feature = "tracing", feature = "metrics")))]
        let _ = engine;
        Ok(Integrations {
            #[cfg(feature = "tracing")]
            tracing,
            #[cfg(feature = "metrics")]
            metrics,
        })
    }

    /// The summary's lines about the integrations: span statistics and the
    /// slowest operations, the facade's counter, the HTTP requests served.
    fn render(&self, dashboard: &Dashboard, out: &mut String) {
        self.render_tracing(out);
        #[cfg(feature = "metrics")]
        let _ = writeln!(
            out,
            "  metrics    messages_total{{room}} counted with metrics::counter! ({} rejected)",
            self.metrics.rejected(),
        );
        #[cfg(not(feature = "metrics"))]
        let _ = writeln!(out, "  metrics    facade not built in (--features metrics)");
        let mut first = true;
        for s in dashboard.statistics.iter().filter(|s| s.name == "http_server_requests_total") {
            let _ = writeln!(
                out,
                "  {:<10} {:<60} {:.0}",
                if first { "http" } else { "" },
                s.series,
                s.stats.max, // a counter's largest sample is its total
            );
            first = false;
        }
    }

    #[cfg(feature = "tracing")]
    fn render_tracing(&self, out: &mut String) {
        let secs = |d: Duration| Unit::Seconds.format(d.as_secs_f64());
        for (i, s) in self.tracing.stats().iter().enumerate() {
            let _ = writeln!(
                out,
                "  {:<10} {:<16} {} calls, mean {}, p99 {}, max {}",
                if i == 0 { "spans" } else { "" },
                s.name,
                s.calls,
                secs(s.mean),
                secs(s.p99),
                secs(s.max),
            );
        }
        let slow = self.tracing.slow_operations();
        let stats = slow.stats();
        let by_name: Vec<String> =
            stats.by_name.iter().map(|n| format!("{} {}", n.name, n.count)).collect();
        let _ = writeln!(
            out,
            "  slow ops   {} at or over {} ({}){}",
            stats.count,
            secs(SLOW_MESSAGE),
            if by_name.is_empty() { "none".to_owned() } else { by_name.join(", ") },
            if stats.count == 0 { "" } else { "; the slowest:" },
        );
        let mut list = slow.list();
        list.sort_by_key(|op| std::cmp::Reverse(op.duration));
        for op in list.iter().take(SLOWEST_LISTED) {
            let fields: Vec<String> = op.fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(
                out,
                "             {} {} {} {}",
                time_of(op.started.timestamp_millis()),
                op.name,
                secs(op.duration),
                fields.join(" "),
            );
        }
    }

    #[cfg(not(feature = "tracing"))]
    #[allow(clippy::unused_self, reason = "the signature of the tracing build")]
    fn render_tracing(&self, out: &mut String) {
        let _ = writeln!(out, "  spans      not timed (--features tracing)");
    }
}

/// The example's tracing layer: messages at or over [`SLOW_MESSAGE`] are slow operations.
#[cfg(feature = "tracing")]
fn tracing_layer(engine: &Engine) -> watchpost::Result<watchpost::integrations::TracingLayer> {
    watchpost::integrations::TracingLayer::builder(engine).slow_threshold(SLOW_MESSAGE).build()
}

// ---------------------------------------------------------------------------
// Instruments
// ---------------------------------------------------------------------------

/// The watchpost handles the server and the clients update, registered once.
struct ChatMetrics {
    /// Users currently in a room.
    active_users: Gauge,
    /// `MSG` to `ACK`, seen from the client.
    latency: Histogram,
    /// Per room, indexed like [`ROOMS`].
    rooms: Vec<RoomMetrics>,
}

struct RoomMetrics {
    messages: Counter,
    message_length: Recorder,
    occupancy: Recorder,
}

impl ChatMetrics {
    fn register(monitor: &Monitor) -> watchpost::Result<Self> {
        let rooms = ROOMS
            .iter()
            .map(|&room| {
                let labels = [("room", room)];
                Ok(RoomMetrics {
                    messages: monitor.counter_with("messages_total", &labels)?,
                    message_length: monitor.recorder("chat_message_length", &labels)?,
                    occupancy: monitor.recorder("room_occupancy", &labels)?,
                })
            })
            .collect::<watchpost::Result<_>>()?;
        let registry = monitor.registry();
        registry.describe("active_users", "Users currently in a chat room.")?;
        registry.describe("messages_total", "Chat messages the server accepted.")?;
        registry.describe(
            "message_latency_seconds",
            "Time from a client sending a message until it reads the acknowledgement.",
        )?;
        registry
            .describe("chat_message_length", "Length of the latest chat message, in characters.")?;
        registry
            .describe("room_occupancy", "Members of the room after the latest join or leave.")?;
        Ok(ChatMetrics {
            active_users: monitor.gauge("active_users")?,
            latency: monitor.histogram_with("message_latency_seconds", &[], &LATENCY_BUCKETS)?,
            rooms,
        })
    }

    fn messages_total(&self) -> u64 {
        self.rooms.iter().map(|r| r.messages.get()).sum()
    }

    fn messages_by_room(&self) -> String {
        let parts: Vec<String> = ROOMS
            .iter()
            .zip(&self.rooms)
            .map(|(n, r)| format!("{n} {}", r.messages.get()))
            .collect();
        parts.join(", ")
    }
}

fn as_f64(n: usize) -> f64 {
    f64::from(u32::try_from(n).unwrap_or(u32::MAX))
}

// ---------------------------------------------------------------------------
// Lines over TCP
// ---------------------------------------------------------------------------

/// Reads `\n`-terminated lines from a socket with a read timeout, keeping a
/// partial line across timeouts.
struct LineReader {
    reader: BufReader<TcpStream>,
    partial: Vec<u8>,
}

impl LineReader {
    fn new(stream: TcpStream) -> Self {
        LineReader { reader: BufReader::new(stream), partial: Vec::new() }
    }

    /// The next line without its line ending, `Ok(None)` if the read timed
    /// out first, an `UnexpectedEof` error once the peer has closed.
    fn next_line(&mut self) -> io::Result<Option<String>> {
        let used = u64::try_from(self.partial.len()).unwrap_or(u64::MAX);
        let room = (MAX_LINE + 1).saturating_sub(used);
        match (&mut self.reader).take(room).read_until(b'\n', &mut self.partial) {
            Ok(_) if self.partial.last() == Some(&b'\n') => {
                let line = String::from_utf8_lossy(&self.partial).trim_end().to_owned();
                self.partial.clear();
                Ok(Some(line))
            }
            Ok(_) if u64::try_from(self.partial.len()).unwrap_or(u64::MAX) > MAX_LINE => {
                Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"))
            }
            Ok(_) => Err(io::ErrorKind::UnexpectedEof.into()),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// Writes one line in a single write, so it reaches the peer as one piece.
fn send_line(out: &mut TcpStream, line: &str) -> io::Result<()> {
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    out.write_all(&bytes)
}

/// Sets the timeouts and options both sides use.
fn configure(stream: &TcpStream) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?; // small request/response lines: no Nagle delay
    stream.set_read_timeout(Some(POLL))?;
    stream.set_write_timeout(Some(REPLY_TIMEOUT))
}

// ---------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------

/// A member of a room, as the server sees them.
struct Member {
    conn: u64,
    user: String,
    /// The connection's write half, shared with its own thread so that
    /// broadcasts and acknowledgements never interleave within a line.
    out: Arc<Mutex<TcpStream>>,
}

/// The room a connection has joined.
struct Session {
    room: usize,
    user: String,
}

/// What a connection's thread does after a command.
enum Flow {
    Continue,
    Close,
}

struct ChatServer {
    /// Members per room, indexed like [`ROOMS`].
    rooms: Mutex<Vec<Vec<Member>>>,
    metrics: Arc<ChatMetrics>,
    /// Artificial latency: microseconds the server waits before it
    /// acknowledges a message. 0 keeps the server as fast as it is; raising
    /// it simulates a slow server (a latency spike).
    ack_delay_us: AtomicU64,
    /// Raised to stop accepting and close every connection.
    stop: AtomicBool,
}

impl ChatServer {
    fn new(metrics: Arc<ChatMetrics>) -> Self {
        ChatServer {
            rooms: Mutex::new(ROOMS.iter().map(|_| Vec::new()).collect()),
            metrics,
            ack_delay_us: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        }
    }

    /// Accepts connections, a thread each, until `stop`; then joins them all.
    fn accept_loop(self: &Arc<Self>, listener: &TcpListener) {
        let mut connections: Vec<JoinHandle<()>> = Vec::new();
        let mut next_conn = 0_u64;
        while !self.stop.load(Relaxed) {
            match listener.accept() {
                Ok((stream, peer)) => {
                    next_conn += 1;
                    let conn = next_conn;
                    let server = Arc::clone(self);
                    let serve = move || {
                        if let Err(e) = server.serve(conn, &stream) {
                            eprintln!("chat_server: connection {conn} from {peer}: {e}");
                        }
                    };
                    match spawn(format!("chat-conn-{conn}"), serve) {
                        Ok(handle) => connections.push(handle),
                        Err(e) => eprintln!("chat_server: cannot start a thread for {peer}: {e}"),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => thread::sleep(ACCEPT_POLL),
                Err(e) => {
                    eprintln!("chat_server: accept failed: {e}");
                    thread::sleep(POLL);
                }
            }
            // Join the connections that have ended.
            let (ended, open) = std::mem::take(&mut connections)
                .into_iter()
                .partition::<Vec<_>, _>(JoinHandle::is_finished);
            connections = open;
            ended.into_iter().for_each(join_logged);
        }
        connections.into_iter().for_each(join_logged);
    }

    /// Runs one connection until the client leaves or disconnects, or the server stops.
    fn serve(&self, conn: u64, stream: &TcpStream) -> io::Result<()> {
        configure(stream)?;
        let out = Arc::new(Mutex::new(stream.try_clone()?));
        let mut lines = LineReader::new(stream.try_clone()?);
        let mut session = None;
        let result = loop {
            if self.stop.load(Relaxed) {
                break Ok(());
            }
            let line = match lines.next_line() {
                Ok(Some(line)) => line,
                Ok(None) => continue,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break Ok(()),
                Err(e) => break Err(e),
            };
            match self.handle(conn, &line, &mut session, &out) {
                Ok(Flow::Continue) => {}
                Ok(Flow::Close) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        if let Some(session) = session {
            self.leave(conn, session.room); // disconnected without LEAVE
        }
        result
    }

    fn handle(
        &self,
        conn: u64,
        line: &str,
        session: &mut Option<Session>,
        out: &Arc<Mutex<TcpStream>>,
    ) -> io::Result<Flow> {
        let (command, rest) = line.split_once(' ').unwrap_or((line, ""));
        let reply = match (command, session.as_ref()) {
            ("JOIN", Some(_)) => "ERR already in a room".to_owned(),
            ("JOIN", None) => {
                let mut words = rest.split_whitespace();
                match (words.next(), words.next(), words.next()) {
                    (Some(room_name), Some(user), None) => {
                        match ROOMS.iter().position(|r| *r == room_name) {
                            Some(room) => {
                                let members = self.join(conn, room, user, out);
                                *session = Some(Session { room, user: user.to_owned() });
                                format!("OK JOIN {room_name} {members}")
                            }
                            None => format!("ERR no room {room_name:?}"),
                        }
                    }
                    _ => "ERR usage: JOIN <room> <user>".to_owned(),
                }
            }
            ("MSG", None) => "ERR join a room first".to_owned(),
            ("MSG", Some(_)) if rest.trim().is_empty() => "ERR empty message".to_owned(),
            ("MSG", Some(s)) => {
                // Timed by the tracing layer (feature `tracing`); without a
                // subscriber, a span costs a check.
                let _span = tracing::info_span!("handle_message", room = ROOMS[s.room]).entered();
                let text = rest.trim();
                let room = &self.metrics.rooms[s.room];
                // The same series either way: the facade's counter is the
                // registered watchpost counter the summary reads.
                #[cfg(feature = "metrics")]
                metrics::counter!("messages_total", "room" => ROOMS[s.room]).increment(1);
                #[cfg(not(feature = "metrics"))]
                room.messages.inc();
                room.message_length.record(as_f64(text.chars().count()));
                let delivered = tracing::info_span!("broadcast")
                    .in_scope(|| self.broadcast(conn, s.room, &s.user, text));
                // The one place the server adds artificial latency before acknowledging.
                let delay = self.ack_delay_us.load(Relaxed);
                if delay > 0 {
                    thread::sleep(Duration::from_micros(delay));
                }
                format!("ACK {delivered}")
            }
            ("LEAVE", _) => {
                if let Some(s) = session.take() {
                    self.leave(conn, s.room);
                }
                send_line(&mut lock(out), "BYE")?;
                return Ok(Flow::Close);
            }
            _ => format!("ERR unknown command {command:?}"),
        };
        send_line(&mut lock(out), &reply)?;
        Ok(Flow::Continue)
    }

    /// Adds a member to `room`; returns how many members it has now.
    fn join(&self, conn: u64, room: usize, user: &str, out: &Arc<Mutex<TcpStream>>) -> usize {
        let members = {
            let mut rooms = lock(&self.rooms);
            rooms[room].push(Member { conn, user: user.to_owned(), out: Arc::clone(out) });
            rooms[room].len()
        };
        self.metrics.active_users.add(1.0);
        self.metrics.rooms[room].occupancy.record(as_f64(members));
        members
    }

    fn leave(&self, conn: u64, room: usize) {
        let (removed, members) = {
            let mut rooms = lock(&self.rooms);
            let before = rooms[room].len();
            rooms[room].retain(|m| m.conn != conn);
            (before != rooms[room].len(), rooms[room].len())
        };
        if removed {
            self.metrics.active_users.sub(1.0);
            self.metrics.rooms[room].occupancy.record(as_f64(members));
        }
    }

    /// Sends `FROM <user> <text>` to the other members of `room`; returns how many got it.
    fn broadcast(&self, conn: u64, room: usize, user: &str, text: &str) -> usize {
        let line = format!("FROM {user} {text}");
        let rooms = lock(&self.rooms);
        let mut delivered = 0;
        for member in rooms[room].iter().filter(|m| m.conn != conn) {
            match send_line(&mut lock(&member.out), &line) {
                Ok(()) => delivered += 1,
                Err(e) => eprintln!("chat_server: cannot deliver to {}: {e}", member.user),
            }
        }
        delivered
    }
}

// ---------------------------------------------------------------------------
// Simulated users
// ---------------------------------------------------------------------------

const WORDS: [&str; 16] = [
    "hello",
    "anyone",
    "seen",
    "the",
    "build",
    "deploy",
    "coffee",
    "lunch",
    "ship",
    "it",
    "works",
    "on",
    "my",
    "machine",
    "watchpost",
    "graphs",
];

/// The simulated users: one thread per slot, each running one user after another.
struct Simulation {
    addr: SocketAddr,
    metrics: Arc<ChatMetrics>,
    /// Raised when the run is over: users leave and their threads end.
    stop: AtomicBool,
    sessions: AtomicU64,
    received: AtomicU64,
}

impl Simulation {
    fn new(addr: SocketAddr, metrics: Arc<ChatMetrics>) -> Self {
        Simulation {
            addr,
            metrics,
            stop: AtomicBool::new(false),
            sessions: AtomicU64::new(0),
            received: AtomicU64::new(0),
        }
    }

    /// Runs users in slot `slot` until `stop`: when one leaves, another joins shortly after.
    fn user_slot(&self, slot: usize) {
        let slot = u64::try_from(slot).unwrap_or(u64::MAX);
        let mut rng = Rng::new(slot);
        self.pause(Duration::from_millis(rng.range(0, 1000))); // stagger the first arrivals
        let mut session = 0_u64;
        while !self.stop.load(Relaxed) {
            session += 1;
            let user = format!("user{slot}_{session}");
            let mut user_rng = Rng::new(slot << 32 | session);
            if let Err(e) = self.chat(&user, &mut user_rng) {
                eprintln!("chat_server: {user}: {e}");
            }
            self.pause(Duration::from_millis(rng.range(100, 800)));
        }
    }

    /// Sleeps for `pause`, or less if the run stops meanwhile.
    fn pause(&self, pause: Duration) {
        let until = Instant::now() + pause;
        while !self.stop.load(Relaxed) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            thread::sleep(left.min(POLL));
        }
    }

    /// One user: connect, join a room, send a few messages, leave.
    fn chat(&self, user: &str, rng: &mut Rng) -> io::Result<()> {
        let room = ROOMS[rng.index(ROOMS.len())];
        let mut client = Client::connect(self.addr)?;
        client.send(&format!("JOIN {room} {user}"))?;
        client.expect("OK JOIN")?;
        self.sessions.fetch_add(1, Relaxed);
        for _ in 0..rng.range(3, 15) {
            if !client.idle(Duration::from_millis(rng.range(100, 700)), &self.stop)? {
                break;
            }
            let words: Vec<&str> =
                (0..rng.range(1, 9)).map(|_| WORDS[rng.index(WORDS.len())]).collect();
            let sent = Instant::now();
            client.send(&format!("MSG {}", words.join(" ")))?;
            client.expect("ACK")?;
            self.metrics.latency.observe(sent.elapsed().as_secs_f64());
        }
        client.send("LEAVE")?;
        client.expect("BYE")?;
        self.received.fetch_add(client.received, Relaxed);
        Ok(())
    }
}

/// A user's connection.
struct Client {
    lines: LineReader,
    out: TcpStream,
    /// `FROM` lines read so far.
    received: u64,
}

impl Client {
    fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, REPLY_TIMEOUT)?;
        configure(&stream)?;
        Ok(Client { out: stream.try_clone()?, lines: LineReader::new(stream), received: 0 })
    }

    fn send(&mut self, line: &str) -> io::Result<()> {
        send_line(&mut self.out, line)
    }

    /// Waits for a reply starting with `prefix`, counting the broadcasts read meanwhile.
    fn expect(&mut self, prefix: &str) -> io::Result<String> {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            match self.lines.next_line()? {
                Some(line) if line.starts_with(prefix) => return Ok(line),
                Some(line) => self.other_line(&line)?,
                None if Instant::now() >= deadline => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no {prefix} reply within {REPLY_TIMEOUT:?}"),
                    ));
                }
                None => {}
            }
        }
    }

    /// Reads broadcasts for `pause`; `false` if `stop` was raised meanwhile.
    fn idle(&mut self, pause: Duration, stop: &AtomicBool) -> io::Result<bool> {
        let until = Instant::now() + pause;
        while Instant::now() < until {
            if stop.load(Relaxed) {
                return Ok(false);
            }
            if let Some(line) = self.lines.next_line()? {
                self.other_line(&line)?;
            }
        }
        Ok(!stop.load(Relaxed))
    }

    fn other_line(&mut self, line: &str) -> io::Result<()> {
        if line.starts_with("FROM ") {
            self.received += 1;
            Ok(())
        } else {
            Err(io::Error::other(format!("unexpected reply {line:?}")))
        }
    }
}

/// xorshift64*: a tiny deterministic generator, plenty to vary a simulation.
struct Rng(u64);

impl Rng {
    /// Seeds through splitmix64, so that nearby seeds give unrelated sequences.
    fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1) // never 0, which xorshift cannot leave
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `lo..hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }

    /// An index into a slice of `len` elements.
    fn index(&mut self, len: usize) -> usize {
        let len = u64::try_from(len).unwrap_or(u64::MAX);
        usize::try_from(self.next_u64() % len).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Result<Config, String> {
        match parse_args(args.iter().map(|a| (*a).to_owned()))? {
            Command::Run(config) => Ok(*config),
            Command::Help => Err("help".to_owned()),
        }
    }

    #[test]
    fn the_example_config_reproduces_the_built_in_setup() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/chat_server.toml");
        assert_eq!(config(&["--config", path]).unwrap().settings_file, Some(PathBuf::from(path)));
        let from_file =
            Engine::builder().without_system_source().config_file(path).build().unwrap();
        let in_code = Engine::builder()
            .without_system_source()
            .alert_rule(slow_messages_rule().unwrap())
            .build()
            .unwrap();
        let (file, code) = (from_file.effective_config(), in_code.effective_config());
        assert_eq!(file.rules, code.rules);
        assert_eq!(file.rules.len(), 6); // the five default rules and slow_messages
        let loaded = from_file.config();
        assert_eq!(loaded.engine.sample_interval, Some(SAMPLE_INTERVAL));
        assert_eq!(
            loaded.detectors["message_latency_seconds:p90"].spec(),
            Some(&DetectorSpec::RobustZ(RobustZConfig::default()))
        );
    }

    #[test]
    fn the_default_run_serves_until_ctrl_c_and_writes_no_json() {
        let c = config(&[]).unwrap();
        assert_eq!(c.serve, Serve::Default);
        assert_eq!(c.json_out(), None);
        if cfg!(feature = "http") {
            assert_eq!(c.run_for(), None);
        } else {
            assert_eq!(c.run_for(), Some(HEADLESS_DURATION));
        }
        assert_eq!(config(&["--duration", "30"]).unwrap().run_for(), Some(Duration::from_secs(30)));
    }

    #[test]
    fn headless_runs_the_scripted_scenario() {
        let c = config(&["--headless", "--json", "d.json"]).unwrap();
        assert!(!c.serves());
        assert_eq!(c.run_for(), Some(HEADLESS_DURATION));
        assert_eq!(c.json_out(), Some(JsonOut::File(PathBuf::from("d.json"))));
        assert_eq!(config(&["--json=-"]).unwrap().json_out(), Some(JsonOut::Stdout));
        assert!(config(&["--json", ""]).unwrap_err().contains("--json"));
        assert!(config(&["--headless=yes"]).is_err());
    }

    #[test]
    fn state_dir_names_a_directory() {
        let c = config(&["--state-dir", "state"]).unwrap();
        assert_eq!(c.state_dir, Some(PathBuf::from("state")));
        assert_eq!(config(&[]).unwrap().state_dir, None);
        assert!(config(&["--state-dir="]).unwrap_err().contains("--state-dir"));
    }

    #[test]
    fn remote_write_takes_a_url_and_a_capacity_in_either_order() {
        let url = "http://127.0.0.1:9090/api/v1/write";
        if cfg!(feature = "remote-write") {
            let c = config(&["--remote-write-capacity", "500", "--remote-write", url]).unwrap();
            assert_eq!(c.remote_write, Some((url.to_owned(), 500)));
            let c = config(&["--remote-write", url]).unwrap();
            assert_eq!(c.remote_write, Some((url.to_owned(), 10_000)));
        } else {
            assert!(config(&["--remote-write", url]).unwrap_err().contains("remote-write feature"));
        }
        assert!(config(&["--remote-write-capacity", "5"]).unwrap_err().contains('5'));
    }

    #[test]
    fn serve_addr_is_kept_for_scripts() {
        let parsed = config(&["--serve", "127.0.0.1:0", "--duration", "40"]);
        if cfg!(feature = "http") {
            let c = parsed.unwrap();
            assert_eq!(c.serve, Serve::At("127.0.0.1:0".parse().unwrap()));
            assert_eq!(c.run_for(), Some(Duration::from_secs(40)));
            // as before: the dashboard JSON on stdout unless --json says where
            assert_eq!(c.json_out(), Some(JsonOut::Stdout));
            let err = config(&["--serve", "127.0.0.1:0", "--headless"]).unwrap_err();
            assert!(err.contains("exclude"), "{err}");
            let err = config(&["--serve", "nowhere"]).unwrap_err();
            assert!(err.contains("'nowhere'"), "{err}");
        } else {
            assert!(parsed.unwrap_err().contains("--features http"));
        }
    }

    /// A message span as slow as the spike makes it is in the summary's slow
    /// operations with its room; a fast one only in the span statistics.
    #[cfg(all(feature = "tracing", feature = "test-util"))]
    #[test]
    fn the_summary_lists_slow_messages_and_span_statistics() {
        use tracing_subscriber::layer::SubscriberExt as _;
        let clock = watchpost::ManualClock::at_millis(1_767_225_600_000);
        let engine =
            Engine::builder().clock(clock.clone()).without_system_source().build().unwrap();
        let layer = tracing_layer(&engine).unwrap();
        let subscriber = tracing_subscriber::registry().with(layer.clone());
        tracing::subscriber::with_default(subscriber, || {
            let fast = tracing::info_span!("handle_message", room = "general").entered();
            clock.advance(Duration::from_millis(1));
            drop(fast);
            let slow = tracing::info_span!("handle_message", room = "dev").entered();
            clock.advance(SPIKE_DELAY);
            drop(slow);
        });
        let integrations = Integrations {
            tracing: layer,
            #[cfg(feature = "metrics")]
            metrics: watchpost::integrations::MetricsRecorder::new(&engine),
        };
        let mut out = String::new();
        integrations.render(&engine.dashboard(), &mut out);
        assert!(out.contains("  spans      handle_message   2 calls"), "{out}");
        assert!(
            out.contains("  slow ops   1 at or over 20 ms (handle_message 1); the slowest:"),
            "{out}"
        );
        assert!(out.contains(" handle_message 40 ms room=dev\n"), "{out}");
        assert!(!out.contains("room=general"), "{out}");
    }

    /// The facade's `messages_total{room}` is the counter the summary reads.
    #[cfg(feature = "metrics")]
    #[test]
    fn the_facade_counts_into_the_registered_message_counter() {
        let engine = Engine::builder().without_system_source().build().unwrap();
        let chat = ChatMetrics::register(&engine.monitor()).unwrap();
        let recorder = watchpost::integrations::MetricsRecorder::new(&engine);
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!("messages_total", "room" => "dev").increment(2);
        });
        assert_eq!(chat.messages_total(), 2);
        assert_eq!(chat.messages_by_room(), "general 0, random 0, dev 2");
    }

    #[test]
    fn the_server_slows_down_once_or_every_minute() {
        let ten = Some(Duration::from_secs(10));
        let slow: Vec<u64> = (0..10).filter(|&s| spiking(s, ten)).collect();
        assert_eq!(slow, [5, 6]);
        let slow: Vec<u64> = (0..130).filter(|&s| spiking(s, None)).collect();
        let expected: Vec<u64> = (20..26).chain(80..86).collect();
        assert_eq!(slow, expected);
        assert!(!(0..3).any(|s| spiking(s, Some(Duration::from_secs(3)))));
    }
}
