//! Systems under test as plug-ins: the [`System`] trait a system implements, the
//! [`Workload`] trait a workload implements, and the [`Registry`] that holds both and turns
//! `--db NAME --workload NAME` plus options into a runnable `Test`.
//!
//! A system is one value: its name, what it is, the workloads it serves, its own options
//! (`--db-opt name=value`), its planted bugs, its own faults, what the nemesis can do to it
//! ([`Capabilities`]) and how to build the test. Nothing outside the system knows any of it
//! by name: the CLI asks the registry.

use faultline_checker::CheckOptions;
use faultline_core::generator::OpGenerator;
use faultline_core::run::{RunOptions, Test};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A name with a one-line description: a planted bug, an option, a fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub name: String,
    pub help: String,
}

impl Named {
    pub fn new(name: impl Into<String>, help: impl Into<String>) -> Named {
        Named {
            name: name.into(),
            help: help.into(),
        }
    }
}

/// What a user asked of a system for one run: the workload, bugs, options and the
/// system's own faults. Built by the CLI (or a user's program) and checked by the
/// registry before anything starts.
#[derive(Debug, Clone)]
pub struct SystemRequest {
    pub workload: String,
    /// `--bug` names to plant.
    pub bugs: Vec<String>,
    /// `--db-opt name=value`, in the order given; a name without `=` has the value `true`.
    /// Named CLI flags of the stock systems (`--read-mode`, `--lock-mode`, …) arrive here
    /// too, under the flag's name without dashes.
    pub options: Vec<(String, String)>,
    /// Words passed through to the system's own program (`--node-opt`).
    pub program_args: Vec<String>,
    /// `--node-binary`: the program to upload, where a system uploads one.
    pub binary: Option<PathBuf>,
    /// The client's bound on one request.
    pub client_timeout: Duration,
    /// The system's own faults asked for in `--nemesis` (names from [`System::faults`]).
    pub faults: Vec<String>,
    /// `--nemesis-interval`: how often the system's own faults happen.
    pub fault_interval: Duration,
}

impl Default for SystemRequest {
    fn default() -> Self {
        SystemRequest {
            workload: "register".into(),
            bugs: Vec::new(),
            options: Vec::new(),
            program_args: Vec::new(),
            binary: None,
            client_timeout: Duration::from_millis(2500),
            faults: Vec::new(),
            fault_interval: Duration::from_secs(10),
        }
    }
}

impl SystemRequest {
    /// The last value given for option `name`.
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Option `name` parsed, with an error naming the option and the bad value.
    pub fn parsed<T>(&self, name: &str) -> anyhow::Result<Option<T>>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        self.option(name)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|e| anyhow::anyhow!("--db-opt {name}={v}: {e}"))
            })
            .transpose()
    }

    pub fn has_fault(&self, name: &str) -> bool {
        self.faults.iter().any(|f| f == name)
    }
}

/// How clock faults reach a system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockReach {
    /// libfaketime in the process (local hosts): `Err` says why not (e.g. a Go program
    /// reads the kernel clock directly).
    pub faketime: Result<(), String>,
    /// Setting the host's system clock (VMs): `Err` says why not.
    pub system: Result<(), String>,
}

impl ClockReach {
    pub fn both() -> ClockReach {
        ClockReach {
            faketime: Ok(()),
            system: Ok(()),
        }
    }
}

/// What the nemesis can do to a system (for a given request: e.g. Redlock has no primary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// SIGKILL and restart a host's process (`--nemesis kill`).
    pub kill: bool,
    /// SIGSTOP / SIGCONT (`--nemesis pause`).
    pub pause: bool,
    /// It knows its leaders (`--partition primaries`, `--*-targets primaries`).
    pub primaries: bool,
    pub clock: ClockReach,
    /// Packet loss, rate limits and netem on its hosts (`--nemesis packet`).
    pub packet: bool,
    /// Partitions (`--nemesis partition`).
    pub partition: bool,
}

impl Default for Capabilities {
    /// Everything a process on a host can take.
    fn default() -> Self {
        Capabilities {
            kill: true,
            pause: true,
            primaries: false,
            clock: ClockReach::both(),
            packet: true,
            partition: true,
        }
    }
}

