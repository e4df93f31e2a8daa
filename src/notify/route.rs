//! The route tree: which receivers hear of an alert, and how its group is timed.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::alert::Matcher;
use crate::clock::{MAX_DURATION, duration_ms};
use crate::error::{Error, Result};

/// Default `group_wait`: zero, so the first notice of a new group leaves at
/// once (Alertmanager's default is 30 s).
pub const DEFAULT_GROUP_WAIT: Duration = Duration::ZERO;

/// Default `group_interval`: zero, so changes to a group (a resolve, a new
/// alert) leave at the moment they happen (Alertmanager's default is 5 min).
pub const DEFAULT_GROUP_INTERVAL: Duration = Duration::ZERO;

/// Default `repeat_interval`: 4 h, as in Alertmanager.
pub const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_hours(4);

/// Which labels split a route's alerts into groups.
///
/// # Examples
///
/// ```
/// use watchpost::notify::GroupBy;
/// assert_eq!(GroupBy::labels(["alertname", "room"])?, GroupBy::Labels(vec!["alertname".into(), "room".into()]));
/// assert_eq!(GroupBy::labels(["..."])?, GroupBy::All);
/// assert!(GroupBy::labels(["bad-name"]).unwrap_err().to_string().contains("\"bad-name\""));
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    /// One group per distinct combination of these labels' values (alerts
    /// without a label share the group of those without it). No labels: the
    /// route's alerts form one group.
    Labels(Vec<String>),
    /// Every label: one group per alert instance (Alertmanager's `...`).
    All,
}

impl GroupBy {
    /// Parses label names; the special name `...` means [`GroupBy::All`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming a label that is not a valid label name,
    /// or `...` given together with other names.
    ///
    /// # Examples
    ///
    /// See [`GroupBy`].
    pub fn labels<I, S>(names: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let names: Vec<String> = names.into_iter().map(|s| s.as_ref().to_owned()).collect();
        if names.iter().any(|n| n == "...") {
            if names.len() > 1 {
                return Err(invalid(
                    "group_by",
                    format!("\"...\" must stand alone, got {names:?}"),
                ));
            }
            return Ok(GroupBy::All);
        }
        let mut seen = HashSet::new();
        for n in &names {
            if !is_label_name(n) {
                return Err(invalid(
                    "group_by",
                    format!("label name {n:?} must match [a-zA-Z_][a-zA-Z0-9_]*"),
                ));
            }
            if !seen.insert(n.as_str()) {
                return Err(invalid("group_by", format!("label {n:?} is listed twice")));
            }
        }
        Ok(GroupBy::Labels(names))
    }

    /// The group labels of an alert with labels `labels`.
    pub(crate) fn group_labels(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        match self {
            GroupBy::All => labels.clone(),
            GroupBy::Labels(names) => {
                names.iter().filter_map(|n| labels.get(n).map(|v| (n.clone(), v.clone()))).collect()
            }
        }
    }
}

impl Serialize for GroupBy {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            GroupBy::All => ["..."].serialize(s),
            GroupBy::Labels(names) => names.serialize(s),
        }
    }
}

