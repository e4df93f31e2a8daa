//! Running detectors on the Numenta Anomaly Benchmark (NAB) and scoring them.
//!
//! Everything needed to reproduce watchpost's NAB numbers from a NAB data
//! directory: read the CSV series, run a fresh detector per file, write the
//! results in NAB's layout, and score them with NAB's rules:
//!
//! - the first `min(floor(0.15 n), 750)` rows of a file are probationary and
//!   not scored;
//! - a labelled window `[lo, hi]` of width `W` earns, for its earliest
//!   detection at row `i`, `A_TP · σ(−(hi − i + 1)/W) / σ(−1)`, and costs
//!   `A_FN` when it has no detection; `σ(x) = 2 / (1 + e^{5x}) − 1` (−1 for
//!   `x > 3`);
//! - every detection outside a window costs `A_FP · σ((i − hi')/(W' − 1))`
//!   relative to the closest preceding window `[lo', hi']` (the full `A_FP`
//!   when no window precedes it);
//! - one threshold for the whole corpus is chosen to maximise the raw score
//!   (ties keep the higher threshold), and the result is normalised to
//!   `100 · (raw − null) / (perfect − null)` where the null detector never
//!   fires and the perfect one hits every window at its left edge.
//!
//! # Examples
//!
//! ```
//! use watchpost::detect::nab::{FileCase, STANDARD, score};
//!
//! // one file of 100 rows with a window over rows 40..=49
//! let mut scores = vec![0.0; 100];
//! scores[42] = 0.9;
//! let case = FileCase::from_rows("demo/a.csv", vec![0; 100], vec![(40, 49)], scores);
//! let result = score(&[case], &STANDARD, None);
//! assert!(result.normalized > 80.0);
//! assert_eq!(result.windows_hit, 1);
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::NaiveDateTime;

use super::DetectorSpec;

/// Relative costs of true positives, false positives and false negatives.
///
/// # Examples
///
/// ```
/// assert_eq!(watchpost::detect::nab::STANDARD.fp, 0.11);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    /// NAB's name for the profile.
    pub name: &'static str,
    /// Weight of a detected window (`A_TP`).
    pub tp: f64,
    /// Weight of a false positive (`A_FP`).
    pub fp: f64,
    /// Weight of a missed window (`A_FN`).
    pub fn_: f64,
}

/// NAB's standard profile.
pub const STANDARD: Profile = Profile { name: "standard", tp: 1.0, fp: 0.11, fn_: 1.0 };
/// NAB's profile that punishes false positives twice as hard.
pub const REWARD_LOW_FP_RATE: Profile =
    Profile { name: "reward_low_FP_rate", tp: 1.0, fp: 0.22, fn_: 1.0 };
/// NAB's profile that punishes missed windows twice as hard.
pub const REWARD_LOW_FN_RATE: Profile =
    Profile { name: "reward_low_FN_rate", tp: 1.0, fp: 0.11, fn_: 2.0 };
/// The three profiles, standard first.
pub const PROFILES: [Profile; 3] = [STANDARD, REWARD_LOW_FP_RATE, REWARD_LOW_FN_RATE];

/// The probationary rows of a file of `n` rows: `min(floor(0.15 n), 750)`.
///
/// # Examples
///
/// ```
/// use watchpost::detect::nab::probation_rows;
/// assert_eq!((probation_rows(4_032), probation_rows(22_695)), (604, 750));
/// ```
pub fn probation_rows(n: usize) -> usize {
    // computed in floating point, exactly as NAB does
    floor_usize(0.15 * idx_f64(n)).min(750)
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // non-negative, far below 2^52
fn floor_usize(x: f64) -> usize {
    x.max(0.0).floor() as usize
}

/// NAB's scaled sigmoid.
fn shape(x: f64) -> f64 {
    if x > 3.0 { -1.0 } else { 2.0 / (1.0 + (5.0 * x).exp()) - 1.0 }
}

fn idx_f64(n: usize) -> f64 {
    super::window::as_f64(n)
}

/// One data file: timestamps and values in file order.
///
/// # Examples
///
/// ```
/// use watchpost::detect::nab::Series;
///
/// let s = Series::parse_csv("timestamp,value\n2014-04-01 00:00:00,1.5\n2014-04-01 00:05:00,2\n")?;
/// assert_eq!(s.values, [1.5, 2.0]);
/// assert_eq!(s.timestamps_ms[1] - s.timestamps_ms[0], 300_000);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// The timestamps as written in the file.
    pub timestamps: Vec<String>,
    /// The timestamps in milliseconds since the Unix epoch (read as UTC).
    pub timestamps_ms: Vec<i64>,
    /// The values (NaN where the field is not a number).
    pub values: Vec<f64>,
}

