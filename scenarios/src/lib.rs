//! `scenarios`: fleet scenarios and the runner that simulates them. Nothing here yet: scenarios and the demo are issue 6.