/// A node of the route tree, built in code: matchers on alert labels choose
/// the node, its receiver hears of the alert, and its `group_*` settings time
/// the messages. A child inherits the receiver, `group_by` and the three
/// intervals of its parent unless it sets them, as in Alertmanager.
///
/// An alert enters at the root (which matches every alert) and descends into
/// the first child whose matchers all match; with [`continue_`](Self::continue_)
/// set on that child, the later siblings are tried too. The deepest nodes
/// reached deliver it; a node none of whose children match delivers it
/// itself. Errors (an unknown receiver, a bad duration or label) surface
/// when the tree is built, in [`RouteTree::new`] or the router's `build`.
///
/// Serializes as Alertmanager's `route` block (durations in milliseconds
/// under `*_ms`, matchers as text).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use watchpost::{alert::Matcher, notify::{Route, RouteTree}};
/// let root = Route::builder()
///     .receiver("ops")
///     .group_by(["alertname"])
///     .group_wait(Duration::from_secs(10))
///     .child(Route::matching([Matcher::equal("team", "db")]).receiver("db").continue_(true))
///     .child(Route::matching(["severity=\"critical\"".parse()?]).receiver("pager"));
/// let tree = RouteTree::new(root, ["ops", "db", "pager"])?;
/// assert_eq!(tree.len(), 3);
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone, Default, Serialize)]
pub struct Route {
    #[serde(skip_serializing_if = "Option::is_none")]
    receiver: Option<String>,
    #[serde(serialize_with = "matchers_as_text", skip_serializing_if = "Vec::is_empty")]
    matchers: Vec<Matcher>,
    #[serde(rename = "continue")]
    continue_: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    group_by: Option<Vec<String>>,
    #[serde(
        rename = "group_wait_ms",
        serialize_with = "ms",
        skip_serializing_if = "Option::is_none"
    )]
    group_wait: Option<Duration>,
    #[serde(
        rename = "group_interval_ms",
        serialize_with = "ms",
        skip_serializing_if = "Option::is_none"
    )]
    group_interval: Option<Duration>,
    #[serde(
        rename = "repeat_interval_ms",
        serialize_with = "ms",
        skip_serializing_if = "Option::is_none"
    )]
    repeat_interval: Option<Duration>,
    #[serde(rename = "routes", skip_serializing_if = "Vec::is_empty")]
    children: Vec<Route>,
}

fn matchers_as_text<S: Serializer>(m: &[Matcher], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_seq(m.iter().map(ToString::to_string))
}

#[allow(clippy::ref_option)] // serde's `serialize_with` hands a reference to the field
fn ms<S: Serializer>(d: &Option<Duration>, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u64(d.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)))
}

impl Route {
    /// A root route: it matches every alert. Give it a receiver.
    ///
    /// # Examples
    ///
    /// See [`Route`].
    pub fn builder() -> Self {
        Route::default()
    }

    /// A child route chosen for alerts whose labels match every matcher.
    ///
    /// # Examples
    ///
    /// See [`Route`].
    pub fn matching(matchers: impl IntoIterator<Item = Matcher>) -> Self {
        Route { matchers: matchers.into_iter().collect(), ..Route::default() }
    }

    /// The receiver that hears of the alerts this route delivers
    /// (default: the parent's).
    ///
    /// # Examples
    ///
    /// See [`Route`].
    #[must_use]
    pub fn receiver(mut self, name: impl Into<String>) -> Self {
        self.receiver = Some(name.into());
        self
    }

    /// Whether the later siblings of this route are tried after it matched
    /// (default `false`: the first matching child wins).
    ///
    /// # Examples
    ///
    /// See [`Route`].
    #[must_use]
    pub fn continue_(mut self, on: bool) -> Self {
        self.continue_ = on;
        self
    }

    /// The labels that split the route's alerts into groups; `"..."` alone
    /// means every label (default: the parent's; at the root, no labels:
    /// one group per route). A bad label name is reported when the tree is built.
    ///
    /// # Examples
    ///
    /// See [`Route`].
    #[must_use]
    pub fn group_by<I, S>(mut self, labels: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.group_by = Some(labels.into_iter().map(|s| s.as_ref().to_owned()).collect());
        self
    }

    /// How long the first notice of a new group waits to collect its
    /// siblings (default: the parent's; at the root [`DEFAULT_GROUP_WAIT`], zero).
    ///
    /// # Examples
    ///
    /// See [`Route`].
    #[must_use]
    pub fn group_wait(mut self, wait: Duration) -> Self {
        self.group_wait = Some(wait);
        self
    }

    /// The least time between two messages of a group when it changes
    /// (default: the parent's; at the root [`DEFAULT_GROUP_INTERVAL`], zero).
    ///
    /// # Examples
    ///
    /// See [`Route`].
    #[must_use]
    pub fn group_interval(mut self, interval: Duration) -> Self {
        self.group_interval = Some(interval);
        self
    }

