//! The `handset` CLI run inside the bed's phone namespace, as QA runs it: its JSON events read
//! line by line, its log kept in the run directory, killed when the test ends first. Also the
//! bed's Kamailio log of REGISTERs and a request sent through Kamailio to a user's binding.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::{NetBed, Ns};

/// The `handset` CLI running in the phone namespace.
pub struct Cli {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: PathBuf,
}

impl Cli {
    /// Starts `handset COMMAND --server SERVER --user USER --password USER-secret --transport
    /// TRANSPORT EXTRA...` (every user of the bed's Kamailio has the password `<user>-secret`)
    /// in namespace `ns`, with info logging to `RUN_DIR/handset-USER.log`.
    pub fn start(
        bed: &NetBed,
        ns: Ns,
        command: &[&str],
        server: &str,
        user: &str,
        transport: &str,
        extra: &[&str],
    ) -> Cli {
        let password = format!("{user}-secret");
        let account = [
            "--server",
            server,
            "--user",
            user,
            "--password",
            &password,
            "--transport",
            transport,
        ];
        let args: Vec<&str> = [command, &account, extra].concat();
        let stderr = bed.run_dir.join(format!("handset-{user}.log"));
        let mut child = bed
            .command_in(ns, &handset_binary().to_string_lossy())
            .args(&args)
            .env("HANDSET_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("a log file in the run dir"))
            .spawn()
            .expect("the handset CLI starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Cli {
            child,
            lines,
            seen: Vec::new(),
            stderr,
        }
    }

    /// `handset answer` for `user` over `transport`: registers, waits up to 300 s for one
    /// call, answers it and hangs up 30 s later unless the caller hangs up first; `extra`
    /// arguments go last.
    pub fn answer(bed: &NetBed, user: &str, transport: &str, extra: &[&str]) -> Cli {
        let server = format!("sip:{}", bed.sip);
        let wait = ["--wait", "300", "--duration", "30"];
        let extra: Vec<&str> = [&wait, extra].concat();
        Cli::start(
            bed,
            Ns::Phone,
            &["answer"],
            &server,
            user,
            transport,
            &extra,
        )
    }

    /// Waits for the JSON event `name` and returns it; panics on a registration failure, an
    /// exit or a timeout.
    pub fn wait_for(&mut self, name: &str, within: Duration) -> serde_json::Value {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                    match event["event"].as_str() {
                        Some(e) if e == name => return event,
                        Some("registration_failed") => self.fail(&format!("waiting for {name}")),
                        _ => {}
                    }
                }
                Err(RecvTimeoutError::Timeout) => self.fail(&format!("no {name} in {within:?}")),
                Err(RecvTimeoutError::Disconnected) => {
                    self.fail(&format!("the CLI exited before {name}"))
                }
            }
        }
    }

    /// Moves the lines printed since into `seen`.
    fn take_arrived(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
    }

    /// Every event named `name` printed so far, in order.
    pub fn events_named(&mut self, name: &str) -> Vec<serde_json::Value> {
        self.take_arrived();
        self.seen
            .iter()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|event| event["event"].as_str() == Some(name))
            .collect()
    }

    /// The events seen so far, and any that arrived since, by name.
    pub fn events(&mut self) -> Vec<String> {
        self.take_arrived();
        self.seen
            .iter()
            .filter_map(|line| {
                let event: serde_json::Value = serde_json::from_str(line).ok()?;
                event["event"].as_str().map(str::to_string)
            })
            .collect()
    }

    /// Waits for the CLI to exit 0; panics on another status or a timeout.
    pub fn wait_exit(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            match self.child.try_wait().expect("wait for the CLI") {
                Some(status) if status.success() => return,
                Some(status) => self.fail(&format!("the CLI exited with {status}")),
                None if Instant::now() > deadline => self.fail("the CLI did not exit"),
                None => sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Panics with `why`, the events seen and the CLI's log.
    pub fn fail(&self, why: &str) -> ! {
        let log = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        panic!("{why}; events:\n{}\nstderr:\n{log}", self.seen.join("\n"));
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `handset` CLI of this build (`examples/cli`), built now so it is never stale: it lives
/// next to the test's own `deps` directory.
pub fn handset_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("the test's own path");
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("the test runs from <target>/<profile>/deps");
            let target_dir = profile_dir.parent().expect("a target directory");
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut build = Command::new(cargo);
            build
                .args(["build", "--quiet", "-p", "handset-cli", "--bin", "handset"])
                .current_dir(crate::root())
                .env("CARGO_TARGET_DIR", target_dir);
            if profile_dir.file_name().is_some_and(|n| n == "release") {
                build.arg("--release");
            }
            let status = build.status().expect("cargo runs");
            assert!(status.success(), "cannot build the handset CLI");
            profile_dir.join("handset")
        })
        .clone()
}

