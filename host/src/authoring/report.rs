//! How the `switchyard policy` commands print their results: aligned text for people (coloured
//! only when writing to a terminal and `NO_COLOR` is unset), or one JSON document for programs.
//!
//! It formats what the tools return and writes to the writer it is given; nothing else.

use std::io::{self, Write};

use anstyle::{AnsiColor, Style};
use serde::Serialize;

use super::cases::CaseResult;
use super::check::CheckReport;
use super::replay::ReplayReport;
use crate::admin::client::CandidateStatus;
use crate::fleet::{ReplicaStatus, Status};
use crate::policy::candidate::{Mode, Report, SplitReport};

/// Colours for people's output; all plain when off.
#[derive(Debug, Clone, Copy)]
pub struct Palette {
    pass: Style,
    fail: Style,
    dim: Style,
    bold: Style,
}

impl Palette {
    /// Colours on when `terminal` and not disabled by `NO_COLOR`.
    pub fn new(terminal: bool, no_color: bool) -> Self {
        if terminal && !no_color {
            Self {
                pass: AnsiColor::Green.on_default().bold(),
                fail: AnsiColor::Red.on_default().bold(),
                dim: Style::new().dimmed(),
                bold: Style::new().bold(),
            }
        } else {
            Self {
                pass: Style::new(),
                fail: Style::new(),
                dim: Style::new(),
                bold: Style::new(),
            }
        }
    }

    /// The style of a verdict: `pass` when `ok`, else `fail`.
    fn verdict(&self, ok: bool) -> Style {
        if ok { self.pass } else { self.fail }
    }
}

/// Write `value` as pretty JSON and a newline.
pub fn json(out: &mut dyn Write, value: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)
}

/// `policy check`, for people.
pub fn check(out: &mut dyn Write, r: &CheckReport, p: Palette) -> io::Result<()> {
    let Palette {
        pass, bold, dim, ..
    } = p;
    writeln!(out, "{pass}ok{pass:#}  {bold}{}{bold:#}", r.path)?;
    writeln!(out, "  sha256    {}", r.sha256)?;
    writeln!(out, "  size      {}", bytes(r.bytes as usize))?;
    writeln!(
        out,
        "  contract  {} (this host: {})",
        r.built_against
            .as_deref()
            .unwrap_or("no switchyard:policy import"),
        r.host_world
    )?;
    writeln!(out, "  exports   {}", r.exports.join(", "))?;
    writeln!(out, "  imports")?;
    for import in &r.imports {
        writeln!(out, "    {}", import.name)?;
        if !import.functions.is_empty() {
            writeln!(
                out,
                "      {dim}uses{dim:#}    {}",
                import.functions.join(", ")
            )?;
        }
        writeln!(out, "      {dim}grants{dim:#}  {}", import.grants)?;
    }
    Ok(())
}

/// `policy test`, for people: a line per case, the details of failures, then a summary.
pub fn cases(out: &mut dyn Write, results: &[CaseResult], p: Palette) -> io::Result<()> {
    let Palette {
        pass,
        fail,
        dim,
        bold,
    } = p;
    let width = results.iter().map(|r| r.name.len()).max().unwrap_or(0);
    for r in results {
        let mark = if r.passed { "PASS" } else { "FAIL" };
        let style = p.verdict(r.passed);
        let decision = r
            .decision
            .as_ref()
            .map(|d| safe(&d.summary()))
            .unwrap_or_default();
        writeln!(
            out,
            "{style}{mark}{style:#}  {:width$}  {dim}{:>8.3} ms  {:>9}{dim:#}  {decision}",
            r.name,
            r.elapsed_ms,
            bytes(r.memory_peak_bytes),
        )?;
        if let Some(failure) = &r.failure {
            writeln!(out, "      {}", safe(failure))?;
            let expected = serde_json::to_string(&r.expected).unwrap_or_default();
            writeln!(out, "      {fail}- expected {expected}{fail:#}")?;
            if let Some(decision) = &r.decision {
                writeln!(
                    out,
                    "      {pass}+ got      {}{pass:#}",
                    safe(&decision.summary())
                )?;
            }
        }
        for log in &r.logs {
            writeln!(
                out,
                "      {dim}log {}: {}{dim:#}",
                log.level,
                safe(&log.message)
            )?;
        }
    }
    let failed = results.iter().filter(|r| !r.passed).count();
    let style = p.verdict(failed == 0);
    writeln!(
        out,
        "{bold}{} cases:{bold:#} {style}{} passed, {failed} failed{style:#}",
        results.len(),
        results.len() - failed
    )
}

