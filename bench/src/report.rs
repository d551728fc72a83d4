//! The results of one invocation: a one-screen summary and JSON.

use std::fmt::Write;
use std::path::Path;

use serde::Serialize;

use crate::{abuse, aws, churn, connect, fanout, idle, lambda, smoke, sustained};

#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub fanout: Vec<fanout::Outcome>,
    pub connect: Vec<connect::Outcome>,
    pub churn: Vec<churn::Outcome>,
    pub smoke: Vec<smoke::Outcome>,
    pub idle: Vec<idle::Outcome>,
    pub sustained: Vec<sustained::Outcome>,
    pub lambda: Vec<lambda::Outcome>,
    pub abuse: Vec<abuse::Outcome>,
    pub aws: Vec<aws::Outcome>,
}

/// Where the figures came from.
#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub kernel: String,
}

impl Machine {
    fn this() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|release| release.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into());
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            kernel,
        }
    }
}

impl Report {
    pub fn new() -> Self {
        Self {
            machine: Machine::this(),
            fanout: Vec::new(),
            connect: Vec::new(),
            churn: Vec::new(),
            smoke: Vec::new(),
            idle: Vec::new(),
            sustained: Vec::new(),
            lambda: Vec::new(),
            abuse: Vec::new(),
            aws: Vec::new(),
        }
    }

    pub fn lost_or_duplicated(&self) -> bool {
        self.sustained
            .iter()
            .any(|run| run.lost > 0 || run.duplicated > 0)
            || self.fanout.iter().any(|run| run.incomplete_rounds > 0)
            || self.lambda.iter().any(lambda::Outcome::lost_or_duplicated)
            || self.aws.iter().any(aws::Outcome::lost_or_duplicated)
    }

    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, text + "\n")
    }

    /// One screen: a table per scenario that ran.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "\n{} ({} cores), Linux {}\n",
            self.machine.cpu, self.machine.cores, self.machine.kernel
        );
        fanout_table(&mut out, &self.fanout);
        connect_table(&mut out, &self.connect);
        churn_table(&mut out, &self.churn);
        idle_table(&mut out, &self.idle);
        for run in &self.sustained {
            sustained_lines(&mut out, run);
        }
        for run in &self.lambda {
            lambda_tables(&mut out, run);
        }
        for run in &self.abuse {
            abuse_table(&mut out, run);
        }
        for run in &self.aws {
            aws::render(&mut out, run);
        }
        out
    }
}

fn fanout_table(out: &mut String, runs: &[fanout::Outcome]) {
    if runs.is_empty() {
        return;
    }
    out.push_str(
        "\nfan-out (ms)                          clients  first p50  median p50  last p50  last p99  server CPU/msg  last p50 / floor\n",
    );
    for run in runs {
        let floor = runs
            .iter()
            .find(|other| other.target == "floor" && other.clients == run.clients)
            .map(|floor| floor.last.p50_ms);
        let ratio = floor
            .filter(|floor| *floor > 0.0)
            .map_or_else(String::new, |floor| {
                format!("{:.1}x", run.last.p50_ms / floor)
            });
        let _ = writeln!(
            out,
            "  {:<36} {:>5}  {:>9.1}  {:>10.1}  {:>8.1}  {:>8.1}  {:>14}  {:>8}{}",
            run.target,
            run.clients,
            run.first.p50_ms,
            run.median.p50_ms,
            run.last.p50_ms,
            run.last.p99_ms,
            run.server_cpu_ms_per_round
                .map_or_else(|| "-".into(), |ms| format!("{ms:.1}")),
            ratio,
            incomplete(run.incomplete_rounds),
        );
    }
}

fn connect_table(out: &mut String, runs: &[connect::Outcome]) {
    if runs.is_empty() {
        return;
    }
    out.push_str("\nconnect                               clients  conn/s  last welcome ms  frames received\n");
    for run in runs {
        let _ = writeln!(
            out,
            "  {:<36} {:>5}  {:>6}  {:>15}  {:>15}",
            run.target,
            run.clients,
            run.connections_per_second,
            run.last_welcome_ms
                .map_or_else(|| "-".into(), |ms| format!("{ms:.0}")),
            run.frames_received,
        );
    }
}

fn churn_table(out: &mut String, runs: &[churn::Outcome]) {
    if runs.is_empty() {
        return;
    }
    out.push_str("\nchurn        clients  connected  refused  unanswered  last welcome ms  departures  last departure ms  still listed  ERROR  WARN  peak RSS KiB\n");
    for run in runs {
        let _ = writeln!(
            out,
            "  {:<10} {:>7}  {:>9}  {:>7}  {:>10}  {:>15}  {:>10}  {:>17}  {:>12}  {:>5}  {:>4}  {:>12}",
            run.target,
            run.clients,
            run.connected,
            run.refused.values().sum::<usize>(),
            run.unanswered,
            run.last_welcome_ms
                .map_or_else(|| "-".into(), |ms| format!("{ms:.0}")),
            run.departures_announced,
            run.last_departure_ms
                .map_or_else(|| "-".into(), |ms| format!("{ms:.0}")),
            show(run.still_listed),
            run.server_errors,
            run.server_warnings,
            show(run.server_peak_rss_kib),
        );
        for (reason, count) in &run.refused {
            let _ = writeln!(out, "    refused {count}: {reason}");
        }
    }
}

