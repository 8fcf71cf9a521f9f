//! A stand-in for Pyroscope's push API, for tests of profiling: it decodes
//! what an agent pushes, down to each sample of the pprof profile inside.
//!
//! It answers `POST /push.v1.PusherService/Push` as Pyroscope's distributor
//! does for a Connect unary call with a protobuf body: `application/proto`
//! only (415 otherwise), gzip request bodies accepted, 400 for a body that
//! does not decode, and an empty `PushResponse` on success. The messages are
//! declared here from Pyroscope's `push/v1/push.proto`, `types/v1/types.proto`
//! and pprof's `profile.proto`, for the fields a test looks at, so the
//! stand-in shares no code with the agent it checks.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Timeout;

/// The path the Connect client of the push service posts to.
pub const PUSH_PATH: &str = "/push.v1.PusherService/Push";

const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// One CPU sample (or several identical ones) of a pushed profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileSample {
    /// The series labels of the push (`service_name`, `__name__`, ...).
    pub series: BTreeMap<String, String>,
    /// The sample's own pprof labels (`span_id`, ...).
    pub labels: BTreeMap<String, String>,
    /// Function names, leaf first.
    pub stack: Vec<String>,
    /// The sample's first value (CPU nanoseconds for a CPU profile).
    pub value: i64,
}

impl ProfileSample {
    /// Whether a function whose name contains `name` is on the stack.
    pub fn has_frame(&self, name: &str) -> bool {
        self.stack.iter().any(|frame| frame.contains(name))
    }
}

/// What arrived, and the pushes that could not be decoded.
#[derive(Debug, Default)]
struct Pushes {
    samples: Vec<ProfileSample>,
    pushes: usize,
    rejected: Vec<String>,
}

#[derive(Debug)]
struct Shared {
    pushes: Mutex<Pushes>,
    changes: watch::Sender<usize>,
}

impl Shared {
    fn pushes(&self) -> MutexGuard<'_, Pushes> {
        self.pushes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A Pyroscope push endpoint on an ephemeral port of 127.0.0.1; dropping it
/// stops it.
#[derive(Debug)]
pub struct PyroscopeReceiver {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for PyroscopeReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PyroscopeReceiver {
    /// Starts answering pushes.
    ///
    /// Returns `Err` when no port can be bound.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (changes, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            pushes: Mutex::default(),
            changes,
        });
        let app = axum::Router::new()
            .route(PUSH_PATH, post(push))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { shared, addr, task })
    }

    /// The address to give an agent (`PYROSCOPE_SERVER_ADDRESS`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many pushes were accepted.
    pub fn pushes(&self) -> usize {
        self.shared.pushes().pushes
    }

    /// Every sample of every accepted push.
    pub fn samples(&self) -> Vec<ProfileSample> {
        self.shared.pushes().samples.clone()
    }

    /// Why pushes were refused (415, 400), one line each.
    pub fn rejected(&self) -> Vec<String> {
        self.shared.pushes().rejected.clone()
    }

    /// Waits until a sample that `matches` has arrived, and returns every
    /// sample that matches by then.
    ///
    /// Returns `Err` after `timeout`, naming `what`.
    pub async fn wait_for_samples(
        &self,
        what: &str,
        matches: impl Fn(&ProfileSample) -> bool,
        timeout: Duration,
    ) -> Result<Vec<ProfileSample>, Timeout> {
        let matching = || -> Vec<ProfileSample> {
            self.shared
                .pushes()
                .samples
                .iter()
                .filter(|sample| matches(sample))
                .cloned()
                .collect()
        };
        let mut changes = self.shared.changes.subscribe();
        tokio::time::timeout(timeout, changes.wait_for(|_| !matching().is_empty()))
            .await
            .map(|_| matching())
            .map_err(|_| Timeout {
                what: what.to_owned(),
                timeout,
            })
    }

    /// Waits until `count` pushes have been accepted.
    ///
    /// Returns `Err` after `timeout`.
    pub async fn wait_for_pushes(&self, count: usize, timeout: Duration) -> Result<(), Timeout> {
        let mut changes = self.shared.changes.subscribe();
        tokio::time::timeout(timeout, changes.wait_for(|_| self.pushes() >= count))
            .await
            .map(|_| ())
            .map_err(|_| Timeout {
                what: format!("{count} profile pushes (got {})", self.pushes()),
                timeout,
            })
    }
}

