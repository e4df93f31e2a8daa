//! Remote write: encoding and compressing a batch of 10 000 samples (protobuf
//! `WriteRequest` + snappy; budget ≤ 2 ms), beside `serde_json` of the same
//! batch in the same run; and the sender's throughput against a local sink
//! (a minimal HTTP/1.1 server on loopback that answers 204), beside the same
//! ingest without remote write.
//!
//! Run: `cargo bench --features remote-write --bench remote_write`

use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use watchpost::Engine;
use watchpost::remote_write::RemoteWriteConfig;
use watchpost::remote_write::proto::{self, Label, Sample, TimeSeries, WriteRequest};

/// One series for the JSON baseline: label pairs and (timestamp, value) pairs.
type JsonSeries<'a> = (Vec<(&'a str, &'a str)>, Vec<(i64, f64)>);

/// 100 series × 100 samples: the labels of a chat server's series, values
/// of a latency gauge at a 250 ms interval.
fn batch() -> WriteRequest {
    let t0 = 1_767_225_600_000i64;
    WriteRequest {
        timeseries: (0..100)
            .map(|s| TimeSeries {
                labels: vec![
                    Label { name: "__name__".into(), value: "message_latency_seconds:p90".into() },
                    Label { name: "instance".into(), value: "chat-7.example.com".into() },
                    Label { name: "job".into(), value: "chat_server".into() },
                    Label { name: "room".into(), value: format!("room-{s}") },
                ],
                samples: (0..100)
                    .map(|i| Sample {
                        value: 0.02 + f64::from(s * 7 + i % 13) * 1.0e-4,
                        timestamp: t0 + i64::from(i) * 250,
                    })
                    .collect(),
            })
            .collect(),
        metadata: vec![],
    }
}

fn encode(c: &mut Criterion) {
    let request = batch();
    let samples: usize = request.timeseries.iter().map(|t| t.samples.len()).sum();
    assert_eq!(samples, 10_000);
    // the serde_json baseline: the same labels and samples
    let as_json: Vec<JsonSeries<'_>> = request
        .timeseries
        .iter()
        .map(|t| {
            (
                t.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect(),
                t.samples.iter().map(|s| (s.timestamp, s.value)).collect(),
            )
        })
        .collect();
    let mut g = c.benchmark_group("remote_write_batch");
    g.throughput(Throughput::Elements(10_000));
    let (mut raw, mut body) = (Vec::new(), Vec::new());
    proto::encode_into(&request, &mut raw, &mut body).expect("encodes");
    assert_eq!(proto::decode(&body).expect("decodes"), request);
    g.bench_function("protobuf_snappy_10k", |b| {
        b.iter(|| {
            proto::encode_into(black_box(&request), &mut raw, &mut body).expect("encodes");
            black_box(body.len())
        });
    });
    g.bench_function("protobuf_only_10k", |b| {
        b.iter(|| {
            use prost::Message as _;
            raw.clear();
            black_box(&request).encode(&mut raw).expect("grows");
            black_box(raw.len())
        });
    });
    let mut json = Vec::new();
    g.bench_function("serde_json_baseline_10k", |b| {
        b.iter(|| {
            json.clear();
            serde_json::to_writer(&mut json, black_box(&as_json)).expect("serializes");
            black_box(json.len())
        });
    });
    g.finish();
    eprintln!(
        "remote_write_batch: {} bytes protobuf, {} bytes snappy, {} bytes JSON",
        raw.len(),
        body.len(),
        json.len()
    );
}

/// A receiver that accepts everything: reads each request's headers and
/// body, answers 204, keeps the connection.
fn sink() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
    let addr = listener.local_addr().expect("has an address");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut out = conn.try_clone().expect("clones");
                let mut reader = BufReader::new(conn);
                let mut body = Vec::new();
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let l = line.trim_end();
                        if l.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = l.split_once(':')
                            && k.eq_ignore_ascii_case("content-length")
                        {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    body.resize(length, 0);
                    if reader.read_exact(&mut body).is_err()
                        || out.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}/api/v1/write")
}

fn engine(remote: Option<RemoteWriteConfig>) -> Engine {
    let mut b = Engine::builder()
        .without_system_source()
        .without_anomaly_detection()
        .without_default_alert_rules()
        .sample_interval(Duration::from_hours(24))
        .record_queue_capacity(1 << 16)
        .series_cap(1_000);
    if let Some(remote) = remote {
        b = b.remote_write(remote);
    }
    b.build().expect("valid config")
}

fn sender(c: &mut Criterion) {
    let url = sink();
    let mut g = c.benchmark_group("remote_write_sender");
    let n = 10_000;
    g.throughput(Throughput::Elements(n));
    let remote = |shards| {
        RemoteWriteConfig::new(&url)
            .expect("valid URL")
            .include([watchpost::alert::Matcher::equal("__name__", "chat_latency")])
            .shards(shards)
    };
    let rooms: Vec<String> = (0..100).map(|i| format!("room-{i}")).collect();
    for (name, config) in [
        ("ingest_only", None),
        ("remote_write_1_shard", Some(remote(1))),
        ("remote_write_4_shards", Some(remote(4))),
    ] {
        let engine = engine(config);
        let mut t = 1_767_225_600_000i64;
        g.bench_function(BenchmarkId::new(name, n), |b| {
            b.iter(|| {
                // 100 series × 100 samples, then the flush that delivers them
                for _ in 0..100 {
                    t += 1;
                    let at = Utc.timestamp_millis_opt(t).unwrap();
                    for room in &rooms {
                        engine
                            .record_at("chat_latency", &[("room", room)], at, 0.02)
                            .expect("records");
                    }
                }
                engine.flush().expect("flushes");
            });
        });
        if let Some(s) = engine.dashboard().remote_write {
            assert_eq!(s.sent, s.produced, "{s:?}");
            assert_eq!(s.dropped + s.failed, 0, "{s:?}");
        }
    }
    g.finish();
}

criterion_group!(benches, encode, sender);
criterion_main!(benches);