fn bad_data(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Parses a NAB timestamp (`2014-04-01 00:00:00`, optionally with fractional
/// seconds, or with a `T`).
///
/// # Errors
///
/// [`io::ErrorKind::InvalidData`] when the text is no such timestamp.
///
/// # Examples
///
/// ```
/// let t = watchpost::detect::nab::parse_timestamp("2014-04-01 00:00:00.000000")?;
/// assert_eq!(t.and_utc().timestamp(), 1_396_310_400);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn parse_timestamp(text: &str) -> io::Result<NaiveDateTime> {
    let text = text.trim();
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .ok_or_else(|| bad_data(format!("cannot parse timestamp {text:?}")))
}

impl Series {
    /// Parses CSV text with a `timestamp,value` header.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidData`] when the header lacks a column or a
    /// timestamp does not parse.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::detect::nab::Series::parse_csv("a,b\n1,2\n").is_err());
    /// ```
    pub fn parse_csv(text: &str) -> io::Result<Series> {
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or("").split(',').map(str::trim).collect();
        let col = |name: &str| {
            header
                .iter()
                .position(|h| *h == name)
                .ok_or_else(|| bad_data(format!("no {name:?} column")))
        };
        let (tc, vc) = (col("timestamp")?, col("value")?);
        let mut s = Series::default();
        for line in lines.filter(|l| !l.trim().is_empty()) {
            let fields: Vec<&str> = line.split(',').collect();
            let t = fields.get(tc).copied().unwrap_or("");
            let ts = parse_timestamp(t)?;
            s.timestamps.push(t.trim().to_owned());
            s.timestamps_ms.push(ts.and_utc().timestamp_millis());
            s.values.push(fields.get(vc).and_then(|v| v.trim().parse().ok()).unwrap_or(f64::NAN));
        }
        Ok(s)
    }

    /// Reads a CSV file (see [`Series::parse_csv`]).
    ///
    /// # Errors
    ///
    /// I/O errors, and those of [`Series::parse_csv`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::detect::nab::Series::read("/no/such/file.csv").is_err());
    /// ```
    pub fn read(path: impl AsRef<Path>) -> io::Result<Series> {
        let path = path.as_ref();
        let text = fs::read_to_string(path)?;
        Series::parse_csv(&text).map_err(|e| bad_data(format!("{}: {e}", path.display())))
    }

    /// Number of rows.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(watchpost::detect::nab::Series::default().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are no rows.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::detect::nab::Series::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// Feeds a series, row by row, to a fresh detector built from `spec` and
/// returns one score per row.
///
/// # Examples
///
/// ```
/// use watchpost::detect::{DetectorSpec, nab::{Series, run_detector}};
///
/// let s = Series::parse_csv("timestamp,value\n2014-04-01 00:00:00,1\n")?;
/// assert_eq!(run_detector(&DetectorSpec::default(), &s), [0.0]);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn run_detector(spec: &DetectorSpec, series: &Series) -> Vec<f64> {
    let mut d = spec.build();
    series.timestamps_ms.iter().zip(&series.values).map(|(&t, &v)| d.update(t, v)).collect()
}

/// Writes NAB results: `timestamp,value,anomaly_score`, one row per input row.
///
/// # Errors
///
/// I/O errors.
///
/// # Examples
///
/// ```no_run
/// use watchpost::detect::nab::{Series, write_results};
/// let s = Series::read("data/realKnownCause/nyc_taxi.csv")?;
/// let scores = vec![0.0; s.len()];
/// write_results("out/realKnownCause/nyc_taxi.csv", &s, &scores)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn write_results(path: impl AsRef<Path>, series: &Series, scores: &[f64]) -> io::Result<()> {
    let path = path.as_ref();
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut w = BufWriter::new(fs::File::create(path)?);
    writeln!(w, "timestamp,value,anomaly_score")?;
    for ((t, v), s) in series.timestamps.iter().zip(&series.values).zip(scores) {
        writeln!(w, "{t},{v},{s}")?;
    }
    w.flush()
}

