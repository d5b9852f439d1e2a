//! What the call screen and the audio routes show, fed by the calls: the screen rules of
//! [`crate::screen`] get the newest live call's state (and `Ending` for a moment after the
//! last call), and the route rules learn when the first call starts and the last one ends.

use std::time::Instant;

use crate::screen::{self, AudioRoutes, CallScreen, RouteCommand, RouteInput, ScreenInput};

use super::{Phone, PhoneError, PhoneEvent};

/// The call screen and audio routes.
#[derive(Debug, Default)]
pub(super) struct Ui {
    screen: CallScreen,
    routes: AudioRoutes,
    /// A call is live (the route rules were told `CallStarted`).
    in_call: bool,
    /// The ended-call screen shows until then.
    ending_until: Option<Instant>,
}

impl Ui {
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.ending_until
    }
}

impl Phone {
    /// The call state the screen rules see: the newest live call's, else `Ending` while the
    /// ended screen shows, else none.
    fn screen_call_state(&self) -> screen::CallState {
        let newest = self
            .calls
            .values()
            .rev()
            .find_map(|c| c.state().screen_state());
        match (newest, self.ui.ending_until) {
            (Some(state), _) => state,
            (None, Some(_)) => screen::CallState::Ending,
            (None, None) => screen::CallState::None,
        }
    }

    /// A call changed: the screen and the routes follow.
    pub(super) fn calls_changed(&mut self, now: Instant) {
        let live = self
            .calls
            .values()
            .any(|c| c.state().screen_state().is_some());
        if !live && self.ui.in_call {
            self.ui.ending_until = Some(now + self.config.ended_screen);
        } else if live {
            self.ui.ending_until = None;
        }
        let state = self.screen_call_state();
        self.ui_input(now, ScreenInput::Call(state));
        let route_input = match (live, self.ui.in_call) {
            (true, false) => RouteInput::CallStarted { video: false },
            (false, true) => RouteInput::CallEnded,
            _ => return,
        };
        self.ui.in_call = live;
        if let Err(error) = self.route_input(route_input) {
            tracing::debug!(%error, "route rules refused a call change");
        }
    }

    /// Feeds the screen rules; the application hears when the decision changes.
    pub(super) fn ui_input(&mut self, _now: Instant, input: ScreenInput) {
        if let Some(decision) = self.ui.screen.handle(input) {
            self.emit(PhoneEvent::CallScreen(decision));
        }
    }

    /// Feeds the route rules; the application hears when the routes change and which route
    /// the platform must select.
    pub(super) fn route_input(&mut self, input: RouteInput) -> Result<(), PhoneError> {
        let before = (
            self.ui.routes.available().to_vec(),
            self.ui.routes.selected(),
        );
        let command = self.ui.routes.handle(input)?;
        let after = (
            self.ui.routes.available().to_vec(),
            self.ui.routes.selected(),
        );
        if after != before {
            self.emit(PhoneEvent::AudioRoutes {
                available: after.0,
                selected: after.1,
            });
        }
        if let Some(RouteCommand::SelectRoute(route)) = command {
            if let Some(decision) = self.ui.screen.handle(ScreenInput::Route(route)) {
                self.emit(PhoneEvent::CallScreen(decision));
            }
            self.emit(PhoneEvent::SelectAudioRoute(route));
        }
        Ok(())
    }

    /// The ended-call screen is over.
    pub(super) fn ui_timers(&mut self, now: Instant) {
        if self.ui.ending_until.is_some_and(|at| at <= now) {
            self.ui.ending_until = None;
            let state = self.screen_call_state();
            self.ui_input(now, ScreenInput::Call(state));
        }
    }
}
