//! The link's mode, one at a time, and every transition between modes in
//! one function ([`LinkMode::on`]). Pure: the link task in
//! [`super::mqtt`] does the I/O each mode calls for.
//!
//! ```text
//!              CONNACK                    finish
//! Connecting ---------> Connected -------------------> Closing
//!   ^   |                  |          (offline status,    |
//!   |   | error            | error     DISCONNECT asked)  | DISCONNECT written
//!   |   v                  v                              v
//!   +-- Backoff <----------+                         Disconnecting
//!  wait                                                   |
//!  over                         error (broker closed) --> end
//! ```
//!
//! `finish` while not connected (`Connecting`, `Backoff`) and any error
//! while `Closing` or `Disconnecting` end the task.

/// What the link is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkMode {
    /// Polling the event loop until the broker's CONNACK.
    Connecting,
    /// Connected: publishing from the spool, status on tick and on health change.
    Connected,
    /// The connection failed: waiting before the next attempt.
    Backoff,
    /// Stopping while connected: the offline status and a DISCONNECT are
    /// queued; PUBACKs still count.
    Closing,
    /// The DISCONNECT is written (maybe not flushed): polling until the
    /// broker closes the connection, or it would publish the last will.
    Disconnecting,
}

/// What moves the link from one mode to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkEvent {
    /// The broker accepted the connection.
    ConnAck,
    /// The event loop returned an error (connection refused, lost or closed).
    Failed,
    /// The backoff wait is over.
    Retry,
    /// The agent asked the link to finish.
    Finish,
    /// The DISCONNECT packet was written.
    DisconnectWritten,
}

impl LinkMode {
    /// The mode after `event`; `None` when the link task ends.
    pub fn on(self, event: LinkEvent) -> Option<LinkMode> {
        use LinkEvent::*;
        use LinkMode::*;
        match (self, event) {
            (Connecting | Connected, ConnAck) => Some(Connected),
            (Connecting | Connected | Backoff, Failed) => Some(Backoff),
            (Closing | Disconnecting, Failed) => None,
            (Backoff, Retry) => Some(Connecting),
            (Connecting | Backoff, Finish) => None,
            (Connected, Finish) => Some(Closing),
            (Closing, DisconnectWritten) => Some(Disconnecting),
            // Nothing else can happen in these modes; stay.
            (mode, _) => Some(mode),
        }
    }

    /// A connection to the broker is up (the published `connected` flag).
    pub fn connected(self) -> bool {
        matches!(self, LinkMode::Connected | LinkMode::Closing | LinkMode::Disconnecting)
    }

    /// Records are published from the spool, status messages sent.
    pub fn publishing(self) -> bool {
        self == LinkMode::Connected
    }

    /// The agent asked the link to finish.
    pub fn finishing(self) -> bool {
        matches!(self, LinkMode::Closing | LinkMode::Disconnecting)
    }
}

#[cfg(test)]
mod tests {
    use super::LinkEvent::*;
    use super::LinkMode::*;
    use super::*;

    fn walk(events: &[LinkEvent]) -> Vec<Option<LinkMode>> {
        let mut mode = Some(Connecting);
        events
            .iter()
            .map(|e| {
                mode = mode.and_then(|m| m.on(*e));
                mode
            })
            .collect()
    }

    #[test]
    fn an_outage_and_a_clean_stop() {
        assert_eq!(
            walk(&[Failed, Retry, ConnAck, Failed, Retry, ConnAck, Finish, DisconnectWritten, Failed]),
            vec![
                Some(Backoff),
                Some(Connecting),
                Some(Connected),
                Some(Backoff),
                Some(Connecting),
                Some(Connected),
                Some(Closing),
                Some(Disconnecting),
                None
            ]
        );
    }

    #[test]
    fn finishing_while_away_or_losing_the_connection_while_closing_ends_the_task() {
        assert_eq!(Connecting.on(Finish), None);
        assert_eq!(Backoff.on(Finish), None);
        assert_eq!(Closing.on(Failed), None);
        assert_eq!(Closing.on(Finish), Some(Closing), "a second finish changes nothing");
    }

    #[test]
    fn flags_follow_the_mode() {
        let all = [Connecting, Connected, Backoff, Closing, Disconnecting];
        let connected: Vec<_> = all.iter().map(|m| m.connected()).collect();
        assert_eq!(connected, [false, true, false, true, true]);
        assert_eq!(all.iter().filter(|m| m.publishing()).count(), 1);
        assert!(Closing.finishing() && Disconnecting.finishing() && !Connected.finishing());
    }
}