fn idle_table(out: &mut String, runs: &[idle::Outcome]) {
    if runs.is_empty() {
        return;
    }
    out.push_str("\nidle                                  ready ms  RSS ready KiB  clients  RSS KiB  KiB/conn\n");
    for run in runs {
        let _ = writeln!(
            out,
            "  {:<36} {:>8.0}  {:>13}  {:>7}  {:>7}  {:>8}",
            run.target,
            run.ready_ms,
            show(run.rss_ready_kib),
            run.clients,
            show(run.rss_connected_kib),
            run.kib_per_connection
                .map_or_else(|| "-".into(), |kib| format!("{kib:.1}")),
        );
    }
}

fn sustained_lines(out: &mut String, run: &sustained::Outcome) {
    let _ = writeln!(
        out,
        "\nsustained: {}, {} clients, {} senders, {}/s for {} s\n  \
         sent {}, delivered {} of {} ({}/s), lost {}, duplicated {}, stored {}\n  \
         latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; error frames {}, closed {}\n  \
         server RSS start {} KiB, end {} KiB, peak {} KiB; log lines WARN {}, ERROR {}",
        run.target,
        run.clients,
        run.senders,
        run.rate_per_second,
        run.duration_seconds,
        run.sent,
        run.delivered,
        run.expected_deliveries,
        run.deliveries_per_second,
        run.lost,
        run.duplicated,
        run.stored.map_or_else(|| "-".into(), |n| n.to_string()),
        run.latency.p50_ms,
        run.latency.p99_ms,
        run.latency.max_ms,
        run.error_frames,
        run.closed_connections,
        show(run.server_rss_start_kib),
        show(run.server_rss_end_kib),
        show(run.server_peak_rss_kib),
        run.server_warnings,
        run.server_errors,
    );
}

fn abuse_table(out: &mut String, run: &abuse::Outcome) {
    let _ = writeln!(
        out,
        "\nabuse, {}\n  {:<34} echo p50   p99  lost  fresh served  welcome p50   p99   page  attacker sent  refused  sockets closed  server CPU",
        run.target, "phase (ms)"
    );
    for phase in &run.phases {
        let _ = writeln!(
            out,
            "  {:<34} {:>8.1} {:>5.0}  {:>4}  {:>12}  {:>11.0} {:>5.0}  {:>5}  {:>13}  {:>7}  {:>14}  {:>10}",
            phase.name,
            phase.echo.p50_ms,
            phase.echo.p99_ms,
            phase.echoes_lost,
            format!("{}/{}", phase.fresh_served, phase.fresh_connections),
            phase.fresh_welcome.p50_ms,
            phase.fresh_welcome.p99_ms,
            format!("{}/{}", phase.page_served, phase.page_loads),
            phase.attacker_frames_sent,
            phase.attacker_frames_refused,
            phase.attacker_sockets_closed,
            phase
                .server_cpu_percent
                .map_or_else(|| "-".into(), |percent| format!("{percent:.0}%")),
        );
    }
    let _ = writeln!(
        out,
        "  a backlog of requests left behind: `left` after {} ms; SIGTERM during a flood: exit after {} ms; \
         {} ERROR lines, peak RSS {} KiB",
        run.backlog_left_after_ms
            .map_or_else(|| "never".into(), |ms| format!("{ms:.0}")),
        run.sigterm_exit_ms.map_or_else(
            || "over 60 000 (still running)".into(),
            |ms| format!("{ms:.0}")
        ),
        run.server_errors,
        run.server_peak_rss_kib
            .map_or_else(|| "-".into(), |kib| kib.to_string()),
    );
}

fn lambda_tables(out: &mut String, run: &lambda::Outcome) {
    if !run.cold_starts.is_empty() {
        let _ = writeln!(
            out,
            "\nlambda cold start (ms), {}\n  \
             function          MB  to next p50  to end p50  to end max  peak RSS KiB  binary KiB  zip KiB",
            run.functions_dir
        );
        for cold in &run.cold_starts {
            let _ = writeln!(
                out,
                "  {:<16} {:>3}  {:>11.1}  {:>10.1}  {:>10.1}  {:>11}  {:>10}  {:>7}",
                cold.function,
                cold.memory_mb,
                cold.to_first_next.p50_ms,
                cold.to_first_response.p50_ms,
                cold.to_first_response.max_ms,
                show(cold.peak_rss_kib),
                cold.binary_bytes / 1024,
                show(cold.zip_bytes.map(|bytes| bytes / 1024)),
            );
        }
    }
    if let Some(count) = &run.instructions {
        let _ = writeln!(
            out,
            "\nlambda {} to {} recipients ({}): 1 invocation {} instructions, {} invocations {}\n  \
             per warm invocation {:.0}, per delivered post {:.0}; delivered {} of {}, lost {}, duplicated {}",
            count.function,
            count.recipients,
            count.tool,
            count.instructions_one_invocation,
            count.invocations,
            count.instructions_all_invocations,
            count.per_invocation,
            count.per_delivered_post,
            count.delivered,
            count.expected_deliveries,
            count.lost,
            count.duplicated,
        );
    }
}

fn show(kib: Option<u64>) -> String {
    kib.map_or_else(|| "-".into(), |kib| kib.to_string())
}

fn incomplete(rounds: usize) -> String {
    if rounds == 0 {
        String::new()
    } else {
        format!("  ({rounds} rounds incomplete)")
    }
}