    /// How long after its last message a group that still fires and has not
    /// changed is sent again (default: the parent's; at the root
    /// [`DEFAULT_REPEAT_INTERVAL`], 4 h). Must not be zero.
    ///
    /// # Examples
    ///
    /// See [`Route`].
    #[must_use]
    pub fn repeat_interval(mut self, interval: Duration) -> Self {
        self.repeat_interval = Some(interval);
        self
    }

    /// Adds a child route; children are tried in the order they were added.
    ///
    /// # Examples
    ///
    /// See [`Route`].
    #[must_use]
    pub fn child(mut self, child: Route) -> Self {
        self.children.push(child);
        self
    }
}

/// One node of a built tree, with every inherited setting resolved.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// Matchers from the root to this node, as Alertmanager prints a route key.
    pub(crate) path: String,
    pub(crate) matchers: Vec<Matcher>,
    pub(crate) continue_: bool,
    pub(crate) receiver: String,
    pub(crate) group_by: GroupBy,
    pub(crate) group_wait_ms: i64,
    pub(crate) group_interval_ms: i64,
    pub(crate) repeat_interval_ms: i64,
    pub(crate) children: Vec<usize>,
}

/// A validated route tree: every receiver known, every setting resolved.
///
/// # Examples
///
/// ```
/// use watchpost::{alert::Matcher, notify::{Route, RouteTree}};
/// let err = RouteTree::new(
///     Route::builder().receiver("ops").child(Route::matching([Matcher::equal("team", "db")]).receiver("dba")),
///     ["ops", "db"],
/// ).unwrap_err();
/// assert!(err.to_string().contains("\"dba\""));
/// # Ok::<(), watchpost::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct RouteTree {
    nodes: Vec<Node>,
}

impl RouteTree {
    /// Validates `root` against the names of the receivers that exist.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when the root has matchers, `continue` or no
    /// receiver; a route names a receiver not in `receivers` (the message
    /// names it); a `group_by` label is not a label name; a duration is
    /// longer than [`MAX_DURATION`](crate::MAX_DURATION); or a
    /// `repeat_interval` is zero.
    ///
    /// # Examples
    ///
    /// See [`Route`] and [`RouteTree`].
    pub fn new<I, S>(root: Route, receivers: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let known: HashSet<String> = receivers.into_iter().map(|s| s.as_ref().to_owned()).collect();
        if !root.matchers.is_empty() {
            return Err(invalid(
                "route",
                "the root route matches every alert: it takes no matchers".into(),
            ));
        }
        if root.continue_ {
            return Err(invalid("route", "the root route cannot set continue".into()));
        }
        if root.receiver.is_none() {
            return Err(invalid("route", "the root route needs a receiver".into()));
        }
        let defaults = Node {
            path: String::new(),
            matchers: Vec::new(),
            continue_: false,
            receiver: String::new(),
            group_by: GroupBy::Labels(Vec::new()),
            group_wait_ms: duration_ms(DEFAULT_GROUP_WAIT),
            group_interval_ms: duration_ms(DEFAULT_GROUP_INTERVAL),
            repeat_interval_ms: duration_ms(DEFAULT_REPEAT_INTERVAL),
            children: Vec::new(),
        };
        let mut tree = RouteTree { nodes: Vec::new() };
        tree.add(root, &defaults, &known)?;
        Ok(tree)
    }