async fn push(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if content_type != "application/proto" {
        shared
            .pushes()
            .rejected
            .push(format!("415: content type {content_type:?}"));
        return StatusCode::UNSUPPORTED_MEDIA_TYPE;
    }
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"gzip"));
    match decode(&body, gzip) {
        Ok(samples) => {
            let mut pushes = shared.pushes();
            pushes.samples.extend(samples);
            pushes.pushes += 1;
            let count = pushes.pushes;
            drop(pushes);
            shared.changes.send_replace(count);
            StatusCode::OK
        }
        Err(err) => {
            shared.pushes().rejected.push(format!("400: {err}"));
            StatusCode::BAD_REQUEST
        }
    }
}

/// The samples of a `PushRequest`, each profile decoded.
fn decode(body: &[u8], gzip: bool) -> Result<Vec<ProfileSample>, String> {
    let body = if gzip { gunzip(body)? } else { body.to_vec() };
    let request =
        PushRequest::decode(body.as_slice()).map_err(|err| format!("PushRequest: {err}"))?;
    let mut samples = Vec::new();
    for series in request.series {
        let labels: BTreeMap<String, String> = series
            .labels
            .into_iter()
            .map(|label| (label.name, label.value))
            .collect();
        for raw in series.samples {
            // Pyroscope takes a pprof profile gzipped or not.
            let raw_profile = if raw.raw_profile.starts_with(&[0x1f, 0x8b]) {
                gunzip(&raw.raw_profile)?
            } else {
                raw.raw_profile
            };
            let profile = Profile::decode(raw_profile.as_slice())
                .map_err(|err| format!("pprof Profile: {err}"))?;
            samples.extend(profile.samples(&labels)?);
        }
    }
    Ok(samples)
}

fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|err| format!("gzip: {err}"))?;
    Ok(out)
}

impl Profile {
    fn string(&self, index: i64) -> Result<String, String> {
        usize::try_from(index)
            .ok()
            .and_then(|index| self.string_table.get(index))
            .cloned()
            .ok_or_else(|| format!("string index {index} out of the table"))
    }

    fn samples(&self, series: &BTreeMap<String, String>) -> Result<Vec<ProfileSample>, String> {
        let function_names: BTreeMap<u64, String> = self
            .function
            .iter()
            .map(|function| Ok((function.id, self.string(function.name)?)))
            .collect::<Result<_, String>>()?;
        let locations: BTreeMap<u64, &Location> = self
            .location
            .iter()
            .map(|location| (location.id, location))
            .collect();
        self.sample
            .iter()
            .map(|sample| {
                let mut stack = Vec::new();
                for id in &sample.location_id {
                    let location = locations
                        .get(id)
                        .ok_or_else(|| format!("location {id} not in the profile"))?;
                    for line in &location.line {
                        let name = function_names.get(&line.function_id).ok_or_else(|| {
                            format!("function {} not in the profile", line.function_id)
                        })?;
                        stack.push(name.clone());
                    }
                }
                let labels = sample
                    .label
                    .iter()
                    .map(|label| Ok((self.string(label.key)?, self.string(label.str)?)))
                    .collect::<Result<_, String>>()?;
                Ok(ProfileSample {
                    series: series.clone(),
                    labels,
                    stack,
                    value: sample.value.first().copied().unwrap_or_default(),
                })
            })
            .collect()
    }
}

// Pyroscope's push/v1/push.proto and types/v1/types.proto.

