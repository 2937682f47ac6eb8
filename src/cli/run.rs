//! `tagsmith run -c tagsmith.yaml`: the long-running service. Scans on each image's interval,
//! takes registry webhooks, keeps every target current; SIGTERM or SIGINT stops it gracefully
//! (a second signal exits at once).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use tokio::sync::{mpsc, watch};

use super::Status;
use crate::config::Config;
use crate::engine::{Inputs, Service, ServiceOptions, serve};
use crate::metrics::metrics;
use crate::registry::{Client, Options};
use crate::server::{Observer, Readiness, Server, ServerError, admin, bind};
use crate::state::{StateDirLock, Store};

/// Webhook events waiting for the scheduler; a full queue answers 503 with Retry-After.
const QUEUE: usize = 1024;
/// How long `/healthz` and `/readyz` answer 503 after an essential task ended, before exit.
const BROKEN_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The configuration file (default: tagsmith.yaml, unless --flux is given).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub flux: super::inputs::FluxArgs,
    /// Where workspaces live (default: the config's `state.dir`, else $XDG_STATE_HOME/tagsmith).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Targets worked on at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Seconds shutdown waits for runs in flight before abandoning them.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub shutdown_deadline: u64,
}

pub fn run(args: RunArgs) -> anyhow::Result<Status> {
    let config = Arc::new(super::inputs::load(args.config.as_deref(), &args.flux)?);
    let state_dir = super::once::state_dir(args.state_dir.clone(), &config)?;
    // Held until the process exits: workspaces and the store are never shared with another.
    let _lock = StateDirLock::acquire(&state_dir, "run")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(service(config, state_dir, &args));
    // Runs still in flight after the deadline are abandoned, not waited for: a push cut off
    // mid-way updates no remote ref, and the next start resets the workspace.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result?;
    Ok(Status::Ok)
}

