//! Call screen state: when to turn the screen off by proximity, keep it on, allow rotation, and
//! how to present an incoming call; plus the audio route-change rules ([`AudioRoutes`]).
//!
//! The shells only apply what this module decides: Android holds a
//! `PROXIMITY_SCREEN_OFF_WAKE_LOCK` and sets `FLAG_KEEP_SCREEN_ON`, iOS sets
//! `UIDevice.isProximityMonitoringEnabled` and `UIApplication.isIdleTimerDisabled`.
//!
//! # Inputs ([`ScreenInput`], kept together in [`ScreenState`])
//!
//! | Input | Values | Source |
//! |---|---|---|
//! | call state | [`CallState`]: None, IncomingRinging, OutgoingDialing, OutgoingRinging, Active, OnHold, Ending | call layer |
//! | audio route | [`AudioRoute`]: Earpiece, Speaker, Bluetooth, WiredHeadset | platform, after [`AudioRoutes`] chose |
//! | proximity | [`Proximity`]: Near, Far, Unknown | proximity sensor |
//! | orientation | [`Orientation`]: Portrait, Landscape, FaceUp, FaceDown | accelerometer |
//! | video | on / off | call layer |
//! | app | foreground (one of our screens is visible, also over the lock screen) / background | shell |
//! | device locked | keyguard showing / not | shell |
//! | keypad | shown / hidden | in-call UI |
//!
//! # Rule table
//!
//! Per call state ([`CALL_STATE_RULES`]):
//!
//! | Call state | in-call UI | incoming UI | proximity lock | keep-on eligible | Why |
//! |---|---|---|---|---|---|
//! | `None` | no | no | no | no | No call: the SDK leaves the screen alone. |
//! | `IncomingRinging` | no | yes | no | no | The user must see the caller and answer; the ringing screen stays on by rule K1. |
//! | `OutgoingDialing` | yes | no | yes | yes | The phone goes to the ear right after dialing. |
//! | `OutgoingRinging` | yes | no | yes | yes | Ringback is heard at the ear. |
//! | `Active` | yes | no | yes | yes | Talking. |
//! | `OnHold` | yes | no | yes | yes | The phone often stays at the ear while the call is held. |
//! | `Ending` | yes | no | no | no | The call-ended screen shows briefly; the lock is released at the end of the call (as Linphone does) so it lights up when the phone leaves the ear. |
//!
//! Per audio route ([`ROUTE_RULES`]):
//!
//! | Route | proximity lock | keeps screen on | Why |
//! |---|---|---|---|
//! | `Earpiece` | yes | no | Only the earpiece is used with the phone at the ear. |
//! | `Speaker` | no | yes | Hands-free on a desk: the user looks at the screen. |
//! | `Bluetooth` | no | no | Audio is in the headset and the phone may be in a pocket: let the screen time out. |
//! | `WiredHeadset` | no | no | Audio is in the headset and the phone may be in a pocket: let the screen time out. |
//!
//! Combined into a [`ScreenDecision`] by [`decide`]:
//!
//! | Rule | Output | Condition |
//! |---|---|---|
//! | P | `screen_off_by_proximity` | state row *proximity lock* AND route row *proximity lock* AND video off AND NOT (device flat — FaceUp/FaceDown — AND (app in background OR keypad shown)). The flat exceptions are AOSP InCallUI's `ProximitySensor`: a phone lying on a table while the user works in another app, or types on the keypad, is not at anyone's ear. Never for speaker, Bluetooth or wired headset; never during video. |
//! | B | `blank_screen` | P AND proximity Near. For platforms where the proximity wake lock is not supported (some tablets, desktop): the shell draws black and ignores touches itself, so the cheek cannot hang up. |
//! | I | `show_incoming_ui` | state row *incoming UI*: `FullScreen` when the device is locked (Android full-screen intent / CallKit lock-screen UI) or the app is in the foreground (our own ringing screen, as Linphone and Linkus do); `Notification` when unlocked with the app in the background (heads-up / CallKit banner: Android 10+ and iOS 14+ show a banner there anyway, and taking over another app is hostile); otherwise `None`. |
//! | C | `show_in_call_ui` | state row *in-call UI*. |
//! | K | `keep_screen_on` | K1: IncomingRinging AND I is `FullScreen` (the ringing screen must not time out mid-ring); or K2: state row *keep-on eligible* AND app in foreground AND NOT P AND (video OR route row *keeps screen on* OR keypad shown — IVR menus are long). |
//! | R | `rotation_allowed` | no call (the app's own screens are not ours to lock), or video AND NOT P. Audio call screens are portrait-only, like the platform dialers; above all the screen never rotates while the proximity lock is held. |
//!
//! Invariants (checked over every combination of inputs by the tests): never P with a route
//! other than the earpiece or with video; never R or K while P; B only with P; incoming UI if and
//! only if ringing; in-call UI never while idle or ringing; nothing but R when there is no call.
//!
//! # Audio routes
//!
//! [`AudioRoutes`] decides which route a call uses; the platform reports the available routes
//! (directly as [`RouteInput::RoutesChanged`] or through an [`AudioRoutePlatform`]) and executes
//! the [`RouteCommand`]s. Its rules are listed on the type.