#[derive(Clone, PartialEq, prost::Message)]
struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    series: Vec<RawProfileSeries>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RawProfileSeries {
    #[prost(message, repeated, tag = "1")]
    labels: Vec<LabelPair>,
    #[prost(message, repeated, tag = "2")]
    samples: Vec<RawSample>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct LabelPair {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RawSample {
    #[prost(bytes = "vec", tag = "1")]
    raw_profile: Vec<u8>,
    #[prost(string, tag = "2")]
    id: String,
}

// pprof's profile.proto.

#[derive(Clone, PartialEq, prost::Message)]
struct Profile {
    #[prost(message, repeated, tag = "2")]
    sample: Vec<Sample>,
    #[prost(message, repeated, tag = "4")]
    location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    function: Vec<Function>,
    #[prost(string, repeated, tag = "6")]
    string_table: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Sample {
    #[prost(uint64, repeated, tag = "1")]
    location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    value: Vec<i64>,
    #[prost(message, repeated, tag = "3")]
    label: Vec<Label>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Label {
    #[prost(int64, tag = "1")]
    key: i64,
    #[prost(int64, tag = "2")]
    str: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Location {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(message, repeated, tag = "4")]
    line: Vec<Line>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Line {
    #[prost(uint64, tag = "1")]
    function_id: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Function {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(int64, tag = "2")]
    name: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A push as an agent sends it: one series, one gzipped pprof profile
    /// with two samples, one labelled.
    fn push_body() -> Vec<u8> {
        let strings = ["", "main", "spin", "span_id", "00f067aa0ba902b7"];
        let profile = Profile {
            sample: vec![
                Sample {
                    location_id: vec![2, 1],
                    value: vec![10_000_000],
                    label: vec![Label { key: 3, str: 4 }],
                },
                Sample {
                    location_id: vec![1],
                    value: vec![20_000_000],
                    label: vec![],
                },
            ],
            location: vec![
                Location {
                    id: 1,
                    line: vec![Line { function_id: 1 }],
                },
                Location {
                    id: 2,
                    line: vec![Line { function_id: 2 }],
                },
            ],
            function: vec![Function { id: 1, name: 1 }, Function { id: 2, name: 2 }],
            string_table: strings.iter().map(|s| (*s).to_owned()).collect(),
        };
        let mut gzipped = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gzipped, &profile.encode_to_vec()).unwrap();
        PushRequest {
            series: vec![RawProfileSeries {
                labels: vec![LabelPair {
                    name: "service_name".into(),
                    value: "api".into(),
                }],
                samples: vec![RawSample {
                    raw_profile: gzipped.finish().unwrap(),
                    id: "1".into(),
                }],
            }],
        }
        .encode_to_vec()
    }

    #[test]
    fn it_decodes_samples_with_their_stacks_and_labels() {
        let samples = decode(&push_body(), false).unwrap();
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].stack, ["spin", "main"]);
        assert_eq!(samples[0].labels["span_id"], "00f067aa0ba902b7");
        assert_eq!(samples[0].series["service_name"], "api");
        assert_eq!(samples[0].value, 10_000_000);
        assert!(samples[1].labels.is_empty());
        assert!(samples[1].has_frame("main") && !samples[1].has_frame("spin"));
    }

    #[tokio::test]
    async fn it_answers_like_pyroscope() {
        let receiver = PyroscopeReceiver::start().await.unwrap();
        let client = reqwest::Client::new();
        let url = format!("{}{PUSH_PATH}", receiver.url());
        let send = |content_type: &'static str, body: Vec<u8>| {
            client
                .post(&url)
                .header("content-type", content_type)
                .body(body)
                .send()
        };
        assert_eq!(
            send("application/json", b"{}".to_vec())
                .await
                .unwrap()
                .status(),
            415
        );
        assert_eq!(
            send("application/proto", vec![0xff, 0xff])
                .await
                .unwrap()
                .status(),
            400
        );
        assert_eq!(
            send("application/proto", push_body())
                .await
                .unwrap()
                .status(),
            200
        );
        receiver
            .wait_for_pushes(1, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(receiver.samples().len(), 2);
        assert_eq!(receiver.rejected().len(), 2, "{:?}", receiver.rejected());
    }
}
