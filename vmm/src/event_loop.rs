//! The VMM thread's event loop (event-manager over epoll): console input for the
//! serial device and the events that end the VM.
//!
//! Two subscribers:
//! - [`ExitWatch`] waits on the i8042 reset line, the vCPU report eventfd, the
//!   console's quit event and the stop signals' signalfd, and records the first
//!   [`Outcome`].
//! - [`ConsoleInput`] reads stdin into the UART, pausing while the guest has a backlog
//!   and resuming on the device's `input_room` event, so it never busy-waits.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

use devices::serial::SerialDevice;
use devices::{EventFdTrigger, EVENTFD_FLAGS};
use event_manager::{EventOps, Events, MutEventSubscriber};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::EventFd;

use crate::signals::StopSignals;
use crate::terminal::EscapeFilter;
use crate::vcpu::{StopReason, VcpuError, VcpuReport};

/// How the VM ended.
#[derive(Debug)]
pub enum Outcome {
    /// The guest ended itself: reset, power-off or triple fault.
    Guest(StopReason),
    /// The user typed the console's quit sequence.
    UserQuit,
    /// A vCPU hit an error it cannot continue from.
    VcpuFailed { index: u8, error: VcpuError },
    /// A stop signal arrived (SIGTERM, SIGINT, SIGHUP or SIGQUIT).
    Signal(libc::c_int),
    /// A snapshot was written, and the run ends with it.
    Snapshot,
}

/// Waits for the end of the VM.
pub struct ExitWatch {
    reset: EventFdTrigger,
    vcpu_wake: Arc<EventFd>,
    quit: Arc<EventFd>,
    reports: Receiver<VcpuReport>,
    signals: Option<StopSignals>,
    /// Written when the guest prints `--snapshot-on-serial`'s text.
    snapshot_trigger: Option<EventFdTrigger>,
    snapshot_wanted: bool,
    outcome: Option<Outcome>,
}

impl ExitWatch {
    /// `reset` is the i8042 reset line; vCPU threads send [`VcpuReport`]s and then write
    /// `vcpu_wake`; the console writes `quit`.
    pub fn new(
        reset: EventFdTrigger,
        vcpu_wake: Arc<EventFd>,
        quit: Arc<EventFd>,
        reports: Receiver<VcpuReport>,
    ) -> Self {
        Self {
            reset,
            vcpu_wake,
            quit,
            reports,
            signals: None,
            snapshot_trigger: None,
            snapshot_wanted: false,
            outcome: None,
        }
    }

    /// Also ends the VM when a stop signal arrives on `signals`; call before the watch
    /// joins the event loop.
    pub fn watch_signals(&mut self, signals: StopSignals) {
        self.signals = Some(signals);
    }

    /// Also asks for a snapshot when `trigger` is written; call before the watch joins
    /// the event loop.
    pub fn watch_snapshot_trigger(&mut self, trigger: EventFdTrigger) {
        self.snapshot_trigger = Some(trigger);
    }

    /// Whether a snapshot was asked for (SIGUSR1 or the serial trigger) since the last
    /// call.
    pub fn take_snapshot_request(&mut self) -> bool {
        std::mem::take(&mut self.snapshot_wanted)
    }

    /// The outcome, once there is one.
    pub fn take_outcome(&mut self) -> Option<Outcome> {
        self.outcome.take()
    }

    fn record(&mut self, outcome: Outcome) {
        // The first event decides: a reset followed by the vCPU noticing the stop flag
        // is still a reset.
        self.outcome.get_or_insert(outcome);
    }
}

impl MutEventSubscriber for ExitWatch {
    fn init(&mut self, ops: &mut EventOps) {
        let signals = self.signals.as_ref().map(AsRawFd::as_raw_fd);
        let trigger = self.snapshot_trigger.as_ref().map(|t| t.as_raw_fd());
        for fd in [
            self.reset.as_raw_fd(),
            self.vcpu_wake.as_raw_fd(),
            self.quit.as_raw_fd(),
        ]
        .into_iter()
        .chain(signals)
        .chain(trigger)
        {
            if let Err(e) = ops.add(Events::new_raw(fd, EventSet::IN)) {
                log::error!("cannot watch exit events: {e:?}");
            }
        }
    }

    fn process(&mut self, events: Events, _ops: &mut EventOps) {
        let fd = events.fd();
        if fd == self.reset.as_raw_fd() {
            let _ = self.reset.read();
            self.record(Outcome::Guest(StopReason::Reset));
        } else if fd == self.quit.as_raw_fd() {
            let _ = self.quit.read();
            self.record(Outcome::UserQuit);
        } else if let Some(signal) = self
            .signals
            .as_ref()
            .filter(|s| s.as_raw_fd() == fd)
            .and_then(StopSignals::read)
        {
            match signal {
                libc::SIGUSR1 => self.snapshot_wanted = true,
                _ => self.record(Outcome::Signal(signal)),
            }
        } else if let Some(trigger) = self
            .snapshot_trigger
            .as_ref()
            .filter(|t| t.as_raw_fd() == fd)
        {
            let _ = trigger.read();
            self.snapshot_wanted = true;
        } else if fd == self.vcpu_wake.as_raw_fd() {
            let _ = self.vcpu_wake.read();
            while let Ok(report) = self.reports.try_recv() {
                self.record(match report.outcome {
                    Ok(reason) => Outcome::Guest(reason),
                    Err(error) => Outcome::VcpuFailed {
                        index: report.index,
                        error,
                    },
                });
            }
        }
    }
}

