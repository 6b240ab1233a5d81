//! `fleetdeck demo` and `fleetdeck scenario`: play a scenario (the built-in
//! Blocao fleet by default) over real node daemons in this process, with the
//! console attached to the operator's replica, or headless.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use fleetdeck_scenarios::runner::STATUS_FILE;
use fleetdeck_scenarios::{Report, RunOptions, Runner};

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()?)
}

fn load(name: Option<&str>) -> Result<fleetdeck_scenarios::Scenario> {
    fleetdeck_scenarios::load(name.unwrap_or(fleetdeck_scenarios::DEFAULT))
        .map_err(|e| anyhow!("{e}"))
}

/// Plays the scenario on `rt` until `stop`, `stop_after` or the end of the
/// timeline; every line goes to `log`.
fn play(
    rt: &tokio::runtime::Runtime,
    scenario: fleetdeck_scenarios::Scenario,
    opts: &RunOptions,
    stop: &AtomicBool,
    outlets: &crate::cli::args::OutletArgs,
    mut log: impl FnMut(String) + Send,
    ready: impl FnOnce(PathBuf),
) -> Result<Report> {
    rt.block_on(async {
        let mut runner = Runner::build(scenario, opts)
            .await
            .map_err(|e| anyhow!("{e}"))?;
        ready(runner.ops_dir());
        match crate::outlets::start(runner.ops(), outlets).await {
            Ok(started) => {
                for s in started {
                    log(format!("{}: {}", s.outlet, s.detail));
                }
            }
            Err(e) => {
                // Close the fleet's endpoints before saying why.
                runner.shutdown().await;
                return Err(e);
            }
        }
        let report = runner.run(opts, stop, &mut log).await;
        runner.shutdown().await;
        report.map_err(|e| anyhow!("{e}"))
    })
}

/// `fleetdeck scenario list`
pub fn list(json: bool) -> Result<()> {
    let all = fleetdeck_scenarios::list();
    if json {
        let rows: Vec<_> = all
            .iter()
            .map(|(n, d)| serde_json::json!({"name": n, "description": d}))
            .collect();
        println!("{}", serde_json::Value::Array(rows));
    } else {
        let width = all.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        for (n, d) in all {
            println!("{n:<width$}  {d}");
        }
    }
    Ok(())
}

pub struct RunArgs<'a> {
    pub scenario: &'a str,
    pub check: bool,
    pub seed: u64,
    /// `None`: the scenario's own speed.
    pub speed: Option<f64>,
    /// Print the report as JSON on stdout (the timeline goes to stderr).
    pub json: bool,
}

/// `fleetdeck scenario run NAME|PATH [--check] [--seed N] [--speed X]`:
/// plays the timeline once, headless, printing it as it happens and a
/// report at the end. With `--check`, fails unless every check of the
/// scenario held.
pub fn run(a: RunArgs<'_>) -> Result<()> {
    let scenario = load(Some(a.scenario))?;
    if let Some(speed) = a.speed {
        scenario
            .check_speed(speed)
            .map_err(|e| anyhow!("--speed {speed}: {e}"))?;
    }
    let opts = RunOptions {
        seed: a.seed,
        check: a.check,
        speed: a.speed,
        ..RunOptions::default()
    };
    let rt = runtime()?;
    let stop = Arc::new(AtomicBool::new(false));
    ctrl_c_stops(&rt, &stop);
    let json = a.json;
    let report = play(
        &rt,
        scenario,
        &opts,
        &stop,
        &Default::default(),
        move |l| {
            if json {
                eprintln!("{l}");
            } else {
                println!("{l}");
            }
        },
        |_| {},
    )?;
    if a.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.render());
    }
    if a.check {
        report.into_result().map_err(|e| anyhow!("{e}"))?;
    }
    Ok(())
}

fn ctrl_c_stops(rt: &tokio::runtime::Runtime, stop: &Arc<AtomicBool>) {
    let stop = stop.clone();
    rt.spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            stop.store(true, Ordering::Relaxed);
        }
    });
}

pub struct DemoOpts {
    pub scenario: Option<String>,
    pub headless: bool,
    /// Headless: stop after this long (else at Ctrl-C).
    pub run_for: Option<Duration>,
    pub seed: u64,
    /// `None`: the scenario's own speed.
    pub speed: Option<f64>,
    /// Where the operator's replica hands the fleet's health on.
    pub outlets: crate::cli::args::OutletArgs,
    /// `--data` / `FLEETDECK_DATA`: where the demo's replicas are made and
    /// kept afterwards; `None`: a temporary directory, removed at the end.
    pub data: Option<PathBuf>,
}

