//! Zones: each zone's sites and nodes, and its nodes up against the quorum
//! the fleet sets for it (`zones.ZONE.quorum` in the fleet layer): below
//! it, what the zone detects does not count, and the store raises a hard
//! `zone-quorum:ZONE` alert. Nodes up are counted as the store counts them:
//! reported, not down, their site not offline. Enter on a zone's site opens
//! the site.

use std::collections::BTreeMap;

use fleetdeck_store::alerts::SiteState;
use fleetdeck_store::config::{self, ConfigPath};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};

use crate::cells::{heard, node_count, site_badge};
use crate::component::{Component, Ctx, Effect, Handled, Route, View};
use crate::keymap::{Action, Scope};
use crate::pane::cycle;
use crate::source::{SiteFacts, Snapshot};
use crate::table::{self, ListState, Spec};

const ZONES: usize = 0;
const SITES: usize = 1;

/// The name sites without a zone are listed under.
pub const NO_ZONE: &str = "(no zone)";

/// One zone as the view shows it.
pub struct ZoneFacts<'a> {
    pub name: String,
    pub sites: Vec<&'a SiteFacts>,
    pub nodes: usize,
    /// Nodes up as the store counts them for the quorum.
    pub up: usize,
    /// `zones.NAME.quorum` in the fleet layer.
    pub quorum: Option<u64>,
    /// The store's alert that the zone is below its quorum, if open.
    pub below: bool,
}

/// Nodes of a site up for its zone's quorum: none while the site is offline.
fn up_for_quorum(snap: &Snapshot, s: &SiteFacts) -> usize {
    if snap.alert(&format!("site-offline:{}", s.id)).is_some() {
        0
    } else {
        s.nodes_up
    }
}

/// Every zone of the fleet, by name, sites without one last.
pub fn zones(snap: &Snapshot) -> Vec<ZoneFacts<'_>> {
    let mut by: BTreeMap<Option<&str>, Vec<&SiteFacts>> = BTreeMap::new();
    for s in &snap.sites {
        by.entry(s.zone.as_deref()).or_default().push(s);
    }
    let mut out: Vec<ZoneFacts> = by
        .into_iter()
        .map(|(zone, sites)| {
            let quorum = zone.and_then(|z| {
                let path = ConfigPath::parse(&format!("zones.{z}.quorum")).ok()?;
                config::lookup(&[Some(&snap.fleet.fleet)], path.segments())?.as_u64()
            });
            ZoneFacts {
                name: zone.unwrap_or(NO_ZONE).to_string(),
                nodes: sites.iter().map(|s| s.nodes_total).sum(),
                up: sites.iter().map(|s| up_for_quorum(snap, s)).sum(),
                below: zone.is_some_and(|z| snap.alert(&format!("zone-quorum:{z}")).is_some()),
                quorum,
                sites,
            }
        })
        .collect();
    // None sorts first in the map: sites without a zone go last.
    if out.first().is_some_and(|z| z.name == NO_ZONE) {
        let none = out.remove(0);
        out.push(none);
    }
    out
}

#[derive(Debug, Default)]
pub struct ZonesView {
    lists: [ListState; 2],
    focus: usize,
}

impl ZonesView {
    /// The zones that pass the zones table's filter (by name).
    fn shown<'a>(&self, snap: &'a Snapshot) -> Vec<ZoneFacts<'a>> {
        let f = &self.lists[ZONES].filter;
        zones(snap)
            .into_iter()
            .filter(|z| table::matches(f, &[&z.name]))
            .collect()
    }

    fn zone_ids(&self, snap: &Snapshot) -> Vec<String> {
        self.shown(snap).into_iter().map(|z| z.name).collect()
    }

    fn selected<'a>(&self, snap: &'a Snapshot) -> Option<ZoneFacts<'a>> {
        let key = self.lists[ZONES].key.as_deref()?;
        self.shown(snap).into_iter().find(|z| z.name == key)
    }

    /// The selected zone's sites that pass the sites table's filter.
    fn sites<'a>(&self, snap: &'a Snapshot) -> Vec<&'a SiteFacts> {
        let f = &self.lists[SITES].filter;
        self.selected(snap)
            .map(|z| {
                z.sites
                    .into_iter()
                    .filter(|s| table::matches(f, &[&s.id, &s.name]))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn site_ids(&self, snap: &Snapshot) -> Vec<String> {
        self.sites(snap).iter().map(|s| s.id.clone()).collect()
    }
}

/// "9/9 up · quorum 8", in the colour of where it stands.
fn quorum_cell(theme: &crate::theme::Theme, z: &ZoneFacts) -> Line<'static> {
    match z.quorum {
        None => Line::from(Span::styled("no quorum set", theme.dim())),
        Some(q) if z.below => Line::from(Span::styled(
            format!("{q} · below: detections do not count"),
            Style::new().fg(theme.health.err),
        )),
        Some(q) => Line::from(Span::styled(format!("{q} · met"), theme.ok())),
    }
}