async fn service(config: Arc<Config>, state_dir: PathBuf, args: &RunArgs) -> anyhow::Result<()> {
    let (queue, requests) = mpsc::channel(QUEUE);
    let readiness = Readiness::new();
    let observer = Observer::new(|receiver, outcome| {
        metrics()
            .webhooks
            .get_or_create(&vec![
                ("receiver", receiver.to_string()),
                ("result", outcome.as_str().to_string()),
            ])
            .inc();
    });
    let server = Server::new(&config.receivers, queue.clone(), readiness.clone())?
        .with_watched(config.images.iter().map(|i| i.image.clone()))
        .with_observer(observer)
        .with_shutdown_deadline(Duration::from_secs(args.shutdown_deadline));
    let listener = bind(config.server.listen).await?;
    let admin_listener = match config.server.metrics {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let opened = Store::open(&state_dir)?;
    if let Some(reason) = &opened.rebuilt {
        tracing::warn!(%reason, "state store rebuilt: selections come back with the next scans");
    }
    seed_first_seen(&opened.store);
    let (stop, stopped) = watch::channel(false);
    let stop_signal = |mut stopped: watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    let mut http = tokio::spawn(server.serve(listener, stop_signal(stopped.clone())));
    let (status, status_view) = watch::channel(String::from("{}"));
    let (runs, run_requests) = mpsc::channel(QUEUE);
    let mut admin = admin_listener.map(|listener| {
        let router = admin::router(admin::Handles {
            status: status_view,
            queue: queue.clone(),
            images: config.images.iter().map(|i| i.image.clone()).collect(),
            runs,
            targets: config.targets.iter().map(|t| t.name.clone()).collect(),
            releases: Some(admin::Releases {
                state_dir: state_dir.clone(),
                policies: config.images.iter().map(|i| i.id.to_string()).collect(),
            }),
        });
        tokio::spawn(admin::serve(router, listener, stop_signal(stopped.clone())))
    });
    drop(queue);
    let service = Service {
        config: Arc::clone(&config),
        client: Arc::new(Client::new(config.registries.clone(), Options::default())),
        options: ServiceOptions {
            state_dir: state_dir.clone(),
            target_concurrency: args.concurrency,
            shutdown_deadline: Duration::from_secs(args.shutdown_deadline),
        },
        store: Arc::new(opened.store),
        snapshot: opened.snapshot,
    };
    let inputs = Inputs {
        requests,
        runs: run_requests,
        shutdown: stopped,
    };
    let mut scheduler = tokio::spawn(serve(service, inputs, status));
    readiness.set(true);
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        config = %args.config.as_deref().map_or_else(
            || format!("{} --flux path(s)", args.flux.flux.len()),
            |p| p.display().to_string()
        ),
        images = config.images.len(),
        targets = config.targets.len(),
        receivers = config.receivers.len(),
        listen = %config.server.listen,
        metrics = %config.server.metrics.map_or_else(|| "off".to_string(), |a| a.to_string()),
        state_dir = %state_dir.display(),
        concurrency = args.concurrency,
        "tagsmith run started"
    );

    // Every task is essential: one that ends before we are told to stop leaves a service that
    // would answer probes while doing nothing, so the process says so and exits instead.
    let admin_ended = async {
        match admin.as_mut() {
            Some(task) => ended(task.await),
            None => std::future::pending().await,
        }
    };
    let died = tokio::select! {
        signal = wait_for_signal() => {
            signal?;
            None
        }
        joined = &mut scheduler => Some(("scheduler", match joined {
            Ok(()) => "it returned".to_string(),
            Err(e) => panic_text(e),
        })),
        joined = &mut http => Some(("webhook server", ended(joined))),
        why = admin_ended => Some(("metrics server", why)),
    };
    if let Some((task, why)) = died {
        readiness.set_broken();
        tracing::error!(task, reason = %why, "an essential task ended; /healthz and /readyz fail; exiting");
        // Long enough for a probe to see it; the exit is what restarts us.
        tokio::time::sleep(BROKEN_GRACE).await;
        let _ = stop.send(true);
        anyhow::bail!("the {task} stopped unexpectedly: {why}");
    }
    tracing::info!("signal received: stopping (a second signal exits at once)");
    readiness.set(false);
    let _ = stop.send(true);
    tokio::spawn(async {
        if wait_for_signal().await.is_ok() {
            tracing::warn!("second signal: exiting now");
            std::process::exit(130);
        }
    });
    scheduler
        .await
        .context("the scheduler stopped abnormally")?;
    http.await
        .context("the webhook server stopped abnormally")??;
    if let Some(admin) = admin {
        admin
            .await
            .context("the metrics server stopped abnormally")??;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Why a server task ended.
fn ended(joined: Result<Result<(), ServerError>, tokio::task::JoinError>) -> String {
    match joined {
        Ok(Ok(())) => "it returned".to_string(),
        Ok(Err(e)) => e.to_string(),
        Err(e) => panic_text(e),
    }
}

fn panic_text(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .map_or_else(
                || "it panicked".to_string(),
                |m| format!("it panicked: {m}"),
            ),
        Err(e) => e.to_string(),
    }
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    tokio::select! {
        _ = term.recv() => {}
        result = tokio::signal::ctrl_c() => result.context("cannot listen for SIGINT")?,
    }
    Ok(())
}

/// The minAge gate's first-seen times from the store; without them a tag with no `created`
/// would count its age from this start.
pub(super) fn seed_first_seen(store: &Store) {
    match store.first_seen() {
        Ok(seen) => crate::engine::gates::remember_first_seen(seen),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read first-seen times; minAge counts from now for tags without a created time")
        }
    }
    // Build times of digests read before: newest-build does not fetch them again.
    match store.build_times() {
        Ok(known) => crate::engine::gates::remember_build_times(known),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read kept build times; newest-build reads them from the registry")
        }
    }
}

/// Hands the first-seen times recorded since the last call to the store.
pub(super) fn save_first_seen(store: &Store) {
    let mut batch = crate::state::Batch::default();
    for (image, tag, at) in crate::engine::gates::take_new_first_seen() {
        batch.first_seen(&image, &tag, at);
    }
    for (key, at) in crate::engine::gates::take_new_build_times() {
        batch.build_time(key, at);
    }
    if let Err(e) = store.write(batch) {
        tracing::warn!(error = %e, "cannot keep first-seen times");
    }
}