/// `policy replay`, for people.
pub fn replay(out: &mut dyn Write, r: &ReplayReport, p: Palette) -> io::Result<()> {
    let Palette { bold, dim, .. } = p;
    let share = |n: usize| {
        if r.decisions == 0 {
            0.0
        } else {
            100.0 * n as f64 / r.decisions as f64
        }
    };
    writeln!(
        out,
        "{bold}{} decisions replayed:{bold:#} {} changed ({:.1}%), {} failed",
        r.decisions,
        r.changed,
        share(r.changed),
        r.failures
    )?;
    if r.skipped > 0 {
        writeln!(
            out,
            "{dim}{} records left out (other policies or teams){dim:#}",
            r.skipped
        )?;
    }
    if r.without_text > 0 {
        writeln!(
            out,
            "{dim}{} records hold no message text: a policy that reads it saw none{dim:#}",
            r.without_text
        )?;
    }
    let delta = r.cost_after_usd - r.cost_before_usd;
    let percent = if r.cost_before_usd > 0.0 {
        format!(" ({:+.1}%)", 100.0 * delta / r.cost_before_usd)
    } else {
        String::new()
    };
    writeln!(
        out,
        "estimated cost: ${:.6} recorded, ${:.6} replayed, {delta:+.6}{percent}",
        r.cost_before_usd, r.cost_after_usd
    )?;
    writeln!(out, "first targets, recorded -> replayed:")?;
    let choices: std::collections::BTreeSet<&String> =
        r.before.keys().chain(r.after.keys()).collect();
    for choice in choices {
        writeln!(
            out,
            "  {choice:24} {:>6} -> {:<6}",
            r.before.get(choice).unwrap_or(&0),
            r.after.get(choice).unwrap_or(&0)
        )?;
    }
    if !r.sample.is_empty() {
        writeln!(out, "changed decisions (sample):")?;
        for change in &r.sample {
            writeln!(out, "  {} (team {})", change.request_id, change.team)?;
            writeln!(out, "    - {}", safe(&change.before.summary()))?;
            writeln!(out, "    + {}", safe(&change.after.summary()))?;
        }
    }
    Ok(())
}

/// `fleet status`, for people: the deployed version of each policy, then every live replica
/// with its heartbeat, the version it runs of each policy (marked when it is not the deployed
/// one) and the last deploy it refused.
pub fn fleet(out: &mut dyn Write, s: &Status, p: Palette) -> io::Result<()> {
    let Palette { dim, bold, .. } = p;
    writeln!(out, "{bold}deployed{bold:#}")?;
    if s.desired.is_empty() {
        writeln!(out, "  {dim}nothing deployed through the fleet yet{dim:#}")?;
    }
    for (name, desired) in &s.desired {
        let ago = seconds(s.now_ms.saturating_sub(desired.at_ms));
        writeln!(
            out,
            "  {:<20} {}  {dim}{ago} ago{dim:#}",
            safe(name),
            safe(&desired.reference)
        )?;
        if let Some(previous) = &desired.previous {
            writeln!(out, "  {:<20} {dim}previous {}{dim:#}", "", safe(previous))?;
        }
    }
    writeln!(out, "{bold}replicas{bold:#} ({} live)", s.replicas.len())?;
    for replica in &s.replicas {
        fleet_replica(out, s, replica, p)?;
    }
    Ok(())
}