    fn add(&mut self, route: Route, parent: &Node, known: &HashSet<String>) -> Result<usize> {
        let receiver = route.receiver.unwrap_or_else(|| parent.receiver.clone());
        if !known.contains(&receiver) {
            let mut names: Vec<&String> = known.iter().collect();
            names.sort();
            return Err(invalid(
                "route",
                format!("unknown receiver {receiver:?} (known: {names:?})"),
            ));
        }
        let group_by = match route.group_by {
            None => parent.group_by.clone(),
            Some(names) => GroupBy::labels(names)?,
        };
        let dur = |field: &'static str, d: Option<Duration>, inherited: i64| -> Result<i64> {
            match d {
                None => Ok(inherited),
                Some(d) if d > MAX_DURATION => Err(invalid(
                    field,
                    format!(
                        "{d:?} is longer than the longest supported duration ({MAX_DURATION:?})"
                    ),
                )),
                Some(d) => Ok(duration_ms(d)),
            }
        };
        let repeat_interval_ms =
            dur("repeat_interval", route.repeat_interval, parent.repeat_interval_ms)?;
        if repeat_interval_ms <= 0 {
            return Err(invalid(
                "repeat_interval",
                format!("{:?} must be at least 1 ms", route.repeat_interval.unwrap_or_default()),
            ));
        }
        let mut path = parent.path.clone();
        if !path.is_empty() || self.nodes.is_empty() {
            if !path.is_empty() {
                path.push('/');
            }
            path.push('{');
            let text: Vec<String> = route.matchers.iter().map(ToString::to_string).collect();
            path.push_str(&text.join(","));
            path.push('}');
        }
        let node = Node {
            path,
            matchers: route.matchers,
            continue_: route.continue_,
            receiver,
            group_by,
            group_wait_ms: dur("group_wait", route.group_wait, parent.group_wait_ms)?,
            group_interval_ms: dur(
                "group_interval",
                route.group_interval,
                parent.group_interval_ms,
            )?,
            repeat_interval_ms,
            children: Vec::new(),
        };
        let id = self.nodes.len();
        self.nodes.push(node.clone());
        for child in route.children {
            let c = self.add(child, &node, known)?;
            self.nodes[id].children.push(c);
        }
        Ok(id)
    }

    /// The number of routes in the tree, the root included.
    ///
    /// # Examples
    ///
    /// See [`Route`].
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always `false`: a tree has at least its root.
    ///
    /// # Examples
    ///
    /// ```
    /// # use watchpost::notify::{Route, RouteTree};
    /// assert!(!RouteTree::new(Route::builder().receiver("ops"), ["ops"])?.is_empty());
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The receivers an alert with `labels` goes to, one entry per route
    /// reached (a receiver reached by two routes appears twice).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use watchpost::{alert::Matcher, notify::{Route, RouteTree}};
    /// let tree = RouteTree::new(
    ///     Route::builder().receiver("ops")
    ///         .child(Route::matching([Matcher::equal("team", "db")]).receiver("db").continue_(true))
    ///         .child(Route::matching([Matcher::equal("severity", "critical")]).receiver("pager")),
    ///     ["ops", "db", "pager"],
    /// )?;
    /// let labels = BTreeMap::from([("team".to_owned(), "db".to_owned()), ("severity".to_owned(), "critical".to_owned())]);
    /// assert_eq!(tree.receivers_for(&labels), ["db", "pager"]);
    /// assert_eq!(tree.receivers_for(&BTreeMap::new()), ["ops"]);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn receivers_for(&self, labels: &BTreeMap<String, String>) -> Vec<&str> {
        self.routes_for(labels).into_iter().map(|i| self.nodes[i].receiver.as_str()).collect()
    }

    /// The routes an alert with `labels` reaches, in tree order.
    pub(crate) fn routes_for(&self, labels: &BTreeMap<String, String>) -> Vec<usize> {
        let mut out = Vec::new();
        self.descend(0, labels, &mut out);
        out
    }

    fn descend(&self, id: usize, labels: &BTreeMap<String, String>, out: &mut Vec<usize>) -> bool {
        let node = &self.nodes[id];
        if !node.matchers.iter().all(|m| m.matches(labels.get(m.name()).map(String::as_str))) {
            return false;
        }
        let before = out.len();
        for &c in &node.children {
            if self.descend(c, labels, out) && !self.nodes[c].continue_ {
                break;
            }
        }
        if out.len() == before {
            out.push(id);
        }
        true
    }

    pub(crate) fn node(&self, id: usize) -> &Node {
        &self.nodes[id]
    }
}