/// A system under test.
pub trait System: Send + Sync {
    /// The `--db` name.
    fn name(&self) -> &str;
    /// One line for `faultline systems`.
    fn description(&self) -> &str;
    /// The `--workload` names it serves; the first is the default.
    fn workloads(&self) -> Vec<String>;
    /// Its planted bugs (`--bug`); empty when it has none.
    fn bugs(&self) -> Vec<Named> {
        Vec::new()
    }
    /// The `--db-opt` names it understands; any other is refused before the run.
    fn options(&self) -> Vec<Named> {
        Vec::new()
    }
    /// Faults of its own, asked for by name in `--nemesis` beside the scheduled families
    /// (e.g. redis-lock's `failover`); [`System::build`] puts their nemesis in the test.
    fn faults(&self) -> Vec<Named> {
        Vec::new()
    }
    /// What the nemesis can do to it for `request`.
    fn capabilities(&self, _request: &SystemRequest) -> Capabilities {
        Capabilities::default()
    }
    /// Checks the request beyond what the registry checks (names): values of options,
    /// combinations. Runs before anything starts, so it must not touch hosts.
    fn check(&self, _request: &SystemRequest) -> anyhow::Result<()> {
        Ok(())
    }
    /// The test on `options.hosts`: db, client, and the workload's generator and checks
    /// (`workload`, which it may adapt, e.g. a generator sharing state with its client).
    /// Without scheduled faults: the caller adds those.
    fn build(
        &self,
        request: &SystemRequest,
        workload: WorkloadParts,
        options: RunOptions,
    ) -> anyhow::Result<Test>;
}

/// What a workload contributes to a test: its generator and how its history is checked.
pub struct WorkloadParts {
    pub generator: Arc<dyn OpGenerator>,
    /// The built-in checks (model, mutual exclusion).
    pub check: CheckOptions,
    /// Further checkers (e.g. a user's `Model`), run beside the built-in ones.
    pub checkers: Vec<Arc<dyn faultline_core::check::Checker>>,
    /// `ops_per_key` when the workload needs its own (locks keep one key for the run).
    pub ops_per_key: Option<u64>,
    /// test.json fields it records (e.g. `register_values`).
    pub test_fields: Vec<(&'static str, Value)>,
}

impl WorkloadParts {
    pub fn new(generator: Arc<dyn OpGenerator>) -> WorkloadParts {
        WorkloadParts {
            generator,
            check: CheckOptions::default(),
            checkers: Vec::new(),
            ops_per_key: None,
            test_fields: Vec::new(),
        }
    }

    /// Moves the workload's generator, checks and fields into `options` and a test.
    pub fn into_test(
        self,
        mut options: RunOptions,
        db: Arc<dyn faultline_core::db::Db>,
        client: Arc<dyn faultline_core::client::ClientFactory>,
    ) -> Test {
        if let Some(n) = self.ops_per_key {
            options.ops_per_key = n;
        }
        options.check = CheckOptions {
            limits: options.check.limits.clone(),
            ..self.check
        };
        for (key, value) in self.test_fields {
            options.test_fields.entry(key).or_insert(value);
        }
        let mut test = Test::new(options, db, client, self.generator);
        test.checkers.extend(self.checkers);
        test
    }
}

/// A workload: operations a generator issues and how their history is checked, for any
/// system that serves it.
pub trait Workload: Send + Sync {
    /// The `--workload` name.
    fn name(&self) -> &str;
    fn description(&self) -> &str;
    /// The `--db-opt` names it understands (e.g. the register workload's `register-values`).
    fn options(&self) -> Vec<Named> {
        Vec::new()
    }
    fn build(&self, request: &SystemRequest) -> anyhow::Result<WorkloadParts>;
}

/// Every system and workload faultline knows, by name. [`Registry::stock`] holds the stock
/// ones; [`Registry::with`] and [`Registry::with_workload`] add a user's.
#[derive(Clone, Default)]
pub struct Registry {
    systems: Vec<Arc<dyn System>>,
    workloads: Vec<Arc<dyn Workload>>,
}

impl Registry {
    pub fn empty() -> Registry {
        Registry::default()
    }

    /// raft, paxos, zk-lock, redis-lock and the register and lock workloads.
    pub fn stock() -> Registry {
        crate::systems::register_stock(Registry::empty())
    }

    /// Adds (or replaces, by name) a system.
    pub fn with(mut self, system: impl System + 'static) -> Registry {
        self.add(Arc::new(system));
        self
    }

    pub fn add(&mut self, system: Arc<dyn System>) {
        self.systems.retain(|s| s.name() != system.name());
        self.systems.push(system);
    }

    /// Adds (or replaces, by name) a workload.
    pub fn with_workload(mut self, workload: impl Workload + 'static) -> Registry {
        let name = workload.name().to_owned();
        self.workloads.retain(|w| w.name() != name);
        self.workloads.push(Arc::new(workload));
        self
    }