/// One replica of `fleet`: its heartbeat, each policy's live version against the deployed one,
/// and the last version it refused.
fn fleet_replica(
    out: &mut dyn Write,
    s: &Status,
    replica: &ReplicaStatus,
    p: Palette,
) -> io::Result<()> {
    let Palette {
        pass, fail, dim, ..
    } = p;
    let here = if replica.replica == s.replica {
        " (answered)"
    } else {
        ""
    };
    let ago = seconds(s.now_ms.saturating_sub(replica.heartbeat_ms));
    writeln!(
        out,
        "  {}{here}  {dim}heartbeat {ago} ago{dim:#}",
        safe(&replica.replica)
    )?;
    let Some(report) = &replica.report else {
        return writeln!(out, "    {dim}no report yet{dim:#}");
    };
    for (name, live) in &report.policies {
        let digest = live.digest.as_deref().unwrap_or("-");
        let mark = match s.desired.get(name) {
            Some(d) if live.digest.as_deref() == Some(d.digest.as_str()) => {
                format!("{pass}deployed{pass:#}")
            }
            Some(_) => format!("{fail}not the deployed version{fail:#}"),
            None => String::new(),
        };
        writeln!(
            out,
            "    {:<20} {:<28} {}  {mark}",
            safe(name),
            safe(&live.version),
            safe(digest)
        )?;
    }
    if let Some(refusal) = &report.last_refusal {
        let retry = if refusal.retrying {
            ", trying again"
        } else {
            ""
        };
        writeln!(
            out,
            "    {fail}refused{fail:#} {} {}{retry}: {}",
            safe(&refusal.policy),
            safe(&refusal.digest),
            safe(&refusal.reason)
        )?;
    }
    Ok(())
}

/// `policy rollout status`, for people: the candidate beside the live version, how their
/// decisions compare, the live -> candidate table, projected costs, failures and times.
pub fn rollout(out: &mut dyn Write, s: &CandidateStatus, p: Palette) -> io::Result<()> {
    let Palette { dim, bold, .. } = p;
    let fleet = s
        .fleet
        .as_ref()
        .and_then(|f| Some((f.replicas, f.report.as_ref()?)));
    let r = fleet.map_or(&s.report, |(_, report)| report);
    let split = match &s.fleet {
        Some(fleet) => fleet.split.as_ref(),
        None => s.split.as_ref(),
    };
    let how = match (&s.mode, split) {
        (Mode::Shadow { sample }, _) => format!("shadow on {:.0}% of requests", sample * 100.0),
        (Mode::Split { sticky, .. }, Some(split)) => format!(
            "split: {}% of requests, sticky by {}",
            split.percent,
            safe(&String::from(sticky.clone()))
        ),
        (Mode::Split { percent, .. }, None) => format!("split: {percent}% of requests"),
    };
    writeln!(
        out,
        "{bold}{}{bold:#}  candidate {} beside live {}  {dim}({}, {how}, since {}){dim:#}",
        safe(&s.policy),
        safe(&s.candidate),
        safe(&s.live),
        safe(&s.status),
        safe(&s.started_at)
    )?;
    if let Some((replicas, _)) = fleet {
        writeln!(
            out,
            "  {dim}the fleet's run, added up over {replicas} replicas{dim:#}"
        )?;
    }
    if let Some(split) = split {
        return split_arms(out, split, p);
    }
    shadow_comparison(out, r, p)
}