impl Component for ZonesView {
    fn handle(&mut self, action: Action, ctx: &Ctx) -> Handled {
        let ids = match self.focus {
            ZONES => self.zone_ids(ctx.snap),
            _ => self.site_ids(ctx.snap),
        };
        let before = self.lists[ZONES].key.clone();
        if self.lists[self.focus].step(action, &ids) {
            if self.focus == ZONES && before != self.lists[ZONES].key {
                self.lists[SITES] = ListState::default();
            }
            return Handled::Consumed;
        }
        match action {
            Action::NextPane | Action::PrevPane => {
                self.focus = cycle(self.focus, 2, action == Action::NextPane);
                Handled::Consumed
            }
            Action::Open if self.focus == ZONES => {
                self.focus = SITES;
                Handled::Consumed
            }
            Action::Open => match self.lists[SITES].index(ids.len()) {
                Some(i) => Handled::Then(Effect::Open(Route::Site(ids[i].clone()))),
                None => Handled::Consumed,
            },
            _ => Handled::Ignored,
        }
    }

    fn commands(&self, _ctx: &Ctx) -> Vec<Action> {
        vec![Action::Down, Action::Up, Action::Open, Action::NextPane]
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &Ctx) {
        let theme = ctx.theme;
        let all = self.shown(ctx.snap);
        let [top, bottom] =
            Layout::vertical([Constraint::Percentage(45), Constraint::Fill(1)]).areas(area);
        let below = all.iter().filter(|z| z.below).count();
        let mut title = format!(
            "zones · {}",
            all.iter().filter(|z| z.name != NO_ZONE).count()
        );
        if below > 0 {
            title.push_str(&format!(" · {below} below quorum"));
        }
        let spec = Spec {
            title,
            header: vec!["ZONE", "SITES", "NODES UP", "QUORUM"],
            widths: vec![
                Constraint::Length(14),
                Constraint::Length(6),
                Constraint::Length(9),
                Constraint::Fill(1),
            ],
            len: all.len(),
            state: &self.lists[ZONES],
            focused: self.focus == ZONES,
            empty: if ctx.snap.sites.is_empty() {
                "no sites yet".into()
            } else {
                format!("no zone matches /{}", self.lists[ZONES].filter)
            },
            hit: Some((ctx.hits, ZONES)),
            sorted: None,
            marked: None,
        };
        table::render(frame, top, spec, theme, |i| {
            let z = &all[i];
            let zone_style = if z.below {
                Style::new().fg(theme.health.err)
            } else {
                Style::new()
            };
            vec![
                Line::from(Span::styled(z.name.clone(), zone_style)),
                Line::from(z.sites.len().to_string()),
                // Dim for a zone none of whose nodes ever reported (not
                // down: unknown), as a site's count is.
                Line::from(node_count(
                    theme,
                    z.up,
                    z.nodes,
                    z.sites.iter().all(|s| s.last_heard_ms.is_none()),
                )),
                quorum_cell(theme, z),
            ]
        });
        let selected = self.selected(ctx.snap);
        let sites = self.sites(ctx.snap);
        let spec = Spec {
            title: selected.as_ref().map_or_else(
                || "sites".into(),
                |z| format!("sites of {} · {}", z.name, sites.len()),
            ),
            header: vec!["STATUS", "SITE", "NAME", "NODES UP", "LAST HEARD"],
            widths: vec![
                Constraint::Length(9),
                Constraint::Length(12),
                Constraint::Fill(1),
                Constraint::Length(9),
                Constraint::Length(11),
            ],
            len: sites.len(),
            state: &self.lists[SITES],
            focused: self.focus == SITES,
            empty: "no zone selected".into(),
            hit: Some((ctx.hits, SITES)),
            sorted: None,
            marked: None,
        };
        table::render(frame, bottom, spec, theme, |i| {
            let s = sites[i];
            let offline = up_for_quorum(ctx.snap, s) == 0 && s.nodes_up > 0;
            vec![
                Line::from(site_badge(theme, s)),
                Line::from(Span::styled(s.id.clone(), theme.state(s.shown_state()))),
                Line::from(s.name.clone()),
                Line::from(if offline {
                    Span::styled("offline", theme.state(SiteState::Err))
                } else {
                    node_count(theme, s.nodes_up, s.nodes_total, s.last_heard_ms.is_none())
                }),
                Line::from(heard(theme, ctx.now_ms, s.last_heard_ms, s.heartbeat_ms)),
            ]
        });
    }
}

impl View for ZonesView {
    fn route(&self) -> Route {
        Route::Zones
    }
    fn scope(&self) -> Scope {
        Scope::Zones
    }
    fn filter_mut(&mut self) -> Option<&mut ListState> {
        Some(&mut self.lists[self.focus])
    }
    fn list_mut(&mut self, pane: usize) -> Option<&mut ListState> {
        self.lists.get_mut(pane)
    }
    fn select_row(&mut self, pane: usize, row: usize, ctx: &Ctx) {
        let ids = match pane {
            ZONES => self.zone_ids(ctx.snap),
            _ => self.site_ids(ctx.snap),
        };
        if let Some(l) = self.lists.get_mut(pane) {
            l.select(row, &ids);
        }
    }
    fn focus(&mut self, pane: usize) {
        if pane < 2 {
            self.focus = pane;
        }
    }
    fn focused(&self) -> usize {
        self.focus
    }
    fn follow(&mut self, ctx: &Ctx) -> Option<String> {
        let zones = self.zone_ids(ctx.snap);
        self.lists[ZONES].follow(&zones);
        let sites = self.site_ids(ctx.snap);
        self.lists[SITES].follow(&sites);
        None
    }
    fn notes(&self) -> Vec<String> {
        vec![
            "NODES UP counts nodes reported, not down, their site not offline, as the zone-quorum alert does; QUORUM is zones.ZONE.quorum in the fleet defaults.".into(),
        ]
    }
}