    pub fn systems(&self) -> &[Arc<dyn System>] {
        &self.systems
    }

    pub fn workloads(&self) -> &[Arc<dyn Workload>] {
        &self.workloads
    }

    /// The system `--db name` means; `external:FILE.toml` loads an external system.
    pub fn system(&self, name: &str) -> anyhow::Result<Arc<dyn System>> {
        if let Some(path) = name.strip_prefix("external:") {
            return Ok(Arc::new(crate::external::ExternalSystem::load(
                std::path::Path::new(path),
            )?));
        }
        self.systems
            .iter()
            .find(|s| s.name() == name)
            .cloned()
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "unknown --db {name:?}; registered systems: {} (or external:FILE.toml); \
                     `faultline systems` lists what each serves",
                    self.names().join(", ")
                )
            })
    }

    pub fn names(&self) -> Vec<String> {
        self.systems.iter().map(|s| s.name().to_owned()).collect()
    }

    pub fn workload(&self, name: &str) -> anyhow::Result<Arc<dyn Workload>> {
        self.workloads
            .iter()
            .find(|w| w.name() == name)
            .cloned()
            .ok_or_else(|| {
                let names: Vec<&str> = self.workloads.iter().map(|w| w.name()).collect();
                anyhow::anyhow!(
                    "unknown --workload {name:?}; registered workloads: {}",
                    names.join(", ")
                )
            })
    }

    /// Checks a request against `system` before anything starts: the workload is one it
    /// serves, every bug, option and own fault is one it has, then the system's own checks.
    pub fn check(&self, system: &dyn System, request: &SystemRequest) -> anyhow::Result<()> {
        let name = system.name();
        let served = system.workloads();
        let workload = self.workload(&request.workload)?;
        anyhow::ensure!(
            served.contains(&request.workload),
            "--workload {} does not run on --db {name}, which serves {}; systems serving {}: {}",
            request.workload,
            served.join(", "),
            request.workload,
            self.systems
                .iter()
                .filter(|s| s.workloads().contains(&request.workload))
                .map(|s| s.name().to_owned())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let bugs = system.bugs();
        for bug in &request.bugs {
            anyhow::ensure!(
                bugs.iter().any(|b| &b.name == bug),
                "--bug {bug}: {name} has {}",
                if bugs.is_empty() {
                    "no planted bugs".to_owned()
                } else {
                    format!(
                        "the planted bugs {}",
                        bugs.iter()
                            .map(|b| b.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            );
        }
        let known: Vec<Named> = system
            .options()
            .into_iter()
            .chain(workload.options())
            .collect();
        for (key, _) in &request.options {
            anyhow::ensure!(
                known.iter().any(|o| &o.name == key),
                "--db-opt {key} is not an option of {name} with --workload {}; it takes: {}",
                request.workload,
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known
                        .iter()
                        .map(|o| o.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            );
        }
        let faults = system.faults();
        for fault in &request.faults {
            anyhow::ensure!(
                faults.iter().any(|f| &f.name == fault),
                "--nemesis {fault}: not a fault of {name}"
            );
        }
        system.check(request)
    }

    /// Whether `name` is a fault of some registered system (so `--nemesis` may carry it).
    pub fn is_system_fault(&self, system: &dyn System, name: &str) -> bool {
        system.faults().iter().any(|f| f.name == name)
    }

    /// [`Registry::build_test`] on the system named `db`.
    pub fn build(
        &self,
        db: &str,
        request: &SystemRequest,
        options: RunOptions,
    ) -> anyhow::Result<Test> {
        let system = self.system(db)?;
        self.build_test(&*system, request, options)
    }

    /// Checks `request` and builds the test on `system` (see [`System::build`]).
    pub fn build_test(
        &self,
        system: &dyn System,
        request: &SystemRequest,
        mut options: RunOptions,
    ) -> anyhow::Result<Test> {
        self.check(system, request)?;
        anyhow::ensure!(
            !options.hosts.is_empty(),
            "{} needs hosts to run on",
            system.name()
        );
        let parts = self.workload(&request.workload)?.build(request)?;
        let bug = match request.bugs.as_slice() {
            [] => Value::Null,
            [one] => Value::from(one.as_str()),
            many => Value::from(many.to_vec()),
        };
        for (key, value) in [
            ("db", Value::from(system.name())),
            ("workload", Value::from(request.workload.as_str())),
            ("bug", bug),
            (
                "client_timeout_ms",
                Value::from(request.client_timeout.as_millis() as u64),
            ),
        ] {
            options.test_fields.entry(key).or_insert(value);
        }
        system.build(request, parts, options)
    }
}
