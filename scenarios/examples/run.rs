//! Plays a scenario headless, as `fleetdeck scenario run` will:
//! `cargo run -p fleetdeck-scenarios --example run -- [NAME|PATH] [--check] [--seed N] [--speed X] [--for SECONDS]`

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use fleetdeck_scenarios::{RunOptions, Runner};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut name = fleetdeck_scenarios::DEFAULT.to_string();
    let mut opts = RunOptions::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--check" => opts.check = true,
            "--seed" => opts.seed = args.next().ok_or("--seed needs a number")?.parse()?,
            "--for" => {
                let s: f64 = args.next().ok_or("--for needs seconds")?.parse()?;
                opts.stop_after = Some(Duration::from_secs_f64(s));
            }
            "--repeat" => opts.repeat = true,
            "--speed" => opts.speed = Some(args.next().ok_or("--speed needs a number")?.parse()?),
            other => name = other.to_string(),
        }
    }
    let scenario = fleetdeck_scenarios::load(&name)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut runner = Runner::build(scenario, &opts).await?;
        let stop = AtomicBool::new(false);
        let report = runner
            .run(&opts, &stop, &mut |line| println!("{line}"))
            .await;
        runner.shutdown().await;
        let report = report?;
        print!("{}", report.render());
        report.into_result()?;
        Ok(())
    })
}