use std::fmt;

/// State of the (single, foreground) call as far as the screen is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CallState {
    /// No call.
    #[default]
    None,
    /// An incoming call is ringing, not yet answered.
    IncomingRinging,
    /// An outgoing call was placed; no provisional response with ringing yet.
    OutgoingDialing,
    /// The callee is ringing (180/183 received).
    OutgoingRinging,
    /// The call is established.
    Active,
    /// The call is on hold (either side).
    OnHold,
    /// The call ended; the call-ended screen is shown briefly.
    Ending,
}

impl CallState {
    /// Every call state, in declaration order (the order of [`CALL_STATE_RULES`]).
    pub const ALL: [CallState; 7] = [
        CallState::None,
        CallState::IncomingRinging,
        CallState::OutgoingDialing,
        CallState::OutgoingRinging,
        CallState::Active,
        CallState::OnHold,
        CallState::Ending,
    ];
}

/// Where call audio is played and picked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub enum AudioRoute {
    /// The handset earpiece (phone at the ear).
    #[default]
    Earpiece,
    /// The loudspeaker.
    Speaker,
    /// A Bluetooth headset or car kit (HFP).
    Bluetooth,
    /// A wired headset or headphones.
    WiredHeadset,
}

impl AudioRoute {
    /// Every route, in declaration order (the order of [`ROUTE_RULES`]).
    pub const ALL: [AudioRoute; 4] = [
        AudioRoute::Earpiece,
        AudioRoute::Speaker,
        AudioRoute::Bluetooth,
        AudioRoute::WiredHeadset,
    ];
}

/// What the proximity sensor reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Proximity {
    /// Something (an ear, a pocket) is close to the screen.
    Near,
    /// Nothing is close.
    Far,
    /// No reading yet, or no sensor.
    #[default]
    Unknown,
}

impl Proximity {
    /// Every proximity reading.
    pub const ALL: [Proximity; 3] = [Proximity::Near, Proximity::Far, Proximity::Unknown];
}

/// Device orientation as the accelerometer reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Orientation {
    /// Upright.
    #[default]
    Portrait,
    /// On its side.
    Landscape,
    /// Lying flat, screen up.
    FaceUp,
    /// Lying flat, screen down.
    FaceDown,
}

impl Orientation {
    /// Every orientation.
    pub const ALL: [Orientation; 4] = [
        Orientation::Portrait,
        Orientation::Landscape,
        Orientation::FaceUp,
        Orientation::FaceDown,
    ];

    /// Lying flat (face up or face down): not held at an ear.
    pub fn is_flat(self) -> bool {
        matches!(self, Orientation::FaceUp | Orientation::FaceDown)
    }
}

