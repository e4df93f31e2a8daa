//! Host and process metrics through sysinfo.

use std::fmt;
use std::path::Path;
use std::time::Instant;

use chrono::{DateTime, Utc};
use sysinfo::{
    CpuRefreshKind, Disks, MINIMUM_CPU_UPDATE_INTERVAL, MemoryRefreshKind, Networks, Pid,
    ProcessRefreshKind, ProcessesToUpdate, RefreshKind, System,
};

use crate::error::{Error, Result};
use crate::format::f32_to_f64;
use crate::metric::{Counter, Gauge};
use crate::registry::Registry;

/// The built-in source of host and process metrics (feature `system`, on by default).
///
/// | series | kind | unit |
/// |---|---|---|
/// | `system_cpu_usage` | gauge | percent of all CPUs |
/// | `system_memory_usage` | gauge | percent of RAM in use |
/// | `system_swap_usage` | gauge | percent of swap in use (0 without swap) |
/// | `system_disk_usage` | gauge | percent used of the disk holding `/` (all disks if none) |
/// | `system_network_bytes_sent` / `_recv` | counter | bytes, all interfaces (plus `:rate` series) |
/// | `system_load_average_1m` / `_5m` / `_15m` | gauge | load average (Unix) |
/// | `app_cpu_usage` | gauge | percent of one CPU used by this process |
/// | `app_memory_usage` | gauge | MB resident (RSS) |
/// | `app_file_descriptors` | gauge | open file descriptors (where the OS tells) |
/// | `app_thread_count` | gauge | threads of this process (where the OS tells) |
///
/// CPU figures are refreshed at most once per sysinfo's
/// `MINIMUM_CPU_UPDATE_INTERVAL` (a faster refresh gives meaningless values);
/// the first CPU reading appears on the second collection.
///
/// # Examples
///
/// ```
/// let engine = watchpost::Engine::builder().build()?; // the system source is on by default
/// engine.flush()?;
/// let mem = engine.latest("system_memory_usage").unwrap();
/// assert!((0.0..=100.0).contains(&mem.value));
/// # Ok::<(), watchpost::Error>(())
/// ```
pub struct SystemSource {
    system: System,
    disks: Disks,
    networks: Networks,
    pid: Option<Pid>,
    last_cpu_refresh: Option<Instant>,
    handles: Option<Handles>,
}

struct Handles {
    cpu: Gauge,
    memory: Gauge,
    swap: Gauge,
    disk: Gauge,
    sent: Counter,
    recv: Counter,
    load: [Gauge; 3],
    app_cpu: Gauge,
    app_memory: Gauge,
    app_fds: Gauge,
    app_threads: Gauge,
}

impl SystemSource {
    /// Creates the source.
    ///
    /// # Errors
    ///
    /// [`Error::Source`] if sysinfo does not support this platform.
    ///
    /// # Examples
    ///
    /// ```
    /// let source = watchpost::SystemSource::new()?;
    /// # drop(source);
    /// # Ok::<(), watchpost::Error>(())
    /// ```
    pub fn new() -> Result<Self> {
        let fail = |e: sysinfo::Error| Error::Source {
            source_name: "system".into(),
            reason: e.to_string(),
        };
        let system = System::new_with_specifics(
            RefreshKind::nothing()
                .with_cpu(CpuRefreshKind::nothing().with_usage())
                .with_memory(MemoryRefreshKind::everything()),
        )
        .map_err(fail)?;
        Ok(SystemSource {
            system,
            disks: Disks::new_with_refreshed_list().map_err(fail)?,
            networks: Networks::new_with_refreshed_list().map_err(fail)?,
            pid: sysinfo::get_current_pid().ok(),
            last_cpu_refresh: None,
            handles: None,
        })
    }

