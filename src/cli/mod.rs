//! The `ballast` command line: `run` (the operator), `webhook`, `crd`, `lint`,
//! `simulate`, `query` and `dashboard`. `main.rs` parses the arguments into
//! [`Cli`] and hands them to [`run`](fn@run).

pub mod crd;
pub mod dashboard;
pub mod explain;
pub mod lint;
pub mod plot;
pub mod run;
pub mod series;
pub mod simulate;
pub mod source;
pub mod webhook;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::Category;

/// The help heading of the flags every subcommand takes.
const GLOBAL: &str = "Global options";

/// Scale Kubernetes workloads and their node pools from Prometheus metrics.
#[derive(Debug, Parser)]
#[command(
    name = "ballast",
    version = env!("BALLAST_LONG_VERSION"),
    about,
    long_about = None,
    after_help = "Examples:\n  ballast lint policies/\n  ballast simulate --policy policy.yaml --series evictions.csv --initial-replicas 2 --plot run.svg\n  \
ballast query --prometheus http://localhost:9090 'sum(rate(redis_evicted_keys_total[1m]))'\n\n\
Run `ballast <command> --help` for each command's options and examples."
)]
pub struct Cli {
    /// Log filter (`RUST_LOG` syntax, e.g. `info` or `ballast=debug`). Logs go to stderr.
    #[arg(
        long,
        global = true,
        env = "BALLAST_LOG",
        default_value = "warn",
        help_heading = GLOBAL
    )]
    pub log: String,

    /// Log format: `text` for people, `json` for log pipelines.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "BALLAST_LOG_FORMAT",
        default_value = "text",
        help_heading = GLOBAL
    )]
    pub log_format: crate::telemetry::LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the operator.
    #[command(after_help = "Examples:\n  \
ballast run --prometheus-url http://prometheus-operated.monitoring:9090     # in the cluster (the chart's default)\n  \
ballast run --kubeconfig ~/.kube/config --context kind-dev --log info       # from a laptop, against a dev cluster\n  \
ballast run --watch-namespace shop                                          # only the policies of one namespace")]
    Run(run::RunArgs),
    /// Serve only the validating admission webhook.
    #[command(after_help = "Examples:\n  \
ballast webhook --addr 0.0.0.0:9443 --webhook-cert-dir /tls    # with a mounted certificate (cert-manager)\n  \
ballast webhook --kubeconfig ~/.kube/config --log info         # from a laptop")]
    Webhook(webhook::WebhookCmdArgs),
    /// Print the CustomResourceDefinitions as YAML (what `crds/` holds).
    #[command(after_help = "Examples:\n  \
ballast crd | kubectl apply --server-side -f -   # install or upgrade the CRDs\n  \
ballast crd --out-dir crds/                       # one file per CRD\n  \
ballast crd --check crds/                         # CI: fail when crds/ is stale")]
    Crd(CrdArgs),
    /// Check policy files offline: the CRD's rules, PromQL syntax, foot-guns.
    Lint(LintArgs),
    /// Replay a metric series through a policy and show the replicas it would set.
    #[command(after_help = "Examples:\n  \
ballast simulate --policy examples/cache-eviction/policy.yaml --series examples/cache-eviction/series.csv --initial-replicas 2\n  \
ballast simulate --policy policy.yaml --prometheus http://localhost:9090 --from now-6h --to now --initial-replicas 4 --plot replay.svg\n  \
ballast simulate --policy policy.yaml --series s.csv --initial-replicas 2 --output csv > decisions.csv")]
    Simulate(SimulateArgs),
    /// Explain a decision in words: metric values, the formula with its numbers,
    /// which window or rate rule bound it.
    Explain(explain::ExplainArgs),
    /// Run one PromQL query the way the operator does and show what it would read.
    #[command(
        after_help = "Exit codes: 0 a value; 1 no data (a policy would hold its replicas); 2 an error.\n\n\
Examples:\n  \
ballast query --prometheus http://localhost:9090 'sum(rate(redis_evicted_keys_total[1m]))'\n  \
ballast query --prometheus http://thanos-query.monitoring:9090 --timeout 2s 'max(kafka_consumergroup_lag)'"
    )]
    Query(QueryArgs),
    /// Draw a Grafana dashboard's time-series panels from Prometheus into an SVG.
    #[command(after_help = "Examples:\n  \
ballast dashboard --prometheus http://localhost:9090 --out dashboard.svg\n  \
ballast dashboard --prometheus http://localhost:9090 --from now-1h --var namespace=shop --out shop.svg")]
    Dashboard(dashboard::DashboardArgs),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  ballast completions bash > /etc/bash_completion.d/ballast\n  \
ballast completions zsh > \"${fpath[1]}/_ballast\"\n  ballast completions fish > ~/.config/fish/completions/ballast.fish"
    )]
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub source: source::SourceArgs,
    /// The PromQL query, as in a policy's `metrics[].query`.
    #[arg(value_name = "QUERY")]
    pub query: String,
    /// Query timeout.
    #[arg(long, default_value = "5s")]
    pub timeout: crate::api::Duration,
    /// Largest response accepted, in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_response_bytes: u64,
}