/// Host input (stdin) feeding the guest's serial port.
pub struct ConsoleInput {
    stdin: RawFd,
    serial: Arc<Mutex<SerialDevice>>,
    room: EventFdTrigger,
    quit: Arc<EventFd>,
    /// Present when stdin is a terminal: handles Ctrl-A x.
    escapes: Option<EscapeFilter>,
    reading: bool,
    at_eof: bool,
}

impl ConsoleInput {
    /// Reads `stdin` into `serial`. `room` is the device's input-room event; `quit` is
    /// written when the user asks to quit. Returns also the quit event for [`ExitWatch`].
    pub fn new(
        stdin: RawFd,
        serial: Arc<Mutex<SerialDevice>>,
        room: EventFdTrigger,
        is_terminal: bool,
    ) -> std::io::Result<(Self, Arc<EventFd>)> {
        let quit = Arc::new(EventFd::new(EVENTFD_FLAGS)?);
        let quit_watch = quit.clone();
        let console = Self {
            stdin,
            serial,
            room,
            quit,
            escapes: is_terminal.then(EscapeFilter::default),
            reading: false,
            at_eof: false,
        };
        Ok((console, quit_watch))
    }

    fn start_reading(&mut self, ops: &mut EventOps) {
        // stdin that epoll cannot watch (a regular file, /dev/null) simply gives no input.
        self.reading = ops.add(Events::new_raw(self.stdin, EventSet::IN)).is_ok();
    }

    fn stop_reading(&mut self, ops: &mut EventOps) {
        if self.reading {
            let _ = ops.remove(Events::new_raw(self.stdin, EventSet::IN));
            self.reading = false;
        }
    }

    fn read_stdin(&mut self, ops: &mut EventOps) {
        let mut buf = [0u8; 4096];
        // SAFETY: reads into a buffer we own, of the length given.
        let n = unsafe { libc::read(self.stdin, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted
                && err.kind() != std::io::ErrorKind::WouldBlock
            {
                self.at_eof = true;
                self.stop_reading(ops);
            }
            return;
        }
        if n == 0 {
            self.at_eof = true;
            self.stop_reading(ops);
            return;
        }
        let input = &buf[..n as usize];
        let (bytes, quit) = match self.escapes.as_mut() {
            Some(filter) => {
                let f = filter.filter(input);
                (f.guest, f.quit)
            }
            None => (input.to_vec(), false),
        };
        let mut serial = self.serial.lock().unwrap_or_else(|p| p.into_inner());
        serial.queue_input(&bytes);
        let wants_more = serial.wants_input();
        drop(serial);
        if quit {
            let _ = self.quit.write(1);
        }
        if !wants_more {
            self.stop_reading(ops);
        }
    }
}

impl MutEventSubscriber for ConsoleInput {
    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(&*self.room, EventSet::IN)) {
            log::error!("cannot watch serial input room: {e:?}");
        }
        self.start_reading(ops);
    }

    fn process(&mut self, events: Events, ops: &mut EventOps) {
        if events.fd() == self.stdin {
            self.read_stdin(ops);
        } else if events.fd() == self.room.as_raw_fd() {
            let _ = self.room.read();
            if !self.reading && !self.at_eof {
                self.start_reading(ops);
            }
        }
    }
}

/// A new event loop and its epoll fd, which the VMM thread's filter pins.
///
/// event-manager keeps its epoll fd private. The process is single-threaded here, so
/// the fd it creates is the lowest free one: that number is taken before, and checked
/// after to be an open epoll instance.
pub fn new_event_manager<S: MutEventSubscriber>(
) -> Result<(event_manager::EventManager<S>, RawFd), crate::Error> {
    // SAFETY: F_DUPFD_CLOEXEC duplicates stdin's fd (or fails) onto the lowest free
    // number, which is closed again at once.
    let probe = unsafe { libc::fcntl(libc::STDIN_FILENO, libc::F_DUPFD_CLOEXEC, 0) };
    let lowest = if probe >= 0 {
        // SAFETY: closing the duplicate made just above.
        unsafe { libc::close(probe) };
        probe
    } else {
        // No stdin to duplicate: fd 0 itself is free.
        0
    };
    let events = event_manager::EventManager::new().map_err(crate::Error::EventLoop)?;
    let link =
        std::fs::read_link(format!("/proc/self/fd/{lowest}")).map_err(crate::Error::EpollFd)?;
    if link.as_os_str() != "anon_inode:[eventpoll]" {
        return Err(crate::Error::EpollFd(std::io::Error::other(format!(
            "fd {lowest} is {}",
            link.display()
        ))));
    }
    Ok((events, lowest))
}
