use super::proto::{self, Label, Sample, TimeSeries, WriteRequest};
use super::*;

fn label(name: &str, value: &str) -> Label {
    Label { name: name.into(), value: value.into() }
}

/// Protobuf written out by hand from the wire format (tag = field << 3 |
/// wire type; 2 = length-delimited, 1 = 64-bit, 0 = varint), independent of
/// prost: `WriteRequest{timeseries: [{labels: [__name__="up", job="a"],
/// samples: [{value: 1.0, timestamp: 1000}]}]}`.
const KNOWN: [u8; 42] = [
    0x0a, 0x28, // field 1 (timeseries), 40 bytes
    0x0a, 0x0e, // field 1 (labels), 14 bytes
    0x0a, 0x08, b'_', b'_', b'n', b'a', b'm', b'e', b'_', b'_', // name
    0x12, 0x02, b'u', b'p', // value
    0x0a, 0x08, // field 1 (labels), 8 bytes
    0x0a, 0x03, b'j', b'o', b'b', // name
    0x12, 0x01, b'a', // value
    0x12, 0x0c, // field 2 (samples), 12 bytes
    0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, // field 1, double 1.0 little-endian
    0x10, 0xe8, 0x07, // field 2, varint 1000
];

fn known_request() -> WriteRequest {
    WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![label("__name__", "up"), label("job", "a")],
            samples: vec![Sample { value: 1.0, timestamp: 1000 }],
        }],
        metadata: vec![],
    }
}

#[test]
fn a_request_encodes_to_the_bytes_of_the_wire_format() {
    let (mut raw, mut body) = (Vec::new(), Vec::new());
    proto::encode_into(&known_request(), &mut raw, &mut body).unwrap();
    assert_eq!(raw, KNOWN);
    // snappy's block format: the uncompressed length as a varint (42), then
    // one literal of 42 bytes (tag (42 - 1) << 2 = 0xa4): no 4-byte repeats
    let mut expected = vec![42, 0xa4];
    expected.extend_from_slice(&KNOWN);
    assert_eq!(body, expected);
    assert_eq!(proto::decode(&body).unwrap(), known_request());
}

#[test]
fn round_trip_through_snappy_and_a_protobuf_decode() {
    use prost::Message as _;
    let request = WriteRequest {
        timeseries: (0..50)
            .map(|i| TimeSeries {
                labels: vec![label("__name__", "chat_latency"), label("room", &format!("r{i}"))],
                samples: (0..40)
                    .map(|j| Sample {
                        value: f64::from(i * j) / 7.0 - 3.5e-300,
                        timestamp: 1_700_000_000_000 + i64::from(j) * 1000,
                    })
                    .collect(),
            })
            .collect(),
        metadata: vec![],
    };
    let body = proto::encode(&request).unwrap();
    let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
    assert!(body.len() < raw.len(), "{} !< {}", body.len(), raw.len());
    assert_eq!(WriteRequest::decode(raw.as_slice()).unwrap(), request);
    // special values survive bit for bit
    let odd = WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![label("__name__", "x")],
            samples: [f64::MIN_POSITIVE, -1e-310, f64::MAX, 0.1 + 0.2]
                .iter()
                .map(|&value| Sample { value, timestamp: -1 })
                .collect(),
        }],
        metadata: vec![],
    };
    let back = proto::decode(&proto::encode(&odd).unwrap()).unwrap();
    let bits = |r: &WriteRequest| {
        r.timeseries[0].samples.iter().map(|s| s.value.to_bits()).collect::<Vec<_>>()
    };
    assert_eq!(bits(&back), bits(&odd));
    // proto3 leaves out a field equal to its default, and -0.0 == 0.0: it
    // arrives as 0.0, as from Prometheus' own encoder (`if m.Value != 0`)
    let zero = WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![label("__name__", "x")],
            samples: vec![Sample { value: -0.0, timestamp: 5 }],
        }],
        metadata: vec![],
    };
    assert_eq!(
        proto::decode(&proto::encode(&zero).unwrap()).unwrap().timeseries[0].samples[0].value,
        0.0
    );
}

#[test]
fn bad_bodies_name_what_is_wrong() {
    let e = proto::decode(&[5, 0xff]).unwrap_err().to_string();
    assert!(e.contains("snappy"), "{e}");
    // valid snappy of bytes that are not a WriteRequest (field 1 claims 100 bytes)
    let body = snap::raw::Encoder::new().compress_vec(&[0x0a, 100, 1]).unwrap();
    let e = proto::decode(&body).unwrap_err().to_string();
    assert!(e.contains("WriteRequest"), "{e}");
}