#[derive(Debug, Args)]
pub struct CrdArgs {
    /// Write one file per CRD into this directory instead of printing.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Compare the files in DIR with the generated CRDs; exit 1 when they differ.
    #[arg(long, value_name = "DIR", conflicts_with = "out_dir")]
    pub check: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 no errors (and no warnings with --strict); 1 findings; \
2 a usage or I/O error, or nothing checked (a path without YAML, a glob that matched \
nothing) unless --allow-empty.\n\nExamples:\n  ballast lint policies/\n  \
kustomize build overlays/prod | ballast lint -\n  ballast lint --strict examples/"
)]
pub struct LintArgs {
    /// Files or directories (searched for *.yaml and *.yml); `-` reads stdin (for
    /// `kustomize build` or `helm template` output).
    #[arg(required = true, value_name = "FILE|DIR|-")]
    pub paths: Vec<PathBuf>,
    /// Fail on warnings too.
    #[arg(long)]
    pub strict: bool,
    /// Accept a run that checked no CustomScalingPolicy or ClusterMetricsSource.
    #[arg(long)]
    pub allow_empty: bool,
    /// How to print findings: text for people, json (one object per line), sarif
    /// (GitHub code scanning), github (Actions annotations).
    #[arg(long, value_enum, default_value = "text")]
    pub format: lint::LintFormat,
    /// The operator's namespace: a ClusterMetricsSource's Secrets must be there, as
    /// the webhook checks. Empty: not checked.
    #[arg(long, value_name = "NS", default_value = "ballast-system")]
    pub operator_namespace: String,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The CustomScalingPolicy to replay (YAML).
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    /// CSV with header `time,<metric>[,<metric>...]`; time in seconds from the start
    /// or RFC 3339; an empty cell is a failed read.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present_any = ["prometheus", "source"],
        conflicts_with_all = ["prometheus", "source"]
    )]
    pub series: Option<PathBuf>,
    /// Where numeric CSV times (seconds from the start) begin, for schedules: RFC
    /// 3339, e.g. `2026-12-07T06:00:00Z`. RFC 3339 rows are read as they are.
    #[arg(long, value_name = "TIME", default_value = "1970-01-01T00:00:00Z")]
    pub start: jiff::Timestamp,
    /// Replay from range queries (--prometheus URL or --source NAME, see "Metrics
    /// source") instead of a CSV file.
    #[command(flatten)]
    pub source: source::SourceArgs,
    /// Start of the range: RFC 3339, Unix seconds, `now` or `now-<duration>` (e.g. `now-1h`).
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// End of the range, same syntax as --from.
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// Step of the range (default: the policy's pollInterval).
    #[arg(long, value_name = "DURATION")]
    pub step: Option<String>,
    /// Replicas at the start.
    #[arg(long, value_name = "N")]
    pub initial_replicas: u32,
    /// Nodes in the node pool at the start (default: what the initial replicas need).
    #[arg(long, value_name = "N")]
    pub initial_nodes: Option<u32>,
    /// The workload's pod requests, for a node pool sized by nodeAllocatable,
    /// e.g. `cpu=500m,memory=1Gi`.
    #[arg(long, value_name = "REQUESTS")]
    pub pod_requests: Option<String>,
    /// How to print the result.
    #[arg(long, value_enum, default_value = "table")]
    pub output: OutputFormat,
    /// For the capacity summary (stderr, with AverageValue metrics): how long new
    /// replicas take to be ready after the decision, e.g. `90s` for pods on fresh
    /// nodes. Default 0.
    #[arg(long, value_name = "DURATION")]
    pub ready_delay: Option<crate::api::Duration>,
    /// Also draw the run as an SVG: metrics against target, replicas (and nodes) over time.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
}

/// Run a parsed command line. Errors are printed here, with their causes.
pub fn run(cli: Cli) -> ExitCode {
    init_logging(&cli.log, cli.log_format);
    let result = match cli.command {
        Command::Run(args) => run::run(&args),
        Command::Webhook(args) => webhook::run(&args),
        Command::Crd(args) => crd::run(&args),
        Command::Lint(args) => lint::run(&args),
        Command::Simulate(args) => simulate::run(&args),
        Command::Explain(args) => explain::run(&args),
        Command::Query(args) => query(&args),
        Command::Dashboard(args) => dashboard::run(&args),
        Command::Completions(args) => {
            use clap::CommandFactory as _;
            clap_complete::generate(
                args.shell,
                &mut Cli::command(),
                "ballast",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// `ballast query`: one instant query through the operator's client and decoding.
/// Exit 0 with a value, 1 with "no data", 2 on an error (with its category).
fn query(args: &QueryArgs) -> anyhow::Result<ExitCode> {
    use crate::metrics::Reading;
    if let Err(message) = crate::api::validation::check_promql(&args.query) {
        anyhow::bail!("{message}");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let source = args.source.connect(&runtime, args.timeout.to_std())?;
    let limit = source.max_response_bytes.unwrap_or(args.max_response_bytes);
    match runtime.block_on(source.client.query_instant(&args.query, limit)) {
        Ok(Reading::Value { value, time }) => {
            let at = jiff::Timestamp::from_millisecond(time)
                .map(|t| t.to_string())
                .unwrap_or_else(|_| time.to_string());
            println!("value {value} at {at}");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Reading::NoData(why)) => {
            println!(
                "no data: {} (a policy holds its replicas; never read as zero)",
                why.as_str()
            );
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            println!("error ({}): {e}", e.category());
            Ok(ExitCode::from(2))
        }
    }
}

fn init_logging(filter: &str, format: crate::telemetry::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // stderr, so that `ballast crd` and `simulate --output csv` print clean stdout.
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        crate::telemetry::LogFormat::Json => builder.json().try_init(),
        crate::telemetry::LogFormat::Text => builder.try_init(),
    };
}