/// The directory a demo may make its replicas in: new, or one holding no
/// replica (a real one, or an earlier demo's, is never reused or touched).
fn demo_dir(dir: &std::path::Path) -> Result<()> {
    if dir.join(fleetdeck_store::replica::DB_FILE).exists() {
        return Err(anyhow!(
            "{} holds a replica: the demo makes a fleet of its own and needs a new or empty directory (pass another --data, or unset FLEETDECK_DATA)",
            dir.display()
        ));
    }
    if dir
        .join("ops")
        .join(fleetdeck_store::replica::DB_FILE)
        .exists()
    {
        return Err(anyhow!(
            "{} holds the replicas of an earlier demo: inspect them with `fleetdeck --data {} status`, then remove the directory or pass another --data",
            dir.display(),
            dir.join("ops").display()
        ));
    }
    Ok(())
}

/// `fleetdeck demo`: the scenario's timeline played again and again, with
/// the console on the operator's replica (or, `--headless`, the timeline
/// printed and a summary at the end).
pub fn demo(o: DemoOpts) -> Result<()> {
    let scenario = load(o.scenario.as_deref())?;
    if let Some(speed) = o.speed {
        scenario
            .check_speed(speed)
            .map_err(|e| anyhow!("--speed {speed}: {e}"))?;
    }
    if let Some(d) = &o.data {
        demo_dir(d)?;
    }
    let opts = RunOptions {
        seed: o.seed,
        repeat: true,
        stop_after: if o.headless { o.run_for } else { None },
        check: false,
        dir: o.data.clone(),
        speed: o.speed,
    };
    let kept = |ops: &std::path::Path| {
        if o.data.is_some() {
            println!(
                "the demo's replicas are kept: `fleetdeck --data {} status` (the operator's), its logs beside it",
                ops.display()
            );
        }
    };
    if o.headless {
        let rt = runtime()?;
        let stop = Arc::new(AtomicBool::new(false));
        ctrl_c_stops(&rt, &stop);
        let report = play(
            &rt,
            scenario,
            &opts,
            &stop,
            &o.outlets,
            |l| println!("{l}"),
            |dir| {
                println!("operator replica: {}", dir.display());
            },
        )?;
        print!("{}", report.render());
        if let Some(d) = &o.data {
            kept(&d.join("ops"));
        }
        return Ok(());
    }
    // With the console: the fleet runs on its own threads; the console opens
    // the operator's data dir, where the runner's operator engine writes the
    // same status file `serve` does, so the console reads and writes the
    // replica and leaves syncing to that engine.
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel::<Result<PathBuf, String>>();
    let fleet = {
        let stop = stop.clone();
        let tx_err = tx.clone();
        std::thread::Builder::new()
            .name("demo-fleet".into())
            .spawn(move || -> Result<Report> {
                let rt = runtime()?;
                let log_file = std::sync::Mutex::new(None::<std::fs::File>);
                let result = play(
                    &rt,
                    scenario,
                    &opts,
                    &stop,
                    &o.outlets,
                    |l| {
                        use std::io::Write;
                        if let Some(f) = log_file.lock().unwrap_or_else(|e| e.into_inner()).as_mut()
                        {
                            let _ = writeln!(f, "{l}");
                        }
                    },
                    |dir| {
                        let path = dir.join("demo-timeline.log");
                        *log_file.lock().unwrap_or_else(|e| e.into_inner()) =
                            std::fs::File::create(&path).ok();
                        log_to_file(&dir);
                        let _ = tx.send(Ok(dir));
                    },
                );
                if let Err(e) = &result {
                    let _ = tx_err.send(Err(e.to_string()));
                }
                result
            })?
    };
    let dir = match rx.recv() {
        Ok(Ok(dir)) => dir,
        Ok(Err(e)) => return Err(anyhow!("the demo fleet did not start: {e}")),
        Err(_) => return Err(anyhow!("the demo fleet did not start")),
    };
    // Wait for the operator engine's status file, so the console sees it.
    let t0 = Instant::now();
    while !dir.join(STATUS_FILE).exists() && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let console = crate::console::run_demo(&dir);
    stop.store(true, Ordering::Relaxed);
    let report = fleet
        .join()
        .map_err(|_| anyhow!("the demo fleet thread panicked"))?;
    console?;
    if let Ok(r) = report {
        print!("{}", r.render());
    }
    kept(&dir);
    Ok(())
}

/// The log lines of the console, the daemons and the engines go to
/// `console.log` in the operator's data dir: the console owns the terminal.
fn log_to_file(dir: &std::path::Path) {
    let Ok(file) = std::fs::File::create(dir.join("console.log")) else {
        return;
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .try_init();
}