    fn disk_usage(&self) -> Option<f64> {
        let list: &[sysinfo::Disk] = &self.disks;
        let root: Vec<_> = list.iter().filter(|d| d.mount_point() == Path::new("/")).collect();
        let chosen: Vec<_> = if root.is_empty() { list.iter().collect() } else { root };
        let total: u64 = chosen.iter().map(|d| d.total_space()).sum();
        let avail: u64 = chosen.iter().map(|d| d.available_space()).sum();
        percent(total.saturating_sub(avail), total)
    }
}

#[allow(clippy::cast_precision_loss)] // byte counts: precision loss is far below display precision
fn percent(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 * 100.0 / whole as f64)
}

impl super::Source for SystemSource {
    fn name(&self) -> &'static str {
        "system"
    }

    fn register(&mut self, r: &Registry) -> Result<()> {
        self.handles = Some(Handles {
            cpu: r.gauge("system_cpu_usage", &[])?,
            memory: r.gauge("system_memory_usage", &[])?,
            swap: r.gauge("system_swap_usage", &[])?,
            disk: r.gauge("system_disk_usage", &[])?,
            sent: r.counter("system_network_bytes_sent", &[])?,
            recv: r.counter("system_network_bytes_recv", &[])?,
            load: [
                r.gauge("system_load_average_1m", &[])?,
                r.gauge("system_load_average_5m", &[])?,
                r.gauge("system_load_average_15m", &[])?,
            ],
            app_cpu: r.gauge("app_cpu_usage", &[])?,
            app_memory: r.gauge("app_memory_usage", &[])?,
            app_fds: r.gauge("app_file_descriptors", &[])?,
            app_threads: r.gauge("app_thread_count", &[])?,
        });
        Ok(())
    }

    #[allow(clippy::cast_precision_loss)]
    fn collect(&mut self, _now: DateTime<Utc>) {
        let Some(h) = &self.handles else { return };
        let cpu_due =
            self.last_cpu_refresh.is_none_or(|t| t.elapsed() >= MINIMUM_CPU_UPDATE_INTERVAL);
        let first_cpu = self.last_cpu_refresh.is_none();
        if cpu_due {
            self.system.refresh_cpu_usage();
            self.last_cpu_refresh = Some(Instant::now());
        }
        self.system.refresh_memory();
        h.memory.set(percent(self.system.used_memory(), self.system.total_memory()).unwrap_or(0.0));
        h.swap.set(percent(self.system.used_swap(), self.system.total_swap()).unwrap_or(0.0));
        if cpu_due && !first_cpu {
            h.cpu.set(f32_to_f64(self.system.global_cpu_usage()));
        }
        self.disks.refresh(true);
        if let Some(d) = self.disk_usage() {
            h.disk.set(d);
        }
        self.networks.refresh(true);
        let (mut sent, mut recv) = (0u64, 0u64);
        for data in self.networks.values() {
            sent = sent.saturating_add(data.transmitted());
            recv = recv.saturating_add(data.received());
        }
        h.sent.add(sent);
        h.recv.add(recv);
        if let Ok(load) = System::load_average() {
            h.load[0].set(load.one);
            h.load[1].set(load.five);
            h.load[2].set(load.fifteen);
        }
        if let Some(pid) = self.pid {
            let kind = ProcessRefreshKind::nothing().with_memory().with_cpu().with_tasks();
            self.system.refresh_processes_specifics(ProcessesToUpdate::Some(&[pid]), true, kind);
            if let Some(p) = self.system.process(pid) {
                if cpu_due && !first_cpu {
                    h.app_cpu.set(f32_to_f64(p.cpu_usage()));
                }
                h.app_memory.set(p.memory() as f64 / (1024.0 * 1024.0));
                if let Some(n) = p.open_files() {
                    h.app_fds.set(n as f64);
                }
                if let Some(tasks) = p.tasks() {
                    h.app_threads.set(tasks.len() as f64);
                }
            }
        }
    }
}

impl fmt::Debug for SystemSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SystemSource").field("pid", &self.pid).finish_non_exhaustive()
    }
}