/// How to present an incoming call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IncomingUi {
    /// Nothing (no incoming call).
    #[default]
    None,
    /// A heads-up notification / CallKit banner.
    Notification,
    /// A full-screen ringing screen (over the lock screen when locked).
    FullScreen,
}

/// All inputs of the screen decision at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ScreenState {
    /// Call state.
    pub call: CallState,
    /// Current audio route.
    pub route: AudioRoute,
    /// Proximity sensor reading.
    pub proximity: Proximity,
    /// Device orientation.
    pub orientation: Orientation,
    /// Video is on (sent or received) in the call.
    pub video: bool,
    /// One of the app's screens is visible (also when shown over the lock screen).
    pub foreground: bool,
    /// The lock screen (keyguard) is showing.
    pub device_locked: bool,
    /// The in-call keypad (DTMF) is shown.
    pub keypad_shown: bool,
}

impl Default for ScreenState {
    /// Idle: no call, earpiece, unknown proximity, portrait, app in foreground, unlocked.
    fn default() -> Self {
        ScreenState {
            call: CallState::None,
            route: AudioRoute::Earpiece,
            proximity: Proximity::Unknown,
            orientation: Orientation::Portrait,
            video: false,
            foreground: true,
            device_locked: false,
            keypad_shown: false,
        }
    }
}

/// What the shell must do with the screen. See the module's rule table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ScreenDecision {
    /// Rule P: hold a proximity wake lock (Android `PROXIMITY_SCREEN_OFF_WAKE_LOCK`, iOS
    /// `isProximityMonitoringEnabled = true`); the OS then turns the screen off while near.
    pub screen_off_by_proximity: bool,
    /// Rule B: the proximity lock is held and the sensor reads near. Shells on devices without
    /// the wake lock draw black and ignore touches themselves.
    pub blank_screen: bool,
    /// Rule K: keep the screen on (`FLAG_KEEP_SCREEN_ON`, `isIdleTimerDisabled`).
    pub keep_screen_on: bool,
    /// Rule R: the visible call screens may follow the device's rotation; otherwise portrait.
    pub rotation_allowed: bool,
    /// Rule C: the in-call screen is the app's top screen.
    pub show_in_call_ui: bool,
    /// Rule I: how to present an incoming call.
    pub show_incoming_ui: IncomingUi,
}

/// One row of the per-call-state rule table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallStateRule {
    /// The call state this row is for.
    pub state: CallState,
    /// The in-call screen is shown (rule C).
    pub in_call_ui: bool,
    /// An incoming-call UI is shown (rule I).
    pub incoming_ui: bool,
    /// The proximity lock may be held (rule P).
    pub proximity_lock: bool,
    /// The screen may be kept on by rule K2.
    pub keep_on_eligible: bool,
    /// Why.
    pub why: &'static str,
}

/// One row of the per-route rule table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRule {
    /// The route this row is for.
    pub route: AudioRoute,
    /// The proximity lock may be held on this route (rule P).
    pub proximity_lock: bool,
    /// This route keeps the screen on in the foreground (rule K2).
    pub keeps_screen_on: bool,
    /// Why.
    pub why: &'static str,
}

