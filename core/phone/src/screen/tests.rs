use super::*;

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// Every combination of inputs: 7 call states × 4 routes × 3 proximity readings × 4
/// orientations × video × foreground × locked × keypad = 5376 states.
fn all_states() -> Vec<ScreenState> {
    let mut out = Vec::new();
    for call in CallState::ALL {
        for route in AudioRoute::ALL {
            for proximity in Proximity::ALL {
                for orientation in Orientation::ALL {
                    for video in [false, true] {
                        for foreground in [false, true] {
                            for device_locked in [false, true] {
                                for keypad_shown in [false, true] {
                                    out.push(ScreenState {
                                        call,
                                        route,
                                        proximity,
                                        orientation,
                                        video,
                                        foreground,
                                        device_locked,
                                        keypad_shown,
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

fn all_inputs() -> Vec<ScreenInput> {
    let mut out = Vec::new();
    out.extend(CallState::ALL.map(ScreenInput::Call));
    out.extend(AudioRoute::ALL.map(ScreenInput::Route));
    out.extend(Proximity::ALL.map(ScreenInput::Proximity));
    out.extend(Orientation::ALL.map(ScreenInput::Orientation));
    for b in [false, true] {
        out.push(ScreenInput::Video(b));
        out.push(ScreenInput::Foreground(b));
        out.push(ScreenInput::DeviceLocked(b));
        out.push(ScreenInput::KeypadShown(b));
    }
    out
}

#[test]
fn module_doc_shows_the_const_tables() {
    let source = include_str!("../screen.rs");
    for row in CALL_STATE_RULES {
        let line = format!(
            "//! | `{:?}` | {} | {} | {} | {} | {} |",
            row.state,
            yes(row.in_call_ui),
            yes(row.incoming_ui),
            yes(row.proximity_lock),
            yes(row.keep_on_eligible),
            row.why
        );
        assert!(source.contains(&line), "module doc lacks row:\n{line}");
    }
    for row in ROUTE_RULES {
        let line = format!(
            "//! | `{:?}` | {} | {} | {} |",
            row.route,
            yes(row.proximity_lock),
            yes(row.keeps_screen_on),
            row.why
        );
        assert!(source.contains(&line), "module doc lacks row:\n{line}");
    }
}

#[test]
fn every_combination_keeps_the_invariants() {
    let states = all_states();
    assert_eq!(states.len(), 7 * 4 * 3 * 4 * 2 * 2 * 2 * 2);
    let mut proximity_held = 0;
    for s in &states {
        let d = decide(s);
        let ctx = format!("{s:?} -> {d:?}");
        if d.screen_off_by_proximity {
            proximity_held += 1;
            assert_eq!(
                s.route,
                AudioRoute::Earpiece,
                "proximity off without earpiece: {ctx}"
            );
            assert!(!s.video, "proximity off during video: {ctx}");
            assert!(!d.rotation_allowed, "rotation while proximity off: {ctx}");
            assert!(!d.keep_screen_on, "keep-on while proximity off: {ctx}");
            assert!(
                matches!(
                    s.call,
                    CallState::OutgoingDialing
                        | CallState::OutgoingRinging
                        | CallState::Active
                        | CallState::OnHold
                ),
                "proximity off outside a call: {ctx}"
            );
        }
        if matches!(
            s.route,
            AudioRoute::Speaker | AudioRoute::Bluetooth | AudioRoute::WiredHeadset
        ) {
            assert!(!d.screen_off_by_proximity, "{ctx}");
        }
        if d.blank_screen {
            assert!(
                d.screen_off_by_proximity,
                "blank without proximity lock: {ctx}"
            );
            assert_eq!(s.proximity, Proximity::Near, "{ctx}");
        }
        assert_eq!(
            d.show_incoming_ui != IncomingUi::None,
            s.call == CallState::IncomingRinging,
            "incoming UI iff ringing: {ctx}"
        );
        if matches!(s.call, CallState::None | CallState::IncomingRinging) {
            assert!(!d.show_in_call_ui, "{ctx}");
        }
        if s.call == CallState::None {
            assert_eq!(
                d,
                ScreenDecision {
                    rotation_allowed: true,
                    ..ScreenDecision::default()
                },
                "idle touches nothing but rotation: {ctx}"
            );
        }
        if d.keep_screen_on && s.call != CallState::IncomingRinging {
            assert!(s.foreground, "keep-on in background: {ctx}");
        }
        // Rule P, exactly as documented.
        let expected_p = matches!(
            s.call,
            CallState::OutgoingDialing
                | CallState::OutgoingRinging
                | CallState::Active
                | CallState::OnHold
        ) && s.route == AudioRoute::Earpiece
            && !s.video
            && !(s.orientation.is_flat() && (!s.foreground || s.keypad_shown));
        assert_eq!(d.screen_off_by_proximity, expected_p, "{ctx}");
        // The proximity reading changes nothing but the blanking.
        for p in Proximity::ALL {
            let other = decide(&ScreenState { proximity: p, ..*s });
            assert_eq!(
                ScreenDecision {
                    blank_screen: false,
                    ..other
                },
                ScreenDecision {
                    blank_screen: false,
                    ..d
                },
                "{ctx}"
            );
        }
    }
    assert!(proximity_held > 0);
}

#[test]
fn handle_reports_only_changes() {
    let inputs = all_inputs();
    for start in all_states() {
        for input in &inputs {
            let mut screen = CallScreen::with_state(start);
            let before = screen.decision();
            let out = screen.handle(*input);
            let after = decide(screen.state());
            assert_eq!(screen.decision(), after);
            if before == after {
                assert_eq!(out, None, "{start:?} + {input:?}");
            } else {
                assert_eq!(out, Some(after), "{start:?} + {input:?}");
            }
        }
    }
}

#[test]
fn typical_earpiece_call_then_speaker() {
    let mut screen = CallScreen::new();
    assert_eq!(screen.handle(ScreenInput::Proximity(Proximity::Far)), None);
    let d = screen
        .handle(ScreenInput::Call(CallState::OutgoingDialing))
        .expect("dialing changes the screen");
    assert!(d.screen_off_by_proximity && d.show_in_call_ui && !d.rotation_allowed);
    assert_eq!(
        screen.handle(ScreenInput::Call(CallState::OutgoingRinging)),
        None
    );
    assert_eq!(screen.handle(ScreenInput::Call(CallState::Active)), None);
    let d = screen
        .handle(ScreenInput::Proximity(Proximity::Near))
        .expect("near blanks");
    assert!(d.blank_screen);
    let d = screen
        .handle(ScreenInput::Route(AudioRoute::Speaker))
        .expect("speaker");
    assert!(!d.screen_off_by_proximity && !d.blank_screen && d.keep_screen_on);
    let d = screen
        .handle(ScreenInput::Foreground(false))
        .expect("background");
    assert!(!d.keep_screen_on && d.show_in_call_ui);
    let d = screen
        .handle(ScreenInput::Foreground(true))
        .expect("foreground");
    assert!(d.keep_screen_on);
    let d = screen
        .handle(ScreenInput::Call(CallState::Ending))
        .expect("end");
    assert!(!d.screen_off_by_proximity && !d.keep_screen_on && d.show_in_call_ui);
    let d = screen
        .handle(ScreenInput::Call(CallState::None))
        .expect("idle");
    assert!(!d.show_in_call_ui && d.rotation_allowed);
}

#[test]
fn incoming_ui_depends_on_lock_and_foreground() {
    let ringing = ScreenState {
        call: CallState::IncomingRinging,
        ..ScreenState::default()
    };
    let locked = decide(&ScreenState {
        device_locked: true,
        foreground: false,
        ..ringing
    });
    assert_eq!(locked.show_incoming_ui, IncomingUi::FullScreen);
    assert!(locked.keep_screen_on);
    let other_app = decide(&ScreenState {
        foreground: false,
        ..ringing
    });
    assert_eq!(other_app.show_incoming_ui, IncomingUi::Notification);
    assert!(!other_app.keep_screen_on);
    let in_app = decide(&ringing);
    assert_eq!(in_app.show_incoming_ui, IncomingUi::FullScreen);
    assert!(!in_app.screen_off_by_proximity);
}

#[test]
fn flat_phone_releases_proximity_like_aosp() {
    let active = ScreenState {
        call: CallState::Active,
        ..ScreenState::default()
    };
    assert!(decide(&active).screen_off_by_proximity);
    let on_table_typing = ScreenState {
        orientation: Orientation::FaceUp,
        keypad_shown: true,
        ..active
    };
    let d = decide(&on_table_typing);
    assert!(!d.screen_off_by_proximity && d.keep_screen_on);
    let on_table_other_app = ScreenState {
        orientation: Orientation::FaceDown,
        foreground: false,
        ..active
    };
    assert!(!decide(&on_table_other_app).screen_off_by_proximity);
    // Upright at the ear with the keypad left open: still locked.
    let at_ear_keypad = ScreenState {
        keypad_shown: true,
        ..active
    };
    assert!(decide(&at_ear_keypad).screen_off_by_proximity);
}

#[test]
fn video_allows_rotation_and_keeps_screen_on() {
    let video = ScreenState {
        call: CallState::Active,
        video: true,
        ..ScreenState::default()
    };
    let d = decide(&video);
    assert!(d.rotation_allowed && d.keep_screen_on && !d.screen_off_by_proximity);
}

// ----- audio routes -----

use AudioRoute::{Bluetooth, Earpiece, Speaker, WiredHeadset};

fn routes(list: &[AudioRoute]) -> RouteInput {
    RouteInput::RoutesChanged(list.to_vec())
}

fn select(r: AudioRoute) -> Result<Option<RouteCommand>, RouteError> {
    Ok(Some(RouteCommand::SelectRoute(r)))
}

fn in_call(list: &[AudioRoute]) -> AudioRoutes {
    let mut r = AudioRoutes::new();
    assert_eq!(r.handle(routes(list)), Ok(None));
    r.handle(RouteInput::CallStarted { video: false })
        .expect("start");
    r
}

#[test]
fn call_starts_on_default_route() {
    let mut r = AudioRoutes::new();
    assert_eq!(r.handle(routes(&[Speaker, Earpiece, Speaker])), Ok(None));
    assert_eq!(r.available(), &[Earpiece, Speaker]);
    assert_eq!(
        r.handle(RouteInput::CallStarted { video: false }),
        select(Earpiece)
    );
    assert_eq!(r.selected(), Some(Earpiece));

    let mut r = AudioRoutes::new();
    r.handle(routes(&[Earpiece, Speaker, Bluetooth]))
        .expect("routes");
    assert_eq!(
        r.handle(RouteInput::CallStarted { video: false }),
        select(Bluetooth)
    );

    let mut r = AudioRoutes::new();
    r.handle(routes(&[Earpiece, Speaker])).expect("routes");
    assert_eq!(
        r.handle(RouteInput::CallStarted { video: true }),
        select(Speaker)
    );

    // A tablet without earpiece.
    let mut r = AudioRoutes::new();
    r.handle(routes(&[Speaker])).expect("routes");
    assert_eq!(
        r.handle(RouteInput::CallStarted { video: false }),
        select(Speaker)
    );
}

#[test]
fn pre_call_user_choice_is_used() {
    let mut r = AudioRoutes::new();
    r.handle(routes(&[Earpiece, Speaker])).expect("routes");
    assert_eq!(r.handle(RouteInput::UserSelected(Speaker)), Ok(None));
    assert_eq!(
        r.handle(RouteInput::CallStarted { video: false }),
        select(Speaker)
    );
}

#[test]
fn bluetooth_connecting_during_call_takes_over() {
    let mut r = in_call(&[Earpiece, Speaker]);
    assert_eq!(
        r.handle(routes(&[Earpiece, Speaker, Bluetooth])),
        select(Bluetooth)
    );
    // Lost again: back to the earpiece.
    assert_eq!(r.handle(routes(&[Earpiece, Speaker])), select(Earpiece));
}

#[test]
fn bluetooth_does_not_override_users_speaker() {
    let mut r = in_call(&[Earpiece, Speaker]);
    assert_eq!(r.handle(RouteInput::UserSelected(Speaker)), select(Speaker));
    assert_eq!(r.handle(routes(&[Earpiece, Speaker, Bluetooth])), Ok(None));
    assert_eq!(r.selected(), Some(Speaker));
    assert_eq!(r.user_choice(), Some(Speaker));
}

#[test]
fn users_earpiece_choice_ends_when_bluetooth_connects() {
    let mut r = in_call(&[Earpiece, Speaker, Bluetooth]);
    assert_eq!(r.selected(), Some(Bluetooth));
    assert_eq!(
        r.handle(RouteInput::UserSelected(Earpiece)),
        select(Earpiece)
    );
    // Same set reported again: the choice stands.
    assert_eq!(r.handle(routes(&[Bluetooth, Speaker, Earpiece])), Ok(None));
    assert_eq!(r.selected(), Some(Earpiece));
    // Bluetooth drops and comes back: the device set changed, Bluetooth wins (A3).
    assert_eq!(r.handle(routes(&[Earpiece, Speaker])), Ok(None));
    assert_eq!(
        r.handle(routes(&[Earpiece, Speaker, Bluetooth])),
        select(Bluetooth)
    );
}

#[test]
fn wired_headset_plug_and_unplug() {
    let mut r = in_call(&[Earpiece, Speaker]);
    assert_eq!(
        r.handle(routes(&[Earpiece, Speaker, WiredHeadset])),
        select(WiredHeadset)
    );
    assert_eq!(r.handle(routes(&[Earpiece, Speaker])), select(Earpiece));

    // Wired beats even the user's speaker, and unplugging returns to the speaker.
    let mut r = in_call(&[Earpiece, Speaker]);
    assert_eq!(r.handle(RouteInput::UserSelected(Speaker)), select(Speaker));
    assert_eq!(
        r.handle(routes(&[Earpiece, Speaker, WiredHeadset])),
        select(WiredHeadset)
    );
    assert_eq!(r.user_choice(), None);
    assert_eq!(r.handle(routes(&[Earpiece, Speaker])), select(Speaker));

    // Unplugged with Bluetooth connected: Bluetooth.
    let mut r = in_call(&[Earpiece, Speaker, WiredHeadset]);
    assert_eq!(r.selected(), Some(WiredHeadset));
    assert_eq!(
        r.handle(routes(&[Earpiece, Speaker, WiredHeadset, Bluetooth])),
        select(Bluetooth)
    );
    assert_eq!(r.handle(routes(&[Earpiece, Speaker, Bluetooth])), Ok(None));
}

#[test]
fn unavailable_user_choice_is_an_error() {
    let mut r = in_call(&[Earpiece, Speaker]);
    assert_eq!(
        r.handle(RouteInput::UserSelected(Bluetooth)),
        Err(RouteError::Unavailable(Bluetooth))
    );
    assert_eq!(r.selected(), Some(Earpiece));
    assert_eq!(r.handle(RouteInput::UserSelected(Earpiece)), Ok(None));
}

#[test]
fn video_moves_automatic_earpiece_to_speaker_and_back() {
    let mut r = in_call(&[Earpiece, Speaker]);
    assert_eq!(r.handle(RouteInput::VideoChanged(true)), select(Speaker));
    assert_eq!(r.handle(RouteInput::VideoChanged(false)), select(Earpiece));
    // A user choice is left alone.
    assert_eq!(r.handle(RouteInput::UserSelected(Earpiece)), Ok(None));
    assert_eq!(r.handle(RouteInput::VideoChanged(true)), Ok(None));
}

#[test]
fn call_end_forgets_choice_and_issues_nothing() {
    let mut r = in_call(&[Earpiece, Speaker]);
    r.handle(RouteInput::UserSelected(Speaker)).expect("select");
    assert_eq!(r.handle(RouteInput::CallEnded), Ok(None));
    assert_eq!(r.selected(), None);
    assert_eq!(r.user_choice(), None);
    // Outside a call, changes are recorded but not commanded.
    assert_eq!(
        r.handle(routes(&[Earpiece, Speaker, WiredHeadset])),
        Ok(None)
    );
    assert_eq!(
        r.handle(RouteInput::CallStarted { video: false }),
        select(WiredHeadset)
    );
}

#[test]
fn all_routes_lost_selects_nothing() {
    let mut r = in_call(&[Earpiece]);
    assert_eq!(r.handle(routes(&[])), Ok(None));
    assert_eq!(r.selected(), None);
    assert_eq!(r.handle(routes(&[Speaker])), select(Speaker));
}

#[test]
fn route_sequences_never_select_an_unavailable_route() {
    // Every sequence of three device sets out of all 16 subsets, with and without a user pick.
    let subsets: Vec<Vec<AudioRoute>> = (0u8..16)
        .map(|m| {
            AudioRoute::ALL
                .into_iter()
                .filter(|r| m & (1 << (*r as u8)) != 0)
                .collect()
        })
        .collect();
    for a in &subsets {
        for b in &subsets {
            for c in &subsets {
                for pick in [None, Some(Speaker), Some(Earpiece)] {
                    let mut r = in_call(a);
                    if let Some(p) = pick {
                        let _ = r.handle(RouteInput::UserSelected(p));
                    }
                    for set in [b, c] {
                        let cmd = r.handle(routes(set)).expect("never fails");
                        if let Some(RouteCommand::SelectRoute(x)) = cmd {
                            assert!(set.contains(&x));
                        }
                        match r.selected() {
                            Some(sel) => assert!(set.contains(&sel), "{a:?} {b:?} {c:?}"),
                            None => assert!(set.is_empty()),
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn refresh_drives_the_platform() {
    use std::cell::RefCell;
    struct Fake {
        routes: Vec<AudioRoute>,
        selected: RefCell<Vec<AudioRoute>>,
    }
    impl AudioRoutePlatform for Fake {
        fn available_routes(&self) -> Vec<AudioRoute> {
            self.routes.clone()
        }
        fn select_route(&self, route: AudioRoute) {
            self.selected.borrow_mut().push(route);
        }
    }
    let mut r = in_call(&[Earpiece, Speaker]);
    let fake = Fake {
        routes: vec![Earpiece, Speaker, Bluetooth],
        selected: RefCell::new(Vec::new()),
    };
    assert_eq!(r.refresh(&fake), Some(Bluetooth));
    assert_eq!(r.refresh(&fake), None);
    assert_eq!(*fake.selected.borrow(), vec![Bluetooth]);
}
