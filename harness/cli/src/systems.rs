//! `faultline systems` (and `faultline run --db help`): the table of every registered
//! system — workloads, options, the faults it takes, planted bugs — and of the workloads.

use clap::Args;
use faultline_workloads::system::{Registry, SystemRequest};
use tabled::settings::Style;
use tabled::{Table, Tabled};

#[derive(Args)]
pub struct SystemsArgs {}

#[derive(Tabled)]
struct Row {
    system: String,
    workloads: String,
    #[tabled(rename = "faults it takes")]
    faults: String,
    #[tabled(rename = "planted bugs (--bug)")]
    bugs: String,
    #[tabled(rename = "options (--db-opt)")]
    options: String,
}

#[derive(Tabled)]
struct WorkloadRow {
    workload: String,
    description: String,
    #[tabled(rename = "options (--db-opt)")]
    options: String,
}

fn names(list: &[faultline_workloads::system::Named]) -> String {
    if list.is_empty() {
        return "-".into();
    }
    list.iter()
        .map(|n| n.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The faults a system takes with its default options.
fn faults(system: &dyn faultline_workloads::system::System) -> String {
    let request = SystemRequest {
        workload: system.workloads().first().cloned().unwrap_or_default(),
        ..SystemRequest::default()
    };
    let caps = system.capabilities(&request);
    let mut out = Vec::new();
    for (name, ok) in [
        ("partition", caps.partition),
        ("packet", caps.packet),
        ("kill", caps.kill),
        ("pause", caps.pause),
    ] {
        if ok {
            out.push(name.to_owned());
        }
    }
    match (caps.clock.faketime.is_ok(), caps.clock.system.is_ok()) {
        (true, true) => out.push("clock".into()),
        (false, true) => out.push("clock (system strategy: VMs)".into()),
        (true, false) => out.push("clock (faketime strategy only)".into()),
        (false, false) => {}
    }
    out.extend(system.faults().into_iter().map(|f| f.name));
    if caps.primaries {
        out.push("(has primaries)".into());
    }
    out.join(", ")
}

/// The text `faultline systems` prints.
pub fn table(registry: &Registry) -> String {
    let rows: Vec<Row> = registry
        .systems()
        .iter()
        .map(|s| Row {
            system: s.name().to_owned(),
            workloads: s.workloads().join(", "),
            faults: faults(&**s),
            bugs: names(&s.bugs()),
            options: names(&s.options()),
        })
        .collect();
    let mut systems = Table::new(rows);
    systems.with(Style::rounded());
    let descriptions: String = registry
        .systems()
        .iter()
        .map(|s| format!("  {}: {}\n", s.name(), s.description()))
        .collect();
    let workloads: Vec<WorkloadRow> = registry
        .workloads()
        .iter()
        .map(|w| WorkloadRow {
            workload: w.name().to_owned(),
            description: w.description().to_owned(),
            options: names(&w.options()),
        })
        .collect();
    let mut workloads = Table::new(workloads);
    workloads.with(Style::rounded());
    format!(
        "{systems}\n{descriptions}\n{workloads}\nAlso: --db external:FILE.toml (any program; see docs/extending.md).\n"
    )
}

pub fn run(_args: SystemsArgs, registry: &Registry) -> anyhow::Result<u8> {
    print!("{}", table(registry));
    Ok(0)
}