/// The per-call-state rule table, indexed by `CallState as usize` (same as the module doc).
pub const CALL_STATE_RULES: [CallStateRule; 7] = [
    CallStateRule {
        state: CallState::None,
        in_call_ui: false,
        incoming_ui: false,
        proximity_lock: false,
        keep_on_eligible: false,
        why: "No call: the SDK leaves the screen alone.",
    },
    CallStateRule {
        state: CallState::IncomingRinging,
        in_call_ui: false,
        incoming_ui: true,
        proximity_lock: false,
        keep_on_eligible: false,
        why: "The user must see the caller and answer; the ringing screen stays on by rule K1.",
    },
    CallStateRule {
        state: CallState::OutgoingDialing,
        in_call_ui: true,
        incoming_ui: false,
        proximity_lock: true,
        keep_on_eligible: true,
        why: "The phone goes to the ear right after dialing.",
    },
    CallStateRule {
        state: CallState::OutgoingRinging,
        in_call_ui: true,
        incoming_ui: false,
        proximity_lock: true,
        keep_on_eligible: true,
        why: "Ringback is heard at the ear.",
    },
    CallStateRule {
        state: CallState::Active,
        in_call_ui: true,
        incoming_ui: false,
        proximity_lock: true,
        keep_on_eligible: true,
        why: "Talking.",
    },
    CallStateRule {
        state: CallState::OnHold,
        in_call_ui: true,
        incoming_ui: false,
        proximity_lock: true,
        keep_on_eligible: true,
        why: "The phone often stays at the ear while the call is held.",
    },
    CallStateRule {
        state: CallState::Ending,
        in_call_ui: true,
        incoming_ui: false,
        proximity_lock: false,
        keep_on_eligible: false,
        why: "The call-ended screen shows briefly; the lock is released at the end of the call \
              (as Linphone does) so it lights up when the phone leaves the ear.",
    },
];

/// The per-route rule table, indexed by `AudioRoute as usize` (same as the module doc).
pub const ROUTE_RULES: [RouteRule; 4] = [
    RouteRule {
        route: AudioRoute::Earpiece,
        proximity_lock: true,
        keeps_screen_on: false,
        why: "Only the earpiece is used with the phone at the ear.",
    },
    RouteRule {
        route: AudioRoute::Speaker,
        proximity_lock: false,
        keeps_screen_on: true,
        why: "Hands-free on a desk: the user looks at the screen.",
    },
    RouteRule {
        route: AudioRoute::Bluetooth,
        proximity_lock: false,
        keeps_screen_on: false,
        why: "Audio is in the headset and the phone may be in a pocket: let the screen time out.",
    },
    RouteRule {
        route: AudioRoute::WiredHeadset,
        proximity_lock: false,
        keeps_screen_on: false,
        why: "Audio is in the headset and the phone may be in a pocket: let the screen time out.",
    },
];

// The tables are indexed by discriminant: prove at compile time that row i is for value i
// (so the indexing below cannot go out of range).
#[allow(clippy::indexing_slicing)]
const _: () = {
    let mut i = 0;
    while i < CALL_STATE_RULES.len() {
        assert!(CALL_STATE_RULES[i].state as usize == i);
        i += 1;
    }
    let mut i = 0;
    while i < ROUTE_RULES.len() {
        assert!(ROUTE_RULES[i].route as usize == i);
        i += 1;
    }
};

/// The rule-table row for a call state.
#[allow(clippy::indexing_slicing)] // one row per discriminant, checked at compile time above
pub fn call_state_rule(state: CallState) -> &'static CallStateRule {
    &CALL_STATE_RULES[state as usize]
}

/// The rule-table row for an audio route.
#[allow(clippy::indexing_slicing)] // one row per discriminant, checked at compile time above
pub fn route_rule(route: AudioRoute) -> &'static RouteRule {
    &ROUTE_RULES[route as usize]
}

/// Applies the rule table (rules P, B, I, C, K, R of the module doc) to one set of inputs.
pub fn decide(s: &ScreenState) -> ScreenDecision {
    let row = call_state_rule(s.call);
    let route = route_rule(s.route);

    // P
    let lying_unused = s.orientation.is_flat() && (!s.foreground || s.keypad_shown);
    let proximity = row.proximity_lock && route.proximity_lock && !s.video && !lying_unused;
    // B
    let blank_screen = proximity && s.proximity == Proximity::Near;
    // I
    let show_incoming_ui = if !row.incoming_ui {
        IncomingUi::None
    } else if s.device_locked || s.foreground {
        IncomingUi::FullScreen
    } else {
        IncomingUi::Notification
    };
    // K
    let k1 = s.call == CallState::IncomingRinging && show_incoming_ui == IncomingUi::FullScreen;
    let k2 = row.keep_on_eligible
        && s.foreground
        && !proximity
        && (s.video || route.keeps_screen_on || s.keypad_shown);
    // R
    let rotation_allowed = s.call == CallState::None || (s.video && !proximity);

    ScreenDecision {
        screen_off_by_proximity: proximity,
        blank_screen,
        keep_screen_on: k1 || k2,
        rotation_allowed,
        show_in_call_ui: row.in_call_ui,
        show_incoming_ui,
    }
}

