//! Drives watchpost's receivers for `scripts/alertmanager_interop.sh`: an
//! engine with one rule (`hot`: `temp > 30`, critical) whose notifications
//! go to Alertmanager (v2 API, re-sent every second while firing) and, with
//! `--smtp`, to an SMTP server. Reads commands on stdin, one a line, and
//! answers each on stdout:
//!
//! - `fire`: records `temp{room="lab"} 35` and evaluates → `fired`
//! - `resolve`: records `temp{room="lab"} 20` and evaluates → `resolved`
//! - `tick`: records and evaluates once → `tick <milliseconds it took>`
//! - `quit` (or end of input): shuts down → `stats <JSON of DeliveryStats>`
//!
//! Usage: `alertmanager_push --alertmanager URL [--alertmanager URL]... [--smtp HOST:PORT]`

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use watchpost::alert::{AlertRule, Severity};
use watchpost::notify::{
    AlertmanagerReceiver, Delivery, EmailReceiver, ReceiverNotifier, SmtpSecurity,
};
use watchpost::{Engine, Error};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut alertmanagers = Vec::new();
    let mut smtp = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next();
        match (arg.as_str(), value) {
            ("--alertmanager", Some(url)) => alertmanagers.push(url),
            ("--smtp", Some(addr)) => smtp = Some(addr),
            (other, _) => {
                return Err(Box::new(Error::InvalidConfig {
                    field: "arguments",
                    reason: format!(
                        "unexpected {other:?}: --alertmanager URL... [--smtp HOST:PORT]"
                    ),
                }));
            }
        }
    }
    // Short timeouts and backoff, so a dead Alertmanager is noticed quickly.
    let delivery = Delivery::new(Duration::from_secs(2), 2)?
        .with_backoff(Duration::from_millis(100), Duration::from_millis(400))?;
    let am = Arc::new(
        AlertmanagerReceiver::builder(&alertmanagers)
            .resend_interval(Duration::from_secs(1))
            .generator_url("http://127.0.0.1/watchpost")
            .delivery(delivery)
            .build()?,
    );
    let rule = AlertRule::builder("hot", "temp")
        .above(30.0)
        .severity(Severity::Critical)
        .title("{{labels.room}} is hot")
        .message("temp is {{value}} (threshold {{threshold}})")
        .build()?;
    let mut builder = Engine::builder()
        .without_system_source()
        .sample_interval(Duration::from_hours(24))
        .alert_rule(rule)
        .notifier("alertmanager", ReceiverNotifier(Arc::clone(&am)));
    if let Some(addr) = smtp {
        let (host, port) = addr.rsplit_once(':').ok_or_else(|| Error::InvalidConfig {
            field: "smtp",
            reason: format!("{addr:?} is not HOST:PORT"),
        })?;
        let port = port.parse().map_err(|_| Error::InvalidConfig {
            field: "smtp",
            reason: format!("{port:?} is not a port"),
        })?;
        let mail = EmailReceiver::builder(host, "watchpost@example.com", ["oncall@example.com"])
            .security(SmtpSecurity::Plain)
            .port(port)
            .delivery(delivery)
            .build()?;
        builder = builder.notifier("email", ReceiverNotifier(mail));
    }
    let engine = builder.build()?;
    am.register_metrics(engine.registry())?;

    let stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let answer = match line.trim() {
            "fire" => {
                engine.record("temp", &[("room", "lab")], 35.0)?;
                engine.flush()?;
                "fired".to_owned()
            }
            "resolve" => {
                engine.record("temp", &[("room", "lab")], 20.0)?;
                engine.flush()?;
                engine.flush_notifications(Duration::from_secs(30));
                "resolved".to_owned()
            }
            "tick" => {
                let started = Instant::now();
                engine.record("temp", &[("room", "lab")], 35.0)?;
                engine.flush()?;
                format!("tick {}", started.elapsed().as_millis())
            }
            "quit" => break,
            other => format!("unknown command {other:?}"),
        };
        let mut out = stdout.lock();
        writeln!(out, "{answer}").and_then(|()| out.flush())?;
    }
    engine.shutdown()?;
    let stats = serde_json::to_string(&am.stats())?;
    let mut out = stdout.lock();
    writeln!(out, "stats {stats}").and_then(|()| out.flush())?;
    Ok(())
}
