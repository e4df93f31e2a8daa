//! Notification dispatcher.