/// One change of one screen input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScreenInput {
    /// From the call layer.
    Call(CallState),
    /// From the platform, after a route change took effect.
    Route(AudioRoute),
    /// From the proximity sensor.
    Proximity(Proximity),
    /// From the accelerometer.
    Orientation(Orientation),
    /// From the call layer: video on/off.
    Video(bool),
    /// From the shell: app in foreground (true) or background (false).
    Foreground(bool),
    /// From the shell: lock screen showing.
    DeviceLocked(bool),
    /// From the in-call UI: keypad shown.
    KeypadShown(bool),
}

/// The call-screen machine: keeps the inputs and reports a new [`ScreenDecision`] only when it
/// changed.
///
/// ```text
///  ScreenInput ──► [ScreenState] ──decide()──► ScreenDecision ──(changed?)──► Some(decision)
///                                                            └─(same)──────► None
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallScreen {
    state: ScreenState,
    decision: ScreenDecision,
}

impl Default for CallScreen {
    fn default() -> Self {
        Self::new()
    }
}

impl CallScreen {
    /// A machine in the idle [`ScreenState::default`].
    pub fn new() -> Self {
        Self::with_state(ScreenState::default())
    }

    /// A machine starting from known inputs (e.g. the shell's state at start-up). The shell
    /// applies [`CallScreen::decision`] once; later changes come from [`CallScreen::handle`].
    pub fn with_state(state: ScreenState) -> Self {
        CallScreen {
            decision: decide(&state),
            state,
        }
    }

    /// Applies one input; returns the new decision if it differs from the previous one.
    pub fn handle(&mut self, input: ScreenInput) -> Option<ScreenDecision> {
        let s = &mut self.state;
        match input {
            ScreenInput::Call(v) => s.call = v,
            ScreenInput::Route(v) => s.route = v,
            ScreenInput::Proximity(v) => s.proximity = v,
            ScreenInput::Orientation(v) => s.orientation = v,
            ScreenInput::Video(v) => s.video = v,
            ScreenInput::Foreground(v) => s.foreground = v,
            ScreenInput::DeviceLocked(v) => s.device_locked = v,
            ScreenInput::KeypadShown(v) => s.keypad_shown = v,
        }
        let next = decide(&self.state);
        if next == self.decision {
            None
        } else {
            self.decision = next;
            Some(next)
        }
    }

    /// The current inputs.
    pub fn state(&self) -> &ScreenState {
        &self.state
    }

    /// The current decision.
    pub fn decision(&self) -> ScreenDecision {
        self.decision
    }
}

// ---------------------------------------------------------------------------------------------
// Audio routes
// ---------------------------------------------------------------------------------------------

/// An input of [`AudioRoutes`], by source.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RouteInput {
    /// Platform: the set of available routes now (duplicates and order do not matter).
    RoutesChanged(Vec<AudioRoute>),
    /// User: picked a route in the UI.
    UserSelected(AudioRoute),
    /// Call layer: a call started (or was answered); `video` tells whether it has video.
    CallStarted {
        /// The call has video.
        video: bool,
    },
    /// Call layer: video was turned on or off during the call.
    VideoChanged(bool),
    /// Call layer: the call ended.
    CallEnded,
}

/// A command for the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteCommand {
    /// Route call audio to this route.
    SelectRoute(AudioRoute),
}

/// Why an input was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The user picked a route that is not available (a stale UI list).
    #[error("audio route {0:?} is not available")]
    Unavailable(AudioRoute),
}