impl NetBed {
    /// Kamailio's log lines of the REGISTERs it received from `user` (`kamailio.cfg` logs
    /// each one, retransmissions too).
    pub fn register_lines(&self, user: &str) -> String {
        let log = std::fs::read_to_string(self.run_dir.join("kamailio.log")).unwrap_or_default();
        let tag = format!("netbed REGISTER user={user} ");
        log.lines()
            .filter(|l| l.contains(&tag))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    /// How many REGISTERs Kamailio received from `user`.
    pub fn registers(&self, user: &str) -> usize {
        self.register_lines(user).lines().count()
    }
}

/// How a call from SIPp went.
pub struct CallResult {
    /// SIPp completed the call: INVITE answered 200, ACK, BYE answered 200.
    pub success: bool,
    /// SIPp's output.
    pub log: String,
}

impl NetBed {
    /// SIPp in the PBX namespace calls `user` through Kamailio (which routes by its location
    /// table to the user's binding behind the NAT): INVITE, 200, ACK, one second, BYE
    /// (`tests/netbed/uac_call.xml`).
    pub fn call_from_pbx(&self, user: &str) -> CallResult {
        let pbx = self.pbx.to_string();
        let scenario = crate::root().join("tests/netbed/uac_call.xml");
        let output = self.exec_in(
            Ns::Pbx,
            &[
                "sipp",
                "-sf",
                &scenario.to_string_lossy(),
                "-s",
                user,
                "-i",
                &pbx,
                "-p",
                "5090",
                "-mp",
                "16000",
                "-m",
                "1",
                "-timeout",
                "30s",
                "-timeout_error",
                "-recv_timeout",
                "20000",
                "-nostdin",
                &self.sip.to_string(),
            ],
        );
        CallResult {
            success: output.status.success(),
            log: String::from_utf8_lossy(&output.stdout).to_string()
                + &String::from_utf8_lossy(&output.stderr),
        }
    }
}

/// A call with tones through the bed, as the call tests make it: bob (`handset answer` on the
/// PBX side, playing 1000 Hz) and alice (`handset call bob` in the phone namespace, playing
/// 440 Hz), each recording what they hear into the run directory.
pub struct ToneCall {
    /// The caller.
    pub alice: Cli,
    /// The callee.
    pub bob: Cli,
    /// What alice heard (48 kHz mono WAV, complete once her CLI exited).
    pub alice_heard: PathBuf,
    /// What bob heard.
    pub bob_heard: PathBuf,
    call_secs: u64,
}

impl ToneCall {
    /// Starts bob with `bob_extra` arguments and waits until he is registered, then alice,
    /// registered at `alice_server` with `alice_extra`, who hangs up `call_secs` after the
    /// answer; returns once alice's call is answered.
    pub fn start(
        bed: &NetBed,
        alice_server: &str,
        alice_extra: &[&str],
        bob_extra: &[&str],
        call_secs: u64,
    ) -> ToneCall {
        let dir = &bed.run_dir;
        let (alice_tone, bob_tone) = (dir.join("tone-440.wav"), dir.join("tone-1000.wav"));
        handset::audio::write_tone_wav(&alice_tone, 440.0, 30.0, 48_000).expect("a tone file");
        handset::audio::write_tone_wav(&bob_tone, 1000.0, 30.0, 48_000).expect("a tone file");
        let (alice_heard, bob_heard) = (dir.join("alice-heard.wav"), dir.join("bob-heard.wav"));
        let text = |p: &Path| p.to_string_lossy().to_string();
        let (bob_play, bob_record) = (text(&bob_tone), text(&bob_heard));
        let bob_args = [
            "--play",
            &bob_play,
            "--record",
            &bob_record,
            "--wait",
            "60",
            "--duration",
            "60",
        ];
        let server = format!("sip:{}", bed.sip);
        let bob_args: Vec<&str> = [&bob_args, bob_extra].concat();
        let mut bob = Cli::start(bed, Ns::Pbx, &["answer"], &server, "bob", "udp", &bob_args);
        bob.wait_for("registered", Duration::from_secs(20));
        let (alice_play, alice_record) = (text(&alice_tone), text(&alice_heard));
        let duration = call_secs.to_string();
        let alice_args = [
            "--play",
            &alice_play,
            "--record",
            &alice_record,
            "--duration",
            &duration,
        ];
        let alice_args: Vec<&str> = [&alice_args, alice_extra].concat();
        let mut alice = Cli::start(
            bed,
            Ns::Phone,
            &["call", "bob"],
            alice_server,
            "alice",
            "udp",
            &alice_args,
        );
        alice.wait_for("answered", Duration::from_secs(20));
        ToneCall {
            alice,
            bob,
            alice_heard,
            bob_heard,
            call_secs,
        }
    }

    /// Waits until alice hung up and both CLIs exited (their recordings are then complete).
    pub fn finish(&mut self) {
        self.alice
            .wait_for("call_ended", Duration::from_secs(self.call_secs + 10));
        self.alice.wait_exit(Duration::from_secs(15));
        self.bob.wait_for("call_ended", Duration::from_secs(10));
        self.bob.wait_exit(Duration::from_secs(15));
    }
}