#[test]
fn labels_are_sorted_with_extra_labels_the_series_lacks() {
    let config = RemoteWriteConfig::new("http://localhost/w")
        .unwrap()
        .instance("host-1")
        .unwrap()
        .job("chat")
        .unwrap()
        .label("Zone", "z")
        .unwrap();
    let key = SeriesKey::new("chat_messages", &[("room", "general"), ("job", "own")]).unwrap();
    let labels = config.label_set(&key, ":anomaly_score");
    let names: Vec<_> = labels.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect();
    // byte order: upper case sorts before `_`; the series' own `job` wins
    assert_eq!(
        names,
        [
            ("Zone", "z"),
            ("__name__", "chat_messages:anomaly_score"),
            ("instance", "host-1"),
            ("job", "own"),
            ("room", "general"),
        ]
    );
}

#[test]
fn default_extra_labels_are_the_host_and_the_executable() {
    let config = RemoteWriteConfig::new("http://localhost/w").unwrap();
    let key = SeriesKey::new("x", &[]).unwrap();
    let labels = config.label_set(&key, "");
    let get = |n: &str| labels.iter().find(|l| l.name == n).map(|l| l.value.clone());
    assert_eq!(get("instance"), Some(host_name()));
    assert!(!get("instance").unwrap().is_empty());
    let exe = std::env::current_exe().unwrap();
    assert_eq!(get("job").as_deref(), exe.file_stem().and_then(|s| s.to_str()));
}

#[test]
fn include_and_exclude_select_series() {
    let config = RemoteWriteConfig::new("http://localhost/w")
        .unwrap()
        .include([Matcher::regex("__name__", "chat_.*").unwrap()])
        .include([Matcher::equal("__name__", "cpu"), Matcher::equal("core", "0")])
        .exclude([Matcher::equal("room", "debug")]);
    let key = |name: &str, labels: &[(&str, &str)]| SeriesKey::new(name, labels).unwrap();
    assert!(config.selects(&key("chat_messages", &[("room", "general")])));
    assert!(!config.selects(&key("chat_messages", &[("room", "debug")])));
    assert!(config.selects(&key("cpu", &[("core", "0")])));
    assert!(!config.selects(&key("cpu", &[("core", "1")])));
    assert!(!config.selects(&key("memory", &[])));
    let all = RemoteWriteConfig::new("http://localhost/w").unwrap();
    assert!(all.selects(&key("memory", &[])));
}

#[test]
fn settings_are_checked_and_errors_name_the_value() {
    let base = || RemoteWriteConfig::new("http://localhost/w").unwrap();
    let e = base().max_samples_per_send(0).validate().unwrap_err().to_string();
    assert!(e.contains("max_samples_per_send") && e.contains("got 0"), "{e}");
    let e = base().queue_capacity(10).validate().unwrap_err().to_string();
    assert!(e.contains("queue_capacity") && e.contains("got 10"), "{e}");
    let e = base().shards(65).validate().unwrap_err().to_string();
    assert!(e.contains("65"), "{e}");
    let e = base()
        .backoff(Duration::from_secs(2), Duration::from_secs(1))
        .validate()
        .unwrap_err()
        .to_string();
    assert!(e.contains("2s") && e.contains("1s"), "{e}");
    let e = RemoteWriteConfig::new("http://u@/x?token=abc").unwrap_err().to_string();
    assert!(!e.contains("abc"), "{e}");
    assert!(RemoteWriteConfig::new("not a url").is_err());
    assert!(base().label("1x", "v").is_err());
    assert!(base().validate().is_ok());
}

#[test]
fn credentials_go_into_the_authorization_header_only() {
    let c = RemoteWriteConfig::new("http://localhost/w").unwrap().basic_auth("push", "pw");
    // RFC 7617's example encoding: base64("push:pw")
    assert_eq!(c.authorization.as_ref().unwrap().0, "Basic cHVzaDpwdw==");
    assert!(!format!("{c:?}").contains("cHVzaDpwdw"));
    let c = c.bearer_token("t");
    assert_eq!(c.authorization.unwrap().0, "Bearer t");
}
