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
use crate::engine::{Service, ServiceOptions, serve};
use crate::metrics::metrics;
use crate::registry::{Client, Options};
use crate::server::{Observer, Readiness, Server, admin, bind};
use crate::state::{StateDirLock, Store};

/// Webhook events waiting for the scheduler; a full queue answers 503 with Retry-After.
const QUEUE: usize = 1024;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The configuration file.
    #[arg(short, long, value_name = "FILE", default_value = "tagsmith.yaml")]
    pub config: PathBuf,
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
    let config = Arc::new(Config::load(&args.config)?);
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
    let (stop, stopped) = watch::channel(false);
    let stop_signal = |mut stopped: watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    let http = tokio::spawn(server.serve(listener, stop_signal(stopped.clone())));
    let (status, status_view) = watch::channel(String::from("{}"));
    let admin = admin_listener.map(|listener| {
        let images = config.images.iter().map(|i| i.image.clone()).collect();
        let router = admin::router(status_view, queue.clone(), images);
        tokio::spawn(admin::serve(router, listener, stop_signal(stopped.clone())))
    });
    drop(queue);
    let service = Service {
        config: Arc::clone(&config),
        client: Arc::new(Client::new(config.registries.clone(), Options::default())),
        options: ServiceOptions {
            state_dir,
            target_concurrency: args.concurrency,
            shutdown_deadline: Duration::from_secs(args.shutdown_deadline),
        },
        store: Arc::new(opened.store),
        snapshot: opened.snapshot,
    };
    let scheduler = tokio::spawn(serve(service, requests, stopped, status));
    readiness.set(true);
    tracing::info!(images = config.images.len(), targets = config.targets.len(), listen = %config.server.listen, "tagsmith run started");

    wait_for_signal().await?;
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

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    tokio::select! {
        _ = term.recv() => {}
        result = tokio::signal::ctrl_c() => result.context("cannot listen for SIGINT")?,
    }
    Ok(())
}