/// `{a="1",b="2"}`, as Alertmanager prints group labels in a group key.
pub(crate) fn label_text(labels: &BTreeMap<String, String>) -> String {
    let mut s = String::from("{");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{k}={v:?}");
    }
    s.push('}');
    s
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn invalid(field: &'static str, reason: String) -> Error {
    Error::InvalidConfig { field, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn first_matching_child_wins_unless_continue() {
        let tree = RouteTree::new(
            Route::builder()
                .receiver("ops")
                .child(Route::matching([Matcher::equal("team", "db")]).receiver("db"))
                .child(Route::matching([Matcher::equal("severity", "critical")]).receiver("pager")),
            ["ops", "db", "pager"],
        )
        .unwrap();
        let both = labels(&[("team", "db"), ("severity", "critical")]);
        assert_eq!(tree.receivers_for(&both), ["db"]);
        assert_eq!(tree.receivers_for(&labels(&[("severity", "critical")])), ["pager"]);
        assert_eq!(tree.receivers_for(&labels(&[("team", "web")])), ["ops"]);
    }

    #[test]
    fn nested_routes_reach_the_deepest_match_and_inherit_settings() {
        let root = Route::builder()
            .receiver("ops")
            .group_by(["alertname"])
            .group_wait(Duration::from_secs(30))
            .repeat_interval(Duration::from_mins(10))
            .child(
                Route::matching([Matcher::equal("team", "db")])
                    .group_interval(Duration::from_mins(1))
                    .child(
                        Route::matching([Matcher::equal("severity", "critical")]).receiver("pager"),
                    ),
            );
        let tree = RouteTree::new(root, ["ops", "pager"]).unwrap();
        let ids = tree.routes_for(&labels(&[("team", "db"), ("severity", "critical")]));
        assert_eq!(ids.len(), 1);
        let n = tree.node(ids[0]);
        assert_eq!(n.receiver, "pager");
        assert_eq!(n.group_by, GroupBy::Labels(vec!["alertname".into()]));
        assert_eq!(
            (n.group_wait_ms, n.group_interval_ms, n.repeat_interval_ms),
            (30_000, 60_000, 600_000)
        );
        assert_eq!(n.path, r#"{}/{team="db"}/{severity="critical"}"#);
        // team=db without critical stops at the middle route, which inherits the receiver.
        let mid = tree.routes_for(&labels(&[("team", "db")]));
        assert_eq!(tree.node(mid[0]).receiver, "ops");
        assert_eq!(tree.node(mid[0]).group_interval_ms, 60_000);
        assert_eq!(tree.node(0).group_interval_ms, 0);
    }

    #[test]
    fn invalid_trees_are_rejected_with_the_offending_value() {
        let err = |r: Route| RouteTree::new(r, ["ops"]).unwrap_err().to_string();
        assert!(err(Route::builder()).contains("needs a receiver"));
        assert!(err(Route::builder().receiver("nobody")).contains("\"nobody\""));
        assert!(
            err(Route::matching([Matcher::equal("a", "b")]).receiver("ops"))
                .contains("no matchers")
        );
        assert!(
            err(Route::builder().receiver("ops").group_by(["ok", "not ok"])).contains("\"not ok\"")
        );
        assert!(
            err(Route::builder().receiver("ops").group_by(["...", "a"])).contains("stand alone")
        );
        assert!(
            err(Route::builder().receiver("ops").repeat_interval(Duration::ZERO))
                .contains("repeat_interval")
        );
        let long = MAX_DURATION + Duration::from_secs(1);
        assert!(err(Route::builder().receiver("ops").group_wait(long)).contains("group_wait"));
        assert!(
            err(Route::builder().receiver("ops").child(Route::matching([]).receiver("db")))
                .contains("\"db\"")
        );
    }

    #[test]
    fn serializes_as_a_route_block() {
        let r = Route::builder()
            .receiver("ops")
            .group_by(["..."])
            .group_wait(Duration::from_secs(1))
            .child(Route::matching([Matcher::equal("team", "db")]).continue_(true));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "receiver": "ops", "continue": false, "group_by": ["..."], "group_wait_ms": 1000,
                "routes": [{"matchers": ["team=\"db\""], "continue": true}]
            })
        );
    }
}