/// Every `<category>/<file>.csv` under `dir`, as relative paths with `/`,
/// sorted.
///
/// # Errors
///
/// I/O errors while listing.
///
/// # Examples
///
/// ```no_run
/// let files = watchpost::detect::nab::list_data_files("data")?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn list_data_files(dir: impl AsRef<Path>) -> io::Result<Vec<String>> {
    let dir = dir.as_ref();
    let with_path = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", dir.display()));
    let mut out = Vec::new();
    for cat in fs::read_dir(dir).map_err(with_path)? {
        let cat = cat?;
        if !cat.file_type()?.is_dir() {
            continue;
        }
        for f in fs::read_dir(cat.path())? {
            let f = f?;
            let name = f.file_name().to_string_lossy().into_owned();
            if f.file_type()?.is_file()
                && Path::new(&name).extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"))
            {
                out.push(format!("{}/{name}", cat.file_name().to_string_lossy()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// NAB labels: anomaly windows (start, end timestamps) per relative path.
///
/// # Examples
///
/// ```
/// use watchpost::detect::nab::Labels;
///
/// let l = Labels::parse(r#"{"c/a.csv": [["2014-04-01 00:00:00.000000", "2014-04-01 01:00:00.000000"]], "c/b.csv": []}"#)?;
/// assert_eq!(l.windows.len(), 2);
/// assert_eq!(l.windows["c/a.csv"].len(), 1);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Labels {
    /// Windows per file, keyed by `<category>/<file>.csv`.
    pub windows: BTreeMap<String, Vec<(NaiveDateTime, NaiveDateTime)>>,
}

impl Labels {
    /// Parses NAB's `combined_windows.json`.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidData`] on malformed JSON or timestamps.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::detect::nab::Labels::parse("[1]").is_err());
    /// ```
    pub fn parse(json: &str) -> io::Result<Labels> {
        let raw: BTreeMap<String, Vec<Vec<String>>> =
            serde_json::from_str(json).map_err(|e| bad_data(format!("labels: {e}")))?;
        let mut windows = BTreeMap::new();
        for (k, v) in raw {
            let mut list = Vec::with_capacity(v.len());
            for pair in v {
                let [a, b] = pair.as_slice() else {
                    return Err(bad_data(format!("labels: {k}: a window needs two timestamps")));
                };
                list.push((parse_timestamp(a)?, parse_timestamp(b)?));
            }
            windows.insert(k, list);
        }
        Ok(Labels { windows })
    }

    /// Reads and parses a labels file.
    ///
    /// # Errors
    ///
    /// I/O errors and those of [`Labels::parse`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(watchpost::detect::nab::Labels::read("/no/such.json").is_err());
    /// ```
    pub fn read(path: impl AsRef<Path>) -> io::Result<Labels> {
        Labels::parse(&fs::read_to_string(path)?)
    }
}

/// A scored file: its rows, windows (inclusive row ranges) and detector scores.
///
/// # Examples
///
/// ```
/// use watchpost::detect::nab::FileCase;
/// let case = FileCase::from_rows("c/a.csv", vec![0; 10], vec![(3, 5)], vec![0.0; 10]);
/// assert_eq!(case.probation(), 1);
/// ```
#[derive(Debug, Clone)]
pub struct FileCase {
    /// `<category>/<file>.csv`.
    pub rel: String,
    /// Row timestamps in milliseconds (for detections per day).
    pub timestamps_ms: Vec<i64>,
    /// Labelled windows as inclusive row ranges, sorted.
    pub windows: Vec<(usize, usize)>,
    /// One detector score per row.
    pub scores: Vec<f64>,
    /// Per row: window index or `None`, and the unweighted credit.
    rows: Vec<(Option<usize>, f64)>,
}

impl FileCase {
    /// Builds a case from row-index windows.
    ///
    /// # Panics
    ///
    /// When `scores` and `timestamps_ms` differ in length.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::detect::nab::FileCase;
    /// let case = FileCase::from_rows("c/a.csv", vec![0; 4], vec![], vec![0.0; 4]);
    /// assert!(case.windows.is_empty());
    /// ```
    pub fn from_rows(
        rel: &str,
        timestamps_ms: Vec<i64>,
        mut windows: Vec<(usize, usize)>,
        scores: Vec<f64>,
    ) -> FileCase {
        assert_eq!(scores.len(), timestamps_ms.len(), "{rel}: one score per row");
        windows.sort_unstable();
        let n = scores.len();
        let mut rows = Vec::with_capacity(n);
        let mut k = 0;
        let mut last: Option<(usize, usize)> = None; // (hi, width) of the last window passed
        for i in 0..n {
            while k < windows.len() && windows[k].1 < i {
                last = Some((windows[k].1, windows[k].1 - windows[k].0 + 1));
                k += 1;
            }
            let row = if k < windows.len() && windows[k].0 <= i && i <= windows[k].1 {
                let (lo, hi) = windows[k];
                let width = idx_f64(hi - lo + 1);
                (Some(k), shape(-idx_f64(hi - i + 1) / width) / shape(-1.0))
            } else {
                match last {
                    None => (None, -1.0),
                    Some((hi, width)) => {
                        let y = if width > 1 {
                            idx_f64(i - hi) / idx_f64(width - 1)
                        } else {
                            f64::INFINITY
                        };
                        (None, shape(y))
                    }
                }
            };
            rows.push(row);
        }
        FileCase { rel: rel.to_owned(), timestamps_ms, windows, scores, rows }
    }

    /// Builds a case from a series, its label windows (timestamps) and scores.
    /// A window whose ends are not exact row timestamps covers the rows that
    /// fall inside it; one that covers no row is dropped.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidData`] when a row timestamp does not parse or
    /// the score count differs from the row count.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::detect::nab::{FileCase, Series, parse_timestamp};
    ///
    /// let s = Series::parse_csv("timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00,2\n")?;
    /// let w = (parse_timestamp("2014-04-01 00:05:00")?, parse_timestamp("2014-04-01 00:05:00")?);
    /// let case = FileCase::new("c/a.csv", &s, &[w], vec![0.0, 1.0])?;
    /// assert_eq!(case.windows, [(1, 1)]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new(
        rel: &str,
        series: &Series,
        windows: &[(NaiveDateTime, NaiveDateTime)],
        scores: Vec<f64>,
    ) -> io::Result<FileCase> {
        if scores.len() != series.len() {
            return Err(bad_data(format!(
                "{rel}: {} scores for {} rows",
                scores.len(),
                series.len()
            )));
        }
        let times: Vec<NaiveDateTime> =
            series.timestamps.iter().map(|t| parse_timestamp(t)).collect::<io::Result<_>>()?;
        let mut ranges = Vec::new();
        for &(start, end) in windows {
            let lo = times.iter().position(|&t| t == start);
            let hi = times.iter().position(|&t| t == end);
            if let (Some(lo), Some(hi)) = (lo, hi) {
                ranges.push((lo, hi));
                continue;
            }
            let inside: Vec<usize> =
                (0..times.len()).filter(|&i| start <= times[i] && times[i] <= end).collect();
            if let (Some(&lo), Some(&hi)) = (inside.first(), inside.last()) {
                ranges.push((lo, hi));
            }
        }
        Ok(FileCase::from_rows(rel, series.timestamps_ms.clone(), ranges, scores))
    }

    /// Rows not scored at the start of the file.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::detect::nab::FileCase;
    /// assert_eq!(FileCase::from_rows("c/a.csv", vec![0; 1_000], vec![], vec![0.0; 1_000]).probation(), 150);
    /// ```
    pub fn probation(&self) -> usize {
        probation_rows(self.scores.len())
    }

    /// Windows with at least one row after probation.
    fn scored_windows(&self) -> usize {
        let p = self.probation();
        self.windows.iter().filter(|&&(_, hi)| hi >= p && hi < self.scores.len()).count()
    }

    /// Detections (scores at or above `threshold`) after probation, per day of
    /// data after probation; `None` for a file with less than one row after it.
    ///
    /// # Examples
    ///
    /// ```
    /// use watchpost::detect::nab::FileCase;
    ///
    /// let day = 86_400_000;
    /// let times: Vec<i64> = (0..100).map(|i| i * day / 10).collect(); // 10 rows a day
    /// let mut scores = vec![0.0; 100];
    /// scores[50] = 1.0;
    /// let case = FileCase::from_rows("c/a.csv", times, vec![], scores);
    /// let rate = case.detections_per_day(0.5).unwrap();
    /// assert!((rate - 1.0 / 8.4).abs() < 0.01);
    /// ```
    pub fn detections_per_day(&self, threshold: f64) -> Option<f64> {
        let p = self.probation();
        let (first, last) = (self.timestamps_ms.get(p)?, self.timestamps_ms.last()?);
        #[allow(clippy::cast_precision_loss)] // a span in ms fits easily
        let days = last.saturating_sub(*first) as f64 / 86_400_000.0;
        let hits = self.scores[p..].iter().filter(|&&s| s >= threshold).count();
        (days > 0.0).then(|| idx_f64(hits) / days)
    }
}

/// The result of scoring a corpus under one profile.
///
/// # Examples
///
/// ```
/// use watchpost::detect::nab::{FileCase, STANDARD, score};
/// let case = FileCase::from_rows("c/a.csv", vec![0; 100], vec![(40, 49)], vec![0.0; 100]);
/// let r = score(&[case], &STANDARD, None);
/// assert_eq!(r.normalized, 0.0); // never fires: the null detector
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileScore {
    /// The profile's name.
    pub profile: &'static str,
    /// The threshold used (optimised, or the one given).
    pub threshold: f64,
    /// Sum of credits and costs over every file.
    pub raw: f64,
    /// Raw score of a detector that never fires.
    pub null: f64,
    /// Raw score of a perfect detector.
    pub perfect: f64,
    /// `100 · (raw − null) / (perfect − null)`.
    pub normalized: f64,
    /// Windows with a detection.
    pub windows_hit: usize,
    /// Windows with a row after probation.
    pub scored_windows: usize,
    /// Detections outside every window.
    pub fp_rows: usize,
}

/// Scores `files` under `profile`, at `threshold` if given, else at the
/// threshold that maximises the raw score (ties keep the higher threshold).
///
/// # Examples
///
/// ```
/// use watchpost::detect::nab::{FileCase, STANDARD, score};
///
/// let mut scores = vec![0.0; 100];
/// scores[40] = 0.8; // left edge of the window: full credit
/// scores[90] = 0.6; // a false positive
/// let case = FileCase::from_rows("c/a.csv", vec![0; 100], vec![(40, 49)], scores);
/// let best = score(&[case.clone()], &STANDARD, None);
/// assert_eq!((best.threshold, best.fp_rows), (0.8, 0));
/// assert!((best.normalized - 100.0).abs() < 1e-9);
/// let fixed = score(&[case], &STANDARD, Some(0.5));
/// assert_eq!(fixed.fp_rows, 1);
/// ```
pub fn score(files: &[FileCase], profile: &Profile, threshold: Option<f64>) -> ProfileScore {
    // (score, global window id, credit), for every row after probation
    let mut points: Vec<(f64, Option<usize>, f64)> = Vec::new();
    let mut base = 0;
    for f in files {
        for i in f.probation()..f.scores.len() {
            let s = if f.scores[i].is_nan() { 0.0 } else { f.scores[i] };
            let (w, c) = f.rows[i];
            points.push((s, w.map(|w| base + w), c));
        }
        base += f.windows.len();
    }
    points.sort_by(|a, b| b.0.total_cmp(&a.0));
    let n_windows = base;
    let scored: usize = files.iter().map(FileCase::scored_windows).sum();
    let null = -profile.fn_ * idx_f64(scored);
    let perfect = profile.tp * idx_f64(n_windows);

    let mut best_credit: Vec<Option<f64>> = vec![None; n_windows];
    let (mut fp_sum, mut win_sum) = (0.0, null);
    let (mut fp_rows, mut hit) = (0, 0);
    let mut best = (f64::INFINITY, null, 0, 0); // threshold, raw, hits, fp rows
    let mut j = 0;
    while j < points.len() {
        let thr = points[j].0;
        if threshold.is_some_and(|t| thr < t) {
            break;
        }
        while j < points.len() && points[j].0.total_cmp(&thr).is_eq() {
            let (_, g, c) = points[j];
            match g {
                None => {
                    fp_sum += profile.fp * c;
                    fp_rows += 1;
                }
                Some(g) => match best_credit[g] {
                    None => {
                        best_credit[g] = Some(c);
                        win_sum += profile.tp * c + profile.fn_;
                        hit += 1;
                    }
                    Some(old) if c > old => {
                        best_credit[g] = Some(c);
                        win_sum += profile.tp * (c - old);
                    }
                    Some(_) => {}
                },
            }
            j += 1;
        }
        let raw = fp_sum + win_sum;
        if threshold.is_some() || raw > best.1 {
            best = (thr, raw, hit, fp_rows);
        }
    }
    if let Some(t) = threshold {
        best.0 = t;
    }
    let (thr, raw, windows_hit, fp_rows) = best;
    let normalized =
        if perfect > null { 100.0 * (raw - null) / (perfect - null) } else { f64::NAN };
    ProfileScore {
        profile: profile.name,
        threshold: thr,
        raw,
        null,
        perfect,
        normalized,
        windows_hit,
        scored_windows: scored,
        fp_rows,
    }
}

/// The outcome of running a detector over a NAB data directory.
#[derive(Debug, Clone, Default)]
pub struct CorpusRun {
    /// One case per data file, in sorted path order (windows empty when no
    /// labels were given or the file has none).
    pub cases: Vec<FileCase>,
    /// Data files with no entry in the labels (when labels were given).
    pub unlabelled: Vec<String>,
}

/// Runs a fresh detector from `spec` over every `<category>/<file>.csv` in
/// `data_dir`, writes `out_dir/<category>/<file>.csv` when `out_dir` is given,
/// and returns the cases ready for [`score`]. With `labels`, only the labelled
/// files are returned for scoring.
///
/// # Errors
///
/// I/O and parse errors, naming the file.
///
/// # Examples
///
/// ```no_run
/// use watchpost::detect::{DetectorSpec, nab::{Labels, STANDARD, run_corpus, score}};
///
/// let labels = Labels::read("labels/combined_windows.json")?;
/// let run = run_corpus("data", Some(&labels), &DetectorSpec::default(), Some("out".as_ref()))?;
/// println!("{:.1}", score(&run.cases, &STANDARD, None).normalized);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn run_corpus(
    data_dir: impl AsRef<Path>,
    labels: Option<&Labels>,
    spec: &DetectorSpec,
    out_dir: Option<&Path>,
) -> io::Result<CorpusRun> {
    let data_dir = data_dir.as_ref();
    let mut run = CorpusRun::default();
    for rel in list_data_files(data_dir)? {
        let series = Series::read(data_dir.join(&rel))?;
        let scores = run_detector(spec, &series);
        if let Some(out) = out_dir {
            let path: PathBuf = out.join(&rel);
            write_results(&path, &series, &scores)?;
        }
        let windows = match labels.map(|l| l.windows.get(&rel)) {
            None => &[][..],
            Some(Some(w)) => w.as_slice(),
            Some(None) => {
                run.unlabelled.push(rel);
                continue;
            }
        };
        run.cases.push(FileCase::new(&rel, &series, windows, scores)?);
    }
    Ok(run)
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // exact values are expected
mod tests {
    use super::*;

    #[test]
    fn credit_follows_the_window_position() {
        let case = FileCase::from_rows("c/a.csv", vec![0; 200], vec![(100, 109)], vec![0.0; 200]);
        assert!((case.rows[100].1 - 1.0).abs() < 1e-12);
        assert!(case.rows[109].1 > 0.0 && case.rows[109].1 < 0.5);
        assert_eq!(case.rows[50].1, -1.0);
        assert!(case.rows[110].1 > -0.5 && case.rows[110].1 < 0.0);
        assert_eq!(case.rows[199].1, -1.0);
    }

    #[test]
    fn only_the_best_detection_in_a_window_counts() {
        let mut scores = vec![0.0; 200];
        scores[105] = 0.9;
        scores[101] = 0.7;
        let case = FileCase::from_rows("c/a.csv", vec![0; 200], vec![(100, 109)], scores);
        let at_07 = score(std::slice::from_ref(&case), &STANDARD, Some(0.7));
        let at_09 = score(&[case], &STANDARD, Some(0.9));
        assert!(at_07.raw > at_09.raw);
        assert_eq!(at_07.windows_hit, 1);
    }

    #[test]
    fn windows_in_probation_are_not_scored_but_count_as_perfect() {
        let case = FileCase::from_rows(
            "c/a.csv",
            vec![0; 1_000],
            vec![(10, 20), (500, 510)],
            vec![0.0; 1_000],
        );
        let r = score(&[case], &STANDARD, None);
        assert_eq!((r.scored_windows, r.null, r.perfect), (1, -1.0, 2.0));
    }
}
