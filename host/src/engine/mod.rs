//! The engine executes orchestration runs (ARCHITECTURE.md §6). The executor itself
//! arrives later; these modules are its pure parts: the run context and path lookup,
//! `{{ path }}` templates in compute `params`, and decision steps.

pub mod context;
pub mod decision;
pub mod template;