/// The platform side of audio routes, implemented by the shell (a foreign trait through the FFI).
pub trait AudioRoutePlatform {
    /// The routes available now.
    fn available_routes(&self) -> Vec<AudioRoute>;
    /// Route call audio to `route`.
    fn select_route(&self, route: AudioRoute);
}

/// Audio route selection: which route a call uses, and when to switch.
///
/// Rules (Android Telecom's `CallAudioRouteStateMachine` and Linphone behave alike):
///
/// | # | When | Then |
/// |---|---|---|
/// | A1 | a call starts | the route the user picked before the call if available, else the default: wired headset > Bluetooth > earpiece > speaker; with video, speaker before earpiece |
/// | A2 | a wired headset is plugged in during a call | switch to it (a physical act beats any earlier choice) |
/// | A3 | Bluetooth connects during a call | switch to it, unless the user chose the speaker |
/// | A4 | the current route goes away (headset unplugged, Bluetooth lost) | back to the speaker if the user was on the speaker before the wired headset took over, else the default (Bluetooth if connected, else earpiece) |
/// | A5 | the user picks an available route | switch to it; the choice wins until the device set changes (A2–A4), except that a speaker choice survives Bluetooth connecting |
/// | A6 | video turns on while on the earpiece without a user choice | speaker; video off while on an automatically chosen speaker → earpiece |
/// | A7 | the call ends | forget the user's choice and the selected route; no command |
///
/// Outside a call the routes and the user's pre-call choice are recorded but no command is
/// issued: the platform routes nothing without a call.
///
/// ```text
///           CallStarted (A1: SelectRoute)
///   [Idle] ───────────────────────────────► [InCall(route)]
///     ▲  RoutesChanged / UserSelected          │ RoutesChanged (A2-A4), UserSelected (A5),
///     │  (recorded only)                       │ VideoChanged (A6): SelectRoute when it changes
///     └──────────── CallEnded (A7) ────────────┘
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AudioRoutes {
    available: Vec<AudioRoute>,
    selected: Option<AudioRoute>,
    user_choice: Option<AudioRoute>,
    before_headset: Option<AudioRoute>,
    in_call: bool,
    video: bool,
}

impl AudioRoutes {
    /// No routes known, no call.
    pub fn new() -> Self {
        Self::default()
    }

    /// The available routes, sorted, without duplicates.
    pub fn available(&self) -> &[AudioRoute] {
        &self.available
    }

    /// The route of the current call (`None` outside a call or when no route is available).
    pub fn selected(&self) -> Option<AudioRoute> {
        self.selected
    }

    /// The route the user picked, while it still wins.
    pub fn user_choice(&self) -> Option<AudioRoute> {
        self.user_choice
    }

    /// Applies one input; returns the command for the platform, if the route changes.
    pub fn handle(&mut self, input: RouteInput) -> Result<Option<RouteCommand>, RouteError> {
        match input {
            RouteInput::RoutesChanged(routes) => Ok(self.handle_routes_changed(routes)),
            RouteInput::UserSelected(route) => self.handle_user_selected(route),
            RouteInput::CallStarted { video } => Ok(self.handle_call_started(video)),
            RouteInput::VideoChanged(video) => Ok(self.handle_video_changed(video)),
            RouteInput::CallEnded => {
                self.in_call = false;
                self.selected = None;
                self.user_choice = None;
                self.before_headset = None;
                self.video = false;
                Ok(None)
            }
        }
    }

    /// Reads the platform's routes, applies them, and executes the resulting command on the
    /// platform. Returns the route selected, if it changed.
    pub fn refresh(&mut self, platform: &dyn AudioRoutePlatform) -> Option<AudioRoute> {
        let RouteCommand::SelectRoute(route) =
            self.handle_routes_changed(platform.available_routes())?;
        platform.select_route(route);
        Some(route)
    }

    fn has(&self, route: AudioRoute) -> bool {
        self.available.contains(&route)
    }

