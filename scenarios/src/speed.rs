//! Time acceleration: a scenario is written in real fleet time (the seeds'
//! numbers: a heartbeat every 10 s, a site offline after 5 minutes) and
//! played `speed` times faster.
//!
//! What is scaled, consistently: the timeline (event and check times), the
//! durations in the config that the daemon and the alert rules read
//! ([`TIME_KEYS`]: the heartbeat interval and the site-offline window; the
//! node-down window follows, being `missed_beats` heartbeats), and a
//! rollout's soak time. Counts (`missed_beats`) and levels (`disk_pct`) are
//! not times and stay as they are.
//!
//! What is not scaled, because it is not simulated: sync over loopback
//! (a change reaches a peer in tens to hundreds of milliseconds), an apply
//! (render, symlink swap, the health check process), a daemon's start, the
//! dialer's back-off after failed connects (1 s doubling to 30 s), the
//! rollout rule that a node must have been heard from in the last 60 s,
//! the crash-loop window (5 starts in 10 minutes) and calendar thresholds
//! (certificate days, backup hours: the runner writes those files with the
//! ages the timeline asks for). The runner gives every check a fixed
//! allowance of real time, [`crate::runner::LATENCY_ALLOWANCE`], for the
//! first group, so a check's window is `within_s / speed` plus that.
//!
//! The daemon counts the heartbeat interval in whole seconds, at least 1,
//! so the highest speed is the smallest heartbeat interval (10 for a 10 s
//! heartbeat); a speed that does not divide a duration into whole seconds is
//! refused rather than rounded, since rounding would change the ratio
//! between the heartbeat and the alert windows.

use fleetdeck_store::config::ConfigPath;
use serde_json::Value;

/// Config keys holding a duration in seconds; (key, smallest value).
pub const TIME_KEYS: &[(&str, u64)] = &[("heartbeat.interval_s", 1), ("alerts.site_offline_s", 0)];

/// `value` at `speed` if `path` is a duration, else `value` unchanged. An
/// error names the key and the speeds that would fit.
pub fn scale_leaf(path: &ConfigPath, value: &Value, speed: f64) -> Result<Value, String> {
    let key = path.to_key();
    let Some((_, min)) = TIME_KEYS.iter().find(|(k, _)| *k == key) else {
        return Ok(value.clone());
    };
    let Some(secs) = value.as_f64() else {
        return Ok(value.clone());
    };
    let scaled = secs / speed;
    let whole = scaled.round();
    if (scaled - whole).abs() > 1e-6 || whole < *min as f64 {
        let fits: Vec<String> = (1..=(secs as u64).min(100))
            .filter(|d| (secs as u64).is_multiple_of(*d) && secs as u64 / d >= *min)
            .map(|d| d.to_string())
            .collect();
        return Err(format!(
            "at speed {speed}, {key} = {secs} s would be {scaled:.3} s: the daemon and the alert rules \
             count whole seconds{}; speeds that fit: {}",
            if *min > 0 {
                format!(" (at least {min})")
            } else {
                String::new()
            },
            if fits.is_empty() {
                "none".to_string()
            } else {
                fits.join(", ")
            }
        ));
    }
    Ok(Value::from(whole as u64))
}

/// `value` set at `path` at `speed`: every duration leaf in it scaled (a
/// table at `heartbeat` holds `heartbeat.interval_s`), the shape kept, so
/// the value is set as one edit just as the operator's own `config set`.
pub fn scale_value(path: &ConfigPath, value: &Value, speed: f64) -> Result<Value, String> {
    let Value::Object(map) = value else {
        return scale_leaf(path, value, speed);
    };
    map.iter()
        .map(|(k, v)| {
            let child = path.child(k).map_err(|e| e.to_string())?;
            Ok((k.clone(), scale_value(&child, v, speed)?))
        })
        .collect::<Result<serde_json::Map<_, _>, String>>()
        .map(Value::Object)
}

/// A duration of scenario time as real time at `speed`.
pub fn real(scenario_s: f64, speed: f64) -> std::time::Duration {
    std::time::Duration::from_secs_f64((scenario_s / speed).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ConfigPath {
        ConfigPath::parse(s).unwrap()
    }

    #[test]
    fn durations_are_divided_and_other_keys_kept() {
        let v = scale_leaf(&p("heartbeat.interval_s"), &Value::from(10), 5.0).unwrap();
        assert_eq!(v, Value::from(2));
        let v = scale_leaf(&p("alerts.site_offline_s"), &Value::from(300), 10.0).unwrap();
        assert_eq!(v, Value::from(30));
        let v = scale_leaf(&p("alerts.missed_beats"), &Value::from(3), 10.0).unwrap();
        assert_eq!(v, Value::from(3));
        let v = scale_leaf(&p("heartbeat.interval_s"), &Value::from(10), 0.5).unwrap();
        assert_eq!(v, Value::from(20));
    }

    #[test]
    fn a_table_keeps_its_shape_with_its_durations_scaled() {
        let v = serde_json::json!({"interval_s": 10, "jitter": 3, "extra": {"interval_s": 7}});
        let got = scale_value(&p("heartbeat"), &v, 5.0).unwrap();
        assert_eq!(
            got,
            serde_json::json!({"interval_s": 2, "jitter": 3, "extra": {"interval_s": 7}})
        );
        let v = serde_json::json!({"site_offline_s": 7});
        let e = scale_value(&p("alerts"), &v, 2.0);
        assert!(e.is_err_and(|e| e.contains("alerts.site_offline_s")));
    }

    #[test]
    fn a_speed_that_breaks_whole_seconds_is_refused_with_the_speeds_that_fit() {
        let e = scale_leaf(&p("heartbeat.interval_s"), &Value::from(10), 20.0).unwrap_err();
        assert!(
            e.contains("heartbeat.interval_s") && e.contains("0.500"),
            "{e}"
        );
        assert!(e.contains("1, 2, 5, 10"), "{e}");
        let e = scale_leaf(&p("heartbeat.interval_s"), &Value::from(10), 3.0).unwrap_err();
        assert!(e.contains("3.333"), "{e}");
    }
}