/// A shadow run's figures: how often the two agreed, what each would cost, the candidate's
/// failures and times, and the live -> candidate table.
fn shadow_comparison(out: &mut dyn Write, r: &Report, p: Palette) -> io::Result<()> {
    let Palette { dim, bold, .. } = p;
    writeln!(
        out,
        "  decisions compared  {} {dim}({} dropped: too many at once){dim:#}",
        r.pairs, r.dropped
    )?;
    writeln!(
        out,
        "  agreement           {:.1}% same first model, {:.1}% same route",
        r.agreement * 100.0,
        r.same_chain * 100.0
    )?;
    let change = match r.live_usd_per_1000 {
        live if live > 0.0 => format!(
            " ({:+.1}%)",
            (r.candidate_usd_per_1000 / live - 1.0) * 100.0
        ),
        _ => String::new(),
    };
    writeln!(
        out,
        "  cost per 1000       live ${:.4}, candidate ${:.4}{change}  {dim}({} of {} priced by real usage){dim:#}",
        r.live_usd_per_1000, r.candidate_usd_per_1000, r.priced_by_usage, r.pairs
    )?;
    let failures: Vec<String> = r
        .failures
        .iter()
        .map(|(k, n)| format!("{} {n}", safe(k)))
        .collect();
    let style = p.verdict(r.failures.is_empty());
    writeln!(
        out,
        "  candidate failures  {style}{:.1}%{style:#} {}",
        r.failure_rate * 100.0,
        failures.join(", ")
    )?;
    writeln!(
        out,
        "  decision time       p50 {} µs, p99 {} µs",
        r.decision_us_p50, r.decision_us_p99
    )?;
    writeln!(out, "  {bold}live -> candidate{bold:#}")?;
    let width = r
        .confusion
        .keys()
        .map(|k| k.chars().count())
        .max()
        .unwrap_or(0);
    for (live, row) in &r.confusion {
        for (candidate, n) in row {
            let mark = if live == candidate { "=" } else { "≠" };
            writeln!(
                out,
                "    {:<width$} {mark} {:<width$}  {n}",
                safe(live),
                safe(candidate)
            )?;
        }
    }
    Ok(())
}

/// A split's arms side by side, and its last transition.
fn split_arms(out: &mut dyn Write, split: &SplitReport, p: Palette) -> io::Result<()> {
    let Palette { dim, bold, .. } = p;
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} ms"));
    writeln!(
        out,
        "  {bold}{:<22}{:>14}{:>14}{bold:#}",
        "", "live", "candidate"
    )?;
    let rows = [
        (
            "requests",
            split.live.requests.to_string(),
            split.candidate.requests.to_string(),
        ),
        (
            "upstream errors",
            format!("{:.2}%", split.live.upstream_error_rate * 100.0),
            format!("{:.2}%", split.candidate.upstream_error_rate * 100.0),
        ),
        (
            "policy failures",
            format!("{:.2}%", split.live.policy_failure_rate * 100.0),
            format!("{:.2}%", split.candidate.policy_failure_rate * 100.0),
        ),
        (
            "latency",
            ms(split.live.latency_ms),
            ms(split.candidate.latency_ms),
        ),
        (
            "first token",
            ms(split.live.time_to_first_token_ms),
            ms(split.candidate.time_to_first_token_ms),
        ),
        (
            "cost per request",
            format!("${:.6}", split.live.cost_usd_per_request),
            format!("${:.6}", split.candidate.cost_usd_per_request),
        ),
    ];
    for (name, live, candidate) in rows {
        writeln!(out, "  {name:<22}{live:>14}{candidate:>14}")?;
    }
    if let Some(last) = &split.last_transition {
        writeln!(out, "  {dim}last transition: {}{dim:#}", safe(last))?;
    }
    Ok(())
}

/// Milliseconds as seconds for people: `0.4 s`, `12 s`.
fn seconds(ms: u64) -> String {
    if ms < 10_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{} s", ms / 1000)
    }
}

/// `text` with control characters and bidirectional overrides escaped: what a policy says (its
/// log lines, messages and panics) must not move the cursor, colour the terminal or reorder
/// what is shown.
pub fn safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A byte count for people: `512 B`, `1.5 KiB`, `2.3 MiB`.
fn bytes(n: usize) -> String {
    match n {
        n if n < 1024 => format!("{n} B"),
        n if n < 1024 * 1024 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_output_has_no_escapes_and_sizes_read_well() {
        let plain = Palette::new(false, false);
        assert_eq!(format!("{}x{:#}", plain.pass, plain.pass), "x");
        let muted = Palette::new(true, true);
        assert_eq!(format!("{}x{:#}", muted.fail, muted.fail), "x");
        let coloured = Palette::new(true, false);
        assert!(format!("{}x{:#}", coloured.fail, coloured.fail).contains('\u{1b}'));
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
        assert_eq!(safe("a\u{1b}[31mb\nc"), "a\\u{1b}[31mb\\nc");
    }
}
