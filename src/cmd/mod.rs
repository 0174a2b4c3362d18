//! The read-side verbs (status, list, history, wait, version, completion): each observes,
//! builds the model and renders it. The write verbs have no module here: they are
//! `plan::Intent`s run by the one write `pipeline`.

pub mod completion;
pub mod history;
pub mod list;
pub mod status;
pub mod version;
pub mod wait;
pub mod watch;