    /// The default route for the available set (rule A1 without a user choice).
    fn default_route(&self) -> Option<AudioRoute> {
        let order: [AudioRoute; 4] = if self.video {
            [
                AudioRoute::WiredHeadset,
                AudioRoute::Bluetooth,
                AudioRoute::Speaker,
                AudioRoute::Earpiece,
            ]
        } else {
            [
                AudioRoute::WiredHeadset,
                AudioRoute::Bluetooth,
                AudioRoute::Earpiece,
                AudioRoute::Speaker,
            ]
        };
        order.into_iter().find(|r| self.has(*r))
    }

    fn switch_to(&mut self, route: Option<AudioRoute>) -> Option<RouteCommand> {
        if !self.in_call || route.is_none() || route == self.selected {
            if route.is_none() {
                self.selected = None;
            }
            return None;
        }
        self.selected = route;
        route.map(RouteCommand::SelectRoute)
    }

    fn handle_routes_changed(&mut self, mut routes: Vec<AudioRoute>) -> Option<RouteCommand> {
        routes.sort();
        routes.dedup();
        if routes == self.available {
            return None;
        }
        let added: Vec<AudioRoute> = routes
            .iter()
            .copied()
            .filter(|r| !self.available.contains(r))
            .collect();
        self.available = routes;

        // A5: the device set changed, so the user's choice stops winning, except a speaker
        // choice when only Bluetooth came (A3).
        let keep_speaker = self.user_choice == Some(AudioRoute::Speaker)
            && self.has(AudioRoute::Speaker)
            && !added.contains(&AudioRoute::WiredHeadset);
        self.user_choice = if keep_speaker {
            Some(AudioRoute::Speaker)
        } else {
            None
        };
        if !self.in_call {
            return None;
        }

        let target = if added.contains(&AudioRoute::WiredHeadset) {
            // A2
            if self.selected != Some(AudioRoute::WiredHeadset) {
                self.before_headset = self.selected;
            }
            Some(AudioRoute::WiredHeadset)
        } else if added.contains(&AudioRoute::Bluetooth) && !keep_speaker {
            // A3
            Some(AudioRoute::Bluetooth)
        } else if self.selected.is_some_and(|r| self.has(r)) {
            self.selected
        } else if let Some(choice) = self.user_choice {
            Some(choice)
        } else {
            // A4
            let back = self.before_headset.take();
            if back == Some(AudioRoute::Speaker) && self.has(AudioRoute::Speaker) {
                Some(AudioRoute::Speaker)
            } else {
                self.default_route()
            }
        };
        self.switch_to(target)
    }

    fn handle_user_selected(
        &mut self,
        route: AudioRoute,
    ) -> Result<Option<RouteCommand>, RouteError> {
        if !self.has(route) {
            return Err(RouteError::Unavailable(route));
        }
        self.user_choice = Some(route);
        self.before_headset = None;
        Ok(self.switch_to(Some(route)))
    }

    fn handle_call_started(&mut self, video: bool) -> Option<RouteCommand> {
        self.in_call = true;
        self.video = video;
        let target = match self.user_choice {
            Some(choice) if self.has(choice) => Some(choice),
            _ => self.default_route(),
        };
        self.switch_to(target)
    }

    fn handle_video_changed(&mut self, video: bool) -> Option<RouteCommand> {
        self.video = video;
        if !self.in_call || self.user_choice.is_some() {
            return None;
        }
        let target = match (video, self.selected) {
            (true, Some(AudioRoute::Earpiece)) if self.has(AudioRoute::Speaker) => {
                Some(AudioRoute::Speaker)
            }
            (false, Some(AudioRoute::Speaker)) if self.has(AudioRoute::Earpiece) => {
                Some(AudioRoute::Earpiece)
            }
            _ => return None,
        };
        self.switch_to(target)
    }
}

impl fmt::Display for AudioRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AudioRoute::Earpiece => "earpiece",
            AudioRoute::Speaker => "speaker",
            AudioRoute::Bluetooth => "bluetooth",
            AudioRoute::WiredHeadset => "wired headset",
        })
    }
}

#[cfg(test)]
mod tests;
