//! The console's views, one file each. What they share to draw lives below
//! them: [`crate::pane`] (bordered panes), [`crate::cells`] (badges, "last
//! heard", alert states) and [`crate::table`].

pub mod alerts;
pub mod commands;
pub mod config;
pub mod events;
pub mod history;
pub mod node;
pub mod overview;
pub mod peers;
pub mod rollouts;
pub mod site;
pub mod zones;

use crate::component::{Route, View};

pub use alerts::AlertsView;
pub use commands::CommandsView;
pub use config::ConfigView;
pub use events::EventsView;
pub use history::HistoryView;
pub use node::NodeView;
pub use overview::Overview;
pub use peers::PeersView;
pub use rollouts::RolloutsView;
pub use site::SiteView;
pub use zones::ZonesView;

/// A fresh view for a route.
pub fn open(route: &Route) -> Box<dyn View> {
    match route {
        Route::Overview => Box::new(Overview::default()),
        Route::Site(id) => Box::new(SiteView::new(id)),
        Route::Node(id) => Box::new(NodeView::new(id)),
        Route::Alerts(select) => Box::new(AlertsView::new(select.clone())),
        Route::History(select) => Box::new(HistoryView::new(select.clone())),
        Route::Peers => Box::new(PeersView::default()),
        Route::Config(layer) => Box::new(ConfigView::new(layer.clone())),
        Route::Rollouts => Box::new(RolloutsView::default()),
        Route::Commands(batch) => Box::new(CommandsView::new(batch.clone())),
        Route::Events(scope) => Box::new(EventsView::new(scope.clone())),
        Route::Zones => Box::new(ZonesView::default()),
    }
}
