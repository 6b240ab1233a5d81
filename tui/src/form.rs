//! A small form: labelled fields typed one at a time (Tab to the next),
//! checked as a whole on Enter, the first wrong field named and focused.
//! The rollout form: what to set, the waves, the soak and how many failures
//! halt it, on the marked sites or the whole fleet (`rollout start` with
//! its `--set`, `--waves`, `--soak`, `--max-fail`).

use std::collections::BTreeMap;

use fleetdeck_store::SiteId;
use fleetdeck_store::config::{ConfigPath, parse_cli_value};
use fleetdeck_store::document::LayerRef;
use fleetdeck_store::ops::RolloutPlan;
use fleetdeck_store::rollout::parse_waves;

use crate::source::Intent;
use crate::text;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub label: &'static str,
    pub text: String,
    /// What the field takes, shown while it has the focus.
    pub hint: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A staged rollout on these sites (none: the whole fleet).
    Rollout { sites: Vec<SiteId> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Form {
    pub kind: Kind,
    pub fields: Vec<Field>,
    pub focus: usize,
}

const SET: usize = 0;
const WAVES: usize = 1;
const SOAK: usize = 2;
const MAX_FAIL: usize = 3;

impl Form {
    pub fn rollout(sites: Vec<SiteId>) -> Form {
        let field = |label, text: &str, hint| Field {
            label,
            text: text.to_string(),
            hint,
        };
        Form {
            kind: Kind::Rollout { sites },
            fields: vec![
                field(
                    "set",
                    "",
                    "KEY=VALUE, several with ; between: frigate.version=0.15; retention.days=30",
                ),
                field(
                    "waves",
                    "10,50,100",
                    "cumulative percentages of the nodes ending at 100: 5,25,100",
                ),
                field(
                    "soak",
                    "10m",
                    "how long each wave runs healthy before the next opens: 30s, 10m, 1h",
                ),
                field(
                    "max fail",
                    "0",
                    "failed nodes a wave tolerates before the rollout halts",
                ),
            ],
            focus: SET,
        }
    }

    /// "start a rollout on 3 sites" / "… on the whole fleet".
    pub fn title(&self) -> String {
        match &self.kind {
            Kind::Rollout { sites } => match sites.as_slice() {
                [] => "start a rollout on the whole fleet".into(),
                [one] => format!("start a rollout on site {one}"),
                many => format!("start a rollout on {} sites", many.len()),
            },
        }
    }

    pub fn next(&mut self) {
        self.focus = (self.focus + 1) % self.fields.len();
    }

    pub fn focused_mut(&mut self) -> Option<&mut String> {
        self.fields.get_mut(self.focus).map(|f| &mut f.text)
    }

    /// Checks every field: the confirm question and the intent, or the
    /// field that is wrong and why (one sentence naming it).
    pub fn submit(&self) -> Result<(String, Intent), (usize, String)> {
        let Kind::Rollout { sites } = &self.kind;
        let text = |i: usize| self.fields[i].text.trim();
        let mut set = BTreeMap::new();
        for pair in text(SET)
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let Some((k, v)) = pair.split_once('=') else {
                return Err((SET, format!("set: '{pair}' is not KEY=VALUE")));
            };
            let key = ConfigPath::parse(k.trim()).map_err(|e| (SET, format!("set: {e}")))?;
            crate::views::config::check_value(&LayerRef::Fleet, &key, v)
                .map_err(|e| (SET, format!("set: {e}")))?;
            set.insert(key.to_key(), parse_cli_value(v.trim()));
        }
        if set.is_empty() {
            return Err((
                SET,
                "set: what the rollout sets is needed, e.g. frigate.version=0.15".into(),
            ));
        }
        let waves = parse_waves(text(WAVES)).map_err(|e| (WAVES, format!("waves: {e}")))?;
        let soak_ms = match text(SOAK) {
            "0" | "0s" => 0,
            t => text::parse_duration(t).map_err(|e| (SOAK, format!("soak: {e}")))?,
        };
        let max_fail: u64 = text(MAX_FAIL).parse().map_err(|_| {
            (
                MAX_FAIL,
                format!("max fail: '{}' is not a whole number", text(MAX_FAIL)),
            )
        })?;
        let what: Vec<String> = set.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        let place = match sites.as_slice() {
            [] => "every site of the fleet".to_string(),
            many => many
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        };
        let question = format!(
            "Start a rollout of {} on {place}?\nWaves {} %, each soaking {} healthy; it halts after {max_fail} failed node{}.",
            what.join(", "),
            waves
                .iter()
                .map(u8::to_string)
                .collect::<Vec<_>>()
                .join(" → "),
            text::duration(soak_ms),
            if max_fail == 1 { "" } else { "s" },
        );
        let plan = RolloutPlan {
            set,
            sites: sites.clone(),
            waves,
            soak_ms,
            max_fail,
        };
        Ok((question, Intent::RolloutStart { id: None, plan }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rollout_form_names_the_field_that_is_wrong() {
        let mut f = Form::rollout(Vec::new());
        assert_eq!(f.submit().unwrap_err().0, SET);
        f.fields[SET].text = "retention.days=0".into();
        let (field, e) = f.submit().unwrap_err();
        assert_eq!(field, SET);
        assert!(e.contains("out of range"), "{e}");
        f.fields[SET].text = "retention.days=30; frigate.version=0.15".into();
        f.fields[WAVES].text = "50,10".into();
        assert_eq!(f.submit().unwrap_err().0, WAVES);
        f.fields[WAVES].text = "25,100".into();
        f.fields[SOAK].text = "soon".into();
        assert_eq!(f.submit().unwrap_err().0, SOAK);
        f.fields[SOAK].text = "5m".into();
        let (q, intent) = f.submit().unwrap();
        assert!(q.starts_with("Start a rollout of frigate.version = 0.15, retention.days = 30 on every site of the fleet?"), "{q}");
        match intent {
            Intent::RolloutStart { plan, .. } => {
                assert_eq!(plan.waves, vec![25, 100]);
                assert_eq!(plan.soak_ms, 300_000);
                assert_eq!(plan.set["retention.days"], serde_json::json!(30));
            }
            other => panic!("{other:?}"),
        }
    }
}
